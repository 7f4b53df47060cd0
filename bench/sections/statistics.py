"""How sure the report's numbers are: a 95 % confidence interval over seeds for each cell, and,
for each column, the pairs of experiments whose difference the seeds do not establish.

Seeds are few (often 3), so the interval is Student's t, not a normal one, clipped to the values
the number can take (an accuracy: 0 to 100 %), and two experiments are compared with Welch's
t-test (it does not assume that two methods vary as much over seeds), its p-values corrected with
Holm's step-down method over every pair of one family (it controls the chance of calling any
difference of the family real when none is, without assuming the tests independent, and rejects
at least as much as Bonferroni). The report's family is one column of one latent size: the pairs
of experiments of equal z and s sizes in one column of a table (bench/report/page.py,
``significance``); another column, or another latent size, is another family.

A pair that cannot be tested (either side without spread, or a value not a number) is never
called different: its p-value is None, it takes the last place in Holm's order, and it is named
among the pairs not established. Two settings' orders of the experiments (a probe against the
table's) are compared pair by pair with the same test (``compare_orders``), and a value against
what chance gives (MDL's control) with the interval of one more draw (``prediction_interval``).
Pure functions on numbers; no torch.
"""
from __future__ import annotations

import dataclasses
import itertools
import math
import warnings

from scipy import stats

LEVEL = 0.95
ALPHA = 0.05
ACCURACY = (0.0, 100.0)  # the values a percentage accuracy can take: interval(..., *ACCURACY)
# Values this close, relative to their size, are equal: a spread that small is floating point's
# rounding (0.1 + 0.2 against 0.3), not a difference between seeds.
RELATIVE_ROUNDING = 1e-9


def interval_half_width(std: float, seeds: int, level: float = LEVEL) -> float | None:
    """Half the width of the t-based confidence interval of a mean over ``seeds`` values with
    sample standard deviation ``std``; None with fewer than two seeds."""
    if seeds < 2 or std != std:  # NaN
        return None
    return float(stats.t.ppf(0.5 + level / 2, seeds - 1)) * std / math.sqrt(seeds)


def interval(mean: float, std: float, seeds: int, low: float | None = None,
             high: float | None = None, level: float = LEVEL) -> tuple[float, float] | None:
    """The t-based confidence interval of a mean over ``seeds`` values (``interval_half_width``)
    as (lower end, upper end), cut to [``low``, ``high``] where given; None with fewer than two
    seeds. With two seeds the half width is t(0.975, 1) = 12.7 times std / sqrt(2), 9 times the
    standard deviation: seeds of 90 and 92 % (standard deviation 1.41) give 91 % [78.29, 103.71],
    an accuracy no probe can have. The interval of a value bounded by nature (an accuracy:
    ``ACCURACY``) is the part of the t interval that the value can take."""
    half = interval_half_width(std, seeds, level)
    if half is None:
        return None
    lower, upper = mean - half, mean + half
    return (lower if low is None else max(low, lower), upper if high is None else min(high, upper))


def prediction_interval(values: list[float], level: float = LEVEL) -> tuple[float, float] | None:
    """The t-based interval in which one more value, drawn as ``values`` were, falls with
    probability ``level``: mean ± t(n - 1) s sqrt(1 + 1/n), sqrt(n + 1) times as wide as the
    mean's confidence interval (``interval``), which is an interval for the mean, not for one
    draw; None with fewer than two values or a value not a number."""
    n = len(values)
    if n < 2 or any(x != x for x in values):
        return None
    mean = sum(values) / n
    std = math.sqrt(sum((x - mean) ** 2 for x in values) / (n - 1))
    half = interval_half_width(std, n, level) * math.sqrt(n + 1)
    return mean - half, mean + half


def without_spread(values: list[float]) -> bool:
    """Whether ``values`` are all equal, up to floating point's rounding (RELATIVE_ROUNDING)."""
    return max(values) - min(values) <= RELATIVE_ROUNDING * max(abs(x) for x in values)


def welch_p_value(a: list[float], b: list[float]) -> float | None:
    """Two-sided p-value of Welch's t-test that ``a`` and ``b`` have equal means; None where the
    test cannot be made: either has fewer than two values, a value is not a number, or neither
    varies (``without_spread``). Without spread Welch's t is a difference over zero, which says
    nothing of how far apart the means are (three seeds of 90.00 against three of 89.99 would
    be "different for certain"): untestable, not different. One side without spread and the other
    with is tested as usual."""
    if len(a) < 2 or len(b) < 2 or any(x != x for x in (*a, *b)):
        return None
    if without_spread(a) and without_spread(b):
        return None
    with warnings.catch_warnings():
        # scipy warns of "catastrophic cancellation" where one side does not vary; its variance
        # is then zero or next to it, and the other side's carries the test.
        warnings.simplefilter("ignore", RuntimeWarning)
        p = float(stats.ttest_ind(a, b, equal_var=False).pvalue)
    return p if p == p else None


