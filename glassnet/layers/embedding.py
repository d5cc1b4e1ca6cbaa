"""Tables of learned vectors: ``Embedding`` (a vector per token id), ``PositionalEmbedding`` (a
vector per position, added) and ``ClassToken`` (one learned token, prepended).

An embedding is a ``Linear`` layer without bias applied to a one-hot input: ``W[i]`` is
``onehot(i) @ W``. So BP4 holds as for ``Linear`` (dW = x^T delta with x one-hot), and the
product with a one-hot matrix is a row lookup forward and a scatter-add backward: row i of dW
collects the delta of every position that holds token i.
"""

from __future__ import annotations

import numpy as np

from ..module import Module, Param, ShapeError, as_rng, check_arg, float_dtype
from ._shapes import size


class Embedding(Module):
    """A lookup table of ``num_embeddings`` vectors of size ``embedding_dim`` (PyTorch's
    ``nn.Embedding``): token ids in, vectors out. ``weight`` (num_embeddings, embedding_dim) is
    drawn from N(0, 1), as PyTorch; the row at ``padding_idx`` (negative counts from the end,
    as PyTorch) starts at zero and receives no gradient, so padding stays a zero vector.

    The input is integer ids, which have no gradient: ``backward(dy)`` accumulates ``dW`` and
    returns None, and ``backward_params`` does the same. An ``Embedding`` goes first in a
    network (``gn.Sequential(gn.Embedding(...), ...)``): ``Sequential``'s backward then returns
    None, and ``train_step``/``fit`` never ask the first trainable layer for an input gradient.
    ``fit``, ``evaluate``, ``predict`` and ``train_step`` keep a model's integer inputs as they
    are when its first layer is an ``Embedding`` (``integer_input``); floats holding whole
    numbers are accepted as ids too (float32 holds every id below 2^24 exactly), any other
    float is refused. PyTorch accepts integer tensors only.

    Shapes: x (N, *) integer ids in [0, num_embeddings) -> y (N, *, embedding_dim).
    Backward: dW[i] += sum of delta over the positions p with x_p = i (BP4 with a one-hot
    input: a scatter-add), except i = padding_idx; no dx (integers).
    """

    integer_input = True  # fit/evaluate/predict keep a model's integer inputs for it

    def __init__(
        self,
        num_embeddings: int,
        embedding_dim: int,
        padding_idx: int | None = None,
        rng: np.random.Generator | int | None = None,
        dtype=np.float32,
    ) -> None:
        super().__init__()
        self.num_embeddings = size("Embedding", "num_embeddings", num_embeddings)
        self.embedding_dim = size("Embedding", "embedding_dim", embedding_dim)
        if padding_idx is not None:
            n = self.num_embeddings
            check_arg(
                "Embedding", "padding_idx", padding_idx, lambda v: -n <= v < n, f"in [-{n}, {n}) or None", int
            )
            padding_idx = int(padding_idx) % n
        self.padding_idx = padding_idx
        dtype = float_dtype(dtype, "Embedding")
        self.weight = Param(np.empty((self.num_embeddings, self.embedding_dim), dtype), "weight")
        self.params = [self.weight]
        self.reset_parameters(as_rng(rng, "Embedding"))

    def reset_parameters(self, rng: np.random.Generator) -> Embedding:
        self.weight.data[...] = rng.standard_normal(self.weight.shape)
        if self.padding_idx is not None:
            self.weight.data[self.padding_idx] = 0.0
        return self

    def forward(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x)
        if x.dtype.kind == "f" and np.isfinite(x).all() and np.array_equal(x, np.trunc(x)):
            # ids passed as floats (a float array of whole numbers): back to integers
            x = x.astype(np.int64)
        if x.dtype.kind not in "iu" or x.ndim < 1:
            held = " holding non-integer values" if x.dtype.kind == "f" else ""
            raise ShapeError(
                f"Embedding expects integer token ids (N, ...), got {x.dtype} of shape {x.shape}{held}"
            )
        if x.size and (x.min() < 0 or x.max() >= self.num_embeddings):
            raise ShapeError(
                f"Embedding: token ids must be in [0, {self.num_embeddings}), got values in "
                f"[{x.min()}, {x.max()}]"
            )
        self.ids = x
        return self.weight.data[x]

    def backward(self, dy: np.ndarray) -> None:
        """dW += the scatter-add of delta; returns None: integer ids have no gradient."""
        ids, rows = self.ids.reshape(-1), dy.reshape(-1, self.embedding_dim)
        if self.padding_idx is not None:  # the padding row takes no gradient (PyTorch)
            keep = ids != self.padding_idx
            ids, rows = ids[keep], rows[keep]
        np.add.at(self.weight.grad, ids, rows)  # repeated ids add up, as the one-hot product does
        return None

    def backward_params(self, dy: np.ndarray) -> None:
        self.backward(dy)

    def config(self) -> dict:
        return {
            "num_embeddings": self.num_embeddings,
            "embedding_dim": self.embedding_dim,
            "padding_idx": self.padding_idx,
        }

    @classmethod
    def state_shapes(cls, num_embeddings, embedding_dim, **_) -> dict[str, tuple[int, ...]]:
        n = size("Embedding", "num_embeddings", num_embeddings)
        return {"weight": (n, size("Embedding", "embedding_dim", embedding_dim))}


