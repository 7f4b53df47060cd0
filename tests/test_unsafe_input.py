"""Checkpoints that would run code, unusable paths and disks that refuse writes: one line, the
exit code the CLI documents, nothing written, and the previous files kept."""
import errno
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from bench.cli import main
from bench.run.checkpoints import save_checkpoint
from bench.spec.config import resolve
from bench.run.train import Progress
from bench.store import paths, results
from tests.conftest import REPO

SMOKE = ["run", "--methods", "ccvae", "--dataset", "mnist", "--preset", "smoke", "--device", "cpu"]


class CreatesAFile:
    """Unpickling this calls open(path, "w"): a stand-in for any code a checkpoint could run."""

    def __init__(self, path: Path):
        self.path = str(path)

    def __reduce__(self):
        return open, (self.path, "w")


def crafted_run(results_dir: Path, marker: Path) -> Path:
    """An unfinished smoke run of ccvae whose checkpoint.pt runs code when unpickled."""
    config = resolve("ccvae", "mnist", "smoke", 0, {})
    run_dir = results.runs_dir(results_dir) / config.run_id
    run_dir.mkdir(parents=True)
    torch.save({"config": config.to_dict(), "progress": CreatesAFile(marker), "method": {},
                "data": {}}, run_dir / results.CHECKPOINT_FILE)
    return run_dir


def tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(Path(root).rglob("*"))
            if p.is_file()}


