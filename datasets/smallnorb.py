"""smallNORB (LeCun, Huang & Bottou, CVPR 2004): photographs of 50 toys, our stand-in for the paper's
LineMod (object identity vs viewpoint).

Source: https://cs.nyu.edu/~ylclab/data/norb-v1.0-small/ publishes six files, gzipped (``.mat.gz``):
``smallnorb-5x46789x9x18x6x2x96x96-training-{dat,cat,info}.mat`` and
``smallnorb-5x01235x9x18x6x2x96x96-testing-{dat,cat,info}.mat``. Put them, gzipped or not, in
``<data root>/smallnorb/`` (data root: --data-dir, $BENCH_DATA_DIR, or datasets/data/); when both
``X.mat`` and ``X.mat.gz`` are there the plain one is read. ``python -m bench datasets --download
smallnorb`` (datasets/download.py) fetches the six ``.mat.gz`` from that page, checks each against
``PUBLISHED_GZ`` (size and SHA-256) and puts them there.

File format ("binary matrix", described on that page): a little-endian int32 magic number giving the
element type (0x1E3D4C55 uint8 "byte matrix", 0x1E3D4C54 int32 "integer matrix"; also 0x1E3D4C51
float32, 0x1E3D4C53 float64, 0x1E3D4C56 int16, and 0x1E3D4C52 "packed", which we do not read), an
int32 number of dimensions ndim, then max(ndim, 3) int32 sizes (the unused ones are 1), then the
elements in C order. Each split holds 24,300 examples:

* ``dat``: uint8, 24300 x 2 x 96 x 96 -- a stereo pair per example; we keep camera 0 (the left one).
* ``cat``: int32, 24300 -- category 0..4 (four-legged animal, human figure, airplane, truck, car).
* ``info``: int32, 24300 x 4 -- instance 0..9, elevation 0..8, azimuth 0, 2, ..., 34, lighting 0..5.

This layout was checked against tensorflow_datasets' smallnorb builder (which also halves azimuth)
and several independent PyTorch loaders (cat headers carry two padding sizes, info headers one).

The ImageSet: 1 x 96 x 96 images; the specified label is the object's identity, category * 10 +
instance (``num_classes`` 50). The published split puts instances 4, 6, 7, 8, 9 of each category in
training and 0, 1, 2, 3, 5 in testing, so train and test identities are DISJOINT: the test labels are
25 classes never seen in training (another part of the suite handles that for the probes). Factors:
``category`` (5, shared by both splits, an extra probe target), ``elevation`` (9), ``azimuth`` (18,
code = published value / 2) and ``lighting`` (6); z should carry azimuth, elevation and lighting.

Checksums: files of exactly a published size are checked against published digests --
SHA-256 of each ``.mat.gz`` as downloaded (size and digest from tensorflow_datasets'
``url_checksums/smallnorb.txt``), and MD5 of each uncompressed ``.mat`` (from the loader in
github.com/JakobHavtorn/hvae-oodd, ``oodd/datasets/small_norb.py``; other loaders list the same
values), whichever form is present. A file of any other size cannot be the published one: it is
read when its structure is sound (magic, sizes, byte count, value ranges -- truncated downloads fail
here) so that tests can use tiny fixtures, and every load of such data warns with
``UnverifiedSmallNorbWarning``.

The six files are converted once into a compact uint8 array file (about 450 MB for the full set) in
``cache_dir()``, keyed by a digest of the source files' names, sizes and modification times; any
change to a file rebuilds it (and removes the cache built from that folder's older files).
"""
from __future__ import annotations

import dataclasses
import gzip
import hashlib
import math
import warnings
import zlib
from pathlib import Path

import numpy as np
import torch

from datasets.base import (DataError, ImageSet, cache_dir, data_root, files_digest, first_line, load_arrays,
                           register, save_arrays)

TITLE = "smallNORB"
PAGE = "https://cs.nyu.edu/~ylclab/data/norb-v1.0-small/"
SUBDIR = "smallnorb"
SPLITS = {"train": "smallnorb-5x46789x9x18x6x2x96x96-training",
          "test": "smallnorb-5x01235x9x18x6x2x96x96-testing"}
ROLES = ("dat", "cat", "info")
FILES = tuple(f"{prefix}-{role}.mat" for prefix in SPLITS.values() for role in ROLES)
HOW_TO_GET = (f"download the six smallnorb-*-{{training,testing}}-{{dat,cat,info}}.mat.gz files from {PAGE} "
              f"into {SUBDIR}/ under the data root (--data-dir, $BENCH_DATA_DIR, or datasets/data/); "
              "gzipped or not; or let python -m bench datasets --download smallnorb fetch and check them")

