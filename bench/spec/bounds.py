"""The bounds of every number a run's config or records may hold. No torch here: the records of a
results folder are checked against them without it (bench/store/records.py).

A results folder may come from someone else: a setting of 10^12 epochs, a latent code of a
billion dimensions or a figure of 10^8 classes is not an experiment but a request for all the
time or memory there is. Each bound is far above what any preset asks (the paper's protocol:
100 epochs, 100 probe epochs, about 937 iterations per epoch; tests/test_config.py resolves
every preset, method and dataset within them).
"""
from __future__ import annotations

# The largest value of each integer field of a method's config and of RunSettings (every such
# field has one: tests/test_config.py). The error names the bound.
LARGEST: dict[str, int] = {
    "z_dim": 4096, "s_dim": 4096,  # the paper's largest: 1024 / 512 (Sprites)
    "batch_size": 65536, "probe_batch_size": 65536,
    "epochs": 10_000,  # the paper's: 100 (per stage for LORD); its authors' longest, 400
    "probe_epochs": 10_000,  # the paper protocol's: 100
    "lr_step_epochs": 10_000,
    "iterations_per_epoch": 10_000_000,  # the paper protocol's: 937 on MNIST
    "train_size": 10_000_000, "test_size": 10_000_000,  # the largest dataset: 60,000 + 10,000
    "tsne_points": 100_000,  # the paper protocol's: the whole test set, 10,000 on MNIST
    "generator_steps": 1000,
    "group_size": 4096,
}

MAX_SEED = 2**63 - 1  # a seed is stored in tables as a 64-bit integer
MAX_CLASSES = 10_000  # classes of a dataset's labels (the t-SNE's colours): MNIST 10, smallNORB 50
MAX_THREADS = 100_000  # threads recorded in env.json and figures.json
