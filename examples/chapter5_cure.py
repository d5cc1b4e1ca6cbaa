"""The cure for the book's chapter 5: a 20-hidden-layer sigmoid net trained plain, with residual
connections, and with normalisation, on Fashion-MNIST.

The recipe is that of ``examples/chapter5_vanishing.py`` (docs/chapter5.md), only deeper:
hidden layers of 30 sigmoid units with the book's initialisation (weights N(0, 1/n_in), biases
N(0, 1)), softmax cross-entropy, 10,000 training images, SGD with eta = 0.1 and mini-batches of
10 for 10 epochs, the speed of learning of every hidden layer (rms delta^l, see
``glassnet.diagnostics``) measured by ``gn.GradientFlow`` on the same 1,000 images before
training and after every epoch. Four nets, each [784, 30 x 20, 10]:

- ``plain``: Linear -> Sigmoid, twenty times, as in the chapter;
- ``residual``: hidden layers 2 to 20 each wrapped in ``gn.Residual`` (a = a + sigmoid(W a + b));
  layer 1 changes the width (784 -> 30), so it is a plain layer;
- ``batchnorm``: Linear -> BatchNorm1d -> Sigmoid (the chapter's "sigmoid + batch norm");
- ``layernorm``: Linear -> LayerNorm -> Sigmoid.

Prints the numbers and writes chapter5_cure.png into ``--out DIR`` (default: a
new temporary directory; ``--out docs/figures`` updates the documentation's figure).
Run from the repository root: ``python examples/chapter5_cure.py`` (about 100 s on this
2-core machine).
"""

from __future__ import annotations

import os
import time

import numpy as np
from _common import output_dir  # examples/ is on sys.path when a script runs

import glassnet as gn
from glassnet.plots import figure, save_figure

KINDS = ("plain", "residual", "batchnorm", "layernorm")
DEPTH, WIDTH = 20, 30
TRAIN, EPOCHS, PROBE = 10_000, 10, 1000
SHOWN = (1, 5, 10, 15, 20)  # the hidden layers in the printed table


def build(
    kind: str, rng, depth: int = DEPTH, n_in: int = 784, width: int = WIDTH, n_out: int = 10
) -> gn.Sequential:
    """[n_in, width x depth, n_out] with sigmoid hidden layers and the book's init; ``kind`` is
    one of KINDS. The output layer gives logits for the softmax cross-entropy."""
    if kind not in KINDS:
        raise ValueError(f"kind: expected one of {KINDS}, got {kind!r}")
    layers: list[gn.Module] = [gn.Flatten()]
    for l in range(depth):
        body = [gn.Linear(n_in if l == 0 else width, width, init="book_normal", rng=rng)]
        if kind == "batchnorm":
            body.append(gn.BatchNorm1d(width))
        elif kind == "layernorm":
            body.append(gn.LayerNorm(width))
        body.append(gn.Sigmoid())
        if kind == "residual" and (l > 0 or n_in == width):  # the shortcut needs equal widths
            layers.append(gn.Residual(gn.Sequential(*body)))
        else:
            layers.extend(body)
    layers.append(gn.Linear(width, n_out, init="book_normal", rng=rng))
    return gn.Sequential(*layers)


def hidden_speeds(flow: gn.GradientFlow) -> np.ndarray:
    """``flow.speeds()`` of the hidden weight layers (not batch/layer norm, not the output
    layer), as an array (measurement, hidden layer): row 0 before training."""
    weights = [r for r in flow.history[0]["layers"] if r["weight"]][:-1]
    speeds = flow.speeds()
    return np.array([speeds[f"layer {r['layer']}"] for r in weights]).T


def spread(model: gn.Sequential, x: np.ndarray) -> np.ndarray:
    """For each Linear of a flat ``model``: (std of z over the examples, mean over units; std of
    z over the units, mean over examples). Batch norm divides z by the first, layer norm by
    the second."""
    out, a = [], np.asarray(x)
    for layer in model.layers:
        a = layer.forward(a)
        if isinstance(layer, gn.Linear):
            out.append((a.std(axis=0).mean(), a.std(axis=1).mean()))
    return np.array(out)


