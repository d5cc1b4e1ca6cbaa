"""Stateless, numerically stable kernels shared by layers and losses."""

from __future__ import annotations

import math

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


# an NCHW array's axes, outermost first, in the two memory layouts besides C order: channels-last
# (what a convolution returns) and pixel-major (a one-channel convolution's output before a pool)
CHANNELS_LAST, PIXEL_MAJOR = (0, 2, 3, 1), (2, 3, 0, 1)


def lies_as(a: np.ndarray, axes: tuple[int, ...]) -> bool:
    """Whether ``a`` is one C-order block of memory once its axes are taken in the order ``axes``
    (``lies_as(y, CHANNELS_LAST)`` for a convolution's output)."""
    return a.transpose(axes).flags.c_contiguous


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


# Phi(z) for float32 (GELU's cdf): erfc(s) = e^(-s^2) erfcx(s), and erfcx(s) as a degree-9
# polynomial in v = s / (1 + p s) (v in [0, 1/p) for s >= 0), the coefficients halved so the
# polynomial is erfc(s) e^(s^2) / 2 directly. Fitted in float64 by weighted least squares
# (Lawson reweighting toward minimax) to scipy.special.erfcx over s in [0, 9.5]; rounded to
# float32 as used, its relative error is below 0.3 eps for s <= 1, 2 eps for s <= 8 (z <= 11.3)
# and 3.3 eps up to 9.5 (eps = 2^-23). v rather than 1/(1 + p s): near s = 0 its rounding
# error is relative to v, so it does not grow the error of Phi around z = 0.
_ERFCX_P = 0.3
_HALF_ERFCX = (
    0.5, -0.564189076423645, 0.33073702454566956, -0.12687472999095917, 0.031182149425148964,
    -0.004025265574455261, -0.0001114931219490245, 0.00013879405742045492,
    -2.1821524569531903e-05, 1.2315304047660902e-06,
)  # fmt: skip
# elements per block: the ~30 passes of one block stay in the CPU's cache
_GELU_BLOCK = 1 << 16


def gelu_float32(x: np.ndarray, keep: bool) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """GELU y = z Phi(z) of a float32 array with vectorised float32 ufuncs, and (``keep``) the
    cdf Phi(z) and density phi(z) that backward needs; otherwise (None, None).

    The formula, in float64 for reference: Phi(z) = (1 + erf(z / sqrt 2)) / 2, phi(z) =
    e^(-z^2/2) / sqrt(2 pi). Here, with s = |z| / sqrt 2 and h = erfc(s) / 2 = Phi(-|z|):
        h = e^(-z^2/2) P(v),  v = s / (1 + p s) = 1 / (p + sqrt(2) / |z|)
        Phi(z) = h for z < 0, 1 - h for z >= 0,  phi(z) = e^(-z^2/2) / sqrt(2 pi)
    so Phi's small tail is computed directly, never as 1 minus something close to 1: the
    relative error of y is at most ~2 eps (1 + z^2) (eps = 2^-23; z^2 is the condition number
    of e^(-z^2/2), which any float32 evaluation shares), against 2^23 eps in the tail for
    (1 + erf) / 2 in float32. Worked in blocks so that the temporaries stay in cache.
    """
    f = np.float32
    flat = np.ascontiguousarray(x).reshape(-1)
    n = flat.size
    y = np.empty(n, dtype=f)
    cdf = np.empty(n, dtype=f) if keep else None
    pdf = np.empty(n, dtype=f) if keep else None
    size = min(_GELU_BLOCK, max(n, 1))
    abs_z, v, half_erfc, gauss = (np.empty(size, dtype=f) for _ in range(4))
    nonneg = np.empty(size, dtype=bool)
    coef = [f(c) for c in _HALF_ERFCX]
    # 1/|z| at z = 0 is inf (v = 0, as it should be); z^2 overflows to inf for huge z (e^-inf = 0)
    with np.errstate(divide="ignore", over="ignore"):
        for start in range(0, n, size):
            z = flat[start : start + size]
            k = z.size
            if k < size:
                abs_z, v, half_erfc, gauss, nonneg = abs_z[:k], v[:k], half_erfc[:k], gauss[:k], nonneg[:k]
            np.abs(z, out=abs_z)
            np.divide(f(math.sqrt(2)), abs_z, out=v)
            np.add(v, f(_ERFCX_P), out=v)
            np.divide(f(1), v, out=v)
            np.multiply(v, coef[-1], out=half_erfc)  # Horner: P(v)
            np.add(half_erfc, coef[-2], out=half_erfc)
            for c in coef[-3::-1]:
                np.multiply(half_erfc, v, out=half_erfc)
                np.add(half_erfc, c, out=half_erfc)
            np.multiply(z, z, out=gauss)
            np.multiply(gauss, f(-0.5), out=gauss)
            np.exp(gauss, out=gauss)  # e^(-z^2/2)
            np.multiply(half_erfc, gauss, out=half_erfc)  # h = Phi(-|z|)
            # Phi = [z >= 0] - sign(z) h (h for z < 0, 1 - h for z >= 0). The sign bit, not z >= 0,
            # so that -0.0 takes the z < 0 branch on both terms: Phi(-0) = 0.5, not 1.5
            np.signbit(z, out=nonneg)
            np.logical_not(nonneg, out=nonneg)
            np.copysign(half_erfc, z, out=half_erfc)
            cdf_block = cdf[start : start + k] if keep else abs_z  # abs_z is no longer needed
            np.subtract(nonneg, half_erfc, out=cdf_block)
            np.multiply(z, cdf_block, out=y[start : start + k])
            if keep:
                np.multiply(gauss, f(1 / math.sqrt(2 * math.pi)), out=pdf[start : start + k])
    shape = np.shape(x)
    if keep:
        return y.reshape(shape), cdf.reshape(shape), pdf.reshape(shape)
    return y.reshape(shape), None, None
