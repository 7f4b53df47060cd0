"""Runs trained together in one process (`bench run --together`, bench/together.py): the same
numbers as one by one, every run resumed after SIGTERM and SIGKILL, a failing run failing alone,
and `bench speed --together`."""
import json
import re
import signal
import subprocess
import sys
import time

import pytest
import torch

from bench import results
from bench.checkpoints import RunLock
from bench.cli import main
from bench.evaluations import EVALUATIONS
from tests.conftest import REPO
from methods import METHODS, register
from methods.ccvae import CycleConsistentVAE

SMOKE = ["run", "--dataset", "mnist", "--preset", "smoke", "--device", "cpu"]
COMPARED = (results.LOSSES_FILE, results.METRICS_FILE)

# The runs' training and probes only: the figures and the other evaluations take most of a smoke
# run's time and do not depend on how the runs were trained.
FAST = """
import sys
import bench.runner as runner
import bench.together as together
from bench.evaluations import EVALUATIONS
runner.write_figures = lambda *args, **kwargs: None
runner.in_order = together.in_order = lambda names=None: [EVALUATIONS["probes"]]
from bench.cli import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.fixture
def fast_runs(monkeypatch):
    """The probes of every run and lord's code probes only."""
    import bench.runner as runner
    import bench.together as together
    monkeypatch.setattr(runner, "write_figures", lambda *args, **kwargs: None)
    chosen = lambda names=None: [EVALUATIONS["probes"], EVALUATIONS["code_leakage"]]  # noqa: E731
    monkeypatch.setattr(runner, "in_order", chosen)
    monkeypatch.setattr(together, "in_order", chosen)


def run_dirs(results_dir):
    return {path.name: path for path in results.runs_dir(results_dir).iterdir()}


def assert_same_runs(expected_dir, got_dir):
    expected, got = run_dirs(expected_dir), run_dirs(got_dir)
    assert set(got) == set(expected)
    for run_id, folder in expected.items():
        assert results.is_complete(got[run_id]), run_id
        for name in COMPARED:
            assert (got[run_id] / name).read_bytes() == (folder / name).read_bytes(), (run_id, name)


def test_runs_trained_together_equal_runs_trained_one_by_one(tmp_path, fast_runs, capsys):
    """Three seeds of every method, each with two epochs: bit for bit on the CPU."""
    argv = [*SMOKE, "--methods", "all", "--seeds", "0,1,2", "--epochs", "2"]
    assert main([*argv, "--results", str(tmp_path / "alone")]) == 0
    assert main([*argv, "--together", "--results", str(tmp_path / "together")]) == 0
    out = capsys.readouterr().out
    assert f"training {3 * len(METHODS)} runs together on cpu" in out
    # the probes of all runs fitted side by side (one stack: every code is 16 wide), and lord's
    assert f"probes of {3 * len(METHODS)} runs together" in out
    assert "code_leakage of 3 runs together" in out
    assert_same_runs(tmp_path / "alone", tmp_path / "together")
    for run_id, folder in run_dirs(tmp_path / "together").items():
        assert json.loads((folder / results.ENV_FILE).read_text())["together"] is True
        log = (folder / "run.log").read_text()
        assert f"run {folder.name}" in log and log.count(" epoch ") == log.count(f"{folder.name} epoch ")
        assert f"{run_id} probes: " in log and "computed with the runs trained together" in log
        leakage = folder / "code_leakage.csv"
        assert leakage.is_file() == run_id.startswith("lord")
        if leakage.is_file():
            alone = tmp_path / "alone" / folder.relative_to(tmp_path / "together") / "code_leakage.csv"
            assert leakage.read_bytes() == alone.read_bytes()
    for folder in run_dirs(tmp_path / "alone").values():
        assert json.loads((folder / results.ENV_FILE).read_text())["together"] is False


@pytest.fixture
def nan_method():
    """A registered method (the cycle-consistent VAE) whose losses turn NaN at its third step."""
    class NaNAtThirdStep(CycleConsistentVAE):
        name = "nan-at-third-step"

        def train_step(self, data):
            losses = super().train_step(data)
            self.steps = getattr(self, "steps", 0) + 1
            return {k: v * float("nan") for k, v in losses.items()} if self.steps >= 3 else losses
    register(NaNAtThirdStep)
    try:
        yield NaNAtThirdStep.name
    finally:
        METHODS.pop(NaNAtThirdStep.name, None)


