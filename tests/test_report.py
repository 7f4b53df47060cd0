"""The report from fabricated result folders (known answers; no training). The published
reference rows (results/paper/, the committed baselines) are left out here, so that what the
campaign publishes cannot change these reports: tests/test_report_references.py tests them."""
import dataclasses
import json

import pandas as pd
import pytest

from bench.report import page
from bench.report.document import to_markdown
from bench.report.page import build, load_paper_table, write_report
from bench.report.references import References
from bench.sections.experiments import CELL_SENTENCE
from bench.store import results
from bench.store.records import load_runs


@pytest.fixture(autouse=True)
def no_reference_rows(monkeypatch):
    monkeypatch.setattr(page, "references_for", lambda dataset, preset, records: References())


def render(directory):
    return to_markdown(build(directory), directory)


def fake_run(results_dir, run_id, seed, accuracies, method="ccvae", preset="paper", dims=(16, 16),
             variational=True, settings=None):
    run_dir = results.runs_dir(results_dir) / run_id
    run_dir.mkdir(parents=True)
    rows = [dict(run_id=run_id, method=method, dataset="mnist", preset=preset, seed=seed,
                 z_dim=dims[0], s_dim=dims[1], probe=probe, split=split, accuracy=accuracy)
            for (probe, split), accuracy in accuracies.items()]
    pd.DataFrame(rows, columns=list(results.METRICS_COLUMNS)).to_csv(run_dir / "metrics.csv", index=False)
    config = {"method": method, "dataset": "mnist", "preset": preset, "seed": seed,
              "variational_z": variational,
              "method_config": {"z_dim": dims[0], "s_dim": dims[1], **(settings or {})}}
    (run_dir / "config.json").write_text(json.dumps(config))
    (run_dir / "env.json").write_text(json.dumps({"device": "cpu", "git": {"revision": "abc"}}))
    (run_dir / "status.json").write_text(json.dumps({"state": "complete", "train_seconds": 60}))
    return run_dir


def accuracies(z, s, z_mean=50.0):
    return {("s", "train"): s + 1, ("s", "test"): s, ("z_mean", "train"): z_mean,
            ("z_mean", "test"): z_mean, ("z_sample", "train"): z + 1, ("z_sample", "test"): z}


def test_paper_table_is_the_papers():
    paper = load_paper_table()
    row = paper[(paper.dataset == "mnist") & (paper.method == "ccvae") & (paper.z_dim == 16)].iloc[0]
    assert (row.z_train_acc, row.z_test_acc, row.s_train_acc, row.s_test_acc) == (17.72, 17.56, 99.72, 98.35)


def test_mean_spread_and_difference_to_the_paper(tmp_path):
    fake_run(tmp_path, "ccvae-a", 0, accuracies(z=17.0, s=98.0))
    fake_run(tmp_path, "ccvae-b", 1, accuracies(z=19.0, s=99.0))
    text = render(tmp_path)
    # z test: mean 18, sample std sqrt(2), two seeds: the 95 % interval is 18 +- t(0.975, 1) x
    # sqrt(2) / sqrt(2) = 18 +- 12.7062; paper 17.56
    assert "| ccvae | 16 / 16 | 2 | 19.00 [6.29, 31.71] (paper 17.72, +1.28) | " \
           "18.00 [5.29, 30.71] (paper 17.56, +0.44) |" in text
    assert "98.50 [92.15, 100.00] (paper 98.35, +0.15)" in text  # 98.5 +- 12.7062 / 2, cut at 100
    assert CELL_SENTENCE in text


def test_one_seed_has_no_spread_and_methods_follow_the_papers_order(tmp_path):
    fake_run(tmp_path, "ccvae-a", 0, accuracies(z=20.0, s=97.0))
    fake_run(tmp_path, "szabo-a", 0, accuracies(z=96.0, s=98.0), method="szabo", dims=(64, 64),
             variational=False)
    text = render(tmp_path)
    assert "| ccvae | 16 / 16 | 1 | 21.00 (one seed) (paper 17.72, +3.28) |" in text
    assert "| szabo † | 64 / 64 | 1 | 97.00 (one seed) (paper 99.69, -2.69) | " \
           "96.00 (one seed) (paper 98.14, -2.14) |" in text
    assert "† deterministic z" in text
    assert text.index("| szabo") < text.index("| ccvae |")


