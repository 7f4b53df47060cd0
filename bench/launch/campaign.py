"""The paper campaign: the paper's grid and the studies (bench/spec/studies.py) trained in the
background, one run at a time, at the lowest CPU priority, continued from one stretch of work to
the next (python -m bench campaign). The order: the grid's first row (16/16, seed 0), the studies,
the rest of the grid (``schedule``).

The campaign's folder (``$BENCH_CACHE_DIR/campaign``, else ``~/.cache/weakly-disentangled-bench/
campaign``) holds:

  state.json        the repository it follows and the thread count of the whole grid
  lock              held (flock) by the one campaign process; it names that process's pid
  campaign.log      what the campaign and its runs printed
  trees/<rev>/      git worktrees of committed revisions: runs train from these, never from the
                    working tree being edited; the campaign moves to a newer commit between runs
  results/          an ordinary results folder (bench run --results) holding the runs
  training/<id>.json  each run's training segments (revision, machine, threads, torch,
                    iterations from and to, CPU and wall seconds), the fingerprint of the code
                    that started it (bench/run/fingerprint.py) and, for a study's run, the study
  fingerprints/<rev>.json  the fingerprint of each run at that revision (computed once)
  current.json      the run being trained now

A run whose checkpoint was started by code with another fingerprint (stale) is restarted; a
published run (results/paper/ of the repository, or a study's results/studies/<study>/) whose
fingerprint differs from the current code's is trained again, before anything new.
bench/launch/publish.py copies finished runs into the repository.
"""
from __future__ import annotations

import dataclasses
import datetime
import fcntl
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator, Union

from bench.errors import InputError
from bench.lifetime import child_environment
from bench.spec.studies import (DATASET as STUDY_DATASET, S_DIM as STUDY_S_DIM, STUDIES, Study,
                                 Variant, Z_DIM as STUDY_Z_DIM)
from bench.store import results

DATASET, PRESET = "mnist", "paper"
SIZES = ((16, 16), (64, 64))
SEEDS = (0, 1, 2)
METHOD_ORDER = ("ccvae", "mathieu", "szabo", "mlvae", "gvae", "lord")
# Methods whose training an open issue is changing: not trained until it lands (then removed here)
HELD = {
    "gvae": "issue 41: its likelihood scale is measured at 20 epochs first (study gvae-likelihood-scale)",
    "lord": "issue 41: its code penalty and regression weight are measured at 20 epochs first "
            "(study lord-weights)",
}
DEFAULT_THREADS = 1  # measured beside a running test suite: docs/usage.md, "The paper campaign"
POLL_SECONDS = 5
SEGMENT_UPDATE_SECONDS = 60


@dataclasses.dataclass(frozen=True)
class GridRun:
    """A run of the paper's grid, published into results/paper/."""
    method: str
    z_dim: int
    s_dim: int
    seed: int
    preset: str = PRESET

    @property
    def label(self) -> str:
        return f"{self.method} {self.z_dim}/{self.s_dim} seed {self.seed}"

    @property
    def held(self) -> bool:
        return self.method in HELD

    @property
    def study(self) -> None:
        return None

    def config(self):
        from bench.spec.config import resolve
        return resolve(self.method, DATASET, self.preset, self.seed,
                       {"z_dim": self.z_dim, "s_dim": self.s_dim})

    def run_arguments(self) -> list[str]:
        """``bench run``'s arguments that name this run (its config; not how it is computed)."""
        return ["--methods", self.method, "--dataset", DATASET, "--preset", self.preset,
                "--seeds", str(self.seed), "--z-dim", str(self.z_dim), "--s-dim", str(self.s_dim)]


