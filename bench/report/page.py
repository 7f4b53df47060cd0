"""python -m bench report: results/report.md and a self-contained results/report.html, from the
files in results/ alone (no models, no torch).

Runs are averaged only when they differ in nothing but their seed: every table has a row per
experiment (method, latent sizes and every other setting), and the settings in which experiments
of one method differ are shown beside it.
"""
from __future__ import annotations

import datetime
import json
from pathlib import Path
from typing import Callable

import pandas as pd

from bench import progress
from bench.evaluations import ReportTable, in_order, report_sections
from bench.report.document import to_html, to_markdown
from bench.report.references import References, references_for
from bench.report.references import sentence as reference_sentence
from bench.sections.blocks import Block, Details, Heading, Paragraph, Table
from bench.sections.experiments import (CELL_SENTENCE, DETERMINISTIC_MARK, EXTERNAL_MARK, MISSING,
                                        Experiments, format_cell, keyed_rows, read_rows,
                                        run_figure, summarise)
from bench.sections.hook import FIGURES_DIR, Blocks, PaperColumns, ReportSection, SectionInput
from bench.sections.statistics import ACCURACY, ALPHA, not_significant
from bench.store import results
from bench.store.records import RunRecord, RunStatus, load_runs, metrics_of

PAPER_TABLE = Path(__file__).resolve().parent / "paper_table.csv"
REPORT_FILE, REPORT_HTML = "report.md", "report.html"
TITLE = "Weakly supervised disentanglement: benchmark report"
# The paper's table columns, and the probe that gives each (z: the sampled code, as in the paper).
TABLE_COLUMNS = {"z train": ("z_sample", "train"), "z test": ("z_sample", "test"),
                 "s train": ("s", "train"), "s test": ("s", "test")}
PAPER_COLUMNS = {"z train": "z_train_acc", "z test": "z_test_acc",
                 "s train": "s_train_acc", "s test": "s_test_acc"}
# Where an evaluation's own columns come in the paper's table (ReportSection.paper_columns)
AFTER_COLUMN = "z test"
DETERMINISTIC_NOTE = (f"{DETERMINISTIC_MARK} deterministic z: there is no posterior to sample, "
                      "so the z columns probe z itself (z_sample and z_mean are the same code).")


def load_paper_table() -> pd.DataFrame:
    return pd.read_csv(PAPER_TABLE)


def accuracy_table(summary: pd.DataFrame, paper: pd.DataFrame, columns: dict[str, tuple[str, str]],
                   method_order: list[str], experiments: Experiments,
                   extra: tuple[PaperColumns, ...] = ()) -> Table:
    """A row per experiment, ours beside the paper's number; the ``extra`` columns (the
    evaluations' own, ReportSection.paper_columns) after the AFTER_COLUMN column."""
    rows = []
    for key, part in keyed_rows(summary, method_order):
        paper_row = paper[(paper.method == key.method) & (paper.z_dim == key.z_dim)
                          & (paper.s_dim == key.s_dim)]
        cells = experiments.cells(key, int(part.seeds.max()))
        for name, (probe, split) in columns.items():
            found = part[(part.probe == probe) & (part.split == split)]
            if found.empty:  # a run's metrics.csv without this probe
                cells.append(MISSING)
                if name == AFTER_COLUMN:
                    cells += [owned for columns_of in extra for owned in columns_of.cells(key)]
                continue
            row = found.iloc[0]
            cell = format_cell(row["mean"], row["std"], int(row.seeds), bounds=ACCURACY)
            if name in PAPER_COLUMNS and not paper_row.empty:
                reference = float(paper_row.iloc[0][PAPER_COLUMNS[name]])
                cell += f" (paper {reference:.2f}, {row['mean'] - reference:+.2f})"
            elif name in PAPER_COLUMNS and not paper.empty and key.method not in set(paper.method):
                cell += " (no paper row)"  # a method the paper did not run: a new result
            cells.append(cell)
            if name == AFTER_COLUMN:
                cells += [owned for columns_of in extra for owned in columns_of.cells(key)]
        rows.append(cells)
    header = []
    for name in columns:
        header.append(name)
        if name == AFTER_COLUMN:
            header += [title for columns_of in extra for title in columns_of.header]
    return Table([*experiments.header(), *header], rows)


