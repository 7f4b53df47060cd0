"""Whether the methods' order of leakage depends on the probe: for every probed code, a converged
linear probe and a high-capacity non-parametric one (k nearest neighbours)
(bench/metrics/probe_kinds.py), read beside the paper's probe at the table's own budget, which
metrics.csv already holds; and the report's figure and sentences on the methods' order under
each. Opt-in: `bench evaluate --evaluations probe_sensitivity`."""
from __future__ import annotations

from typing import TYPE_CHECKING

from bench.evaluations.base import Context, Evaluation, Outcome, ReportTable, register
from bench.evaluations.probes import CODES_IN_WORDS
from bench.sections.blocks import Block, Figure, Paragraph
from bench.sections.hook import ReportSection, SectionInput
from bench.sections.orders import RULES

if TYPE_CHECKING:
    import pandas as pd

NAME = "probe_sensitivity"
STREAM = "probe sensitivity"

# The probes of the sweep (the ``capacity`` column), smallest capacity first, and their names in
# the report's sentences
CAPACITIES = {"linear": "the linear probe", "knn": "the k-NN probe"}
TABLE_PROBE = "paper"  # the figure's name for metrics.csv's probe, the paper's at the table's budget
REFERENCE = "the paper probe of the table"

PROTOCOL = ("each code standardised per dimension on the training codes; linear: multinomial "
            "logistic regression by scikit-learn's L-BFGS to convergence (C = 1); knn: k nearest "
            "neighbours (Euclidean, majority vote), k of 1, 3, 5, 9, 15, 25, 45, 75, 125 chosen "
            "by leave-one-out accuracy on 10,000 seeded training codes (all when fewer), the "
            "train split's accuracy being that leave-one-out accuracy; a sampled z drawn once "
            "per split (stream 'probe sensitivity')")


def readings(task, seed: int) -> dict[str, object]:
    """{capacity: Reading} of one code's probes (a ProbeTask: its codes drawn once, seeded)."""
    import torch

    from bench.metrics.probe_kinds import knn_probe, linear_probe
    generator = torch.Generator(device=task.train.mean.device).manual_seed(seed)
    train, test = (code.draw(generator).double().cpu().numpy() for code in (task.train, task.test))
    labels = [values.cpu().numpy() for values in (task.train_labels, task.test_labels)]
    return {"linear": linear_probe(train, labels[0], test, labels[1]),
            "knn": knn_probe(train, labels[0], test, labels[1], seed=seed)}


def sensitivity_rows(context: Context) -> Outcome:
    """The two probes of every code: train and test accuracy of each; a deterministic z has no
    sample, and its sample's rows read its mean's."""
    from bench.evaluations.encoding import class_probe_job
    seed = context.seed(STREAM)
    job = class_probe_job(context.train, context.test, context.data,
                          **{**context.probe_options, "seed": seed})
    found, chosen = {}, {}
    for code, task in job.tasks.items():
        found[code] = readings(task, seed)
        chosen[code] = {"k": found[code]["knn"].chosen,
                        "linear_iterations": found[code]["linear"].chosen}
        context.stop()
    rows = [dict(probe=code, capacity=capacity, split=split, accuracy=round(value, 4))
            for code in job.codes
            for capacity, reading in found.get(code, found["z_mean"]).items()
            for split, value in (("train", reading.train), ("test", reading.test))]
    return Outcome(rows, {"protocol": job.protocol, "probes": PROTOCOL, "chosen": chosen})


def sweep_rows(section: SectionInput, z, s) -> pd.DataFrame:
    """The sweep's test rows of latent sizes z/s, each with its run's own identity (method,
    sizes, variant) rather than the file's, and a probe the evaluation writes (nothing else is
    drawn or counted), of the runs that computed this version of it (version 2's sweep read
    other probes at several budgets); empty where none did."""
    import pandas as pd
    frames = []
    for record in (r for r in section.records if (r.z_dim, r.s_dim) == (z, s)):
        if record.evaluations.get(NAME, {}).get("version") != PROBE_SENSITIVITY.version:
            continue
        table = record.table(PROBE_SENSITIVITY.file)
        if table is not None and not table.empty:
            frames.append(table.assign(method=record.method, z_dim=z, s_dim=s,
                                       variant=record.variant))
    if not frames:
        return pd.DataFrame()
    table = pd.concat(frames, ignore_index=True)
    return table[(table.split.astype(str) == "test")
                 & table.capacity.astype(str).isin(CAPACITIES)]


def table_rows(section: SectionInput, z, s) -> pd.DataFrame:
    """The latent probes' test rows of latent sizes z/s (metrics.csv: the paper's probe at each
    run's own probe epochs), as the sweep's rows of the probe TABLE_PROBE."""
    metrics = section.metrics
    chosen = metrics[(metrics.split.astype(str) == "test") & (metrics.z_dim == z)
                     & (metrics.s_dim == s)]
    return chosen.assign(capacity=TABLE_PROBE)


