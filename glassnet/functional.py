"""Stateless, numerically stable kernels shared by layers and losses."""

from __future__ import annotations

import numpy as np
from scipy import special


def softmax(x: np.ndarray, axis: int = -1) -> np.ndarray:
    # shift by the max: exp cannot overflow and the result is unchanged
    z = x - x.max(axis=axis, keepdims=True)
    np.exp(z, out=z)
    z /= z.sum(axis=axis, keepdims=True)
    return z


def log_softmax(x: np.ndarray, axis: int = -1) -> np.ndarray:
    z = x - x.max(axis=axis, keepdims=True)
    z -= np.log(np.exp(z).sum(axis=axis, keepdims=True))
    return z


def sigmoid(x: np.ndarray) -> np.ndarray:
    """1 / (1 + e^-x) without overflow for any x (scipy's expit ufunc keeps the dtype)."""
    return special.expit(x)


def log_sigmoid(x: np.ndarray) -> np.ndarray:
    """log sigmoid(x) = -log(1 + e^-x), computed as -logaddexp(0, -x): stable both ways."""
    return -np.logaddexp(0, -x)
