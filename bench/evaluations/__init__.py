"""Evaluations of a trained run, behind one registry. Every module in this package is imported so
that its registered evaluations appear in ``EVALUATIONS``: adding a metric is adding one file.
The modules of ``SHARED_PARTS`` are not evaluations but what they share (the registry, encoding
the splits and the probe jobs, openTSNE and its worker processes, the swap grid's pixels), and
are skipped, as are private ones (a leading underscore: used only inside this package)."""
import importlib
import pkgutil

from bench.evaluations.base import (EVALUATIONS, Checked, Context, Evaluation, Outcome, ReportTable,
                                    by_default, compute_together, in_order, is_current, register,
                                    report_sections, run_evaluations)
from bench.sections.hook import PaperColumns, ReportSection, SectionInput

SHARED_PARTS = ("base", "encoding", "tsne_fit", "tsne_pool", "swap_grid_cells")

for _module in pkgutil.iter_modules(__path__):
    if _module.name not in SHARED_PARTS and not _module.name.startswith("_"):
        importlib.import_module(f"{__name__}.{_module.name}")

__all__ = ["EVALUATIONS", "Checked", "Context", "Evaluation", "Outcome", "PaperColumns",
           "ReportSection", "ReportTable", "SectionInput", "by_default", "compute_together",
           "in_order", "is_current", "register", "report_sections", "run_evaluations"]
