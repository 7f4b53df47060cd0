"""Index samplers for weakly supervised training: same-class pairs and i.i.d. batches.

Both draw from a seeded ``torch.Generator`` on the device that holds the labels, with whole-tensor
operations only (no per-sample Python). Their positions round-trip through ``state_dict``; their
generators' states, whose format depends on the device, are saved beside (``generators()``).
"""
from __future__ import annotations

import torch


class PairSampler:
    """Batches of (anchor, partner) index pairs with the same label.

    Each epoch is a fresh permutation of the training set cut into batches (the last, incomplete
    batch is dropped), so every image is an anchor at most once per epoch and all but fewer than
    ``batch_size`` images exactly once. Every anchor gets a uniformly drawn partner of its own class,
    never itself, drawn anew each epoch.
    """

    def __init__(self, labels: torch.Tensor, batch_size: int, generator: torch.Generator):
        counts = torch.bincount(labels)
        present = counts[counts > 0]
        if present.numel() == 0 or int(present.min()) < 2:
            raise ValueError("every class needs at least two images to form same-class pairs")
        if labels.numel() < batch_size:
            raise ValueError(f"batch size {batch_size} exceeds the {labels.numel()} training images")
        self.labels = labels
        self.batch_size = batch_size
        self.generator = generator
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
        # An offset among the class's other members: draw in [0, count - 2], skip the anchor itself.
        offset = (uniform * (self.count[label] - 1)).long()
        offset += (offset >= self.rank_in_class[anchors]).long()
        self.anchors, self.partners = anchors, self.by_class[self.start[label] + offset]
        self.epoch += 1
        self.position = 0

    def other_members(self, anchors: torch.Tensor, count: int) -> torch.Tensor:
        """(count, len(anchors)) more images of each anchor's class, never the anchor, drawn
        uniformly and independently (they may repeat one another) with the sampler's generator."""
        label = self.labels[anchors].repeat(count)
        uniform = torch.rand(label.numel(), generator=self.generator, device=self.labels.device,
                             dtype=torch.float64)
        offset = (uniform * (self.count[label] - 1)).long()
        offset += (offset >= self.rank_in_class[anchors].repeat(count)).long()
        return self.by_class[self.start[label] + offset].view(count, -1)

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



class PairedTrainingData:
    """The ``TrainingData`` a method draws from: images indexed by the two samplers."""

    def __init__(self, images: torch.Tensor, pairs: PairSampler, batches: BatchSampler):
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
