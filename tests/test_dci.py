"""Tests of the DCI metric (bench/metrics/dci.py).

Known answers on hand-made importance matrices (the derivation is in each test), then end-to-end
runs on synthetic factors: a code that copies the factors must score near 1, pure noise near 0.
"""
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from bench.metrics.dci import DCIScores, completeness, dci, disentanglement, importance_matrix

EXACT = 1e-12
SIZES = (4, 5, 6)
N_TRAIN, N_TEST = 1000, 500
N_ESTIMATORS = 20  # disentanglement_lib uses 100; 20 keeps the file fast and is plenty here


def uniform_factors(rng, sizes, n):
    """(n, len(sizes)) independent factors, factor j uniform on 0..sizes[j]-1."""
    return np.stack([rng.integers(0, size, n) for size in sizes], axis=1)


def split(codes, factors):
    return codes[:N_TRAIN], factors[:N_TRAIN], codes[N_TRAIN:], factors[N_TRAIN:]


# --------------------------------------------------------------------------- known answers

@pytest.mark.parametrize("permutation", [[0, 1, 2], [2, 0, 1], [1, 2, 0, 3]])
def test_permuted_identity_scores_one(permutation):
    matrix = np.eye(len(permutation))[permutation] * 0.7
    assert disentanglement(matrix) == pytest.approx(1.0, abs=EXACT)
    assert completeness(matrix) == pytest.approx(1.0, abs=EXACT)


def test_permuted_diagonal_with_unequal_weights_scores_one():
    """Each row and column has one non-zero entry, so every entropy is 0 whatever the weights."""
    matrix = np.zeros((4, 4))
    matrix[[0, 1, 2, 3], [3, 1, 0, 2]] = [0.1, 0.4, 0.2, 0.3]
    assert disentanglement(matrix) == pytest.approx(1.0, abs=EXACT)
    assert completeness(matrix) == pytest.approx(1.0, abs=EXACT)


@pytest.mark.parametrize("shape", [(3, 3), (5, 2), (2, 4)])
def test_uniform_matrix_scores_zero(shape):
    """A uniform row over F factors has entropy log F / log F = 1, so 1 - 1 = 0 (columns alike)."""
    matrix = np.full(shape, 0.25)
    assert disentanglement(matrix) == pytest.approx(0.0, abs=EXACT)
    assert completeness(matrix) == pytest.approx(0.0, abs=EXACT)


def test_one_dimension_spread_over_two_of_four_factors():
    """Rows: [1,1,0,0], [0,0,1,0], [0,0,0,1] (3 code dimensions, 4 factors).

    Row 0 is uniform on 2 of 4 factors: entropy ln 2 / ln 4 = 1/2, so its disentanglement is 1/2;
    rows 1 and 2 score 1. Row weights are 2/4, 1/4, 1/4, so D = 1/2 * 1/2 + 1/4 + 1/4 = 3/4.
    Every column has a single non-zero entry, so C = 1.
    """
    matrix = np.array([[1.0, 1.0, 0.0, 0.0],
                       [0.0, 0.0, 1.0, 0.0],
                       [0.0, 0.0, 0.0, 1.0]])
    assert disentanglement(matrix) == pytest.approx(0.75, abs=EXACT)
    assert completeness(matrix) == pytest.approx(1.0, abs=EXACT)


def test_one_factor_spread_over_two_of_four_dimensions():
    """Columns: factor 0 on dimensions 0 and 1 equally, factor 1 on dimensions 2 and 3 equally.

    Each column has entropy ln 2 / ln 4 = 1/2 (base D = 4), so C = 1/2; each row has one
    non-zero entry, so D = 1.
    """
    matrix = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 1.0]])
    assert completeness(matrix) == pytest.approx(0.5, abs=EXACT)
    assert disentanglement(matrix) == pytest.approx(1.0, abs=EXACT)


def test_unequal_split_by_hand():
    """Row [3, 1] over 2 factors: p = (3/4, 1/4), H_2 = -(3/4 log2 3/4 + 1/4 log2 1/4)
    = 2 - (3/4) log2 3 ≈ 0.811278; with a second row [0, 4] (score 1) and weights 4/8, 4/8,
    D = (1 - H_2) / 2 + 1/2."""
    matrix = np.array([[3.0, 1.0], [0.0, 4.0]])
    h = 2.0 - 0.75 * math.log2(3.0)
    assert disentanglement(matrix) == pytest.approx((1.0 - h) / 2 + 0.5, abs=EXACT)
    # Columns: [3, 0] scores 1 with weight 3/8; [1, 4] has p = (1/5, 4/5) with weight 5/8.
    h_col = -(0.2 * math.log2(0.2) + 0.8 * math.log2(0.8))
    assert completeness(matrix) == pytest.approx(3 / 8 + 5 / 8 * (1.0 - h_col), abs=EXACT)


