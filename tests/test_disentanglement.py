"""Known-answer tests of the MIG and SAP scores (bench/metrics/mig_sap.py).

Each expected value below is derived from the definitions (disentanglement_lib's MIG and discrete
SAP), not read off the implementation; the derivation is in the test's docstring or comments.
"""
import math
import warnings

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning

from bench.metrics.mig_sap import (_sap_score_matrix, discretize, mutual_information_gap,
                                           mutual_information_matrix, sap_score)
from bench.metrics.representation import (DisentanglementScores, PointLimits,
                                          score_representation)

LN2 = math.log(2.0)


def uniform_factors(rng, sizes, n):
    """(n, len(sizes)) independent factors, factor j uniform on 0..sizes[j]-1."""
    return np.stack([rng.integers(0, size, n) for size in sizes], axis=1)


def binary_entropy(p):
    return -p * math.log(p) - (1 - p) * math.log(1 - p)


def balanced_binary(n, flip_fraction):
    """A balanced binary factor f (n/2 zeros then n/2 ones) and a copy g with exactly
    ``flip_fraction`` of each class flipped, so the empirical joint law is known exactly."""
    half = n // 2
    f = np.repeat([0, 1], half)
    g = f.copy()
    flips = int(round(flip_fraction * half))
    g[:flips] = 1            # first `flips` zeros flipped to 1
    g[half:half + flips] = 0  # first `flips` ones flipped to 0
    return f, g


# ------------------------------------------------------------------ hand-computable small cases

def test_discretize_equal_width_bins_over_each_dimensions_range():
    codes = np.array([[0.0, 0.0, 5.0],
                      [0.9, 1.0, 5.0],
                      [1.0, 2.0, 5.0],
                      [2.0, 4.0, 5.0]])
    # Column 0, 2 bins over [0, 2]: edges 0, 1, 2; 0.9 goes left, 1.0 sits on the inner edge and
    # goes right, the maximum 2.0 belongs to the last (closed) bin.
    # Column 1, 2 bins over [0, 4]: edges 0, 2, 4 -> 0, 0, 1, 1.
    out = discretize(codes, bins=2)
    assert out.dtype.kind == "i"
    np.testing.assert_array_equal(out[:, :2], [[0, 0], [0, 0], [1, 1], [1, 1]])
    # Column 2 is constant: numpy centres a unit range on it; all points share one bin.
    assert len(set(out[:, 2])) == 1
    # Column 1, 4 bins over [0, 4]: edges 0, 1, 2, 3, 4 -> 0, 1, 2, 3 (the maximum in the last).
    np.testing.assert_array_equal(discretize(codes, bins=4)[:, 1], [0, 1, 2, 3])
    # Every index lies in 0..bins-1 for the default 20 bins.
    wide = discretize(np.random.default_rng(0).normal(size=(500, 3)))
    assert wide.min() == 0 and wide.max() == 19


def test_mutual_information_matrix_hand_computed():
    discrete = np.array([[0, 0], [0, 1], [1, 0], [1, 1]])
    factors = np.array([[0, 0, 0],
                        [0, 1, 0],
                        [1, 0, 0],
                        [1, 1, 1]])
    m = mutual_information_matrix(discrete, factors)
    assert m.shape == (2, 3)  # (code dimensions, factors)
    # Factor a equals code dim 0: I = H(a) = ln 2; it is independent of code dim 1: I = 0.
    # Factor b likewise with the dims exchanged.
    # Factor c = (0, 0, 0, 1) against either dim: H(c) = 1/4 ln 4 + 3/4 ln 4/3 and
    # H(c | dim) = 1/2 * 0 + 1/2 * ln 2 = 1/4 ln 4, so I = 3/4 ln(4/3).
    third = 0.75 * math.log(4 / 3)
    np.testing.assert_allclose(m, [[LN2, 0.0, third], [0.0, LN2, third]], atol=1e-12)


