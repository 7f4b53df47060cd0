"""Evaluate your own model: the protocol an external model follows, loading one, checking it on
a first batch, and the adapter that gives the evaluations what they use of a suite ``Method``.

An external model is any object with

    encode(images) -> (s, z_mean) or (s, z_mean, z_logvar)
    decode(z, s) -> images            (optional)

``images`` is a batch of the dataset's images as the suite's methods receive them: a float
tensor (N, C, H, W) in [0, 1] on the evaluation device (datasets/base.py ``ImageSet``). The codes
are floating tensors (N, d); ``z_logvar`` (the log-variance of a Gaussian posterior over z) makes
z probed on a sample as well as on its mean. ``decode(z, s)`` gives images of the input's shape;
without it the evaluations that decode (``Evaluation.needs_decoder``: the swap grid among them)
are skipped. ``python -m bench evaluate-model`` loads one from

- ``path/to/file.py:factory`` or ``package.module:factory``: the user's own code, imported and
  run as it is; ``factory()`` returns the model (an ``nn.Module`` is moved to the device and put
  in evaluation mode);
- ``model.pt``: a TorchScript file (``torch.jit.load``, never unpickled); its ``encode``
  (``@torch.jit.export``) or else its ``forward`` encodes, its ``decode``, if any, decodes.
"""
from __future__ import annotations

import dataclasses
import hashlib
import importlib
import importlib.util
import re
import sys
from pathlib import Path
from typing import Any, Callable, Protocol

import torch

from bench.errors import UnusableModel, first_line
from methods import Encoding


class ExternalModel(Protocol):
    def encode(self, images: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """(s, z_mean) or (s, z_mean, z_logvar), each (N, d) floating."""


PYTHON_FILE, PYTHON_MODULE, TORCHSCRIPT = "python file", "python module", "torchscript"
IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
MODULE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")
FIRST_BATCH = 8  # images the model is checked on before anything is written


@dataclasses.dataclass(frozen=True)
class ModelSource:
    """Where a model comes from: the spec as given, its kind, its file and the file's SHA-256."""
    spec: str
    kind: str
    file: Path
    sha256: str
    factory: str | None = None  # None for TorchScript


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(2**20), b""):
            digest.update(block)
    return digest.hexdigest()


def locate(spec: str) -> ModelSource:
    """The source named by ``spec`` (``file.py:factory``, ``package.module:factory`` or
    ``model.pt``), its file found and hashed; nothing is imported but a dotted name's parent
    packages."""
    expected = "expected path/to/file.py:factory, package.module:factory or a TorchScript model.pt"
    where, colon, factory = spec.rpartition(":")
    if not colon:
        if not spec.endswith(".pt"):
            raise UnusableModel(f"model {spec!r}: {expected}")
        return _source(spec, TORCHSCRIPT, Path(spec), None)
    if not IDENTIFIER.fullmatch(factory):
        raise UnusableModel(f"model {spec!r}: the factory {factory!r} is not a Python name ({expected})")
    if where.endswith(".py"):
        return _source(spec, PYTHON_FILE, Path(where), factory)
    if not MODULE.fullmatch(where):
        raise UnusableModel(f"model {spec!r}: {where!r} is neither a .py file nor a module name "
                            f"({expected})")
    try:
        found = importlib.util.find_spec(where)
    except (ImportError, ValueError) as error:
        raise UnusableModel(f"model {spec!r}: module {where} not found ({first_line(error)})") from None
    if found is None or not found.origin or not Path(found.origin).is_file():
        raise UnusableModel(f"model {spec!r}: module {where} not found (or not from a file)")
    return _source(spec, PYTHON_MODULE, Path(found.origin), factory)


def _source(spec: str, kind: str, path: Path, factory: str | None) -> ModelSource:
    if not path.is_file():
        raise UnusableModel(f"model {spec!r}: no file {path}")
    return ModelSource(spec, kind, path, sha256_of(path), factory)


