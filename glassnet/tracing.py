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
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .module import Module, evaluating
from .walk import is_weight_layer, walk


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


@dataclass
class Trace:
    loss: float
    loss_name: str
    layers: list[TraceLayer]

    def __str__(self) -> str:
        n = len(self.layers)
        out = [f"trace of one example: C = {self.loss:.6g} ({self.loss_name})"]
        for t in self.layers:
            l, prev = t.l, t.l - 1
            chain = f"z^{l}"
            for typ in t.types[1:]:
                chain = f"{typ}({chain})"
            out.append(f"layer {l}: " + ", ".join(f"#{n_} {ty}" for n_, ty in zip(t.names, t.types)))
            rule = "BP1" if l == n else "BP2"
            out += [
                _line(f"a^{prev}", "input of the layer", t.a_in),
                _line(f"z^{l}", f"a^{prev} W^{l} + b^{l}", t.z),
                _line(f"a^{l}", chain, t.a),
                _line(f"delta^{l}", f"dC/dz^{l} ({rule})", t.delta),
            ]
            if t.db is not None:
                out.append(_line(f"dC/db^{l}", f"delta^{l} (BP3)", t.db))
            out.append(_line(f"dC/dW^{l}", f"(a^{prev})^T delta^{l} (BP4)", t.dW))
            for k, v in t.extra.items():
                out.append(_line(f"dC/d{k}", "", v))
        return "\n".join(out)


def _line(name: str, formula: str, v: np.ndarray) -> str:
    flat = v.reshape(-1)
    shown = " ".join(f"{x:.3g}" for x in flat[:5]) + (" ..." if flat.size > 5 else "")
    norm = float(np.sqrt(np.sum(np.square(flat, dtype=np.float64))))
    return f"  {name:10s} = {formula:<44s} shape {str(v.shape):12s} |.| {norm:.3e}  [{shown}]"


def trace(model: Module, loss_fn, x: np.ndarray, y) -> Trace:
    """Every layer's z, a, delta, dC/db and dC/dW for one example ``x`` (without the batch
    axis) and its target ``y`` (a label, or a target vector), in the book's notation.

    Runs in eval mode (no dropout; batch norm on its running statistics); the model's modes
    and gradients are left as they were. ``print(gn.trace(...))`` gives a readable report.
    """
    params = model.parameters()
    saved = [p.grad.copy() for p in params]
    try:
        with evaluating(model):
            for p in params:
                p.grad.fill(0)
            w = walk(model, loss_fn, np.asarray(x)[None], np.asarray(y)[None])
            layers = _group(w)
    finally:
        for p, g in zip(params, saved):
            p.grad[...] = g
    return Trace(w.loss, type(loss_fn).__name__, layers)


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


__all__ = ["Trace", "TraceLayer", "trace"]
