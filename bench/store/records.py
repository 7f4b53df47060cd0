"""A run folder as a typed record: what the report, the check and `bench evaluate` read.

Each JSON record of a run folder is read through ``read_record``: no link followed, a regular
file of at most results.JSON_BYTES_LIMIT bytes, and every field of its type and within its bounds
(the schemas below, bench/store/schema.py), or an UnusableFile naming the file and the field in
one line. A results folder may come from someone else.

No torch here (the report and the check are rebuilt anywhere, fast); ``bench.run.checkpoints``
loads a run's trained method.
"""
from __future__ import annotations

import dataclasses
import functools
import hashlib
import io
import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bench.errors import UnusableFile, first_line
from bench.spec.bounds import LARGEST, MAX_CLASSES, MAX_SEED, MAX_THREADS
from bench.store import results
from bench.store.schema import (anything, boolean, checked, integer, list_of, mapping, number,
                                optional, record, text, words)

UNFINISHED = "unfinished"  # the state of a folder with no status.json

# The schemas of a run's records. A field the code reads is typed and bounded; any other field
# (a newer version's) is read as it is and only shown, escaped, in the report.
# A method's, dataset's or preset's name: it reaches figures' titles and legends (and is checked
# where it names a file: results.is_plain_name)
NAME = words(100)
_SECONDS = optional(number(0, 10**9))
_MEGABYTES = optional(number(0, 10**9))
STATUS_SCHEMA = record({"state": text, "reason": optional(text), "train_seconds": _SECONDS,
                        "total_seconds": _SECONDS, "peak_memory_mb": _MEGABYTES,
                        "group_peak_memory_mb": _MEGABYTES}, required=("state",))
ENV_SCHEMA = record({
    "python": optional(text), "platform": optional(text), "command": optional(text),
    "libraries": mapping(optional(text), most=100),
    "git": optional(record({"revision": optional(text), "dirty": optional(boolean)})),
    "device": optional(text), "device_name": optional(text),
    "torch_threads": optional(integer(1, MAX_THREADS)), "cpu_kernels": optional(text),
    "numerics": optional(text), "tf32": optional(boolean), "cuda_graphs": optional(boolean),
    "together": optional(boolean)})
_LATENT = integer(1, LARGEST["z_dim"])
EXTERNAL_SCHEMA = record({"source": text, "kind": text, "sha256": text, "decoder": boolean,
                          "skipped_without_decoder": list_of(text, most=100),
                          "model_args": optional(mapping(text, most=100)),
                          "decoder_source": optional(text), "decoder_sha256": optional(text),
                          "weights_sha256": optional(text), "model_sha256": optional(text)})
CONFIG_SCHEMA = record({
    "run_id": optional(text), "method": NAME, "dataset": NAME, "preset": NAME,
    "seed": integer(0, MAX_SEED),
    "method_config": record({"z_dim": _LATENT, "s_dim": _LATENT}, required=("z_dim", "s_dim")),
    "settings": mapping(anything, most=100), "external": optional(EXTERNAL_SCHEMA),
    "variational_z": optional(boolean)},
    required=("method", "dataset", "preset", "seed", "method_config"))
# t-SNE's record, in figures.json and (with its version) evaluation.json
TSNE_FIELDS = {"classes": integer(1, MAX_CLASSES), "codes": list_of(text, most=8),
               "label_name": words(100), "points": integer(1, LARGEST["tsne_points"]),
               "seed": integer(0, MAX_SEED), "threads": integer(1, MAX_THREADS),
               "library": text, "which": text, "parameters": mapping(anything, most=100)}
_VERSION = {"version": integer(0, 10**6)}
EVALUATION_SCHEMA = record(
    {"probes": record({**_VERSION, "specified": optional(text)}),
     "tsne": record({**_VERSION, **TSNE_FIELDS})},
    others=record(_VERSION))
_IMAGE_INDICES = list_of(integer(0, LARGEST["test_size"]), most=MAX_CLASSES)
FIGURES_SCHEMA = record(
    {"tsne": record(TSNE_FIELDS),
     "swap_grid": record({"s_images": _IMAGE_INDICES, "z_images": _IMAGE_INDICES})},
    others=mapping(anything))
TRAINING_SCHEMA = record({"run_id": optional(text), "segments": list_of(record({
    "cpu_seconds": optional(number(0, 10**10)), "revision": optional(text),
    "cpu": optional(text), "numerics": optional(text),
    "threads": optional(integer(1, MAX_THREADS))}), most=100_000)})
# A job's record in jobs/slurm/<run id>.json (bench/launch/slurm.py)
JOB_SCHEMA = record({"run_id": optional(text), "job_id": optional(text), "submitted": anything,
                     "stdout": optional(text), "stderr": optional(text),
                     "argv": optional(list_of(text, most=1000))})


