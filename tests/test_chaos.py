"""Chaos tests of the run grid: its processes are killed with SIGKILL at seeded random moments,
the same command rerun after each kill of the parent until it completes. It must end exactly as
the same grid run without faults: every table of every run the same byte for byte (losses,
probes, each evaluation's, the t-SNE's points) and the same evaluations recorded, no partial or
temporary file, no lock held, no t-SNE temporary folder left, and `bench status` agreeing with
the folders.

- 6 runs with --jobs 3: a worker process or the parent is killed, at least KILLS times.
- 3 runs trained together in one process, t-SNE in a worker: the parent is killed.

A kill counts only in the phase it landed in, read from the files of the runs the killed process
held locked at that moment (``phase``): training until losses.csv holds every iteration, evaluation
until evaluation.json records every evaluation of the run that draws no figure, then figures (the
t-SNE, the swap grid, the training curves) until the run is complete. A kill of a process that
holds no run (interpreter start-up, between runs) is made but not counted. Each test requires a
minimum of kills per phase (MINIMUMS): while a phase is short of it, the next kill waits for a
process in that phase, then lands at a random moment of it; a grid that completes first (its reruns
skip what is done, so a missed phase may not come again) is followed by a new one in a new folder,
up to ROUNDS, each held to the grid without faults.

The kill schedule comes from random.Random(BENCH_CHAOS_SEED, default 0): rerun a failure with the
seed it printed (the moments are seeded; what a kill lands on also depends on timing)."""
import collections
import dataclasses
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

from bench.evaluations import by_default
from bench.run.lock import RunLock
from bench.store import results
from methods import METHODS
from tests.conftest import REPO

pytestmark = pytest.mark.skipif(sys.platform != "linux",
                                reason="finds worker processes in /proc; workers stop with their "
                                       "parent through Linux's PR_SET_PDEATHSIG")

SEED = int(os.environ.get("BENCH_CHAOS_SEED", "0"))
EPOCHS, ITERATIONS = 2, 20
TRAINING_ROWS = EPOCHS * ITERATIONS
SMOKE = ["run", "--dataset", "mnist", "--preset", "smoke", "--device", "cpu",
         "--epochs", str(EPOCHS), "--set", f"iterations_per_epoch={ITERATIONS}"]
# 3 methods x 2 seeds (one latent size: a second doubled the test's time, 520 s on a 2-core CPU,
# and adds no new kind of moment to kill); two epochs of 20 iterations, so that kills land in
# training (between and inside epochs) as well as in evaluation and figures.
GRID = [*SMOKE, "--methods", "ccvae,mathieu,szabo", "--seeds", "0,1", "--jobs", "3"]
RUNS, KILLS, MINIMUMS = 6, 10, {"training": 5, "evaluation": 2}
# Runs trained together: one process trains them in turn, evaluates them, and embeds their z in a
# t-SNE worker process; LORD's two stages and deterministic z beside two VAEs.
TOGETHER = [*SMOKE, "--methods", "ccvae,szabo,lord", "--seeds", "0", "--together",
            "--tsne-workers", "1"]
TOGETHER_RUNS, TOGETHER_KILLS = 3, 5
TOGETHER_MINIMUMS = {"training": 2, "evaluation": 1, "figures": 1}
ROUNDS = 3  # grids killed at most, when one completes before its kills are counted


def command(grid: list[str], results_dir: Path) -> list[str]:
    return [sys.executable, "-m", "bench", *grid, "--results", str(results_dir)]


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


def grid_complete(results_dir: Path, runs: int) -> bool:
    folder = results.runs_dir(results_dir)
    return folder.is_dir() and sum(results.is_complete(p) for p in folder.iterdir()) == runs


def evaluations_of(data) -> dict[str, set[str]]:
    """{method: the evaluations a run of it on ``data`` records before its figures}: those that
    apply to the dataset (MNIST has no factors: no factor probes, no MIG) and to the method
    (LORD's code_leakage), and draw no figure (the t-SNE and the swap grid are the figures)."""
    return {method: {e.name for e in by_default() if e.figures is None and e.applies(data)
                     and e.applies_to_method(method)}
            for method in METHODS}


def phase(run_dir: Path, evaluations: dict[str, set[str]]) -> str | None:
    """Where a run is, read from its files: training until losses.csv holds every iteration,
    evaluation until evaluation.json records each of the run's ``evaluations`` (by method), then
    figures (the t-SNE, the swap grid, the training curves) until it is complete (None once it
    is)."""
    if results.is_complete(run_dir):
        return None
    try:
        rows = len((run_dir / results.LOSSES_FILE).read_text().splitlines()) - 1
    except OSError:
        rows = 0
    if rows < TRAINING_ROWS:
        return "training"
    method = json.loads((run_dir / results.CONFIG_FILE).read_text())["method"]
    if not evaluations[method] <= set(results.read_json(run_dir / results.EVALUATION_FILE)):
        return "evaluation"
    return "figures"


