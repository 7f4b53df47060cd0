"""Straightforward implementations of each method's training iteration, for comparison only.

They follow the structure of the authors' code: one network pass per image batch, one backward
per loss term (retain_graph), decoder gradients computed in the reverse cycle and thrown away.
They act on a registered method's own networks, optimisers and random generator and draw data
and noise in the same order as its ``train_step``, so the two compute the same update and can be
compared: `python -m bench speed --compare` times both, tests/test_equivalence.py checks that the
losses and every parameter after each step agree within float tolerance.
"""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

from methods.adversarial import FAKE, REAL, verdict_loss
from methods.base import Method, TrainingData, kl_to_standard_normal


def _backward_each(*terms: torch.Tensor) -> None:
    """One backward per term, as the original code did (the graph kept for the next one)."""
    for i, term in enumerate(terms):
        term.backward(retain_graph=i < len(terms) - 1)


def _sample(method: Method, pairs: list[tuple[torch.Tensor, torch.Tensor]]) -> list[torch.Tensor]:
    """mean + noise * std for each (mean, logvar), from one draw of noise for all of them (the
    fast path draws the noise of a concatenated batch in one call)."""
    noise = method.normal(sum(len(m) for m, _ in pairs), pairs[0][0].shape[1])
    return [m + n * torch.exp(0.5 * lv) for (m, lv), n in zip(pairs, noise.split([len(m) for m, _ in pairs]))]


def ccvae(method: Method, data: TrainingData) -> dict[str, torch.Tensor]:
    c, enc, dec = method.config, method.networks.encoder, method.networks.decoder
    x1, x2 = data.pair()
    pixels = x1.numel()
    optimiser = method.optimisers["autoencoder"]
    optimiser.zero_grad()
    mu1, logvar1, s1 = enc(x1)
    mu2, logvar2, s2 = enc(x2)
    z1, z2 = _sample(method, [(mu1, logvar1), (mu2, logvar2)])
    mse1, mse2 = F.mse_loss(dec(z1, s2), x1), F.mse_loss(dec(z2, s1), x2)
    kl1, kl2 = kl_to_standard_normal(mu1, logvar1) / pixels, kl_to_standard_normal(mu2, logvar2) / pixels
    _backward_each(c.reconstruction_weight * mse1, c.reconstruction_weight * mse2,
                   c.kl_weight * kl1, c.kl_weight * kl2)
    optimiser.step()

    x1, x2 = data.batch(), data.batch()
    optimiser = method.optimisers["reverse_cycle"]
    optimiser.zero_grad()
    z = method.normal(len(x1), c.z_dim)
    s1, s2 = enc(x1)[2].detach(), enc(x2)[2].detach()
    reverse = c.reverse_cycle_weight * torch.mean(torch.abs(enc(dec(z, s1))[0] - enc(dec(z, s2))[0]))
    reverse.backward()
    optimiser.step()
    reconstruction = (mse1 + mse2).detach()
    kl = (kl1 + kl2).detach()
    return {"reconstruction": reconstruction, "kl": kl,
            "forward_total": c.reconstruction_weight * reconstruction + c.kl_weight * kl,
            "reverse_cycle": reverse.detach()}


def _discriminator_step(method: Method, real: tuple, fake: tuple) -> dict[str, torch.Tensor]:
    d = method.networks.discriminator
    real_logits, fake_logits = d(*real), d(*fake)
    loss = verdict_loss(real_logits, REAL) + verdict_loss(fake_logits, FAKE)
    accuracy = torch.cat([real_logits.argmax(1) == REAL, fake_logits.argmax(1) == FAKE]).float().mean()
    stepped = accuracy < method.config.discriminator_gate
    if stepped:
        method.optimisers["discriminator"].zero_grad()
        loss.backward()
        method.optimisers["discriminator"].step()
    return {"discriminator": loss.detach(), "discriminator_accuracy": accuracy,
            "discriminator_stepped": stepped.float()}