# Element types of the binary matrix format, by magic number.
BYTE_MATRIX, INTEGER_MATRIX, PACKED_MATRIX = 0x1E3D4C55, 0x1E3D4C54, 0x1E3D4C52
MAGIC_DTYPES = {0x1E3D4C51: np.dtype("<f4"), 0x1E3D4C53: np.dtype("<f8"), INTEGER_MATRIX: np.dtype("<i4"),
                BYTE_MATRIX: np.dtype("u1"), 0x1E3D4C56: np.dtype("<i2")}
MAGIC_NAMES = {0x1E3D4C51: "single precision matrix", PACKED_MATRIX: "packed matrix",
               0x1E3D4C53: "double precision matrix", INTEGER_MATRIX: "integer matrix",
               BYTE_MATRIX: "byte matrix", 0x1E3D4C56: "short matrix"}
ROLE_MAGIC = {"dat": BYTE_MATRIX, "cat": INTEGER_MATRIX, "info": INTEGER_MATRIX}

IMAGE_SIZE = 96
PUBLISHED_EXAMPLES = 24300
# Sizes of the uncompressed published files, from the format: header + elements.
RAW_SIZES = {"dat": 24 + PUBLISHED_EXAMPLES * 2 * IMAGE_SIZE * IMAGE_SIZE,
             "cat": 20 + PUBLISHED_EXAMPLES * 4,
             "info": 20 + PUBLISHED_EXAMPLES * 4 * 4}
# The .mat.gz files as downloaded: (size in bytes, SHA-256), from tensorflow_datasets'
# url_checksums/smallnorb.txt (also datasets/smallnorb/checksums.tsv).
PUBLISHED_GZ = {
    "smallnorb-5x46789x9x18x6x2x96x96-training-dat.mat.gz":
        (131896188, "5ffd6272a07d32695ee1082a26a41a93a37aab8c28da047f8c34ed348d214873"),
    "smallnorb-5x46789x9x18x6x2x96x96-training-cat.mat.gz":
        (348, "2784e542c1922060691090952b6cd6278879a216c90f81476f0f00256d42cdaa"),
    "smallnorb-5x46789x9x18x6x2x96x96-training-info.mat.gz":
        (71052, "de7eb932ebe7a4ee16217fead60660d0eb3d23632c2f4d1c51f88c501c17bf32"),
    "smallnorb-5x01235x9x18x6x2x96x96-testing-dat.mat.gz":
        (130799817, "cf7104eed3e51174d2f65b66d1e5878b9da233b886f161b0d88f4510ba2c7474"),
    "smallnorb-5x01235x9x18x6x2x96x96-testing-cat.mat.gz":
        (347, "ecaf6d5bb8c3bc5eab9cf0258f6d2198dd474e016e374836fc097f2e5ff509ff"),
    "smallnorb-5x01235x9x18x6x2x96x96-testing-info.mat.gz":
        (10428, "16adf314226327ee006d1a44db8cfef52773c06c829951d5653a9f6f310248a2"),
}
# MD5 of the uncompressed .mat files (both cat files are identical), as listed by
# JakobHavtorn/hvae-oodd oodd/datasets/small_norb.py.
PUBLISHED_RAW_MD5 = {
    "smallnorb-5x46789x9x18x6x2x96x96-training-dat.mat": "8138a0902307b32dfa0025a36dfa45ec",
    "smallnorb-5x46789x9x18x6x2x96x96-training-cat.mat": "fd5120d3f770ad57ebe620eb61a0b633",
    "smallnorb-5x46789x9x18x6x2x96x96-training-info.mat": "19faee774120001fc7e17980d6960451",
    "smallnorb-5x01235x9x18x6x2x96x96-testing-dat.mat": "e9920b7f7b2869a8f1a12e945b2c166c",
    "smallnorb-5x01235x9x18x6x2x96x96-testing-cat.mat": "fd5120d3f770ad57ebe620eb61a0b633",
    "smallnorb-5x01235x9x18x6x2x96x96-testing-info.mat": "7c5b871cc69dcadec1bf6a18141f5edc",
}

NUM_CATEGORIES, NUM_INSTANCES = 5, 10
FACTOR_SIZES = {"category": NUM_CATEGORIES, "elevation": 9, "azimuth": 18, "lighting": 6}
UNSPECIFIED = ("azimuth", "elevation", "lighting")
CACHE_VERSION = 1  # bump when the cached arrays change meaning


class UnverifiedSmallNorbWarning(UserWarning):
    """The files read are not of the published sizes, so no published checksum could be checked."""


