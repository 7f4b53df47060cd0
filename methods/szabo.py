"""Szabo et al. 2018 (arXiv 1711.02245) as re-implemented by the paper's authors:
reference docs/methods.md, "Szabó et al. 2018". A plain autoencoder: z ("varying") and s ("common")
are both deterministic."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from methods.adversarial import REAL, AdversarialAutoencoder, pair_loss
from methods.base import TrainingData, register


@register
class Szabo(AdversarialAutoencoder):
    name = "szabo"
    variational = False
    # No activation after the decoder's input layers, ReLU in its deconvolution stack.
    decoder_options = {"input_activation": False, "stack_activation": "relu"}

    def autoencoder_loss(self, x1: torch.Tensor, x2: torch.Tensor) -> dict[str, torch.Tensor]:
        """Swap the common codes of a same-class pair: x1 from (z1, s2), x2 from (z2, s1)."""
        z, _, s = self.networks.encoder(torch.cat([x1, x2]))  # per-instance layers: one batch
        s1, s2 = s.chunk(2)
        x1_rec, x2_rec = self.decode(z, torch.cat([s2, s1])).chunk(2)
        return {"reconstruction_x1": F.mse_loss(x1_rec, x1), "reconstruction_x2": F.mse_loss(x2_rec, x2)}

    def train_step(self, data: TrainingData) -> dict[str, torch.Tensor]:
        c, optimisers = self.config, self.optimisers

        # 1. Autoencoder step on a same-class pair (x1, x2).
        x1, x2 = data.pair()
        terms = self.autoencoder_loss(x1, x2)
        autoencoder_loss = sum(terms.values())
        optimisers["autoencoder"].zero_grad(set_to_none=True)
        autoencoder_loss.backward()
        optimisers["autoencoder"].step()

        # 2. Discriminator step on a fresh same-class pair (x1, x2), not the autoencoder step's,
        #    then a random x3: the real pair (x1, x2) against (x1, Dec(z3, s1)), taken only while
        #    the discriminator's accuracy on this batch is below the gate.
        x1, x2 = data.pair()
        x3 = data.batch()
        with torch.no_grad():
            fake = self.transfer(x3, x1)
        discriminator = self.discriminator_step(real=(x1, x2), fake=(x1, fake))

        # 3. Generator steps on independent random batches: (x1, Dec(z3, s1)) must pass as real.
        generator_losses = []
        for _ in range(c.generator_steps):
            x1, x3 = data.batch(), data.batch()
            generator_loss = pair_loss(self.networks.discriminator, x1, self.transfer(x3, x1), REAL)
            optimisers["generator"].zero_grad(set_to_none=True)
            generator_loss.backward(inputs=self.autoencoder_parameters())
            optimisers["generator"].step()
            generator_losses.append(generator_loss.detach())

        return {**{k: v.detach() for k, v in terms.items()},
                "autoencoder_total": autoencoder_loss.detach(),
                "generator": torch.stack(generator_losses).mean(), **discriminator}
