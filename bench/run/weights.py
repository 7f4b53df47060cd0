"""A trained method as published: its networks' weights alone, in a safetensors file.

A run's checkpoint (checkpoint.pt) holds everything training needs to go on: optimisers, random
generators, the loss log's partial epoch. What evaluating a trained method needs is less: the
networks' tensors and, for a method with stages, which stage it ended in. ``model.safetensors``
holds those, floating-point tensors as float32, and loads without unpickling anything (the
safetensors format is a JSON header and raw tensor bytes). ``load_method`` opens a run folder
with either file; the numbers its evaluations give are the same bit for bit.
"""
from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load, save_file

from bench.errors import UnusableFile, first_line
from bench.run.build import restore
from bench.store import results
from methods import Method

WEIGHTS_FILE = "model.safetensors"
# safetensors' metadata holds strings only: the method's state besides its tensors, as JSON
EXTRA_STATE_KEY = "extra_state"
TRAINING_STATE = ("networks", "optimisers", "schedulers")


def network_tensors(method: Method) -> dict[str, torch.Tensor]:
    """The networks' parameters and buffers by name, floating point ones as float32, on the CPU."""
    tensors = {}
    for name, tensor in method.networks.state_dict().items():
        tensor = tensor.detach().to("cpu")
        tensors[name] = (tensor.float() if tensor.is_floating_point() else tensor).contiguous()
    return tensors


def extra_state(method: Method) -> dict:
    """What the method's state holds besides networks, optimisers and schedulers (LORD: the
    epochs done, which say its stage): plain numbers and strings only."""
    extra = {k: v for k, v in method.state_dict().items() if k not in TRAINING_STATE}
    json.dumps(extra)  # a tensor or object here would not survive the metadata: fail loudly
    return extra


def save_weights(method: Method, path: Path) -> None:
    """``path`` written atomically with the method's network tensors and extra state."""
    tensors = network_tensors(method)
    metadata = {EXTRA_STATE_KEY: json.dumps(extra_state(method), sort_keys=True)}
    results.write_atomic(Path(path), lambda tmp: save_file(tensors, str(tmp), metadata=metadata))


def read_weights(path: Path) -> tuple[dict[str, torch.Tensor], dict]:
    """(tensors, extra state) of a weights file, read as a run's file is (results.read_run_bytes:
    no link, a regular file, under results.CHECKPOINT_BYTES_LIMIT); UnusableFile when it is not
    one."""
    data = results.read_run_bytes(Path(path), results.CHECKPOINT_BYTES_LIMIT)
    if data is None:
        raise UnusableFile(f"unreadable weights file {path} (absent, a link, not a regular file, "
                           f"or over {results.CHECKPOINT_BYTES_LIMIT // 2**30} GB)")
    try:
        tensors = load(data)
        # The format: the header's length (8 bytes, little-endian), then the header, JSON
        header = json.loads(data[8:8 + int.from_bytes(data[:8], "little")])
        extra = json.loads((header.get("__metadata__") or {}).get(EXTRA_STATE_KEY, "{}"))
    except (SafetensorError, OSError, ValueError, AttributeError, TypeError) as error:
        raise UnusableFile(f"unreadable weights file {path} ({first_line(error)})") from None
    if not isinstance(extra, dict):
        raise UnusableFile(f"weights file {path}: its extra state is not a JSON object")
    return tensors, extra


def load_weights(method: Method, path: Path) -> None:
    """``method`` (freshly built from the run's config) given the weights of ``path``. Its
    optimisers and schedulers keep their fresh state: evaluations never use them."""
    tensors, extra = read_weights(path)
    expected = method.networks.state_dict()
    if set(tensors) != set(expected) or any(tensors[k].shape != v.shape for k, v in expected.items()):
        raise UnusableFile(f"weights file {path} does not fit the networks of its run's config")
    unknown = set(extra) - set(method.state_dict())
    if unknown:
        raise UnusableFile(f"weights file {path}: unknown state {sorted(unknown)[0]!r}")
    state = method.state_dict()
    state["networks"] = {k: tensors[k].to(v.dtype) for k, v in expected.items()}
    state.update(extra)
    restore(method, state)
