"""Evaluation of a trained method: encode both splits once, then probe each latent code."""
from __future__ import annotations

import torch

from bench.probes import LatentCode, fit_probe
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


def probe_accuracies(method: Method, data: ImageSet, *, epochs: int, batch_size: int, lr: float,
                     seed: int) -> dict[tuple[str, str], float]:
    """{(probe, split): accuracy in percent} for every probe and split."""
    train_codes = latent_codes(encode_all(method, data.train_images))
    test_codes = latent_codes(encode_all(method, data.test_images))
    accuracies: dict[tuple[str, str], float] = {}
    for probe, train_code in train_codes.items():
        if probe == "z_sample" and train_code.std is None:  # deterministic z: the same code
            for split in ("train", "test"):
                accuracies[probe, split] = accuracies["z_mean", split]
            continue
        train_accuracy, test_accuracy = fit_probe(
            train_code, data.train_labels, test_codes[probe], data.test_labels, data.num_classes,
            epochs=epochs, batch_size=batch_size, lr=lr, seed=seed)
        accuracies[probe, "train"], accuracies[probe, "test"] = train_accuracy, test_accuracy
    return accuracies
