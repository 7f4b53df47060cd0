"""Evaluate your own model: the protocol an external model follows, loading one (and telling what
a file that is not one holds), checking every batch it gives, and the adapter that gives the
evaluations what they use of a suite ``Method``.

An external model is any object with

    encode(images) -> (s, z_mean) or (s, z_mean, z_logvar)
    decode(z, s) -> images            (optional)

``images`` is a batch of the dataset's images as the suite's methods receive them: a float
tensor (N, C, H, W) in [0, 1] on the evaluation device (datasets/base.py ``ImageSet``). The codes
are floating tensors (N, d), given as a plain tuple (read by position) or as a namedtuple,
dataclass or dict with the fields ``s``, ``z_mean`` and optionally ``z_logvar`` (read by name);
``z_logvar`` (the log-variance of a Gaussian posterior over z) makes z probed on a sample as well
as on its mean. ``decode(z, s)`` gives images of the input's shape in [0, 1] (``RANGE_TOLERANCE``);
without it the evaluations that decode (``Evaluation.needs_decoder``: the swap grid among them)
are skipped. ``python -m bench evaluate-model`` loads one from

- ``path/to/file.py:factory`` or ``package.module:factory``: the user's own code, imported and
  run as it is; ``factory(**model_args)`` (``--model-arg KEY=VALUE``, values as strings) returns
  the model: an ``nn.Module`` is moved to the device; it and every ``nn.Module`` the object holds
  (its attributes, their attributes, lists and dicts of them) are put in evaluation mode;
- ``encoder.pt2``: a ``torch.export`` program of ``encode`` (one input, images, with a dynamic
  batch dimension), exported in evaluation mode; ``--decoder decoder.pt2``, a program of
  ``decode(z, s)``, optionally;
- ``model.pt``: a TorchScript file (``torch.jit.load``, never unpickled; deprecated by torch, whose
  warnings are kept out of the output); its ``encode`` (``@torch.jit.export``) or else its
  ``forward`` encodes, its ``decode``, if any, decodes.

Any other file is looked at, never unpickled (``torch.load(weights_only=True)``), and refused with
what it is (a state_dict, a checkpoint holding one, a pickled model) and the factory that loads it
(``NotAModel.advice``).
"""
from __future__ import annotations

import dataclasses
import hashlib
import importlib
import importlib.util
import json
import pickle
import re
import sys
import types
import warnings
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Callable, Protocol

import torch

from bench.errors import UnusableModel, first_line
from methods import Encoding


class ExternalModel(Protocol):
    def encode(self, images: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """(s, z_mean) or (s, z_mean, z_logvar), each (N, d) floating."""


PYTHON_FILE, PYTHON_MODULE, TORCHSCRIPT, EXPORTED = ("python file", "python module", "torchscript",
                                                      "torch.export")
FACTORY_KINDS = (PYTHON_FILE, PYTHON_MODULE)
IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
MODULE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")
FIRST_BATCH = 8  # images the model is checked on before anything is written
CODE_NAMES = ("s", "z_mean", "z_logvar")

# Decoded images: the images' range, and how far outside it a share of a batch may go. Every suite
# decoder ends in a sigmoid (methods/networks.py), inside [0, 1]; a decoder giving an unbounded
# Gaussian mean (no sigmoid) overshoots a little: a linear one (PCA of MNIST) put at most 2.7 % of
# a batch of 8 swapped images more than 0.25 outside [0, 1], its reconstructions 0.8 %. A decoder
# for images in [-1, 1] (tanh), in [0, 255] or giving logits puts most of the background or the
# strokes there.
IMAGE_RANGE = (0.0, 1.0)
RANGE_TOLERANCE = 0.25
RANGE_SHARE = 0.05
# Codes: the evaluations square them (the probes' batch norm, variances) and sample z as
# z_mean + exp(0.5 * z_logvar) * eps; below this magnitude, with |eps| up to SAMPLE_REACH, every
# such transform stays finite in float32.
CODE_LIMIT = 1e15
SAMPLE_REACH = 8.0


@dataclasses.dataclass(frozen=True)
class ModelSource:
    """Where a model comes from: the spec as given, its kind, its file and the file's SHA-256;
    the factory and its arguments (--model-arg), or a torch.export decoder (--decoder)."""
    spec: str
    kind: str
    file: Path
    sha256: str
    factory: str | None = None  # None for TorchScript and torch.export
    args: tuple[tuple[str, str], ...] = ()
    decoder: Path | None = None
    decoder_sha256: str | None = None


class NotAModel(UnusableModel):
    """A file that holds weights or a pickled object rather than a model the suite can load:
    ``advice`` is the factory to write (the command prints it on stdout)."""

    def __init__(self, message: str, advice: str):
        super().__init__(message)
        self.advice = advice


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(2**20), b""):
            digest.update(block)
    return digest.hexdigest()


