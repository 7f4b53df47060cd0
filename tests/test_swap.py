"""Swap accuracy (bench/metrics/swap_agreement.py): the target classifier, its cache (in
bench/evaluations/_swap_classifier.py), the swap pairs and the
agreement of swapped images with their sources, checked with test-double decoders."""
from __future__ import annotations

import re

import numpy as np
import pytest
import torch

from bench.evaluations._swap_classifier import (CACHE_FOLDER, ClassifierTraining,
                                                cached_target_classifier)
from bench.metrics.probe_classifier import accuracy
from bench.metrics.swap_agreement import (TargetClassifier, fit_target_classifier, predict_targets,
                                swap_agreement, swap_pairs)
from datasets.base import CACHE_ENV, load_arrays, save_arrays

TRAIN_SIZE = 10_000
SETTINGS = dict(epochs=3, batch_size=128, lr=1e-3, seed=0)
SIZES = {"digit": 10, "parity": 2}
PAIRS = 4000


def mnist_targets(labels: torch.Tensor) -> dict[str, torch.Tensor]:
    return {"digit": labels, "parity": labels % 2}


@pytest.fixture(scope="module")
def trained(mnist, tmp_path_factory):
    """The classifier for digit and parity, trained once for the module on 10,000 images."""
    cache = tmp_path_factory.mktemp("swap-cache")
    images = mnist.train_images[:TRAIN_SIZE]
    model, cached = cached_target_classifier(
        "mnist", images, mnist_targets(mnist.train_labels[:TRAIN_SIZE]), SIZES, cache=cache,
        training=ClassifierTraining(**SETTINGS))
    assert not cached
    return model, cache


@pytest.fixture(scope="module")
def test_predictions(mnist, trained):
    return predict_targets(trained[0], mnist.test_images)


@pytest.fixture
def tiny(mnist):
    """A few training images for cache tests: training on them takes a fraction of a second."""
    return mnist.train_images[:256], {"digit": mnist.train_labels[:256]}, {"digit": 10}


TINY_SETTINGS = dict(epochs=1, batch_size=64, lr=1e-3, seed=0)
TINY = ClassifierTraining(**TINY_SETTINGS)


def test_classifier_reads_mnist_digits(mnist, test_predictions):
    assert accuracy(test_predictions["digit"], mnist.test_labels) >= 95
    assert accuracy(test_predictions["parity"], mnist.test_labels % 2) >= 95


def test_decoder_ignoring_s_follows_z(mnist, test_predictions, trained):
    labels = mnist.test_labels
    agreement = swap_agreement(lambda z_src, s_src: z_src, mnist.test_images, mnist_targets(labels),
                               trained[0], pairs=PAIRS, seed=1)
    i, j = swap_pairs(len(labels), PAIRS, seed=1)
    same_class = 100.0 * (labels[i] == labels[j]).double().mean().item()
    digit = agreement["digit"]
    assert digit.pairs == PAIRS and digit.differing_pairs == int((labels[i] != labels[j]).sum())
    assert digit.chance == 10
    assert abs(digit.follows_s - same_class) < 3  # right only where i's digit is j's too
    assert digit.follows_z >= accuracy(test_predictions["digit"], labels) - 2
    assert digit.follows_z > 90


def test_decoder_copying_s_follows_s(mnist, test_predictions, trained):
    labels = mnist.test_labels
    agreement = swap_agreement(lambda z_src, s_src: s_src, mnist.test_images, mnist_targets(labels),
                               trained[0], pairs=PAIRS, seed=1)
    _, j = swap_pairs(len(labels), PAIRS, seed=1)
    digit = agreement["digit"]
    # The swaps are images j themselves: follows_s is the accuracy on them.
    assert digit.follows_s == pytest.approx(accuracy(test_predictions["digit"][j], labels[j]), abs=0.1)
    assert digit.follows_s >= accuracy(test_predictions["digit"], labels) - 2
    assert digit.follows_z < 3


