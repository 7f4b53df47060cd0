"""Resolve (method defaults < preset < command-line flags) into one run config, and name it."""
from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from typing import Any

from bench.errors import ConfigError, first_line
from bench.spec.bounds import LARGEST, MAX_SEED
from bench.spec.presets import LATENT_SIZES, PRESETS
from datasets import DATASETS
from methods import METHODS, MethodConfig
from methods.base import RUNS_NAMED_BEFORE


@dataclasses.dataclass(frozen=True)
class RunSettings:
    """What a run does besides the method's own training: data budget and the latent probes."""
    iterations_per_epoch: int | None = None  # None: train_size // batch_size (937 on MNIST)
    train_size: int | None = None  # None: the whole training set
    test_size: int | None = None
    probe_epochs: int = 100  # unknown in the paper; a user's reproduction used 100
    probe_batch_size: int = 64  # unknown in the paper; the training batch size
    probe_lr: float = 1e-4
    tsne_points: int | None = None  # None: the whole test set (10,000 MNIST images)


@dataclasses.dataclass(frozen=True)
class RunIdentity:
    """What a run's config.json records first, for a suite method (RunConfig) and an external
    model (bench/run/external_run.py) alike: what evaluations read of a run."""
    method: str
    dataset: str
    preset: str
    seed: int
    method_config: Any  # a dataclass: the method's config, with its latent sizes z_dim and s_dim
    settings: RunSettings

    @property
    def shown_name(self) -> str:
        """The run's model as figures' titles name it (an external model's is marked so)."""
        return self.method

    def to_dict(self) -> dict[str, Any]:
        """The run's record: its config.json, its checkpoints' config and, hashed, its id.

        A field added after runs were named (``methods.base.added_field``, in a method's config
        or in RunSettings) is left out while it holds the value those runs had, so adding one
        renames no run and leaves every checkpoint resumable; ``from_dict`` reads its absence as
        that value. Any other value is recorded, and names its runs apart."""
        return {"method": self.method, "dataset": self.dataset, "preset": self.preset,
                "seed": self.seed, "method_config": recorded_fields(self.method_config),
                "settings": recorded_fields(self.settings)}


def recorded_fields(record: Any) -> dict[str, Any]:
    """``dataclasses.asdict(record)`` less the fields added after runs were named that hold the
    value of the runs named before them (``RunIdentity.to_dict``)."""
    values = dataclasses.asdict(record)
    for field in dataclasses.fields(record):
        if (RUNS_NAMED_BEFORE in field.metadata
                and values[field.name] == field.metadata[RUNS_NAMED_BEFORE]):
            del values[field.name]
    return values


def unrecorded_fields(record: type) -> dict[str, Any]:
    """The fields of the dataclass ``record`` that a record may lack (``recorded_fields``), with
    the value their absence means."""
    return {f.name: f.metadata[RUNS_NAMED_BEFORE] for f in dataclasses.fields(record)
            if RUNS_NAMED_BEFORE in f.metadata}


@dataclasses.dataclass(frozen=True)
class RunConfig(RunIdentity):
    method_config: MethodConfig

    @classmethod
    def from_dict(cls, data: Any, source: str = "config") -> "RunConfig":
        """The config written by ``to_dict`` (a run's config.json: JSON lists become tuples),
        held to the checks a config from the command line passes: a known method, dataset and
        preset, every field of its type and within its bounds. A config.json may come from
        someone else's results folder; anything else is a ConfigError naming ``source``."""
        if not isinstance(data, dict):
            raise ConfigError(f"{source}: not a JSON object")
        if "external" in data:
            raise ConfigError(f"{source}: the run of an external model (python -m bench "
                              "evaluate-model), not of a suite method: it has no training config "
                              "and no checkpoint")
        method = data.get("method")
        for name, known in (("method", METHODS), ("dataset", DATASETS), ("preset", PRESETS)):
            if not isinstance(data.get(name), str) or data.get(name) not in known:
                raise ConfigError(f"{source}: unknown {name} {_shown(data.get(name))} "
                                  f"(valid: {', '.join(known)})")
        seed = data.get("seed")
        if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED:
            raise ConfigError(f"{source}: seed {_shown(seed)} is not an integer from 0 to "
                              f"{MAX_SEED}")
        config_class = METHODS[method].config_class
        sections = {"method_config": config_class, "settings": RunSettings}
        values = {}
        for section, record in sections.items():
            given = data.get(section)
            if not isinstance(given, dict):
                raise ConfigError(f"{source}: {section} is not a JSON object")
            fields = {f.name: f.default for f in dataclasses.fields(record)}
            unknown = sorted(set(given) - set(fields))
            if unknown:
                raise ConfigError(f"{source}: a {method} config this version cannot read "
                                  f"(unknown {section} field {unknown[0]!r})")
            values[section] = {**unrecorded_fields(record),
                               **{k: _typed(k, v, fields[k], source) for k, v in given.items()}}
            check_values(values[section], source)
        try:
            return cls(method=method, dataset=data["dataset"], preset=data["preset"], seed=seed,
                       method_config=config_class(**values["method_config"]),
                       settings=RunSettings(**values["settings"]))
        except (TypeError, ValueError) as error:
            raise ConfigError(f"{source}: a {method} config this version cannot read "
                              f"({first_line(error)})") from None

    @property
    def run_id(self) -> str:
        """A short hash of the resolved config, after a readable prefix."""
        canonical = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        digest = hashlib.sha256(canonical.encode()).hexdigest()[:10]
        return f"{self.method}-{self.dataset}-{digest}"


