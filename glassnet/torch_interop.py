"""glassnet and PyTorch: models converted both ways, and weight files under PyTorch's names.

    torch_model = gn.to_torch(model)           # an equivalent torch.nn.Module, weights copied
    model = gn.from_torch(torch_model)         # the glassnet model of a torch module
    gn.save_torch_weights(model, "w.safetensors")   # a state_dict torch can load_state_dict
    gn.load_torch_weights(model, "w.safetensors")   # a torch state_dict saved with safetensors

The two weight-file functions never import torch (they use ``safetensors``' NumPy API); the
converters import it when called.

How the two libraries lay out the same model (the whole table; ``torch_reference.torch_layout``
is where the transposes are written, shared with the tests' torch references):

    glassnet                       torch                              parameters (glassnet -> torch)
    Sequential                     nn.Sequential                      by position: "0.W" -> "0.weight"
                                   (from_torch: named children too,   ("fc1.weight" -> "0.W"); a module
                                   OrderedDict)                       in two places refused
    Linear                         nn.Linear                          W (in, out) -> weight = W.T; b -> bias
    Conv1d, Conv2d                 nn.Conv1d, nn.Conv2d (groups,      W -> weight (same layout); b -> bias
                                   padding "same"/"valid", padding_mode)
    RNN, GRU, LSTM                 torch_modules.RNN/GRU/LSTM: the    W_x_l0 -> weight_ih_l0 = W_x.T,
                                   nn classes (batch_first=True)      W_h_l0 -> weight_hh_l0 = W_h.T,
                                   returning the output only;         b_x/b_h -> bias_ih/bias_hh; gate
                                   from_torch reads nn's too          blocks already in torch's order
    BatchNorm1d, BatchNorm2d       nn.BatchNorm1d/2d (track_running_   same names (running stats too;
                                   stats=False: no buffers either)    none without them)
    LayerNorm, Embedding           nn.LayerNorm, nn.Embedding         same names
    MultiheadAttention             torch_modules.MultiheadAttention   in_proj_* same; out_proj_weight ->
                                   (an nn.MultiheadAttention)         out_proj.weight, out_proj_bias -> .bias
    TransformerEncoderLayer        nn.TransformerEncoderLayer         children 0-4 -> self_attn, linear1,
                                   (batch_first=True)                 linear2, norm1, norm2
    activations, Dropout, Flatten, the nn class of the same name      none
    Identity, pooling (ceil_mode,
    MaxPool dilation, AvgPool
    count_include_pad)
    Softmax(axis)                  nn.Softmax(dim=axis)               none
    Residual, Graph, Add, Multiply, torch_modules' class of the        block/shortcut, node names; weight
    Concat, Reshape, Permute,      same name                          for the embeddings
    Token, TokenMean, LastStep,
    GlobalAvg/MaxPool2d, GaussianDropout,
    PositionalEmbedding, ClassToken

The options of convolution, pooling and batch norm have PyTorch's names, meanings and defaults
in glassnet: ``config()`` is the torch constructor's keyword arguments (less ``init``), both
ways. ``from_torch`` reads the same table the other way. A torch option glassnet lacks
(``batch_first=False``, ``return_indices=True``, ``divisor_override``) is refused with an error
naming it, unless the glassnet layer's constructor takes an argument of that name, which then
gets the value.
"""

from __future__ import annotations

import inspect
import os

import numpy as np

from . import layers as L
from .io import load_state, write_atomic
from .module import Module, Sequential
from .torch_reference import MHA_NAMES, torch_layout, torch_name

# --- names and layouts (no torch needed) --------------------------------------------------------

RECURRENT = (L.RNN, L.GRU, L.LSTM)
# TransformerEncoderLayer's children, by glassnet index: torch's attribute names
ENCODER_CHILDREN = ["self_attn", "linear1", "linear2", "norm1", "norm2", "dropout", "dropout1", "dropout2"]


def _own_torch_name(layer: Module, name: str) -> str:
    """The torch name of one of ``layer``'s own parameters or buffers."""
    if isinstance(layer, L.MultiheadAttention):
        return MHA_NAMES[name]
    if isinstance(layer, (L.Linear, L.Conv2d, *RECURRENT)):  # Conv1d is a Conv2d
        return torch_name(name)
    return name  # weight, bias, running_mean, running_var, num_batches_tracked


