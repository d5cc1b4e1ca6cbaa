"""Walking a model layer by layer: the one tree walk that diagnostics, NaN provenance, ``trace``
and ``summary`` share, instead of hooks or a global mode.

A model is a tree of modules: every ``Module`` lists its ``children``. A *layer* is a module
without children, or a container's own parameters (a container that owns ``params`` is a layer
too). Each module is named by its path of child names, as ``named_parameters`` names its
parameters: ``"3"``, ``"2.1"``, ``"2.block.0"``, a graph's node by its name, ``"1.h"`` (a layer
that is the whole model is ``"0"``).

``forward`` and ``backward`` run a model's own passes and call ``visit`` after each module has
run, with what went in and what came out. A ``Sequential`` is a chain, so its children are run
one at a time, in order; any other container runs its own ``forward``/``backward`` code, during
which each of its children reports to ``visit`` when the container calls it (its ``forward``,
``backward`` and ``backward_params`` are shadowed by reporting ones on the instance, and put
back when the container returns). So a user's residual block shows its inner layers with the
inputs, outputs and gradients they really had. ``walk`` keeps all of them for one pass;
``probing`` runs such a pass without disturbing training.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np

from .layers import activations
from .module import Module, Sequential, ShapeError, cast_inputs, keep_modes, named_modules, one_output

# visit(name, module, input, output) after a forward; visit(name, module, dy, dx) after a
# backward (dx None after backward_params). A module with several inputs (Add, a graph node
# merging two others) reports them as a tuple, and its dx is the tuple its backward returned.
Visit = Callable[[str, Module, np.ndarray, "np.ndarray | None"], None]

_METHODS = ("forward", "backward", "backward_params")


def is_layer(module: Module) -> bool:
    """A module that a walk reports as a layer: it has no children, or parameters of its own."""
    return not module.children or bool(module.params)


def leaves(model: Module) -> Iterator[tuple[str, Module]]:
    """``(name, layer)`` for every layer of the tree (see ``is_layer``), in the tree's order,
    which is the order of a forward pass for ``Sequential``s and for most containers."""
    return ((name, m) for name, m in named_modules(model) if is_layer(m))


# the book's sigma: every activation layer (and subclasses of them)
_ACTIVATIONS = tuple(
    c for c in vars(activations).values() if isinstance(c, type) and issubclass(c, Module) and c is not Module
)


def is_activation(layer: Module) -> bool:
    """A layer whose output is an a of the book: an activation (sigma) layer or a subclass of one."""
    return isinstance(layer, _ACTIVATIONS)


def is_weight_layer(layer: Module) -> bool:
    """A layer whose output is a z of the book: it owns a weight matrix ``W``."""
    return hasattr(layer, "W") and bool(layer.params)


class LayerShapeError(ShapeError):
    """A ``ShapeError`` raised by a layer during a walk, prefixed with the layer's name and type;
    ``name``, ``layer``, ``input_shape`` and ``reason`` (the layer's own message) are kept."""

    def __init__(self, name: str, layer: Module, input_shape: tuple[int, ...], reason: str) -> None:
        self.name, self.layer, self.input_shape, self.reason = name, layer, input_shape, reason
        super().__init__(f"layer #{name} ({type(layer).__name__}): {reason}")


def forward(model: Module, x: np.ndarray, visit: Visit, *more: np.ndarray) -> np.ndarray:
    """``model.forward(x, *more)``, calling ``visit(name, module, input, output)`` after every
    module of the tree has run (children before the container holding them); ``more``: the
    further inputs of a model that takes several (a ``Graph``'s, an ``Add``)."""
    return _forward(model, next(named_modules(model))[0], visit, x, more, {})


def backward(model: Module, dy: np.ndarray, visit: Visit, input_grad: bool = True) -> np.ndarray | None:
    """``model.backward(dy)`` after ``forward``, calling ``visit(name, module, dy, dx)`` after every
    module's backward. ``input_grad=False`` is ``model.backward_params(dy)``: no dx for the
    model's input, as ``train_step`` runs it (the first layer with parameters skips its dx)."""
    return _backward(model, next(named_modules(model))[0], visit, dy, (), {}, params_only=not input_grad)


def _forward(m: Module, name: str, visit: Visit, x, args: tuple, kwargs: dict):
    if type(m).forward is Sequential.forward and not args and not kwargs:
        for i, child in enumerate(m.children):
            x = _forward(child, _join(name, i), visit, x, (), {})
        m._ran = list(enumerate(m.children))  # its own backward, if called next, goes layer by layer too
        return x
    try:
        with _reporting(m, name, visit):
            y = type(m).forward(m, x, *args, **kwargs)
    except LayerShapeError:  # named where it happened, inside
        raise
    except ShapeError as e:
        raise LayerShapeError(name, m, np.shape(x), str(e)) from None
    visit(name, m, (x, *args) if args else x, y)
    return y


def _backward(m: Module, name: str, visit: Visit, dy, args: tuple, kwargs: dict, params_only: bool = False):
    if type(m).backward is Sequential.backward and not args:
        # as Sequential.backward: below its first layer with parameters no gradient is needed
        params_only = params_only or not kwargs.get("input_grad", True)
        first = m.first_trainable
        for i in range(len(m.children) - 1, -1, -1):
            if params_only and i == first:
                _backward(m.children[i], _join(name, i), visit, dy, (), {}, params_only=True)
                return None
            dy = _backward(m.children[i], _join(name, i), visit, dy, (), {})
        return dy
    with _reporting(m, name, visit):
        if params_only:
            type(m).backward_params(m, dy, *args, **kwargs)
            dx = None
        else:
            dx = type(m).backward(m, dy, *args, **kwargs)
    visit(name, m, dy, dx)
    return dx


def _join(name: str, i: int | str) -> str:
    return f"{name}.{i}" if name else str(i)


@contextmanager
def _reporting(container: Module, name: str, visit: Visit):
    """While ``container``'s own code runs, its children report to ``visit`` when called; the
    children's own methods are put back when it returns (and while each of them runs, so that
    a layer calling its own ``backward`` from ``backward_params`` reports once)."""
    if not container.children:
        yield
        return
    shadowed = [(child, _join(name, i)) for i, child in container.named_children()]
    saved = [{k: vars(child)[k] for k in _METHODS if k in vars(child)} for child, _ in shadowed]
    for child, child_name in shadowed:
        _shadow(child, child_name, visit)
    try:
        yield
    finally:
        for (child, _), own in zip(shadowed, saved):
            for k in _METHODS:
                vars(child).pop(k, None)
            vars(child).update(own)


def _shadow(child: Module, name: str, visit: Visit) -> None:
    def run(method: str, *args, **kwargs):
        mine = {k: vars(child).pop(k) for k in _METHODS}
        try:
            if method == "forward":
                return _forward(child, name, visit, args[0], args[1:], kwargs)
            return _backward(child, name, visit, args[0], args[1:], kwargs, method == "backward_params")
        finally:
            vars(child).update(mine)

    for method in _METHODS:
        vars(child)[method] = lambda *a, _m=method, **k: run(_m, *a, **k)


@dataclass
class Walk:
    """One explicit forward and backward pass, layer by layer.

    ``names[i]``, ``layers[i]``: the i-th layer run (see ``is_layer``), in the order the forward
    ran them; ``inputs[i]`` the input it received, ``outputs[i]`` its output and ``grads[i]`` the
    gradient of the loss with respect to that output (the ``dy`` its backward received; zeros
    if it had none); ``x`` is the model's input; ``loss`` the cost. A layer run twice in one
    forward is kept at its last run.
    """

    names: list[str]
    layers: list[Module]
    x: np.ndarray
    inputs: list[np.ndarray]
    outputs: list[np.ndarray]
    grads: list[np.ndarray]
    loss: float


def walk(model: Module, loss_fn, x: np.ndarray, y: np.ndarray, owner: str = "walk") -> Walk:
    """Forward and backward through ``model`` keeping every layer's input, output and output
    gradient. Parameter gradients are *added* into ``p.grad`` as in any backward; zero them first.
    ``x``: an array, or a tuple of arrays for a model with several inputs (a ``Graph``'s); the
    model must have one output (``owner`` names the caller in that refusal).
    """
    x = cast_inputs(model, x)
    runs: dict[str, tuple[Module, np.ndarray, np.ndarray]] = {}

    def ran(name, m, a, h):
        if is_layer(m):
            runs.pop(name, None)  # a second run moves the layer to its place in the order
            runs[name] = (m, a, h)

    first, *more = x if isinstance(x, tuple) else (x,)
    h = one_output(forward(model, first, ran, *more), owner)
    loss = float(loss_fn.forward(h, y))
    grads: dict[str, np.ndarray] = {}
    backward(model, loss_fn.backward(), lambda name, m, dy, dx: grads.setdefault(name, dy))
    names = list(runs)
    layers, inputs, outputs = ([r[k] for r in runs.values()] for k in range(3))
    out_grads = [grads[n] if n in grads else np.zeros_like(o) for n, o in zip(names, outputs)]
    return Walk(names, layers, x, inputs, outputs, out_grads, loss)


@contextmanager
def probing(model: Module):
    """Run a probe without disturbing training: dropout off (and no RNG draws), batch norm on
    batch statistics with its running statistics restored, every ``p.grad`` restored."""
    buffers = {k: v.copy() for k, v in model.named_buffers()}
    params = model.parameters()
    saved_grads = [p.grad.copy() for p in params]
    with keep_modes(model):
        model.train()
        for m in model.modules():
            if hasattr(m, "rng"):  # the stochastic layers: dropout
                m.training = False
        try:
            for p in params:
                p.grad.fill(0)
            yield
        finally:
            for k, v in model.named_buffers():
                v[...] = buffers[k]
            for p, g in zip(params, saved_grads):
                p.grad[...] = g


__all__ = [
    "LayerShapeError",
    "Walk",
    "backward",
    "forward",
    "is_activation",
    "is_layer",
    "is_weight_layer",
    "leaves",
    "named_modules",
    "probing",
    "walk",
]
