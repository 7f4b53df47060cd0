"""Monitors: what watches a run, handed to it rather than built inside it. A monitor is made for
each run from a factory (a callable taking the run's ``RunStart``: a Monitor subclass itself is
one) and told of every epoch's losses, the run's evaluations and the images it draws; every hook
does nothing unless overridden. Every run has its loss log (losses.csv and the console's epoch
lines); ``--tensorboard`` adds ``TensorBoard``; a library user adds their own through
``RunOptions.monitors`` (docs/adding-a-monitor.md). A run's run.log is not a monitor: it records
everything the process prints while the run executes (bench/run/live.py).

A monitor that raises fails its run, like any error while it executes: keep hooks simple."""
from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from tqdm.auto import tqdm

from bench.errors import CorruptRun
from bench.store import results

if TYPE_CHECKING:
    import pandas as pd
    import torch

    from bench.spec.config import RunConfig
    from methods import Method

TENSORBOARD_DIR = "tensorboard"
TENSORBOARD_MISSING = "--tensorboard needs the tensorboard package: pip install tensorboard"


@dataclasses.dataclass(frozen=True)
class RunStart:
    """What a monitor is made from, when its run starts or resumes."""
    config: RunConfig
    run_dir: Path
    method: Method
    epochs: int
    iterations_per_epoch: int
    logged_rows: int  # iterations already in losses.csv (a resumed run), 0 for a new one


class Monitor:
    """Watches one run. Steps are iteration numbers as in losses.csv (1-based); evaluations and
    images come at the last one."""

    def epoch_end(self, epoch: int, names: list[str], losses: torch.Tensor) -> None:
        """One epoch's losses: a CPU tensor of iterations x terms, one column per name."""

    def evaluated(self, metrics: pd.DataFrame, step: int) -> None:
        """The run's probe accuracies once evaluated (metrics.csv's rows: probe, split,
        accuracy, ...)."""

    def image(self, name: str, path: Path, step: int) -> None:
        """An image file the run drew (a PNG: the swap grid)."""

    def close(self) -> None:
        """The run is over (finished, failed or stopped)."""


MonitorFactory = Callable[[RunStart], Monitor]


class LossLog(Monitor):
    """losses.csv, every run's first monitor: one row per iteration (epoch, iteration, every loss term), rewritten atomically
    once per epoch (the text of earlier epochs is kept, only the new rows are formatted).

    Opened at a checkpoint's ``logged_rows``: rows past it (an epoch logged before a kill that came
    ahead of its checkpoint) are dropped, so the log always matches the checkpoint."""

    def __init__(self, start: RunStart):
        self.path, self.label = Path(start.run_dir) / results.LOSSES_FILE, start.config.run_id
        self.started = time.perf_counter()
        self.lines: list[str] = []
        logged_rows = start.logged_rows
        if logged_rows:
            lines = self.path.read_text().splitlines(keepends=True) if self.path.is_file() else []
            if len(lines) < logged_rows + 1:
                raise CorruptRun(f"{self.path} holds {max(len(lines) - 1, 0)} rows, its checkpoint "
                                 f"{logged_rows}")
            self.lines = lines[:logged_rows + 1]

    def epoch_end(self, epoch: int, names: list[str], losses: torch.Tensor) -> None:
        first = (epoch - 1) * len(losses) + 1
        if not self.lines:
            self.lines.append(",".join(["epoch", "iteration", *names]) + "\n")
        self.lines += [",".join([str(epoch), str(first + i), *(f"{v:.6g}" for v in row)]) + "\n"
                       for i, row in enumerate(losses.tolist())]
        results.write_text_atomic(self.path, "".join(self.lines))
        means = ", ".join(f"{n} {v:.4g}" for n, v in zip(names, losses.mean(0).tolist()))
        tqdm.write(f"{self.label} epoch {epoch}: {means} "
                   f"({time.perf_counter() - self.started:.0f} s)")


def tensorboard_available() -> bool:
    import importlib.util
    return importlib.util.find_spec("tensorboard") is not None


class TensorBoard(Monitor):
    """``--tensorboard``: a run's curves as TensorBoard event files in ``<run dir>/tensorboard/``. Tags:
    ``loss/<term>`` at every iteration (the step is the iteration number of losses.csv), ``lr/<optimiser>`` (one
    point per epoch, at the epoch's first iteration; ``lr/<optimiser>/<group>`` for an optimiser
    with several parameter groups), ``probe/<probe>/<split>`` (accuracy in percent) and the image
    ``swap_grid``, both at the last iteration.

    ``logged_rows``: the iterations already in losses.csv when the run resumes. The writer then
    opens with ``purge_step`` = the next iteration, so that points an earlier attempt logged past
    its last checkpoint (it was killed in between) are hidden and the resumed run's take their
    place. (A run stopped during its evaluations, its training all logged, logs its probe
    accuracies and swap grid again at the same step.)"""

    def __init__(self, start: RunStart):
        from torch.utils.tensorboard import SummaryWriter
        self.start = start
        self.writer = SummaryWriter(str(Path(start.run_dir) / TENSORBOARD_DIR),
                                    purge_step=start.logged_rows + 1 if start.logged_rows else None)
        if start.logged_rows < start.epochs * start.iterations_per_epoch:
            self.learning_rates(start.method, start.logged_rows + 1)  # of the first epoch to train

    def epoch_end(self, epoch: int, names: list[str], losses) -> None:
        first = (epoch - 1) * len(losses) + 1
        for offset, row in enumerate(losses.tolist()):
            for name, value in zip(names, row):
                self.writer.add_scalar(f"loss/{name}", value, first + offset)
        if epoch < self.start.epochs:  # the scheduler has stepped: the rates of the next epoch
            self.learning_rates(self.start.method, epoch * self.start.iterations_per_epoch + 1)
        self.writer.flush()

    def learning_rates(self, method, step: int) -> None:
        """The learning rate of each of ``method``'s optimisers (each parameter group) now."""
        for name, optimiser in method.optimisers.items():
            groups = optimiser.param_groups
            for index, group in enumerate(groups):
                tag = f"lr/{name}" if len(groups) == 1 else f"lr/{name}/{index}"
                self.writer.add_scalar(tag, float(group["lr"]), step)

    def evaluated(self, metrics, step: int) -> None:
        for row in metrics.itertuples():
            self.writer.add_scalar(f"probe/{row.probe}/{row.split}", float(row.accuracy), step)
        self.writer.flush()

    def image(self, tag: str, path: Path, step: int) -> None:
        import numpy as np
        from PIL import Image
        with Image.open(path) as picture:
            pixels = np.asarray(picture.convert("RGB"))
        self.writer.add_image(tag, pixels, step, dataformats="HWC")
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()
