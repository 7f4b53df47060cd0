"""What only a GPU can show: CUDA graph replays, runs trained together on their own streams (the
default CUDA path: eager steps, one stream per run, probes stacked), checkpoints that move between
the GPU and the CPU, and the recorded peak memory.

Every test here needs a CUDA device and is skipped elsewhere (CI has none). scripts/gpu_evidence.sh
runs this file first on a lent GPU; docs/gpu.md says which of them have run there.

On a GPU, a graph replay and the eager step it was captured from agree up to rounding (the
kernels need not be the same), and so do probes fitted stacked and alone (one batched product
against several). Where two computations run the same kernels in another order or on other
streams (graphs replayed at once against the same graphs replayed alone; runs trained together
with their streams delayed against the same without), they must agree bit for bit: any
difference there is a race, not rounding.
"""
import gc
import json
import shutil

import pandas as pd
import pytest
import torch

from bench.cli import main
from bench.run.build import build
from bench.spec.config import resolve
from bench.run.graphs import EAGER_STEPS, GraphedStep
from bench.store import results
from methods import METHODS
from tests.helpers import dies_after_first_epoch, snapshot
from tests.test_together import fast_runs, run_dirs  # noqa: F401 - fast_runs is a fixture

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@pytest.fixture
def exact_cuda():
    """No TF32 and deterministic cuDNN: the float32 arithmetic the methods are checked in."""
    from bench.run.environment import set_tf32
    deterministic = torch.backends.cudnn.deterministic
    set_tf32(False)
    torch.backends.cudnn.deterministic = True
    yield torch.device("cuda")
    torch.backends.cudnn.deterministic = deterministic


@pytest.fixture(scope="module")
def gpu_mnist():
    from datasets import DATASETS
    return DATASETS["mnist"](None, torch.device("cuda")).head(640, 320)


@pytest.mark.parametrize("name", sorted(METHODS))
def test_cuda_graph_replays_follow_eager_training(name, exact_cuda, gpu_mnist):
    """20 iterations replayed from a CUDA graph give the eager steps' losses and parameters, up to
    GPU rounding."""
    config = resolve(name, "mnist", "smoke", 0)
    (eager, eager_feed), (graphed, graphed_feed) = [build(config, gpu_mnist, exact_cuda)
                                                    for _ in range(2)]
    step = GraphedStep(graphed, graphed_feed)
    for iteration in range(EAGER_STEPS + 20):
        expected, got = eager.train_step(eager_feed), step()
        for key in expected:
            assert torch.allclose(got[key], expected[key], rtol=1e-3, atol=1e-5), (iteration, key)
    assert step.graph is not None
    for (key, a), (_, b) in zip(eager.networks.state_dict().items(),
                                graphed.networks.state_dict().items()):
        assert torch.allclose(a, b, rtol=1e-3, atol=1e-4), key


SIX_RUNS = [(name, seed) for name in ("ccvae", "mathieu", "szabo") for seed in (0, 1)]


def graphed_run(name, seed, data, device):
    """A run built on a stream of its own, its GraphedStep made there (as runs trained together
    make theirs), so its graphs are captured on that stream."""
    stream = torch.cuda.Stream(device)
    stream.wait_stream(torch.cuda.current_stream(device))
    with torch.cuda.stream(stream):
        method, feed = build(resolve(name, "mnist", "smoke", seed), data, device)
        step = GraphedStep(method, feed)
    assert step.stream == stream
    return step, stream, method


def replay(step, stream):
    """One iteration on the run's stream, its losses copied there before the next replay."""
    with torch.cuda.stream(stream):
        return {k: v.clone() for k, v in step().items()}


def test_six_graphed_runs_replayed_at_once_equal_each_replayed_alone(exact_cuda, gpu_mnist):
    """Six runs' graphs replayed in turn on their own streams, never synchronised, 60 times:
    each run's losses and parameters are bit for bit those of the same run replayed alone."""
    iterations = EAGER_STEPS + 60
    alone = []
    for name, seed in SIX_RUNS:
        step, stream, method = graphed_run(name, seed, gpu_mnist, exact_cuda)
        losses = [replay(step, stream) for _ in range(iterations)]
        torch.cuda.synchronize()
        alone.append((losses, snapshot(method.networks)))
        del step, method
    gc.collect()
    runs = [graphed_run(name, seed, gpu_mnist, exact_cuda) for name, seed in SIX_RUNS]
    assert len({stream.cuda_stream for _, stream, _ in runs}) == len(runs)
    at_once = [[] for _ in runs]
    for _ in range(iterations):
        for (step, stream, _), losses in zip(runs, at_once):
            losses.append(replay(step, stream))
    torch.cuda.synchronize()
    for (name, seed), (want, parameters), have, (_, _, method) in zip(SIX_RUNS, alone, at_once, runs):
        for iteration, (a, b) in enumerate(zip(want, have)):
            assert all(torch.equal(a[k], b[k]) for k in a), (name, seed, iteration)
        assert all(torch.equal(parameters[k], v) for k, v in method.networks.state_dict().items())


