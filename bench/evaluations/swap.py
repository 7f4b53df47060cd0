"""Swap accuracy: the number behind the swap grid. A classifier trained once per dataset on its
real training images (bench/metrics/swap_agreement.py; cached by
bench/evaluations/_swap_classifier.py) classifies Dec(z of test image i, s of test image j)
over seeded random pairs: the swapped image should take the specified label of j (s carries the
class) and not that of i (z should not). On datasets with known factors, a head per factor says
which source each factor follows."""
from __future__ import annotations

from bench.evaluations.base import Context, Evaluation, Outcome, ReportTable, register

PAIRS = 10_000
# The classifier's training: fixed for the benchmark (not a run setting), part of its cache key.
CLASSIFIER = {"epochs": 2, "batch_size": 128, "lr": 1e-3, "seed": 0}
LABEL = "label"  # the specified label's target name


def swap_rows(context: Context) -> Outcome:
    from bench import progress
    from bench.evaluations._swap_classifier import ClassifierTraining, cached_target_classifier
    from bench.metrics.probe_classifier import accuracy
    from bench.metrics.swap_agreement import predict_targets, swap_agreement
    data = context.data
    sizes = {LABEL: data.num_classes, **data.factor_sizes}
    train_targets = {LABEL: data.train_labels, **data.train_factors}
    test_targets = {LABEL: data.test_labels, **data.test_factors}
    classifier, cached = cached_target_classifier(data.name, data.train_images, train_targets,
                                                  sizes, ClassifierTraining(**CLASSIFIER),
                                                  bar=progress.bar)
    predicted = predict_targets(classifier, data.test_images)
    agreement = swap_agreement(context.method.transfer, data.test_images, test_targets, classifier,
                               pairs=PAIRS, seed=context.seed("swap accuracy") % 2**31,
                               bar=progress.bar)
    rows = []
    for target, found in agreement.items():
        side = "specified" if target == LABEL or target not in data.unspecified_factors else "unspecified"
        for source, value, pairs in (("s", found.follows_s, found.pairs),
                                     ("z", found.follows_z, found.differing_pairs)):
            rows.append(dict(target=target, side=side, follows=source, value=round(value, 4),
                             pairs=pairs, chance=round(found.chance, 4),
                             classifier_accuracy=round(accuracy(predicted[target],
                                                                test_targets[target]), 4)))
    return Outcome(rows, {"pairs": PAIRS, "classifier": CLASSIFIER, "classifier_cached": cached,
                          "cell": "Dec(z_mean of test image i, s of test image j)",
                          "follows_z": "counted over the pairs whose i and j differ in the target"})


SWAP = register(Evaluation(
    name="swap", version=1, file="swap.csv",
    columns=("target", "side", "follows", "value", "pairs", "chance", "classifier_accuracy"),
    compute=swap_rows, order=30, needs_decoder=True,
    title="Swap accuracy: what the swap grid shows, measured",
    description=f"A classifier trained on the dataset's real training images (its test accuracy "
                f"in each column's header) classifies Dec(z of test image i, s of test image j) "
                f"for {PAIRS:,} seeded random pairs. **Swap accuracy** (`label · s`, follows s): "
                "% classified as j's label, high is good. **z-class transfer** (`label · z`, "
                "follows z): % classified as i's label, over the pairs whose labels differ, low "
                "is good. Chance is 100 / the number of labels for both. On datasets with known "
                "factors, the same for each factor: specified-side factors should follow s, "
                "unspecified ones z.",
    tables=(ReportTable(pivot=("target", "follows"), value="value", decimals=1,
                        header_notes=("chance", "classifier_accuracy")),)))
