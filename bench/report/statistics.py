"""How sure the report's numbers are: a 95 % confidence interval over seeds for each cell, and,
for each column, the pairs of experiments whose difference the seeds do not establish.

Seeds are few (often 3), so the interval is Student's t, not a normal one, and two experiments
are compared with Welch's t-test (it does not assume that two methods vary as much over seeds),
its p-values corrected with Holm's step-down method over every pair of the column (it controls
the chance of calling any difference real when none is, without assuming the tests independent,
and rejects at least as much as Bonferroni). Pure functions on numbers; no torch.
"""
from __future__ import annotations

import dataclasses
import itertools
import math

from scipy import stats

LEVEL = 0.95
ALPHA = 0.05


def interval_half_width(std: float, seeds: int, level: float = LEVEL) -> float | None:
    """Half the width of the t-based confidence interval of a mean over ``seeds`` values with
    sample standard deviation ``std``; None with fewer than two seeds."""
    if seeds < 2 or std != std:  # NaN
        return None
    return float(stats.t.ppf(0.5 + level / 2, seeds - 1)) * std / math.sqrt(seeds)


def welch_p_value(a: list[float], b: list[float]) -> float | None:
    """Two-sided p-value of Welch's t-test that ``a`` and ``b`` have equal means; None when either
    has fewer than two values. Two groups without spread differ for certain (p 0) unless equal."""
    if len(a) < 2 or len(b) < 2:
        return None
    mean_a, mean_b = sum(a) / len(a), sum(b) / len(b)
    var_a = sum((x - mean_a) ** 2 for x in a) / (len(a) - 1)
    var_b = sum((x - mean_b) ** 2 for x in b) / (len(b) - 1)
    if var_a == 0 and var_b == 0:
        return 1.0 if mean_a == mean_b else 0.0
    return float(stats.ttest_ind(a, b, equal_var=False).pvalue)


def holm(p_values: list[float]) -> list[float]:
    """Holm's step-down adjustment: the i-th smallest of m p-values times (m - i), made
    non-decreasing in that order, at most 1; returned in the input's order."""
    order = sorted(range(len(p_values)), key=lambda i: p_values[i])
    adjusted, running = [0.0] * len(p_values), 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (len(p_values) - rank) * p_values[i]))
        adjusted[i] = running
    return adjusted


def not_significant(values: dict[str, list[float]], alpha: float = ALPHA) -> list[tuple[str, str]]:
    """The pairs of ``values`` (name: its numbers over seeds, two at least each) whose difference
    is not significant at ``alpha``: Welch's t-test, Holm-corrected over every pair."""
    if any(len(v) < 2 for v in values.values()):
        raise ValueError("every experiment compared needs two seeds at least")
    pairs = list(itertools.combinations(values, 2))
    adjusted = holm([welch_p_value(values[a], values[b]) for a, b in pairs])
    return [pair for pair, p in zip(pairs, adjusted) if p >= alpha]


@dataclasses.dataclass(frozen=True)
class Agreement:
    """How the order of the methods under every probe setting compares with one reference
    setting: the lowest Kendall's tau and where, and the pairs ordered otherwise somewhere."""
    lowest_tau: float
    lowest_at: str
    swapped: list[tuple[str, str]]


def ranking_agreement(values: dict[str, dict[str, float]], reference: str) -> Agreement:
    """``values``: {setting: {method: number}}; each setting's order of the methods against the
    ``reference`` setting's (Kendall's tau-b over the methods both have)."""
    base = values[reference]
    lowest, lowest_at, swapped = 1.0, reference, []
    for setting, numbers in values.items():
        common = [m for m in base if m in numbers]
        if len(common) < 2:
            continue
        tau = stats.kendalltau([base[m] for m in common], [numbers[m] for m in common]).statistic
        if tau == tau and tau < lowest:  # not NaN (every number equal)
            lowest, lowest_at = float(tau), setting
        swapped += [(a, b) for a, b in itertools.combinations(common, 2)
                    if (base[a] - base[b]) * (numbers[a] - numbers[b]) < 0
                    and (a, b) not in swapped]
    return Agreement(lowest, lowest_at, swapped)
