"""A tiny Sprites folder in the layout datasets/sprites.py assumes (see its docstring), written with h5py
the way MATLAB v7.3 stores it, and with scipy.io.savemat (MATLAB v5) for sprites_splits.mat."""
from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import scipy.io

SIZE = 60
FRAMES_PER_ANIMATION = (2, 3, 2)  # three animations of unequal length, as in the real data
TRAIN_IDS = (3, 1, 6)  # 1-based character ids, deliberately not sorted
VAL_IDS = (2,)
TEST_IDS = (5, 4)
NUM_CHARACTERS = 6
RED_AT = (5, 40)  # (row, column) of a pure red pixel in every frame
# Per character: body, sex, hair, armour, arms, greaves, weapon. Mostly 0-based (as loaders that test the
# weapon against 0 and 1 imply); hair is 1-based and arms constant, to show that codes are value ranks.
LABELS = {k: (k % 3, k % 2, (k // 2) % 3 + 1, 1 - k % 2, 0, k % 2, k % 2)
          for k in range(1, NUM_CHARACTERS + 1)}


def frame_image(character: int, action: int, frame: int) -> np.ndarray:
    """The (60, 60, 3) frame written for a character (1-based id), animation and frame: exact multiples
    of 1/255, asymmetric, and different for every (character, action, frame)."""
    image = np.zeros((SIZE, SIZE, 3))
    image[0, 0, :] = np.array([character, action, frame]) / 255.0  # an identity stamp, top left
    image[RED_AT[0], RED_AT[1], :] = (1.0, 0.0, 0.0)
    image[SIZE - 1, 0, 2] = 200 / 255.0  # bottom left corner, blue channel
    return image


def column_major(images: list[np.ndarray]) -> np.ndarray:
    """Frames (60, 60, 3) as MATLAB's 10800 x n matrix, column-major, as h5py reads it: shape (n, 10800)."""
    return np.stack([image.reshape(-1, order="F") for image in images])


def write_character(path: Path, character: int, frames_per_animation=FRAMES_PER_ANIMATION,
                    labels=None, animation_data=None) -> None:
    """``sprites`` (a 1 x A cell array of references, h5py shape (A, 1)) and ``labels`` (1 x 7)."""
    labels = LABELS[character] if labels is None else labels
    with h5py.File(path, "w", userblock_size=512) as file:
        refs_group = file.create_group("#refs#")
        references = []
        for action, count in enumerate(frames_per_animation):
            data = (column_major([frame_image(character, action, f) for f in range(count)])
                    if animation_data is None else animation_data(action))
            dataset = refs_group.create_dataset(f"a{action}", data=data)
            dataset.attrs["MATLAB_class"] = np.bytes_("double")
            references.append(dataset.ref)
        cell = file.create_dataset("sprites", data=np.array(references, dtype=h5py.ref_dtype)[:, None])
        cell.attrs["MATLAB_class"] = np.bytes_("cell")
        label_set = file.create_dataset("labels", data=np.asarray(labels, dtype=np.float64)[:, None])
        label_set.attrs["MATLAB_class"] = np.bytes_("double")


def write_splits(path: Path, train=TRAIN_IDS, val=VAL_IDS, test=TEST_IDS, hdf5: bool = False,
                 **extra) -> None:
    """trainidx/validx/testidx as 1 x n doubles (v5 via scipy, or v7.3-style HDF5); None leaves one out."""
    arrays = {name: np.asarray(ids, dtype=np.float64)[None, :]
              for name, ids in (("trainidx", train), ("validx", val), ("testidx", test)) if ids is not None}
    arrays.update(extra)
    if hdf5:
        with h5py.File(path, "w", userblock_size=512) as file:
            for name, values in arrays.items():
                file.create_dataset(name, data=values.T)
    else:
        scipy.io.savemat(path, arrays)


def write_sprites(folder: Path, zero_based: bool = True, hdf5_splits: bool = False) -> Path:
    """Six characters (files sprites_0..5.mat for ids 1..6, or sprites_1..6.mat) and the splits file."""
    folder.mkdir(parents=True, exist_ok=True)
    for character in range(1, NUM_CHARACTERS + 1):
        write_character(folder / f"sprites_{character - 1 if zero_based else character}.mat", character)
    write_splits(folder / "sprites_splits.mat", hdf5=hdf5_splits)
    return folder
