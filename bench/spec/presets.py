"""Presets: one table of data, never a code path.

A value is either one value for every method or a dict from method name to value (a method it
does not name keeps its paper default). Keys are fields of ``RunSettings`` or of a method's config.
"""
PRESETS: dict[str, dict] = {
    # The paper's protocol: every method's own defaults (docs/methods.md).
    "paper": {},
    # Minutes on a 2-core CPU (all three methods in about 8): s test accuracy above 90 %.
    "quick": {"epochs": 2, "probe_epochs": 5},
    # CI's regression check (bench check against results/baselines/mnist-ci.csv): all methods in
    # about two minutes on a 2-core CPU.
    "ci": {"epochs": 1, "iterations_per_epoch": 300, "probe_epochs": 3, "tsne_points": 1000},
    # Seconds, for tests: a few iterations on the first images of each split.
    "smoke": {"epochs": 1, "iterations_per_epoch": 3, "train_size": 640, "test_size": 320,
              "probe_epochs": 1, "tsne_points": 200},
}

# Latent sizes (z_dim, s_dim) per dataset: the first pair is the dataset's default, all pairs are
# what --paper-sizes runs. MNIST, Sprites: the paper's; smallNORB: the paper's LineMod sizes (its
# stand-in); Fashion-MNIST and Shapes: MNIST's (the paper has neither).
LATENT_SIZES: dict[str, list[tuple[int, int]]] = {
    "mnist": [(16, 16), (64, 64)],
    "fashion-mnist": [(16, 16), (64, 64)],
    "shapes": [(16, 16), (64, 64)],
    "sprites": [(512, 64), (1024, 512)],
    "smallnorb": [(64, 256), (256, 512)],
}
