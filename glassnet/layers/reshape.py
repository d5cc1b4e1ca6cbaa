"""Layers that only move numbers around."""

from __future__ import annotations

import math

import numpy as np

from ..module import Module, ShapeError, check_arg, is_int


class Flatten(Module):
    """Keep the batch axis, flatten the rest (``nn.Flatten()``).

    Shapes: x (N, *) -> y (N, prod(*)).
    Backward: dx = dy reshaped to x's shape (a reshape has identity Jacobian).
    """

    def forward(self, x: np.ndarray) -> np.ndarray:
        if x.ndim < 1:
            raise ShapeError(f"Flatten expects a batch (N, ...), got a scalar of shape {x.shape}")
        self.x_shape = x.shape
        return x.reshape(x.shape[0], -1)

    def backward(self, dy: np.ndarray) -> np.ndarray:
        return dy.reshape(self.x_shape)


class Reshape(Module):
    """Keep the batch axis, reshape the rest to ``shape`` (PyTorch's ``nn.Unflatten(1, shape)``
    on flat input; Keras' ``Reshape``). E.g. ``Reshape((40, 1))`` turns (N, 40) signals into
    sequences of 40 steps of one feature for a recurrent layer, ``Reshape((1, 40))`` into one
    channel for a ``Conv1d``.

    Shapes: x (N, *) -> y (N, *shape), prod(*) = prod(shape).
    Backward: dx = dy reshaped to x's shape (a reshape has identity Jacobian).
    """

    def __init__(self, shape: tuple[int, ...]) -> None:
        super().__init__()

        def valid(sizes) -> bool:
            # NumPy integers count (np.prod gives them); bools do not, though Python calls them ints
            sequence = isinstance(sizes, (tuple, list)) and len(sizes) > 0
            return sequence and all(is_int(s) and s >= 1 for s in sizes)

        check_arg("Reshape", "shape", shape, valid, "a tuple of integers >= 1", None)
        self.shape = tuple(int(s) for s in shape)  # plain ints: config() is written to JSON

    def forward(self, x: np.ndarray) -> np.ndarray:
        if x.ndim < 1 or math.prod(x.shape[1:]) != math.prod(self.shape):
            raise ShapeError(
                f"Reshape expects (N, ...) with {math.prod(self.shape)} values per example "
                f"(to reshape to {self.shape}), got shape {x.shape}"
            )
        self.x_shape = x.shape
        return x.reshape(x.shape[0], *self.shape)

    def backward(self, dy: np.ndarray) -> np.ndarray:
        return dy.reshape(self.x_shape)

    def config(self) -> dict:
        return {"shape": list(self.shape)}
