"""Datasets of ``(x, y)`` examples: validation, batching, shuffling and splits.

A ``Dataset`` holds two arrays with the examples along axis 0; indexing it selects examples
(``ds[:5000]``) and it unpacks as a pair (``x, y = ds``). ``check_dataset`` is the
one gate through which user data enters ``fit``/``evaluate``: it converts to the library's dtypes
and rejects what would otherwise fail many steps later (mismatched lengths, NaN, strings) with a
message that names the argument. Everything random draws from a ``numpy.random.Generator`` that
the caller passes in.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import DTypeLike

from .module import as_rng


@dataclass(frozen=True, slots=True, eq=False)
class Dataset:
    """Inputs ``x`` and targets ``y`` of the same examples, one example per row (axis 0).

    Fields: ``x``, the inputs (the loaders give float32 images ``(N, 1, H, W)``, flattened
    ``(N, H * W)`` or signals ``(N, L)``; a language model takes integer token ids ``(N, T)``);
    ``y``, the targets (int64 class labels ``(N,)``, a class per position ``(N, T)`` such as the
    next tokens, or float targets); ``n``, the number of examples, which is also ``len(ds)``.

    A subset is a ``Dataset`` of those rows, of ``x`` and ``y`` together: ``ds[:5000]``,
    ``ds[5000:]`` (slices give views, as in NumPy), ``ds[idx]`` with an integer array or list,
    ``ds[ds.y == 3]`` with a boolean mask of length ``n``. A single integer is refused, with a
    ``TypeError``: write ``ds[i : i + 1]`` for a one-example ``Dataset``, or ``ds.x[i]``. (Code
    written for a pair, where ``ds[0]`` is ``x``, must stop with a message, not run on with
    row 0.) It unpacks as a pair, ``x, y = ds``: iterating gives ``x`` then ``y``, not rows.

    Labels index the class names in ``glassnet.datasets`` (``FASHION_MNIST_CLASSES``,
    ``DIGIT_CLASSES``, or ``CLASSES[name]`` by data set name).

    A model with several inputs (a ``Graph`` with ``inputs=["a", "b"]``) takes ``x`` as a
    *tuple* of arrays, one per input in the graph's order, each with one row per example:
    ``Dataset((xa, xb), y)``; ``fit``, ``evaluate`` and ``predict`` pass a batch's rows of each
    as ``model.forward(xa_rows, xb_rows)``. (A list is one array, as NumPy reads it.)
    """

    x: np.ndarray | tuple[np.ndarray, ...]
    y: np.ndarray

    def __post_init__(self) -> None:
        x = tuple(np.asarray(a) for a in self.x) if isinstance(self.x, tuple) else np.asarray(self.x)
        y = np.asarray(self.y)
        for name, a in (*_named_inputs(x, "x"), ("y", y)):
            if a.ndim == 0:
                raise ValueError(f"Dataset: {name} must have one row per example, got a scalar")
        if isinstance(x, tuple) and not x:
            raise ValueError("Dataset: x is an empty tuple; a model with several inputs takes one array each")
        for name, a in _named_inputs(x, "x"):
            if len(a) != len(y):
                # rows of x and y are paired by position: a mismatch would pair them wrongly
                raise ValueError(f"Dataset: {name} has {len(a)} rows but y has {len(y)}")
        object.__setattr__(self, "x", x)  # frozen: this is how __post_init__ may set a field
        object.__setattr__(self, "y", y)

    @property
    def n(self) -> int:
        """The number of examples, ``len(y)``."""
        return len(self.y)

    def __len__(self) -> int:
        return len(self.y)

    def __iter__(self) -> Iterator[np.ndarray]:
        """``x`` then ``y``, so that ``x, y = ds`` unpacks."""
        return iter((self.x, self.y))

    def __getitem__(self, index: slice | np.ndarray | Sequence[int]) -> Dataset:
        """The examples selected by a slice, an integer array or a boolean mask."""
        if isinstance(index, slice):
            return Dataset(take_rows(self.x, index), self.y[index])
        rows = _row_index(index)  # out-of-range rows: NumPy's IndexError
        return Dataset(take_rows(self.x, rows), self.y[rows])

    def __repr__(self) -> str:
        x = ", ".join(f"{a.dtype} {a.shape}" for _, a in _named_inputs(self.x, "x"))
        x = f"({x})" if isinstance(self.x, tuple) else x
        return f"Dataset(n={self.n}, x={x}, y={self.y.dtype} {self.y.shape})"


def inputs_of(x) -> tuple:
    """The positional inputs of ``model.forward``: ``(x,)``, or the tuple of a model's several."""
    return x if isinstance(x, tuple) else (x,)