def test_zero_row_does_not_change_disentanglement_and_zero_column_not_completeness():
    rng = np.random.default_rng(1)
    matrix = rng.random((4, 3))
    with_zero_row = np.insert(matrix, 2, 0.0, axis=0)
    with_zero_column = np.insert(matrix, 1, 0.0, axis=1)
    assert disentanglement(with_zero_row) == pytest.approx(disentanglement(matrix), abs=EXACT)
    assert completeness(with_zero_column) == pytest.approx(completeness(matrix), abs=EXACT)


def test_scale_invariance_and_range():
    rng = np.random.default_rng(2)
    matrix = rng.random((6, 3)) ** 3
    for score in (disentanglement, completeness):
        value = score(matrix)
        assert 0.0 < value < 1.0
        assert score(matrix * 123.0) == pytest.approx(value, abs=EXACT)


def _reference_scores(matrix):
    """disentanglement_lib's formulas, re-derived: 1e-11 smoothing, entropy with scipy."""
    import scipy.stats
    smoothed = matrix + 1e-11
    per_code = 1.0 - scipy.stats.entropy(smoothed.T, base=matrix.shape[1])
    per_factor = 1.0 - scipy.stats.entropy(smoothed, base=matrix.shape[0])
    weights = matrix if matrix.sum() > 0 else np.ones_like(matrix)
    d = np.sum(per_code * weights.sum(axis=1) / weights.sum())
    c = np.sum(per_factor * weights.sum(axis=0) / weights.sum())
    return d, c


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_disentanglement_lib_formulas_on_random_matrices(seed):
    """Agreement up to the effect of the reference's 1e-11 smoothing."""
    rng = np.random.default_rng(seed)
    matrix = rng.random((7, 4)) * (rng.random((7, 4)) < 0.6)
    matrix[3] = 0.0  # an all-zero row, which the reference handles through the smoothing
    d_ref, c_ref = _reference_scores(matrix)
    assert disentanglement(matrix) == pytest.approx(d_ref, abs=1e-8)
    assert completeness(matrix) == pytest.approx(c_ref, abs=1e-8)


def test_all_zero_matrix_scores_zero():
    assert disentanglement(np.zeros((3, 2))) == 0.0
    assert completeness(np.zeros((3, 2))) == 0.0


def test_single_factor_and_single_dimension_are_defined_as_one():
    """log base 1 is undefined: one factor gives disentanglement 1, one dimension completeness 1."""
    one_factor = np.array([[0.5], [0.3], [0.0]])
    assert disentanglement(one_factor) == pytest.approx(1.0, abs=EXACT)
    assert completeness(one_factor) == pytest.approx(
        1.0 - (-(0.625 * math.log(0.625) + 0.375 * math.log(0.375)) / math.log(3)), abs=EXACT)
    one_dimension = np.array([[0.2, 0.2]])
    assert completeness(one_dimension) == pytest.approx(1.0, abs=EXACT)
    assert disentanglement(one_dimension) == pytest.approx(0.0, abs=EXACT)


@pytest.mark.parametrize("bad, message", [
    (np.ones(3), "2-D"),
    (np.ones((0, 3)), "at least one row and one column"),
    (np.array([[1.0, -0.1]]), "non-negative"),
    (np.array([[1.0, np.nan]]), "finite"),
])
def test_bad_importance_matrix_raises(bad, message):
    for score in (disentanglement, completeness):
        with pytest.raises(ValueError, match=message):
            score(bad)


# --------------------------------------------------------------------------- end to end

@pytest.fixture(scope="module")
def factors():
    return uniform_factors(np.random.default_rng(0), SIZES, N_TRAIN + N_TEST)


@pytest.fixture(scope="module")
def copy_scores(factors):
    """Code: the factors permuted and scaled, plus a constant and two noise dimensions."""
    rng = np.random.default_rng(1)
    n = factors.shape[0]
    code = np.concatenate([factors[:, [2, 0, 1]] * np.array([0.5, 3.0, -2.0]),
                           np.full((n, 1), 7.0), rng.normal(size=(n, 2))], axis=1)
    return dci(*split(code, factors), seed=0, n_estimators=N_ESTIMATORS)


