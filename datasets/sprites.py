"""2D Sprites (Reed, Zhang, Zhang & Lee, "Deep Visual Analogy-Making", NIPS 2015): 60x60 RGB frames of
animated game characters. Specified factor: the character; the suite pairs two frames of one character.

Where the files are looked for
    ``ROOT/sprites`` (ROOT = --data-dir, $BENCH_DATA_DIR, or datasets/data/), with the files directly
    in it, or one level down in ``ROOT/sprites/sprites/``, or in ``ROOT/sprites/data/sprites/`` (the
    tarball nips2015-analogy-data.tar.gz extracts to ``data/sprites/``, beside ``data/cars/`` and
    ``data/shapes48.mat``, which are not used). The first of these holding ``sprites_splits.mat`` wins.

The layout this loader assumes (what is read from public loaders, and what is inferred)
    * ``sprites_splits.mat`` holds ``trainidx``, ``validx`` and ``testidx``: 1-based character ids
      (MATLAB doubles; any shape, flattened). Public Python loaders read it with scipy.io.loadmat, so it
      is taken to be a MATLAB v5 file; an HDF5 (v7.3) file with the same three datasets is read too.
      The real split is taken to be 500 / 72 / 100 of 672 characters (the sizes one public loader uses
      for its own split; not checked: any sizes are accepted).
    * One file per character, ``sprites_<n>.mat``, MATLAB v7.3 (HDF5), read with h5py. Character id
      k is file ``sprites_<k-1>.mat`` when the folder holds a ``sprites_0.mat`` (inferred: one public
      loader opens ``sprites_{id-1}.mat``, another mentions ``sprites_0.mat``), else ``sprites_<k>.mat``.
    * In each such file ``sprites`` is a MATLAB cell array of animations, stored as an HDF5 dataset of
      object references (h5py shape (21, 1) in the real data; any shape is flattened in order); each
      reference points at a dataset of h5py shape (frames, 10800): MATLAB's 10800 x frames matrix of
      doubles in [0, 1], one frame per column, each 60 x 60 x 3 (rows, columns, RGB) flattened in
      column-major (Fortran) order. Frame counts differ between animations (inferred from the public
      loaders, which read each animation's own count); the real data has 21 animations per character.
      Public loaders describe the first 20 as 5 actions x 4 viewpoints and the 21st as an extra one;
      this loader keeps all of them: "action" is the animation index, 0..A-1, whatever it depicts.
    * ``labels`` holds the character's attributes, at least six numbers (seven in the real data), taken
      in the order body, sex, hair, armour, arms, greaves (assumed: the order of the paper's list as
      recalled, not confirmed by any source read; the files do not name them). The seventh, the
      weapon (its place is confirmed by two loaders), is not used: public loaders note that whether
      the weapon shows depends on the animation. Codes are the ranks of the distinct values
      seen among the loaded characters (0..n-1), so 0- and 1-based labels give the same codes.
    * ``masks`` (per-frame alpha masks) is not read.
    Sources read (not copied): kridgeway/f-statistic-loss-nips-2018 data/sprites.py and
    models/sprite_model.py (h5py: f[f['sprites'][i][0]] is (frames, 10800), reshape (3,60,60) then
    swap axes; labels reshape (-1, 7), the last being the weapon; 21 poses, 4 per action); an
    edflow-based dataset module (h5py: data['sprites'][i, 0], 21 animations, splits via
    scipy.io.loadmat, trainidx - 1); two versions of a visual-analogy-tensorflow loader using
    hdf5storage (reshape (60, 60, 3, n) order='F'; labels[6] the weapon; files sprites_{id} in one,
    sprites_{id-1} in the other); carpedm20/visual-analogy-tensorflow download.sh (the address); and
    nmichlo/disent (the tarball's MD5, and its contents: data/cars, data/sprites, data/shapes48.mat).

Splits
    train = every frame of the ``trainidx`` characters, test = every frame of the ``testidx``
    characters, in the order the ids are listed, then animation, then frame. The ``validx``
    characters are not loaded (they only count towards the number of characters). Labels are class
    indices id - 1 over all characters (``num_classes`` = number of ids in the three lists, which must
    be exactly 1..C), so train and test identities are disjoint.

Factors
    ``body``, ``sex``, ``hair``, ``armour``, ``arms``, ``greaves`` (per character), ``action`` (the
    animation index) and ``frame`` (the frame's index within its animation: a frame code is comparable
    only within one action). ``unspecified_factors = ("action",)``.

Checks
    No checksum of the extracted files is published, so the loader verifies structure, not content:
    the splits' names and ids, every listed character file, each file's HDF5 structure, frame sizes
    and shapes, and values in [0, 1]. For the tarball itself an MD5 is published by a third party (the
    disent library, nmichlo/disent, for its Cars3D loader; not by the authors): see ``TARBALL_MD5``.
    The loader never sees the tarball; ``python -m bench datasets --download sprites``
    (datasets/download.py) checks it against that MD5 before extracting, then runs ``check_folder``
    (the splits, the ids, every listed character file present, the first one read in full).

Cache
    The first load converts the frames once into uint8 arrays (int16 codes) saved with ``save_arrays``
    in ``cache_dir()`` as ``sprites-<digest>.npz``; the digest covers the names, sizes and
    modification times of ``sprites_splits.mat`` and every ``sprites_<n>.mat`` in the folder, so
    replacing or touching a file builds a new cache. Later loads read only the cache (no .mat file is
    opened). Each frame takes 10,800 bytes in the cache and 4x that once loaded as float32.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
import torch

from datasets.base import (DataError, ImageSet, cache_dir, data_root, files_digest, first_line, load_arrays,
                           register, save_arrays)

FOLDER = "sprites"
SUBFOLDERS = (".", "sprites", "data/sprites")  # under ROOT/sprites, tried in this order
SPLITS_FILE = "sprites_splits.mat"
SPLIT_NAMES = ("trainidx", "validx", "testidx")
REQUIRED_SPLITS = ("trainidx", "testidx")
CHARACTER_FILE = re.compile(r"sprites_(\d+)\.mat")
HEIGHT = WIDTH = 60
CHANNELS = 3
FRAME_SIZE = HEIGHT * WIDTH * CHANNELS  # 10800
ATTRIBUTES = ("body", "sex", "hair", "armour", "arms", "greaves")
FACTORS = ATTRIBUTES + ("action", "frame")
CACHE_FORMAT = 1  # part of the cache digest: bump when the cached arrays change meaning
VALUE_TOLERANCE = 1e-3  # frames may stray this far outside [0, 1] (rounding) before they are refused

TARBALL = "nips2015-analogy-data.tar.gz"
TARBALL_URL = f"http://www.scottreed.info/files/{TARBALL}"
# MD5 of the whole tarball as listed by the disent library (nmichlo/disent, Cars3D's "full" uri_hash);
# third-party, not from the authors; checked by --download (datasets/download.py), not by this loader
# (it reads the extracted files).
TARBALL_MD5 = "4e866a7919c1beedf53964e6f7a23686"
HOW_TO_GET = (f"download {TARBALL} (Reed et al., Deep Visual Analogy-Making, NIPS 2015: {TARBALL_URL}; "
              f"MD5 {TARBALL_MD5} as listed by the disent library), extract it and put its data/sprites "
              f"folder at {FOLDER}/ under the data root (--data-dir, $BENCH_DATA_DIR, or datasets/data/); "
              "or let python -m bench datasets --download sprites do all of that")


def _candidates(data_dir: Path | None) -> list[Path]:
    base = data_root(data_dir) / FOLDER
    return [base if sub == "." else base / sub for sub in SUBFOLDERS]


def find_splits_folder(base: Path) -> Path | None:
    """The first of ``base``, ``base/sprites`` and ``base/data/sprites`` holding ``sprites_splits.mat``."""
    for sub in SUBFOLDERS:
        folder = base if sub == "." else base / sub
        if (folder / SPLITS_FILE).is_file():
            return folder
    return None


def locate_sprites(data_dir: Path | None) -> Path | None:
    """The folder holding ``sprites_splits.mat`` (ROOT/sprites, or sprites/ or data/sprites/ below it)."""
    return find_splits_folder(data_root(data_dir) / FOLDER)


def _find_folder(data_dir: Path | None) -> Path:
    folder = locate_sprites(data_dir)
    if folder is not None:
        return folder
    base = _candidates(data_dir)[0]
    if not base.is_dir():
        raise DataError(f"Sprites data not found: looked in {base}; {HOW_TO_GET}")
    raise DataError(f"Sprites file missing: {base / SPLITS_FILE} "
                    f"(nor in {' or '.join(sub + '/' for sub in SUBFOLDERS[1:])} below it)")


def _character_files(folder: Path) -> dict[int, Path]:
    """{n: path} for every ``sprites_<n>.mat`` in the folder."""
    files = {}
    with os.scandir(folder) as entries:
        for entry in entries:
            match = CHARACTER_FILE.fullmatch(entry.name)
            if match and entry.is_file():
                files[int(match.group(1))] = Path(entry.path)
    return files


def read_splits(path: Path) -> dict[str, np.ndarray]:
    """The 1-based character ids of each split present in ``sprites_splits.mat`` (int64, flattened)."""
    import h5py
    raw: dict[str, np.ndarray] = {}
    try:
        if h5py.is_hdf5(path):
            with h5py.File(path, "r") as file:
                raw = {name: np.asarray(file[name][()]) for name in SPLIT_NAMES if name in file}
        else:
            import scipy.io
            contents = scipy.io.loadmat(path, variable_names=list(SPLIT_NAMES))
            raw = {name: np.asarray(contents[name]) for name in SPLIT_NAMES if name in contents}
    except Exception as error:  # noqa: BLE001 - h5py and scipy raise many kinds; we report one line
        raise DataError(f"Sprites file corrupt: {path} ({first_line(error)})") from None
    lacking = [name for name in REQUIRED_SPLITS if name not in raw]
    if lacking:
        raise DataError(f"Sprites file {path} lacks {' and '.join(lacking)} "
                        f"(expected {', '.join(SPLIT_NAMES)}: 1-based character ids; found "
                        f"{', '.join(sorted(raw)) or 'none of them'})")
    splits = {}
    for name, values in raw.items():
        values = values.reshape(-1)
        if values.dtype.kind not in "iuf" or not np.all(np.isfinite(values)) \
                or not np.array_equal(values, np.round(values)):
            raise DataError(f"Sprites file {path}: {name} is not a list of integer character ids "
                            f"(found dtype {values.dtype})")
        splits[name] = values.astype(np.int64)
    for name in REQUIRED_SPLITS:
        if splits[name].size == 0:
            raise DataError(f"Sprites file {path}: {name} is empty")
    return splits


def _check_ids(splits: dict[str, np.ndarray], path: Path) -> int:
    """The number of characters C; the ids of all splits together must be 1..C, each once."""
    every = np.concatenate([splits[name] for name in SPLIT_NAMES if name in splits])
    count = every.size
    bad = every[(every < 1) | (every > count)]
    if bad.size:
        raise DataError(f"Sprites file {path}: character ids out of range: expected 1..{count} "
                        f"(the number of ids listed), found {int(bad[0])}")
    values, counts = np.unique(every, return_counts=True)
    if np.any(counts > 1):
        raise DataError(f"Sprites file {path}: character id {int(values[counts > 1][0])} "
                        "is listed twice (the splits must be disjoint)")
    return count


def _read_character(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, int]:
    """One character file: images uint8 (n, 3, 60, 60), action (n,), frame (n,), labels (k,) float, and
    the number of animations."""
    import h5py
    try:
        with h5py.File(path, "r") as file:
            for key in ("sprites", "labels"):
                if key not in file:
                    raise DataError(f"Sprites file {path} lacks '{key}' "
                                    f"(found {', '.join(sorted(file.keys())) or 'nothing'})")
            labels = np.asarray(file["labels"][()], dtype=np.float64).reshape(-1)
            cell = file["sprites"]
            is_dataset = isinstance(cell, h5py.Dataset)
            if not is_dataset or h5py.check_dtype(ref=cell.dtype) is not h5py.Reference or cell.size == 0:
                found = f"dtype {cell.dtype}, shape {cell.shape}" if is_dataset else "a group"
                raise DataError(f"Sprites file {path}: 'sprites' is not a cell array of animations "
                                f"(expected a non-empty dataset of HDF5 object references, found {found})")
            references = np.asarray(cell[()]).reshape(-1)
            images, actions, frames = [], [], []
            for action, reference in enumerate(references):
                if not reference:
                    raise DataError(f"Sprites file {path}: animation {action} is an empty reference")
                data = file[reference]
                if data.size % FRAME_SIZE:
                    raise DataError(f"Sprites file {path}: animation {action} holds {data.size} values, "
                                    f"not a multiple of {FRAME_SIZE} (one {HEIGHT}x{WIDTH}x{CHANNELS} frame)")
                if data.ndim != 2 or data.shape[1] != FRAME_SIZE:
                    raise DataError(f"Sprites file {path}: animation {action} has shape {data.shape}; "
                                    f"expected (frames, {FRAME_SIZE}), one column-major "
                                    f"{HEIGHT}x{WIDTH}x{CHANNELS} frame per row")
                images.append(_frames_to_images(np.asarray(data[()], dtype=np.float64), path, action))
                actions.append(np.full(data.shape[0], action, dtype=np.int16))
                frames.append(np.arange(data.shape[0], dtype=np.int16))
    except (DataError, MemoryError):
        raise
    except Exception as error:  # noqa: BLE001 - h5py raises OSError, KeyError, ValueError, ...
        raise DataError(f"Sprites file corrupt: {path} ({first_line(error)})") from None
    if labels.size < len(ATTRIBUTES):
        raise DataError(f"Sprites file {path}: 'labels' holds {labels.size} value(s); expected at least "
                        f"{len(ATTRIBUTES)} ({', '.join(ATTRIBUTES)})")
    return np.concatenate(images), np.concatenate(actions), np.concatenate(frames), labels, len(references)


def _frames_to_images(data: np.ndarray, path: Path, action: int) -> np.ndarray:
    """(n, 10800) column-major 60x60x3 frames in [0, 1] -> uint8 (n, 3, 60, 60) (channel, row, column)."""
    low, high = (float(data.min()), float(data.max())) if data.size else (0.0, 0.0)
    if not (low >= -VALUE_TOLERANCE and high <= 1 + VALUE_TOLERANCE):  # also catches NaN
        raise DataError(f"Sprites file {path}: animation {action} has values in [{low:g}, {high:g}]; "
                        "expected [0, 1]")
    # Column-major (row, column, channel) read back in C order is (channel, column, row): swap the last two.
    images = data.reshape(-1, CHANNELS, WIDTH, HEIGHT).transpose(0, 1, 3, 2)
    return np.rint(np.clip(images, 0.0, 1.0) * 255.0).astype(np.uint8)


def _character_path(folder: Path, character: int, zero_based: bool) -> Path:
    return folder / f"sprites_{character - 1 if zero_based else character}.mat"


def _listed_characters(folder: Path, files: dict) -> tuple[int, bool, list[tuple[str, int]]]:
    """The number of characters, whether files are numbered from 0, and the (split, id) of every train
    and test character, after checking the splits file and that every listed character file exists."""
    splits_path = folder / SPLITS_FILE
    splits = read_splits(splits_path)
    num_classes = _check_ids(splits, splits_path)
    zero_based = 0 in files or (num_classes not in files and num_classes - 1 in files)
    wanted = [(split, int(character)) for split in REQUIRED_SPLITS for character in splits[split]]
    for split, character in wanted:
        path = _character_path(folder, character, zero_based)
        if not path.is_file():
            raise DataError(f"Sprites file missing: {path} (character {character} of {split} in "
                            f"{SPLITS_FILE}; files numbered from {0 if zero_based else 1})")
    return num_classes, zero_based, wanted


def check_folder(folder: Path) -> None:
    """A quick structure check of an extracted folder (no conversion): the splits file, the ids, every
    listed character file present, and the first one read in full. Raises DataError."""
    num_classes, zero_based, wanted = _listed_characters(folder, _character_files(folder))
    _read_character(_character_path(folder, wanted[0][1], zero_based))


def _convert(folder: Path, files: dict, cache_path: Path) -> dict[str, np.ndarray]:
    """Read every train and test character file into the arrays that are cached."""
    from tqdm import tqdm
    num_classes, zero_based, wanted = _listed_characters(folder, files)

    parts: dict[str, dict[str, list]] = {split: {"images": [], "labels": [], "action": [], "frame": [],
                                                 "attributes": []} for split in REQUIRED_SPLITS}
    num_actions = None
    first_path = None
    for split, character in tqdm(wanted, desc=f"Converting Sprites into {cache_path.name}",
                                 unit="character", dynamic_ncols=True):
        path = _character_path(folder, character, zero_based)
        images, actions, frames, labels, count = _read_character(path)
        if num_actions is None:
            num_actions, first_path = count, path
        elif count != num_actions:
            raise DataError(f"Sprites file {path}: {count} animations; expected {num_actions} "
                            f"(as in {first_path.name})")
        part = parts[split]
        part["images"].append(images)
        part["labels"].append(np.full(len(images), character - 1, dtype=np.int16))
        part["action"].append(actions)
        part["frame"].append(frames)
        part["attributes"].append(np.repeat(labels[None, :len(ATTRIBUTES)], len(images), axis=0))

    attributes = {split: np.concatenate(parts[split]["attributes"]) for split in REQUIRED_SPLITS}
    for split in REQUIRED_SPLITS:
        if not np.array_equal(attributes[split], np.round(attributes[split])):
            raise DataError(f"Sprites files in {folder}: 'labels' hold non-integer attribute values")
    both = np.concatenate([attributes[split] for split in REQUIRED_SPLITS])
    arrays: dict[str, np.ndarray] = {"num_classes": np.array(num_classes, dtype=np.int64)}
    sizes = {}
    for column, name in enumerate(ATTRIBUTES):
        values = np.unique(both[:, column])
        sizes[name] = len(values)
        for split in REQUIRED_SPLITS:
            codes = np.searchsorted(values, attributes[split][:, column])
            arrays[f"{_prefix(split)}_{name}"] = codes.astype(np.int16)
    for split in REQUIRED_SPLITS:
        part, prefix = parts[split], _prefix(split)
        arrays[f"{prefix}_images"] = np.concatenate(part["images"])
        arrays[f"{prefix}_labels"] = np.concatenate(part["labels"])
        arrays[f"{prefix}_action"] = np.concatenate(part["action"])
        arrays[f"{prefix}_frame"] = np.concatenate(part["frame"])
        part.clear()
    sizes["action"] = int(num_actions)
    sizes["frame"] = int(max(arrays["train_frame"].max(), arrays["test_frame"].max())) + 1
    arrays["factor_sizes"] = np.array([sizes[name] for name in FACTORS], dtype=np.int64)
    return arrays


def _prefix(split: str) -> str:
    return "train" if split == "trainidx" else "test"


def _cache_is_sound(arrays: dict | None) -> bool:
    """Whether cached arrays have every key and consistent shapes (else the cache is rebuilt)."""
    if arrays is None:
        return False
    try:
        if arrays["factor_sizes"].shape != (len(FACTORS),) or arrays["num_classes"].shape != ():
            return False
        for prefix in ("train", "test"):
            images = arrays[f"{prefix}_images"]
            if images.dtype != np.uint8 or images.shape[1:] != (CHANNELS, HEIGHT, WIDTH):
                return False
            if any(arrays[f"{prefix}_{key}"].shape != images.shape[:1] for key in ("labels",) + FACTORS):
                return False
    except KeyError:
        return False
    return True


def _image_set(arrays: dict[str, np.ndarray], device: torch.device) -> ImageSet:
    def images(prefix: str) -> torch.Tensor:
        return torch.from_numpy(arrays[f"{prefix}_images"]).to(device).float().div_(255.0)

    def codes(key: str) -> torch.Tensor:
        return torch.from_numpy(arrays[key].astype(np.int64)).to(device)

    return ImageSet(
        name="sprites",
        train_images=images("train"), train_labels=codes("train_labels"),
        test_images=images("test"), test_labels=codes("test_labels"),
        num_classes=int(arrays["num_classes"]),
        train_factors={name: codes(f"train_{name}") for name in FACTORS},
        test_factors={name: codes(f"test_{name}") for name in FACTORS},
        factor_sizes={name: int(size) for name, size in zip(FACTORS, arrays["factor_sizes"])},
        unspecified_factors=("action",))


@register("sprites",
          summary="2D game-character sprites (Reed et al. 2015), 3x60x60; specified: character identity "
                  "(672, train and test characters disjoint), unspecified: action",
          how_to_get=HOW_TO_GET, locate=locate_sprites)
def load_sprites(data_dir: Path | None, device: torch.device) -> ImageSet:
    """The Sprites frames under ``data_root(data_dir)/sprites``, converted once into a cached array."""
    folder = _find_folder(data_dir)
    files = _character_files(folder)
    sources = [folder / SPLITS_FILE, *files.values()]
    cache_path = cache_dir() / f"sprites-{files_digest(f'sprites cache format {CACHE_FORMAT}', sources, 24)}.npz"
    arrays = load_arrays(cache_path)
    if not _cache_is_sound(arrays):
        arrays = _convert(folder, files, cache_path)
        save_arrays(cache_path, **arrays)
    return _image_set(arrays, device)
