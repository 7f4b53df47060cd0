"""The training loop: no per-sample Python and no host synchronisation per iteration.

Loss terms stay on the training device in one (iterations x terms) tensor per epoch; the host
reads it once at the end of the epoch, checks it is finite and hands it on for logging.
"""
from __future__ import annotations

from typing import Callable

import torch
from tqdm.auto import tqdm

from bench.errors import RunFailed
from methods import Method, TrainingData

EpochLog = Callable[[int, list[str], torch.Tensor], None]  # (epoch, term names, CPU losses)


def check_finite(method: str, epoch: int, first_iteration: int, names: list[str],
                 losses: torch.Tensor) -> None:
    """Raise RunFailed naming the first non-finite loss term of ``losses`` and its iteration."""
    bad = ~torch.isfinite(losses)
    if bad.any():
        row, column = (int(i) for i in bad.nonzero()[0])
        raise RunFailed(f"{method}: loss term {names[column]!r} is {losses[row, column].item()} "
                        f"at iteration {first_iteration + row} (epoch {epoch})")


def train(method: Method, data: TrainingData, *, epochs: int, iterations_per_epoch: int,
          on_epoch_end: EpochLog, label: str = "") -> None:
    names: list[str] = []
    for epoch in range(1, epochs + 1):
        log = None
        bar = tqdm(range(iterations_per_epoch), desc=f"{label} epoch {epoch}/{epochs}",
                   leave=False, disable=None)
        for iteration in bar:
            losses = method.train_step(data)
            if log is None:
                names = list(losses)
                log = torch.empty(iterations_per_epoch, len(names), device=method.device)
            log[iteration] = torch.stack([losses[name] for name in names])
        log = log.cpu()
        check_finite(method.name, epoch, (epoch - 1) * iterations_per_epoch + 1, names, log)
        method.end_epoch()
        on_epoch_end(epoch, names, log)
