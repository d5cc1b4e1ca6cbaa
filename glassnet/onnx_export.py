"""Export a glassnet model to ONNX: ``gn.export_onnx(model, "model.onnx", input_shape=(1, 28, 28))``.

The file is a standard ONNX graph (opset 17, float32) that onnxruntime, TensorRT or a browser
runtime can run without glassnet. It computes the model in eval mode: dropout is the identity,
batch norm uses its running statistics (the batch's, without them). The batch axis is symbolic
(``N``), the other axes are ``input_shape``. Each layer becomes standard operators:

    Linear                MatMul(x, W) + b          (W is glassnet's (in, out): no transpose)
    Conv1d, Conv2d        Conv (group, asymmetric pads for "same"); padding_mode reflect and
                          replicate a Pad before it (reflect, edge), circular Slice + Concat
                          (Pad's wrap is opset 19)
    MaxPool*, AvgPool*    MaxPool (dilations), AveragePool (count_include_pad); ceil_mode as
                          explicit pads after the input (see ``_pool``)
    GlobalAvg/MaxPool2d   GlobalAveragePool / GlobalMaxPool, then Flatten
    BatchNorm1d/2d        BatchNormalization (running statistics); track_running_stats=False:
                          the batch's mean and biased variance by ReduceMean, then the affine
    LayerNorm             LayerNormalization        Embedding            Gather(weight, ids)
    RNN, GRU, LSTM        RNN / GRU / LSTM, one node per layer, time-major inside (Transpose);
                          gate blocks reordered from PyTorch's (GRU r z n, LSTM i f g o) to
                          ONNX's (GRU z r h, LSTM i o f c); GRU with linear_before_reset = 1,
                          which is PyTorch's (and glassnet's) r * (h W_hn + b_hn)
    MultiheadAttention    MatMul/Reshape/Transpose/Softmax, the causal mask built with Trilu
    TransformerEncoderLayer  its attention, LayerNormalization, MatMul and the residual Adds
    activations           Relu, Sigmoid, Tanh, LeakyRelu, Elu, Softmax; Softplus with beta and
                          PyTorch's threshold; GELU as x/2 (1 + erf(x / sqrt 2)) (or its tanh form)
    Dropout, GaussianDropout, Identity   Identity
    Flatten, Reshape, Permute            Flatten, Reshape, Transpose
    Token, LastStep, TokenMean           Gather on axis 1, ReduceMean
    PositionalEmbedding, ClassToken      Slice + Add, Expand + Concat
    Sequential, Residual, Graph, Add, Multiply, Concat   their wiring, Add, Mul, Concat

A layer not in this table (a user's own module, a layer option with no ONNX counterpart) is a
``ValueError`` naming the layer, where it sits in the model, and why.
"""

from __future__ import annotations

import inspect
import math
import os

import numpy as np

from . import layers as L
from . import walk
from .io import write_atomic
from .layers import _padding
from .layers.pooling import pooled_size
from .module import Module, Sequential, evaluating, is_int, takes_integers

OPSET = 17  # the default and the oldest: LayerNormalization is in opset 17


class _Builder:
    """The nodes and initializers of the graph being written, and fresh names for them."""

    def __init__(self, opset: int, reserved=()) -> None:
        import onnx
        from onnx import helper, numpy_helper

        self.onnx, self.helper, self.numpy_helper = onnx, helper, numpy_helper
        self.opset = opset
        self.nodes: list = []
        self.initializers: list = []
        self.count = 0
        self.input_shapes: dict[int, tuple | None] = {}  # id(layer) -> its input's shape (None: several)
        # the graph's input and output names, which the user chose: never a fresh name (a Graph
        # input named "h_2" or "c_1" would otherwise be assigned twice)
        self.reserved = set(reserved)

    def fresh(self, hint: str) -> str:
        # hint_count is unique among fresh names (count only grows); skip the reserved ones
        self.count += 1
        while f"{hint}_{self.count}" in self.reserved:
            self.count += 1
        return f"{hint}_{self.count}"

    def const(self, value, hint: str = "c", dtype=np.float32) -> str:
        name = self.fresh(hint)
        array = np.array(value, dtype=dtype, order="C")  # (ascontiguousarray would make a scalar 1-d)
        self.initializers.append(self.numpy_helper.from_array(array, name))
        return name

    def ints(self, values, hint: str = "shape") -> str:
        return self.const(list(values), hint, np.int64)

    def op(self, op_type: str, inputs: list[str], hint: str | None = None, outputs: int = 1, **attrs):
        names = [self.fresh(hint or op_type.lower()) for _ in range(outputs)]
        self.nodes.append(self.helper.make_node(op_type, inputs, names, **attrs))
        return names[0] if outputs == 1 else names


