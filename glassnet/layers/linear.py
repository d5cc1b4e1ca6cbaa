"""The fully connected layer."""

from __future__ import annotations

import numpy as np

from .. import init as initializers
from ..module import Module, Param, ShapeError, as_rng, by_row_vector, check_arg, float_dtype
from ._shapes import size


class Linear(Module):
    """Affine map ``y = x @ W + b`` over the last axis (PyTorch's ``nn.Linear``).

    ``W`` has shape ``(in_features, out_features)``, batch-first, so a whole mini-batch is one
    matrix product; PyTorch's weight is the transpose ``(out, in)``. In memory ``W`` is
    column-major, the same bytes as PyTorch's row-major ``(out, in)``: OpenBLAS's kernels for
    a small batch times a column-major matrix read ``W`` contiguously (large shapes: no
    difference; ``bench_layers.py`` and ``bench_train.py --workload book`` measure it).
    Default init is PyTorch's (``init="torch_default"``); any name of ``gn.init`` works, e.g.
    ``"he_normal"`` for ReLU nets or ``"book_normal"`` for the book's chapter 3 networks.

    Shapes: x (N, *, in_features) -> y (N, *, out_features).

    Backward, with delta = dy (the layer's output error, already Hadamard-multiplied by
    sigma'(z) by the activation above):
        dW += x^T delta   (BP4: dC/dw_jk = a_k delta_j, summed over the batch)
        db += sum_n delta (BP3)
        dx  = delta W^T   (the W^T delta of BP2)
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        init: str = "torch_default",
        rng: np.random.Generator | int | None = None,
        dtype=np.float32,
    ) -> None:
        super().__init__()
        check_arg("Linear", "in_features", in_features, lambda v: v >= 1, "an integer >= 1", int)
        check_arg("Linear", "out_features", out_features, lambda v: v >= 1, "an integer >= 1", int)
        in_features, out_features, dtype = int(in_features), int(out_features), float_dtype(dtype, "Linear")
        self.in_features, self.out_features, self.init = in_features, out_features, init
        initializers.get(init)
        self.W = Param(np.empty((in_features, out_features), dtype, order="F"), "W")
        self.b = Param(np.empty(out_features, dtype), "b", decay=False) if bias else None
        self.params = [self.W] if self.b is None else [self.W, self.b]
        self.reset_parameters(as_rng(rng, "Linear"))

    def reset_parameters(self, rng: np.random.Generator) -> Linear:
        dtype = self.W.data.dtype
        self.W.data[...] = initializers.get(self.init)(self.W.shape, rng, dtype)
        if self.b is not None:
            self.b.data[...] = initializers.bias_init(self.init, self.in_features, self.b.shape, rng, dtype)
        return self

    def forward(self, x: np.ndarray) -> np.ndarray:
        if x.ndim < 2 or x.shape[-1] != self.in_features:
            raise ShapeError(f"Linear expects input (N, ..., {self.in_features}), got shape {x.shape}")
        self.x = x
        flat = x.ndim == 2  # else (N, T, in): one product over all N T rows (NumPy makes one per example)
        y = (x if flat else x.reshape(-1, self.in_features)) @ self.W.data
        if self.b is not None:
            by_row_vector(np.add, y, self.b.data, out=y)  # y += b
        return y if flat else y.reshape(*x.shape[:-1], self.out_features)

    def backward_params(self, dy: np.ndarray) -> None:
        x, dy = self.x, dy
        if x.ndim > 2:  # (N, T, in): every position is one more row of the batch
            x, dy = x.reshape(-1, self.in_features), dy.reshape(-1, self.out_features)
        self.W.add_product(x.T, dy)  # BP4: dW += x^T delta
        if self.b is not None:
            self.b.add_sum(dy)  # BP3: db += sum_n delta

    def backward(self, dy: np.ndarray) -> np.ndarray:
        self.backward_params(dy)
        if dy.ndim > 2:  # as in forward: one product over all rows
            dx = dy.reshape(-1, self.out_features) @ self.W.data.T
            return dx.reshape(*dy.shape[:-1], self.in_features)
        return dy @ self.W.data.T  # BP2, before the activation's Hadamard product

    def config(self) -> dict:
        return {
            "in_features": self.in_features,
            "out_features": self.out_features,
            "bias": self.b is not None,
            "init": self.init,
        }

    @classmethod
    def state_shapes(cls, in_features, out_features, bias=True, **_) -> dict[str, tuple[int, ...]]:
        n_in, n_out = size("Linear", "in_features", in_features), size("Linear", "out_features", out_features)
        return {"W": (n_in, n_out), "b": (n_out,)} if bias else {"W": (n_in, n_out)}
