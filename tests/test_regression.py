"""CI's regression check: train the `ci` preset of every method on MNIST and hold it to the
committed baseline results/baselines/mnist-ci.csv (about two minutes on a 2-core CPU)."""
import shutil
import subprocess
import sys

import pytest

from bench import check, results
from methods import METHODS
from tests.conftest import REPO


def bench(*argv, timeout=900):
    return subprocess.run([sys.executable, "-m", "bench", *argv], cwd=REPO, capture_output=True,
                          text=True, timeout=timeout)


@pytest.fixture(scope="module")
def ci_results(tmp_path_factory):
    directory = tmp_path_factory.mktemp("ci") / "results"
    out = bench("run", "--methods", "all", "--dataset", "mnist", "--preset", "ci", "--seeds", "0",
                "--device", "cpu", "--results", str(directory))
    assert out.returncode == 0, out.stderr[-2000:]
    return directory


def test_the_baseline_covers_every_method():
    baseline = check.read_baseline(check.baseline_path("mnist", "ci"))
    assert set(baseline.method) == set(METHODS)
    assert (baseline.seeds >= 3).all()


def test_main_passes_the_committed_baseline(ci_results):
    out = bench("check", "--results", str(ci_results))
    assert out.returncode == 0, out.stdout + out.stderr
    assert "check: pass" in out.stdout


def test_a_degraded_method_fails_the_check(ci_results, tmp_path):
    """The cycle-consistent VAE without its KL term: its sampled z leaks the digit."""
    degraded = tmp_path / "results"
    for run_dir in results.runs_dir(ci_results).iterdir():
        if not run_dir.name.startswith("ccvae-"):
            shutil.copytree(run_dir, results.runs_dir(degraded) / run_dir.name)
    out = bench("run", "--methods", "ccvae", "--dataset", "mnist", "--preset", "ci", "--seeds", "0",
                "--device", "cpu", "--set", "kl_weight=0", "--results", str(degraded))
    assert out.returncode == 0, out.stderr[-2000:]
    out = bench("check", "--results", str(degraded))
    assert out.returncode == 1
    worse = {tuple(line.split()[:4]) for line in out.stdout.splitlines() if line.endswith("WORSE")}
    assert ("ccvae", "16/16", "z_sample", "test") in worse
    assert all(method == "ccvae" for method, *_ in worse)
