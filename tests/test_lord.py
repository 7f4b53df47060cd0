"""LORD against its specification (docs/methods.md, "LORD"): groups counted from the pairs, the
two stages and what each trains, the stage-1 noise in training only, CUDA-graph buffers across
the stage change, and a run that writes both stages and the codes' leakage."""
import pandas as pd
import pytest
import torch

from bench.cli import main
from bench.run.build import build
from bench.spec.config import resolve
from bench.run.graphs import EAGER_STEPS, GraphedStep
from bench.store import results
from datasets.samplers import PairSampler
from methods import PairGraph
from methods.lord import AMORTISATION, LATENT_OPTIMISATION
from tests.helpers import changed, snapshot


def make(data, seed=0, **overrides):
    return build(resolve("lord", data.name, "smoke", seed, overrides), data, torch.device("cpu"))


def test_components_of_a_hand_made_graph():
    graph = PairGraph(6, torch.tensor([4, 0, 3]), torch.tensor([1, 2, 5]))
    # {0, 2}, {1, 4}, {3, 5}: numbered by each group's lowest image.
    assert graph.components().tolist() == [0, 1, 0, 2, 1, 2]
    assert PairGraph(3, torch.tensor([], dtype=torch.long),
                     torch.tensor([], dtype=torch.long)).components().tolist() == [0, 1, 2]


def test_the_groups_counted_from_the_pairs_are_the_classes(small_mnist):
    method, _ = make(small_mnist)
    labels = small_mnist.train_labels
    assert int(method.group.max()) + 1 == len(labels.unique()) == 10
    same_group = method.group[:, None] == method.group[None, :]
    assert torch.equal(same_group, labels[:, None] == labels[None, :])
    assert method.networks.s_embeddings.num_embeddings == 10
    assert method.networks.z_codes.num_embeddings == len(labels)


def test_the_groups_do_not_depend_on_the_label_values(small_mnist):
    """Only the partition reaches LORD: renaming the classes gives the same groups."""
    renamed = (small_mnist.train_labels * 7 + 3) % 10  # a permutation of 0..9
    generator = torch.Generator().manual_seed(0)
    graphs = [PairGraph(len(labels), *PairSampler(labels, 64, generator).graph())
              for labels in (small_mnist.train_labels, renamed)]
    assert torch.equal(graphs[0].components(), graphs[1].components())


def test_lord_without_a_pair_graph_is_refused():
    from methods.lord import LORD, LORDConfig
    with pytest.raises(ValueError, match="pair graph"):
        LORD(LORDConfig(), (1, 28, 28), torch.device("cpu"), seed=0)


def test_each_stage_trains_its_own_networks(small_mnist):
    method, feed = make(small_mnist, epochs=1)
    assert method.config.training_epochs == 2 and method.phase == LATENT_OPTIMISATION
    before = snapshot(method.networks)
    losses = method.train_step(feed)
    assert losses["stage"] == LATENT_OPTIMISATION
    trained = {name.split(".")[0] for name in changed(before, method.networks)}
    assert trained == {"decoder", "s_embeddings", "z_codes"}
    assert losses["z_regression"] == 0 and losses["s_regression"] == 0
    assert torch.isclose(losses["total"], losses["reconstruction"]
                         + method.config.code_penalty * losses["code_penalty"])

    method.end_epoch()
    assert method.phase == AMORTISATION
    before = snapshot(method.networks)
    losses = method.train_step(feed)
    assert losses["stage"] == AMORTISATION and losses["code_penalty"] == 0
    assert ({name.split(".")[0] for name in changed(before, method.networks)}
            == {"encoder", "s_encoder", "decoder"})
    assert torch.isclose(losses["total"], losses["reconstruction"] + method.config.regression_weight
                         * (losses["z_regression"] + losses["s_regression"]))


def test_gradients_reach_every_parameter_each_stage_trains(small_mnist):
    method, feed = make(small_mnist, epochs=1)
    for stage, networks in ((LATENT_OPTIMISATION, ("decoder", "s_embeddings", "z_codes")),
                            (AMORTISATION, ("encoder", "s_encoder", "decoder"))):
        assert method.phase == stage
        i1, i2, x1, x2 = feed.indexed_pair()
        index, x = torch.cat([i1, i2]), torch.cat([x1, x2])
        loss = (method.latent_optimisation_loss(index, x) if stage == LATENT_OPTIMISATION
                else method.amortisation_loss(index, x))["total"]
        method.networks.zero_grad(set_to_none=True)
        loss.backward()
        for network in networks:
            for name, parameter in method.networks[network].named_parameters():
                assert parameter.grad is not None and parameter.grad.abs().sum() > 0, (network, name)
        method.epochs_done += 1  # the next stage, without stepping a schedule


