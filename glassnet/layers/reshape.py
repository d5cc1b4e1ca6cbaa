"""Layers that only move numbers around."""

from __future__ import annotations

import math

import numpy as np

from ..module import Module, ShapeError, check_arg, is_int


class Flatten(Module):
    """Keep the batch axis, flatten the rest (``nn.Flatten()``, its default start_dim=1 and
    end_dim=-1, the only ones it takes).

    Shapes: x (N, *) -> y (N, prod(*)), at least 2 dims: a single vector (L,) is refused (as
    PyTorch), not read as a batch of L scalars.
    Backward: dx = dy reshaped to x's shape (a reshape has identity Jacobian).
    """

    def forward(self, x: np.ndarray) -> np.ndarray:
        if x.ndim < 2:
            raise ShapeError(
                f"Flatten expects a batch (N, d1, ...) of at least 2 dims (it keeps axis 0, the batch, "
                f"and flattens the rest), got shape {x.shape}"
            )
        self.x_shape = x.shape
        # the row size spelled out, not -1: NumPy cannot infer -1 from a batch of zero rows
        return x.reshape(x.shape[0], math.prod(x.shape[1:]))

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


class Permute(Module):
    """Reorder the axes: ``y = x.transpose(dims)``, ``dims`` over every axis, the batch axis
    first and staying first (torchvision's ``ops.Permute``; ``x.permute(dims)`` in PyTorch).
    ``Permute((0, 2, 1))`` turns a patch embedding's (N, E, P) into tokens (N, P, E).

    Shapes: x (N, d_1, ..., d_k) -> y (N, d_dims[1], ..., d_dims[k]).
    Backward: dx = dy transposed by the inverse permutation (argsort(dims)).
    """

    def __init__(self, dims: tuple[int, ...]) -> None:
        super().__init__()

        def valid(d) -> bool:
            sequence = isinstance(d, (tuple, list)) and len(d) >= 2 and all(is_int(a) for a in d)
            return sequence and sorted(d) == list(range(len(d))) and d[0] == 0

        check_arg("Permute", "dims", dims, valid, "a permutation of 0..k-1 starting with 0 (the batch)", None)
        self.dims = tuple(int(a) for a in dims)
        self.inverse = tuple(int(a) for a in np.argsort(self.dims))

    def forward(self, x: np.ndarray) -> np.ndarray:
        if x.ndim != len(self.dims):
            raise ShapeError(f"Permute({list(self.dims)}) expects {len(self.dims)} axes, got shape {x.shape}")
        return x.transpose(self.dims)

    def backward(self, dy: np.ndarray) -> np.ndarray:
        return dy.transpose(self.inverse)

    def config(self) -> dict:
        return {"dims": list(self.dims)}


class Token(Module):
    """One token of each sequence, ``y = x[:, index]``: the class token ``Token(0)`` after a
    ``ClassToken`` layer (the ViT's head), or the last position ``Token(-1)`` (as ``LastStep``).

    Shapes: x (N, T, E) -> y (N, E).
    Backward: dx = 0 everywhere except dx[:, index] = dy.
    """

    def __init__(self, index: int = 0) -> None:
        super().__init__()
        self.index = int(check_arg("Token", "index", index, lambda v: True, "an integer", int))

    def forward(self, x: np.ndarray) -> np.ndarray:
        if x.ndim != 3 or not -x.shape[1] <= self.index < x.shape[1]:
            raise ShapeError(
                f"Token({self.index}) expects a sequence (N, T, E) with T > {self.index}, got {x.shape}"
            )
        self.x_shape = x.shape
        return x[:, self.index]

    def backward(self, dy: np.ndarray) -> np.ndarray:
        dx = np.zeros(self.x_shape, dy.dtype)
        dx[:, self.index] = dy
        return dx

    def config(self) -> dict:
        return {"index": self.index}


class TokenMean(Module):
    """The mean over the tokens of each sequence, ``y = x.mean(axis=1)`` (a ViT's or a text
    classifier's pooling, instead of a class token).

    Shapes: x (N, T, E) -> y (N, E).
    Backward: dx[:, t] = dy / T for every t (each token has weight 1/T in the mean).
    """

    def forward(self, x: np.ndarray) -> np.ndarray:
        if x.ndim != 3 or x.shape[1] < 1:
            raise ShapeError(f"TokenMean expects a sequence (N, T, E) with T >= 1, got shape {x.shape}")
        self.x_shape = x.shape
        return x.mean(axis=1)

    def backward(self, dy: np.ndarray) -> np.ndarray:
        dx = np.empty(self.x_shape, dy.dtype)
        dx[...] = (dy * (1.0 / self.x_shape[1]))[:, None, :]
        return dx
