"""Evaluations of a trained run, behind one registry. Every module in this package is imported so
that its registered evaluations appear in ``EVALUATIONS``: adding a metric is adding one file.
Modules that are not evaluations (``base``, and the shared parts whose names start with an
underscore: encoding and probe jobs, t-SNE workers, per-run figures, `bench evaluate`) are
skipped."""
import importlib
import pkgutil

from bench.evaluations.base import (EVALUATIONS, Checked, Context, Evaluation, Outcome, ReportTable,
                                    by_default, compute_together, in_order, is_current, register,
                                    report_sections, run_evaluations)
from bench.sections.hook import PaperColumns, ReportSection, SectionInput

for _module in pkgutil.iter_modules(__path__):
    if _module.name != "base" and not _module.name.startswith("_"):
        importlib.import_module(f"{__name__}.{_module.name}")

__all__ = ["EVALUATIONS", "Checked", "Context", "Evaluation", "Outcome", "PaperColumns",
           "ReportSection", "ReportTable", "SectionInput", "by_default", "compute_together",
           "in_order", "is_current", "register", "report_sections", "run_evaluations"]
