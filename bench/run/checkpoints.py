"""A run's checkpoint: what it holds, saving it, and reading it back.

A checkpoint holds tensors, numbers, strings and plain containers only (random generator states
as tensors), and is read with ``torch.load(weights_only=True)``: loading one never runs code from
the file. A checkpoint holding anything else (a results folder is something people share) is
refused unread: UnsafeCheckpoint, one line, exit code 2.

Checkpoints move between devices. Tensors load on the CPU and go where the run is built. The
random generators are the exception: a CUDA generator's state (a seed and an offset, 16 bytes)
means nothing to a CPU generator (5,056 bytes of Mersenne Twister), and the two draw different
numbers from the same seed anyway. So each generator's state is saved with the kind of device
that wrote it, and a run resumed on another kind of device seeds each of its streams afresh from
the run's seed, the stream's name and the iteration it resumes at (``restart_seed``), and says so
in one line: deterministic, but from there on not the run it would have been on the first device.
Evaluation and ``load_method`` (bench/run/trained_method.py) never read the generators.

A checkpoint also holds each of its run's monitors' states (bench/run/monitors.py), by name; one
written before monitors had states holds none, and still resumes (``SavedRun.monitors`` None).
"""
from __future__ import annotations

import dataclasses
import pickle
from pathlib import Path

import torch

from bench.errors import CorruptRun, UnusableFile, first_line
from bench.spec.seeds import derive_seed
from bench.spec.config import RunConfig
from bench.run.train import Progress
from bench.store import results
from datasets.samplers import PairedTrainingData
from methods import Method


class UnsafeCheckpoint(UnusableFile):
    """A checkpoint holding objects other than tensors and plain containers: refused unread."""


def run_generators(method: Method, feed: PairedTrainingData) -> dict[str, torch.Generator]:
    """Every random stream a run's training draws from, by the name its seed is derived with."""
    return {"method": method.generator, **feed.generators()}


def generator_states(generators: dict[str, torch.Generator]) -> dict[str, dict]:
    return {name: {"device": g.device.type, "state": g.get_state()} for name, g in generators.items()}


def restart_seed(seed: int, stream: str, iteration: int) -> int:
    """The seed of a stream that restarts at ``iteration`` on another kind of device."""
    return derive_seed(seed, f"{stream} restarted at iteration {iteration}")


def restore_generators(generators: dict[str, torch.Generator], states: dict[str, dict],
                       seed: int, iteration: int) -> str | None:
    """Set each generator to its saved state. A state written on another kind of device (or, in a
    checkpoint from before devices were recorded, one of another size) cannot be set: every
    stream then restarts from ``restart_seed`` (all of them, so that the rule is one rule).
    Returns the kind of device the states came from when they were replaced, else None."""
    saved = {name: states[name] for name in generators}
    devices = {record["device"] for record in saved.values()} - {None}
    here = {g.device.type for g in generators.values()}
    moved = bool(devices) and devices != here
    if not moved:
        try:
            for name, generator in generators.items():
                generator.set_state(saved[name]["state"])
            return None
        except RuntimeError:  # an undated state of another size: from another kind of device
            pass
    for name, generator in generators.items():
        generator.manual_seed(restart_seed(seed, name, iteration))
    return ", ".join(sorted(devices)) or "another kind of device"


def save_checkpoint(path: Path, config: RunConfig, method: Method, feed: PairedTrainingData,
                    progress: Progress, monitors: dict[str, dict] | None = None) -> None:
    """The run's checkpoint at ``progress``, with its monitors' states (``Monitors.state_dict``)."""
    state = {"config": config.to_dict(), "method": method.state_dict(), "data": feed.state_dict(),
             "generators": generator_states(run_generators(method, feed)),
             "progress": progress.state_dict()}
    if monitors is not None:
        state["monitors"] = monitors
    results.write_atomic(path, lambda tmp: torch.save(state, tmp))


@dataclasses.dataclass(frozen=True)
class SavedRun:
    """What a checkpoint holds: where training stands, the method's and its training data's
    states, its random generators' (by stream: device and state) and its monitors' (None in a
    checkpoint written before monitors had states)."""
    progress: Progress
    method: dict
    data: dict
    generators: dict[str, dict]
    monitors: dict[str, dict] | None = None


def _undated_generators(state: dict) -> dict[str, dict]:
    """The generator states of a checkpoint written before they were kept apart (inside the
    method's and the samplers' states, without their device)."""
    return {"method": {"device": None, "state": state["method"].pop("generator")},
            "pairs": {"device": None, "state": state["data"]["pairs"].pop("generator")},
            "batches": {"device": None, "state": state["data"].pop("batches")["generator"]}}


def _check_progress(progress: Progress) -> None:
    """A checkpoint's progress record, typed: its fields reach the console and the loss log."""
    def count(value, least: int) -> bool:
        return isinstance(value, int) and not isinstance(value, bool) and value >= least
    if not (count(progress.epoch, 1) and count(progress.iteration, 0)
            and count(progress.logged_rows, 0)):
        raise ValueError("progress counts that are not non-negative integers")
    if not (isinstance(progress.names, list) and all(isinstance(n, str) for n in progress.names)):
        raise ValueError("progress names that are not a list of strings")
    if progress.partial is not None and not isinstance(progress.partial, torch.Tensor):
        raise ValueError("progress losses that are not a tensor")


def _check_monitor_states(monitors) -> None:
    if monitors is not None and not (isinstance(monitors, dict) and all(
            isinstance(k, str) and isinstance(v, dict) for k, v in monitors.items())):
        raise ValueError("monitor states that are not a dict of dicts by name")


def load_checkpoint(path: Path, config: RunConfig) -> SavedRun:
    """The checkpoint at ``path``, written for ``config``: opened as a run's file is
    (results.open_run_file: no link, a regular file, under results.CHECKPOINT_BYTES_LIMIT), read
    with weights_only."""
    file = results.open_run_file(path, results.CHECKPOINT_BYTES_LIMIT)
    if file is None:
        raise CorruptRun(f"corrupt checkpoint {path} (absent, a link, not a regular file, or over "
                         f"{results.CHECKPOINT_BYTES_LIMIT // 2**30} GB)")
    try:
        with file:
            state = torch.load(file, map_location="cpu", weights_only=True)
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
        progress = Progress(**state["progress"])
        _check_progress(progress)
        method_state, data_state = state["method"], state["data"]
        generators = state["generators"] if "generators" in state else _undated_generators(state)
        if any(set(g) != {"device", "state"} for g in generators.values()):
            raise ValueError("a generator state without its device")
        _check_monitor_states(state.get("monitors"))
    except Exception as error:  # noqa: BLE001 - any unreadable checkpoint is reported the same way
        raise CorruptRun(f"corrupt checkpoint {path} ({first_line(error)})") from None
    if state.get("config") != config.to_dict():
        raise CorruptRun(f"checkpoint {path} was written for another config")
    return SavedRun(progress, method_state, data_state, generators, state.get("monitors"))


def read_progress(path: Path) -> int:
    """How many training iterations the checkpoint at ``path`` holds (0 when there is none or it
    cannot be read): for a supervisor that reports on a run it does not train."""
    file = results.open_run_file(path, results.CHECKPOINT_BYTES_LIMIT)
    if file is None:
        return 0
    try:
        with file:
            state = torch.load(file, map_location="cpu", weights_only=True)
        progress = Progress(**state["progress"])
        _check_progress(progress)
    except Exception:  # noqa: BLE001 - absent, half-written or foreign: nothing trained to count
        return 0
    return progress.logged_rows + progress.iteration
