"""The book's chapter 4, "a visual proof that neural nets can compute any function", run.

One hidden layer of sigmoid neurons and a linear output fit the chapter's function
f(x) = 0.2 + 0.4 x^2 + 0.3 x sin(15 x) + 0.05 cos(50 x) on [0, 1], two ways:

1. built by hand, as the chapter's proof does: a pair of sigmoids with a very large weight
   (w = 1000) makes a step up at s and a step down at s + 1/k, together a "bump" of height
   f(midpoint); k bumps (2k hidden units) make a staircase that approaches f as k grows;
2. trained by gradient descent (Adam on the quadratic cost, a cosine schedule) with the same
   number of hidden units, starting from sigmoids that are already steep (|w| around 60) with
   their centres spread over [0, 1]: PyTorch's default init (|w| <= 1) makes every sigmoid
   nearly linear on [0, 1] and training then never finds the cos(50 x) ripple.

Prints the maximum and RMS error of each network and writes chapter4_universality.png into
``--out DIR`` (default: a new temporary directory; ``--out docs/figures`` updates the documentation's figure).
Run from the repository root: ``python examples/chapter4_universality.py`` (about half a minute).
"""

from __future__ import annotations

import os
import time

import numpy as np
from _common import output_dir  # examples/ is on sys.path when a script runs

import glassnet as gn
from glassnet.plots import figure, save_figure

HIDDEN = (4, 10, 20, 50, 100)  # hidden units (the hand-built nets use them in pairs)
STEPS = 6000


def f(x):
    return 0.2 + 0.4 * x**2 + 0.3 * x * np.sin(15 * x) + 0.05 * np.cos(50 * x)


def net(hidden: int, rng) -> gn.Sequential:
    return gn.Sequential(gn.Linear(1, hidden, rng=rng), gn.Sigmoid(), gn.Linear(hidden, 1, rng=rng))


def hand_built(hidden: int) -> gn.Sequential:
    """The chapter's construction: k = hidden / 2 bumps, each a step up and a step down."""
    k, w = hidden // 2, 1000.0
    model = net(2 * k, np.random.default_rng(0))
    edges = np.linspace(0, 1, k + 1)
    heights = f((edges[:-1] + edges[1:]) / 2)
    # the outermost steps lie outside [0, 1]: a step exactly at 0 or 1 would sit halfway there
    edges[0], edges[-1] = -1.0, 2.0
    W1, b1 = model[0].W.data, model[0].b.data
    W1[0, :] = w
    b1[0::2] = -w * edges[:-1]  # unit 2i steps up at the bump's left edge (sigmoid(w (x - s)))
    b1[1::2] = -w * edges[1:]  # unit 2i+1 at its right edge
    W2 = model[2].W.data
    W2[0::2, 0], W2[1::2, 0] = heights, -heights  # up by h, then down by h: a bump of height h
    model[2].b.data[:] = 0
    return model


def train(hidden: int, x, y, seed: int = 0) -> gn.Sequential:
    rng = np.random.default_rng(seed)
    model = net(hidden, rng)
    # steep sigmoids (|w| in [30, 90]) centred at random points c of [0, 1]: sigmoid(w (x - c))
    model[0].W.data[:] = 60 * rng.choice([-1, 1], hidden) * rng.uniform(0.5, 1.5, hidden)
    model[0].b.data[:] = -model[0].W.data[0] * rng.random(hidden, dtype=np.float32)
    opt = gn.optim.Adam(model.parameters(), lr=1e-2)
    gn.fit(model, gn.MSELoss(), opt, (x, y), epochs=STEPS, batch_size=len(x), shuffle=False, rng=rng,
           scheduler=gn.schedules.CosineAnnealingLR(opt, STEPS), verbose=False)  # fmt: skip
    return model


def main() -> None:
    out = output_dir(description=__doc__.split("\n", 1)[0])
    x = np.linspace(0, 1, 1000, dtype=np.float32)[:, None]
    y = f(x).astype(np.float32)
    grid = np.linspace(0, 1, 2001, dtype=np.float32)[:, None]
    truth = f(grid)
    results = []
    fits = {}
    for h in HIDDEN:
        start = time.perf_counter()
        trained = train(h, x, y)
        seconds = time.perf_counter() - start
        row = {"hidden": h, "seconds": seconds}
        for kind, model in (("hand-built", hand_built(h)), ("trained", trained)):
            err = np.abs(gn.predict(model, grid) - truth)
            row[kind] = (float(err.max()), float(np.sqrt(np.mean(err**2))))
            fits[kind, h] = gn.predict(model, grid)[:, 0]
        results.append(row)
        (hm, hr), (tm, tr) = row["hand-built"], row["trained"]
        print(
            f"{h:4d} hidden units: hand-built max error {hm:.4f} rms {hr:.4f}; "
            f"trained max {tm:.4f} rms {tr:.4f} ({seconds:.1f} s)",
            flush=True,
        )
    fig = figure(11, 3.6)
    axes = fig.subplots(1, 3)
    for ax, kind in zip(axes[:2], ("hand-built", "trained")):
        ax.plot(grid[:, 0], truth[:, 0], "k", lw=2.5, label="f(x)")
        for h in (HIDDEN[0], HIDDEN[2], HIDDEN[-1]):
            ax.plot(grid[:, 0], fits[kind, h], lw=1, label=f"{h} hidden")
        ax.set_title(f"{kind} one-hidden-layer nets", fontsize=10)
        ax.set_xlabel("x")
        ax.legend(fontsize=7)
    ax = axes[2]
    for kind, marker in (("hand-built", "o-"), ("trained", "s-")):
        ax.loglog(HIDDEN, [r[kind][1] for r in results], marker, label=f"{kind}, rms error")
        ax.loglog(HIDDEN, [r[kind][0] for r in results], marker, alpha=0.4, label=f"{kind}, max error")
    ax.set_xlabel("hidden units")
    ax.set_title("error falls as hidden units are added", fontsize=10)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7)
    print("wrote", save_figure(fig, os.path.join(out, "chapter4_universality.png")))


if __name__ == "__main__":
    main()
