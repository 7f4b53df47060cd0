"""The swap grid's pixels: which test images head its rows and columns (one fixed rule for every
method), the decoded cells, and the image in the paper's layout. Used by the swap_grid evaluation
(swap_grid.py), which writes swap_grid.csv and swap_grid.png."""
from __future__ import annotations

import numpy as np
import torch
from torchvision.utils import make_grid

from methods import Method


SWAP_CLASSES = 10  # columns and rows of the swap grid at most


def swap_header_indices(labels: torch.Tensor, columns: int = SWAP_CLASSES) -> tuple[list[int], list[int]]:
    """The swap grid's header images, by a fixed rule shared by every method: ``columns`` classes
    spread evenly over the sorted classes that have two test images (all of them when there are
    at most ``columns``); the first image of each gives s (the columns), the second gives z (rows)."""
    values, counts = labels.unique(return_counts=True)
    eligible = values[counts >= 2].tolist()
    if len(eligible) < 2:
        raise ValueError("the swap grid needs two test images of at least two classes")
    if len(eligible) > columns:
        eligible = [eligible[i] for i in np.linspace(0, len(eligible) - 1, columns).round().astype(int)]
    s_images, z_images = [], []
    for c in eligible:
        members = torch.nonzero(labels == c).flatten()
        s_images.append(int(members[0]))
        z_images.append(int(members[1]))
    return s_images, z_images


@torch.no_grad()
def swap_cells(method: Method, z_images: torch.Tensor, s_images: torch.Tensor) -> torch.Tensor:
    """cells[i, j] = Dec(z_mean of z_images[i], s of s_images[j]), shape (rows, columns, C, H, W)."""
    rows, columns = len(z_images), len(s_images)
    z = method.encode(z_images).z_mean.repeat_interleave(columns, dim=0)
    s = method.encode(s_images).s.repeat(rows, 1)
    return method.decode(z, s).view(rows, columns, *z_images.shape[1:])


SWAP_PADDING = 2
SWAP_PAD_VALUE = 0.3  # the thin grey lines between tiles
SWAP_SEPARATOR = 1.0  # white lines between the header row/column and the body


def swap_grid_image(cells: torch.Tensor, z_images: torch.Tensor, s_images: torch.Tensor) -> torch.Tensor:
    """The paper's layout: header row = s_images, header column = z_images, body = cells, the
    top-left tile blank. Returns a 3 x H x W image with H = W = tiles x (size + pad) + pad."""
    rows, columns = cells.shape[:2]
    blank = torch.zeros_like(s_images[:1])
    tiles = [blank, s_images]
    for i in range(rows):
        tiles += [z_images[i:i + 1], cells[i]]
    grid = make_grid(torch.cat(tiles).cpu(), nrow=columns + 1, padding=SWAP_PADDING,
                     pad_value=SWAP_PAD_VALUE)
    height, width = s_images.shape[-2:]
    grid[:, height + SWAP_PADDING:height + 2 * SWAP_PADDING, :] = SWAP_SEPARATOR
    grid[:, :, width + SWAP_PADDING:width + 2 * SWAP_PADDING] = SWAP_SEPARATOR
    return grid
