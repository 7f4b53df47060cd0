"""Datasets with unspecified factors: MIG, SAP and DCI of the posterior mean of z with respect to
them (bench/metrics/mig_sap.py, bench/metrics/dci.py)."""
from __future__ import annotations

from bench.evaluations.base import Context, Evaluation, Outcome, ReportTable, register

DCI_METRICS = ("DCI disentanglement", "DCI completeness", "DCI informativeness")


def disentanglement_rows(context: Context) -> Outcome:
    from bench.evaluations.encoding import disentanglement_scores
    scores = disentanglement_scores(context.train, context.test, context.data,
                                    seed=context.seed("disentanglement") % 2**31)
    rows = []
    for metric, overall, per_factor in (("MIG", scores.mig, scores.per_factor_mig),
                                        ("SAP", scores.sap, scores.per_factor_sap)):
        for factor, value in [("all", overall), *per_factor.items()]:
            rows.append(dict(code="z_mean", metric=metric, factor=factor, value=round(float(value), 4)))
    dci = scores.dci
    for metric, value in zip(DCI_METRICS, (dci.disentanglement, dci.completeness,
                                           dci.informativeness_test)):
        rows.append(dict(code="z_mean", metric=metric, factor="all", value=round(float(value), 4)))
    return Outcome(rows, {"code": "z_mean", "factors": list(context.data.unspecified_factors),
                          "definitions": "disentanglement_lib: MIG with 20-bin histograms, SAP with "
                                         "a LinearSVC per dimension (each dimension standardised "
                                         "on the training codes first: not in the reference), "
                                         "DCI from gradient-boosted trees' feature importances "
                                         "(informativeness: their mean test accuracy)"})


DISENTANGLEMENT = register(Evaluation(
    name="disentanglement", version=3, file="disentanglement.csv",
    columns=("code", "metric", "factor", "value"),
    compute=disentanglement_rows, applies=lambda data: bool(data.unspecified_factors), order=20,
    title="Disentanglement of z: MIG, SAP and DCI",
    description="Scores of the posterior mean of z with respect to the unspecified factors, as "
                "defined in disentanglement_lib. MIG: mutual information gap over 20-bin "
                "histograms, normalised by each factor's entropy. SAP: gap between the two "
                "dimensions whose single-dimension linear SVM predicts the factor best. The "
                "runner-up dimension of a perfect code carries nothing of the factor and is read "
                "near chance, so SAP is at most about 1 - 1/c on a factor of c values (0.5 for "
                "two), and lower where one dimension's thresholds cannot isolate the middle "
                "values. The SVM (C = 0.01) reads a code at its scale, and a code of small scale "
                "scores lower (the same perfect code 0.25 scaled by 0.01, 0.64 at its own scale): "
                "here each dimension is standardised on the training codes before SAP, a "
                "departure from disentanglement_lib (docs/evaluation.md). DCI (Eastwood & "
                "Williams 2018): from the importance of each dimension of z for predicting each "
                "factor with gradient-boosted trees, disentanglement (each dimension matters for "
                "one factor), completeness (each factor is captured by one dimension) and "
                "informativeness (the trees' test accuracy, 0 to 1). All lie in [0, 1]; higher "
                "is better.",
    tables=(ReportTable(pivot=("metric",), value="value", where={"factor": "all"}, decimals=3),
            ReportTable(pivot=("factor", "metric"), value="value",
                        where={"metric": ("MIG", "SAP")}, exclude={"factor": "all"}, decimals=2,
                        caption="Per unspecified factor: MIG and SAP.")),
))