def test_stage_two_regresses_each_images_own_stage_one_codes(small_mnist, monkeypatch):
    """The oracle is written here, not asked of ``method.codes``: the image fed as x[j] is the
    training image index[j], and the targets the encoder regresses are row index[j] of the z code
    table and the row of its class in the s embedding table."""
    import types
    import torch.nn.functional as F
    import methods.lord as lord_module

    method, feed = make(small_mnist, epochs=1)
    n, d_z = method.networks.z_codes.weight.shape
    with torch.no_grad():  # row r of each table holds r: a target names the row it came from
        method.networks.z_codes.weight.copy_(torch.arange(n, dtype=torch.float32)[:, None].repeat(1, d_z))
        s_rows = method.networks.s_embeddings.weight
        s_rows.copy_(torch.arange(len(s_rows), dtype=torch.float32)[:, None].repeat(1, s_rows.shape[1]))
    targets = []
    monkeypatch.setattr(lord_module, "F", types.SimpleNamespace(
        l1_loss=F.l1_loss, mse_loss=lambda got, target: targets.append(target) or F.mse_loss(got, target)))
    method.epochs_done += 1  # stage 2, without stepping a schedule
    assert method.phase == AMORTISATION
    i1, i2, x1, x2 = feed.indexed_pair()
    index, x = torch.cat([i1, i2]), torch.cat([x1, x2])
    assert torch.equal(x, small_mnist.train_images[index])  # image j is training image index[j]
    method.amortisation_loss(index, x)
    z_target, s_target = targets
    assert torch.equal(z_target[:, 0].long(), index) and torch.equal(z_target[:, -1].long(), index)
    # One s row per class, a different one for each class (the groups are the classes here).
    labels = small_mnist.train_labels[index]
    row = s_target[:, 0].long()
    for label in labels.unique():
        assert len(row[labels == label].unique()) == 1
    assert len(row.unique()) == len(labels.unique())


def test_the_stage_one_noise_is_in_training_only(small_mnist):
    method, feed = make(small_mnist)
    seen = []
    hook = method.networks.decoder.register_forward_pre_hook(lambda module, args: seen.append(args[0]))
    i1, i2, x1, x2 = feed.indexed_pair()
    index = torch.cat([i1, i2])
    with torch.no_grad():
        method.latent_optimisation_loss(index, torch.cat([x1, x2]))
        z, _ = method.codes(index)
    hook.remove()
    noise = seen[0] - z
    assert 0.8 < float(noise.std()) < 1.2 and abs(float(noise.mean())) < 0.2  # N(0, code_noise^2)
    # Outside training the codes are the codes: no draw, the same value twice.
    state = method.generator.get_state()
    assert torch.equal(method.codes(index)[0], z)
    assert torch.equal(method.training_codes(), method.networks.z_codes.weight)
    assert torch.equal(method.generator.get_state(), state)


def test_fixed_buffer_steps_across_the_stage_change_are_plain_training(small_mnist):
    """The CUDA-graph path (eager through fixed buffers, on the CPU) records and captures each
    stage anew: both stages give plain training's losses and parameters, bit for bit."""
    (plain, plain_feed), (fixed, fixed_feed) = make(small_mnist, seed=3), make(small_mnist, seed=3)
    step = GraphedStep(fixed, fixed_feed, capture=False)
    for stage in (LATENT_OPTIMISATION, AMORTISATION):
        for iteration in range(EAGER_STEPS + 2):
            expected, got = plain.train_step(plain_feed), step()
            assert got["stage"] == stage
            assert all(torch.equal(got[k], expected[k]) for k in expected), (stage, iteration)
        assert step.source is not None and step.phase == stage
        plain.end_epoch()
        fixed.end_epoch()
    a, b = plain.networks.state_dict(), fixed.networks.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    # Stage 2 draws no noise: had the stage-1 recording been kept, the buffers would have drawn it.
    assert torch.equal(plain.generator.get_state(), fixed.generator.get_state())


