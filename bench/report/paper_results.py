"""The paper's table as this project measured it (results/paper/), for the README's first screen.

Written between two markers in README.md by ``bench campaign publish`` and by ``bench report
--results results/paper``; tests/test_campaign.py keeps the README's copy equal to what this
computes. Each cell is the report's (the mean over the published seeds with its interval, or
"one seed"), beside the paper's number; each row says what trained it: the revisions, the machines
(CPU and numerics fingerprint) and the CPU-hours (the training processes' CPU time, not wall time).
"""
from __future__ import annotations

import os
from pathlib import Path

from bench.report.document import to_markdown
from bench.report.page import DETERMINISTIC_NOTE, TABLE_COLUMNS, accuracy_table, load_paper_table
from bench.sections.blocks import Table
from bench.sections.experiments import CELL_SENTENCE, Experiments, summarise
from bench.store import results
from bench.store.records import load_runs, metrics_of

BEGIN, END = "<!-- paper-table:begin -->", "<!-- paper-table:end -->"
PAPER_ORDER = ["ccvae", "mathieu", "szabo", "mlvae", "gvae", "lord"]


def paper_table_markdown(paper: Path, link_base: Path) -> str:
    """The Markdown of the table and its notes; figure links relative to ``link_base``."""
    records = [r for r in load_runs(paper) if r.complete and r.dataset == "mnist"]
    if not records:
        return ("No run has been published yet: the campaign (`python -m bench campaign start`) "
                "is training the grid.")
    metrics = metrics_of(records)
    summary = summarise(metrics)
    experiments = Experiments(records)
    paper = load_paper_table()
    paper = paper[paper.dataset == "mnist"]
    table = accuracy_table(summary, paper, TABLE_COLUMNS, PAPER_ORDER, experiments)
    rows, several = [], False
    for record_group in _groups(records):
        first = record_group[0]
        cpu, revisions, machines = 0.0, set(), set()
        for record in record_group:
            c, r, m = record.training_summary()
            cpu, revisions, machines = cpu + c, revisions | r, machines | m
        several = several or len(machines) > 1
        seeds = ", ".join(str(r.seed) for r in sorted(record_group, key=lambda r: r.seed))
        rows.append([f"{first.method} {first.z_dim}/{first.s_dim}", seeds, f"{cpu / 3600:.1f}",
                     ", ".join(sorted(revisions)) or "?", "; ".join(sorted(machines)) or "?"])
    provenance = Table(["experiment", "seeds", "CPU-hours", "revisions", "machines"], rows)
    figures = []
    for record in sorted(records, key=lambda r: (PAPER_ORDER.index(r.method)
                                                 if r.method in PAPER_ORDER else 99, r.z_dim or 0)):
        if record.seed != 0:
            continue
        links = [f"[{name}]({Path(os.path.relpath(record.dir / f'{name}.png', link_base)).as_posix()})"
                 for name in ("tsne", "swap_grid") if (record.dir / f"{name}.png").is_file()]
        if links:
            figures.append(f"{record.method} {record.z_dim}/{record.s_dim}: " + ", ".join(links))
    text = to_markdown([table], link_base).rstrip("\n")
    text += ("\n\nOur accuracy (%) at the paper's protocol over the published seeds, then the paper's "
             f"number and the difference. {CELL_SENTENCE} z is probed on a sample of the "
             "posterior, as the paper did; z: lower is better, s: higher is better.\n\n")
    if experiments.deterministic:
        text += f"{DETERMINISTIC_NOTE}\n\n"
    text += to_markdown([provenance], link_base).rstrip("\n")
    if several:
        text += "\n\nSome rows were trained on more than one machine: see their revisions and machines."
    if figures:
        text += "\n\nFigures of seed 0 (t-SNE of z, swap grid): " + "; ".join(figures) + "."
    return text


def _groups(records):
    groups: dict[tuple, list] = {}
    for record in records:
        groups.setdefault((record.method, record.z_dim, record.s_dim, record.variant), []).append(record)
    return [groups[k] for k in sorted(groups, key=lambda k: (
        PAPER_ORDER.index(k[0]) if k[0] in PAPER_ORDER else 99, k[1] or 0, k[2] or 0))]


def with_table(readme: str, table: str) -> str:
    """``readme`` with the text between the markers replaced by ``table``."""
    if BEGIN not in readme or END not in readme:
        raise ValueError(f"README.md lacks the markers {BEGIN} and {END}")
    head, rest = readme.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{BEGIN}\n{table}\n{END}{tail}"


def update_readme(paper: Path, readme: Path) -> bool:
    """Rewrite the table in ``readme`` from ``paper``; True when the text changed."""
    before = readme.read_text()
    after = with_table(before, paper_table_markdown(paper, readme.parent))
    if after != before:
        results.write_text_atomic(readme, after)
    return after != before
