"""The interface every method implements, and the registry that lists them.

A method owns its networks, optimisers, schedulers and random generator. The runner hands it a
``TrainingData`` source; the method draws what its update needs (same-class pairs, i.i.d.
batches) and returns its named loss terms, detached, on the training device.
"""
from __future__ import annotations

import abc
import dataclasses
from typing import ClassVar, NamedTuple, Protocol

import numpy as np
import torch
from torch import nn


class Encoding(NamedTuple):
    s: torch.Tensor
    z_mean: torch.Tensor
    z_logvar: torch.Tensor | None  # None for a deterministic z


class TrainingData(Protocol):
    def pair(self) -> tuple[torch.Tensor, torch.Tensor]:
        """A batch of same-class pairs (x1[i] and x2[i] share the specified factor)."""

    def group(self, size: int) -> torch.Tensor:
        """(size, batch, C, H, W): a batch of groups of ``size`` images sharing s. Members 0 and
        1 are the next same-class pairs, drawn as ``pair()`` draws them (so ``group(2)`` is
        ``torch.stack(pair())``); members 2 onward, further images of the anchor's class."""

    def batch(self) -> torch.Tensor:
        """A batch of training images: drawn i.i.d. (the default), or the next images of the
        pairs' pass (``draws="one_loader"``, see ``DRAWS``)."""

    def indexed_pair(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """(i1, i2, x1, x2): the next batch of same-class pairs, drawn as ``pair()`` draws it,
        with the training-set indices of its images (for methods that keep a code per image)."""


@dataclasses.dataclass(frozen=True)
class PairGraph:
    """What the pairs say about the training set as a whole: image ``first[k]`` and image
    ``second[k]`` share s (any edges whose connected components are the groups of images the
    pair sampler pairs within). No labels: a method that needs groups (LORD's one s embedding
    per class) counts them from the edges."""
    size: int  # images in the training set
    first: torch.Tensor
    second: torch.Tensor

    def components(self) -> torch.Tensor:
        """The group of each image: its connected component, numbered 0, 1, ... in the order of
        each group's lowest image index."""
        from scipy.sparse import coo_matrix
        from scipy.sparse.csgraph import connected_components
        first, second = self.first.cpu().numpy(), self.second.cpu().numpy()
        adjacency = coo_matrix((np.ones(len(first)), (first, second)), shape=(self.size, self.size))
        _, component = connected_components(adjacency, directed=False)
        # Renumber by first appearance, so that the numbering does not depend on scipy's.
        _, first_seen, inverse = np.unique(component, return_index=True, return_inverse=True)
        order = np.argsort(np.argsort(first_seen))
        return torch.from_numpy(order[inverse]).long()


# The metadata key of a config field added after runs were named (``added_field``).
RUNS_NAMED_BEFORE = "value of the runs named before the field"


def added_field(default, *, before=dataclasses.MISSING):
    """A config field added after runs were named by their configs (bench/spec/config.py,
    ``RunIdentity.to_dict``). ``before`` (the default unless given) is what every run named before
    the field existed did. A config holding that value leaves the field out of its record, so of
    its run id, its config.json and its checkpoints: those runs keep their names and resume. A
    record without the field reads as ``before``. ``before`` never changes; the default may (a
    new default is then recorded, and names its runs anew)."""
    return dataclasses.field(default=default, metadata={
        RUNS_NAMED_BEFORE: default if before is dataclasses.MISSING else before})


# How a method's batches are drawn (``draws``, a field of the cycle-consistent VAE's and the two
# adversarial baselines' configs; bench/run/build.py builds the samplers from it):
# "independent": the pairs' anchors a permutation of the training set per pass, each partner
#   another image of the anchor's class (never the anchor), and the single-image batches
#   (``batch()``) drawn i.i.d., with replacement, from a stream of their own.
# "one_loader": as the authors' loader: every batch, the single-image ones too, is the next window
#   of one permutation per pass (without replacement), and a partner is any image of the anchor's
#   class, the anchor included (docs/methods.md, "Common to the cycle-consistent VAE, ...").
DRAWS = ("independent", "one_loader")


def check_draws(draws: str) -> None:
    if draws not in DRAWS:
        raise ValueError(f"draws must be 'independent' or 'one_loader', got {draws!r}")


@dataclasses.dataclass(frozen=True)
class MethodConfig:
    """Fields every method has. Subclasses add their loss weights and schedule."""
    z_dim: int = 16
    s_dim: int = 16
    batch_size: int = 64
    epochs: int = 100

    @property
    def training_epochs(self) -> int:
        """Epochs the runner trains in all (a method with stages may train ``epochs`` per stage)."""
        return self.epochs


class Method(abc.ABC):
    name: ClassVar[str]
    config_class: ClassVar[type[MethodConfig]] = MethodConfig
    variational: ClassVar[bool] = True
    decodes: ClassVar[bool] = True  # every method decodes; an external model may not (bench/external_model.py)

    def __init__(self, config: MethodConfig, image_shape: tuple[int, ...], device: torch.device,
                 seed: int, pair_graph: PairGraph | None = None):
        self.config = config
        self.device = torch.device(device)
        self.pair_graph = pair_graph  # the training set's pairs, for methods that need them whole
        self.generator = torch.Generator(device=self.device)
        self.generator.manual_seed(seed)
        # Initialise the networks from the seed without touching the global RNG.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.networks = nn.ModuleDict(self.build_networks(image_shape)).to(self.device)
        self.optimisers: dict[str, torch.optim.Optimizer] = self.build_optimisers()
        self.schedulers: dict[str, torch.optim.lr_scheduler.LRScheduler] = self.build_schedulers()

    # --- what a method defines -------------------------------------------------------------
    @abc.abstractmethod
    def build_networks(self, image_shape: tuple[int, ...]) -> dict[str, nn.Module]: ...

    @abc.abstractmethod
    def build_optimisers(self) -> dict[str, torch.optim.Optimizer]: ...

    def build_schedulers(self) -> dict[str, torch.optim.lr_scheduler.LRScheduler]:
        return {}

    def encode(self, x: torch.Tensor) -> Encoding:
        """The shared networks' convention: ``networks.encoder(x)`` gives (z_mean, z_logvar, s).
        A method with other networks overrides this and ``decode``."""
        z_mean, z_logvar, s = self.networks.encoder(x)
        return Encoding(s=s, z_mean=z_mean, z_logvar=z_logvar)

    def decode(self, z: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        return self.networks.decoder(z, s)

    @abc.abstractmethod
    def train_step(self, data: TrainingData) -> dict[str, torch.Tensor]:
        """One optimiser iteration (all phases); returns the named loss terms, detached."""

    def training_codes(self) -> torch.Tensor | None:
        """The z code of every training image, when the method learns them directly rather than
        through an encoder (LORD's stage 1); None otherwise."""
        return None

    def transfer(self, z_source: torch.Tensor, s_source: torch.Tensor) -> torch.Tensor:
        """Dec(posterior mean of z of ``z_source``, s of ``s_source``): the swap of the paper's
        figures. Both go through the encoder as one batch (its layers act per instance)."""
        code = self.encode(torch.cat([z_source, s_source]))
        return self.decode(code.z_mean[:len(z_source)], code.s[len(z_source):])

    @property
    def phase(self) -> int:
        """The method's training stage: a method whose ``train_step`` changes between epochs
        (LORD's two stages) numbers its stages; one stage is 0."""
        return 0

    def end_epoch(self) -> None:
        for scheduler in self.schedulers.values():
            scheduler.step()

    # --- shared machinery --------------------------------------------------------------------
    def normal(self, *shape: int) -> torch.Tensor:
        """Standard normal noise from the method's own generator."""
        return torch.randn(*shape, device=self.device, generator=self.generator)

    def reparameterise(self, mean: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
        return mean + self.normal(*mean.shape) * torch.exp(0.5 * logvar)

    def state_dict(self) -> dict:
        """Networks, optimisers and schedulers. The random generator's state is not here: its
        format depends on the device (the run's checkpoint saves it beside, bench/run/checkpoints.py)."""
        return {"networks": self.networks.state_dict(),
                "optimisers": {k: o.state_dict() for k, o in self.optimisers.items()},
                "schedulers": {k: s.state_dict() for k, s in self.schedulers.items()}}

    def load_state_dict(self, state: dict) -> None:
        self.networks.load_state_dict(state["networks"])
        for key, optimiser in self.optimisers.items():
            optimiser.load_state_dict(state["optimisers"][key])
        for key, scheduler in self.schedulers.items():
            scheduler.load_state_dict(state["schedulers"][key])


def kl_to_standard_normal(mean: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mean, exp(logvar)) || N(0, I)), summed over batch and latent dimensions."""
    return -0.5 * torch.sum(1 + logvar - mean.pow(2) - logvar.exp())


METHODS: dict[str, type[Method]] = {}


def register(cls: type[Method]) -> type[Method]:
    if cls.name in METHODS:
        raise ValueError(f"method {cls.name!r} registered twice")
    METHODS[cls.name] = cls
    return cls
