"""What a dataset is to the suite, and the registry of dataset loaders."""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Callable

import torch


class DataError(Exception):
    """Missing, corrupt or unobtainable data; the message names the file."""


@dataclasses.dataclass(frozen=True)
class ImageSet:
    """Train and test images as float tensors in [0, 1], shape (N, C, H, W), on one device.

    ``*_labels`` hold the specified factor; the suite uses them only to form pairs and to evaluate.
    """
    name: str
    train_images: torch.Tensor
    train_labels: torch.Tensor
    test_images: torch.Tensor
    test_labels: torch.Tensor
    num_classes: int

    @property
    def image_shape(self) -> tuple[int, ...]:
        return tuple(self.train_images.shape[1:])

    def head(self, train_size: int | None, test_size: int | None) -> "ImageSet":
        """The first ``train_size`` / ``test_size`` images (None keeps all): a reduced set for tests."""
        return dataclasses.replace(
            self,
            train_images=self.train_images[:train_size], train_labels=self.train_labels[:train_size],
            test_images=self.test_images[:test_size], test_labels=self.test_labels[:test_size])


Loader = Callable[[Path | None, torch.device], ImageSet]
DATASETS: dict[str, Loader] = {}


def register(name: str) -> Callable[[Loader], Loader]:
    def decorate(loader: Loader) -> Loader:
        if name in DATASETS:
            raise ValueError(f"dataset {name!r} registered twice")
        DATASETS[name] = loader
        return loader
    return decorate
