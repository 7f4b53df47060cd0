"""A trained method loaded from its complete run folder: from its checkpoint, or from its weights
alone where a published run has none."""
from __future__ import annotations

from pathlib import Path

import torch

from bench.errors import CorruptRun, Refused, UnusableFile
from bench.run.build import build, restore, run_data
from bench.run.checkpoints import load_checkpoint
from bench.run.weights import WEIGHTS_FILE, load_weights
from bench.spec.config import RunConfig
from bench.store import results
from bench.store.records import RunRecord, load_run
from datasets import ImageSet
from methods import Method


def load_method(path: Path | str, device: torch.device | str = "cpu",
                data: ImageSet | None = None) -> Method:
    """The trained method of the complete run folder ``path``, on ``device`` (any device: the
    checkpoint's random generators are not read), in the state its evaluations saw: from its
    checkpoint, or from its weights alone where a published run has no checkpoint. ``data`` (the
    run's dataset, loaded) gives the image shape and the training pairs; without it the dataset
    is loaded from its default place."""
    record = path if isinstance(path, RunRecord) else load_run(path)
    if not record.complete:
        raise Refused(f"{record.dir} is not a complete run (state: {record.state})")
    config = RunConfig.from_dict(record.config, str(record.path(results.CONFIG_FILE)))
    if data is None:
        from datasets import DATASETS
        data = DATASETS[config.dataset](None, torch.device("cpu"))
    checkpoint = record.path(results.CHECKPOINT_FILE)
    if not checkpoint.exists() and record.path(WEIGHTS_FILE).exists():  # a published run
        method, _ = build(config, run_data(config, data), torch.device(device))
        load_weights(method, record.path(WEIGHTS_FILE))
        return method
    try:
        state = load_checkpoint(checkpoint, config)
    except CorruptRun as error:
        raise UnusableFile(str(error)) from None
    method, _ = build(config, run_data(config, data), torch.device(device))
    restore(method, state.method)
    return method
