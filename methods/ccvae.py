"""Cycle-consistent VAE (Jha et al., ECCV 2018): reference docs/methods.md, "Cycle-consistent VAE"."""
from __future__ import annotations

import dataclasses

import torch
import torch.nn.functional as F

from methods.base import (Method, MethodConfig, TrainingData, added_field, check_draws,
                          kl_to_standard_normal, register)
from methods.networks import Decoder, Encoder, check_image_shape, init_weights


@dataclasses.dataclass(frozen=True)
class CCVAEConfig(MethodConfig):
    epochs: int = 100
    lr: float = 1e-4
    betas: tuple[float, float] = (0.9, 0.999)
    # The authors' code suggests 3 for z = s = 64; the paper's default (2) is used for every size
    # unless overridden (`--set reconstruction_weight=3`).
    reconstruction_weight: float = 2.0
    kl_weight: float = 3.0
    reverse_cycle_weight: float = 10.0
    lr_step_epochs: int = 80
    lr_gamma: float = 0.1
    # How pairs and single-image batches are drawn (methods/base.py, DRAWS): "one_loader" is the
    # authors' loader. Added after runs were named: the default leaves their ids as they were.
    draws: str = added_field("independent")

    def __post_init__(self):
        check_draws(self.draws)


@register
class CycleConsistentVAE(Method):
    name = "ccvae"
    config_class = CCVAEConfig
    variational = True

    def build_networks(self, image_shape):
        check_image_shape(image_shape)
        c = self.config
        networks = {"encoder": Encoder(c.z_dim, c.s_dim, image_shape=image_shape),
                    "decoder": Decoder(c.z_dim, c.s_dim, image_shape=image_shape)}
        for net in networks.values():
            init_weights(net)
        return networks

    def build_optimisers(self):
        c, nets = self.config, self.networks
        return {
            "autoencoder": torch.optim.Adam([*nets.encoder.parameters(), *nets.decoder.parameters()],
                                            lr=c.lr, betas=c.betas),
            "reverse_cycle": torch.optim.Adam(nets.encoder.parameters(), lr=c.lr, betas=c.betas),
        }

    def build_schedulers(self):
        # StepLR(80, 0.1) as the original stepped it: at the start of every epoch, the first
        # included, so 1-based epoch e trains at lr * gamma ** (e // 80): 79 epochs at 1e-4, then
        # 21 at 1e-5 (docs/methods.md, "Cycle-consistent VAE"). Here the step comes at each
        # epoch's end, hence the e + 1.
        c = self.config
        factor = lambda epochs_done: c.lr_gamma ** ((epochs_done + 1) // c.lr_step_epochs)  # noqa: E731
        return {name: torch.optim.lr_scheduler.LambdaLR(opt, factor)
                for name, opt in self.optimisers.items()}

    def forward_cycle(self, x1: torch.Tensor, x2: torch.Tensor) -> dict[str, torch.Tensor]:
        """Swap the specified codes of a same-class pair: x1 from (z1, s2), x2 from (z2, s1)."""
        # Both halves go through the encoder as one batch: every layer acts per instance, so this
        # computes exactly the two separate passes of the original, faster.
        z_mean, z_logvar, s = self.networks.encoder(torch.cat([x1, x2]))
        z1, z2 = self.reparameterise(z_mean, z_logvar).chunk(2)
        s1, s2 = s.chunk(2)
        x1_rec, x2_rec = self.decode(torch.cat([z1, z2]), torch.cat([s2, s1])).chunk(2)
        return {"reconstruction_x1": F.mse_loss(x1_rec, x1),
                "reconstruction_x2": F.mse_loss(x2_rec, x2),
                # (KL1 + KL2) / (B * 784): the sum runs over both halves of the batch.
                "kl": kl_to_standard_normal(z_mean, z_logvar) / x1.numel()}

    def reverse_cycle(self, x1: torch.Tensor, x2: torch.Tensor) -> torch.Tensor:
        """One z from the prior, decoded with the s of two unrelated images, must encode back to
        the same z: mean |mu(Dec(z, s1)) - mu(Dec(z, s2))|.

        With s detached and z from the prior, no gradient reaches the encoder through the decoder,
        so generating without a graph gives the encoder exactly the original's gradient (the
        original's decoder gradients from this phase were cleared, unused, by the next zero_grad).
        """
        encoder = self.networks.encoder
        z = self.normal(x1.shape[0], self.config.z_dim)
        with torch.no_grad():
            s = encoder(torch.cat([x1, x2]))[2]
            generated = self.decode(torch.cat([z, z]), s)
        mu1, mu2 = encoder(generated)[0].chunk(2)
        return torch.mean(torch.abs(mu1 - mu2))

    def train_step(self, data: TrainingData) -> dict[str, torch.Tensor]:
        c = self.config
        forward = self.forward_cycle(*data.pair())
        reconstruction = forward["reconstruction_x1"] + forward["reconstruction_x2"]
        forward_loss = c.reconstruction_weight * reconstruction + c.kl_weight * forward["kl"]
        self.optimisers["autoencoder"].zero_grad(set_to_none=True)
        forward_loss.backward()
        self.optimisers["autoencoder"].step()

        reverse_loss = c.reverse_cycle_weight * self.reverse_cycle(data.batch(), data.batch())
        self.optimisers["reverse_cycle"].zero_grad(set_to_none=True)
        reverse_loss.backward()
        self.optimisers["reverse_cycle"].step()

        return {"reconstruction": reconstruction.detach(), "kl": forward["kl"].detach(),
                "forward_total": forward_loss.detach(), "reverse_cycle": reverse_loss.detach()}
