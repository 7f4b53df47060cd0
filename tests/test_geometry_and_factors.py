"""Networks for any image shape, probes on disjoint identities, factor probes and MIG/SAP in a run,
and the dataset listing."""
import json
import subprocess
import sys

import pandas as pd
import pytest
import torch

from bench.cli import main
from bench.evaluations import encoding, swap_grid_cells
from bench.evaluations import EVALUATIONS
from bench.metrics.probe_classifier import LatentCode
from bench.spec.config import resolve
from bench.spec.presets import LATENT_SIZES
from bench.store import results
from methods.networks import MNIST_SHAPE, Decoder, Encoder, PairDiscriminator
from tests.conftest import REPO


@pytest.mark.parametrize("shape", [(3, 60, 60), (3, 64, 64), (1, 96, 96), (3, 48, 40)])
def test_the_generic_family_fits_each_geometry(shape):
    encoder, decoder = Encoder(7, 5, image_shape=shape), Decoder(7, 5, image_shape=shape)
    x = torch.rand(3, *shape)
    z_mean, z_logvar, s = encoder(x)
    assert z_mean.shape == z_logvar.shape == (3, 7) and s.shape == (3, 5)
    assert decoder(z_mean, s).shape == x.shape
    assert PairDiscriminator(shape)(x, x).shape == (3, 2)


def test_mnist_networks_are_the_papers():
    # docs/methods.md, "Shared networks": three 5x5 stride-2 convolutions 1-16-32-64 and heads
    # from 256 features; the decoder's input layers give 2 x 256 features reshaped to 128 x 2 x 2.
    encoder = Encoder(16, 16, image_shape=MNIST_SHAPE)
    convs = [m for m in encoder.trunk if isinstance(m, torch.nn.Conv2d)]
    assert [(c.in_channels, c.out_channels, c.kernel_size, c.stride) for c in convs] == [
        (1, 16, (5, 5), (2, 2)), (16, 32, (5, 5), (2, 2)), (32, 64, (5, 5), (2, 2))]
    assert encoder.z_mean.in_features == 256
    decoder = Decoder(16, 16)
    assert isinstance(decoder.expand, torch.nn.Identity) and decoder.seed_shape == (128, 2, 2)


@pytest.mark.parametrize("shape", [(3, 28, 28), (1, 16, 16), (3, 64)])
def test_shapes_without_a_network_are_refused(shape):
    with pytest.raises(ValueError, match=r"no network for images of shape"):
        Encoder(4, 4, image_shape=shape)


def test_disjoint_identities_are_probed_on_held_out_halves():
    # 40 test identities never seen in training; s carries the identity (one-hot), z is noise
    generator = torch.Generator().manual_seed(0)
    train_labels = torch.arange(400) % 20
    test_labels = 20 + torch.arange(800) % 40
    def codes(labels):
        return {"s": LatentCode(torch.nn.functional.one_hot(labels, 60).float()),
                "z_mean": LatentCode(torch.randn(len(labels), 8, generator=generator))}
    accuracies, protocol = encoding.probe_target(
        codes(train_labels), codes(test_labels),
        encoding.TargetLabels(train_labels, test_labels, 60),
        epochs=30, batch_size=32, lr=1e-2, seed=0)
    assert protocol == encoding.HELD_OUT_HALVES
    assert accuracies["s", "test"] > 95 and accuracies["z_mean", "test"] < 15
    shared, protocol = encoding.probe_target(
        codes(train_labels), codes(train_labels % 20),
        encoding.TargetLabels(train_labels, train_labels % 20, 60),
        epochs=5, batch_size=32, lr=1e-2, seed=0)
    assert protocol == encoding.SHARED_SPLITS


def test_halves_split_every_index_once():
    first, second = encoding.halves(11, 3, torch.device("cpu"))
    assert len(first) == 6 and sorted(first.tolist() + second.tolist()) == list(range(11))
    assert torch.equal(first, encoding.halves(11, 3, torch.device("cpu"))[0])


