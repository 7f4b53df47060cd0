"""Leakage as description length: the bits a probe needs to send the specified labels of the test
images given each code (bench/metrics/mdl.py), beside the paper's probe accuracy. Both move with
the probe's training length (docs/evaluation.md, "Training length"): compare compressions of one
preset only. Opt-in: `bench evaluate --evaluations mdl_leakage`."""
from __future__ import annotations

from typing import TYPE_CHECKING

from bench.evaluations.base import Context, Evaluation, Outcome, ReportTable, register
from bench.evaluations.probes import CODES, CODES_IN_WORDS
from bench.sections.blocks import Block, Paragraph
from bench.sections.hook import ReportSection, SectionInput

if TYPE_CHECKING:
    import pandas as pd

    from bench.sections.experiments import Experiments

NAME = "mdl_leakage"

PROTOCOL = ("online code over the test images in a seeded order: blocks ending at 0.1, 0.2, 0.4, "
            "0.8, 1.6, 3.2, 6.25, 12.5, 25, 50 and 100 % of them (10 images at least in the "
            "first, sent with the uniform code); each later block sent with the paper's probe "
            "classifier trained on the images before it but the last 10 % of them (Adam 1e-3, the probes' epochs or 100 "
            "steps if more, the epoch kept whose code length of the prefix's last 10 % is "
            "shortest)")


def shares_labels(data) -> bool:
    """Whether the test images' labels are labels the training images have (not so where the
    test split holds other identities: a uniform code over every class would overstate it)."""
    from bench.evaluations._encoding import shares_values
    return shares_values(data.train_labels, data.test_labels)


def mdl_rows(context: Context) -> Outcome:
    from bench.evaluations._encoding import latent_codes
    from bench.metrics.mdl import online_code_lengths
    codes = latent_codes(context.test)
    if codes["z_sample"].std is None:  # a deterministic z: its sample is its mean
        del codes["z_sample"]
    options = context.probe_options
    found = online_code_lengths(codes, context.data.test_labels, context.data.num_classes,
                                epochs=options["epochs"], batch_size=options["batch_size"],
                                seed=context.seed("mdl"), between=context.stop)
    found.setdefault("z_sample", found["z_mean"])
    return Outcome([dict(probe=probe, bits=round(found[probe].bits, 1),
                         uniform_bits=round(found[probe].uniform_bits, 1),
                         compression=round(found[probe].compression, 4))
                    for probe in CODES], {"protocol": PROTOCOL})


def order_sentence(code: str, probed: pd.DataFrame, mdl: pd.DataFrame,
                   experiments: Experiments) -> str | None:
    """Whether the experiments' order by ``code``'s compression is their order by the paper
    probe's test accuracy (Kendall's tau over those that have both), and the pairs in another
    order; None where fewer than two have both."""
    import pandas as pd

    from bench.sections.statistics import ranking_agreement
    values = {measure: {experiments.name(row): row.mean
                        for row in table[table.probe == code].itertuples()
                        if not pd.isna(row.mean)}
              for measure, table in (("paper probe", probed), ("MDL", mdl))}
    if len(set(values["paper probe"]) & set(values["MDL"])) < 2:
        return None
    found = ranking_agreement(values, "paper probe")
    words = CODES_IN_WORDS[code]
    return (f"by {words}, the same order" if not found.swapped else
            f"by {words}, Kendall's τ {found.lowest_tau:.2f}; pairs in another "
            f"order: {'; '.join(f'{a} and {b}' for a, b in found.swapped)}")


def order_under_mdl(section: SectionInput) -> list[Block]:
    """Where runs computed mdl_leakage, per latent size: whether the methods' order by each
    code's compression is their order by the paper probe's test accuracy (the report's table
    of this evaluation shows the compressions)."""
    from bench.sections.experiments import summarise
    table = section.rows(MDL_LEAKAGE.file)
    if table.empty:
        return []
    compression = summarise(table, "compression", ("probe",))
    metrics = section.metrics
    accuracy = summarise(metrics[metrics.split.astype(str) == "test"], "accuracy", ("probe",))
    blocks: list[Block] = []
    for (z, s), mdl in compression.groupby(["z_dim", "s_dim"], sort=True):
        probed = accuracy[(accuracy.z_dim == z) & (accuracy.s_dim == s)]
        sentences = [sentence for code in CODES_IN_WORDS
                     if (sentence := order_sentence(code, probed, mdl, section.experiments))]
        if sentences:
            blocks.append(Paragraph(
                f"**The methods' order under MDL** (z/s {z}/{s}, evaluation `{NAME}`, "
                "compression against the paper probe's test accuracy, means over seeds): "
                + "; ".join(sentences) + "."))
    return blocks


MDL_LEAKAGE = register(Evaluation(
    name=NAME, version=1, file="mdl.csv",
    columns=("probe", "bits", "uniform_bits", "compression"),
    compute=mdl_rows, applies=shares_labels, by_default=False, order=4,
    title="Leakage as description length (MDL, online code)",
    description="How many bits a probe needs to send the specified label of every test image "
                "given each code, against the uniform code (log2 of the number of classes a "
                "label): compression = uniform bits / online bits. 1 means the code tells "
                "nothing of the label; the larger, the more and the more readily it tells. For "
                "s higher is better; for z (the leakage) lower is better. Unlike one probe's "
                "accuracy, it counts how fast a probe learns the label from the code, and moves "
                "little with the probe's training length. Opt-in (bench evaluate "
                "--evaluations mdl_leakage).",
    tables=(ReportTable(pivot=("probe",), value="compression",
                        caption="Compression of the test labels given each code (the mean over "
                                "seeds and its 95 % interval)."),),
    section=ReportSection(analyses=order_under_mdl, order=20)))
