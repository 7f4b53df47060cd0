"""Reference rows (bench/report/references.py): a folder's report shows the suite's published
numbers for its dataset, preset and latent sizes beside its runs, marked, with where they come
from; never trained, never tested against the folder's runs, never read by bench check. Folders
made of fabricated run files (no training)."""
import json

import pandas as pd
import pytest

from bench.cli import main
from bench.report import comparison, references
from bench.report.document import to_markdown
from bench.report.page import build, write_report
from bench.sections.experiments import REFERENCE_MARK
from bench.store import results
from bench.store.records import load_runs

ACCURACIES = {("s", "train"): 93.5, ("s", "test"): 93.0, ("z_mean", "train"): 40.0,
              ("z_mean", "test"): 41.0, ("z_sample", "train"): 20.0, ("z_sample", "test"): 21.0}


def fake_run(results_dir, run_id, method="mine", preset="ci", dims=(16, 16), seed=0,
             external=True, shift=0.0):
    """A complete run's files as bench writes them: an external model's by default."""
    run_dir = results.runs_dir(results_dir) / run_id
    run_dir.mkdir(parents=True)
    columns = dict(run_id=run_id, method=method, dataset="mnist", preset=preset, seed=seed,
                   z_dim=dims[0], s_dim=dims[1])
    pd.DataFrame([dict(columns, probe=probe, split=split, accuracy=value + shift)
                  for (probe, split), value in ACCURACIES.items()]).to_csv(
        run_dir / results.METRICS_FILE, index=False)
    pd.DataFrame([dict(columns, metric="style_retention", split="test", value=0.3),
                  dict(columns, metric="active_units", split="test", value=12)]).to_csv(
        run_dir / "z_usage.csv", index=False)
    config = {"method": method, "dataset": "mnist", "preset": preset, "seed": seed,
              "variational_z": True, "method_config": {"z_dim": dims[0], "s_dim": dims[1]}}
    if external:
        config["external"] = {"source": "mine.py:load", "kind": "python file", "sha256": "ab",
                              "decoder": True, "skipped_without_decoder": []}
    (run_dir / results.CONFIG_FILE).write_text(json.dumps(config))
    (run_dir / results.ENV_FILE).write_text(json.dumps({"device": "cpu"}))
    (run_dir / results.STATUS_FILE).write_text(json.dumps({"state": "complete"}))
    return run_dir


def render(directory):
    return to_markdown(build(directory), directory)


def baseline_cell(method, probe, split):
    """The committed ci baseline's mean of a number, as a cell of the report begins."""
    table = comparison.reference_rows(comparison.read_baseline(comparison.baseline_path("mnist", "ci")))
    row = table[(table.method == method) & (table.probe == probe) & (table.split == split)
                & (table.z_dim == 16)].iloc[0]
    seeds = [row[c] for c in comparison.seed_columns(table) if pd.notna(row[c])]
    return f"{sum(seeds) / len(seeds):.2f} [", len(seeds)


def test_an_external_models_folder_shows_the_ci_baselines_rows_marked(tmp_path):
    fake_run(tmp_path, "mine-mnist-0123456789")
    markdown, page = (path.read_text() for path in write_report(tmp_path))
    for text in (markdown, page):
        assert f"ccvae {REFERENCE_MARK}" in text and "results/baselines/mnist-ci.csv" in text
    table = markdown[markdown.index("### Latent probes"):markdown.index("z probed on the posterior")]
    rows = [line for line in table.splitlines() if line.startswith("| ")][1:]  # no header
    assert rows[0].startswith("| mine (external) | 16 / 16 | 1 | 20.00 (one seed)")
    referenced = {row.split(" | ")[0][2:] for row in rows[1:]}
    assert referenced == {f"{m} {REFERENCE_MARK}" for m in ("ccvae", "mathieu", "mlvae", "gvae")} \
        | {f"{m} † {REFERENCE_MARK}" for m in ("szabo", "lord")}  # every method of the baseline
    cell, seeds = baseline_cell("ccvae", "z_sample", "test")
    (ccvae,) = [row for row in rows if row.startswith(f"| ccvae {REFERENCE_MARK} | 16 / 16 |")]
    assert ccvae.split(" | ")[2] == str(seeds) and ccvae.split(" | ")[4].startswith(cell)
    sentence = references.sentence(references.references_for(
        "mnist", "ci", [r for r in load_runs(tmp_path)]))
    assert sentence in markdown and "no significance test" in sentence
    assert "revision " in sentence and "seeds 0, 1, 2 computed on cpu" in sentence
    runs = markdown[markdown.index("## Runs"):]
    assert REFERENCE_MARK not in runs and "ccvae" not in runs  # the runs list is the folder's
    # the z columns of the evaluations' own (z usage) hold the references' numbers too
    assert "| z style retention | z active units |" in table and " / 16 |" in ccvae


