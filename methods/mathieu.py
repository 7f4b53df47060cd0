"""Mathieu et al. 2016 (arXiv 1611.03383) as re-implemented by the paper's authors:
reference docs/methods.md, "Mathieu et al. 2016"."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from methods.adversarial import REAL, AdversarialAutoencoder, pair_loss
from methods.base import TrainingData, kl_to_standard_normal, register


@register
class Mathieu(AdversarialAutoencoder):
    name = "mathieu"
    variational = True

    def autoencoder_loss(self, x1: torch.Tensor, x2: torch.Tensor) -> dict[str, torch.Tensor]:
        """x1 reconstructed twice from its own z1: with its own s1 and with its partner's s2."""
        z_mean, z_logvar, s = self.networks.encoder(torch.cat([x1, x2]))  # per-instance layers
        z1_mean, z1_logvar = z_mean.chunk(2)[0], z_logvar.chunk(2)[0]
        z1 = self.reparameterise(z1_mean, z1_logvar)
        own, swapped = self.decode(torch.cat([z1, z1]), s).chunk(2)  # s = cat([s1, s2])
        return {"reconstruction_own_s": F.mse_loss(own, x1),
                "reconstruction_partner_s": F.mse_loss(swapped, x1),
                "kl": kl_to_standard_normal(z1_mean, z1_logvar) / x1.numel()}  # KL1 / (B * 784)

    def generator_loss(self, x1: torch.Tensor, x3: torch.Tensor) -> torch.Tensor:
        """Images decoded with x3's s, from x1's z and from the prior, must pass as x3's pairs."""
        z_mean, z_logvar, s = self.networks.encoder(torch.cat([x1, x3]))
        z1_mean, z1_logvar = z_mean.chunk(2)[0], z_logvar.chunk(2)[0]
        s3 = s.chunk(2)[1]
        z = torch.cat([self.reparameterise(z1_mean, z1_logvar), self.normal(*z1_mean.shape)])
        generated = self.decode(z, torch.cat([s3, s3]))
        # Both fakes in one batch: twice the mean over 2B is the sum of the two CE terms.
        fooling = 2 * pair_loss(self.networks.discriminator, torch.cat([x3, x3]), generated, REAL)
        return kl_to_standard_normal(z1_mean, z1_logvar) / x1.numel() + fooling

    def train_step(self, data: TrainingData) -> dict[str, torch.Tensor]:
        c, optimisers = self.config, self.optimisers

        # 1. Autoencoder step on a same-class pair.
        terms = self.autoencoder_loss(*data.pair())
        autoencoder_loss = sum(terms.values())
        optimisers["autoencoder"].zero_grad(set_to_none=True)
        autoencoder_loss.backward()
        optimisers["autoencoder"].step()

        # 2. Generator steps on independent random batches (the discriminator is not stepped).
        generator_losses = []
        for _ in range(c.generator_steps):
            generator_loss = self.generator_loss(data.batch(), data.batch())
            optimisers["generator"].zero_grad(set_to_none=True)
            generator_loss.backward(inputs=self.autoencoder_parameters())
            optimisers["generator"].step()
            generator_losses.append(generator_loss.detach())

        # 3. Discriminator step: a real same-class pair (x2, x3) against (x3, Dec(mu1, s3)),
        #    taken only while the discriminator's accuracy on this batch is below the gate.
        x1 = data.batch()
        x2, x3 = data.pair()
        with torch.no_grad():
            fake = self.transfer(x1, x3)  # Dec(mu1, s3)
        discriminator = self.discriminator_step(real=(x2, x3), fake=(x3, fake))

        return {**{k: v.detach() for k, v in terms.items()},
                "autoencoder_total": autoencoder_loss.detach(),
                "generator": torch.stack(generator_losses).mean(), **discriminator}