def test_a_method_the_paper_did_not_run_is_marked_and_listed_after_the_papers(tmp_path):
    fake_run(tmp_path, "ccvae-a", 0, accuracies(z=20.0, s=97.0))
    fake_run(tmp_path, "mlvae-a", 0, accuracies(z=18.0, s=95.0), method="mlvae")
    text = render(tmp_path)
    assert "| mlvae | 16 / 16 | 1 | 19.00 (one seed) (no paper row) | 18.00 (one seed) (no paper row) |" in text
    assert "| ccvae | 16 / 16 | 1 | 21.00 (one seed) (paper 17.72, +3.28) |" in text
    assert "Differences the seeds" not in text  # no two experiments with two seeds
    assert text.index("| ccvae |") < text.index("| mlvae |")


def test_no_deterministic_note_without_a_deterministic_method(tmp_path):
    fake_run(tmp_path, "ccvae-a", 0, accuracies(z=20.0, s=97.0))
    assert "deterministic z" not in render(tmp_path)


def test_a_deterministic_reference_row_brings_the_note(tmp_path, monkeypatch):
    """szabo only among the reference rows (as results/paper/ gives a folder of ccvae runs):
    its row is marked, and the mark explained."""
    folder, published = tmp_path / "mine", tmp_path / "published"
    fake_run(folder, "ccvae-a", 0, accuracies(z=20.0, s=97.0))
    fake_run(published, "szabo-a", 0, accuracies(z=96.0, s=98.0), method="szabo", variational=False)
    rows = tuple(dataclasses.replace(r, reference="published/") for r in load_runs(published))
    monkeypatch.setattr(page, "references_for",
                        lambda dataset, preset, records: References(rows, ("published/",)))
    text = render(folder)
    assert "| szabo † (reference) |" in text and "† deterministic z" in text


def test_presets_are_reported_apart_and_short_ones_flagged(tmp_path):
    fake_run(tmp_path, "ccvae-a", 0, accuracies(z=17.0, s=98.0))
    fake_run(tmp_path, "ccvae-q", 0, accuracies(z=30.0, s=95.0), preset="quick")
    text = render(tmp_path)
    assert "## mnist, preset `paper`" in text and "## mnist, preset `quick`" in text
    assert "The `quick` preset trains for a fraction" in text
    assert "The `paper` preset trains for a fraction" not in text


def test_incomplete_and_failed_runs(tmp_path):
    fake_run(tmp_path, "ccvae-a", 0, accuracies(z=17.0, s=98.0))
    unfinished = fake_run(tmp_path, "ccvae-b", 1, accuracies(z=99.0, s=10.0))
    (unfinished / "status.json").unlink()
    failed = results.runs_dir(tmp_path) / "ccvae-c"
    failed.mkdir()
    (failed / "status.json").write_text(json.dumps({"state": "failed", "reason": "loss is nan"}))
    text = render(tmp_path)
    assert "| ccvae | 16 / 16 | 1 | 18.00 (one seed) (paper 17.72" in text  # the unfinished run is left out
    assert "| ccvae-c | failed | loss is nan |" in text
    assert "| ccvae-b | unfinished | no status: interrupted, or still running |" in text


def test_write_report_writes_the_file(tmp_path):
    fake_run(tmp_path, "ccvae-a", 0, accuracies(z=17.0, s=98.0))
    markdown, page = write_report(tmp_path)
    assert markdown == tmp_path / "report.md" and "paper 98.35" in markdown.read_text()
    assert page == tmp_path / "report.html" and "paper 98.35" in page.read_text()
    assert not list(tmp_path.glob(".*.tmp"))


def test_one_sentence_says_what_a_cell_holds_in_both_files_and_nothing_else_does(tmp_path):
    """report.md and report.html say what a cell is in the same words (the README too:
    tests/test_readme.py); no other wording of it is left (the header once said "mean ±
    standard deviation" where the cells held a 95 % interval)."""
    fake_run(tmp_path, "ccvae-a", 0, accuracies(z=17.0, s=98.0))
    fake_run(tmp_path, "ccvae-b", 1, accuracies(z=19.0, s=99.0))
    markdown, page = (path.read_text() for path in write_report(tmp_path))
    for text in (markdown, page):
        assert CELL_SENTENCE in text
        assert "±" not in text and "standard deviation" not in text and "Cells read" not in text
        assert "Each cell:" not in text
    assert "95 % confidence interval" in CELL_SENTENCE and '"one seed"' in CELL_SENTENCE