def test_each_target_has_its_own_head_and_agreement(mnist, trained):
    model = trained[0]
    assert set(model.heads) == {"digit", "parity"}
    assert model.heads["parity"].out_features == 2 and model.heads["digit"].out_features == 10
    labels = mnist.test_labels
    copies = swap_agreement(lambda z_src, s_src: s_src, mnist.test_images, mnist_targets(labels),
                            model, pairs=PAIRS, seed=2)
    ignores = swap_agreement(lambda z_src, s_src: z_src, mnist.test_images, mnist_targets(labels),
                             model, pairs=PAIRS, seed=2)
    assert set(copies) == {"digit", "parity"}
    parity = copies["parity"]
    assert parity.target == "parity" and parity.chance == 50
    assert 0.4 * PAIRS < parity.differing_pairs < 0.6 * PAIRS
    assert parity.follows_s > 95 and parity.follows_z < 5
    assert ignores["parity"].follows_z > 95 and 40 < ignores["parity"].follows_s < 60
    # Only the targets asked for are reported; a target without a head is refused.
    assert set(swap_agreement(lambda z, s: s, mnist.test_images, {"parity": labels % 2}, model,
                              pairs=10, seed=0)) == {"parity"}
    with pytest.raises(ValueError, match="no head"):
        swap_agreement(lambda z, s: s, mnist.test_images, {"thickness": labels}, model, pairs=10, seed=0)


def test_transfer_gets_z_source_then_s_source_in_batches(mnist, trained):
    images = mnist.test_images[:300]
    calls = []

    def transfer(z_src, s_src):
        calls.append((z_src.clone(), s_src.clone()))
        return s_src

    swap_agreement(transfer, images, {"digit": mnist.test_labels[:300]}, trained[0], pairs=250,
                   seed=3, batch_size=100)
    assert [len(z) for z, _ in calls] == [100, 100, 50]
    i, j = swap_pairs(300, 250, seed=3)
    assert torch.equal(torch.cat([z for z, _ in calls]), images[i])
    assert torch.equal(torch.cat([s for _, s in calls]), images[j])


def test_classifier_is_cached(mnist, trained, test_predictions):
    model, cache = trained
    again, cached = cached_target_classifier(
        "mnist", mnist.train_images[:TRAIN_SIZE], mnist_targets(mnist.train_labels[:TRAIN_SIZE]),
        SIZES, cache=cache, training=ClassifierTraining(**SETTINGS))
    assert cached
    assert not again.training
    predictions = predict_targets(again, mnist.test_images)
    assert all(torch.equal(predictions[k], test_predictions[k]) for k in SIZES)
    files = list((cache / CACHE_FOLDER).iterdir())
    assert len(files) == 1 and re.fullmatch(r"mnist-[0-9a-f]{16}\.npz", files[0].name)


def test_other_seed_or_images_or_targets_give_other_files(tiny, tmp_path):
    images, targets, sizes = tiny
    folder = tmp_path / CACHE_FOLDER
    cached_target_classifier("mnist", images, targets, sizes, cache=tmp_path, training=TINY)
    assert len(list(folder.iterdir())) == 1
    cached_target_classifier("mnist", images, targets, sizes, cache=tmp_path,
                             training=ClassifierTraining(**TINY_SETTINGS | {"seed": 1}))
    assert len(list(folder.iterdir())) == 2
    changed = images.clone()
    changed[0, 0, 0, 0] += 0.5
    _, cached = cached_target_classifier("mnist", changed, targets, sizes, cache=tmp_path, training=TINY)
    assert not cached and len(list(folder.iterdir())) == 3
    relabelled = {"digit": targets["digit"].roll(1)}
    _, cached = cached_target_classifier("mnist", images, relabelled, sizes, cache=tmp_path,
                                         training=TINY)
    assert not cached and len(list(folder.iterdir())) == 4
    _, cached = cached_target_classifier("mnist", images, targets, sizes, cache=tmp_path, training=TINY)
    assert cached and len(list(folder.iterdir())) == 4


