"""Leakage as description length: the bits a probe needs to send the specified labels of the test
images given each code (bench/metrics/mdl.py), beside the paper's probe accuracy. Both move with
the probe's training length (docs/evaluation.md, "Training length"): compare compressions of one
preset only. Opt-in: `bench evaluate --evaluations mdl_leakage`."""
from __future__ import annotations

from bench.evaluations.base import Context, Evaluation, Outcome, ReportTable, register
from bench.store import results

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
                    for probe in results.PROBES], {"protocol": PROTOCOL})


MDL_LEAKAGE = register(Evaluation(
    name="mdl_leakage", version=1, file="mdl.csv",
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
                                "seeds and its 95 % interval)."),)))
