"""PyTorch references: the same computation as a glassnet layer, loss or regularizer, in torch.

Every row of the case table (``glassnet.cases.CASES``) holds one of these functions in its
``torch`` field, and the tests compare glassnet with it in float64: the output, the input
gradient and every parameter gradient. A reference builds the torch computation from the
glassnet object, with the same parameters copied in:

- layers: ``ref(layer, x) -> (y, params)`` (``ref(layer, *xs)`` for a layer with several
  inputs), ``x`` a torch tensor, ``params`` the torch
  parameters keyed by glassnet parameter name (so their ``.grad`` can be compared); a layer
  with buffers returns ``(y, params, buffers)``, torch's buffers keyed by glassnet name;
- losses: ``ref(loss, pred, target) -> scalar``, ``pred`` a torch tensor, ``target`` as given to
  glassnet;
- regularizers: ``ref(regularizer, weights) -> scalar``, ``weights`` the torch tensors of the
  parameters with ``decay=True`` (the documented formula: torch has no such module).

torch is not a dependency of glassnet: each function imports it when called, never at import,
so the table can live in the library and ``import glassnet`` works without torch.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import numpy as np

from . import layers as L
from .module import Module

# --- the one place where glassnet and torch layouts differ -----------------------------------


def torch_layout(layer: Module, name: str, a: np.ndarray) -> np.ndarray:
    """A glassnet parameter (or its gradient) in the layout of the torch parameter it maps to.

    glassnet is batch-first everywhere: ``Linear`` stores ``W`` as (in_features, out_features)
    and computes ``y = x @ W + b``, so a mini-batch is one product with no transpose. PyTorch's
    ``nn.Linear`` stores ``weight`` as (out_features, in_features) and computes
    ``x @ weight.T + bias``, so ``weight = W.T``. Every other parameter has the same layout in
    both libraries. Used both to copy parameters into torch and to compare gradients.

    Recurrent layers (``RNN``, ``GRU``, ``LSTM``) follow the same rule: their input and hidden
    weights ``W_x_l{k}{_reverse}`` (in, G H) and ``W_h_l{k}{_reverse}`` (H, G H) multiply from
    the right, so PyTorch's ``weight_ih_l{k}{_reverse}`` and ``weight_hh_l{k}{_reverse}`` are
    their transposes; the gate blocks are in PyTorch's order and the biases are the same.
    A parameter of a child module (``"0.W_x_l0"``, a graph node's ``"h.W"``) is looked up in
    that child.
    """
    head, dot, rest = name.partition(".")
    children = dict(layer.named_children())
    if dot and head in children:
        return torch_layout(children[head], rest, a)
    if isinstance(layer, L.Linear) and name == "W":
        return a.T
    if isinstance(layer, (L.RNN, L.GRU, L.LSTM)) and name.startswith("W_"):
        return a.T
    return a


# glassnet parameter name -> torch attribute name
TORCH_NAMES = {"W": "weight", "b": "bias", "weight": "weight", "bias": "bias"}
# recurrent parameters: the prefix maps, the layer/direction suffix ("_l1_reverse") is the same
RECURRENT_NAMES = {"W_x": "weight_ih", "W_h": "weight_hh", "b_x": "bias_ih", "b_h": "bias_hh"}


def torch_name(name: str) -> str:
    """The torch attribute name of a glassnet parameter name (``"W_x_l1"`` -> ``"weight_ih_l1"``)."""
    if name[:3] in RECURRENT_NAMES:
        return RECURRENT_NAMES[name[:3]] + name[3:]
    return TORCH_NAMES[name]


def load_params(layer: Module, module) -> dict[str, object]:
    """Copy ``layer``'s parameters into the torch ``module``; return them by glassnet name."""
    import torch

    params = {}
    with torch.no_grad():
        for name, p in layer.named_parameters():
            tp = getattr(module, torch_name(name))
            tp.copy_(torch.from_numpy(np.ascontiguousarray(torch_layout(layer, name, p.data))))
            params[name] = tp
    if len(params) != len(list(module.parameters())):
        raise ValueError(
            f"load_params: {type(module).__name__} has {len(list(module.parameters()))} parameters, "
            f"{type(layer).__name__} gave {len(params)}"
        )
    return params


# --- layers ------------------------------------------------------------------------------------


def stateless(build: Callable) -> Callable:
    """The reference of a layer without parameters: ``build(nn, layer)`` makes the torch module
    (``nn`` is ``torch.nn``, passed in so that the row's lambda needs no import)."""

    def ref(layer, x):
        import torch

        return build(torch.nn, layer)(x), {}

    return ref


def linear(layer, x):
    import torch

    module = torch.nn.Linear(
        layer.in_features, layer.out_features, bias=layer.b is not None, dtype=torch.float64
    )
    params = load_params(layer, module)  # before the forward: it copies the weights in
    return module(x), params


def conv(layer, x):
    """torch's Conv1d/Conv2d of the same config (glassnet's ``init`` has no torch counterpart)."""
    import torch

    cls = torch.nn.Conv1d if isinstance(layer, L.Conv1d) else torch.nn.Conv2d
    config = layer.config()
    del config["init"]
    module = cls(**config, dtype=torch.float64)
    params = load_params(layer, module)  # before the forward: it copies the weights in
    with warnings.catch_warnings():  # "same" with an even reach: torch notes that it copies x
        warnings.filterwarnings("ignore", "Using padding='same'", UserWarning)
        return module(x), params


def pooling(layer, x):
    """torch's pooling of the same class name (MaxPool2d, AvgPool1d, ...) and config (window,
    ceil_mode, dilation, count_include_pad: PyTorch's names)."""
    import torch

    module = getattr(torch.nn, type(layer).__name__)(**layer.config())
    return module(x), {}


def _torch_recurrent(layer):
    import torch

    config = layer.config()
    if isinstance(layer, L.RNN):
        config["nonlinearity"] = layer.nonlinearity
    return getattr(torch.nn, type(layer).__name__)(**config, batch_first=True, dtype=torch.float64)


def recurrent(layer, x):
    """torch.nn.RNN/GRU/LSTM (batch_first) with the glassnet layer's parameters. With dropout
    masks drawn (training, dropout > 0), torch's layers one at a time with glassnet's masks
    between them, since torch would draw its own."""
    if any(m is not None for m in getattr(layer, "masks", [])):
        return _recurrent_by_layers(layer, x)
    module = _torch_recurrent(layer)
    params = load_params(layer, module)
    return module(x)[0], params


def _recurrent_by_layers(layer, x):
    """Layer k of a stack as torch's one-layer module (its parameters ``_l{k}`` copied into
    torch's ``_l0``), glassnet's dropout mask on its output before layer k + 1."""
    import re

    import torch

    config = layer.config()
    config.update(num_layers=1, dropout=0.0)
    if isinstance(layer, L.RNN):
        config["nonlinearity"] = layer.nonlinearity
    params = {}
    for k in range(layer.num_layers):
        config["input_size"] = layer.input_size if k == 0 else layer.directions * layer.hidden_size
        module = getattr(torch.nn, type(layer).__name__)(**config, batch_first=True, dtype=torch.float64)
        with torch.no_grad():
            for name, p in layer.named_parameters():
                if re.search(rf"_l{k}(_reverse)?$", name):
                    tp = getattr(module, torch_name(name).replace(f"_l{k}", "_l0"))
                    tp.copy_(torch.from_numpy(np.ascontiguousarray(torch_layout(layer, name, p.data))))
                    params[name] = tp
        x = module(x)[0]
        mask = layer.masks[k]
        if mask is not None:  # time-major (T N, D H) in glassnet
            x = x * torch.from_numpy(mask.reshape(x.shape[1], x.shape[0], -1).transpose(1, 0, 2))
    return x, params


def recurrent_final_state(wrapper, x):
    """The reference of a ``cases.WithFinalState`` row: torch's output and final state h_n (and
    c_n), laid side by side per example as the wrapper does; the layer is the wrapper's child 0."""
    import torch

    module = _torch_recurrent(wrapper.layer)
    params = {f"0.{name}": p for name, p in load_params(wrapper.layer, module).items()}
    y, final = module(x)
    states = final if isinstance(final, tuple) else (final,)
    n = x.shape[0]
    parts = [y.reshape(n, -1)] + [s.transpose(0, 1).reshape(n, -1) for s in states]
    return torch.cat(parts, dim=1), params


def recurrent_from_state(wrapper, x):
    """The reference of a ``cases.FromInitialState`` row: torch's layer run from the wrapper's
    h0 (and c0), passed as leaf tensors whose gradients are compared with the row's ``h0``/``c0``
    parameters; the layer's own parameters are the wrapper's child ``0``."""
    import torch

    module = _torch_recurrent(wrapper.layer)
    params = {f"0.{name}": p for name, p in load_params(wrapper.layer, module).items()}
    states = [torch.tensor(p.data, requires_grad=True) for p in wrapper.params]
    for p, tp in zip(wrapper.params, states):
        params[p.name] = tp
    return module(x, states[0] if len(states) == 1 else tuple(states))[0], params


def dropout(layer, x):
    # the generators differ: multiply by the mask the glassnet layer drew (None in eval: identity)
    import torch

    return (x if layer.mask is None else x * torch.from_numpy(layer.mask)), {}


def gaussian_dropout(layer, x):
    import torch

    return (x if layer.noise is None else x * torch.from_numpy(layer.noise)), {}


def batch_norm(layer, x):
    """torch's batch norm of the same class and config, in training mode (the table's mode),
    gamma and beta copied in; its running statistics after the forward are returned as the
    third element, compared with the glassnet layer's buffers."""
    import torch

    bn = getattr(torch.nn, type(layer).__name__)(**layer.config(), dtype=x.dtype)
    params = load_params(layer, bn)
    y = bn(x)
    return y, params, {name: getattr(bn, name) for name in layer.buffers()}


def merge(layer, *xs):
    """``Add``, ``Multiply`` (torch's broadcasting ``+`` and ``*``), ``Concat`` (``torch.cat``)
    and ``Identity`` (``nn.Identity``): ``ref(layer, *xs)``, one tensor per input."""
    import torch

    if isinstance(layer, L.Concat):
        return torch.cat(xs, dim=layer.axis), {}
    if isinstance(layer, L.Identity):
        return torch.nn.Identity()(*xs), {}
    y = xs[0]
    for x in xs[1:]:
        y = y * x if isinstance(layer, L.Multiply) else y + x
    return y, {}


# the leaves a container's twin is built from: glassnet class -> reference
_LEAVES = {
    L.Linear: linear,
    L.BatchNorm1d: batch_norm,
    L.BatchNorm2d: batch_norm,
    L.Conv1d: conv,
    L.Conv2d: conv,
    L.ReLU: stateless(lambda nn, layer: nn.ReLU()),
    L.Tanh: stateless(lambda nn, layer: nn.Tanh()),
    L.Sigmoid: stateless(lambda nn, layer: nn.Sigmoid()),
    L.Flatten: stateless(lambda nn, layer: nn.Flatten()),
    L.Add: merge,
    L.Multiply: merge,
    L.Concat: merge,
    L.Identity: merge,
}


def container(module: Module, *xs, prefix: str = ""):
    """The torch twin of a container (``Sequential``, ``Residual``, ``Graph``), written with torch
    ops from its structure: each leaf by its own reference, the residual sum and the graph's
    wiring as torch code, so autograd does the fan-out sums glassnet's backward does by hand.
    Returns ``(y, params)``, params keyed by the glassnet names (``"block.0.W"``, ``"h.W"``)."""
    from .module import Sequential

    params: dict[str, object] = {}

    def run(m: Module, name: str, *inputs):
        if isinstance(m, (Sequential, L.Residual, L.Graph)):
            y, ps = container(m, *inputs, prefix=name)
        elif type(m) in _LEAVES:
            y, ps, *_ = _LEAVES[type(m)](m, *inputs)
            ps = {name + k: v for k, v in ps.items()}
        else:
            raise ValueError(f"torch_reference.container: no torch twin for {type(m).__name__}")
        params.update(ps)
        return y

    if isinstance(module, Sequential):
        (y,) = xs
        for name, child in module.named_children():
            y = run(child, f"{prefix}{name}.", y)
    elif isinstance(module, L.Residual):
        (x,) = xs
        y = run(module.block, f"{prefix}block.", x)
        y = y + (x if module.shortcut is None else run(module.shortcut, f"{prefix}shortcut.", x))
    else:
        values = dict(zip(module.inputs, xs))
        for name, m, sources in module.nodes:
            values[name] = run(m, f"{prefix}{name}.", *(values[s] for s in sources))
        y = values[module.outputs]
    return y, params


# --- losses --------------------------------------------------------------------------------------


def as_torch_target(target):
    """Integer labels become int64 (torch's class indices), float targets float64."""
    import torch

    target = np.asarray(target)
    return torch.from_numpy(target.astype(np.int64 if target.dtype.kind in "iu" else np.float64))


def loss_module(build: Callable) -> Callable:
    """The reference of a loss that is one torch module built by ``build(nn, loss)``."""

    def ref(loss, pred, target):
        import torch

        return build(torch.nn, loss)(pred, as_torch_target(target))

    return ref


def quadratic_cost(loss, pred, target):
    # the book's C = 1/(2n) sum_x ||a(x) - y(x)||^2, y(x) the one-hot label
    import torch

    onehot = torch.nn.functional.one_hot(as_torch_target(target), pred.shape[1]).to(pred.dtype)
    per_example = 0.5 * ((pred - onehot) ** 2).sum(dim=1)
    return _reduced(per_example, loss.reduction)


def _reduced(terms, reduction: str):
    """PyTorch's reduction of a loss's terms, for the formulas torch has no module for."""
    return {"mean": terms.mean, "sum": terms.sum, "none": lambda: terms}[reduction]()


def _tensor(weight):
    import torch

    return None if weight is None else torch.from_numpy(np.array(weight, np.float64))


def cross_entropy(loss, pred, target):
    import torch

    module = torch.nn.CrossEntropyLoss(
        weight=_tensor(loss.weight), ignore_index=loss.ignore_index, reduction=loss.reduction,
        label_smoothing=loss.label_smoothing,
    )  # fmt: skip
    return module(pred, as_torch_target(target))


def bce_with_logits(loss, pred, target):
    import torch

    module = torch.nn.BCEWithLogitsLoss(
        weight=_tensor(loss.weight), reduction=loss.reduction, pos_weight=_tensor(loss.pos_weight)
    )
    return module(pred, as_torch_target(target))


def hinge(loss, pred, target):
    """Multi-class: torch's MultiMarginLoss; binary (one score per example, labels 0/1 or -1/1):
    the formula mean(max(0, margin - t z)), which torch has no module for."""
    import torch

    target = np.asarray(target)
    if pred.ndim == 2 and pred.shape[1] > 1:
        return torch.nn.MultiMarginLoss(margin=loss.margin, reduction=loss.reduction)(
            pred, as_torch_target(target)
        )
    t = as_torch_target(np.where(target == 0, -1, target).reshape(pred.shape))
    return _reduced(torch.clamp(loss.margin - t * pred, min=0), loss.reduction)


# --- regularizers: the documented formulas on the decayed weights -------------------------------


def l1(reg, weights):
    return reg.lam * sum(w.abs().sum() for w in weights)


def l2(reg, weights):
    return reg.lam / 2 * sum((w * w).sum() for w in weights)


def elastic_net(reg, weights):
    return sum(reg.l1 * w.abs().sum() + reg.l2 / 2 * (w * w).sum() for w in weights)


# --- normalization, embeddings, attention ---------------------------------------------------------


def layer_norm(layer, x):
    import torch

    config = layer.config()
    module = torch.nn.LayerNorm(**config, dtype=torch.float64)
    params = load_params(layer, module)  # before the forward: it copies the weights in
    return module(x), params


def embedding_plus_input(wrapper, x):
    """The reference of a ``cases.WithTokenIds`` row: torch's ``nn.Embedding`` of the wrapper's
    fixed token ids, plus the float input (which carries the input-gradient check)."""
    import torch

    layer = wrapper.layer
    module = torch.nn.Embedding(**layer.config(), dtype=torch.float64)
    params = {f"0.{name}": p for name, p in load_params(layer, module).items()}
    vectors = module(torch.from_numpy(wrapper.ids))
    if wrapper.keep is not None:
        vectors = vectors * torch.from_numpy(wrapper.keep)
    return vectors + x, params


def _leaf(a: np.ndarray):
    import torch

    return torch.tensor(np.ascontiguousarray(a), requires_grad=True)


def positional_embedding(layer, x):
    # PyTorch has no module: the formula, x + W[:T]
    w = _leaf(layer.weight.data)
    return x + w[: x.shape[1]], {"weight": w}


def class_token(layer, x):
    import torch

    w = _leaf(layer.weight.data)
    return torch.cat([w.expand(x.shape[0], 1, -1), x], dim=1), {"weight": w}


# MultiheadAttention's parameters: glassnet name -> torch attribute path
MHA_NAMES = {
    "in_proj_weight": "in_proj_weight",
    "q_proj_weight": "q_proj_weight",  # kdim, vdim != embed_dim: one weight per projection
    "k_proj_weight": "k_proj_weight",
    "v_proj_weight": "v_proj_weight",
    "in_proj_bias": "in_proj_bias",
    "out_proj_weight": "out_proj.weight",
    "out_proj_bias": "out_proj.bias",
}


def _copy_into(module, names: dict[str, str], arrays: dict[str, np.ndarray]) -> dict[str, object]:
    """Copy glassnet arrays into the torch parameters at ``names`` (dotted paths)."""
    import torch

    tparams = dict(module.named_parameters())
    if set(tparams) != {names[k] for k in arrays}:
        raise ValueError(f"_copy_into: torch has {sorted(tparams)}, glassnet gave {sorted(arrays)}")
    with torch.no_grad():
        for name, a in arrays.items():
            tparams[names[name]].copy_(torch.from_numpy(np.ascontiguousarray(a)))
    return {name: tparams[names[name]] for name in arrays}


def _torch_masks(*masks):
    """The masks as tensors; boolean ones made additive when the others are float (PyTorch
    deprecates mixing the two kinds, and they mean the same)."""
    import torch

    masks = [None if m is None else np.asarray(m) for m in masks]
    if len({m.dtype == bool for m in masks if m is not None}) > 1:
        masks = [m if m is None or m.dtype != bool else np.where(m, -np.inf, 0.0) for m in masks]
    return [None if m is None else torch.from_numpy(m) for m in masks]


def attention(layer, *xs, attn_mask=None, key_padding_mask=None):
    """torch's ``nn.MultiheadAttention`` (batch_first), the same parameters copied in: one input
    is self-attention (q = k = v = x), three are ``(q, k, v)`` (cross-attention, S keys for T
    queries). With a dropout mask drawn (training, p > 0), self-attention is the same
    computation written in torch ops with glassnet's mask, since torch would draw its own."""
    import torch

    q, k, v = xs if len(xs) == 3 else xs * 3
    if layer.causal:  # PyTorch's constructor has no such flag: its mask, on top of the given one
        attn_mask = _with_causal(attn_mask, q.shape[1])
    if layer.drop is not None:
        if len(xs) != 1:
            raise NotImplementedError("the reference of attention with dropout is for self-attention")
        return _attention_by_hand(layer, q, attn_mask, key_padding_mask)
    module = torch.nn.MultiheadAttention(
        layer.embed_dim, layer.num_heads, bias=layer.bias, batch_first=True, dtype=torch.float64,
        kdim=layer.kdim, vdim=layer.vdim,
    )  # fmt: skip
    params = _copy_into(module, MHA_NAMES, {name: p.data for name, p in layer.named_parameters()})
    attn_mask, key_padding_mask = _torch_masks(attn_mask, key_padding_mask)
    y, _ = module(q, k, v, attn_mask=attn_mask, key_padding_mask=key_padding_mask)
    return y, params


def _attention_by_hand(layer, x, attn_mask, key_padding_mask):
    import torch

    params = {name: _leaf(p.data) for name, p in layer.named_parameters()}
    n, t, e = x.shape
    h, d = layer.num_heads, layer.head_dim
    qkv = x @ params["in_proj_weight"].T + (params["in_proj_bias"] if layer.bias else 0)
    Q, K, V = (qkv[..., i * e : (i + 1) * e].reshape(n, t, h, d).transpose(1, 2) for i in range(3))
    Z = Q @ K.transpose(-1, -2) / d**0.5
    if attn_mask is not None:
        m = torch.from_numpy(np.asarray(attn_mask))
        Z = _torch_mask(Z, m.reshape(n, h, t, t) if m.ndim == 3 else m)
    if key_padding_mask is not None:
        Z = _torch_mask(Z, torch.from_numpy(np.asarray(key_padding_mask))[:, None, None, :])
    A = torch.softmax(Z, dim=-1) * torch.from_numpy(layer.drop)
    O = (A @ V).transpose(1, 2).reshape(n, t, e)
    y = O @ params["out_proj_weight"].T + (params["out_proj_bias"] if layer.bias else 0)
    return y, params


def _with_causal(attn_mask, t: int) -> np.ndarray:
    """``attn_mask`` with the causal mask applied too (boolean: or; additive: -inf added)."""
    causal = np.triu(np.ones((t, t), dtype=bool), k=1)
    if attn_mask is None:
        return causal
    if attn_mask.dtype == bool:
        return attn_mask | causal
    return attn_mask + np.where(causal, -np.inf, 0.0)


def _torch_mask(Z, mask):
    import torch

    return Z.masked_fill(mask, float("-inf")) if mask.dtype == torch.bool else Z + mask


def encoder_layer(layer, x, attn_mask=None, key_padding_mask=None):
    """torch's ``nn.TransformerEncoderLayer`` (batch_first) of the same config, parameters copied
    by child: 0 self_attn, 1 linear1, 2 linear2, 3 norm1, 4 norm2."""
    import torch

    config = layer.config()
    if config.pop("causal"):
        attn_mask = _with_causal(attn_mask, x.shape[1])
    module = torch.nn.TransformerEncoderLayer(**config, batch_first=True, dtype=torch.float64)
    children = {"0": "self_attn.", "1": "linear1.", "2": "linear2.", "3": "norm1.", "4": "norm2."}
    names, arrays = {}, {}
    for name, p in layer.named_parameters():
        child, rest = name.split(".", 1)
        inner = MHA_NAMES[rest] if child == "0" else torch_name(rest)
        names[name] = children[child] + inner
        arrays[name] = torch_layout(layer, name, p.data)
    params = _copy_into(module, names, arrays)
    attn_mask, key_padding_mask = _torch_masks(attn_mask, key_padding_mask)
    return module(x, src_mask=attn_mask, src_key_padding_mask=key_padding_mask), params


def with_masks(wrapper, *xs):
    """The reference of a ``cases.WithMasks`` row: the inner layer's reference given the masks
    (three inputs ``(q, k, v)`` for cross-attention); its parameters are the wrapper's child ``0``."""
    inner = attention if isinstance(wrapper.layer, L.MultiheadAttention) else encoder_layer
    y, params = inner(
        wrapper.layer, *xs, attn_mask=wrapper.attn_mask, key_padding_mask=wrapper.key_padding_mask
    )
    return y, {f"0.{name}": p for name, p in params.items()}
