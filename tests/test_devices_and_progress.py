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
    assert main([*SMOKE, "--device", "cpu", "--results", str(tmp_path)]) == 0
    captured = capsys.readouterr()
    for step in (r"t-SNE of z_mean \(200 points\)", r"t-SNE of z_sample \(200 points\)",
                 "swap grid", "training curves", "probes", "swap"):
        assert re.search(rf"{step}: \d+\.\d s", captured.out), (step, captured.out)
    for bar in ("probe epochs", "decoding swaps", "t-SNE of 200 points"):
        assert bar not in captured.err and bar not in captured.out
