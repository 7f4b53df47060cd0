"""`--executor slurm`: one SLURM job per run, submitted as one job array through submitit.

A job runs `python -m bench run` for its single run as a child process (the same command as a local
run, bench/launch/executors.py), so it resumes from the run's checkpoint; this module never imports
bench.cli. A job that hits its time limit or is pre-empted is requeued by submitit's
checkpoint/requeue mechanism (SIGUSR2 before the limit, then `scontrol requeue`) and resumes from
the run's last checkpoint; a job cancelled with `scancel` gets SIGTERM, checkpoints at the next
iteration and ends; submitting the grid again resumes it. The record of each submission
is results/jobs/slurm/<run id>.json (job id, log paths); the job links its logs from the run's
folder (job.json).
"""
from __future__ import annotations

import contextlib
import dataclasses
import datetime
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench.errors import ClusterError, ConfigError, first_line
from bench.launch.executors import JOBS_DIR, RunRequest, link_job
from bench.lifetime import child_environment
from bench.store import records, results
from bench.terminal import printable

SLURM_DIR = "slurm"
CLIENT_COMMANDS = ("sbatch", "squeue", "scontrol", "scancel")
FINISHED_STATES = (results.COMPLETE, results.FAILED)
POLL_SECONDS = 3.0


@dataclasses.dataclass(frozen=True)
class SlurmOptions:
    """Resources of each job. Flags win over the --slurm-config file, which wins over these."""
    partition: str | None = None  # None: the cluster's default partition
    time_minutes: int = 24 * 60
    cpus_per_job: int = 1
    gpus_per_job: int = 0
    mem_gb: float | None = None  # None: the partition's default
    array_parallelism: int | None = None  # at most this many jobs at once (--jobs); None: no limit
    signal_delay_s: int = 90  # SIGUSR2 this long before the time limit: checkpoint and requeue
    sbatch: dict = dataclasses.field(default_factory=dict)  # any other sbatch option, e.g. account

    @classmethod
    def from_sources(cls, config_file: Path | None, flags: dict[str, Any]) -> "SlurmOptions":
        values: dict[str, Any] = {}
        if config_file is not None:
            try:
                values = json.loads(Path(config_file).read_text())
            except (OSError, ValueError) as error:
                raise ConfigError(f"--slurm-config {config_file}: {first_line(error)}") from None
            if not isinstance(values, dict):
                raise ConfigError(f"--slurm-config {config_file}: expected a JSON object")
        values.update({k: v for k, v in flags.items() if v is not None and v != {}})
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(f"unknown SLURM option(s) {', '.join(unknown)} (valid: {', '.join(sorted(known))})")
        options = cls(**values)
        for name in ("time_minutes", "cpus_per_job"):
            if not isinstance(getattr(options, name), int) or getattr(options, name) < 1:
                raise ConfigError(f"SLURM option {name} must be a positive integer, got {getattr(options, name)!r}")
        if not isinstance(options.gpus_per_job, int) or options.gpus_per_job < 0:
            raise ConfigError(f"SLURM option gpus_per_job must be a non-negative integer, got {options.gpus_per_job!r}")
        return options

    def submitit_parameters(self) -> dict[str, Any]:
        threads = str(self.cpus_per_job)
        parameters = {
            "time": self.time_minutes, "cpus_per_task": self.cpus_per_job, "ntasks_per_node": 1,
            "signal_delay_s": self.signal_delay_s, "job_name": "bench",
            # The job imports bench from the repository (it is not installed) and uses its CPUs.
            "setup": [f"cd {results.REPO_ROOT}",
                      f"export PYTHONPATH={results.REPO_ROOT}${{PYTHONPATH:+:$PYTHONPATH}}",
                      f"export OMP_NUM_THREADS={threads} MKL_NUM_THREADS={threads}"],
            "additional_parameters": dict(self.sbatch),
        }
        if self.partition:
            parameters["partition"] = self.partition
        if self.gpus_per_job:
            parameters["gpus_per_node"] = self.gpus_per_job
        if self.mem_gb:
            parameters["mem"] = f"{int(self.mem_gb * 1024)}M"
        if self.array_parallelism:
            parameters["array_parallelism"] = self.array_parallelism
        return parameters


def _command(*argv: str, timeout: float = 30) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise ClusterError(f"{argv[0]} did not answer within {timeout:.0f} s: is the SLURM "
                         "controller reachable?") from None


