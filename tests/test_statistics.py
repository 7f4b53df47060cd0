"""The report's statistics (bench/sections/statistics.py) on known answers: t intervals, Welch's
test against its formula, Holm's adjustment worked by hand."""
import math

import pytest
from scipy import stats

from bench.sections.statistics import (ACCURACY, holm, interval, interval_half_width, not_significant,
                                     compare_orders, prediction_interval, welch_p_value)


def test_the_interval_is_students_t_and_absent_with_one_seed():
    # t(0.975, 2) = 4.302653: three seeds with standard deviation 1
    assert interval_half_width(1.0, 3) == pytest.approx(4.302653 / math.sqrt(3), rel=1e-6)
    assert interval_half_width(2.0, 2) == pytest.approx(12.706205 * 2 / math.sqrt(2), rel=1e-6)
    assert interval_half_width(1.0, 1) is None and interval_half_width(float("nan"), 3) is None


def test_an_accuracys_interval_stays_within_0_and_100():
    """Two seeds 2 points apart (90 and 92: standard deviation sqrt 2): t(0.975, 1) = 12.706
    times sqrt 2 / sqrt 2, and 91 % reads [78.29, 103.71], above 100 %. Clipped to what an
    accuracy can be; three seeds well inside the bounds keep their interval."""
    t1 = 12.706205
    assert interval(91.0, math.sqrt(2), 2) == pytest.approx((91.0 - t1, 91.0 + t1), rel=1e-6)
    assert interval(91.0, math.sqrt(2), 2, *ACCURACY) == pytest.approx((91.0 - t1, 100.0),
                                                                       rel=1e-6)
    assert interval(5.0, math.sqrt(2), 2, low=0.0, high=100.0) == pytest.approx((0.0, 5.0 + t1))
    half = 4.302653 / math.sqrt(3)
    assert interval(50.0, 1.0, 3, *ACCURACY) == pytest.approx((50.0 - half, 50.0 + half),
                                                              rel=1e-6)
    assert interval(91.0, 1.0, 1, *ACCURACY) is None
    assert interval(91.0, float("nan"), 3, *ACCURACY) is None


def welch_by_formula(a, b):
    """Welch's statistic and Welch-Satterthwaite degrees of freedom, written out."""
    ma, mb = sum(a) / len(a), sum(b) / len(b)
    va = sum((x - ma) ** 2 for x in a) / (len(a) - 1) / len(a)
    vb = sum((x - mb) ** 2 for x in b) / (len(b) - 1) / len(b)
    t = (ma - mb) / math.sqrt(va + vb)
    df = (va + vb) ** 2 / (va ** 2 / (len(a) - 1) + vb ** 2 / (len(b) - 1))
    return 2 * stats.t.sf(abs(t), df)


@pytest.mark.parametrize("a, b", [([1, 2, 3], [4, 5, 6]), ([1, 2, 3, 4], [10, 20, 30]),
                                  ([80.1, 80.3, 79.9], [80.2, 80.0])])
def test_welch_matches_its_formula(a, b):
    assert welch_p_value(a, b) == pytest.approx(welch_by_formula(a, b), rel=1e-9)


def test_welch_of_equal_variances_three_each_is_the_tabled_value():
    # t = -3.674, 4 degrees of freedom: two-sided p = 0.02131
    assert welch_p_value([1, 2, 3], [4, 5, 6]) == pytest.approx(0.021312, abs=1e-6)


def test_welch_without_seeds_or_numbers_is_not_tested():
    assert welch_p_value([1.0], [2.0, 3.0]) is None
    assert welch_p_value([1.0, float("nan"), 2.0], [3.0, 4.0, 5.0]) is None


def test_two_groups_without_spread_are_not_tested_whatever_their_means():
    """No spread on either side: Welch's t is a difference over zero, which says nothing of how
    far apart the means are. Three seeds of 90.00 against three of 89.99 are not "different for
    certain" (p 0) but untested; equal groups likewise. Spread lost in the rounding of floating
    point (0.1 + 0.2 against 0.3) is no spread."""
    assert welch_p_value([90.0] * 3, [89.99] * 3) is None
    assert welch_p_value([1.0, 1.0], [1.0, 1.0]) is None
    assert welch_p_value([0.1 + 0.2, 0.3, 0.3], [0.31] * 3) is None
    # one group without spread, the other with: Welch's test as usual
    assert welch_p_value([1.0] * 3, [1.0, 2.0, 3.0]) == pytest.approx(
        welch_by_formula([1.0] * 3, [1.0, 2.0, 3.0]), rel=1e-9)


def test_a_pair_without_spread_is_named_as_not_established():
    """a and b cannot be tested: they are named, not called different. c differs from both
    (Welch's p 2.2e-4 against each, 6.6e-4 after Holm over the three pairs)."""
    values = {"a": [90.0] * 3, "b": [89.99] * 3, "c": [50.0, 51.0, 52.0]}
    assert not_significant(values) == [("a", "b")]