# --- one function per layer family: (builder, layer, input names, where) -> output name ---------


def _linear(b: _Builder, layer: L.Linear, x: str, hint: str) -> str:
    y = b.op("MatMul", [x, b.const(layer.W.data, hint + ".W")], hint)
    return y if layer.b is None else b.op("Add", [y, b.const(layer.b.data, hint + ".b")], hint)


def _int_padding(layer, hint: str) -> list[int]:
    """A pooling layer's padding as ints on each side (a padding given another way is refused)."""
    padding = layer.padding
    if not isinstance(padding, tuple) or not all(isinstance(p, int) for p in padding):
        raise ValueError(
            f"export_onnx: {hint} ({type(layer).__name__}) has padding={padding!r}, which the ONNX "
            "export does not handle yet"
        )
    return list(padding)


def _conv_pads(layer: L.Conv2d) -> list[tuple[int, int]]:
    """(before, after) per spatial axis of the ONNX tensor, as PyTorch pads: ints on both sides,
    "valid" none, "same" d (k - 1) split with the odd unit after (right, bottom)."""
    if layer.padding == "same":
        pads = _padding.same_padding(layer.kernel_size, layer.dilation)
    elif layer.padding == "valid":
        pads = ((0, 0), (0, 0))
    else:
        pads = tuple((p, p) for p in layer.padding)
    return list(pads[1:] if isinstance(layer, L.Conv1d) else pads)  # Conv1d keeps 2-D pairs (1, k) inside


# PyTorch's padding modes -> Pad's: ONNX's "reflect" skips the edge as PyTorch's does, "edge"
# repeats it (PyTorch's "replicate"); circular is built from Slice + Concat (see _pad)
PAD_MODES = {"zeros": "constant", "reflect": "reflect", "replicate": "edge"}
END = 2**62  # a Slice's end past any axis: to the end


def _pad(b: _Builder, x: str, pads: list[tuple[int, int]], mode: str, hint: str, value=None) -> str:
    """x (N, C, *spatial) padded by (before, after) on each spatial axis: ``mode`` is one of
    PyTorch's padding modes, zeros by default, or a constant ``value`` (-inf before a max)."""
    if mode == "circular":  # Pad's "wrap" is opset 19: the other end's units, sliced and concatenated
        for axis, (before, after) in enumerate(pads, start=2):
            parts = [x]
            if before:  # x[..., n - before:] in front
                parts.insert(0, b.op("Slice", [x, b.ints([-before]), b.ints([END]), b.ints([axis])], hint))
            if after:  # x[..., :after] behind
                parts.append(b.op("Slice", [x, b.ints([0]), b.ints([after]), b.ints([axis])], hint))
            x = b.op("Concat", parts, hint, axis=axis) if len(parts) > 1 else x
        return x
    onnx_pads = b.ints([0, 0, *(p for p, _ in pads), 0, 0, *(a for _, a in pads)], hint + ".pads")
    inputs = [x, onnx_pads] if value is None else [x, onnx_pads, b.const(value)]
    return b.op("Pad", inputs, hint, mode=PAD_MODES[mode])


def _conv(b: _Builder, layer: L.Conv2d, x: str, hint: str) -> str:
    one_d = isinstance(layer, L.Conv1d)
    pick = (lambda t: list(t[1:])) if one_d else list  # Conv1d keeps 2-D pairs (1, k) inside
    pads = _conv_pads(layer)
    if layer.padding_mode != "zeros" and any(p + a for p, a in pads):  # a padding node, then no pads
        x, pads = _pad(b, x, pads, layer.padding_mode, hint), [(0, 0)] * len(pads)
    inputs = [x, b.const(layer.W.data, hint + ".W")]  # (out, in / groups, *k): ONNX's layout
    if layer.b is not None:
        inputs.append(b.const(layer.b.data, hint + ".b"))
    return b.op(
        "Conv", inputs, hint, kernel_shape=pick(layer.kernel_size), strides=pick(layer.stride),
        pads=[p for p, _ in pads] + [a for _, a in pads], dilations=pick(layer.dilation), group=layer.groups,
    )  # fmt: skip