def _torch_child(layer: Module, name: str) -> str:
    if isinstance(layer, L.TransformerEncoderLayer):
        return ENCODER_CHILDREN[int(name)] if int(name) < len(ENCODER_CHILDREN) else "activation"
    return name


def name_pairs(model: Module, prefix: str = "", torch_prefix: str = "") -> list[tuple[str, str, Module, str]]:
    """``(glassnet name, torch name, leaf, leaf's own name)`` for every parameter and buffer of
    ``model``, in ``state_dict`` order: the one mapping both weight files and both converters use."""
    pairs = []
    for name in [p.name for p in model.params] + list(model.buffers()):
        pairs.append((prefix + name, torch_prefix + _own_torch_name(model, name), model, name))
    for name, child in model.named_children():
        tname = _torch_child(model, name)
        pairs += name_pairs(child, f"{prefix}{name}.", f"{torch_prefix}{tname}.")
    return pairs


def torch_state_dict(model: Module) -> dict[str, np.ndarray]:
    """``model``'s parameters and buffers under PyTorch's names, in PyTorch's layouts (NumPy
    arrays): what ``gn.to_torch(model).state_dict()`` holds."""
    state = model.state_dict()
    return {
        # np.require keeps a 0-d array 0-d (np.ascontiguousarray makes it 1-d): num_batches_tracked
        tname: np.require(torch_layout(leaf, own, state[gname]), requirements="C")
        for gname, tname, leaf, own in name_pairs(model)
    }


def load_torch_state_dict(model: Module, state: dict[str, np.ndarray], source: str = "state dict") -> None:
    """Copy a PyTorch ``state_dict`` (name -> array, torch layouts) into ``model`` in place.

    Every torch name the model expects must be there and nothing else; a missing or unexpected
    name, or a shape that differs, is a ``ValueError`` naming ``source`` and the tensor."""
    pairs = name_pairs(model)
    expected = {tname for _, tname, _, _ in pairs}
    missing, unexpected = expected - set(state), set(state) - expected
    if missing or unexpected:
        raise ValueError(
            f"{source} does not match the model: missing {sorted(missing)}, unexpected {sorted(unexpected)}"
        )
    own = model.state_dict()
    converted = {}
    for gname, tname, leaf, name in pairs:
        value = torch_layout(leaf, name, np.asarray(state[tname]))  # a transpose is its own inverse
        if value.shape != own[gname].shape:
            raise ValueError(
                f"{source}: {tname!r} has shape {tuple(np.shape(state[tname]))}, the model expects "
                f"{torch_layout(leaf, name, own[gname]).shape}"
            )
        converted[gname] = value
    model.load_state_dict(converted)


def save_torch_weights(model: Module, path: str | os.PathLike) -> None:
    """Write ``model``'s weights as a PyTorch ``state_dict`` in a safetensors file (atomically),
    names and layouts PyTorch's: ``torch_model.load_state_dict(safetensors.torch.load_file(path))``
    reads it into ``gn.to_torch(model)`` or any PyTorch model of the same structure. No torch needed."""
    import safetensors.numpy

    write_atomic(path, safetensors.numpy.save(torch_state_dict(model)))


def load_torch_weights(model: Module, path: str | os.PathLike) -> Module:
    """Read a PyTorch ``state_dict`` saved with safetensors
    (``safetensors.torch.save_file(torch_model.state_dict(), path)``) into ``model``, a glassnet
    model of the same structure (``gn.from_torch`` builds one). No torch needed. Returns ``model``."""
    load_torch_state_dict(model, load_state(path), source=os.fspath(path))
    return model


# --- glassnet -> torch ----------------------------------------------------------------------------


def _same_args(layer: Module, rename: dict[str, str] | None = None, drop: tuple[str, ...] = ()) -> dict:
    """The layer's config as torch keyword arguments (most names are PyTorch's already)."""
    rename = rename or {}
    return {rename.get(k, k): v for k, v in layer.config().items() if k not in drop}