def take_rows(x: np.ndarray | tuple[np.ndarray, ...], rows) -> np.ndarray | tuple[np.ndarray, ...]:
    """Rows ``rows`` (a slice, an integer array or a mask) of the inputs ``x``: of the array, or of
    each array of a tuple (a model with several inputs)."""
    return tuple(a[rows] for a in x) if isinstance(x, tuple) else x[rows]


def _named_inputs(x, name: str) -> list[tuple[str, np.ndarray]]:
    """``[(name, x)]``, or ``[("x[0]", x[0]), ...]`` for a tuple of inputs: names for messages."""
    return [(f"{name}[{i}]", a) for i, a in enumerate(x)] if isinstance(x, tuple) else [(name, x)]


def _row_index(index: object) -> np.ndarray:
    """``index`` as a 1-D integer or boolean array of rows; a TypeError says what a row index is."""
    if isinstance(index, (int, np.integer)) or (
        isinstance(index, np.ndarray) and index.ndim == 0 and index.dtype.kind in "biu"
    ):
        raise TypeError(
            f"Dataset[{index!s}]: a single integer is not an index of a Dataset; write "
            "ds[i : i + 1] for one example, ds.x and ds.y (or x, y = ds) for the arrays"
        )
    shown = repr(index)
    what = f"Dataset[{shown if len(shown) <= 40 else type(index).__name__}]"  # not a 60,000-row mask
    expected = "expected a slice, an integer array or a boolean mask of rows"
    if isinstance(index, (str, bytes, tuple)) or index is None or index is Ellipsis:
        raise TypeError(f"{what}: {expected}")
    try:
        rows = np.asarray(index)
    except ValueError:  # ragged nested lists
        raise TypeError(f"{what}: {expected}") from None
    if rows.ndim != 1:
        raise TypeError(f"{what}: {expected}, got a {rows.ndim}-D array")
    if rows.dtype == np.bool_:
        return rows  # NumPy refuses a mask of the wrong length with an IndexError
    if rows.size == 0:
        return rows.astype(np.intp)  # [] is float64 to NumPy; no rows is no rows
    if not np.issubdtype(rows.dtype, np.integer):
        raise TypeError(f"{what}: {expected}, got an array of {rows.dtype}")
    return rows


def _check_finite(a: np.ndarray, what: str) -> None:
    """Raise if a float array holds NaN or inf, saying how many and the first row with one."""
    if not np.issubdtype(a.dtype, np.floating):
        return
    # fast path: NaN and inf propagate through a sum, so a finite sum proves finite data;
    # only a non-finite sum (bad data, or finite data summing past float32's range) needs
    # the element-wise search. A contiguous array is summed as its dot product with itself, a
    # sum of squares (BLAS's dot reads it faster than NumPy's sum: docs/speed.md; a square of
    # NaN or +-inf is NaN or inf, and a square overflowing only sends finite data to the search)
    with np.errstate(over="ignore", invalid="ignore"):
        if a.flags.c_contiguous and a.size and a.dtype in (np.float32, np.float64):
            flat = a.reshape(-1)
            total = np.dot(flat, flat)
        else:
            total = np.sum(a)
    if a.size == 0 or np.isfinite(total):
        return
    bad = ~np.isfinite(a.reshape(len(a), -1))
    count = int(bad.sum())
    if count:
        first = int(np.flatnonzero(bad.any(axis=1))[0])
        raise ValueError(f"{what} contains {count} NaN/inf values (first at row {first})")


