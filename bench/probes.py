"""Latent probes: how well a classifier predicts the specified label from a frozen latent code.

The classifier and optimiser are the paper's (methods.md, "Latent probes"); the epoch count and
batch size are config values (RunSettings) because the paper does not give them.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def probe_classifier(in_features: int, num_classes: int) -> nn.Module:
    return nn.Sequential(
        nn.Linear(in_features, 256), nn.BatchNorm1d(256), nn.LeakyReLU(0.2),
        nn.Linear(256, 256), nn.BatchNorm1d(256), nn.LeakyReLU(0.2),
        nn.Linear(256, num_classes))


def accuracy(predicted: torch.Tensor, labels: torch.Tensor) -> float:
    """Percentage of ``predicted`` class indices equal to ``labels``."""
    if labels.numel() == 0:
        raise ValueError("accuracy of an empty set")
    return 100.0 * (predicted == labels).double().mean().item()


class LatentCode:
    """A latent code to probe: a fixed tensor, or a Gaussian ``mean + std * noise`` sampled anew
    at every draw (the VAE methods' sampled z)."""

    def __init__(self, mean: torch.Tensor, std: torch.Tensor | None = None):
        self.mean, self.std = mean, std

    def draw(self, generator: torch.Generator) -> torch.Tensor:
        if self.std is None:
            return self.mean
        noise = torch.randn(self.mean.shape, generator=generator, device=self.mean.device)
        return self.mean + self.std * noise


@torch.no_grad()
def predict(model: nn.Module, features: torch.Tensor, batch_size: int = 4096) -> torch.Tensor:
    model.eval()
    return torch.cat([model(chunk).argmax(1) for chunk in features.split(batch_size)])


def fit_probe(train: LatentCode, train_labels: torch.Tensor, test: LatentCode,
              test_labels: torch.Tensor, num_classes: int, *, epochs: int, batch_size: int,
              lr: float, seed: int) -> tuple[float, float]:
    """Train a probe on ``train`` and return its (train, test) accuracy in percent.

    A sampled code is drawn afresh every epoch during training (as encoding with the
    reparameterisation on the fly would), and once for each evaluation.
    """
    device = train.mean.device
    generator = torch.Generator(device=device)
    generator.manual_seed(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = probe_classifier(train.mean.shape[1], num_classes).to(device)
    optimiser = torch.optim.Adam(model.parameters(), lr=lr)
    n = train_labels.numel()
    batches = max(n // batch_size, 1)  # the last incomplete batch is dropped (BatchNorm needs > 1)
    for _ in range(epochs):
        model.train()
        features = train.draw(generator)
        order = torch.randperm(n, generator=generator, device=device)[:batches * batch_size]
        for index in order.view(batches, -1):
            loss = F.cross_entropy(model(features[index]), train_labels[index])
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
    train_accuracy = accuracy(predict(model, train.draw(generator)), train_labels)
    test_accuracy = accuracy(predict(model, test.draw(generator)), test_labels)
    return train_accuracy, test_accuracy