def _to_torch(m: Module):
    import torch.nn as nn

    from . import torch_modules as T

    children = [_to_torch(c) for c in m.children]
    kind = type(m)
    if kind is Sequential:
        return nn.Sequential(*children)
    if kind is L.Residual:
        return T.Residual(*children)
    if kind is L.Graph:
        return T.Graph(m.inputs, [(n, c, s) for (n, _, s), c in zip(m.nodes, children)], m.outputs)
    if kind is L.Linear:
        return nn.Linear(m.in_features, m.out_features, bias=m.b is not None)
    if kind in (L.Conv1d, L.Conv2d):
        return getattr(nn, kind.__name__)(**_same_args(m, drop=("init",)))
    if kind in RECURRENT:
        return getattr(T, kind.__name__)(**m.config(), batch_first=True)
    if kind in (L.BatchNorm1d, L.BatchNorm2d, L.LayerNorm, L.Embedding, *_SAME_NAME):
        return getattr(nn, kind.__name__)(**m.config())
    if kind is L.Softmax:
        return nn.Softmax(dim=m.axis)
    if kind is L.MultiheadAttention:
        return T.MultiheadAttention(**m.config())
    if kind is L.TransformerEncoderLayer:
        config = m.config()
        cls = T.CausalTransformerEncoderLayer if config.pop("causal") else nn.TransformerEncoderLayer
        return cls(**config, batch_first=True)
    if kind in _TWINS:
        return getattr(T, kind.__name__)(**m.config())
    raise ValueError(f"to_torch: no PyTorch module for {kind.__name__} (supported: {', '.join(SUPPORTED)})")


# layers whose torch.nn class has the same name and arguments
_SAME_NAME = (
    L.ReLU, L.Tanh, L.Sigmoid, L.LeakyReLU, L.ELU, L.Softplus, L.GELU, L.Dropout, L.Flatten, L.Identity,
    L.MaxPool1d, L.MaxPool2d, L.AvgPool1d, L.AvgPool2d,
)  # fmt: skip
# layers torch.nn lacks: torch_modules has a class of the same name and arguments
_TWINS = (
    L.Reshape, L.Permute, L.Token, L.TokenMean, L.LastStep, L.GlobalAvgPool2d, L.GlobalMaxPool2d,
    L.GaussianDropout, L.Add, L.Multiply, L.Concat, L.PositionalEmbedding, L.ClassToken,
)  # fmt: skip
SUPPORTED = sorted(
    {c.__name__ for c in (*_SAME_NAME, *_TWINS, *RECURRENT)}
    | {"Sequential", "Residual", "Graph", "Linear", "Conv1d", "Conv2d", "BatchNorm1d", "BatchNorm2d"}
    | {"LayerNorm", "Embedding", "Softmax", "MultiheadAttention", "TransformerEncoderLayer"}
)


def to_torch(model: Module):
    """An equivalent ``torch.nn.Module``, in ``model``'s dtype and (top-level) mode, with the weights (and
    batch-norm running statistics) copied in PyTorch's layouts (see the module docstring).

    The result computes what ``model`` computes: ``to_torch(model)(torch.from_numpy(x))``
    equals ``model.forward(x)`` (the dropout masks aside, which each library draws itself)."""
    import torch

    tmodel = _to_torch(model)
    floats = [a for a in model.state_dict().values() if a.dtype.kind == "f"]  # a BatchNorm has no params
    dtype = torch.float64 if floats and floats[0].dtype == np.float64 else torch.float32
    tmodel.to(dtype)  # floating-point tensors only: num_batches_tracked stays int64
    state = {k: torch.from_numpy(v.copy()) for k, v in torch_state_dict(model).items()}
    tmodel.load_state_dict(state, strict=True)
    return tmodel.train(model.training)


# --- torch -> glassnet ----------------------------------------------------------------------------


def _equal(a, b) -> bool:
    try:
        return bool(a == b)
    except Exception:  # tensors, or values of unlike types
        return False


