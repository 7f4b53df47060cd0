"""One run, start to finish: lock it, train it from its resolved config (resuming from its
checkpoint), evaluate it (every registered evaluation that applies, the t-SNE and the swap grid
among them), draw its training curves, record it.

results/runs/<run-id>/ holds config.json, env.json, losses.csv (written per epoch),
checkpoint.pt, metrics.csv and each evaluation's file, evaluation.json, the figures and
figures.json, and status.json, which says "complete" only once all the others exist; run.log,
what the run printed (appended across resumes, bench/run/live.py), and what its monitors write
(with --tensorboard its curves in tensorboard/, bench/run/monitors.py). How the run is computed
comes as one RunOptions.
"""
from __future__ import annotations

import dataclasses
import shutil
import time
import traceback
from collections.abc import Generator
from pathlib import Path
from typing import Any, Callable

import pandas as pd
import torch
from tqdm.auto import tqdm

from bench import progress as steps
from bench.errors import CorruptRun, DeviceFault, RunFailed, first_line, is_device_fault
from bench.evaluations import _encoding as evaluate
from bench.evaluations import Context, Outcome, by_default, is_current, run_evaluations
from bench.evaluations.swap_grid import SWAP_GRID_FIGURE
from bench.run import live
from bench.run.build import build, iterations_per_epoch, restore, run_data
from bench.run.checkpoints import (RunLock, load_checkpoint, restore_generators, run_generators,
                                   save_checkpoint)
from bench.spec.config import RunConfig
from bench.run.environment import environment, peak_memory_mb
from bench.run.monitors import LossLog, Monitor, RunStart
from bench.run.options import RunOptions
from bench.run.train import Interrupted, Progress, StopOnSignal, training_steps
from bench.store import results
from datasets import ImageSet
from methods import METHODS


@dataclasses.dataclass(frozen=True)
class Encoded:
    """What the run's steps yield once it is trained and encoded, before its evaluations; what
    is sent back is ``Shared``."""
    context: Context


@dataclasses.dataclass(frozen=True)
class Shared:
    """What runs trained together computed for one of them: evaluation outcomes (computed for
    several runs at once, evaluations.compute_together) and work under way for its evaluations,
    by name (its t-SNE in worker processes: ``Context.started``)."""
    outcomes: dict[str, Outcome]
    started: dict[str, Any] = dataclasses.field(default_factory=dict)


class Run:
    """One run, driven a step at a time by the same code whether it runs alone (``execute``) or
    with others in turn (bench/run/together.py). Its states, in order:

    TRAINING  after each training iteration (``step()`` again trains the next);
    TRAINED   its training is done (the next ``step()`` encodes both splits);
    ENCODED   ``context`` holds the encoded run; the next ``step(shared)`` runs its evaluations
              and draws its training curves, with what runs trained together ``shared`` (None:
              all its own);
    ENDED     ``outcome`` is "complete", "skipped" (already complete) or "busy" (another
              process holds it).

    ``step`` raises RunFailed (recorded in the run's folder), Interrupted (after a checkpoint) or
    DeviceFault; the run has then ended. ``close()`` releases what an unfinished run holds (its
    lock, its monitors) and is safe to call at any time."""

    TRAINING, TRAINED, ENCODED, ENDED = "training", "trained", "encoded", "ended"

    def __init__(self, config: RunConfig, data: ImageSet, options: RunOptions, stop: StopOnSignal,
                 *, together: bool = False,
                 peak_memory: Callable[[], dict[str, float]] | None = None):
        self.config = config
        self.state: str | None = None  # not started
        self.context: Context | None = None
        self.outcome: str | None = None
        self._steps = _steps(config, data, options, stop, together, peak_memory)

    @property
    def started(self) -> bool:
        return self.state is not None

    def step(self, shared: Shared | None = None) -> str:
        """Advance the run by one step; returns its new state."""
        try:
            item = self._steps.send(shared if self.state == self.ENCODED else None)
        except StopIteration as finished:
            self.state, self.outcome = self.ENDED, finished.value
        except BaseException:
            self.state = self.ENDED
            raise
        else:
            if isinstance(item, Encoded):
                self.state, self.context = self.ENCODED, item.context
            else:
                self.state = self.TRAINED if item == self.TRAINED else self.TRAINING
        return self.state

    def close(self) -> None:
        self._steps.close()


def execute(config: RunConfig, data: ImageSet, options: RunOptions, stop: StopOnSignal) -> str:
    """Train, probe and record one run on ``options.device``, resuming from its checkpoint when it
    has one. What it prints meanwhile also goes to its run.log. Returns the run's ``outcome``
    (``Run``); raises what ``Run.step`` raises."""
    run = Run(config, data, options, stop)
    try:
        while run.step() != Run.ENDED:
            pass
    finally:
        run.close()
    return run.outcome


