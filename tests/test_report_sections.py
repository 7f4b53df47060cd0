"""Each evaluation owns its part of the report (Evaluation.section, bench/sections/hook.py): the
report lays out the places and renders what the hooks give there, and names no evaluation."""
import ast
import dataclasses
import json
import re

import pandas as pd
import pytest

from bench.evaluations import (EVALUATIONS, Evaluation, Outcome, PaperColumns, ReportSection,
                               ReportTable)
from bench.report.document import to_html
from bench.report.page import TITLE, build
from bench.sections.blocks import Paragraph
from bench.store import results
from tests.conftest import REPO
from tests.test_report import accuracies, fake_run, render


@pytest.fixture
def registry():
    """The registry as it was, after the test (which may register evaluations of its own)."""
    before = dict(EVALUATIONS)
    yield EVALUATIONS
    EVALUATIONS.clear()
    EVALUATIONS.update(before)


def marker_section(tag: str, order: int) -> ReportSection:
    """A section that says at every place which evaluation gave it."""
    return ReportSection(
        paper_columns=lambda section: PaperColumns((f"{tag} column",),
                                                   lambda key: [f"{tag} cell of {key.method}"]),
        paper_notes=lambda section: [Paragraph(f"{tag} note")],
        analyses=lambda section: [Paragraph(f"{tag} analysis")],
        figures=lambda section: [Paragraph(f"{tag} figure")], order=order)


def marker_evaluation(tag: str, order: int, **fields) -> Evaluation:
    return Evaluation(name=tag, version=1, file=f"{tag}.csv", columns=("metric", "value"),
                      compute=lambda context: Outcome([]), title=f"{tag} table",
                      description=f"what {tag} measures", section=marker_section(tag, order),
                      **fields)


def positions(text: str, *parts: str) -> list[int]:
    found = [text.find(part) for part in parts]
    assert -1 not in found, [p for p, i in zip(parts, found) if i == -1]
    return found


def test_each_place_shows_what_the_hooks_give_there_in_the_sections_order(tmp_path, registry):
    run_dir = fake_run(tmp_path, "ccvae-a", 0, accuracies(z=17.0, s=98.0))
    # order 2 named "a", order 1 named "b": the sections' order, not their names', decides
    registry["marker_a"] = marker_evaluation(
        "marker_a", 2, tables=(ReportTable(pivot=("metric",), value="value"),))
    registry["marker_b"] = marker_evaluation("marker_b", 1)
    pd.DataFrame([dict(run_id="ccvae-a", method="ccvae", dataset="mnist", preset="paper", seed=0,
                       z_dim=16, s_dim=16, metric="m", value=1.0)]).to_csv(
        run_dir / "marker_a.csv", index=False)
    text = render(tmp_path)
    header = next(line for line in text.splitlines() if line.startswith("| method | z / s |"))
    assert "| z test | marker_b column | marker_a column | s train |" in header
    assert "| marker_b cell of ccvae | marker_a cell of ccvae |" in text
    order = positions(text, "Each cell holds the mean over seeds", "marker_b note", "marker_a note",
                      "z probed on the posterior mean", "marker_b analysis", "marker_a analysis",
                      "### marker_a table", "marker_b figure", "marker_a figure",
                      "### Leakage: t-SNE", "### Swap grids", "### Training curves")
    assert order == sorted(order)
    assert text.count("marker_b column") == 1  # the z mean table has no z test column


def test_z_usage_columns_come_from_its_hook_alone(tmp_path, registry):
    run_dir = fake_run(tmp_path, "ccvae-a", 0, accuracies(z=17.0, s=98.0))
    pd.DataFrame([dict(run_id="ccvae-a", method="ccvae", dataset="mnist", preset="paper", seed=0,
                       z_dim=16, s_dim=16, metric=metric, split="test", value=value)
                  for metric, value in (("style_retention", 0.25), ("active_units", 7))]).to_csv(
        run_dir / EVALUATIONS["z_usage"].file, index=False)
    text = render(tmp_path)
    assert "| z style retention | z active units |" in text and "| 0.25 (one seed) | 7 / 16 |" in text
    assert "Read the z columns together" in text
    registry["z_usage"] = dataclasses.replace(EVALUATIONS["z_usage"], section=None)
    text = render(tmp_path)
    assert "z style retention" not in text and "Read the z columns together" not in text


def test_text_a_section_reads_from_a_run_is_escaped(tmp_path):
    run_dir = fake_run(tmp_path, "ccvae-a", 0, accuracies(z=17.0, s=98.0))
    (run_dir / results.EVALUATION_FILE).write_text(json.dumps(
        {"probes": {"specified": "<script>alert(1)</script> | a probe"}}))
    text = render(tmp_path)
    assert "Probe protocol: &lt;script&gt;alert(1)&lt;/script&gt; | a probe." in text
    page = to_html(build(tmp_path), TITLE)
    assert "Probe protocol: &lt;script&gt;alert(1)&lt;/script&gt; | a probe." in page
    assert "<script>" not in page


def string_constants(source: str) -> set[str]:
    """Every string literal of ``source``, the literal parts of f-strings included."""
    return {node.value for node in ast.walk(ast.parse(source))
            if isinstance(node, ast.Constant) and isinstance(node.value, str)}


def evaluation_modules_imported(source: str) -> set[str]:
    """The modules of single evaluations that ``source`` imports (the registry package aside)."""
    return {node.module for node in ast.walk(ast.parse(source))
            if isinstance(node, ast.ImportFrom)
            and (node.module or "").startswith("bench.evaluations.")}


@pytest.mark.parametrize("module", ["page.py", "document.py"])
def test_the_report_names_no_evaluation(module):
    source = (REPO / "bench" / "report" / module).read_text()
    names = {name for evaluation in EVALUATIONS.values()
             for name in (evaluation.name, evaluation.file)} - {results.METRICS_FILE}
    assert string_constants(source) & names == set()
    assert not re.search(r"EVALUATIONS\[", source)
    assert evaluation_modules_imported(source) == set()


def test_the_name_check_finds_what_it_looks_for():
    before = 'Z_USAGE = "z_usage"\nfrom bench.evaluations.mdl_leakage import MDL_LEAKAGE\n' \
             'x = f"{a}: {EVALUATIONS[Z_USAGE]}"\n'
    assert "z_usage" in string_constants(before)
    assert evaluation_modules_imported(before) == {"bench.evaluations.mdl_leakage"}
