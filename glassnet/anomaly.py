"""NaN/inf provenance: find the first non-finite value of a training step and say where it came from.

``fit(..., detect_anomaly=True)`` (or passing a ``TerminateOnNaN()`` callback) runs every step
through ``checked_step``: the same step as ``train_step``, written out layer by layer so that
each intermediate value is checked where it is made. The first non-finite value raises
``AnomalyError`` naming

    the phase   "forward z"                    output of a weight layer (Linear, Conv)
                "activation"                   output of an activation layer (the book's a)
                "forward"                      output of any other layer (pooling, batch norm, ...)
                "loss"                         the cost C
                "delta (BP1)"                  dC/d(output) from the loss
                "delta (BP2)"                  the gradient a layer's backward returns
                "parameter gradient (BP3/BP4)" a p.grad after the layer's backward
                "regularizer"                  the penalty or its gradient
                "optimizer update"             a parameter after optimizer.step()
    the layer   its path in the module tree ("#3", "#2.1": child 1 of child 2, also inside a
                user-written container) and type
    the batch   epoch, batch number and the example indices of the batch
    the shapes  of the offending array, with the count and first position of bad values

and, for a forward phase, whether the layer's input and parameters were finite, which tells an
overflow inside the layer from a poisoned weight. An update that overflows is undone before the
error is raised (the parameters and optimizer state are put back), so the model can be saved
and inspected. Off (the default), ``fit`` runs its plain step: checking costs nothing.
"""

from __future__ import annotations

import math

import numpy as np

from . import walk
from .callbacks import Callback
from .module import Module
from .walk import is_activation, is_weight_layer

PHASES = (
    "forward z",
    "activation",
    "forward",
    "loss",
    "delta (BP1)",
    "delta (BP2)",
    "parameter gradient (BP3/BP4)",
    "regularizer",
    "optimizer update",
)


class AnomalyError(FloatingPointError):
    """The first non-finite value of a step: ``phase``, ``layer`` (its name, ``"3"``),
    ``layer_type``, ``shape`` (of the offending array), ``detail``, and once ``fit`` has placed
    it, ``epoch`` (from 1), ``batch`` (from 1), ``indices`` (the examples of the batch) and
    ``batch_shape`` (of the batch's input)."""

    def __init__(self, phase: str, layer: str | None, layer_type: str | None, shape, detail: str) -> None:
        self.phase, self.layer, self.layer_type = phase, layer, layer_type
        self.shape, self.detail = tuple(shape), detail
        self.epoch = self.batch = self.indices = self.batch_shape = None
        super().__init__(self._message())

    def at(self, epoch: int, batch: int, indices, batch_shape=None) -> AnomalyError:
        """Record where in training this happened (0-based epoch and batch, as ``fit`` counts),
        the indices of the batch's examples and the shape of the batch's input."""
        self.epoch, self.batch = epoch + 1, batch + 1
        self.indices = np.arange(indices.start, indices.stop) if isinstance(indices, slice) else indices
        self.batch_shape = tuple(batch_shape) if batch_shape is not None else None
        self.args = (self._message(),)
        return self

    def _message(self) -> str:
        where = f"layer #{self.layer} ({self.layer_type})" if self.layer is not None else self.layer_type
        msg = f"non-finite value in phase '{self.phase}' at {where}: {self.detail}"
        if self.epoch is not None:
            idx = self.indices
            shown = ", ".join(str(int(i)) for i in idx[:8]) + (", ..." if len(idx) > 8 else "")
            msg += f"; epoch {self.epoch}, batch {self.batch}, examples [{shown}] ({len(idx)} in all)"
            if self.batch_shape is not None:
                msg += f", input batch of shape {self.batch_shape}"
        return msg


def _bad(a) -> str | None:
    """None when every value is finite; else how many are not and where the first one is. A
    tuple (the inputs of a merge, the gradients its backward returned) is checked entry by entry."""
    if isinstance(a, tuple):
        bad = [(k, _bad(ak)) for k, ak in enumerate(a)]
        return "; ".join(f"input {k}: {b}" for k, b in bad if b) or None
    a = np.asarray(a)
    if a.dtype.kind != "f" or np.isfinite(a).all():
        return None
    mask = ~np.isfinite(a)
    first = np.unravel_index(int(np.argmax(mask)), a.shape) if a.ndim else ()
    nan = int(np.isnan(a).sum())
    counts = " and ".join(f"{k} {name}" for k, name in ((nan, "NaN"), (int(mask.sum()) - nan, "inf")) if k)
    return f"{counts} of {a.size} values in an array of shape {a.shape} (first at {list(map(int, first))})"


def _forward_phase(layer: Module) -> str:
    if is_weight_layer(layer):
        return "forward z"
    if is_activation(layer):
        return "activation"
    return "forward"


def _params_note(layer: Module) -> str:
    notes = [f"parameter {p.name} holds {_bad(p.data)}" for p in layer.parameters() if _bad(p.data)]
    return "; ".join(notes) if notes else "its parameters are finite"