def _steps(config: RunConfig, data: ImageSet, options: RunOptions, stop: StopOnSignal,
           together: bool = False, peak_memory: Callable[[], dict[str, float]] | None = None
           ) -> Generator[str | Encoded | None, Shared | None, str]:
    """The steps behind ``Run``: yields None after every training iteration, Run.TRAINED once
    training is done and ``Encoded`` before the evaluations, and returns the outcome.
    ``together``: this run is one of several in turn (no progress bars, which would interleave).
    ``peak_memory``: what status.json records of the run's device memory (runs trained together
    measure each run's own; by default the device's peak)."""
    run_dir = results.runs_dir(options.results_dir) / config.run_id
    label = f"{config.run_id} (seed {config.seed}, z/s {config.method_config.z_dim}/" \
            f"{config.method_config.s_dim})"
    # A folder from someone else: no link may redirect what this run writes (nothing written yet)
    results.no_links_for([run_dir])
    lock = RunLock(run_dir)
    if not lock.acquire():
        tqdm.write(f"busy {label}: another process (pid {lock.holder()}) is working on it")
        return "busy"
    try:
        if run_dir.is_dir():
            results.remove_stale_temporaries(run_dir)
        if results.is_complete(run_dir):  # --restart never discards a complete run
            tqdm.write(f"skip {label}: already complete in {run_dir}")
            return "skipped"
        return (yield from _execute_locked(config, data, run_dir, options, stop, label, together,
                                           peak_memory))
    finally:
        lock.release()


def _execute_locked(config: RunConfig, data: ImageSet, run_dir: Path, options: RunOptions,
                    stop: StopOnSignal, label: str, together: bool, peak_memory):
    if options.restart and run_dir.exists():
        shutil.rmtree(run_dir)
    checkpoint_path = run_dir / results.CHECKPOINT_FILE
    restart_hint = f"rerun with --restart to discard this run's folder {run_dir} and train it again"
    try:  # before anything is written: an unsafe checkpoint is refused (UnusableFile) untouched
        resumed = load_checkpoint(checkpoint_path, config) if checkpoint_path.is_file() else None
    except CorruptRun as error:
        raise RunFailed(f"{error}: {restart_hint}") from None
    if resumed is None:
        if run_dir.exists():  # an attempt that stopped before its first checkpoint
            shutil.rmtree(run_dir)
        run_dir.mkdir(parents=True)
        results.write_json_atomic(run_dir / results.CONFIG_FILE, {
            **config.to_dict(), "run_id": config.run_id,
            "variational_z": METHODS[config.method].variational})
    with live.ConsoleLog(run_dir / live.RUN_LOG) as log:
        try:
            return (yield from log.steps(_execute_logged(
                config, data, run_dir, options, stop, resumed, label, restart_hint, together,
                peak_memory)))
        except RunFailed as failure:
            log.note(f"failed {config.run_id}: {failure}")
            raise
        except DeviceFault as fault:
            log.note(f"stopped {config.run_id} by a device-wide fault ({fault}); not this run's "
                     "failure: it resumes from its last checkpoint")
            raise
        except Interrupted as interruption:
            log.note(f"interrupted ({interruption}): {config.run_id} checkpointed")
            raise


def _execute_logged(config: RunConfig, data: ImageSet, run_dir: Path, options: RunOptions,
                    stop: StopOnSignal, resumed: dict | None, label: str, restart_hint: str,
                    together: bool, peak_memory):
    if resumed is None:
        tqdm.write(f"run {label}")
    else:
        for leftover in (results.STATUS_FILE, results.ERROR_FILE):  # of a failure being retried
            (run_dir / leftover).unlink(missing_ok=True)
        p = resumed["progress"]
        tqdm.write(f"resume {label} from its checkpoint (epoch {p.epoch}, iteration {p.iteration})")
    results.write_json_atomic(run_dir / results.ENV_FILE,
                              environment(options.device, options.cuda_graphs, together))
    try:
        seconds = yield from _train_and_evaluate(config, data, run_dir, options, stop, resumed,
                                                 together, peak_memory)
    except RunFailed as failure:
        _record_failure(run_dir, str(failure))
        raise
    except CorruptRun as error:
        _record_failure(run_dir, f"{error}: {restart_hint}")
        raise RunFailed(f"{error}: {restart_hint}") from None
    except Interrupted:
        raise
    except Exception as error:  # noqa: BLE001 - contained: this run fails, the others go on
        if is_device_fault(error):  # the device's, not this run's: no failure is recorded
            raise DeviceFault(first_line(error)) from error
        results.write_text_atomic(run_dir / results.ERROR_FILE, traceback.format_exc())
        reason = (f"{config.method}: {type(error).__name__}: {first_line(error, default='')} "
                  "(traceback in error.log)")
        _record_failure(run_dir, reason)
        raise RunFailed(reason) from error
    tqdm.write(f"done {config.run_id}: {test_summary(run_dir)}")  # into run.log before status.json
    results.write_json_atomic(run_dir / results.STATUS_FILE, {
        "state": results.COMPLETE, **seconds})
    return "complete"


