"""Config resolution: method defaults < preset < flags; the run id is a hash of the result."""
import dataclasses
import json

import pytest

from bench.errors import ConfigError
from bench.spec.bounds import LARGEST
from bench.spec.config import RunConfig, RunSettings, recorded_fields, resolve, unrecorded_fields
from bench.spec.presets import LATENT_SIZES, PRESETS
from methods import METHODS
from methods.base import added_field
from tests.conftest import REPO


def test_paper_preset_is_the_methods_own_defaults():
    config = resolve("ccvae", "mnist", "paper", 0)
    assert config.method_config == METHODS["ccvae"].config_class()
    assert config.settings == RunSettings()


def test_preset_then_flags_override():
    quick = resolve("ccvae", "mnist", "quick", 0)
    assert quick.method_config.epochs == PRESETS["quick"]["epochs"]
    flagged = resolve("ccvae", "mnist", "quick", 0, {"epochs": 7, "z_dim": "64", "betas": "0.5,0.99"})
    assert flagged.method_config.epochs == 7 and flagged.method_config.z_dim == 64
    assert flagged.method_config.betas == (0.5, 0.99)


def test_per_method_preset_values(monkeypatch):
    monkeypatch.setitem(PRESETS, "custom", {"epochs": {"ccvae": 3, "other": 9}})
    assert resolve("ccvae", "mnist", "custom", 0).method_config.epochs == 3
    monkeypatch.setitem(PRESETS, "custom", {"epochs": {"other": 9}})
    assert resolve("ccvae", "mnist", "custom", 0).method_config.epochs == 100


def test_run_id_is_stable_and_changes_with_every_setting():
    base = resolve("ccvae", "mnist", "paper", 0)
    assert base.run_id == resolve("ccvae", "mnist", "paper", 0).run_id
    assert base.run_id.startswith("ccvae-mnist-")
    changed = [resolve("ccvae", "mnist", "paper", 1),
               resolve("ccvae", "mnist", "quick", 0),
               resolve("ccvae", "mnist", "paper", 0, {"kl_weight": 2.5}),
               resolve("ccvae", "mnist", "paper", 0, {"probe_epochs": 5}),
               resolve("ccvae", "mnist", "paper", 0, {"s_dim": 64})]
    ids = {c.run_id for c in changed}
    assert len(ids) == len(changed) and base.run_id not in ids


def test_config_serialises_every_field():
    """Every field, but one added after runs were named that holds those runs' value."""
    config = resolve("ccvae", "mnist", "paper", 0, {"draws": "one_loader"}).to_dict()
    assert set(config["method_config"]) == {f.name for f in dataclasses.fields(METHODS["ccvae"].config_class)}
    assert set(config["settings"]) == {f.name for f in dataclasses.fields(RunSettings)}
    assert "draws" not in resolve("ccvae", "mnist", "paper", 0).to_dict()["method_config"]


# Ids of runs named before ``draws`` was added (the campaign's grid, bench/launch/campaign.py):
# the first one is published (results/paper/runs/).
NAMED_BEFORE = {"ccvae": "ccvae-mnist-444445ef4b", "mathieu": "mathieu-mnist-f73bffd6c5",
                "szabo": "szabo-mnist-c42b732628"}


@pytest.mark.parametrize("method", sorted(NAMED_BEFORE))
def test_a_field_added_later_renames_no_run_at_its_old_value(method):
    """``draws`` (methods/base.py, added_field): the default, given or not, keeps the id the run
    had before the field existed; the authors' loader is another run."""
    default = resolve(method, "mnist", "paper", 0)
    assert default.run_id == NAMED_BEFORE[method]
    assert resolve(method, "mnist", "paper", 0, {"draws": "independent"}).run_id == NAMED_BEFORE[method]
    other = resolve(method, "mnist", "paper", 0, {"draws": "one_loader"})
    assert other.run_id != NAMED_BEFORE[method]
    assert other.to_dict()["method_config"]["draws"] == "one_loader"
    assert RunConfig.from_dict(other.to_dict()) == other