def one_line_error(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("bench: error: "), err
    return lines[0]


def test_the_crafted_checkpoint_runs_code_when_unpickled_unsafely(tmp_path):
    # What the tests below guard against: without weights_only the file would be created.
    marker = tmp_path / "created"
    crafted_run(tmp_path / "results", marker)
    (checkpoint,) = tmp_path.rglob(results.CHECKPOINT_FILE)
    torch.load(checkpoint, weights_only=False)
    assert marker.exists()


def test_resuming_from_a_checkpoint_that_would_run_code_is_refused(tmp_path, capsys):
    marker = tmp_path / "created"
    run_dir = crafted_run(tmp_path / "results", marker)
    before = tree(tmp_path / "results")
    assert main([*SMOKE, "--results", str(tmp_path / "results")]) == 2
    line = one_line_error(capsys.readouterr().err)
    assert f"refused checkpoint {run_dir / results.CHECKPOINT_FILE}" in line and "--restart" in line
    assert not marker.exists()
    after = tree(tmp_path / "results")
    assert {k: v for k, v in after.items() if not k.startswith("locks/")} == before


def test_evaluating_a_run_whose_checkpoint_would_run_code_is_refused(tmp_path, capsys):
    marker = tmp_path / "created"
    run_dir = crafted_run(tmp_path / "results", marker)
    config = resolve("ccvae", "mnist", "smoke", 0, {})
    results.write_json_atomic(run_dir / results.CONFIG_FILE, {**config.to_dict(),
                                                              "run_id": config.run_id})
    results.write_json_atomic(run_dir / results.STATUS_FILE, {"state": results.COMPLETE})
    assert main(["evaluate", "--results", str(tmp_path / "results"), "--device", "cpu"]) == 2
    assert "refused checkpoint" in one_line_error(capsys.readouterr().err)
    assert not marker.exists()
    assert not (run_dir / results.EVALUATION_FILE).exists()


def test_a_refused_checkpoint_in_a_jobs_grid_exits_2(tmp_path):
    marker = tmp_path / "created"
    crafted_run(tmp_path / "results", marker)
    done = subprocess.run([sys.executable, "-m", "bench", *SMOKE, "--jobs", "2", "--results",
                           str(tmp_path / "results")], cwd=REPO, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 2, done.stderr
    assert "refused checkpoint" in done.stdout + done.stderr and not marker.exists()


def test_checkpoints_load_without_unpickling_code(tmp_path, small_mnist):
    from bench.run.build import build
    config = resolve("szabo", "mnist", "smoke", 0, {})
    method, feed = build(config, small_mnist, torch.device("cpu"))
    path = tmp_path / results.CHECKPOINT_FILE
    save_checkpoint(path, config, method, feed, Progress(names=["a"], logged_rows=3))
    state = torch.load(path, weights_only=True)  # raises on anything but tensors and containers
    assert state["progress"]["logged_rows"] == 3


# Unusable paths: (argv, what the one line must say). FILE is a regular file, UNDER a path below it.
@pytest.fixture
def layout(tmp_path):
    (tmp_path / "file").write_text("not a folder\n")
    (tmp_path / "folder").mkdir()
    return tmp_path


PATH_CASES = [
    ([*SMOKE, "--results", "{file}"], "--results {file} is a file, not a folder"),
    ([*SMOKE, "--results", "{file}/results"], "--results {file}/results is under {file}, which is a file"),
    (["status", "--results", "{file}"], "--results {file} is a file"),
    (["report", "--results", "{file}"], "--results {file} is a file"),
    (["report", "--results", "{tmp}/absent"], "--results {tmp}/absent does not exist"),
    (["check", "--results", "{file}"], "--results {file} is a file"),
    (["evaluate", "--results", "{file}"], "--results {file} is a file"),
    ([*SMOKE, "--results", "{tmp}/r", "--data-dir", "{file}"], "--data-dir {file} is a file"),
    ([*SMOKE, "--results", "{tmp}/r", "--data-dir", "{file}/data"], "--data-dir {file}/data is under {file}"),
    (["datasets", "--data-dir", "{file}"], "--data-dir {file} is a file"),
    (["speed", "--methods", "ccvae", "--device", "cpu", "--data-dir", "{file}"], "--data-dir {file} is a file"),
    (["check", "--results", "{folder}", "--baseline", "{folder}"], "--baseline {folder} is a folder, not a file"),
    (["check", "--results", "{folder}", "--baseline", "{tmp}/none.csv"], "--baseline {tmp}/none.csv does not exist"),
    (["check", "--results", "{folder}", "--baseline", "{file}/b.csv", "--update-baseline"], "is under {file}, which is a file"),
    ([*SMOKE, "--results", "{tmp}/r", "--executor", "slurm", "--slurm-config", "{tmp}/none.json"],
     "--slurm-config {tmp}/none.json does not exist"),
    ([*SMOKE, "--results", "{tmp}/r", "--executor", "slurm", "--slurm-config", "{folder}"],
     "--slurm-config {folder} is a folder, not a file"),
]


@pytest.mark.parametrize("argv, says", PATH_CASES, ids=[" ".join(a[:1] + a[-2:]) for a, _ in PATH_CASES])
def test_an_unusable_path_is_one_line_and_writes_nothing(argv, says, layout, capsys):
    fill = {"file": layout / "file", "folder": layout / "folder", "tmp": layout}
    before = tree(layout)
    assert main([a.format(**fill) for a in argv]) == 2
    assert says.format(**fill) in one_line_error(capsys.readouterr().err)
    assert tree(layout) == before and not (layout / "r").exists()


@pytest.mark.parametrize("variable, value, says", [
    ("BENCH_CACHE_DIR", "{file}", "$BENCH_CACHE_DIR {file} is a file"),
    ("BENCH_CACHE_DIR", "{file}/cache", "$BENCH_CACHE_DIR {file}/cache is under {file}"),
    ("BENCH_DATA_DIR", "{file}", "$BENCH_DATA_DIR {file} is a file"),
])
def test_an_unusable_folder_from_the_environment_is_one_line(variable, value, says, layout, capsys,
                                                              monkeypatch):
    fill = {"file": layout / "file"}
    monkeypatch.setenv(variable, value.format(**fill))
    before = tree(layout)
    assert main([*SMOKE, "--results", str(layout / "r")]) == 2
    assert says.format(**fill) in one_line_error(capsys.readouterr().err)
    assert tree(layout) == before and not (layout / "r").exists()


@pytest.fixture
def tmpfs(tmp_path):
    """Mount a tmpfs with the given options on a folder (root only: CI runs as root); skips where
    mounting is not allowed."""
    mounted = []

    def mount(options: str) -> Path:
        point = tmp_path / f"mount{len(mounted)}"
        point.mkdir()
        if os.geteuid() != 0 or shutil.which("mount") is None:
            pytest.skip("mounting a tmpfs needs root")
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(point)],
                              capture_output=True, text=True)
        if done.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
        mounted.append(point)
        return point
    yield mount
    for point in mounted:
        subprocess.run(["umount", str(point)], check=False)