def draw_curves(context: Context, run_dir: Path) -> None:
    """curves.png: every loss term of losses.csv against the iteration. A run's own figure, not an
    evaluation: it comes from the training log, not from the trained model."""
    from bench import drawing  # matplotlib: only where a figure is drawn
    with steps.step(f"{context.config.run_id} training curves"):
        losses = pd.read_csv(run_dir / results.LOSSES_FILE)
        drawing.plot_curves(losses, run_dir / results.CURVES_FIGURE, f"Training: {context.label}")


def test_summary(run_dir: Path) -> str:
    """The test numbers of a run's probes, in one line."""
    from bench.store.records import load_run
    metrics = load_run(run_dir).metrics
    test = metrics[metrics.split == "test"]
    return "test accuracy " + ", ".join(f"{r.probe} {r.accuracy:.2f}" for r in test.itertuples())


def _record_failure(run_dir: Path, reason: str) -> None:
    results.write_json_atomic(run_dir / results.STATUS_FILE, {"state": results.FAILED, "reason": reason})


def _train_and_evaluate(config: RunConfig, data: ImageSet, run_dir: Path, options: RunOptions,
                        stop: StopOnSignal, resumed: dict | None, together: bool, peak_memory):
    device = options.device
    data = run_data(config, data)
    method, feed = build(config, data, device)
    progress = Progress()
    if resumed is not None:
        restore(method, resumed["method"])
        feed.load_state_dict(resumed["data"])
        progress = resumed["progress"]
        done = progress.logged_rows + progress.iteration
        moved_from = restore_generators(run_generators(method, feed), resumed["generators"],
                                        config.seed, done)
        if moved_from is not None:
            tqdm.write(f"{config.run_id}: checkpoint written on {moved_from}, resumed on "
                       f"{device.type}: its random streams restart from seed {config.seed} and "
                       f"iteration {done} (deterministic; not the numbers it would have drawn on "
                       f"{moved_from})")

    def save(p: Progress) -> None:
        save_checkpoint(run_dir / results.CHECKPOINT_FILE, config, method, feed, p)

    epochs, per_epoch = config.method_config.training_epochs, iterations_per_epoch(config, data)
    start = RunStart(config, run_dir, method, epochs, per_epoch, progress.logged_rows)
    monitors: list[Monitor] = [LossLog(start)]
    try:
        monitors += [make(start) for make in options.monitor_factories()]
    except BaseException:
        for monitor in monitors:
            monitor.close()
        raise

    def on_epoch_end(epoch: int, names: list[str], losses: torch.Tensor) -> None:
        for monitor in monitors:
            monitor.epoch_end(epoch, names, losses)

    try:
        if device.type == "cuda" and not together:  # together: reset once for the group
            torch.cuda.reset_peak_memory_stats(device)
        started = time.perf_counter()
        yield from training_steps(method, feed, epochs=epochs, iterations_per_epoch=per_epoch,
                                  on_epoch_end=on_epoch_end, checkpoint=save, stop=stop,
                                  start=progress, label=config.run_id,
                                  cuda_graphs=options.cuda_graphs,
                                  progress_bar=not together)
        train_seconds = time.perf_counter() - started
        yield Run.TRAINED
        stop.check()
        context = Context(config, method, data, evaluate.encode_all(method, data.train_images),
                          evaluate.encode_all(method, data.test_images), stop=stop.check)
        shared = (yield Encoded(context)) or Shared({})
        evaluations = by_default()
        if resumed is not None and resumed["progress"].epoch > epochs:
            # Trained before this process: what an earlier attempt already evaluated from this
            # same final state is kept, so that attempts shorter than all the evaluations (a
            # time-limited job, a lease) still finish.
            kept = [e.name for e in evaluations if is_current(e, run_dir)]
            evaluations = [e for e in evaluations if e.name not in kept]
            if kept:
                tqdm.write(f"{config.run_id}: kept {', '.join(kept)} from an earlier attempt")
        run_evaluations(dataclasses.replace(context, started=shared.started), run_dir,
                        evaluations, between=stop.check, say=tqdm.write, computed=shared.outcomes)
        last = epochs * per_epoch
        if (run_dir / results.METRICS_FILE).is_file():
            metrics = pd.read_csv(run_dir / results.METRICS_FILE)
            for monitor in monitors:
                monitor.evaluated(metrics, last)
        draw_curves(context, run_dir)
        swap_grid = run_dir / SWAP_GRID_FIGURE
        if swap_grid.is_file():
            for monitor in monitors:
                monitor.image("swap_grid", swap_grid, last)
    finally:
        for monitor in monitors:
            monitor.close()
    # CUDA: this run's peak (trained together: its own tensors', and the group's beside);
    # CPU: the process's (all its runs so far)
    memory = peak_memory() if peak_memory else {"peak_memory_mb": round(peak_memory_mb(device), 1)}
    return {"train_seconds": round(train_seconds, 2),
            "total_seconds": round(time.perf_counter() - started, 2), **memory}
