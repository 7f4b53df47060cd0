"""A run's checkpoint and lock, and loading a trained method from its folder.

A checkpoint holds tensors, numbers, strings and plain containers only (random generator states
as tensors), and is read with ``torch.load(weights_only=True)``: loading one never runs code from
the file. A checkpoint holding anything else (a results folder is something people share) is
refused unread: UnsafeCheckpoint, one line, exit code 2.
"""
from __future__ import annotations

import fcntl
import os
import pickle
from pathlib import Path

import torch

from bench import results
from bench.build import build, run_data
from bench.config import RunConfig
from bench.errors import UsageError, first_line
from bench.records import RunRecord, load_run
from bench.train import Progress
from datasets import ImageSet
from methods import Method


class CorruptRun(Exception):
    """A run folder or checkpoint that cannot be resumed."""


class UnsafeCheckpoint(UsageError):
    """A checkpoint holding objects other than tensors and plain containers: refused unread."""


class RunLock:
    """An exclusive lock on one run id (``locks/<run-id>.lock`` beside ``runs/``), held while a
    process works on the run (trains or evaluates it).

    flock locks die with their process, SIGKILL included: a lock left by a dead process is free
    for the next one. (flock may not be honoured across machines on some network filesystems.)"""

    def __init__(self, run_dir: Path):
        self.path = Path(run_dir).parent.parent / "locks" / f"{Path(run_dir).name}.lock"
        self.handle = None

    def acquire(self) -> bool:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.handle = self.path.open("a+")
        try:
            fcntl.flock(self.handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self.handle.close()
            self.handle = None
            return False
        self.handle.seek(0)
        self.handle.truncate()
        self.handle.write(f"{os.getpid()}\n")
        self.handle.flush()
        return True

    def holder(self) -> str:
        try:
            return self.path.read_text().strip() or "?"
        except OSError:
            return "?"

    def release(self) -> None:
        if self.handle is not None:
            fcntl.flock(self.handle, fcntl.LOCK_UN)
            self.handle.close()
            self.handle = None


def save_checkpoint(path: Path, config: RunConfig, method: Method, data_state: dict,
                    progress: Progress) -> None:
    state = {"config": config.to_dict(), "method": method.state_dict(), "data": data_state,
             "progress": progress.state_dict()}
    results.write_atomic(path, lambda tmp: torch.save(state, tmp))


def load_checkpoint(path: Path, config: RunConfig) -> dict:
    """{"progress", "method", "data"} of the checkpoint at ``path``, written for ``config``."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        if "weights only" not in str(error).lower():
            raise CorruptRun(f"corrupt checkpoint {path} ({first_line(error)})") from None
        raise UnsafeCheckpoint(
            f"refused checkpoint {path}: it holds objects other than tensors, numbers and plain "
            "containers, which could run code when loaded; it was not loaded (delete it, or rerun "
            "with --restart to train the run again)") from None
    except Exception as error:  # noqa: BLE001 - any unreadable checkpoint is reported the same way
        raise CorruptRun(f"corrupt checkpoint {path} ({first_line(error)})") from None
    try:
        progress = state["progress"]
        method_state, data_state = state["method"], state["data"]
    except Exception as error:  # noqa: BLE001 - any unreadable checkpoint is reported the same way
        raise CorruptRun(f"corrupt checkpoint {path} ({first_line(error)})") from None
    if state.get("config") != config.to_dict():
        raise CorruptRun(f"checkpoint {path} was written for another config")
    return {"progress": Progress(**progress), "method": method_state, "data": data_state}


def load_method(path: Path | str, device: torch.device | str = "cpu",
                data: ImageSet | None = None) -> Method:
    """The trained method of the complete run folder ``path``, on ``device``, in the state its
    evaluations saw. ``data`` (the run's dataset, loaded) gives the image shape and the training
    pairs; without it the dataset is loaded from its default place."""
    record = path if isinstance(path, RunRecord) else load_run(path)
    if not record.complete:
        raise UsageError(f"{record.dir} is not a complete run (state: {record.state})")
    config = RunConfig.from_dict(record.config)
    if data is None:
        from datasets import DATASETS
        data = DATASETS[config.dataset](None, torch.device("cpu"))
    checkpoint = record.path(results.CHECKPOINT_FILE)
    try:
        state = load_checkpoint(checkpoint, config)
    except CorruptRun as error:
        raise UsageError(str(error)) from None
    method, _ = build(config, run_data(config, data), torch.device(device))
    method.load_state_dict(state["method"])
    return method
