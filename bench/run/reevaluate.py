"""python -m bench evaluate: recompute evaluations of complete runs from their checkpoints.

A new metric, or a fixed one (its version raised), reaches finished runs without retraining. Each
run is locked while it is evaluated, and each evaluation's file and its entry in evaluation.json
are replaced atomically: an interrupted evaluate leaves every run with whole files, old or new.
What it prints while it evaluates a run is appended to the run's run.log, after its training's.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import torch

from bench.errors import ConfigError, Refused
from bench.evaluations import Context, Evaluation, is_current, run_evaluations
from bench.evaluations.encoding import encode_all
from bench.run.build import run_data
from bench.run.live import RUN_LOG, ConsoleLog
from bench.run.lock import RunLock
from bench.run.trained_method import load_method
from bench.spec.config import RunConfig
from bench.store import results
from bench.store.records import RunRecord, load_runs
from bench.terminal import printable
from datasets import ImageSet


def choose_runs(results_dir: Path, run_ids: list[str] | None) -> list[RunRecord]:
    """The complete runs of ``results_dir`` (those of ``run_ids`` when given; an id that is not
    there, or a run that is not complete, is an InputError)."""
    records = {r.run_id: r for r in load_runs(results_dir)}
    if run_ids is None:
        return [r for r in records.values() if r.complete]
    unknown = [i for i in run_ids if i not in records]
    if unknown:
        raise ConfigError(f"no run {', '.join(unknown)} in {results_dir}")
    incomplete = [i for i in run_ids if not records[i].complete]
    if incomplete:
        raise Refused(f"run {', '.join(incomplete)} is not complete: only complete runs are "
                         "evaluated (python -m bench run resumes it)")
    return [records[i] for i in run_ids]


def reevaluate(records: list[RunRecord], evaluations: list[Evaluation], device: torch.device,
               load_data: Callable[[str], ImageSet], force: bool, between: Callable[[], None],
               say: Callable[[str], None] = print) -> dict[str, int]:
    """Compute, for each run, the chosen evaluations that apply to its dataset and are not yet in
    its folder at their current version (all of them with ``force``); an external model's run
    is skipped with a line (bench evaluate never imports a model named in a results folder).
    Returns how many runs were evaluated, up to date, busy (another process holds their lock)
    and skipped as external."""
    counts = {"evaluated": 0, "up to date": 0, "busy": 0, "external (skipped)": 0}
    datasets: dict[str, ImageSet] = {}
    results.no_links_for([r.dir for r in records])  # from someone else: no link redirects a write
    for record in records:
        if record.external is not None:  # its model is code named in the folder: never imported
            say(f"skip {printable(record.run_id)}: an external model's run; rerun python -m bench "
                "evaluate-model with the model to recompute it")
            counts["external (skipped)"] += 1
            continue
        lock = RunLock(record.dir)
        if not lock.acquire():
            say(f"busy {printable(record.run_id)}: another process (pid {lock.holder()}) is working on it")
            counts["busy"] += 1
            continue
        try:
            results.remove_stale_temporaries(record.dir)
            config = RunConfig.from_dict(record.config, str(record.path(results.CONFIG_FILE)))
            if config.dataset not in datasets:
                datasets[config.dataset] = load_data(config.dataset)
            data = run_data(config, datasets[config.dataset])
            todo = [e for e in evaluations
                    if e.applies(data) and e.applies_to_method(config.method)
                    and (force or not is_current(e, record.dir))]
            if not todo:
                say(f"up to date {printable(record.run_id)}")
                counts["up to date"] += 1
                continue
            with ConsoleLog(record.dir / RUN_LOG, "bench evaluate"):  # beside its training's lines
                method = load_method(record, device, datasets[config.dataset])
                context = Context(config, method, data, encode_all(method, data.train_images),
                                  encode_all(method, data.test_images))
                run_evaluations(context, record.dir, todo, between=between, say=say)
            counts["evaluated"] += 1
        finally:
            lock.release()
    return counts