def significance(part: pd.DataFrame, columns: dict[str, tuple[str, str]],
                 experiments: Experiments, paper_order: list[str],
                 value: str = "accuracy") -> list[Paragraph]:
    """For each column, the experiments of equal latent sizes whose difference the seeds do not
    establish (Welch's t-test, Holm-corrected over the column's pairs: bench/sections/statistics.py);
    none where no two experiments have two seeds each."""
    lines, single = [], set()
    for name, (probe, split) in columns.items():
        chosen = part[(part.probe == probe) & (part.split == split)]
        found, pairs = [], 0
        for _, sized in chosen.groupby(["z_dim", "s_dim"], sort=True):
            values = {experiments.name(key): list(pd.to_numeric(rows[value], errors="coerce").dropna())
                      for key, rows in keyed_rows(sized, paper_order)}
            single |= {n for n, v in values.items() if len(v) < 2}
            tested = {n: v for n, v in values.items() if len(v) >= 2}
            pairs += len(tested) * (len(tested) - 1) // 2
            found += [f"{a} and {b}" for a, b in not_significant(tested)]
        if pairs:
            lines.append(f"**{name}**: " + ("; ".join(found) if found else "every pair differs"))
    if not lines:
        return []
    text = (f"Differences the seeds do not establish (Welch's t-test, Holm-corrected over each "
            f"column's pairs of equal latent sizes, α = {ALPHA}): " + ". ".join(lines) + ".")
    if single:
        text += f" Not tested (one seed): {', '.join(sorted(single))}."
    return [Paragraph(text)]


def _select(table: pd.DataFrame, where: dict, keep: bool) -> pd.DataFrame:
    for column, value in where.items():
        values = [str(v) for v in (value if isinstance(value, (tuple, list)) else [value])]
        inside = table[column].astype(str).isin(values)
        table = table[inside if keep else ~inside]
    return table


def evaluation_table(spec: ReportTable, table: pd.DataFrame, paper_order: list[str],
                     experiments: Experiments) -> Table | None:
    """An evaluation's table, the same way for every evaluation: a row per experiment, a column
    per value of the pivot columns, each cell the mean over seeds and its interval."""
    part = _select(_select(table, spec.where, True), spec.exclude, False)
    if part.empty:
        return None
    pivots = list(dict.fromkeys(part[list(spec.pivot)].itertuples(index=False, name=None)))
    summary = summarise(part, spec.value, spec.pivot)
    header = []
    for pivot in pivots:
        match = part[(part[list(spec.pivot)] == pd.Series(pivot, index=list(spec.pivot))).all(axis=1)]
        notes = [f"{column.replace('_', ' ')} "
                 f"{pd.to_numeric(match[column], errors='coerce').iloc[0]:.1f}"
                 for column in spec.header_notes if column in match]
        header.append(" · ".join(map(str, pivot)) + (f" ({', '.join(notes)})" if notes else ""))
    rows = []
    for key, rows_of_key in keyed_rows(summary, paper_order):
        cells = experiments.cells(key, int(rows_of_key.seeds.max()))
        for pivot in pivots:
            found = rows_of_key[(rows_of_key[list(spec.pivot)]
                                 == pd.Series(pivot, index=list(spec.pivot))).all(axis=1)]
            bounds = ACCURACY if spec.value == "accuracy" else (None, None)
            cells.append(MISSING if found.empty else format_cell(found.iloc[0]["mean"],
                                                                 found.iloc[0]["std"],
                                                                 int(found.iloc[0].seeds),
                                                                 spec.decimals, bounds))
        rows.append(cells)
    return Table([*experiments.header(), *header], rows)


def evaluation_blocks(records: list[RunRecord], paper_order: list[str],
                      experiments: Experiments,
                      references: tuple[RunRecord, ...] = ()) -> list[Block]:
    """Every registered evaluation with report tables that some of ``records`` computed, with
    the rows ``references`` have of it after theirs (``experiments`` names both)."""
    blocks: list[Block] = []
    for evaluation in in_order():
        if not evaluation.tables or evaluation.file == results.METRICS_FILE:
            continue
        if read_rows(records, evaluation.file).empty:
            continue
        table = read_rows([*records, *references], evaluation.file)
        blocks += [Heading(3, evaluation.title), Paragraph(evaluation.description)]
        for spec in evaluation.tables:
            rendered = evaluation_table(spec, table, paper_order, experiments)
            if rendered is not None:
                blocks += ([Paragraph(spec.caption)] if spec.caption else []) + [rendered]
    return blocks


