"""How much the latent probes' numbers depend on the probe: the accuracy of probes of increasing
capacity (linear, the paper's, a wider and deeper one) read at increasing training budgets (5, 20,
50 and 100 epochs of one training per capacity), for every probed code. Opt-in:
`bench evaluate --evaluations probe_sensitivity`."""
from __future__ import annotations

from typing import TYPE_CHECKING

from bench.evaluations.base import (Context, Evaluation, Outcome, ReportTable, register,
                                    stop_checks)
from bench.evaluations.probes import CODES_IN_WORDS
from bench.sections.blocks import Block, Figure, Paragraph
from bench.sections.hook import ReportSection, SectionInput
from bench.sections.orders import RULES

if TYPE_CHECKING:
    import pandas as pd

NAME = "probe_sensitivity"

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


def sweep_rows(section: SectionInput, z, s) -> pd.DataFrame:
    """The sweep's test rows of latent sizes z/s, each with its run's own identity (method,
    sizes, variant) rather than the file's, its budget a number and its probe a capacity the
    evaluation writes (nothing else is drawn or counted); empty where no run of these sizes
    computed the sweep."""
    import pandas as pd
    frames = []
    for record in (r for r in section.records if (r.z_dim, r.s_dim) == (z, s)):
        table = record.table(PROBE_SENSITIVITY.file)
        if table is not None and not table.empty:
            frames.append(table.assign(method=record.method, z_dim=z, s_dim=s,
                                       variant=record.variant))
    if not frames:
        return pd.DataFrame()
    table = pd.concat(frames, ignore_index=True)
    table = table[(table.split.astype(str) == "test")
                  & table.capacity.astype(str).isin(CAPACITIES)]
    return table.assign(epochs=pd.to_numeric(table.epochs, errors="coerce"))


def sweep_means(section: SectionInput, z, s) -> pd.DataFrame:
    """The test accuracy of the sweep's probes for latent sizes z/s, as means over seeds of each
    experiment, code, capacity and budget, each with its experiment's name (``label``), in the
    methods' order; empty where no run of these sizes computed the sweep."""
    from bench.sections.experiments import method_order, summarise
    table = sweep_rows(section, z, s)
    if table.empty:
        return table
    means = summarise(table, "accuracy", ("probe", "capacity", "epochs")).dropna(subset=["mean"])
    if means.empty:
        return means
    order = method_order(means.method, section.paper_order)
    return means.assign(label=[section.experiments.name(key) for key in means.itertuples()],
                        order=means.method.map(order.index)).sort_values("order", kind="stable")


REFERENCE = "the paper probe of the table"


def order_sentence(code: str, sweep: pd.DataFrame, section: SectionInput) -> str | None:
    """Each probe of the sweep's order of the experiments by ``code`` against the table's probe
    (metrics.csv: the paper's probe at the run's own probe epochs), by the rules of
    bench/sections/orders.py; None where fewer than two experiments have both."""
    from bench.sections.orders import code_sentence, numbers_by_experiment
    from bench.sections.statistics import compare_orders
    metrics = section.metrics
    table = metrics[(metrics.split.astype(str) == "test") & (metrics.probe.astype(str) == code)
                    & metrics.z_dim.isin(sweep.z_dim.unique())
                    & metrics.s_dim.isin(sweep.s_dim.unique())]
    reference = numbers_by_experiment(table, "accuracy", section.experiments, section.paper_order)
    part = sweep[sweep.probe.astype(str) == code]
    comparisons = {}
    for (capacity, epochs), rows in part.groupby(["capacity", "epochs"], sort=False):
        found = numbers_by_experiment(rows, "accuracy", section.experiments, section.paper_order)
        if len(set(found) & set(reference)) >= 2:
            comparisons[f"the {capacity} probe at {epochs:g} epochs"] = compare_orders(reference,
                                                                                     found)
    return code_sentence(CODES_IN_WORDS[code], comparisons) if comparisons else None


def dependence_on_the_probe(section: SectionInput) -> list[Block]:
    """Where runs computed probe_sensitivity, per latent size: whether the methods' order is the
    same under every probe of the sweep, and a figure of accuracy against the probe's budget."""
    from bench.sections.experiments import plain_figure_name
    dataset, preset = section.dataset, section.preset
    blocks: list[Block] = []
    for z, s in sorted({(r.z_dim, r.s_dim) for r in section.records}, key=str):
        means = sweep_means(section, z, s)
        if means.empty:
            continue
        sweep = sweep_rows(section, z, s)
        sentences = [sentence for code in CODES_IN_WORDS
                     if (sentence := order_sentence(code, sweep, section))]
        if sentences:
            blocks.append(Paragraph(
                f"**How the methods' order depends on the probe** (z/s {z}/{s}, evaluation "
                f"`{NAME}`: each probe's order of the experiments against {REFERENCE}, the "
                f"paper's probe at the run's own probe epochs, {RULES}). " + " ".join(sentences)))
        if plain_figure_name(dataset, preset, z, s):
            from bench import drawing  # matplotlib: only where a figure is drawn
            path = section.figures_dir / f"probe-sensitivity-{dataset}-{preset}-z{z}-s{s}.png"
            drawing.plot_probe_sensitivity(means.assign(method=means.label), path,
                                           f"Probe accuracy against the probe's budget, {dataset}, "
                                           f"z/s {z}/{s}, {preset} preset (means over seeds)")
            blocks.append(Figure(path, "Test accuracy of each code's probes: a colour per method, "
                                       "a line style per probe capacity.", width=1150))
    return blocks


PROBE_SENSITIVITY = register(Evaluation(
    name=NAME, version=2, file="probe_sensitivity.csv",
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
                 for code in ("z_sample", "z_mean", "s")),
    section=ReportSection(analyses=dependence_on_the_probe, order=10)))
