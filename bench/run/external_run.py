"""A run of an external model (python -m bench evaluate-model, bench/external_model.py): its config,
its id, and its folder, written as a suite run's is (config.json, env.json, each evaluation's
file, evaluation.json, the evaluations' figures, status.json last) but marked external: no
training, no checkpoint, no losses, no training curves; config.json's ``external`` says where
the model came from.

Nothing is left half-written: the folder is made only after the model passed its first batch,
and removed again if the model fails a check (UnusableModel) or the process is stopped before
status.json says complete. An evaluation that fails otherwise (raises) fails the run as a suite
run's does: status.json says failed, error.log holds the traceback.

One name is one model: the run id hashes the model (its file, factory arguments and the weights
the factory returned, ``model_sha256``), and a complete run of the same name and dataset from
another model is refused (``other_models``) unless it is replaced.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
import time
import traceback
from pathlib import Path
from typing import Any, Callable

from bench.errors import (ConfigError, Interrupted, Refused, RunFailed, UnusableModel, first_line,
                          is_device_fault)
from bench.evaluations import Context, Evaluation, run_evaluations
from bench.evaluations.encoding import encode_all
from bench.external_model import ExternalMethod, ModelSource, model_sha256
from bench.run.live import RUN_LOG, ConsoleLog
from bench.run.lock import RunLock
from bench.spec.config import RunIdentity, RunSettings, check_values, coerce_setting
from bench.run.environment import environment, peak_memory_mb
from bench.spec.presets import PRESETS
from bench.sections.experiments import EXTERNAL_MARK
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
    ``method_config`` holds only its latent sizes; ``weights_sha256``: the hash of the tensors the
    factory's model holds (None for a TorchScript or torch.export file, which holds them)."""
    method_config: LatentSizes
    source: ModelSource
    variational_z: bool
    decodes: bool
    weights_sha256: str | None = None

    @property
    def shown_name(self) -> str:
        return f"{self.method} {EXTERNAL_MARK}"

    @property
    def model_sha256(self) -> str:
        return model_sha256(self.source, self.weights_sha256)

    @property
    def run_id(self) -> str:
        """From the name, dataset, seed, preset, settings and the model (its file, arguments and
        weights): the same command on the same model finds the same folder."""
        identity = {"name": self.method, "dataset": self.dataset, "seed": self.seed,
                    "preset": self.preset, "settings": dataclasses.asdict(self.settings),
                    "model": self.model_sha256}
        canonical = json.dumps(identity, sort_keys=True, separators=(",", ":"))
        return f"{self.method}-{self.dataset}-{hashlib.sha256(canonical.encode()).hexdigest()[:10]}"

    def record(self, skipped: list[str]) -> dict[str, Any]:
        """config.json: the run's config, marked external (bench.store.records.ExternalSource)."""
        source = self.source
        return {**self.to_dict(), "run_id": self.run_id, "variational_z": self.variational_z,
                "external": {"source": source.spec, "kind": source.kind, "sha256": source.sha256,
                             "model_args": dict(source.args),
                             "decoder_source": None if source.decoder is None else str(source.decoder),
                             "decoder_sha256": source.decoder_sha256,
                             "weights_sha256": self.weights_sha256,
                             "model_sha256": self.model_sha256, "decoder": self.decodes,
                             "skipped_without_decoder": skipped}}


def other_models(config: ExternalConfig, results_dir: Path) -> list[Path]:
    """The run folders in ``results_dir`` of the same name and dataset as ``config`` but of
    another model (config.json's ``external.model_sha256`` differs, or is absent), complete or
    not."""
    found = []
    folder = results.runs_dir(results_dir)
    for run_dir in sorted(folder.iterdir()) if folder.is_dir() else []:
        if run_dir.name == config.run_id or not run_dir.name.startswith(f"{config.method}-"):
            continue
        record = results.read_json(run_dir / results.CONFIG_FILE)
        external = record.get("external")
        if (record.get("method") == config.method and record.get("dataset") == config.dataset
                and isinstance(external, dict)
                and external.get("model_sha256") != config.model_sha256):
            found.append(run_dir)
    return found


