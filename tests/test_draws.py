"""The authors' drawing of the cycle-consistent VAE, Mathieu et al. and Szabó et al. as a setting
(``draws="one_loader"``, methods/base.py): built from the run's config, one loader for every
batch, and resumed number for number (docs/methods.md, "Common to the cycle-consistent VAE,
Mathieu et al. and Szabó et al.", row "drawing images and partners")."""
import io
import shutil

import pytest
import torch

from bench.cli import main
from bench.run.build import build
from bench.run.checkpoints import generator_states, restore_generators, run_generators
from bench.spec.config import resolve
from bench.store import results
from datasets.samplers import BatchSampler, LoaderBatches
from tests.helpers import dies_after_first_epoch

SEED_METHODS = ("ccvae", "mathieu", "szabo")
# Windows of the loader one training step takes: pairs and single-image batches alike.
WINDOWS_A_STEP = {"ccvae": 1 + 2, "mathieu": 1 + 2 * 2 + 1 + 1, "szabo": 1 + 1 + 1 + 2 * 2}


def make(name, data, seed=0, **overrides):
    config = resolve(name, data.name, "smoke", seed, {"z_dim": 6, "s_dim": 5, **overrides})
    return build(config, data, torch.device("cpu"))


@pytest.mark.parametrize("name", SEED_METHODS)
def test_the_setting_builds_one_loader_and_the_default_the_independent_draws(name, small_mnist):
    _, feed = make(name, small_mnist)
    assert isinstance(feed.batches, BatchSampler) and not feed.pairs.partner_may_be_anchor
    method, feed = make(name, small_mnist, draws="one_loader")
    assert isinstance(feed.batches, LoaderBatches) and feed.pairs.partner_may_be_anchor
    assert feed.batches.pairs is feed.pairs
    window = feed.pairs.batches_per_epoch  # 10 windows of 64 in the 640 images a pass
    for step in range(1, 5):  # into the second pass or further
        method.train_step(feed)
        taken = step * WINDOWS_A_STEP[name]
        passes = -(-taken // window)
        assert (feed.pairs.epoch, feed.pairs.position) == (passes, taken - (passes - 1) * window)
    assert feed.pairs.epoch > 1


@pytest.mark.parametrize("name", SEED_METHODS)
def test_the_drawing_changes_what_is_trained(name, small_mnist):
    independent = make(name, small_mnist, seed=3)
    loader = make(name, small_mnist, seed=3, draws="one_loader")
    first, second = (method.train_step(feed) for method, feed in (independent, loader))
    # the first pair is the same permutation's: only the partners may differ; the rest differs
    assert any(not torch.equal(first[k], second[k]) for k in first)


@pytest.mark.parametrize("name", SEED_METHODS)
def test_a_checkpoint_of_the_one_loader_continues_identically(name, small_mnist):
    """As tests/test_method_contract.py's round trip, across a pass of the one loader."""
    method, feed = make(name, small_mnist, seed=1, draws="one_loader")
    for _ in range(2):
        method.train_step(feed)
    method.end_epoch()
    buffer = io.BytesIO()
    torch.save({"method": method.state_dict(), "data": feed.state_dict(),
                "generators": generator_states(run_generators(method, feed))}, buffer)
    buffer.seek(0)
    state = torch.load(buffer, weights_only=True)
    restored, restored_feed = make(name, small_mnist, seed=2, draws="one_loader")
    restored.load_state_dict(state["method"])
    restored_feed.load_state_dict(state["data"])
    assert restore_generators(run_generators(restored, restored_feed), state["generators"],
                              seed=2, iteration=2) is None
    for _ in range(3):  # another pass boundary on the way
        expected, got = method.train_step(feed), restored.train_step(restored_feed)
        assert all(torch.equal(expected[k], got[k]) for k in expected)


ARGV = ["run", "--methods", "szabo", "--dataset", "mnist", "--preset", "smoke", "--device", "cpu",
        "--epochs", "2", "--set", "draws=one_loader"]


@pytest.fixture
def probes_only(monkeypatch):
    """What the run computes after training is beside the point here."""
    import bench.evaluations
    import bench.run.runner
    from bench.evaluations import EVALUATIONS
    monkeypatch.setattr(bench.evaluations, "by_default", lambda: [EVALUATIONS["probes"]])
    monkeypatch.setattr(bench.run.runner, "draw_curves", lambda *args, **kwargs: None)


def the_run(results_dir):
    (run_dir,) = [p for p in results.runs_dir(results_dir).iterdir() if p.is_dir()]
    return run_dir


def test_a_run_with_the_one_loader_resumes_to_the_same_numbers(tmp_path, probes_only, capsys):
    """Killed after its first epoch's checkpoint (3 steps, 21 windows: two passes and a bit),
    resumed: the same losses and probes as a run never interrupted."""
    assert main([*ARGV, "--results", str(tmp_path / "whole")]) == 0
    with dies_after_first_epoch():
        assert main([*ARGV, "--results", str(tmp_path / "stopped")]) == 1
    shutil.copytree(tmp_path / "stopped", tmp_path / "resumed")
    assert main([*ARGV, "--results", str(tmp_path / "resumed")]) == 0
    assert "resum" in capsys.readouterr().out.lower()
    whole, resumed = the_run(tmp_path / "whole"), the_run(tmp_path / "resumed")
    assert whole.name == resumed.name
    for name in (results.LOSSES_FILE, results.METRICS_FILE):
        assert (whole / name).read_text() == (resumed / name).read_text(), name
