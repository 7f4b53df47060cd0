"""MIG, SAP and optionally DCI of one representation against factors given by name, on the same
subsample of points: what the disentanglement evaluation reports."""
from __future__ import annotations

import dataclasses

import numpy as np

from bench.metrics import Bar, no_bar
from bench.metrics.dci import DCIScores
from bench.metrics.dci import dci as dci_of
from bench.metrics.mig_sap import mig_per_factor, sap_per_factor
from bench.metrics.inputs import codes_array, same_length, stack_factors


@dataclasses.dataclass(frozen=True)
class DisentanglementScores:
    """MIG and SAP of a representation, with the per-factor values they average (``mig`` is the
    mean of ``per_factor_mig.values()``, likewise ``sap``)."""
    mig: float
    sap: float
    per_factor_mig: dict[str, float]
    per_factor_sap: dict[str, float]
    dci: DCIScores | None = None  # with dci=True: DCI on the same points (bench/metrics/dci.py)


def _subsample(rng: np.random.Generator, n: int, limit: int) -> np.ndarray:
    if n <= limit:
        return np.arange(n)
    return np.sort(rng.choice(n, size=limit, replace=False))


@dataclasses.dataclass(frozen=True)
class PointLimits:
    """The most train and test points a score is computed on."""
    train: int = 10000
    test: int = 5000


def score_representation(train_codes, train_factors: dict[str, np.ndarray], test_codes,
                         test_factors: dict[str, np.ndarray], *,
                         limits: PointLimits = PointLimits(), seed: int = 0,
                         dci: bool = False, bar: Bar = no_bar) -> DisentanglementScores:
    """MIG (on the train points) and SAP (fitted on train, scored on test) of a representation.

    Factors are given by name (dict name -> (N,) integer array; train and test with the same
    names). At most ``limits.train`` train and ``limits.test`` test points are used, drawn
    without replacement by ``numpy.random.default_rng(seed)`` (train first, then test), so the
    result is deterministic for a given seed; with fewer points than the limit all are used. With
    ``dci``, also DCI (fitted on the train points, informativeness scored on the test points).
    """
    max_train, max_test = limits.train, limits.test
    for label, value in (("limits.train", max_train), ("limits.test", max_test)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{label} must be a positive integer, got {value!r}")
    train_codes, test_codes = codes_array(train_codes, "train_codes"), codes_array(test_codes, "test_codes")
    names, train_y = stack_factors(train_factors, "train_factors")
    test_names, test_y = stack_factors(test_factors, "test_factors")
    if test_names != names:
        raise ValueError(f"train and test factors differ: train has {names}, test has "
                         f"{test_names}")
    same_length(train_codes, train_y, "score_representation (train)")
    same_length(test_codes, test_y, "score_representation (test)")

    rng = np.random.default_rng(seed)
    train_rows = _subsample(rng, train_codes.shape[0], int(max_train))
    test_rows = _subsample(rng, test_codes.shape[0], int(max_test))
    train_codes, train_y = train_codes[train_rows], train_y[train_rows]
    test_codes, test_y = test_codes[test_rows], test_y[test_rows]

    mig = mig_per_factor(train_codes, train_y, names=names)
    sap = sap_per_factor(train_codes, train_y, test_codes, test_y, names=names, standardise=True)
    per_factor_mig = {name: float(value) for name, value in zip(names, mig)}
    per_factor_sap = {name: float(value) for name, value in zip(names, sap)}
    dci_scores = None
    if dci:
        dci_scores = dci_of(train_codes, train_y, test_codes, test_y, seed=seed, bar=bar)
    return DisentanglementScores(mig=float(np.mean(list(per_factor_mig.values()))),
                                 sap=float(np.mean(list(per_factor_sap.values()))),
                                 per_factor_mig=per_factor_mig, per_factor_sap=per_factor_sap,
                                 dci=dci_scores)