def _build(module, cls: type, given: dict, options: dict, children=()):
    """``cls(**given)`` plus each torch option in ``options`` (torch attribute -> its default):
    passed on where ``cls``'s constructor takes an argument of that name, else it must hold its
    default. A value glassnet refuses is re-raised naming the torch module."""
    accepted = inspect.signature(cls).parameters
    kwargs = dict(given)
    for option, default in options.items():
        value = getattr(module, option, default)  # AvgPool1d has no divisor_override
        if option in accepted:
            kwargs[option] = value
        elif not _equal(value, default):
            raise ValueError(
                f"from_torch: {type(module).__name__}({option}={value!r}) has no glassnet equivalent "
                f"(glassnet's {cls.__name__} computes {option}={default!r} only)"
            )
    try:
        return cls(*children, **kwargs)
    except (TypeError, ValueError) as e:
        raise ValueError(f"from_torch: {type(module).__name__} -> {cls.__name__}: {e}") from None


def _single(v):
    return v[0] if isinstance(v, (tuple, list)) and len(v) == 1 else v


def _from_torch(tm):
    import torch.nn as nn

    from . import torch_modules as T

    kind, name = type(tm), type(tm).__name__
    if kind is nn.Sequential:  # every child, by position (children() would skip a repeated one)
        return Sequential(*(_from_torch(c) for c in tm._modules.values() if c is not None))
    if kind is T.Residual:
        return L.Residual(_from_torch(tm.block), None if tm.shortcut is None else _from_torch(tm.shortcut))
    if kind is T.Graph:
        nodes = [(n, _from_torch(getattr(tm, n)), s) for n, s in tm.wiring]
        return L.Graph(tm.graph_inputs, nodes, tm.graph_output)
    if kind is nn.Linear:
        return L.Linear(tm.in_features, tm.out_features, bias=tm.bias is not None)
    if kind in (nn.Conv1d, nn.Conv2d):
        return _conv(tm)
    if kind in (nn.RNN, nn.GRU, nn.LSTM, T.RNN, T.GRU, T.LSTM):
        return _recurrent(tm)
    if kind in (nn.BatchNorm1d, nn.BatchNorm2d):
        given = {"num_features": tm.num_features, "eps": tm.eps, "momentum": tm.momentum, "affine": tm.affine}
        return _build(tm, getattr(L, name), given, {"track_running_stats": True})
    if kind is nn.LayerNorm:
        given = {"normalized_shape": tuple(tm.normalized_shape), "eps": tm.eps}
        given.update(elementwise_affine=tm.elementwise_affine, bias=tm.bias is not None)
        return L.LayerNorm(**given)
    if kind is nn.Embedding:
        options = {"max_norm": None, "norm_type": 2.0, "scale_grad_by_freq": False, "sparse": False}
        given = {"num_embeddings": tm.num_embeddings, "embedding_dim": tm.embedding_dim}
        return _build(tm, L.Embedding, {**given, "padding_idx": tm.padding_idx}, options)
    if kind in (nn.MaxPool1d, nn.MaxPool2d, nn.AvgPool1d, nn.AvgPool2d):
        return _pool(tm)
    if kind is nn.Softmax:
        if tm.dim is None:
            raise ValueError("from_torch: Softmax(dim=None): give the axis, as glassnet's Softmax(axis)")
        return L.Softmax(axis=tm.dim)
    if kind in (T.MultiheadAttention, nn.MultiheadAttention):
        return _attention(tm)
    if kind in (nn.TransformerEncoderLayer, T.CausalTransformerEncoderLayer):
        return _encoder_layer(tm, causal=kind is T.CausalTransformerEncoderLayer)
    stateless = _stateless()
    if kind in stateless:
        return stateless[kind](tm)
    twin = getattr(L, name, None) if getattr(T, name, None) is kind else None
    if twin is not None:
        return _from_twin(tm, twin)
    raise ValueError(
        f"from_torch: {name} ({kind.__module__}) has no glassnet equivalent; supported: torch.nn's "
        f"{', '.join(sorted(c.__name__ for c in _TORCH_SUPPORTED()))}, and glassnet.torch_modules' classes "
        "(a model with its own forward: write it as nn.Sequential of these)"
    )


def _conv(tm) -> Module:
    conv = L.Conv1d if type(tm).__name__ == "Conv1d" else L.Conv2d
    one = _single if conv is L.Conv1d else tuple
    given = {k: one(getattr(tm, k)) for k in ("kernel_size", "stride", "dilation")}
    given["padding"] = tm.padding if isinstance(tm.padding, str) else one(tm.padding)  # "same", "valid"
    given.update(in_channels=tm.in_channels, out_channels=tm.out_channels, bias=tm.bias is not None)
    return _build(tm, conv, given, {"groups": 1, "padding_mode": "zeros"})


