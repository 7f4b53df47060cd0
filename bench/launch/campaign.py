"""The paper campaign: the paper's grid and the studies (bench/spec/studies.py) trained in the
background at the lowest CPU priority by one or more workers (a process each, one run at a time
each), continued from one stretch of work to the next (python -m bench campaign). The order: the
grid's first row (16/16, seed 0), the studies, the rest of the grid (``schedule``); each worker
takes the next run no other worker has claimed.

The campaign's folder (``$BENCH_CACHE_DIR/campaign``, else ``~/.cache/weakly-disentangled-bench/
campaign``) holds:

  state.json        the repository it follows, the thread count of the whole grid, the workers
  lock, lock.<n>    each held (flock) by one worker; it names that process's pid and revision
  claims/<id>       held (flock) by the worker training that run; claims/<id>.fingerprint by the
                    worker computing its fingerprint
  campaign.log      what the campaign and its runs printed
  trees/<rev>/      git worktrees of committed revisions: runs train from these, never from the
                    working tree being edited; a worker moves to a newer commit between its runs
  results/          an ordinary results folder (bench run --results) holding the runs
  training/<id>.json  each run's training segments (revision, machine, threads, worker, torch,
                    iterations from and to, CPU and wall seconds), the fingerprint of the code
                    that started it (bench/run/fingerprint.py) and, for a study's run, the study
  fingerprints/<rev>.json  the fingerprint of each run at that revision (computed once)
  fingerprints/sources.json  each run's last computed fingerprint, with the SHA-256 of every
                    source file the process that computed it had loaded: reused at a revision
                    where they are all unchanged
  current.json, current.<n>.json  the run each worker trains now

A run whose checkpoint was started by code with another fingerprint (stale) is restarted; a
published run (results/paper/ of the repository, or a study's results/studies/<study>/) whose
fingerprint differs from the current code's is trained again, before anything new.
bench/launch/publish.py copies finished runs into the repository; bench/launch/carry.py carries
the unfinished ones and the computed fingerprints to the next machine through it (results/campaign/),
where a worker whose folder lacks a run's checkpoint resumes the carried one.
"""
from __future__ import annotations

import contextlib
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
HELD: dict[str, str] = {}
DEFAULT_THREADS = 1  # measured beside a running test suite: docs/usage.md, "The paper campaign"
DEFAULT_WORKERS = 1  # runs trained at once, each by its own process (start --workers)
LOCK_HANDOVER = "BENCH_CAMPAIGN_LOCK"  # "slot:fd" of a lock a process exec'ing into a newer revision keeps
POLL_SECONDS = 5
SOURCES_FILE = "sources.json"  # in fingerprints/: each run's last fingerprint and its sources
SEGMENT_UPDATE_SECONDS = 60
FINGERPRINT_CLAIM = ".fingerprint"  # claims/<run id>.fingerprint: held while computing it


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


