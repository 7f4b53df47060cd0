from pathlib import Path

import pytest
import torch

from datasets import DATASETS

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def mnist():
    """The bundled MNIST on the CPU (loaded once per test session)."""
    return DATASETS["mnist"](None, torch.device("cpu"))


@pytest.fixture(scope="session")
def small_mnist(mnist):
    return mnist.head(640, 320)
