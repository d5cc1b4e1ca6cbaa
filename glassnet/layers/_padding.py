"""Padding of the spatial axes before a convolution, in PyTorch's four modes, and its backward.

A convolution with ``padding_mode`` other than ``"zeros"``, or with ``padding="same"`` where the
kernel's reach d (k - 1) is odd (PyTorch then pads one more on the right), runs as two layers:
this padding, then the convolution with no padding of its own. The padded input is a gather,

    xp[..., i] = x[..., src(i)]      for i in 0 .. before + n + after - 1, q = i - before:

    zeros      src = q if 0 <= q < n, else no source (the unit is 0)
    reflect    src = -q below 0, 2 (n - 1) - q past the end  (the edge itself is not repeated)
    replicate  src = clip(q, 0, n - 1)                         (the edge unit, repeated)
    circular   src = q mod n                                   (the other end wraps round)

Backward (BP2 through a gather): every padded unit sends its delta back to its source, so
dx[j] = sum of dxp[i] over the i with src(i) = j: dxp's centre, plus each border unit's delta
added into the unit it copied. Units of zero padding have no source; their delta is dropped.
"""

from __future__ import annotations

import numpy as np

from ..module import ShapeError

MODES = ("zeros", "reflect", "replicate", "circular")


def same_padding(kernel_size, dilation) -> tuple[tuple[int, int], ...]:
    """(before, after) per axis for ``padding="same"`` (stride 1): the output keeps the input's
    size. The total d (k - 1) is split as PyTorch does, the odd unit after (right, bottom)."""
    return tuple((d * (k - 1) // 2, d * (k - 1) - d * (k - 1) // 2) for k, d in zip(kernel_size, dilation))


def sources(n: int, before: int, after: int, mode: str) -> np.ndarray:
    """src(i) for each unit of one padded axis (-1: zero padding, no source)."""
    q = np.arange(-before, n + after)
    if mode == "zeros":
        return np.where((q >= 0) & (q < n), q, -1)
    if mode == "reflect":
        return np.where(q < 0, -q, np.where(q >= n, 2 * (n - 1) - q, q))
    if mode == "replicate":
        return np.clip(q, 0, n - 1)
    return q % n  # circular


def check(layer: str, shape: tuple[int, ...], pads, mode: str) -> None:
    """PyTorch's limits: reflect needs pad < n (the mirror skips the edge), circular pad <= n."""
    for n, (before, after) in zip(shape, pads):
        widest = max(before, after)
        if (mode == "reflect" and widest >= n and widest > 0) or (mode == "circular" and widest > n):
            limit = "smaller than" if mode == "reflect" else "at most"
            raise ShapeError(
                f"{layer}: padding_mode={mode!r} needs the padding ({widest}) {limit} the input size "
                f"along that axis ({n}); input spatial shape {tuple(shape)}"
            )


def pad(x: np.ndarray, pads, mode: str) -> np.ndarray:
    """x with its last len(pads) axes padded by (before, after) each, in ``mode``."""
    spatial = x.ndim - len(pads)
    if mode == "zeros":
        return np.pad(x, [(0, 0)] * spatial + [tuple(p) for p in pads])
    for axis, (before, after) in enumerate(pads, start=spatial):
        if before or after:
            x = np.take(x, sources(x.shape[axis], before, after, mode), axis=axis)
    return x


def fold(dxp: np.ndarray, pads, mode: str) -> np.ndarray:
    """The backward of ``pad``: dx[j] = sum of dxp[i] over the padded units i with src(i) = j."""
    spatial = dxp.ndim - len(pads)
    dx = dxp
    for axis, (before, after) in enumerate(pads, start=spatial):
        if not (before or after):
            continue
        n = dx.shape[axis] - before - after
        src = sources(n, before, after, mode)
        g = np.moveaxis(dx, axis, 0)
        out = g[before : before + n].copy()  # the centre: each unit its own delta
        if mode != "zeros":
            border = np.r_[0:before, before + n : before + n + after]
            for i in border:  # a few rows: each border unit's delta goes to the unit it copied
                out[src[i]] += g[i]
        dx = np.moveaxis(out, 0, axis)
    return dx