def phases_held(results_dir: Path, pid: int, evaluations: dict[str, set[str]]) -> set[str]:
    """The phases of the runs that process ``pid`` holds locked (empty: it holds none)."""
    runs = results.runs_dir(results_dir)
    return {where for run_dir in (runs.iterdir() if runs.is_dir() else ())
            if RunLock(run_dir).holder() == str(pid) and (where := phase(run_dir, evaluations))}


@dataclasses.dataclass
class Kills:
    """The kills made so far, and the phases they were counted in."""
    landed: collections.Counter = dataclasses.field(default_factory=collections.Counter)
    parent: int = 0
    worker: int = 0
    uncounted: int = 0
    counted: int = 0
    commands: int = 0

    def wanted(self, kills: int, minimums: dict[str, int]) -> set[str]:
        """The phases a next kill may land in: those short of their minimum, or any while fewer
        than ``kills`` were counted (empty: enough)."""
        short = {p for p, n in minimums.items() if self.landed[p] < n}
        return short or ({"training", "evaluation", "figures"} if self.counted < kills else set())


def run_with_kills(grid: list[str], runs: int, results_dir: Path, rng: random.Random, log: Path,
                   kills: int, minimums: dict[str, int], kill_workers: bool,
                   evaluations: dict[str, set[str]], made: Kills) -> None:
    """Run the grid in ``results_dir``, killing a process (a worker, or the parent, which ends its
    workers) at random moments while ``made`` wants more kills (Kills.wanted), rerunning the
    command after each parent kill and each failed end, until the grid is complete."""
    def wanted() -> set[str]:
        return made.wanted(kills, minimums)

    def held(pid: int) -> set[str]:
        return phases_held(results_dir, pid, evaluations)

    while not grid_complete(results_dir, runs):
        made.commands += 1
        assert made.commands <= 60, f"the grid did not complete in 60 commands (seed {SEED}); {made}"
        with open(log, "a") as out:
            parent = subprocess.Popen(command(grid, results_dir), cwd=REPO, stdout=out,
                                      stderr=subprocess.STDOUT)
        while parent.poll() is None and wanted():
            targets = workers_of(parent.pid) if kill_workers else [parent.pid]
            if not any(held(pid) & wanted() for pid in targets):
                time.sleep(0.1)  # wait for a process in a phase still wanted
                continue
            # then a random moment of it: figures take a second or two, the rest longer
            time.sleep(rng.uniform(0.0, 0.4 if wanted() == {"figures"} else 1.5))
            if parent.poll() is not None:
                break
            targets = workers_of(parent.pid) if kill_workers else [parent.pid]
            chosen = [pid for pid in targets if held(pid) & wanted()]
            if not chosen:
                continue
            victim = rng.choice(chosen)
            at = held(victim)  # where the kill lands, read at its moment
            if not kill_workers or rng.random() < 0.3:
                workers = workers_of(parent.pid)
                parent.kill()
                parent.wait()
                made.parent += 1
                wait_until_gone(workers)  # each got SIGTERM with its parent: checkpoint, end
            else:
                try:
                    os.kill(victim, signal.SIGKILL)
                    made.worker += 1
                except ProcessLookupError:  # it ended meanwhile
                    continue
            made.landed.update(at)
            if at:
                made.counted += 1
            else:
                made.uncounted += 1
            if parent.poll() is not None:
                break
        parent.wait(timeout=900)


def assert_same_tables(reference: Path, run_dir: Path) -> None:
    """Every table of the run (losses, the latent probes and each evaluation's, the t-SNE's
    points included) byte for byte the reference's, and the same evaluations recorded."""
    names = sorted(p.name for p in reference.glob("*.csv"))
    assert results.METRICS_FILE in names and results.LOSSES_FILE in names, names
    assert sorted(p.name for p in run_dir.glob("*.csv")) == names, run_dir.name
    for name in names:
        assert (run_dir / name).read_bytes() == (reference / name).read_bytes(), (run_dir.name, name)
    recorded = [json.loads((folder / results.EVALUATION_FILE).read_text()) for folder in (reference, run_dir)]
    assert recorded[0].keys() == recorded[1].keys(), run_dir.name


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


