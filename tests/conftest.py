import os
import socket
from pathlib import Path

import pytest
import torch

from bench.heap import keep_freed_memory
from datasets import DATASETS
from datasets.base import CACHE_ENV

REPO = Path(__file__).resolve().parent.parent
keep_freed_memory()  # as python -m bench does: the tests that train in this process run as fast


@pytest.fixture(scope="session")
def mnist():
    """The bundled MNIST on the CPU (loaded once per test session)."""
    return DATASETS["mnist"](None, torch.device("cpu"))


@pytest.fixture(scope="session")
def small_mnist(mnist):
    return mnist.head(640, 320)


@pytest.fixture(scope="session", autouse=True)
def isolated_cache(tmp_path_factory):
    """Generated and converted datasets go to a session folder, never the user's cache (commands
    run in subprocesses inherit it)."""
    previous = os.environ.get(CACHE_ENV)
    os.environ[CACHE_ENV] = str(tmp_path_factory.mktemp("cache"))
    yield Path(os.environ[CACHE_ENV])
    if previous is None:
        os.environ.pop(CACHE_ENV, None)
    else:
        os.environ[CACHE_ENV] = previous


@pytest.fixture(scope="session")
def shapes():
    """The procedural Shapes dataset on the CPU (generated once per test session)."""
    return DATASETS["shapes"](None, torch.device("cpu"))


@pytest.fixture(scope="session")
def small_shapes(shapes):
    return shapes.head(640, 320)


@pytest.fixture(scope="session")
def smoke_results(tmp_path_factory):
    """A results folder with one complete smoke run of ccvae on MNIST (trained once per test
    session): the genuine run the hostile-folder tests and the fuzzer build their traps from.
    Tests copy it; none may change it."""
    from bench.cli import main
    directory = tmp_path_factory.mktemp("smoke-results") / "results"
    assert main(["run", "--methods", "ccvae", "--dataset", "mnist", "--preset", "smoke",
                 "--device", "cpu", "--results", str(directory)]) == 0
    return directory


@pytest.fixture
def float64():
    """Default dtype float64 for the test: where two implementations of a step are compared. The
    networks' InstanceNorms divide by the spread of nearly constant early feature maps, which
    magnifies float32 rounding (different for one batched pass and two separate ones) to 1 % of
    some gradients; in float64 it stays invisible."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(previous)


@pytest.fixture
def no_network(monkeypatch):
    """Any attempt to connect fails: downloads are tested offline."""
    def refuse(*args, **kwargs):
        raise OSError("network disabled in tests")
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