def test_a_run_that_fails_fails_alone(tmp_path, fast_runs, nan_method, capsys):
    argv = [*SMOKE, "--seeds", "0", "--epochs", "2"]
    assert main([*argv, "--methods", f"ccvae,{nan_method},szabo", "--together",
                 "--results", str(tmp_path / "together")]) == 1
    err = capsys.readouterr().err
    assert "1 of 3 runs failed" in err and f"run {nan_method}-mnist" in err
    assert main([*argv, "--methods", "ccvae,szabo", "--results", str(tmp_path / "alone")]) == 0
    runs = run_dirs(tmp_path / "together")
    (failed,) = [folder for name, folder in runs.items() if name.startswith(nan_method)]
    status = json.loads((failed / results.STATUS_FILE).read_text())
    assert status["state"] == results.FAILED and "nan" in status["reason"].lower()
    for name, folder in run_dirs(tmp_path / "alone").items():
        for file in COMPARED:
            assert (runs[name] / file).read_bytes() == (folder / file).read_bytes(), (name, file)


def start(argv):
    return subprocess.Popen([sys.executable, "-c", FAST, *argv], cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def wait_for(condition, process, seconds=180):
    deadline = time.monotonic() + seconds
    while not condition():
        assert process.poll() is None, f"exited {process.returncode}: {process.stderr.read()}"
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_sigterm_and_sigkill_during_a_together_run_resume_every_run(tmp_path, fast_runs):
    argv = [*SMOKE, "--methods", "ccvae,mathieu,lord", "--seeds", "0", "--epochs", "3",
            "--set", "iterations_per_epoch=25"]
    together = tmp_path / "together"
    command = [*argv, "--together", "--results", str(together)]

    def folders():
        return list(run_dirs(together).values()) if results.runs_dir(together).is_dir() else []

    def every_run_checkpointed():
        found = folders()
        return len(found) == 3 and all((f / results.CHECKPOINT_FILE).is_file() for f in found)

    # SIGTERM once every run has checkpointed its first epoch: each checkpoints where it stands.
    first = start(command)
    wait_for(every_run_checkpointed, first)
    first.send_signal(signal.SIGTERM)
    assert first.wait(timeout=120) == 128 + signal.SIGTERM
    assert all("interrupted (SIGTERM)" in (f / "run.log").read_text() for f in folders())
    rows = {f.name: len((f / results.LOSSES_FILE).read_text().splitlines()) for f in folders()}

    # SIGKILL once the rerun has logged another epoch: nothing is checkpointed on the way out.
    second = start(command)
    wait_for(lambda: any(len((f / results.LOSSES_FILE).read_text().splitlines()) > rows[f.name]
                         for f in folders()), second)
    second.kill()
    assert second.wait(timeout=60) == -signal.SIGKILL
    assert not all(results.is_complete(f) for f in folders())

    third = start(command)
    assert third.wait(timeout=300) == 0, third.stderr.read()
    assert main([*argv, "--results", str(tmp_path / "alone")]) == 0
    assert_same_runs(tmp_path / "alone", together)
    for folder in folders():
        lock = RunLock(folder)
        assert lock.acquire(), folder.name
        lock.release()
        assert not list(folder.glob(f".*{results.TEMPORARY_SUFFIX}"))


def test_tsne_in_worker_processes_is_the_tsne_of_the_runs_own_process(tmp_path, monkeypatch,
                                                                        capsys):
    """--tsne-workers: each run's t-SNE computed in a worker process while the others train is,
    with as many threads, the one computed in the run's own process; the workers end with the
    command."""
    import multiprocessing
    import bench.runner as runner
    from bench import tsne_pool
    monkeypatch.setattr(runner, "in_order", lambda names=None: [EVALUATIONS["probes"]])
    monkeypatch.setattr(tsne_pool, "threads_per_worker", lambda workers: torch.get_num_threads())
    embed, calls = tsne_pool.TsnePool._embed, []

    def first_worker_fails(pool, points, seed):  # that embedding is then computed in the process
        calls.append(seed)
        if len(calls) == 1:
            raise RuntimeError("t-SNE worker exited with -9")
        return embed(pool, points, seed)

    monkeypatch.setattr(tsne_pool.TsnePool, "_embed", first_worker_fails)
    # lord trains for 2 + 2 epochs, ccvae for 2: ccvae's t-SNE starts while lord trains
    argv = [*SMOKE, "--methods", "ccvae,lord", "--seeds", "0", "--epochs", "2"]
    assert main([*argv, "--results", str(tmp_path / "alone")]) == 0
    capsys.readouterr()
    assert main([*argv, "--together", "--tsne-workers", "2",
                 "--results", str(tmp_path / "together")]) == 0
    out = capsys.readouterr().out
    assert "t-SNE in 2 worker processes" in out and len(calls) == 3  # ccvae 2 codes, lord 1
    assert out.count("the worker failed (RuntimeError: t-SNE worker exited with -9); "
                     "computing it here") == 1
    together = run_dirs(tmp_path / "together")
    for run_id, folder in run_dirs(tmp_path / "alone").items():
        for name in (*COMPARED, results.TSNE_FILE, results.FIGURES_FILE):
            assert (together[run_id] / name).read_bytes() == (folder / name).read_bytes(), (run_id, name)
        assert "from a worker process" in (together[run_id] / "run.log").read_text()
    deadline = time.monotonic() + 30
    while multiprocessing.active_children() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not multiprocessing.active_children()


@pytest.mark.parametrize("argv, message", [
    (["--together", "--jobs", "2"], "--together trains the runs in this process"),
    (["--together", "--executor", "slurm"], "--together trains the runs in this process"),
    (["--tsne-workers", "-1"], "--tsne-workers must be 0 or more, got -1"),
    (["--tsne-workers", "2", "--no-together"], "--tsne-workers is for runs trained together"),
    (["--tsne-workers", "2", "--jobs", "2"], "--tsne-workers is for runs trained together"),
])
def test_together_refuses_other_executors_in_one_line(argv, message, tmp_path, capsys):
    code = main([*SMOKE, "--methods", "ccvae", "--seeds", "0,1", *argv,
                 "--results", str(tmp_path / "r")])
    err = capsys.readouterr().err
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "r").exists()