def _pool(b: _Builder, layer, x: str, hint: str) -> str:
    k, s, d, p = list(layer.kernel_size), list(layer.stride), list(layer.dilation), _int_padding(layer, hint)
    # ceil_mode as explicit pads after the input, ceil_mode=0 in the file: ONNX's shape inference
    # counts a last window that starts past the input and its left padding, which PyTorch (and
    # onnxruntime's kernel) drop, so a runtime that follows the spec would disagree
    after = _ceil_pads(b, layer, hint) if layer.ceil_mode else p
    if isinstance(layer, (L.MaxPool1d, L.MaxPool2d)):  # padding never wins a max: as PyTorch's -inf
        if any(pad >= size for pad, size in zip(p + after, k + k)):  # onnxruntime: pads < kernel_shape
            x = _pad(b, x, list(zip(p, after)), "zeros", hint, value=-np.inf)
            p = after = [0] * len(k)
        return b.op("MaxPool", [x], hint, kernel_shape=k, strides=s, pads=p + after, dilations=d)
    include = layer.count_include_pad
    if include and after != p:  # the left and right padding count, ceil mode's reach past them not:
        x = _pad(b, x, list(zip(p, p)), "zeros", hint)  # the padding made part of the input
        p, after, include = [0] * len(k), [a - q for a, q in zip(after, p)], False
    return b.op(
        "AveragePool", [x], hint, kernel_shape=k, strides=s, pads=p + after, count_include_pad=int(include)
    )


def _ceil_pads(b: _Builder, layer, hint: str) -> list[int]:
    """Padding after the input that ceil mode's last window reaches (at least the layer's own),
    from the input's spatial size in the forward run before export."""
    shape = b.input_shapes.get(id(layer))
    if shape is None:
        raise ValueError(
            f"export_onnx: {hint} ({type(layer).__name__}, ceil_mode=True) ran at several input sizes "
            "(or none) in the forward before export; its ONNX pads depend on the size"
        )
    after = []
    for n, k, s, p, d in zip(shape[2:], layer.kernel_size, layer.stride, layer.padding, layer.dilation):
        windows = pooled_size(n, k, s, p, d, ceil_mode=True)  # PyTorch's count
        last_end = (windows - 1) * s + d * (k - 1) + 1  # where the last window ends, left padding included
        after.append(max(p, last_end - p - n))
    return after


def _batch_norm(b: _Builder, layer, x: str, hint: str) -> str:
    c = layer.num_features
    scale = layer.weight.data if layer.affine else np.ones(c)
    shift = layer.bias.data if layer.affine else np.zeros(c)
    if layer.track_running_stats:
        mean, var = (
            b.const(layer.running_mean, hint + ".running_mean"),
            b.const(layer.running_var, hint + ".running_var"),
        )
        inputs = [x, b.const(scale, hint + ".weight"), b.const(shift, hint + ".bias"), mean, var]
        return b.op("BatchNormalization", inputs, hint, epsilon=layer.eps)
    # no running statistics: the batch's, in eval too, as in training (biased variance), on the
    # input seen as (N, C, M) (M = 1, L or H W) so that one pair of axes serves every rank
    x3 = b.op("Reshape", [x, b.ints([0, 0, -1])], hint)
    mu = _reduce_mean(b, x3, [0, 2], hint, keepdims=1)  # (1, C, 1)
    centred = b.op("Sub", [x3, mu], hint)
    var = _reduce_mean(b, b.op("Mul", [centred, centred], hint), [0, 2], hint, keepdims=1)
    x_hat = b.op("Div", [centred, b.op("Sqrt", [b.op("Add", [var, b.const(layer.eps)], hint)], hint)], hint)
    y3 = b.op("Mul", [x_hat, b.const(scale.reshape(c, 1), hint + ".weight")], hint)
    y3 = b.op("Add", [y3, b.const(shift.reshape(c, 1), hint + ".bias")], hint)
    return b.op("Reshape", [y3, b.op("Shape", [x], hint)], hint)


def _layer_norm(b: _Builder, layer: L.LayerNorm, x: str, hint: str) -> str:
    shape = layer.normalized_shape
    scale = np.ones(shape) if layer.weight is None else layer.weight.data
    shift = np.zeros(shape) if layer.bias is None else layer.bias.data
    inputs = [x, b.const(scale, hint + ".weight"), b.const(shift, hint + ".bias")]
    return b.op("LayerNormalization", inputs, hint, axis=-len(shape), epsilon=layer.eps)


