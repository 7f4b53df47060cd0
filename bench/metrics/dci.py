"""DCI: disentanglement, completeness and informativeness of a latent code.

The DCI framework of Eastwood & Williams 2018 ("A framework for the quantitative evaluation of
disentangled representations") scores a code against known ground-truth factors through an
importance matrix ``R`` of shape (code dimensions D, factors F): ``R[i, j]`` says how much code
dimension ``i`` is used to predict factor ``j``. Computed here as
google-research/disentanglement_lib does (``evaluation/metrics/dci.py``): one scikit-learn
``GradientBoostingClassifier`` per factor is fitted on the train codes, and its
``feature_importances_`` fill that factor's column.

* Disentanglement: each code dimension should matter for one factor only. Per dimension,
  ``1 - H_F(p)`` where ``p`` is the row of ``R`` normalised to sum to 1 and ``H_F`` the entropy with
  log base F; the score is the average of these weighted by each row's share of ``R.sum()``.
* Completeness: each factor should be captured by one code dimension. The same with the columns
  of ``R`` and log base D, weighted by each column's share of ``R.sum()``.
* Informativeness: the mean over factors of the classifiers' accuracy, on the train set and on the
  held-out test set (disentanglement_lib reports both).

All three are in [0, 1], higher is better. Two departures from disentanglement_lib, both only
where it is undefined or to make exact values exact:

* disentanglement_lib adds 1e-11 to every entry before taking entropies, so that an all-zero row
  is not 0/0. Here an all-zero row (column) is given weight 0 explicitly and entropies are taken
  of the exact distribution, so a permuted identity matrix scores exactly 1; the two agree to
  about 1e-9. An all-zero matrix scores 0 for both, as in disentanglement_lib.
* With one factor (F = 1) the log base 1 is undefined; every code dimension then trivially
  explains a single factor and its disentanglement is defined as 1. Likewise with a single code
  dimension (D = 1) every factor's completeness is 1.

Codes are ``(N, D)`` float arrays, factors ``(N, F)`` integer arrays with values 0..k-1. Pure
numpy, scipy and scikit-learn; no torch, no global random state (``seed`` goes to every classifier).
"""
from __future__ import annotations

import dataclasses

import numpy as np
import scipy.stats
from sklearn.ensemble import GradientBoostingClassifier

from bench.metrics import Bar, no_bar
from bench.metrics.inputs import train_and_test, two_dimensional

__all__ = ["DCIScores", "importance_matrix", "disentanglement", "completeness", "dci"]


@dataclasses.dataclass(frozen=True)
class DCIScores:
    disentanglement: float
    completeness: float
    informativeness_train: float   # mean accuracy over factors, in [0, 1]
    informativeness_test: float
    importance: np.ndarray          # (code dimensions, factors), non-negative


# --------------------------------------------------------------------------- input validation

def _importance(values) -> np.ndarray:
    array = two_dimensional(values, "importance", "(code dimensions, factors)")
    array = array.astype(np.float64, copy=False)
    if not np.all(np.isfinite(array)):
        raise ValueError("importance must be finite (no NaN or inf)")
    if np.any(array < 0):
        raise ValueError("importance must be non-negative")
    return array


def _check_inputs(train_codes, train_factors, test_codes, test_factors):
    train_codes, train_factors, test_codes, test_factors = train_and_test(
        train_codes, train_factors, test_codes, test_factors, "dci")
    for j in range(train_factors.shape[1]):
        if np.unique(train_factors[:, j]).size < 2:
            raise ValueError(f"factor #{j} is constant in train_factors; a classifier needs at "
                             f"least 2 classes")
    return train_codes, train_factors, test_codes, test_factors


# --------------------------------------------------------------------------- importance matrix