@dataclasses.dataclass(frozen=True)
class StudyRun:
    """A run of a study (bench/spec/studies.py): one variant, one seed; published into
    results/studies/<study>/. Never held: holding is the paper grid's."""
    study: Study
    variant: Variant
    seed: int
    preset: str = PRESET

    @property
    def method(self) -> str:
        return self.study.method

    @property
    def label(self) -> str:
        return f"{self.study.name}: {self.variant.label}, seed {self.seed}"

    @property
    def held(self) -> bool:
        return False

    def config(self):
        return self.study.config(self.variant, self.seed, self.preset)

    def run_arguments(self) -> list[str]:
        sets = [argument for key, text in self.variant.set_texts().items()
                for argument in ("--set", f"{key}={text}")]
        return ["--methods", self.method, "--dataset", STUDY_DATASET, "--preset", self.preset,
                "--seeds", str(self.seed), "--z-dim", str(STUDY_Z_DIM), "--s-dim",
                str(STUDY_S_DIM), "--epochs", str(self.study.epochs), *sets]


CampaignRun = Union[GridRun, StudyRun]


def paper_grid(state: dict | None = None) -> list[GridRun]:
    """The grid in the order it is trained: 16/16 before 64/64, every method's seed 0 before any
    seed 1 (the table's rows appear first, their intervals after). A campaign started with a
    smaller grid (its state's methods, sizes, seeds and preset: tests, a user's subset) keeps
    this order."""
    state = state or {}
    methods = [m for m in METHOD_ORDER if m in state.get("methods", METHOD_ORDER)]
    sizes = [tuple(p) for p in state.get("sizes", SIZES)]
    seeds = state.get("seeds", SEEDS)
    preset = state.get("preset", PRESET)
    return [GridRun(m, z, s, seed, preset) for z, s in sizes for seed in seeds for m in methods]


def campaign_studies(state: dict | None = None) -> list[Study]:
    """The studies a campaign trains: those of STUDIES whose method is among its methods, and,
    where its state names studies (start --studies), those named only."""
    state = state or {}
    methods = state.get("methods", METHOD_ORDER)
    named = state.get("studies")
    return [s for s in STUDIES if s.method in methods and (named is None or s.name in named)]


def study_runs(state: dict | None = None) -> list[StudyRun]:
    """Study after study in table order; within a study seed after seed, every variant of a seed
    before the next seed (a first answer with one seed, its interval after)."""
    preset = (state or {}).get("preset", PRESET)
    return [StudyRun(study, variant, seed, study.preset_in(preset)) for study in campaign_studies(state)
            for seed in study.seeds for variant in study.variants]


def schedule(state: dict | None = None) -> list[CampaignRun]:
    """Every run of the campaign in the order it is trained: the grid's first row (its first size
    and first seed: 16/16, seed 0), then the studies, then the rest of the grid. Held runs stay in
    the schedule; the server skips them (``trainable``)."""
    grid = paper_grid(state)
    if not grid:
        return list(study_runs(state))
    first = grid[0]
    first_row = [r for r in grid if (r.z_dim, r.s_dim, r.seed) == (first.z_dim, first.s_dim,
                                                                     first.seed)]
    return [*first_row, *study_runs(state), *(r for r in grid if r not in first_row)]


def trainable(runs: list[CampaignRun]) -> list[CampaignRun]:
    return [r for r in runs if not r.held]


def publication_folder(run: CampaignRun, paper: Path) -> Path:
    """Where ``run`` is published: ``paper`` (results/paper/) for a grid run, the study's folder
    in results/studies/ beside it for a study run."""
    from bench.launch.publish import STUDIES_FOLDER
    return paper if run.study is None else paper.parent / STUDIES_FOLDER / run.study.name


def publication_folders(state: dict, paper: Path) -> dict[str, set[Path]]:
    """Run id -> the folders the schedule publishes it into (a run of the grid and of a study
    alike would be published into both)."""
    folders: dict[str, set[Path]] = {}
    for run in schedule(state):
        folders.setdefault(run.config().run_id, set()).add(publication_folder(run, paper))
    return folders