def check_inputs(x: object, name: str, dtype: DTypeLike = np.float32, integers: bool = False) -> np.ndarray:
    """Validate model inputs ``x`` and cast them to ``dtype``; ``name`` starts every message.

    ``x`` must be a floating-point array (float16, float32 or float64) with at least one
    dimension, finite after the cast. Integer arrays are refused rather than cast: they are
    usually raw image bytes in 0..255 that a network should see scaled (``x / 255``), and a
    silent cast would train on the wrong scale. (PyTorch refuses integer inputs too.)

    The one exception is a model whose first layer reads integer ids (an ``Embedding``:
    ``module.takes_integers``), for which ``fit``, ``evaluate`` and ``predict`` pass
    ``integers=True``: integer ``x`` (token ids ``(N, T)``) is then kept as it is, not cast to
    the model's float dtype; float ``x`` is still cast (whole numbers are ids to ``Embedding``).
    """
    try:
        x = np.asarray(x)
    except ValueError as e:  # ragged nested lists
        raise ValueError(f"{name}: could not convert x to an array: {e}") from None
    if x.ndim == 0 and x.dtype.kind in "iuf":
        raise ValueError(f"{name}: x must have one row per example, got a scalar")
    if integers and x.dtype.kind in "iu":
        return x  # token ids: the first layer checks their range
    if x.dtype.kind != "f":
        hint = (
            " (scale image bytes to [0, 1] first: x.astype(np.float32) / 255)" if x.dtype.kind in "iu" else ""
        )
        expected = "a float array (float16, float32 or float64)" + (" or integer ids" if integers else "")
        raise ValueError(f"{name}: x must be {expected}, got dtype {x.dtype}{hint}")
    # cast first: float64 values beyond float32's range become inf, caught just below
    with np.errstate(over="ignore"):
        x = x.astype(dtype, copy=False)
    _check_finite(x, f"{name}: x")
    return x


def check_dataset(
    x: object, y: object, name: str, dtype: DTypeLike = np.float32, integers: bool | tuple[bool, ...] = False
) -> Dataset:
    """Validate ``(x, y)`` and convert it to the library's dtypes.

    ``x`` must be a non-empty floating-point array (``check_inputs``); it is cast to ``dtype``
    (float32 by default, pass ``np.float64`` to keep double precision) and must then be finite.
    With ``integers=True`` (a model starting with an ``Embedding``) integer ``x`` is kept as is;
    a tuple of flags gives one per input (``module.integer_inputs``: a ``Graph``'s inputs).
    ``y`` is either integer class labels, returned as int64, or float targets, cast to ``dtype``
    so that a loss does not promote the batch to float64. Integer labels are a class per
    example ``(N,)``, or a class per position ``(N, d1, ...)``: a language model's next token
    ``(N, T)``, for ``CrossEntropyLoss``'s K-dimensional form (``fit`` checks that the loss
    takes them, ``Loss.position_labels``). Every error is a
    ``ValueError`` whose message starts with ``name`` (e.g. ``"train_data: x has 100 rows but
    y has 99"``).
    """
    if isinstance(x, tuple):  # a model with several inputs: one array each
        if not x:
            raise ValueError(f"{name}: x is an empty tuple; a model with several inputs takes one array each")
        flags = integers if isinstance(integers, tuple) else (integers,) * len(x)
        flags += (False,) * (len(x) - len(flags))  # more arrays than the model takes: its forward says so
        x = tuple(check_inputs(a, f"{name}: x[{i}]", dtype, flags[i]) for i, a in enumerate(x))
    else:
        x = check_inputs(x, name, dtype, integers[0] if isinstance(integers, tuple) else integers)
    try:
        y = np.asarray(y)
    except ValueError as e:  # ragged nested lists
        raise ValueError(f"{name}: could not convert y to an array: {e}") from None
    for what, a in _named_inputs(x, "x"):
        if len(a) == 0:
            raise ValueError(f"{name}: {what} must have at least one row, got shape {a.shape}")
    if y.ndim == 0:
        raise ValueError(f"{name}: y must be an array with one entry per row of x, got a scalar")
    for what, a in _named_inputs(x, "x"):
        if len(a) != len(y):
            raise ValueError(f"{name}: {what} has {len(a)} rows but y has {len(y)}")
    if np.issubdtype(y.dtype, np.integer) and y.dtype != np.bool_:
        y = y.astype(np.int64, copy=False)
    elif np.issubdtype(y.dtype, np.floating):
        with np.errstate(over="ignore"):
            y = y.astype(dtype, copy=False)
        _check_finite(y, f"{name}: y")
    else:
        raise ValueError(f"{name}: y must be integer class labels or float targets, got dtype {y.dtype}")
    return Dataset(x, y)