class PositionalEmbedding(Module):
    """A learned vector per position, added to a sequence of tokens: ``y[:, t] = x[:, t] + W[t]``
    (the ViT's and GPT-2's position embedding; PyTorch users write ``x + self.pos[:, :T]``).
    ``weight`` (num_positions, embedding_dim) is drawn from N(0, 0.02^2), as torchvision's ViT.
    Sequences may be shorter than ``num_positions``: the first T rows are used.

    Shapes: x (N, T, embedding_dim), T <= num_positions -> y of the same shape.
    Backward: dW[:T] += sum_n delta (BP3: W is a bias per position); dx = delta.
    """

    def __init__(
        self,
        num_positions: int,
        embedding_dim: int,
        rng: np.random.Generator | int | None = None,
        dtype=np.float32,
    ) -> None:
        super().__init__()
        self.num_positions = size("PositionalEmbedding", "num_positions", num_positions)
        self.embedding_dim = size("PositionalEmbedding", "embedding_dim", embedding_dim)
        dtype = float_dtype(dtype, "PositionalEmbedding")
        self.weight = Param(np.empty((self.num_positions, self.embedding_dim), dtype), "weight", decay=False)
        self.params = [self.weight]
        self.reset_parameters(as_rng(rng, "PositionalEmbedding"))

    def reset_parameters(self, rng: np.random.Generator) -> PositionalEmbedding:
        self.weight.data[...] = rng.standard_normal(self.weight.shape) * 0.02
        return self

    def forward(self, x: np.ndarray) -> np.ndarray:
        if x.ndim != 3 or x.shape[1] > self.num_positions or x.shape[2] != self.embedding_dim:
            raise ShapeError(
                f"PositionalEmbedding expects (N, T, {self.embedding_dim}) with T <= {self.num_positions}, "
                f"got shape {x.shape}"
            )
        self.length = x.shape[1]
        return x + self.weight.data[: self.length]

    def backward(self, dy: np.ndarray) -> np.ndarray:
        self.backward_params(dy)
        return dy

    def backward_params(self, dy: np.ndarray) -> None:
        self.weight.grad[: self.length] += dy.sum(axis=0)  # BP3, per position

    def config(self) -> dict:
        return {"num_positions": self.num_positions, "embedding_dim": self.embedding_dim}

    @classmethod
    def state_shapes(cls, num_positions, embedding_dim, **_) -> dict[str, tuple[int, ...]]:
        t = size("PositionalEmbedding", "num_positions", num_positions)
        return {"weight": (t, size("PositionalEmbedding", "embedding_dim", embedding_dim))}


class ClassToken(Module):
    """Prepend one learned token to every sequence (the ViT's class token, whose output a
    ``Token(0)`` layer then takes for the classifier head). ``weight`` (1, 1, embedding_dim) starts
    at zero, as torchvision's ViT (the position embedding added after it makes it distinct).

    Shapes: x (N, T, embedding_dim) -> y (N, T + 1, embedding_dim), y[:, 0] the token.
    Backward: dW += sum_n delta[:, 0] (BP3: a bias that only position 0 sees); dx = delta[:, 1:].
    """

    def __init__(self, embedding_dim: int, dtype=np.float32) -> None:
        super().__init__()
        self.embedding_dim = size("ClassToken", "embedding_dim", embedding_dim)
        dtype = float_dtype(dtype, "ClassToken")
        self.weight = Param(np.zeros((1, 1, self.embedding_dim), dtype), "weight", decay=False)
        self.params = [self.weight]

    def reset_parameters(self, rng: np.random.Generator | None = None) -> ClassToken:
        """Zero, as torchvision (``rng`` is unused)."""
        self.weight.data[...] = 0.0
        return self

    def forward(self, x: np.ndarray) -> np.ndarray:
        if x.ndim != 3 or x.shape[2] != self.embedding_dim:
            raise ShapeError(f"ClassToken expects (N, T, {self.embedding_dim}), got shape {x.shape}")
        y = np.empty((x.shape[0], x.shape[1] + 1, x.shape[2]), np.result_type(x, self.weight.data))
        y[:, 0] = self.weight.data[0]
        y[:, 1:] = x
        return y

    def backward(self, dy: np.ndarray) -> np.ndarray:
        self.backward_params(dy)
        return dy[:, 1:]

    def backward_params(self, dy: np.ndarray) -> None:
        self.weight.grad[0, 0] += dy[:, 0].sum(axis=0)

    def config(self) -> dict:
        return {"embedding_dim": self.embedding_dim}

    @classmethod
    def state_shapes(cls, embedding_dim, **_) -> dict[str, tuple[int, ...]]:
        return {"weight": (1, 1, size("ClassToken", "embedding_dim", embedding_dim))}