def test_speed_together_reports_both_throughputs(capsys):
    assert main(["speed", "--methods", "ccvae,lord", "--together", "2", "--iterations", "2",
                 "--warmup", "1", "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    rows = {line.split()[0]: line.split() for line in out.splitlines()
            if line.split()[:1] and line.split()[0] in METHODS}
    assert set(rows) == {"ccvae", "lord"}
    for row in rows.values():
        alone, together, speed_up = float(row[1]), float(row[2]), float(row[3].rstrip("x"))
        assert alone > 0 and together > 0
        assert speed_up == pytest.approx(together / alone, rel=0.02)
    probes = re.search(r"latent probes of 4 runs \(3 each, 2 iterations, predictions included\): "
                       r"side by side ([\d.]+) ms/iter, run by run ([\d.]+) ms/iter \(([\d.]+)x\)", out)
    assert probes, out
    stacked, run_by_run, ratio = map(float, probes.groups())
    assert stacked > 0 and ratio == pytest.approx(run_by_run / stacked, rel=0.02)
    assert main(["speed", "--methods", "ccvae", "--together", "1", "--device", "cpu"]) == 2


needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@needs_cuda
def test_graphed_runs_on_their_streams_follow_eager_runs_one_by_one(tmp_path, fast_runs):
    """On a GPU (no TF32, deterministic cuDNN): runs trained together as CUDA graphs replayed on
    their own streams give the losses of eager runs trained one by one, up to GPU rounding."""
    import pandas as pd
    deterministic = torch.backends.cudnn.deterministic
    torch.backends.cudnn.deterministic = True
    try:
        argv = ["run", "--dataset", "mnist", "--preset", "smoke", "--device", "cuda",
                "--methods", "ccvae,mathieu,szabo,lord", "--seeds", "0,1", "--epochs", "2",
                "--set", "iterations_per_epoch=20"]
        assert main([*argv, "--no-together", "--results", str(tmp_path / "alone")]) == 0
        assert main([*argv, "--together", "--cuda-graphs", "--results", str(tmp_path / "graphed")]) == 0
    finally:
        torch.backends.cudnn.deterministic = deterministic
    graphed = run_dirs(tmp_path / "graphed")
    for run_id, folder in run_dirs(tmp_path / "alone").items():
        a = pd.read_csv(folder / results.LOSSES_FILE)
        b = pd.read_csv(graphed[run_id] / results.LOSSES_FILE)
        assert list(a.columns) == list(b.columns)
        assert ((a - b).abs() <= 1e-3 * (1 + a.abs())).all().all(), run_id
