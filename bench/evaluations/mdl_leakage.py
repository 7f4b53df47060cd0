"""Leakage as description length: the bits a probe needs to send the specified labels of the test
images given each code (bench/metrics/mdl.py), beside the same code's compression of the labels
permuted (its control: what the code's size and the probe give when the code holds nothing of
the labels) and beside the paper's probe accuracy. Both move with the probe's training length
(docs/evaluation.md, "Training length"): compare compressions of one preset only. Opt-in:
`bench evaluate --evaluations mdl_leakage`."""
from __future__ import annotations

from typing import TYPE_CHECKING

from bench.evaluations.base import Context, Evaluation, Outcome, ReportTable, register
from bench.evaluations.probes import CODES, CODES_IN_WORDS
from bench.sections.blocks import Block, Paragraph
from bench.sections.hook import ReportSection, SectionInput

if TYPE_CHECKING:
    import pandas as pd

    from bench.metrics.mdl import OnlineCode

NAME = "mdl_leakage"
# The control's permutations of the labels: each costs as much as the compression itself
CONTROL_PERMUTATIONS = 3

PROTOCOL = ("online code over the test images in a seeded order: blocks ending at 0.1, 0.2, 0.4, "
            "0.8, 1.6, 3.2, 6.25, 12.5, 25, 50 and 100 % of them (10 images at least in the "
            "first, sent with the uniform code); each later block sent with the paper's probe "
            "classifier trained on the images before it but the last 10 % of them (Adam 1e-3, "
            "the probes' epochs or 100 steps if more, the epoch kept whose code length of the "
            "prefix's last 10 % is shortest)")
CONTROL = (f"the same online code of the test labels permuted, {CONTROL_PERMUTATIONS} seeded "
           "permutations (stream 'mdl control'): the mean compression and the 95 % interval in "
           "which one more permutation's compression falls (Student's t prediction interval)")


def shares_labels(data) -> bool:
    """Whether the test images' labels are labels the training images have (not so where the
    test split holds other identities: a uniform code over every class would overstate it)."""
    from bench.evaluations.encoding import shares_values
    return shares_values(data.train_labels, data.test_labels)


def code_row(probe: str, found: OnlineCode, control: list[float]) -> dict:
    """A row of mdl.csv: the online code of ``probe`` and its ``control``, the compressions of
    the permuted labels."""
    from bench.sections.statistics import prediction_interval
    low, high = prediction_interval(control)
    return dict(probe=probe, bits=round(found.bits, 1), uniform_bits=round(found.uniform_bits, 1),
                compression=round(found.compression, 4),
                control=round(sum(control) / len(control), 4), control_low=round(low, 4),
                control_high=round(high, 4))


def mdl_rows(context: Context) -> Outcome:
    from bench import progress
    from bench.evaluations.encoding import latent_codes
    from bench.metrics.mdl import online_code_lengths, permutation_control
    codes = latent_codes(context.test)
    if codes["z_sample"].std is None:  # a deterministic z: its sample is its mean
        del codes["z_sample"]
    options, data = context.probe_options, context.data

    def send(labels):
        return online_code_lengths(codes, labels, data.num_classes, epochs=options["epochs"],
                                   batch_size=options["batch_size"], seed=context.seed("mdl"),
                                   between=context.stop, bar=progress.logged_bar)

    found = send(data.test_labels)
    control = permutation_control(send, data.test_labels, CONTROL_PERMUTATIONS,
                                  context.seed("mdl control"))
    found.setdefault("z_sample", found["z_mean"])
    control.setdefault("z_sample", control["z_mean"])
    return Outcome([code_row(probe, found[probe], control[probe]) for probe in CODES],
                   {"protocol": PROTOCOL, "control": CONTROL})


def seeds_above_control(rows: pd.DataFrame) -> tuple[int, int]:
    """(runs whose compression lies above their control's interval, runs) of ``rows``."""
    import pandas as pd
    compression, high = (pd.to_numeric(rows[column], errors="coerce")
                         for column in ("compression", "control_high"))
    known = compression.notna() & high.notna()
    return int((compression[known] > high[known]).sum()), int(known.sum())


def control_sentence(code: str, table: pd.DataFrame, section: SectionInput) -> str | None:
    """The experiments whose ``code`` compresses above its control in every run, in none (it
    cannot be told from no leakage) and in some; None where no run has a control."""
    from bench.sections.experiments import keyed_rows
    groups: dict[str, list[str]] = {"every": [], "none": [], "some": []}
    for key, rows in keyed_rows(table[table.probe.astype(str) == code], section.paper_order):
        above, runs = seeds_above_control(rows)
        if runs:
            name = section.experiments.name(key)
            which = "every" if above == runs else "none" if above == 0 else "some"
            groups[which].append(name if which != "some" else f"{name} ({above} of {runs} runs)")
    words = {"every": "above its control in every run", "none": "within or below its control "
             "in every run, so it cannot be told from no leakage",
             "some": "above its control in some runs only"}
    parts = [f"{words[which]}: {', '.join(names)}" for which, names in groups.items() if names]
    return f"by {CODES_IN_WORDS[code]}, " + "; ".join(parts) if parts else None