def check_cluster() -> None:
    """SLURM's client commands exist and the controller answers; else one line (exit 2)."""
    missing = [c for c in CLIENT_COMMANDS if shutil.which(c) is None]
    if missing:
        raise ClusterError(f"--executor slurm: {', '.join(missing)} not found on PATH (SLURM's client "
                         "commands are needed; scripts/slurm_single_node.sh starts a one-machine "
                         "SLURM for trying it)")
    import importlib.util
    if importlib.util.find_spec("submitit") is None:
        raise ClusterError("--executor slurm needs submitit: pip install -r requirements.txt")
    ping = _command("scontrol", "ping")
    if ping.returncode != 0 or "DOWN" in ping.stdout or "UP" not in ping.stdout:
        answer = first_line(RuntimeError((ping.stdout + ping.stderr).strip() or "no answer"))
        raise ClusterError(f"--executor slurm: the SLURM controller does not answer: {answer}")


def queued_jobs() -> dict[str, tuple[str, str]]:
    """{job id: (state, reason)} of the jobs SLURM still knows (array tasks one by one)."""
    out = _command("squeue", "--noheader", "--array", "--format=%i|%T|%r")
    if out.returncode != 0:
        raise ClusterError(f"squeue failed: {first_line(RuntimeError(out.stderr.strip() or 'no output'))}")
    jobs = {}
    for line in out.stdout.splitlines():
        job_id, state, reason = (line.split("|") + ["", ""])[:3]
        jobs[job_id.strip()] = (state.strip().lower(), reason.strip())
    return jobs


def record_dir(results_dir: Path) -> Path:
    return Path(results_dir) / JOBS_DIR / SLURM_DIR


def read_record(results_dir: Path, run_id: str) -> dict | None:
    """A job's record (records.JOB_SCHEMA: its job id and log paths, each text), or None when
    absent; one that is not a record bench wrote (a link, not JSON, another shape) is an
    UnusableFile naming it and its field."""
    return records.read_record(record_dir(results_dir) / f"{run_id}.json", records.JOB_SCHEMA)


FORWARDED_SIGNALS = (signal.SIGINT, signal.SIGTERM)  # the run checkpoints and stops on these


class RunJob:
    """What a SLURM job executes: `python -m bench <argv>` for one run, in a child process.
    Checkpointable: on SIGUSR2 (the time limit is near) or pre-emption submitit calls
    ``checkpoint`` and requeues the same call.

    Signals: SIGTERM/SIGINT that reach the job process are forwarded to the run, which checkpoints
    at the next iteration and exits 128 + the signal. The run ignores submitit's requeue signal
    (SIGUSR2, which SLURM sends to every process of the job step); only the job process handles
    it. When submitit's handler then requeues the job and exits (SystemExit raised inside the
    wait), the job first sends the run SIGTERM and waits for it to checkpoint and end, so that the
    requeued job resumes from that checkpoint and never finds the run still held by this one."""

    def __init__(self, results_dir: Path):
        self.results_dir = str(Path(results_dir).resolve())

    def __call__(self, run_id: str, argv: tuple[str, ...]) -> str:
        import submitit
        environment = submitit.JobEnvironment()
        record = {"executor": "slurm", "job_id": environment.job_id,
                  "stdout": str(environment.paths.stdout).replace("%t", "0"),
                  "stderr": str(environment.paths.stderr).replace("%t", "0"),
                  "started": datetime.datetime.now().astimezone().isoformat(),
                  "restarts": int(os.environ.get("SLURM_RESTART_COUNT", "0") or 0)}
        code = run_child([sys.executable, "-m", "bench", *argv], ignore=_requeue_signal(submitit))
        link_job(Path(self.results_dir), run_id, {**record, "exit_code": code})
        if code != 0:
            how = f"was killed by {_signal_name(-code)}" if code < 0 else f"exited with code {code}"
            raise RuntimeError(f"bench run {run_id} {how}")
        return run_id

    def checkpoint(self, *args, **kwargs):
        import submitit
        # The run checkpoints itself after every epoch and when it is stopped by SIGTERM (which
        # __call__ sends it when submitit requeues); the requeued job resumes from there.
        return submitit.helpers.DelayedSubmission(self, *args, **kwargs)