def default_folder() -> Path:
    from datasets.base import cache_dir
    return cache_dir() / "campaign"


class Campaign:
    """The campaign's folder (see the module's docstring)."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self.lock_path = self.folder / "lock"
        self.state_path = self.folder / "state.json"
        self.log_path = self.folder / "campaign.log"
        self.current_path = self.folder / "current.json"
        self.results = self.folder / "results"
        self.trees = self.folder / "trees"
        self.training = self.folder / "training"
        self.fingerprints = self.folder / "fingerprints"
        self._lock = None

    # --- state ------------------------------------------------------------------------------
    def state(self) -> dict:
        return results.read_json(self.state_path)

    def source(self) -> Path:
        source = self.state().get("source")
        if not isinstance(source, str):
            raise InputError(f"campaign {self.folder} has no repository: start it first")
        return Path(source)

    def threads(self) -> int:
        threads = self.state().get("threads")
        return threads if usable_threads(threads) else DEFAULT_THREADS

    # --- the single-instance lock ------------------------------------------------------------
    def acquire(self) -> bool:
        self.folder.mkdir(parents=True, exist_ok=True)
        handle = results.open_unlinked(self.lock_path, "a")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            return False
        os.ftruncate(handle.fileno(), 0)
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        self._lock = handle
        return True

    def release(self) -> None:
        if self._lock is not None:
            fcntl.flock(self._lock, fcntl.LOCK_UN)
            self._lock.close()
            self._lock = None

    def holder(self) -> int | None:
        """The pid of the running campaign process, or None when none holds the lock."""
        if not self.lock_path.is_file():
            return None
        with open(self.lock_path) as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                text = handle.read().strip()
                return int(text) if text.isdigit() else -1
            fcntl.flock(handle, fcntl.LOCK_UN)
        return None

    # --- training records ----------------------------------------------------------------------
    def training_record(self, run_id: str) -> dict | None:
        """The run's training record, or None when the campaign has none (read_json gives {})."""
        return results.read_json(self.training / f"{run_id}.json") or None

    def write_training_record(self, run_id: str, record: dict) -> None:
        self.training.mkdir(parents=True, exist_ok=True)
        results.write_json_atomic(self.training / f"{run_id}.json", record)

    def log(self, text: str) -> None:
        stamp = datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M:%S")
        print(f"[campaign {stamp}] {text}", flush=True)


def git(source: Path, *args: str) -> str:
    out = subprocess.run(["git", "-C", str(source), *args], capture_output=True, text=True,
                         timeout=60)
    if out.returncode != 0:
        raise InputError(f"git {' '.join(args)} in {source}: {out.stderr.strip() or 'failed'}")
    return out.stdout.strip()


def tree_for(campaign: Campaign, source: Path, revision: str) -> Path:
    """A git worktree of ``revision`` of ``source`` in the campaign's folder (made once)."""
    tree = campaign.trees / revision[:12]
    if not (tree / "bench" / "__main__.py").is_file():
        if tree.exists():
            shutil.rmtree(tree)
            git(source, "worktree", "prune")
        campaign.trees.mkdir(parents=True, exist_ok=True)
        git(source, "worktree", "add", "--detach", str(tree), revision)
    return tree


def serve_command(campaign: Campaign) -> list[str]:
    return ["nice", "-n", "19", sys.executable, "-m", "bench", "campaign", "serve",
            "--dir", str(campaign.folder)]


def usable_threads(threads) -> bool:
    """One thread or more, and no more than this machine's cores (more only spin-wait)."""
    return isinstance(threads, int) and 1 <= threads <= (os.cpu_count() or 1)