def holm(p_values: list[float | None]) -> list[float | None]:
    """Holm's step-down adjustment: the i-th smallest of m p-values times (m - i), made
    non-decreasing in that order, at most 1; returned in the input's order.

    An untestable pair (None or NaN) is adjusted to None and counts in m as a p-value of 1 would:
    it comes after every testable one, so it takes no part in their order and its place does not
    raise theirs, and m counts every pair of the family, so the others are adjusted exactly as
    Holm would with p 1 in its place (conservative: with any p-value in its place they would be
    adjusted as much or less). Left as NaN, its comparisons were all false and it made every
    p-value adjusted after it 1."""
    testable = [i for i, p in enumerate(p_values) if p is not None and p == p]
    adjusted: list[float | None] = [None] * len(p_values)
    running = 0.0
    for rank, i in enumerate(sorted(testable, key=lambda i: p_values[i])):
        running = max(running, min(1.0, (len(p_values) - rank) * p_values[i]))
        adjusted[i] = running
    return adjusted


def not_significant(values: dict[str, list[float]], alpha: float = ALPHA) -> list[tuple[str, str]]:
    """The pairs of ``values`` (name: its numbers over seeds, two at least each; one family,
    such as one column of one latent size) whose difference is not established at ``alpha``:
    Welch's t-test, Holm-corrected over every pair; a pair that cannot be tested (``holm``,
    ``welch_p_value``) is among them."""
    if any(len(v) < 2 for v in values.values()):
        raise ValueError("every experiment compared needs two seeds at least")
    pairs = list(itertools.combinations(values, 2))
    adjusted = holm([welch_p_value(values[a], values[b]) for a, b in pairs])
    return [pair for pair, p in zip(pairs, adjusted) if p is None or p >= alpha]


Pair = tuple[str, str]


def separated_pairs(values: dict[str, list[float]], alpha: float = ALPHA) -> set[Pair]:
    """The pairs of ``values`` (name: its numbers over seeds; one family) whose difference the
    seeds establish at ``alpha``: Welch's t-test, Holm-corrected over every pair of the names
    with two numbers or more (``not_significant``'s test, on the pairs it can make)."""
    tested = {name: numbers for name, numbers in values.items() if len(numbers) >= 2}
    pairs = list(itertools.combinations(tested, 2))
    adjusted = holm([welch_p_value(tested[a], tested[b]) for a, b in pairs])
    return {pair for pair, p in zip(pairs, adjusted) if p is not None and p < alpha}


@dataclasses.dataclass(frozen=True)
class OrderComparison:
    """How one setting (a probe, a measure) orders the experiments against a reference setting,
    pair by pair over the experiments both have, by their means over seeds: in the same order
    (``kept``), equal under either setting (``tied``: neither kept nor swapped), or in the other
    order. A pair in the other order ``changes_places`` only where the seeds separate it under
    both settings (``separated_pairs``); it is ``not_separated`` where they do not, and
    ``cannot_tell`` where an experiment of it has fewer than two seeds. ``no_order``: every
    experiment scores the same under the setting (Kendall's tau is then undefined)."""
    kept: list[Pair]
    tied: list[Pair]
    changes_places: list[Pair]
    not_separated: list[Pair]
    cannot_tell: list[Pair]
    no_order: bool

    @property
    def pairs(self) -> int:
        return len(self.kept) + len(self.tied) + self.other_order

    @property
    def other_order(self) -> int:
        """The pairs in the other order by their means, separated or not."""
        return len(self.changes_places) + len(self.not_separated) + len(self.cannot_tell)


def mean(values: list[float]) -> float:
    return sum(values) / len(values)


def compare_orders(reference: dict[str, list[float]], other: dict[str, list[float]],
                   alpha: float = ALPHA) -> OrderComparison:
    """``other``'s order of the experiments against ``reference``'s (each {name: its numbers
    over seeds, one at least}), pair by pair in ``reference``'s order of names: an
    ``OrderComparison``. Each setting's pairs are one family of ``separated_pairs``."""
    common = [name for name in reference if name in other]
    means = [{name: mean(values[name]) for name in common} for values in (reference, other)]
    separated = [separated_pairs({name: values[name] for name in common}, alpha)
                 for values in (reference, other)]
    found: dict[str, list[Pair]] = {"kept": [], "tied": [], "changes_places": [],
                                    "not_separated": [], "cannot_tell": []}
    for a, b in itertools.combinations(common, 2):
        if any(without_spread([of[a], of[b]]) for of in means):
            found["tied"].append((a, b))
        elif (means[0][a] - means[0][b]) * (means[1][a] - means[1][b]) > 0:
            found["kept"].append((a, b))
        elif min(len(values[name]) for values in (reference, other) for name in (a, b)) < 2:
            found["cannot_tell"].append((a, b))
        elif all((a, b) in pairs for pairs in separated):
            found["changes_places"].append((a, b))
        else:
            found["not_separated"].append((a, b))
    return OrderComparison(**found, no_order=len(common) > 1
                           and without_spread(list(means[1].values())))