def test_mig_of_a_hand_built_code_is_exact():
    """Code dims (f, g, constant), g = f with exactly 10 % of each class flipped: I(f; f) = ln 2,
    I(f; g) = ln 2 - H_b(0.1), I(f; const) = 0, so MIG = H_b(0.1) / ln 2 (about 0.469)."""
    f, g = balanced_binary(1000, 0.1)
    codes = np.stack([f, g, np.zeros_like(f)], axis=1).astype(float)
    expected = binary_entropy(0.1) / LN2
    assert mutual_information_gap(codes, f[:, None]) == pytest.approx(expected, abs=1e-12)
    # Order of the code dimensions does not matter.
    assert mutual_information_gap(codes[:, ::-1], f[:, None]) == pytest.approx(expected, abs=1e-12)


def test_sap_of_a_hand_built_code_is_exact():
    """Code dims (f, g, constant) with g = f flipped on exactly 20 % of each class, on train and
    test alike. The SVM on f is perfect (1.0); the one on g learns the threshold between 0 and 1,
    so it is right exactly where g = f (0.8); a constant dimension predicts one class, right on
    exactly half of a balanced test set (0.5). SAP = best - second best = 1.0 - 0.8 = 0.2, and
    without g it is 1.0 - 0.5 = 0.5."""
    f, g = balanced_binary(2000, 0.2)
    codes = np.stack([f, g, np.zeros_like(f)], axis=1).astype(float)
    matrix = _sap_score_matrix(codes, f[:, None], codes, f[:, None], C=0.01)
    np.testing.assert_allclose(matrix[:, 0], [1.0, 0.8, 0.5], atol=1e-12)
    assert sap_score(codes, f[:, None], codes, f[:, None]) == pytest.approx(0.2, abs=1e-12)
    no_g = codes[:, [0, 2]]
    assert sap_score(no_g, f[:, None], no_g, f[:, None]) == pytest.approx(0.5, abs=1e-12)



def test_sap_scores_on_the_test_data():
    """Fitted on (f, g, constant) as above, scored on test codes whose first dimension is inverted
    (1 - f): the SVM fitted on f is now always wrong (0.0), g's is right on 80 %, the constant's on
    50 %, so SAP = 0.8 - 0.5 = 0.3 (scoring the training data would give 0.2)."""
    f, g = balanced_binary(2000, 0.2)
    train = np.stack([f, g, np.zeros_like(f)], axis=1).astype(float)
    test = np.stack([1 - f, g, np.zeros_like(f)], axis=1).astype(float)
    matrix = _sap_score_matrix(train, f[:, None], test, f[:, None], C=0.01)
    np.testing.assert_allclose(matrix[:, 0], [0.0, 0.8, 0.5], atol=1e-12)
    assert sap_score(train, f[:, None], test, f[:, None]) == pytest.approx(0.3, abs=1e-12)

# ------------------------------------------------------------------ known representations

def test_identity_representation_mig_near_one():
    """Codes = the factors (plus 1e-3 noise), factors independent and uniform on 5, 7, 10 values.
    Each factor's own dimension, cut into 20 bins narrower than 1, puts every factor value in bins
    of its own, so its MI is exactly H(f). The other dimensions are independent of f; their
    plug-in MI is only the estimation bias, about (K' - 1)(K - 1) / 2N <= 9 * 9 / 10000 = 0.008
    nats against H(f) >= ln 5 = 1.6 nats. So MIG >= 1 - 0.005 or so."""
    rng = np.random.default_rng(0)
    factors = uniform_factors(rng, (5, 7, 10), 5000)
    codes = factors + 1e-3 * rng.standard_normal(factors.shape)
    assert mutual_information_gap(codes, factors) > 0.98


def noisy_identity_sap(rng, sizes):
    """Factors of ``sizes`` values (5000 train and test points), their identity codes with a
    little noise, and the SAP score matrix of those codes."""
    train, test = uniform_factors(rng, sizes, 5000), uniform_factors(rng, sizes, 5000)
    train_codes = train + 1e-3 * rng.standard_normal(train.shape)
    test_codes = test + 1e-3 * rng.standard_normal(test.shape)
    return train, train_codes, test, test_codes, _sap_score_matrix(train_codes, train, test_codes,
                                                                   test, C=0.01)