def start(campaign: Campaign, source: Path, threads: int | None, grid: dict | None = None) -> str:
    """Start the campaign process in the background (at nice 19, in its own session) from a
    worktree of ``source``'s HEAD; returns at once. A second start while one runs says so."""
    if threads is not None and not usable_threads(threads):
        raise InputError(f"--threads must be 1 to {os.cpu_count() or 1} (this machine's CPU "
                         f"cores), got {threads}")
    pid = campaign.holder()
    if pid is not None:
        return f"the campaign is already running (pid {pid}); python -m bench campaign status"
    campaign.folder.mkdir(parents=True, exist_ok=True)
    state = campaign.state()
    state.update({"source": str(Path(source).resolve()), **(grid or {})})
    if threads is not None:
        state["threads"] = threads
    state.setdefault("threads", DEFAULT_THREADS)
    results.write_json_atomic(campaign.state_path, state)
    revision = git(source, "rev-parse", "HEAD")
    tree = tree_for(campaign, source, revision)
    with results.open_unlinked(campaign.log_path, "a") as log:
        process = subprocess.Popen(serve_command(campaign), cwd=tree, stdin=subprocess.DEVNULL,
                                   stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                                   env={**os.environ, "PYTHONUNBUFFERED": "1"})
    deadline = time.monotonic() + 60  # until it holds the lock: two starts at once start one
    while campaign.holder() != process.pid and process.poll() is None \
            and time.monotonic() < deadline:
        time.sleep(0.2)
    if campaign.holder() != process.pid:
        holder = campaign.holder()
        if holder is not None:
            return f"the campaign is already running (pid {holder}); python -m bench campaign status"
        return f"the campaign process ended at once: see {campaign.log_path}"
    return (f"campaign started from {revision[:12]} ({state['threads']} thread(s), nice 19); "
            f"log: {campaign.log_path}")


def stop(campaign: Campaign, wait: float = 600) -> str:
    """Ask the campaign process to stop (its run checkpoints first) and wait for it."""
    pid = campaign.holder()
    if pid is None:
        return "the campaign is not running"
    if pid > 0:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + wait
    while campaign.holder() is not None and time.monotonic() < deadline:
        time.sleep(0.5)
    if campaign.holder() is not None:
        raise InputError(f"the campaign (pid {pid}) did not stop within {wait:.0f} s")
    return "the campaign stopped; its run keeps its checkpoint and resumes at the next start"


# --- the campaign process ---------------------------------------------------------------------
class Stop:
    requested = False

    def __init__(self):
        self.child: subprocess.Popen | None = None
        for number in (signal.SIGTERM, signal.SIGINT):
            signal.signal(number, self._handle)

    def _handle(self, number, frame):
        self.requested = True
        if self.child is not None and self.child.poll() is None:
            self.child.send_signal(signal.SIGTERM)


def trained_iterations(run_dir: Path) -> int:
    """Iterations a run's checkpoint holds (0 without one)."""
    from bench.run.checkpoints import read_progress
    return read_progress(run_dir / results.CHECKPOINT_FILE)


def process_cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of a live process and of its waited-for children (Linux)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    ticks = os.sysconf("SC_CLK_TCK")
    return sum(int(fields[i]) for i in (11, 12, 13, 14)) / ticks


def machine() -> dict:
    from bench.run.environment import cpu_kernels, device_name, numerics_fingerprint
    import platform

    import torch
    return {"host": platform.node(), "cpu": device_name(torch.device("cpu")),
            "cpu_kernels": cpu_kernels(), "numerics": numerics_fingerprint(),
            "torch": torch.__version__}


