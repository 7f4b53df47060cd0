"""Checks of the arrays the metrics take, shared by MIG, SAP and DCI: codes are (N, D) float
arrays, factors (N, F) integer arrays with values 0..k-1. Each raises ValueError naming the
argument and what was expected."""
from __future__ import annotations

import numpy as np


def two_dimensional(values, name: str, shape: str) -> np.ndarray:
    array = np.asarray(values)
    if array.ndim != 2:
        raise ValueError(f"{name} must be a 2-D {shape} array, got shape {array.shape}")
    if array.shape[0] == 0 or array.shape[1] == 0:
        raise ValueError(f"{name} must have at least one row and one column, got shape "
                         f"{array.shape}")
    return array


def codes_array(codes, name: str = "codes") -> np.ndarray:
    """``codes`` as a finite 2-D float array with at least one row and one column."""
    array = two_dimensional(codes, name, "(N, d)")
    if not (np.issubdtype(array.dtype, np.number) or array.dtype == bool):
        raise ValueError(f"{name} must be numeric, got dtype {array.dtype}")
    array = array.astype(np.float64, copy=False)
    if not np.all(np.isfinite(array)):
        bad = int(np.count_nonzero(~np.isfinite(array)))
        raise ValueError(f"{name} contain {bad} non-finite value(s) (NaN or inf)")
    return array


def standardised(train: np.ndarray, test: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Both codes with each dimension less the training codes' mean, over their standard
    deviation (a constant dimension: centred only)."""
    mean, std = train.mean(axis=0), train.std(axis=0)
    std = np.where(std > 0, std, 1.0)
    return (train - mean) / std, (test - mean) / std


def factors_array(factors, name: str = "factors") -> np.ndarray:
    """``factors`` as a 2-D int64 array; float arrays are accepted when every value is integral."""
    array = two_dimensional(factors, name, "(N, k)")
    if array.dtype == bool or np.issubdtype(array.dtype, np.integer):
        return array.astype(np.int64, copy=False)
    if np.issubdtype(array.dtype, np.floating):
        if not np.all(np.isfinite(array)) or not np.all(array == np.round(array)):
            raise ValueError(f"{name} must hold discrete (integer) values; got non-integral "
                             f"or non-finite floats")
        return array.astype(np.int64)
    raise ValueError(f"{name} must hold discrete (integer) values, got dtype {array.dtype}")


def same_length(codes: np.ndarray, factors: np.ndarray, what: str) -> None:
    if codes.shape[0] != factors.shape[0]:
        raise ValueError(f"{what}: codes have {codes.shape[0]} rows but factors have "
                         f"{factors.shape[0]}")


def train_and_test(train_codes, train_factors, test_codes, test_factors, what: str):
    """The four arrays of a metric fitted on train and scored on test, checked: codes and factors
    of each split of equal length, and the same code dimensions and factors in both splits."""
    train_codes, test_codes = codes_array(train_codes, "train_codes"), codes_array(test_codes, "test_codes")
    train_factors = factors_array(train_factors, "train_factors")
    test_factors = factors_array(test_factors, "test_factors")
    same_length(train_codes, train_factors, f"{what} (train)")
    same_length(test_codes, test_factors, f"{what} (test)")
    if train_codes.shape[1] != test_codes.shape[1]:
        raise ValueError(f"{what}: train_codes have {train_codes.shape[1]} dimensions but test_codes "
                         f"have {test_codes.shape[1]}")
    if train_factors.shape[1] != test_factors.shape[1]:
        raise ValueError(f"{what}: train_factors have {train_factors.shape[1]} factors but "
                         f"test_factors have {test_factors.shape[1]}")
    return train_codes, train_factors, test_codes, test_factors


def factor_label(j: int, names) -> str:
    return repr(names[j]) if names is not None else f"#{j}"


def stack_factors(factors: dict[str, np.ndarray], what: str) -> tuple[list[str], np.ndarray]:
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
    return names, factors_array(np.stack(columns, axis=1), what)
