"""The fast training step of every method that has a straightforward twin
(methods/straightforward.py) computes the same update as the twin.

Compared: every loss term, and the gradients of every step. To compare gradients through the
parameters, both run with plain SGD (lr 1e-3: small enough that three steps stay in the regime
where rounding differences do not grow) in place of each Adam (same parameter groups): Adam's first
steps move every parameter by about its learning rate whatever the size of its gradient, so the
rounding noise of a gradient that is zero in exact arithmetic (a convolution bias cancelled by
the InstanceNorm after it) would show as differences of 1e-4 in either implementation. With the
methods' own Adams, the losses of the first step are compared.
"""
import dataclasses

import pytest
import torch

from bench.run.build import build
from bench.spec.config import resolve
from methods import METHODS
from methods.straightforward import STRAIGHTFORWARD


# A twin is optional (a new method is one file): the comparisons run over the methods that have
# one. The three methods of the paper keep theirs, so that coverage cannot silently drop.
WITH_TWIN = sorted(set(STRAIGHTFORWARD) & set(METHODS))


def test_the_papers_methods_keep_their_straightforward_twins():
    assert {"ccvae", "mathieu", "szabo"} <= set(WITH_TWIN)


def test_every_twin_belongs_to_a_registered_method():
    assert set(STRAIGHTFORWARD) <= set(METHODS)


# Both implementations in double precision (conftest.py, float64, says why).
pytestmark = pytest.mark.usefixtures("float64")


def twins(name, data):
    """Two identical instances of a method and its training data."""
    data = dataclasses.replace(data, train_images=data.train_images.double(),
                               test_images=data.test_images.double())
    return [build(resolve(name, "mnist", "smoke", 4), data, torch.device("cpu")) for _ in range(2)]


def use_sgd(method, lr=1e-3):
    for key, optimiser in method.optimisers.items():
        parameters = [p for group in optimiser.param_groups for p in group["params"]]
        method.optimisers[key] = torch.optim.SGD(parameters, lr=lr)


def same_parameters(a, b):
    return [k for (k, x), (_, y) in zip(a.networks.state_dict().items(), b.networks.state_dict().items())
            if not torch.allclose(x, y, rtol=1e-9, atol=1e-12)]


@torch.no_grad()
def outputs(method, x):
    code = method.encode(x)
    computed = {"s": code.s, "z_mean": code.z_mean, "decoded": method.decode(code.z_mean, code.s)}
    if code.z_logvar is not None:
        computed["z_logvar"] = code.z_logvar
    if "discriminator" in method.networks:
        computed["discriminator"] = method.networks.discriminator(x, x.flip(0))
    return computed


def loss_disagreements(expected, got):
    return [k for k in expected if not torch.allclose(got[k], expected[k], rtol=1e-9, atol=1e-12)]


@pytest.mark.parametrize("name", WITH_TWIN)
def test_fast_and_straightforward_gradients_agree(name, small_mnist):
    (fast, fast_data), (plain, plain_data) = twins(name, small_mnist)
    use_sgd(fast)
    use_sgd(plain)
    x = small_mnist.test_images[:32].double()
    before = outputs(fast, x)
    for iteration in range(3):
        expected = fast.train_step(fast_data)
        got = STRAIGHTFORWARD[name](plain, plain_data)
        assert list(got) == list(expected)
        assert loss_disagreements(expected, got) == [], iteration
        assert same_parameters(fast, plain) == [], iteration
    assert not torch.allclose(before["decoded"], outputs(fast, x)["decoded"])  # training moved them


@pytest.mark.parametrize("name", WITH_TWIN)
def test_fast_and_straightforward_losses_agree_with_adam(name, small_mnist):
    (fast, fast_data), (plain, plain_data) = twins(name, small_mnist)
    expected, got = fast.train_step(fast_data), STRAIGHTFORWARD[name](plain, plain_data)
    assert loss_disagreements(expected, got) == []


@pytest.mark.parametrize("name", WITH_TWIN)
def test_a_different_update_would_be_caught(name, small_mnist):
    """The comparison has teeth: a straightforward step with half the learning rate shows."""
    (fast, fast_data), (plain, plain_data) = twins(name, small_mnist)
    use_sgd(fast)
    use_sgd(plain, lr=5e-4)
    fast.train_step(fast_data)
    STRAIGHTFORWARD[name](plain, plain_data)
    assert same_parameters(fast, plain)
