"""Looking inside a model: summary, per-layer gradient flow, dead and saturated units, verdicts.

How the book's notation maps onto glassnet's layers. Activations are layers of their own, so
the book's layer l is a *weight layer* (``Linear`` or ``Conv``) and the layers after it up to
the next one with parameters:

    z^l      the output of the weight layer (x @ W + b)
    a^l      the output of its activation (ReLU, Sigmoid, ...), the input of layer l + 1
    delta^l  dC/dz^l: the gradient flowing *into* the weight layer's output during backward
    dC/db^l  = delta^l summed over the batch (BP3);  dC/dW^l = (a^{l-1})^T delta^l (BP4)

Every statistic here is measured on one *probe batch* with one explicit forward and backward
pass that walks the whole module tree: the children of ``Sequential``s and of any user-written
container (a residual block's inner layers are layers of their own, named by their path,
``#2.0``; see ``glassnet.walk``); nothing hooks into training. During the probe, dropout is
off (no noise, and no draw from the training RNG) and batch norm uses the batch's statistics,
as in training, with its running statistics put back afterwards; the gradients the optimizer
holds are put back too, so a probe never changes a run.

Thresholds of the verdicts (module constants, documented in docs/howto/diagnose.md):

    SATURATION = 0.01       a sigmoid/tanh activation is saturated where h'(z) < 1% of h'(0)
                            (sigmoid: |z| > 6.0; tanh: |z| > 3.0)
    SATURATED_WARN = 0.5    verdict when more than half a layer's activations are saturated
    DEAD_WARN = 0.10        verdict when more than 10% of a layer's ReLU units are dead
                            (zero for every example of the probe batch; a conv unit is a channel)
    VANISHING_RATIO = 10    verdict when a hidden layer learns 10x slower than a later one
    EXPLODING_RATIO = 10    ... or 10x faster than a later one
    GROWTH_WARN = 1e3       (GradientFlow) the total gradient norm grew 1000x within
    GROWTH_EPOCHS = 3       3 epochs
    UPDATE_HIGH = 0.05,     update-to-weight ratio per step outside [1e-6, 0.05]
    UPDATE_LOW = 1e-6       (around 1e-3 is the usual healthy value)

"Speed of learning" of a layer (the book's chapter 5) is measured here as the root-mean-square
of its error delta over the probe batch's examples and units: sqrt(mean over x, j of
(delta^l_{x,j})^2), with delta_x the book's delta for example x's own cost. The book's figure
uses ||dC/db^l|| = ||mean_x delta^l_x||, which tells the same story for the book's networks
(``layer_stats`` reports it too, as ``db``), but is exactly zero for a layer followed by batch
norm (the mean subtraction removes any bias), while the per-example error is not. Being an
average over units, the speed also compares layers of different widths fairly. The output layer
takes part in no depth verdict: its delta comes straight from the cost (BP1), not through the
depth of the network.

Every layer with parameters gets a row and a speed, measured the same way on its output: for a
weight layer (Linear, Conv) that output is z and the speed the book's; for a recurrent layer it
is the hidden-state sequence (the rms runs over time steps too), for batch norm its normalised
output. Those speeds are shown (table, ``GradientFlow.speeds()``, the figure, TensorBoard) so
that a GRU or batch norm layer can be followed across epochs, but only weight layers take part
in the depth verdicts: the others' outputs are not a z, and comparing them with a z would
measure the activation or normalisation in between rather than the depth.
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass, field

import numpy as np

from .callbacks import Callback
from .data import take_rows
from .layers import GRU, LSTM, RNN, Linear
from .layers.activations import ReLU, Sigmoid, Tanh
from .module import Module, ShapeError, cast_inputs, evaluating, model_dtype
from .optim import clip_grad_norm, state_view
from .walk import (
    LayerShapeError,
    Walk,
    forward,
    is_activation,
    is_layer,
    is_weight_layer,
    leaves,
    probing,
    walk,
)

SATURATION = 0.01
SATURATED_WARN = 0.5
DEAD_WARN = 0.10
VANISHING_RATIO = 10.0
EXPLODING_RATIO = 10.0
GROWTH_WARN = 1e3
GROWTH_EPOCHS = 3
UPDATE_HIGH = 0.05
UPDATE_LOW = 1e-6


# --- per-layer statistics -------------------------------------------------------------------------
def _norm(a: np.ndarray) -> float:
    return float(np.sqrt(np.sum(np.square(a, dtype=np.float64))))


def _is_bias(p) -> bool:
    """A parameter added to a layer's output: Linear's and Conv's ``b``, the recurrent layers'
    ``b_x_l0``/``b_h_l0``..., batch norm's ``bias`` (its shift)."""
    return p.name in ("b", "bias") or p.name.startswith("b_")


