"""`bench speed --compare` with a method that has no straightforward twin: one line says so, and
the method itself is still timed (a twin is optional: adding a method is one file)."""
import pytest
import torch

from bench.run.speed import measure_speed, no_twin_line
from methods import METHODS, register
from methods.straightforward import STRAIGHTFORWARD
from methods.ccvae import CycleConsistentVAE

TWINLESS = "twinless-test-method"


@pytest.fixture
def twinless_method():
    """A throwaway registered method (the cycle-consistent VAE under another name) without a twin,
    removed from the registry afterwards."""
    cls = register(type("TwinlessMethod", (CycleConsistentVAE,), {"name": TWINLESS}))
    try:
        yield cls
    finally:
        METHODS.pop(TWINLESS, None)


def test_compare_says_in_one_line_that_a_method_has_no_twin(twinless_method, small_mnist, capsys):
    assert TWINLESS in METHODS and TWINLESS not in STRAIGHTFORWARD
    rows = measure_speed([TWINLESS, "ccvae"], small_mnist, torch.device("cpu"), iterations=1,
                         warmup=0, compare=True)
    lines = capsys.readouterr().out.splitlines()
    note = f"{TWINLESS}: no straightforward twin to compare with (methods/straightforward.py)"
    assert no_twin_line(TWINLESS) == note
    assert lines.count(note) == 1
    assert not any("no straightforward twin" in line for line in lines if line != note)
    # The method itself is timed; only the twin's columns are missing.
    twinless, ccvae = rows
    assert twinless["method"] == TWINLESS and twinless["ms_per_iteration"] > 0
    assert "straightforward_ms_per_iteration" not in twinless
    assert ccvae["straightforward_ms_per_iteration"] > 0 and ccvae["speed_up"] > 0
    assert any(line.startswith(TWINLESS) and line != note for line in lines)


def test_the_throwaway_method_is_gone_afterwards():
    assert TWINLESS not in METHODS


@pytest.mark.parametrize("name, phases", [("lord", [1, 1]), ("ccvae", [3])])
def test_a_method_trained_in_stages_is_timed_in_each(name, phases, small_mnist):
    from bench.run.build import build
    from bench.spec.config import resolve
    from bench.run.speed import time_phases
    method, feed = build(resolve(name, "mnist", "smoke", 0, {"epochs": 3 if name == "ccvae" else 1}),
                         small_mnist, torch.device("cpu"))
    seen = []
    original = type(method).train_step

    def step(method, feed):
        seen.append(method.phase)
        return original(method, feed)
    timed = time_phases(step, method, feed, iterations=2, warmup=1,
                        epochs=method.config.training_epochs)
    assert [epochs for _, epochs in timed] == phases and all(s > 0 for s, _ in timed)
    assert len(set(seen)) == len(phases) and len(seen) == 3 * len(phases)