def train(
    kind: str,
    train_data,
    test,
    probe,
    depth: int = DEPTH,
    width: int = WIDTH,
    epochs: int = EPOCHS,
    seed: int = 0,
) -> dict:
    """Trains one net with the chapter's recipe; returns its hidden layers' speeds (before
    training and after every epoch), its test accuracy, the verdicts at the start, the time."""
    rng = np.random.default_rng(seed)
    n_in = int(np.prod(np.shape(train_data[0])[1:]))
    model = build(kind, rng, depth=depth, n_in=n_in, width=width, n_out=int(np.max(train_data[1])) + 1)
    flow = gn.GradientFlow(data=probe, probe_size=len(probe[0]))
    start = time.perf_counter()
    gn.fit(model, gn.CrossEntropyLoss(), gn.optim.SGD(model.parameters(), lr=0.1), train_data,
           epochs=epochs, batch_size=10, callbacks=[flow], rng=rng, verbose=False)  # fmt: skip
    return {
        "speeds": hidden_speeds(flow),
        "accuracy": gn.evaluate(model, gn.CrossEntropyLoss(), test)["accuracy"],
        "verdicts": flow.history[0]["verdicts"],
        "seconds": time.perf_counter() - start,
    }


def plot(runs: dict, path: str) -> str:
    """One panel per net: speed per hidden layer before training (dashed) and after (solid),
    on one scale so the panels compare."""
    fig = figure(10, 7.2)
    axes = fig.subplots(2, 2)
    for ax, (kind, run) in zip(axes.flat, runs.items()):
        s = run["speeds"]
        layers = range(1, s.shape[1] + 1)
        ax.semilogy(layers, s[0], "o--", ms=3, color="tab:gray", label="before training")
        ax.semilogy(layers, s[-1], "o-", ms=3, color="tab:blue", label=f"after {len(s) - 1} epochs")
        ax.set_xticks([1, 5, 10, 15, 20])
        ax.set_xlabel("hidden layer")
        ax.set_ylabel("speed of learning (rms delta)")
        ax.set_title(f"{kind}: test accuracy {100 * run['accuracy']:.2f}%", fontsize=10)
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=7)
    ylim = (min(a.get_ylim()[0] for a in axes.flat), max(a.get_ylim()[1] for a in axes.flat))
    for a in axes.flat:
        a.set_ylim(ylim)
    fig.suptitle(f"[784, 30 x {DEPTH}, 10] sigmoid nets, SGD eta 0.1, {TRAIN:,} images", fontsize=11)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    return save_figure(fig, path)


def main() -> None:
    out = output_dir(description=__doc__.split("\n", 1)[0])
    full, test = gn.datasets.load_fashion_mnist()
    keep = np.random.default_rng(0).permutation(full.n)[:TRAIN]  # the chapter's subset and probe
    train_data = (full.x[keep], full.y[keep])
    probe = (full.x[keep[:PROBE]], full.y[keep[:PROBE]])

    print(
        f"[784, 30 x {DEPTH}, 10] sigmoid, book init; {EPOCHS} epochs on {TRAIN:,} images, "
        "SGD eta 0.1, batch 10"
    )
    z = spread(build("plain", np.random.default_rng(0)), probe[0])
    print(
        "plain net at initialisation, z of hidden layers "
        + ", ".join(map(str, SHOWN))
        + " on the 1,000 images:"
    )
    print("  std over the examples (per unit):  " + " ".join(f"{z[l - 1, 0]:.1e}" for l in SHOWN))
    print("  std over the units (per example):  " + " ".join(f"{z[l - 1, 1]:.1e}" for l in SHOWN))
    print("speed of learning (rms delta on 1,000 images) of hidden layers " + ", ".join(map(str, SHOWN)))
    runs = {}
    for kind in KINDS:
        run = runs[kind] = train(kind, train_data, test, probe)
        for when, s in (("start", run["speeds"][0]), (f"after {EPOCHS}", run["speeds"][-1])):
            values = " ".join(f"{s[l - 1]:.1e}" for l in SHOWN)
            print(f"  {kind:9s} {when:8s}: {values}   layer {DEPTH} / layer 1 {s[-1] / s[0]:.2g}x")
        print(f"  {kind:9s} test accuracy {100 * run['accuracy']:.2f}% ({run['seconds']:.0f} s)")
        depth_verdicts = [v for v in run["verdicts"] if v.startswith(("vanishing", "exploding"))]
        others = len(run["verdicts"]) - len(depth_verdicts)
        verdicts = "; ".join(depth_verdicts) or "no vanishing gradients"
        print(f"            verdicts at the start: {verdicts} (+{others} others)")
    print("wrote", plot(runs, os.path.join(out, "chapter5_cure.png")))


if __name__ == "__main__":
    main()
