"""Probe sensitivity: probes of three capacities read at several budgets of one training
(bench.metrics.probes.accuracy_curves), and the report's figure and sentence on whether the
methods' order depends on the probe."""
import json

import pandas as pd
import pytest
import torch
from torch import nn

from bench.evaluations.probes import CODES
from bench.metrics.probes import CAPACITIES, LatentCode, ProbeTask, accuracy_curves
from bench.report.document import to_markdown
from bench.report.page import build
from bench.store import results


def parameters(capacity: str) -> int:
    return sum(p.numel() for p in CAPACITIES[capacity](16, 10).parameters())


def test_capacities_grow():
    assert parameters("linear") < parameters("paper") < parameters("wide")
    assert [type(m) for m in CAPACITIES["linear"](16, 10)] == [nn.Linear]


def task(code: torch.Tensor, labels: torch.Tensor, std=None) -> ProbeTask:
    half = len(labels) // 2
    return ProbeTask(LatentCode(code[:half], None if std is None else std[:half]), labels[:half],
                     LatentCode(code[half:], None if std is None else std[half:]), labels[half:], 0)


def accuracy_curve(one: ProbeTask, num_classes: int, **options) -> dict:
    return accuracy_curves([one], num_classes, **options)[0]


def curve_alone(one: ProbeTask, num_classes: int, *, capacity, budgets, batch_size, lr) -> dict:
    """The straightforward probe of ``capacity``: its own model and loop, read at ``budgets``."""
    from bench.metrics.probes import accuracy, predict
    generator = torch.Generator().manual_seed(one.seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(one.seed)
        model = CAPACITIES[capacity](one.width, num_classes)
    optimiser = torch.optim.Adam(model.parameters(), lr=lr)
    n = one.train_labels.numel()
    batches, read = n // batch_size, {}
    for epoch in range(1, max(budgets) + 1):
        model.train()
        features = one.train.draw(generator)
        order = torch.randperm(n, generator=generator)[:batches * batch_size]
        for rows in order.view(batches, -1):
            loss = nn.functional.cross_entropy(model(features[rows]), one.train_labels[rows])
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
        if epoch in budgets:
            read[epoch] = (accuracy(predict(model, one.train.draw(generator)), one.train_labels),
                           accuracy(predict(model, one.test.draw(generator)), one.test_labels))
    return read


@pytest.mark.parametrize("capacity", list(CAPACITIES))
def test_each_capacity_reads_the_label_and_not_noise(capacity):
    generator = torch.Generator().manual_seed(0)
    labels = torch.randint(0, 10, (1024,), generator=generator)
    one_hot = nn.functional.one_hot(labels, 10).float()
    noise = torch.randn(1024, 10, generator=generator)
    read = accuracy_curve(task(one_hot, labels), 10, capacity=capacity, budgets=(2, 20),
                          batch_size=64, lr=1e-2)
    assert sorted(read) == [2, 20] and read[20][1] == 100.0
    guessed = accuracy_curve(task(noise, labels), 10, capacity=capacity, budgets=(20,),
                             batch_size=64, lr=1e-2)
    assert guessed[20][1] < 20.0  # chance is 10 %


@pytest.mark.parametrize("capacity", list(CAPACITIES))
def test_a_capacitys_probes_stacked_are_each_probe_trained_alone(capacity, float64):
    """The sweep fits every code's probe of a capacity (and, with runs trained together, every
    run's) as one stacked model: each probe reads what it reads alone, at every budget, whatever
    its code's width, seed or sampling."""
    generator = torch.Generator().manual_seed(3)
    labels = torch.randint(0, 10, (600,), generator=generator)
    tasks = []
    for seed, width, sampled in ((0, 6, False), (1, 9, True), (2, 6, False)):
        code = torch.randn(600, width, generator=generator)
        code[:, 0] += labels * (seed + 1) / 4
        std = torch.full((600, width), 0.5) if sampled else None
        one = task(code, labels, std)
        tasks.append(ProbeTask(one.train, one.train_labels, one.test, one.test_labels, seed))
    options = dict(capacity=capacity, budgets=(1, 3), batch_size=50, lr=1e-3)
    stacked = accuracy_curves(tasks, 10, **options)
    assert stacked == [curve_alone(one, 10, **options) for one in tasks]
    assert len({tuple(curve[3]) for curve in stacked}) == len(tasks)


def test_the_budgets_are_readings_of_one_training():
    """Reading the accuracy after 2 epochs leaves the training as it was: its 5-epoch reading
    equals that of a training read at 5 alone (a deterministic code: reading draws nothing)."""
    generator = torch.Generator().manual_seed(1)
    labels = torch.randint(0, 10, (512,), generator=generator)
    code = torch.randn(512, 8, generator=generator) + labels[:, None] * 0.3
    both = accuracy_curve(task(code, labels), 10, capacity="paper", budgets=(2, 5), batch_size=64,
                          lr=1e-3)
    alone = accuracy_curve(task(code, labels), 10, capacity="paper", budgets=(5,), batch_size=64,
                           lr=1e-3)
    assert both[5] == alone[5]


def fake_sensitivity(results_dir, run_id, method, seed, accuracy_of, settings=None,
                     capacities=tuple(CAPACITIES), table=50.0):
    """A run folder with probe_sensitivity.csv: accuracy_of(code, capacity, epochs) -> percent;
    every latent probe of metrics.csv reads ``table``."""
    run_dir = results.runs_dir(results_dir) / run_id
    run_dir.mkdir(parents=True)
    base = dict(run_id=run_id, method=method, dataset="mnist", preset="quick", seed=seed, z_dim=16,
                s_dim=16)
    pd.DataFrame([dict(base, probe=p, split=sp, accuracy=table) for p in CODES
                  for sp in results.SPLITS]).to_csv(run_dir / results.METRICS_FILE, index=False)
    pd.DataFrame([dict(base, probe=code, capacity=capacity, epochs=epochs, split=split,
                       accuracy=accuracy_of(code, capacity, epochs))
                  for code in CODES for capacity in capacities for epochs in (5, 20, 50, 100)
                  for split in results.SPLITS]).to_csv(run_dir / "probe_sensitivity.csv", index=False)
    (run_dir / "config.json").write_text(json.dumps({
        "method": method, "dataset": "mnist", "preset": "quick", "seed": seed, "variational_z": True,
        "method_config": {"z_dim": 16, "s_dim": 16, **(settings or {})}}))
    (run_dir / "env.json").write_text(json.dumps({"device": "cpu"}))
    (run_dir / "status.json").write_text(json.dumps({"state": "complete", "train_seconds": 1}))


def test_the_report_says_which_pairs_change_places_and_draws_the_figure(tmp_path):
    """ccvae's z leaks less than mathieu's under the table's probe and under every probe of the
    sweep but the linear one at 5 epochs, where the seeds separate the other order."""
    for seed in (0, 1):
        fake_sensitivity(tmp_path, f"ccvae-{seed}", "ccvae", seed,
                         lambda code, capacity, epochs: 30.0 + seed, table=30.0 + seed)
        fake_sensitivity(tmp_path, f"mathieu-{seed}", "mathieu", seed,
                         lambda code, capacity, epochs: 20.0 + seed if (capacity, epochs) == (
                             "linear", 5) else 40.0 + seed, table=40.0 + seed)
    text = to_markdown(build(tmp_path), tmp_path)
    assert ("By the z sample's leakage: under the linear probe at 5 epochs, none of 1 pair in "
            "the same order, 1 in the other, none tied; under the linear probe at 20 epochs, 1 of "
            "1 pair in the same order") in text
    assert ("changes places: mathieu 16/16 and ccvae 16/16 (under the linear probe at 5 epochs)"
            in text)
    assert (tmp_path / "figures" / "probe-sensitivity-mnist-quick-z16-s16.png").stat().st_size > 0
    assert "### How the probes' numbers depend on the probe" in text
    assert "linear · 5" in text


def test_the_same_order_under_every_probe_is_said(tmp_path):
    fake_sensitivity(tmp_path, "ccvae-0", "ccvae", 0, lambda code, capacity, epochs: 30.0,
                     table=30.0)
    fake_sensitivity(tmp_path, "mathieu-0", "mathieu", 0, lambda code, capacity, epochs: 40.0,
                     table=40.0)
    text = to_markdown(build(tmp_path), tmp_path)
    assert ("By the z sample's leakage: the same order under the linear probe at 5 epochs, "
            "the linear probe at 20 epochs") in text and "(1 pair)." in text


def test_text_from_run_files_neither_breaks_the_figure_nor_adds_a_probe(tmp_path):
    """A setting holding an unbalanced formula names an experiment in the figure's legend, and a
    capacity the evaluation never writes is in a run's file: the report is still written, with
    the figure, and the unknown capacity is neither drawn nor counted."""
    fake_sensitivity(tmp_path, "ccvae-0", "ccvae", 0, lambda code, capacity, epochs: 30.0,
                     settings={"kl_weight": "$\\frac{1"}, table=30.0)
    fake_sensitivity(tmp_path, "ccvae-1", "ccvae", 0, lambda code, capacity, epochs: 40.0,
                     settings={"kl_weight": 3.0}, capacities=(*CAPACITIES, "evil"), table=40.0)
    text = to_markdown(build(tmp_path), tmp_path)
    assert (tmp_path / "figures" / "probe-sensitivity-mnist-quick-z16-s16.png").stat().st_size > 0
    assert "the same order under the linear probe" in text and "evil probe" not in text


# The ranking sentences' rules (issue 43, item 5), each on runs whose every code scores the same:
# ``table`` the run's latent probe (metrics.csv, the paper probe at the table's own budget), the
# reference; ``sweep`` every other probe of the sweep.
def ranked_runs(results_dir, table: dict[str, list[float]], sweep: dict[str, list[float]]):
    """A run per method and seed: ``table[method][seed]`` and ``sweep[method][seed]``."""
    for method, values in table.items():
        for seed, (reference, other) in enumerate(zip(values, sweep[method])):
            fake_sensitivity(results_dir, f"{method}-{seed}", method, seed,
                             lambda code, capacity, epochs: reference if capacity == "paper"
                             else other, table=reference)


def order_paragraph(results_dir) -> str:
    text = to_markdown(build(results_dir), results_dir)
    found = [line for line in text.splitlines() if "How the methods' order depends on the probe"
             in line]
    assert len(found) == 1, text
    return found[0]


def test_a_tie_is_not_agreement(tmp_path):
    """mathieu and szabo differ under the table's probe and tie under the sweep's: of three
    pairs two keep their order and one is neither kept nor swapped; never "the same order"."""
    ranked_runs(tmp_path, {"ccvae": [10, 11], "mathieu": [20, 21], "szabo": [30, 31]},
                {"ccvae": [10, 11], "mathieu": [30, 31], "szabo": [30, 31]})
    paragraph = order_paragraph(tmp_path)
    assert "the same order under" not in paragraph
    assert "under the linear probe at 5 epochs, 2 of 3 pairs in the same order, none in the other, " \
        "1 tied" in paragraph


def test_a_probe_under_which_every_method_scores_the_same_gives_no_order(tmp_path):
    ranked_runs(tmp_path, {"ccvae": [10, 11], "mathieu": [20, 21]},
                {"ccvae": [25, 26], "mathieu": [25, 26]})
    paragraph = order_paragraph(tmp_path)
    assert "the same order under" not in paragraph
    assert "under the linear probe at 5 epochs, no order (every experiment scores the same)" \
        in paragraph


def test_a_pair_changes_places_only_where_the_seeds_separate_it_under_both_probes(tmp_path):
    """Under the sweep's probes mathieu's mean falls below ccvae's by half a point, with seeds
    ten points apart: in the other order by the means, not separated, so not a change of
    places."""
    ranked_runs(tmp_path, {"ccvae": [30, 31], "mathieu": [40, 41]},
                {"ccvae": [30, 40], "mathieu": [36, 33]})
    paragraph = order_paragraph(tmp_path)
    assert "changes places:" not in paragraph and "no pair changes places" in paragraph
    assert "in the other order by the means, not separated by the seeds under both: " \
           "mathieu 16/16 and ccvae 16/16" in paragraph


def test_separated_under_both_probes_a_pair_changes_places(tmp_path):
    ranked_runs(tmp_path, {"ccvae": [30, 31], "mathieu": [40, 41]},
                {"ccvae": [40, 41], "mathieu": [20, 21]})
    paragraph = order_paragraph(tmp_path)
    assert "changes places: mathieu 16/16 and ccvae 16/16 (under the linear probe" in paragraph


def test_with_one_seed_a_change_of_places_cannot_be_told(tmp_path):
    ranked_runs(tmp_path, {"ccvae": [30], "mathieu": [40]}, {"ccvae": [40], "mathieu": [30]})
    paragraph = order_paragraph(tmp_path)
    assert "cannot tell (fewer than two seeds): mathieu 16/16 and ccvae 16/16" in paragraph
    assert "no pair changes places" not in paragraph


def test_the_reference_is_the_paper_probe_at_the_tables_own_budget(tmp_path):
    """metrics.csv (the table's probe, the run's own probe epochs) orders ccvae below mathieu;
    every probe of the sweep the other way, the sweep's paper probe at its largest budget too:
    against the table, the pair changes places under every other probe."""
    ranked_runs(tmp_path, {"ccvae": [30, 31], "mathieu": [40, 41]},
                {"ccvae": [40, 41], "mathieu": [20, 21]})
    for run in (tmp_path / "runs").iterdir():  # the sweep's paper probe as its other probes
        table = pd.read_csv(run / "probe_sensitivity.csv")
        other = table[table.capacity == "linear"].set_index(["probe", "epochs", "split"]).accuracy
        table["accuracy"] = [other[row.probe, row.epochs, row.split] for row in table.itertuples()]
        table.to_csv(run / "probe_sensitivity.csv", index=False)
    paragraph = order_paragraph(tmp_path)
    assert "against the paper probe of the table" in paragraph
    assert "changes places: mathieu 16/16 and ccvae 16/16" in paragraph