class TruncatedMatrix(ValueError):
    """Fewer bytes than the header promises."""

    def __init__(self, expected: int, found: int, at_least: bool = False):
        self.expected, self.found, self.at_least = expected, found, at_least
        super().__init__(f"truncated: expected {'at least ' if at_least else ''}{expected} bytes, found {found}")


@dataclasses.dataclass(frozen=True)
class MatrixHeader:
    magic: int
    shape: tuple[int, ...]
    offset: int  # where the elements start

    @property
    def dtype(self) -> np.dtype:
        return MAGIC_DTYPES[self.magic]

    @property
    def nbytes(self) -> int:
        """The whole file's length: header and elements."""
        return self.offset + math.prod(self.shape) * self.dtype.itemsize


def magic_text(magic: int) -> str:
    name = MAGIC_NAMES.get(magic)
    return f"0x{magic:08X}" + (f" ({name})" if name else "")


def read_norb_header(data: bytes) -> MatrixHeader:
    """The header of a binary matrix: magic, ndim, then max(ndim, 3) sizes, all little-endian int32."""
    if len(data) < 8:
        raise TruncatedMatrix(20, len(data), at_least=True)
    magic = int.from_bytes(data[0:4], "little")
    ndim = int.from_bytes(data[4:8], "little", signed=True)
    if magic == PACKED_MATRIX:
        raise ValueError(f"magic {magic_text(magic)} is not supported")
    if magic not in MAGIC_DTYPES:
        raise ValueError(f"unknown magic number 0x{magic:08X}")
    if not 0 <= ndim <= 32:
        raise ValueError(f"implausible number of dimensions {ndim}")
    offset = 8 + 4 * max(ndim, 3)
    if len(data) < offset:
        raise TruncatedMatrix(offset, len(data), at_least=True)
    shape = tuple(int(d) for d in np.frombuffer(data, dtype="<i4", count=ndim, offset=8))
    if any(d < 0 for d in shape):
        raise ValueError(f"negative size in shape {shape}")
    return MatrixHeader(magic, shape, offset)


def parse_norb_matrix(data: bytes) -> np.ndarray:
    """The array in a binary matrix file's bytes (a read-only view of ``data``, native byte order for
    one-byte types). Raises ``TruncatedMatrix`` (a ValueError) when bytes are missing and ValueError
    for any other malformation, including trailing bytes."""
    header = read_norb_header(data)
    if len(data) < header.nbytes:
        raise TruncatedMatrix(header.nbytes, len(data))
    if len(data) > header.nbytes:
        raise ValueError(f"{len(data) - header.nbytes} bytes after the {header.nbytes} the header describes")
    count = math.prod(header.shape)
    return np.frombuffer(data, dtype=header.dtype, count=count, offset=header.offset).reshape(header.shape)


def shape_text(shape) -> str:
    return " x ".join(str(d) for d in shape) if len(shape) else "a scalar"


def folder(data_dir: Path | None) -> Path:
    return data_root(data_dir) / SUBDIR


def source_paths(directory: Path) -> tuple[dict[str, Path], list[str]]:
    """{file name: the path to read (plain preferred over .gz)} and the names found in neither form."""
    found, missing = {}, []
    for name in FILES:
        plain, packed = directory / name, directory / f"{name}.gz"
        if plain.is_file():
            found[name] = plain
        elif packed.is_file():
            found[name] = packed
        else:
            missing.append(name)
    return found, missing


def locate_smallnorb(data_dir: Path | None) -> Path | None:
    directory = folder(data_dir)
    return directory if not source_paths(directory)[1] else None


def read_source(path: Path) -> bytes:
    """The bytes of a source file as stored (the one place that reads them)."""
    try:
        return path.read_bytes()
    except OSError as error:
        raise DataError(f"{TITLE} file unreadable: {path} ({first_line(error)})") from None


def unpack(path: Path, stored: bytes) -> bytes:
    """The uncompressed contents of a source file stored as ``stored``."""
    if path.suffix != ".gz":
        return stored
    try:
        return gzip.decompress(stored)
    except (OSError, EOFError, zlib.error) as error:
        raise DataError(f"{TITLE} file corrupt: {path} (not a valid gzip file: {first_line(error)})") from None


