"""The swap evaluation's target classifier (bench/metrics/swap_agreement.py), trained once per dataset and
kept in the dataset cache, keyed by everything it depends on."""
from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path

import torch

from bench.metrics import Bar, no_bar
from bench.metrics.swap_agreement import TargetClassifier, build_classifier, check_targets, fit_target_classifier
from datasets.base import cache_dir, load_arrays, save_arrays

# Bump when the architecture or the training changes: the cache key holds it.
CLASSIFIER_VERSION = 1
CACHE_FOLDER = "swap-classifier"


def classifier_digest(dataset_name: str, images: torch.Tensor, targets: dict[str, torch.Tensor],
                      sizes: dict[str, int], *, epochs: int, batch_size: int, lr: float,
                      seed: int) -> str:
    """The cache key: a sha256 of everything the trained classifier depends on."""
    digest = hashlib.sha256(f"swap-classifier v{CLASSIFIER_VERSION}\n{dataset_name}\n".encode())
    digest.update(f"{tuple(images.shape)} {images.dtype}\n".encode())
    digest.update(images.detach().cpu().contiguous().numpy())  # the buffer itself, no bytes copy
    for name in sorted(targets):
        values = targets[name].detach().cpu().to(torch.int64).contiguous()
        digest.update(f"\n{name}\t{sizes[name]}\n".encode())
        digest.update(values.numpy())
    digest.update(f"\n{epochs} {batch_size} {lr!r} {seed}\n".encode())
    return digest.hexdigest()


@dataclasses.dataclass(frozen=True)
class ClassifierTraining:
    """How the classifier is trained (``fit_target_classifier``'s settings)."""
    epochs: int
    batch_size: int
    lr: float
    seed: int


def cached_target_classifier(dataset_name: str, images: torch.Tensor,
                             targets: dict[str, torch.Tensor], sizes: dict[str, int],
                             training: ClassifierTraining, *, cache: Path | None = None,
                             bar: Bar = no_bar) -> tuple[TargetClassifier, bool]:
    """The classifier of ``fit_target_classifier``, trained once and kept under
    ``<cache or cache_dir()>/swap-classifier/``; returns (model, whether it came from the cache).
    A missing, unreadable or incompatible file is retrained and overwritten."""
    check_targets(images, targets, sizes)
    settings = dataclasses.asdict(training)
    key = classifier_digest(dataset_name, images, targets, sizes, **settings)
    safe_name = "".join(c if c.isalnum() or c in "-_." else "_" for c in dataset_name)
    path = Path(cache if cache is not None else cache_dir()) / CACHE_FOLDER / f"{safe_name}-{key[:16]}.npz"
    arrays = load_arrays(path)
    if arrays is not None:
        model = build_classifier(tuple(images.shape[1:]), {name: sizes[name] for name in targets},
                                 training.seed, images.device)
        try:
            model.load_state_dict({k: torch.from_numpy(v) for k, v in arrays.items()})
        except (RuntimeError, KeyError, TypeError, ValueError):
            pass  # another architecture or a damaged file: retrain below
        else:
            model.eval()
            return model, True
    model = fit_target_classifier(images, targets, sizes, **settings, bar=bar)
    save_arrays(path, **{k: v.detach().cpu().numpy() for k, v in model.state_dict().items()})
    return model, False
