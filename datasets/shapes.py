"""Shapes: a procedural dataset of coloured 2-D shapes with every generative factor known.

64x64 RGB images on a black background, one image for every combination of the factors below
(a full grid, as dSprites), generated deterministically and cached as uint8 after the first build:

- specified (the pairing label, "identity"): shape x colour, 5 x 6 = 30 classes;
- unspecified: scale (3), rotation (6 steps of 15 degrees in [0, 90): every shape here is told
  apart from its rotations in that range), x and y position (6 each, whole pixels).

The split is a seeded random 80/20 partition of the grid, so train and test share every identity.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from datasets.base import ImageSet, cache_dir, load_arrays, register, save_arrays

VERSION = 1  # bump when the rendering changes: the cache key holds it
SPLIT_SEED = 0
TEST_FRACTION = 0.2
SIDE = 64
SUPERSAMPLING = 4  # anti-aliased edges: render at 4x and average
SHAPES = ("square", "triangle", "ellipse", "heart", "cross")
COLOURS = {"red": (1.0, 0.15, 0.15), "green": (0.15, 0.9, 0.15), "blue": (0.2, 0.35, 1.0),
           "yellow": (1.0, 0.9, 0.1), "magenta": (0.95, 0.2, 0.95), "cyan": (0.1, 0.9, 0.95)}
SCALES = (0.6, 0.8, 1.0)
ROTATIONS_DEGREES = (0, 15, 30, 45, 60, 75)
POSITIONS = tuple(int(p) for p in np.linspace(16, 48, 6).round())  # shape centres, in pixels
RADIUS_PIXELS = 14  # a shape at scale 1 lies in a disc of this radius: it never leaves the image
FACTORS = {"shape": len(SHAPES), "colour": len(COLOURS), "scale": len(SCALES),
           "rotation": len(ROTATIONS_DEGREES), "x": len(POSITIONS), "y": len(POSITIONS)}
UNSPECIFIED = ("scale", "rotation", "x", "y")


def _inside(shape: str, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Whether local coordinates (u right, v up; the shape fits in the unit disc) are in ``shape``."""
    if shape == "square":
        return (np.abs(u) <= 0.7) & (np.abs(v) <= 0.7)
    if shape == "triangle":  # equilateral, circumradius 0.95, one vertex up
        normals = [(np.cos(a), np.sin(a)) for a in np.deg2rad([270, 30, 150])]
        return np.all([nu * u + nv * v <= 0.475 for nu, nv in normals], axis=0)
    if shape == "ellipse":
        return (u / 0.95) ** 2 + (v / 0.45) ** 2 <= 1
    if shape == "heart":  # (x^2 + y^2 - 1)^3 - x^2 y^3 <= 0, scaled into the unit disc
        x, y = u * 1.3, v * 1.3 + 0.15
        return (x ** 2 + y ** 2 - 1) ** 3 - x ** 2 * y ** 3 <= 0
    if shape == "cross":
        return ((np.abs(u) <= 0.25) & (np.abs(v) <= 0.9)) | ((np.abs(v) <= 0.25) & (np.abs(u) <= 0.9))
    raise ValueError(f"unknown shape {shape!r}")


def render_mask(shape: str, scale: float, rotation_degrees: float) -> np.ndarray:
    """A SIDE x SIDE coverage mask in [0, 1] of ``shape`` centred at pixel (SIDE/2, SIDE/2)."""
    n = SIDE * SUPERSAMPLING
    centres = (np.arange(n) + 0.5) / SUPERSAMPLING - SIDE / 2  # pixel units, image centre = 0
    x, y = np.meshgrid(centres, -centres)  # rows go down the image, y up
    angle = np.deg2rad(rotation_degrees)
    radius = RADIUS_PIXELS * scale
    u = (np.cos(angle) * x + np.sin(angle) * y) / radius  # rotate the point back by the angle
    v = (-np.sin(angle) * x + np.cos(angle) * y) / radius
    fine = _inside(shape, u, v).astype(np.float32)
    return fine.reshape(SIDE, SUPERSAMPLING, SIDE, SUPERSAMPLING).mean(axis=(1, 3))


def generate() -> dict[str, np.ndarray]:
    """Every combination of the factors: uint8 images (N, 3, 64, 64) and the factor codes (N, 6),
    columns in FACTORS order, rows in C order over the factor grid."""
    grid = np.stack(np.meshgrid(*[np.arange(k) for k in FACTORS.values()], indexing="ij"), -1)
    codes = grid.reshape(-1, len(FACTORS))
    masks = np.stack([[[render_mask(shape, scale, rotation) for rotation in ROTATIONS_DEGREES]
                       for scale in SCALES] for shape in SHAPES])  # (shape, scale, rotation, H, W)
    colours = np.asarray(list(COLOURS.values()), dtype=np.float32)
    images = np.zeros((len(codes), 3, SIDE, SIDE), dtype=np.uint8)
    centre = SIDE // 2
    for i, (shape, colour, scale, rotation, x, y) in enumerate(codes):
        dx, dy = POSITIONS[x] - centre, POSITIONS[y] - centre
        mask = np.roll(masks[shape, scale, rotation], (dy, dx), axis=(0, 1))  # the shape never wraps
        images[i] = np.rint(colours[colour][:, None, None] * mask * 255)
    return {"images": images, "codes": codes.astype(np.int64)}


def cache_path() -> Path:
    return cache_dir() / f"shapes-v{VERSION}.npz"


def load_or_generate() -> dict[str, np.ndarray]:
    arrays = load_arrays(cache_path())
    if arrays is None or set(arrays) != {"images", "codes"}:
        arrays = generate()
        save_arrays(cache_path(), **arrays)
    return arrays


def locate_shapes(data_dir: Path | None) -> Path | None:
    return cache_path() if cache_path().is_file() else None


@register("shapes", summary="procedural 3x64x64 shapes; specified: shape x colour (30), "
                            "unspecified: scale, rotation, x, y (all known)",
          how_to_get="nothing to get: generated on first use (seconds) and cached", locate=locate_shapes)
def load_shapes(data_dir: Path | None, device: torch.device) -> ImageSet:
    """``data_dir`` is ignored: the data is generated."""
    arrays = load_or_generate()
    codes = arrays["codes"]
    order = np.random.default_rng(SPLIT_SEED).permutation(len(codes))
    test_count = int(round(TEST_FRACTION * len(codes)))
    splits = {"test": order[:test_count], "train": order[test_count:]}  # shuffled: head() is random

    def images(rows: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(arrays["images"][rows]).to(device).float().div_(255.0)

    def factors(rows: np.ndarray) -> dict[str, torch.Tensor]:
        return {name: torch.from_numpy(codes[rows, i]).to(device) for i, name in enumerate(FACTORS)}

    def identity(rows: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(codes[rows, 0] * len(COLOURS) + codes[rows, 1]).to(device)

    return ImageSet(name="shapes",
                    train_images=images(splits["train"]), train_labels=identity(splits["train"]),
                    test_images=images(splits["test"]), test_labels=identity(splits["test"]),
                    num_classes=len(SHAPES) * len(COLOURS),
                    train_factors=factors(splits["train"]), test_factors=factors(splits["test"]),
                    factor_sizes=dict(FACTORS), unspecified_factors=UNSPECIFIED,
                    label_name="identity")