def as_dataset(
    data: object, name: str, dtype: DTypeLike = np.float32, integers: bool | tuple[bool, ...] = False
) -> Dataset:
    """Accept a ``Dataset``, tuple or list ``(x, y)`` and return a checked ``Dataset``
    (``integers``: keep integer ``x``, see ``check_inputs``)."""
    if isinstance(data, Dataset):
        return check_dataset(data.x, data.y, name, dtype, integers)
    if not isinstance(data, (tuple, list)) or len(data) != 2:
        what = type(data).__name__
        if isinstance(data, (tuple, list)):
            what = f"a {what} of length {len(data)}"
        raise ValueError(f"{name}: expected a (x, y) pair, got {what}")
    x, y = data
    return check_dataset(x, y, name, dtype, integers)


def batch_slices(n: int, batch_size: int) -> list[slice]:
    """Consecutive slices covering ``0..n`` in steps of ``batch_size``; the last may be short."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    if n < 0:
        raise ValueError(f"n must be non-negative, got {n}")
    return [slice(i, min(i + batch_size, n)) for i in range(0, n, batch_size)]


def shuffled(ds: Dataset, rng: np.random.Generator) -> Dataset:
    """A copy of ``ds`` with its examples in one random order, drawn from ``rng``.

    Batching the copy with ``batch_slices`` gives contiguous views. ``fit`` does not use it:
    for a large data set the fresh whole-epoch copy is a new allocation that the OS page-faults
    in every epoch, while gathering each batch by index reuses one small buffer.
    """
    perm = as_rng(rng, "shuffled").permutation(ds.n)
    return Dataset(take_rows(ds.x, perm), np.take(ds.y, perm, axis=0))


def train_val_split(ds: Dataset, val_fraction: float, rng: np.random.Generator) -> tuple[Dataset, Dataset]:
    """Split ``ds`` at random into ``(train, val)``, ``val`` holding ``val_fraction`` of it.

    The validation size is ``round(n * val_fraction)``; both parts must be non-empty.
    """
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}")
    n_val = round(ds.n * val_fraction)
    if n_val == 0 or n_val == ds.n:
        raise ValueError(
            f"val_fraction={val_fraction} of {ds.n} examples leaves an empty "
            f"{'validation' if n_val == 0 else 'training'} set"
        )
    perm = as_rng(rng, "train_val_split").permutation(ds.n)
    val, train = perm[:n_val], perm[n_val:]
    return (
        Dataset(take_rows(ds.x, train), np.take(ds.y, train, axis=0)),
        Dataset(take_rows(ds.x, val), np.take(ds.y, val, axis=0)),
    )


class Augment:
    """Random shifts and horizontal flips of an image batch (N, C, H, W), for ``fit(augment=...)``.

    ``shift=k`` moves each image by an integer offset drawn uniformly from [-k, k] in each
    direction, filling with zeros (an offset of at least the image's side leaves it all
    zeros, the picture moved out of frame): the book's chapter 6 "expanded training set" of
    one-pixel shifts, drawn afresh every epoch instead of stored. ``flip=True`` mirrors each
    image left-right with probability 1/2 (right for clothes, wrong for digits). Every draw
    comes from the generator ``fit`` passes in, so runs stay reproducible from one seed.
    """

    def __init__(self, shift: int = 0, flip: bool = False) -> None:
        if shift < 0:
            raise ValueError(f"Augment: shift must be >= 0, got {shift}")
        self.shift, self.flip = int(shift), bool(flip)

    def __call__(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        if x.ndim != 4:
            raise ValueError(f"Augment expects image batches (N, C, H, W), got shape {x.shape}")
        n, _, h, w = x.shape
        out = x.copy()
        if self.flip:
            mirror = rng.random(n) < 0.5
            out[mirror] = out[mirror, :, :, ::-1]
        k = self.shift
        if k:
            dy, dx = rng.integers(-k, k + 1, size=(2, n))
            src = out
            out = np.zeros_like(src)
            # one vectorised copy per distinct offset: at most (2k + 1)^2 groups, never per image
            for oy in range(-k, k + 1):
                for ox in range(-k, k + 1):
                    # an offset of at least the side moves the whole picture out of frame: the
                    # group stays all zeros (slicing would give mismatched, not empty, windows)
                    if abs(oy) >= h or abs(ox) >= w:
                        continue
                    group = (dy == oy) & (dx == ox)
                    if group.any():
                        out[group, :, max(oy, 0) : h + min(oy, 0), max(ox, 0) : w + min(ox, 0)] = src[
                            group, :, max(-oy, 0) : h + min(-oy, 0), max(-ox, 0) : w + min(-ox, 0)
                        ]
        return out

    def __repr__(self) -> str:
        return f"Augment(shift={self.shift}, flip={self.flip})"