def external_models(records: list[RunRecord]) -> list[Paragraph]:
    """A sentence on the external models among ``records``: what they are, and what each
    skipped for want of a decoder."""
    external = {r.method: r.external for r in records if r.external is not None}
    if not external:
        return []
    skipped = [f"{name} has no decoder: {', '.join(source.skipped_without_decoder)} skipped "
               "(they decode)" for name, source in sorted(external.items())
               if source.skipped_without_decoder]
    return [Paragraph(f"{EXTERNAL_MARK}: a model of the user's own ({', '.join(sorted(external))}), "
                      "evaluated by `python -m bench evaluate-model`; not trained by the suite, it "
                      "has no paper row and no training curves."
                      + (" " + "; ".join(skipped) + "." if skipped else ""))]


def owned_blocks(section: SectionInput, place: Callable[[ReportSection], Blocks | None]
                 ) -> list[Block]:
    """What the evaluations' own sections give at one place of the dataset's section
    (``place`` picks it from a ReportSection), in their report order."""
    blocks: list[Block] = []
    for owned in report_sections():
        part = place(owned)
        if part is not None:
            blocks += part(section)
    return blocks


def owned_columns(section: SectionInput) -> tuple[PaperColumns, ...]:
    """The evaluations' own columns beside the paper's table, where their runs have any."""
    found = [owned.paper_columns(section) for owned in report_sections()
             if owned.paper_columns is not None]
    return tuple(columns for columns in found if columns is not None)


def tabled_columns(section: SectionInput, tabled: SectionInput) -> tuple[PaperColumns, ...]:
    """The evaluations' own columns the folder's runs have, their cells from ``tabled`` (the
    section with its reference rows)."""
    own = {columns.header for columns in owned_columns(section)}
    return tuple(columns for columns in owned_columns(tabled) if columns.header in own)


def paper_table(section: SectionInput, paper: pd.DataFrame) -> list[Block]:
    """The paper's table, ours beside the paper's numbers (and the reference rows after ours),
    and how sure its cells are (the folder's own runs only)."""
    part, experiments, paper_order = section.metrics, section.experiments, section.paper_order
    tabled = section.with_references()
    return [Heading(3, "Latent probes (the paper's table)"),
            Paragraph("z is probed on a **sample** of the posterior, as the paper did (the "
                      "paper-comparable figure)."),
            accuracy_table(summarise(tabled.metrics), paper, TABLE_COLUMNS, paper_order,
                           tabled.experiments, tabled_columns(section, tabled)),
            Paragraph(CELL_SENTENCE), *significance(part, TABLE_COLUMNS, experiments, paper_order)]


def table_notes(section: SectionInput, references: References) -> list[Block]:
    """What the rows of the tables are: deterministic z, external models, reference rows,
    differing settings."""
    experiments, records = section.experiments, section.records
    blocks: list[Block] = []
    tabled = section.with_references()
    if tabled.experiments.deterministic & set(tabled.metrics.method):
        blocks.append(Paragraph(DETERMINISTIC_NOTE))
    blocks += external_models(records)
    said = reference_sentence(references)
    if said:
        blocks.append(Paragraph(said))
    if experiments.show_settings:
        blocks.append(Paragraph("Rows differ in the settings shown (the others are equal); each "
                                "row averages runs that differ in their seed only."))
    return blocks


def z_mean_table(section: SectionInput, paper: pd.DataFrame) -> list[Block]:
    """The probes of the posterior mean of z, which the paper did not report."""
    part, experiments, paper_order = section.metrics, section.experiments, section.paper_order
    tabled = section.with_references()
    z_mean_columns = {"z mean train": ("z_mean", "train"), "z mean test": ("z_mean", "test")}
    return [Paragraph("z probed on the posterior mean (not the paper's figure; the mean of "
                      "q(z|x) carries more class information than a sample of it):"),
            accuracy_table(summarise(tabled.metrics), paper.iloc[0:0], z_mean_columns, paper_order,
                           tabled.experiments),
            *significance(part, z_mean_columns, experiments, paper_order)]