def test_a_record_without_a_field_added_later_reads_as_its_old_value():
    """The published run's config.json, written before ``draws`` existed, reads as the default and
    names the same run; one that records the old value explicitly reads alike."""
    record = json.loads((REPO / "results" / "paper" / "runs" / NAMED_BEFORE["ccvae"] /
                         "config.json").read_text())
    config = RunConfig.from_dict(record)
    assert config.method_config.draws == "independent"
    assert config.run_id == record["run_id"] == NAMED_BEFORE["ccvae"]
    written = {k: v for k, v in record.items() if k not in ("run_id", "variational_z")}
    assert json.loads(json.dumps(config.to_dict())) == written  # its checkpoints' config too
    explicit = {**record, "method_config": {**record["method_config"], "draws": "independent"}}
    assert RunConfig.from_dict(explicit).run_id == NAMED_BEFORE["ccvae"]
    with pytest.raises(ConfigError, match="draws"):
        RunConfig.from_dict({**record, "method_config": {**record["method_config"], "draws": "x"}})


def test_a_field_added_later_reads_its_old_value_even_after_its_default_changed():
    """Its absence means the value of the runs named before it, not whatever the default is now."""
    @dataclasses.dataclass(frozen=True)
    class Later:
        kept: int = 1
        added: str = added_field("new default", before="old")

    assert recorded_fields(Later(added="old")) == {"kept": 1}
    assert recorded_fields(Later()) == {"kept": 1, "added": "new default"}
    assert unrecorded_fields(Later) == {"added": "old"}


@pytest.mark.parametrize("overrides", [{"epochs": 0}, {"lr": "-1"}, {"betas": "0.5,1.5"},
                                       {"betas": "0.5"}, {"probe_epochs": "x"}, {"nope": 1}])
def test_invalid_values_are_usage_errors(overrides):
    with pytest.raises(ConfigError):
        resolve("ccvae", "mnist", "paper", 0, overrides)


def test_zero_weight_is_allowed():
    assert resolve("ccvae", "mnist", "paper", 0, {"reverse_cycle_weight": "0"}).method_config.reverse_cycle_weight == 0


def _integer_fields(record) -> set[str]:
    """The fields of a config dataclass that hold an integer (or None for "all")."""
    return {f.name for f in dataclasses.fields(record)
            if f.type in ("int", "int | None") or (type(f.default) is int)}


def test_every_integer_setting_has_a_bound():
    """Issue 45, item 8: epochs, probe epochs, iterations, sizes and t-SNE points had no upper
    bound (a received config asked for 10^12 epochs). Every integer field of every method's
    config and of RunSettings is in LARGEST."""
    fields = _integer_fields(RunSettings)
    for method in METHODS.values():
        fields |= _integer_fields(method.config_class)
    assert {"epochs", "probe_epochs", "iterations_per_epoch", "train_size", "test_size",
            "tsne_points", "z_dim", "s_dim", "batch_size", "probe_batch_size"} <= fields
    assert fields - set(LARGEST) == set()


@pytest.mark.parametrize("preset", PRESETS)
def test_every_bound_admits_every_preset_method_and_dataset(preset):
    """The bounds refuse no configuration the presets make, at every latent size
    --paper-sizes runs (the paper protocol's among them)."""
    for method in METHODS:
        for dataset, sizes in LATENT_SIZES.items():
            for z_dim, s_dim in sizes:
                config = resolve(method, dataset, preset, 0, {"z_dim": z_dim, "s_dim": s_dim})
                assert RunConfig.from_dict(config.to_dict()) == config


@pytest.mark.parametrize("name", ["epochs", "probe_epochs", "iterations_per_epoch", "tsne_points",
                                  "train_size", "z_dim"])
def test_a_setting_over_its_bound_is_refused_naming_the_bound(name):
    with pytest.raises(ConfigError, match=rf"invalid {name} {10**12} \(from 1 to {LARGEST[name]}\)"):
        resolve("ccvae", "mnist", "paper", 0, {name: 10**12})
    config = resolve("ccvae", "mnist", "smoke", 0).to_dict()
    section = "settings" if name in config["settings"] else "method_config"
    config[section][name] = 10**12
    with pytest.raises(ConfigError, match=f"received.json: invalid {name} .*{LARGEST[name]}"):
        RunConfig.from_dict(config, "received.json")


def test_a_seed_beyond_64_bits_or_a_name_of_another_type_is_refused():
    config = resolve("ccvae", "mnist", "smoke", 0).to_dict()
    with pytest.raises(ConfigError, match="seed"):
        RunConfig.from_dict({**config, "seed": 2**64}, "c.json")
    for name in ("method", "dataset", "preset"):
        with pytest.raises(ConfigError, match=f"unknown {name}"):
            RunConfig.from_dict({**config, name: ["ccvae"]}, "c.json")
