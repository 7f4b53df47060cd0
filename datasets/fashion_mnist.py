"""Fashion-MNIST (Xiao et al. 2017): Debian's ``dataset-fashion-mnist`` files in
/usr/share/datasets/fashion-mnist (``apt-get install dataset-fashion-mnist``), or torchvision's
download under another root (ROOT/FashionMNIST/raw). Without a root, when Debian's folder is absent,
datasets/data/FashionMNIST/raw is read: where ``python -m bench datasets --download fashion-mnist``
puts the files when no --data-dir is given."""
from __future__ import annotations

from pathlib import Path

import torch

from datasets.base import DEFAULT_DATA_ROOT, ImageSet, register
from datasets.idx import IdxSource

DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")
DOWNLOAD_DIR = DEFAULT_DATA_ROOT / "FashionMNIST" / "raw"  # read without a root when DEBIAN_DIR is absent
# SHA-256 of the raw (uncompressed) files, computed from Debian's package
# dataset-fashion-mnist 0.0~git20200523.55506a9-1 (the zalandoresearch release).
CHECKSUMS = {
    "t10k-images-idx3-ubyte": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
    "t10k-labels-idx1-ubyte": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
    "train-images-idx3-ubyte": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
    "train-labels-idx1-ubyte": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
}
# Bounds on the published .gz files for downloads (twice the sizes the release's README gives:
# 26 MB, 29 KB, 4.3 MB, 5.1 KB; exact sizes are not published).
AT_MOST_BYTES = {
    "train-images-idx3-ubyte.gz": 52_000_000,
    "train-labels-idx1-ubyte.gz": 58_000,
    "t10k-images-idx3-ubyte.gz": 8_600_000,
    "t10k-labels-idx1-ubyte.gz": 10_200,
}
FASHION_MNIST = IdxSource(
    title="Fashion-MNIST", torchvision_class="FashionMNIST", checksums=CHECKSUMS, default_dir=DEBIAN_DIR,
    checksum_origin="the Fashion-MNIST release", fallback_dir=DOWNLOAD_DIR,
    how_to_get=f"apt-get install dataset-fashion-mnist (into {DEBIAN_DIR}), or --data-dir ROOT "
               "to download into ROOT/FashionMNIST/raw with torchvision, or python -m bench datasets "
               "--download fashion-mnist [--data-dir ROOT] (without a root: into "
               "datasets/data/FashionMNIST/raw, read when the Debian folder is absent)")


def locate_fashion_mnist(data_dir: Path | None) -> Path | None:
    return FASHION_MNIST.locate(data_dir)


@register("fashion-mnist", summary="clothing photos, 1x28x28; specified: article (10), unspecified: style",
          how_to_get=FASHION_MNIST.how_to_get, locate=locate_fashion_mnist)
def load_fashion_mnist(data_dir: Path | None, device: torch.device) -> ImageSet:
    return FASHION_MNIST.load(data_dir, device, name="fashion-mnist", label_name="article")
