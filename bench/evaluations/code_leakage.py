"""Leakage of codes learned per training image (LORD's stage 1), beside the encoder's.

A method that optimises a z code for every training image (``Method.training_codes``) has two
places where the specified label can leak into z: the codes themselves, and the encoder trained
afterwards to reproduce them. The paper's table probes the encoder; this probes the codes. There
are codes for training images only, so the probe is fitted on a seeded half of the training set
and scored on the other half ("train" and "test" name those halves).
"""
from __future__ import annotations

from bench.evaluations.base import (Checked, Context, Evaluation, Outcome,
                                       ReportTable, register, stop_checks)

PROBE = "z_code"


def learns_training_codes(method: str) -> bool:
    """Whether the suite method ``method`` learns per-image codes; an external model's name
    (bench/external_model.py) is no suite method, and has none."""
    from methods import METHODS, Method
    return method in METHODS and METHODS[method].training_codes is not Method.training_codes


PROTOCOL = "fitted on a seeded half of the training images' codes, scored on both halves " \
           "(train: the fitted half)"


def code_leakage_rows_together(contexts: list[Context]) -> list[Outcome]:
    """The code probes of several runs, fitted side by side (bench.evaluations.encoding.fit_jobs)."""
    from bench.evaluations.encoding import ProbeJob, fit_jobs, halves
    from bench.metrics.probe_classifier import LatentCode, ProbeTask
    jobs = []
    for context in contexts:
        codes = context.method.training_codes()
        labels = context.data.train_labels.to(codes.device)
        seed = context.seed("code leakage")
        fit, score = halves(len(labels), seed, codes.device)
        options = context.probe_options
        task = ProbeTask(LatentCode(codes[fit]), labels[fit], LatentCode(codes[score]),
                         labels[score], options["seed"])
        jobs.append(ProbeJob({PROBE: task}, (PROBE,), PROTOCOL, context.data.num_classes,
                             options["epochs"], options["batch_size"], options["lr"]))
    return [Outcome([dict(probe=PROBE, split=split, accuracy=round(found[PROBE, split], 4))
                     for split in ("train", "test")], {"protocol": PROTOCOL})
            for found in fit_jobs(jobs, between=stop_checks(contexts))]


def code_leakage_rows(context: Context) -> Outcome:
    return code_leakage_rows_together([context])[0]


CODE_LEAKAGE = register(Evaluation(
    name="code_leakage", version=1, file="code_leakage.csv", columns=("probe", "split", "accuracy"),
    compute=code_leakage_rows, compute_together=code_leakage_rows_together,
    applies_to_method=learns_training_codes, order=3,
    title="Leakage of the codes learned per training image",
    description="For methods that learn a z code for every training image (LORD's latent "
                "optimisation): accuracy (%) of the latent probe predicting the specified label "
                "from those codes, fitted on one half of the training images and scored on the "
                "other (test). Beside the z leakage of the paper's table, which probes the encoder "
                "trained to reproduce the codes, it tells leakage in the codes from leakage added "
                "by the encoder. Lower is better.",
    tables=(ReportTable(pivot=("probe", "split"), value="accuracy"),),
    checked=Checked(key="probe", value="accuracy", higher_is_better={PROBE: False})))