def test_identity_representation_sap_small_factors_known_value():
    """Identity codes of independent uniform factors with 2, 3 and 4 values. On its own dimension a
    one-feature linear SVM recovers every class (accuracy 1); on another factor's dimension its
    predictions are independent of the test labels, so its accuracy is sum_c P(pred=c) * 1/K = 1/K
    whatever it predicts. SAP per factor = 1 - 1/K (less the small excess of the best of the
    chance-level dims over 1/K, a few thousandths at 5000 test points): mean(1/2, 2/3, 3/4)."""
    rng = np.random.default_rng(1)
    sizes = (2, 3, 4)
    train, train_codes, test, test_codes, matrix = noisy_identity_sap(rng, sizes)
    np.testing.assert_allclose(np.diag(matrix), 1.0)
    expected = np.mean([1 - 1 / k for k in sizes])
    assert sap_score(train_codes, train, test_codes, test) == pytest.approx(expected, abs=0.03)


def test_identity_representation_sap_many_values():
    """Identity codes of factors with 5, 7 and 10 values. A one-feature one-vs-rest linear SVM
    cannot give every class a region of the line (a middle class is not linearly separable from
    the rest in 1-D), so its accuracy on the factor's own dimension is well below 1 (0.3-0.8
    here) and SAP is below the 1 - 1/K ceiling; the definition still ranks the own dimension first
    for every factor, with the other dimensions at chance (1/K)."""
    rng = np.random.default_rng(2)
    sizes = (5, 7, 10)
    train, train_codes, test, test_codes, matrix = noisy_identity_sap(rng, sizes)
    np.testing.assert_array_equal(matrix.argmax(axis=0), [0, 1, 2])
    for j, k in enumerate(sizes):
        others = np.delete(matrix[:, j], j)
        np.testing.assert_allclose(others, 1 / k, atol=0.03)
        # The two end classes are separable on a line: the own dimension beats chance clearly.
        assert matrix[j, j] > 2 / k
    sap = sap_score(train_codes, train, test_codes, test)
    assert 0.1 < sap < np.mean([1 - 1 / k for k in sizes])


def test_all_zero_codes_score_zero():
    """Every dimension is constant: one bin, MI 0 for all, gap 0; every SVM sees the same constant
    feature and predicts the same, so best = second best and SAP = 0."""
    rng = np.random.default_rng(3)
    factors = uniform_factors(rng, (4, 6), 2000)
    codes = np.zeros((2000, 5))
    assert mutual_information_gap(codes, factors) == 0.0
    assert sap_score(codes, factors, codes, factors) == 0.0


def test_duplicated_codes_score_zero():
    """codes = [f1, f1, f2, f2]: each factor's two best dimensions are identical, so the top-two
    gaps of both MI and SVM accuracy are exactly 0."""
    rng = np.random.default_rng(4)
    train, test = uniform_factors(rng, (5, 8), 3000), uniform_factors(rng, (5, 8), 3000)
    train_codes = train[:, [0, 0, 1, 1]].astype(float)
    test_codes = test[:, [0, 0, 1, 1]].astype(float)
    assert mutual_information_gap(train_codes, train) == pytest.approx(0.0, abs=1e-12)
    assert sap_score(train_codes, train, test_codes, test) == pytest.approx(0.0, abs=1e-12)


def test_duplicated_codes_with_small_noise_score_near_zero():
    """Same, each copy with its own tiny noise: both copies still determine the factor (MI = H(f)
    for both, gap 0); the SVMs on two nearly equal columns (factors of 3 and 4 values, recovered
    perfectly) have equal accuracy."""
    rng = np.random.default_rng(5)
    train, test = uniform_factors(rng, (3, 4), 3000), uniform_factors(rng, (3, 4), 3000)
    train_codes = train[:, [0, 0, 1, 1]] + 1e-3 * rng.standard_normal((3000, 4))
    test_codes = test[:, [0, 0, 1, 1]] + 1e-3 * rng.standard_normal((3000, 4))
    assert mutual_information_gap(train_codes, train) == pytest.approx(0.0, abs=1e-9)
    assert sap_score(train_codes, train, test_codes, test) < 0.02


