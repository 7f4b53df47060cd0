"""Chaos test of the run grid: 6 runs with --jobs 3, whose worker processes and parent are
killed with SIGKILL at random moments (at least KILLS times), the same command rerun after each
kill until it completes. It must end exactly as the same grid run without faults: the same
metrics.csv and losses.csv in every run, no partial or temporary file, no lock held, and
`bench status` agreeing with the folders.

The kill schedule comes from random.Random(BENCH_CHAOS_SEED, default 0): rerun a failure with the
seed it printed (the moments are seeded; what a kill lands on also depends on timing)."""
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch

from bench.run.checkpoints import RunLock
from bench.store import results
from tests.conftest import REPO

pytestmark = pytest.mark.skipif(sys.platform != "linux",
                                reason="finds worker processes in /proc; workers stop with their "
                                       "parent through Linux's PR_SET_PDEATHSIG")

SEED = int(os.environ.get("BENCH_CHAOS_SEED", "0"))
KILLS = 10
# 3 methods x 2 seeds (one latent size: a second doubled the test's time, 520 s on a 2-core CPU,
# and adds no new kind of moment to kill); two epochs of 20 iterations, so that kills land in
# training (between and inside epochs) as well as in evaluation and figures.
GRID = ["run", "--methods", "ccvae,mathieu,szabo", "--dataset", "mnist", "--preset", "smoke", "--device", "cpu",
        "--seeds", "0,1", "--jobs", "3", "--epochs", "2", "--set", "iterations_per_epoch=20"]
RUNS = 6


def command(results_dir: Path) -> list[str]:
    return [sys.executable, "-m", "bench", *GRID, "--results", str(results_dir)]


def process_state(pid: int) -> tuple[str, int] | None:
    """(state letter, parent pid) of a live process, or None."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return fields[0], int(fields[1])


def workers_of(parent: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            state = process_state(int(entry.name))
            if state is not None and state[1] == parent and state[0] != "Z":
                found.append(int(entry.name))
    return sorted(found)


def wait_until_gone(pids: list[int], timeout: float = 300) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if all((state := process_state(p)) is None or state[0] == "Z" for p in pids):
            return
        time.sleep(0.1)
    raise AssertionError(f"workers {pids} still running {timeout:.0f} s after their parent died")


def run_ids(results_dir: Path) -> list[str]:
    return sorted(p.name for p in results.runs_dir(results_dir).iterdir() if p.is_dir())


def grid_complete(results_dir: Path) -> bool:
    runs = results.runs_dir(results_dir)
    return runs.is_dir() and sum(results.is_complete(p) for p in runs.iterdir()) == RUNS


def run_with_kills(results_dir: Path, rng: random.Random, log: Path) -> dict:
    """Run the grid, killing a worker or the parent at random moments until KILLS kills have
    landed, rerunning the command after each parent kill and each failed end, until complete."""
    kills = {"parent": 0, "worker": 0}
    commands = 0
    while not grid_complete(results_dir):
        commands += 1
        assert commands <= 40, f"the grid did not complete in 40 commands (seed {SEED}); {kills}"
        with open(log, "a") as out:
            parent = subprocess.Popen(command(results_dir), cwd=REPO, stdout=out,
                                      stderr=subprocess.STDOUT)
        while parent.poll() is None and sum(kills.values()) < KILLS:
            time.sleep(rng.uniform(0.5, 6.0))
            workers = workers_of(parent.pid)
            if parent.poll() is not None:
                break
            if not workers or rng.random() < 0.3:
                parent.kill()
                parent.wait()
                kills["parent"] += 1
                wait_until_gone(workers)  # each got SIGTERM with its parent: checkpoint, end
                break
            try:
                os.kill(rng.choice(workers), signal.SIGKILL)
                kills["worker"] += 1
            except ProcessLookupError:  # it ended meanwhile
                pass
        parent.wait(timeout=900)
    kills["commands"] = commands
    return kills


def assert_nothing_partial(results_dir: Path) -> None:
    leftovers = [p for p in results_dir.rglob(f"*{results.TEMPORARY_SUFFIX}")]
    assert not leftovers, leftovers
    for path in results.runs_dir(results_dir).rglob("*"):
        if path.suffix == ".csv":
            assert len(pd.read_csv(path)) > 0, path
        elif path.suffix == ".json":
            json.loads(path.read_text())
        elif path.suffix == ".pt":
            torch.load(path, weights_only=True)
        elif path.suffix == ".png":
            assert path.read_bytes().startswith(b"\x89PNG"), path


def test_a_grid_killed_at_random_ends_as_the_same_grid_without_faults(tmp_path):
    started = time.perf_counter()
    reference, chaos = tmp_path / "reference", tmp_path / "chaos"
    done = subprocess.run(command(reference), cwd=REPO, capture_output=True, text=True, timeout=1800)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert len(run_ids(reference)) == RUNS
    reference_seconds = time.perf_counter() - started

    kills = run_with_kills(chaos, random.Random(SEED), tmp_path / "chaos.log")
    chaos_seconds = time.perf_counter() - started - reference_seconds
    print(f"chaos (seed {SEED}): {kills['parent']} parent and {kills['worker']} worker SIGKILLs, "
          f"{kills['commands']} commands, {chaos_seconds:.0f} s; the grid without faults "
          f"{reference_seconds:.0f} s")
    assert kills["parent"] + kills["worker"] >= KILLS, kills

    assert run_ids(chaos) == run_ids(reference)
    for run_id in run_ids(reference):
        for name in (results.METRICS_FILE, results.LOSSES_FILE):
            expected = (results.runs_dir(reference) / run_id / name).read_text()
            assert (results.runs_dir(chaos) / run_id / name).read_text() == expected, (run_id, name)
    assert_nothing_partial(chaos)
    for lock_file in (chaos / "locks").iterdir():
        lock = RunLock(results.runs_dir(chaos) / lock_file.stem)
        assert lock.acquire(), f"{lock_file} is still held"
        lock.release()
    status = subprocess.run([sys.executable, "-m", "bench", "status", "--results", str(chaos)],
                            cwd=REPO, capture_output=True, text=True, timeout=120)
    assert status.returncode == 0, status.stderr
    lines = status.stdout.strip().splitlines()
    assert lines[-1] == f"{RUNS} complete", lines
    assert sorted(line.split()[0] for line in lines[:-1]) == run_ids(chaos)
