"""Experiments and their cells, the same in every section of the report: runs are averaged only
when they differ in nothing but their seed, so a table has a row per experiment (method, latent
sizes and every other setting), each cell the mean over seeds and its interval; and a run's own
figure, embedded only when it is a PNG of the run's own folder."""
from __future__ import annotations

import pandas as pd

from bench.sections.blocks import Figure, embeddable
from bench.sections.statistics import LEVEL, interval
from bench.store import results
from bench.store.records import REFERENCE_VARIANT, RunRecord, differing_settings

# One row of a table per experiment: runs that differ only in their seed (records.RunRecord.variant).
GROUP = ["method", "z_dim", "s_dim", "variant"]
DETERMINISTIC_MARK = "†"
EXTERNAL_MARK = "(external)"  # a model of the user's own (python -m bench evaluate-model)
# The suite's published numbers beside a folder's runs (bench/report/references.py), not its runs
REFERENCE_MARK = "(reference)"
MISSING = "–"
# What a cell of every table holds, in the one sentence that report.md, report.html, README.md and
# the published results' READMEs give (tests/test_report.py, tests/test_readme.py hold them to it)
CELL_SENTENCE = (f"Each cell holds the mean over seeds and, in brackets, its {LEVEL * 100:.0f} % "
                 "confidence interval (Student's t over the seeds, an accuracy's cut to 0-100 %), "
                 "or the value marked \"one seed\" where one seed ran.")


def summarise(table: pd.DataFrame, value: str = "accuracy", by: tuple[str, ...] = ("probe", "split")
              ) -> pd.DataFrame:
    """Mean, standard deviation over seeds and seed count per experiment (GROUP) and ``by``."""
    table = table.assign(**{value: pd.to_numeric(table[value], errors="coerce")})
    grouped = table.groupby([*GROUP, *by], dropna=False, sort=False)[value]
    return grouped.agg(mean="mean", std="std", seeds="count").reset_index()


def format_cell(mean: float, std: float, seeds: int, decimals: int = 2,
                bounds: tuple[float | None, float | None] = (None, None)) -> str:
    """The mean over seeds with its 95 % confidence interval (statistics.interval), cut to
    ``bounds`` (ACCURACY for an accuracy), or the mean and "one seed" where there is none."""
    if pd.isna(mean):
        return "n/a"
    found = interval(mean, std, seeds, *bounds)
    if found is None:
        return f"{mean:.{decimals}f} (one seed)"
    low, high = found
    return f"{mean:.{decimals}f} [{low:.{decimals}f}, {high:.{decimals}f}]"


def method_order(methods, paper_order: list[str]) -> list[str]:
    """The methods, the paper's first in its order, then the others by name."""
    return sorted(set(methods), key=lambda m: (paper_order.index(m) if m in paper_order
                                               else len(paper_order), m))


def is_reference(variant) -> bool:
    """Whether an experiment's variant is a reference row's (RunRecord.reference)."""
    return str(variant).startswith(REFERENCE_VARIANT)


def keyed_rows(table: pd.DataFrame, paper_order: list[str]):
    """(experiment key: method, z_dim, s_dim, variant; its rows) in the report's order: the
    folder's own experiments, then the reference rows (each by method, then latent sizes)."""
    keys = table[GROUP].drop_duplicates()
    order = method_order(keys.method, paper_order)
    keys = keys.assign(r=keys.variant.map(is_reference), o=keys.method.map(order.index))
    keys = keys.sort_values(["r", "o", "z_dim", "s_dim", "variant"])
    for _, key in keys.iterrows():
        yield key, table[(table[GROUP] == key[GROUP]).all(axis=1)]


class Experiments:
    """The leading cells of a row: method (marked when its z is deterministic, when it is an
    external model, and when it is a reference row), latent sizes, the settings in which it
    differs from other experiments of the method (when any do: among the folder's own runs; a
    reference row holds a preset's defaults), seeds."""

    def __init__(self, records: list[RunRecord]):
        self.settings = differing_settings([r for r in records if r.reference is None])
        self.deterministic = {r.method for r in records if not r.variational_z}
        self.external = {r.method for r in records if r.external is not None}
        self.show_settings = any(self.settings.values())

    def header(self) -> list[str]:
        return ["method", "z / s", *(["settings"] if self.show_settings else []), "seeds"]

    def name(self, key) -> str:
        """The experiment in words: method, latent sizes and its differing settings."""
        settings = self.settings.get(key.variant) if self.show_settings else ""
        return (f"{key.method} {key.z_dim}/{key.s_dim}" + (f" ({settings})" if settings else "")
                + (f" {REFERENCE_MARK}" if is_reference(key.variant) else ""))

    def cells(self, key, seeds: int) -> list[str]:
        label = key.method + (f" {DETERMINISTIC_MARK}" if key.method in self.deterministic else "")
        label += f" {EXTERNAL_MARK}" if key.method in self.external else ""
        label += f" {REFERENCE_MARK}" if is_reference(key.variant) else ""
        settings = [self.settings.get(key.variant) or "defaults"] if self.show_settings else []
        return [label, f"{key.z_dim} / {key.s_dim}", *settings, str(seeds)]


def read_rows(records: list[RunRecord], file: str) -> pd.DataFrame:
    """The rows of the table ``file`` (an evaluation's) of every run that has it, with each run's
    variant."""
    frames = []
    for record in records:
        table = record.table(file)
        if table is not None and not table.empty:
            frames.append(table.assign(variant=record.variant))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def plain_figure_name(dataset: str, preset: str, z, s) -> bool:
    """Whether a report figure may be named after these (read from run files, they never choose
    where a file is written): plain dataset and preset names, integer latent sizes."""
    return all(map(results.is_plain_name, (dataset, preset))) and all(
        isinstance(d, int) and not isinstance(d, bool) for d in (z, s))


def run_figure(record: RunRecord, file: str, what: str, caption: str, width: int) -> Figure:
    """The figure ``file`` of a run's folder (``what`` it shows, in words, says where it is
    missing), or a caption saying why it is not shown."""
    path = record.path(file)
    if not path.is_file() and not path.is_symlink():
        return Figure(None, f"{record.label()}: no {what} figure in {record.dir}")
    if not embeddable(path, record.dir):
        return Figure(None, f"{record.label()}: {path.name} left out: only a PNG file of the run's "
                            "own folder is shown (not a link, nor any other file)")
    return Figure(path, caption, width)


def runs_by_latent_sizes(records: list[RunRecord], paper_order: list[str]
                         ) -> dict[tuple, list[RunRecord]]:
    """{(z_dim, s_dim): runs}, each list in the report's order (method, variant, seed), the sizes
    in the order their first run comes."""
    order = method_order([r.method for r in records], paper_order)
    by_sizes: dict[tuple, list[RunRecord]] = {}
    for record in sorted(records, key=lambda r: (order.index(r.method), r.variant, r.seed)):
        by_sizes.setdefault((record.z_dim, record.s_dim), []).append(record)
    return by_sizes
