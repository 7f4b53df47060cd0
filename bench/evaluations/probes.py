"""The paper's latent probes: how well a classifier predicts the specified label from s, from the
posterior mean of z and from a sample of z (metrics.csv, the paper's table)."""
from __future__ import annotations

from bench.evaluations.base import Checked, Context, Evaluation, Outcome, register, stop_checks
from bench.sections.blocks import Block, Paragraph
from bench.sections.hook import ReportSection, SectionInput
from bench.store import results

NAME = "probes"
CODES = ("s", "z_mean", "z_sample")  # the codes probed, in metrics.csv's order
# The codes as the report's sentences on the methods' order name them, in the order they come
CODES_IN_WORDS = {"z_sample": "the z sample's leakage", "z_mean": "the z mean's leakage", "s": "s"}


def probe_rows_together(contexts: list[Context]) -> list[Outcome]:
    """The probes of several runs, fitted side by side (bench.evaluations.encoding.fit_jobs)."""
    from bench.evaluations.encoding import class_probe_job, fit_jobs
    jobs = [class_probe_job(c.train, c.test, c.data, **c.probe_options) for c in contexts]
    return [Outcome([dict(probe=probe, split=split, accuracy=round(accuracies[probe, split], 4))
                     for probe in CODES for split in results.SPLITS],
                    {"specified": job.protocol})
            for job, accuracies in zip(jobs, fit_jobs(jobs, between=stop_checks(contexts)))]


def probe_rows(context: Context) -> Outcome:
    return probe_rows_together([context])[0]


def protocol_sentence(section: SectionInput) -> list[Block]:
    """The probes' protocol as the runs' evaluation.json records it (each one once). The paper's
    table itself is the report's own."""
    protocols = {r.evaluations.get(NAME, {}).get("specified") for r in section.records} - {None}
    if not protocols:
        return []
    return [Paragraph("Probe protocol: " + "; ".join(sorted(protocols)) + ".")]


PROBES = register(Evaluation(
    name=NAME, version=1, file=results.METRICS_FILE, columns=("probe", "split", "accuracy"),
    compute=probe_rows, compute_together=probe_rows_together, order=0,
    title="Latent probes (the paper's table)",
    description="Accuracy (%) of a classifier predicting the specified label from each frozen code: "
                "s (higher is better), the posterior mean of z and a sample of z (lower is better).",
    checked=Checked(key="probe", value="accuracy",
                    higher_is_better={"s": True, "z_mean": False, "z_sample": False}),
    section=ReportSection(analyses=protocol_sentence, order=30)))
