"""Datasets with known factors: each factor probed from s and from the posterior mean of z."""
from __future__ import annotations

from bench.evaluations.base import Context, Evaluation, Outcome, ReportTable, register


def factor_rows(context: Context) -> Outcome:
    from bench.evaluate import FACTOR_PROBE_CODES, factor_probe_accuracies
    data = context.data
    accuracies, protocols = factor_probe_accuracies(context.train, context.test, data,
                                                    **context.probe_options)
    rows = [dict(factor=factor, unspecified=factor in data.unspecified_factors, code=code,
                 split=split, accuracy=round(value, 4),
                 chance=round(100.0 / data.factor_sizes[factor], 4))
            for (factor, code, split), value in accuracies.items()]
    return Outcome(rows, {"protocols": protocols, "codes": list(FACTOR_PROBE_CODES)})


FACTORS = register(Evaluation(
    name="factors", version=1, file="factors.csv",
    columns=("factor", "unspecified", "code", "split", "accuracy", "chance"),
    compute=factor_rows, applies=lambda data: bool(data.train_factors), order=10,
    title="Known factors: what each code holds",
    description="Test accuracy (%) of a probe (the same classifier) predicting each known factor "
                "from s and from the posterior mean of z. Factors on the specified side (they make "
                "up the pairing label) should be read from s and not from z; unspecified factors "
                "from z and not from s.",
    tables=(ReportTable(pivot=("factor", "code"), value="accuracy", where={"split": "test"},
                        decimals=1, header_notes=("chance",)),)))