def locate(spec: str, decoder: str | Path | None = None,
           args: dict[str, str] | None = None) -> ModelSource:
    """The source named by ``spec`` (``file.py:factory``, ``package.module:factory``, a
    torch.export ``.pt2`` or a TorchScript file), its file found and hashed; nothing is imported
    but a dotted name's parent packages, and nothing is unpickled. ``decoder``: a torch.export
    decoder beside a .pt2 encoder; ``args``: the factory's keyword arguments."""
    expected = ("expected path/to/file.py:factory, package.module:factory, a torch.export "
                "encoder.pt2 or a TorchScript model.pt")
    args = dict(args or {})
    where, colon, factory = spec.rpartition(":")
    if not colon:
        if spec.endswith(".py"):
            raise UnusableModel(f"model {spec!r}: a Python file needs its factory: {spec}:FACTORY "
                                f"({expected})")
        source = _source(spec, _saved_kind(spec, Path(spec)), Path(spec), None)
    elif not IDENTIFIER.fullmatch(factory):
        raise UnusableModel(f"model {spec!r}: the factory {factory!r} is not a Python name ({expected})")
    elif where.endswith(".py"):
        source = _source(spec, PYTHON_FILE, Path(where), factory)
    elif not MODULE.fullmatch(where):
        raise UnusableModel(f"model {spec!r}: {where!r} is neither a .py file nor a module name "
                            f"({expected})")
    else:
        source = _source(spec, PYTHON_MODULE, _module_file(spec, where), factory)
    if args and source.kind not in FACTORY_KINDS:
        raise UnusableModel(f"--model-arg: only a factory (file.py:factory) takes arguments, not "
                            f"the {source.kind} file {spec}")
    if decoder is not None and source.kind != EXPORTED:
        raise UnusableModel(f"--decoder: only beside a torch.export encoder (.pt2), not a "
                            f"{source.kind} (whose decode is its own)")
    if decoder is not None:
        path = Path(decoder)
        if not path.is_file():
            raise UnusableModel(f"--decoder {str(decoder)!r}: no file {path}")
        if not _is_exported(path):
            raise UnusableModel(f"--decoder {str(decoder)!r}: not a torch.export program (.pt2, "
                                "torch.export.save)")
        source = dataclasses.replace(source, decoder=path, decoder_sha256=sha256_of(path))
    return dataclasses.replace(source, args=tuple(sorted(args.items())))


def _module_file(spec: str, where: str) -> Path:
    try:
        found = importlib.util.find_spec(where)
    except (ImportError, ValueError) as error:
        raise UnusableModel(f"model {spec!r}: module {where} not found ({first_line(error)})") from None
    if found is None or not found.origin or not Path(found.origin).is_file():
        raise UnusableModel(f"model {spec!r}: module {where} not found (or not from a file)")
    return Path(found.origin)


def _source(spec: str, kind: str, path: Path, factory: str | None) -> ModelSource:
    if not path.is_file():
        raise UnusableModel(f"model {spec!r}: no file {path}")
    return ModelSource(spec, kind, path, sha256_of(path), factory)