def importance_matrix(train_codes, train_factors, test_codes, test_factors, *, seed: int,
                      n_estimators: int = 100, bar: Bar = no_bar) -> tuple[np.ndarray, float, float]:
    """(importance (D x F), mean train accuracy, mean test accuracy).

    One ``GradientBoostingClassifier(n_estimators=n_estimators, random_state=seed)`` per factor,
    fitted on the train codes; its ``feature_importances_`` are that factor's column. The
    accuracies are the fraction of correctly predicted factor values, averaged over factors.
    """
    if isinstance(n_estimators, bool) or not isinstance(n_estimators, (int, np.integer)) \
            or n_estimators < 1:
        raise ValueError(f"n_estimators must be a positive integer, got {n_estimators!r}")
    train_codes, train_factors, test_codes, test_factors = _check_inputs(
        train_codes, train_factors, test_codes, test_factors)
    num_codes, num_factors = train_codes.shape[1], train_factors.shape[1]
    importance = np.zeros((num_codes, num_factors), dtype=np.float64)
    train_accuracy = np.zeros(num_factors)
    test_accuracy = np.zeros(num_factors)
    for j in bar(range(num_factors), "DCI factors"):
        model = GradientBoostingClassifier(n_estimators=int(n_estimators), random_state=seed)
        model.fit(train_codes, train_factors[:, j])
        importance[:, j] = np.abs(model.feature_importances_)
        train_accuracy[j] = np.mean(model.predict(train_codes) == train_factors[:, j])
        test_accuracy[j] = np.mean(model.predict(test_codes) == test_factors[:, j])
    return importance, float(train_accuracy.mean()), float(test_accuracy.mean())


# --------------------------------------------------------------------------- D and C

def _weighted_specificity(matrix: np.ndarray) -> float:
    """Sum over rows of (1 - entropy of the normalised row, log base = row length), weighted by
    each row's share of the total; all-zero rows get weight 0, a length-1 row scores 1."""
    totals = matrix.sum(axis=1)
    grand_total = totals.sum()
    if grand_total == 0:
        return 0.0
    used = totals > 0
    if matrix.shape[1] == 1:
        per_row = np.ones(int(used.sum()))
    else:
        # scipy.stats.entropy normalises each row to a distribution itself.
        per_row = 1.0 - scipy.stats.entropy(matrix[used], base=matrix.shape[1], axis=1)
        per_row = np.clip(per_row, 0.0, 1.0)  # rounding can give -2e-16 for a uniform row
    return float(np.sum(per_row * (totals[used] / grand_total)))


def disentanglement(importance: np.ndarray) -> float:
    """Disentanglement of a (code dimensions D, factors F) importance matrix, in [0, 1].

    Per code dimension, 1 - entropy (log base F) of its row normalised to a distribution; the
    score is their sum weighted by each row's share of the total importance. An all-zero row
    contributes nothing; an all-zero matrix scores 0. With a single factor (F = 1, where log base
    1 is undefined) every code dimension's disentanglement is defined as 1.
    """
    return _weighted_specificity(_importance(importance))


def completeness(importance: np.ndarray) -> float:
    """Completeness of a (code dimensions D, factors F) importance matrix, in [0, 1].

    Per factor, 1 - entropy (log base D) of its column normalised to a distribution; the score is
    their sum weighted by each column's share of the total importance. An all-zero column
    contributes nothing; an all-zero matrix scores 0. With a single code dimension (D = 1) every
    factor's completeness is defined as 1.
    """
    return _weighted_specificity(_importance(importance).T)


def dci(train_codes, train_factors, test_codes, test_factors, *, seed: int,
        n_estimators: int = 100, bar: Bar = no_bar) -> DCIScores:
    """DCI scores of a code: train codes (N, D) / factors (N, F) fit the classifiers, test ones
    measure informativeness_test. See the module docstring for the definitions."""
    importance, train_accuracy, test_accuracy = importance_matrix(
        train_codes, train_factors, test_codes, test_factors, seed=seed,
        n_estimators=n_estimators, bar=bar)
    return DCIScores(disentanglement=disentanglement(importance),
                     completeness=completeness(importance),
                     informativeness_train=train_accuracy,
                     informativeness_test=test_accuracy,
                     importance=importance)
