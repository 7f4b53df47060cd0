"""Argument types and checks shared by the commands: lists, method and dataset names, latent
sizes, --set, the device and its options, the data folder. Bad arguments raise UsageError."""
from __future__ import annotations

import argparse
import os
import re
from pathlib import Path

from bench.errors import InputError
from bench.run import options
from bench.store import paths


class UsageError(InputError):
    """Arguments that cannot be used together or as given."""


DATA_DIR_ENV = "BENCH_DATA_DIR"


class Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, not argparse's usage block
        self.exit(2, f"{self.prog}: error: {message}\n")


def int_list(text: str) -> list[int]:
    try:
        values = [int(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
    return values


def choose(names: str, registry: dict, what: str) -> list[str]:
    """``names`` (comma-separated, or "all") checked against ``registry``."""
    chosen = list(registry) if names == "all" else [n.strip() for n in names.split(",")]
    unknown = [n for n in chosen if n not in registry]
    if unknown:
        raise UsageError(f"unknown {what} {', '.join(map(repr, unknown))} "
                         f"(valid: {', '.join(registry)}, or all)")
    if len(set(chosen)) != len(chosen):
        raise UsageError(f"{what} listed twice in {names!r}")
    return chosen


def latent_sizes(z_dims: list[int] | None, s_dims: list[int] | None) -> list[dict]:
    """Pairs (z_dim, s_dim) from --z-dim/--s-dim: equal-length lists pair up, one value repeats."""
    z_dims, s_dims = z_dims or [None], s_dims or [None]
    if len(z_dims) != len(s_dims) and 1 not in (len(z_dims), len(s_dims)):
        raise UsageError(f"--z-dim and --s-dim give {len(z_dims)} and {len(s_dims)} sizes: "
                         "give the same number, or one")
    count = max(len(z_dims), len(s_dims))
    z_dims, s_dims = z_dims * (count // len(z_dims)), s_dims * (count // len(s_dims))
    for value in [*z_dims, *s_dims]:
        if value is not None and value < 1:
            raise UsageError(f"latent sizes must be positive, got {value}")
    return [{k: v for k, v in (("z_dim", z), ("s_dim", s)) if v is not None}
            for z, s in zip(z_dims, s_dims)]


def settings_overrides(pairs: list[str]) -> dict[str, str]:
    overrides = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise UsageError(f"--set expects KEY=VALUE, got {pair!r}")
        overrides[key.strip()] = value.strip()
    return overrides


DEVICE_PATTERN = re.compile(r"auto|cpu|mps|cuda(:\d+)?")


def device_argument(text: str) -> str:
    if not DEVICE_PATTERN.fullmatch(text):
        raise argparse.ArgumentTypeError(f"expected auto, cpu, cuda, cuda:N or mps, got {text!r}")
    return text


def resolve_device(name: str):
    """The torch device of --device (auto: the first CUDA device, else the CPU); one line when
    this machine does not have it."""
    import torch
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise UsageError(f"--device {name}: no CUDA device is available (use --device cpu or auto)")
        count = torch.cuda.device_count()
        if ":" in name and int(name.split(":")[1]) >= count:
            raise UsageError(f"--device {name}: this machine has {count} CUDA device(s), "
                             f"cuda:0 to cuda:{count - 1}")
    if name == "mps":
        backend = getattr(torch.backends, "mps", None)
        if backend is None or not backend.is_available():
            raise UsageError("--device mps: Apple's MPS backend is not available here (it needs a "
                             "Mac with Apple silicon and a torch built with MPS)")
    return torch.device(name)


def gpu_flags(args) -> tuple[str, ...]:
    return options.gpu_flags(args.cuda_graphs, args.tf32)


def apply_gpu_options(args, device) -> None:
    """--cuda-graphs and --tf32 act on CUDA devices only; set this process's TF32 rounding.
    ``device`` is None where runs go elsewhere (SLURM jobs check on their node)."""
    runs_on = device.type if device is not None else args.device.split(":")[0]
    if gpu_flags(args) and runs_on in ("cpu", "mps"):
        raise UsageError(f"{' and '.join(gpu_flags(args))}: only for a CUDA device, and this "
                         f"command runs on {'the CPU' if runs_on == 'cpu' else 'MPS'}")
    if device is not None and device.type == "cuda":
        from bench.run.environment import set_tf32
        set_tf32(args.tf32)
        if device.index is not None:  # streams, graphs and their memory pools on that device
            import torch
            torch.cuda.set_device(device)


def data_dir(arg: Path | None) -> Path | None:
    """The data root from --data-dir, else $BENCH_DATA_DIR, else None; never a file or under one."""
    if arg is not None:
        return paths.optional_folder(arg, "--data-dir")
    if os.environ.get(DATA_DIR_ENV):
        return paths.optional_folder(Path(os.environ[DATA_DIR_ENV]), f"${DATA_DIR_ENV}")
    return None


def check_cache_dir() -> None:
    """$BENCH_CACHE_DIR, when set, must be a folder this process can write in."""
    from datasets.base import CACHE_ENV
    if os.environ.get(CACHE_ENV):
        paths.output_folder(Path(os.environ[CACHE_ENV]), f"${CACHE_ENV}")


def known_dataset(name: str) -> None:
    from datasets import DATASETS
    if name not in DATASETS:
        raise UsageError(f"unknown dataset {name!r} (valid: {', '.join(DATASETS)})")


def load_data(name: str, arg: Path | None, device):
    from datasets import DATASETS, DataError
    try:
        return DATASETS[name](data_dir(arg), device)
    except DataError as error:
        raise UsageError(str(error)) from None


FIGURE_LIBRARIES = ("matplotlib", "seaborn", "openTSNE")


def require_figure_libraries() -> None:
    """Fail before training, not after it, when a library the figures need is missing."""
    import importlib.util
    missing = [name for name in FIGURE_LIBRARIES if importlib.util.find_spec(name) is None]
    if missing:
        raise UsageError(f"missing {', '.join(missing)}, needed for each run's figures: "
                         "pip install -r requirements.txt")


DEVICE_HELP = ("auto (default: the first CUDA device, else the CPU), cpu, cuda, cuda:N (the Nth "
               "CUDA device) or mps (Apple silicon)")


def add_common(command: argparse.ArgumentParser) -> None:
    command.add_argument("--device", default="auto", type=device_argument, help=DEVICE_HELP)
    command.add_argument("--cuda-graphs", action="store_true",
                         help="CUDA: replay each training iteration as one CUDA graph "
                              "(docs/gpu.md)")
    command.add_argument("--tf32", action="store_true",
                         help="CUDA: allow TF32 rounding in convolutions and matrix products "
                              "(default: float32 throughout)")
    command.add_argument("--data-dir", type=Path,
                         help=f"data root: ROOT/MNIST/raw etc. in torchvision's layout "
                              f"(downloaded if missing), ROOT/sprites, ROOT/smallnorb "
                              f"(default: ${DATA_DIR_ENV}, else each dataset's default place; "
                              f"python -m bench datasets lists them)")
