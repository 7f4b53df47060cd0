"""Watching runs: --tensorboard's event files, and every run's run.log (bench/run/monitors.py, bench/run/live.py)."""
import os
import subprocess
import sys

import pandas as pd
import pytest

from bench.cli import main
from bench.run import live, monitors
from bench.store import results
from tests.conftest import REPO

SMOKE = ["run", "--methods", "ccvae", "--dataset", "mnist", "--preset", "smoke", "--device", "cpu"]


def the_run(results_dir):
    (run_dir,) = [p for p in results.runs_dir(results_dir).iterdir() if p.is_dir()]
    return run_dir


def read_events(folder):
    from tensorboard.backend.event_processing.event_accumulator import (IMAGES, SCALARS,
                                                                        EventAccumulator)
    events = EventAccumulator(str(folder), size_guidance={SCALARS: 0, IMAGES: 0})  # 0: keep all
    events.Reload()
    return events


def test_console_log_keeps_the_printed_lines_and_drops_progress_bar_redraws(tmp_path, capsys):
    path = tmp_path / "run.log"
    before = sys.stdout, sys.stderr
    with pytest.raises(RuntimeError):
        with live.ConsoleLog(path) as log:
            print("run one")
            sys.stderr.write("\rone epoch 1/2:  50%\rone epoch 1/2: 100%\r                    \r")
            print("one epoch 1: loss 0.5")
            print("a warning", file=sys.stderr)
            log.note("failed one: it broke")
            sys.stdout.write("an unfinished line")
            raise RuntimeError("it broke")
    assert (sys.stdout, sys.stderr) == before
    printed = capsys.readouterr()
    assert printed.out == "run one\none epoch 1: loss 0.5\nan unfinished line"
    assert "\r" in printed.err and "failed one" not in printed.out + printed.err
    with live.ConsoleLog(path):  # a second start appends
        print("resume one")
    lines = path.read_text().splitlines()
    assert lines[0].startswith("== ") and f"(pid {os.getpid()} on " in lines[0]
    assert lines[1:6] == ["run one", "one epoch 1: loss 0.5", "a warning", "failed one: it broke",
                          "an unfinished line"]
    assert lines[6].startswith("== ") and lines[7:] == ["resume one"]
    capsys.readouterr()


def test_tensorboard_holds_every_curve_and_a_resumed_run_adds_no_duplicate_points(
        tmp_path, capsys, monkeypatch):
    """Epoch 2 is logged, then the process dies before its checkpoint; the rerun resumes from
    epoch 1's checkpoint, logs epoch 2 again, and TensorBoard shows each iteration once."""
    import bench.run.runner
    argv = [*SMOKE, "--epochs", "2", "--tensorboard", "--results", str(tmp_path)]
    original = bench.run.runner.save_checkpoint

    def killed_after_epoch_two(path, config, method, data_state, progress, *monitors):
        if progress.epoch == 3:
            raise RuntimeError("killed before the checkpoint of epoch 2")
        original(path, config, method, data_state, progress, *monitors)
    monkeypatch.setattr(bench.run.runner, "save_checkpoint", killed_after_epoch_two)
    assert main(argv) == 1
    run_dir = the_run(tmp_path)
    assert len(pd.read_csv(run_dir / results.LOSSES_FILE)) == 6  # logged, not checkpointed
    monkeypatch.setattr(bench.run.runner, "save_checkpoint", original)
    assert main(argv) == 0
    assert "resume" in capsys.readouterr().out

    losses = pd.read_csv(run_dir / results.LOSSES_FILE)
    terms = [c for c in losses.columns if c not in ("epoch", "iteration")]
    assert len(losses) == 6 and terms
    events = read_events(run_dir / monitors.TENSORBOARD_DIR)
    scalars = set(events.Tags()["scalars"])
    assert {f"loss/{term}" for term in terms} <= scalars
    for term in terms:
        points = events.Scalars(f"loss/{term}")
        assert [p.step for p in points] == losses.iteration.tolist()
        assert [p.value for p in points] == pytest.approx(losses[term].tolist(), rel=1e-5)
    assert {"lr/autoencoder", "lr/reverse_cycle"} <= scalars
    assert [p.step for p in events.Scalars("lr/autoencoder")] == [1, 4]  # each epoch's first
    metrics = pd.read_csv(run_dir / results.METRICS_FILE)
    for row in metrics.itertuples():
        (point,) = events.Scalars(f"probe/{row.probe}/{row.split}")
        assert point.value == pytest.approx(row.accuracy) and point.step == 6
    assert events.Tags()["images"] == ["swap_grid"]

    log = (run_dir / live.RUN_LOG).read_text()
    assert log.count("\n== ") + log.startswith("== ") == 2
    assert "failed ccvae-" in log and "killed before the checkpoint of epoch 2" in log
    assert "resume ccvae-" in log
    assert log.rstrip().splitlines()[-1].startswith(f"done {run_dir.name}: test accuracy")


