"""Small helpers shared by the tests."""
import contextlib
import os

import torch

from tests.conftest import REPO


def snapshot(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in module.state_dict().items()}


def changed(before: dict[str, torch.Tensor], module: torch.nn.Module) -> set[str]:
    """The names of ``module``'s tensors that differ from ``before``."""
    return {k for k, v in module.state_dict().items() if not torch.equal(before[k], v)}


@contextlib.contextmanager
def dies_after_first_epoch():
    """Runs started inside fail at their second epoch's checkpoint, as if their process had died
    just before it: their folders hold the first epoch's checkpoint."""
    import bench.run.runner
    original = bench.run.runner.save_checkpoint

    def killed_before_epoch_two_is_saved(path, config, method, feed, progress, *monitors):
        if progress.epoch == 3:
            raise RuntimeError("killed")
        original(path, config, method, feed, progress, *monitors)
    bench.run.runner.save_checkpoint = killed_before_epoch_two_is_saved
    try:
        yield
    finally:
        bench.run.runner.save_checkpoint = original


def held_after(iterations: int) -> dict[str, str]:
    """The environment that makes a `bench run` subprocess wait after its training's ``iterations``-th
    iteration until it is asked to stop (tests/hold/sitecustomize.py)."""
    return {"BENCH_TEST_HOLD_AFTER": str(iterations), "PYTHONPATH": os.pathsep.join(
        filter(None, [str(REPO / "tests" / "hold"), os.environ.get("PYTHONPATH")]))}
