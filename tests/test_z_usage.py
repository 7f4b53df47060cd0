"""Style retention and active units of z: known answers with test doubles."""
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from bench.evaluations.z_usage import (active_units, same_label_triples, style_retention,
                                       triple_errors, z_usage_rows)
from methods import Encoding

N, Z_DIM, S_DIM = 120, 16, 4


def labelled_images(seed=0):
    generator = torch.Generator().manual_seed(seed)
    images = torch.rand(N, 1, 8, 8, generator=generator)
    labels = torch.arange(N) % 5
    return images, labels


def retention_of(decode, z, s, images, labels, count=2000):
    triples = same_label_triples(labels.numpy(), count, seed=3)
    return style_retention(*triple_errors(decode, z, s, images, triples, batch_size=300))


def test_a_decoder_that_ignores_z_retains_no_style():
    images, labels = labelled_images()
    s = torch.randn(N, S_DIM)
    z = torch.randn(N, Z_DIM)
    weight = torch.randn(S_DIM, 64)
    decode = lambda z, s: torch.sigmoid(s @ weight).view(-1, 1, 8, 8)  # noqa: E731
    assert retention_of(decode, z, s, images, labels) == pytest.approx(0.0, abs=1e-6)


def test_a_decoder_that_returns_the_z_image_retains_all_style():
    images, labels = labelled_images()
    z = torch.zeros(N, Z_DIM)
    z[:, 0] = torch.arange(N, dtype=torch.float32)  # z identifies its image
    s = torch.randn(N, S_DIM)
    decode = lambda z, s: images[z[:, 0].long()]  # noqa: E731 - x_i exactly, whatever s is
    triples = same_label_triples(labels.numpy(), 2000, seed=3)
    own, other = triple_errors(decode, z, s, images, triples)
    assert np.all(own == 0) and other.mean() > 0
    assert style_retention(own, other) == 1.0


def test_a_decoder_that_returns_the_image_of_s_retains_no_style():
    """Dec(z, s_k) = x_k whatever z is: both decodings are x_k, so E_own = E_other and retention 0.
    Pairing z_i with s_i instead of s_k would make E_own zero and retention 1."""
    images, labels = labelled_images()
    z = torch.randn(N, Z_DIM)
    s = torch.zeros(N, S_DIM)
    s[:, 0] = torch.arange(N, dtype=torch.float32)  # s identifies its image
    decode = lambda z, s: images[s[:, 0].long()]  # noqa: E731
    triples = same_label_triples(labels.numpy(), 2000, seed=3)
    own, other = triple_errors(decode, z, s, images, triples)
    assert np.array_equal(own, other) and own.mean() > 0
    assert style_retention(own, other) == 0.0


def test_the_decoder_receives_z_of_i_and_of_m_with_s_of_k():
    images, labels = labelled_images()
    z = torch.arange(N, dtype=torch.float32)[:, None].repeat(1, Z_DIM)  # row n holds n
    s = -torch.arange(N, dtype=torch.float32)[:, None].repeat(1, S_DIM)  # row n holds -n
    calls = []
    decode = lambda z, s: calls.append((z[:, 0].long(), (-s[:, 0]).long())) or images[z[:, 0].long()]  # noqa: E731
    i, k, m = triples = same_label_triples(labels.numpy(), 700, seed=3)
    triple_errors(decode, z, s, images, triples, batch_size=300)
    own_calls, other_calls = calls[0::2], calls[1::2]
    assert np.array_equal(torch.cat([c[0] for c in own_calls]).numpy(), i)
    assert np.array_equal(torch.cat([c[0] for c in other_calls]).numpy(), m)
    for side in (own_calls, other_calls):
        assert np.array_equal(torch.cat([c[1] for c in side]).numpy(), k)


def test_a_partly_used_z_lies_between():
    images, labels = labelled_images()
    z = torch.zeros(N, Z_DIM)
    z[:, 0] = torch.arange(N, dtype=torch.float32)
    s = torch.randn(N, S_DIM)
    blur = images.mean(0, keepdim=True)
    decode = lambda z, s: 0.5 * images[z[:, 0].long()] + 0.5 * blur  # noqa: E731
    assert 0.2 < retention_of(decode, z, s, images, labels) < 0.95


def test_triples_share_the_label_and_are_distinct_and_seeded():
    _, labels = labelled_images()
    i, k, m = same_label_triples(labels.numpy(), 5000, seed=1)
    assert len(i) == 5000
    assert np.all(labels.numpy()[i] == labels.numpy()[k]) and np.all(labels.numpy()[i] == labels.numpy()[m])
    assert np.all(i != k) and np.all(i != m) and np.all(k != m)
    again = same_label_triples(labels.numpy(), 5000, seed=1)
    assert all(np.array_equal(a, b) for a, b in zip((i, k, m), again))
    assert not np.array_equal(i, same_label_triples(labels.numpy(), 5000, seed=2)[0])


def test_triples_need_a_label_with_three_images():
    with pytest.raises(ValueError, match="at least three"):
        same_label_triples(np.array([0, 0, 1, 1]), 10, seed=0)


def test_active_units_of_a_variational_z_count_the_dimensions_that_vary_on_the_priors_scale():
    generator = np.random.default_rng(0)
    assert active_units(np.full((500, Z_DIM), 0.7), variational=True) == 0
    z = np.full((500, Z_DIM), 0.3)
    z[:, [2, 7, 11]] = generator.normal(size=(500, 3))  # 3 informative dimensions out of 16
    z[:, 5] = generator.normal(scale=0.05, size=500)  # variance 0.0025: below the threshold
    assert active_units(z, variational=True) == 3
    # the unit prior fixes the scale: a posterior mean shrunk 100-fold has collapsed
    assert active_units(0.01 * z, variational=True) == 0


def test_active_units_of_a_deterministic_z_do_not_change_when_the_code_is_rescaled():
    """LORD's penalty keeps its codes near zero: on Burda's absolute scale a used code would
    count no unit at all. Relative to the code's mean variance per dimension it counts the same
    at any scale: 3 used dimensions, a fourth whose variance is 1e-6 of theirs, 12 constant."""
    generator = np.random.default_rng(1)
    z = np.full((500, Z_DIM), 0.3)
    z[:, [1, 4, 9]] = generator.normal(size=(500, 3))
    z[:, 6] = generator.normal(scale=1e-3, size=500)
    for scale in (1.0, 0.01, 1e-4, 100.0):
        assert active_units(scale * z, variational=False) == 3, scale
    assert active_units(0.01 * z, variational=True) == 0  # what the absolute rule would say
    assert active_units(np.full((500, Z_DIM), 0.7), variational=False) == 0  # nothing varies


def test_the_evaluation_writes_both_numbers():
    images, labels = labelled_images()
    z = torch.zeros(N, Z_DIM)
    z[:, 0] = torch.arange(N, dtype=torch.float32)
    method = SimpleNamespace(decode=lambda z, s: images[z[:, 0].long()])
    context = SimpleNamespace(test=Encoding(s=torch.randn(N, S_DIM), z_mean=z, z_logvar=None),
                              data=SimpleNamespace(test_labels=labels, test_images=images),
                              method=method, seed=lambda stream: 7)
    outcome = z_usage_rows(context)
    values = {row["metric"]: row["value"] for row in outcome.rows}
    assert values == {"style_retention": 1.0, "active_units": 1}
    assert outcome.details["mean_own_error"] == 0
    assert "scale-free" in outcome.details["active_units"]  # z_logvar None: a deterministic z