def _user_call(spec: str, what: str, call: Callable[[], Any]) -> Any:
    """``call()``, the user's code: whatever it raises is one line naming ``what``."""
    try:
        return call()
    except UnusableModel:
        raise
    except Exception as error:  # noqa: BLE001 - the user's code, reported in one line
        raise UnusableModel(f"model {spec!r}: {what} raised {type(error).__name__}: "
                            f"{first_line(error, default='')}") from None


class _Scripted:
    """A TorchScript module as an external model: ``encode`` (exported) or else ``forward``."""

    def __init__(self, module):
        self.module = module.eval()
        self.encode = getattr(module, "encode", module.forward)
        if hasattr(module, "decode"):
            self.decode = module.decode


def load(source: ModelSource, device: torch.device) -> Any:
    """The model of ``source`` on ``device``: the user's factory called, or the TorchScript file
    loaded."""
    spec = source.spec
    if source.kind == TORCHSCRIPT:
        module = _user_call(spec, "torch.jit.load", lambda: torch.jit.load(str(source.file),
                                                                           map_location=device))
        return _Scripted(module)
    if source.kind == PYTHON_FILE:
        module = _user_call(spec, f"importing {source.file}", lambda: _import_file(source))
    else:
        module = _user_call(spec, f"importing {source.spec.rpartition(':')[0]}",
                            lambda: importlib.import_module(source.spec.rpartition(":")[0]))
    factory = getattr(module, source.factory, None)
    if not callable(factory):
        raise UnusableModel(f"model {spec!r}: {source.file} has no function {source.factory}")
    model = _user_call(spec, f"the factory {source.factory}()", factory)
    if not callable(getattr(model, "encode", None)):
        raise UnusableModel(f"model {spec!r}: {source.factory}() returned {_describe(model)} "
                            "without an encode method (expected an object with encode(images) -> "
                            "(s, z_mean[, z_logvar]))")
    if isinstance(model, torch.nn.Module):
        model = _user_call(spec, "moving the model to the device", lambda: model.to(device).eval())
    return model


def _import_file(source: ModelSource):
    """Import the user's .py file as a module of its own (its folder on the path, last, so that
    it can import its neighbours without shadowing anything)."""
    name = f"bench_external_{source.sha256[:16]}"
    folder = str(source.file.resolve().parent)
    if folder not in sys.path:
        sys.path.append(folder)
    spec = importlib.util.spec_from_file_location(name, source.file)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses and pickling look their module up there
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(name, None)
        raise
    return module


@dataclasses.dataclass(frozen=True)
class ModelShape:
    """What the first batch says of a model: its codes' widths, whether z is variational (a
    log-variance is given) and whether it decodes."""
    s_dim: int
    z_dim: int
    variational: bool
    decodes: bool


def _describe(value: Any) -> str:
    if isinstance(value, torch.Tensor):
        return f"a {value.dtype} tensor of shape {tuple(value.shape)}"
    return f"an object of type {type(value).__name__!r}"


def _checked_codes(spec: str, output: Any, count: int, shape: ModelShape | None) -> Encoding:
    """``output`` of encode on ``count`` images as an Encoding (float32), or UnusableModel naming
    what was expected and what came. ``shape``: the widths of the first batch, which every later
    batch must have."""
    if not isinstance(output, (tuple, list)) or len(output) not in (2, 3):
        raise UnusableModel(f"model {spec!r}: encode must return (s, z_mean) or (s, z_mean, "
                            f"z_logvar), got {_describe(output)}"
                            + (f" of {len(output)}" if isinstance(output, (tuple, list)) else ""))
    names = ("s", "z_mean", "z_logvar")[:len(output)]
    for name, code in zip(names, output):
        if not isinstance(code, torch.Tensor) or not code.is_floating_point():
            raise UnusableModel(f"model {spec!r}: encode's {name} must be a floating tensor "
                                f"(N, d), got {_describe(code)}")
        if code.dim() != 2 or code.shape[0] != count or code.shape[1] < 1:
            raise UnusableModel(f"model {spec!r}: encode's {name} must have shape ({count}, d) "
                                f"for {count} images, got {tuple(code.shape)}")
        if not torch.isfinite(code).all():
            raise UnusableModel(f"model {spec!r}: encode's {name} holds NaN or infinite values")
    if len(output) == 3 and output[2].shape != output[1].shape:
        raise UnusableModel(f"model {spec!r}: encode's z_logvar must have z_mean's shape "
                            f"{tuple(output[1].shape)}, got {tuple(output[2].shape)}")
    encoding = Encoding(*(code.detach().float() for code in output),
                        *([None] if len(output) == 2 else []))
    if shape is not None and (encoding.s.shape[1], encoding.z_mean.shape[1],
                              encoding.z_logvar is not None) != (shape.s_dim, shape.z_dim,
                                                                 shape.variational):
        raise UnusableModel(f"model {spec!r}: encode gave codes of widths s {encoding.s.shape[1]}, "
                            f"z {encoding.z_mean.shape[1]} here and s {shape.s_dim}, z "
                            f"{shape.z_dim} on the first batch")
    return encoding


