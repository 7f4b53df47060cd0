"""Datasets and pair samplers. Every module in this package may register a loader in ``DATASETS``."""
import importlib
import pkgutil

from datasets.base import DATASETS, DataError, ImageSet, register

_INFRASTRUCTURE = {"base", "samplers", "idx", "download"}
# MNIST first (the paper's dataset, listed first by `bench datasets`), then by name.
for _module in sorted(pkgutil.iter_modules(__path__), key=lambda m: (m.name != "mnist", m.name)):
    if _module.name not in _INFRASTRUCTURE and not _module.name.startswith("_"):
        importlib.import_module(f"{__name__}.{_module.name}")

__all__ = ["DATASETS", "DataError", "ImageSet", "register"]
