"""The cycle-consistent VAE against its specification (reference docs/methods.md,
"Cycle-consistent VAE")."""
import pytest
import torch
from torch import nn
from torch.distributions import Normal, kl_divergence

from bench.run.build import build
from bench.spec.config import resolve
from methods.networks import Decoder, Encoder
from methods.base import kl_to_standard_normal
from methods.ccvae import CCVAEConfig
from tests.helpers import changed, snapshot


def make(data, seed=0, **overrides):
    return build(resolve("ccvae", "mnist", "smoke", seed, overrides), data, torch.device("cpu"))


def test_kl_matches_the_closed_form():
    torch.manual_seed(0)
    mean, logvar = torch.randn(8, 5), torch.randn(8, 5)
    expected = kl_divergence(Normal(mean, torch.exp(0.5 * logvar)), Normal(0.0, 1.0)).sum()
    assert torch.allclose(kl_to_standard_normal(mean, logvar), expected, rtol=1e-5)
    assert kl_to_standard_normal(torch.zeros(4, 3), torch.zeros(4, 3)).item() == 0.0


def test_networks_have_the_specified_shapes():
    encoder, decoder = Encoder(16, 16), Decoder(16, 16)
    x = torch.rand(3, 1, 28, 28)
    assert encoder.trunk(x).shape == (3, 256)
    assert [tuple(m.weight.shape) for m in encoder.trunk if isinstance(m, nn.Conv2d)] == \
        [(16, 1, 5, 5), (32, 16, 5, 5), (64, 32, 5, 5)]
    assert [tuple(m.weight.shape) for m in decoder.deconv if isinstance(m, nn.ConvTranspose2d)] == \
        [(128, 32, 4, 4), (32, 16, 4, 4), (16, 1, 4, 4)]
    assert decoder(torch.rand(3, 16), torch.rand(3, 16)).shape == (3, 1, 28, 28)


def test_init_follows_the_original(small_mnist):
    method, _ = make(small_mnist, z_dim=64, s_dim=64)
    for module in method.networks.modules():
        if type(module) in (nn.Conv2d, nn.Linear):
            assert torch.all(module.bias == 0)
            assert abs(module.weight.std().item() - 0.05) < 0.01
        if isinstance(module, nn.ConvTranspose2d):  # PyTorch's default init: non-zero biases
            assert module.bias.abs().sum() > 0


def test_instance_norm_is_per_instance_in_evaluation(small_mnist):
    method, _ = make(small_mnist)
    x = small_mnist.test_images[:10]
    alone = method.encode(x[:1]).z_mean
    assert torch.allclose(method.encode(x).z_mean[:1], alone, atol=1e-6)


def test_forward_cycle_reconstructs_each_image_from_its_partners_s(small_mnist):
    """x1 is reconstructed from (z1, s2): perturbing s1 must not change x1's term, but x2's."""
    method, feed = make(small_mnist)
    x1, x2 = feed.pair()
    batch = x1.shape[0]

    def terms(perturb_s1):
        def hook(module, inputs, output):
            if perturb_s1:
                output = output.clone()
                output[:batch] += 1.0  # the encoder sees cat([x1, x2]): rows [:batch] are s1
            return output
        handle = method.networks.encoder.s.register_forward_hook(hook)
        method.generator.manual_seed(11)
        try:
            return method.forward_cycle(x1, x2)
        finally:
            handle.remove()

    plain, perturbed = terms(False), terms(True)
    assert torch.equal(plain["reconstruction_x1"], perturbed["reconstruction_x1"])
    assert not torch.equal(plain["reconstruction_x2"], perturbed["reconstruction_x2"])


def test_reverse_cycle_steps_only_the_encoder(small_mnist, monkeypatch):
    method, feed = make(small_mnist)
    monkeypatch.setattr(method.optimisers["autoencoder"], "step", lambda: None)
    encoder, decoder = snapshot(method.networks.encoder), snapshot(method.networks.decoder)
    losses = method.train_step(feed)
    assert losses["reverse_cycle"] > 0
    assert not changed(decoder, method.networks.decoder)
    assert changed(encoder, method.networks.encoder) >= {"trunk.0.weight", "z_mean.weight"}
    reverse_parameters = {id(p) for g in method.optimisers["reverse_cycle"].param_groups
                          for p in g["params"]}
    assert reverse_parameters == {id(p) for p in method.networks.encoder.parameters()}


def test_forward_cycle_steps_encoder_and_decoder(small_mnist, monkeypatch):
    method, feed = make(small_mnist)
    monkeypatch.setattr(method.optimisers["reverse_cycle"], "step", lambda: None)
    encoder, decoder = snapshot(method.networks.encoder), snapshot(method.networks.decoder)
    method.train_step(feed)
    assert changed(decoder, method.networks.decoder) and changed(encoder, method.networks.encoder)


def test_forward_loss_uses_the_weights_2_3_and_reverse_10(small_mnist):
    config = CCVAEConfig()
    assert (config.reconstruction_weight, config.kl_weight, config.reverse_cycle_weight) == (2, 3, 10)
    method, feed = make(small_mnist)
    losses = method.train_step(feed)
    assert torch.allclose(losses["forward_total"], 2 * losses["reconstruction"] + 3 * losses["kl"])


def test_zero_reverse_weight_switches_the_reverse_cycle_off(small_mnist, monkeypatch):
    method, feed = make(small_mnist, reverse_cycle_weight="0")
    monkeypatch.setattr(method.optimisers["autoencoder"], "step", lambda: None)
    encoder = snapshot(method.networks.encoder)
    assert method.train_step(feed)["reverse_cycle"] == 0
    # Adam with a zero gradient does not move the weights
    assert not changed(encoder, method.networks.encoder)


@pytest.mark.filterwarnings("ignore:Detected call of")
def test_schedule_and_optimisers_match_the_paper(small_mnist):
    method, _ = make(small_mnist)
    assert set(method.optimisers) == {"autoencoder", "reverse_cycle"}
    for optimiser in method.optimisers.values():
        assert isinstance(optimiser, torch.optim.Adam)
        assert optimiser.defaults["betas"] == (0.9, 0.999)
    assert CCVAEConfig().epochs == 100
    rates = []
    for _ in range(100):
        rates.append([g["lr"] for o in method.optimisers.values() for g in o.param_groups])
        method.end_epoch()
    # as the original's StepLR(80) stepped at each epoch's start: 79 epochs at 1e-4, 21 at 1e-5
    assert all(r == pytest.approx([1e-4, 1e-4]) for r in rates[:79])
    assert all(r == pytest.approx([1e-5, 1e-5]) for r in rates[79:])
