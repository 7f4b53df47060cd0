"""What a result was computed with: library versions, git revision, device."""
from __future__ import annotations

import hashlib
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
    changes = _git("status", "--porcelain")  # untracked files count: they may be code that ran
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


def cpu_kernels() -> str:
    """The instruction set of torch's vectorised CPU kernels in this process (AVX2, AVX512, ...)."""
    return torch.backends.cpu.get_cpu_capability()


def numerics_fingerprint() -> str:
    """A short hash of the bits two Adam steps of the MNIST encoder and decoder leave, computed on
    the CPU from fixed weights and a fixed batch. Two machines with the same fingerprint, thread
    count and torch compute these networks alike; the CPU's name does not tell (bench/cpu_kernels.py).
    The global random state is left as it was."""
    from methods.networks import Decoder, Encoder  # the run layer trains methods; imported late: heavy

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        encoder, decoder = Encoder(16, 16).float(), Decoder(16, 16).float()
        images = torch.rand(64, 1, 28, 28)
        parameters = [*encoder.parameters(), *decoder.parameters()]
        optimizer = torch.optim.Adam(parameters, lr=1e-3)
        digest = hashlib.sha256()
        for _ in range(2):
            z_mean, z_logvar, s = encoder(images)
            z = z_mean + torch.randn_like(z_mean) * torch.exp(0.5 * z_logvar)
            loss = (torch.nn.functional.binary_cross_entropy(decoder(z, s), images)
                    - 0.5 * torch.mean(1 + z_logvar - z_mean**2 - z_logvar.exp()))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            digest.update(loss.detach().numpy().tobytes())
        for parameter in parameters:
            digest.update(parameter.detach().numpy().tobytes())
    return digest.hexdigest()[:8]


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
            # CPU only: the kernels' instruction set and what they compute (RunRecord.computed_on)
            "cpu_kernels": cpu_kernels() if device.type == "cpu" else None,
            "numerics": numerics_fingerprint() if device.type == "cpu" else None,
            # CUDA only: whether TF32 rounding was allowed, and iterations replayed as CUDA graphs
            "tf32": tf32_allowed() if device.type == "cuda" else None,
            "cuda_graphs": cuda_graphs,
            "together": together,  # trained in turn with the other runs of its command
            "command": " ".join(sys.argv)}