def read_record(path: Path, schema) -> dict[str, Any] | None:
    """The JSON object of a run's record at ``path``, checked against ``schema``; None when it
    is absent. A link, a file that is not a regular one, over results.JSON_BYTES_LIMIT bytes,
    not JSON, or of another shape than ``schema`` is an UnusableFile naming it (and the field)."""
    path = Path(path)
    if not os.path.lexists(path):
        return None
    text_read = results.read_run_file(path, results.JSON_BYTES_LIMIT)
    if text_read is None:
        raise UnusableFile(results.not_readable(path, "record", results.JSON_BYTES_LIMIT))
    try:
        data = json.loads(text_read)
    except RecursionError:
        raise UnusableFile(f"{path}: nested too deeply") from None
    except ValueError as error:
        raise UnusableFile(f"{path}: not JSON ({first_line(error)})") from None
    return checked(data, schema, path)


@dataclasses.dataclass(frozen=True)
class RunStatus:
    """A run's status.json: complete (with its times and peak memory) or failed (with its
    reason); ``UNFINISHED`` for a folder without one."""
    state: str = UNFINISHED
    reason: str | None = None
    train_seconds: float | None = None
    total_seconds: float | None = None
    peak_memory_mb: float | None = None
    group_peak_memory_mb: float | None = None  # trained together on CUDA: the group's

    @classmethod
    def read(cls, run_dir: Path) -> "RunStatus":
        """The status of the run folder ``run_dir`` (read_record: checked)."""
        found = read_record(Path(run_dir) / results.STATUS_FILE, STATUS_SCHEMA)
        if found is None:
            return cls()
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in found.items() if k in known})


@dataclasses.dataclass(frozen=True)
class ExternalSource:
    """Where an external model's run came from (config.json's ``external``, written by
    python -m bench evaluate-model): shown, never imported or opened (a results folder may come
    from someone else)."""
    source: str  # the model as given on the command line
    kind: str
    sha256: str
    decoder: bool
    skipped_without_decoder: tuple[str, ...]  # evaluations (and figures) that needed a decoder

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ExternalSource":
        skipped = data.get("skipped_without_decoder")
        return cls(source=str(data.get("source")), kind=str(data.get("kind")),
                   sha256=str(data.get("sha256")), decoder=data.get("decoder") is True,
                   skipped_without_decoder=tuple(map(str, skipped))
                   if isinstance(skipped, list) else ())


# The variants of reference rows begin with this (RunRecord.variant): the report lists them after
# the folder's own experiments, and never averages them with one.
REFERENCE_VARIANT = "reference-"