def _softplus(b: _Builder, layer: L.Softplus, x: str, hint: str) -> str:
    # PyTorch's: log(1 + e^(beta x)) / beta, and x itself where beta x > threshold
    bx = b.op("Mul", [x, b.const(layer.beta)], hint)
    soft = b.op("Div", [b.op("Softplus", [bx], hint), b.const(layer.beta)], hint)
    return b.op("Where", [b.op("Greater", [bx, b.const(layer.threshold)], hint), x, soft], hint)


def _gelu(b: _Builder, layer: L.GELU, x: str, hint: str) -> str:
    if layer.approximate == "tanh":  # x/2 (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))
        cube = b.op("Mul", [b.op("Mul", [x, x], hint), x], hint)
        inner = b.op("Add", [x, b.op("Mul", [cube, b.const(0.044715)], hint)], hint)
        t = b.op("Tanh", [b.op("Mul", [inner, b.const(math.sqrt(2 / math.pi))], hint)], hint)
    else:  # x/2 (1 + erf(x / sqrt 2))
        t = b.op("Erf", [b.op("Mul", [x, b.const(1 / math.sqrt(2))], hint)], hint)
    half_x = b.op("Mul", [x, b.const(0.5)], hint)
    return b.op("Mul", [half_x, b.op("Add", [t, b.const(1.0)], hint)], hint)


def _reshape(b: _Builder, layer: L.Reshape, x: str, hint: str) -> str:
    # 0 copies the input's size on that axis: the batch axis stays N
    return b.op("Reshape", [x, b.ints([0, *layer.shape])], hint)


def _reduce_mean(b: _Builder, x: str, axes: list[int], hint: str, keepdims: int) -> str:
    if b.opset >= 18:  # opset 18 moved ReduceMean's axes from an attribute to an input
        return b.op("ReduceMean", [x, b.ints(axes)], hint, keepdims=keepdims)
    return b.op("ReduceMean", [x], hint, axes=axes, keepdims=keepdims)


def _token_mean(b: _Builder, layer: L.TokenMean, x: str, hint: str) -> str:
    return _reduce_mean(b, x, [1], hint, keepdims=0)


def _embedding(b: _Builder, layer: L.Embedding, ids: str, hint: str) -> str:
    ids = b.op("Cast", [ids], hint, to=b.onnx.TensorProto.INT64)
    return b.op("Gather", [b.const(layer.weight.data, hint + ".weight"), ids], hint, axis=0)


def _positional(b: _Builder, layer: L.PositionalEmbedding, x: str, hint: str) -> str:
    t = b.op("Shape", [x], hint, start=1, end=2)  # the sequence's length T: the first T rows
    rows = b.op("Slice", [b.const(layer.weight.data, hint + ".weight"), b.ints([0]), t, b.ints([0])], hint)
    return b.op("Add", [x, rows], hint)


def _class_token(b: _Builder, layer: L.ClassToken, x: str, hint: str) -> str:
    n = b.op("Shape", [x], hint, start=0, end=1)
    shape = b.op("Concat", [n, b.ints([1, layer.embedding_dim])], hint, axis=0)
    token = b.op("Expand", [b.const(layer.weight.data, hint + ".weight"), shape], hint)
    return b.op("Concat", [token, x], hint, axis=1)


# PyTorch's gate blocks -> ONNX's: GRU (r, z, n) -> (z, r, h); LSTM (i, f, g, o) -> (i, o, f, c)
GATE_ORDER = {L.RNN: [0], L.GRU: [1, 0, 2], L.LSTM: [0, 3, 1, 2]}


def _onnx_gates(a: np.ndarray, layer, hidden: int) -> np.ndarray:
    """Rows of (G H, ...) in PyTorch's gate order, reordered to ONNX's."""
    return np.concatenate([a[g * hidden : (g + 1) * hidden] for g in GATE_ORDER[type(layer)]])


