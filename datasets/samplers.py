"""Index samplers for weakly supervised training: same-class pairs and single-image batches.

Each draws from a seeded ``torch.Generator`` on the device that holds the labels, with
whole-tensor operations only (no per-sample Python). Their positions round-trip through
``state_dict``; their generators' states, whose format depends on the device, are saved beside
(``generators()``).

Two ways of drawing (a method's ``draws``, methods/base.py): by default the single-image batches
are i.i.d. (``BatchSampler``) and a partner is never its anchor; as the cycle-consistent VAE's
authors' loader draws (``one_loader``), every batch is the next window of the pairs' pass
(``LoaderBatches``) and a partner may be its anchor (``PairSampler(partner_may_be_anchor=True)``).
"""
from __future__ import annotations

import torch


class PairSampler:
    """Batches of (anchor, partner) index pairs with the same label.

    Each epoch is a fresh permutation of the training set cut into batches (the last, incomplete
    batch is dropped), so every image is an anchor at most once per epoch and all but fewer than
    ``batch_size`` images exactly once. Every anchor gets a uniformly drawn partner of its own class,
    never itself, drawn anew each epoch; with ``partner_may_be_anchor``, any image of its class,
    itself included (the cycle-consistent VAE's authors' loader: on MNIST about one pair in 6,000
    is an image with itself).
    """

    def __init__(self, labels: torch.Tensor, batch_size: int, generator: torch.Generator,
                 partner_may_be_anchor: bool = False):
        counts = torch.bincount(labels)
        present = counts[counts > 0]
        if present.numel() == 0 or int(present.min()) < 2:
            raise ValueError("every class needs at least two images to form same-class pairs")
        if labels.numel() < batch_size:
            raise ValueError(f"batch size {batch_size} exceeds the {labels.numel()} training images")
        self.labels = labels
        self.batch_size = batch_size
        self.generator = generator
        self.partner_may_be_anchor = partner_may_be_anchor
        self.batches_per_epoch = labels.numel() // batch_size
        # Indices grouped by class; class c occupies by_class[start[c] : start[c] + count[c]].
        self.by_class = torch.argsort(labels, stable=True)
        self.count = counts
        self.start = torch.cumsum(counts, 0) - counts
        self.rank_in_class = torch.empty_like(labels)
        self.rank_in_class[self.by_class] = (torch.arange(labels.numel(), device=labels.device)
                                             - self.start[labels[self.by_class]])
        self.epoch = 0
        self.position = self.batches_per_epoch  # forces a new epoch on the first draw
        self.anchors = self.partners = torch.empty(0, dtype=torch.long, device=labels.device)

    def _new_epoch(self) -> None:
        n = self.batches_per_epoch * self.batch_size
        device = self.labels.device
        anchors = torch.randperm(self.labels.numel(), generator=self.generator, device=device)[:n]
        label = self.labels[anchors]
        uniform = torch.rand(n, generator=self.generator, device=device, dtype=torch.float64)
        self.anchors = anchors
        self.partners = self._members(label, self.rank_in_class[anchors], uniform)
        self.epoch += 1
        self.position = 0

    def _members(self, label: torch.Tensor, anchor_rank: torch.Tensor,
                 uniform: torch.Tensor) -> torch.Tensor:
        """For each ``uniform`` in [0, 1), an image of class ``label``: any member of the class
        with ``partner_may_be_anchor``, else one of the others (the anchor, the member of rank
        ``anchor_rank`` in its class, skipped)."""
        if self.partner_may_be_anchor:
            offset = (uniform * self.count[label]).long()
        else:  # an offset among the class's other members: in [0, count - 2], the anchor skipped
            offset = (uniform * (self.count[label] - 1)).long()
            offset += (offset >= anchor_rank).long()
        return self.by_class[self.start[label] + offset]

    def other_members(self, anchors: torch.Tensor, count: int) -> torch.Tensor:
        """(count, len(anchors)) more images of each anchor's class, drawn uniformly and
        independently (they may repeat one another) with the sampler's generator: never the
        anchor, unless ``partner_may_be_anchor``."""
        label = self.labels[anchors].repeat(count)
        uniform = torch.rand(label.numel(), generator=self.generator, device=self.labels.device,
                             dtype=torch.float64)
        return self._members(label, self.rank_in_class[anchors].repeat(count),
                             uniform).view(count, -1)

    def next(self) -> tuple[torch.Tensor, torch.Tensor]:
        if self.position == self.batches_per_epoch:
            self._new_epoch()
        window = slice(self.position * self.batch_size, (self.position + 1) * self.batch_size)
        self.position += 1
        return self.anchors[window], self.partners[window]

    def graph(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Edges (first, second) between images this sampler may pair: each image to the next of
        its class, a path through every class, whose connected components are the classes."""
        first, second = self.by_class[:-1], self.by_class[1:]
        same = self.labels[first] == self.labels[second]
        return first[same], second[same]

    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "position": self.position, "anchors": self.anchors,
                "partners": self.partners}

    def load_state_dict(self, state: dict) -> None:
        self.epoch, self.position = state["epoch"], state["position"]
        device = self.labels.device
        self.anchors, self.partners = state["anchors"].to(device), state["partners"].to(device)


class BatchSampler:
    """Batches of indices drawn i.i.d. (uniformly, with replacement) from ``size`` images."""

    def __init__(self, size: int, batch_size: int, generator: torch.Generator, device: torch.device):
        self.size, self.batch_size, self.generator, self.device = size, batch_size, generator, device

    def next(self) -> torch.Tensor:
        return torch.randint(self.size, (self.batch_size,), generator=self.generator, device=self.device)


class LoaderBatches:
    """Single-image batches as one shuffled loader gives them: each the anchors of the pair
    sampler's next batch (its partners unused), so that the pairs and these batches share one
    permutation of the training set per pass, without replacement (the cycle-consistent VAE's
    authors' ``next(loader)``). Its position is the pair sampler's. It draws nothing from
    ``generator``, the batch stream's, which a run's checkpoint keeps as it keeps every stream."""

    def __init__(self, pairs: PairSampler, generator: torch.Generator):
        self.pairs, self.generator = pairs, generator

    def next(self) -> torch.Tensor:
        return self.pairs.next()[0]


class PairedTrainingData:
    """The ``TrainingData`` a method draws from: images indexed by the two samplers."""

    def __init__(self, images: torch.Tensor, pairs: PairSampler,
                 batches: BatchSampler | LoaderBatches):
        self.images, self.pairs, self.batches = images, pairs, batches

    def pair(self) -> tuple[torch.Tensor, torch.Tensor]:
        anchors, partners = self.pairs.next()
        return self.images[anchors], self.images[partners]

    def indexed_pair(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        anchors, partners = self.pairs.next()
        return anchors, partners, self.images[anchors], self.images[partners]

    def group(self, size: int) -> torch.Tensor:
        anchors, partners = self.pairs.next()
        members = [anchors, partners]
        if size > 2:
            members += list(self.pairs.other_members(anchors, size - 2))
        return self.images[torch.stack(members)]

    def batch(self) -> torch.Tensor:
        return self.images[self.batches.next()]

    def state_dict(self) -> dict:
        return {"pairs": self.pairs.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.pairs.load_state_dict(state["pairs"])

    def generators(self) -> dict[str, torch.Generator]:
        """The samplers' random generators, by the stream names the run seeds them with."""
        return {"pairs": self.pairs.generator, "batches": self.batches.generator}
