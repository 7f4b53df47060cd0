"""Monitors: what watches a run, handed to it rather than built inside it. A monitor is made for
each run from a factory (a callable taking the run's ``RunStart``: a Monitor subclass itself is
one); the run tells all its monitors, in order and from one place (``Monitors``), that training
starts, of every epoch's end, of a stop, of its evaluations and of the images it draws; every hook
does nothing unless overridden. Every run has its loss log first (losses.csv and the console's
epoch lines) and its checkpointing last (``Checkpointing``: the checkpoint follows what the others
logged of the epoch); ``--tensorboard`` adds ``TensorBoard``; a library user adds their own
through ``RunOptions.monitors`` (docs/adding-a-monitor.md). A run's run.log is not a monitor: it
records everything the process prints while the run executes (bench/run/live.py).

Each monitor's ``state_dict()`` goes into every checkpoint, and a resumed run hands it back to the
monitor of the same kind (``load_state_dict``) before training starts again. A checkpoint written
before monitors had states holds none: each monitor then starts from ``RunStart.logged_rows``.

A monitor that raises fails its run, like any error while it executes: keep hooks simple."""
from __future__ import annotations

import collections
import dataclasses
import io
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from tqdm.auto import tqdm

from bench.errors import CorruptRun
from bench.store import results

if TYPE_CHECKING:
    import pandas as pd

    from bench.evaluations import Outcome
    from bench.run.train import EpochEnd, Progress
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


@dataclasses.dataclass(frozen=True)
class Evaluated:
    """A run's evaluations, at its last iteration ``step``: each one's outcome by its name
    ("probes": rows of probe, split, accuracy; bench/evaluations/), computed by this attempt or,
    for one an earlier attempt of a resumed run computed, read from its table."""
    step: int
    outcomes: dict[str, Outcome]

    def rows(self, name: str) -> list[dict[str, Any]]:
        """The rows of evaluation ``name`` (its own columns), none if it was not evaluated."""
        outcome = self.outcomes.get(name)
        return [] if outcome is None else outcome.rows


RENAMED_HOOKS = {"epoch_end": "on_epoch_end", "evaluated": "on_evaluated", "image": "on_image"}


class Monitor:
    """Watches one run. Steps are iteration numbers as in losses.csv (1-based); evaluations and
    images come at the last one."""

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        # A monitor written for the hooks' former names would be silently left uncalled
        renamed = [f"{old} -> {new}" for old, new in RENAMED_HOOKS.items()
                   if callable(vars(cls).get(old))]
        if renamed:
            raise TypeError(f"monitor {cls.__qualname__}: hooks were renamed ({', '.join(renamed)};"
                            " docs/adding-a-monitor.md)")

    def on_train_start(self) -> None:
        """Training starts, or resumes (after ``load_state_dict``); also when a resumed run had
        finished training and only its evaluations are left."""

    def on_epoch_end(self, end: EpochEnd) -> None:
        """One epoch trained: ``end.losses`` a CPU tensor of iterations x terms, one column per
        name of ``end.names``; ``end.progress`` where training stands."""

    def on_interrupt(self, progress: Progress) -> None:
        """A signal stops training at an iteration boundary, ``progress``."""

    def on_evaluated(self, evaluated: Evaluated) -> None:
        """The run's evaluations are done (``evaluated.rows("probes")``: its probe accuracies)."""

    def on_image(self, name: str, path: Path, step: int) -> None:
        """An image file the run drew (a PNG: the swap grid)."""

    def close(self) -> None:
        """The run is over (finished, failed or stopped)."""

    def state_dict(self) -> dict:
        """What this monitor needs to go on where the checkpoint being written leaves the run:
        numbers, strings, tensors and plain containers only (checkpoints are loaded with
        weights_only)."""
        return {}

    def load_state_dict(self, state: dict) -> None:
        """Go on from ``state`` (what ``state_dict`` gave when the checkpoint was written)."""


MonitorFactory = Callable[[RunStart], Monitor]