def _recurrent(b: _Builder, layer, x: str, hint: str) -> str:
    H, D = layer.hidden_size, layer.directions
    op = type(layer).__name__
    attrs = {"hidden_size": H, "direction": "bidirectional" if D == 2 else "forward"}
    if isinstance(layer, L.GRU):
        attrs["linear_before_reset"] = 1  # r * (h W_hn + b_hn), PyTorch's equation
    if isinstance(layer, L.RNN):
        attrs["activations"] = [layer.nonlinearity.capitalize()] * D
    seq = b.op("Transpose", [x], hint, perm=[1, 0, 2])  # ONNX's recurrent ops are time-major
    for k in range(layer.num_layers):
        cells = layer.cells[k * D : (k + 1) * D]
        W = np.stack([_onnx_gates(W_x.data.T, layer, H) for W_x, _, _, _ in cells])  # (D, G H, in)
        R = np.stack([_onnx_gates(W_h.data.T, layer, H) for _, W_h, _, _ in cells])  # (D, G H, H)
        inputs = [seq, b.const(W, f"{hint}.W_l{k}"), b.const(R, f"{hint}.R_l{k}")]
        if layer.bias:  # B = [Wb; Rb] per direction
            B = np.stack([np.concatenate([_onnx_gates(b_x.data, layer, H), _onnx_gates(b_h.data, layer, H)])
                          for _, _, b_x, b_h in cells])  # fmt: skip
            inputs.append(b.const(B, f"{hint}.B_l{k}"))
        y = b.op(op, inputs, hint, **attrs)  # (T, D, N, H)
        y = b.op("Transpose", [y], hint, perm=[0, 2, 1, 3])  # (T, N, D, H)
        seq = b.op("Reshape", [y, b.ints([0, 0, D * H])], hint)  # (T, N, D H): directions side by side
    return b.op("Transpose", [seq], hint, perm=[1, 0, 2])


def _heads(b: _Builder, x: str, W: np.ndarray, bias, layer, perm: list[int], hint: str) -> str:
    """x @ W.T + bias, split into heads and transposed by ``perm`` from (N, L, h, d)."""
    y = b.op("MatMul", [x, b.const(W.T, hint + ".W")], hint)
    if bias is not None:
        y = b.op("Add", [y, b.const(bias, hint + ".b")], hint)
    y = b.op("Reshape", [y, b.ints([0, 0, layer.num_heads, layer.head_dim])], hint)
    return b.op("Transpose", [y], hint, perm=perm)


def _attention(b: _Builder, layer: L.MultiheadAttention, *xs: str, hint: str) -> str:
    if len(xs) not in (1, 3):
        raise ValueError(f"export_onnx: {hint} (MultiheadAttention) takes 1 or 3 inputs, got {len(xs)}")
    q, k, v = xs if len(xs) == 3 else xs * 3
    e = layer.embed_dim
    bias = layer.in_proj_bias.data if layer.bias else None
    # W_q, W_k, W_v: row blocks of the stacked weight, or their own weights (kdim, vdim != E)
    part = [(layer._projection(i)[0], None if bias is None else bias[i * e : (i + 1) * e]) for i in range(3)]
    Q = _heads(b, q, *part[0], layer, [0, 2, 1, 3], hint + ".q")  # (N, h, T, d)
    Kt = _heads(b, k, *part[1], layer, [0, 2, 3, 1], hint + ".k")  # (N, h, d, S)
    V = _heads(b, v, *part[2], layer, [0, 2, 1, 3], hint + ".v")  # (N, h, S, d)
    Z = b.op("Mul", [b.op("MatMul", [Q, Kt], hint), b.const(1 / math.sqrt(layer.head_dim))], hint)
    if layer.causal:  # -inf above the diagonal: query t sees keys 0..t
        t = b.op("Shape", [q], hint, start=1, end=2)
        ones = b.op("ConstantOfShape", [b.op("Concat", [t, t], hint, axis=0)], hint,
                    value=b.numpy_helper.from_array(np.ones(1, np.float32)))  # fmt: skip
        future = b.op("Equal", [b.op("Trilu", [ones], hint, upper=0), b.const(0.0)], hint)
        Z = b.op("Where", [future, b.const(-np.inf), Z], hint)
    A = b.op("Softmax", [Z], hint, axis=-1)
    O = b.op("Transpose", [b.op("MatMul", [A, V], hint)], hint, perm=[0, 2, 1, 3])
    O = b.op("Reshape", [O, b.ints([0, 0, e])], hint)
    y = b.op("MatMul", [O, b.const(layer.out_proj_weight.data.T, hint + ".out_proj_weight")], hint)
    if layer.bias:
        y = b.op("Add", [y, b.const(layer.out_proj_bias.data, hint + ".out_proj_bias")], hint)
    return y


