"""The command line: errors are one line with exit code 2 and write nothing; runs write their folder."""
import csv
import json
import subprocess
import sys

import pytest
import torch

from bench.cli import main
from bench.cpu_kernels import has_avx2
from bench.store import results
from methods import METHODS
from methods.straightforward import STRAIGHTFORWARD
from methods.ccvae import CycleConsistentVAE
from tests.conftest import REPO

SMOKE = ["run", "--methods", "ccvae", "--dataset", "mnist", "--preset", "smoke"]


def run_cli(argv, capsys):
    try:
        code = main(argv)
    except SystemExit as exit_:  # argparse's own errors
        code = exit_.code
    captured = capsys.readouterr()
    return code, captured.err


BAD_INPUT = {
    "unknown method": (["--methods", "nope"], "unknown method 'nope' (valid: ccvae"),
    "unknown dataset": (["--dataset", "imagenet"], "unknown dataset 'imagenet' (valid: mnist"),
    "all datasets": (["--dataset", "all"], "unknown dataset 'all' (valid: mnist"),
    "negative seed": (["--seeds", "-1"], "--seeds must be non-negative"),
    "seed not a number": (["--seeds", "a,b"], "expected comma-separated integers"),
    "zero epochs": (["--epochs", "0"], "--epochs must be positive"),
    "zero latent size": (["--z-dim", "0"], "latent sizes must be positive"),
    "mismatched sizes": (["--z-dim", "16,64", "--s-dim", "1,2,3"], "give the same number"),
    "unknown setting": (["--set", "colour=red"], "unknown setting 'colour'"),
    "badly typed setting": (["--set", "lr=fast"], "--set lr=fast: expected a value like 0.0001"),
    "negative weight": (["--set", "kl_weight=-1"], "invalid kl_weight -1.0"),
    "too many --jobs": (["--jobs", "100000"], "--jobs 100000: this machine has"),
    "too many t-SNE workers": (["--together", "", "--tsne-workers", "100000"],
                               "--tsne-workers 100000: this machine has"),
    "GVAE with an s per member": (["--methods", "gvae", "--set", "s_sample=member"],
                                  "gvae samples s once per group, as Hosoya's model does"),
    "ML-VAE's unknown s sampling": (["--methods", "mlvae", "--set", "s_sample=image"],
                                    "s_sample must be 'group' or 'member', got 'image'"),
    "unknown preset": (["--preset", "huge"], "invalid choice: 'huge'"),
    "unknown evaluation": (["--evaluations", "probes,nope"], "unknown evaluation 'nope' (valid: code_leakage"),
    "method twice": (["--methods", "ccvae,ccvae"], "method listed twice"),
    "paper sizes and z-dim": (["--paper-sizes", "", "--z-dim", "8"], "give it or --z-dim/--s-dim, not both"),
    "CUDA graphs on the CPU": (["--device", "cpu", "--cuda-graphs", ""],
                               "--cuda-graphs: only for a CUDA device"),
    "TF32 on the CPU": (["--device", "cpu", "--tf32", ""], "--tf32: only for a CUDA device"),
    "sprites absent": (["--dataset", "sprites", "--data-dir", "/nonexistent-root"],
                       "Sprites data not found: looked in /nonexistent-root/sprites; download nips2015"),
    "smallnorb absent": (["--dataset", "smallnorb", "--data-dir", "/nonexistent-root"],
                         "smallNORB data not found: looked in /nonexistent-root/smallnorb"),
}


@pytest.mark.parametrize("extra, message", BAD_INPUT.values(), ids=BAD_INPUT.keys())
def test_bad_input_is_one_line_exit_2_and_writes_nothing(extra, message, tmp_path, capsys):
    argv = [*SMOKE, "--results", str(tmp_path / "results")]
    for flag, value in zip(extra[::2], extra[1::2]):
        if flag in argv:
            argv[argv.index(flag) + 1] = value
        else:
            argv += [flag, value] if value else [flag]  # "": a switch
    code, err = run_cli(argv, capsys)
    assert code == 2
    assert message in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "results").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a GPU")
