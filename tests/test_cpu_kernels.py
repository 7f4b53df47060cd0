"""Where a run's numbers can be reproduced bit for bit: the CPU kernels `python -m bench` asks for,
the fingerprint of what they compute, and the machine string a baseline's per-seed rows carry."""
import os
import subprocess
import sys

import pytest
import torch

from bench.cpu_kernels import AVX2_KERNELS, has_avx2, use_avx2_kernels
from bench.run.environment import numerics_fingerprint
from bench.store.records import RunRecord, RunStatus
from tests.conftest import REPO


def test_the_avx2_kernels_are_asked_for_only_where_the_cpu_has_them_and_the_user_has_not_chosen():
    environ = {"MKL_CBWR": "COMPATIBLE"}
    use_avx2_kernels(environ, avx2=True)
    assert environ == {**AVX2_KERNELS, "MKL_CBWR": "COMPATIBLE"}
    environ = {}
    use_avx2_kernels(environ, avx2=False)
    assert environ == {}


def test_avx2_is_read_from_the_cpu_flags(tmp_path, monkeypatch):
    monkeypatch.setattr("platform.machine", lambda: "x86_64")
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("model name\t: AMD EPYC\nflags\t\t: fpu sse2 avx avx2 fma\n")
    assert has_avx2(str(cpuinfo))
    cpuinfo.write_text("model name\t: Old\nflags\t\t: fpu sse2 avx avx2x\n")  # a word, not a prefix
    assert not has_avx2(str(cpuinfo))
    assert not has_avx2(str(tmp_path / "absent"))
    monkeypatch.setattr("platform.machine", lambda: "aarch64")
    cpuinfo.write_text("flags\t\t: avx2\n")
    assert not has_avx2(str(cpuinfo))


def test_the_fingerprint_is_stable_and_leaves_the_random_state_alone():
    torch.manual_seed(3)
    state = torch.get_rng_state()
    first = numerics_fingerprint()
    assert torch.equal(torch.get_rng_state(), state)
    assert numerics_fingerprint() == first and len(first) == 8 and int(first, 16) >= 0


def fingerprint_in_a_process(**environ):
    code = "from bench.run.environment import numerics_fingerprint as f; print(f())"
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True,
                         timeout=300, env={**os.environ, "OMP_NUM_THREADS": "2", **environ})
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


@pytest.mark.skipif(not has_avx2(), reason="needs an x86-64 CPU with AVX2")
def test_the_fingerprint_tells_kernels_that_compute_differently_apart():
    """oneDNN's SSE4.1 convolutions and its AVX2 ones round differently (oneDNN picks its code by
    instruction set alone, on any vendor's CPU): the fingerprint, and so the machine string of a
    run, must differ (the same kernels agree: the test above)."""
    avx2 = fingerprint_in_a_process(**AVX2_KERNELS)
    assert fingerprint_in_a_process(**{**AVX2_KERNELS, "ONEDNN_MAX_CPU_ISA": "SSE41"}) != avx2


def record(tmp_path, env):
    return RunRecord(run_id="run", dir=tmp_path, config={}, env=env, status=RunStatus())


def test_the_machine_string_is_the_kernels_and_fingerprint_on_the_cpu_not_the_cpu_name(tmp_path):
    env = {"device": "cpu", "device_name": "AMD EPYC", "torch_threads": 2,
           "libraries": {"torch": "2.14.1"}}
    assert record(tmp_path, env).computed_on == "cpu (AMD EPYC), 2 threads, torch 2.14.1"  # older run
    env.update(cpu_kernels="AVX2", numerics="0a1b2c3d")
    assert (record(tmp_path, env).computed_on
            == "cpu (AVX2 kernels, numerics 0a1b2c3d), 2 threads, torch 2.14.1")
    intel = record(tmp_path, {**env, "device_name": "Intel(R) Xeon(R) Processor"}).computed_on
    assert intel == record(tmp_path, env).computed_on
    cuda = {**env, "device": "cuda:0", "device_name": "NVIDIA H200", "numerics": None}
    assert record(tmp_path, cuda).computed_on == "cuda:0 (NVIDIA H200), 2 threads, torch 2.14.1"