def _encoder_layer(b: _Builder, layer: L.TransformerEncoderLayer, x: str, hint: str) -> str:
    def run(child: Module, name: str, u: str) -> str:
        return _emit(b, child, [u], f"{hint}.{name}")

    def ff(u: str) -> str:
        return run(
            layer.linear2, "linear2", run(layer.activation, "activation", run(layer.linear1, "linear1", u))
        )

    if layer.norm_first:
        x1 = b.op("Add", [x, run(layer.self_attn, "self_attn", run(layer.norm1, "norm1", x))], hint)
        return b.op("Add", [x1, ff(run(layer.norm2, "norm2", x1))], hint)
    x1 = run(layer.norm1, "norm1", b.op("Add", [x, run(layer.self_attn, "self_attn", x)], hint))
    return run(layer.norm2, "norm2", b.op("Add", [x1, ff(x1)], hint))


def _simple(op_type: str, **fixed):
    """A layer that is one ONNX operator; ``fixed`` attributes are values or functions of the layer."""

    def emit(b: _Builder, layer, x: str, hint: str) -> str:
        attrs = {k: v(layer) if callable(v) else v for k, v in fixed.items()}
        return b.op(op_type, [x], hint, **attrs)

    return emit


def _gather(index):
    def emit(b: _Builder, layer, x: str, hint: str) -> str:
        i = index(layer)
        return b.op("Gather", [x, b.const(np.array(i), hint + ".index", np.int64)], hint, axis=1)

    return emit


def _global_pool(op_type: str):
    def emit(b: _Builder, layer, x: str, hint: str) -> str:
        return b.op("Flatten", [b.op(op_type, [x], hint)], hint, axis=1)

    return emit


def _merge(op_type: str):
    def emit(b: _Builder, layer, *xs: str, hint: str) -> str:
        if op_type == "Concat":
            return b.op("Concat", list(xs), hint, axis=layer.axis)
        y = xs[0]
        for x in xs[1:]:
            y = b.op(op_type, [y, x], hint)
        return y

    return emit


# glassnet class -> emitter. One input: emit(b, layer, x, hint); several: emit(b, layer, *xs, hint=)
ONE_INPUT = {
    L.Linear: _linear,
    L.Conv1d: _conv,
    L.Conv2d: _conv,
    L.MaxPool1d: _pool,
    L.MaxPool2d: _pool,
    L.AvgPool1d: _pool,
    L.AvgPool2d: _pool,
    L.GlobalAvgPool2d: _global_pool("GlobalAveragePool"),
    L.GlobalMaxPool2d: _global_pool("GlobalMaxPool"),
    L.BatchNorm1d: _batch_norm,
    L.BatchNorm2d: _batch_norm,
    L.LayerNorm: _layer_norm,
    L.ReLU: _simple("Relu"),
    L.Sigmoid: _simple("Sigmoid"),
    L.Tanh: _simple("Tanh"),
    L.LeakyReLU: _simple("LeakyRelu", alpha=lambda m: m.negative_slope),
    L.ELU: _simple("Elu", alpha=lambda m: m.alpha),
    L.Softplus: _softplus,
    L.GELU: _gelu,
    L.Softmax: _simple("Softmax", axis=lambda m: m.axis),
    L.Dropout: _simple("Identity"),  # eval mode: dropout is the identity
    L.GaussianDropout: _simple("Identity"),
    L.Identity: _simple("Identity"),
    L.Flatten: _simple("Flatten", axis=1),
    L.Reshape: _reshape,
    L.Permute: _simple("Transpose", perm=lambda m: list(m.dims)),
    L.TokenMean: _token_mean,
    L.Token: _gather(lambda m: m.index),
    L.LastStep: _gather(lambda m: -1),
    L.Embedding: _embedding,
    L.PositionalEmbedding: _positional,
    L.ClassToken: _class_token,
    L.RNN: _recurrent,
    L.GRU: _recurrent,
    L.LSTM: _recurrent,
    L.TransformerEncoderLayer: _encoder_layer,
}
SEVERAL_INPUTS = {
    L.Add: _merge("Add"),
    L.Multiply: _merge("Mul"),
    L.Concat: _merge("Concat"),
    L.MultiheadAttention: _attention,
}
# the config entries each emitter reads; any other entry must hold its constructor default
# (an option added to a layer is refused here until its export is written and tested)
READS = {
    L.Conv1d: {
        "in_channels",
        "out_channels",
        "kernel_size",
        "stride",
        "padding",
        "dilation",
        "bias",
        "init",
        "groups",
        "padding_mode",
    },  # fmt: skip
    L.RNN: {"input_size", "hidden_size", "num_layers", "bidirectional", "bias", "nonlinearity", "dropout"},
    L.MultiheadAttention: {"embed_dim", "num_heads", "dropout", "bias", "causal", "kdim", "vdim"},
}
READS[L.Conv2d] = READS[L.Conv1d]
READS[L.GRU] = READS[L.LSTM] = READS[L.RNN]
READS.update(
    {
        c: {"kernel_size", "stride", "padding", "ceil_mode"}
        for c in (L.MaxPool1d, L.MaxPool2d, L.AvgPool1d, L.AvgPool2d)
    }
)
READS[L.MaxPool1d] = READS[L.MaxPool2d] = READS[L.MaxPool1d] | {"dilation"}
READS[L.AvgPool1d] = READS[L.AvgPool2d] = READS[L.AvgPool1d] | {"count_include_pad"}
READS.update(
    {
        c: {"num_features", "eps", "momentum", "affine", "track_running_stats"}
        for c in (L.BatchNorm1d, L.BatchNorm2d)
    }
)


