"""Layers that only move numbers around."""

from __future__ import annotations

import numpy as np

from ..module import Module, ShapeError


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
