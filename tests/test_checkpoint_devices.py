"""Checkpoints move between devices (bench/run/checkpoints.py): a run trained on a GPU resumes on the
CPU and the reverse, and a GPU-trained run is loaded and evaluated on the CPU.

A CUDA generator's state is 16 bytes (its seed, then its Philox offset, as CUDAGeneratorImpl
writes them) and a CPU generator refuses it. These tests build that state byte for byte and put
it where a GPU run's checkpoint has it, so the CPU side of the move is tested on any machine; the
GPU side (train on CUDA, resume on the CPU) is in tests/test_gpu.py.
"""
import shutil
import struct

import pandas as pd
import pytest
import torch

from bench.cli import main
from bench.run.checkpoints import load_checkpoint, restart_seed
from bench.run.trained_method import load_method
from bench.spec.config import RunConfig
from bench.store import results
from bench.store.records import load_run
from tests.helpers import dies_after_first_epoch

ARGV = ["run", "--methods", "szabo", "--dataset", "mnist", "--preset", "smoke", "--device", "cpu",
        "--epochs", "2"]
STREAMS = ("method", "pairs", "batches")


def cuda_generator_state(seed: int, offset: int) -> torch.Tensor:
    """A CUDA generator's state as ``get_state()`` returns it on a GPU: 8 bytes of seed, 8 of
    Philox offset."""
    return torch.tensor(list(struct.pack("<Qq", seed, offset)), dtype=torch.uint8)


def the_run(results_dir):
    (run_dir,) = [p for p in results.runs_dir(results_dir).iterdir() if p.is_dir()]
    return run_dir


def rewrite_checkpoint(run_dir, change):
    path = run_dir / results.CHECKPOINT_FILE
    state = torch.load(path, weights_only=True)
    change(state)
    torch.save(state, path)


def as_if_written_on_a_gpu(state):
    state["generators"] = {name: {"device": "cuda", "state": cuda_generator_state(1234 + i, 4 * i)}
                           for i, name in enumerate(STREAMS)}


def as_written_before_devices_were_recorded(state, generator_state):
    """The layout of older checkpoints: each state inside the method's and samplers' states."""
    generators = state.pop("generators")
    state["method"]["generator"] = generator_state(generators["method"])
    state["data"]["pairs"]["generator"] = generator_state(generators["pairs"])
    state["data"]["batches"] = {"generator": generator_state(generators["batches"])}


@pytest.fixture(scope="module", autouse=True)
def probes_only():
    """What these runs compute after training is beside the point here and costs most of their
    time: they evaluate the latent probes only and draw no figures."""
    import bench.evaluations
    import bench.run.runner
    from bench.evaluations import EVALUATIONS
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(bench.evaluations, "by_default", lambda: [EVALUATIONS["probes"]])
        patch.setattr(bench.run.runner, "draw_curves", lambda *args, **kwargs: None)
        yield


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """An uninterrupted 2-epoch run, and the same run stopped after its first epoch's checkpoint
    (its process died before the second's)."""
    base = tmp_path_factory.mktemp("devices")
    assert main([*ARGV, "--results", str(base / "whole")]) == 0
    with dies_after_first_epoch():
        assert main([*ARGV, "--results", str(base / "stopped")]) == 1
    return base


def resumed_copy(runs, tmp_path, change):
    results_dir = tmp_path / "results"
    shutil.copytree(runs / "stopped", results_dir)
    rewrite_checkpoint(the_run(results_dir), change)
    assert main([*ARGV, "--results", str(results_dir)]) == 0
    return the_run(results_dir)


def test_a_cuda_generator_state_is_refused_by_a_cpu_generator():
    """What made GPU checkpoints unusable on a CPU, and what the rule below works around."""
    with pytest.raises(RuntimeError, match="size 5056 but found the input RNG state size to be 16"):
        torch.Generator().set_state(cuda_generator_state(1, 0))


def test_a_checkpoint_from_a_gpu_resumes_on_the_cpu_with_streams_restarted(runs, tmp_path, capsys):
    run_dir = resumed_copy(runs, tmp_path, as_if_written_on_a_gpu)
    log = (run_dir / "run.log").read_text()
    assert log.count("checkpoint written on cuda, resumed on cpu: its random streams restart "
                     "from seed 0 and iteration 3") == 1
    assert load_run(run_dir).complete
    whole = the_run(runs / "whole")
    # epoch 1 is the checkpointed one, epoch 2 drew from the restarted streams
    ours, theirs = (pd.read_csv(d / results.LOSSES_FILE) for d in (run_dir, whole))
    pd.testing.assert_frame_equal(ours[ours.epoch == 1], theirs[theirs.epoch == 1])
    assert not ours[ours.epoch == 2].equals(theirs[theirs.epoch == 2])
    # the rule is deterministic: the same move twice gives the same run
    again = resumed_copy(runs, tmp_path / "again", as_if_written_on_a_gpu)
    for name in (results.LOSSES_FILE, results.METRICS_FILE):
        assert (again / name).read_bytes() == (run_dir / name).read_bytes()
    capsys.readouterr()


