"""The contract every registered method keeps (run over METHODS, like scikit-learn's estimator checks)."""
import io

import pytest
import torch

from bench.run.build import build
from bench.run.checkpoints import generator_states, restore_generators, run_generators
from bench.spec.config import resolve
from methods import METHODS

ALL_METHODS = sorted(METHODS)


def make(name, data, seed=0, **overrides):
    config = resolve(name, data.name, "smoke", seed, {"z_dim": 6, "s_dim": 5, **overrides})
    return build(config, data, torch.device("cpu"))


def run_steps(method, feed, steps):
    return [method.train_step(feed) for _ in range(steps)]


@pytest.mark.parametrize("name", ALL_METHODS)
def test_train_step_returns_finite_named_scalar_losses(name, small_mnist):
    method, feed = make(name, small_mnist)
    steps = run_steps(method, feed, 3)
    assert steps[0] and all(list(s) == list(steps[0]) for s in steps)
    for losses in steps:
        for term, value in losses.items():
            assert isinstance(term, str) and value.ndim == 0 and torch.isfinite(value), term
            assert not value.requires_grad, f"{term} is not detached"


@pytest.mark.parametrize("name", ALL_METHODS)
def test_training_changes_the_networks(name, small_mnist):
    method, feed = make(name, small_mnist)
    before = {k: v.clone() for k, v in method.networks.state_dict().items()}
    run_steps(method, feed, 2)
    after = method.networks.state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before)


@pytest.mark.parametrize("dataset", ["small_mnist", "small_shapes"])
@pytest.mark.parametrize("name", ALL_METHODS)
def test_encode_and_decode_shapes(name, dataset, request):
    data = request.getfixturevalue(dataset)  # 1x28x28 (the paper's nets) and 3x64x64 (the family)
    method, feed = make(name, data)
    x = data.test_images[:7]
    code = method.encode(x)
    assert code.s.shape == (7, 5) and code.z_mean.shape == (7, 6)
    if METHODS[name].variational:
        assert code.z_logvar.shape == (7, 6)
    else:
        assert code.z_logvar is None
    image = method.decode(code.z_mean, code.s)
    assert image.shape == x.shape and image.min() >= 0 and image.max() <= 1
    losses = method.train_step(feed)
    assert all(torch.isfinite(value) for value in losses.values())


@pytest.mark.parametrize("name", ALL_METHODS)
def test_same_seed_same_losses_other_seed_other_losses(name, small_mnist):
    first = run_steps(*make(name, small_mnist, seed=3), 3)
    again = run_steps(*make(name, small_mnist, seed=3), 3)
    other = run_steps(*make(name, small_mnist, seed=4), 3)
    for a, b in zip(first, again):
        assert all(torch.equal(a[k], b[k]) for k in a)
    assert any(not torch.equal(first[-1][k], other[-1][k]) for k in first[-1])


@pytest.mark.parametrize("name", ALL_METHODS)
def test_checkpoint_round_trip_continues_identically(name, small_mnist):
    method, feed = make(name, small_mnist, seed=1)
    run_steps(method, feed, 2)
    method.end_epoch()
    buffer = io.BytesIO()
    torch.save({"method": method.state_dict(), "data": feed.state_dict(),
                "generators": generator_states(run_generators(method, feed))}, buffer)
    buffer.seek(0)
    state = torch.load(buffer, weights_only=True)  # a checkpoint holds tensors and containers only

    restored, restored_feed = make(name, small_mnist, seed=2)  # different init and streams
    restored.load_state_dict(state["method"])
    restored_feed.load_state_dict(state["data"])
    assert restore_generators(run_generators(restored, restored_feed), state["generators"],
                              seed=2, iteration=2) is None  # same kind of device: states set
    x = small_mnist.test_images[:5]
    assert all(torch.equal(a, b) for a, b in zip(method.encode(x), restored.encode(x))
               if a is not None)
    for expected, got in zip(run_steps(method, feed, 2), run_steps(restored, restored_feed, 2)):
        assert all(torch.equal(expected[k], got[k]) for k in expected)
    assert all(
        [g["lr"] for g in o.param_groups] == [g["lr"] for g in restored.optimisers[k].param_groups]
        for k, o in method.optimisers.items())


@pytest.mark.parametrize("name", ALL_METHODS)
def test_network_init_leaves_the_global_rng_alone(name, small_mnist):
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    make(name, small_mnist)
    assert torch.equal(torch.rand(3), expected)
