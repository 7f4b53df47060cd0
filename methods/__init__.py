"""Methods behind one interface. Every module in this package is imported so that its
``@register``-ed classes appear in ``METHODS``: adding a method is adding one file. The modules
of ``SHARED_PARTS`` are not methods but what methods share (the interface, the networks, the
adversarial pair's parts, the straightforward twins the tests compare with), and are skipped."""
import importlib
import pkgutil

from methods.base import METHODS, Encoding, Method, MethodConfig, PairGraph, TrainingData, register

SHARED_PARTS = ("base", "networks", "adversarial", "straightforward")

for _module in pkgutil.iter_modules(__path__):
    if _module.name not in SHARED_PARTS and not _module.name.startswith("_"):
        importlib.import_module(f"{__name__}.{_module.name}")

__all__ = ["METHODS", "Encoding", "Method", "MethodConfig", "PairGraph", "TrainingData", "register"]