def evaluation_arguments(run: CampaignRun) -> list[str]:
    """``bench run --evaluations`` for a run published without its figures (a study's, and a grid
    run's of a seed beyond FIGURE_SEEDS): every default evaluation but those whose table is a
    figure's data (the t-SNE: a third of a quick study run's CPU time, 216 -> 143 s), which
    publishing leaves out of such a run anyway; ``bench evaluate`` computes it where wanted.
    Nothing for a run published with its figures."""
    from bench.evaluations import by_default
    from bench.launch.publish import FIGURE_SEEDS
    if run.study is None and run.seed in FIGURE_SEEDS:
        return []
    return ["--evaluations", ",".join(e.name for e in by_default() if not e.figure_data)]


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
        self.state_path = self.folder / "state.json"
        self.log_path = self.folder / "campaign.log"
        self.results = self.folder / "results"
        self.trees = self.folder / "trees"
        self.training = self.folder / "training"
        self.fingerprints = self.folder / "fingerprints"
        self.claims = self.folder / "claims"
        self.slot = 0  # the worker this process is, once it holds a slot's lock
        self._lock = None

    def lock_path_of(self, slot: int) -> Path:
        return self.folder / ("lock" if slot == 0 else f"lock.{slot}")

    def current_path_of(self, slot: int) -> Path:
        return self.folder / ("current.json" if slot == 0 else f"current.{slot}.json")

    @property
    def lock_path(self) -> Path:
        return self.lock_path_of(self.slot)

    @property
    def current_path(self) -> Path:
        """The run this process's worker trains now (worker 0's for any other process)."""
        return self.current_path_of(self.slot)

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

    def workers(self) -> int:
        workers = self.state().get("workers")
        return workers if usable_workers(workers, self.threads()) else DEFAULT_WORKERS

    # --- the workers' locks: one per slot, each held (flock) by one campaign process -----------
    def acquire(self, revision: str = "") -> bool:
        """Hold the first free slot's lock (of ``workers()``), or the slot a process that exec'd
        into this one handed over (LOCK_HANDOVER); False when every slot is held."""
        self.folder.mkdir(parents=True, exist_ok=True)
        handed = os.environ.pop(LOCK_HANDOVER, "")
        if handed:
            slot, descriptor = (int(n) for n in handed.split(":"))
            os.set_inheritable(descriptor, False)
            return self._hold(slot, os.fdopen(descriptor, "a"), revision)
        for slot in range(self.workers()):
            handle = results.open_unlinked(self.lock_path_of(slot), "a")
            if self._hold(slot, handle, revision):
                return True
        return False

    def _hold(self, slot: int, handle, revision: str) -> bool:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            return False
        self.slot, self._lock = slot, handle
        self.name_holder(revision)
        return True

    def name_holder(self, revision: str) -> None:
        """The lock names its holder's pid and the revision it trains from (so that another
        worker removes no worktree in use)."""
        os.ftruncate(self._lock.fileno(), 0)
        self._lock.write(f"{os.getpid()} {revision}\n")
        self._lock.flush()

    def hand_over_lock(self) -> dict:
        """The environment that lets the process this one execs into keep this slot's lock (so
        that no other worker sees the slot free meanwhile)."""
        os.set_inheritable(self._lock.fileno(), True)
        return {**os.environ, LOCK_HANDOVER: f"{self.slot}:{self._lock.fileno()}"}

    def release(self) -> None:
        if self._lock is not None:
            fcntl.flock(self._lock, fcntl.LOCK_UN)
            self._lock.close()
            self._lock = None

    def holders(self) -> dict[int, tuple[int, str]]:
        """Slot -> (pid, revision or "") of each running campaign process (pid -1 when its lock
        does not say)."""
        found = {}
        for path in sorted(self.folder.glob("lock*")) if self.folder.is_dir() else []:
            slot = 0 if path.name == "lock" else path.name[len("lock."):]
            if not (slot == 0 or slot.isdigit()) or path.is_symlink() or not path.is_file():
                continue
            with open(path) as handle:
                try:
                    fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
                except BlockingIOError:
                    pid, _, revision = handle.read().strip().partition(" ")
                    found[int(slot)] = (int(pid) if pid.isdigit() else -1, revision)
                    continue
                fcntl.flock(handle, fcntl.LOCK_UN)
        return dict(sorted(found.items()))

    def holder(self) -> int | None:
        """The pid of a running campaign process (the first worker's), or None when none runs."""
        holders = self.holders()
        return next(iter(holders.values()))[0] if holders else None

    @contextlib.contextmanager
    def exclusive(self, name: str):
        """One campaign process at a time in the block (git worktrees, the fingerprints' file)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        with results.open_unlinked(self.folder / f"{name}.lock", "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            yield

    def claim(self, run_id: str, task: str = "", wait: bool = False):
        """The run's claim (an open file holding its flock) for this process, or None when
        another worker holds it: a run is trained by one worker at a time. ``task`` names another
        claim on the run (FINGERPRINT_CLAIM: computing its fingerprint); ``wait``: until it is
        free."""
        self.claims.mkdir(parents=True, exist_ok=True)
        handle = results.open_unlinked(self.claims / f"{run_id}{task}", "a")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            handle.close()
            return None
        return handle

    def runs_of_other_workers(self) -> set[str]:
        """The runs the other running workers train now (by their current files)."""
        return {str(current.get("run_id")) for slot in self.holders() if slot != self.slot
                for current in [results.read_json(self.current_path_of(slot))]
                if isinstance(current, dict) and current.get("run_id")}

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
    with campaign.exclusive("trees"):
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


def lowest_priority() -> None:
    """Lower this process's session to the lowest CPU priority too. With the kernel's autogroups
    (sched_autogroup_enabled), a session's processes share the CPU as one group against other
    sessions whatever their nice, so a nice-19 worker in its own session would get as much CPU as
    the user's whole shell; the autogroup's own nice puts it below them. Children inherit it."""
    try:
        Path("/proc/self/autogroup").write_text("19")
    except OSError:  # not Linux, autogroups off, or not allowed: nice 19 alone
        pass


def usable_threads(threads) -> bool:
    """One thread or more, and no more than this machine's cores (more only spin-wait)."""
    return isinstance(threads, int) and 1 <= threads <= (os.cpu_count() or 1)