class Server:
    """The campaign process: trains the schedule's next run until none is left or it is stopped."""

    def __init__(self, campaign: Campaign, runs: list[CampaignRun] | None = None):
        self.campaign = campaign
        self.runs = runs if runs is not None else schedule(campaign.state())
        self.stop = Stop()
        self.data = None
        from bench.run.environment import git_revision
        self.revision = git_revision()["revision"]

    def serve(self) -> int:
        campaign = self.campaign
        if not campaign.acquire():
            campaign.log(f"another campaign process (pid {campaign.holder()}) is running")
            return 0
        try:
            self.remove_other_trees()
            self.close_open_segments()
            while not self.stop.requested:
                try:
                    head = git(campaign.source(), "rev-parse", "HEAD")
                except InputError as error:  # the repository moved or is gone: nothing to follow
                    campaign.log(f"cannot read the repository's HEAD ({error}): the campaign ends")
                    return 1
                if head != self.revision:
                    tree = tree_for(campaign, campaign.source(), head)
                    campaign.log(f"moving to revision {head[:12]} (between runs)")
                    campaign.release()
                    os.chdir(tree)
                    os.execvp("nice", serve_command(campaign))
                chosen = self.next_run()
                if chosen is None:
                    campaign.log("nothing left to train at this revision: the campaign ends")
                    return 0
                self.train(*chosen)
            campaign.log("stopped")
            return 0
        finally:
            campaign.current_path.unlink(missing_ok=True)
            campaign.release()

    def remove_other_trees(self) -> None:
        """Worktrees of earlier revisions: nothing runs from them once this process holds the lock."""
        own = self.revision[:12]
        if not self.campaign.trees.is_dir():
            return
        for tree in self.campaign.trees.iterdir():
            if tree.name != own and not tree.is_symlink():
                shutil.rmtree(tree, ignore_errors=True)
        try:
            git(self.campaign.source(), "worktree", "prune")
        except InputError as error:
            self.campaign.log(f"git worktree prune: {error}")

    # --- what to train ---------------------------------------------------------------------
    def load_data(self):
        if self.data is None:
            import torch
            from datasets import DATASETS
            self.data = DATASETS[DATASET](None, torch.device("cpu"))
        return self.data

    def fingerprint(self, run: CampaignRun, config):
        """The fingerprint of ``run`` at this revision, computed once per revision."""
        from bench.run.fingerprint import ITERATIONS, TrainingFingerprint, training_fingerprint
        path = self.campaign.fingerprints / f"{self.revision}.json"
        known = results.read_json(path)
        found = TrainingFingerprint.from_dict(known.get(config.run_id))
        if found is None:
            self.campaign.log(f"fingerprinting {run.label} at {self.revision[:12]}")
            found = training_fingerprint(config, self.load_data(),
                                         self.campaign.state().get("fingerprint_iterations",
                                                                   ITERATIONS))
            known = results.read_json(path)
            known[config.run_id] = found.to_dict()
            self.campaign.fingerprints.mkdir(parents=True, exist_ok=True)
            results.write_json_atomic(path, known)
        return found

    def published_fingerprint(self, run: CampaignRun, run_id: str):
        from bench.launch.publish import published_fingerprint
        return published_fingerprint(self.published_folder(run), run_id)

    def published_folder(self, run: CampaignRun) -> Path:
        return publication_folder(run, self.campaign.source() / "results" / "paper")

    def candidates(self) -> Iterator[CampaignRun]:
        """Stale published runs first (grid and studies), then the schedule in order; held runs
        never."""
        from bench.launch.publish import published_run_ids
        runnable = trainable(self.runs)
        stale = [r for r in runnable
                 if r.config().run_id in published_run_ids(self.published_folder(r))
                 and self.is_stale_published(r)]
        yield from stale
        yield from (r for r in runnable if r not in stale)

    def is_stale_published(self, run: CampaignRun) -> bool:
        config = run.config()
        published = self.published_fingerprint(run, config.run_id)
        return published is not None and published.matches(self.fingerprint(run, config)) is False

    def next_run(self):
        for run in self.candidates():
            if self.stop.requested:
                return None
            config = run.config()
            fingerprint = self.fingerprint(run, config)
            published = self.published_fingerprint(run, config.run_id)
            if published is not None and published.matches(fingerprint) is not False:
                continue  # published and current (or not checkable on this machine)
            run_dir = results.runs_dir(self.campaign.results) / config.run_id
            record = self.campaign.training_record(config.run_id) or {}
            if results.is_complete(run_dir) and self.started_by(record, fingerprint):
                continue  # finished, waiting for publish
            if record.get("failed") and self.started_by(record, fingerprint):
                continue  # failed with this code: bench campaign status says why
            return run, config, fingerprint
        return None

    @staticmethod
    def started_by(record: dict, fingerprint) -> bool:
        from bench.run.fingerprint import TrainingFingerprint
        started = TrainingFingerprint.from_dict(record.get("fingerprint"))
        return started is not None and started.matches(fingerprint) is not False

    # --- training one run --------------------------------------------------------------------
    def close_open_segments(self) -> None:
        """Segments left open by a campaign process that was killed: closed at their last update."""
        for path in sorted(self.campaign.training.glob("*.json")) if self.campaign.training.is_dir() else []:
            record = results.read_json(path)
            if isinstance(record, dict) and record.get("segments") and record["segments"][-1].get("open"):
                record["segments"][-1]["open"] = False
                record["segments"][-1]["ended_by"] = "the campaign process was killed"
                self.campaign.write_training_record(path.stem, record)

    def train(self, run: CampaignRun, config, fingerprint) -> None:
        from bench.run.build import iterations_per_epoch, run_data
        campaign = self.campaign
        run_dir = results.runs_dir(campaign.results) / config.run_id
        record = campaign.training_record(config.run_id) or {}
        if run_dir.exists() and not self.started_by(record, fingerprint):
            campaign.log(f"{run.label}: started by code that trains differently: restarting it")
            shutil.rmtree(run_dir)
            record = {}
        if not run_dir.exists() or not record:
            record = {"run_id": config.run_id, "fingerprint": fingerprint.to_dict(), "segments": []}
        if run.study is not None:  # publish's word on where it goes, whatever the schedule becomes
            record["study"] = run.study.name
        per_epoch = iterations_per_epoch(config, run_data(config, self.load_data()))
        total = per_epoch * config.method_config.training_epochs
        segment = {"revision": self.revision, **machine(), "threads": campaign.threads(),
                   "from_iteration": trained_iterations(run_dir), "to_iteration": None,
                   "cpu_seconds": 0.0, "wall_seconds": 0.0,
                   "started": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
                   "open": True}
        segment["to_iteration"] = segment["from_iteration"]
        record["segments"].append(segment)
        record.pop("failed", None)
        campaign.write_training_record(config.run_id, record)
        command = [sys.executable, "-m", "bench", "run", *run.run_arguments(), "--results",
                   str(campaign.results), "--device", "cpu", "--no-together"]
        threads = str(campaign.threads())
        env = child_environment({**os.environ, "OMP_NUM_THREADS": threads,
                                 "MKL_NUM_THREADS": threads, "PYTHONUNBUFFERED": "1"})
        campaign.log(f"training {run.label} ({config.run_id}) from iteration "
                     f"{segment['from_iteration']} of {total}")
        started = time.monotonic()
        child = subprocess.Popen(command, stdin=subprocess.DEVNULL, env=env)
        self.stop.child = child
        results.write_json_atomic(campaign.current_path, {
            "run_id": config.run_id, "label": run.label, "pid": child.pid,
            "revision": self.revision, "iterations_per_epoch": per_epoch,
            "total_iterations": total, "fingerprint_seconds": fingerprint.seconds,
            "fingerprint_iterations": fingerprint.iterations, "started": segment["started"],
            "from_iteration": segment["from_iteration"]})
        if self.stop.requested:  # a signal between the check and the child's start
            child.send_signal(signal.SIGTERM)
        checkpoint = run_dir / results.CHECKPOINT_FILE
        seen, updated, usage = None, time.monotonic(), None
        while True:
            pid, status, usage = os.wait4(child.pid, os.WNOHANG)
            if pid:
                child.returncode = os.waitstatus_to_exitcode(status)
                break
            time.sleep(POLL_SECONDS)
            mtime = checkpoint.stat().st_mtime if checkpoint.is_file() else None
            if mtime != seen or time.monotonic() - updated > SEGMENT_UPDATE_SECONDS:
                if mtime != seen:
                    seen = mtime
                    segment["to_iteration"] = trained_iterations(run_dir)
                    segment["checkpointed"] = datetime.datetime.now().astimezone().isoformat(
                        timespec="seconds")
                segment["cpu_seconds"] = round(process_cpu_seconds(child.pid) or
                                               segment["cpu_seconds"], 1)
                segment["wall_seconds"] = round(time.monotonic() - started, 1)
                campaign.write_training_record(config.run_id, record)
                updated = time.monotonic()
        self.stop.child = None
        segment.update({"to_iteration": trained_iterations(run_dir),
                        "cpu_seconds": round(usage.ru_utime + usage.ru_stime, 1),
                        "wall_seconds": round(time.monotonic() - started, 1),
                        "ended": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
                        "exit_code": child.returncode, "open": False})
        if child.returncode != 0 and not self.stop.requested:
            record["failed"] = f"bench run exited with {child.returncode}: see {campaign.log_path}"
        elif child.returncode == 0 and not results.is_complete(run_dir):
            # bench run named the run otherwise than run.config(): trained again, it would loop
            record["failed"] = (f"bench run ended well but did not finish {config.run_id}: its "
                                "arguments and the campaign's config of the run disagree")
        campaign.write_training_record(config.run_id, record)
        campaign.current_path.unlink(missing_ok=True)
        campaign.log(f"{run.label}: exit code {child.returncode}, iterations "
                     f"{segment['from_iteration']} -> {segment['to_iteration']}, "
                     f"{segment['cpu_seconds']:.0f} CPU s")