def check_one_model(config: ExternalConfig, results_dir: Path, replace: bool) -> list[Path]:
    """The runs to replace (``other_models``) when ``replace``; otherwise none, or Refused when a
    complete one is there: one name in a results folder is one model."""
    others = other_models(config, results_dir)
    if replace:
        results.no_links_for(others)  # nothing is removed through a link
        return others
    complete = [run_dir for run_dir in others if results.is_complete(run_dir)]
    if complete:
        raise Refused(f"--name {config.method}: {complete[0]} holds {config.method} on "
                      f"{config.dataset} from another model (other weights, file or --model-arg); "
                      "give another --name, or --replace to discard "
                      f"{'it' if len(complete) == 1 else f'those {len(complete)} runs'} and "
                      "evaluate this model under the name")
    return []


def replace_runs(run_dirs: list[Path], say: Callable[[str], None] = print) -> None:
    """Remove the runs ``run_dirs`` (each under its lock; one another process holds is left)."""
    for run_dir in run_dirs:
        lock = RunLock(run_dir)
        if not lock.acquire():
            say(f"kept {run_dir.name}: another process (pid {lock.holder()}) is working on it")
            continue
        try:
            shutil.rmtree(run_dir, ignore_errors=True)
            say(f"replaced {run_dir.name} (another model under the name)")
        finally:
            lock.release()


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
    (complete already, without ``force``) or "busy" (another process holds the run). A model
    that fails a check (UnusableModel) or a stop leaves nothing of a new run (with ``force``, the
    complete run as it was); an evaluation that raises anything else is a RunFailed, recorded in
    the folder (status.json failed, error.log)."""
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
            _write_recorded(config, method, data, run_dir, evaluations, stop, say, complete=True)
            return "complete"
        if run_dir.exists():  # what a killed or failed attempt left: nothing to keep
            shutil.rmtree(run_dir)
        run_dir.mkdir(parents=True)
        try:
            _write_recorded(config, method, data, run_dir, evaluations, stop, say, complete=False)
        except RunFailed:
            raise
        except BaseException:
            shutil.rmtree(run_dir, ignore_errors=True)
            raise
        return "complete"
    finally:
        lock.release()


def _write_recorded(config: ExternalConfig, method: ExternalMethod, data: ImageSet, run_dir: Path,
                    evaluations: list[Evaluation], stop: Callable[[], None],
                    say: Callable[[str], None], complete: bool) -> None:
    """``_write``, an evaluation that raises (but for a bad model, a stop or a device-wide fault)
    recorded as a suite run's failure is: error.log, and status.json failed unless the run was
    complete already (--force keeps its earlier files)."""
    (run_dir / results.ERROR_FILE).unlink(missing_ok=True)
    doing = ["encoding"]
    try:
        _write(config, method, data, run_dir, evaluations, stop, say, doing)
    except (UnusableModel, Interrupted):
        raise
    except Exception as error:  # noqa: BLE001 - recorded in the run's folder, one line
        if is_device_fault(error):
            raise
        results.write_text_atomic(run_dir / results.ERROR_FILE, traceback.format_exc())
        reason = (f"{config.method}: {doing[-1]} failed: {type(error).__name__}: "
                  f"{first_line(error, default='')} (traceback in {run_dir / results.ERROR_FILE})")
        if not complete:
            results.write_json_atomic(run_dir / results.STATUS_FILE,
                                      {"state": results.FAILED, "reason": reason})
        raise RunFailed(f"failed {config.run_id}: {reason}"
                        + ("; the complete run's earlier files are kept" if complete else "")) from None


def _write(config: ExternalConfig, method: ExternalMethod, data: ImageSet, run_dir: Path,
           evaluations: list[Evaluation], stop: Callable[[], None], say: Callable[[str], None],
           doing: list[str]):
    """The run's files, status.json last; ``doing`` gets the name of each step as it starts."""
    started = time.perf_counter()
    skipped = skipped_without_decoder(evaluations, data, method.decodes)
    results.write_json_atomic(run_dir / results.CONFIG_FILE, config.record(skipped))
    results.write_json_atomic(run_dir / results.ENV_FILE, environment(method.device))
    with ConsoleLog(run_dir / RUN_LOG, "bench evaluate-model"):  # its lines, as a run's
        context = Context(config, method, data, encode_all(method, data.train_images),
                          encode_all(method, data.test_images), stop=stop)
        for evaluation in evaluations:
            doing.append(evaluation.name)
            run_evaluations(context, run_dir, [evaluation], between=stop, say=say)
    results.write_json_atomic(run_dir / results.STATUS_FILE, {
        "state": results.COMPLETE, "total_seconds": round(time.perf_counter() - started, 2),
        "peak_memory_mb": round(peak_memory_mb(method.device), 1)})
