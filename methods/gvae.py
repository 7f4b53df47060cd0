"""Group-based VAE (Hosoya, IJCAI 2019; arXiv 1809.02383): reference docs/methods.md, "GVAE".
ML-VAE's model and objective, but the group's s posterior is the average of its members'
posteriors (the arithmetic mean of the means and of the variances), so it does not sharpen with
the group's size; one s sample per group; and the images' likelihood is Hosoya's Gaussian of unit
variance on standardised pixels."""
from __future__ import annotations

import dataclasses
import math

import torch
import torch.nn.functional as F

from methods.base import register
from methods.mlvae import MLVAEConfig, MultiLevelVAE


def average_of_gaussians(mean: torch.Tensor, logvar: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Over dim 0, per element: the mean of the means and the mean of the variances (in log
    space: log mean exp(logvar))."""
    return mean.mean(dim=0), torch.logsumexp(logvar, dim=0) - math.log(logvar.shape[0])


@dataclasses.dataclass(frozen=True)
class GVAEConfig(MLVAEConfig):
    s_sample: str = "group"  # Hosoya's only form: one s sample per group
    # Hosoya's likelihood is N(x; Dec, 1) on pixels standardised by the data's pixel std; on the raw
    # pixels that is N(x; Dec, likelihood_std^2). MNIST's training images: 0.3081.
    likelihood_std: float = 0.3081

    def __post_init__(self):
        if self.s_sample != "group":
            raise ValueError(f"gvae samples s once per group, as Hosoya's model does; s_sample="
                             f"{self.s_sample!r} is not GVAE (mlvae has the 'member' variant)")
        if not self.likelihood_std > 0:
            raise ValueError(f"likelihood_std must be positive, got {self.likelihood_std!r}")


@register
class GroupVAE(MultiLevelVAE):
    name = "gvae"
    config_class = GVAEConfig

    def group_posterior(self, mean: torch.Tensor, logvar: torch.Tensor):
        return average_of_gaussians(mean, logvar)

    def reconstruction_error(self, reconstructed: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """Hosoya's Gaussian negative log-likelihood up to its constant, 1/2 SSE / std^2."""
        return F.mse_loss(reconstructed, x, reduction="sum") / (2 * self.config.likelihood_std ** 2)