def _norms(params: list) -> float | None:
    """The norm of the gradients of ``params`` taken together; None when there are none."""
    return math.sqrt(sum(_norm(p.grad) ** 2 for p in params)) if params else None


def _activation_stats(act: Module, a: np.ndarray, axis: int) -> dict:
    out: dict = {"activation": type(act).__name__, "a_mean": float(a.mean(dtype=np.float64))}
    out["a_std"] = float(a.std(dtype=np.float64))
    if isinstance(act, ReLU):
        # a unit is a feature (Linear) or a channel (conv: every position shares the filter)
        alive = np.moveaxis(a > 0, axis, 0).reshape(a.shape[axis], -1).any(axis=1)
        out["dead"] = float(1.0 - alive.mean())
    elif isinstance(act, Sigmoid):
        out["saturated"] = float(np.mean(a * (1 - a) < SATURATION * 0.25))  # sigmoid'(0) = 1/4
    elif isinstance(act, Tanh):
        out["saturated"] = float(np.mean(1 - a * a < SATURATION))  # tanh'(0) = 1
    return out


def layer_stats(w: Walk, optimizer=None, regularizer=None, clip_norm: float | None = None) -> list[dict]:
    """One dict per layer with parameters, from a ``walk`` (its gradients in ``p.grad``).

    Keys: ``layer`` (1-based among layers with parameters), ``index`` (the layer's path in the
    module tree), ``type``, ``weight`` (is a z-layer), ``units``, ``delta`` (RMS over the batch
    of the per-example ||delta_x||, delta_x = N dC/dz_x: the book's delta for the example's own
    cost; z is the layer's output, whatever the layer), ``db``/``dW`` (norms of the batch
    gradients of the layer's biases, and of all its other parameters, each taken together:
    a GRU's ``dW`` covers every ``W_x_*`` and ``W_h_*``, batch norm's ``dW`` its scale ``weight``
    and its ``db`` its shift ``bias``; None where there is no such parameter), ``speed``
    (``delta`` per unit, see above),
    ``z_mean``/``z_std`` and, when an activation follows before the next layer with parameters,
    ``activation``, ``a_mean``, ``a_std`` and ``dead`` (ReLU) or ``saturated`` (sigmoid, tanh);
    ``update`` (the update-to-weight ratio of the step ``optimizer`` would take now, over all the
    layer's parameters; None when they are all zero) when an optimizer is given: with the
    gradient ``fit``'s step would use, the ``regularizer``'s gradient added and clipped to
    ``clip_norm``.
    """
    updates = _update_sizes(optimizer, regularizer, clip_norm) if optimizer is not None else {}
    rows = []
    n_layers = len(w.layers)
    for i, layer in enumerate(w.layers):
        if not layer.params:
            continue
        z, dz = w.outputs[i], w.grads[i]
        n = z.shape[0]
        # delta_x = N dC/dz_x: every glassnet loss is the mean of per-example costs C_x
        sq = np.square(dz, dtype=np.float64).reshape(n, -1).sum(axis=1) * (n * n)
        # the unit axis: features for Linear and recurrent layers (also over sequences, (N, T, F)),
        # channels for NCHW/NCL layers
        axis = z.ndim - 1 if isinstance(layer, (Linear, RNN, GRU, LSTM)) or z.ndim == 2 else 1
        biases = [p for p in layer.params if _is_bias(p)]
        weights = [p for p in layer.params if not _is_bias(p)]
        row = {
            "layer": len(rows) + 1,
            "index": w.names[i],
            "type": type(layer).__name__,
            "weight": is_weight_layer(layer),
            "units": int(z.shape[axis]),
            "delta": float(np.sqrt(np.mean(sq))),
            "db": _norms(biases),
            "dW": _norms(weights),
            "speed": float(np.sqrt(np.mean(sq) / (z.size // n))) if z.size else 0.0,
            "z_mean": float(z.mean(dtype=np.float64)),
            "z_std": float(z.std(dtype=np.float64)),
        }
        for j in range(i + 1, n_layers):
            if w.layers[j].params:
                break
            if is_activation(w.layers[j]):  # subclasses too, as anomaly names them
                row.update(_activation_stats(w.layers[j], w.outputs[j], axis))
                break
        sizes = [updates[id(p)] for p in layer.params if id(p) in updates]
        if sizes:
            # ||update|| / ||w|| over all the layer's parameters (a zero-initialised bias alone has no ratio)
            step, weight = sum(u for u, _ in sizes), sum(v for _, v in sizes)
            row["update"] = math.sqrt(step / weight) if weight > 0 else None
        rows.append(row)
    return rows


def _update_sizes(optimizer, regularizer=None, clip_norm=None) -> dict[int, tuple[float, float]]:
    """(||update||^2, ||w||^2) per parameter for the step ``optimizer`` would take with the
    current ``p.grad`` as ``fit``'s step makes it (the ``regularizer``'s gradient added, the whole
    clipped to ``clip_norm``, negated for ``maximize``), computed on copies (the optimizer's state
    and step count and every ``p.grad`` are left as they were)."""
    out = {}
    t, saved = optimizer.t, [p.grad.copy() for p in optimizer.params]
    optimizer.t = t + 1  # update() reads the step number of the step it is part of (Adam)
    try:
        with np.errstate(all="ignore"):
            if regularizer is not None:
                regularizer.backward(optimizer.params)
            if clip_norm is not None:
                clip_grad_norm(optimizer.params, clip_norm)
            for i, p in enumerate(optimizer.params):
                lo, hi = optimizer.offsets[i], optimizer.offsets[i + 1]
                # state_view, not a plain reshape: Linear's W is column-major, and so is its state
                state = {k: state_view(v, lo, hi, p).copy() for k, v in optimizer.state.items()}
                w = p.data.copy()
                optimizer.update(w, -p.grad if optimizer.maximize else p.grad, state)  # as step() does
                out[id(p)] = (_norm(w - p.data) ** 2, _norm(p.data) ** 2)
    finally:
        optimizer.t = t
        for p, g in zip(optimizer.params, saved):
            p.grad[...] = g
    return out


# --- verdicts ------------------------------------------------------------------------------------
def _name(row: dict) -> str:
    return f"layer {row['layer']} (#{row['index']} {row['type']})"


def verdicts(rows: list[dict]) -> list[str]:
    """Plain-language findings with their numbers, from ``layer_stats`` rows (thresholds above)."""
    out = []
    bad = [r for r in rows if not all(math.isfinite(v) for v in _numbers(r))]
    for r in bad:
        out.append(f"non-finite values: {_name(r)} has NaN or inf in its statistics")
    weights = [r for r in rows if r["weight"]]
    hidden = weights[:-1]  # the output layer's delta comes from the cost (BP1), not the depth
    if len(hidden) >= 2 and not bad:
        for kind, word, ratio_of, limit in (
            ("vanishing", "slower", lambda a, b: b / a, VANISHING_RATIO),
            ("exploding", "faster", lambda a, b: a / b, EXPLODING_RATIO),
        ):
            i, j, ratio = _worst_pair(hidden, ratio_of)
            if ratio >= limit:
                a, b = hidden[i], hidden[j]
                out.append(
                    f"{kind} gradients: {_name(a)} learns {_fmt_ratio(ratio)} {word} than {_name(b)} "
                    f"(rms delta {a['speed']:.1e} vs {b['speed']:.1e})"
                )
    for r in rows:
        if r.get("dead", 0.0) > DEAD_WARN:
            out.append(
                f"{100 * r['dead']:.0f}% of ReLU units in {_name(r)} are dead (zero for every example)"
            )
        if r.get("saturated", 0.0) > SATURATED_WARN:
            out.append(
                f"{100 * r['saturated']:.0f}% of {r['activation'].lower()} activations in {_name(r)} are "
                f"saturated (h'(z) < {SATURATION:g} h'(0)): their units barely learn"
            )
        u = r.get("update")
        if u is not None and math.isfinite(u) and (r["dW"] or 0.0) + (r["db"] or 0.0) > 0:
            if u > UPDATE_HIGH:
                out.append(f"large updates: {_name(r)} changes by {u:.1e} of its weights per step")
            elif u < UPDATE_LOW:
                out.append(f"tiny updates: {_name(r)} changes by {u:.1e} of its weights per step")
    return out


def _numbers(row: dict) -> list[float]:
    return [v for v in row.values() if isinstance(v, float)]


def _worst_pair(rows: list[dict], ratio) -> tuple[int, int, float]:
    """The pair i < j with the largest ratio(speed_i, speed_j) (0 where a speed is 0)."""
    best = (0, 1, 0.0)
    for i in range(len(rows)):
        for j in range(i + 1, len(rows)):
            a, b = rows[i]["speed"], rows[j]["speed"]
            r = ratio(a, b) if a > 0 and b > 0 else 0.0
            if r > best[2]:
                best = (i, j, r)
    return best


def _fmt_ratio(r: float) -> str:
    return f"{r:.0f}x" if r < 1e4 else f"{r:.1e}x"


# --- the report ----------------------------------------------------------------------------------
@dataclass
class Report:
    """Per-layer statistics of one probe batch and the verdicts drawn from them."""

    loss: float
    layers: list[dict]
    verdicts: list[str] = field(default_factory=list)

    def table(self) -> str:
        cols = [("layer", "layer"), ("type", "type"), ("|delta|", "delta"), ("|dC/db|", "db"),
                ("|dC/dW|", "dW"), ("speed", "speed"), ("upd/w", "update"), ("a mean", "a_mean"),
                ("a std", "a_std"), ("dead", "dead"), ("satur.", "saturated")]  # fmt: skip
        rows = [[h for h, _ in cols]]
        for r in self.layers:
            cells = []
            for _, key in cols:
                v = r.get(key)
                if key == "layer":
                    cells.append(f"{v} (#{r['index']})")
                elif v is None:
                    cells.append("-")
                elif key in ("dead", "saturated"):
                    cells.append(f"{100 * v:.0f}%")
                elif isinstance(v, float):
                    cells.append(f"{v:.2e}" if key not in ("a_mean", "a_std") else f"{v:.3f}")
                else:
                    cells.append(str(v))
            rows.append(cells)
        widths = [max(len(row[c]) for row in rows) for c in range(len(cols))]
        lines = ["  ".join(c.rjust(w) for c, w in zip(row, widths)) for row in rows]
        return "\n".join(lines)

    def __str__(self) -> str:
        found = self.verdicts or ["no problems found (thresholds: glassnet.diagnostics)"]
        return f"loss {self.loss:.4f}\n{self.table()}\n" + "\n".join(f"- {v}" for v in found)

    def to_dict(self) -> dict:
        return {"loss": self.loss, "layers": self.layers, "verdicts": self.verdicts}


def report(
    model: Module, loss_fn, x: np.ndarray, y: np.ndarray, optimizer=None, regularizer=None, clip_norm=None
) -> Report:
    """Gradient flow through ``model`` on the batch ``(x, y)``: per-layer statistics and verdicts.
    ``x``: an array, or a tuple of arrays for a model with several inputs (a ``Graph``'s).

    With ``optimizer``, also the update-to-weight ratio of the step it would take on this batch
    (with ``fit``'s ``regularizer`` and ``clip_norm`` as its step applies them; computed on
    copies: nothing is updated). The model, its buffers and gradients are left as
    they were (see ``probing``).
    """
    with probing(model):
        w = walk(model, loss_fn, x, y, "diagnostics.report")
        rows = layer_stats(w, optimizer, regularizer, clip_norm)
    return Report(w.loss, rows, verdicts(rows))


class GradientFlow(Callback):
    """Per-layer gradient flow, dead and saturated units, each epoch, on one fixed probe batch.

    Measured once before training (epoch 0) and after every epoch on the same ``probe_size``
    examples, by default the first ones of the training data ``fit`` hands over (or the
    ``data=(x, y)`` given): one extra forward and backward per epoch, no hook on the training
    steps, so the cost is that of about ``probe_size / batch_size`` training steps per epoch.
    ``history`` holds one ``Report.to_dict()`` per measurement (with its ``epoch``);
    ``report()`` the last ``Report``, whose verdicts include growth of the gradient norm across
    epochs. With ``verbose=True`` each epoch's verdicts are printed (to stderr). Measured cost
    on the ``mlp`` preset (Fashion-MNIST, batch 128, one thread): within the noise of the epoch
    time (medians 5.07 s with, 5.11 s without, for two epochs).
    """

    def __init__(self, data=None, probe_size: int = 1000, verbose: bool = False) -> None:
        self.data, self.probe_size, self.verbose = data, int(probe_size), verbose
        self.history: list[dict] = []
        self.last: Report | None = None

    def on_train_begin(self, logs):
        x, y = self.data if self.data is not None else (self.train_data.x, self.train_data.y)
        self.x = cast_inputs(self.model, take_rows(x, slice(self.probe_size)))  # a tuple: several inputs
        self.y = np.asarray(y[: self.probe_size])
        self.history = []
        self._measure(0)

    def on_epoch_end(self, epoch, logs):
        self._measure(epoch + 1)

    def _measure(self, epoch: int) -> None:
        loop = getattr(self, "loop", None)  # fit's step: its penalty and clipping change the update
        step = {} if loop is None else {"regularizer": loop.regularizer, "clip_norm": loop.clip_norm}
        rep = report(self.model, self.loss_fn, self.x, self.y, self.optimizer, **step)
        # dW and db cover all of a layer's parameters: this is the norm of the whole gradient
        total = math.sqrt(sum((r["dW"] or 0.0) ** 2 + (r["db"] or 0.0) ** 2 for r in rep.layers))
        grown = self._growth(total)
        if grown is not None:
            rep.verdicts.append(grown)
        self.last = rep
        self.history.append({"epoch": epoch, "grad_norm": total, **rep.to_dict()})
        if self.verbose and rep.verdicts:
            # progress reporting, on stderr as ProgressBar's
            print(
                f"gradient flow after epoch {epoch}: " + "; ".join(rep.verdicts), file=sys.stderr, flush=True
            )

    def _growth(self, total: float) -> str | None:
        """The exploding-in-time verdict: the gradient norm grew GROWTH_WARN-fold or more."""
        recent = [h["grad_norm"] for h in self.history[-GROWTH_EPOCHS:]]
        if not recent or not math.isfinite(total):
            return None
        low = min(recent)
        if low > 0 and total / low >= GROWTH_WARN:
            k = len(recent) - recent.index(low)
            return f"exploding: gradient norm grew {total / low:.0e}x in {k} epoch{'s' * (k > 1)}"
        return None

    def report(self) -> Report | None:
        return self.last

    def speeds(self) -> dict[str, list[float]]:
        """Speed of learning of every layer with parameters (weight, recurrent, batch norm)
        across the measurements: ``{"layer 1": [...], ...}``, numbered as in the report."""
        out: dict[str, list[float]] = {}
        for h in self.history:
            for r in h["layers"]:
                out.setdefault(f"layer {r['layer']}", []).append(r["speed"])
        return out

    def to_dict(self) -> dict:
        """The measurements as ``gradient_flow.json`` holds them. JSON has no NaN or infinity:
        a statistic that is not finite is written as null (``history`` keeps the float)."""
        return {
            "probe_size": len(self.y) if hasattr(self, "y") else 0,
            "history": _finite_or_null(self.history),
        }

    def state_dict(self) -> dict:
        """The measurements so far, so that a resumed run's gradient_flow.json is whole."""
        return {"history": self.history}

    def load_state_dict(self, state: dict) -> None:
        history = state["history"]
        # the resumed run reads each measurement's grad_norm (_growth) and layers (TensorBoard)
        if not (
            isinstance(history, list)
            and all(
                isinstance(h, dict)
                and isinstance(h.get("layers"), list)
                and isinstance(h.get("grad_norm"), (int, float))
                and not isinstance(h["grad_norm"], bool)
                for h in history
            )
        ):
            raise ValueError("'history' must list measurements (objects with 'grad_norm' and 'layers')")
        self.history = history


def _finite_or_null(v):
    """``v`` with every float that is NaN or infinite replaced by None, in lists and dicts."""
    if isinstance(v, float):
        return v if math.isfinite(v) else None
    if isinstance(v, dict):
        return {k: _finite_or_null(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_finite_or_null(x) for x in v]
    return v


# --- summary -------------------------------------------------------------------------------------
def summary(model: Module, input_shape: tuple[int, ...] | None = None, batch_size: int = 32) -> str:
    """A table of layers, output shapes (when ``input_shape``, without the batch axis, is given)
    and parameter counts, like Keras' ``model.summary()``; with a shape, also the memory a
    training batch of ``batch_size`` needs. A shape that does not fit a layer raises
    ``ShapeError`` naming the layer, before any training. A model with several inputs (a
    ``Graph``'s) takes a list of shapes, one per input: ``summary(graph, [(16,), (3,)])``."""
    dtype = np.dtype(model_dtype(model))
    rows = [("#", "layer", "output shape", "params")]
    activations = largest = 0
    if input_shape is None:
        shapes = {name: (layer, "") for name, layer in leaves(model)}
    else:
        shapes = {}

        def ran(name: str, layer: Module, _, y: np.ndarray) -> None:
            nonlocal activations, largest
            if is_layer(layer):
                shapes.pop(name, None)  # a layer run twice is listed where it last ran
                shapes[name] = (layer, str(("N", *y.shape[1:])).replace("'", ""))
                activations += y[0].size
                largest = max(largest, y[0].size)

        with evaluating(model):
            try:
                several = len(input_shape) > 0 and all(isinstance(s, (tuple, list)) for s in input_shape)
                xs = [np.zeros((1, *s), dtype=dtype) for s in (input_shape if several else [input_shape])]
                forward(model, xs[0], ran, *xs[1:])
            except LayerShapeError as e:
                raise ShapeError(
                    f"summary: layer #{e.name} ({type(e.layer).__name__}) cannot take input of shape "
                    f"(N, {', '.join(map(str, e.input_shape[1:]))}): {e.reason}"
                ) from None
    for name, (layer, shape) in shapes.items():
        count = sum(p.data.size for p in layer.params)  # a container's own: its layers have rows
        rows.append((name, repr(layer), shape, f"{count:,}"))
    trainable = sum(p.data.size for p in model.parameters())
    frozen = sum(b.size for _, b in model.named_buffers())
    widths = [max(len(r[c]) for r in rows) for c in range(4)]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]
    lines.insert(1, "-" * len(lines[0]))
    lines.append("-" * len(lines[0]))
    lines.append(f"total parameters: {trainable + frozen:,} ({dtype})")
    lines.append(f"  trainable: {trainable:,}   non-trainable (buffers): {frozen:,}")
    if input_shape is not None:
        # forward keeps every layer's output for backward; backward holds about two gradient
        # arrays at a time (dy and dx); parameters have a gradient of their own size
        item = dtype.itemsize
        kept, in_flight = activations * batch_size * item, 2 * largest * batch_size * item
        params = (2 * trainable + frozen) * item
        lines.append(
            f"memory for a training batch of {batch_size}: about {_mb(kept + in_flight + params)} "
            f"(layer outputs {_mb(kept)}, gradients in flight {_mb(in_flight)}, parameters, "
            f"gradients and buffers {_mb(params)}; optimizer state and layer scratch not included)"
        )
    return "\n".join(lines)


def _mb(n: int) -> str:
    return f"{n / 2**20:.1f} MiB" if n >= 2**20 else f"{n / 2**10:.1f} KiB"


__all__ = [
    "GradientFlow",
    "Report",
    "Walk",
    "is_weight_layer",
    "layer_stats",
    "leaves",
    "probing",
    "report",
    "summary",
    "verdicts",
    "walk",
]
