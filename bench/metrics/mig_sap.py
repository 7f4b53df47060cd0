"""Disentanglement scores of a latent code against known discrete ground-truth factors.

Two scores, defined as in disentanglement_lib (Locatello et al. 2019, "Challenging Common
Assumptions in the Unsupervised Learning of Disentangled Representations"):

* MIG, the mutual information gap (Chen et al. 2018): every code dimension is discretised into
  equal-width bins over its own range, the discrete mutual information between each dimension and
  each factor is estimated from counts, and for each factor the gap between the two most
  informative dimensions is divided by the factor's entropy; the score is the mean over factors.
* SAP, the separated attribute predictability (Kumar et al. 2018), discrete-factor variant: a
  linear SVM is fitted on a single code dimension to predict a factor, its test accuracy fills a
  (dimension, factor) score matrix, and for each factor the gap between the two best dimensions
  is taken; the score is the mean over factors. The runner-up dimension of a perfect code carries
  nothing of the factor and is read near chance (1/c for c equally frequent values), so SAP is at
  most about 1 - 1/c on every discrete factor (0.5 for two values), and lower where one
  dimension's thresholds cannot isolate the factor's middle values. Its SVM (C = 0.01, as
  disentanglement_lib's) reads the code at its scale: a code scaled down scores lower, so
  ``standardise`` (not in the reference) first puts each dimension at unit variance on the
  training codes.

Both scores are in [0, 1] (MIG up to estimation error), higher meaning that each factor is captured
by one dimension and not shared with another. Codes are ``(N, d)`` float arrays, factors ``(N, k)``
integer arrays (one column per factor); ``bench.metrics.representation`` takes factors
by name and adds DCI.

Pure numpy + scikit-learn; no torch.
"""
from __future__ import annotations

import numpy as np
from sklearn.metrics import mutual_info_score
from sklearn.svm import LinearSVC

from bench.metrics.inputs import (codes_array, factor_label, factors_array, same_length,
                                  standardised, train_and_test)

__all__ = ["discretize", "mutual_information_matrix", "mutual_information_gap", "sap_score"]


# --------------------------------------------------------------------------- MIG

def discretize(codes: np.ndarray, bins: int = 20) -> np.ndarray:
    """(N, d) float codes -> (N, d) int bin indices, each dimension cut into `bins` equal-width bins
    over its own range (numpy histogram edges), as disentanglement_lib's _histogram_discretize.

    Bin ``b`` (0-based) holds the values ``edges[b] <= x < edges[b + 1]``, the last bin also holding
    the maximum; disentanglement_lib numbers the same bins 1..bins (the partition, hence every
    mutual information computed from it, is identical). A constant dimension falls in one bin.
    """
    if isinstance(bins, bool) or not isinstance(bins, (int, np.integer)) or bins < 1:
        raise ValueError(f"bins must be a positive integer, got {bins!r}")
    codes = codes_array(codes)
    out = np.empty(codes.shape, dtype=np.int64)
    for i in range(codes.shape[1]):
        column = codes[:, i]
        edges = np.histogram_bin_edges(column, bins=int(bins))
        # Left edges only: values at or above the last left edge (the maximum included) go to the
        # last bin, exactly like numpy's histogram with its closed last bin.
        out[:, i] = np.digitize(column, edges[:-1]) - 1
    return out


def mutual_information_matrix(discrete_codes: np.ndarray, factors: np.ndarray) -> np.ndarray:
    """(d, k) matrix of mutual information (nats, sklearn.metrics.mutual_info_score) between each code dimension and each factor."""
    discrete_codes = factors_array(discrete_codes, "discrete_codes")
    factors = factors_array(factors)
    same_length(discrete_codes, factors, "mutual_information_matrix")
    d, k = discrete_codes.shape[1], factors.shape[1]
    matrix = np.empty((d, k))
    for i in range(d):
        for j in range(k):
            matrix[i, j] = mutual_info_score(factors[:, j], discrete_codes[:, i])
    return matrix


def _entropies(factors: np.ndarray) -> np.ndarray:
    """Entropy (nats) of each factor column, as H(Y) = I(Y; Y), disentanglement_lib's estimate."""
    return np.array([mutual_info_score(factors[:, j], factors[:, j])
                     for j in range(factors.shape[1])])


