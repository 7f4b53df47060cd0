"""The training loop: no per-sample Python and no host synchronisation per iteration.

Loss terms stay on the training device in one (iterations x terms) tensor per epoch; the host
reads it once at the end of the epoch, checks it is finite and hands it on for logging. The loop
can start from any iteration boundary (a resumed checkpoint) and stop at one (a signal).
"""
from __future__ import annotations

import dataclasses
import functools
import signal
from typing import Callable, Iterator

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


EpochLog = Callable[[int, list[str], torch.Tensor], None]  # (epoch, term names, CPU losses)
Checkpoint = Callable[[Progress], None]


def check_finite(method: str, epoch: int, first_iteration: int, names: list[str],
                 losses: torch.Tensor) -> None:
    """Raise RunFailed naming the first non-finite loss term of ``losses`` and its iteration."""
    bad = ~torch.isfinite(losses)
    if bad.any():
        row, column = (int(i) for i in bad.nonzero()[0])
        raise RunFailed(f"{method}: loss term {names[column]!r} is {losses[row, column].item()} "
                        f"at iteration {first_iteration + row} (epoch {epoch})")


def train(method: Method, data: TrainingData, **options) -> None:
    """``training_steps`` to the end."""
    for _ in training_steps(method, data, **options):
        pass


def training_steps(method: Method, data: TrainingData, *, epochs: int, iterations_per_epoch: int,
                   on_epoch_end: EpochLog, checkpoint: Checkpoint, stop: StopOnSignal,
                   start: Progress | None = None, label: str = "", cuda_graphs: bool = False,
                   progress_bar: bool = True) -> Iterator[None]:
    """Train from ``start`` to the end of ``epochs``, yielding after every iteration (runs trained
    together advance in turn), checkpointing after every epoch and, on a signal, at the iteration
    boundary where it stops. With ``cuda_graphs``, iterations after the first few are replays of
    one CUDA graph (bench/run/graphs.py)."""
    step = GraphedStep(method, data) if cuda_graphs else functools.partial(method.train_step, data)
    progress = start or Progress()
    names = list(progress.names)
    for epoch in range(progress.epoch, epochs + 1):
        first = progress.iteration if epoch == progress.epoch else 0
        log = None
        if first:
            log = torch.empty(iterations_per_epoch, len(names), device=method.device)
            log[:first] = progress.partial.to(method.device)
        bar = tqdm(range(first, iterations_per_epoch), desc=f"{label} epoch {epoch}/{epochs}",
                   leave=False, disable=None if progress_bar else True)
        for iteration in bar:
            if stop.requested is not None:
                partial = None if log is None else log[:iteration].cpu()
                checkpoint(Progress(epoch, iteration, partial, names,
                                    (epoch - 1) * iterations_per_epoch))
                stop.check()
            losses = step()
            if log is None:
                names = list(losses)
                log = torch.empty(iterations_per_epoch, len(names), device=method.device)
            log[iteration] = torch.stack([losses[name] for name in names])
            yield
        log = log.cpu()
        check_finite(method.name, epoch, (epoch - 1) * iterations_per_epoch + 1, names, log)
        method.end_epoch()
        on_epoch_end(epoch, names, log)
        checkpoint(Progress(epoch + 1, 0, None, names, epoch * iterations_per_epoch))