def mathieu(method: Method, data: TrainingData) -> dict[str, torch.Tensor]:
    c, enc, dec, d = method.config, method.networks.encoder, method.networks.decoder, method.networks.discriminator
    x1, x2 = data.pair()
    optimiser = method.optimisers["autoencoder"]
    optimiser.zero_grad()
    mu1, logvar1, s1 = enc(x1)
    s2 = enc(x2)[2]
    (z1,) = _sample(method, [(mu1, logvar1)])
    own, partner = F.mse_loss(dec(z1, s1), x1), F.mse_loss(dec(z1, s2), x1)
    kl = kl_to_standard_normal(mu1, logvar1) / x1.numel()
    _backward_each(own, partner, kl)
    optimiser.step()

    generator_losses = []
    for _ in range(c.generator_steps):
        x1, x3 = data.batch(), data.batch()
        optimiser = method.optimisers["generator"]
        optimiser.zero_grad()
        mu1, logvar1, _ = enc(x1)
        s3 = enc(x3)[2]
        (z1,) = _sample(method, [(mu1, logvar1)])
        z_prior = method.normal(*mu1.shape)
        terms = (kl_to_standard_normal(mu1, logvar1) / x1.numel(),
                 verdict_loss(d(x3, dec(z1, s3)), REAL), verdict_loss(d(x3, dec(z_prior, s3)), REAL))
        _backward_each(*terms)
        optimiser.step()
        generator_losses.append(sum(t.detach() for t in terms))

    x1 = data.batch()
    x2, x3 = data.pair()
    with torch.no_grad():
        fake = dec(enc(x1)[0], enc(x3)[2])
    discriminator = _discriminator_step(method, (x2, x3), (x3, fake))
    return {"reconstruction_own_s": own.detach(), "reconstruction_partner_s": partner.detach(),
            "kl": kl.detach(), "autoencoder_total": (own + partner + kl).detach(),
            "generator": torch.stack(generator_losses).mean(), **discriminator}


def szabo(method: Method, data: TrainingData) -> dict[str, torch.Tensor]:
    """One iteration of training.py in the cycle-consistent VAE authors' re-implementation of
    Szabó et al. (github.com/ananyahjha93/challenges-in-disentangling): A. the autoencoder on a
    same-class pair (lines 126-149); B. a) the discriminator once, on a newly drawn same-class
    pair and a random x3 (lines 153-201); B. b) the generator twice, on two random batches
    (lines 203-226). Random images are i.i.d. batches here; the loader's cycling is not kept."""
    c, enc, dec, d = method.config, method.networks.encoder, method.networks.decoder, method.networks.discriminator
    # A. A same-class pair, each image rebuilt from its own varying code and its partner's common code.
    x1, x2 = data.pair()
    optimiser = method.optimisers["autoencoder"]
    optimiser.zero_grad()
    z1, _, s1 = enc(x1)
    z2, _, s2 = enc(x2)
    rec1, rec2 = F.mse_loss(dec(z1, s2), x1), F.mse_loss(dec(z2, s1), x2)
    _backward_each(rec1, rec2)
    optimiser.step()

    # B. a) The discriminator. A second same-class pair, drawn for this step, is the real pair;
    # its gradient is taken before the random x3 is drawn.
    optimiser = method.optimisers["discriminator"]
    optimiser.zero_grad()
    x1, x2 = data.pair()
    real_logits = d(x1, x2)
    real = verdict_loss(real_logits, REAL)
    real.backward()
    # The fake pairs that pair's first image with x3's varying code under its common code. The
    # gradient this sends into the encoder and decoder is discarded by their next zero_grad.
    x3 = data.batch()
    fake_logits = d(x1, dec(enc(x3)[0], enc(x1)[2]))
    fake = verdict_loss(fake_logits, FAKE)
    fake.backward()
    accuracy = torch.cat([real_logits.argmax(1) == REAL, fake_logits.argmax(1) == FAKE]).float().mean()
    stepped = accuracy < c.discriminator_gate
    if stepped:  # the gate: a discriminator that already wins is not updated
        optimiser.step()

    # B. b) The generator, twice, each on two random batches: (x1, Dec(z3, s1)) must pass as real.
    generator_losses = []
    for _ in range(c.generator_steps):
        x1, x3 = data.batch(), data.batch()
        optimiser = method.optimisers["generator"]
        optimiser.zero_grad()
        loss = verdict_loss(d(x1, dec(enc(x3)[0], enc(x1)[2])), REAL)
        loss.backward()
        optimiser.step()
        generator_losses.append(loss.detach())
    return {"reconstruction_x1": rec1.detach(), "reconstruction_x2": rec2.detach(),
            "autoencoder_total": (rec1 + rec2).detach(),
            "generator": torch.stack(generator_losses).mean(),
            "discriminator": (real + fake).detach(), "discriminator_accuracy": accuracy,
            "discriminator_stepped": stepped.float()}


STRAIGHTFORWARD: dict[str, Callable[[Method, TrainingData], dict[str, torch.Tensor]]] = {
    "ccvae": ccvae, "mathieu": mathieu, "szabo": szabo}
