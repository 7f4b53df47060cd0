"""What a dataset is to the suite, and the registry of dataset sources."""
from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Callable

import torch

# Where datasets without a bundled copy are looked for when no --data-dir / $BENCH_DATA_DIR is given:
# datasets/data/<name>/ beside the bundled MNIST (git ignores everything there but mnist/).
DEFAULT_DATA_ROOT = Path(__file__).resolve().parent / "data"
CACHE_ENV = "BENCH_CACHE_DIR"


class DataError(Exception):
    """Missing, corrupt or unobtainable data; the message names the file."""


def first_line(error: BaseException) -> str:
    """The first line of an exception's message (its type name when empty), for DataError's one
    line. bench.errors has the same helper; datasets does not import bench (layering)."""
    return (str(error).strip().splitlines() or [type(error).__name__])[0]


def files_digest(tag: str, paths, length: int) -> str:
    """A hex digest of ``tag`` and the names, sizes and modification times of ``paths``: a cache
    key that changes when a source file is replaced or touched."""
    import hashlib
    digest = hashlib.sha256(f"{tag}\n".encode())
    for path in sorted(paths, key=lambda p: Path(p).name):
        stat = Path(path).stat()
        digest.update(f"{Path(path).name}\t{stat.st_size}\t{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:length]


@dataclasses.dataclass(frozen=True)
class ImageSet:
    """Train and test images as float tensors in [0, 1], shape (N, C, H, W), on one device.

    ``*_labels`` hold the specified factor; the suite uses them only to form pairs and to evaluate.
    ``*_factors`` hold further known factors of each image as integer codes 0..factor_sizes[name]-1
    (probe targets); ``unspecified_factors`` names those z should carry (scored by MIG and SAP).
    """
    name: str
    train_images: torch.Tensor
    train_labels: torch.Tensor
    test_images: torch.Tensor
    test_labels: torch.Tensor
    num_classes: int
    train_factors: dict[str, torch.Tensor] = dataclasses.field(default_factory=dict)
    test_factors: dict[str, torch.Tensor] = dataclasses.field(default_factory=dict)
    factor_sizes: dict[str, int] = dataclasses.field(default_factory=dict)
    unspecified_factors: tuple[str, ...] = ()
    label_name: str = "class"  # what the specified label is called in figures ("digit", ...)

    @property
    def image_shape(self) -> tuple[int, ...]:
        return tuple(self.train_images.shape[1:])

    def head(self, train_size: int | None, test_size: int | None) -> "ImageSet":
        """The first ``train_size`` / ``test_size`` images (None keeps all): a reduced set for tests."""
        return dataclasses.replace(
            self,
            train_images=self.train_images[:train_size], train_labels=self.train_labels[:train_size],
            test_images=self.test_images[:test_size], test_labels=self.test_labels[:test_size],
            train_factors={k: v[:train_size] for k, v in self.train_factors.items()},
            test_factors={k: v[:test_size] for k, v in self.test_factors.items()})


Loader = Callable[[Path | None, torch.device], ImageSet]
Locator = Callable[[Path | None], Path | None]


@dataclasses.dataclass(frozen=True)
class DatasetSource:
    """A registered dataset: how to load it, where its data is, and how to get it when absent.

    ``load(data_dir, device)`` and ``locate(data_dir)`` take the user's data root (--data-dir or
    $BENCH_DATA_DIR) or None for the dataset's default place; ``locate`` returns the folder the data
    would be read from, or None when it is not there (it never downloads or generates).
    """
    name: str
    summary: str
    how_to_get: str
    load: Loader
    locate: Locator

    def __call__(self, data_dir: Path | None, device: torch.device) -> ImageSet:
        return self.load(data_dir, device)


DATASETS: dict[str, DatasetSource] = {}


def register(name: str, *, summary: str, how_to_get: str, locate: Locator) -> Callable[[Loader], Loader]:
    def decorate(load: Loader) -> Loader:
        if name in DATASETS:
            raise ValueError(f"dataset {name!r} registered twice")
        DATASETS[name] = DatasetSource(name, summary, how_to_get, load, locate)
        return load
    return decorate


def data_root(data_dir: Path | None) -> Path:
    """The user's data root, or the default one."""
    return Path(data_dir) if data_dir is not None else DEFAULT_DATA_ROOT


def cache_dir() -> Path:
    """Where converted or generated arrays are kept: $BENCH_CACHE_DIR, else ~/.cache/weakly-disentangled-bench."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "weakly-disentangled-bench"


def save_arrays(path: Path, **arrays) -> None:
    """Write arrays to ``path`` (.npz, uncompressed) atomically: readers see all of it or none."""
    import tempfile

    import numpy as np
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as file:
            np.savez(file, **arrays)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_arrays(path: Path) -> dict | None:
    """The arrays saved by ``save_arrays``, or None when the file is absent or unreadable (then the
    caller rebuilds it)."""
    import zipfile

    import numpy as np
    try:
        with np.load(path, allow_pickle=False) as archive:
            return {name: archive[name] for name in archive.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile):
        return None
