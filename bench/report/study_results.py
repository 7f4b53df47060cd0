"""A study's README (results/studies/<study>/README.md, bench/spec/studies.py): its question, its
variants with their settings, and for each variant a table of what the paper's table shows (the s
probe's accuracy and z's leakage, the z probe's accuracy, as bench/report/paper_results.py shows
them), each cell the mean over the seeds published with its 95 % interval, or "one seed". A
variant whose seeds are not all published yet is marked partial.

Written by ``bench campaign publish``; reads the published runs with bench/store/records.py (a
results folder may come from someone else).
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from bench.report.document import Block, Heading, Paragraph, Table, to_markdown
from bench.sections.experiments import CELL_SENTENCE
from bench.sections.statistics import ACCURACY, interval
from bench.spec.studies import DATASET, S_DIM, Z_DIM, Study, Variant
from bench.store import results
from bench.store.records import RunRecord, load_run

README = "README.md"
SPLITS = ("train", "test")
# (probe in metrics.csv, the row's name); the z rows are the paper table's z columns (z_sample)
# and the report's posterior-mean table (z_mean).
VARIATIONAL_ROWS = (("s", "s: the s probe (higher is better)"),
                    ("z_sample", "z leakage, z sampled as the paper did (lower is better)"),
                    ("z_mean", "z leakage, z mean (lower is better)"))
DETERMINISTIC_ROWS = (("s", "s: the s probe (higher is better)"),
                      ("z_sample", "z leakage, z deterministic: the code itself (lower is better)"))
MISSING = "–"
CELLS = (f"The probe's accuracy (%) over the seeds published. {CELL_SENTENCE} z leakage is the "
         "accuracy of a probe that reads the class from z: lower is better.")


def variant_records(study: Study, variant: Variant, folder: Path, preset: str) -> list[RunRecord]:
    """The published, complete runs of ``variant``, by seed."""
    records = []
    for seed in study.seeds:
        run_dir = results.runs_dir(folder) / study.config(variant, seed, preset).run_id
        if run_dir.is_dir() and not run_dir.is_symlink() and results.is_complete(run_dir):
            records.append(load_run(run_dir))
    return records


def accuracy_cell(values: list[float]) -> str:
    """The mean of ``values`` (one per seed) with its interval, "one seed", or a dash."""
    if not values:
        return MISSING
    mean = sum(values) / len(values)
    if mean != mean:  # a value that is not a number
        return "n/a"
    std = pd.Series(values).std()  # the sample standard deviation (ddof 1), as the report's
    found = interval(mean, std, len(values), *ACCURACY)
    if found is None:
        return f"{mean:.2f} (one seed)"
    return f"{mean:.2f} [{found[0]:.2f}, {found[1]:.2f}]"


def accuracy_values(records: list[RunRecord], probe: str, split: str) -> list[float]:
    values = []
    for record in records:
        metrics = record.metrics
        rows = metrics[(metrics.probe == probe) & (metrics.split == split)]
        values += pd.to_numeric(rows.accuracy, errors="coerce").tolist()[:1]
    return values


def variant_table(records: list[RunRecord]) -> Table:
    deterministic = any(not r.variational_z for r in records)
    rows = DETERMINISTIC_ROWS if deterministic else VARIATIONAL_ROWS
    return Table(["probe", *SPLITS],
                 [[name, *(accuracy_cell(accuracy_values(records, probe, split))
                           for split in SPLITS)] for probe, name in rows])


def variant_blocks(study: Study, variant: Variant, records: list[RunRecord]) -> list[Block]:
    finished = sorted(r.seed for r in records)
    missing = [s for s in study.seeds if s not in finished]
    seeds = (f"Seeds published: {', '.join(map(str, finished))}" if finished
             else "No seed published yet")
    if missing and finished:
        seeds += (f"; partial: seed{'s' if len(missing) > 1 else ''} "
                  f"{', '.join(map(str, missing))} still to come")
    partial = " (partial)" if missing and finished else ""
    blocks: list[Block] = [Heading(2, variant.label + partial),
                           Paragraph(f"Settings: {variant.describe()}. {seeds}.")]
    if records:
        blocks.append(variant_table(records))
    return blocks


def study_readme_markdown(study: Study, folder: Path, preset: str) -> str:
    """The README of ``study``'s published runs in ``folder`` (trained at ``preset``)."""
    blocks: list[Block] = [
        Heading(1, f"Study: {study.name}"),
        Paragraph(study.question),
        Paragraph(f"Each run: {study.method} on {DATASET}, z/s {Z_DIM}/{S_DIM}, the {preset} "
                  f"preset with {study.epochs_text(preset)}, seeds "
                  f"{', '.join(map(str, study.seeds))}, with one variant's settings on top. "
                  "Trained by the paper campaign (python -m bench campaign), each run by one worker "
                  "at the lowest priority; each run's folder is in runs/, with the training "
                  "record that made it (training.json). The study is one record of "
                  "bench/spec/studies.py; python -m bench campaign publish writes this file.")]
    for variant in study.variants:
        blocks += variant_blocks(study, variant, variant_records(study, variant, folder, preset))
    blocks.append(Paragraph(CELLS))
    return to_markdown(blocks, folder)


def update_study_readme(study: Study, folder: Path, preset: str) -> bool:
    """Rewrite ``folder``'s README.md; True when the text changed."""
    path = folder / README
    results.not_a_link(path)
    before = path.read_text() if path.is_file() else None
    after = study_readme_markdown(study, folder, preset)
    if after != before:
        results.write_text_atomic(path, after)
    return after != before
