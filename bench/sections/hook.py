"""How an evaluation owns its part of the report: ``Evaluation.section``, a ``ReportSection``, says
what the evaluation adds at each place of a dataset's section, each a function of the
``SectionInput`` (that dataset and preset's runs, as the report has read them). The report lays
the places out and knows no evaluation by name; its tables (``Evaluation.tables``) it shows the
same way for every evaluation.

The registry imports this module, so it imports no torch, scipy or matplotlib at module level.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from bench.sections.blocks import Block

if TYPE_CHECKING:
    import pandas as pd

    from bench.sections.experiments import Experiments
    from bench.store.records import RunRecord

FIGURES_DIR = "figures"  # the report's own figures (side-by-side comparisons), in results/


@dataclasses.dataclass(frozen=True)
class SectionInput:
    """One dataset and preset's part of the report, as an evaluation's section sees it."""
    dataset: str
    preset: str
    records: list[RunRecord]  # its complete runs
    metrics: pd.DataFrame  # their latent probes' rows (metrics.csv), with each run's variant
    paper_order: list[str]  # the methods of the paper's table for the dataset, in its order
    experiments: Experiments
    results_dir: Path
    # The suite's published numbers for the dataset, preset and the runs' latent sizes
    # (bench/report/references.py), each a record marked ``reference``: shown in the tables
    # beside the runs (``with_references``), never in the statistics, figures or run lists
    references: tuple[RunRecord, ...] = ()

    def with_references(self) -> "SectionInput":
        """The same part with the reference rows among its records and metrics: what the
        report's tables (and an evaluation's columns in them) are laid out from."""
        if not self.references:
            return self
        import pandas as pd

        from bench.sections.experiments import Experiments
        from bench.store.records import metrics_of
        records = [*self.records, *self.references]
        metrics = pd.concat([self.metrics, metrics_of(list(self.references))], ignore_index=True)
        return dataclasses.replace(self, records=records, metrics=metrics,
                                   experiments=Experiments(records), references=())

    @property
    def figures_dir(self) -> Path:
        """Where the report draws its own figures, each named after the dataset and preset only
        where ``plain_figure_name`` allows it."""
        return self.results_dir / FIGURES_DIR

    def rows(self, file: str) -> pd.DataFrame:
        """The rows of an evaluation's table ``file`` of every run that has it, with each run's
        variant; empty where none has."""
        from bench.sections.experiments import read_rows
        return read_rows(self.records, file)

    def runs_by_latent_sizes(self) -> dict[tuple, list[RunRecord]]:
        """{(z_dim, s_dim): runs}, in the report's order."""
        from bench.sections.experiments import runs_by_latent_sizes
        return runs_by_latent_sizes(self.records, self.paper_order)


Blocks = Callable[[SectionInput], list[Block]]


@dataclasses.dataclass(frozen=True)
class PaperColumns:
    """Columns an evaluation adds to the paper's table, after its z test column: their headers,
    and the cells of an experiment (its key: method, z_dim, s_dim, variant), one per header."""
    header: tuple[str, ...]
    cells: Callable[[pd.Series], list[str]]


@dataclasses.dataclass(frozen=True)
class ReportSection:
    """What an evaluation shows in each dataset's section of the report, beyond its tables, at
    the places the report has, in their order; each optional, each empty where the runs hold
    nothing of it. ``order`` places it among the sections of one place (``Evaluation.order`` is
    the run's order and its tables')."""
    paper_columns: Callable[[SectionInput], PaperColumns | None] | None = None
    paper_notes: Blocks | None = None  # under the paper's table
    analyses: Blocks | None = None  # after the tables of the latent probes, before the evaluations'
    figures: Blocks | None = None  # after the evaluations' tables, before the training curves
    order: int = 100