def test_noise_codes_score_near_zero():
    """Gaussian codes independent of the factors: every MI is only estimation bias, at most about
    (20 - 1)(K - 1) / 2N = 19 * 9 / 10000 = 0.017 nats against H(f) >= ln 5, so each normalised MI,
    and a fortiori the gap between two of them, stays below about 0.011. Every SVM is at chance."""
    rng = np.random.default_rng(6)
    factors = uniform_factors(rng, (5, 7, 10), 5000)
    test_factors = uniform_factors(rng, (5, 7, 10), 5000)
    codes, test_codes = rng.standard_normal((5000, 6)), rng.standard_normal((5000, 6))
    assert 0.0 <= mutual_information_gap(codes, factors) < 0.02
    assert sap_score(codes, factors, test_codes, test_factors) < 0.03


def test_sap_emits_no_convergence_warning_on_typical_codes():
    rng = np.random.default_rng(7)
    factors = uniform_factors(rng, (3, 10), 4000)
    mixing = rng.standard_normal((2, 4))
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        for scale in (1e-3, 1.0, 1e3):
            codes = scale * (factors @ mixing + rng.standard_normal((4000, 4)))
            sap_score(codes, factors, codes, factors)


def test_the_same_code_at_two_scales_scores_one_sap_once_standardised():
    """The identity code of factors of 2, 3 and 4 values, scaled by 1 and by 0.01. As
    disentanglement_lib defines it, SAP reads the code at its scale: C = 0.01 penalises the
    weights that a code of small scale needs, and the score falls (0.64 at scale 1, the ceiling
    mean(1 - 1/c); far less at 0.01). Standardised on the training codes, both scales score the
    same, the reference's score at scale 1; MIG, read from each dimension's own range, does not
    move."""
    rng = np.random.default_rng(11)
    train, train_codes, test, test_codes, _ = noisy_identity_sap(rng, (2, 3, 4))
    reference, standardised = {}, {}
    for scale in (1.0, 0.01):
        reference[scale] = sap_score(scale * train_codes, train, scale * test_codes, test)
        standardised[scale] = sap_score(scale * train_codes, train, scale * test_codes, test,
                                        standardise=True)
        assert mutual_information_gap(scale * train_codes, train) == pytest.approx(
            mutual_information_gap(train_codes, train), abs=1e-12)
    assert reference[1.0] == pytest.approx(np.mean([1 / 2, 2 / 3, 3 / 4]), abs=0.03)
    assert reference[0.01] < reference[1.0] - 0.1, reference
    assert standardised[0.01] == pytest.approx(standardised[1.0], abs=1e-12)
    assert standardised[1.0] == pytest.approx(reference[1.0], abs=0.03)


def test_score_representation_reports_the_standardised_sap():
    rng = np.random.default_rng(12)
    codes, factors = _representation(rng, 1500)
    test_codes, test_factors = _representation(np.random.default_rng(13), 800)
    small = score_representation(0.01 * codes, factors, 0.01 * test_codes, test_factors)
    plain = score_representation(codes, factors, test_codes, test_factors)
    assert small.sap == pytest.approx(plain.sap, abs=1e-12)
    assert small.mig == pytest.approx(plain.mig, abs=1e-12)


# ------------------------------------------------------------------ score_representation

def _representation(rng, n):
    factors = {"shape": rng.integers(0, 3, n), "scale": rng.integers(0, 6, n),
               "colour": rng.integers(0, 4, n)}
    stacked = np.stack(list(factors.values()), axis=1)
    codes = stacked @ rng.standard_normal((3, 5)) + 0.5 * rng.standard_normal((n, 5))
    return codes, factors


def test_score_representation_per_factor_values_match_the_mean_and_the_functions():
    rng = np.random.default_rng(8)
    codes, factors = _representation(rng, 1500)
    test_codes, test_factors = _representation(np.random.default_rng(9), 800)
    scores = score_representation(codes, factors, test_codes, test_factors)
    assert isinstance(scores, DisentanglementScores)
    assert list(scores.per_factor_mig) == ["shape", "scale", "colour"]
    assert list(scores.per_factor_sap) == ["shape", "scale", "colour"]
    assert scores.mig == pytest.approx(np.mean(list(scores.per_factor_mig.values())), abs=1e-15)
    assert scores.sap == pytest.approx(np.mean(list(scores.per_factor_sap.values())), abs=1e-15)
    # Fewer points than the limits: no subsampling, so the plain functions give the same numbers.
    train_y = np.stack(list(factors.values()), axis=1)
    test_y = np.stack(list(test_factors.values()), axis=1)
    assert scores.mig == pytest.approx(mutual_information_gap(codes, train_y), abs=1e-12)
    assert scores.sap == pytest.approx(sap_score(codes, train_y, test_codes, test_y,
                                                 standardise=True), abs=1e-12)
    assert 0.0 < scores.mig < 1.0 and 0.0 < scores.sap < 1.0