def training_curves(section: SectionInput) -> list[Block]:
    """Each trained run's curves.png (a run's own figure, not an evaluation's)."""
    blocks: list[Block] = [
        Heading(3, "Training curves"),
        Paragraph("The paper shows no training curves; each run's `losses.csv` holds "
                  "every term at every iteration.")]
    for group in section.runs_by_latent_sizes().values():
        blocks += [run_figure(record, results.CURVES_FIGURE, "curves",
                              f"Training curves: {record.label()}", width=900)
                   for record in group if record.external is None]  # an external model has none
    return blocks


def preset_banner(preset: str, records: list[RunRecord], references: References) -> str:
    """What a preset short of the paper's means for the section's numbers: the suite's methods
    (the folder's runs, the reference rows) are trained for a fraction of the protocol; an
    external model is not trained by the suite, only evaluated with a fraction of its budget."""
    trained = any(r.external is None for r in records) or bool(references.records)
    parts = []
    if trained:
        parts.append(f"The `{preset}` preset trains for a fraction of the paper's protocol (the "
                     "`paper` preset): its numbers show that the methods work, they are not "
                     "comparable to the paper's.")
    if any(r.external is not None for r in records):
        parts.append(f"An external model is not trained by the suite: it is evaluated with the "
                     f"`{preset}` preset's budget (its images, probe epochs and t-SNE points), a "
                     "fraction of the paper's" + (", so its numbers are not comparable to the "
                                                  "paper's either." if trained else
                                                  " (the `paper` preset), so its numbers are "
                                                  "not comparable to the paper's."))
    if preset == "smoke":
        parts.append("`smoke` numbers only check that everything runs, and mean nothing as "
                     "numbers (a model scored s 18 % at `smoke` and 93 % at `ci`).")
    return " ".join(parts)


def dataset_section(dataset: str, preset: str, part: pd.DataFrame, records: list[RunRecord],
                    paper: pd.DataFrame, results_dir: Path) -> list[Block]:
    """The report's part for one dataset and preset: its own tables and notes, and, at their
    places, every evaluation's section (ReportSection) and tables."""
    paper_part = paper[paper.dataset == dataset]
    references = references_for(dataset, preset, records)
    section = SectionInput(dataset, preset, records, part, list(dict.fromkeys(paper_part.method)),
                           Experiments(records), results_dir, references.records)
    blocks: list[Block] = [Heading(2, f"{dataset}, preset `{preset}`")]
    if preset != "paper":
        blocks.append(Paragraph(preset_banner(preset, records, references), quote=True))
    blocks += paper_table(section, paper_part)
    blocks += owned_blocks(section, lambda owned: owned.paper_notes)
    blocks += table_notes(section, references)
    blocks += z_mean_table(section, paper_part)
    blocks += owned_blocks(section, lambda owned: owned.analyses)
    tabled = section.with_references()
    blocks += evaluation_blocks(records, section.paper_order, tabled.experiments, references.records)
    blocks += owned_blocks(section, lambda owned: owned.figures)
    return blocks + training_curves(section)


def _device_cell(env: dict) -> str:
    """The device and how it computed: "cuda (NVIDIA H100, CUDA graphs, TF32)"."""
    how = [label for key, label in (("cuda_graphs", "CUDA graphs"), ("tf32", "TF32")) if env.get(key)]
    return f"{env.get('device')} ({', '.join([str(env.get('device_name')), *how])})"


def _memory_cell(status: RunStatus) -> str:
    """A run's peak memory; trained together on CUDA, its own and the group's."""
    own = "?" if status.peak_memory_mb is None else str(status.peak_memory_mb)
    group = status.group_peak_memory_mb
    return own if group is None else f"{own} (group {group})"


