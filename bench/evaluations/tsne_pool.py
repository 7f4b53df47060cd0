"""t-SNE in CPU worker processes, for runs trained together on a GPU (bench/run/together.py).

openTSNE runs on the CPU. A run's embeddings are submitted as soon as it has trained and been
encoded, so they are computed while the GPU trains the runs still training and fits the probes.
Each embedding is one process (``python -m bench.evaluations.tsne_fit``, given its points as a .npy file, no
pickle) using a fixed number of threads, recorded in evaluation.json and figures.json since
openTSNE's result depends on it: with the same number, an embedding is the one the run's own
process computes. The run's ``tsne`` evaluation (bench/evaluations/tsne.py) takes the embeddings
through ``Context.started``.
At most ``workers`` of them run at once. Their files go through a temporary folder named after
this process; a command killed with SIGKILL cannot remove its own, so each new pool removes those
of dead processes.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import threading
import uuid
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import numpy as np

from bench.evaluations.tsne import TsneInputs, TsneWork
from bench.lifetime import alive

PACKAGE_ROOT = Path(__file__).resolve().parents[2]  # where `bench` is imported from


def default_workers(runs: int, cores: int | None = None) -> int:
    """One worker per run, leaving a core to the process that drives the GPU, and at least two
    threads per worker."""
    cores = cores or os.cpu_count() or 1
    return max(1, min(runs, (cores - 1) // 2))


def threads_per_worker(workers: int, cores: int | None = None) -> int:
    cores = cores or os.cpu_count() or 1
    return max(1, (cores - 1) // workers)


FOLDER_PREFIX = "bench-tsne-"  # then the owning process's pid and "-"


def remove_stale_folders(parent: Path | None = None) -> list[Path]:
    """Delete the temporary folders that pools of this user's dead processes left in ``parent``
    (by default the system's temporary folder): a command killed with SIGKILL never reaches its
    clean-up. A live process's folder, another user's, a link and anything else are kept."""
    parent = Path(parent or tempfile.gettempdir())
    user = os.getuid() if hasattr(os, "getuid") else None  # no user ids on Windows
    removed = []
    for folder in parent.glob(f"{FOLDER_PREFIX}*-*"):
        pid = folder.name[len(FOLDER_PREFIX):].split("-", 1)[0]
        try:
            if (not pid.isdigit() or alive(int(pid)) or folder.is_symlink() or not folder.is_dir()
                    or (user is not None and folder.stat().st_uid != user)):
                continue
        except OSError:
            continue
        shutil.rmtree(folder, ignore_errors=True)
        removed.append(folder)
    return removed


class TsnePool:
    """At most ``workers`` embeddings at once, each in its own process with ``threads``."""

    def __init__(self, workers: int, threads: int):
        self.threads = threads
        remove_stale_folders()
        self.folder = tempfile.TemporaryDirectory(prefix=f"{FOLDER_PREFIX}{os.getpid()}-")
        self.slots = ThreadPoolExecutor(workers, thread_name_prefix="t-SNE")
        self.running: set[subprocess.Popen] = set()
        self.lock = threading.Lock()
        self.closed = False

    def submit(self, inputs: TsneInputs) -> TsneWork:
        embeddings: dict[str, Future] = {code: self.slots.submit(self._embed, values, inputs.seed)
                                         for code, values in inputs.codes.items()}
        return TsneWork(inputs, embeddings, self.threads)

    def _embed(self, points: np.ndarray, seed: int) -> np.ndarray:
        name = Path(self.folder.name) / uuid.uuid4().hex
        points_file, embedding_file = name.with_suffix(".points.npy"), name.with_suffix(".xy.npy")
        np.save(points_file, np.ascontiguousarray(points, dtype=np.float32), allow_pickle=False)
        environment = {**os.environ, "PYTHONPATH": os.pathsep.join(
            filter(None, [str(PACKAGE_ROOT), os.environ.get("PYTHONPATH")]))}
        with self.lock:
            if self.closed:
                raise RuntimeError("the t-SNE workers were stopped")
            process = subprocess.Popen(
                [sys.executable, "-m", "bench.evaluations.tsne_fit", str(points_file), str(embedding_file),
                 str(seed), str(self.threads)], env=environment, stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
            self.running.add(process)
        try:
            _, errors = process.communicate()
        finally:
            with self.lock:
                self.running.discard(process)
        if process.returncode != 0:
            last = errors.strip().splitlines()[-1] if errors.strip() else "no message"
            raise RuntimeError(f"t-SNE worker exited with {process.returncode}: {last}")
        try:
            return np.load(embedding_file, allow_pickle=False)
        finally:
            points_file.unlink(missing_ok=True)
            embedding_file.unlink(missing_ok=True)

    def close(self) -> None:
        """Stop now: embeddings not started are dropped and running ones ended (after an
        interruption the command exits at once; otherwise every embedding is done by now)."""
        with self.lock:
            self.closed = True
            for process in self.running:
                process.terminate()
        self.slots.shutdown(wait=True, cancel_futures=True)
        self.folder.cleanup()