def test_copy_of_factors_scores_near_one(copy_scores):
    assert isinstance(copy_scores, DCIScores)
    assert copy_scores.importance.shape == (6, 3)
    assert np.all(copy_scores.importance >= 0)
    assert copy_scores.disentanglement > 0.9
    assert copy_scores.completeness > 0.9
    assert copy_scores.informativeness_train > 0.95
    assert copy_scores.informativeness_test > 0.95
    # Factor j is code dimension where the permutation [2, 0, 1] put it.
    assert list(np.argmax(copy_scores.importance, axis=0)) == [1, 2, 0]
    # Each classifier's importances sum to 1 (scikit-learn normalises them).
    assert copy_scores.importance.sum(axis=0) == pytest.approx(np.ones(3))


def test_pure_noise_scores_near_zero(factors):
    rng = np.random.default_rng(2)
    noise = rng.normal(size=(factors.shape[0], 5))
    scores = dci(*split(noise, factors), seed=0, n_estimators=N_ESTIMATORS)
    assert scores.disentanglement < 0.2
    assert scores.completeness < 0.2
    chance = float(np.mean([1.0 / size for size in SIZES]))  # about 0.2
    assert abs(scores.informativeness_test - chance) < 0.1


def test_same_seed_gives_identical_results(factors):
    rng = np.random.default_rng(3)
    code = factors @ rng.normal(size=(3, 4)) + rng.normal(size=(factors.shape[0], 4))
    first = dci(*split(code, factors), seed=5, n_estimators=10)
    second = dci(*split(code, factors), seed=5, n_estimators=10)
    assert np.array_equal(first.importance, second.importance)
    assert (first.disentanglement, first.completeness, first.informativeness_train,
            first.informativeness_test) == (second.disentanglement, second.completeness,
                                            second.informativeness_train,
                                            second.informativeness_test)


def test_importance_matrix_matches_dci(copy_scores, factors):
    """importance_matrix alone returns the same matrix and accuracies as dci."""
    rng = np.random.default_rng(1)
    n = factors.shape[0]
    code = np.concatenate([factors[:, [2, 0, 1]] * np.array([0.5, 3.0, -2.0]),
                           np.full((n, 1), 7.0), rng.normal(size=(n, 2))], axis=1)
    importance, train_accuracy, test_accuracy = importance_matrix(
        *split(code, factors), seed=0, n_estimators=N_ESTIMATORS)
    assert np.array_equal(importance, copy_scores.importance)
    assert (train_accuracy, test_accuracy) == (copy_scores.informativeness_train,
                                               copy_scores.informativeness_test)


# --------------------------------------------------------------------------- input validation

def _good_inputs():
    rng = np.random.default_rng(4)
    factors = uniform_factors(rng, (2, 3), 40)
    codes = rng.normal(size=(40, 3))
    return codes[:30], factors[:30], codes[30:], factors[30:]


def _with(index, value):
    inputs = list(_good_inputs())
    inputs[index] = value(inputs[index])
    return inputs


@pytest.mark.parametrize("inputs, message", [
    (_with(0, lambda c: c[:, 0]), "train_codes must be a 2-D"),
    (_with(1, lambda f: f[:, :, None]), "train_factors must be a 2-D"),
    (_with(0, lambda c: c[:25]), "codes have 25 rows but factors have 30"),
    (_with(3, lambda f: f[:5]), "codes have 10 rows but factors have 5"),
    (_with(2, lambda c: c[:, :2]), "train_codes have 3 dimensions but test_codes have 2"),
    (_with(3, lambda f: f[:, :1]), "train_factors have 2 factors but test_factors have 1"),
    (_with(0, lambda c: np.where(np.arange(30)[:, None] == 3, np.nan, c)), "non-finite"),
    (_with(2, lambda c: np.where(np.arange(10)[:, None] == 3, np.inf, c)), "non-finite"),
    (_with(0, lambda c: c[:0]), "must have at least one row and one column"),
    (_with(1, lambda f: f + 0.5), "discrete"),
    (_with(1, lambda f: np.stack([f[:, 0], np.zeros(30, dtype=int)], axis=1)),
     "factor #1 is constant"),
])
def test_bad_inputs_raise(inputs, message):
    with pytest.raises(ValueError, match=message):
        dci(*inputs, seed=0, n_estimators=5)


@pytest.mark.parametrize("n_estimators", [0, -3, 2.5, True])
def test_bad_n_estimators_raises(n_estimators):
    with pytest.raises(ValueError, match="n_estimators"):
        importance_matrix(*_good_inputs(), seed=0, n_estimators=n_estimators)


def test_module_does_not_import_torch():
    code = "import sys, bench.metrics.dci; sys.exit(1 if 'torch' in sys.modules else 0)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            cwd=Path(__file__).resolve().parents[1])
    assert result.returncode == 0, result.stderr or "bench.metrics.dci imported torch"
