"""The training loop: no per-sample Python and no host synchronisation per iteration.

Loss terms stay on the training device in one (iterations x terms) tensor per epoch; the host
reads it once at the end of the epoch, checks it is finite and hands it on for logging. The loop
can start from any iteration boundary (a resumed checkpoint) and stop at one (a signal).
"""
from __future__ import annotations

import dataclasses
import functools
import signal
from typing import Iterator, Protocol

import torch
from tqdm.auto import tqdm

from bench.errors import Interrupted, RunFailed
from bench.run.graphs import GraphedStep
from methods import Method, TrainingData


@dataclasses.dataclass
class Progress:
    """Where training stands: in ``epoch`` (1-based), ``iteration`` iterations are done, whose
    losses are ``partial``; ``logged_rows`` iterations of earlier epochs are in the loss log."""
    epoch: int = 1
    iteration: int = 0
    partial: torch.Tensor | None = None
    names: list[str] = dataclasses.field(default_factory=list)
    logged_rows: int = 0

    def state_dict(self) -> dict:
        return dataclasses.asdict(self)


class StopOnSignal:
    """While active, SIGINT and SIGTERM only set ``requested``: the loop stops at the next
    iteration boundary, checkpoints, and raises Interrupted. ``request`` asks the same for a
    reason of the program's own (runs trained together stopped by a device fault)."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self):
        self.requested: int | None = None
        self.reason: str | None = None
        self._previous = {}

    def _handle(self, number, frame):
        self.requested = number

    def request(self, reason: str, number: int = signal.SIGTERM) -> None:
        self.requested, self.reason = number, reason

    def __enter__(self):
        self._previous = {s: signal.signal(s, self._handle) for s in self.SIGNALS}
        return self

    def __exit__(self, *exc):
        for number, handler in self._previous.items():
            signal.signal(number, handler)

    def check(self) -> None:
        if self.requested is not None:
            raise Interrupted(self.requested, self.reason)


@dataclasses.dataclass(frozen=True)
class EpochEnd:
    """One epoch trained: its losses, a CPU tensor of iterations x terms (a column per name), and
    where training stands after it (what a checkpoint written now holds)."""
    epoch: int
    names: list[str]
    losses: torch.Tensor
    progress: Progress


class TrainingHooks(Protocol):
    """What the training loop tells as it goes (a run's monitors: bench/run/monitors.py)."""

    def on_epoch_end(self, end: EpochEnd) -> None:
        """An epoch is trained, its losses finite."""

    def on_interrupt(self, progress: Progress) -> None:
        """Training stops at an iteration boundary (a signal); ``progress`` is where."""


@dataclasses.dataclass(frozen=True)
class TrainingPlan:
    """What ``training_steps`` trains: from ``start`` to the end of ``epochs`` epochs of
    ``iterations_per_epoch`` iterations; ``label`` names its progress bar, drawn unless
    ``progress_bar`` is False; with ``cuda_graphs`` iterations after the first few are replays of
    one CUDA graph (bench/run/graphs.py)."""
    epochs: int
    iterations_per_epoch: int
    start: Progress = dataclasses.field(default_factory=Progress)
    label: str = ""
    cuda_graphs: bool = False
    progress_bar: bool = True


def check_finite(method: str, epoch: int, first_iteration: int, names: list[str],
                 losses: torch.Tensor) -> None:
    """Raise RunFailed naming the first non-finite loss term of ``losses`` and its iteration."""
    bad = ~torch.isfinite(losses)
    if bad.any():
        row, column = (int(i) for i in bad.nonzero()[0])
        raise RunFailed(f"{method}: loss term {names[column]!r} is {losses[row, column].item()} "
                        f"at iteration {first_iteration + row} (epoch {epoch})")


def training_steps(method: Method, data: TrainingData, plan: TrainingPlan, *,
                   hooks: TrainingHooks, stop: StopOnSignal) -> Iterator[None]:
    """Train as ``plan`` says, yielding after every iteration (runs trained together advance in
    turn). ``hooks`` hear of every epoch's end and, on a signal, of the iteration boundary where
    training stops (a run checkpoints at both: its Checkpointing monitor); then Interrupted."""
    step = (GraphedStep(method, data) if plan.cuda_graphs
            else functools.partial(method.train_step, data))
    progress, per_epoch = plan.start, plan.iterations_per_epoch
    names = list(progress.names)
    for epoch in range(progress.epoch, plan.epochs + 1):
        first = progress.iteration if epoch == progress.epoch else 0
        log = None
        if first:
            log = torch.empty(per_epoch, len(names), device=method.device)
            log[:first] = progress.partial.to(method.device)
        bar = tqdm(range(first, per_epoch), desc=f"{plan.label} epoch {epoch}/{plan.epochs}",
                   leave=False, disable=None if plan.progress_bar else True)
        for iteration in bar:
            if stop.requested is not None:
                partial = None if log is None else log[:iteration].cpu()
                hooks.on_interrupt(Progress(epoch, iteration, partial, names,
                                            (epoch - 1) * per_epoch))
                stop.check()
            losses = step()
            if log is None:
                names = list(losses)
                log = torch.empty(per_epoch, len(names), device=method.device)
            log[iteration] = torch.stack([losses[name] for name in names])
            yield
        log = log.cpu()
        check_finite(method.name, epoch, (epoch - 1) * per_epoch + 1, names, log)
        method.end_epoch()
        hooks.on_epoch_end(EpochEnd(epoch, names, log,
                                    Progress(epoch + 1, 0, None, names, epoch * per_epoch)))
