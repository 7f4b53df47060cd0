"""Swap accuracy: what an independent classifier sees in swapped images Dec(z of i, s of j).

A small CNN (``TargetClassifier``) is trained once per dataset on the dataset's real training
images, with one head per target (the specified label and, optionally, known factors); the
evaluation caches it (bench/evaluations/_swap_classifier.py).
``swap_agreement`` decodes random pairs (i = z source, j = s source), classifies the swaps and
reports, per target, how often the prediction follows image j (the s source) and how often it
follows image i (the z source, counted over pairs whose values differ).

For the specified label, follows_s is the "swap accuracy" (high is good) and follows_z the
"z-class transfer" (low is good); for a factor z should carry one wants the reverse.
"""
from __future__ import annotations

import dataclasses
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from bench.metrics import Bar, no_bar
from bench.metrics.batches import inference_batch
from bench.metrics.probe_classifier import accuracy

MAX_MAP_SIDE = 8  # strided convs until the feature map is at most this wide and high


class TargetClassifier(nn.Module):
    """A small CNN for C x H x W images (H, W >= 28) with one linear head per target.

    Stride-2 convolutions halve the map until it is at most MAX_MAP_SIDE on each side; the map is
    then flattened, not pooled, so position factors stay readable.
    """

    def __init__(self, image_shape: tuple[int, ...], sizes: dict[str, int], width: int = 32):
        super().__init__()
        channels, height, side = image_shape
        if min(height, side) < 28:
            raise ValueError(f"TargetClassifier needs images of at least 28 x 28, got {image_shape}")
        if not sizes:
            raise ValueError("TargetClassifier needs at least one target")
        self.image_shape = tuple(image_shape)
        self.sizes = dict(sizes)
        layers: list[nn.Module] = []
        width_in, out = channels, width
        while max(height, side) > MAX_MAP_SIDE:
            layers += [nn.Conv2d(width_in, out, 3, stride=2, padding=1), nn.BatchNorm2d(out), nn.ReLU()]
            height, side = (height + 1) // 2, (side + 1) // 2
            width_in, out = out, min(out * 2, 4 * width)
        self.features = nn.Sequential(*layers, nn.Flatten(),
                                      nn.Linear(width_in * height * side, 128), nn.ReLU())
        self.heads = nn.ModuleDict({name: nn.Linear(128, size) for name, size in sizes.items()})

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        hidden = self.features(x)
        return {name: head(hidden) for name, head in self.heads.items()}


def build_classifier(image_shape: tuple[int, ...], sizes: dict[str, int], seed: int,
           device: torch.device) -> TargetClassifier:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return TargetClassifier(image_shape, sizes).to(device)