def verify_checksum(path: Path, name: str, stored: bytes, data: bytes) -> bool:
    """Check source file ``name`` (read from ``path``: ``stored`` as stored, ``data`` uncompressed)
    against the published digests that apply to its sizes; True when one applied (and matched),
    False when none did."""
    checked = False
    if path.suffix == ".gz":
        size, sha256 = PUBLISHED_GZ[f"{name}.gz"]
        if len(stored) == size:
            if hashlib.sha256(stored).hexdigest() != sha256:
                raise DataError(f"{TITLE} file corrupt: {path} (SHA-256 does not match the published "
                                f"download's, as listed by tensorflow_datasets)")
            checked = True
    role = name.rsplit("-", 1)[1].removesuffix(".mat")
    if len(data) == RAW_SIZES[role]:
        if hashlib.md5(data).hexdigest() != PUBLISHED_RAW_MD5[name]:
            where = "its uncompressed contents" if path.suffix == ".gz" else "the file"
            raise DataError(f"{TITLE} file corrupt: {path} (MD5 of {where} does not match the published "
                            f"{name}'s)")
        checked = True
    return checked


def read_matrix(path: Path, role: str, data: bytes) -> np.ndarray:
    """The array of one source file, checked for its role's magic and shape; DataErrors name ``path``."""
    after = " after decompression" if path.suffix == ".gz" else ""
    expected_magic = ROLE_MAGIC[role]
    if len(data) >= 4 and int.from_bytes(data[0:4], "little") != expected_magic:
        found = int.from_bytes(data[0:4], "little")
        raise DataError(f"{TITLE} file has the wrong magic number: {path} "
                        f"(expected {magic_text(expected_magic)}, found {magic_text(found)})")
    try:
        header = read_norb_header(data)
        want = {"dat": ("N", 2, IMAGE_SIZE, IMAGE_SIZE), "cat": ("N",), "info": ("N", 4)}[role]
        if len(header.shape) != len(want) or any(w != "N" and w != d for w, d in zip(want, header.shape)):
            raise DataError(f"{TITLE} file has the wrong shape: {path} "
                            f"(expected {shape_text(want)}, found {shape_text(header.shape)})")
        return parse_norb_matrix(data)
    except TruncatedMatrix as error:
        at_least = "at least " if error.at_least else ""
        raise DataError(f"{TITLE} file truncated: {path} (expected {at_least}{error.expected} bytes{after}, "
                        f"found {error.found})") from None
    except ValueError as error:
        raise DataError(f"{TITLE} file corrupt: {path} ({first_line(error)})") from None


def check_range(path: Path, what: str, values: np.ndarray, allowed: np.ndarray) -> None:
    bad = ~np.isin(values, allowed)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        shown = [str(v) for v in allowed] if len(allowed) <= 4 else [*map(str, allowed[:3]), "...", str(allowed[-1])]
        listed = ", ".join(shown)
        raise DataError(f"{TITLE} file corrupt: {path} ({what} must be one of {listed}; "
                        f"found {int(values[row])} in example {row})")


