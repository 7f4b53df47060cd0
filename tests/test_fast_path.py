"""The GPU fast path's machinery, checked on the CPU: the discriminator's gate decided on the
device, the fixed-buffer steps that CUDA graphs replay, and optimisers that follow their device.

What needs a GPU (the capture itself, graphs on their streams, capturable Adam's kernels) is in
tests/test_gpu.py, which scripts/gpu_evidence.sh runs first when a GPU is lent."""
import dataclasses

import pytest
import torch

from bench.run.build import build, restore
from bench.spec.config import resolve
from bench.run.graphs import EAGER_STEPS, GraphedStep
from methods import METHODS
from methods.adversarial import gated_step
from methods.straightforward import STRAIGHTFORWARD
from tests.helpers import snapshot
from tests.test_equivalence import same_parameters, twins, use_sgd



def adam_pair():
    torch.manual_seed(0)
    model = torch.nn.Linear(5, 3)
    twin = torch.nn.Linear(5, 3)
    twin.load_state_dict(model.state_dict())
    return [(m, torch.optim.Adam(m.parameters(), lr=1e-2)) for m in (model, twin)]


@pytest.mark.parametrize("gates", [[False, True, False, True, True], [True, False, False, True]])
def test_gated_step_is_bit_for_bit_the_host_branch(gates):
    (gated, gated_optimiser), (branched, branched_optimiser) = adam_pair()
    x = torch.randn(8, 5)
    for gate in gates:
        for model, optimiser in ((gated, gated_optimiser), (branched, branched_optimiser)):
            optimiser.zero_grad()
            model(x).pow(2).mean().backward()
        before = [p.clone() for p in gated.parameters()]
        gated_step(gated_optimiser, torch.tensor(gate))
        if gate:
            branched_optimiser.step()
        moved = [not torch.equal(b, p) for b, p in zip(before, gated.parameters())]
        assert moved == [gate, gate]
        for p, q in zip(gated.parameters(), branched.parameters()):
            assert torch.equal(p, q)
            branched_state = branched_optimiser.state.get(q, {})
            for key, value in gated_optimiser.state[p].items():
                # a state the branch never created is Adam's starting state: zeros, step 0
                expected = branched_state.get(key, torch.zeros_like(value))
                assert torch.equal(value, expected), key


@pytest.mark.usefixtures("float64")
@pytest.mark.parametrize("gate", [0.0, 1.5])
@pytest.mark.parametrize("name", ["mathieu", "szabo"])
def test_gate_closed_or_open_matches_the_straightforward_branch(name, gate, small_mnist):
    """Never stepped (gate 0) or always (gate 1.5): the device-side gate and the straightforward
    twin's host branch give the same parameters, and a closed gate leaves D untouched."""
    (fast, fast_data), (plain, plain_data) = twins(name, small_mnist)
    for method in (fast, plain):
        method.config = dataclasses.replace(method.config, discriminator_gate=gate)
        use_sgd(method)
    before = {k: v.clone() for k, v in fast.networks.discriminator.state_dict().items()}
    for _ in range(3):
        expected = fast.train_step(fast_data)
        got = STRAIGHTFORWARD[name](plain, plain_data)
        assert float(expected["discriminator_stepped"]) == float(got["discriminator_stepped"]) \
            == (gate > 1)
    assert same_parameters(fast, plain) == []
    unchanged = all(torch.equal(before[k], v) for k, v in fast.networks.discriminator.state_dict().items())
    assert unchanged == (gate == 0.0)


def snapshot_everything(method, feed):
    return (snapshot(method.networks), method.generator.get_state(),
            feed.pairs.generator.get_state(), feed.batches.generator.get_state())


@pytest.mark.parametrize("name", sorted(METHODS))
def test_fixed_buffer_steps_are_plain_training(name, small_mnist):
    """The steps a CUDA graph would replay (eager, through the fixed buffers) give the losses,
    parameters and random-generator states of plain training, bit for bit."""
    config = resolve(name, "mnist", "smoke", 3)
    (plain, plain_feed), (fixed, fixed_feed) = [build(config, small_mnist, torch.device("cpu"))
                                                for _ in range(2)]
    step = GraphedStep(fixed, fixed_feed, capture=False)
    for iteration in range(EAGER_STEPS + 3):
        expected, got = plain.train_step(plain_feed), step()
        assert list(got) == list(expected)
        for key in expected:
            assert torch.equal(got[key], expected[key]), (iteration, key)
    assert step.source is not None  # the last steps went through the fixed buffers
    (a, *generators_a), (b, *generators_b) = (snapshot_everything(plain, plain_feed),
                                              snapshot_everything(fixed, fixed_feed))
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert all(torch.equal(x, y) for x, y in zip(generators_a, generators_b))


