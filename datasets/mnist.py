"""MNIST: the copy bundled in datasets/data/mnist, or torchvision's download under another root."""
from __future__ import annotations

from pathlib import Path

import torch

from datasets.base import ImageSet, register
from datasets.idx import IdxSource, read_checksum_file

BUNDLED_DIR = Path(__file__).resolve().parent / "data" / "mnist"
CHECKSUMS = BUNDLED_DIR / "SHA256SUMS"
MNIST = IdxSource(title="MNIST", torchvision_class="MNIST", checksums=read_checksum_file(CHECKSUMS),
                  default_dir=BUNDLED_DIR, checksum_origin=CHECKSUMS.name,
                  how_to_get="bundled with the project in datasets/data/mnist (restore it with git); "
                             "--data-dir ROOT downloads into ROOT/MNIST/raw with torchvision")


def locate_mnist(data_dir: Path | None) -> Path | None:
    return MNIST.locate(data_dir)


@register("mnist", summary="handwritten digits, 1x28x28; specified: digit (10), unspecified: style",
          how_to_get=MNIST.how_to_get, locate=locate_mnist)
def load_mnist(data_dir: Path | None, device: torch.device) -> ImageSet:
    """The bundled copy when ``data_dir`` is None; otherwise torchvision's layout under data_dir."""
    return MNIST.load(data_dir, device, name="mnist", label_name="digit")
