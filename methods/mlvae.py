"""Multi-Level VAE (Bouchacourt, Tomioka & Nowozin, AAAI 2018; arXiv 1705.08841): reference
docs/methods.md, "ML-VAE". Both codes are variational; the s posteriors of a group's members (here
a same-class pair, or ``group_size`` images of one class) are accumulated into one group posterior
by a product of Gaussians, and each member decodes its own draw from it. Each pixel is a Gaussian
with a log-variance the decoder learns, as in the first author's code."""
from __future__ import annotations

import dataclasses
import math

import torch
import torch.nn.functional as F
from torch import nn

from methods.base import Method, MethodConfig, TrainingData, kl_to_standard_normal, register
from methods.networks import Decoder, Encoder, check_image_shape, init_weights

LIKELIHOODS = ("learned_variance", "squared_error")
S_SAMPLES = ("member", "group")


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
    # Each pixel's likelihood: "learned_variance", a Gaussian whose log-variance the decoder gives
    # (bounded to (-1, 1)), the first author's; "squared_error", a Gaussian of variance 1/2, the
    # third-party port's (docs/methods.md, "ML-VAE deviations").
    likelihood: str = "learned_variance"
    # s in training: "member", one draw per group member from the group posterior (the first
    # author's code); "group", one draw shared by the group (the port's, with s_noise 0.1).
    s_sample: str = "member"
    s_noise: float = 1.0  # standard deviation of the reparameterisation noise of s
    # Images per group: 2, a same-class pair (the benchmark's supervision); more, an anchor and
    # group_size - 1 partners of its class, as the authors' batches grouped by label.
    group_size: int = 2

    def __post_init__(self):
        if self.likelihood not in LIKELIHOODS:
            raise ValueError(f"likelihood must be one of {', '.join(LIKELIHOODS)}, got "
                             f"{self.likelihood!r}")
        if self.s_sample not in S_SAMPLES:
            raise ValueError(f"s_sample must be 'group' or 'member', got {self.s_sample!r}")
        if not self.s_noise > 0:
            raise ValueError(f"s_noise must be positive, got {self.s_noise!r}")
        if not (isinstance(self.group_size, int) and self.group_size >= 2):
            raise ValueError(f"group_size must be an integer of at least 2, got {self.group_size!r}")


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
                    "decoder": Decoder(c.z_dim, c.s_dim, image_shape=image_shape,
                                       pixel_logvar=c.likelihood == "learned_variance"),
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

    def negative_log_likelihood(self, z: torch.Tensor, s: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """-log p(x | z, s), summed over every pixel of every image."""
        if self.config.likelihood == "squared_error":
            return F.mse_loss(self.decode(z, s), x, reduction="sum")
        mean, logvar = self.networks.decoder.distribution(z, s)
        return 0.5 * (math.log(2 * math.pi) + logvar + (x - mean).pow(2) / logvar.exp()).sum()

    def sample_s(self, group_mean: torch.Tensor, group_logvar: torch.Tensor, group_size: int) -> torch.Tensor:
        """s of every image (members in the order of ``x``), drawn from its group's posterior."""
        noise = self.config.s_noise
        if self.config.s_sample == "group":
            draw = group_mean + noise * self.normal(*group_mean.shape) * torch.exp(0.5 * group_logvar)
            return draw.repeat(group_size, 1)
        mean, logvar = group_mean.repeat(group_size, 1), group_logvar.repeat(group_size, 1)
        return mean + noise * self.normal(*mean.shape) * torch.exp(0.5 * logvar)

    def objective(self, members: torch.Tensor) -> dict[str, torch.Tensor]:
        """The negative objective of a batch of groups (``members[k]``: the k-th image of each
        group), summed over groups and divided by their number: the likelihood summed over each
        image's pixels, the z KL once per image, the s KL once per group (of the group
        posterior)."""
        c = self.config
        group_size, groups = members.shape[:2]
        x = members.flatten(0, 1)  # per-instance layers: one pass for every member
        z_mean, z_logvar, s_mean, s_logvar = self.posteriors(x)
        group_mean, group_logvar = self.group_posterior(s_mean.view(group_size, groups, -1),
                                                        s_logvar.view(group_size, groups, -1))
        s = self.sample_s(group_mean, group_logvar, group_size)
        z = self.reparameterise(z_mean, z_logvar)
        terms = {"reconstruction": self.negative_log_likelihood(z, s, x) / groups,
                 "kl_z": kl_to_standard_normal(z_mean, z_logvar) / groups,
                 "kl_s": kl_to_standard_normal(group_mean, group_logvar) / groups}
        terms["total"] = terms["reconstruction"] + c.beta * (terms["kl_z"] + terms["kl_s"])
        return terms

    def train_step(self, data: TrainingData) -> dict[str, torch.Tensor]:
        terms = self.objective(data.group(self.config.group_size))
        self.optimisers["vae"].zero_grad(set_to_none=True)
        terms["total"].backward()
        self.optimisers["vae"].step()
        return {name: value.detach() for name, value in terms.items()}