def test_a_step_whose_draws_change_is_refused(small_mnist):
    method, feed = build(resolve("ccvae", "mnist", "smoke", 0), small_mnist, torch.device("cpu"))
    step = GraphedStep(method, feed, capture=False)
    step()
    original = type(method).train_step

    def one_more_draw(self, data):
        data.batch()
        return original(self, data)
    method.train_step = one_more_draw.__get__(method)
    with pytest.raises(RuntimeError, match="draw different inputs"):
        step()


def test_graphs_need_cuda(small_mnist):
    method, feed = build(resolve("ccvae", "mnist", "smoke", 0), small_mnist, torch.device("cpu"))
    with pytest.raises(ValueError, match="CUDA"):
        GraphedStep(method, feed)


def test_capturable_optimisers_from_a_gpu_become_plain_on_the_cpu(small_mnist):
    """The optimiser part of a GPU checkpoint (its generators: tests/test_checkpoint_devices.py).
    A CUDA run's optimisers are capturable with tensor learning rates; loaded on the CPU they
    become plain again (and the schedule still acts), so training goes on."""
    config = resolve("ccvae", "mnist", "smoke", 0)
    method, feed = build(config, small_mnist, torch.device("cpu"))
    method.train_step(feed)
    state = method.state_dict()
    for optimiser_state in state["optimisers"].values():
        for group in optimiser_state["param_groups"]:
            group["lr"], group["capturable"] = torch.tensor(group["lr"]), True
    resumed, resumed_feed = build(config, small_mnist, torch.device("cpu"))
    restore(resumed, state)
    for optimiser in resumed.optimisers.values():
        for group in optimiser.param_groups:
            assert type(group["lr"]) is float and group["capturable"] is False
    resumed.train_step(resumed_feed)
    resumed.end_epoch()
    assert all(type(g["lr"]) is float for o in resumed.optimisers.values() for g in o.param_groups)


def test_gpu_flags_reach_every_child_run(tmp_path):
    from bench.cli import parser
    from bench.run.options import RunOptions
    config = resolve("szabo", "mnist", "quick", 1)
    argv = RunOptions(tmp_path, device_request="cuda", cuda_graphs=True, tf32=True).child_argv(config, {})
    args = parser().parse_args(list(argv))
    assert args.cuda_graphs and args.tf32 and args.device == "cuda"
    plain = parser().parse_args(list(RunOptions(tmp_path, device_request="cpu").child_argv(config, {})))
    assert not plain.cuda_graphs and not plain.tf32


def test_environment_records_the_gpu_options():
    from bench.run.environment import environment
    env = environment(torch.device("cpu"))
    assert env["cuda_graphs"] is False and env["tf32"] is None


def test_a_step_that_cannot_be_captured_fails_in_one_line(monkeypatch):
    import contextlib

    from bench.run import graphs
    from bench.errors import RunFailed

    @contextlib.contextmanager
    def refusing_capture(graph, stream):
        assert stream == "the run's stream"
        yield
        raise RuntimeError("operation not permitted when stream is capturing\nCUDA kernel errors...")
    monkeypatch.setattr(torch.cuda, "CUDAGraph", lambda: object())
    monkeypatch.setattr(torch.cuda, "graph", refusing_capture)
    with pytest.raises(RunFailed) as failure:
        graphs.capture("szabo", lambda: {"loss": torch.zeros(())}, "the run's stream")
    message = str(failure.value)
    assert message.startswith("szabo: its training step cannot be captured as a CUDA graph "
                              "(operation not permitted when stream is capturing)")
    assert "rerun without --cuda-graphs" in message and "\n" not in message


def test_fixed_buffer_steps_of_runs_interleaved_are_each_runs_plain_training(small_mnist):
    """Runs trained together with --cuda-graphs each replay their own graph through their own
    buffers, in turn: interleaved, each run's steps still give its plain training bit for bit."""
    configs = [resolve(name, "mnist", "smoke", seed) for name, seed in
               (("ccvae", 0), ("ccvae", 1), ("mathieu", 0), ("lord", 0))]
    plain = [build(config, small_mnist, torch.device("cpu")) for config in configs]
    fixed = [build(config, small_mnist, torch.device("cpu")) for config in configs]
    steps = [GraphedStep(method, feed, capture=False) for method, feed in fixed]
    expected = [[method.train_step(feed) for _ in range(EAGER_STEPS + 3)] for method, feed in plain]
    got = [[] for _ in configs]
    for _ in range(EAGER_STEPS + 3):
        for losses, step in zip(got, steps):
            losses.append(step())
    for run, (want, have) in enumerate(zip(expected, got)):
        for iteration, (a, b) in enumerate(zip(want, have)):
            assert all(torch.equal(a[k], b[k]) for k in a), (configs[run].run_id, iteration)
    for (a, *generators_a), (b, *generators_b) in zip(
            (snapshot_everything(*run) for run in plain), (snapshot_everything(*run) for run in fixed)):
        assert all(torch.equal(a[k], b[k]) for k in a)
        assert all(torch.equal(x, y) for x, y in zip(generators_a, generators_b))