def _checked_images(spec: str, output: Any, expected: tuple[int, ...]) -> torch.Tensor:
    if not isinstance(output, torch.Tensor) or not output.is_floating_point():
        raise UnusableModel(f"model {spec!r}: decode must return a floating tensor of images, "
                            f"got {_describe(output)}")
    if tuple(output.shape) != expected:
        raise UnusableModel(f"model {spec!r}: decode must return images of shape {expected}, "
                            f"got {tuple(output.shape)}")
    if not torch.isfinite(output).all():
        raise UnusableModel(f"model {spec!r}: decode returned NaN or infinite values")
    return output.detach().float()


class ExternalMethod:
    """An external model offering what the evaluations use of a ``Method``: ``encode`` (an
    Encoding), ``decode``, ``transfer``, ``training_codes``, ``device``, ``decodes``. Every
    batch is checked as the first was (UnusableModel otherwise)."""

    def __init__(self, model: Any, spec: str, device: torch.device, shape: ModelShape,
                 image_shape: tuple[int, ...]):
        self.model, self.spec, self.device, self.shape = model, spec, torch.device(device), shape
        self.image_shape = image_shape
        self.decodes = shape.decodes

    @torch.no_grad()
    def encode(self, images: torch.Tensor) -> Encoding:
        output = _user_call(self.spec, "encode", lambda: self.model.encode(images))
        encoding = _checked_codes(self.spec, output, len(images), self.shape)
        return Encoding(*(None if code is None else code.to(self.device) for code in encoding))

    @torch.no_grad()
    def decode(self, z: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        if not self.decodes:
            raise UnusableModel(f"model {self.spec!r} has no decode method")
        output = _user_call(self.spec, "decode", lambda: self.model.decode(z, s))
        return _checked_images(self.spec, output, (len(z), *self.image_shape)).to(self.device)

    def transfer(self, z_source: torch.Tensor, s_source: torch.Tensor) -> torch.Tensor:
        """As ``Method.transfer``: both sources encoded as one batch, then decoded."""
        code = self.encode(torch.cat([z_source, s_source]))
        return self.decode(code.z_mean[:len(z_source)], code.s[len(z_source):])

    def training_codes(self) -> None:
        return None


@torch.no_grad()
def check_model(model: Any, spec: str, images: torch.Tensor, device: torch.device) -> ExternalMethod:
    """The model as an ExternalMethod, once its encode (and decode, if it has one) gave codes and
    images as the protocol says on the first ``FIRST_BATCH`` of ``images``."""
    batch = images[:FIRST_BATCH]
    output = _user_call(spec, "encode", lambda: model.encode(batch))
    encoding = _checked_codes(spec, output, len(batch), None)
    decodes = callable(getattr(model, "decode", None))
    shape = ModelShape(encoding.s.shape[1], encoding.z_mean.shape[1],
                       encoding.z_logvar is not None, decodes)
    method = ExternalMethod(model, spec, device, shape, tuple(images.shape[1:]))
    if decodes:
        method.decode(encoding.z_mean.to(device), encoding.s.to(device))
    return method