def test_cuda_without_a_gpu_is_refused(tmp_path, capsys):
    code, err = run_cli([*SMOKE, "--device", "cuda", "--results", str(tmp_path)], capsys)
    assert code == 2 and "no CUDA device" in err


@pytest.mark.parametrize("via", ["flag", "environment"])
def test_corrupt_data_is_named_and_nothing_written(via, tmp_path, capsys, monkeypatch):
    raw = tmp_path / "data" / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for name in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
                 "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):
        (raw / name).write_bytes(b"\x00\x00\x08\x01" + b"\x00" * 100)
    argv = [*SMOKE, "--results", str(tmp_path / "results")]
    if via == "flag":
        argv += ["--data-dir", str(tmp_path / "data")]
    else:
        monkeypatch.setenv("BENCH_DATA_DIR", str(tmp_path / "data"))
    code, err = run_cli(argv, capsys)
    assert code == 2 and "MNIST file corrupt" in err and "-idx" in err
    assert not (tmp_path / "results").exists()


def test_the_module_entry_point_prints_no_traceback(tmp_path):
    out = subprocess.run([sys.executable, "-m", "bench", *SMOKE, "--methods", "bogus",
                          "--results", str(tmp_path / "r")], cwd=REPO, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 2
    assert out.stderr.strip() == f"bench: error: unknown method 'bogus' (valid: {', '.join(METHODS)}, or all)"


def read_metrics(results_dir):
    (path,) = results.runs_dir(results_dir).glob(f"*/{results.METRICS_FILE}")
    with path.open() as f:
        return list(csv.DictReader(f))


def test_smoke_run_writes_its_folder_skips_a_rerun_and_reports(tmp_path):
    results_dir = tmp_path / "results"
    command = [sys.executable, "-m", "bench", *SMOKE, "--results", str(results_dir)]
    first = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert first.returncode == 0, first.stderr
    (run_dir,) = results.runs_dir(results_dir).iterdir()
    for name in ("config.json", "env.json", "losses.csv", "checkpoint.pt", "metrics.csv"):
        assert (run_dir / name).is_file(), name
    assert json.loads((run_dir / "status.json").read_text())["state"] == "complete"
    config = json.loads((run_dir / "config.json").read_text())
    assert config["method"] == "ccvae" and config["seed"] == 0
    assert config["method_config"]["reverse_cycle_weight"] == 10.0
    env = json.loads((run_dir / "env.json").read_text())
    assert env["libraries"]["torch"] == torch.__version__.split("+")[0] and "git" in env
    # `python -m bench` asked for the AVX2 kernels before torch loaded (bench/cpu_kernels.py)
    assert env["cpu_kernels"] == ("AVX2" if has_avx2() else torch.backends.cpu.get_cpu_capability())
    assert len(env["numerics"]) == 8

    rows = read_metrics(results_dir)
    assert list(rows[0]) == list(results.METRICS_COLUMNS)
    assert {(r["probe"], r["split"]) for r in rows} == {
        (p, s) for p in ("s", "z_mean", "z_sample") for s in ("train", "test")}
    assert all(0 <= float(r["accuracy"]) <= 100 and r["run_id"] == run_dir.name for r in rows)
    losses = (run_dir / "losses.csv").read_text().splitlines()
    assert losses[0] == "epoch,iteration,reconstruction,kl,forward_total,reverse_cycle"
    assert len(losses) == 1 + 3  # the smoke preset: one epoch of three iterations

    before = (run_dir / "metrics.csv").stat().st_mtime_ns
    second = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert second.returncode == 0 and "already complete" in second.stdout + second.stderr
    assert (run_dir / "metrics.csv").stat().st_mtime_ns == before

    report = subprocess.run([sys.executable, "-m", "bench", "report", "--results", str(results_dir)],
                            cwd=REPO, capture_output=True, text=True, timeout=120)
    assert report.returncode == 0, report.stderr
    text = (results_dir / "report.md").read_text()
    assert "| ccvae | 16 / 16 | 1 |" in text and "paper 98.35" in text


def test_a_run_computes_the_evaluations_it_is_asked_for_and_is_complete_with_them(tmp_path, capsys):
    """--evaluations (the campaign's runs published without figures leave the t-SNE out): those
    alone are computed and recorded, and the run is complete; bench evaluate adds the others."""
    directory = tmp_path / "results"
    assert run_cli([*SMOKE, "--device", "cpu", "--evaluations", "swap,probes",
                    "--results", str(directory)], capsys)[0] == 0
    (run_dir,) = results.runs_dir(directory).iterdir()
    assert results.is_complete(run_dir)
    assert set(json.loads((run_dir / results.EVALUATION_FILE).read_text())) == {"probes", "swap"}
    assert (run_dir / "metrics.csv").is_file() and not (run_dir / "tsne.csv").exists()
    assert main(["evaluate", "--results", str(directory), "--device", "cpu"]) == 0
    assert set(json.loads((run_dir / results.EVALUATION_FILE).read_text())) == {
        "probes", "z_usage", "swap", "swap_grid", "tsne"}  # every default one MNIST takes
    assert (run_dir / "tsne.csv").is_file()


def test_same_seed_gives_the_same_table_on_cpu(tmp_path, capsys):
    for name in ("a", "b"):
        assert run_cli([*SMOKE, "--device", "cpu", "--results", str(tmp_path / name)], capsys)[0] == 0
    assert read_metrics(tmp_path / "a") == read_metrics(tmp_path / "b")


def test_a_non_finite_loss_stops_the_run_and_names_it(tmp_path, capsys, monkeypatch):
    original = CycleConsistentVAE.train_step
    calls = []

    def failing(self, data):
        losses = original(self, data)
        calls.append(1)
        if len(calls) == 2:
            losses["kl"] = torch.tensor(float("nan"))
        return losses

    monkeypatch.setattr(CycleConsistentVAE, "train_step", failing)
    code, err = run_cli([*SMOKE, "--results", str(tmp_path)], capsys)
    assert code == 1
    assert "ccvae: loss term 'kl' is nan at iteration 2 (epoch 1)" in err
    (run_dir,) = results.runs_dir(tmp_path).iterdir()
    status = json.loads((run_dir / "status.json").read_text())
    assert status["state"] == "failed" and "iteration 2" in status["reason"]
    assert not (run_dir / "metrics.csv").exists()


def test_a_missing_figure_library_is_refused_before_training(tmp_path, capsys, monkeypatch):
    import importlib.util
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "openTSNE" else real(name, *a))
    code, err = run_cli([*SMOKE, "--results", str(tmp_path / "results")], capsys)
    assert code == 2 and "missing openTSNE" in err
    assert not (tmp_path / "results").exists()


def test_speed_reports_every_method_side_by_side(capsys):
    code = main(["speed", "--methods", "all", "--device", "cpu", "--iterations", "2", "--warmup", "1",
                 "--compare"])
    out = capsys.readouterr().out
    assert code == 0
    rows = {line.split()[0]: line.split() for line in out.splitlines() if line.split()[:1]
            and line.split()[0] in METHODS}
    assert set(rows) == set(METHODS)
    for name, row in rows.items():
        if name not in STRAIGHTFORWARD:  # timed alone, and said so in one line
            assert row[-1] == "-" and f"{name}: no straightforward twin" in out
            continue
        ms, straightforward_ms, speed_up = float(row[1]), float(row[-2]), float(row[-1].rstrip("x"))
        assert ms > 0 and straightforward_ms > 0
        assert speed_up == pytest.approx(straightforward_ms / ms, rel=0.06)
    assert "latent probes (3 side by side" in out and "min per run" in out and "one by one" in out
