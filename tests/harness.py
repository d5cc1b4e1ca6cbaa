"""The harness around the case table (``glassnet.cases.CASES``): its rows as pytest parameters,
named by row (the test ids), and the helpers the table-driven tests share.

Everything about a row is a field of the row, in the library's table; nothing here is keyed by
row name. A test that runs over the table parametrizes over ``rows(kind)``.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

import glassnet as gn
from glassnet.cases import CASES, REALISTIC_BATCH, Case
from glassnet.gradcheck import as_inputs


def has_params(case: Case) -> bool:
    return case.kind == "layer" and bool(case.build()[0].parameters())


def rows(kind: str, where: Callable[[Case], bool] = lambda case: True) -> list:
    """The rows of one kind ("layer", "loss", "regularizer") that satisfy ``where``, as pytest
    parameters whose id is the row's name."""
    return [pytest.param(case, id=case.name) for case in CASES if case.kind == kind and where(case)]


def several_inputs(case: Case) -> bool:
    return case.kind == "layer" and isinstance(case.build()[1], tuple)


def realistic_model(case: Case, seed: int = 0):
    """(model, x, labels) in float32 for the directional check of a layer row: the row's layer at
    its realistic size (``case.realistic``; the row's own layer if None) inside
    Sequential(Linear(d, d), layer, Flatten(), Linear(k, 10)) on a batch of ``REALISTIC_BATCH``,
    d the last entry of ``case.features`` (the first Linear makes every parameter-free layer's
    dx count). A layer with several inputs gets a graph of the same shape: a Linear on each
    input (of the row's per-example shapes), the layer, Flatten, Linear; x is then a tuple."""
    rng = np.random.default_rng(seed)
    layer = case.realistic(rng) if case.realistic is not None else case.make(rng)
    sample = case.sample(np.random.default_rng(seed))
    if isinstance(sample, tuple):
        return _realistic_graph(layer, sample, rng)
    shape = case.features
    x = rng.standard_normal((REALISTIC_BATCH, *shape)).astype(np.float32)
    first = gn.Linear(shape[-1], shape[-1], rng=rng)
    hidden = layer.forward(first.forward(x))
    model = gn.Sequential(first, layer, gn.Flatten(), gn.Linear(hidden[0].size, 10, rng=rng))
    return model, x, rng.integers(0, 10, size=REALISTIC_BATCH)


def _realistic_graph(layer: gn.Module, sample: tuple[np.ndarray, ...], rng):
    """Inputs with the batch axis get REALISTIC_BATCH examples and a Linear; one broadcast
    without it (a bias-like (4,)) goes in as the row samples it."""
    names = [f"x{k}" for k in range(len(sample))]
    batched = [s.ndim == sample[0].ndim for s in sample]
    xs = tuple(
        rng.standard_normal((REALISTIC_BATCH, *s.shape[1:]) if b else s.shape).astype(np.float32)
        for s, b in zip(sample, batched)
    )
    nodes, sources = [], []
    for k, (x, b) in enumerate(zip(xs, batched)):
        if b:
            nodes.append((f"in{k}", gn.Linear(x.shape[-1], x.shape[-1], rng=rng), names[k]))
        sources.append(f"in{k}" if b else names[k])
    values = dict(zip(names, xs))
    for name, m, source in nodes:
        values[name] = m.forward(values[source])
    hidden = layer.forward(*(values[s] for s in sources))
    nodes += [
        ("layer", layer, sources),
        ("flat", gn.Flatten(), "layer"),
        ("out", gn.Linear(hidden[0].size, 10, rng=rng), "flat"),
    ]
    return gn.Graph(names, nodes, "out"), xs, rng.integers(0, 10, size=REALISTIC_BATCH)


def grads_after_backward(layer: gn.Module, x, dy: np.ndarray, times: int):
    """Zero the grads, run forward once and backward ``times`` times; return copies of the grads
    (noise drawn from a fixed seed: a layer with dropout inside draws the same masks each call)."""
    layer.zero_grad()
    layer.set_rng(0)
    layer.forward(*as_inputs(x))
    for _ in range(times):
        layer.backward(dy)
    return {name: p.grad.copy() for name, p in layer.named_parameters()}


# --- shared command-line fixtures ------------------------------------------------------------
# a small digits run that writes a checkpoint mid-epoch (tests of the CLI add --out)
DIGITS_RUN = ["train", "--dataset", "digits", "--model", "mlp", "--epochs", "3", "--seed", "1",
              "--checkpoint-every", "4"]  # fmt: skip

# the smallest experiment worth reporting on: two variants (one an ensemble) over two seeds
TINY_EXPERIMENT = {
    "name": "tiny",
    "seeds": [0, 1],
    "data": {"dataset": "digits", "train_size": 100, "test_size": 50},
    "train": {"epochs": 2, "batch_size": 32},
    "model": {"hidden": [8]},
    "optimizer": {"name": "adam", "lr": 0.01},
    "variants": {"none": {}, "ens": {"train": {"ensemble": 2}}},
}


def memory_layout(a: np.ndarray) -> str:
    """How a 4-D NCHW array lies in memory: "pixel-major" (H, W, N, C), "channels-last"
    (N, H, W, C), "nchw" (C order) or "other" (checked in that order)."""
    orders = {"pixel-major": (2, 3, 0, 1), "channels-last": (0, 2, 3, 1), "nchw": (0, 1, 2, 3)}
    return next((name for name, axes in orders.items() if a.transpose(axes).flags.c_contiguous), "other")
