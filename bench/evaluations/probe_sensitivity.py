"""How much the latent probes' numbers depend on the probe: the accuracy of probes of increasing
capacity (linear, the paper's, a wider and deeper one) read at increasing training budgets (5, 20,
50 and 100 epochs of one training per capacity), for every probed code. Opt-in:
`bench evaluate --evaluations probe_sensitivity`."""
from __future__ import annotations

from bench.evaluations.base import Context, Evaluation, Outcome, ReportTable, register

BUDGETS = (5, 20, 50, 100)
CAPACITIES = ("linear", "paper", "wide")  # the keys of bench.metrics.probes.CAPACITIES, smallest first


def sensitivity_rows(context: Context) -> Outcome:
    from bench.evaluations._encoding import class_probe_job
    from bench.metrics.probes import accuracy_curve
    options = context.probe_options
    job = class_probe_job(context.train, context.test, context.data,
                          **{**options, "seed": context.seed("probe sensitivity")})
    rows = []
    for capacity in CAPACITIES:
        curves = {code: accuracy_curve(task, job.num_classes, capacity=capacity, budgets=BUDGETS,
                                       batch_size=job.batch_size, lr=job.lr,
                                       between=context.stop)
                  for code, task in job.tasks.items()}
        for code in job.codes:  # a deterministic z has no sample: its sample reads its mean
            curve = curves.get(code, curves.get("z_mean"))
            rows += [dict(probe=code, capacity=capacity, epochs=epochs, split=split,
                          accuracy=round(value, 4))
                     for epochs in BUDGETS for split, value in zip(("train", "test"), curve[epochs])]
    return Outcome(rows, {"protocol": job.protocol, "budgets": list(BUDGETS),
                          "capacities": list(CAPACITIES)})


PROBE_SENSITIVITY = register(Evaluation(
    name="probe_sensitivity", version=1, file="probe_sensitivity.csv",
    columns=("probe", "capacity", "epochs", "split", "accuracy"),
    compute=sensitivity_rows, by_default=False, order=5,
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
