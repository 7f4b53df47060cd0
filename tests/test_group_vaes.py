"""ML-VAE and GVAE against their specification (docs/methods.md, "ML-VAE", "GVAE"): the group
posteriors by hand, the s KL once per group, the likelihoods by hand, s drawn per member or per
group, groups larger than a pair, gradients in every head."""
import math

import pytest
import torch

from methods import METHODS
from methods.gvae import average_of_gaussians
from methods.mlvae import product_of_gaussians

GROUP_METHODS = ["mlvae", "gvae"]


def as_members(*pairs):
    """Tensors (members, 1 group, dims) from per-member lists."""
    return torch.tensor(pairs, dtype=torch.float64)[:, None, :]


def test_the_product_of_two_gaussians_by_hand():
    # N(1, 1) x N(3, 1) = N(2, 1/2); N(0, 1) x N(4, 3): precision 1 + 1/3, mean 0.75 * 4/3 = 1.
    mean = as_members([1.0, 0.0], [3.0, 4.0])
    logvar = as_members([0.0, 0.0], [0.0, math.log(3.0)])
    group_mean, group_logvar = product_of_gaussians(mean, logvar)
    assert torch.allclose(group_mean, torch.tensor([[2.0, 1.0]], dtype=torch.float64))
    assert torch.allclose(group_logvar.exp(), torch.tensor([[0.5, 0.75]], dtype=torch.float64))


def test_the_product_stays_finite_for_tiny_variances():
    # Variances e^-200 and e^-201 (their precisions overflow float32 and float64 alike):
    # log variance -log(e^200 + e^201) = -201 - log(1 + e^-1); weights softmax(200, 201).
    mean = torch.tensor([[[1.0]], [[2.0]]])
    logvar = torch.tensor([[[-200.0]], [[-201.0]]])
    group_mean, group_logvar = product_of_gaussians(mean, logvar)
    weight = 1 / (1 + math.e)
    assert group_logvar.item() == pytest.approx(-201 - math.log1p(math.exp(-1)), abs=1e-4)
    assert group_mean.item() == pytest.approx(weight * 1 + (1 - weight) * 2, abs=1e-5)


def test_the_average_of_two_gaussians_by_hand():
    mean = as_members([1.0, -2.0], [3.0, 2.0])
    logvar = as_members([0.0, math.log(0.5)], [math.log(3.0), math.log(1.5)])
    group_mean, group_logvar = average_of_gaussians(mean, logvar)
    assert torch.allclose(group_mean, torch.tensor([[2.0, 0.0]], dtype=torch.float64))
    assert torch.allclose(group_logvar.exp(), torch.tensor([[2.0, 1.0]], dtype=torch.float64))


def test_the_average_does_not_sharpen_and_the_product_does():
    mean, logvar = torch.zeros(2, 1, 3), torch.zeros(2, 1, 3)
    assert torch.allclose(average_of_gaussians(mean, logvar)[1], torch.zeros(1, 3))
    assert torch.allclose(product_of_gaussians(mean, logvar)[1], torch.full((1, 3), -math.log(2)))


def build(name, image_shape=(1, 28, 28), **settings):
    cls = METHODS[name]
    return cls(cls.config_class(**settings), image_shape, torch.device("cpu"), seed=0)


def kl_by_hand(mean, var):
    """KL(N(mean, var) || N(0, 1)), summed: written out here, not taken from the code under test."""
    return 0.5 * torch.sum(var + mean ** 2 - 1 - torch.log(var))


def group_by_hand(name, mean, var):
    """The group posterior of a pair (dim 0: the member), from the papers' definitions: ML-VAE's
    product (precisions add, means weighted by precision), GVAE's average (of means, of variances)."""
    if name == "mlvae":
        precision = (1 / var).sum(dim=0)
        return (mean / var).sum(dim=0) / precision, 1 / precision
    return mean.mean(dim=0), var.mean(dim=0)