# --- status -------------------------------------------------------------------------------------
def status_lines(campaign: Campaign) -> list[str]:
    """What ``bench campaign status`` prints: the process, the run being trained (epoch, rate,
    expected end), every grid run's state (published, finished, stale, held, to do), then each
    study's runs under a heading of their own."""
    lines = []
    pid = campaign.holder()
    state = campaign.state()
    lines.append(f"campaign folder: {campaign.folder}")
    lines.append(f"process: {'running, pid ' + str(pid) if pid else 'not running'}; "
                 f"{state.get('threads', DEFAULT_THREADS)} thread(s), nice 19")
    current = results.read_json(campaign.current_path) if pid else None
    if isinstance(current, dict) and current.get("run_id"):
        lines += current_run_lines(campaign, current)
    elif pid:
        lines.append("between runs (choosing the next one, or fingerprinting it): see the log")
    if "source" not in state:
        return lines + ["never started: python -m bench campaign start"]
    head_fingerprints = {}
    try:
        head = git(campaign.source(), "rev-parse", "HEAD")
        head_fingerprints = results.read_json(campaign.fingerprints / f"{head}.json")
    except InputError:
        head = None
    states = RunStates(campaign, campaign.source() / "results" / "paper",
                       current.get("run_id") if isinstance(current, dict) else None,
                       head_fingerprints)
    lines += [states.line(run, run.label) for run in paper_grid(state)]
    for study in campaign_studies(state):
        runs = [run for run in study_runs(state) if run.study == study]
        lines.append(f"study {study.name}: {study.method}, "
                     f"{study.epochs_text(study.preset_in(state.get('preset', PRESET)))}, published into "
                     f"results/studies/{study.name}/")
        labels = [f"{run.variant.label}, seed {run.seed}" for run in runs]
        width = max(24, *map(len, labels))
        lines += [states.line(run, label, width) for run, label in zip(runs, labels)]
    lines.append(", ".join(f"{n} {k}" for k, n in states.counts.items())
                 + (f" (HEAD {head[:12]})" if head else ""))
    return lines


