"""Evaluation of a trained method: encode both splits once, then probe each latent code, embed z
with t-SNE and decode the swap grid."""
from __future__ import annotations

import numpy as np
import torch
from torchvision.utils import make_grid

from bench.probes import LatentCode, fit_probe
from bench.results import SPLITS
from datasets import ImageSet
from methods import Encoding, Method


@torch.no_grad()
def encode_all(method: Method, images: torch.Tensor, batch_size: int = 1000) -> Encoding:
    parts = [method.encode(chunk) for chunk in images.split(batch_size)]
    logvars = [p.z_logvar for p in parts]
    return Encoding(s=torch.cat([p.s for p in parts]),
                    z_mean=torch.cat([p.z_mean for p in parts]),
                    z_logvar=None if logvars[0] is None else torch.cat(logvars))


def latent_codes(encoding: Encoding) -> dict[str, LatentCode]:
    """The probed codes: s, the posterior mean of z, and a sample of z (the paper's figure).
    A deterministic z has no sample: its ``z_sample`` is its mean."""
    std = None if encoding.z_logvar is None else torch.exp(0.5 * encoding.z_logvar)
    return {"s": LatentCode(encoding.s),
            "z_mean": LatentCode(encoding.z_mean),
            "z_sample": LatentCode(encoding.z_mean, std)}


def probe_accuracies(train: Encoding, test: Encoding, data: ImageSet, *, epochs: int,
                     batch_size: int, lr: float, seed: int) -> dict[tuple[str, str], float]:
    """{(probe, split): accuracy in percent} for every probe and split, from the encoded sets."""
    train_codes, test_codes = latent_codes(train), latent_codes(test)
    accuracies: dict[tuple[str, str], float] = {}
    for probe, train_code in train_codes.items():
        if probe == "z_sample" and train_code.std is None:  # deterministic z: the same code
            for split in SPLITS:
                accuracies[probe, split] = accuracies["z_mean", split]
            continue
        train_accuracy, test_accuracy = fit_probe(
            train_code, data.train_labels, test_codes[probe], data.test_labels, data.num_classes,
            epochs=epochs, batch_size=batch_size, lr=lr, seed=seed)
        accuracies[probe, "train"], accuracies[probe, "test"] = train_accuracy, test_accuracy
    return accuracies


# openTSNE's defaults with its FFT-accelerated gradients; recorded beside every embedding.
TSNE_PARAMETERS = {"perplexity": 30, "n_iter": 500, "early_exaggeration_iter": 250,
                   "initialization": "pca", "metric": "euclidean", "negative_gradient_method": "fft"}


def tsne_embedding(points: np.ndarray, seed: int, n_jobs: int | None = None) -> np.ndarray:
    """2-D t-SNE of ``points`` (n x d), seeded."""
    import openTSNE
    n_jobs = n_jobs or torch.get_num_threads()
    embedding = openTSNE.TSNE(**TSNE_PARAMETERS, random_state=seed, n_jobs=n_jobs).fit(
        np.ascontiguousarray(points, dtype=np.float32))
    return np.asarray(embedding)


def z_codes_to_embed(encoding: Encoding, generator: torch.Generator) -> dict[str, torch.Tensor]:
    """The unspecified codes shown by t-SNE: a sample of z (when z is variational) and its mean."""
    codes = latent_codes(encoding)
    if encoding.z_logvar is None:
        return {"z": codes["z_mean"].mean}
    return {"z_sample": codes["z_sample"].draw(generator), "z_mean": codes["z_mean"].mean}


def swap_header_indices(labels: torch.Tensor, num_classes: int) -> tuple[list[int], list[int]]:
    """The swap grid's header images, by a fixed rule shared by every method: the first image of
    each class gives s (the columns), the second gives z (the rows)."""
    s_images, z_images = [], []
    for c in range(num_classes):
        members = torch.nonzero(labels == c).flatten()
        if len(members) < 2:
            raise ValueError(f"the swap grid needs two test images of class {c}")
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