@dataclasses.dataclass(frozen=True)
class RunRecord:
    """One run folder: its resolved config, environment and status as written, and its tables."""
    run_id: str
    dir: Path
    config: dict[str, Any]  # config.json (CONFIG_SCHEMA): RunConfig.to_dict(), run_id, variational_z
    env: dict[str, Any]  # env.json (ENV_SCHEMA)
    status: RunStatus  # status.json
    # A reference row's source (the report's bench/report/references.py: the suite's published
    # numbers, shown beside a folder's runs, never one of them); None for a run of the folder
    reference: str | None = None

    @property
    def state(self) -> str:
        return self.status.state

    @property
    def complete(self) -> bool:
        return self.state == results.COMPLETE

    @property
    def method(self) -> str:
        return str(self.config.get("method"))

    @property
    def dataset(self) -> str:
        return str(self.config.get("dataset"))

    @property
    def preset(self) -> str:
        return str(self.config.get("preset"))

    @property
    def seed(self) -> int | None:
        return self.config.get("seed")

    @property
    def z_dim(self) -> int | None:
        return self.config.get("method_config", {}).get("z_dim")

    @property
    def s_dim(self) -> int | None:
        return self.config.get("method_config", {}).get("s_dim")

    @property
    def external(self) -> ExternalSource | None:
        """Where the model came from, for a run of an external model (no suite method, no
        training, no checkpoint); None for a suite run."""
        found = self.config.get("external")
        return ExternalSource.from_dict(found) if isinstance(found, dict) else None

    @property
    def variational_z(self) -> bool:
        return self.config.get("variational_z") is not False

    @property
    def settings(self) -> dict[str, Any]:
        """Every setting of the run but its seed, flat: the method's config and the run settings
        (a run setting that shares a name with a method field is prefixed ``settings.``)."""
        flat = dict(self.config.get("method_config", {}))
        for key, value in self.config.get("settings", {}).items():
            flat["settings." + key if key in flat else key] = value
        return flat

    @property
    def variant(self) -> str:
        """A short hash of the whole resolved config except the seed: runs with the same variant
        are seeds of one experiment, and only those are averaged. A reference row's begins with
        REFERENCE_VARIANT and hashes its source too: it is never averaged with a folder's run."""
        same = {k: v for k, v in self.config.items() if k not in ("seed", "run_id")}
        if self.reference is not None:
            same = {"config": same, "reference": self.reference}
        canonical = json.dumps(same, sort_keys=True, separators=(",", ":"), default=str)
        digest = hashlib.sha256(canonical.encode()).hexdigest()[:10]
        return digest if self.reference is None else REFERENCE_VARIANT + digest

    @property
    def computed_on(self) -> str:
        """What a run's numbers depend on beyond its config; a seed gives the same numbers bit for
        bit where this agrees. On the CPU: the kernels' instruction set and what they compute
        (environment.numerics_fingerprint), not the CPU's name, which machines that compute
        differently can share; elsewhere, and for runs recorded without a fingerprint, the device's
        name. Then the thread count and torch's version."""
        env = self.env
        if env.get("device") == "cpu" and env.get("numerics"):
            device = f"cpu ({env.get('cpu_kernels')} kernels, numerics {env.get('numerics')})"
        else:
            device = f"{env.get('device')} ({env.get('device_name')})"
        return (f"{device}, {env.get('torch_threads')} threads, "
                f"torch {(env.get('libraries') or {}).get('torch')}")

    @property
    def training_segments(self) -> list[dict[str, Any]]:
        """The stretches of training that made a published run (training.json, written by the
        campaign's publish), each a dict; [] for other runs."""
        found = read_record(self.path(results.TRAINING_FILE), TRAINING_SCHEMA) or {}
        return found.get("segments", [])

    def training_summary(self) -> tuple[float, set[str], set[str]]:
        """(CPU seconds, revisions, machines) of the run's training segments."""
        cpu, revisions, machines = 0.0, set(), set()
        for segment in self.training_segments:
            cpu += float(segment.get("cpu_seconds") or 0)
            if segment.get("revision") is not None:
                revisions.add(segment["revision"][:10])
            machines.add(f"{segment.get('cpu')} (numerics {segment.get('numerics')}, "
                         f"{segment.get('threads')} thread(s))")
        return cpu, revisions, machines

    def label(self) -> str:
        return f"{self.method} (z/s {self.z_dim}/{self.s_dim}, seed {self.seed})"

    def path(self, name: str) -> Path:
        return self.dir / name

    def has_table(self, name: str) -> bool:
        """Whether the run holds the table ``name``, as it is or gzip-compressed."""
        return results.table_file(self.dir, name) is not None

    def table(self, name: str, columns: tuple[str, ...] = results.RUN_COLUMNS,
              numbers: tuple[str, ...] = (),
              integers: dict[str, tuple[int, int]] | None = None) -> pd.DataFrame | None:
        """The run's CSV ``name`` (metrics.csv, an evaluation's file), or None when absent. A
        file that is not a table with ``columns`` (by default the run columns every table opens
        with), whose ``numbers`` columns are not all finite numbers, or whose ``integers``
        columns are not all integers within their (low, high), is an UnusableFile naming it and
        the column: a results folder may come from someone else."""
        path = results.table_file(self.dir, name)
        if path is None:
            return None
        text = results.read_table_text(path, results.TABLE_BYTES_LIMIT)
        if text is None:
            raise UnusableFile(results.not_readable(path, "table", results.TABLE_BYTES_LIMIT))
        try:
            table = pd.read_csv(io.StringIO(text))
        except (ValueError, UnicodeDecodeError, pd.errors.ParserError) as error:
            raise UnusableFile(f"{path}: not a readable table ({first_line(error)})") from None
        missing = [column for column in columns if column not in table.columns]
        if missing:
            raise UnusableFile(f"{path}: not a table of this benchmark (no column "
                               f"{', '.join(missing)})")
        self._same_run(table, path)
        for column in (*numbers, *(integers or {})):
            values = pd.to_numeric(table[column], errors="coerce") if column in table else None
            low, high = (integers or {}).get(column, (-math.inf, math.inf))
            if values is None or not (values.notna().all() and np.isfinite(values).all()
                                      and values.between(low, high).all()):
                raise UnusableFile(f"{path}: column {column} holds a value that is not a "
                                   f"finite number" + (f" from {low} to {high}"
                                                       if column in (integers or {}) else ""))
            if column in (integers or {}) and not (values == values.round()).all():
                raise UnusableFile(f"{path}: column {column} holds a value that is not an integer")
            table[column] = values.astype(int) if column in (integers or {}) else values
        return table

    def _same_run(self, table: pd.DataFrame, path: Path) -> None:
        """The run columns of one of the run's tables hold the run's own values (config.json's):
        the report groups every table's rows by them. An UnusableFile naming the column else."""
        if not self.config:
            return
        own = {"run_id": self.config.get("run_id", self.run_id), "method": self.method,
               "dataset": self.dataset, "preset": self.preset, "seed": self.seed,
               "z_dim": self.z_dim, "s_dim": self.s_dim}
        for column, value in own.items():
            if column in table and not (table[column].astype(str) == str(value)).all():
                wrong = table[column][table[column].astype(str) != str(value)].iloc[0]
                raise UnusableFile(f"{path}: column {column} holds {str(wrong)[:40]!r}, not the "
                                   f"run's {str(value)[:40]!r} ({results.CONFIG_FILE})")

    @functools.cached_property
    def metrics(self) -> pd.DataFrame:
        """metrics.csv: the latent probes (empty when the run has none yet)."""
        table = self.table(results.METRICS_FILE, results.METRICS_COLUMNS)
        return table if table is not None else pd.DataFrame(columns=list(results.METRICS_COLUMNS))

    @property
    def evaluations(self) -> dict[str, Any]:
        """evaluation.json (EVALUATION_SCHEMA): per evaluation, its version and how it was
        computed ({} when absent). Read anew each time: bench evaluate rewrites it."""
        return read_record(self.path(results.EVALUATION_FILE), EVALUATION_SCHEMA) or {}

    @property
    def figures(self) -> dict[str, Any]:
        """figures.json (FIGURES_SCHEMA): what drew each evaluation's figures ({} when absent)."""
        return read_record(self.path(results.FIGURES_FILE), FIGURES_SCHEMA) or {}