class RunStates:
    """The state of each run for ``status_lines``, and how many runs are in each."""

    def __init__(self, campaign: Campaign, paper: Path, current_run_id: str | None,
                 head_fingerprints: dict):
        self.campaign = campaign
        self.paper = paper
        self.current_run_id = current_run_id
        self.head_fingerprints = head_fingerprints
        self.counts: dict[str, int] = {}
        self._published: dict[Path, set[str]] = {}

    def published_ids(self, folder: Path) -> set[str]:
        from bench.launch.publish import published_run_ids
        if folder not in self._published:
            self._published[folder] = published_run_ids(folder)
        return self._published[folder]

    def line(self, run: CampaignRun, label: str, width: int = 24) -> str:
        run_id = run.config().run_id
        what = self.state(run, run_id)
        kind = "to do" if what == "to do" else what.split(" ")[0].rstrip(":,")
        self.counts[kind] = self.counts.get(kind, 0) + 1
        return f"  {label:<{width}} {run_id}  {what}"

    def state(self, run: CampaignRun, run_id: str) -> str:
        from bench.launch.publish import published_fingerprint
        from bench.run.fingerprint import TrainingFingerprint
        folder = publication_folder(run, self.paper)
        record = self.campaign.training_record(run_id) or {}
        if run_id in self.published_ids(folder):
            now = TrainingFingerprint.from_dict(self.head_fingerprints.get(run_id))
            mark = published_fingerprint(folder, run_id)
            verdict = None if now is None or mark is None else mark.matches(now)
            return {True: "published", False: "published, STALE (retrained first)",
                    None: "published (not yet checked at HEAD)"}[verdict]
        if results.is_complete(results.runs_dir(self.campaign.results) / run_id):
            return "finished: python -m bench campaign publish"
        if self.current_run_id == run_id:
            return "training"
        if record.get("failed"):
            return f"failed ({record['failed']})"
        if run.held:
            return f"held: {HELD[run.method]}"
        if record.get("segments"):
            return f"checkpointed at iteration {record['segments'][-1].get('to_iteration')}"
        return "to do"


