"""Probes of other kinds than the paper's, to ask whether the methods' order of leakage depends on
the probe at a small cost: a converged linear probe (multinomial logistic regression, L-BFGS) and
a high-capacity non-parametric one (k nearest neighbours, k chosen by leave-one-out
cross-validation on the training codes). Both read each code dimension standardised on the
training codes, so that neither depends on a dimension's scale.

Codes are (N, d) float arrays, labels (N,) integer arrays. Pure numpy and scikit-learn; no torch.
"""
from __future__ import annotations

import dataclasses

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.neighbors import NearestNeighbors

from bench.metrics.inputs import standardised

MAX_ITERATIONS = 1000  # L-BFGS's; a standardised code of 16 dimensions converges in about 20
K_CANDIDATES = (1, 3, 5, 9, 15, 25, 45, 75, 125)
# Training codes left out one at a time to choose k: 10,000 of MNIST's 60,000, each against all
# the others (the queries cost the time; their number sets the choice's precision)
CV_QUERIES = 10_000


@dataclasses.dataclass(frozen=True)
class Reading:
    """A probe's accuracy (%) on the training codes and on the test codes, and what it chose
    (k nearest neighbours: k) or needed (the linear probe: its L-BFGS iterations)."""
    train: float
    test: float
    chosen: int


def percent(predicted: np.ndarray, labels: np.ndarray) -> float:
    return 100.0 * float(np.mean(predicted == labels))


def linear_probe(train: np.ndarray, train_labels: np.ndarray, test: np.ndarray,
                 test_labels: np.ndarray) -> Reading:
    """Multinomial logistic regression (scikit-learn's L-BFGS, its default L2 penalty C = 1,
    negligible beside the likelihood of thousands of codes) fitted to convergence on the
    standardised training codes: train accuracy on them, test on the test codes."""
    train, test = standardised(train, test)
    model = LogisticRegression(max_iter=MAX_ITERATIONS).fit(train, train_labels)
    return Reading(percent(model.predict(train), train_labels),
                   percent(model.predict(test), test_labels), int(np.max(model.n_iter_)))


def vote(neighbour_labels: np.ndarray, classes: int, ks: tuple[int, ...]) -> dict[int, np.ndarray]:
    """{k: each row's majority label among its first k neighbours' (``neighbour_labels``, rows
    of class indices, nearest first)}; a tie goes to the smallest index, as scikit-learn's."""
    counts = np.zeros((len(neighbour_labels), classes), dtype=np.int64)
    rows = np.arange(len(neighbour_labels))
    found = {}
    for j in range(max(ks)):
        counts[rows, neighbour_labels[:, j]] += 1
        if j + 1 in ks:
            found[j + 1] = counts.argmax(axis=1)
    return found


def without_self(found: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Each row's neighbours (``found``: k + 1 indices, nearest first, of the queries ``rows``)
    less the query itself: k of them. Where a duplicate at distance 0 took the query's place, the
    last is dropped instead."""
    is_self = found == rows[:, None]
    drop = np.where(is_self.any(axis=1), is_self.argmax(axis=1), found.shape[1] - 1)
    keep = np.ones(found.shape, dtype=bool)
    keep[np.arange(len(found)), drop] = False
    return found[keep].reshape(len(found), found.shape[1] - 1)


def chosen_k(index: NearestNeighbors, train: np.ndarray, encoded: np.ndarray,
             candidates: tuple[int, ...], rows: np.ndarray) -> tuple[int, float]:
    """(k, its accuracy %): the candidate whose vote reads the labels of the training codes
    ``rows`` best, each left out of its own neighbours (the smallest k of equal accuracy)."""
    _, found = index.kneighbors(train[rows], n_neighbors=max(candidates) + 1)
    votes = vote(encoded[without_self(found, rows)], int(encoded.max()) + 1, candidates)
    accuracy = {k: percent(votes[k], encoded[rows]) for k in candidates}
    best = max(accuracy.values())
    k = min(k for k, value in accuracy.items() if value == best)
    return k, best


def knn_probe(train: np.ndarray, train_labels: np.ndarray, test: np.ndarray,
              test_labels: np.ndarray, *, seed: int, candidates: tuple[int, ...] = K_CANDIDATES,
              queries: int = CV_QUERIES) -> Reading:
    """k nearest neighbours (Euclidean, on the standardised codes, a majority vote), k the
    candidate of best leave-one-out accuracy on ``queries`` training codes drawn by
    ``numpy.random.default_rng(seed)`` (all of them when fewer); train accuracy is that
    leave-one-out accuracy, test the accuracy on the test codes."""
    train, test = standardised(train, test)
    classes, encoded = np.unique(train_labels, return_inverse=True)
    candidates = tuple(k for k in candidates if k < len(train)) or (1,)
    index = NearestNeighbors(algorithm="brute").fit(train)  # trees lose to brute force past ~15 dimensions
    rows = np.sort(np.random.default_rng(seed).choice(len(train), min(queries, len(train)),
                                                      replace=False))
    k, left_out = chosen_k(index, train, encoded, candidates, rows)
    _, found = index.kneighbors(test, n_neighbors=k)
    predicted = classes[vote(encoded[found], len(classes), (k,))[k]]
    return Reading(left_out, percent(predicted, test_labels), k)
