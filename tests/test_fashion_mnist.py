"""Fashion-MNIST: Debian's files when installed, torchvision's layout under a root, checksums."""
import dataclasses
import hashlib
import struct

import numpy as np
import pytest
import torch

from datasets import DATASETS, DataError
from datasets.fashion_mnist import DEBIAN_DIR, FASHION_MNIST, load_fashion_mnist
from datasets.idx import FILES, TEST_IMAGES, TRAIN_IMAGES, TRAIN_LABELS, parse_idx

CPU = torch.device("cpu")


def idx_bytes(array: np.ndarray) -> bytes:
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(np.uint8).tobytes()


def write_fixture(root, train=12, test=8):
    """A torchvision-layout root with tiny IDX files; returns {file: SHA-256} for them."""
    raw = root / "FashionMNIST" / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    arrays = {TRAIN_IMAGES: rng.integers(0, 256, (train, 28, 28)), TRAIN_LABELS: np.arange(train) % 10,
              TEST_IMAGES: rng.integers(0, 256, (test, 28, 28)), "t10k-labels-idx1-ubyte": np.arange(test) % 10}
    arrays[TRAIN_IMAGES][0, 3, 20] = 255  # a known pixel: row 3, column 20
    arrays[TRAIN_IMAGES][0, 20, 3] = 0
    digests = {}
    for name in FILES:
        data = idx_bytes(arrays[name])
        (raw / name).write_bytes(data)
        digests[name] = hashlib.sha256(data).hexdigest()
    return digests


def test_idx_round_trip():
    array = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    assert np.array_equal(parse_idx(idx_bytes(array)), array)


def test_a_root_goes_through_torchvision_without_downloading(tmp_path, no_network, monkeypatch):
    digests = write_fixture(tmp_path)
    monkeypatch.setattr("datasets.fashion_mnist.FASHION_MNIST", dataclasses.replace(FASHION_MNIST, checksums=digests))
    data = load_fashion_mnist(tmp_path, CPU)
    assert data.name == "fashion-mnist" and data.num_classes == 10
    assert data.train_images.shape == (12, 1, 28, 28) and data.test_images.shape == (8, 1, 28, 28)
    assert data.train_images[0, 0, 3, 20] == 1.0 and data.train_images[0, 0, 20, 3] == 0.0
    assert data.train_labels.tolist() == [i % 10 for i in range(12)]


def test_a_fixture_with_the_wrong_checksum_is_named(tmp_path, no_network):
    write_fixture(tmp_path)  # not the published files: the real checksums reject them
    with pytest.raises(DataError, match=r"Fashion-MNIST file corrupt: .*FashionMNIST/raw/train-images-idx3-ubyte \(SHA-256"):
        load_fashion_mnist(tmp_path, CPU)


def test_absent_default_folder_says_how_to_get_it(tmp_path, monkeypatch):
    monkeypatch.setattr("datasets.fashion_mnist.FASHION_MNIST",
                        dataclasses.replace(FASHION_MNIST, default_dir=tmp_path / "absent"))
    with pytest.raises(DataError, match=r"Fashion-MNIST data not found: looked in .*absent; apt-get install dataset-fashion-mnist"):
        load_fashion_mnist(None, CPU)
    assert DATASETS["fashion-mnist"].locate(None) is None


@pytest.mark.skipif(not DEBIAN_DIR.is_dir(), reason="Debian's dataset-fashion-mnist is not installed")
def test_debian_files_match_the_published_checksums():
    data = load_fashion_mnist(None, CPU)
    assert data.train_images.shape == (60000, 1, 28, 28) and data.test_images.shape == (10000, 1, 28, 28)
    assert torch.bincount(data.train_labels).tolist() == [6000] * 10
    assert torch.bincount(data.test_labels).tolist() == [1000] * 10
