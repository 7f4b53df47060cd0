"""The two adversarial baselines against their specification (reference docs/methods.md,
"Mathieu et al. 2016" and "Szabó et al. 2018")."""
import inspect

import pytest
import torch
import torch.nn.functional as F

from bench.run.build import build
from bench.spec.config import resolve
from methods.adversarial import AdversarialConfig, discriminator_loss
from methods.networks import PairDiscriminator
from tests.helpers import changed, snapshot

ADVERSARIAL = ["mathieu", "szabo"]


def make(name, data, seed=0):
    return build(resolve(name, "mnist", "smoke", seed), data, torch.device("cpu"))


def force_accuracy(monkeypatch, value):
    def fixed(*args, **kwargs):
        loss, _ = discriminator_loss(*args, **kwargs)
        return loss, torch.tensor(value)
    monkeypatch.setattr("methods.adversarial.discriminator_loss", fixed)


def freeze(monkeypatch, method, *optimisers):
    for key in optimisers:
        monkeypatch.setattr(method.optimisers[key], "step", lambda: None)


def test_config_is_the_papers():
    c = AdversarialConfig()
    assert (c.lr, c.betas, c.epochs, c.generator_steps, c.discriminator_gate) == (1e-4, (0.5, 0.999), 50, 2, 0.8)


def test_discriminator_shapes():
    d = PairDiscriminator()
    assert d(torch.rand(5, 1, 28, 28), torch.rand(5, 1, 28, 28)).shape == (5, 2)
    assert d.net[-1].in_features == 512


@pytest.mark.parametrize("name", ADVERSARIAL)
@pytest.mark.parametrize("accuracy, steps", [(0.5, True), (0.79, True), (0.8, False), (0.95, False)])
def test_discriminator_steps_only_below_the_gate(name, accuracy, steps, small_mnist, monkeypatch):
    method, feed = make(name, small_mnist)
    force_accuracy(monkeypatch, accuracy)
    before = snapshot(method.networks.discriminator)
    losses = method.train_step(feed)
    assert bool(changed(before, method.networks.discriminator)) == steps
    assert losses["discriminator_stepped"].item() == float(steps)
    assert losses["discriminator_accuracy"].item() == pytest.approx(accuracy)


@pytest.mark.parametrize("name", ADVERSARIAL)
def test_generator_steps_leave_the_discriminator_alone(name, small_mnist, monkeypatch):
    method, feed = make(name, small_mnist)
    force_accuracy(monkeypatch, 0.99)  # the discriminator step is skipped
    freeze(monkeypatch, method, "autoencoder")
    before = snapshot(method.networks.discriminator)
    autoencoder = snapshot(method.networks.encoder) | {
        f"decoder.{k}": v for k, v in snapshot(method.networks.decoder).items()}
    gradients = []  # one per discriminator parameter and backward that reaches it
    for parameter in method.networks.discriminator.parameters():
        parameter.register_hook(lambda grad: gradients.append(grad))
    method.train_step(feed)
    assert not changed(before, method.networks.discriminator)
    # Only the discriminator's own (gated) step computes its gradients, once; the generators'
    # backward passes never reach it.
    assert len(gradients) == len(list(method.networks.discriminator.parameters()))
    after = method.networks.encoder.state_dict() | {
        f"decoder.{k}": v for k, v in method.networks.decoder.state_dict().items()}
    assert any(not torch.equal(autoencoder[k], after[k]) for k in after)  # the generator stepped


@pytest.mark.parametrize("name", ADVERSARIAL)
def test_discriminator_step_leaves_encoder_and_decoder_alone(name, small_mnist, monkeypatch):
    method, feed = make(name, small_mnist)
    force_accuracy(monkeypatch, 0.1)
    freeze(monkeypatch, method, "autoencoder", "generator")
    encoder, decoder = snapshot(method.networks.encoder), snapshot(method.networks.decoder)
    discriminator = snapshot(method.networks.discriminator)
    method.train_step(feed)
    assert not changed(encoder, method.networks.encoder)
    assert not changed(decoder, method.networks.decoder)
    assert changed(discriminator, method.networks.discriminator)


def test_mathieu_reconstructs_x1_from_its_own_and_its_partners_s(small_mnist):
    method, feed = make("mathieu", small_mnist)
    x1, x2 = feed.pair()
    method.generator.manual_seed(5)
    terms = method.autoencoder_loss(x1, x2)
    method.generator.manual_seed(5)
    with torch.no_grad():
        mean1, logvar1, s1 = method.networks.encoder(x1)
        s2 = method.networks.encoder(x2)[2]
        z1 = method.reparameterise(mean1, logvar1)
        own = F.mse_loss(method.decode(z1, s1), x1)
        partner = F.mse_loss(method.decode(z1, s2), x1)
    assert torch.allclose(terms["reconstruction_own_s"], own, rtol=1e-5)
    assert torch.allclose(terms["reconstruction_partner_s"], partner, rtol=1e-5)
    assert not torch.allclose(own, partner)
    expected_kl = -0.5 * torch.sum(1 + logvar1 - mean1 ** 2 - logvar1.exp()) / x1.numel()
    assert torch.allclose(terms["kl"], expected_kl, rtol=1e-5)


