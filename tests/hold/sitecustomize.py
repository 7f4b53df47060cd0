"""Put on PYTHONPATH by tests that must stop a run mid-training at a moment no machine's speed
can move: with BENCH_TEST_HOLD_AFTER=N, a run's training waits after its N-th iteration until it
is asked to stop (the signal a time limit sends), so the run checkpoints exactly there. A job
requeued by SLURM (SLURM_RESTART_COUNT >= 1) trains without waiting. Nothing happens without
the variable, or before `bench.train` is imported."""
import importlib.abc
import importlib.machinery
import os
import sys
import time

HOLD_AFTER = int(os.environ.get("BENCH_TEST_HOLD_AFTER", "0") or 0)
REQUEUED = int(os.environ.get("SLURM_RESTART_COUNT", "0") or 0) >= 1
LONGEST_WAIT_S = 900  # a test that never sends the signal fails by its own timeout first


def held(training_steps):
    def steps(*args, **kwargs):
        stop = kwargs["stop"]
        for done, _ in enumerate(training_steps(*args, **kwargs), start=1):
            yield
            if done == HOLD_AFTER:
                waited = time.monotonic()
                while stop.requested is None and time.monotonic() - waited < LONGEST_WAIT_S:
                    time.sleep(0.05)
    return steps


class PatchTrain(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name not in ("bench.train", "bench.run.train"):
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is None:
            return None
        load = spec.loader.exec_module

        def exec_module(module):
            load(module)
            module.training_steps = held(module.training_steps)
        spec.loader.exec_module = exec_module
        return spec


if HOLD_AFTER > 0 and not REQUEUED:
    sys.meta_path.insert(0, PatchTrain())
