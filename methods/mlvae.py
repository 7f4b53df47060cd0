"""Multi-Level VAE (Bouchacourt, Tomioka & Nowozin, AAAI 2018; arXiv 1705.08841): reference
docs/methods.md, "ML-VAE". Both codes are variational; the s posteriors of a group's members (here
a same-class pair) are accumulated into one group posterior by a product of Gaussians."""
from __future__ import annotations

import dataclasses

import torch
import torch.nn.functional as F
from torch import nn

from methods.base import Method, MethodConfig, TrainingData, kl_to_standard_normal, register
from methods._nets import Decoder, Encoder, check_image_shape, init_weights

GROUP_SIZE = 2  # a same-class pair


def product_of_gaussians(mean: torch.Tensor, logvar: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The normalised product of the Gaussians N(mean[i], exp(logvar[i])) over dim 0, per element:
    precision = sum of precisions, mean = precision-weighted mean. In log space, so that tiny
    variances neither overflow nor divide by zero: the weights are softmax(-logvar)."""
    group_logvar = -torch.logsumexp(-logvar, dim=0)
    group_mean = (torch.softmax(-logvar, dim=0) * mean).sum(dim=0)
    return group_mean, group_logvar


@dataclasses.dataclass(frozen=True)
class MLVAEConfig(MethodConfig):
    epochs: int = 100  # as the cycle-consistent VAE on the same networks (the authors' code: 400)
    lr: float = 1e-3  # the authors' and Hosoya's Adam rate
    betas: tuple[float, float] = (0.9, 0.999)
    beta: float = 1.0  # weight of both KL terms
    # "group": one s sample per group, shared by its members; "member": one per member, each from
    # the group posterior, as the first author's code does (docs/methods.md, ML-VAE deviations).
    s_sample: str = "group"

    def __post_init__(self):
        if self.s_sample not in ("group", "member"):
            raise ValueError(f"s_sample must be 'group' or 'member', got {self.s_sample!r}")


@register
class MultiLevelVAE(Method):
    name = "mlvae"
    config_class = MLVAEConfig
    variational = True

    def build_networks(self, image_shape):
        check_image_shape(image_shape)
        c = self.config
        encoder = Encoder(c.z_dim, c.s_dim, image_shape=image_shape)
        networks = {"encoder": encoder,
                    "decoder": Decoder(c.z_dim, c.s_dim, image_shape=image_shape),
                    # The s log-variance: a head on the shared encoder's trunk, beside its s head.
                    "s_logvar": nn.Linear(encoder.s.in_features, c.s_dim)}
        for net in networks.values():
            init_weights(net)
        return networks

    def build_optimisers(self):
        c = self.config
        return {"vae": torch.optim.Adam(self.networks.parameters(), lr=c.lr, betas=c.betas)}

    def posteriors(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """(z_mean, z_logvar, s_mean, s_logvar) of each image."""
        encoder = self.networks.encoder
        features = encoder.trunk(x)
        return (encoder.z_mean(features), encoder.z_logvar(features), encoder.s(features),
                self.networks.s_logvar(features))

    def group_posterior(self, mean: torch.Tensor, logvar: torch.Tensor):
        """The group's s posterior from its members' (dim 0: the member)."""
        return product_of_gaussians(mean, logvar)

    def reconstruction_error(self, reconstructed: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """The negative log-likelihood of the images, summed: squared error over every pixel."""
        return F.mse_loss(reconstructed, x, reduction="sum")

    def objective(self, x1: torch.Tensor, x2: torch.Tensor) -> dict[str, torch.Tensor]:
        """The negative objective of a batch of pairs, summed over groups and divided by the number
        of groups: squared error summed over each image's pixels, the z KL once per image, the s KL
        once per group (of the group posterior)."""
        c = self.config
        x = torch.cat([x1, x2])  # per-instance layers: one pass for both members
        groups = x1.shape[0]
        z_mean, z_logvar, s_mean, s_logvar = self.posteriors(x)
        group_mean, group_logvar = self.group_posterior(s_mean.view(GROUP_SIZE, groups, -1),
                                                        s_logvar.view(GROUP_SIZE, groups, -1))
        if c.s_sample == "group":
            s = self.reparameterise(group_mean, group_logvar).repeat(GROUP_SIZE, 1)
        else:
            s = self.reparameterise(group_mean.repeat(GROUP_SIZE, 1),
                                    group_logvar.repeat(GROUP_SIZE, 1))
        reconstructed = self.decode(self.reparameterise(z_mean, z_logvar), s)
        terms = {"reconstruction": self.reconstruction_error(reconstructed, x) / groups,
                 "kl_z": kl_to_standard_normal(z_mean, z_logvar) / groups,
                 "kl_s": kl_to_standard_normal(group_mean, group_logvar) / groups}
        terms["total"] = terms["reconstruction"] + c.beta * (terms["kl_z"] + terms["kl_s"])
        return terms

    def train_step(self, data: TrainingData) -> dict[str, torch.Tensor]:
        terms = self.objective(*data.pair())
        self.optimisers["vae"].zero_grad(set_to_none=True)
        terms["total"].backward()
        self.optimisers["vae"].step()
        return {name: value.detach() for name, value in terms.items()}