def assert_ends_as_without_faults(grid: list[str], runs: int, tmp_path: Path, kills: int,
                                  minimums: dict[str, int], kill_workers: bool,
                                  evaluations: dict[str, set[str]]) -> None:
    """The grid run without faults, then killed until ``kills`` kills were counted, ``minimums``
    of them in each phase named: a grid that completes before (a short phase missed) is run
    again in a new folder, up to ROUNDS folders. Every folder must end as the grid without faults."""
    started = time.perf_counter()
    reference = tmp_path / "reference"
    done = subprocess.run(command(grid, reference), cwd=REPO, capture_output=True, text=True,
                          timeout=1800)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert len(run_ids(reference)) == runs
    reference_seconds = time.perf_counter() - started

    rng, made, folders = random.Random(SEED), Kills(), []
    while made.wanted(kills, minimums):
        assert len(folders) < ROUNDS, f"{made} after {ROUNDS} grids (seed {SEED})"
        folders.append(tmp_path / f"chaos{len(folders)}")
        run_with_kills(grid, runs, folders[-1], rng, tmp_path / "chaos.log", kills, minimums,
                       kill_workers, evaluations, made)
    chaos_seconds = time.perf_counter() - started - reference_seconds
    print(f"chaos (seed {SEED}): {made} in {len(folders)} grid(s), {chaos_seconds:.0f} s; the "
          f"grid without faults {reference_seconds:.0f} s")

    for chaos in folders:
        assert run_ids(chaos) == run_ids(reference)
        for run_id in run_ids(reference):
            assert_same_tables(results.runs_dir(reference) / run_id, results.runs_dir(chaos) / run_id)
        assert_nothing_partial(chaos)
        for lock_file in (chaos / "locks").iterdir():
            lock = RunLock(results.runs_dir(chaos) / lock_file.stem)
            assert lock.acquire(), f"{lock_file} is still held"
            lock.release()
        status = subprocess.run([sys.executable, "-m", "bench", "status", "--results", str(chaos)],
                                cwd=REPO, capture_output=True, text=True, timeout=120)
        assert status.returncode == 0, status.stderr
        lines = status.stdout.strip().splitlines()
        assert lines[-1] == f"{runs} complete", lines
        assert sorted(line.split()[0] for line in lines[:-1]) == run_ids(chaos)


def test_a_grid_killed_at_random_ends_as_the_same_grid_without_faults(tmp_path, mnist):
    assert_ends_as_without_faults(GRID, RUNS, tmp_path, KILLS, MINIMUMS, kill_workers=True,
                                  evaluations=evaluations_of(mnist))


def test_runs_trained_together_killed_at_random_end_as_without_faults(tmp_path, mnist,
                                                                       monkeypatch):
    """... and the t-SNE workers' temporary folders that killed commands left are removed by the
    next command: none is left at the end."""
    temporary = tmp_path / "tmp"
    temporary.mkdir()
    monkeypatch.setenv("TMPDIR", str(temporary))  # the commands' own temporary folder
    assert_ends_as_without_faults(TOGETHER, TOGETHER_RUNS, tmp_path, TOGETHER_KILLS,
                                  TOGETHER_MINIMUMS, kill_workers=False,
                                  evaluations=evaluations_of(mnist))
    assert not list(temporary.glob("bench-tsne-*"))


def test_a_kill_is_counted_in_the_phase_its_runs_files_show(tmp_path, mnist):
    """The phase a kill is counted in, from a run's files: no log or a partial one is training,
    every iteration logged is evaluation until evaluation.json names every evaluation of the run,
    then figures; a complete run is in none. A lock names the process that holds the run."""
    evaluations = evaluations_of(mnist)
    assert "factors" not in evaluations["lord"]  # MNIST has no factors: never recorded

    def phase_of(run_dir):
        return phase(run_dir, evaluations)

    run_dir = results.runs_dir(tmp_path) / "lord-x"
    run_dir.mkdir(parents=True)
    (run_dir / results.CONFIG_FILE).write_text(json.dumps({"method": "lord"}))
    assert phase_of(run_dir) == "training"
    header = "epoch,iteration,loss\n"
    (run_dir / results.LOSSES_FILE).write_text(header + "1,1,0.5\n" * (TRAINING_ROWS - 1))
    assert phase_of(run_dir) == "training"
    (run_dir / results.LOSSES_FILE).write_text(header + "1,1,0.5\n" * TRAINING_ROWS)
    assert phase_of(run_dir) == "evaluation"
    names = sorted(evaluations["lord"])
    assert "code_leakage" in names and "tsne" not in names  # LORD's own counts; figures not
    (run_dir / results.EVALUATION_FILE).write_text(json.dumps({n: {} for n in names[:-1]}))
    assert phase_of(run_dir) == "evaluation"
    (run_dir / results.EVALUATION_FILE).write_text(json.dumps({n: {} for n in names}))
    assert phase_of(run_dir) == "figures"
    (tmp_path / "locks").mkdir()
    (tmp_path / "locks" / "lord-x.lock").write_text("4242\n")
    assert phases_held(tmp_path, 4242, evaluations) == {"figures"}
    assert phases_held(tmp_path, 4243, evaluations) == set()
    (run_dir / results.STATUS_FILE).write_text(json.dumps({"state": results.COMPLETE}))
    assert phase_of(run_dir) is None and phases_held(tmp_path, 4242, evaluations) == set()