def run_columns(config: dict[str, Any], run_id: str) -> dict[str, Any]:
    """The values of ``results.RUN_COLUMNS`` for a resolved config (RunConfig.to_dict())."""
    method_config = config["method_config"]
    return dict(run_id=run_id, method=config["method"], dataset=config["dataset"],
                preset=config["preset"], seed=config["seed"], z_dim=method_config["z_dim"],
                s_dim=method_config["s_dim"])


class NotARun(Exception):
    """A folder that is not a run folder (no config.json)."""


def load_run(path: Path | str) -> RunRecord:
    """The record of the run folder ``path`` (``results/runs/<run id>``), every record in it
    checked (read_record): a record that is not what bench writes is an UnusableFile naming it,
    and its field."""
    run_dir = Path(path)
    config = read_record(run_dir / results.CONFIG_FILE, CONFIG_SCHEMA)
    if config is None:
        raise NotARun(f"{run_dir} is not a run folder (no {results.CONFIG_FILE})")
    loaded = RunRecord(run_id=run_dir.name, dir=run_dir, config=config,
                       env=read_record(run_dir / results.ENV_FILE, ENV_SCHEMA) or {},
                       status=RunStatus.read(run_dir))
    loaded.evaluations, loaded.figures, loaded.training_segments  # noqa: B018 - checked now
    return loaded


def load_runs(results_dir: Path | str) -> list[RunRecord]:
    """Every run folder under ``results_dir/runs``, sorted by run id (a folder without a config,
    from an attempt killed before it wrote one, is an unfinished run with an empty config)."""
    records = []
    for run_dir in results.run_folders(results_dir):
        try:
            records.append(load_run(run_dir))
        except NotARun:
            records.append(RunRecord(run_dir.name, run_dir, {}, {}, RunStatus.read(run_dir)))
    return records


def metrics_of(records: list[RunRecord]) -> pd.DataFrame:
    """The metrics.csv rows of ``records``, with each run's ``variant``."""
    frames = [r.metrics.assign(variant=r.variant) for r in records if not r.metrics.empty]
    if not frames:
        return pd.DataFrame(columns=[*results.METRICS_COLUMNS, "variant"])
    return pd.concat(frames, ignore_index=True)


def differing_settings(records: list[RunRecord]) -> dict[str, str]:
    """{variant: "key value, ..."}: for each variant, the settings in which it differs from other
    variants of the same method and latent sizes among ``records`` (empty text when none do)."""
    by_experiment: dict[tuple, dict[str, dict]] = {}
    for record in records:
        by_experiment.setdefault((record.method, record.z_dim, record.s_dim), {})[record.variant] = \
            record.settings
    described: dict[str, str] = {}
    for variants in by_experiment.values():
        keys = sorted({k for settings in variants.values() for k in settings})
        differing = [k for k in keys
                     if len({json.dumps(s.get(k), sort_keys=True) for s in variants.values()}) > 1]
        for variant, settings in variants.items():
            described[variant] = ", ".join(f"{k} {_text(settings.get(k))}" for k in differing)
    return described


def _text(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return "/".join(map(str, value))
    return str(value)