def _check_options(layer: Module, hint: str) -> None:
    reads = READS.get(type(layer))
    if reads is None:
        return
    defaults = inspect.signature(type(layer)).parameters
    for key, value in layer.config().items():
        default = defaults[key].default if key in defaults else inspect.Parameter.empty
        if key not in reads and value != default:
            raise ValueError(
                f"export_onnx: {hint} ({type(layer).__name__}) has {key}={value!r}, which the ONNX "
                "export does not handle yet"
            )


def _emit(b: _Builder, layer: Module, inputs: list[str], hint: str) -> str:
    kind = type(layer)
    if kind is Sequential:
        (x,) = inputs
        for name, child in layer.named_children():
            x = _emit(b, child, [x], f"{hint}.{name}" if hint else name)
        return x
    if kind is L.Residual:
        (x,) = inputs
        y = _emit(b, layer.block, [x], f"{hint}.block")
        s = x if layer.shortcut is None else _emit(b, layer.shortcut, [x], f"{hint}.shortcut")
        return b.op("Add", [y, s], hint)
    if kind is L.Graph:
        values = dict(zip(layer.inputs, inputs))
        for name, module, sources in layer.nodes:
            values[name] = _emit(b, module, [values[s] for s in sources], f"{hint}.{name}" if hint else name)
        if isinstance(layer.outputs, str):
            return values[layer.outputs]
        if hint:  # several outputs inside another container: nothing downstream takes a tuple
            raise ValueError(f"export_onnx: {hint} (Graph) has several outputs; only the whole model may")
        return [values[name] for name in layer.output_names]
    _check_options(layer, hint)
    if kind in SEVERAL_INPUTS:
        return SEVERAL_INPUTS[kind](b, layer, *inputs, hint=hint)
    if kind in ONE_INPUT:
        if len(inputs) != 1:
            raise ValueError(f"export_onnx: {hint} ({kind.__name__}) takes one input, got {len(inputs)}")
        return ONE_INPUT[kind](b, layer, inputs[0], hint)
    supported = sorted(
        {c.__name__ for c in (*ONE_INPUT, *SEVERAL_INPUTS)} | {"Sequential", "Residual", "Graph"}
    )
    raise ValueError(
        f"export_onnx: layer {hint or 'the model'} ({kind.__name__}) has no ONNX export; "
        f"supported: {', '.join(supported)}"
    )


def _input_shapes(model: Module, input_shape) -> list[tuple[int, ...]]:
    """One example's shape per model input: a tuple, or a list of tuples for a model with
    several inputs (a ``Graph``'s, in the order of its ``inputs``; ``Add``, ``Concat``)."""
    several = isinstance(input_shape, (list, tuple)) and all(
        isinstance(s, (list, tuple)) for s in input_shape
    )
    shapes = list(input_shape) if several and input_shape else [input_shape]
    if isinstance(model, L.Graph) and len(shapes) != len(model.inputs):
        raise ValueError(
            f"export_onnx: the graph takes {len(model.inputs)} inputs ({', '.join(model.inputs)}), "
            f"input_shape gives {len(shapes)}"
        )
    out = []
    for shape in shapes:
        shape = tuple(shape) if isinstance(shape, (tuple, list)) else (shape,)
        if not shape or not all(is_int(n) and n >= 1 for n in shape):
            raise ValueError(
                "export_onnx: input_shape must be one example's shape (positive integers, no batch "
                f"axis), or a list of them for several inputs, got {input_shape!r}"
            )
        out.append(tuple(int(n) for n in shape))
    return out


