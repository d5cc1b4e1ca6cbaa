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


def axis_order(a: np.ndarray) -> list[int]:
    """``a``'s axes from outermost to innermost in memory: [0, 1, 2, 3] for C-order NCHW,
    [0, 2, 3, 1] for the NCHW view of channels-last memory that convolutions return."""
    return sorted(range(a.ndim), key=lambda axis: -abs(a.strides[axis]))


def empty_in_order(shape: tuple[int, ...], dtype, order: list[int], fill: float | None = None) -> np.ndarray:
    """A new array of logical ``shape`` whose axes lie in memory in ``order`` (see axis_order).

    Convolutions return NCHW views of channels-last memory; a layer that allocated its output
    or its dx in plain C order would make every later element-wise operation mix layouts
    (strided inner loops) and force a copy in the next convolution.
    """
    physical = np.empty([shape[a] for a in order], dtype=dtype)
    if fill is not None:
        physical.fill(fill)
    return physical.transpose(np.argsort(order))