def _top_two_gap(matrix: np.ndarray) -> np.ndarray:
    """Per column of a (d, k) matrix, its largest minus its second-largest entry (d >= 2)."""
    ordered = np.sort(matrix, axis=0)
    return ordered[-1] - ordered[-2]


def mig_per_factor(codes, factors, bins: int = 20, names=None) -> np.ndarray:
    codes, factors = codes_array(codes), factors_array(factors)
    same_length(codes, factors, "mutual_information_gap")
    if codes.shape[1] < 2:
        raise ValueError(f"MIG needs a code with at least 2 dimensions, got {codes.shape[1]}")
    entropies = _entropies(factors)
    constant = [j for j in range(factors.shape[1]) if entropies[j] <= 0.0]
    if constant:
        raise ValueError("MIG is undefined for a constant factor (zero entropy): factor "
                         + ", ".join(factor_label(j, names) for j in constant))
    information = mutual_information_matrix(discretize(codes, bins), factors)
    return _top_two_gap(information) / entropies


def mutual_information_gap(codes: np.ndarray, factors: np.ndarray, bins: int = 20) -> float:
    """MIG: for each factor k, (largest MI - second largest MI over code dims) / entropy(factor k); mean over factors.
    codes (N, d) float, factors (N, k) int. A constant factor (entropy 0) raises ValueError naming it; d must be >= 2 (else ValueError)."""
    return float(np.mean(mig_per_factor(codes, factors, bins)))


# --------------------------------------------------------------------------- SAP

def _sap_score_matrix(train_codes, train_factors, test_codes, test_factors, C: float,
                      names=None) -> np.ndarray:
    """(d, k) test accuracies of a LinearSVC fitted on one train code column per factor."""
    train_codes, train_factors, test_codes, test_factors = train_and_test(
        train_codes, train_factors, test_codes, test_factors, "sap_score")
    if train_codes.shape[1] < 2:
        raise ValueError(f"SAP needs a code with at least 2 dimensions, got "
                         f"{train_codes.shape[1]}")
    if not (np.isfinite(C) and C > 0):
        raise ValueError(f"C must be a positive number, got {C!r}")
    constant = [j for j in range(train_factors.shape[1])
                if np.unique(train_factors[:, j]).size < 2]
    if constant:
        raise ValueError("SAP needs at least 2 classes per factor in the training data: factor "
                         + ", ".join(factor_label(j, names) for j in constant)
                         + " is constant")

    d, k = train_codes.shape[1], train_factors.shape[1]
    matrix = np.empty((d, k))
    for i in range(d):
        x_train, x_test = train_codes[:, i:i + 1], test_codes[:, i:i + 1]
        for j in range(k):
            # disentanglement_lib's classifier, LinearSVC(C=0.01, class_weight="balanced"), by the
            # primal solver (dual=False): the strictly convex problem that the reference's solver
            # (the dual, scikit-learn's default then) solves, to the same scores (issue 43).
            classifier = LinearSVC(C=C, class_weight="balanced", dual=False, max_iter=1000,
                                   random_state=0)
            classifier.fit(x_train, train_factors[:, j])
            matrix[i, j] = np.mean(classifier.predict(x_test) == test_factors[:, j])
    return matrix


def sap_per_factor(train_codes, train_factors, test_codes, test_factors, C: float = 0.01,
                   names=None, standardise: bool = False) -> np.ndarray:
    """Each factor's SAP (``sap_score``); with ``standardise``, of the codes with each dimension
    standardised on the training codes (a departure from disentanglement_lib, which reads the
    code at its own scale)."""
    if standardise:
        train_codes, test_codes = standardised(codes_array(train_codes, "train_codes"),
                                               codes_array(test_codes, "test_codes"))
    return _top_two_gap(_sap_score_matrix(train_codes, train_factors, test_codes, test_factors,
                                          C, names))


def sap_score(train_codes, train_factors, test_codes, test_factors, C: float = 0.01,
              standardise: bool = False) -> float:
    """SAP (discrete factors): for every (dimension, factor) fit sklearn LinearSVC(C=C) on that single train code column to predict the factor, score = accuracy on the test data; per factor, the difference between the best and second-best dimension; mean over factors.

    The classifier uses ``class_weight="balanced"``, as disentanglement_lib's does. With
    ``standardise`` each dimension is first standardised on the training codes
    (``sap_per_factor``).
    """
    return float(np.mean(sap_per_factor(train_codes, train_factors, test_codes, test_factors,
                                         C, standardise=standardise)))