def test_empty_results_say_how_to_start(tmp_path):
    assert "No complete runs yet" in render(tmp_path)


@pytest.mark.parametrize("module", ["bench.report.page", "bench.store.results"])
def test_report_does_not_import_torch(module):
    import subprocess
    import sys
    from tests.conftest import REPO
    code = f"import sys, {module}; sys.exit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], cwd=REPO).returncode == 0


def test_runs_table_says_how_a_gpu_computed(tmp_path):
    plain = fake_run(tmp_path, "ccvae-a", 0, accuracies(z=17.0, s=98.0))
    graphed = fake_run(tmp_path, "ccvae-b", 1, accuracies(z=17.0, s=98.0))
    (plain / "env.json").write_text(json.dumps({"device": "cpu", "device_name": "AMD EPYC",
                                                "tf32": None, "cuda_graphs": False}))
    (graphed / "env.json").write_text(json.dumps({"device": "cuda", "device_name": "NVIDIA H200",
                                                  "tf32": True, "cuda_graphs": True}))
    (graphed / "status.json").write_text(json.dumps({
        "state": "complete", "train_seconds": 60.0, "peak_memory_mb": 210.5,
        "group_peak_memory_mb": 1380.0}))
    text = render(tmp_path)
    assert "| cpu (AMD EPYC) |" in text
    assert "| cuda (NVIDIA H200, CUDA graphs, TF32) | 1.0 min | 210.5 (group 1380.0) |" in text


def test_runs_that_differ_in_a_setting_are_separate_rows_not_seeds(tmp_path):
    fake_run(tmp_path, "ccvae-a", 0, accuracies(z=12.0, s=60.0), settings={"kl_weight": 3.0})
    fake_run(tmp_path, "ccvae-b", 0, accuracies(z=60.0, s=12.0), settings={"kl_weight": 0.0})
    fake_run(tmp_path, "ccvae-c", 1, accuracies(z=14.0, s=62.0), settings={"kl_weight": 3.0})
    text = render(tmp_path)
    assert "| method | z / s | settings | seeds | z train |" in text
    assert "| ccvae | 16 / 16 | kl_weight 0.0 | 1 | 61.00 (one seed) (paper" in text
    assert "| ccvae | 16 / 16 | kl_weight 3.0 | 2 | 14.00 [1.29, 26.71] (paper" in text
    assert "36.00" not in text  # never the mean of the two configs


def test_z_usage_is_shown_beside_the_leakage(tmp_path):
    run_dir = fake_run(tmp_path, "ccvae-a", 0, accuracies(z=12.0, s=98.0))
    pd.DataFrame([dict(run_id="ccvae-a", method="ccvae", dataset="mnist", preset="paper", seed=0,
                       z_dim=16, s_dim=16, metric=m, split="test", value=v)
                  for m, v in (("style_retention", 0.4567), ("active_units", 11))]
                 ).to_csv(run_dir / "z_usage.csv", index=False)
    text = render(tmp_path)
    assert "| z train | z test | z style retention | z active units | s train | s test |" in text
    assert "| 0.46 (one seed) | 11 / 16 | 99.00 (one seed)" in text
    assert "Read the z columns together" in text


def test_the_pairs_the_seeds_do_not_separate_are_named(tmp_path):
    """Welch's t-test, Holm-corrected: mathieu and ccvae (z test 10.5, 11.5, 12.5 against 10, 11,
    12) are not separated; szabo (90, 91, 92) is separated from both; lord has one seed."""
    for seed, shift in enumerate((0.0, 1.0, 2.0)):
        fake_run(tmp_path, f"ccvae-{seed}", seed, accuracies(z=10.0 + shift, s=90.0 + shift))
        fake_run(tmp_path, f"mathieu-{seed}", seed, accuracies(z=10.5 + shift, s=80.0 + shift),
                 method="mathieu")
        fake_run(tmp_path, f"szabo-{seed}", seed, accuracies(z=90.0 + shift, s=70.0 + shift),
                 method="szabo", variational=False)
    fake_run(tmp_path, "lord-0", 0, accuracies(z=50.0, s=50.0), method="lord", variational=False)
    text = render(tmp_path)
    assert "**z test**: mathieu 16/16 and ccvae 16/16. **s train**: every pair differs." in text
    assert "Not tested (one seed): lord 16/16." in text
