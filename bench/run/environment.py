"""What a result was computed with: library versions, git revision, device."""
from __future__ import annotations

import importlib.metadata
import platform
import subprocess
import sys

import torch

from bench.store.results import REPO_ROOT

LIBRARIES = ("torch", "torchvision", "numpy", "scikit-learn", "pandas")


def _git(*args: str) -> str | None:
    try:
        out = subprocess.run(["git", *args], cwd=REPO_ROOT, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def git_revision() -> dict:
    revision = _git("rev-parse", "HEAD")
    changes = _git("status", "--porcelain", "--untracked-files=no")
    return {"revision": revision or "unknown", "dirty": bool(changes) if changes is not None else None}


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def peak_memory_mb(device: torch.device) -> float:
    """Peak device memory since the last reset (CUDA), or the process's peak resident memory."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    import resource
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def set_tf32(allowed: bool) -> None:
    """Whether CUDA convolutions (cuDNN) and matrix products may round float32 inputs to TF32.
    torch's defaults differ (cuDNN yes, matmul no); the benchmark sets both, and without
    ``--tf32`` both are off: the float32 arithmetic the methods were written for."""
    torch.backends.cudnn.allow_tf32 = allowed
    torch.backends.cuda.matmul.allow_tf32 = allowed


def tf32_allowed() -> bool:
    return torch.backends.cudnn.allow_tf32 or torch.backends.cuda.matmul.allow_tf32


def environment(device: torch.device, cuda_graphs: bool = False, together: bool = False) -> dict:
    return {"python": platform.python_version(),
            "platform": platform.platform(),
            "libraries": {name: _version(name) for name in LIBRARIES},
            "git": git_revision(),
            "device": str(device),
            "device_name": device_name(device),
            "torch_threads": torch.get_num_threads(),
            # CUDA only: whether TF32 rounding was allowed, and iterations replayed as CUDA graphs
            "tf32": tf32_allowed() if device.type == "cuda" else None,
            "cuda_graphs": cuda_graphs,
            "together": together,  # trained in turn with the other runs of its command
            "command": " ".join(sys.argv)}
