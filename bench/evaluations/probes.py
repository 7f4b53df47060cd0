"""The paper's latent probes: how well a classifier predicts the specified label from s, from the
posterior mean of z and from a sample of z (metrics.csv, the paper's table)."""
from __future__ import annotations

from bench import results
from bench.evaluations.base import Checked, Context, Evaluation, Outcome, register


def probe_rows(context: Context) -> Outcome:
    from bench.evaluate import probe_accuracies
    accuracies, protocol = probe_accuracies(context.train, context.test, context.data,
                                            **context.probe_options)
    rows = [dict(probe=probe, split=split, accuracy=round(accuracies[probe, split], 4))
            for probe in results.PROBES for split in results.SPLITS]
    return Outcome(rows, {"specified": protocol})


PROBES = register(Evaluation(
    name="probes", version=1, file=results.METRICS_FILE, columns=("probe", "split", "accuracy"),
    compute=probe_rows, order=0,
    title="Latent probes (the paper's table)",
    description="Accuracy (%) of a classifier predicting the specified label from each frozen code: "
                "s (higher is better), the posterior mean of z and a sample of z (lower is better).",
    checked=Checked(key="probe", value="accuracy",
                    higher_is_better={"s": True, "z_mean": False, "z_sample": False})))