def _requeue_signal(submitit) -> signal.Signals | None:
    """The signal submitit's job process handles by checkpointing and requeuing (SIGUSR2 unless
    $SUBMITIT_PREEMPT_SIGNAL says otherwise)."""
    return getattr(signal, "SIG" + str(getattr(submitit.JobEnvironment, "USR_SIG", "USR2")), None)


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def _spawn(command: list[str], ignore: signal.Signals | None) -> subprocess.Popen:
    """Start ``command`` from the repository root, with this process's stdout/stderr, its
    environment and the signal ``ignore`` ignored (an ignored disposition survives exec). The
    signal stays blocked here while its handler is swapped, so that one arriving meanwhile is
    delivered to this process's handler afterwards, not lost; the child inherits the mask too
    (blocked and ignored: it never acts on that signal). The child gets SIGTERM if this process
    dies (bench/lifetime.py): a job killed outright leaves no run training on."""
    for stream in (sys.stdout, sys.stderr):  # our lines before the run's, in the job's logs
        stream.flush()
    if ignore is None:
        return subprocess.Popen(command, cwd=results.REPO_ROOT, env=child_environment(os.environ))
    signal.pthread_sigmask(signal.SIG_BLOCK, {ignore})
    try:
        handler = signal.signal(ignore, signal.SIG_IGN)
        try:
            return subprocess.Popen(command, cwd=results.REPO_ROOT, env=child_environment(os.environ))
        finally:
            signal.signal(ignore, signal.SIG_DFL if handler is None else handler)
    finally:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {ignore})


def run_child(command: list[str], ignore: signal.Signals | None = None) -> int:
    """Run ``command`` (see _spawn) to its end and return its exit status (negative: killed by
    that signal), forwarding SIGINT and SIGTERM to it meanwhile. If the wait is broken by an
    exception (submitit's requeue handler exits with SystemExit), the child gets SIGTERM and is
    waited for before the exception goes on: this process never ends before its child."""
    child = _spawn(command, ignore)

    def forward(number, frame):
        child.send_signal(number)  # a no-op once the child has been reaped

    previous = {number: signal.signal(number, forward) for number in FORWARDED_SIGNALS}
    try:
        try:
            return child.wait()
        except BaseException as error:
            print(f"bench: job stopping ({type(error).__name__}): sending SIGTERM to the run "
                  f"(pid {child.pid}) so that it checkpoints", file=sys.stderr, flush=True)
            child.send_signal(signal.SIGTERM)
            while child.poll() is None:
                try:
                    child.wait()
                except BaseException:  # e.g. a second requeue signal: still wait for the run
                    pass
            raise
    finally:
        for number, handler in previous.items():  # None: a handler not set from Python
            signal.signal(number, signal.SIG_DFL if handler is None else handler)


def submit(requests: list[RunRequest], options: SlurmOptions, results_dir: Path) -> list[RunRequest]:
    """Submit one job array for the requests that are neither complete nor already queued;
    returns those submitted. SLURM's refusal (bad partition, resources) is one line, exit 2."""
    import submitit
    from submitit.core.utils import FailedJobError

    check_cluster()
    queued = queued_jobs()
    # nothing is written through a link (checked before anything is written or submitted)
    folder = record_dir(results_dir) / "logs"
    results.no_links_for([results.runs_dir(results_dir) / r.run_id for r in requests],
                         results.runs_dir(results_dir), Path(results_dir) / JOBS_DIR,
                         record_dir(results_dir), folder)
    todo = []
    for request in requests:
        run_dir = results.runs_dir(results_dir) / request.run_id
        record = read_record(results_dir, request.run_id)
        if results.is_complete(run_dir):
            print(f"skip {request.run_id}: already complete in {run_dir}")
        elif record is not None and record.get("job_id") in queued:
            print(f"skip {request.run_id}: already queued as job {record['job_id']} "
                  f"({queued[record['job_id']][0]})")
        else:
            todo.append(request)
    if not todo:
        return []
    created = [p for p in (Path(results_dir), Path(results_dir) / JOBS_DIR, record_dir(results_dir), folder)
               if not p.exists()]
    earlier = set(folder.glob("*")) | set(folder.glob(".*"))
    executor = submitit.SlurmExecutor(folder=folder, max_num_timeout=1000)
    executor.update_parameters(**options.submitit_parameters())
    job = RunJob(results_dir)
    try:
        with contextlib.redirect_stderr(io.StringIO()):  # submitit echoes sbatch's stderr
            jobs = executor.map_array(job, [r.run_id for r in todo], [r.argv for r in todo])
    except (FailedJobError, subprocess.CalledProcessError, OSError) as error:
        for leftover in (set(folder.glob("*")) | set(folder.glob(".*"))) - earlier:
            leftover.unlink()
        for directory in reversed(created):  # nothing submitted: leave no trace either
            if directory.is_dir() and not any(directory.iterdir()):
                directory.rmdir()
        raise ClusterError(f"SLURM refused the submission: {_refusal(error)}") from None
    submitted = datetime.datetime.now().astimezone().isoformat()
    for request, slurm_job in zip(todo, jobs):
        results.write_json_atomic(record_dir(results_dir) / f"{request.run_id}.json", {
            "run_id": request.run_id, "job_id": slurm_job.job_id, "submitted": submitted,
            "stdout": str(slurm_job.paths.stdout), "stderr": str(slurm_job.paths.stderr),
            "argv": ["python", "-m", "bench", *request.argv]})
        print(f"submitted {request.run_id} as job {slurm_job.job_id}")
    return todo