def test_a_graph_replays_after_another_runs_graph_is_destroyed(exact_cuda, gpu_mnist):
    """Capture A, capture B, destroy A (a run that ends, LORD's next stage), replay B: B gives
    what it gives with no A at all."""
    iterations = EAGER_STEPS + 20
    b_alone, b_stream, _ = graphed_run("szabo", 1, gpu_mnist, exact_cuda)
    expected = [replay(b_alone, b_stream) for _ in range(iterations)]
    torch.cuda.synchronize()
    del b_alone
    a, a_stream, _ = graphed_run("ccvae", 0, gpu_mnist, exact_cuda)
    b, b_stream, _ = graphed_run("szabo", 1, gpu_mnist, exact_cuda)
    got = []
    for _ in range(EAGER_STEPS + 1):  # both captured
        replay(a, a_stream)
        got.append(replay(b, b_stream))
    assert a.graph is not None and b.graph is not None
    torch.cuda.synchronize()
    del a
    gc.collect()
    got += [replay(b, b_stream) for _ in range(iterations - len(got))]
    torch.cuda.synchronize()
    for iteration, (want, have) in enumerate(zip(expected, got)):
        assert all(torch.equal(want[k], have[k]) for k in want), iteration


DEFAULT_PATH = ["run", "--dataset", "mnist", "--preset", "smoke", "--device", "cuda",
                "--methods", "ccvae,mathieu,lord", "--seeds", "0,1", "--epochs", "2",
                "--set", "iterations_per_epoch=20"]


def test_the_default_cuda_path_follows_runs_one_by_one(tmp_path, fast_runs, exact_cuda,  # noqa: F811
                                                       monkeypatch):
    """`bench run --together` on CUDA (the default there once this passes) trains: eager steps, each run on its own
    stream, the probes of all runs stacked. Against the same runs one by one: losses up to GPU
    rounding, probe accuracies within 1 point (3 of the 320 test images; stacked probes use
    other matrix-product kernels than one run's). With every run's stream delayed before each
    of its steps (a missing synchronisation then reads unfinished codes): bit for bit the same
    as without. Each run records its own peak memory and the group's."""
    from bench.run import together
    assert main([*DEFAULT_PATH, "--no-together", "--results", str(tmp_path / "alone")]) == 0
    assert main([*DEFAULT_PATH, "--together", "--results", str(tmp_path / "together")]) == 0
    original = together.Member.advance

    def delayed(self, sent=None):
        with torch.cuda.stream(self.stream):
            torch.cuda._sleep(20_000_000)  # about 10 ms of the GPU's clock, queued first
        return original(self, sent)
    monkeypatch.setattr(together.Member, "advance", delayed)
    assert main([*DEFAULT_PATH, "--together", "--results", str(tmp_path / "delayed")]) == 0
    alone, joint, delayed_runs = (run_dirs(tmp_path / d) for d in ("alone", "together", "delayed"))
    assert set(alone) == set(joint) == set(delayed_runs)
    for run_id, folder in alone.items():
        a, b = (pd.read_csv(f / results.LOSSES_FILE) for f in (folder, joint[run_id]))
        assert list(a.columns) == list(b.columns)
        assert ((a - b).abs() <= 1e-3 * (1 + a.abs())).all().all(), run_id
        m, n = (pd.read_csv(f / results.METRICS_FILE) for f in (folder, joint[run_id]))
        assert ((m.accuracy - n.accuracy).abs() <= 1.0).all(), run_id
        for name in (results.LOSSES_FILE, results.METRICS_FILE):
            assert (joint[run_id] / name).read_bytes() == (delayed_runs[run_id] / name).read_bytes()
        status = json.loads((joint[run_id] / results.STATUS_FILE).read_text())
        alone_peak = json.loads((folder / results.STATUS_FILE).read_text())["peak_memory_mb"]
        assert 0 < status["peak_memory_mb"] <= status["group_peak_memory_mb"] < 20_000, run_id
        # its own tensors: no more than the run alone held with the dataset beside them
        assert status["peak_memory_mb"] <= alone_peak * 1.05 + 1, run_id


def test_a_run_trained_on_the_gpu_resumes_and_is_evaluated_on_the_cpu(tmp_path, fast_runs,  # noqa: F811
                                                                       capsys):
    """Trained on CUDA and stopped after its first epoch's checkpoint, a run resumes on the CPU
    (its random streams restart, said in one line), and the reverse; a run trained on CUDA is
    evaluated on the CPU."""
    argv = ["run", "--methods", "szabo", "--dataset", "mnist", "--preset", "smoke", "--epochs", "2"]

    def stopped(first, then, folder):
        with dies_after_first_epoch():
            assert main([*argv, "--device", first, "--results", str(folder)]) == 1
        assert main([*argv, "--device", then, "--results", str(folder)]) == 0
        (run_dir,) = run_dirs(folder).values()
        assert f"checkpoint written on {first}, resumed on {then}" in (run_dir / "run.log").read_text()
        return run_dir

    stopped("cuda", "cpu", tmp_path / "to_cpu")
    stopped("cpu", "cuda", tmp_path / "to_cuda")
    trained = tmp_path / "trained"
    assert main([*argv, "--device", "cuda", "--results", str(trained)]) == 0
    (run_dir,) = run_dirs(trained).values()
    kept = tmp_path / "metrics.csv"
    shutil.copy(run_dir / results.METRICS_FILE, kept)
    assert main(["evaluate", "--results", str(trained), "--evaluations", "probes", "--force",
                 "--device", "cpu"]) == 0
    on_cpu, on_gpu = (pd.read_csv(p) for p in (run_dir / results.METRICS_FILE, kept))
    assert ((on_cpu.accuracy - on_gpu.accuracy).abs() <= 2.0).all()  # other device, other rounding
    capsys.readouterr()