def _recurrent(tm) -> Module:
    name = type(tm).__name__
    if not tm.batch_first:
        raise ValueError(
            f"from_torch: {name}(batch_first=False): glassnet's recurrent layers are batch-first "
            f"(N, T, F); build the torch layer with batch_first=True"
        )
    given = {k: getattr(tm, k) for k in ("input_size", "hidden_size", "num_layers", "bidirectional", "bias")}
    if name == "RNN":
        given["nonlinearity"] = tm.nonlinearity
    options = {"dropout": 0.0, **({"proj_size": 0} if name == "LSTM" else {})}
    return _build(tm, getattr(L, name), given, options)


def _pool(tm) -> Module:
    name = type(tm).__name__
    one = _single if name.endswith("1d") else (lambda v: v)
    given = {k: one(getattr(tm, k)) for k in ("kernel_size", "stride", "padding")}
    if name.startswith("Max"):
        given["dilation"] = one(tm.dilation)
        options = {"ceil_mode": False, "return_indices": False}
    else:
        options = {"ceil_mode": False, "count_include_pad": True, "divisor_override": None}
    return _build(tm, getattr(L, name), given, options)


def _from_twin(tm, cls: type) -> Module:
    """A ``torch_modules`` class back to the glassnet layer of the same name."""
    args = {
        L.Reshape: lambda: {"shape": tm.shape},
        L.Permute: lambda: {"dims": tm.dims},
        L.Token: lambda: {"index": tm.index},
        L.GaussianDropout: lambda: {"rate": tm.rate},
        L.Concat: lambda: {"axis": tm.axis},
        L.PositionalEmbedding: lambda: dict(zip(("num_positions", "embedding_dim"), tm.weight.shape)),
        L.ClassToken: lambda: {"embedding_dim": tm.weight.shape[2]},
    }
    return cls(**args[cls]()) if cls in args else cls()


def _attention(tm) -> Module:
    name = type(tm).__name__
    if not tm.batch_first:
        raise ValueError(f"from_torch: {name}(batch_first=False): glassnet's attention is batch-first")
    missing = {
        "add_bias_kv": tm.bias_k is not None,
        "add_zero_attn": tm.add_zero_attn,
    }
    for option, bad in missing.items():
        if bad:
            raise ValueError(
                f"from_torch: {name}: {option} is not implemented in glassnet's MultiheadAttention"
            )
    return L.MultiheadAttention(
        tm.embed_dim, tm.num_heads, dropout=tm.dropout, bias=tm.in_proj_bias is not None,
        causal=getattr(tm, "causal", False), kdim=tm.kdim, vdim=tm.vdim,
    )  # fmt: skip


def _encoder_layer(tm, causal: bool) -> Module:
    import torch.nn.functional as F

    name = type(tm).__name__
    if not tm.self_attn.batch_first:
        raise ValueError(f"from_torch: {name}(batch_first=False): glassnet's encoder layer is batch-first")
    act = tm.activation
    activation = {F.relu: "relu", F.gelu: "gelu"}.get(act) if callable(act) else None
    if activation is None and type(act).__name__ in ("ReLU", "GELU"):
        activation = type(act).__name__.lower()
        if activation == "gelu" and act.approximate != "none":
            activation = None
    if activation is None:
        raise ValueError(f"from_torch: {name}(activation={act!r}): glassnet's takes 'relu' or 'gelu' only")
    return L.TransformerEncoderLayer(
        tm.self_attn.embed_dim, tm.self_attn.num_heads, dim_feedforward=tm.linear1.out_features,
        dropout=tm.dropout.p, activation=activation, layer_norm_eps=tm.norm1.eps,
        norm_first=tm.norm_first, bias=tm.linear1.bias is not None, causal=causal,
    )  # fmt: skip