def _refusal(error: Exception) -> str:
    """sbatch's own error line out of submitit's exception text."""
    text = str(error)
    for line in text.splitlines():
        if "error:" in line:
            return line.strip().split("error:", 1)[-1].strip() or line.strip()
    return first_line(error)


@dataclasses.dataclass(frozen=True)
class RunState:
    run_id: str
    state: str  # complete, failed, pending, running, requeued, ..., lost, not submitted
    reason: str
    log: str


def run_state(results_dir: Path, run_id: str, queued: dict[str, tuple[str, str]]) -> RunState:
    """A run's state: SLURM's while its job is queued (a resubmitted run may still hold the
    status of its last attempt), then its folder's (complete, failed), else lost."""
    status = records.RunStatus.read(results.runs_dir(results_dir) / run_id)
    record = read_record(results_dir, run_id) or {}
    log = record.get("stdout") or ""
    job_id = record.get("job_id")
    if job_id in queued:
        state, reason = queued[job_id]
        return RunState(run_id, state, "" if reason in ("None", "") else reason, log)
    if status.state in FINISHED_STATES:
        return RunState(run_id, status.state, status.reason or "", log)
    if job_id is None:
        return RunState(run_id, "not submitted", "", log)
    return RunState(run_id, "lost", f"job {job_id} ended without a result (cancelled, killed or "
                                    "out of its time limit without requeue): submit again to resume",
                    log)


def wait(requests: list[RunRequest], results_dir: Path) -> int:
    """Show progress until every run is complete, failed or lost; 0 when all are complete."""
    from tqdm import tqdm
    ids = [r.run_id for r in requests]
    bar = tqdm(total=len(ids), unit="run", desc="SLURM jobs")
    ended: dict[str, RunState] = {}
    try:
        while len(ended) < len(ids):
            queued = queued_jobs()
            counts: dict[str, int] = {}
            for run_id in ids:
                if run_id in ended:
                    continue
                state = run_state(results_dir, run_id, queued)
                if state.state in (*FINISHED_STATES, "lost"):
                    ended[run_id] = state
                    bar.update()
                    bar.write(printable(  # a status.json's reason: from the run's folder
                        f"{state.state} {run_id}" + (f": {state.reason}" if state.reason else "")
                        + (f" (log: {state.log})" if state.state != results.COMPLETE else "")))
                else:
                    counts[state.state] = counts.get(state.state, 0) + 1
            bar.set_postfix_str(", ".join(f"{n} {s}" for s, n in sorted(counts.items())))
            if len(ended) < len(ids):
                time.sleep(POLL_SECONDS)
    finally:
        bar.close()
    bad = [s for s in ended.values() if s.state != results.COMPLETE]
    if bad:
        print(f"bench: {len(bad)} of {len(ids)} runs did not complete: "
              f"{', '.join(s.run_id for s in bad)} (python -m bench status)", file=sys.stderr)
        return 1
    return 0


def status_table(results_dir: Path) -> list[RunState]:
    """Every run folder's or SLURM record's state; SLURM is asked only when it is reachable."""
    ids = {p.name for p in results.run_folders(results_dir)}
    results.not_a_link(Path(results_dir) / JOBS_DIR, record_dir(results_dir))
    ids |= {p.stem for p in record_dir(results_dir).glob("*.json")}
    queued: dict[str, tuple[str, str]] = {}
    if shutil.which("squeue") and any(read_record(results_dir, i) for i in ids):
        try:
            queued = queued_jobs()
        except ClusterError:
            queued = {}
    states = []
    for run_id in sorted(ids):
        state = run_state(results_dir, run_id, queued)
        if state.state == "not submitted":
            state = dataclasses.replace(state, state="unfinished",
                                        reason="no status: interrupted, or running locally")
        states.append(state)
    return states
