"""The report's sentences on the methods' order under two measures (a probe against the table's
probe; a compression against a probe's accuracy): what ``statistics.compare_orders`` found, in
words that count pairs and never call a tie agreement, an experiment-wide tie an order, or a
difference of means that the seeds do not establish a change of places."""
from __future__ import annotations

from typing import TYPE_CHECKING

from bench.sections.statistics import ALPHA, OrderComparison, Pair

if TYPE_CHECKING:
    import pandas as pd

    from bench.sections.experiments import Experiments

RULES = ("pair by pair, by the means over seeds: a tie under either is neither kept nor swapped, "
         "and a pair changes places only where the seeds separate it under both (Welch's "
         f"t-test, Holm-corrected over the pairs of each, α = {ALPHA}; with fewer than two "
         "seeds, cannot tell)")


def numbers_by_experiment(table: pd.DataFrame, value: str, experiments: Experiments,
                          paper_order: list[str]) -> dict[str, list[float]]:
    """{experiment's name: its numbers over seeds} of ``table`` (the rows of one measure of one
    latent size), in the report's order; an experiment without a number is left out."""
    import pandas as pd

    from bench.sections.experiments import keyed_rows
    found = {experiments.name(key): list(pd.to_numeric(rows[value], errors="coerce").dropna())
             for key, rows in keyed_rows(table, paper_order)}
    return {name: numbers for name, numbers in found.items() if numbers}


def count(number: int) -> str:
    return str(number) if number else "none"


def pairs(number: int) -> str:
    return f"{number} pair" + ("" if number == 1 else "s")


def setting_words(setting: str, found: OrderComparison) -> str:
    """"under the linear probe, 2 of 3 pairs in the same order, none in the other, 1 tied"."""
    if found.no_order:
        return f"under {setting}, no order (every experiment scores the same)"
    return (f"under {setting}, {count(len(found.kept))} of {pairs(found.pairs)} in the same order, "
            f"{count(found.other_order)} in the other, {count(len(found.tied))} tied")


def pairs_with_settings(comparisons: dict[str, OrderComparison], kind: str) -> str:
    """The pairs of ``kind`` (an OrderComparison field) under any setting, each with the settings
    under which it is so: "a and b (under the linear probe, the k-NN probe)"."""
    where: dict[Pair, list[str]] = {}
    for setting, found in comparisons.items():
        for pair in getattr(found, kind):
            where.setdefault(pair, []).append(setting)
    return "; ".join(f"{a} and {b} (under {', '.join(settings)})"
                     for (a, b), settings in where.items())


def code_sentence(words: str, comparisons: dict[str, OrderComparison]) -> str:
    """One code's sentence: "By the z sample's leakage: under ...; changes places: ...."."""
    head = f"By {words}"
    if comparisons and all(found.kept and len(found.kept) == found.pairs and not found.no_order
                           for found in comparisons.values()):
        settings = list(comparisons)
        named = settings[0] if len(settings) == 1 else (", ".join(settings[:-1])
                                                        + f" and {settings[-1]}")
        compared = next(iter(comparisons.values())).pairs
        return f"{head}: the same order under {named} ({pairs(compared)})."
    parts = [setting_words(setting, found) for setting, found in comparisons.items()]
    changes = pairs_with_settings(comparisons, "changes_places")
    cannot_tell = pairs_with_settings(comparisons, "cannot_tell")
    if changes:
        parts.append(f"changes places: {changes}")
    elif not cannot_tell:
        parts.append("no pair changes places")
    if not_separated := pairs_with_settings(comparisons, "not_separated"):
        parts.append("in the other order by the means, not separated by the seeds under both: "
                     + not_separated)
    if cannot_tell:
        parts.append(f"cannot tell (fewer than two seeds): {cannot_tell}")
    return f"{head}: " + "; ".join(parts) + "."
