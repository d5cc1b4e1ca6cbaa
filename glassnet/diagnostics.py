"""Looking inside a model: a layer-by-layer summary (more diagnostics arrive with issue #5)."""

from __future__ import annotations

import numpy as np

from .module import Module


def summary(model: Module, input_shape: tuple[int, ...] | None = None) -> str:
    """A table of layers, output shapes (when ``input_shape``, without the batch axis, is given)
    and parameter counts, like Keras' ``model.summary()``."""
    layers = list(model.children) if model.children else [model]
    x = np.zeros((1, *input_shape), dtype=np.float32) if input_shape is not None else None
    rows = [("#", "layer", "output shape", "params")]
    total = 0
    from .train import evaluating

    with evaluating(model):
        for i, layer in enumerate(layers):
            shape = ""
            if x is not None:
                x = layer.forward(x.astype(layer.parameters()[0].data.dtype) if layer.parameters() else x)
                shape = str(("N", *x.shape[1:])).replace("'", "")
            count = sum(p.data.size for p in layer.parameters())
            total += count
            rows.append((str(i), repr(layer), shape, f"{count:,}"))
    widths = [max(len(r[c]) for r in rows) for c in range(4)]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]
    lines.insert(1, "-" * len(lines[0]))
    dtype = model.parameters()[0].data.dtype if model.parameters() else "n/a"
    lines.append("-" * len(lines[0]))
    lines.append(f"total parameters: {total:,} ({dtype})")
    return "\n".join(lines)