@pytest.mark.parametrize("name", GROUP_METHODS)
def test_the_s_kl_counts_once_per_group(name, small_mnist):
    method = build(name)
    x1, x2 = small_mnist.train_images[:8], small_mnist.train_images[8:16]
    terms = method.objective(torch.stack([x1, x2]))
    _, _, s_mean, s_logvar = method.posteriors(torch.cat([x1, x2]))
    mean, var = s_mean.double().view(2, 8, -1), s_logvar.double().exp().view(2, 8, -1)
    once = kl_by_hand(*group_by_hand(name, mean, var)) / 8
    per_member = kl_by_hand(mean, var) / 8
    assert torch.allclose(terms["kl_s"].double(), once, rtol=1e-4)
    assert not torch.allclose(terms["kl_s"].double(), per_member, rtol=1e-2)
    assert torch.allclose(terms["total"], terms["reconstruction"] + terms["kl_z"] + terms["kl_s"])


def test_ml_vae_and_gvae_differ_on_the_same_weights(small_mnist):
    """The two objectives from one set of weights: the s KLs must differ (product against
    average), so that GVAE falling back to ML-VAE's posterior would fail here."""
    mlvae, gvae = build("mlvae", likelihood="squared_error"), build("gvae")
    gvae.networks.load_state_dict(mlvae.networks.state_dict())
    x1, x2 = small_mnist.train_images[:8], small_mnist.train_images[8:16]
    kl_product, kl_average = mlvae.objective(torch.stack([x1, x2]))["kl_s"], gvae.objective(torch.stack([x1, x2]))["kl_s"]
    assert not torch.allclose(kl_product, kl_average, rtol=1e-2)


@pytest.mark.parametrize("name, settings, weight", [
    ("mlvae", {"likelihood": "squared_error"}, 1.0), ("gvae", {}, 1.0),
    # Hosoya's unit-variance Gaussian on standardised pixels: 1/2 SSE / 0.3081^2 on MNIST's raw ones
    ("gvae", {"reconstruction_weight": 1 / (2 * 0.3081 ** 2)}, 1 / (2 * 0.3081 ** 2))])
def test_the_reconstruction_term_is_the_weighted_squared_error_per_group(name, settings, weight,
                                                                         small_mnist):
    """The squared error summed over pixels, times the method's weight (GVAE's default 1, and
    ML-VAE's port's likelihood), divided by the number of groups."""
    method = build(name, **settings)
    x1, x2 = small_mnist.train_images[:8], small_mnist.train_images[8:16]
    decoded = []
    decode = method.decode
    method.decode = lambda z, s: decoded.append(decode(z, s)) or decoded[-1]
    terms = method.objective(torch.stack([x1, x2]))
    squared_error = ((decoded[0].double() - torch.cat([x1, x2]).double()) ** 2).sum()
    assert terms["reconstruction"].item() == pytest.approx(weight * squared_error.item() / 8, rel=1e-5)


@pytest.mark.parametrize("name", GROUP_METHODS)
@pytest.mark.parametrize("image_shape", [(1, 28, 28), (3, 64, 64)])
def test_gradients_reach_every_head_of_every_network(name, image_shape):
    method = build(name, image_shape)
    generator = torch.Generator().manual_seed(0)
    x1, x2 = (torch.rand(4, *image_shape, generator=generator) for _ in range(2))
    method.objective(torch.stack([x1, x2]))["total"].backward()
    for network, module in method.networks.items():
        for parameter_name, parameter in module.named_parameters():
            assert parameter.grad is not None and parameter.grad.abs().sum() > 0, \
                f"{name}: no gradient in {network}.{parameter_name}"


@pytest.mark.parametrize("name", GROUP_METHODS)
def test_a_probe_sees_each_images_own_s_mean_never_a_group(name, small_mnist):
    method = build(name)
    x = small_mnist.test_images[:6]
    alone = method.encode(x[:1]).s
    together = method.encode(x).s[:1]
    assert torch.allclose(alone, together, atol=1e-6)
    assert torch.allclose(alone, method.posteriors(x[:1])[2])