def test_results_on_a_read_only_file_system_is_one_line(tmpfs, capsys):
    read_only = tmpfs("ro,size=1m")
    assert main([*SMOKE, "--results", str(read_only / "results")]) == 2
    assert "cannot write there" in one_line_error(capsys.readouterr().err)
    assert list(read_only.iterdir()) == []


def test_an_unwritable_results_folder_is_one_line(tmp_path, capsys):
    if os.geteuid() == 0:
        pytest.skip("root writes through permissions (the read-only mount test covers it)")
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o555)
    assert main([*SMOKE, "--results", str(locked / "results")]) == 2
    assert "cannot write there" in one_line_error(capsys.readouterr().err)


def test_results_on_a_full_disk_is_one_line(tmpfs, capsys):
    small = tmpfs(f"size={paths.MIN_FREE_BYTES // 2}")
    assert main([*SMOKE, "--results", str(small / "results")]) == 2
    assert "MB free on its disk" in one_line_error(capsys.readouterr().err)
    assert list(small.iterdir()) == []


def test_a_write_the_disk_refuses_fails_the_run_and_keeps_the_previous_checkpoint(
        tmp_path, capsys, monkeypatch):
    argv = [*SMOKE, "--epochs", "2", "--results", str(tmp_path)]
    real_save, saves = torch.save, []

    def full_at_the_second_checkpoint(state, path, *args, **kwargs):
        saves.append(path)
        if len(saves) == 2:
            Path(path).write_bytes(b"half a checkpoint")
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_save(state, path, *args, **kwargs)
    monkeypatch.setattr(torch, "save", full_at_the_second_checkpoint)
    assert main(argv) == 1
    assert "No space left on device" in capsys.readouterr().err
    monkeypatch.setattr(torch, "save", real_save)
    (run_dir,) = results.runs_dir(tmp_path).iterdir()
    state = torch.load(run_dir / results.CHECKPOINT_FILE, weights_only=True)
    assert state["progress"]["epoch"] == 2 and state["progress"]["iteration"] == 0  # epoch 1's
    assert not list(run_dir.glob(f".*{results.TEMPORARY_SUFFIX}"))
    assert main(argv) == 0
    captured = capsys.readouterr()
    assert "resume" in captured.out + captured.err
    assert results.is_complete(run_dir)


def test_a_write_failure_outside_a_run_is_one_line_and_keeps_the_file(tmp_path, capsys, monkeypatch):
    results.write_text_atomic(tmp_path / "report.md", "previous\n")

    def disk_full(self, *args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(Path, "write_text", disk_full)
    assert main(["report", "--results", str(tmp_path)]) == 2
    assert "No space left on device" in one_line_error(capsys.readouterr().err)
    monkeypatch.undo()
    assert (tmp_path / "report.md").read_text() == "previous\n"
    assert not list(tmp_path.glob(f".*{results.TEMPORARY_SUFFIX}"))


def test_stale_temporaries_of_this_hosts_dead_writers_are_removed_and_others_kept(tmp_path):
    """A pid names a process on its own host only: on a shared filesystem another host's writer
    may be alive with a pid that is free here. A link is never followed or removed."""
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    host = results._HOST
    stale = tmp_path / f".metrics.csv.{host}.{dead.pid}.abc123.tmp"
    live = tmp_path / f".losses.csv.{host}.{os.getpid()}.def456.tmp"
    elsewhere = tmp_path / f".losses.csv.other-host.{dead.pid}.aaa111.tmp"
    older = tmp_path / f".losses.csv.{dead.pid}.bbb222.tmp"  # before temporaries named their host
    other = tmp_path / "metrics.csv"
    for path in (stale, live, elsewhere, older, other):
        path.write_text("x")
    link = tmp_path / f".env.json.{host}.{dead.pid}.ccc333.tmp"
    link.symlink_to(other)
    assert results.remove_stale_temporaries(tmp_path) == [stale]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        p.name for p in (live, elsewhere, older, other, link))
    results.write_text_atomic(tmp_path / "new.txt", "y")  # its temporary carried this host
    assert (tmp_path / "new.txt").read_text() == "y"