def test_swap_grid_spreads_ten_columns_over_many_classes():
    labels = torch.arange(300) % 30
    s_index, z_index = swap_grid_cells.swap_header_indices(labels)
    assert labels[s_index].tolist() == [0, 3, 6, 10, 13, 16, 19, 23, 26, 29]
    assert all(labels[a] == labels[b] and a < b for a, b in zip(s_index, z_index))
    s_index, _ = swap_grid_cells.swap_header_indices(torch.tensor([0, 0, 1, 2, 2]))
    assert len(s_index) == 2  # class 1 has a single image: left out


def test_latent_sizes_default_by_dataset():
    assert resolve("ccvae", "sprites", "paper", 0).method_config.z_dim == LATENT_SIZES["sprites"][0][0]
    assert resolve("ccvae", "sprites", "paper", 0).method_config.s_dim == 64
    assert resolve("ccvae", "sprites", "paper", 0, {"z_dim": 8}).method_config.z_dim == 8
    # MNIST's are the methods' own defaults: run ids from before this table are unchanged
    mnist = resolve("ccvae", "mnist", "paper", 0)
    assert (mnist.method_config.z_dim, mnist.method_config.s_dim) == (16, 16)


def test_datasets_lists_presence_and_how_to_get(tmp_path, capsys):
    assert main(["datasets", "--data-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    blocks = {line.split(":")[0]: line for line in out.splitlines() if not line.startswith(" ")}
    assert list(blocks)[0] == "mnist" and {"sprites", "smallnorb", "shapes", "fashion-mnist"} <= set(blocks)
    assert "data: absent\n  get it: download nips2015-analogy-data.tar.gz" in out
    assert "  get it: download the six smallnorb" in out


def test_shapes_smoke_run_writes_factor_probes_and_scores(tmp_path):
    command = [sys.executable, "-m", "bench", "run", "--methods", "szabo", "--dataset", "shapes",
               "--preset", "smoke", "--results", str(tmp_path)]
    out = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    (run_dir,) = results.runs_dir(tmp_path).iterdir()
    factors = pd.read_csv(run_dir / EVALUATIONS["factors"].file)
    assert set(factors.factor) == {"shape", "colour", "scale", "rotation", "x", "y"}
    assert set(factors.code) == {"s", "z_mean"} and set(factors.split) == {"train", "test"}
    assert factors.accuracy.between(0, 100).all()
    assert set(factors[factors.unspecified].factor) == {"scale", "rotation", "x", "y"}
    scores = pd.read_csv(run_dir / EVALUATIONS["disentanglement"].file)
    assert set(scores.metric) == {"MIG", "SAP", "DCI disentanglement", "DCI completeness",
                                  "DCI informativeness"}
    assert scores.value.between(-1e-9, 1).all()
    assert set(scores.factor) == {"all", "scale", "rotation", "x", "y"}
    swap = pd.read_csv(run_dir / EVALUATIONS["swap"].file)
    assert set(swap.target) == {"label", "shape", "colour", "scale", "rotation", "x", "y"}
    assert set(swap[swap.side == "unspecified"].target) == {"scale", "rotation", "x", "y"}
    assert set(swap.follows) == {"s", "z"} and swap.value.between(0, 100).all()
    evaluation = json.loads((run_dir / results.EVALUATION_FILE).read_text())
    assert evaluation["probes"]["specified"] == encoding.SHARED_SPLITS
    report = subprocess.run([sys.executable, "-m", "bench", "report", "--results", str(tmp_path)],
                            cwd=REPO, capture_output=True, text=True, timeout=120)
    assert report.returncode == 0, report.stderr
    text = (tmp_path / "report.md").read_text()
    assert "### Known factors: what each code holds" in text and "rotation · z_mean (chance 16.7)" in text
    assert "### Disentanglement of z: MIG, SAP and DCI" in text and "DCI completeness" in text
    assert "### Swap accuracy: what the swap grid shows, measured" in text
