"""The learning-rate range test: the notes' Goldilocks principle as a tool.

Too small a learning rate and the loss barely moves; too large and it oscillates, then blows up;
in between, it falls fast. The range test (Smith 2017, "Cyclical learning rates"; popularised
by fastai) shows all three in one short run: train for a few hundred mini-batch steps while the
learning rate grows geometrically from ``start`` to ``end``,

    lr_t = start * (end / start) ** (t / (steps - 1)),

record the loss of every step, smooth it with a bias-corrected exponential moving average
(beta = 0.98, as fastai), and stop early once the smoothed loss exceeds ``diverge`` (4) times the
best seen: that is the "too hot" end.

Suggested range (the rule, stated so it can be argued with): its upper end is the learning rate
at the minimum of the smoothed loss divided by 10 (at the minimum the loss has already stopped
falling, so one order of magnitude below it is still stable); its lower end is the point of
steepest descent (most negative slope of the smoothed loss against log lr, from the 10th step to
the minimum), where the loss falls fastest per step. The moving average lags the raw loss by
about 1 / (1 - beta) = 50 steps, which moves both points to somewhat larger rates; the plot
shows the raw losses too. If the steepest point lies above min/10 the two are swapped,
so the range is always (low, high). The rule needs the "too hot" end: if the loss never
diverged before ``end`` (``diverged`` is False), the minimum may only be where the test
stopped, and the upper end means nothing; run again with a larger ``end``.

The model and the optimizer are put back as they were (weights, buffers, training modes, each
layer's own random generator, optimizer state and learning rate), so the test can be run before
training the same objects, and that training draws the same dropout masks as without it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .module import as_rng, integer_inputs, keep_modes, model_dtype


@dataclass
class LRFindResult:
    lrs: np.ndarray  # the learning rate of each step taken
    losses: np.ndarray  # smoothed loss after each step
    raw_losses: np.ndarray  # the mini-batch loss of each step
    suggestion: tuple[float, float]  # (low, high): the suggested learning-rate range
    steepest_lr: float
    min_lr: float  # the learning rate at the minimum smoothed loss
    diverged: bool  # stopped because the loss blew up; False: the range's upper end is unfounded

    def to_dict(self) -> dict:
        return {
            "lrs": self.lrs.tolist(),
            "losses": self.losses.tolist(),
            "raw_losses": self.raw_losses.tolist(),
            "suggestion": list(self.suggestion),
            "steepest_lr": self.steepest_lr,
            "min_lr": self.min_lr,
            "diverged": self.diverged,
        }


def lr_find(
    model,
    loss_fn,
    optimizer,
    train_data,
    start: float = 1e-6,
    end: float = 10.0,
    steps: int = 300,
    batch_size: int = 128,
    rng: np.random.Generator | int | None = None,
    regularizer=None,
    beta: float = 0.98,
    diverge: float = 4.0,
) -> LRFindResult:
    """Run the range test on ``model`` with ``optimizer`` over mini-batches of ``train_data``;
    see the module docstring for the schedule, the stopping rule and the suggestion."""
    from .data import as_dataset
    from .train import train_step

    if not 0 < start < end or not math.isfinite(end):
        raise ValueError(f"lr_find: need 0 < start < end, got start={start}, end={end}")
    if steps < 10:
        raise ValueError(f"lr_find: steps must be >= 10, got {steps}")
    if batch_size < 1:
        raise ValueError(f"lr_find: batch_size must be >= 1, got {batch_size}")
    if not 0 <= beta < 1 or diverge <= 1:
        raise ValueError(f"lr_find: need 0 <= beta < 1 and diverge > 1, got beta={beta}, diverge={diverge}")
    ds = as_dataset(train_data, "train_data", model_dtype(model), integer_inputs(model))
    rng = as_rng(rng, "lr_find")
    saved_model = {k: v.copy() for k, v in model.state_dict().items()}
    saved_opt = {k: np.array(v, copy=True) for k, v in optimizer.state_dict().items()}
    saved_rngs = [(m, m.rng) for m in model.modules() if hasattr(m, "rng")]  # what set_rng replaces
    with keep_modes(model):
        model.set_rng(rng)
        model.train()
        lrs, raw, smooth = [], [], []
        avg, best, diverged = 0.0, math.inf, False
        batch = min(batch_size, ds.n)
        try:
            order = rng.permutation(ds.n)
            pos = 0
            for t in range(steps):
                if pos + batch > ds.n:  # a new pass over the data, reshuffled
                    order, pos = rng.permutation(ds.n), 0
                idx = order[pos : pos + batch]
                pos += batch
                lr = start * (end / start) ** (t / (steps - 1))
                optimizer.lr = lr
                try:
                    loss = train_step(model, loss_fn, optimizer, ds.x[idx], ds.y[idx], regularizer)
                except FloatingPointError:  # a non-finite loss: certainly past the divergence point
                    diverged = True
                    break
                avg = beta * avg + (1 - beta) * loss
                smoothed = avg / (1 - beta ** (t + 1))  # bias correction: the average starts at 0
                lrs.append(lr)
                raw.append(loss)
                smooth.append(smoothed)
                best = min(best, smoothed)
                if t > 0 and smoothed > diverge * best:
                    diverged = True
                    break
        finally:
            model.load_state_dict(saved_model)
            optimizer.load_state_dict(saved_opt)
            for m, own in saved_rngs:
                m.rng = own
    if len(lrs) < 5:
        raise ValueError(f"lr_find: the loss diverged after {len(lrs)} steps; lower start (now {start})")
    return _suggest(np.array(lrs), np.array(smooth), np.array(raw), diverged)


def _suggest(lrs: np.ndarray, losses: np.ndarray, raw: np.ndarray, diverged: bool) -> LRFindResult:
    i_min = int(np.argmin(losses))
    # the slope against log lr, up to the minimum (beyond it the loss only rises)
    # (and from the 10th step on, as fastai: the first few smoothed values rest on few batches)
    upto = max(i_min, 2)
    skip = min(10, upto // 4)
    slopes = np.gradient(losses[: upto + 1], np.log(lrs[: upto + 1]))
    steepest = float(lrs[skip + int(np.argmin(slopes[skip:]))])
    min_lr = float(lrs[i_min])
    low, high = sorted((steepest, min_lr / 10))
    return LRFindResult(lrs, losses, raw, (low, high), steepest, min_lr, diverged)


def plot_lr_find(result: LRFindResult, path: str, title: str = "learning-rate range test") -> None:
    """Loss against learning rate (log axis), the suggested range shaded; written atomically."""
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .io import write_atomic

    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(result.lrs, result.raw_losses, color="0.75", lw=0.8, label="mini-batch loss")
    ax.plot(result.lrs, result.losses, color="C0", lw=1.5, label="smoothed loss")
    ax.axvspan(*result.suggestion, color="C2", alpha=0.2, label="suggested range")
    ax.axvline(result.steepest_lr, color="C2", ls=":", lw=1)
    ax.axvline(result.min_lr, color="C3", ls=":", lw=1, label="minimum")
    ax.set_xscale("log")
    top = float(np.percentile(result.raw_losses, 95))
    ax.set_ylim(min(result.losses.min(), result.raw_losses.min()) * 0.9, max(top, result.losses[0]) * 1.1)
    ax.set_xlabel("learning rate")
    ax.set_ylabel("training loss")
    ax.set_title(title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    write_atomic(path, buf.getvalue())


__all__ = ["LRFindResult", "lr_find", "plot_lr_find"]
