"""The report's statistics (bench/report/statistics.py) on known answers: t intervals, Welch's
test against its formula, Holm's adjustment worked by hand."""
import math

import pytest
from scipy import stats

from bench.report.statistics import (holm, interval_half_width, not_significant, ranking_agreement,
                                     welch_p_value)


def test_the_interval_is_students_t_and_absent_with_one_seed():
    # t(0.975, 2) = 4.302653: three seeds with standard deviation 1
    assert interval_half_width(1.0, 3) == pytest.approx(4.302653 / math.sqrt(3), rel=1e-6)
    assert interval_half_width(2.0, 2) == pytest.approx(12.706205 * 2 / math.sqrt(2), rel=1e-6)
    assert interval_half_width(1.0, 1) is None and interval_half_width(float("nan"), 3) is None


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


def test_welch_without_spread_or_seeds():
    assert welch_p_value([1.0, 1.0], [1.0, 1.0]) == 1.0
    assert welch_p_value([1.0, 1.0], [2.0, 2.0]) == 0.0
    assert welch_p_value([1.0], [2.0, 3.0]) is None


def test_holm_by_hand():
    # sorted 0.005, 0.01, 0.03, 0.04 times 4, 3, 2, 1: 0.02, 0.03, 0.06, 0.04 -> kept non-decreasing
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm([0.5, 0.6]) == pytest.approx([1.0, 1.0])
    assert holm([]) == []


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