def test_score_representation_is_deterministic_for_a_seed():
    rng = np.random.default_rng(10)
    codes, factors = _representation(rng, 3000)
    test_codes, test_factors = _representation(rng, 3000)
    kwargs = dict(limits=PointLimits(train=1000, test=500))
    first = score_representation(codes, factors, test_codes, test_factors, seed=3, **kwargs)
    again = score_representation(codes, factors, test_codes, test_factors, seed=3, **kwargs)
    other = score_representation(codes, factors, test_codes, test_factors, seed=4, **kwargs)
    assert first == again
    # A different seed draws other points (so subsampling does happen) and moves the scores.
    assert other.per_factor_mig != first.per_factor_mig
    assert other.per_factor_sap != first.per_factor_sap


# ------------------------------------------------------------------ bad inputs

def _check_one_line_value_error(call, match):
    with pytest.raises(ValueError, match=match) as info:
        call()
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("call, match", [
    (lambda c, f: mutual_information_gap(c[:-1], f), "rows"),
    (lambda c, f: sap_score(c, f, c, f[:-1]), "rows"),
    (lambda c, f: sap_score(c, f, c[:, :3], f), "dimensions"),
    (lambda c, f: mutual_information_gap(c[:, 0], f), "2-D"),
    (lambda c, f: mutual_information_gap(c[None], f), "2-D"),
    (lambda c, f: sap_score(c, f[:, 0], c, f), "2-D"),
    (lambda c, f: mutual_information_gap(np.where(np.eye(100, 4) > 0, np.nan, c), f), "NaN"),
    (lambda c, f: sap_score(c, f, np.full_like(c, np.inf), f), "non-finite"),
    (lambda c, f: mutual_information_gap(c[:, :1], f), "at least 2 dimensions"),
    (lambda c, f: sap_score(c[:, :1], f, c[:, :1], f), "at least 2 dimensions"),
    (lambda c, f: mutual_information_gap(c, f + 0.5), "integer"),
    (lambda c, f: mutual_information_gap(c, np.stack([f[:, 0], np.ones(100, int)], 1)),
     "constant factor.*#1"),
    (lambda c, f: sap_score(c, np.ones_like(f), c, f), "constant"),
    (lambda c, f: discretize(c, bins=0), "bins"),
    (lambda c, f: mutual_information_gap(c[:0], f[:0]), "at least one row"),
])
def test_bad_inputs_raise_value_error(call, match):
    rng = np.random.default_rng(11)
    codes, factors = rng.standard_normal((100, 4)), rng.integers(0, 3, (100, 2))
    _check_one_line_value_error(lambda: call(codes, factors), match)


def test_score_representation_bad_inputs():
    rng = np.random.default_rng(12)
    codes, factors = _representation(rng, 200)
    short = {name: values[:-1] for name, values in factors.items()}
    renamed = {("hue" if name == "colour" else name): values for name, values in factors.items()}
    constant = dict(factors, colour=np.zeros(200, dtype=int))
    nan_codes = codes.copy()
    nan_codes[3, 1] = np.nan
    cases = [
        (lambda: score_representation(codes, short, codes, factors), "rows"),
        (lambda: score_representation(codes, dict(factors, shape=factors["shape"][:-1]), codes,
                                      factors), "different lengths"),
        (lambda: score_representation(codes, factors, codes, renamed), "differ"),
        (lambda: score_representation(codes, constant, codes, factors), "'colour'"),
        (lambda: score_representation(nan_codes, factors, codes, factors), "NaN"),
        (lambda: score_representation(codes[:, 0], factors, codes, factors), "2-D"),
        (lambda: score_representation(codes, {}, codes, factors), "non-empty"),
        (lambda: score_representation(codes, factors, codes, factors,
                                      limits=PointLimits(train=0)), "limits.train"),
    ]
    for call, match in cases:
        _check_one_line_value_error(call, match)
