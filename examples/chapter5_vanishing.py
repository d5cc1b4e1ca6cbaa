"""The book's chapter 5, "why are deep neural networks hard to train?", measured on Fashion-MNIST.

1. The speed of learning of each hidden layer at the start of training, for the sigmoid nets
   [784,30,10], [784,30,30,10], [784,30,30,30,10] and [784,30,30,30,30,10] with the book's
   initialisation (weights N(0, 1/n_in), biases N(0, 1)): ||dC/db^l|| on 1,000 training
   images, as the chapter measures it, and our per-example rms delta (see
   ``glassnet.diagnostics``), each the mean over 5 initialisations.
2. The deepest net trained for a few epochs (SGD, eta = 0.1, mini-batches of 10, as the chapter)
   three ways: sigmoid with the book's init; ReLU with He init; sigmoid with batch norm before
   each activation. ``gn.GradientFlow`` measures every hidden layer's speed after each epoch.

Prints the numbers and writes chapter5_vanishing.png into ``--out DIR`` (default: a
new temporary directory; ``--out docs/figures`` updates the documentation's figure). Run from the repository
root: ``python examples/chapter5_vanishing.py`` (about 20 s on one core).
"""

from __future__ import annotations

import os
import time

import numpy as np
from _common import output_dir  # examples/ is on sys.path when a script runs

import glassnet as gn
from glassnet import diagnostics
from glassnet.plots import figure, save_figure

NETS = ([784, 30, 10], [784, 30, 30, 10], [784, 30, 30, 30, 10], [784, 30, 30, 30, 30, 10])
SEEDS = 5
TRAIN, EPOCHS, PROBE = 10_000, 10, 1000


def build(sizes, rng, kind: str = "sigmoid") -> gn.Sequential:
    """``kind``: "sigmoid" (the book's init), "relu" (He init), "sigmoid+bn" (batch norm before
    each sigmoid). The output layer gives logits for the softmax cross-entropy."""
    init = "he_normal" if kind == "relu" else "book_normal"
    layers = [gn.Flatten()]
    for n_in, n_out in zip(sizes[:-2], sizes[1:-1]):
        layers.append(gn.Linear(n_in, n_out, init=init, rng=rng))
        if kind == "sigmoid+bn":
            layers.append(gn.BatchNorm1d(n_out))
        layers.append(gn.ReLU() if kind == "relu" else gn.Sigmoid())
    layers.append(gn.Linear(sizes[-2], sizes[-1], init=init, rng=rng))
    return gn.Sequential(*layers)


def hidden_rows(rows: list[dict]) -> list[dict]:
    return [r for r in rows if r["weight"]][:-1]


def initial_speeds(probe) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """Mean over SEEDS initialisations of ||dC/db|| and rms delta per hidden layer."""
    out = {}
    for sizes in NETS:
        db, speed = [], []
        for seed in range(SEEDS):
            rep = diagnostics.report(build(sizes, np.random.default_rng(seed)), gn.CrossEntropyLoss(), *probe)
            db.append([r["db"] for r in hidden_rows(rep.layers)])
            speed.append([r["speed"] for r in hidden_rows(rep.layers)])
        out[len(sizes) - 2] = (np.mean(db, axis=0), np.mean(speed, axis=0))
    return out


def train(kind: str, train_data, test, probe):
    rng = np.random.default_rng(0)
    model = build(NETS[-1], rng, kind)
    flow = gn.GradientFlow(data=probe, probe_size=PROBE)
    start = time.perf_counter()
    gn.fit(model, gn.CrossEntropyLoss(), gn.optim.SGD(model.parameters(), lr=0.1), train_data,
           epochs=EPOCHS, batch_size=10, callbacks=[flow], rng=rng, verbose=False)  # fmt: skip
    seconds = time.perf_counter() - start
    speeds = np.array([[r["speed"] for r in hidden_rows(h["layers"])] for h in flow.history])
    return speeds, gn.evaluate(model, gn.CrossEntropyLoss(), test)["accuracy"], seconds, flow


def main() -> None:
    out = output_dir(description=__doc__.split("\n", 1)[0])
    full, test = gn.datasets.load_fashion_mnist()
    keep = np.random.default_rng(0).permutation(full.n)[:TRAIN]
    train_data = (full.x[keep], full.y[keep])
    probe = (full.x[keep[:PROBE]], full.y[keep[:PROBE]])

    print("1. speed of learning of each hidden layer at initialisation (mean of 5 inits, 1,000 images)")
    init = initial_speeds(probe)
    for depth, (db, speed) in init.items():
        db_text, speed_text = ", ".join(f"{v:.4f}" for v in db), ", ".join(f"{v:.2e}" for v in speed)
        ratio = speed[-1] / speed[0]
        print(f"  {depth} hidden: ||dC/db|| {db_text}   rms delta {speed_text}   (last / first {ratio:.0f}x)")

    print(f"2. [784,30,30,30,30,10] trained {EPOCHS} epochs on {TRAIN:,} images, SGD eta 0.1, batch 10")
    runs = {}
    for kind in ("sigmoid", "relu", "sigmoid+bn"):
        speeds, acc, seconds, flow = train(kind, train_data, test, probe)
        runs[kind] = speeds
        first, last = speeds[0], speeds[-1]
        print(
            f"  {kind:10s}: layer 4 / layer 1 speed {first[-1] / first[0]:.1f}x at the start, "
            f"{last[-1] / last[0]:.1f}x after training; test accuracy {100 * acc:.2f}% ({seconds:.0f} s)"
        )
        print("             verdicts at the start: " + ("; ".join(flow.history[0]["verdicts"]) or "none"))

    fig = figure(10, 7.2)
    axes = fig.subplots(2, 2)
    ax = axes[0, 0]
    for depth, (db, _) in init.items():
        ax.semilogy(range(1, depth + 1), db, "o-", label=f"{depth} hidden layer{'s' * (depth > 1)}")
    ax.set_xticks(range(1, 5))
    ax.set_xlabel("hidden layer")
    ax.set_ylabel("||dC/db|| at initialisation")
    ax.set_title("sigmoid nets: earlier layers learn slower", fontsize=10)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7)
    titles = {"sigmoid": "sigmoid, book init", "relu": "ReLU, He init", "sigmoid+bn": "sigmoid + batch norm"}
    for ax, (kind, speeds) in zip([axes[0, 1], axes[1, 0], axes[1, 1]], runs.items()):
        for l in range(speeds.shape[1]):
            ax.semilogy(range(len(speeds)), speeds[:, l], "o-", ms=3, label=f"hidden layer {l + 1}")
        ax.set_xlabel("epoch (0: before training)")
        ax.set_ylabel("speed (rms delta)")
        ax.set_title(f"[784,30,30,30,30,10] {titles[kind]}", fontsize=10)
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=7)
    ylim = (min(a.get_ylim()[0] for a in axes.flat[1:]), max(a.get_ylim()[1] for a in axes.flat[1:]))
    for a in axes.flat[1:]:
        a.set_ylim(ylim)  # one scale: the gaps compare across panels
    print("wrote", save_figure(fig, os.path.join(out, "chapter5_vanishing.png")))


if __name__ == "__main__":
    main()
