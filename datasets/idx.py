"""Datasets in LeCun's IDX format (MNIST, Fashion-MNIST): a default folder of checksummed files,
or torchvision's download layout ``ROOT/<torchvision class>/raw`` under a user's data root.

Every file is checked against the SHA-256 of the canonical raw (uncompressed) IDX file before use.
"""
from __future__ import annotations

import dataclasses
import gzip
import hashlib
import zlib
from pathlib import Path

import numpy as np
import torch

from datasets.base import DataError, ImageSet, first_line

TRAIN_IMAGES, TRAIN_LABELS = "train-images-idx3-ubyte", "train-labels-idx1-ubyte"
TEST_IMAGES, TEST_LABELS = "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"
FILES = (TRAIN_IMAGES, TRAIN_LABELS, TEST_IMAGES, TEST_LABELS)
_IDX_DTYPE_UBYTE = 0x08


def read_checksum_file(path: Path) -> dict[str, str]:
    """``sha256sum`` output: {file name: digest}."""
    lines = Path(path).read_text().split("\n")
    return {name: digest for digest, name in (line.split() for line in lines if line.strip())}


def parse_idx(data: bytes) -> np.ndarray:
    """An IDX array of unsigned bytes: magic (0, 0, dtype, ndim), big-endian dims, then the data."""
    if len(data) < 4 or data[2] != _IDX_DTYPE_UBYTE:
        raise ValueError("not an IDX array of unsigned bytes")
    ndim = data[3]
    shape = tuple(int(d) for d in np.frombuffer(data, dtype=">u4", count=ndim, offset=4))
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)


@dataclasses.dataclass(frozen=True)
class IdxSource:
    title: str  # as users know it, in messages
    torchvision_class: str  # torchvision.datasets.<this>, which downloads into ROOT/<this>/raw
    checksums: dict[str, str]  # raw file name -> SHA-256
    default_dir: Path  # read when no data root is given
    checksum_origin: str  # what the messages name as the source of the digests
    how_to_get: str
    fallback_dir: Path | None = None  # read when no data root is given and default_dir is absent

    def directory(self, data_dir: Path | None) -> Path:
        if data_dir is not None:
            return Path(data_dir) / self.torchvision_class / "raw"
        if self.fallback_dir is not None and not self.default_dir.is_dir() and self.fallback_dir.is_dir():
            return self.fallback_dir
        return self.default_dir

    def locate(self, data_dir: Path | None) -> Path | None:
        directory = self.directory(data_dir)
        present = all((directory / n).is_file() or (directory / f"{n}.gz").is_file() for n in FILES)
        return directory if present else None

    def read_verified(self, directory: Path, name: str) -> bytes:
        """The raw bytes of ``name`` (read from ``name`` or ``name.gz``), checked against its SHA-256."""
        raw, packed = directory / name, directory / f"{name}.gz"
        path = raw if raw.is_file() else packed
        if not path.is_file():
            raise DataError(f"{self.title} file missing: {raw} (nor {packed.name})")
        try:
            data = path.read_bytes() if path == raw else gzip.decompress(path.read_bytes())
        except (OSError, EOFError, zlib.error) as error:
            raise DataError(f"{self.title} file corrupt: {path} ({error})") from None
        if hashlib.sha256(data).hexdigest() != self.checksums[name]:
            raise DataError(f"{self.title} file corrupt: {path} "
                            f"(SHA-256 does not match {self.checksum_origin})")
        return data

    def verify_directory(self, directory: Path) -> dict[str, np.ndarray]:
        return {name: parse_idx(self.read_verified(directory, name)) for name in FILES}

    def download_with_torchvision(self, root: Path) -> Path:
        """torchvision's own download into ``root/<class>/raw`` (a no-op when the files are there)."""
        import torchvision
        raw_dir = self.directory(root)
        try:
            getattr(torchvision.datasets, self.torchvision_class)(str(root), train=True, download=True)
        except Exception as error:  # noqa: BLE001 - torchvision raises many kinds; we report one line
            for name in FILES:  # a corrupt file is the likelier cause
                if (raw_dir / name).is_file() or (raw_dir / f"{name}.gz").is_file():
                    self.read_verified(raw_dir, name)
            raise DataError(f"{self.title} could not be downloaded into {raw_dir}: "
                            f"{first_line(error)}") from None
        return raw_dir

    def load(self, data_dir: Path | None, device: torch.device, name: str, label_name: str) -> ImageSet:
        """The default folder when ``data_dir`` is None; otherwise torchvision's layout under it."""
        if data_dir is None:
            directory = self.directory(None)
            if not directory.is_dir():
                raise DataError(f"{self.title} data not found: looked in {self.default_dir}; "
                                f"{self.how_to_get}")
        else:
            directory = self.download_with_torchvision(Path(data_dir))
        arrays = self.verify_directory(directory)

        def images(file: str) -> torch.Tensor:
            pixels = torch.from_numpy(arrays[file].copy()).to(device)
            return pixels.unsqueeze(1).float().div_(255.0)

        def labels(file: str) -> torch.Tensor:
            return torch.from_numpy(arrays[file].astype(np.int64)).to(device)

        return ImageSet(name=name, train_images=images(TRAIN_IMAGES), train_labels=labels(TRAIN_LABELS),
                        test_images=images(TEST_IMAGES), test_labels=labels(TEST_LABELS),
                        num_classes=10, label_name=label_name)
