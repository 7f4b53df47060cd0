"""Datasets with known factors: each factor probed from s and from the posterior mean of z."""
from __future__ import annotations

from bench.evaluations.base import Context, Evaluation, Outcome, ReportTable, register, stop_checks


def factor_rows_together(contexts: list[Context]) -> list[Outcome]:
    """The factor probes of several runs, fitted side by side (bench.evaluations.encoding.fit_jobs)."""
    from bench.evaluations.encoding import factor_accuracies, factor_probe_jobs, fit_jobs
    jobs = [factor_probe_jobs(c.train, c.test, c.data, **c.probe_options) for c in contexts]
    found = iter(fit_jobs([job for run in jobs for job in run.values()],
                          between=stop_checks(contexts)))
    return [_outcome(context, *factor_accuracies(run, [next(found) for _ in run]))
            for context, run in zip(contexts, jobs)]


def factor_rows(context: Context) -> Outcome:
    return factor_rows_together([context])[0]


def _outcome(context: Context, accuracies: dict, protocols: dict[str, str]) -> Outcome:
    from bench.evaluations.encoding import FACTOR_PROBE_CODES
    data = context.data
    rows = [dict(factor=factor, unspecified=factor in data.unspecified_factors, code=code,
                 split=split, accuracy=round(value, 4),
                 chance=round(100.0 / data.factor_sizes[factor], 4))
            for (factor, code, split), value in accuracies.items()]
    return Outcome(rows, {"protocols": protocols, "codes": list(FACTOR_PROBE_CODES)})


FACTORS = register(Evaluation(
    name="factors", version=1, file="factors.csv",
    columns=("factor", "unspecified", "code", "split", "accuracy", "chance"),
    compute=factor_rows, compute_together=factor_rows_together,
    applies=lambda data: bool(data.train_factors), order=10,
    title="Known factors: what each code holds",
    description="Test accuracy (%) of a probe (the same classifier) predicting each known factor "
                "from s and from the posterior mean of z. Factors on the specified side (they make "
                "up the pairing label) should be read from s and not from z; unspecified factors "
                "from z and not from s.",
    tables=(ReportTable(pivot=("factor", "code"), value="accuracy", where={"split": "test"},
                        decimals=1, header_notes=("chance",)),)))
