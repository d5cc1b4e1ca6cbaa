"""``trace``: one example through the network, every quantity of the book's chapter 2.

For one example x with target y, and each layer l of the book (a weight layer, Linear or Conv,
and the layers after it up to the next weight layer; see ``glassnet.diagnostics``):

    a^0     = the input of the first weight layer (x after any leading Flatten)
    z^l     = a^{l-1} W^l + b^l                    (glassnet stores W as (in, out))
    a^l     = the layers after the weight layer applied to z^l: sigma(z^l) for an activation,
              then any pooling, flattening, dropout (off: the trace runs in eval mode)
    delta^L = dC/dz^L                               (BP1, at the output layer)
    delta^l = dC/dz^l = ((W^{l+1} delta^{l+1}) ...) (Hadamard) sigma'(z^l)   (BP2)
    dC/db^l = delta^l                               (BP3)
    dC/dW^l = (a^{l-1})^T delta^l, an outer product (BP4; the book's dC/dw_jk = a_k delta_j
              with W transposed)

C is the example's own cost as the loss defines it (the loss of a batch of one). The values
are those of the batch computation: tracing each example of a batch and averaging dC/dW gives
the batch's gradient, and delta^l is N times row n of the batch's dC/dz (tested).

The layers are those of the whole module tree in the order the forward runs them, inside a
user-written container too (a residual block's two Linear layers are layers l and l + 1; see
``glassnet.walk``); a^{l-1} is the input the weight layer really received, which after a skip
connection is not the previous layer's output.

A trace is a chain of layers, and a network with skip connections is not a chain: where paths
are summed, a^l is not the chain formula printed for it, and delta flowing back is a sum over
paths. The trace says where: every layer inside (or being) a module that sums paths
(``Module.sums_paths``: a ``Residual``, a ``Graph``'s fan-out, ``Add``, the residuals of a
``TransformerEncoderLayer``) gets a "sums paths" line naming it, and its a^l formula is marked
"+ other paths". The numbers are still the batch computation's (what each layer received and
returned, and its gradients); only the formulas of a chain do not hold there.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .module import Module, evaluating
from .walk import LayerShapeError, is_weight_layer, named_modules, walk


@dataclass
class TraceLayer:
    """The book's layer ``l``: its layers' names (paths in the module tree, ``"2.0"``), and z, a,
    delta, dC/db, dC/dW for the example."""

    l: int
    names: list[str]
    types: list[str]
    a_in: np.ndarray
    z: np.ndarray
    a: np.ndarray
    delta: np.ndarray
    db: np.ndarray | None
    dW: np.ndarray  # noqa: N815 (the book's name)
    extra: dict  # gradients of other parameters in the group (batch norm's weight and bias)
    # "#name Type: what it sums" for each module summing paths that holds (or is) one of the
    # layers: the chain formulas do not hold there (see the module docstring)
    sums: list[str] = field(default_factory=list)


@dataclass
class Trace:
    loss: float
    loss_name: str
    layers: list[TraceLayer]
    # the parameter gradients of the layers before the first weight layer (an RNN encoder, an
    # Embedding): they are no z = a W + b of the book, so they get no layer of the trace
    leading: dict[str, np.ndarray] = field(default_factory=dict)

    def __str__(self) -> str:
        n = len(self.layers)
        # lines: a heading (str) or a quantity (name, formula, value), formatted at the end with
        # the name column as wide as the longest name ("dC/dweight (#2.block.1)")
        lines: list = [f"trace of one example: C = {self.loss:.6g} ({self.loss_name})"]
        if self.leading:
            lines.append("before layer 1 (no z = a W + b of the book there; their gradients):")
            lines += [(f"dC/d{k}", "", v) for k, v in self.leading.items()]
        for t in self.layers:
            l, prev = t.l, t.l - 1
            chain = f"z^{l}"
            for typ in t.types[1:]:
                chain = f"{typ}({chain})"
            if t.sums:
                chain += " + other paths"
            lines.append(f"layer {l}: " + ", ".join(f"#{n_} {ty}" for n_, ty in zip(t.names, t.types)))
            lines += [f"  sums paths: {where}" for where in t.sums]
            rule = "BP1" if l == n else "BP2"
            lines += [
                (f"a^{prev}", "input of the layer", t.a_in),
                (f"z^{l}", f"a^{prev} W^{l} + b^{l}", t.z),
                (f"a^{l}", chain, t.a),
                (f"delta^{l}", f"dC/dz^{l} ({rule})", t.delta),
            ]
            if t.db is not None:
                lines.append((f"dC/db^{l}", f"delta^{l} (BP3)", t.db))
            lines.append((f"dC/dW^{l}", f"(a^{prev})^T delta^{l} (BP4)", t.dW))
            lines += [(f"dC/d{k}", "", v) for k, v in t.extra.items()]
        width = max([10] + [len(x[0]) for x in lines if isinstance(x, tuple)])
        return "\n".join(x if isinstance(x, str) else _line(*x, width) for x in lines)


def _line(name: str, formula: str, v: np.ndarray, width: int = 10) -> str:
    flat = v.reshape(-1)
    shown = " ".join(f"{x:.3g}" for x in flat[:5]) + (" ..." if flat.size > 5 else "")
    norm = float(np.sqrt(np.sum(np.square(flat, dtype=np.float64))))
    return f"  {name:{width}s} = {formula:<44s} shape {str(v.shape):12s} |.| {norm:.3e}  [{shown}]"


def trace(model: Module, loss_fn, x: np.ndarray, y) -> Trace:
    """Every layer's z, a, delta, dC/db and dC/dW for one example ``x`` (without the batch
    axis; a tuple of one array per input for a model with several) and its target ``y`` (a
    label, or a target vector), in the book's notation.

    Runs in eval mode (no dropout; batch norm on its running statistics); the model's modes
    and gradients are left as they were. ``print(gn.trace(...))`` gives a readable report.
    """
    params = model.parameters()
    saved = [p.grad.copy() for p in params]
    try:
        with evaluating(model):
            for p in params:
                p.grad.fill(0)
            one = tuple(np.asarray(a)[None] for a in x) if isinstance(x, tuple) else np.asarray(x)[None]
            try:
                w = walk(model, loss_fn, one, np.asarray(y)[None], "trace")
            except LayerShapeError as e:
                examples = [a.shape[1:] for a in (one if isinstance(one, tuple) else (one,))]
                if not any(shape[:1] == (1,) for shape in examples):
                    raise
                # an example whose first axis is 1: most often x[:1], a batch of one
                given = ", ".join(map(str, examples))
                raise LayerShapeError(
                    e.name,
                    e.layer,
                    e.input_shape,
                    f"{e.reason} (trace takes one example without its batch axis, x[0] rather than "
                    f"x[:1], and adds the axis itself: it was given {given})",
                ) from None
            layers = _group(w)
            _mark_sums(model, layers)
            first = next(i for i, m in enumerate(w.layers) if is_weight_layer(m))
            leading = {
                f"{p.name} (#{w.names[j]})": p.grad.copy() for j in range(first) for p in w.layers[j].params
            }
    finally:
        for p, g in zip(params, saved):
            p.grad[...] = g
    return Trace(w.loss, type(loss_fn).__name__, layers, leading)


def _group(w) -> list[TraceLayer]:
    starts = [i for i, m in enumerate(w.layers) if is_weight_layer(m)]
    if not starts:
        raise ValueError("trace: the model has no weight layer (Linear or Conv)")
    out = []
    for l, s in enumerate(starts, 1):
        end = starts[l] if l < len(starts) else len(w.layers)
        layer = w.layers[s]
        a_in = w.inputs[s]  # not the previous layer's output: a container's branch may skip it
        bias = getattr(layer, "b", None)
        extra = {
            f"{p.name} (#{w.names[j]})": p.grad.copy() for j in range(s + 1, end) for p in w.layers[j].params
        }
        out.append(
            TraceLayer(
                l=l,
                names=w.names[s:end],
                types=[type(m).__name__ for m in w.layers[s:end]],
                a_in=a_in[0].copy(),
                z=w.outputs[s][0].copy(),
                a=w.outputs[end - 1][0].copy(),
                delta=w.grads[s][0].copy(),
                db=bias.grad.copy() if bias is not None else None,
                dW=layer.W.grad.copy(),
                extra=extra,
            )
        )
    return out


def _mark_sums(model: Module, layers: list[TraceLayer]) -> None:
    """Fill each layer's ``sums``: the modules that sum paths among its layers and their
    containers (``"1.3"`` is inside ``"1"``, inside the model ``""``)."""
    modules = dict(named_modules(model))
    for t in layers:
        seen: dict[str, str] = {}
        for name in t.names:
            parts = name.split(".")
            for k in range(len(parts) + 1):
                where = ".".join(parts[:k])
                m = modules.get(where)
                if m is not None and m.sums_paths and where not in seen:
                    seen[where] = f"#{where or '(model)'} {type(m).__name__}: {m.sums_paths}"
        t.sums = list(seen.values())


__all__ = ["Trace", "TraceLayer", "trace"]
