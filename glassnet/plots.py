"""Figures of a training run as PNG files: learning curves, per-layer gradient flow, confusion
matrix, first-layer weights.

matplotlib is an optional extra (``pip install 'glassnet[plot]'``), imported only when a plot is
drawn. Figures are built on ``matplotlib.figure.Figure`` with the Agg canvas directly, never
through ``pyplot``: no global backend is switched and no window can open, so plotting is safe
on a server and inside a user's own matplotlib session. Each file is written atomically.
"""

from __future__ import annotations

import io
import math
import os
from typing import NamedTuple

import numpy as np

from .errors import FileFormatError
from .io import write_atomic
from .metrics import confusion_matrix as _confusion_counts
from .module import is_int, is_number

DPI = 90


def figure(width: float, height: float):
    try:
        from matplotlib.figure import Figure
    except ModuleNotFoundError as e:
        if e.name != "matplotlib":  # installed but broken: the real cause, not "pip install"
            raise
        raise ImportError("plots need matplotlib: pip install 'glassnet[plot]'") from None
    return Figure(figsize=(width, height), dpi=DPI, layout="constrained")


def save_figure(fig, path: str | os.PathLike) -> str:
    """Render ``fig`` to PNG and write it atomically; returns the path."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI)
    write_atomic(path, buf.getvalue())
    return os.fspath(path)


def _history_dict(history) -> dict[str, list[float]]:
    if hasattr(history, "history"):  # a History callback
        history = history.history
    return history.get("history", history)  # history.json nests the metrics under "history"


def learning_curves(history, path: str | os.PathLike) -> str:
    """Training and validation loss (and accuracy, when logged) per epoch.

    ``history``: a ``History``, its ``to_dict()``, or the ``history.json`` of ``glassnet train``.
    """
    h = _history_dict(history)
    metrics = [m for m in ("loss", "accuracy") if m in h]
    if not metrics:
        raise ValueError(f"learning_curves: no 'loss' or 'accuracy' in the history (keys {sorted(h)})")
    fig = figure(4.2 * len(metrics), 3.2)
    for ax, m in zip(fig.subplots(1, len(metrics), squeeze=False)[0], metrics):
        epochs = np.arange(1, len(h[m]) + 1)
        ax.plot(epochs, h[m], "o-", ms=3, label=f"train {m}")
        if f"val_{m}" in h:
            ax.plot(epochs, h[f"val_{m}"], "s-", ms=3, label=f"validation {m}")
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.set_xlabel("epoch")
        ax.set_ylabel(m)
        ax.grid(alpha=0.3)
        ax.legend()
    return save_figure(fig, path)


def gradient_flow(flow, path: str | os.PathLike, title: str | None = None) -> str:
    """Speed of learning of each layer with parameters across epochs, log scale: the book's
    chapter-5 figure. ``flow``: a ``GradientFlow`` callback or its ``to_dict()``
    (``gradient_flow.json``, whose non-finite values are null)."""
    history = flow.history if hasattr(flow, "history") else flow["history"]
    fig = figure(5.5, 3.6)
    _draw_speeds(fig.subplots(), history, title or "speed of learning per layer")
    return save_figure(fig, path)


def _draw_speeds(ax, history: list[dict], title: str) -> None:
    """One line per layer with parameters: rms delta (the speed, see ``glassnet.diagnostics``)
    per epoch. Weight layers (Linear, Conv; the book's z) are solid; the others (recurrent, batch
    norm), whose speed is measured on an output that is not a z, are dashed. A missing or
    non-finite speed leaves a gap."""
    lines: dict[str, tuple[list[float], list[float], bool]] = {}
    for h in history:
        for r in h["layers"]:
            name = f"layer {r['layer']} (#{r['index']} {r['type']})"
            epochs, speeds, _ = lines.setdefault(name, ([], [], bool(r.get("weight", True))))
            epochs.append(h["epoch"])
            speeds.append(math.nan if r["speed"] is None else r["speed"])
    for name, (epochs, speeds, weight) in lines.items():
        ax.semilogy(epochs, speeds, "o-" if weight else "s--", ms=3, label=name)
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.set_xlabel("epoch (0: before training)")
    ax.set_ylabel("speed of learning (rms delta)")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3, which="both")
    if lines:  # a flow file without layers draws empty axes, with no legend to warn about
        ax.legend(fontsize=7)


def confusion_counts(y_true, y_pred, classes: int | None = None) -> np.ndarray:
    """``m[i, j]`` = how many examples of class i were predicted as class j: the counts that
    ``confusion_matrix`` draws (``glassnet.metrics.confusion_matrix``, under this module's name)."""
    return _confusion_counts(y_true, y_pred, classes)


def confusion_matrix(matrix, path: str | os.PathLike, labels: list[str] | None = None) -> str:
    """The confusion matrix (rows: true class, columns: predicted), counts written in the cells."""
    m = np.asarray(matrix)
    k = m.shape[0]
    fig = figure(1.2 + 0.45 * k, 1.0 + 0.42 * k)
    ax = fig.subplots()
    ax.imshow(m, cmap="Blues")
    names = labels if labels is not None else [str(i) for i in range(k)]
    ax.set_xticks(range(k), names, rotation=45 if labels else 0, fontsize=7)
    ax.set_yticks(range(k), names, fontsize=7)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    acc = np.trace(m) / max(m.sum(), 1)
    ax.set_title(f"confusion matrix (accuracy {100 * acc:.2f}%)", fontsize=9)
    top = m.max() if m.size else 0
    for i in range(k):
        for j in range(k):
            ax.text(j, i, str(m[i, j]), ha="center", va="center", fontsize=6,
                    color="white" if m[i, j] > top / 2 else "black")  # fmt: skip
    return save_figure(fig, path)


class NotApplicableError(ValueError):
    """A figure that does not apply to this model or data (weights of 1-D inputs as images,
    say); ``plot_run`` skips it with this message as the note."""


def first_layer_weights(model, path: str | os.PathLike, image_shape=None, max_units: int = 64) -> str:
    """The first weight layer's weights as images: one tile per hidden unit (Linear: its column
    of W reshaped to ``image_shape``, e.g. (28, 28)) or per filter (Conv2d: the first input
    channel of each kernel). Each tile is scaled on its own, blue negative, red positive.

    Raises ``NotApplicableError`` (a ``ValueError``) when the weights are not images: no
    Linear or Conv2d layer, another layer with parameters before it (a GRU reading the input,
    say), 1-D kernels, or a Linear whose inputs ``image_shape`` does not hold.
    """
    from .walk import is_weight_layer, leaves

    first = next((m for _, m in leaves(model) if m.params), None)
    if first is None or not is_weight_layer(first):
        what = (
            "has no layer with parameters"
            if first is None
            else f"reads its input with {type(first).__name__}"
        )
        raise NotApplicableError(f"the model {what}, not with a Linear or Conv2d layer")
    W = np.asarray(first.W.data)
    if W.ndim == 4:  # conv (out, in, kh, kw)
        tiles = W[:, 0]
    elif W.ndim != 2:
        raise NotApplicableError(
            f"the first weight layer ({type(first).__name__}) has 1-D kernels, not images"
        )
    else:
        n_in = W.shape[0]
        if image_shape is None:
            side = math.isqrt(n_in)
            if side * side != n_in:
                raise NotApplicableError(f"pass image_shape for {n_in} inputs (not a square)")
            image_shape = (side, side)
        if math.prod(image_shape) != n_in:
            raise NotApplicableError(f"image_shape {tuple(image_shape)} does not hold the {n_in} inputs")
        tiles = W.T.reshape(-1, *image_shape)
    tiles = tiles[:max_units]
    cols = math.ceil(math.sqrt(len(tiles)))
    rows = math.ceil(len(tiles) / cols)
    fig = figure(1.0 * cols, 1.0 * rows + 0.3)
    axes = fig.subplots(rows, cols, squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i < len(tiles):
            lim = float(np.abs(tiles[i]).max()) or 1.0
            ax.imshow(tiles[i], cmap="bwr", vmin=-lim, vmax=lim)
    fig.suptitle(f"first-layer weights ({type(first).__name__}, {len(tiles)} units)", fontsize=9)
    return save_figure(fig, path)


class RunFigures(NamedTuple):
    """What ``plot_run`` did: the paths it wrote, and (figure, why) for each it skipped."""

    written: list[str]
    skipped: list[tuple[str, str]]


def plot_run(run_dir: str | os.PathLike) -> RunFigures:
    """Every figure a ``glassnet train`` run directory has the data for, written next to it.

    Reads ``history.json`` (learning curves, the test confusion matrix), ``gradient_flow.json``
    and ``model.safetensors`` (first-layer weights). Every file is read and checked before any
    figure is drawn, so a broken one (a ``FileFormatError`` naming it) leaves no figures half
    made. A figure that does not apply (first-layer weights of a model reading 1-D signals) is
    skipped, and said so in ``skipped``; the others are still drawn.
    """
    from .io import load

    run_dir = os.fspath(run_dir)
    path = os.path.join(run_dir, "history.json")
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path} not found: is {run_dir} the --out of a glassnet train run?")
    history = read_history(path)
    flow_path = os.path.join(run_dir, "gradient_flow.json")
    flow = read_gradient_flow(flow_path) if os.path.exists(flow_path) else None
    model_path = os.path.join(run_dir, "model.safetensors")
    model = load(model_path) if os.path.exists(model_path) else None

    curves, confusion, flow_png, weights = (os.path.join(run_dir, name) for name in RUN_FIGURES)
    written = [learning_curves(history, curves)]
    skipped: list[tuple[str, str]] = []
    if "confusion" in history:
        written.append(confusion_matrix(history["confusion"], confusion))
    if flow is not None:
        written.append(gradient_flow(flow, flow_png))
    if model is not None:
        shape = history.get("input_shape")
        try:
            if shape is not None and len(shape) < 2:
                raise NotApplicableError(f"the inputs are 1-D (input_shape {shape}), not images")
            image = tuple(shape[-2:]) if shape else None
            written.append(first_layer_weights(model, weights, image))
        except NotApplicableError as e:
            skipped.append(("first-layer weights", str(e)))
    return RunFigures(written, skipped)


# the figures ``plot_run`` writes into a run directory (a new run over it removes them with its
# results: runs.start_run_dir)
RUN_FIGURES = ("learning_curves.png", "confusion_matrix.png", "gradient_flow.png", "first_layer_weights.png")

# the metric lists learning_curves draws, each one value per epoch
CURVES = ("loss", "accuracy", "val_loss", "val_accuracy")
MAX_CONFUSION = 100  # classes; a bigger matrix is a hostile file, not a figure anyone can read


def read_history(path: str | os.PathLike) -> dict:
    """The ``history.json`` of ``glassnet train``, checked for what ``plot_run`` draws: under
    ``"history"`` a ``"loss"`` list and optionally ``"accuracy"``, ``"val_loss"``,
    ``"val_accuracy"``, lists of numbers of one length; ``"confusion"``, a square matrix of
    counts; the model's metadata fields (``glassnet.io.check_metadata``). Anything else is a
    ``FileFormatError`` naming the file and what was expected."""
    from .io import check_metadata, read_json

    path = os.fspath(path)
    data = read_json(path)
    if not isinstance(data, dict) or not isinstance(data.get("history"), dict):
        raise FileFormatError(
            path, "expected an object with a 'history' object (glassnet train's history.json)"
        )
    h = data["history"]
    if "loss" not in h:
        raise FileFormatError(path, "'history' has no 'loss' list")
    for m in CURVES:
        if m in h and not (isinstance(h[m], list) and h[m] and all(is_number(v) for v in h[m])):
            raise FileFormatError(path, f"'history'.{m!r} must be a non-empty list of numbers")
        if m in h and len(h[m]) != len(h["loss"]):
            raise FileFormatError(path, f"'history'.{m!r} has {len(h[m])} epochs, 'loss' {len(h['loss'])}")
    check_metadata(path, data, "history.json")
    if "confusion" in data:
        m = data["confusion"]
        k = len(m) if isinstance(m, list) else 0
        if not (
            1 <= k <= MAX_CONFUSION
            and all(isinstance(row, list) and len(row) == k for row in m)
            and all(
                isinstance(c, int) and not isinstance(c, bool) and 0 <= c < 2**53 for row in m for c in row
            )
        ):
            raise FileFormatError(
                path, f"'confusion' must be a square list of lists of counts, 1 to {MAX_CONFUSION} classes"
            )
    return data


def read_gradient_flow(path: str | os.PathLike) -> dict:
    """The ``gradient_flow.json`` of ``glassnet train`` (``GradientFlow.to_dict()``), checked for
    what the figure reads: a ``"history"`` list of measurements, each an object with an integer
    ``"epoch"`` and a ``"layers"`` list of objects with ``"layer"`` (integer), ``"index"``,
    ``"type"`` (strings), ``"weight"`` (true or false) and ``"speed"`` (a number), one per layer.
    Anything else is a ``FileFormatError`` naming the file and what was expected."""
    from .io import read_json

    path = os.fspath(path)
    data = read_json(path)
    if not isinstance(data, dict) or not isinstance(data.get("history"), list):
        raise FileFormatError(path, "expected an object with a 'history' list (GradientFlow.to_dict())")
    expected = {"layer": int, "index": str, "type": str, "weight": bool, "speed": float}
    for i, h in enumerate(data["history"]):
        where = f"'history'[{i}]"
        if not isinstance(h, dict) or not is_int(h.get("epoch")) or not isinstance(h.get("layers"), list):
            raise FileFormatError(
                path, f"{where} must be an object with an integer 'epoch' and a 'layers' list"
            )
        seen = set()
        for j, r in enumerate(h["layers"]):
            if not isinstance(r, dict) or not all(_is_a(r.get(k), t) for k, t in expected.items()):
                fields = ", ".join(f"{k!r} ({t.__name__})" for k, t in expected.items())
                raise FileFormatError(path, f"{where}.'layers'[{j}] must be an object with {fields}")
            key = (r["layer"], r["index"], r["type"])
            if key in seen:
                raise FileFormatError(path, f"{where} lists layer {r['layer']} ({r['index']}) twice")
            seen.add(key)
    return data


def _is_a(x, kind: type) -> bool:
    """JSON's types: an integer is not a bool, a float may be written as an integer."""
    if kind is bool:
        return isinstance(x, bool)
    if kind is int:
        return is_int(x)
    if kind is float:
        return is_number(x)
    return isinstance(x, kind)


__all__ = [
    "NotApplicableError",
    "RunFigures",
    "confusion_counts",
    "confusion_matrix",
    "first_layer_weights",
    "gradient_flow",
    "learning_curves",
    "plot_run",
    "read_gradient_flow",
    "read_history",
    "save_figure",
]