def test_a_folder_with_nothing_of_a_published_preset_or_size_shows_none(tmp_path):
    fake_run(tmp_path, "mine-mnist-smoke000001", preset="smoke")
    fake_run(tmp_path, "mine-mnist-ci64000001", dims=(64, 64))  # the baseline has 16/16 only
    text = render(tmp_path)
    assert REFERENCE_MARK not in text and "results/baselines" not in text
    assert "## mnist, preset `smoke`" in text and "## mnist, preset `ci`" in text


def test_at_the_paper_preset_the_published_runs_are_the_reference(tmp_path):
    fake_run(tmp_path, "mine-mnist-paper00001", preset="paper")
    text = render(tmp_path)
    published = [r for r in load_runs(references.PUBLISHED) if r.complete and r.dataset == "mnist"
                 and r.preset == "paper" and (r.z_dim, r.s_dim) == (16, 16)]
    assert published and f"| ccvae {REFERENCE_MARK} | 16 / 16 |" in text
    assert "results/paper/ (the paper campaign's published runs: ccvae 16/16 seed" in text
    # its figures are the published run's, not this folder's: none is shown
    assert not any(r.run_id in text[:text.index("## Runs")] for r in published)
    # the report of results/paper itself has no reference rows: they would be its own runs
    assert references.references_for("mnist", "paper", published).records == ()


def test_reference_rows_are_never_averaged_nor_tested_with_the_folders_runs(tmp_path):
    """A user's own ccvae at ci, two seeds of the baseline's config, beside its reference row:
    two rows; the significance tests compare the folder's experiments only."""
    for seed in (0, 1):
        fake_run(tmp_path, f"ccvae-{seed}", method="ccvae", seed=seed, external=False,
                 shift=seed)
        fake_run(tmp_path, f"mathieu-{seed}", method="mathieu", seed=seed, external=False,
                 shift=seed + 0.5)
    text = render(tmp_path)
    assert "| ccvae | 16 / 16 | 2 | 20.50 [" in text
    assert f"| ccvae {REFERENCE_MARK} | 16 / 16 | 3 |" in text
    assert text.index("| mathieu | 16 / 16 | 2 |") < text.index(f"| ccvae {REFERENCE_MARK} |")
    tested = text[text.index("Differences the seeds do not establish"):]
    tested = tested[:tested.index("\n")]
    assert "ccvae 16/16" in tested and REFERENCE_MARK not in tested


def test_bench_check_does_not_read_reference_rows(tmp_path, capsys):
    fake_run(tmp_path, "mine-mnist-0123456789")
    assert main(["check", "--results", str(tmp_path)]) == 2
    assert "no complete runs of suite methods" in capsys.readouterr().err


@pytest.mark.parametrize("content, said", [
    ("not,a,baseline\n1,2,3\n", "missing columns"),
    ("", "not a readable table")])
def test_an_unreadable_baseline_gives_no_rows_and_says_why(tmp_path, content, said):
    (tmp_path / "mnist-ci.csv").write_text(content)
    found, clause = references.baseline("mnist", "ci", {(16, 16)}, set(), directory=tmp_path)
    assert found == [] and "left out" in clause and said in clause
    (tmp_path / "mnist-ci.csv").unlink()
    (tmp_path / "mnist-ci.csv").symlink_to(comparison.baseline_path("mnist", "ci"))
    found, clause = references.baseline("mnist", "ci", {(16, 16)}, set(), directory=tmp_path)
    assert found == [] and "not a regular file" in clause  # read as a results folder's files are