class Monitors(Monitor):
    """A run's monitors, in order: each hook called here is called on every one of them, in
    that order. Their states are kept by ``state_key`` (the class's name, numbered from the second
    monitor of a class: ``Recorder``, ``Recorder#2``)."""

    def __init__(self, monitors: list[Monitor] = ()):
        self.monitors: list[Monitor] = list(monitors)

    def add(self, monitor: Monitor) -> None:
        self.monitors.append(monitor)

    def keyed(self) -> dict[str, Monitor]:
        seen: collections.Counter = collections.Counter()
        keyed = {}
        for monitor in self.monitors:
            name = type(monitor).__name__
            seen[name] += 1
            keyed[name if seen[name] == 1 else f"{name}#{seen[name]}"] = monitor
        return keyed

    def on_train_start(self) -> None:
        for monitor in self.monitors:
            monitor.on_train_start()

    def on_epoch_end(self, end: EpochEnd) -> None:
        for monitor in self.monitors:
            monitor.on_epoch_end(end)

    def on_interrupt(self, progress: Progress) -> None:
        for monitor in self.monitors:
            monitor.on_interrupt(progress)

    def on_evaluated(self, evaluated: Evaluated) -> None:
        for monitor in self.monitors:
            monitor.on_evaluated(evaluated)

    def on_image(self, name: str, path: Path, step: int) -> None:
        for monitor in self.monitors:
            monitor.on_image(name, path, step)

    def close(self) -> None:
        """Close every monitor, even after one fails to; the first failure is raised."""
        failure = None
        for monitor in self.monitors:
            try:
                monitor.close()
            except BaseException as error:  # noqa: BLE001 - the others still close
                failure = failure or error
        if failure is not None:
            raise failure

    def state_dict(self) -> dict[str, dict]:
        return {key: monitor.state_dict() for key, monitor in self.keyed().items()}

    def load_state_dict(self, state: dict[str, dict]) -> None:
        """Each monitor's state from ``state``; a monitor without one (added since the
        checkpoint) starts as it would in a checkpoint without states."""
        for key, monitor in self.keyed().items():
            if key in state:
                monitor.load_state_dict(state[key])


class Checkpointing(Monitor):
    """Writes the run's checkpoint after every epoch and where a signal stops training. When is
    this monitor's; what is its run's (``save``: the method, its data streams, its random
    generators and every monitor's state at ``progress``). Its run's last monitor, so that the
    checkpoint follows everything the others logged of the epoch."""

    def __init__(self, save: Callable[[Progress], None]):
        self.save = save

    def on_epoch_end(self, end: EpochEnd) -> None:
        self.save(end.progress)

    def on_interrupt(self, progress: Progress) -> None:
        self.save(progress)


def saved_count(state: dict, key: str, path: Path) -> int:
    """The count ``key`` of a monitor's saved ``state`` (a checkpoint is someone's file)."""
    value = state.get(key)
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise CorruptRun(f"{path}: its checkpoint's monitor state has no count {key!r}")
    return value


class LossLog(Monitor):
    """losses.csv, every run's first monitor: one row per iteration (epoch, iteration, every loss
    term), rewritten atomically once per epoch (the text of earlier epochs is kept, only the new
    rows are formatted).

    Its state is the number of rows logged (their text is the file's). It opens the file at that
    row count: rows past it (an epoch logged before a kill that came ahead of its checkpoint) are
    dropped, so the log always matches the checkpoint."""

    def __init__(self, start: RunStart):
        self.path, self.label = Path(start.run_dir) / results.LOSSES_FILE, start.config.run_id
        self.started = time.perf_counter()
        self.rows = start.logged_rows
        self.lines: list[str] = []

    def state_dict(self) -> dict:
        return {"rows": self.rows}

    def load_state_dict(self, state: dict) -> None:
        self.rows = saved_count(state, "rows", self.path)

    def on_train_start(self) -> None:
        if not self.rows:
            return
        text = results.read_run_file(self.path, results.TABLE_BYTES_LIMIT)
        if text is None and os.path.lexists(self.path):
            raise CorruptRun(results.not_readable(self.path, "table", results.TABLE_BYTES_LIMIT))
        lines = text.splitlines(keepends=True) if text is not None else []
        if len(lines) < self.rows + 1:
            raise CorruptRun(f"{self.path} holds {max(len(lines) - 1, 0)} rows, its checkpoint "
                             f"{self.rows}")
        self.lines = lines[:self.rows + 1]

    def on_epoch_end(self, end: EpochEnd) -> None:
        first = (end.epoch - 1) * len(end.losses) + 1
        if not self.lines:
            self.lines.append(",".join(["epoch", "iteration", *end.names]) + "\n")
        self.lines += [",".join([str(end.epoch), str(first + i), *(f"{v:.6g}" for v in row)]) + "\n"
                       for i, row in enumerate(end.losses.tolist())]
        self.rows += len(end.losses)
        results.write_text_atomic(self.path, "".join(self.lines))
        means = ", ".join(f"{n} {v:.4g}" for n, v in zip(end.names, end.losses.mean(0).tolist()))
        tqdm.write(f"{self.label} epoch {end.epoch}: {means} "
                   f"({time.perf_counter() - self.started:.0f} s)")

    def table(self) -> pd.DataFrame:
        """losses.csv as it stands, from the text this monitor holds."""
        import pandas as pd
        return pd.read_csv(io.StringIO("".join(self.lines)))