def checked_forward_backward(model: Module, loss_fn, x: np.ndarray, y: np.ndarray):
    """Forward, loss and backward (gradients added into ``p.grad``), layer by layer through the
    whole module tree (inside user-written containers too, see ``glassnet.walk``), checking
    every output, delta and parameter gradient; returns ``(loss, prediction)``. ``x``: an
    array, or a tuple of arrays for a model with several inputs."""
    xs = x if isinstance(x, tuple) else (x,)
    h = walk.forward(model, xs[0], _check_forward, *xs[1:])
    loss = float(loss_fn.forward(h, y))
    name = type(loss_fn).__name__
    if not math.isfinite(loss):
        raise AnomalyError("loss", None, name, (), f"the loss is {loss} on finite predictions {h.shape}")
    d = loss_fn.backward()
    if _bad(d):
        raise AnomalyError("delta (BP1)", None, name, d.shape, f"dC/d(output) {_bad(d)}")
    # no gradient for the input, as train_step: the first layer with parameters skips its dx
    walk.backward(model, d, _check_backward, input_grad=False)
    return loss, h


def _check_forward(name: str, layer: Module, x: np.ndarray, out: np.ndarray) -> None:
    """A module's output is finite (the children of a container were checked before it)."""
    bad = _bad(out)
    if bad:
        source = "its input was finite" if _bad(x) is None else "its input was not finite"
        raise AnomalyError(
            _forward_phase(layer), name, type(layer).__name__, out.shape,
            f"output {bad}; {source}; {_params_note(layer)}",
        )  # fmt: skip


def _check_backward(name: str, layer: Module, dy: np.ndarray, dx: np.ndarray | None) -> None:
    """The delta a module's backward returned and its own parameters' gradients are finite."""
    if dx is not None and _bad(dx):
        raise AnomalyError(
            "delta (BP2)", name, type(layer).__name__, np.shape(dx[0] if isinstance(dx, tuple) else dx),
            f"backward returned dC/d(input) {_bad(dx)}; the delta it received was finite",
        )  # fmt: skip
    for p in layer.params:
        if _bad(p.grad):
            raise AnomalyError(
                "parameter gradient (BP3/BP4)", name, type(layer).__name__, p.grad.shape,
                f"dC/d{p.name} {_bad(p.grad)}",
            )  # fmt: skip


def _owner(model: Module, p) -> tuple[str | None, str]:
    """The name and type of the module that owns parameter ``p``, anywhere in the tree."""
    for name, m in walk.named_modules(model):
        if any(q is p for q in m.params):
            return name, type(m).__name__
    return None, "parameter"


def checked_step(
    model, loss_fn, optimizer, x, y, regularizer=None, clip_norm=None
) -> tuple[float, np.ndarray]:
    """``train_step`` with every intermediate value checked (see the module docstring)."""
    from .optim import clip_grad_norm

    optimizer.zero_grad()
    loss, pred = checked_forward_backward(model, loss_fn, x, y)
    if regularizer is not None:
        penalty = float(regularizer.penalty(optimizer.params))
        if not math.isfinite(penalty):
            raise AnomalyError(
                "regularizer", None, type(regularizer).__name__, (), f"the penalty is {penalty}"
            )
        loss += penalty
        regularizer.backward(optimizer.params)
        for p in optimizer.params:
            if _bad(p.grad):
                name, kind = _owner(model, p)
                raise AnomalyError("regularizer", name, kind, p.shape, f"dC/d{p.name} {_bad(p.grad)}")
    if clip_norm is not None:
        clip_grad_norm(optimizer.params, clip_norm)
    # keep what the step changes, to undo an update that overflows
    saved = [p.data.copy() for p in optimizer.params]
    state = {k: v.copy() for k, v in optimizer.state.items()}
    t = optimizer.t
    with np.errstate(over="ignore", invalid="ignore"):
        optimizer.step()
    for p in optimizer.params:
        bad = _bad(p.data)
        if bad:
            name, kind = _owner(model, p)
            g = float(np.sqrt(np.sum(np.square(p.grad, dtype=np.float64))))
            for q, o in zip(optimizer.params, saved):
                q.data[...] = o
            for k, v in state.items():
                optimizer.state[k][...] = v
            optimizer.t = t
            raise AnomalyError(
                "optimizer update", name, kind, p.shape,
                f"{p.name} after {type(optimizer).__name__}.step() (lr={optimizer.lr}) holds {bad}; "
                f"its gradient was finite (norm {g:.3g}); the update was undone",
            )  # fmt: skip
    return loss, pred


class TerminateOnNaN(Callback):
    """Stop at the first non-finite value and raise ``AnomalyError`` naming where it came from.

    Passing it to ``fit`` turns on ``detect_anomaly`` (every step is checked layer by layer,
    which makes steps slower: use it to find a NaN, not for every run); at the end of each
    epoch it also checks the logged metrics, such as ``val_loss``.
    """

    def on_epoch_end(self, epoch, logs):
        for k, v in logs.items():
            if not math.isfinite(v):
                raise AnomalyError("loss", None, "metric", (), f"{k} is {v} after epoch {epoch + 1}")


__all__ = ["PHASES", "AnomalyError", "TerminateOnNaN", "checked_forward_backward", "checked_step"]