def usable_workers(workers, threads: int) -> bool:
    """One worker or more, whose threads together are no more than this machine's cores."""
    return isinstance(workers, int) and workers >= 1 and usable_threads(workers * threads)


def start(campaign: Campaign, source: Path, threads: int | None, grid: dict | None = None,
          workers: int | None = None) -> str:
    """Start the campaign's workers in the background (each a process at nice 19, in its own
    session) from a worktree of ``source``'s HEAD; returns at once. A start while every worker
    runs says so; one while fewer run than ``workers`` starts the missing ones."""
    cores = os.cpu_count() or 1
    if threads is not None and not usable_threads(threads):
        raise InputError(f"--threads must be 1 to {cores} (this machine's CPU cores), got {threads}")
    state = campaign.state()
    threads_now = threads if threads is not None else campaign.threads()
    if workers is not None and not usable_workers(workers, threads_now):
        raise InputError(f"--workers must be 1 to {cores // threads_now} (this machine's {cores} "
                         f"CPU cores at {threads_now} thread(s) a run), got {workers}")
    if campaign.holders() and threads is not None and threads != campaign.threads():
        raise InputError("--threads cannot change while the campaign runs: stop it first")
    campaign.folder.mkdir(parents=True, exist_ok=True)
    state.update({"source": str(Path(source).resolve()), **(grid or {})})
    if threads is not None:
        state["threads"] = threads
    if workers is not None:
        state["workers"] = workers
    state.setdefault("threads", DEFAULT_THREADS)
    results.write_json_atomic(campaign.state_path, state)
    wanted, running = campaign.workers(), campaign.holders()
    if len(running) >= wanted:
        pids = ", ".join(str(pid) for pid, _ in running.values())
        return f"the campaign is already running (pid {pids}); python -m bench campaign status"
    revision = git(source, "rev-parse", "HEAD")
    tree = tree_for(campaign, source, revision)
    processes = []
    with results.open_unlinked(campaign.log_path, "a") as log:
        for _ in range(wanted - len(running)):
            processes.append(subprocess.Popen(
                serve_command(campaign), cwd=tree, stdin=subprocess.DEVNULL, stdout=log,
                stderr=subprocess.STDOUT, start_new_session=True,
                env={**os.environ, "PYTHONUNBUFFERED": "1"}))
    deadline = time.monotonic() + 60  # until each holds a lock: two starts at once start `wanted`
    pids = {p.pid for p in processes}

    def holding() -> set[int]:
        return {pid for pid, _ in campaign.holders().values()} & pids
    while holding() != pids and any(p.poll() is None for p in processes) \
            and time.monotonic() < deadline:
        time.sleep(0.2)
    started = holding()
    if not started:
        if campaign.holders():
            return (f"the campaign is already running (pid {campaign.holder()}); "
                    "python -m bench campaign status")
        return f"the campaign process ended at once: see {campaign.log_path}"
    what = (f"{len(started)} worker(s) more, now {len(campaign.holders())}" if running
            else f"{len(started)} worker(s)")
    return (f"campaign started from {revision[:12]} ({what}, {state['threads']} thread(s) each, "
            f"nice 19); log: {campaign.log_path}")


