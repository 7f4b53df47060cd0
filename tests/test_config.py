"""Config resolution: method defaults < preset < flags; the run id is a hash of the result."""
import dataclasses

import pytest

from bench.errors import ConfigError
from bench.spec.config import RunSettings, resolve
from bench.spec.presets import PRESETS
from methods import METHODS


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
    config = resolve("ccvae", "mnist", "paper", 0).to_dict()
    assert set(config["method_config"]) == {f.name for f in dataclasses.fields(METHODS["ccvae"].config_class)}
    assert set(config["settings"]) == {f.name for f in dataclasses.fields(RunSettings)}


@pytest.mark.parametrize("overrides", [{"epochs": 0}, {"lr": "-1"}, {"betas": "0.5,1.5"},
                                       {"betas": "0.5"}, {"probe_epochs": "x"}, {"nope": 1}])
def test_invalid_values_are_usage_errors(overrides):
    with pytest.raises(ConfigError):
        resolve("ccvae", "mnist", "paper", 0, overrides)


def test_zero_weight_is_allowed():
    assert resolve("ccvae", "mnist", "paper", 0, {"reverse_cycle_weight": "0"}).method_config.reverse_cycle_weight == 0