def fit_target_classifier(images: torch.Tensor, targets: dict[str, torch.Tensor],
                          sizes: dict[str, int], *, epochs: int, batch_size: int, lr: float,
                          seed: int, bar: Bar = no_bar) -> TargetClassifier:
    """Train a TargetClassifier on ``images`` (N, C, H, W) for ``targets`` (name -> N integer
    codes in 0..sizes[name]-1): Adam on the summed cross-entropy of the heads, on the images'
    device. The initialisation and the batch order come from ``seed`` only."""
    check_targets(images, targets, sizes)
    device = images.device
    model = build_classifier(tuple(images.shape[1:]), {name: sizes[name] for name in targets}, seed, device)
    generator = torch.Generator(device=device).manual_seed(seed)
    optimiser = torch.optim.Adam(model.parameters(), lr=lr)
    n = images.shape[0]
    batches = max(n // batch_size, 1)  # the last incomplete batch is dropped (BatchNorm needs > 1)
    model.train()
    for _ in bar(range(epochs), "swap classifier epochs"):
        order = torch.randperm(n, generator=generator, device=device)[:batches * batch_size]
        for rows in order.view(batches, -1):
            logits = model(images[rows])
            loss = sum(F.cross_entropy(logits[name], values[rows]) for name, values in targets.items())
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
    model.eval()
    return model


@torch.no_grad()
def predict_targets(model: TargetClassifier, images: torch.Tensor,
                    batch_size: int | None = None) -> dict[str, torch.Tensor]:
    """The predicted code of every target for ``images`` (eval mode)."""
    model.eval()
    batch_size = batch_size or inference_batch(images.device)
    chunks = [model(chunk) for chunk in images.split(batch_size)]
    return {name: torch.cat([c[name].argmax(1) for c in chunks]) for name in model.heads}


def check_targets(images: torch.Tensor, targets: dict[str, torch.Tensor],
                   sizes: dict[str, int]) -> None:
    if not targets:
        raise ValueError("no targets to train on")
    for name, values in targets.items():
        if name not in sizes:
            raise ValueError(f"target {name!r} has no size")
        if values.shape != images.shape[:1]:
            raise ValueError(f"target {name!r} has shape {tuple(values.shape)}; expected "
                             f"({images.shape[0]},)")


def swap_pairs(n_images: int, pairs: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``pairs`` random index pairs (i, j) into ``n_images`` images with i != j: i the z source,
    j the s source. Deterministic for a seed (CPU tensors)."""
    if n_images < 2:
        raise ValueError(f"swap pairs need at least 2 images, got {n_images}")
    generator = torch.Generator().manual_seed(seed)
    i = torch.randint(n_images, (pairs,), generator=generator)
    # j uniform over the other n - 1 images: an offset in 1..n-1 from i.
    j = (i + torch.randint(1, n_images, (pairs,), generator=generator)) % n_images
    return i, j


@dataclasses.dataclass(frozen=True)
class SwapAgreement:
    """How the classifier's reading of swapped images relates to their two sources, in percent.

    follows_s: predictions equal to the s source's (image j's) value, over all ``pairs``;
    follows_z: predictions equal to the z source's (image i's) value, over the
    ``differing_pairs`` whose two values differ (nan when there are none);
    chance: 100 / the number of values.
    """
    target: str
    follows_s: float
    follows_z: float
    pairs: int
    differing_pairs: int
    chance: float


@torch.no_grad()
def swap_agreement(transfer: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
                   images: torch.Tensor, targets: dict[str, torch.Tensor],
                   classifier: TargetClassifier, *, pairs: int, seed: int,
                   batch_size: int | None = None, bar: Bar = no_bar) -> dict[str, SwapAgreement]:
    """Decode ``transfer(images[i], images[j])`` for ``pairs`` seeded pairs (i = z source, j = s
    source), classify the swaps and compare each target's prediction with the true values of
    i and j. Every name of ``targets`` must be a head of ``classifier``."""
    missing = set(targets) - set(classifier.heads)
    if missing:
        raise ValueError(f"the classifier has no head for {sorted(missing)}")
    classifier.eval()
    batch_size = batch_size or inference_batch(images.device)
    z_rows, s_rows = swap_pairs(images.shape[0], pairs, seed)
    z_rows, s_rows = z_rows.to(images.device), s_rows.to(images.device)
    predicted: dict[str, list[torch.Tensor]] = {name: [] for name in targets}
    for i, j in bar(zip(z_rows.split(batch_size), s_rows.split(batch_size)), "decoding swaps",
                    total=-(-pairs // batch_size)):
        logits = classifier(transfer(images[i], images[j]))
        for name in targets:
            predicted[name].append(logits[name].argmax(1))
    result = {}
    for name, values in targets.items():
        guess = torch.cat(predicted[name])
        values = values.to(guess.device)
        z_values, s_values = values[z_rows], values[s_rows]
        differ = z_values != s_values
        differing = int(differ.sum())
        result[name] = SwapAgreement(
            target=name, follows_s=accuracy(guess, s_values),
            follows_z=accuracy(guess[differ], z_values[differ]) if differing else float("nan"),
            pairs=pairs, differing_pairs=differing, chance=100.0 / classifier.sizes[name])
    return result