def test_szabo_swaps_the_common_codes_of_both(small_mnist):
    method, feed = make("szabo", small_mnist)
    x1, x2 = feed.pair()
    terms = method.autoencoder_loss(x1, x2)
    with torch.no_grad():
        z1, logvar, s1 = method.networks.encoder(x1)
        z2, _, s2 = method.networks.encoder(x2)
        expected = (F.mse_loss(method.decode(z1, s2), x1), F.mse_loss(method.decode(z2, s1), x2))
    assert logvar is None
    assert torch.allclose(terms["reconstruction_x1"], expected[0], rtol=1e-5)
    assert torch.allclose(terms["reconstruction_x2"], expected[1], rtol=1e-5)


def test_szabo_discriminator_draws_a_fresh_pair(small_mnist, monkeypatch):
    """As training.py of the re-implementation (ananyahjha93/challenges-in-disentangling, lines
    127, 160, 173, 208-209): the discriminator step draws its own same-class pair, then x3, and
    its fake pairs the new pair's first image with Dec(z3, s1). A step that reused the
    autoencoder's pair would draw one pair per iteration and hand the discriminator its images."""
    method, feed = make("szabo", small_mnist)
    draws, pairs, batches = [], [], []

    def spy(name, draw, into):
        def drawn():
            draws.append(name)
            into.append(draw())
            return into[-1]
        return drawn
    monkeypatch.setattr(feed, "pair", spy("pair", feed.pair, pairs))
    monkeypatch.setattr(feed, "batch", spy("batch", feed.batch, batches))
    calls = {"autoencoder_loss": [], "discriminator_step": [], "transfer": []}
    for name, into in calls.items():
        original = getattr(method, name)

        def called(*args, _original=original, _into=into, **kwargs):
            _into.append(inspect.signature(_original).bind(*args, **kwargs).arguments)
            return _original(*args, **kwargs)
        monkeypatch.setattr(method, name, called)
    method.train_step(feed)

    # The autoencoder's pair, the discriminator's pair, its x3, then the generators' x1, x3 twice.
    assert draws == ["pair", "pair", "batch", *["batch", "batch"] * method.config.generator_steps]
    (ae_pair, d_pair), x3 = pairs, batches[0]
    (autoencoder,) = calls["autoencoder_loss"]
    assert autoencoder["x1"] is ae_pair[0] and autoencoder["x2"] is ae_pair[1]
    (discriminator,) = calls["discriminator_step"]
    real, fake = discriminator["real"], discriminator["fake"]
    assert real[0] is d_pair[0] and real[1] is d_pair[1]
    assert not torch.equal(real[0], ae_pair[0]) and not torch.equal(real[1], ae_pair[1])
    assert fake[0] is d_pair[0]
    # The first transfer makes the fake: x3's z under the fresh pair's first image's s.
    fake_transfer = calls["transfer"][0]
    assert fake_transfer["z_source"] is x3 and fake_transfer["s_source"] is d_pair[0]


def test_szabo_decoder_is_its_variant():
    from methods.szabo import Szabo
    from methods.mathieu import Mathieu
    assert Szabo.decoder_options == {"input_activation": False, "stack_activation": "relu"}
    assert Mathieu.decoder_options == {}


def test_discriminator_loss_known_answer():
    class Fixed(torch.nn.Module):  # says "real" for pairs whose first image is all ones
        def forward(self, a, b):
            real = a.flatten(1).mean(1, keepdim=True)
            return torch.cat([(1 - real) * 10, real * 10], dim=1)
    ones, zeros = torch.ones(4, 1, 2, 2), torch.zeros(4, 1, 2, 2)
    loss, accuracy = discriminator_loss(Fixed(), real=(ones, ones), fake=(zeros, zeros))
    assert accuracy.item() == 1.0 and loss.item() < 1e-3
    loss, accuracy = discriminator_loss(Fixed(), real=(zeros, ones), fake=(ones, zeros))
    assert accuracy.item() == 0.0 and loss.item() > 10
    _, accuracy = discriminator_loss(Fixed(), real=(ones, ones), fake=(ones, zeros))
    assert accuracy.item() == 0.5
