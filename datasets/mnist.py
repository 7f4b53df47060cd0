"""MNIST: the copy bundled in datasets/data/mnist, or torchvision's download under another root.

Every file is checked against the SHA-256 of the canonical raw (uncompressed) IDX file before use.
"""
from __future__ import annotations

import gzip
import hashlib
import zlib
from pathlib import Path

import numpy as np
import torch

from datasets.base import DataError, ImageSet, register

BUNDLED_DIR = Path(__file__).resolve().parent / "data" / "mnist"
CHECKSUMS = BUNDLED_DIR / "SHA256SUMS"
FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
         "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
_IDX_DTYPE_UBYTE = 0x08


def expected_checksums() -> dict[str, str]:
    lines = CHECKSUMS.read_text().split("\n")
    return {name: digest for digest, name in (line.split() for line in lines if line.strip())}


def read_verified(directory: Path, name: str, expected_sha256: str) -> bytes:
    """The raw bytes of ``name`` (read from ``name`` or ``name.gz``), checked against its SHA-256."""
    raw, packed = directory / name, directory / f"{name}.gz"
    path = raw if raw.is_file() else packed
    if not path.is_file():
        raise DataError(f"MNIST file missing: {raw} (nor {packed.name})")
    try:
        data = path.read_bytes() if path == raw else gzip.decompress(path.read_bytes())
    except (OSError, EOFError, zlib.error) as error:
        raise DataError(f"MNIST file corrupt: {path} ({error})") from None
    if hashlib.sha256(data).hexdigest() != expected_sha256:
        raise DataError(f"MNIST file corrupt: {path} (SHA-256 does not match {CHECKSUMS.name})")
    return data


def parse_idx(data: bytes) -> np.ndarray:
    """An IDX array of unsigned bytes: magic (0, 0, dtype, ndim), big-endian dims, then the data."""
    if data[2] != _IDX_DTYPE_UBYTE:
        raise ValueError(f"IDX data type {data[2]:#x} is not unsigned byte")
    ndim = data[3]
    shape = tuple(int(d) for d in np.frombuffer(data, dtype=">u4", count=ndim, offset=4))
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)


def verify_directory(directory: Path) -> dict[str, np.ndarray]:
    return {name: parse_idx(read_verified(directory, name, digest))
            for name, digest in expected_checksums().items()}


def download_with_torchvision(root: Path) -> Path:
    """torchvision's own MNIST download into ``root/MNIST/raw`` (a no-op when the files are there)."""
    import torchvision
    raw_dir = root / "MNIST" / "raw"
    try:
        torchvision.datasets.MNIST(str(root), train=True, download=True)
    except Exception as error:  # noqa: BLE001 - torchvision raises many kinds; we report one line
        for name, digest in expected_checksums().items():  # a corrupt file is the likelier cause
            if (raw_dir / name).is_file() or (raw_dir / f"{name}.gz").is_file():
                read_verified(raw_dir, name, digest)
        first_line = (str(error).strip().splitlines() or [type(error).__name__])[0]
        raise DataError(f"MNIST could not be downloaded into {raw_dir}: {first_line}") from None
    return raw_dir


@register("mnist")
def load_mnist(data_dir: Path | None, device: torch.device) -> ImageSet:
    """The bundled copy when ``data_dir`` is None; otherwise torchvision's layout under data_dir."""
    directory = BUNDLED_DIR if data_dir is None else download_with_torchvision(Path(data_dir))
    arrays = verify_directory(directory)

    def images(name: str) -> torch.Tensor:
        pixels = torch.from_numpy(arrays[name].copy()).to(device)
        return pixels.unsqueeze(1).float().div_(255.0)

    def labels(name: str) -> torch.Tensor:
        return torch.from_numpy(arrays[name].astype(np.int64)).to(device)

    return ImageSet(name="mnist",
                    train_images=images("train-images-idx3-ubyte"),
                    train_labels=labels("train-labels-idx1-ubyte"),
                    test_images=images("t10k-images-idx3-ubyte"),
                    test_labels=labels("t10k-labels-idx1-ubyte"),
                    num_classes=10)
