"""PyTorch modules for the glassnet layers that ``torch.nn`` has no module for, used by
``gn.to_torch`` and understood by ``gn.from_torch``.

Each class computes what the glassnet layer of the same name computes, in torch operations, and
holds its parameters under the names ``glassnet.torch_interop`` gives them (``weight`` for the
embeddings, ``block``/``shortcut`` for a residual's children, the node names for a graph's). This
module imports torch at the top: only ``torch_interop``'s functions import it, so ``import
glassnet`` never needs torch.
"""

from __future__ import annotations

import math

import torch
from torch import nn


class Reshape(nn.Module):
    """glassnet's ``Reshape(shape)``: (N, ...) -> (N, *shape)."""

    def __init__(self, shape) -> None:
        super().__init__()
        self.shape = tuple(shape)

    def forward(self, x):
        return x.reshape(x.shape[0], *self.shape)


class Permute(nn.Module):
    """glassnet's ``Permute(dims)``: the axes of the whole batch reordered (batch axis included)."""

    def __init__(self, dims) -> None:
        super().__init__()
        self.dims = tuple(dims)

    def forward(self, x):
        return x.permute(*self.dims)


class Token(nn.Module):
    """glassnet's ``Token(index)``: ``x[:, index]`` of a (N, T, E) sequence."""

    def __init__(self, index: int = 0) -> None:
        super().__init__()
        self.index = index

    def forward(self, x):
        return x[:, self.index]


class TokenMean(nn.Module):
    """glassnet's ``TokenMean``: the mean over the tokens, (N, T, E) -> (N, E)."""

    def forward(self, x):
        return x.mean(dim=1)


class LastStep(nn.Module):
    """glassnet's ``LastStep``: ``x[:, -1]``, the last step of a sequence."""

    def forward(self, x):
        return x[:, -1]


class GlobalAvgPool2d(nn.Module):
    """glassnet's ``GlobalAvgPool2d``: the mean of each feature map, (N, C, H, W) -> (N, C)."""

    def forward(self, x):
        return x.mean(dim=(2, 3))


class GlobalMaxPool2d(nn.Module):
    """glassnet's ``GlobalMaxPool2d``: the largest unit of each feature map, (N, C)."""

    def forward(self, x):
        return x.amax(dim=(2, 3))


class GaussianDropout(nn.Module):
    """glassnet's (Keras') ``GaussianDropout(rate)``: x times N(1, rate / (1 - rate)) noise in
    training, the identity in eval."""

    def __init__(self, rate: float = 0.5) -> None:
        super().__init__()
        self.rate = rate

    def forward(self, x):
        if not self.training or self.rate == 0.0:
            return x
        sigma = math.sqrt(self.rate / (1.0 - self.rate))
        return x * (1.0 + sigma * torch.randn_like(x))


class Add(nn.Module):
    """glassnet's ``Add``: the broadcasting sum of its inputs."""

    def forward(self, *xs):
        y = xs[0]
        for x in xs[1:]:
            y = y + x
        return y


class Multiply(nn.Module):
    """glassnet's ``Multiply``: the broadcasting product of its inputs."""

    def forward(self, *xs):
        y = xs[0]
        for x in xs[1:]:
            y = y * x
        return y


class Concat(nn.Module):
    """glassnet's ``Concat(axis)``: ``torch.cat`` of its inputs."""

    def __init__(self, axis: int = 1) -> None:
        super().__init__()
        self.axis = axis

    def forward(self, *xs):
        return torch.cat(xs, dim=self.axis)


class PositionalEmbedding(nn.Module):
    """glassnet's ``PositionalEmbedding``: ``x + weight[:T]``, weight (num_positions, embedding_dim)."""

    def __init__(self, num_positions: int, embedding_dim: int, dtype=None) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(num_positions, embedding_dim, dtype=dtype))

    def forward(self, x):
        return x + self.weight[: x.shape[1]]


class ClassToken(nn.Module):
    """glassnet's ``ClassToken``: ``weight`` (1, 1, E) prepended to every sequence."""

    def __init__(self, embedding_dim: int, dtype=None) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(1, 1, embedding_dim, dtype=dtype))

    def forward(self, x):
        return torch.cat([self.weight.expand(x.shape[0], 1, -1), x], dim=1)


