"""A run's training fingerprint: what its first few hundred iterations compute, as one hash.

A published run was trained by one revision of the code. A later revision that computes the same
numbers (a refactor, a new evaluation, a comment) leaves it current; one that changes what
training computes (a loss weight, an update order, a sampler) makes it stale. Comparing source
code cannot tell the two apart; running the start of training can: the run's method is built from
its config and seed, trained ``ITERATIONS`` iterations on the CPU with one thread, and the bytes
of its weights (and of the losses it logged) are hashed. Two fingerprints are comparable only when
they were computed alike: the same iterations, torch version and CPU numerics
(environment.numerics_fingerprint); otherwise nothing can be said on this machine.

What it cannot see: a change that acts only after these iterations (a schedule's later epochs, a
stage change, the last epoch's hook). docs/usage.md, "The paper campaign", says so.

Computing one takes tens of seconds, and the campaign checks every published run's at each
revision it trains from; ``loaded_sources`` lets it reuse one: the same source files, the same
torch and numerics, the same numbers.
"""
from __future__ import annotations

import dataclasses
import hashlib
import sys
import time
from pathlib import Path

import torch

from bench.run.build import build, run_data
from bench.spec.config import RunConfig
from bench.run.environment import cpu_kernels, numerics_fingerprint
from bench.run.weights import network_tensors
from datasets import ImageSet

ITERATIONS = 200
SOURCE_ROOT = Path(__file__).resolve().parents[2]  # the tree this process imports the suite from
# The command line and the campaign choose which run is fingerprinted (its config, which its run id
# names) and never what it computes: a change there leaves every fingerprint as it was.
ORCHESTRATION = ("bench/cli/", "bench/launch/")


@dataclasses.dataclass(frozen=True)
class TrainingFingerprint:
    weights_sha256: str
    iterations: int
    torch: str
    numerics: str
    cpu_kernels: str
    seconds: float  # how long the iterations took here (one thread): a measure of the method's speed

    def comparable(self, other: "TrainingFingerprint") -> bool:
        return (self.iterations, self.torch, self.numerics) == (
            other.iterations, other.torch, other.numerics)

    def matches(self, other: "TrainingFingerprint") -> bool | None:
        """True: the same training; False: different; None: not comparable here."""
        return self.weights_sha256 == other.weights_sha256 if self.comparable(other) else None

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: object) -> "TrainingFingerprint | None":
        """The fingerprint a file recorded, or None when it is not one (a results folder may come
        from someone else: every field is checked for its type)."""
        if not isinstance(data, dict):
            return None
        fields = {f.name: f.type for f in dataclasses.fields(cls)}
        if set(data) != set(fields):
            return None
        types = {"iterations": int, "seconds": (int, float)}
        for name, value in data.items():
            wanted = types.get(name, str)
            if isinstance(value, bool) or not isinstance(value, wanted):
                return None
        return cls(**{**data, "seconds": float(data["seconds"])})


def training_fingerprint(config: RunConfig, data: ImageSet,
                         iterations: int = ITERATIONS) -> TrainingFingerprint:
    """Train ``config``'s method ``iterations`` iterations from its seed on the CPU, one thread,
    and hash its weights and losses. The process's thread count is restored after."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        method, feed = build(config, run_data(config, data), torch.device("cpu"))
        digest = hashlib.sha256()
        started = time.perf_counter()
        for _ in range(iterations):
            losses = method.train_step(feed)
            for name in sorted(losses):
                digest.update(name.encode())
                digest.update(losses[name].detach().float().numpy().tobytes())
        seconds = time.perf_counter() - started
        method.end_epoch()
        for name, tensor in sorted(network_tensors(method).items()):
            digest.update(name.encode())
            digest.update(tensor.numpy().tobytes())
    finally:
        torch.set_num_threads(threads)
    return TrainingFingerprint(weights_sha256=digest.hexdigest(), iterations=iterations,
                               torch=torch.__version__, numerics=numerics_fingerprint(),
                               cpu_kernels=cpu_kernels(), seconds=round(seconds, 2))


def loaded_sources(root: Path = SOURCE_ROOT) -> dict[str, str]:
    """The SHA-256 of each of the suite's files this process has imported (a superset of those a
    fingerprint runs), by path relative to ``root``, but the ORCHESTRATION's. A fingerprint
    computed with these files holds while every one of them is unchanged."""
    found = {}
    for module in list(sys.modules.values()):
        file = getattr(module, "__file__", None)
        if not isinstance(file, str) or not Path(file).is_absolute():
            continue  # a namespace torch makes up (torch.ops' "_ops.py"), not a file
        path = Path(file).resolve()
        try:
            relative = path.relative_to(root)
        except ValueError:
            continue
        if relative.parts[0].startswith(".") or "site-packages" in relative.parts:
            continue  # a virtual environment inside the tree: torch's version stands for it
        if not path.is_file() or relative.as_posix().startswith(ORCHESTRATION):
            continue
        found[relative.as_posix()] = hashlib.sha256(path.read_bytes()).hexdigest()
    return found


def unchanged_sources(sources: object, root: Path = SOURCE_ROOT) -> bool:
    """Whether every file of ``sources`` (``loaded_sources``' record, read back from a file) is
    byte-identical under ``root`` now."""
    if not isinstance(sources, dict) or not sources:
        return False
    for relative, digest in sources.items():
        if not isinstance(relative, str) or not isinstance(digest, str) or ".." in relative.split("/"):
            return False
        path = root / relative
        if path.is_symlink() or not path.is_file():
            return False
        if hashlib.sha256(path.read_bytes()).hexdigest() != digest:
            return False
    return True
