"""Figures of a training run as PNG files: learning curves, per-layer gradient flow, confusion
matrix, first-layer weights.

matplotlib is an optional extra (``pip install 'glassnet[plot]'``), imported only when a plot is
drawn. Figures are built on ``matplotlib.figure.Figure`` with the Agg canvas directly, never
through ``pyplot``: no global backend is switched and no window can open, so plotting is safe
on a server and inside a user's own matplotlib session. Each file is written atomically.
"""

from __future__ import annotations

import io
import json
import math
import os

import numpy as np

from .io import write_atomic

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
    ax.legend(fontsize=7)


def confusion_counts(y_true: np.ndarray, y_pred: np.ndarray, classes: int | None = None) -> np.ndarray:
    """``m[i, j]`` = how many examples of class i were predicted as class j."""
    y_true, y_pred = np.asarray(y_true, dtype=np.int64), np.asarray(y_pred, dtype=np.int64)
    if y_true.shape != y_pred.shape:
        raise ValueError(f"confusion_counts: y_true {y_true.shape} and y_pred {y_pred.shape} differ")
    k = classes if classes is not None else int(max(y_true.max(), y_pred.max())) + 1
    return np.bincount(y_true * k + y_pred, minlength=k * k).reshape(k, k)


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


def first_layer_weights(model, path: str | os.PathLike, image_shape=None, max_units: int = 64) -> str:
    """The first weight layer's weights as images: one tile per hidden unit (Linear: its column
    of W reshaped to ``image_shape``, e.g. (28, 28)) or per filter (Conv: the first input
    channel of each kernel). Each tile is scaled on its own, blue negative, red positive."""
    from .walk import is_weight_layer, leaves

    layer = next((m for _, m in leaves(model) if is_weight_layer(m)), None)
    if layer is None:
        raise ValueError("first_layer_weights: the model has no weight layer (Linear or Conv)")
    W = np.asarray(layer.W.data)
    if W.ndim == 4:  # conv (out, in, kh, kw)
        tiles = W[:, 0]
    else:
        n_in = W.shape[0]
        if image_shape is None:
            side = math.isqrt(n_in)
            if side * side != n_in:
                raise ValueError(f"first_layer_weights: pass image_shape for {n_in} inputs (not a square)")
            image_shape = (side, side)
        if math.prod(image_shape) != n_in:
            raise ValueError(f"first_layer_weights: image_shape {image_shape} does not hold {n_in} inputs")
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
    fig.suptitle(f"first-layer weights ({type(layer).__name__}, {len(tiles)} units)", fontsize=9)
    return save_figure(fig, path)


def plot_run(run_dir: str | os.PathLike) -> list[str]:
    """Every figure a ``glassnet train`` run directory has the data for; returns the paths.

    Reads ``history.json`` (learning curves, the test confusion matrix), ``gradient_flow.json``
    and ``model.safetensors`` (first-layer weights); writes the PNGs next to them.
    """
    from .io import load

    run_dir = os.fspath(run_dir)
    path = os.path.join(run_dir, "history.json")
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path} not found: is {run_dir} the --out of a glassnet train run?")
    with open(path) as f:
        history = json.load(f)
    out = [learning_curves(history, os.path.join(run_dir, "learning_curves.png"))]
    if "confusion" in history:
        out.append(confusion_matrix(history["confusion"], os.path.join(run_dir, "confusion_matrix.png")))
    flow_path = os.path.join(run_dir, "gradient_flow.json")
    if os.path.exists(flow_path):
        with open(flow_path) as f:
            out.append(gradient_flow(json.load(f), os.path.join(run_dir, "gradient_flow.png")))
    model_path = os.path.join(run_dir, "model.safetensors")
    if os.path.exists(model_path):
        shape = history.get("input_shape")
        image = tuple(shape[-2:]) if shape and len(shape) >= 2 else None
        out.append(
            first_layer_weights(load(model_path), os.path.join(run_dir, "first_layer_weights.png"), image)
        )
    return out


__all__ = [
    "confusion_counts",
    "confusion_matrix",
    "first_layer_weights",
    "gradient_flow",
    "learning_curves",
    "plot_run",
    "save_figure",
]