def _stateless():
    import torch.nn as nn

    def flatten(tm):
        if (tm.start_dim, tm.end_dim) != (1, -1):
            raise ValueError(
                f"from_torch: Flatten(start_dim={tm.start_dim}, end_dim={tm.end_dim}): glassnet's Flatten "
                "keeps the batch axis and flattens the rest (start_dim=1, end_dim=-1) only"
            )
        return L.Flatten()

    return {
        nn.ReLU: lambda tm: L.ReLU(),
        nn.Tanh: lambda tm: L.Tanh(),
        nn.Sigmoid: lambda tm: L.Sigmoid(),
        nn.Identity: lambda tm: L.Identity(),
        nn.LeakyReLU: lambda tm: L.LeakyReLU(tm.negative_slope),
        nn.ELU: lambda tm: L.ELU(tm.alpha),
        nn.Softplus: lambda tm: L.Softplus(tm.beta, tm.threshold),
        nn.GELU: lambda tm: L.GELU(tm.approximate),
        nn.Dropout: lambda tm: L.Dropout(tm.p),
        nn.Flatten: flatten,
    }


def _refuse_reuse(module) -> None:
    """A module in two places of the tree (``nn.Sequential(lin, act, lin)``) is refused, naming
    both: a glassnet module has one place (its parameters one gradient, its state one name)."""
    seen: dict[int, str] = {}

    def walk(tm, path: str) -> None:
        for name, child in tm._modules.items():
            if child is None:
                continue
            where = f"{path}.{name}" if path else name
            if id(child) in seen:
                raise ValueError(
                    f"from_torch: the same {type(child).__name__} is at {seen[id(child)]!r} and at "
                    f"{where!r}; "
                    "glassnet has a module in one place only: give each place its own module "
                    "(copy.deepcopy), or share weights in a module of your own"
                )
            seen[id(child)] = where
            walk(child, where)

    walk(module, "")


def _by_position(module, key: str) -> str:
    """``key`` of ``module.state_dict()`` with each ``nn.Sequential`` child named by its position,
    as glassnet's Sequential names them: ``"fc1.weight"`` of ``nn.Sequential(OrderedDict(fc1=...))``
    is ``"0.weight"``."""
    import torch.nn as nn

    parts, tm = key.split("."), module
    for i, part in enumerate(parts[:-1]):
        children = tm._modules
        if part not in children:
            break
        if type(tm) is nn.Sequential:
            parts[i] = str([n for n, c in children.items() if c is not None].index(part))
        tm = children[part]
    return ".".join(parts)


def _TORCH_SUPPORTED():
    import torch.nn as nn

    return [*_stateless(), nn.Sequential, nn.Linear, nn.Conv1d, nn.Conv2d, nn.RNN, nn.GRU, nn.LSTM,
            nn.BatchNorm1d, nn.BatchNorm2d, nn.LayerNorm, nn.Embedding, nn.MaxPool1d, nn.MaxPool2d,
            nn.AvgPool1d, nn.AvgPool2d, nn.Softmax, nn.TransformerEncoderLayer]  # fmt: skip


def from_torch(module) -> Module:
    """The glassnet model of a PyTorch module built from supported layers (``nn.Sequential`` of
    the ``torch.nn`` classes in the module docstring's table, nested as you like, and the
    ``glassnet.torch_modules`` classes), with its weights and batch-norm running statistics
    copied, in its dtype (float32 or float64) and training mode.

    A module outside the supported set, or a torch option glassnet lacks, is a ``ValueError``
    naming it."""
    import torch

    if not isinstance(module, torch.nn.Module):
        raise TypeError(f"from_torch: expected a torch.nn.Module, got {type(module).__name__}")
    _refuse_reuse(module)
    model = _from_torch(module)
    floats = [p for p in module.state_dict().values() if p.is_floating_point()]
    if floats and floats[0].dtype == torch.float64:
        model.to(np.float64)
    elif floats and floats[0].dtype != torch.float32:
        raise ValueError(f"from_torch: the module's tensors are {floats[0].dtype}; glassnet computes in "
                         "float32 or float64 (convert with module.float())")  # fmt: skip
    state = {_by_position(module, k): v.detach().cpu().numpy() for k, v in module.state_dict().items()}
    load_torch_state_dict(model, state, source=f"from_torch: {type(module).__name__}'s state_dict")
    return model.train(module.training)