def runs_section(complete: list[RunRecord], others: list[RunRecord]) -> list[Block]:
    blocks: list[Block] = [Heading(2, "Runs"), Paragraph(
        "Each run's folder `runs/<run id>/` holds its full config (`config.json`), environment "
        "(`env.json`), per-iteration losses (`losses.csv`), final checkpoint, `metrics.csv` and "
        "each evaluation's file (`evaluation.json` says how each was computed), its figures and "
        "their parameters (`figures.json`).")]
    rows = []
    for r in complete:
        git = r.env.get("git") or {}
        seconds = r.status.train_seconds
        training = ("none (external)" if r.external is not None
                    else "?" if seconds is None else f"{seconds / 60:.1f} min")
        if r.training_segments:  # a published run: its CPU time over every stretch of training
            cpu, _, machines = r.training_summary()
            training = (f"{cpu / 3600:.2f} CPU-hours in {len(r.training_segments)} segment(s)"
                        + (f" on {len(machines)} machines" if len(machines) > 1 else ""))
        rows.append([r.run_id, r.method, r.preset, str(r.seed), f"{r.z_dim} / {r.s_dim}",
                     _device_cell(r.env), training,
                     _memory_cell(r.status),
                     str(git.get("revision") or "?")[:10] + (" (modified)" if git.get("dirty") else ""),
                     str((r.env.get("libraries") or {}).get("torch"))])
    blocks.append(Table(["run id", "method", "preset", "seed", "z / s", "device", "training",
                         "peak memory (MB)", "git revision", "torch"], rows))
    for r in complete:
        blocks.append(Details(f"{r.run_id}: config and environment",
                              json.dumps({"config": r.config, "environment": r.env,
                                          "evaluations": r.evaluations,
                                          "figures": r.figures},
                                         indent=2)))
    if others:
        blocks += [Heading(2, "Failed or unfinished runs"),
                   Paragraph("These runs have no metrics and no figures in this report."),
                   Table(["run id", "state", "reason"],
                         [[r.run_id, r.state,
                           r.status.reason if r.status.reason is not None
                           else "no status: interrupted, or still running"]
                          for r in others])]
    return blocks


def build(results_dir: Path) -> list[Block]:
    results_dir = Path(results_dir)
    records = load_runs(results_dir)
    complete = [r for r in records if r.complete]
    others = [r for r in records if not r.complete]
    metrics = metrics_of(complete)
    paper = load_paper_table()
    blocks: list[Block] = [
        Heading(1, TITLE),
        Paragraph(f"Generated {datetime.datetime.now().astimezone():%Y-%m-%d %H:%M %Z} from "
                  f"{len(complete)} complete run(s) in `{results_dir}`"
                  + (f"; {len(others)} failed or unfinished run(s) are listed at the end."
                     if others else ".")),
        Paragraph("Each number is the accuracy (%) of a classifier that predicts the specified "
                  "label (the digit on MNIST) from one frozen latent code. **s: higher is better** "
                  "(the specified code carries the class). **z: lower is better** (the unspecified "
                  "code should not leak the class; chance is 10 % on MNIST). The paper's table "
                  "reads `ours (paper, ours - paper)`. " + CELL_SENTENCE + " Runs are averaged "
                  "only when they differ in their seed alone.")]
    if metrics.empty:
        blocks.append(Paragraph("No complete runs yet: "
                                "`python -m bench run --methods all --dataset mnist`."))
    groups = metrics.groupby(["dataset", "preset"], sort=True)
    for (dataset, preset), part in progress.bar(groups, "report sections", total=groups.ngroups):
        section = [r for r in complete if r.dataset == dataset and r.preset == preset]
        blocks += dataset_section(dataset, preset, part, section, paper, results_dir)
    if complete or others:
        blocks += runs_section(complete, others)
    return blocks


def write_report(results_dir: Path) -> tuple[Path, Path]:
    """Write report.md and report.html into ``results_dir``; returns their paths."""
    results_dir = Path(results_dir)
    results.not_a_link(results_dir / FIGURES_DIR)  # report.md and .html replace a link, never follow it
    results.remove_stale_temporaries(results_dir)
    blocks = build(results_dir)
    markdown, page = results_dir / REPORT_FILE, results_dir / REPORT_HTML
    results.write_text_atomic(markdown, to_markdown(blocks, results_dir))
    results.write_text_atomic(page, to_html(blocks, TITLE))
    return markdown, page
