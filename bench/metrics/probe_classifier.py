"""Latent probes: how well a classifier predicts the specified label from a frozen latent code.

The classifier and optimiser are the paper's (docs/evaluation.md, "Latent probes"); the epochs and
batch size are config values (RunSettings) because the paper does not give them.
"""
from __future__ import annotations

import dataclasses
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from bench.metrics import Bar, no_bar


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

    def subset(self, rows) -> "LatentCode":
        """The code of the images ``rows`` (an index tensor or a slice) only."""
        return LatentCode(self.mean[rows], None if self.std is None else self.std[rows])

    def draw(self, generator: torch.Generator) -> torch.Tensor:
        if self.std is None:
            return self.mean
        noise = torch.randn(self.mean.shape, generator=generator, device=self.mean.device)
        return self.mean + self.std * noise


@torch.no_grad()
def predict(model: nn.Module, features: torch.Tensor, batch_size: int = 4096) -> torch.Tensor:
    model.eval()
    return torch.cat([model(chunk).argmax(1) for chunk in features.split(batch_size)])


@dataclasses.dataclass(frozen=True)
class ProbeTask:
    """One probe to fit: a code and the labels it should predict, on the split it is fitted on
    and the split it is scored on, and the seed of its initialisation and draws."""
    train: LatentCode
    train_labels: torch.Tensor
    test: LatentCode
    test_labels: torch.Tensor
    seed: int

    @property
    def width(self) -> int:
        return self.train.mean.shape[1]


def fit_probe_tasks(tasks: list[ProbeTask], num_classes: int, *, epochs: int, batch_size: int,
                    lr: float, between: Callable[[], None] | None = None, bar: Bar = no_bar
                    ) -> list[tuple[float, float]]:
    """Train one paper probe per task (all fitted on the same number of images) and return each
    probe's (train, test) accuracy in percent after ``epochs`` epochs (``accuracy_curves``)."""
    curves = accuracy_curves(tasks, num_classes, capacity="paper", budgets=(epochs,),
                             batch_size=batch_size, lr=lr, between=between, bar=bar)
    return [curve[epochs] for curve in curves]


def fit_probe(task: ProbeTask, num_classes: int, *, epochs: int, batch_size: int,
              lr: float) -> tuple[float, float]:
    """Train one probe for ``task`` and return its (train, test) accuracy in percent."""
    return fit_probe_tasks([task], num_classes, epochs=epochs, batch_size=batch_size, lr=lr)[0]