def coerce_setting(name: str, value: Any, default: Any) -> Any:
    """``value`` (a string from the command line, or a preset's value) as the type of ``default``."""
    if not isinstance(value, str):
        return tuple(value) if isinstance(default, tuple) else value
    try:
        if isinstance(default, bool):
            if value.lower() not in ("true", "false"):
                raise ValueError
            return value.lower() == "true"
        if isinstance(default, tuple):
            return tuple(type(d)(v) for d, v in zip(default, value.split(","), strict=True))
        if default is None or isinstance(default, int):
            return None if value.lower() == "none" and default is None else int(value)
        return type(default)(value)
    except ValueError:
        raise ConfigError(f"--set {name}={value}: expected a value like {default!r}") from None


def _typed(name: str, value: Any, default: Any, source: str) -> Any:
    """A value read from JSON, of the type of ``default`` (lists as tuples), else ConfigError."""
    if value is None and default is None:
        return None
    if isinstance(default, bool):
        ok = isinstance(value, bool)
    elif default is None or isinstance(default, int):
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif isinstance(default, float):
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        value = float(value) if ok else value
    elif isinstance(default, tuple):
        ok = isinstance(value, (list, tuple)) and len(value) == len(default)
        if ok:
            return tuple(_typed(name, v, d, source) for v, d in zip(value, default))
    else:
        ok = isinstance(value, type(default))
    if not ok:
        raise ConfigError(f"{source}: {name} {_shown(value)} is not like {default!r}")
    return value


def _shown(value: Any, most: int = 40) -> str:
    """``value``'s repr, cut to ``most`` characters (a config may come from a stranger)."""
    text = repr(value)
    return text if len(text) <= most else text[:most - 3] + "..."


def check_values(values: dict[str, Any], where: str) -> None:
    """Counts and sizes are integers from 1 to their bound in LARGEST (bench/spec/bounds.py:
    every integer setting has one, and the error names it; a config may come from a stranger,
    and 10^12 epochs are not an experiment); weights and rates finite and non-negative (a zero
    weight switches a loss term off); Adam's betas lie in [0, 1)."""
    for name, value in values.items():
        if isinstance(value, (bool, str)) or value is None:
            continue
        if isinstance(value, int):
            largest = LARGEST.get(name)
            if largest is None:
                raise ConfigError(f"{where}: {name} has no bound (bench/spec/bounds.py LARGEST)")
            ok, bound = 1 <= value <= largest, f" (from 1 to {largest})"
        elif isinstance(value, float):
            ok, bound = math.isfinite(value) and value >= 0, " (a finite number, 0 or more)"
        else:
            ok, bound = all(0 <= v < 1 for v in value), " (each from 0 to below 1)"
        if not ok:
            raise ConfigError(f"{where}: invalid {name} {_shown(value)}{bound}")


def resolve(method: str, dataset: str, preset: str, seed: int,
            overrides: dict[str, Any] | None = None) -> RunConfig:
    """The config of one run. ``overrides`` (from flags) win over the preset, which wins over the
    dataset's default latent sizes, which win over the method's paper defaults. Unknown keys are a
    ConfigError."""
    if preset not in PRESETS:
        raise ConfigError(f"unknown preset {preset!r} (valid: {', '.join(PRESETS)})")
    if not 0 <= seed <= MAX_SEED:
        raise ConfigError(f"seed {seed} is not an integer from 0 to {MAX_SEED}")
    method_class = METHODS[method]
    method_fields = {f.name: f.default for f in dataclasses.fields(method_class.config_class)}
    settings_fields = {f.name: f.default for f in dataclasses.fields(RunSettings)}
    chosen: dict[str, Any] = {}
    if dataset in LATENT_SIZES:
        chosen["z_dim"], chosen["s_dim"] = LATENT_SIZES[dataset][0]
    for key, value in PRESETS[preset].items():
        value = value.get(method, None) if isinstance(value, dict) else value
        if value is not None:
            chosen[key] = value
    chosen.update(overrides or {})
    method_values, settings_values = {}, {}
    for key, value in chosen.items():
        if key in method_fields:
            method_values[key] = coerce_setting(key, value, method_fields[key])
        elif key in settings_fields:
            settings_values[key] = coerce_setting(key, value, settings_fields[key])
        else:
            valid = sorted(set(method_fields) | set(settings_fields))
            raise ConfigError(f"unknown setting {key!r} for {method} (valid: {', '.join(valid)})")
    check_values(method_values | settings_values, method)
    try:  # a config's own checks (__post_init__) refuse values that are not the method
        return RunConfig(method=method, dataset=dataset, preset=preset, seed=seed,
                         method_config=method_class.config_class(**method_values),
                         settings=RunSettings(**settings_values))
    except ValueError as error:
        raise ConfigError(first_line(error)) from None
