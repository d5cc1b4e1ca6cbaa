"""Merging layers: several inputs in, one output out, and ``Identity``.

A module with several inputs takes them positionally, ``forward(*xs)``, and its
``backward(dy)`` returns one gradient per input, as a tuple in the inputs' order; called with
one input it returns that one gradient (not a tuple), so it also works in a ``Sequential``.

``Add`` and ``Multiply`` broadcast as NumPy and PyTorch do (a (N, C, H, W) map times a (N, C,
1, 1) gate). Where an input was broadcast, its value was used at every position it was
stretched over, so its gradient is the sum of the gradients at those positions: the sum over
paths of the chain rule ("index i is no longer fixed, we have to run a sum"), here over the
broadcast axes (``unbroadcast``).
"""

from __future__ import annotations

import numpy as np

from ..module import Module, ShapeError, is_int


def unbroadcast(g: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """``g`` summed down to ``shape``: over the leading axes broadcasting added, and over the
    axes where ``shape`` has 1 and ``g`` has more (each input entry fed that many outputs)."""
    if g.shape == shape:
        return g
    g = g.sum(axis=tuple(range(g.ndim - len(shape))))
    stretched = tuple(i for i, n in enumerate(shape) if n == 1 and g.shape[i] != 1)
    return g.sum(axis=stretched, keepdims=True) if stretched else g


def _one_or_tuple(grads: list[np.ndarray]):
    return grads[0] if len(grads) == 1 else tuple(grads)


def _broadcast_shape(owner: str, xs: tuple[np.ndarray, ...]) -> tuple[int, ...]:
    if not xs:
        raise ShapeError(f"{owner} expects at least one input, got none")
    try:
        return np.broadcast_shapes(*(np.shape(x) for x in xs))
    except ValueError:
        shapes = ", ".join(str(np.shape(x)) for x in xs)
        raise ShapeError(f"{owner} expects inputs of shapes that broadcast together, got {shapes}") from None


class Identity(Module):
    """y = x (``nn.Identity``): a placeholder, or a residual's shortcut written out.

    Shapes: any -> same.
    Backward: dx = dy (the Jacobian is the identity).
    """

    def forward(self, x: np.ndarray) -> np.ndarray:
        return x

    def backward(self, dy: np.ndarray) -> np.ndarray:
        return dy


class Add(Module):
    """y = x_1 + x_2 + ... + x_n, element-wise, broadcasting as NumPy does (``torch.add``;
    Keras' ``Add``). The merge of a residual connection and of a graph's branches.

    Shapes: x_k broadcastable together -> y of the broadcast shape.
    Backward: dx_k = dy (dy/dx_k = 1), summed over the axes x_k was broadcast along.
    """

    sums_paths = "y = x_1 + ... + x_n: each input's path gets dy"

    def forward(self, *xs: np.ndarray) -> np.ndarray:
        _broadcast_shape("Add", xs)
        self.shapes = [np.shape(x) for x in xs]
        y = xs[0]
        for x in xs[1:]:
            y = y + x  # a new array: x_1 itself is never written into
        return y

    def backward(self, dy: np.ndarray):
        return _one_or_tuple([unbroadcast(dy, shape) for shape in self.shapes])


class Multiply(Module):
    """y = x_1 * x_2 * ... * x_n, element-wise, broadcasting as NumPy does (``torch.mul``;
    Keras' ``Multiply``): gates, and attention-style re-weighting.

    Shapes: x_k broadcastable together -> y of the broadcast shape.
    Backward: dx_k = dy * prod_{j != k} x_j (the product rule), summed over the axes x_k was
    broadcast along. The inputs are kept from forward, not the products: a zero input would
    make dividing y by x_k wrong.
    """

    def forward(self, *xs: np.ndarray) -> np.ndarray:
        _broadcast_shape("Multiply", xs)
        self.xs = xs
        y = xs[0]
        for x in xs[1:]:
            y = y * x
        return y

    def backward(self, dy: np.ndarray):
        grads = []
        for k, x in enumerate(self.xs):
            g = dy
            for j, other in enumerate(self.xs):
                if j != k:
                    g = g * other
            grads.append(unbroadcast(g, np.shape(x)))
        return _one_or_tuple(grads)


class Concat(Module):
    """Join the inputs along ``axis`` (``torch.cat(xs, dim=axis)``; Keras' ``Concatenate``).

    ``axis`` counts the batch axis, as ``dim`` does in PyTorch; the default, 1, is the channels
    of (N, C, H, W) maps and the features of (N, F) vectors (a U-Net's skip joins its decoder
    there). A negative axis counts from the end (-1: the last axis of (N, T, E) sequences).

    Shapes: x_k (N, ..., C_k, ...) -> y (N, ..., sum_k C_k, ...), every other axis equal.
    Backward: dx_k = dy[..., offset_k : offset_k + C_k, ...]: each output entry came from one
    input entry, so dy is cut back into the pieces.
    """

    def __init__(self, axis: int = 1) -> None:
        super().__init__()
        if not is_int(axis):
            raise TypeError(f"Concat: axis must be an integer, got {type(axis).__name__}")
        self.axis = int(axis)

    def forward(self, *xs: np.ndarray) -> np.ndarray:
        if not xs:
            raise ShapeError("Concat expects at least one input, got none")
        ndim = np.ndim(xs[0])
        if not -ndim <= self.axis < ndim:
            raise ShapeError(
                f"Concat(axis={self.axis}) expects inputs with axis {self.axis}, got shape {np.shape(xs[0])}"
            )
        axis = self.axis % ndim
        others = {np.shape(x)[:axis] + np.shape(x)[axis + 1 :] for x in xs}
        if len(others) != 1 or any(np.ndim(x) != ndim for x in xs):
            shapes = ", ".join(str(np.shape(x)) for x in xs)
            raise ShapeError(
                f"Concat(axis={self.axis}) expects inputs equal but along axis {self.axis}, got {shapes}"
            )
        self.sizes = [np.shape(x)[axis] for x in xs]
        return np.concatenate(xs, axis=axis)

    def backward(self, dy: np.ndarray):
        cuts = np.cumsum(self.sizes)[:-1]
        return _one_or_tuple(np.split(dy, cuts, axis=self.axis))

    def config(self) -> dict:
        return {"axis": self.axis}
