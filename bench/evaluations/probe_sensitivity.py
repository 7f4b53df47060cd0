"""How much the latent probes' numbers depend on the probe: the accuracy of probes of increasing
capacity (linear, the paper's, a wider and deeper one) read at increasing training budgets (5, 20,
50 and 100 epochs of one training per capacity), for every probed code. Opt-in:
`bench evaluate --evaluations probe_sensitivity`."""
from __future__ import annotations

from bench.evaluations.base import (Context, Evaluation, Outcome, ReportTable, register,
                                    stop_checks)

BUDGETS = (5, 20, 50, 100)
CAPACITIES = ("linear", "paper", "wide")  # the keys of bench.metrics.probes.CAPACITIES, smallest first


def sensitivity_together(contexts: list[Context]) -> list[Outcome]:
    """The sweep of several runs: for each capacity, every run's probes of every code fitted side
    by side as one stack (bench.evaluations._encoding.fit_job_curves)."""
    from bench.evaluations._encoding import class_probe_job, fit_job_curves
    jobs = [class_probe_job(c.train, c.test, c.data,
                            **{**c.probe_options, "seed": c.seed("probe sensitivity")})
            for c in contexts]
    curves = {capacity: fit_job_curves(jobs, capacity=capacity, budgets=BUDGETS,
                                       between=stop_checks(contexts))
              for capacity in CAPACITIES}
    outcomes = []
    for k, job in enumerate(jobs):
        rows = []
        for capacity in CAPACITIES:
            for code in job.codes:  # a deterministic z has no sample: its sample reads its mean
                curve = curves[capacity][k].get(code, curves[capacity][k].get("z_mean"))
                rows += [dict(probe=code, capacity=capacity, epochs=epochs, split=split,
                              accuracy=round(value, 4))
                         for epochs in BUDGETS
                         for split, value in zip(("train", "test"), curve[epochs])]
        outcomes.append(Outcome(rows, {"protocol": job.protocol, "budgets": list(BUDGETS),
                                       "capacities": list(CAPACITIES)}))
    return outcomes


def sensitivity_rows(context: Context) -> Outcome:
    return sensitivity_together([context])[0]


PROBE_SENSITIVITY = register(Evaluation(
    name="probe_sensitivity", version=2, file="probe_sensitivity.csv",
    columns=("probe", "capacity", "epochs", "split", "accuracy"),
    compute=sensitivity_rows, compute_together=sensitivity_together, by_default=False, order=5,
    title="How the probes' numbers depend on the probe",
    description="Test accuracy (%) of probes of the specified label of increasing capacity "
                "(linear: logistic regression; paper: the latent probe of the table; wide: twice "
                "as wide and one hidden layer deeper) read after 5, 20, 50 and 100 epochs of "
                "one training each, same data, batch size and learning rate as the latent probes. "
                "A leakage number that moves much along a row depends on the probe as much as on "
                "the method. Opt-in (bench evaluate --evaluations probe_sensitivity).",
    tables=tuple(ReportTable(pivot=("capacity", "epochs"), value="accuracy",
                             where={"probe": code, "split": "test"},
                             caption=f"Test accuracy from {code}, by probe capacity and epochs.")
                 for code in ("z_sample", "z_mean", "s"))))
