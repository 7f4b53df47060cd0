"""How many bits a probe needs to send the labels given a code: the online code of minimum
description length probing (Voita & Titov, EMNLP 2020).

The labels of n items are sent in blocks, in a seeded order. The first block goes with the
uniform code, log2(K) bits a label, and counts in the length. Every later block goes with a probe
that has seen the items before it (the prefix) and no other: trained on the prefix but its last
part, which chooses the probe's epoch (``block_probe``). A label costs -log2 p(label | code) bits
under that probe. The total is the online code length; against the uniform code for every label
(n log2 K bits) it gives the compression, 1 for a code that says nothing of the labels and
n / (first block) at most. Unlike one probe's accuracy, the length counts how quickly the labels
can be learnt from the code as well as how well: a label that a probe reads only after much data
costs bits all along the way.
"""
from __future__ import annotations

import copy
import dataclasses
import math
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from bench.metrics import Bar, no_bar
from bench.metrics.probe_classifier import LatentCode, probe_classifier

# Where the blocks end, as fractions of the items (Voita & Titov's timestamps).
BLOCK_ENDS = (0.001, 0.002, 0.004, 0.008, 0.016, 0.032, 0.0625, 0.125, 0.25, 0.5, 1.0)
FIRST_BLOCK = 10  # items at least: a prefix must hold a batch and a held-out part
HELD_OUT = 0.1  # of each prefix, for choosing the probe's epoch
# A probe on a short prefix sees few batches an epoch: it trains for at least this many steps.
MIN_STEPS = 100
LR = 1e-3  # Adam; the paper's probes' 1e-4 barely moves in MIN_STEPS steps


@dataclasses.dataclass(frozen=True)
class OnlineCode:
    bits: float  # the online code length of the labels
    uniform_bits: float  # n log2 K: every label with the uniform code

    @property
    def compression(self) -> float:
        return self.uniform_bits / self.bits


def block_ends(n: int, fractions: tuple[float, ...] = BLOCK_ENDS) -> list[int]:
    """The end of every block, increasing, the last n; the first holds FIRST_BLOCK items."""
    if n <= FIRST_BLOCK:
        raise ValueError(f"an online code needs more than {FIRST_BLOCK} items, got {n}")
    return sorted({min(n, max(FIRST_BLOCK, round(f * n))) for f in fractions} | {n})


@torch.no_grad()
def label_bits(model: nn.Module, features: torch.Tensor, labels: torch.Tensor) -> float:
    """-sum log2 p(label | features) under ``model`` (in evaluation mode)."""
    model.eval()
    log_p = F.log_softmax(model(features).double(), dim=1)
    return -log_p.gather(1, labels[:, None]).sum().item() / math.log(2)


def block_probe(code: LatentCode, labels: torch.Tensor, num_classes: int, *, epochs: int,
                batch_size: int, seed: int, lr: float = LR, min_steps: int = MIN_STEPS) -> nn.Module:
    """The paper's probe classifier trained on the items of a prefix but its last HELD_OUT part,
    ``epochs`` epochs or ``min_steps`` steps if that is more, kept at the epoch whose code length
    of the held-out labels is shortest (the early stopping of online codes, against a probe that
    grows confident on a few items and then pays for it on the next block)."""
    n = labels.numel()
    held = max(1, round(HELD_OUT * n))
    fit, check = code.subset(slice(0, n - held)), code.subset(slice(n - held, n))
    fit_labels, check_labels = labels[:n - held], labels[n - held:]
    device = labels.device
    generator = torch.Generator(device=device).manual_seed(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = probe_classifier(code.mean.shape[1], num_classes).to(device)
    optimiser = torch.optim.Adam(model.parameters(), lr=lr)
    size = min(batch_size, n - held)
    batches = (n - held) // size
    check_features = check.draw(generator)
    best, kept = math.inf, None
    for _ in range(max(epochs, math.ceil(min_steps / batches))):
        model.train()
        features = fit.draw(generator)
        order = torch.randperm(n - held, generator=generator, device=device)
        for rows in order[:batches * size].view(batches, size):
            loss = F.cross_entropy(model(features[rows]), fit_labels[rows])
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
        bits = label_bits(model, check_features, check_labels)
        if bits < best:
            best, kept = bits, copy.deepcopy(model.state_dict())
    model.load_state_dict(kept)
    return model


def online_code_lengths(codes: dict[str, LatentCode], labels: torch.Tensor, num_classes: int, *,
                        epochs: int, batch_size: int, seed: int,
                        between: Callable[[], None] = lambda: None, bar: Bar = no_bar
                        ) -> dict[str, OnlineCode]:
    """The online code length of ``labels`` given each code, every code sent in the same seeded
    order in blocks ending at the protocol's fractions (BLOCK_ENDS), each block with a
    ``block_probe`` of the items before it (and of no other).
    ``between`` runs after every block (a stop check)."""
    n = labels.numel()
    ends = block_ends(n)
    generator = torch.Generator(device=labels.device).manual_seed(seed)
    order = torch.randperm(n, generator=generator, device=labels.device)
    labels = labels[order]
    codes = {name: code.subset(order) for name, code in codes.items()}
    uniform = math.log2(num_classes)
    bits = {name: ends[0] * uniform for name in codes}
    draws = torch.Generator(device=labels.device).manual_seed(seed + 1)
    for start, end in bar(list(zip(ends, ends[1:])), "online code blocks"):
        for name, code in codes.items():
            probe = block_probe(code.subset(slice(0, start)), labels[:start], num_classes,
                                epochs=epochs, batch_size=batch_size, seed=seed)
            bits[name] += label_bits(probe, code.subset(slice(start, end)).draw(draws),
                                     labels[start:end])
        between()
    return {name: OnlineCode(bits[name], n * uniform) for name in codes}


def label_permutations(labels: torch.Tensor, count: int, seed: int) -> list[torch.Tensor]:
    """``count`` permutations of ``labels``, drawn one after another by one generator seeded
    ``seed``: labels as frequent as the true ones, paired with the items at random."""
    generator = torch.Generator(device=labels.device).manual_seed(seed)
    return [labels[torch.randperm(labels.numel(), generator=generator, device=labels.device)]
            for _ in range(count)]


def permutation_control(send: Callable[[torch.Tensor], dict[str, OnlineCode]],
                        labels: torch.Tensor, count: int, seed: int) -> dict[str, list[float]]:
    """Each code's control: the compressions of ``count`` permutations of ``labels``
    (``label_permutations``), each sent by ``send`` (labels -> {code: OnlineCode}) exactly as the
    true labels are, so that a code's compression can be read against what a code of its size
    gives a probe of its kind when it holds nothing of the labels."""
    found: dict[str, list[float]] = {}
    for permuted in label_permutations(labels, count, seed):
        for name, code in send(permuted).items():
            found.setdefault(name, []).append(code.compression)
    return found
