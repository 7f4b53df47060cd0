"""Group-based VAE (Hosoya, IJCAI 2019; arXiv 1809.02383): reference docs/methods.md, "GVAE".
ML-VAE's model and objective, but the group's s posterior is the average of its members'
posteriors (the arithmetic mean of the means and of the variances), so it does not sharpen with
the group's size; one s sample per group."""
from __future__ import annotations

import dataclasses
import math

import torch

from methods.base import register
from methods.mlvae import MLVAEConfig, MultiLevelVAE


def average_of_gaussians(mean: torch.Tensor, logvar: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Over dim 0, per element: the mean of the means and the mean of the variances (in log
    space: log mean exp(logvar))."""
    return mean.mean(dim=0), torch.logsumexp(logvar, dim=0) - math.log(logvar.shape[0])


@dataclasses.dataclass(frozen=True)
class GVAEConfig(MLVAEConfig):
    s_sample: str = "group"


@register
class GroupVAE(MultiLevelVAE):
    name = "gvae"
    config_class = GVAEConfig

    def group_posterior(self, mean: torch.Tensor, logvar: torch.Tensor):
        return average_of_gaussians(mean, logvar)