def test_corrupt_or_incompatible_cache_file_is_retrained(tiny, tmp_path):
    images, targets, sizes = tiny
    first, _ = cached_target_classifier("mnist", images, targets, sizes, cache=tmp_path, training=TINY)
    [path] = (tmp_path / CACHE_FOLDER).iterdir()
    expected = predict_targets(first, images)["digit"]
    for damage in (lambda: path.write_bytes(b"not an npz at all"),
                   lambda: path.write_bytes(path.read_bytes()[:200]),
                   lambda: save_arrays(path, weight=np.zeros(3, dtype=np.float32))):
        damage()
        model, cached = cached_target_classifier("mnist", images, targets, sizes, cache=tmp_path,
                                                 training=TINY)
        assert not cached
        assert torch.equal(predict_targets(model, images)["digit"], expected)
        assert load_arrays(path) is not None and "heads.digit.weight" in load_arrays(path)
        assert cached_target_classifier("mnist", images, targets, sizes, cache=tmp_path,
                                        training=TINY)[1]


def test_default_cache_folder(tiny, tmp_path, monkeypatch):
    monkeypatch.setenv(CACHE_ENV, str(tmp_path))
    images, targets, sizes = tiny
    cached_target_classifier("my set", images, targets, sizes, training=TINY)
    assert [p.name.startswith("my_set-") for p in (tmp_path / CACHE_FOLDER).iterdir()] == [True]


def test_training_is_seeded_and_leaves_the_global_rng_alone(tiny):
    images, targets, sizes = tiny
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(123)
        state = torch.get_rng_state()
        first = fit_target_classifier(images, targets, sizes, **TINY_SETTINGS)
        assert torch.equal(torch.get_rng_state(), state)
        torch.manual_seed(456)  # the global state must not matter
        second = fit_target_classifier(images, targets, sizes, **TINY_SETTINGS)
    other = fit_target_classifier(images, targets, sizes, **{**TINY_SETTINGS, "seed": 1})
    a, b, c = (m.state_dict() for m in (first, second, other))
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)


def test_swap_pairs():
    i, j = swap_pairs(50, 5000, seed=0)
    assert i.shape == j.shape == (5000,)
    assert torch.equal(torch.stack(swap_pairs(50, 5000, seed=0)), torch.stack((i, j)))
    assert not torch.equal(torch.stack(swap_pairs(50, 5000, seed=1)), torch.stack((i, j)))
    assert bool((i != j).all())
    assert set(i.tolist()) == set(j.tolist()) == set(range(50))
    # Every other image is as likely an s source: j - i is spread over 1..n-1.
    assert set(((j - i) % 50).tolist()) == set(range(1, 50))
    two_i, two_j = swap_pairs(2, 100, seed=0)
    assert torch.equal(two_j, 1 - two_i)
    with pytest.raises(ValueError):
        swap_pairs(1, 10, seed=0)


@pytest.mark.parametrize("shape", [(1, 28, 28), (3, 64, 64), (1, 96, 96), (3, 40, 72)])
def test_classifier_keeps_a_spatial_map_for_any_image_shape(shape):
    model = TargetClassifier(shape, {"a": 4, "x": 6})
    out = model.eval()(torch.rand(2, *shape))
    assert {k: tuple(v.shape) for k, v in out.items()} == {"a": (2, 4), "x": (2, 6)}
    flat = next(m for m in model.features if isinstance(m, torch.nn.Linear))
    convs = [m for m in model.features if isinstance(m, torch.nn.Conv2d)]
    # Flattened, not pooled: the linear layer sees a map of more than one position.
    assert flat.in_features > convs[-1].out_channels


def test_classifier_refuses_small_images():
    with pytest.raises(ValueError, match="28"):
        TargetClassifier((1, 16, 16), {"a": 2})
