"""docs/adding-an-evaluation.md's worked example runs as written: its code block, written to a
file of its own and loaded as a module, registers an evaluation; computed for fake runs, it gives
the report a table and a section of its own, without a change to any other file."""
import ast
import importlib.util
import json
import re
import sys
from types import SimpleNamespace

import pytest
import torch

from bench.evaluations import EVALUATIONS, report_sections
from bench.report.document import to_html
from bench.report.page import TITLE, build
from bench.store import results
from bench.store.records import run_columns
from tests.conftest import REPO
from tests.test_report import accuracies, fake_run, render

DOC = REPO / "docs" / "adding-an-evaluation.md"


def example_code() -> str:
    """The first Python block under the page's "An example" heading."""
    text = DOC.read_text(encoding="utf-8")
    section = text[text.index("## An example\n"):]
    return re.search(r"^```python\n(.*?)^```$", section, flags=re.S | re.M).group(1)


@pytest.fixture
def example(tmp_path, monkeypatch):
    """The example's module, loaded from a file of its own; the registry restored afterwards."""
    before = dict(EVALUATIONS)
    path = tmp_path / "module" / "z_norm.py"
    path.parent.mkdir()
    path.write_text(example_code())
    spec = importlib.util.spec_from_file_location("doc_example_z_norm", path)
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)
    spec.loader.exec_module(module)
    yield module
    EVALUATIONS.clear()
    EVALUATIONS.update(before)


def evaluate(example, run_dir, z_mean: torch.Tensor) -> None:
    """What the runner does with the example for a run, on a stand-in context: its rows, with the
    run's columns, in its file."""
    evaluation = example.Z_NORM
    outcome = evaluation.compute(SimpleNamespace(test=SimpleNamespace(z_mean=z_mean)))
    columns = run_columns(json.loads((run_dir / results.CONFIG_FILE).read_text()), run_dir.name)
    results.write_table(run_dir / evaluation.file, evaluation.all_columns,
                        [{**columns, **row} for row in outcome.rows])


def test_the_example_registers_an_evaluation_with_a_section(example):
    assert EVALUATIONS["z_norm"] is example.Z_NORM
    assert example.Z_NORM.section in report_sections()


def imported_modules(nodes) -> set[str]:
    found = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            found.add(node.module or "")
    return found


def test_the_example_keeps_the_registrys_rules():
    """No torch, pandas, scipy or matplotlib at module level (the registry loads without them),
    and nothing from the report, which is above the evaluations (tests/test_layers.py)."""
    tree = ast.parse(example_code())
    at_top = {name.split(".")[0] for name in imported_modules(tree.body)}
    assert "bench" in at_top and not at_top & {"torch", "pandas", "scipy", "matplotlib"}
    assert not [m for m in imported_modules(ast.walk(tree)) if m.startswith("bench.report")]


def test_the_report_shows_the_examples_table_and_section(tmp_path, example):
    for run_id, method, norm in (("ccvae-a", "ccvae", 2.0), ("mathieu-a", "mathieu", 5.0)):
        run_dir = fake_run(tmp_path, run_id, 0, accuracies(z=17.0, s=98.0), method=method)
        evaluate(example, run_dir, torch.full((8, 4), norm / 2))  # each row's norm: ``norm``
    text = render(tmp_path)
    sentence = "**The largest z**: mathieu 16/16 (mean norm 5.00, evaluation `z_norm`)."
    assert sentence in text
    assert "### Norm of z" in text and "| mean z norm |" in text
    assert "| ccvae | 16 / 16 | 1 | 2.00 (one seed) |" in text
    # the section's place: after the probes' tables, before the evaluations' tables
    assert text.index("z probed on the posterior mean") < text.index(sentence) \
        < text.index("### Norm of z")
    assert "<b>The largest z</b>: mathieu 16/16" in to_html(build(tmp_path), TITLE)


def test_without_its_rows_the_example_says_nothing(tmp_path, example):
    fake_run(tmp_path, "ccvae-a", 0, accuracies(z=17.0, s=98.0))
    text = render(tmp_path)
    assert "The largest z" not in text and "Norm of z" not in text