def test_holm_by_hand():
    # sorted 0.005, 0.01, 0.03, 0.04 times 4, 3, 2, 1: 0.02, 0.03, 0.06, 0.04 -> kept non-decreasing
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm([0.5, 0.6]) == pytest.approx([1.0, 1.0])
    assert holm([]) == []


def test_holm_sets_untestable_pairs_last_and_leaves_the_others_alone():
    """An untestable pair (None, or NaN) is adjusted to None and counts in the family as p 1
    would: after every other, so the others are adjusted as if it were there with p 1 (m = 3
    below), not all to 1 as a NaN compared with them made them."""
    nan = float("nan")
    assert holm([nan, 0.001, 0.002]) == [None, pytest.approx(0.003), pytest.approx(0.004)]
    assert holm([0.001, None, 0.002]) == [pytest.approx(0.003), None, pytest.approx(0.004)]
    assert holm([0.001, 1.0, 0.002]) == pytest.approx([0.003, 1.0, 0.004])
    assert holm([None, nan]) == [None, None]


def test_the_prediction_interval_is_for_one_more_draw():
    """Mean 2, standard deviation 1 over three values: t(0.975, 2) = 4.303 times sqrt(1 + 1/3),
    sqrt(4) = 2 times the half width of the mean's interval."""
    low, high = prediction_interval([1.0, 2.0, 3.0])
    assert (low + high) / 2 == pytest.approx(2.0)
    assert (high - low) / 2 == pytest.approx(4.302653 * math.sqrt(4 / 3), rel=1e-6)
    assert (high - low) / 2 == pytest.approx(2 * interval_half_width(1.0, 3), rel=1e-12)
    assert prediction_interval([1.0]) is None and prediction_interval([1.0, math.nan]) is None


def test_the_pairs_not_separated_are_named():
    assert not_significant({"a": [1.0, 2.0, 3.0], "b": [1.1, 2.1, 3.1],
                            "c": [10.0, 10.5, 11.0]}) == [("a", "b")]
    # a-b: p 0.0213, the largest of three: Holm multiplies it by 1 and it stays separated (where
    # Bonferroni's x 3 would not separate it)
    assert not_significant({"a": [1.0, 2.0, 3.0], "b": [4.0, 5.0, 6.0],
                            "c": [100.0, 100.5, 101.0]}) == []
    with pytest.raises(ValueError, match="two seeds"):
        not_significant({"a": [1.0, 2.0], "d": [5.0]})


SEEDS = {"a": [10.0, 11.0, 12.0], "b": [20.0, 21.0, 22.0], "c": [30.0, 31.0, 32.0]}


def test_the_same_order_keeps_every_pair():
    found = compare_orders(SEEDS, {name: [v / 10 for v in values] for name, values in SEEDS.items()})
    assert found.kept == [("a", "b"), ("a", "c"), ("b", "c")] and found.pairs == 3
    assert found.other_order == 0 and not found.tied and not found.no_order


def test_a_tie_is_neither_kept_nor_swapped():
    """b and c tie under the other setting: Kendall's tau-b would count it as no discordance
    (0.82, read as agreement); here it is a pair of its own."""
    other = {"a": [1.0, 2.0, 3.0], "b": [5.0, 6.0, 7.0], "c": [7.0, 6.0, 5.0]}
    found = compare_orders(SEEDS, other)
    assert found.tied == [("b", "c")] and found.kept == [("a", "b"), ("a", "c")]
    assert found.other_order == 0 and not found.no_order


def test_every_experiment_equal_is_no_order():
    found = compare_orders(SEEDS, dict.fromkeys(SEEDS, [5.0, 6.0]))
    assert found.no_order and len(found.tied) == 3 and not found.kept


def test_the_other_order_changes_places_only_where_both_settings_separate_it():
    separated = {"a": [30.0, 31.0, 32.0], "b": [20.0, 21.0, 22.0], "c": [40.0, 41.0, 42.0]}
    assert compare_orders(SEEDS, separated).changes_places == [("a", "b")]
    overlapping = {"a": [20.0, 30.0, 25.0], "b": [24.0, 26.0, 22.0], "c": [40.0, 41.0, 42.0]}
    found = compare_orders(SEEDS, overlapping)  # a 25.0 against b 24.0, seeds 5 points apart
    assert found.not_separated == [("a", "b")] and not found.changes_places
    # separated under the other setting, but not under the reference: not a change of places
    reference = {"a": [10.0, 20.0, 15.0], "b": [16.0, 14.0, 18.0], "c": SEEDS["c"]}
    assert compare_orders(reference, separated).not_separated == [("a", "b")]


def test_with_one_seed_it_cannot_tell():
    found = compare_orders({"a": [10.0], "b": [20.0, 21.0]}, {"a": [30.0], "b": [20.0, 21.0]})
    assert found.cannot_tell == [("a", "b")] and not found.changes_places
