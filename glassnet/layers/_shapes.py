"""Sizes in a layer's config: the bounds ``state_shapes`` puts on them, per-axis arguments
(``kernel_size=3`` or ``(3, 5)``) and the output length of a sliding window.

``state_shapes`` runs on configs read from files, before anything is built: its own work must
stay small whatever a file says. The bounds are far beyond any model glassnet can train.
"""

from __future__ import annotations

from ..module import check_arg, is_int

MAX_SIZE = 2**31 - 1  # features, channels, kernel taps: one axis of one tensor
MAX_LAYERS = 1000  # stacked recurrent layers: the shape table has 4 entries per layer and direction


def size(owner: str, name: str, value, high: int = MAX_SIZE) -> int:
    """``value`` as an int, if it is an integer in [1, high]; else ``ValueError`` naming it."""
    return int(check_arg(owner, name, value, lambda v: 1 <= v <= high, f"an integer in [1, {high}]", int))


def ntuple(value, n: int, name: str, layer: str, expected: str | None = None) -> tuple[int, ...]:
    """An int, or a length-n tuple or list of ints (JSON gives lists), as an n-tuple of ints;
    else ``ValueError("<layer>: <name> must be <expected>, got ...")``."""
    values = (value,) * n if is_int(value) else tuple(value) if isinstance(value, (tuple, list)) else ()
    if len(values) != n or not all(is_int(v) for v in values):
        raise ValueError(f"{layer}: {name} must be {expected or f'an int or {n} ints'}, got {value!r}")
    return tuple(int(v) for v in values)


def out_size(size: int, k: int, stride: int, padding: int, dilation: int = 1) -> int:
    """Output length of a window of k taps, ``dilation`` apart, slid with ``stride`` over an input
    of ``size`` padded by ``padding`` on both sides (PyTorch's formula, for convolution and
    pooling): floor((size + 2 padding - dilation (k - 1) - 1) / stride) + 1."""
    return (size + 2 * padding - dilation * (k - 1) - 1) // stride + 1