def accuracy_curves(tasks: list[ProbeTask], num_classes: int, *, capacity: str,
                    budgets: tuple[int, ...], batch_size: int, lr: float,
                    between: Callable[[], None] | None = None, bar: Bar = no_bar
                    ) -> list[dict[int, tuple[float, float]]]:
    """For each task, {epochs: (train, test) accuracy in percent} of one probe of ``capacity``
    (CAPACITIES) read after each number of epochs in ``budgets`` of one training (Adam at
    ``lr``); the tasks must be fitted on the same number of images.

    Each probe is what it would be alone: initialised from its seed, with its own generator seeded
    the same for its batch order and, for a sampled code, a fresh draw every epoch (as encoding
    with the reparameterisation on the fly would) and one for each reading. They train side by
    side as one stacked model (``StackedProbes``): one pass and one backward per iteration for all
    of them instead of one each (tests/test_probes.py compares it with probes trained one by one).
    ``between`` runs after every epoch: a stop check, which may raise (a long fit of many runs'
    probes stops at an epoch boundary on a signal instead of at its end).
    """
    n = tasks[0].train_labels.numel()
    if any(task.train_labels.numel() != n for task in tasks):
        raise ValueError("probes trained side by side must be fitted on as many images each")
    device = tasks[0].train.mean.device
    generators = [torch.Generator(device=device).manual_seed(task.seed) for task in tasks]
    models = []
    for task in tasks:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(task.seed)
            models.append(CAPACITIES[capacity](task.width, num_classes).to(device))
    stack = StackedProbes(models)
    optimiser = torch.optim.Adam(stack.parameters(), lr=lr)
    batches = max(n // batch_size, 1)  # the last incomplete batch is dropped (BatchNorm needs > 1)
    which = torch.arange(len(tasks), device=device)[:, None]
    labels = torch.stack([task.train_labels for task in tasks])
    curves: list[dict[int, tuple[float, float]]] = [{} for _ in tasks]
    for epoch in bar(range(1, max(budgets) + 1), "probe epochs"):
        features = stack.pad([task.train.draw(g) for task, g in zip(tasks, generators)])
        orders = torch.stack([torch.randperm(n, generator=g, device=device)[:batches * batch_size]
                              for g in generators]).view(len(tasks), batches, -1)
        for index in orders.unbind(1):  # index[k]: probe k's batch
            logits = stack(features[which, index])
            loss = sum(F.cross_entropy(out, rows) for out, rows in zip(logits, labels[which, index]))
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
        if epoch in budgets:
            stack.unstack_into(models)
            for curve, model, task, g in zip(curves, models, tasks, generators):
                curve[epoch] = (accuracy(predict(model, task.train.draw(g)), task.train_labels),
                                accuracy(predict(model, task.test.draw(g)), task.test_labels))
        if between is not None:
            between()
    return curves


class StackedProbes(nn.Module):
    """K probe classifiers of one architecture (CAPACITIES: hidden blocks of Linear, BatchNorm1d
    and LeakyReLU, then a Linear) as one model: each Linear a batched matrix product over (K,
    batch, features), each BatchNorm1d one batch norm over the K x width features side by side (it
    normalises each feature on its own, so this is each probe's own batch norm). Inputs narrower
    than the widest are padded with zero features, whose weights get zero gradients and stay zero:
    each probe computes exactly its own function."""

    def __init__(self, models: list[nn.Sequential]):
        super().__init__()
        linears = list(zip(*[[m for m in model if isinstance(m, nn.Linear)] for model in models]))
        norms = list(zip(*[[m for m in model if isinstance(m, nn.BatchNorm1d)] for model in models]))
        self.width = max(layer.in_features for layer in linears[0])
        self.weights = nn.ParameterList(
            [nn.Parameter(torch.stack([F.pad(l.weight.detach().t(), (0, 0, 0, self.width - l.in_features))
                                       if depth == 0 else l.weight.detach().t() for l in layer]))
             for depth, layer in enumerate(linears)])
        self.biases = nn.ParameterList([nn.Parameter(torch.stack([l.bias.detach() for l in layer]))
                                        for layer in linears])
        self.scales = nn.ParameterList([nn.Parameter(torch.cat([b.weight.detach() for b in layer]))
                                        for layer in norms])
        self.shifts = nn.ParameterList([nn.Parameter(torch.cat([b.bias.detach() for b in layer]))
                                        for layer in norms])
        for i, layer in enumerate(norms):
            self.register_buffer(f"running_mean{i}", torch.cat([b.running_mean for b in layer]))
            self.register_buffer(f"running_var{i}", torch.cat([b.running_var for b in layer]))
        activations = [m for m in models[0] if isinstance(m, nn.LeakyReLU)]
        self.momentum = norms[0][0].momentum if norms else None
        self.eps = norms[0][0].eps if norms else None
        self.slope = activations[0].negative_slope if activations else None

    def pad(self, features: list[torch.Tensor]) -> torch.Tensor:
        """(K, n, width): each probe's features, zero-padded to the widest."""
        return torch.stack([F.pad(f, (0, self.width - f.shape[1])) for f in features])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(K, batch, width) -> (K, batch, classes), in training mode."""
        for depth, (weight, bias) in enumerate(zip(self.weights, self.biases)):
            x = torch.baddbmm(bias[:, None], x, weight)
            if depth < len(self.scales):
                k, batch, features = x.shape
                flat = x.transpose(0, 1).reshape(batch, k * features)
                flat = F.batch_norm(flat, getattr(self, f"running_mean{depth}"),
                                    getattr(self, f"running_var{depth}"), self.scales[depth],
                                    self.shifts[depth], training=True, momentum=self.momentum,
                                    eps=self.eps)
                x = F.leaky_relu(flat.view(batch, k, features).transpose(0, 1), self.slope)
        return x

    @torch.no_grad()
    def unstack_into(self, models: list[nn.Sequential]) -> None:
        """Copy each probe's trained parameters and batch-norm statistics back into ``models``."""
        for k, model in enumerate(models):
            linears = [m for m in model if isinstance(m, nn.Linear)]
            for linear, weight, bias in zip(linears, self.weights, self.biases):
                linear.weight.copy_(weight[k, :linear.in_features].t())
                linear.bias.copy_(bias[k])
            for i, norm in enumerate(m for m in model if isinstance(m, nn.BatchNorm1d)):
                part = slice(k * norm.num_features, (k + 1) * norm.num_features)
                norm.weight.copy_(self.scales[i][part])
                norm.bias.copy_(self.shifts[i][part])
                norm.running_mean.copy_(getattr(self, f"running_mean{i}")[part])
                norm.running_var.copy_(getattr(self, f"running_var{i}")[part])


# Probes by name, for accuracy_curves: the paper's alone since the probe-sensitivity sweep reads a
# linear and a nearest-neighbour probe instead (bench/metrics/probe_kinds.py).
CAPACITIES: dict[str, Callable[[int, int], nn.Module]] = {"paper": probe_classifier}