def test_a_run_trains_both_stages_and_probes_the_codes(tmp_path):
    assert main(["run", "--methods", "lord,ccvae", "--dataset", "mnist", "--preset", "smoke",
                 "--device", "cpu", "--results", str(tmp_path)]) == 0
    runs = {path.name.split("-")[0]: path for path in results.runs_dir(tmp_path).iterdir()}
    losses = pd.read_csv(runs["lord"] / results.LOSSES_FILE)
    assert losses.groupby("epoch")["stage"].unique().map(list).to_dict() == {1: [1.0], 2: [2.0]}
    leakage = pd.read_csv(runs["lord"] / "code_leakage.csv")
    assert list(leakage.probe) == ["z_code", "z_code"] and list(leakage.split) == ["train", "test"]
    assert leakage.accuracy.between(0, 100).all()
    assert not (runs["ccvae"] / "code_leakage.csv").exists()  # it learns no per-image codes


@pytest.mark.parametrize("codes, low, high", [("one-hot", 95.0, 100.0), ("noise", 0.0, 20.0)])
def test_code_leakage_knows_a_code_that_is_the_label_from_noise(codes, low, high, small_mnist):
    """Known answers for the code probe: one-hot class codes give the class away (above 95 %),
    independent noise leaks nothing beyond chance (10 classes: near 10 %)."""
    from types import SimpleNamespace
    from bench.evaluations.base import Context
    from bench.evaluations.code_leakage import code_leakage_rows
    labels = small_mnist.train_labels
    generator = torch.Generator().manual_seed(0)
    table = (torch.nn.functional.one_hot(labels, 10).float() if codes == "one-hot"
             else torch.randn(len(labels), 10, generator=generator))
    config = resolve("lord", "mnist", "smoke", 0, {"probe_epochs": 20})
    context = Context(config=config, method=SimpleNamespace(training_codes=lambda: table),
                      data=small_mnist, train=None, test=None)
    accuracy = {row["split"]: row["accuracy"] for row in code_leakage_rows(context).rows}
    assert low <= accuracy["test"] <= high, accuracy


def test_the_penalty_takes_the_code_the_decoder_sees(small_mnist):
    """The authors' PyTorch code penalises the noisy code (the decoder's input); the noiseless
    variant penalises the code alone. A penalty on the other code would miss by about d_z."""
    for penalised in ("noisy", "noiseless"):
        method, feed = make(small_mnist, penalised_code=penalised)
        seen = []
        hook = method.networks.decoder.register_forward_pre_hook(lambda module, args: seen.append(args[0]))
        index, _, x, _ = feed.indexed_pair()
        with torch.no_grad():
            penalty = method.latent_optimisation_loss(index, x)["code_penalty"]
            z, _ = method.codes(index)
        hook.remove()
        expected = (seen[0] if penalised == "noisy" else z).pow(2).sum(dim=1).mean()
        other = (z if penalised == "noisy" else seen[0]).pow(2).sum(dim=1).mean()
        assert torch.isclose(penalty, expected) and not torch.isclose(penalty, other, rtol=0.1)


@pytest.mark.parametrize("batches, images_a_step", [("images", 32), ("pairs", 64)])
def test_a_step_trains_on_shuffled_images_or_on_both_images_of_each_pair(batches, images_a_step,
                                                                          small_mnist):
    """"images" (the authors'): batch_size images a step, the pair sampler's anchors, so each
    image at most once an epoch; "pairs": both images of batch_size pairs."""
    method, feed = make(small_mnist, batches=batches, batch_size=32)
    visited = []
    codes = method.codes
    method.codes = lambda index: visited.append(index) or codes(index)
    for _ in range(feed.pairs.batches_per_epoch):
        method.train_step(feed)
    assert all(len(index) == images_a_step for index in visited)
    everything = torch.cat(visited).tolist()
    if batches == "images":
        assert len(set(everything)) == len(everything) == feed.pairs.batches_per_epoch * 32
    else:
        assert len(set(everything)) < len(everything)


def test_separate_encoders_give_each_code_its_own_network(small_mnist):
    """The authors' two encoders: s comes from its own network, so changing the z encoder leaves
    s alone; with one trunk (separate_encoders=False) it does not."""
    x = small_mnist.test_images[:4]
    for separate in (True, False):
        method, _ = make(small_mnist, separate_encoders=separate)
        before = method.encode(x)
        with torch.no_grad():
            for parameter in method.networks.encoder.trunk.parameters():
                parameter.add_(0.5)
        after = method.encode(x)
        assert not torch.allclose(before.z_mean, after.z_mean)
        assert torch.allclose(before.s, after.s) == separate
        assert ("s_encoder" in method.networks) == separate
