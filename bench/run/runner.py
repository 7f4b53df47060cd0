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
import io
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
from bench.evaluations import encoding
from bench.evaluations import (Context, Evaluation, Outcome, is_current,
                               run_evaluations)
from bench.evaluations.swap_grid import SWAP_GRID_FIGURE
from bench.run import live
from bench.run.build import build, iterations_per_epoch, restore, run_data
from bench.run.checkpoints import (SavedRun, load_checkpoint, restore_generators,
                                   run_generators, save_checkpoint)
from bench.run.environment import environment, peak_memory_mb
from bench.run.lock import RunLock
from bench.run.monitors import Checkpointing, Evaluated, LossLog, Monitors, RunStart
from bench.run.options import RunOptions
from bench.run.train import Interrupted, Progress, StopOnSignal, TrainingPlan, training_steps
from bench.spec.config import RunConfig
from bench.store import results
from datasets import ImageSet
from datasets.samplers import PairedTrainingData
from methods import METHODS, Method


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
    with others in turn (bench/run/together.py). It holds what the run needs (its config, the
    dataset, the options, the stop, its folder) and what it builds on the way (the checkpoint it
    resumes from, its method and training data, its monitors). Its states, in order:

    TRAINING  after each training iteration (``step()`` again trains the next);
    TRAINED   its training is done (the next ``step()`` encodes both splits);
    ENCODED   ``context`` holds the encoded run; the next ``step(shared)`` runs its evaluations
              and draws its training curves, with what runs trained together ``shared`` (None:
              all its own);
    ENDED     ``outcome`` is "complete", "skipped" (already complete) or "busy" (another
              process holds it).

    ``step`` raises RunFailed (recorded in the run's folder), Interrupted (after a checkpoint) or
    DeviceFault; the run has then ended. ``close()`` releases what an unfinished run holds (its
    lock, its monitors) and is safe to call at any time.

    ``together``: this run is one of several in turn (no progress bars, which would interleave).
    ``peak_memory``: what status.json records of the run's device memory (runs trained together
    measure each run's own; by default the device's peak)."""

    TRAINING, TRAINED, ENCODED, ENDED = "training", "trained", "encoded", "ended"

    def __init__(self, config: RunConfig, data: ImageSet, options: RunOptions, stop: StopOnSignal,
                 *, together: bool = False,
                 peak_memory: Callable[[], dict[str, float]] | None = None):
        self.config, self.dataset, self.options, self.stop = config, data, options, stop
        self.together, self.peak_memory = together, peak_memory
        self.run_dir = results.runs_dir(options.results_dir) / config.run_id
        self.label = (f"{config.run_id} (seed {config.seed}, z/s {config.method_config.z_dim}/"
                      f"{config.method_config.s_dim})")
        self.epochs = config.method_config.training_epochs
        self.state: str | None = None  # not started
        self.context: Context | None = None
        self.outcome: str | None = None
        # What the steps find or build, in order
        self.resumed: SavedRun | None = None  # the checkpoint it resumes from
        self.data: ImageSet | None = None  # the run's own images (run_data)
        self.method: Method | None = None
        self.feed: PairedTrainingData | None = None
        self.iterations_per_epoch = 0
        self.monitors = Monitors()
        self.loss_log: LossLog | None = None
        self.evaluated: Evaluated | None = None
        self._steps = self._all_steps()

    @property
    def started(self) -> bool:
        return self.state is not None

    @property
    def restart_hint(self) -> str:
        return f"rerun with --restart to discard this run's folder {self.run_dir} and train it again"

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

    def _all_steps(self) -> Generator[str | Encoded | None, Shared | None, str]:
        """The steps behind ``step``: yields None after every training iteration, Run.TRAINED once
        training is done and ``Encoded`` before the evaluations, and returns the outcome."""
        # A folder from someone else: no link may redirect what this run writes (nothing written yet)
        results.no_links_for([self.run_dir])
        lock = RunLock(self.run_dir)
        if not lock.acquire():
            tqdm.write(f"busy {self.label}: another process (pid {lock.holder()}) is working on it")
            return "busy"
        try:
            if self.run_dir.is_dir():
                results.remove_stale_temporaries(self.run_dir)
            if results.is_complete(self.run_dir):  # --restart never discards a complete run
                tqdm.write(f"skip {self.label}: already complete in {self.run_dir}")
                return "skipped"
            return (yield from self._locked_steps())
        finally:
            lock.release()
            self._release()

    def _release(self) -> None:
        """Drop what the run built, now rather than at the next garbage collection: its monitors
        hold the run itself (the checkpoint's save), and on CUDA the next run's peak memory is
        measured."""
        self.monitors = Monitors()
        self.resumed = self.method = self.feed = self.data = self.loss_log = None
        self.evaluated = None

    def _locked_steps(self):
        """The run, its lock held: its folder made ready, what it prints copied into run.log."""
        self._prepare_folder()
        with live.ConsoleLog(self.run_dir / live.RUN_LOG) as log:
            try:
                return (yield from log.steps(self._logged_steps()))
            except RunFailed as failure:
                log.note(f"failed {self.config.run_id}: {failure}")
                raise
            except DeviceFault as fault:
                log.note(f"stopped {self.config.run_id} by a device-wide fault ({fault}); not this "
                         "run's failure: it resumes from its last checkpoint")
                raise
            except Interrupted as interruption:
                log.note(f"interrupted ({interruption}): {self.config.run_id} checkpointed")
                raise

    def _prepare_folder(self) -> None:
        """Read the checkpoint to resume from, or start a new folder with the run's config."""
        if self.options.restart and self.run_dir.exists():
            shutil.rmtree(self.run_dir)
        checkpoint_path = self.run_dir / results.CHECKPOINT_FILE
        try:  # before anything is written: an unsafe checkpoint is refused (UnusableFile) untouched
            if checkpoint_path.is_file():
                self.resumed = load_checkpoint(checkpoint_path, self.config)
        except CorruptRun as error:
            raise RunFailed(f"{error}: {self.restart_hint}") from None
        if self.resumed is None:
            if self.run_dir.exists():  # an attempt that stopped before its first checkpoint
                shutil.rmtree(self.run_dir)
            self.run_dir.mkdir(parents=True)
            results.write_json_atomic(self.run_dir / results.CONFIG_FILE, {
                **self.config.to_dict(), "run_id": self.config.run_id,
                "variational_z": METHODS[self.config.method].variational})

    def _logged_steps(self):
        """The run's work, its failures recorded in its folder; status.json last."""
        self._announce()
        results.write_json_atomic(self.run_dir / results.ENV_FILE,
                                  environment(self.options.device, self.options.cuda_graphs,
                                              self.together))
        try:
            seconds = yield from self._train_and_evaluate()
        except RunFailed as failure:
            self._record_failure(str(failure))
            raise
        except CorruptRun as error:
            self._record_failure(f"{error}: {self.restart_hint}")
            raise RunFailed(f"{error}: {self.restart_hint}") from None
        except Interrupted:
            raise
        except Exception as error:  # noqa: BLE001 - contained: this run fails, the others go on
            if is_device_fault(error):  # the device's, not this run's: no failure is recorded
                raise DeviceFault(first_line(error)) from error
            results.write_text_atomic(self.run_dir / results.ERROR_FILE, traceback.format_exc())
            reason = (f"{self.config.method}: {type(error).__name__}: "
                      f"{first_line(error, default='')} (traceback in error.log)")
            self._record_failure(reason)
            raise RunFailed(reason) from error
        # into run.log before status.json
        tqdm.write(f"done {self.config.run_id}: {probe_summary(self.evaluated.rows('probes'))}")
        results.write_json_atomic(self.run_dir / results.STATUS_FILE, {
            "state": results.COMPLETE, **seconds})
        return "complete"

    def _announce(self) -> None:
        if self.resumed is None:
            tqdm.write(f"run {self.label}")
            return
        for leftover in (results.STATUS_FILE, results.ERROR_FILE):  # of a failure being retried
            (self.run_dir / leftover).unlink(missing_ok=True)
        p = self.resumed.progress
        tqdm.write(f"resume {self.label} from its checkpoint (epoch {p.epoch}, "
                   f"iteration {p.iteration})")

    def _record_failure(self, reason: str) -> None:
        results.write_json_atomic(self.run_dir / results.STATUS_FILE,
                                  {"state": results.FAILED, "reason": reason})

    def _train_and_evaluate(self):
        """Train, encode, evaluate and draw; returns status.json's times and memory."""
        progress = self._build()
        self.monitors = self._make_monitors(progress.logged_rows)
        try:
            self._start_monitors()
            if self.options.device.type == "cuda" and not self.together:
                torch.cuda.reset_peak_memory_stats(self.options.device)  # together: once a group
            started = time.perf_counter()
            yield from training_steps(self.method, self.feed, self._plan(progress),
                                      hooks=self.monitors, stop=self.stop)
            train_seconds = time.perf_counter() - started
            yield Run.TRAINED
            self.stop.check()
            context = Context(self.config, self.method, self.data,
                              encoding.encode_all(self.method, self.data.train_images),
                              encoding.encode_all(self.method, self.data.test_images),
                              stop=self.stop.check)
            shared = (yield Encoded(context)) or Shared({})
            self._evaluate(context, shared)
        finally:
            self.monitors.close()
        return {"train_seconds": round(train_seconds, 2),
                "total_seconds": round(time.perf_counter() - started, 2), **self._peak_memory()}

    def _build(self) -> Progress:
        """The run's method and training data, in the checkpoint's state when it resumes;
        returns where its training stands."""
        self.data = run_data(self.config, self.dataset)
        self.method, self.feed = build(self.config, self.data, self.options.device)
        self.iterations_per_epoch = iterations_per_epoch(self.config, self.data)
        if self.resumed is None:
            return Progress()
        restore(self.method, self.resumed.method)
        self.feed.load_state_dict(self.resumed.data)
        progress = self.resumed.progress
        done = progress.logged_rows + progress.iteration
        moved_from = restore_generators(run_generators(self.method, self.feed),
                                        self.resumed.generators, self.config.seed, done)
        if moved_from is not None:
            tqdm.write(f"{self.config.run_id}: checkpoint written on {moved_from}, resumed on "
                       f"{self.options.device.type}: its random streams restart from seed "
                       f"{self.config.seed} and iteration {done} (deterministic; not the numbers "
                       f"it would have drawn on {moved_from})")
        return progress

    def _make_monitors(self, logged_rows: int) -> Monitors:
        """The loss log, the options' monitors, and checkpointing last."""
        start = RunStart(self.config, self.run_dir, self.method, self.epochs,
                         self.iterations_per_epoch, logged_rows)
        self.loss_log = LossLog(start)
        monitors = Monitors([self.loss_log])
        try:
            for make in self.options.monitor_factories():
                monitors.add(make(start))
        except BaseException:
            monitors.close()
            raise
        monitors.add(Checkpointing(self._save_checkpoint))
        return monitors

    def _start_monitors(self) -> None:
        """Hand each monitor its state from the checkpoint (none in one written before monitors
        had states: they start from its row count), then start them."""
        if self.resumed is not None and self.resumed.monitors is not None:
            self.monitors.load_state_dict(self.resumed.monitors)
        self.monitors.on_train_start()

    def _save_checkpoint(self, progress: Progress) -> None:
        save_checkpoint(self.run_dir / results.CHECKPOINT_FILE, self.config, self.method,
                        self.feed, progress, self.monitors.state_dict())

    def _plan(self, progress: Progress) -> TrainingPlan:
        return TrainingPlan(self.epochs, self.iterations_per_epoch, start=progress,
                            label=self.config.run_id, cuda_graphs=self.options.cuda_graphs,
                            progress_bar=not self.together)

    def _evaluate(self, context: Context, shared: Shared) -> None:
        """The run's evaluations (but those an earlier attempt already computed from the same
        trained state) and its training curves; its monitors are told of both."""
        evaluations = self.options.chosen_evaluations()
        kept = self._kept_evaluations(evaluations)
        todo = [e for e in evaluations if e.name not in {k.name for k in kept}]
        computed = run_evaluations(dataclasses.replace(context, started=shared.started),
                                   self.run_dir, todo,
                                   between=self.stop.check, say=tqdm.write,
                                   computed=shared.outcomes)
        earlier = {e.name: outcome_from_table(e, self.run_dir) for e in kept}
        self.evaluated = Evaluated(self.epochs * self.iterations_per_epoch, {**earlier, **computed})
        self.monitors.on_evaluated(self.evaluated)
        draw_curves(context, self.loss_log.table(), self.run_dir)
        swap_grid = self.run_dir / SWAP_GRID_FIGURE
        if swap_grid.is_file():
            self.monitors.on_image("swap_grid", swap_grid, self.evaluated.step)

    def _kept_evaluations(self, evaluations: list[Evaluation]) -> list[Evaluation]:
        """Trained before this process: what an earlier attempt already evaluated from this same
        final state is kept, so that attempts shorter than all the evaluations (a time-limited
        job, a lease) still finish."""
        if self.resumed is None or self.resumed.progress.epoch <= self.epochs:
            return []
        kept = [e for e in evaluations if is_current(e, self.run_dir)]
        if kept:
            tqdm.write(f"{self.config.run_id}: kept {', '.join(e.name for e in kept)} from an "
                       "earlier attempt")
        return kept

    def _peak_memory(self) -> dict[str, float]:
        """CUDA: this run's peak (trained together: its own tensors', and the group's beside);
        CPU: the process's (all its runs so far)."""
        if self.peak_memory is not None:
            return self.peak_memory()
        return {"peak_memory_mb": round(peak_memory_mb(self.options.device), 1)}


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


def outcome_from_table(evaluation: Evaluation, run_dir: Path) -> Outcome:
    """What an earlier attempt of the run computed of ``evaluation``, read from its table (its
    rows with the run's columns beside its own; its details stay in evaluation.json)."""
    path = Path(run_dir) / evaluation.file
    text = results.read_run_file(path, results.TABLE_BYTES_LIMIT)
    if text is None:
        raise CorruptRun(results.not_readable(path, "table", results.TABLE_BYTES_LIMIT))
    return Outcome(pd.read_csv(io.StringIO(text)).to_dict("records"))


def draw_curves(context: Context, losses: pd.DataFrame, run_dir: Path) -> None:
    """curves.png: every loss term of ``losses`` (losses.csv) against the iteration. A run's own
    figure, not an evaluation: it comes from the training log, not from the trained model."""
    from bench import drawing  # matplotlib: only where a figure is drawn
    with steps.step(f"{context.config.run_id} training curves"):
        drawing.plot_curves(losses, run_dir / results.CURVES_FIGURE, f"Training: {context.label}")


def probe_summary(rows: list[dict[str, Any]]) -> str:
    """The test numbers of a run's probes (metrics.csv's rows), in one line."""
    return "test accuracy " + ", ".join(f"{r['probe']} {r['accuracy']:.2f}" for r in rows
                                        if r["split"] == "test")


def test_summary(run_dir: Path) -> str:
    """The test numbers of the probes in a run's folder, in one line."""
    from bench.store.records import load_run
    return probe_summary(load_run(run_dir).metrics.to_dict("records"))