def test_ml_vaes_likelihood_is_a_gaussian_with_the_decoders_log_variance(small_mnist):
    """The first author's likelihood: each pixel N(mean, exp(logvar)) with the decoder's mean and
    a log-variance in (-1, 1), the negative log-density summed over pixels, per group. Computed
    here with torch.distributions, not with the code under test; the squared error (variance 1/2)
    would not match."""
    method = build("mlvae")
    assert method.config.likelihood == "learned_variance"
    x = small_mnist.train_images[:16]
    seen = []
    distribution = method.networks.decoder.distribution
    method.networks.decoder.distribution = lambda z, s: seen.append(distribution(z, s)) or seen[-1]
    terms = method.objective(x.view(2, 8, *x.shape[1:]))
    mean, logvar = (t.double() for t in seen[0])
    assert logvar.abs().max() < 1 and mean.min() >= 0 and mean.max() <= 1
    nll = -torch.distributions.Normal(mean, (0.5 * logvar).exp()).log_prob(x.double()).sum() / 8
    assert terms["reconstruction"].item() == pytest.approx(nll.item(), rel=1e-5)
    squared_error = ((mean - x.double()) ** 2).sum() / 8
    assert terms["reconstruction"].item() != pytest.approx(squared_error.item(), rel=1e-2)
    with pytest.raises(ValueError, match="likelihood"):
        build("mlvae", likelihood="bernoulli")
    with pytest.raises(ValueError, match="likelihood"):
        build("gvae", likelihood="learned_variance")


def test_a_group_of_any_size_accumulates_every_member(small_mnist):
    """Three members a group: the s KL is that of the product of all three posteriors."""
    method = build("mlvae", group_size=3)
    members = small_mnist.train_images[:12].view(3, 4, *small_mnist.train_images.shape[1:])
    terms = method.objective(members)
    _, _, s_mean, s_logvar = method.posteriors(members.flatten(0, 1))
    mean, var = s_mean.double().view(3, 4, -1), s_logvar.double().exp().view(3, 4, -1)
    assert torch.allclose(terms["kl_s"].double(), kl_by_hand(*group_by_hand("mlvae", mean, var)) / 4,
                          rtol=1e-4)
    assert not torch.allclose(terms["kl_s"].double(),
                              kl_by_hand(*group_by_hand("mlvae", mean[:2], var[:2])) / 4, rtol=1e-2)


def test_one_s_sample_per_group_or_per_member(small_mnist):
    x1, x2 = small_mnist.train_images[:4], small_mnist.train_images[4:8]
    seen = {}
    for sample in ("group", "member"):
        method = build("mlvae", s_sample=sample, likelihood="squared_error")
        decoded = []
        method.decode = lambda z, s: decoded.append(s) or torch.zeros(len(z), 1, 28, 28)
        method.objective(torch.stack([x1, x2]))
        first, second = decoded[0].chunk(2)
        seen[sample] = torch.equal(first, second)
    assert seen == {"group": True, "member": False}
    with pytest.raises(ValueError, match="s_sample"):
        build("mlvae", s_sample="image")


def test_gvae_refuses_what_is_not_hosoyas_model():
    with pytest.raises(ValueError, match="once per group"):
        build("gvae", s_sample="member")
    with pytest.raises(ValueError, match="reconstruction_weight"):
        build("gvae", reconstruction_weight=0.0)


def test_s_noise_scales_the_draw_of_s_around_the_group_mean():
    """The port's variant: noise of standard deviation 0.1. The same generator state draws the
    same standard normals, so the offsets from the group mean scale by exactly 0.1."""
    mean, logvar = torch.randn(5, 3), torch.zeros(5, 3)
    offsets = {}
    for noise in (1.0, 0.1):
        method = build("mlvae", s_sample="group", s_noise=noise)
        offsets[noise] = method.sample_s(mean, logvar, 2)[:5] - mean
    assert torch.allclose(offsets[0.1], 0.1 * offsets[1.0], atol=1e-6)
    assert offsets[1.0].abs().mean() > 0.3