def _causal(t: int, device) -> torch.Tensor:
    return torch.triu(torch.ones(t, t, dtype=torch.bool, device=device), diagonal=1)


class MultiheadAttention(nn.MultiheadAttention):
    """``nn.MultiheadAttention`` (batch_first) as glassnet's layer: ``forward(q)`` is
    self-attention and returns the output only, so it works inside ``nn.Sequential``;
    ``forward(q, k, v)`` is cross-attention; ``causal=True`` adds the causal mask."""

    def __init__(self, embed_dim, num_heads, dropout=0.0, bias=True, causal=False, dtype=None,
                 kdim=None, vdim=None) -> None:  # fmt: skip
        super().__init__(embed_dim, num_heads, dropout=dropout, bias=bias, batch_first=True, dtype=dtype,
                         kdim=kdim, vdim=vdim)  # fmt: skip
        self.causal = causal

    def forward(self, q, k=None, v=None, attn_mask=None, key_padding_mask=None):
        k = q if k is None else k
        v = q if v is None else v
        if self.causal:
            causal = _causal(q.shape[1], q.device)
            attn_mask = causal if attn_mask is None else attn_mask | causal
        y, _ = super().forward(
            q, k, v, attn_mask=attn_mask, key_padding_mask=key_padding_mask, need_weights=False
        )
        return y


class CausalTransformerEncoderLayer(nn.TransformerEncoderLayer):
    """``nn.TransformerEncoderLayer`` (batch_first) with glassnet's ``causal=True``: the causal
    mask applied at every forward (PyTorch's constructor has no such flag)."""

    def forward(self, src, src_mask=None, src_key_padding_mask=None, is_causal=False):
        causal = _causal(src.shape[1], src.device)
        mask = causal if src_mask is None else src_mask | causal
        return super().forward(src, src_mask=mask, src_key_padding_mask=src_key_padding_mask)


class _OutputOnly:
    """A recurrent layer that returns its output sequence only, as glassnet's do (torch's return
    ``(output, h_n)``, which the next layer of an ``nn.Sequential`` cannot take)."""

    def forward(self, x, hx=None):
        return super().forward(x, hx)[0]


class RNN(_OutputOnly, nn.RNN):
    """``nn.RNN`` (batch_first) returning the output sequence only."""


class GRU(_OutputOnly, nn.GRU):
    """``nn.GRU`` (batch_first) returning the output sequence only."""


class LSTM(_OutputOnly, nn.LSTM):
    """``nn.LSTM`` (batch_first) returning the output sequence only."""


class Residual(nn.Module):
    """glassnet's ``Residual``: ``block(x) + shortcut(x)``, the shortcut the identity if None."""

    def __init__(self, block: nn.Module, shortcut: nn.Module | None = None) -> None:
        super().__init__()
        self.block = block
        self.shortcut = shortcut

    def forward(self, x):
        return self.block(x) + (x if self.shortcut is None else self.shortcut(x))


class Graph(nn.Module):
    """glassnet's ``Graph``: named nodes, each a module applied to earlier nodes or inputs; the
    node modules are children under their node names (``h.weight``)."""

    def __init__(self, inputs: list[str], nodes: list[tuple[str, nn.Module, list[str]]], outputs):
        super().__init__()
        self.graph_inputs = list(inputs)
        self.graph_output = outputs if isinstance(outputs, str) else list(outputs)
        self.wiring = [(name, list(sources)) for name, _, sources in nodes]
        for name, module, _ in nodes:
            if hasattr(self, name):
                raise ValueError(
                    f"torch_modules.Graph: node {name!r} has the name of an nn.Module attribute; rename it"
                )
            self.add_module(name, module)

    def forward(self, *xs):
        values = dict(zip(self.graph_inputs, xs))
        for name, sources in self.wiring:
            values[name] = getattr(self, name)(*(values[s] for s in sources))
        if isinstance(self.graph_output, str):
            return values[self.graph_output]
        return tuple(values[name] for name in self.graph_output)
