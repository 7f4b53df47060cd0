"""--device cuda:N and mps, and progress on long steps (bars on a terminal, one timed line each in
a log)."""
import argparse
import re

import numpy as np
import pytest
import torch

from bench import progress
from bench.cli import main
from bench.cli.arguments import apply_gpu_options
from bench.cli.arguments import UsageError
from bench.evaluations import tsne_fit as tsne

SMOKE = ["run", "--methods", "ccvae", "--dataset", "mnist", "--preset", "smoke"]


def one_line_error(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("bench: error: "), err
    return lines[0]


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
@pytest.mark.parametrize("device", ["cuda", "cuda:0", "cuda:3"])
def test_a_cuda_device_without_cuda_is_one_line(device, tmp_path, capsys):
    assert main([*SMOKE, "--device", device, "--results", str(tmp_path / "r")]) == 2
    assert f"--device {device}: no CUDA device" in one_line_error(capsys.readouterr().err)
    assert not (tmp_path / "r").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_speed_refuses_a_missing_device_too(capsys):
    assert main(["speed", "--methods", "ccvae", "--device", "cuda:1"]) == 2
    assert "no CUDA device" in one_line_error(capsys.readouterr().err)


def test_mps_without_mps_is_one_line(tmp_path, capsys):
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        pytest.skip("this machine has MPS")
    assert main([*SMOKE, "--device", "mps", "--results", str(tmp_path / "r")]) == 2
    assert "--device mps: Apple's MPS backend is not available" in one_line_error(
        capsys.readouterr().err)
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("device", ["gpu", "cuda:", "cuda:x", "cpu:0", "MPS"])
def test_a_device_name_that_is_not_one_is_refused_by_the_parser(device, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([*SMOKE, "--device", device])
    assert exit_info.value.code == 2
    assert "expected auto, cpu, cuda, cuda:N or mps" in capsys.readouterr().err


@pytest.mark.parametrize("device", ["cpu", "mps"])
def test_cuda_graphs_and_tf32_are_refused_off_cuda(device):
    args = argparse.Namespace(cuda_graphs=True, tf32=False, device=device)
    with pytest.raises(UsageError, match="only for a CUDA device"):
        apply_gpu_options(args, torch.device(device))
    args = argparse.Namespace(cuda_graphs=False, tf32=True, device=f"{device}")
    with pytest.raises(UsageError, match="--tf32: only for a CUDA device"):
        apply_gpu_options(args, None)  # SLURM: judged from the flag


def test_a_slurm_cuda_device_needs_a_gpu_per_job(tmp_path, capsys):
    assert main([*SMOKE, "--device", "cuda:1", "--executor", "slurm", "--results",
                 str(tmp_path / "r")]) == 2
    assert "--device cuda:1 with --executor slurm needs --gpus-per-job 1" in capsys.readouterr().err


def test_bars_are_drawn_on_a_terminal_only(monkeypatch, capsys):
    monkeypatch.setattr(progress, "interactive", lambda: False)
    assert list(progress.bar(range(3), "quiet steps")) == [0, 1, 2]
    assert "quiet steps" not in capsys.readouterr().err
    monkeypatch.setattr(progress, "interactive", lambda: True)
    assert list(progress.bar(range(3), "drawn steps")) == [0, 1, 2]
    assert "drawn steps" in capsys.readouterr().err


def test_a_step_says_its_time():
    said = []
    with progress.step("t-SNE of z", say=said.append):
        pass
    assert re.fullmatch(r"t-SNE of z: \d+\.\d s", said[0])


def test_watching_the_tsne_does_not_change_it(monkeypatch, capsys):
    points = np.random.default_rng(0).normal(size=(120, 8)).astype(np.float32)
    monkeypatch.setattr(progress, "interactive", lambda: False)
    quiet = tsne.tsne_embedding(points, seed=3, n_jobs=1)
    monkeypatch.setattr(progress, "interactive", lambda: True)
    watched = tsne.tsne_embedding(points, seed=3, n_jobs=1)
    assert "t-SNE of 120 points" in capsys.readouterr().err  # the bar was drawn
    assert np.array_equal(quiet, watched)


def test_a_run_in_a_log_gets_one_timed_line_per_long_step_and_no_bars(tmp_path, capsys):
    """Where the output is not a terminal: no bars; each evaluation says when it starts and how
    long it took, the probes how far their epochs are, and run.log holds the same lines."""
    assert main([*SMOKE, "--device", "cpu", "--results", str(tmp_path)]) == 0
    captured = capsys.readouterr()
    for step in (r"t-SNE of z_mean \(200 points\)", r"t-SNE of z_sample \(200 points\)",
                 "swap_grid figure", "training curves", "probes", "swap", "z_usage", "tsne"):
        assert re.search(rf"{step}: \d+\.\d s", captured.out), (step, captured.out)
    assert "swap grid" not in captured.out  # one name for one evaluation: swap_grid
    for bar in ("decoding swaps", "t-SNE of 200 points", "it/s", "%|"):
        assert bar not in captured.err and bar not in captured.out
    (run_dir,) = (tmp_path / "runs").iterdir()
    log = (run_dir / "run.log").read_text()
    evaluations = re.findall(r"(\S+): started \(evaluation (\d+) of (\d+)\)", log)
    names = [name.split()[-1] for name, _, _ in evaluations]
    assert names[:2] == ["probes", "z_usage"] and names[-1] == "tsne", log
    assert [int(n) for _, n, _ in evaluations] == list(range(1, len(names) + 1))
    for name in names:  # each evaluation: a line as it starts, then one with its time
        timed = re.search(rf"{run_dir.name} {name}: \d+\.\d s", log)
        assert timed and log.index(f"{run_dir.name} {name}: started") < timed.start(), name
    assert re.search(r"^probe epochs 1/1: \d+\.\d s$", log, re.M), log  # the probes' epochs


def test_a_logged_bar_says_how_far_it_is_at_each_tenth(monkeypatch, capsys):
    monkeypatch.setattr(progress, "interactive", lambda: False)
    assert list(progress.logged_bar(range(100), "probe epochs")) == list(range(100))
    lines = capsys.readouterr().out.splitlines()
    assert [line.partition(":")[0] for line in lines] == \
        [f"probe epochs {k}/100" for k in range(10, 101, 10)]
    assert all(re.fullmatch(r"probe epochs \d+/100: \d+\.\d s", line) for line in lines)
    assert list(progress.logged_bar(iter("abc"), "blocks", total=3)) == ["a", "b", "c"]
    assert [line.partition(":")[0] for line in capsys.readouterr().out.splitlines()] == \
        ["blocks 1/3", "blocks 2/3", "blocks 3/3"]


def test_on_a_terminal_progress_lines_go_to_the_runs_log_only(monkeypatch, capsys, tmp_path):
    """A terminal shows the bar; the run's log gets the lines instead (and no bar)."""
    from bench.run import live
    monkeypatch.setattr(progress, "interactive", lambda: True)
    with live.ConsoleLog(tmp_path / live.RUN_LOG):
        assert list(progress.logged_bar(range(2), "probe epochs")) == [0, 1]
        progress.note("ccvae-mnist-x swap: started")
    assert progress.log_to(None) is None  # the log's sink is gone with it
    captured = capsys.readouterr()
    assert "probe epochs 2/2:" not in captured.out + captured.err
    assert "probe epochs" in captured.err  # the bar
    lines = (tmp_path / live.RUN_LOG).read_text().splitlines()
    assert lines[0].startswith("== ") and lines[0].endswith(")") and " bench run (pid " in lines[0]
    assert [line.partition(":")[0] for line in lines[1:]] == \
        ["probe epochs 1/2", "probe epochs 2/2", "ccvae-mnist-x swap"]
