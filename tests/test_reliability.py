"""Interrupted, concurrent and failing runs: nothing lost, nothing wrong, failures contained."""
import errno
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from bench.cli import main
from bench.evaluations.tsne import TSNE_FILE
from bench.store import results
from methods.mathieu import Mathieu
from methods.szabo import Szabo
from tests.conftest import REPO

# Long enough to interrupt (about 2 s an epoch on a 2-core CPU), short enough for CI.
RESUMABLE = ["run", "--methods", "ccvae", "--dataset", "mnist", "--preset", "smoke", "--device", "cpu",
             "--epochs", "3", "--set", "iterations_per_epoch=100"]
# The paper's three methods: enough to show that one failure leaves the others complete.
SMOKE_ALL = ["run", "--methods", "ccvae,mathieu,szabo", "--dataset", "mnist", "--preset", "smoke",
             "--device", "cpu"]


def start(argv, results_dir):
    return subprocess.Popen([sys.executable, "-m", "bench", *argv, "--results", str(results_dir)],
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(argv, results_dir):
    out = subprocess.run([sys.executable, "-m", "bench", *argv, "--results", str(results_dir)],
                         cwd=REPO, capture_output=True, text=True, timeout=600)
    return out.returncode, out.stdout + out.stderr


def the_run(results_dir) -> Path:
    (run_dir,) = [p for p in results.runs_dir(results_dir).iterdir() if p.is_dir()]
    return run_dir


def wait_for_rows(results_dir, rows, process, timeout=300):
    """Wait until some run's losses.csv has ``rows`` data rows (the process still running)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        for path in results.runs_dir(results_dir).glob(f"*/{results.LOSSES_FILE}"):
            if len(path.read_text().splitlines()) - 1 >= rows:
                return
        assert process.poll() is None, process.communicate()
        time.sleep(0.05)
    raise AssertionError("the run did not get that far in time")


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    directory = tmp_path_factory.mktemp("whole") / "results"
    code, output = finish(RESUMABLE, directory)
    assert code == 0, output
    return the_run(directory)


def assert_same_run(run_dir, reference):
    assert run_dir.name == reference.name
    for name in (results.METRICS_FILE, results.LOSSES_FILE, TSNE_FILE):
        assert (run_dir / name).read_text() == (reference / name).read_text(), name


def test_a_run_killed_with_sigkill_resumes_to_the_same_numbers(uninterrupted, tmp_path):
    """Killed, the process dies holding the run's lock: the next takes the stale lock over (no
    "busy") and resumes from the checkpoint to the numbers of a run never killed."""
    directory = tmp_path / "results"
    process = start(RESUMABLE, directory)
    wait_for_rows(directory, 100, process)  # the first epoch is logged: its checkpoint follows
    time.sleep(0.3)
    process.kill()
    process.wait()
    assert not results.is_complete(the_run(directory))
    code, output = finish(RESUMABLE, directory)
    assert code == 0, output
    assert "resume" in output and "busy" not in output
    assert_same_run(the_run(directory), uninterrupted)


@pytest.mark.parametrize("signal_number", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_stops_after_a_checkpoint_and_the_run_resumes(signal_number, uninterrupted, tmp_path):
    directory = tmp_path / "results"
    process = start(RESUMABLE, directory)
    wait_for_rows(directory, 100, process)
    time.sleep(0.5)  # into the second epoch
    process.send_signal(signal_number)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 128 + signal_number, stderr
    assert "checkpointed; rerun the same command to resume" in stderr
    state = torch.load(the_run(directory) / results.CHECKPOINT_FILE, weights_only=True)
    assert state["progress"]["epoch"] == 2
    code, output = finish(RESUMABLE, directory)
    assert code == 0, output
    assert "resume" in output and "epoch 2, iteration" in output
    assert_same_run(the_run(directory), uninterrupted)


def test_two_processes_on_one_config_train_it_once(tmp_path):
    directory = tmp_path / "results"
    first, second = start(RESUMABLE, directory), start(RESUMABLE, directory)
    outputs = [p.communicate(timeout=600) for p in (first, second)]
    assert first.returncode == 0 and second.returncode == 0, outputs
    text = "\n".join(out + err for out, err in outputs)
    assert text.count("\nrun ccvae-") + text.startswith("run ccvae-") == 1, text
    assert "busy" in text or "already complete" in text
    losses = (the_run(directory) / results.LOSSES_FILE).read_text().splitlines()
    assert len(losses) == 1 + 300
    assert results.is_complete(the_run(directory))


def test_nan_in_one_method_leaves_the_others_complete(tmp_path, capsys, monkeypatch):
    original = Mathieu.train_step

    def poisoned(self, data):
        losses = original(self, data)
        losses["generator"] = torch.tensor(float("inf"))
        return losses
    monkeypatch.setattr(Mathieu, "train_step", poisoned)
    assert main([*SMOKE_ALL, "--results", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "mathieu: loss term 'generator' is inf at iteration 1" in err
    assert "1 of 3 runs failed" in err
    states = {p.name.split("-")[0]: results.read_status(p)["state"]
              for p in results.runs_dir(tmp_path).iterdir() if p.is_dir()}
    assert states == {"ccvae": "complete", "mathieu": "failed", "szabo": "complete"}


def test_an_exception_in_one_method_is_contained(tmp_path, capsys, monkeypatch):
    def out_of_memory(self, data):
        raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")
    monkeypatch.setattr(Szabo, "train_step", out_of_memory)
    assert main([*SMOKE_ALL, "--results", str(tmp_path)]) == 1
    (failed,) = [p for p in results.runs_dir(tmp_path).iterdir() if p.is_dir() and p.name.startswith("szabo-")]
    reason = results.read_status(failed)["reason"]
    assert reason.startswith("szabo: RuntimeError: CUDA out of memory")
    assert "Traceback" in (failed / "error.log").read_text()
    complete = [p for p in results.runs_dir(tmp_path).iterdir() if p.is_dir() and results.is_complete(p)]
    assert len(complete) == 2
    capsys.readouterr()


def test_a_corrupt_checkpoint_is_named_and_restart_discards_only_that_run(tmp_path, capsys, monkeypatch):
    argv = ["run", "--methods", "ccvae", "--dataset", "mnist", "--preset", "smoke", "--epochs", "2",
            "--results", str(tmp_path)]
    szabo = [argument if argument != "ccvae,mathieu,szabo" else "szabo" for argument in SMOKE_ALL]
    assert main([*szabo, "--results", str(tmp_path)]) == 0
    from methods.ccvae import CycleConsistentVAE
    original, calls = CycleConsistentVAE.train_step, []

    def nan_in_epoch_two(self, data):
        losses = original(self, data)
        calls.append(1)
        if len(calls) > 3:
            losses["kl"] = torch.tensor(float("nan"))
        return losses
    monkeypatch.setattr(CycleConsistentVAE, "train_step", nan_in_epoch_two)
    assert main(argv) == 1  # fails in epoch 2, after epoch 1's checkpoint
    monkeypatch.setattr(CycleConsistentVAE, "train_step", original)
    (run_dir,) = [p for p in results.runs_dir(tmp_path).iterdir() if p.is_dir() and p.name.startswith("ccvae-")]
    checkpoint = run_dir / results.CHECKPOINT_FILE
    checkpoint.write_bytes(checkpoint.read_bytes()[:1000])
    capsys.readouterr()

    assert main(argv) == 1
    err = capsys.readouterr().err
    assert f"corrupt checkpoint {checkpoint}" in err and "--restart" in err
    assert checkpoint.stat().st_size == 1000  # not deleted without --restart

    (other,) = [p for p in results.runs_dir(tmp_path).iterdir() if p.is_dir() and p.name.startswith("szabo-")]
    before = {p.name: p.read_bytes() for p in other.iterdir()}
    assert main([*argv, "--restart"]) == 0
    assert results.is_complete(run_dir)
    assert {p.name: p.read_bytes() for p in other.iterdir()} == before


def test_a_failed_write_leaves_the_previous_file_intact(tmp_path, monkeypatch):
    path = tmp_path / "metrics.csv"
    results.write_text_atomic(path, "previous\n")

    def disk_full(self, *args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(Path, "write_text", disk_full)
    with pytest.raises(OSError, match="No space left"):
        results.write_text_atomic(path, "new\n")
    monkeypatch.undo()
    assert path.read_text() == "previous\n"
    assert os.listdir(tmp_path) == ["metrics.csv"]


def test_status_is_written_last(tmp_path, capsys):
    assert main(["run", "--methods", "ccvae", "--dataset", "mnist", "--preset", "smoke",
                 "--results", str(tmp_path)]) == 0
    run_dir = the_run(tmp_path)
    status_time = (run_dir / results.STATUS_FILE).stat().st_mtime_ns
    for path in run_dir.iterdir():
        assert path.stat().st_mtime_ns <= status_time, path.name
    assert json.loads((run_dir / results.STATUS_FILE).read_text())["state"] == "complete"
    capsys.readouterr()