def order_sentence(code: str, sweep: pd.DataFrame, table: pd.DataFrame,
                   section: SectionInput) -> str | None:
    """Each probe of the sweep's order of the experiments by ``code`` against the table's probe,
    by the rules of bench/sections/orders.py; None where fewer than two experiments have both."""
    from bench.sections.orders import code_sentence, numbers_by_experiment
    from bench.sections.statistics import compare_orders

    def numbers(rows: pd.DataFrame) -> dict[str, list[float]]:
        return numbers_by_experiment(rows[rows.probe.astype(str) == code], "accuracy",
                                     section.experiments, section.paper_order)

    reference = numbers(table)
    comparisons = {}
    for capacity, words in CAPACITIES.items():
        found = numbers(sweep[sweep.capacity.astype(str) == capacity])
        if len(set(found) & set(reference)) >= 2:
            comparisons[words] = compare_orders(reference, found)
    return code_sentence(CODES_IN_WORDS[code], comparisons) if comparisons else None


def figure_means(section: SectionInput, sweep: pd.DataFrame, table: pd.DataFrame) -> pd.DataFrame:
    """The test accuracy of the table's probe and of the sweep's, means over seeds of each
    experiment, code and probe, each with its experiment's name (``method``), in the methods'
    order, the experiments that computed the sweep only."""
    import pandas as pd

    from bench.sections.experiments import GROUP, method_order, summarise
    swept = sweep[GROUP].drop_duplicates()
    table = table.merge(swept, on=GROUP)
    rows = pd.concat([table, sweep], ignore_index=True)
    means = summarise(rows, "accuracy", ("probe", "capacity")).dropna(subset=["mean"])
    order = method_order(means.method, section.paper_order)
    means = means.assign(order=means.method.map(order.index)).sort_values("order", kind="stable")
    return means.assign(method=[section.experiments.name(key) for key in means.itertuples()])


def dependence_on_the_probe(section: SectionInput) -> list[Block]:
    """Where runs computed probe_sensitivity, per latent size: how each probe of the sweep orders
    the methods against the table's probe, and a figure of every probe's accuracy."""
    from bench.sections.experiments import plain_figure_name
    dataset, preset = section.dataset, section.preset
    blocks: list[Block] = []
    for z, s in sorted({(r.z_dim, r.s_dim) for r in section.records}, key=str):
        sweep = sweep_rows(section, z, s)
        if sweep.empty:
            continue
        table = table_rows(section, z, s)
        sentences = [sentence for code in CODES_IN_WORDS
                     if (sentence := order_sentence(code, sweep, table, section))]
        if sentences:
            blocks.append(Paragraph(
                f"**How the methods' order depends on the probe** (z/s {z}/{s}, evaluation "
                f"`{NAME}`: each probe's order of the experiments against {REFERENCE}, the "
                f"paper's classifier at the run's own probe epochs, {RULES}). "
                + " ".join(sentences)))
        if plain_figure_name(dataset, preset, z, s):
            from bench import drawing  # matplotlib: only where a figure is drawn
            path = section.figures_dir / f"probe-sensitivity-{dataset}-{preset}-z{z}-s{s}.png"
            drawing.plot_probe_sensitivity(figure_means(section, sweep, table), path,
                                           f"Test accuracy under each probe, {dataset}, z/s "
                                           f"{z}/{s}, {preset} preset (means over seeds)")
            blocks.append(Figure(path, "Test accuracy of each code's probes, a line per "
                                       "experiment: where two lines cross, the probes order "
                                       "them otherwise (the sentences above say whether the "
                                       "seeds separate them).", width=1150))
    return blocks


PROBE_SENSITIVITY = register(Evaluation(
    name=NAME, version=3, file="probe_sensitivity.csv",
    columns=("probe", "capacity", "split", "accuracy"),
    compute=sensitivity_rows, by_default=False, order=5,
    title="How the probes' numbers depend on the probe",
    description="Accuracy (%) of two probes of the specified label unlike the paper's, for every "
                "code: linear, a multinomial logistic regression fitted to convergence; knn, k "
                "nearest neighbours, a probe of high capacity that assumes no form, k chosen by "
                "leave-one-out accuracy on the training codes (its train column is that "
                "leave-one-out accuracy). Both read each code dimension standardised on the "
                "training codes. The paper's probe at the table's own budget is the table's: "
                "where the methods' order under these probes differs from its, the leakage "
                "ranking depends on the probe as much as on the method. Opt-in (bench evaluate "
                "--evaluations probe_sensitivity).",
    tables=tuple(ReportTable(pivot=("capacity",), value="accuracy",
                             where={"probe": code, "split": "test"},
                             caption=f"Test accuracy from {code}, by probe.")
                 for code in ("z_sample", "z_mean", "s")),
    section=ReportSection(analyses=dependence_on_the_probe, order=10)))
