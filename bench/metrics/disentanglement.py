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
  is taken; the score is the mean over factors.

Both scores are in [0, 1] (MIG up to estimation error), higher meaning that each factor is captured
by one dimension and not shared with another. Codes are ``(N, d)`` float arrays, factors ``(N, k)``
integer arrays (one column per factor); ``score_representation`` takes factors by name.

Pure numpy + scikit-learn; no torch.
"""
from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

import numpy as np
from sklearn.metrics import mutual_info_score
from sklearn.svm import LinearSVC

if TYPE_CHECKING:
    from bench.metrics.dci import DCIScores

__all__ = ["DisentanglementScores", "discretize", "mutual_information_matrix",
           "mutual_information_gap", "sap_score", "score_representation"]


# --------------------------------------------------------------------------- input validation

def _two_dimensional(values, name: str, shape: str) -> np.ndarray:
    array = np.asarray(values)
    if array.ndim != 2:
        raise ValueError(f"{name} must be a 2-D {shape} array, got shape {array.shape}")
    if array.shape[0] == 0 or array.shape[1] == 0:
        raise ValueError(f"{name} must have at least one row and one column, got shape "
                         f"{array.shape}")
    return array


def _codes(codes, name: str = "codes") -> np.ndarray:
    """``codes`` as a finite 2-D float array with at least one row and one column."""
    array = _two_dimensional(codes, name, "(N, d)")
    if not (np.issubdtype(array.dtype, np.number) or array.dtype == bool):
        raise ValueError(f"{name} must be numeric, got dtype {array.dtype}")
    array = array.astype(np.float64, copy=False)
    if not np.all(np.isfinite(array)):
        bad = int(np.count_nonzero(~np.isfinite(array)))
        raise ValueError(f"{name} contain {bad} non-finite value(s) (NaN or inf)")
    return array


def _factors(factors, name: str = "factors") -> np.ndarray:
    """``factors`` as a 2-D int64 array; float arrays are accepted when every value is integral."""
    array = _two_dimensional(factors, name, "(N, k)")
    if array.dtype == bool or np.issubdtype(array.dtype, np.integer):
        return array.astype(np.int64, copy=False)
    if np.issubdtype(array.dtype, np.floating):
        if not np.all(np.isfinite(array)) or not np.all(array == np.round(array)):
            raise ValueError(f"{name} must hold discrete (integer) values; got non-integral "
                             f"or non-finite floats")
        return array.astype(np.int64)
    raise ValueError(f"{name} must hold discrete (integer) values, got dtype {array.dtype}")


def _same_length(codes: np.ndarray, factors: np.ndarray, what: str) -> None:
    if codes.shape[0] != factors.shape[0]:
        raise ValueError(f"{what}: codes have {codes.shape[0]} rows but factors have "
                         f"{factors.shape[0]}")


def _factor_label(j: int, names) -> str:
    return repr(names[j]) if names is not None else f"#{j}"


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
    codes = _codes(codes)
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
    discrete_codes = _factors(discrete_codes, "discrete_codes")
    factors = _factors(factors)
    _same_length(discrete_codes, factors, "mutual_information_matrix")
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


def _mig_per_factor(codes, factors, bins: int = 20, names=None) -> np.ndarray:
    codes, factors = _codes(codes), _factors(factors)
    _same_length(codes, factors, "mutual_information_gap")
    if codes.shape[1] < 2:
        raise ValueError(f"MIG needs a code with at least 2 dimensions, got {codes.shape[1]}")
    entropies = _entropies(factors)
    constant = [j for j in range(factors.shape[1]) if entropies[j] <= 0.0]
    if constant:
        raise ValueError("MIG is undefined for a constant factor (zero entropy): factor "
                         + ", ".join(_factor_label(j, names) for j in constant))
    information = mutual_information_matrix(discretize(codes, bins), factors)
    return _top_two_gap(information) / entropies


def mutual_information_gap(codes: np.ndarray, factors: np.ndarray, bins: int = 20) -> float:
    """MIG: for each factor k, (largest MI - second largest MI over code dims) / entropy(factor k); mean over factors.
    codes (N, d) float, factors (N, k) int. A constant factor (entropy 0) raises ValueError naming it; d must be >= 2 (else ValueError)."""
    return float(np.mean(_mig_per_factor(codes, factors, bins)))


# --------------------------------------------------------------------------- SAP

def _sap_score_matrix(train_codes, train_factors, test_codes, test_factors, C: float,
                      names=None) -> np.ndarray:
    """(d, k) test accuracies of a LinearSVC fitted on one train code column per factor."""
    train_codes, test_codes = _codes(train_codes, "train_codes"), _codes(test_codes, "test_codes")
    train_factors = _factors(train_factors, "train_factors")
    test_factors = _factors(test_factors, "test_factors")
    _same_length(train_codes, train_factors, "sap_score (train)")
    _same_length(test_codes, test_factors, "sap_score (test)")
    if train_codes.shape[1] != test_codes.shape[1]:
        raise ValueError(f"sap_score: train codes have {train_codes.shape[1]} dimensions but test "
                         f"codes have {test_codes.shape[1]}")
    if train_factors.shape[1] != test_factors.shape[1]:
        raise ValueError(f"sap_score: train has {train_factors.shape[1]} factors but test has "
                         f"{test_factors.shape[1]}")
    if train_codes.shape[1] < 2:
        raise ValueError(f"SAP needs a code with at least 2 dimensions, got "
                         f"{train_codes.shape[1]}")
    if not (np.isfinite(C) and C > 0):
        raise ValueError(f"C must be a positive number, got {C!r}")
    constant = [j for j in range(train_factors.shape[1])
                if np.unique(train_factors[:, j]).size < 2]
    if constant:
        raise ValueError("SAP needs at least 2 classes per factor in the training data: factor "
                         + ", ".join(_factor_label(j, names) for j in constant)
                         + " is constant")

    d, k = train_codes.shape[1], train_factors.shape[1]
    matrix = np.empty((d, k))
    for i in range(d):
        x_train, x_test = train_codes[:, i:i + 1], test_codes[:, i:i + 1]
        for j in range(k):
            # disentanglement_lib's classifier: LinearSVC(C=0.01, class_weight="balanced"). With a
            # single feature and N >> 1 samples the primal solver (dual=False) is liblinear's right
            # choice: it solves the same strictly convex problem as the dual solver, is
            # deterministic, and converges in a few Newton steps (no ConvergenceWarning on codes
            # scaled 1e-6..1e6 with 2..40 classes), where the dual coordinate descent needs many
            # passes over N samples and hits max_iter (ConvergenceWarning, ~1 s per fit) already on
            # codes spanning ~10 units. The warning is therefore not silenced: if it appears, the
            # input is unusual.
            classifier = LinearSVC(C=C, class_weight="balanced", dual=False, max_iter=1000,
                                   random_state=0)
            classifier.fit(x_train, train_factors[:, j])
            matrix[i, j] = np.mean(classifier.predict(x_test) == test_factors[:, j])
    return matrix


def _sap_per_factor(train_codes, train_factors, test_codes, test_factors, C: float = 0.01,
                    names=None) -> np.ndarray:
    return _top_two_gap(_sap_score_matrix(train_codes, train_factors, test_codes, test_factors,
                                          C, names))


def sap_score(train_codes, train_factors, test_codes, test_factors, C: float = 0.01) -> float:
    """SAP (discrete factors): for every (dimension, factor) fit sklearn LinearSVC(C=C) on that single train code column to predict the factor, score = accuracy on the test data; per factor, the difference between the best and second-best dimension; mean over factors.

    The classifier uses ``class_weight="balanced"``, as disentanglement_lib's does.
    """
    return float(np.mean(_sap_per_factor(train_codes, train_factors, test_codes, test_factors,
                                         C)))


# --------------------------------------------------------------------------- convenience

@dataclasses.dataclass(frozen=True)
class DisentanglementScores:
    """MIG and SAP of a representation, with the per-factor values they average (``mig`` is the
    mean of ``per_factor_mig.values()``, likewise ``sap``)."""
    mig: float
    sap: float
    per_factor_mig: dict[str, float]
    per_factor_sap: dict[str, float]
    dci: "DCIScores | None" = None  # with dci=True: DCI on the same points (bench/metrics/dci.py)


def _stack_factors(factors: dict[str, np.ndarray], what: str) -> tuple[list[str], np.ndarray]:
    if not isinstance(factors, dict) or not factors:
        raise ValueError(f"{what} must be a non-empty dict of factor name -> (N,) integer array")
    names = list(factors)
    columns = []
    for name in names:
        column = np.asarray(factors[name])
        if column.ndim != 1:
            raise ValueError(f"{what}[{name!r}] must be a 1-D (N,) array, got shape "
                             f"{column.shape}")
        columns.append(column)
    lengths = {column.shape[0] for column in columns}
    if len(lengths) != 1:
        raise ValueError(f"{what}: factors have different lengths "
                         + ", ".join(f"{n!r}={c.shape[0]}" for n, c in zip(names, columns)))
    return names, _factors(np.stack(columns, axis=1), what)


def _subsample(rng: np.random.Generator, n: int, limit: int) -> np.ndarray:
    if n <= limit:
        return np.arange(n)
    return np.sort(rng.choice(n, size=limit, replace=False))


def score_representation(train_codes, train_factors: dict[str, np.ndarray], test_codes,
                         test_factors: dict[str, np.ndarray], *, max_train: int = 10000,
                         max_test: int = 5000, seed: int = 0,
                         dci: bool = False) -> DisentanglementScores:
    """MIG (on the train points) and SAP (fitted on train, scored on test) of a representation.

    Factors are given by name (dict name -> (N,) integer array; train and test with the same
    names). At most ``max_train`` train and ``max_test`` test points are used, drawn without
    replacement by ``numpy.random.default_rng(seed)`` (train first, then test), so the result is
    deterministic for a given seed; with fewer points than the limit all are used. With ``dci``,
    also DCI (fitted on the train points, informativeness scored on the test points).
    """
    for label, value in (("max_train", max_train), ("max_test", max_test)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{label} must be a positive integer, got {value!r}")
    train_codes, test_codes = _codes(train_codes, "train_codes"), _codes(test_codes, "test_codes")
    names, train_y = _stack_factors(train_factors, "train_factors")
    test_names, test_y = _stack_factors(test_factors, "test_factors")
    if test_names != names:
        raise ValueError(f"train and test factors differ: train has {names}, test has "
                         f"{test_names}")
    _same_length(train_codes, train_y, "score_representation (train)")
    _same_length(test_codes, test_y, "score_representation (test)")

    rng = np.random.default_rng(seed)
    train_rows = _subsample(rng, train_codes.shape[0], int(max_train))
    test_rows = _subsample(rng, test_codes.shape[0], int(max_test))
    train_codes, train_y = train_codes[train_rows], train_y[train_rows]
    test_codes, test_y = test_codes[test_rows], test_y[test_rows]

    mig = _mig_per_factor(train_codes, train_y, names=names)
    sap = _sap_per_factor(train_codes, train_y, test_codes, test_y, names=names)
    per_factor_mig = {name: float(value) for name, value in zip(names, mig)}
    per_factor_sap = {name: float(value) for name, value in zip(names, sap)}
    dci_scores = None
    if dci:
        from bench.metrics.dci import dci as dci_of
        dci_scores = dci_of(train_codes, train_y, test_codes, test_y, seed=seed)
    return DisentanglementScores(mig=float(np.mean(list(per_factor_mig.values()))),
                                 sap=float(np.mean(list(per_factor_sap.values()))),
                                 per_factor_mig=per_factor_mig, per_factor_sap=per_factor_sap,
                                 dci=dci_scores)