def against_control(section: SectionInput) -> list[Block]:
    """Where runs computed mdl_leakage with its control, per latent size: which experiments'
    codes compress above their control, and which cannot be told from no leakage."""
    table = section.rows(MDL_LEAKAGE.file)
    if table.empty or "control_high" not in table:
        return []
    blocks: list[Block] = []
    for (z, s), sized in table.groupby(["z_dim", "s_dim"], sort=True):
        sentences = [sentence for code in CODES_IN_WORDS
                     if (sentence := control_sentence(code, sized, section))]
        if sentences:
            blocks.append(Paragraph(
                f"**Each code against its control** (z/s {z}/{s}, evaluation `{NAME}`: a run's "
                "compression against the 95 % interval in which the compression of the same code "
                "with the labels permuted falls): " + "; ".join(sentences) + "."))
    return blocks


def order_sentence(code: str, probed: pd.DataFrame, mdl: pd.DataFrame,
                   section: SectionInput) -> str | None:
    """The experiments' order by ``code``'s compression against their order by the paper probe's
    test accuracy (``probed``), by the rules of bench/sections/orders.py; None where fewer than
    two experiments have both."""
    from bench.sections.orders import code_sentence, numbers_by_experiment
    from bench.sections.statistics import compare_orders
    accuracy, compression = (
        numbers_by_experiment(table[table.probe.astype(str) == code], value,
                              section.experiments, section.paper_order)
        for table, value in ((probed, "accuracy"), (mdl, "compression")))
    if len(set(accuracy) & set(compression)) < 2:
        return None
    return code_sentence(CODES_IN_WORDS[code], {"MDL": compare_orders(accuracy, compression)})


def order_under_mdl(section: SectionInput) -> list[Block]:
    """Where runs computed mdl_leakage, per latent size: the methods' order by each code's
    compression against their order by the paper probe's test accuracy (the report's table of
    this evaluation shows the compressions)."""
    from bench.sections.orders import RULES
    table = section.rows(MDL_LEAKAGE.file)
    if table.empty:
        return []
    metrics = section.metrics
    accuracy = metrics[metrics.split.astype(str) == "test"]
    blocks: list[Block] = []
    for (z, s), mdl in table.groupby(["z_dim", "s_dim"], sort=True):
        probed = accuracy[(accuracy.z_dim == z) & (accuracy.s_dim == s)]
        sentences = [sentence for code in CODES_IN_WORDS
                     if (sentence := order_sentence(code, probed, mdl, section))]
        if sentences:
            blocks.append(Paragraph(
                f"**The methods' order under MDL** (z/s {z}/{s}, evaluation `{NAME}`: the order by "
                "each code's compression against the order by the paper probe's test accuracy, "
                f"{RULES}). " + " ".join(sentences)))
    return blocks


def mdl_section(section: SectionInput) -> list[Block]:
    """The evaluation's sentences: each code against its control, then the methods' order."""
    return against_control(section) + order_under_mdl(section)


MDL_LEAKAGE = register(Evaluation(
    name=NAME, version=2, file="mdl.csv",
    columns=("probe", "bits", "uniform_bits", "compression", "control", "control_low",
             "control_high"),
    compute=mdl_rows, applies=shares_labels, by_default=False, order=4,
    title="Leakage as description length (MDL, online code)",
    description="How many bits a probe needs to send the specified label of every test image "
                "given each code, against the uniform code (log2 of the number of classes a "
                "label): compression = uniform bits / online bits. Each compression is read "
                f"against its control, the same code's compression of the labels permuted "
                f"({CONTROL_PERMUTATIONS} permutations): what a code of that size gives that probe "
                "when it holds nothing of the label (near 1, often below it, as the probes "
                "overfit). A compression within the control's interval cannot be told from no "
                "leakage, which does not show that there is none (a code that a probe reads at "
                "20 % against 10 % chance compressed as noise does); above it, "
                "the code tells the label, the more readily the larger the compression. For s "
                "higher is better; for z (the leakage) lower is better. Unlike one probe's "
                "accuracy, it counts how fast a probe learns the label from the code; like it, "
                "it moves with the probes' training length: compare one preset's runs only. "
                "Opt-in (bench evaluate --evaluations mdl_leakage).",
    tables=(ReportTable(pivot=("probe",), value="compression",
                        caption="Compression of the test labels given each code."),
            ReportTable(pivot=("probe",), value="control",
                        caption="The control: compression of the test labels permuted given each "
                                "code (each run's mean over its permutations).")),
    section=ReportSection(analyses=mdl_section, order=20)))
