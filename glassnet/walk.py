"""Walking a model layer by layer: the explicit forward and backward pass that diagnostics,
NaN provenance and ``trace`` share, instead of hooks or a global mode.

``leaves(model)`` lists the layers a forward pass runs through (the children of a ``Sequential``,
recursively); ``walk`` runs them one at a time, keeping every output and output gradient;
``probing`` runs such a pass without disturbing training.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np

from .module import Module, Sequential, ShapeError


def leaves(model: Module, prefix: str = "") -> Iterator[tuple[str, Module]]:
    """``(name, layer)`` for every layer a forward pass runs through, in order: the children of
    a ``Sequential`` (recursively, named ``"3"`` or ``"2.1"``); any other module is one leaf."""
    if isinstance(model, Sequential):
        for i, child in enumerate(model.children):
            yield from leaves(child, f"{prefix}{i}.")
    else:
        yield prefix.rstrip(".") or "0", model


def is_weight_layer(layer: Module) -> bool:
    """A layer whose output is a z of the book: it owns a weight matrix ``W``."""
    return hasattr(layer, "W") and bool(layer.params)


@dataclass
class Walk:
    """One explicit forward and backward pass, layer by layer.

    ``outputs[i]`` is the output of leaf i and ``grads[i]`` the gradient of the loss with respect
    to it (the ``dy`` its backward received); ``x`` is the input; ``loss`` the cost.
    """

    names: list[str]
    layers: list[Module]
    x: np.ndarray
    outputs: list[np.ndarray]
    grads: list[np.ndarray]
    loss: float


def walk(model: Module, loss_fn, x: np.ndarray, y: np.ndarray) -> Walk:
    """Forward and backward through ``model`` keeping every layer's output and output gradient.

    Parameter gradients are *added* into ``p.grad`` as in any backward; zero them first.
    """
    from .train import model_dtype

    pairs = list(leaves(model))
    names, layers = [n for n, _ in pairs], [m for _, m in pairs]
    x = np.asarray(x).astype(model_dtype(model), copy=False)
    outputs, h = [], x
    for name, layer in zip(names, layers):
        try:
            h = layer.forward(h)
        except ShapeError as e:
            raise ShapeError(f"layer #{name} ({type(layer).__name__}): {e}") from None
        outputs.append(h)
    loss = float(loss_fn.forward(h, y))
    d = loss_fn.backward()
    grads: list[np.ndarray] = [None] * len(layers)  # type: ignore[list-item]
    for i in range(len(layers) - 1, -1, -1):
        grads[i] = d
        d = layers[i].backward(d)
    return Walk(names, layers, x, outputs, grads, loss)


@contextmanager
def probing(model: Module):
    """Run a probe without disturbing training: dropout off (and no RNG draws), batch norm on
    batch statistics with its running statistics restored, every ``p.grad`` restored."""
    modes = [m.training for m in model.modules()]
    buffers = {k: v.copy() for k, v in model.named_buffers()}
    params = model.parameters()
    saved_grads = [p.grad.copy() for p in params]
    model.train()
    for m in model.modules():
        if hasattr(m, "rng"):  # the stochastic layers: dropout
            m.training = False
    try:
        for p in params:
            p.grad.fill(0)
        yield
    finally:
        for m, mode in zip(model.modules(), modes):
            m.training = mode
        for k, v in model.named_buffers():
            v[...] = buffers[k]
        for p, g in zip(params, saved_grads):
            p.grad[...] = g


__all__ = ["Walk", "is_weight_layer", "leaves", "probing", "walk"]
