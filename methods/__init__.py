"""Methods behind one interface. Every module in this package is imported so that its
``@register``-ed classes appear in ``METHODS``: adding a method is adding one file. Modules that
are not methods (``base``, and shared parts whose names start with an underscore) are skipped."""
import importlib
import pkgutil

from methods.base import METHODS, Encoding, Method, MethodConfig, PairGraph, TrainingData, register

for _module in pkgutil.iter_modules(__path__):
    if _module.name != "base" and not _module.name.startswith("_"):
        importlib.import_module(f"{__name__}.{_module.name}")

__all__ = ["METHODS", "Encoding", "Method", "MethodConfig", "PairGraph", "TrainingData", "register"]