def tensorboard_available() -> bool:
    import importlib.util
    return importlib.util.find_spec("tensorboard") is not None


class TensorBoard(Monitor):
    """``--tensorboard``: a run's curves as TensorBoard event files in ``<run dir>/tensorboard/``.
    Tags: ``loss/<term>`` at every iteration (the step is the iteration number of losses.csv),
    ``lr/<optimiser>`` (one point per epoch, at the epoch's first iteration;
    ``lr/<optimiser>/<group>`` for an optimiser with several parameter groups),
    ``probe/<probe>/<split>`` (accuracy in percent) and the image ``swap_grid``, both at the last
    iteration.

    Its state is the last iteration whose losses it logged. A resumed run's writer opens with
    ``purge_step`` at the next one, so that points an earlier attempt logged past its last
    checkpoint (it was killed in between) are hidden and the resumed run's take their place. (A
    run stopped during its evaluations, its training all logged, logs its probe accuracies and
    swap grid again at the same step.)"""

    def __init__(self, start: RunStart):
        self.start = start
        self.step = start.logged_rows
        self.writer = None

    def state_dict(self) -> dict:
        return {"step": self.step}

    def load_state_dict(self, state: dict) -> None:
        self.step = saved_count(state, "step", Path(self.start.run_dir) / TENSORBOARD_DIR)

    def on_train_start(self) -> None:
        from torch.utils.tensorboard import SummaryWriter
        self.writer = SummaryWriter(str(Path(self.start.run_dir) / TENSORBOARD_DIR),
                                    purge_step=self.step + 1 if self.step else None)
        if self.step < self.start.epochs * self.start.iterations_per_epoch:
            self.learning_rates(self.step + 1)  # of the first epoch to train

    def on_epoch_end(self, end: EpochEnd) -> None:
        first = (end.epoch - 1) * len(end.losses) + 1
        for offset, row in enumerate(end.losses.tolist()):
            for name, value in zip(end.names, row):
                self.writer.add_scalar(f"loss/{name}", value, first + offset)
        self.step = first + len(end.losses) - 1
        if end.epoch < self.start.epochs:  # the scheduler has stepped: the rates of the next epoch
            self.learning_rates(self.step + 1)
        self.writer.flush()

    def learning_rates(self, step: int) -> None:
        """The learning rate of each of the method's optimisers (each parameter group) now."""
        for name, optimiser in self.start.method.optimisers.items():
            groups = optimiser.param_groups
            for index, group in enumerate(groups):
                tag = f"lr/{name}" if len(groups) == 1 else f"lr/{name}/{index}"
                self.writer.add_scalar(tag, float(group["lr"]), step)

    def on_evaluated(self, evaluated: Evaluated) -> None:
        for row in evaluated.rows("probes"):
            self.writer.add_scalar(f"probe/{row['probe']}/{row['split']}", float(row["accuracy"]),
                                   evaluated.step)
        self.writer.flush()

    def on_image(self, name: str, path: Path, step: int) -> None:
        import numpy as np
        from PIL import Image
        data = results.read_run_bytes(path, results.FIGURE_BYTES_LIMIT)
        if data is None:  # the run's own figure, drawn just now: only a link or a FIFO is not
            return
        with Image.open(io.BytesIO(data)) as picture:
            pixels = np.asarray(picture.convert("RGB"))
        self.writer.add_image(name, pixels, step, dataformats="HWC")
        self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