def test_without_tensorboard_the_flag_is_one_line_exit_2_and_nothing_is_written(
        tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorboard", None)  # as if not installed
    assert main([*SMOKE, "--tensorboard", "--results", str(tmp_path / "results")]) == 2
    captured = capsys.readouterr()
    assert captured.err == ("bench: error: --tensorboard needs the tensorboard package: "
                            "pip install tensorboard\n")
    assert not (tmp_path / "results").exists()


def test_a_child_runs_argv_passes_tensorboard_on(tmp_path):
    from bench.cli import parser
    from bench.spec.config import resolve
    from bench.run.options import RunOptions
    config = resolve("ccvae", "mnist", "smoke", 0, {})
    with_flag = parser().parse_args(list(RunOptions(tmp_path, device_request="cpu",
                                                    tensorboard=True).child_argv(config, {})))
    without = parser().parse_args(list(RunOptions(tmp_path, device_request="cpu").child_argv(config, {})))
    assert with_flag.tensorboard and not without.tensorboard


def test_jobs_children_write_run_logs_and_tensorboard(tmp_path):
    out = subprocess.run([sys.executable, "-m", "bench", *SMOKE, "--seeds", "0,1", "--jobs", "2",
                          "--tensorboard", "--results", str(tmp_path)],
                         cwd=REPO, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    run_dirs = sorted(p for p in results.runs_dir(tmp_path).iterdir() if p.is_dir())
    assert len(run_dirs) == 2
    for run_dir in run_dirs:
        log = (run_dir / live.RUN_LOG).read_text()
        assert f"run {run_dir.name}" in log and f"done {run_dir.name}: test accuracy" in log
        assert list((run_dir / monitors.TENSORBOARD_DIR).glob("events.out.tfevents.*"))


class Recorder(monitors.Monitor):
    """A user's monitor, as one would write an MLflow logger: it records what it is told."""
    seen: list = []

    def __init__(self, start: monitors.RunStart):
        self.start = start
        Recorder.seen.append(("start", start.config.run_id, start.epochs,
                              start.iterations_per_epoch, start.logged_rows))

    def on_train_start(self):
        Recorder.seen.append(("train",))

    def on_epoch_end(self, end):
        Recorder.seen.append(("epoch", end.epoch, tuple(end.names), tuple(end.losses.shape)))

    def on_evaluated(self, evaluated):
        Recorder.seen.append(("evaluated", evaluated.step,
                              sorted((row["probe"], row["split"]) for row in evaluated.rows("probes"))))

    def on_image(self, name, path, step):
        Recorder.seen.append(("image", name, path.is_file(), step))

    def close(self):
        Recorder.seen.append(("close",))


def test_a_monitor_passed_in_sees_every_epoch_the_probes_and_the_swap_grid(tmp_path, mnist):
    import torch

    from bench.spec.config import resolve
    from bench.run.options import RunOptions
    from bench.run.runner import execute
    from bench.run.train import StopOnSignal
    config = resolve("ccvae", "mnist", "smoke", 0, {"epochs": 2})
    options = RunOptions(tmp_path, device=torch.device("cpu"), device_request="cpu",
                         monitors=(Recorder,))
    Recorder.seen = []
    with StopOnSignal() as stop:
        assert execute(config, mnist, options, stop) == "complete"
    run_dir = results.runs_dir(tmp_path) / config.run_id
    names = tuple(pd.read_csv(run_dir / results.LOSSES_FILE).columns[2:])
    probes = sorted((p, s) for p in ("s", "z_mean", "z_sample") for s in ("train", "test"))
    assert Recorder.seen == [("start", config.run_id, 2, 3, 0),
                             ("train",),
                             ("epoch", 1, names, (3, len(names))),
                             ("epoch", 2, names, (3, len(names))),
                             ("evaluated", 6, probes),
                             ("image", "swap_grid", True, 6),
                             ("close",)]