def export_onnx(model: Module, path: str | os.PathLike, input_shape, opset: int = OPSET) -> None:
    """Write ``model`` as an ONNX file at ``path`` (atomically), in eval mode and float32.

    ``input_shape`` is one example's shape, without the batch axis ((1, 28, 28) for an image);
    a ``Graph`` with several inputs takes a list of shapes, one per input. The batch axis is
    symbolic: the file runs on any batch size. An input read first by an ``Embedding`` takes
    int64 ids (each input by itself). Inputs are named ``input`` (``input0``, ... for several)
    or as a ``Graph``'s; the output ``output`` (a fresh name if a ``Graph`` input is so named),
    or as a ``Graph``'s output nodes when it has several; internal names avoid all of them. The
    graph is checked with ``onnx.checker`` (shape inference included) before it is written.
    Needs the ``onnx`` extra: ``pip install 'glassnet[onnx]'``."""
    try:
        import onnx
        from onnx import TensorProto, helper
    except ImportError as e:
        raise ImportError("export_onnx needs onnx: pip install 'glassnet[onnx]'") from e
    if opset < OPSET:
        raise ValueError(f"export_onnx: opset must be >= {OPSET} (LayerNormalization), got {opset}")
    shapes = _input_shapes(model, input_shape)
    # int64 for each input a first layer reads as ids (an Embedding), float for the others
    integer = [takes_integers(model, k) for k in range(len(shapes))]
    if isinstance(model, L.Graph):
        names = list(model.inputs)
    else:
        names = ["input"] if len(shapes) == 1 else [f"input{k}" for k in range(len(shapes))]
    several = isinstance(model, L.Graph) and not isinstance(model.outputs, str)
    # a forward in glassnet first: a wrong input_shape is glassnet's own ShapeError, naming the
    # layer, and the output's shape is known for the graph's declaration
    # (two examples: a batch norm without running statistics needs more than one value per channel)
    dummies = [np.zeros((2, *s), np.int64 if i else np.float32) for s, i in zip(shapes, integer)]
    b = _Builder(opset, [*names, "output", *(model.output_names if several else ())])

    def seen(name: str, layer: Module, x, y) -> None:  # each layer's input shape, for ceil mode's pads
        shape = None if isinstance(x, tuple) else np.shape(x)
        b.input_shapes[id(layer)] = shape if b.input_shapes.get(id(layer), shape) == shape else None

    with evaluating(model):
        out = walk.forward(model, dummies[0], seen, *dummies[1:])
    ys, outs = _emit(b, model, names, ""), out
    if isinstance(ys, str):  # one output, "output" (a fresh name if a Graph input has that name)
        ys, outs, out_names = [ys], [out], ["output" if "output" not in names else b.fresh("output")]
    else:  # a graph's several: named as its output nodes
        out_names = list(model.output_names)
    for y, name in zip(ys, out_names):
        if y != name:  # (an output that is a graph input is that input already)
            b.nodes.append(helper.make_node("Identity", [y], [name]))
    elems = [TensorProto.INT64 if i else TensorProto.FLOAT for i in integer]
    graph = helper.make_graph(
        b.nodes,
        "glassnet",
        [helper.make_tensor_value_info(n, e, ["N", *s]) for n, e, s in zip(names, elems, shapes)],
        [
            helper.make_tensor_value_info(n, TensorProto.FLOAT, ["N", *o.shape[1:]])
            for n, o in zip(out_names, outs)
        ],  # fmt: skip
        initializer=b.initializers,
    )
    opsets = [helper.make_opsetid("", opset)]
    onnx_model = helper.make_model(graph, opset_imports=opsets, producer_name="glassnet")
    # the oldest IR version that holds this opset: runtimes older than this onnx package load it
    onnx_model.ir_version = helper.find_min_ir_version_for(opsets)
    onnx.checker.check_model(onnx_model, full_check=True)
    write_atomic(path, onnx_model.SerializeToString())