def test_the_restarted_streams_are_seeded_by_rule(runs):
    config = RunConfig.from_dict(load_run(the_run(runs / "stopped")).config)
    state = load_checkpoint(the_run(runs / "stopped") / results.CHECKPOINT_FILE, config)
    from bench.run.build import build
    from bench.run.checkpoints import restore_generators, run_generators
    from datasets import DATASETS
    data = DATASETS["mnist"](None, torch.device("cpu")).head(640, 320)
    method, feed = build(config, data, torch.device("cpu"))
    state.generators["pairs"]["device"] = "cuda"  # one stream from elsewhere: all restart
    assert restore_generators(run_generators(method, feed), state.generators, 7, 3) == "cpu, cuda"
    for name, generator in run_generators(method, feed).items():
        expected = torch.Generator().manual_seed(restart_seed(7, name, 3))
        assert torch.equal(generator.get_state(), expected.get_state()), name
    assert len({restart_seed(7, name, 3) for name in STREAMS} | {restart_seed(7, "method", 4)}) == 4


def test_an_older_checkpoint_resumes_exactly_on_its_own_device(runs, tmp_path, capsys):
    run_dir = resumed_copy(runs, tmp_path, lambda state: as_written_before_devices_were_recorded(
        state, lambda record: record["state"]))
    assert "resumed on cpu" not in (run_dir / "run.log").read_text()
    whole = the_run(runs / "whole")
    for name in (results.LOSSES_FILE, results.METRICS_FILE):
        assert (whole / name).read_bytes() == (run_dir / name).read_bytes()
    capsys.readouterr()


def test_an_older_checkpoint_from_a_gpu_resumes_on_the_cpu(runs, tmp_path, capsys):
    run_dir = resumed_copy(runs, tmp_path, lambda state: as_written_before_devices_were_recorded(
        state, lambda record: cuda_generator_state(99, 8)))
    assert "checkpoint written on another kind of device, resumed on cpu" in \
        (run_dir / "run.log").read_text()
    assert load_run(run_dir).complete
    capsys.readouterr()


def test_a_gpu_trained_run_is_loaded_and_evaluated_on_the_cpu(runs, tmp_path, capsys):
    results_dir = tmp_path / "results"
    shutil.copytree(runs / "whole", results_dir)
    run_dir = the_run(results_dir)
    before = load_method(run_dir)
    rewrite_checkpoint(run_dir, as_if_written_on_a_gpu)
    after = load_method(run_dir)
    x = torch.rand(4, 1, 28, 28)
    assert all(torch.equal(a, b) for a, b in zip(before.encode(x), after.encode(x)) if a is not None)
    metrics = (run_dir / results.METRICS_FILE).read_bytes()
    assert main(["evaluate", "--results", str(results_dir), "--evaluations", "probes", "--force",
                 "--device", "cpu"]) == 0
    assert (run_dir / results.METRICS_FILE).read_bytes() == metrics
    capsys.readouterr()


def test_a_trained_run_stopped_in_its_evaluations_keeps_what_was_evaluated(runs, tmp_path, capsys):
    """A time-limited job or a lease may end during the evaluations: the next attempt keeps the
    evaluations already written from the same final state, and computes the missing ones."""
    results_dir = tmp_path / "results"
    shutil.copytree(runs / "whole", results_dir)
    run_dir = the_run(results_dir)
    metrics = (run_dir / results.METRICS_FILE).read_bytes()
    (run_dir / results.STATUS_FILE).unlink()  # stopped after its probes
    written = (run_dir / results.METRICS_FILE).stat().st_mtime_ns
    assert main([*ARGV, "--results", str(results_dir)]) == 0
    assert f"{run_dir.name}: kept probes from an earlier attempt" in (run_dir / "run.log").read_text()
    assert (run_dir / results.METRICS_FILE).stat().st_mtime_ns == written
    (run_dir / results.STATUS_FILE).unlink()  # stopped before its probes
    (run_dir / results.METRICS_FILE).unlink()
    assert main([*ARGV, "--results", str(results_dir)]) == 0
    assert (run_dir / results.METRICS_FILE).read_bytes() == metrics
    capsys.readouterr()
