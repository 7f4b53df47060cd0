"""The bundled MNIST, its checksums, and torchvision's layout for other roots."""
import dataclasses
import gzip
import shutil

import pytest
import torch

from datasets import DataError
from datasets.idx import FILES
from datasets.mnist import BUNDLED_DIR, MNIST, load_mnist

CPU = torch.device("cpu")


def test_bundled_mnist_loads_as_float_tensors(mnist):
    assert mnist.train_images.shape == (60000, 1, 28, 28)
    assert mnist.test_images.shape == (10000, 1, 28, 28)
    assert mnist.train_images.dtype == torch.float32
    assert 0 == mnist.train_images.min() and mnist.train_images.max() == 1
    assert mnist.train_labels.dtype == torch.long
    assert torch.bincount(mnist.train_labels).tolist()[:3] == [5923, 6742, 5958]
    assert mnist.train_labels[:5].tolist() == [5, 0, 4, 1, 9]


def test_bundled_copy_carries_the_licence_credit():
    credit = (BUNDLED_DIR / "README.md").read_text()
    assert "LeCun" in credit and "CC BY-SA 3.0" in credit


@pytest.fixture
def bundled_copy(tmp_path, monkeypatch):
    """A writable copy of the bundled files that load_mnist(None) reads instead."""
    copy = tmp_path / "mnist"
    shutil.copytree(BUNDLED_DIR, copy)
    monkeypatch.setattr("datasets.mnist.MNIST", dataclasses.replace(MNIST, default_dir=copy))
    return copy


def test_a_changed_byte_is_caught_by_the_checksum(bundled_copy):
    path = bundled_copy / "t10k-labels-idx1-ubyte.gz"
    raw = bytearray(gzip.decompress(path.read_bytes()))
    raw[100] = (raw[100] + 1) % 10
    path.write_bytes(gzip.compress(bytes(raw)))
    with pytest.raises(DataError, match=r"corrupt: .*t10k-labels-idx1-ubyte\.gz \(SHA-256"):
        load_mnist(None, CPU)


def test_a_truncated_archive_is_named(bundled_copy):
    path = bundled_copy / "train-images-idx3-ubyte.gz"
    path.write_bytes(path.read_bytes()[: 50_000])
    with pytest.raises(DataError, match=r"corrupt: .*train-images-idx3-ubyte\.gz"):
        load_mnist(None, CPU)


def test_a_missing_file_is_named(bundled_copy):
    (bundled_copy / "train-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DataError, match=r"missing: .*train-labels-idx1-ubyte"):
        load_mnist(None, CPU)


def torchvision_root(tmp_path, files=FILES):
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for name in files:
        (raw / name).write_bytes(gzip.decompress((BUNDLED_DIR / f"{name}.gz").read_bytes()))
    return tmp_path


def test_another_root_goes_through_torchvision_without_downloading(tmp_path, no_network, mnist):
    data = load_mnist(torchvision_root(tmp_path), CPU)
    assert torch.equal(data.train_images, mnist.train_images)
    assert torch.equal(data.test_labels, mnist.test_labels)


def test_another_root_with_a_corrupt_file_is_named(tmp_path, no_network):
    root = torchvision_root(tmp_path)
    path = root / "MNIST" / "raw" / "t10k-images-idx3-ubyte"
    data = bytearray(path.read_bytes())
    data[5000] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(DataError, match=r"corrupt: .*t10k-images-idx3-ubyte"):
        load_mnist(root, CPU)


def test_another_root_that_cannot_download_says_so(tmp_path, no_network):
    with pytest.raises(DataError, match="could not be downloaded into .*MNIST/raw: Error downloading"):
        load_mnist(tmp_path, CPU)