def convert_split(paths: dict[str, Path], split: str, progress) -> tuple[dict[str, np.ndarray], bool]:
    """One split's compact arrays ({split}_images, {split}_category, ...) and whether every file's
    published checksum was checked."""
    matrices, verified = {}, True
    for role in ROLES:
        name = f"{SPLITS[split]}-{role}.mat"
        path = paths[name]
        stored = read_source(path)
        data = unpack(path, stored)
        verified &= verify_checksum(path, name, stored, data)
        matrix = read_matrix(path, role, data)
        if role == "dat":
            matrix = matrix[:, 0].copy()  # camera 0, the left image: N x 96 x 96
        else:
            matrix = matrix.astype(np.int64)
        matrices[role] = matrix
        progress.update(len(stored))
        del stored, data
    counts = {role: len(matrices[role]) for role in ROLES}
    if len(set(counts.values())) != 1:
        where = paths[f"{SPLITS[split]}-dat.mat"].parent
        raise DataError(f"{TITLE} {split} files disagree on the number of examples: "
                        + ", ".join(f"{role} has {count}" for role, count in counts.items()) + f" (in {where})")
    cat_path, info_path = paths[f"{SPLITS[split]}-cat.mat"], paths[f"{SPLITS[split]}-info.mat"]
    category, info = matrices["cat"], matrices["info"]
    check_range(cat_path, "category", category, np.arange(NUM_CATEGORIES))
    check_range(info_path, "instance", info[:, 0], np.arange(NUM_INSTANCES))
    check_range(info_path, "elevation", info[:, 1], np.arange(FACTOR_SIZES["elevation"]))
    check_range(info_path, "azimuth", info[:, 2], np.arange(0, 2 * FACTOR_SIZES["azimuth"], 2))
    check_range(info_path, "lighting", info[:, 3], np.arange(FACTOR_SIZES["lighting"]))
    arrays = {f"{split}_images": matrices["dat"],
              f"{split}_category": category.astype(np.uint8),
              f"{split}_instance": info[:, 0].astype(np.uint8),
              f"{split}_elevation": info[:, 1].astype(np.uint8),
              f"{split}_azimuth": (info[:, 2] // 2).astype(np.uint8),
              f"{split}_lighting": info[:, 3].astype(np.uint8)}
    return arrays, verified


def cache_paths(directory: Path, paths: dict[str, Path]) -> tuple[Path, str]:
    """The cache file for these sources, and the glob matching every cache built from ``directory``."""
    where = hashlib.sha256(str(directory.resolve()).encode()).hexdigest()[:12]
    key = files_digest(f"smallnorb cache format {CACHE_VERSION}", paths.values(), 16)
    return cache_dir() / f"smallnorb-{where}-{key}.npz", f"smallnorb-{where}-*.npz"


CACHE_KEYS = tuple(f"{split}_{field}" for split in SPLITS
                   for field in ("images", "category", "instance", "elevation", "azimuth", "lighting"))


def cache_usable(arrays: dict | None) -> bool:
    if arrays is None or any(k not in arrays for k in CACHE_KEYS + ("verified",)):
        return False
    for split in SPLITS:
        n = len(arrays[f"{split}_images"])
        if arrays[f"{split}_images"].shape[1:] != (IMAGE_SIZE, IMAGE_SIZE) or any(
                arrays[k].shape != (n,) for k in CACHE_KEYS if k.startswith(split) and not k.endswith("images")):
            return False
    return True


def convert(directory: Path, paths: dict[str, Path], cache: Path, stale_glob: str) -> dict[str, np.ndarray]:
    from tqdm.auto import tqdm
    total = sum(path.stat().st_size for path in paths.values())
    arrays: dict[str, np.ndarray] = {}
    verified = True
    with tqdm(total=total, unit="B", unit_scale=True, desc=f"{TITLE}: converting {directory}",
              disable=total < 50_000_000, leave=False) as progress:
        for split in SPLITS:
            split_arrays, split_verified = convert_split(paths, split, progress)
            arrays.update(split_arrays)
            verified &= split_verified
    arrays["verified"] = np.array(verified)
    save_arrays(cache, **arrays)
    for old in cache.parent.glob(stale_glob):
        if old != cache:
            old.unlink(missing_ok=True)
    return arrays


@register("smallnorb", summary="toy photos, 1x96x96 (left camera); specified: object identity (50, train and "
                               "test objects disjoint), unspecified: azimuth, elevation, lighting",
          how_to_get=HOW_TO_GET, locate=locate_smallnorb)
def load_smallnorb(data_dir: Path | None, device: torch.device) -> ImageSet:
    """smallNORB from ``<data root>/smallnorb``, converted once into the cache (see the module doc)."""
    directory = folder(data_dir)
    paths, missing = source_paths(directory)
    if missing:
        absent = "no such folder" if not directory.is_dir() else \
            "missing " + ", ".join(f"{name}(.gz)" for name in missing)
        raise DataError(f"{TITLE} data not found: looked in {directory} ({absent}); {HOW_TO_GET}")
    cache, stale_glob = cache_paths(directory, paths)
    arrays = load_arrays(cache)
    if not cache_usable(arrays):
        arrays = convert(directory, paths, cache, stale_glob)
    if not bool(arrays["verified"]):
        warnings.warn(f"{TITLE} files in {directory} are not of the published sizes, so no published "
                      "checksum was checked", UnverifiedSmallNorbWarning, stacklevel=2)

    def images(split: str) -> torch.Tensor:
        pixels = torch.from_numpy(np.ascontiguousarray(arrays[f"{split}_images"])).to(device)
        return pixels.unsqueeze(1).float().div_(255.0)

    def codes(split: str, field: str) -> torch.Tensor:
        return torch.from_numpy(arrays[f"{split}_{field}"].astype(np.int64)).to(device)

    def identity(split: str) -> torch.Tensor:
        return codes(split, "category") * NUM_INSTANCES + codes(split, "instance")

    return ImageSet(name="smallnorb",
                    train_images=images("train"), train_labels=identity("train"),
                    test_images=images("test"), test_labels=identity("test"),
                    num_classes=NUM_CATEGORIES * NUM_INSTANCES,
                    train_factors={f: codes("train", f) for f in FACTOR_SIZES},
                    test_factors={f: codes("test", f) for f in FACTOR_SIZES},
                    factor_sizes=dict(FACTOR_SIZES), unspecified_factors=UNSPECIFIED)
