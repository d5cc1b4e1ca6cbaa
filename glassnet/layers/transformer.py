"""The Transformer encoder block: attention and a feed-forward network, each inside a residual
connection with layer normalization (PyTorch's ``nn.TransformerEncoderLayer``, batch-first).

The block is made of other layers, its ``children``; its backward calls theirs by hand. A
residual sum r = x + f(x) sends r's error down both paths, so x's error is the sum
dx = dr + f.backward(dr) (the sum over paths of the notes' "index i is no longer fixed"):
every such sum is written out below.
"""

from __future__ import annotations

import numpy as np

from ..module import Module, as_rng, check_arg, float_dtype
from ._shapes import size
from .activations import GELU, ReLU
from .attention import MultiheadAttention
from .dropout import Dropout
from .linear import Linear
from .norm import LayerNorm

ACTIVATIONS = {"relu": ReLU, "gelu": GELU}


class TransformerEncoderLayer(Module):
    """Self-attention then a two-layer feed-forward network, each with a residual connection
    and layer normalization (PyTorch's ``nn.TransformerEncoderLayer(..., batch_first=True)``,
    same arguments and defaults, ``activation`` "relu" or "gelu" (exact, erf form)), plus
    ``causal=True`` (``MultiheadAttention``'s: every position attends to itself and earlier ones
    only, for a language model written as a ``Sequential``).

    Post-norm (``norm_first=False``, the 2017 paper and PyTorch's default):
        x1 = norm1(x + dropout1(self_attn(x)))
        y  = norm2(x1 + dropout2(ff(x1))),    ff(u) = linear2(dropout(act(linear1(u))))
    Pre-norm (``norm_first=True``, which trains deep stacks more stably):
        x1 = x + dropout1(self_attn(norm1(x)))
        y  = x1 + dropout2(ff(norm2(x1)))

    The children, in this order, give the parameter names (``"0.in_proj_weight"``, ``"1.W"``):
    self_attn, linear1, linear2, norm1, norm2, dropout, dropout1, dropout2, activation. As
    everywhere in glassnet, ``linear1.W`` is the transpose of PyTorch's ``linear1.weight``.

    Shapes: x (N, T, d_model) -> y (N, T, d_model); ``src_mask`` and ``src_key_padding_mask``
    as ``MultiheadAttention``'s ``attn_mask`` and ``key_padding_mask``.
    Backward, with ff' the feed-forward's backward and delta = dy:
        post-norm:  dr2 = norm2'(delta),  dx1 = dr2 + ff'(dr2),
                    dr1 = norm1'(dx1),    dx = dr1 + self_attn'(dropout1'(dr1))
        pre-norm:   dx1 = delta + norm2'(ff'(delta)),
                    dx = dx1 + norm1'(self_attn'(dropout1'(dx1)))
    where ff'(d) = linear1'(act'(dropout'(linear2'(dropout2'(d))))).
    """

    sums_paths = (
        "residuals x + attention(x) and h + feed-forward(h): a path around each, in the forward and "
        "in dC/dx (see its Backward)"
    )

    def __init__(
        self,
        d_model: int,
        nhead: int,
        dim_feedforward: int = 2048,
        dropout: float = 0.1,
        activation: str = "relu",
        layer_norm_eps: float = 1e-5,
        norm_first: bool = False,
        bias: bool = True,
        causal: bool = False,
        rng: np.random.Generator | int | None = None,
        dtype=np.float32,
    ) -> None:
        super().__init__()
        d_model = size("TransformerEncoderLayer", "d_model", d_model, high=2**20)
        dim_feedforward = size("TransformerEncoderLayer", "dim_feedforward", dim_feedforward, high=2**24)
        check_arg(
            "TransformerEncoderLayer", "dropout", dropout, lambda v: 0.0 <= v < 1.0, "a probability in [0, 1)"
        )
        if activation not in ACTIVATIONS:
            raise ValueError(
                f"TransformerEncoderLayer: activation must be 'relu' or 'gelu', got {activation!r}"
            )
        rng, dtype = as_rng(rng, "TransformerEncoderLayer"), float_dtype(dtype, "TransformerEncoderLayer")
        self.d_model, self.nhead, self.dim_feedforward = d_model, nhead, dim_feedforward
        self.dropout_p, self.activation_name = float(dropout), activation
        self.layer_norm_eps, self.norm_first, self.bias = float(layer_norm_eps), bool(norm_first), bool(bias)
        self.causal = bool(causal)
        self.self_attn = MultiheadAttention(
            d_model, nhead, dropout=dropout, bias=bias, causal=causal, rng=rng, dtype=dtype
        )
        self.linear1 = Linear(d_model, dim_feedforward, bias=bias, rng=rng, dtype=dtype)
        self.linear2 = Linear(dim_feedforward, d_model, bias=bias, rng=rng, dtype=dtype)
        self.norm1 = LayerNorm(d_model, eps=layer_norm_eps, bias=bias, dtype=dtype)
        self.norm2 = LayerNorm(d_model, eps=layer_norm_eps, bias=bias, dtype=dtype)
        self.dropout, self.dropout1, self.dropout2 = (Dropout(dropout, rng=rng) for _ in range(3))
        self.activation = ACTIVATIONS[activation]()
        self.children = [
            self.self_attn,
            self.linear1,
            self.linear2,
            self.norm1,
            self.norm2,
            self.dropout,
            self.dropout1,
            self.dropout2,
            self.activation,
        ]

    def forward(self, x: np.ndarray, src_mask=None, src_key_padding_mask=None) -> np.ndarray:
        def attend(u):
            a = self.self_attn.forward(u, key_padding_mask=src_key_padding_mask, attn_mask=src_mask)
            return self.dropout1.forward(a)

        if self.norm_first:
            x1 = x + attend(self.norm1.forward(x))
            return x1 + self._ff(self.norm2.forward(x1))
        x1 = self.norm1.forward(x + attend(x))
        return self.norm2.forward(x1 + self._ff(x1))

    def _ff(self, u: np.ndarray) -> np.ndarray:
        """dropout2(linear2(dropout(act(linear1(u)))))"""
        h = self.dropout.forward(self.activation.forward(self.linear1.forward(u)))
        return self.dropout2.forward(self.linear2.forward(h))

    def _ff_backward(self, d: np.ndarray) -> np.ndarray:
        d = self.linear2.backward(self.dropout2.backward(d))
        return self.linear1.backward(self.activation.backward(self.dropout.backward(d)))

    def _attn_backward(self, d: np.ndarray) -> np.ndarray:
        return self.self_attn.backward(self.dropout1.backward(d))

    def backward(self, dy: np.ndarray) -> np.ndarray:
        if self.norm_first:
            dx1 = dy + self.norm2.backward(self._ff_backward(dy))  # x1 feeds the sum and ff
            return dx1 + self.norm1.backward(self._attn_backward(dx1))  # x feeds the sum and attention
        dr2 = self.norm2.backward(dy)
        dx1 = dr2 + self._ff_backward(dr2)
        dr1 = self.norm1.backward(dx1)
        return dr1 + self._attn_backward(dr1)

    def config(self) -> dict:
        return {
            "d_model": self.d_model,
            "nhead": self.nhead,
            "dim_feedforward": self.dim_feedforward,
            "dropout": self.dropout_p,
            "activation": self.activation_name,
            "layer_norm_eps": self.layer_norm_eps,
            "norm_first": self.norm_first,
            "bias": self.bias,
            "causal": self.causal,
        }

    @classmethod
    def state_shapes(
        cls, d_model, nhead=1, dim_feedforward=2048, bias=True, **_
    ) -> dict[str, tuple[int, ...]]:
        """Every parameter of the children, under their names (``"1.W"``), from the config
        alone: a file is checked against them before the block allocates its children."""
        name = "TransformerEncoderLayer"
        d = size(name, "d_model", d_model, high=2**20)
        f = size(name, "dim_feedforward", dim_feedforward, high=2**24)
        parts = [
            MultiheadAttention.state_shapes(embed_dim=d, bias=bias),
            Linear.state_shapes(in_features=d, out_features=f, bias=bias),
            Linear.state_shapes(in_features=f, out_features=d, bias=bias),
            LayerNorm.state_shapes(normalized_shape=d, bias=bias),
            LayerNorm.state_shapes(normalized_shape=d, bias=bias),
        ]
        return {f"{i}.{k}": shape for i, part in enumerate(parts) for k, shape in part.items()}
