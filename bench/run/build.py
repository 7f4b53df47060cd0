"""A run's method and training data, built from its resolved config and seeded from its seed."""
from __future__ import annotations

import torch

from bench.spec.config import RunConfig
from bench.spec.seeds import derive_seed
from datasets import ImageSet
from datasets.samplers import BatchSampler, LoaderBatches, PairedTrainingData, PairSampler
from methods import METHODS, Method, PairGraph


def build(config: RunConfig, data: ImageSet, device: torch.device) -> tuple[Method, PairedTrainingData]:
    """The method and its training data source, seeded from ``config.seed``."""
    def generator(stream: str) -> torch.Generator:
        g = torch.Generator(device=device)
        g.manual_seed(derive_seed(config.seed, stream))
        return g

    batch_size = config.method_config.batch_size
    # How the method's batches are drawn (methods/base.py, DRAWS); a method without the setting
    # draws independently.
    one_loader = getattr(config.method_config, "draws", "independent") == "one_loader"
    pairs = PairSampler(data.train_labels, batch_size, generator("pairs"),
                        partner_may_be_anchor=one_loader)
    batches = (LoaderBatches(pairs, generator("batches")) if one_loader else
               BatchSampler(len(data.train_images), batch_size, generator("batches"), device))
    feed = PairedTrainingData(data.train_images, pairs, batches)
    method = METHODS[config.method](config.method_config, data.image_shape, device,
                                    derive_seed(config.seed, "method"),
                                    pair_graph=PairGraph(len(data.train_images), *pairs.graph()))
    fit_optimisers_to_device(method)
    return method, feed


def restore(method: Method, state: dict) -> None:
    """``method`` in a checkpoint's state (written on any device), its optimisers fitted to its
    device."""
    method.load_state_dict(state)
    fit_optimisers_to_device(method)


def fit_optimisers_to_device(method: Method) -> None:
    """On CUDA every optimiser is capturable, its learning rate a device tensor: its whole step
    stays on the device (no host synchronisation; it can be captured in a CUDA graph, and a
    schedule changes the rate in place). Elsewhere, the plain form. Applied after building (the
    schedulers keep float base rates) and after loading a checkpoint, which may come from another
    device. The method itself knows nothing of this: its optimisers are plain Adams."""
    on_cuda = method.device.type == "cuda"
    for optimiser in method.optimisers.values():
        for group in optimiser.param_groups:
            lr = float(group["lr"])
            group["lr"] = torch.tensor(lr, device=method.device) if on_cuda else lr
            group["capturable"] = on_cuda
            for parameter in group["params"]:
                state = optimiser.state.get(parameter, {})
                if "step" in state:
                    state["step"] = state["step"].to(method.device if on_cuda else "cpu",
                                                     torch.float32)


def iterations_per_epoch(config: RunConfig, data: ImageSet) -> int:
    return (config.settings.iterations_per_epoch
            or len(data.train_images) // config.method_config.batch_size)


def run_data(config: RunConfig, data: ImageSet) -> ImageSet:
    """The images a run trains and is evaluated on (its settings may keep the first few only)."""
    return data.head(config.settings.train_size, config.settings.test_size)