# --- what a file holds, found without running anything from it ---------------------------------

def _archive_names(path: Path) -> list[str]:
    """The names in the file's zip archive (TorchScript, torch.export and torch.save files are
    zip archives); [] for a file that is not one."""
    try:
        with zipfile.ZipFile(path) as archive:
            return archive.namelist()
    except (zipfile.BadZipFile, OSError):
        return []


def _is_exported(path: Path) -> bool:
    return any(name.endswith("/archive_format") for name in _archive_names(path))


def _saved_kind(spec: str, path: Path) -> str:
    """TORCHSCRIPT or EXPORTED, told by the names inside the file's zip archive; anything else
    (a torch.save file) is a NotAModel saying what it holds."""
    if not path.is_file():
        raise UnusableModel(f"model {spec!r}: no file {path}")
    names = _archive_names(path)
    if any(name.endswith("/archive_format") for name in names):
        return EXPORTED
    if any(name.endswith("/constants.pkl") or "/code/" in name for name in names):
        return TORCHSCRIPT
    raise _not_a_model(spec, path, bool(names))


def _not_a_model(spec: str, path: Path, is_zip: bool) -> UnusableModel:
    """What a file that is neither TorchScript nor torch.export holds, read with torch's
    weights-only unpickler (which runs nothing from the file), and the factory that loads it."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            content = torch.load(path, map_location="cpu", weights_only=True, mmap=is_zip)
    except Exception as error:  # noqa: BLE001 - any file at all: one line
        found = re.search(r"GLOBAL ([A-Za-z_][\w.]*)", str(error))
        if isinstance(error, pickle.UnpicklingError) and found is not None:
            return _pickled(spec, path, found.group(1))
        # torch's own message would suggest weights_only=False: not quoted
        return UnusableModel(f"model {spec!r}: not a TorchScript, torch.export (.pt2) or torch.save "
                             f"file (torch.load(weights_only=True) raised {type(error).__name__})")
    if _is_state_dict(content):
        return _weights(spec, path, content, None)
    if isinstance(content, Mapping):
        held = [key for key, value in content.items() if isinstance(key, str) and _is_state_dict(value)]
        if held:
            key = max(held, key=lambda k: (k in ("state_dict", "model_state_dict", "model"),
                                            len(content[k])))
            return _weights(spec, path, content[key], (key, [str(k) for k in content]))
    return UnusableModel(f"model {spec!r}: a torch.save file holding {_describe(content)}, not a "
                         "model (expected a factory file.py:factory, a torch.export .pt2 or a "
                         "TorchScript file)")


def _is_state_dict(value: Any) -> bool:
    return (isinstance(value, Mapping) and len(value) > 0
            and all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in value.items()))


FACTORY_FILE = "my_model.py"
RUN_IT = ("then run the same command with {factory_file}:load --model-arg checkpoint={path} in "
          "place of {path}")


def _weights(spec: str, path: Path, state: Mapping, within: tuple[str, list[str]] | None
             ) -> NotAModel:
    names = list(state)
    shown = ", ".join(names[:3]) + (", ..." if len(names) > 3 else "")
    if within is None:
        what, index = f"a state_dict ({len(names)} tensors: {shown})", ""
    else:
        key, keys = within
        what = (f"a checkpoint (keys {', '.join(keys[:6])}{', ...' if len(keys) > 6 else ''}) "
                f"whose {key!r} is a state_dict ({len(names)} tensors: {shown})")
        index = f"[{key!r}]"
    advice = "\n".join([
        f"A factory that builds your model and loads the weights of {path} (save it as "
        f"{FACTORY_FILE}; name your model's class in the import):",
        "",
        "    import torch",
        "    from your_code import YourModel  # your model's class: encode, and decode if it has one",
        "",
        "    def load(checkpoint):",
        "        model = YourModel()  # built as it was for training",
        f"        weights = torch.load(checkpoint, map_location=\"cpu\", weights_only=True){index}",
        "        model.load_state_dict(weights)",
        "        return model",
        "",
        RUN_IT.format(factory_file=FACTORY_FILE, path=path)])
    return NotAModel(f"model {spec!r}: {what}: weights without the model that uses them; write "
                     f"the factory printed above, which builds it and loads them", advice)


def _pickled(spec: str, path: Path, global_name: str) -> NotAModel:
    module, _, name = global_name.rpartition(".")
    if module == "__main__":
        where = [f"    from your_code import {name}  # the class it was saved from, in a script",
                 f"    import __main__; __main__.{name} = {name}  # unpickling looks for __main__.{name}"]
    else:
        where = [f"    import {module}  # unpickling imports it: beside this file or on PYTHONPATH"]
    advice = "\n".join([
        f"A factory that loads {path} (save it as {FACTORY_FILE}). Unpickling runs code named "
        "in the file: only for a file you made yourself; model.state_dict() saved instead "
        "needs none.",
        "",
        "    import torch",
        *where,
        "",
        "    def load(checkpoint):",
        "        return torch.load(checkpoint, map_location=\"cpu\", weights_only=False)",
        "",
        RUN_IT.format(factory_file=FACTORY_FILE, path=path)])
    return NotAModel(f"model {spec!r}: a torch.save file of pickled Python objects (of class "
                     f"{global_name}, as torch.save(model) writes): loading it would run code "
                     "named in the file, so it is not loaded; write the factory printed above",
                     advice)


# --- loading --------------------------------------------------------------------------------

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


class _Exported:
    """torch.export programs as an external model: the encoder's, and the decoder's if given."""

    def __init__(self, encoder, decoder=None):
        self.encode = encoder
        if decoder is not None:
            self.decode = decoder


def load(source: ModelSource, device: torch.device) -> Any:
    """The model of ``source`` on ``device``, every module it holds in evaluation mode: the user's
    factory called with its arguments, or the TorchScript or torch.export file loaded."""
    spec = source.spec
    if source.kind == TORCHSCRIPT:
        with warnings.catch_warnings():  # torch.jit is deprecated (torch 2.14): not the user's to see
            warnings.filterwarnings("ignore", category=FutureWarning, message=r".*torch\.jit")
            module = _user_call(spec, "torch.jit.load", lambda: torch.jit.load(str(source.file),
                                                                               map_location=device))
        return _Scripted(module)
    if source.kind == EXPORTED:
        encoder = _exported_module(spec, source.file, ("images",), device)
        decoder = (None if source.decoder is None else
                   _exported_module(f"--decoder {source.decoder}", source.decoder, ("z", "s"), device))
        return _Exported(encoder, decoder)
    if source.kind == PYTHON_FILE:
        module = _user_call(spec, f"importing {source.file}", lambda: _import_file(source))
    else:
        module = _user_call(spec, f"importing {source.spec.rpartition(':')[0]}",
                            lambda: importlib.import_module(source.spec.rpartition(":")[0]))
    factory = getattr(module, source.factory, None)
    if not callable(factory):
        raise UnusableModel(f"model {spec!r}: {source.file} has no function {source.factory}")
    kwargs = dict(source.args)
    call = ", ".join(f"{k}={v!r}" for k, v in source.args)
    model = _user_call(spec, f"the factory {source.factory}({call})", lambda: factory(**kwargs))
    if not callable(getattr(model, "encode", None)):
        raise UnusableModel(f"model {spec!r}: {source.factory}() returned {_describe(model)} "
                            "without an encode method (expected an object with encode(images) -> "
                            "(s, z_mean[, z_logvar]))")
    if isinstance(model, torch.nn.Module):
        model = _user_call(spec, "moving the model to the device", lambda: model.to(device))
    for _, held in held_tensors(model)[0]:
        _user_call(spec, "putting its modules in evaluation mode", held.eval)
    return model


def _exported_module(spec: str, path: Path, inputs: tuple[str, ...], device: torch.device):
    """The module of the torch.export program in ``path`` on ``device``, once it takes
    ``inputs`` with a dynamic batch dimension and was exported in evaluation mode."""
    what = "an encoder takes one input, images" if len(inputs) == 1 else \
        "a decoder takes two inputs, z and s"
    program = _user_call(spec, "torch.export.load", lambda: torch.export.load(str(path)))
    names = list(program.graph_signature.user_inputs)
    if len(names) != len(inputs):
        raise UnusableModel(f"model {spec!r}: the exported program takes {len(names)} input(s) "
                            f"({', '.join(names)}); {what}")
    values = {node.name: node.meta.get("val") for node in program.graph.nodes
              if node.op == "placeholder"}
    for name in names:
        value = values.get(name)
        if isinstance(value, torch.Tensor) and value.dim() > 0 and isinstance(value.shape[0], int):
            raise UnusableModel(
                f"model {spec!r}: exported with a fixed batch of {value.shape[0]} ({name}); "
                f"export it with dynamic_shapes={{{name!r}: {{0: torch.export.Dim('batch')}}}}")
    if _exports_training(program):
        raise UnusableModel(f"model {spec!r}: exported in training mode (dropout or batch norm "
                            "as in training), which an exported program keeps: call model.eval() "
                            "before torch.export.export")
    from torch.export.passes import move_to_device_pass
    program = _user_call(spec, "moving the program to the device",
                         lambda: move_to_device_pass(program, device))
    return program.module()


def _exports_training(program) -> bool:
    """Whether an operation of the program runs in training mode (an argument ``train`` or
    ``training`` set: dropout, batch norm)."""
    for node in program.graph.nodes:
        schema = getattr(node.target, "_schema", None) if node.op == "call_function" else None
        if schema is None:
            continue
        for i, argument in enumerate(schema.arguments):
            if argument.name in ("train", "training"):
                value = node.args[i] if i < len(node.args) else node.kwargs.get(argument.name)
                if value is True:
                    return True
    return False


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


# --- what the model holds: its modules and tensors, their hash ------------------------------

HELD_DEPTH = 6  # attributes of attributes ... searched for modules and tensors
HELD_LIMIT = 100_000  # objects looked at, at most


def _searched(value: Any) -> bool:
    """Whether an object's attributes are searched: the user's own objects, not torch's (an
    optimiser holds the parameters again), nor modules, classes or functions."""
    if isinstance(value, (type, types.ModuleType, types.FunctionType, types.MethodType,
                          types.BuiltinFunctionType)) or not hasattr(value, "__dict__"):
        return False
    module = type(value).__module__ or ""
    return module.split(".")[0] not in ("torch", "numpy", "builtins")


def held_tensors(model: Any) -> tuple[list[tuple[str, torch.nn.Module]], list[tuple[str, torch.Tensor]]]:
    """The ``nn.Module``s and the tensors ``model`` holds: itself, its attributes, theirs, and the
    items of lists, tuples and dicts among them, each with its path ("model.encoder"); a module's
    own attributes are its parameters and buffers (its state_dict), not searched further."""
    modules, tensors, seen, looked = [], [], set(), 0

    def visit(value: Any, path: str, depth: int) -> None:
        nonlocal looked
        if id(value) in seen or looked >= HELD_LIMIT:
            return
        looked += 1
        if isinstance(value, torch.nn.Module):
            seen.add(id(value))
            modules.append((path, value))
        elif isinstance(value, torch.Tensor):
            seen.add(id(value))
            tensors.append((path, value))
        elif depth >= HELD_DEPTH:
            return
        elif isinstance(value, Mapping):
            seen.add(id(value))
            for key, item in list(value.items()):
                visit(item, f"{path}[{key!r}]", depth + 1)
        elif isinstance(value, (list, tuple)):
            seen.add(id(value))
            for i, item in enumerate(value):
                visit(item, f"{path}[{i}]", depth + 1)
        elif _searched(value):
            seen.add(id(value))
            for key, item in list(vars(value).items()):
                visit(item, f"{path}.{key}", depth + 1)

    visit(model, "model", 0)
    return modules, tensors


def _tensor_bytes(tensor: torch.Tensor) -> bytes:
    tensor = tensor.detach().to("cpu")
    if tensor.layout != torch.strided:
        tensor = tensor.to_dense()
    try:
        return tensor.contiguous().reshape(-1).view(torch.uint8).numpy().tobytes()
    except (RuntimeError, TypeError):  # a quantized tensor, say
        return repr(tensor.tolist()).encode()


def weights_sha256(model: Any) -> str | None:
    """A SHA-256 of every parameter, buffer and tensor the model holds (``held_tensors``), by
    name, dtype, shape and value, of their CPU copies: the same weights give the same hash on any
    device, retrained ones another. None when it holds none (a TorchScript or torch.export
    model: its file holds its weights)."""
    if isinstance(model, (_Scripted, _Exported)):
        return None
    modules, tensors = held_tensors(model)
    named = [(f"{path}.{key}", value) for path, module in modules
             for key, value in module.state_dict().items()] + tensors
    if not named:
        return None
    digest = hashlib.sha256()
    for name, value in named:
        if isinstance(value, torch.Tensor):
            header = f"{name}\t{value.dtype}\t{tuple(value.shape)}\n"
            digest.update(header.encode() + _tensor_bytes(value))
        else:  # a module's extra state
            digest.update(f"{name}\t{type(value).__name__}\t{value!r}\n".encode())
    return digest.hexdigest()


def model_sha256(source: ModelSource, weights: str | None) -> str:
    """The model's identity: its kind, file(s), factory and arguments, and the weights the factory
    returned. Two runs under one name must have the same."""
    identity = {"kind": source.kind, "sha256": source.sha256, "factory": source.factory,
                "args": dict(source.args), "decoder_sha256": source.decoder_sha256,
                "weights_sha256": weights}
    canonical = json.dumps(identity, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


# --- checking what it gives -------------------------------------------------------------------

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


def _by_name(spec: str, output: Any) -> list[Any] | None:
    """The codes of a namedtuple, dataclass or dict, read by their names (s, z_mean and
    optionally z_logvar, which may be None); None for anything else."""
    if isinstance(output, tuple) and hasattr(output, "_fields"):
        what, fields = "namedtuple", {name: getattr(output, name) for name in output._fields}
    elif dataclasses.is_dataclass(output) and not isinstance(output, type):
        what = "dataclass"
        fields = {f.name: getattr(output, f.name) for f in dataclasses.fields(output)}
    elif isinstance(output, Mapping):
        what, fields = "dict", dict(output)
    else:
        return None
    names = list(fields)
    if "s" not in names or "z_mean" not in names or any(n not in CODE_NAMES for n in names):
        raise UnusableModel(f"model {spec!r}: encode returned a {what} {type(output).__name__} "
                            f"with fields ({', '.join(map(str, names))}); its codes are read by "
                            "name: s, z_mean and optionally z_logvar, and nothing else (or return "
                            "a plain tuple (s, z_mean[, z_logvar]))")
    return [fields["s"], fields["z_mean"]] + ([fields["z_logvar"]]
                                              if fields.get("z_logvar") is not None else [])


def _checked_codes(spec: str, output: Any, count: int, shape: ModelShape | None) -> Encoding:
    """``output`` of encode on ``count`` images as an Encoding (float32), or UnusableModel naming
    what was expected and what came. ``shape``: the widths of the first batch, which every later
    batch must have."""
    named = _by_name(spec, output)
    if named is not None:
        output = named
    elif isinstance(output, (tuple, list)) and len(output) == 3 and output[2] is None:
        output = output[:2]  # a deterministic z, as a suite method's Encoding gives it
    if not isinstance(output, (tuple, list)) or len(output) not in (2, 3):
        raise UnusableModel(f"model {spec!r}: encode must return (s, z_mean) or (s, z_mean, "
                            f"z_logvar), got {_describe(output)}"
                            + (f" of {len(output)}" if isinstance(output, (tuple, list)) else ""))
    names = CODE_NAMES[:len(output)]
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
    _check_transforms(spec, encoding)
    if shape is not None and (encoding.s.shape[1], encoding.z_mean.shape[1],
                              encoding.z_logvar is not None) != (shape.s_dim, shape.z_dim,
                                                                 shape.variational):
        raise UnusableModel(f"model {spec!r}: encode gave codes of widths s {encoding.s.shape[1]}, "
                            f"z {encoding.z_mean.shape[1]}"
                            f"{', with z_logvar' if encoding.z_logvar is not None else ''} here and "
                            f"s {shape.s_dim}, z {shape.z_dim}"
                            f"{', with z_logvar' if shape.variational else ''} on the first batch")
    return encoding


def _check_transforms(spec: str, encoding: Encoding) -> None:
    """The codes as the evaluations transform them stay finite: each code, and a sample of z
    (z_mean + exp(0.5 * z_logvar) * eps, |eps| up to SAMPLE_REACH), below CODE_LIMIT."""
    for name, code in (("s", encoding.s), ("z_mean", encoding.z_mean)):
        largest = float(code.abs().max())
        if largest > CODE_LIMIT:
            raise UnusableModel(f"model {spec!r}: encode's {name} reaches {largest:.3g} in "
                                f"magnitude; the evaluations square codes, which overflows above "
                                f"{CODE_LIMIT:.0e}")
    if encoding.z_logvar is None:
        return
    reach = float((encoding.z_mean.abs() + SAMPLE_REACH * torch.exp(0.5 * encoding.z_logvar)).max())
    if not reach <= CODE_LIMIT:  # NaN and inf included
        raise UnusableModel(f"model {spec!r}: encode's z_logvar (up to "
                            f"{float(encoding.z_logvar.max()):.4g}) makes a sample of z, "
                            f"z_mean + exp(0.5 * z_logvar) * eps, reach {reach:.3g}; the "
                            f"evaluations probe and embed such samples, which must stay below "
                            f"{CODE_LIMIT:.0e} in magnitude")


def _checked_images(spec: str, output: Any, expected: tuple[int, ...]) -> torch.Tensor:
    if not isinstance(output, torch.Tensor) or not output.is_floating_point():
        raise UnusableModel(f"model {spec!r}: decode must return a floating tensor of images, "
                            f"got {_describe(output)}")
    if tuple(output.shape) != expected:
        raise UnusableModel(f"model {spec!r}: decode must return images of shape {expected}, "
                            f"got {tuple(output.shape)}")
    if not torch.isfinite(output).all():
        raise UnusableModel(f"model {spec!r}: decode returned NaN or infinite values")
    images = output.detach().float()
    low, high = IMAGE_RANGE
    outside = float(((images < low - RANGE_TOLERANCE) | (images > high + RANGE_TOLERANCE))
                    .float().mean())
    if outside > RANGE_SHARE:
        raise UnusableModel(
            f"model {spec!r}: decode gave values in [{float(images.min()):.2f}, "
            f"{float(images.max()):.2f}], {100 * outside:.0f} % of them more than "
            f"{RANGE_TOLERANCE} outside [{low:g}, {high:g}]; images are in [{low:g}, {high:g}] "
            f"(at most {100 * RANGE_SHARE:.0f} % of a batch may overshoot so far, as a Gaussian "
            "mean without a sigmoid does): map an output in [-1, 1], in [0, 255] or of logits "
            f"to [{low:g}, {high:g}] in decode")
    return images


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
