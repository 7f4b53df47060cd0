"""Where runs execute: in this process one after another (the default), in N child processes
(`--jobs N`), or as SLURM jobs (`--executor slurm`, bench/launch/slurm.py).

Every executor hands a run to the same code: `python -m bench run` with arguments that select
exactly that run (``RunRequest.argv``), so a run trained anywhere is keyed by its run id, resumes
from its checkpoint and writes its folder exactly as a local run does.
"""
from __future__ import annotations

import dataclasses
import datetime
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from bench.lifetime import child_environment
from bench.spec.config import RunConfig
from bench.store import results
from bench.terminal import printable

JOBS_DIR = "jobs"  # results/jobs/: job logs and records, per executor
JOB_FILE = "job.json"  # in a run's folder: where the job that trained it logged


@dataclasses.dataclass(frozen=True)
class RunRequest:
    config: RunConfig
    argv: tuple[str, ...]  # `bench` arguments that run exactly this run

    @property
    def run_id(self) -> str:
        return self.config.run_id


def link_job(results_dir: Path, run_id: str, record: dict) -> None:
    """Write ``record`` (executor, log paths, job id) into the run's folder, when it exists."""
    run_dir = results.runs_dir(results_dir) / run_id
    if run_dir.is_dir() and not run_dir.is_symlink():
        results.write_json_atomic(run_dir / JOB_FILE, record)


def _last_line(path: Path) -> str:
    text = results.read_run_file(path, results.TABLE_BYTES_LIMIT)
    lines = [line for line in (text or "").splitlines() if line.strip()]
    return lines[-1].split("\r")[-1].strip() if lines else ""




def run_concurrently(requests: list[RunRequest], jobs: int, results_dir: Path) -> int:
    """Run ``requests`` in at most ``jobs`` child processes at once, each with cores // jobs
    threads; returns the exit code of the whole (0; 2 if a child refused its input, e.g. an unsafe
    checkpoint; else 1 if a run failed; 128 + signal number when SIGINT/SIGTERM stopped them:
    each child checkpoints first)."""
    from tqdm import tqdm

    log_dir = Path(results_dir) / JOBS_DIR / "local"
    # nothing is written through a link (checked before anything is)
    results.no_links_for([results.runs_dir(results_dir) / r.run_id for r in requests],
                         results.runs_dir(results_dir), log_dir.parent, log_dir)
    for request in requests:  # left by a process killed mid-write (a parent's job.json too)
        if (results.runs_dir(results_dir) / request.run_id).is_dir():
            results.remove_stale_temporaries(results.runs_dir(results_dir) / request.run_id)
    complete = [r for r in requests if results.is_complete(results.runs_dir(results_dir) / r.run_id)]
    for request in complete:
        print(f"skip {request.run_id}: already complete")
    requests = [r for r in requests if r not in complete]
    log_dir.mkdir(parents=True, exist_ok=True)
    threads = max(1, (os.cpu_count() or 1) // jobs)
    environment = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    pending, running, failed, refused = list(requests), {}, [], []
    stopped: list[int] = []

    def forward(number, frame):
        stopped.append(number)
        for child in running:
            child.send_signal(number)

    previous = {s: signal.signal(s, forward) for s in (signal.SIGINT, signal.SIGTERM)}
    bar = tqdm(total=len(requests), unit="run", desc=f"runs ({jobs} at a time, {threads} threads each)")
    try:
        while running or (pending and not stopped):
            while pending and len(running) < jobs and not stopped:
                request = pending.pop(0)
                log = log_dir / f"{request.run_id}.log"
                with results.open_unlinked(log, "w") as out:
                    child = subprocess.Popen([sys.executable, "-m", "bench", *request.argv],
                                             cwd=results.REPO_ROOT, env=child_environment(environment),
                                             stdout=out, stderr=subprocess.STDOUT,
                                             stdin=subprocess.DEVNULL)
                running[child] = (request, log, datetime.datetime.now().astimezone().isoformat())
            for child in [c for c in running if c.poll() is not None]:
                request, log, started = running.pop(child)
                link_job(results_dir, request.run_id, {
                    "executor": "local", "log": str(log), "started": started,
                    "exit_code": child.returncode, "argv": ["python", "-m", "bench", *request.argv]})
                if child.returncode == 0:
                    bar.write(f"done {request.run_id} (log: {log})")
                elif child.returncode != 128 + (stopped[0] if stopped else 0):
                    failed.append(request.run_id)
                    if child.returncode == 2:
                        refused.append(request.run_id)
                    bar.write(printable(f"bench: run {request.run_id} failed: {_last_line(log)} "
                                        f"(log: {log})"))
                bar.update()
            time.sleep(0.2)
    finally:
        bar.close()
        for number, handler in previous.items():
            signal.signal(number, handler)
    if stopped:
        print(f"bench: interrupted: {len(running) + len(pending)} run(s) not finished; the stopped "
              "ones checkpointed; rerun the same command to resume", file=sys.stderr)
        return 128 + stopped[0]
    if failed:
        print(f"bench: {len(failed)} of {len(requests)} runs failed: {', '.join(failed)}", file=sys.stderr)
        return 2 if refused else 1
    return 0
