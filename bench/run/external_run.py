"""A run of an external model (python -m bench evaluate-model, bench/external_model.py): its config,
its id, and its folder, written as a suite run's is (config.json, env.json, each evaluation's
file, evaluation.json, the evaluations' figures, status.json last) but marked external: no
training, no checkpoint, no losses, no training curves; config.json's ``external`` says where
the model came from.

Nothing is left half-written: the folder is made only after the model passed its first batch,
and removed again if anything fails before status.json says complete.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
import time
from pathlib import Path
from typing import Any, Callable

from bench.errors import ConfigError
from bench.evaluations import Context, Evaluation, run_evaluations
from bench.evaluations.encoding import encode_all
from bench.external_model import ExternalMethod, ModelSource
from bench.run.live import RUN_LOG, ConsoleLog
from bench.run.lock import RunLock
from bench.spec.config import RunIdentity, RunSettings, check_values, coerce_setting
from bench.run.environment import environment, peak_memory_mb
from bench.spec.presets import PRESETS
from bench.store import results
from datasets import ImageSet

# Settings of a run that concern training: an external model has none.
TRAINING_SETTINGS = ("iterations_per_epoch",)


def external_settings(preset: str, overrides: dict[str, str]) -> RunSettings:
    """The evaluation settings (data sizes, the probes' budget, t-SNE points) of ``preset``, as a
    run of that preset has them, then ``overrides`` (--set)."""
    fields = {f.name: f.default for f in dataclasses.fields(RunSettings)
              if f.name not in TRAINING_SETTINGS}
    chosen = {k: v for k, v in PRESETS[preset].items() if k in fields and not isinstance(v, dict)}
    for key, value in overrides.items():
        if key not in fields:
            raise ConfigError(f"unknown setting {key!r} for an external model (valid: "
                              f"{', '.join(sorted(fields))})")
        chosen[key] = value
    values = {k: coerce_setting(k, v, fields[k]) for k, v in chosen.items()}
    check_values(values, "--set")
    return RunSettings(**values)


@dataclasses.dataclass(frozen=True)
class LatentSizes:
    """The widths of the model's codes (a run's method_config holds them, with its training)."""
    z_dim: int
    s_dim: int


@dataclasses.dataclass(frozen=True)
class ExternalConfig(RunIdentity):
    """The config of an external model's run: its name (--name) stands as the method,
    ``method_config`` holds only its latent sizes."""
    method_config: LatentSizes
    source: ModelSource
    variational_z: bool
    decodes: bool

    @property
    def run_id(self) -> str:
        """From the name, dataset, seed, preset, settings and the model file's hash: the same
        command on the same file finds the same folder."""
        identity = {"name": self.method, "dataset": self.dataset, "seed": self.seed,
                    "preset": self.preset, "settings": dataclasses.asdict(self.settings),
                    "sha256": self.source.sha256}
        canonical = json.dumps(identity, sort_keys=True, separators=(",", ":"))
        return f"{self.method}-{self.dataset}-{hashlib.sha256(canonical.encode()).hexdigest()[:10]}"

    def record(self, skipped: list[str]) -> dict[str, Any]:
        """config.json: the run's config, marked external (bench.store.records.ExternalSource)."""
        return {**self.to_dict(), "run_id": self.run_id, "variational_z": self.variational_z,
                "external": {"source": self.source.spec, "kind": self.source.kind,
                             "sha256": self.source.sha256, "decoder": self.decodes,
                             "skipped_without_decoder": skipped}}


def skipped_without_decoder(evaluations: list[Evaluation], data: ImageSet, decodes: bool) -> list[str]:
    """The evaluations of ``evaluations`` that apply to ``data`` but decode (the swap grid among
    them), when the model does not."""
    if decodes:
        return []
    return [e.name for e in evaluations if e.needs_decoder and e.applies(data)]


def evaluate_external(config: ExternalConfig, method: ExternalMethod, data: ImageSet,
                      results_dir: Path, evaluations: list[Evaluation], force: bool,
                      stop: Callable[[], None], say: Callable[[str], None] = print) -> str:
    """Evaluate ``method`` into ``results_dir/runs/<run id>``; returns "complete", "up to date"
    (complete already, without ``force``) or "busy" (another process holds the run)."""
    run_dir = results.runs_dir(results_dir) / config.run_id
    results.no_links_for([run_dir])
    lock = RunLock(run_dir)
    if not lock.acquire():
        say(f"busy {config.run_id}: another process (pid {lock.holder()}) is working on it")
        return "busy"
    try:
        complete = results.is_complete(run_dir)
        if complete and not force:
            say(f"up to date {config.run_id}: already complete in {run_dir} (--force recomputes it)")
            return "up to date"
        if complete:  # --force: each file replaced atomically, a failure leaves the old ones
            _write(config, method, data, run_dir, evaluations, stop, say)
            return "complete"
        if run_dir.exists():  # what a killed attempt left: never complete, nothing to keep
            shutil.rmtree(run_dir)
        run_dir.mkdir(parents=True)
        try:
            _write(config, method, data, run_dir, evaluations, stop, say)
        except BaseException:
            shutil.rmtree(run_dir, ignore_errors=True)
            raise
        return "complete"
    finally:
        lock.release()


def _write(config: ExternalConfig, method: ExternalMethod, data: ImageSet, run_dir: Path,
           evaluations: list[Evaluation], stop: Callable[[], None], say: Callable[[str], None]):
    started = time.perf_counter()
    skipped = skipped_without_decoder(evaluations, data, method.decodes)
    results.write_json_atomic(run_dir / results.CONFIG_FILE, config.record(skipped))
    results.write_json_atomic(run_dir / results.ENV_FILE, environment(method.device))
    with ConsoleLog(run_dir / RUN_LOG, "bench evaluate-model"):  # its lines, as a run's
        context = Context(config, method, data, encode_all(method, data.train_images),
                          encode_all(method, data.test_images), stop=stop)
        run_evaluations(context, run_dir, evaluations, between=stop, say=say)
    results.write_json_atomic(run_dir / results.STATUS_FILE, {
        "state": results.COMPLETE, "total_seconds": round(time.perf_counter() - started, 2),
        "peak_memory_mb": round(peak_memory_mb(method.device), 1)})
