"""The report's statistics (bench/sections/statistics.py) on known answers: t intervals, Welch's
test against its formula, Holm's adjustment worked by hand."""
import math

import pytest
from scipy import stats

from bench.sections.statistics import (ACCURACY, holm, interval, interval_half_width, not_significant,
                                     prediction_interval,
                                     ranking_agreement, welch_p_value)


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


def test_the_same_order_everywhere_agrees():
    values = {"paper": {"a": 10.0, "b": 20.0, "c": 30.0}, "linear": {"a": 1.0, "b": 2.0, "c": 3.0}}
    found = ranking_agreement(values, "paper")
    assert found.swapped == [] and found.lowest_tau == 1.0 and found.lowest_at == "paper"


def test_a_swapped_pair_is_named_with_its_tau():
    # b and c change places under "wide": one discordant pair of three, tau = (2 - 1) / 3
    values = {"paper": {"a": 10.0, "b": 20.0, "c": 30.0}, "linear": {"a": 1.0, "b": 2.0, "c": 3.0},
              "wide": {"a": 10.0, "b": 35.0, "c": 30.0}}
    found = ranking_agreement(values, "paper")
    assert found.swapped == [("b", "c")]
    assert found.lowest_tau == pytest.approx(1 / 3) and found.lowest_at == "wide"
