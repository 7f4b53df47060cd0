"""Probe sensitivity: a converged linear probe and k nearest neighbours with k chosen by
leave-one-out (bench/metrics/probe_kinds.py) on codes whose answer is known, the evaluation's
rows, and the report's figure and sentences on whether the methods' order depends on the probe,
against the paper probe of the table (metrics.csv) and by the rules of the ranking sentences."""
import json

import numpy as np
import pandas as pd
import pytest
from sklearn.neighbors import KNeighborsClassifier

from bench.evaluations.probe_sensitivity import (CAPACITIES, PROBE_SENSITIVITY,
                                                 sensitivity_rows)
from bench.evaluations.probes import CODES
from bench.metrics.probe_kinds import (knn_probe, linear_probe, standardised, vote,
                                       without_self)
from bench.report.document import to_markdown
from bench.report.page import build
from bench.store import results

K = 10


def sample(n: int, signal: float, seed: int = 0, width: int = 8):
    """n codes of ``width`` dimensions: a class-dependent mean times ``signal`` plus unit noise,
    the labels uniform over K classes; the first three quarters train, the rest test."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, K, n)
    codes = signal * rng.normal(size=(K, width))[labels] + rng.normal(size=(n, width))
    cut = 3 * n // 4
    return codes[:cut], labels[:cut], codes[cut:], labels[cut:]


@pytest.mark.parametrize("probe", [linear_probe, lambda *a: knn_probe(*a, seed=0)],
                         ids=["linear", "knn"])
def test_each_probe_reads_the_label_and_not_noise(probe):
    read = probe(*sample(2000, 3.0))
    assert read.test > 95.0 and read.train > 95.0
    guessed = probe(*sample(2000, 0.0))
    assert guessed.test < 16.0  # chance is 10 %: 500 test codes, 2.7 standard deviations above


def test_the_probes_read_a_code_whatever_its_scale():
    """Standardised per dimension: a code and the same code with its dimensions scaled by 0.01
    and by 100 read the same."""
    train, labels, test, test_labels = sample(1200, 1.0)
    scale = np.array([0.01, 100.0] * 4)
    for probe in (linear_probe, lambda *a: knn_probe(*a, seed=0)):
        assert probe(train, labels, test, test_labels).test == pytest.approx(
            probe(train * scale, labels, test * scale, test_labels).test, abs=0.2)
    centred, _ = standardised(train * scale, test * scale)
    assert np.allclose(centred.std(axis=0), 1.0) and np.allclose(centred.mean(axis=0), 0.0)


def test_the_linear_probe_converges():
    read = linear_probe(*sample(2000, 1.0))
    assert 0 < read.chosen < 1000  # L-BFGS's iterations, fewer than its limit


def test_the_nearest_neighbours_vote_is_scikit_learns():
    """At each k the test accuracy is scikit-learn's KNeighborsClassifier's on the same
    standardised codes (ties go to the smallest label in both)."""
    train, labels, test, test_labels = sample(1600, 0.5)
    a, b = standardised(train, test)
    for k in (1, 4, 15):
        theirs = 100 * np.mean(KNeighborsClassifier(k, algorithm="brute").fit(a, labels)
                               .predict(b) == test_labels)
        assert knn_probe(train, labels, test, test_labels, seed=0, candidates=(k,)).test \
            == pytest.approx(theirs, abs=1e-9)


def test_k_is_chosen_by_leaving_each_code_out():
    """Every training code is its own nearest neighbour: left in, k = 1 would read the training
    labels perfectly (100 %, noise included) and always be chosen; left out, it reads noise at
    chance, and a larger k is chosen where the classes overlap."""
    found = np.array([[0, 5, 6], [9, 1, 2], [3, 4, 2]])  # row 1's query sits second
    assert without_self(found, np.array([0, 1, 7])).tolist() == [[5, 6], [9, 2], [3, 4]]
    assert vote(np.array([[2, 1, 1], [0, 1, 2]]), 3, (1, 3)) == {1: pytest.approx([2, 0]),
                                                                 3: pytest.approx([1, 0])}
    noise = knn_probe(*sample(2000, 0.0), seed=0)
    assert noise.train < 16.0
    overlapping = knn_probe(*sample(4000, 0.6), seed=0)
    assert overlapping.chosen > 1


class Encoded:
    """A trained run as sensitivity_rows sees it: encodings of a code that holds the label."""

    def __init__(self, deterministic: bool):
        import torch

        from methods import Encoding
        train, labels, test, test_labels = sample(1200, 3.0, width=4)
        def encode(codes):
            codes = torch.tensor(codes, dtype=torch.float32)
            return Encoding(s=codes, z_mean=torch.randn(len(codes), 4),
                            z_logvar=None if deterministic else torch.zeros(len(codes), 4))
        self.train, self.test = encode(train), encode(test)
        self.data = type("Data", (), dict(train_labels=torch.tensor(labels),
                                           test_labels=torch.tensor(test_labels), num_classes=K))
        self.probe_options = dict(epochs=1, batch_size=64, lr=1e-3, seed=0)

    def seed(self, stream):
        return 7

    def stop(self):
        pass


@pytest.mark.parametrize("deterministic", [False, True])
def test_the_evaluation_reads_every_code_with_both_probes(deterministic):
    outcome = sensitivity_rows(Encoded(deterministic))
    table = pd.DataFrame(outcome.rows)
    assert len(table) == len(CODES) * len(CAPACITIES) * 2
    assert list(dict.fromkeys(table.probe)) == ["s", "z_mean", "z_sample"]
    test = table[table.split == "test"].set_index(["probe", "capacity"]).accuracy
    assert test["s", "linear"] > 90 and test["s", "knn"] > 90  # s holds the label
    assert test["z_mean", "linear"] < 20 and test["z_mean", "knn"] < 20  # z is noise
    if deterministic:  # no sample: the sample's rows are the mean's
        assert (test["z_sample"] == test["z_mean"]).all()
    assert set(outcome.details["chosen"]) == ({"s", "z_mean"} if deterministic
                                              else {"s", "z_mean", "z_sample"})


def fake_sensitivity(results_dir, run_id, method, seed, accuracy_of, settings=None,
                     capacities=tuple(CAPACITIES), table=50.0):
    """A run folder with probe_sensitivity.csv: accuracy_of(code, capacity) -> percent; every
    latent probe of metrics.csv reads ``table``."""
    run_dir = results.runs_dir(results_dir) / run_id
    run_dir.mkdir(parents=True)
    base = dict(run_id=run_id, method=method, dataset="mnist", preset="quick", seed=seed, z_dim=16,
                s_dim=16)
    pd.DataFrame([dict(base, probe=p, split=sp, accuracy=table) for p in CODES
                  for sp in results.SPLITS]).to_csv(run_dir / results.METRICS_FILE, index=False)
    pd.DataFrame([dict(base, probe=code, capacity=capacity, split=split,
                       accuracy=accuracy_of(code, capacity))
                  for code in CODES for capacity in capacities
                  for split in results.SPLITS]).to_csv(run_dir / "probe_sensitivity.csv", index=False)
    (run_dir / "config.json").write_text(json.dumps({
        "method": method, "dataset": "mnist", "preset": "quick", "seed": seed, "variational_z": True,
        "method_config": {"z_dim": 16, "s_dim": 16, **(settings or {})}}))
    (run_dir / "env.json").write_text(json.dumps({"device": "cpu"}))
    (run_dir / "status.json").write_text(json.dumps({"state": "complete", "train_seconds": 1}))
    (run_dir / results.EVALUATION_FILE).write_text(json.dumps({
        "probe_sensitivity": {"version": PROBE_SENSITIVITY.version}}))


def test_a_run_of_the_previous_sweep_takes_no_part(tmp_path):
    """Version 2 read probes of other capacities at several budgets, its linear probe among
    them: such a run is neither counted nor drawn."""
    for method, value in (("ccvae", 30.0), ("mathieu", 40.0)):
        fake_sensitivity(tmp_path, f"{method}-0", method, 0, lambda code, capacity: value,
                         table=value)
    (tmp_path / "runs" / "mathieu-0" / results.EVALUATION_FILE).write_text(json.dumps({
        "probe_sensitivity": {"version": 2}}))
    text = to_markdown(build(tmp_path), tmp_path)
    assert "How the methods' order depends on the probe" not in text


def test_the_report_says_which_pairs_change_places_and_draws_the_figure(tmp_path):
    """ccvae's z leaks less than mathieu's under the table's probe and the linear one; under the
    k-NN probe the other way, the seeds separating both orders."""
    for seed in (0, 1):
        fake_sensitivity(tmp_path, f"ccvae-{seed}", "ccvae", seed,
                         lambda code, capacity: 30.0 + seed, table=30.0 + seed)
        fake_sensitivity(tmp_path, f"mathieu-{seed}", "mathieu", seed,
                         lambda code, capacity: 20.0 + seed if capacity == "knn" else 40.0 + seed,
                         table=40.0 + seed)
    text = to_markdown(build(tmp_path), tmp_path)
    assert ("By the z sample's leakage: under the linear probe, 1 of 1 pair in the same order, "
            "none in the other, none tied; under the k-NN probe, none of 1 pair in the same "
            "order, 1 in the other, none tied; changes places: mathieu 16/16 and ccvae 16/16 "
            "(under the k-NN probe).") in text
    assert (tmp_path / "figures" / "probe-sensitivity-mnist-quick-z16-s16.png").stat().st_size > 0
    assert "### How the probes' numbers depend on the probe" in text
    assert "| linear | knn |" in text.replace(" ", " ")


def test_the_same_order_under_every_probe_is_said(tmp_path):
    fake_sensitivity(tmp_path, "ccvae-0", "ccvae", 0, lambda code, capacity: 30.0, table=30.0)
    fake_sensitivity(tmp_path, "mathieu-0", "mathieu", 0, lambda code, capacity: 40.0,
                     table=40.0)
    text = to_markdown(build(tmp_path), tmp_path)
    assert ("By the z sample's leakage: the same order under the linear probe and the k-NN probe "
            "(1 pair).") in text


def test_text_from_run_files_neither_breaks_the_figure_nor_adds_a_probe(tmp_path):
    """A setting holding an unbalanced formula names an experiment in the figure's legend, and a
    probe the evaluation never writes is in a run's file: the report is still written, with
    the figure, and the unknown probe is neither drawn nor counted."""
    fake_sensitivity(tmp_path, "ccvae-0", "ccvae", 0, lambda code, capacity: 30.0,
                     settings={"kl_weight": "$\\frac{1"}, table=30.0)
    fake_sensitivity(tmp_path, "ccvae-1", "ccvae", 0, lambda code, capacity: 40.0,
                     settings={"kl_weight": 3.0}, capacities=(*CAPACITIES, "evil"), table=40.0)
    text = to_markdown(build(tmp_path), tmp_path)
    assert (tmp_path / "figures" / "probe-sensitivity-mnist-quick-z16-s16.png").stat().st_size > 0
    assert "the same order under the linear probe" in text
    assert "evil probe" not in text and "under evil" not in text


# The ranking sentences' rules (issue 43, item 5), each on runs whose every code scores the same:
# ``table`` the run's latent probe (metrics.csv, the paper probe at the table's own budget), the
# reference; ``sweep`` every other probe of the sweep.
def ranked_runs(results_dir, table: dict[str, list[float]], sweep: dict[str, list[float]]):
    """A run per method and seed: ``table[method][seed]`` and ``sweep[method][seed]``."""
    for method, values in table.items():
        for seed, (reference, other) in enumerate(zip(values, sweep[method])):
            fake_sensitivity(results_dir, f"{method}-{seed}", method, seed,
                             lambda code, capacity: other, table=reference)


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
    assert "under the linear probe, 2 of 3 pairs in the same order, none in the other, 1 tied" \
        in paragraph


def test_a_probe_under_which_every_method_scores_the_same_gives_no_order(tmp_path):
    ranked_runs(tmp_path, {"ccvae": [10, 11], "mathieu": [20, 21]},
                {"ccvae": [25, 26], "mathieu": [25, 26]})
    paragraph = order_paragraph(tmp_path)
    assert "the same order under" not in paragraph
    assert "under the linear probe, no order (every experiment scores the same)" in paragraph


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
    every probe of the sweep the other way: against the table, the pair changes places."""
    ranked_runs(tmp_path, {"ccvae": [30, 31], "mathieu": [40, 41]},
                {"ccvae": [40, 41], "mathieu": [20, 21]})
    paragraph = order_paragraph(tmp_path)
    assert "against the paper probe of the table" in paragraph
    assert "changes places: mathieu 16/16 and ccvae 16/16 (under the linear probe, the k-NN " \
           "probe)" in paragraph
