"""A run folder as a typed record: what the report, the check and `bench evaluate` read.

No torch here (the report and the check are rebuilt anywhere, fast); ``bench.run.checkpoints``
loads a run's trained method.
"""
from __future__ import annotations

import dataclasses
import functools
import hashlib
import io
import json
from pathlib import Path
from typing import Any

import pandas as pd

from bench.errors import UnusableFile, first_line
from bench.store import results

UNFINISHED = "unfinished"  # the state of a folder with no readable status.json


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
    config: dict[str, Any]  # config.json: RunConfig.to_dict(), run_id, variational_z
    env: dict[str, Any]  # env.json
    status: dict[str, Any]  # status.json ({"state": "unfinished"} when absent)
    # A reference row's source (the report's bench/report/references.py: the suite's published
    # numbers, shown beside a folder's runs, never one of them); None for a run of the folder
    reference: str | None = None

    @property
    def state(self) -> str:
        return str(self.status.get("state", UNFINISHED))

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
                f"torch {env.get('libraries', {}).get('torch')}")

    @property
    def training_segments(self) -> list[dict[str, Any]]:
        """The stretches of training that made a published run (training.json, written by the
        campaign's publish), each a dict; [] for other runs."""
        segments = results.read_json(self.path(results.TRAINING_FILE)).get("segments")
        return [s for s in segments if isinstance(s, dict)] if isinstance(segments, list) else []

    def training_summary(self) -> tuple[float, set[str], set[str]]:
        """(CPU seconds, revisions, machines) of the run's training segments."""
        cpu, revisions, machines = 0.0, set(), set()
        for segment in self.training_segments:
            seconds = segment.get("cpu_seconds")
            if isinstance(seconds, (int, float)) and not isinstance(seconds, bool):
                cpu += float(seconds)
            if isinstance(segment.get("revision"), str):
                revisions.add(segment["revision"][:10])
            machines.add(f"{segment.get('cpu')} (numerics {segment.get('numerics')}, "
                         f"{segment.get('threads')} thread(s))")
        return cpu, revisions, machines

    def label(self) -> str:
        return f"{self.method} (z/s {self.z_dim}/{self.s_dim}, seed {self.seed})"

    def path(self, name: str) -> Path:
        return self.dir / name

    def table(self, name: str, columns: tuple[str, ...] = results.RUN_COLUMNS) -> pd.DataFrame | None:
        """The run's CSV ``name`` (metrics.csv, an evaluation's file), or None when absent. A
        file that is not a table with ``columns`` (by default the run columns every table opens
        with) is an UnusableFile naming it: a results folder may come from someone else."""
        path = self.path(name)
        if not path.is_file():
            return None
        text = results.read_run_file(path, results.TABLE_BYTES_LIMIT)
        if text is None:
            raise UnusableFile(f"{path}: not a table bench wrote (a link, not a regular file, or "
                               f"over {results.TABLE_BYTES_LIMIT // 2**20} MB)")
        try:
            table = pd.read_csv(io.StringIO(text))
        except (ValueError, UnicodeDecodeError, pd.errors.ParserError) as error:
            raise UnusableFile(f"{path}: not a readable table ({first_line(error)})") from None
        missing = [column for column in columns if column not in table.columns]
        if missing:
            raise UnusableFile(f"{path}: not a table of this benchmark (no column "
                               f"{', '.join(missing)})")
        return table

    @functools.cached_property
    def metrics(self) -> pd.DataFrame:
        """metrics.csv: the latent probes (empty when the run has none yet)."""
        table = self.table(results.METRICS_FILE, results.METRICS_COLUMNS)
        return table if table is not None else pd.DataFrame(columns=list(results.METRICS_COLUMNS))

    @property
    def evaluations(self) -> dict[str, Any]:
        """evaluation.json: per evaluation, its version and how it was computed."""
        return results.read_json(self.path(results.EVALUATION_FILE))


def run_columns(config: dict[str, Any], run_id: str) -> dict[str, Any]:
    """The values of ``results.RUN_COLUMNS`` for a resolved config (RunConfig.to_dict())."""
    method_config = config["method_config"]
    return dict(run_id=run_id, method=config["method"], dataset=config["dataset"],
                preset=config["preset"], seed=config["seed"], z_dim=method_config["z_dim"],
                s_dim=method_config["s_dim"])


class NotARun(Exception):
    """A folder that is not a run folder (no readable config.json)."""


def load_run(path: Path | str) -> RunRecord:
    """The record of the run folder ``path`` (``results/runs/<run id>``)."""
    run_dir = Path(path)
    config = results.read_json(run_dir / results.CONFIG_FILE)
    if not config:
        raise NotARun(f"{run_dir} is not a run folder (no readable {results.CONFIG_FILE})")
    return RunRecord(run_id=run_dir.name, dir=run_dir, config=config,
                     env=results.read_json(run_dir / results.ENV_FILE),
                     status=results.read_status(run_dir) or {"state": UNFINISHED})


def load_runs(results_dir: Path | str) -> list[RunRecord]:
    """Every run folder under ``results_dir/runs``, sorted by run id (a folder without a config,
    from an attempt killed before it wrote one, is an unfinished run with an empty config)."""
    records = []
    for run_dir in sorted(results.runs_dir(results_dir).glob("*/")):
        try:
            records.append(load_run(run_dir))
        except NotARun:
            records.append(RunRecord(run_dir.name, run_dir, {}, {}, results.read_status(run_dir)
                                     or {"state": UNFINISHED}))
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