def stop(campaign: Campaign, wait: float = 600) -> str:
    """Ask every worker to stop (its run checkpoints first) and wait for them."""
    running = campaign.holders()
    if not running:
        return "the campaign is not running"
    for pid, _ in running.values():
        if pid > 0:
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
    deadline = time.monotonic() + wait
    while campaign.holders() and time.monotonic() < deadline:
        time.sleep(0.5)
    if campaign.holders():
        pids = ", ".join(str(pid) for pid, _ in campaign.holders().values())
        raise InputError(f"the campaign (pid {pids}) did not stop within {wait:.0f} s")
    return "the campaign stopped; its runs keep their checkpoints and resume at the next start"


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
    """A campaign process (one worker): trains the schedule's next run that no other worker has
    claimed, until none is left or it is stopped."""

    def __init__(self, campaign: Campaign, runs: list[CampaignRun] | None = None):
        self.campaign = campaign
        self.runs = runs if runs is not None else schedule(campaign.state())
        self.stop = Stop()
        self.data = None
        from bench.run.environment import git_revision
        self.revision = git_revision()["revision"]

    def serve(self) -> int:
        campaign = self.campaign
        if not campaign.acquire(self.revision):
            campaign.log(f"every worker's slot is held ({campaign.workers()} worker(s) running)")
            return 0
        lowest_priority()
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
                    campaign.log(f"worker {campaign.slot}: moving to revision {head[:12]} "
                                 "(between runs)")
                    campaign.name_holder(head)
                    os.chdir(tree)
                    os.execvpe("nice", serve_command(campaign), campaign.hand_over_lock())
                chosen = self.next_run()
                if chosen is None and self.stop.requested:
                    break
                if chosen is None:
                    campaign.log(f"worker {campaign.slot}: nothing left to train at this revision "
                                 "(or the rest is another worker's): it ends")
                    return 0
                *chosen, claim = chosen
                try:
                    self.train(*chosen)
                finally:
                    claim.close()
            campaign.log("stopped")
            return 0
        finally:
            campaign.current_path.unlink(missing_ok=True)
            campaign.release()

    def remove_other_trees(self) -> None:
        """Worktrees of revisions no worker trains from (each worker's lock names its revision;
        while one does not, none is removed)."""
        in_use = {revision[:12] for _, revision in self.campaign.holders().values()}
        if not self.campaign.trees.is_dir() or "" in in_use:
            return
        with self.campaign.exclusive("trees"):
            for tree in self.campaign.trees.iterdir():
                if tree.name not in in_use | {self.revision[:12]} and not tree.is_symlink():
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
        """The fingerprint of ``run`` at this revision: computed once per revision, and reused
        from another revision when every source file the computing process had loaded is
        unchanged (a commit of results, documents or tests recomputes nothing)."""
        from bench.run.fingerprint import (ITERATIONS, TrainingFingerprint, loaded_sources,
                                           training_fingerprint)
        path = self.campaign.fingerprints / f"{self.revision}.json"
        found = TrainingFingerprint.from_dict(results.read_json(path).get(config.run_id))
        if found is not None:
            return found
        iterations = self.campaign.state().get("fingerprint_iterations", ITERATIONS)
        found = self.unchanged_fingerprint(config.run_id, iterations)
        sources = None
        if found is None:
            self.campaign.log(f"fingerprinting {run.label} at {self.revision[:12]}")
            found = training_fingerprint(config, self.load_data(), iterations)
            sources = loaded_sources()
        with self.campaign.exclusive("fingerprints"):  # another worker may add its own
            self.campaign.fingerprints.mkdir(parents=True, exist_ok=True)
            known = results.read_json(path)
            known[config.run_id] = found.to_dict()
            results.write_json_atomic(path, known)
            if sources is not None:
                by_sources = results.read_json(self.campaign.fingerprints / SOURCES_FILE)
                by_sources[config.run_id] = {"sources": sources, "revision": self.revision,
                                             "fingerprint": found.to_dict()}
                results.write_json_atomic(self.campaign.fingerprints / SOURCES_FILE, by_sources)
        return found

    def unchanged_fingerprint(self, run_id: str, iterations: int):
        """The run's last computed fingerprint when its source files are all unchanged and it
        was computed alike (iterations, torch, numerics), else None."""
        from bench.run.environment import numerics_fingerprint
        from bench.run.fingerprint import TrainingFingerprint, unchanged_sources

        import torch
        from bench.launch.carry import carried_fingerprints
        entry = results.read_json(self.campaign.fingerprints / SOURCES_FILE).get(run_id)
        if not isinstance(entry, dict):  # a fresh campaign folder: the repository's, if carried
            entry = carried_fingerprints(self.carried()).get(run_id)
        if not isinstance(entry, dict):
            return None
        found = TrainingFingerprint.from_dict(entry.get("fingerprint"))
        if found is None or (found.iterations, found.torch, found.numerics) != (
                iterations, torch.__version__, numerics_fingerprint()):
            return None
        return found if unchanged_sources(entry.get("sources")) else None

    def published_fingerprint(self, run: CampaignRun, run_id: str):
        from bench.launch.publish import published_fingerprint
        return published_fingerprint(self.published_folder(run), run_id)

    def published_folder(self, run: CampaignRun) -> Path:
        return publication_folder(run, self.paper())

    def paper(self) -> Path:
        return self.campaign.source() / "results" / "paper"

    def carried(self) -> Path:
        """What earlier machines carried over in the repository (bench/launch/carry.py)."""
        from bench.launch.carry import carry_folder
        return carry_folder(self.paper())

    def candidates(self) -> Iterator[CampaignRun]:
        """Stale published runs first (grid and studies), then the schedule in order; held runs
        never."""
        from bench.launch.publish import published_run_ids
        runnable = trainable(self.runs)
        published = [r for r in runnable
                     if r.config().run_id in published_run_ids(self.published_folder(r))]
        self.share_fingerprints(published)
        if self.stop.requested:
            return
        stale = [r for r in published if self.is_stale_published(r)]
        yield from stale
        yield from (r for r in runnable if r not in stale)

    def share_fingerprints(self, runs: list[CampaignRun]) -> None:
        """The fingerprints of ``runs`` at this revision, computed together with the other
        workers: each computes those no other is computing (a claim on each run's fingerprint),
        then waits for the rest. (Each computing all of them, in the same order at the same time,
        took two workers as long as one: 25 minutes for the published runs after a fresh start.)"""
        path = self.campaign.fingerprints / f"{self.revision}.json"
        others = []
        for run in runs:
            if self.stop.requested:
                return
            config = run.config()
            if config.run_id in results.read_json(path):
                continue
            claim = self.campaign.claim(config.run_id, FINGERPRINT_CLAIM)
            if claim is None:
                others.append((run, config))
                continue
            with claim:
                self.fingerprint(run, config)
        for run, config in others:
            if self.stop.requested:
                return
            with self.campaign.claim(config.run_id, FINGERPRINT_CLAIM, wait=True):
                self.fingerprint(run, config)  # computed by the other worker by now, as a rule

    def is_stale_published(self, run: CampaignRun) -> bool:
        config = run.config()
        published = self.published_fingerprint(run, config.run_id)
        return published is not None and published.matches(self.fingerprint(run, config)) is False

    def next_run(self):
        """The next run to train, its config, its fingerprint and this worker's claim on it."""
        others = self.campaign.runs_of_other_workers()  # a run started later: its claim says so
        for run in self.candidates():
            if self.stop.requested:
                return None
            config = run.config()
            if config.run_id in others:
                continue
            claim = self.campaign.claim(config.run_id)
            if claim is None:
                continue  # another worker's
            if chosen := self.worth_training(run, config):
                return (*chosen, claim)
            claim.close()
        return None

    def worth_training(self, run: CampaignRun, config):
        """(run, config, fingerprint) when the run is to be trained, else None."""
        fingerprint = self.fingerprint(run, config)
        published = self.published_fingerprint(run, config.run_id)
        if published is not None and published.matches(fingerprint) is not False:
            return None  # published and current (or not checkable on this machine)
        run_dir = results.runs_dir(self.campaign.results) / config.run_id
        record = self.campaign.training_record(config.run_id) or {}
        if results.is_complete(run_dir) and self.started_by(record, fingerprint):
            return None  # finished, waiting for publish
        if record.get("failed") and self.started_by(record, fingerprint):
            return None  # failed with this code: bench campaign status says why
        return run, config, fingerprint

    @staticmethod
    def started_by(record: dict, fingerprint) -> bool:
        from bench.run.fingerprint import TrainingFingerprint
        started = TrainingFingerprint.from_dict(record.get("fingerprint"))
        return started is not None and started.matches(fingerprint) is not False

    # --- training one run --------------------------------------------------------------------
    def close_open_segments(self) -> None:
        """Segments left open by a campaign process that was killed (not by a running worker):
        closed at their last update."""
        training = self.campaign.training
        others = self.campaign.runs_of_other_workers()
        for path in sorted(training.glob("*.json")) if training.is_dir() else []:
            record = results.read_json(path)
            if not (isinstance(record, dict) and record.get("segments")
                    and record["segments"][-1].get("open")) or path.stem in others \
                    or not results.is_plain_name(path.stem):
                continue
            claim = self.campaign.claim(path.stem)
            if claim is None:
                continue  # a running worker's
            with claim:
                record["segments"][-1]["open"] = False
                record["segments"][-1]["ended_by"] = "the campaign process was killed"
                self.campaign.write_training_record(path.stem, record)

    def restore_carried(self, run: CampaignRun, run_id: str, run_dir: Path) -> dict | None:
        """The run as another machine's campaign carried it in the repository (its folder and its
        training record, now this campaign's), or None when none is carried."""
        from bench.launch.carry import restore_run
        from bench.run.checkpoints import read_progress
        record = restore_run(self.carried(), run_id, run_dir)
        if record is not None:
            self.campaign.write_training_record(run_id, record)
            self.campaign.log(f"{run.label}: resuming the checkpoint carried in the repository "
                              f"(iteration {read_progress(run_dir / results.CHECKPOINT_FILE)})")
        return record

    def train(self, run: CampaignRun, config, fingerprint) -> None:
        from bench.run.build import iterations_per_epoch, run_data
        campaign = self.campaign
        run_dir = results.runs_dir(campaign.results) / config.run_id
        record = campaign.training_record(config.run_id) or {}
        if not (run_dir / results.CHECKPOINT_FILE).is_file():
            record = self.restore_carried(run, config.run_id, run_dir) or record
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
                   "worker": campaign.slot,
                   "from_iteration": trained_iterations(run_dir), "to_iteration": None,
                   "cpu_seconds": 0.0, "wall_seconds": 0.0,
                   "started": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
                   "open": True}
        segment["to_iteration"] = segment["from_iteration"]
        record["segments"].append(segment)
        record.pop("failed", None)
        campaign.write_training_record(config.run_id, record)
        command = [sys.executable, "-m", "bench", "run", *run.run_arguments(), "--results",
                   str(campaign.results), "--device", "cpu", "--no-together",
                   *evaluation_arguments(run)]
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
            "revision": self.revision, "worker": campaign.slot, "iterations_per_epoch": per_epoch,
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
                    now = datetime.datetime.now().astimezone()
                    done = trained_iterations(run_dir)
                    if segment.get("checkpointed") and done > segment["to_iteration"]:
                        # the rate of the last epoch alone: the whole segment's mixes the hours
                        # the machine was busy (the campaign yields to all else) with idle ones
                        seconds = (now - _time(segment["checkpointed"])).total_seconds()
                        segment["last_epoch_rate"] = round(
                            (done - segment["to_iteration"]) / max(seconds, 1), 3)
                    segment["to_iteration"] = done
                    segment["checkpointed"] = now.isoformat(timespec="seconds")
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
    running = campaign.holders()
    state = campaign.state()
    lines.append(f"campaign folder: {campaign.folder}")
    pids = ", ".join(str(pid) for pid, _ in running.values())
    lines.append(f"process: {f'running, pid {pids}' if running else 'not running'}; "
                 f"{len(running) or campaign.workers()} worker(s) of {campaign.workers()}, "
                 f"{campaign.threads()} thread(s) each, nice 19")
    training = set()
    for slot in running:
        current = results.read_json(campaign.current_path_of(slot))
        mark = f"worker {slot}: " if len(running) > 1 else ""
        if isinstance(current, dict) and current.get("run_id"):
            training.add(current["run_id"])
            lines += [mark + line for line in current_run_lines(campaign, current)]
        else:
            lines.append(f"{mark}between runs (choosing the next one, or fingerprinting it): see "
                         "the log")
    if "source" not in state:
        return lines + ["never started: python -m bench campaign start"]
    head_fingerprints = {}
    try:
        head = git(campaign.source(), "rev-parse", "HEAD")
        head_fingerprints = results.read_json(campaign.fingerprints / f"{head}.json")
    except InputError:
        head = None
    states = RunStates(campaign, campaign.source() / "results" / "paper", training,
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

    def __init__(self, campaign: Campaign, paper: Path, training: set[str],
                 head_fingerprints: dict):
        self.campaign = campaign
        self.paper = paper
        self.training = training  # the runs the workers train now
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
        from bench.launch.carry import carried_record, carry_folder
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
        if run_id in self.training:
            return "training"
        if record.get("failed"):
            return f"failed ({record['failed']})"
        if run.held:
            return f"held: {HELD[run.method]}"
        if record.get("segments"):
            return f"checkpointed at iteration {record['segments'][-1].get('to_iteration')}"
        carried = carried_record(carry_folder(self.paper), run_id)
        if carried and carried["segments"]:
            return (f"checkpointed at iteration {carried['segments'][-1].get('to_iteration')} "
                    "(carried in results/campaign/: resumed from there)")
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
        last = segment.get("last_epoch_rate")
        last = last if isinstance(last, (int, float)) and last > 0 else None
        left = (total - done) / (last or rate)
        end = datetime.datetime.now().astimezone() + datetime.timedelta(seconds=left)
        rates = (f"{last:.2f} iterations/s in its last epoch, {rate:.2f} in this segment" if last
                 else f"{rate:.2f} iterations/s in this segment")
        lines.append(f"rate: {rates} (the same method alone, one "
                     f"thread, in its fingerprint: {fp_rate:.2f}/s); training ends about "
                     f"{end:%Y-%m-%d %H:%M} at the {'last epoch' if last else 'segment'}'s rate "
                     "(evaluations then take minutes more)")
    else:
        lines.append(f"rate: no epoch finished in this segment yet (the method alone, one thread, "
                     f"in its fingerprint: {fp_rate:.2f} iterations/s)")
    return lines


def _time(text) -> datetime.datetime | None:
    try:
        return datetime.datetime.fromisoformat(text) if isinstance(text, str) else None
    except ValueError:
        return None