def current_run_lines(campaign: Campaign, current: dict) -> list[str]:
    record = campaign.training_record(str(current.get("run_id"))) or {}
    segment = (record.get("segments") or [{}])[-1]
    per_epoch = current.get("iterations_per_epoch") or 1
    total = current.get("total_iterations") or 0
    done = segment.get("to_iteration") or 0
    lines = [f"training: {current.get('label')} ({current.get('run_id')}) at revision "
             f"{str(current.get('revision'))[:12]}, epoch {min(done // per_epoch + 1, total // per_epoch)}"
             f" of {total // per_epoch} (iteration {done} of {total}, checkpointed each epoch)"]
    started = _time(segment.get("started"))
    checkpointed = _time(segment.get("checkpointed"))
    fp_rate = (current.get("fingerprint_iterations") or 0) / (current.get("fingerprint_seconds") or 1)
    if started and checkpointed and done > segment.get("from_iteration", 0):
        rate = (done - segment["from_iteration"]) / max((checkpointed - started).total_seconds(), 1)
        left = (total - done) / rate
        end = datetime.datetime.now().astimezone() + datetime.timedelta(seconds=left)
        lines.append(f"rate: {rate:.2f} iterations/s in this segment (the same method alone, one "
                     f"thread, in its fingerprint: {fp_rate:.2f}/s); training ends about "
                     f"{end:%Y-%m-%d %H:%M} (evaluations then take minutes more)")
    else:
        lines.append(f"rate: no epoch finished in this segment yet (the method alone, one thread, "
                     f"in its fingerprint: {fp_rate:.2f} iterations/s)")
    return lines


def _time(text) -> datetime.datetime | None:
    try:
        return datetime.datetime.fromisoformat(text) if isinstance(text, str) else None
    except ValueError:
        return None
