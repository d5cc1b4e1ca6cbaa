"""Where a training step's time goes (CNN-A, CNN-A + BN, the ``resnet`` preset, the LSTM of
``bench_rnn.py``, or the MLP and the book's net of ``bench_train.py``): each layer's forward and
backward, the GEMMs alone, the loss and the optimizer, against PyTorch's whole step on the same
batch. ``--workload mlp-infer`` does the same for an inference pass of the MLP of
``bench_train.py`` (``gn.predict`` over 10,000 images, batch 500: each layer's forward, the
products alone, and PyTorch's pass and its products alone).

glassnet's process times ``gn.train_step`` on one fixed batch of 128 (the book's: 10)
Fashion-MNIST-shaped images (median of ``--repeats`` steps after a warm-up). The whole step is
timed as it runs anywhere else, with no timer in it; each such step is followed by one with
every layer's ``forward`` / ``backward`` wrapped by a timer (a ReLU and the max-pool that
``Sequential`` runs with it as one step, or a Linear and its ReLU, as one row; the layers inside
a residual block too: for the ResNet, the passes of layers of one kind and shape are summed into
one row, "Conv2d(16,16,3,s1) x4 forward"), whose layer passes give the rows; the rest (loss,
optimizer, zero_grad, Python) is the whole step less them (the median over the pairs of steps:
on a busy machine two steps differ, and it can come out below zero). The timers cost
microseconds a step, which the book's step, tens of microseconds, would otherwise count as its
own. Then it times, alone, the matrix products that the convolutions and the linear layers do
with the same shapes (forward ``cols @ Wmat``, ``dW = cols^T delta``, and the input gradient
``delta Wmat^T`` where the layer computes one: not the first layer; a linear layer's with its
own input and W; for the LSTM, on a batch of 128 MNIST-1D-shaped sequences (T = 40, one
feature), the T products of its forward scan, the T of its backward scan and the stacked product
of its weight gradient). What is left of the step is copies, layout work, element-wise passes
and Python. PyTorch's process times its own whole step (forward, loss, backward, Adam; SGD for
the MLP and the book's net) on the same shapes. Each of ``--rounds`` rounds runs the two
processes back to back (which one first alternates); the figures are medians over rounds, the
step ratio the median of each round's own ratio (harness.paired_ratio).

``--workload mlp`` and ``--workload book`` train as ``bench_train.py``'s rows of those names do:
the MLP 784-256-128-10 (ReLU, cross-entropy, SGD lr 0.05 momentum 0.9, batch 128) and the
book's 784-30-10 (sigmoid, quadratic cost, SGD lr 3.0, batch 10), on Fashion-MNIST-shaped
flat images, with PyTorch's step on the same net, loss and SGD, and PyTorch's products alone
too (its Linear layers' forward, dW and dx). For the book, glassnet's process also times the
same step written as one plain NumPy function (``book_step_numpy``: no glassnet, the same
arithmetic, on copies of the weights), one call beside each glassnet step: what glassnet's
framework costs over hand-written NumPy at batch 10.

    python benchmarks/breakdown.py --rounds 2
    python benchmarks/breakdown.py --rounds 2 --json     # one JSON line (for run_all.py)
    python benchmarks/breakdown.py --workload resnet --rounds 2
    python benchmarks/breakdown.py --workload lstm --rounds 3
    python benchmarks/breakdown.py --workload mlp --rounds 3
    python benchmarks/breakdown.py --workload book --rounds 3 --repeats 200
    python benchmarks/breakdown.py --workload mlp-infer --rounds 3
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import sys
import time

from harness import (
    alternating_parser,
    answer,
    median_time,
    paired_ratio,
    round_order,
    run_child,
    same_allocator,
)

BATCH = 128
INFER_IMAGES, INFER_BATCH = 10000, 500  # the inference table's pass (bench_train.py)
MLPS = ("mlp", "book")  # bench_train.py's MLP and the book's net, trained as its WORKLOADS say
# what a step or pass spends outside its layers' passes
OUTSIDE_LAYERS = {
    "step": "loss, optimizer, zero_grad, Python",
    "pass": "predict's own work: the input check, the batches, the output check",
}


def build_parser() -> argparse.ArgumentParser:
    ap = alternating_parser(__doc__, rounds=2, repeats=20)
    ap.add_argument("--workload", choices=["cnn", "cnn-bn", "resnet", "lstm", "mlp", "book", "mlp-infer"],
                    default="cnn")  # fmt: skip
    return ap


def _batch(workload: str) -> int:
    """The examples of one training step: bench_train.py's batch for its MLP (128) and the
    book's net (10), else 128."""
    from bench_train import WORKLOADS

    return WORKLOADS[workload][3] if workload in MLPS else BATCH


def _data(workload: str):
    import numpy as np

    rng = np.random.default_rng(0)
    if workload == "mlp-infer":  # flat images, as many as the inference table's pass
        return rng.random((INFER_IMAGES, 784), dtype=np.float32), None
    if workload in MLPS:  # flat images, one batch
        shape = (_batch(workload), 784)
    else:
        shape = (BATCH, 40, 1) if workload == "lstm" else (BATCH, 1, 28, 28)  # MNIST-1D, or images
    x = rng.random(shape, dtype=np.float32)
    y = rng.integers(0, 10, len(x))
    return x, y


def time_glassnet(workload: str, repeats: int) -> dict:
    import numpy as np

    import glassnet as gn

    gn.tune_malloc()
    from glassnet.walk import leaves

    x, y = _data(workload)
    if workload == "resnet":
        model = gn.models.resnet(np.random.default_rng(0), (1, 28, 28), 10)
    elif workload == "lstm":
        from bench_rnn import glassnet_model

        model = glassnet_model(gn, "lstm", np.random.default_rng(0))
    elif workload in ("mlp-infer", *MLPS):
        from bench_train import glassnet_mlp

        model = glassnet_mlp(gn, "mlp" if workload == "mlp-infer" else workload, np.random.default_rng(0))
    else:
        model = gn.models.cnn_a(np.random.default_rng(0), (1, 28, 28), 10, batch_norm=workload == "cnn-bn")
    plain = None  # the book's step as one plain NumPy function, timed beside glassnet's
    if workload in MLPS:  # bench_train.py's loss and SGD
        from bench_train import WORKLOADS, glassnet_loss

        loss_name, _, lr, momentum = WORKLOADS[workload][2:]
        opt = gn.optim.SGD(model.parameters(), lr=lr, momentum=momentum)
        loss_fn = glassnet_loss(gn, loss_name)
        if workload == "book":  # on copies of the weights, in their memory order: the same products
            weights = [p.data.copy(order="K") for p in model.parameters()]  # W1, b1, W2, b2

            def plain():
                book_step_numpy(*weights, x, y, lr)
    else:
        opt, loss_fn = gn.optim.Adam(model.parameters(), lr=1e-3), gn.CrossEntropyLoss()

    layers_ = [layer for _, layer in leaves(model)]  # the layers inside blocks too
    names = [f"{name} {type(layer).__name__}" for name, layer in leaves(model)]
    spent, joined, timers = _layer_timers(gn, model, names, layers_)
    if workload == "mlp-infer":  # one inference pass, as the inference table times it

        def step():
            gn.predict(model, x, batch_size=INFER_BATCH)
    else:

        def step():
            gn.train_step(model, loss_fn, opt, x, y)

    for on in (True, True, True, False):  # warm-up, with the timers and without
        timers(on)
        step()
        if plain is not None:
            plain()
    for times in spent.values():
        times.clear()
    # per step (or pass): its time without the timers, what the layers' passes of the next one
    # (with the timers) leave of it, and the plain NumPy step's time
    steps, rests, plains = [], [], []
    per_step: dict[str, list[float]] = {k: [] for k in spent}  # each layer pass's time, per step
    for _ in range(repeats):
        if plain is not None:
            t = time.perf_counter()
            plain()
            plains.append(time.perf_counter() - t)
        t = time.perf_counter()
        step()  # the whole step: the layers' own methods, no timer in the way
        steps.append(time.perf_counter() - t)
        timers(True)
        before = {k: len(v) for k, v in spent.items()}
        step()  # the same step with its layers' passes timed
        timers(False)
        passes = 0.0
        for k, v in spent.items():  # once a training step; once a batch in an inference pass
            if len(v) > before[k]:
                per_step[k].append(sum(v[before[k] :]))
                passes += per_step[k][-1]
        rests.append(steps[-1] - passes)
    layers = {k: statistics.median(v) for k, v in per_step.items() if v}
    layers = dict(sorted(layers.items(), key=lambda kv: int(re.match(r"\d+", kv[0])[0])))  # chain order
    kinds = {name: _kind(layer) for name, layer in zip(names, layers_)} | joined

    # the GEMMs alone, with the shapes each layer multiplies
    from glassnet.layers.conv import _long_product

    gemms: dict[str, float] = {}
    rng = np.random.default_rng(1)
    for i, (name, layer) in enumerate(zip(names, layers_)):
        if isinstance(layer, gn.Conv2d) and layer.cols_t is not None:  # one input channel: cols^T
            cols_t = layer.cols_t
            wb = rng.standard_normal((cols_t.shape[0], layer.out_channels)).astype(np.float32)
            delta = rng.standard_normal((cols_t.shape[1], layer.out_channels)).astype(np.float32)
            gemms[f"{name} forward"] = median_time(lambda: cols_t.T @ wb, repeats)  # noqa: B023
            # dW as the layer sums it, over blocks of the long inner dimension (_long_product)
            gemms[f"{name} dW"] = median_time(lambda: _long_product(cols_t, delta), repeats)  # noqa: B023
            continue
        if isinstance(layer, gn.LSTM):
            gemms.update(_lstm_gemms(name, layer, repeats))
            continue
        if isinstance(layer, gn.Conv2d) and getattr(layer, "spectral", None) is not None:
            gemms.update(_spectral_gemms(name, layer, repeats))
            continue
        if workload == "mlp-infer":  # the pass's products, with the layer's own W
            if isinstance(layer, gn.Linear):
                gemms.update(_pass_products(name, x, layer.W.data, repeats))
                x = x @ layer.W.data  # the next layer's input shape (values do not matter)
            continue
        if isinstance(layer, gn.Conv2d):
            k = layer.cols.shape[1]
            cols, wmat = layer.cols, rng.standard_normal((k, layer.out_channels)).astype(np.float32)
            delta = rng.standard_normal((cols.shape[0], layer.out_channels)).astype(np.float32)
        elif isinstance(layer, gn.Linear):  # its own input and W, in their memory order (W: column-major)
            cols, wmat = layer.x.reshape(-1, layer.in_features), layer.W.data
            delta = rng.standard_normal((len(cols), layer.out_features)).astype(np.float32)
        else:
            continue
        gemms[f"{name} forward"] = median_time(lambda: cols @ wmat, repeats)  # noqa: B023
        gemms[f"{name} dW"] = median_time(lambda: cols.T @ delta, repeats)  # noqa: B023
        if i > 0:  # the first layer computes no input gradient
            gemms[f"{name} dx"] = median_time(lambda: delta @ wmat.T, repeats)  # noqa: B023
    if workload == "resnet":  # 40-odd layers: one row per kind of layer and pass
        layers, gemms = _grouped(layers, kinds), _grouped(gemms, kinds)
    return {
        "step": statistics.median(steps),
        "rest": statistics.median(rests),
        "layers": layers,
        "gemms": gemms,
        **({"plain": statistics.median(plains)} if plains else {}),
    }


def _layer_timers(gn, model, names: list[str], layers_: list) -> tuple[dict, dict, object]:
    """Timers around the passes (``forward``, ``backward``, ``backward_params``) of every layer
    of ``model`` (``names``, ``layers_``: its leaves, the layers inside blocks too) and of every
    pair of layers that ``Sequential`` runs as one step (a ReLU and its max-pool, a Linear and
    its ReLU: one row). Returns ``spent`` (each call's seconds, by "<layer> <pass>"; only the
    outermost pass counts: Linear.backward calls its backward_params), the pairs' kinds by name,
    and ``timers(on)``, which puts the timers in place or takes them away (the layers' own
    methods again: a step run without them pays nothing for them)."""
    from glassnet.module import named_modules

    spent: dict[str, list[float]] = {}
    depth = [0]
    wrapped = []  # (object, method name, its timer)

    def timed(obj, part, key):
        fn = getattr(obj, part)

        def run(*a, **k):
            if depth[0]:
                return fn(*a, **k)
            depth[0] += 1
            t = time.perf_counter()
            try:
                return fn(*a, **k)
            finally:
                spent[key].append(time.perf_counter() - t)
                depth[0] -= 1

        spent[key] = []
        wrapped.append((obj, part, run))

    for name, layer in zip(names, layers_):
        for part in ("forward", "backward", "backward_params"):
            timed(layer, part, f"{name} {part}")
    joined = {}
    for seq_name, seq in named_modules(model):
        for i, step_ in seq.steps() if isinstance(seq, gn.Sequential) else ():
            if not isinstance(step_, gn.Module):
                prefix, lo = f"{seq_name}." if seq_name else "", i - step_.reports  # the pair's first layer
                pair = f"{prefix}{lo}-{lo + 1} {type(seq[lo]).__name__}+{type(seq[lo + 1]).__name__}"
                joined[pair] = pair.split(" ")[1]
                for part in ("forward", "backward", "backward_params"):
                    if hasattr(step_, part):  # backward_params: a Linear and its ReLU that start the model
                        timed(step_, part, f"{pair} {part}")

    def timers(on: bool) -> None:
        for obj, part, run in wrapped:
            if on:
                setattr(obj, part, run)
            else:
                vars(obj).pop(part, None)

    return spent, joined, timers


def book_step_numpy(w1, b1, w2, b2, x, y, lr: float) -> float:
    """One SGD step of the book's net (784-30-10, sigmoid, quadratic cost) as one plain NumPy
    function, what ``gn.train_step`` computes for it: the same float32 arithmetic in the same
    order (sigmoid by scipy's expit, as glassnet's), the labels ``y`` one-hot encoded, the loss
    returned; the weights ``w1`` (784, 30), ``b1``, ``w2`` (30, 10), ``b2`` updated in place."""
    import numpy as np
    from scipy.special import expit

    n = len(x)
    a1 = expit(x @ w1 + b1)  # z1 = x W1 + b1, a1 = sigma(z1)
    a2 = expit(a1 @ w2 + b2)
    diff = a2 - np.eye(w2.shape[1], dtype=a2.dtype)[y]  # a - y
    loss = 0.5 * float(np.square(diff).sum()) / n
    delta2 = diff * (1.0 / n) * a2 * (1 - a2)  # BP1: dC/da = (a - y) / n, times sigma'(z2)
    delta1 = delta2 @ w2.T * a1 * (1 - a1)  # BP2: (delta2 W2^T) times sigma'(z1)
    w2 -= lr * (a1.T @ delta2)  # BP4, the update
    b2 -= lr * delta2.sum(axis=0)  # BP3
    w1 -= lr * (x.T @ delta1)
    b1 -= lr * delta1.sum(axis=0)
    return loss


def _pass_products(name: str, x, w, repeats: int) -> dict[str, float]:
    """A linear layer's products in one inference pass alone: batch after batch of ``x`` times
    ``w``, as ``predict`` multiplies them (a new result each time, as the layer's)."""
    batches = [x[i : i + INFER_BATCH] for i in range(0, len(x), INFER_BATCH)]

    def products():
        for b in batches:
            b @ w

    return {f"{name} forward, {len(batches)} products": median_time(products, repeats)}


def _spectral_gemms(name: str, layer, repeats: int) -> dict[str, float]:
    """The products of a convolution through the DFT alone, at its shapes
    (``glassnet/layers/_spectral.py``): forward D_in x, the four real products per frequency and
    D_out Y^; dW: D_out^T delta and its four per frequency; dx: its four and D_in^T dX^."""
    import numpy as np

    spectral = layer.spectral
    x_hat, w_hat, f = spectral.x_hat, spectral.w_hat, spectral.f
    n, c, out = x_hat.shape[2], x_hat.shape[3], w_hat.shape[3]
    rng = np.random.default_rng(1)
    real = w_hat.dtype
    x_rows = rng.standard_normal((spectral.d_in.shape[1], n * c)).astype(real)
    delta = rng.standard_normal((spectral.d_out.shape[0], n * out)).astype(real)
    g = rng.standard_normal((2, f, n, out)).astype(real)
    x_t, w_t = x_hat.transpose(0, 1, 3, 2), w_hat.transpose(0, 1, 3, 2)
    y_hat, dw_hat, dx_hat = (np.empty((2, f, *s), real) for s in ((n, out), (c, out), (n, c)))

    def four(a, b, into):  # one complex product per frequency: four real ones, into two planes
        for part in (0, 1):
            np.matmul(a[0], b[part], out=into[part])
            np.matmul(a[1], b[1 - part])

    def forward():
        spectral.d_in @ x_rows
        four(x_hat, w_hat, y_hat)
        spectral.d_out @ y_hat.reshape(2 * f, n * out)

    def dw():
        spectral.d_out.T @ delta
        four(x_t, g, dw_hat)

    def dx():
        four(g, w_t, dx_hat)
        spectral.d_in.T @ dx_hat.reshape(2 * f, n * c)

    return {f"{name} {part}": median_time(run, repeats) for part, run in (("forward", forward), ("dW", dw),
                                                                           ("dx", dx))}  # fmt: skip


def _lstm_gemms(name: str, layer, repeats: int) -> dict[str, float]:
    """The products of an LSTM layer's training step alone, at its shapes: per step
    a^T = W^T Z_t (forward) and (k W_h) delta_t (backward), T of each, and the stack of T
    products delta_t Z_t^T summed for the weight gradient (``glassnet/layers/gated.py``)."""
    import numpy as np

    Z = layer.caches[0][-1]  # (T + 1, F_Z, N): the blocks [h_{t-1}; x_t; 1]
    T, fz, n, h4 = Z.shape[0] - 1, Z.shape[1], Z.shape[2], 4 * layer.hidden_size
    rng = np.random.default_rng(1)
    w_t, w_hk = (rng.standard_normal(s).astype(Z.dtype) for s in ((h4, fz), (h4 // 4, h4)))
    delta = rng.standard_normal((T, h4, n)).astype(Z.dtype)
    a, carry = np.empty((h4, n), Z.dtype), np.empty((h4 // 4, n), Z.dtype)

    def forward():
        for t in range(T):
            np.matmul(w_t, Z[t], out=a)

    def backward():  # each step's delta_t is in cache, just written (one block stands for all)
        for _ in range(T):
            np.matmul(w_hk, delta[0], out=carry)

    return {
        f"{name} forward, {T} products": median_time(forward, repeats),
        f"{name} backward, {T} products": median_time(backward, repeats),
        f"{name} dW, {T} stacked products summed": median_time(
            lambda: np.matmul(delta, Z[:-1].transpose(0, 2, 1)).sum(axis=0), repeats
        ),
    }


def _kind(layer) -> str:
    """A layer's kind and shape: "Conv2d(16,16,3,s1)", "BatchNorm2d(32)", "ReLU"."""
    import glassnet as gn

    if isinstance(layer, gn.Conv2d):
        return (f"Conv2d({layer.in_channels},{layer.out_channels},{layer.kernel_size[0]},"
                f"s{layer.stride[0]})")  # fmt: skip
    if isinstance(layer, gn.BatchNorm2d):
        return f"BatchNorm2d({layer.num_features})"
    return type(layer).__name__


def _grouped(times: dict[str, float], kinds: dict[str, str]) -> dict[str, float]:
    """Per-layer times ("3.block.0 Conv2d forward") summed by kind and pass
    ("Conv2d(16,16,3,s1) x4 forward"), the largest first."""
    sums: dict[tuple[str, str], float] = {}
    counts: dict[tuple[str, str], set] = {}
    for key, t in times.items():
        layer, _, part = key.rpartition(" ")  # "3.block.0 Conv2d", "forward"
        kind = kinds.get(layer, layer)
        sums[(kind, part)] = sums.get((kind, part), 0.0) + t
        counts.setdefault((kind, part), set()).add(layer)
    ranked = sorted(sums.items(), key=lambda kv: -kv[1])
    return {f"{kind} x{len(counts[(kind, part)])} {part}": t for (kind, part), t in ranked}


def time_torch(workload: str, repeats: int, threads: int) -> dict:
    same_allocator()  # the allocator glassnet's process tunes: the same for each library
    import torch
    from bench_train import torch_cnn_a

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    x, y = _data(workload)
    if workload == "mlp-infer":
        return _torch_pass(torch, x, repeats)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    if workload in MLPS:  # bench_train.py's net, loss (on one-hot rows: the book's) and SGD
        from bench_train import WORKLOADS, torch_loss, torch_mlp

        loss_name, _, lr, momentum = WORKLOADS[workload][2:]
        model = torch_mlp(torch, workload)
        opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum)
        loss_fn, yt = torch_loss(torch, loss_name, yt)
    else:
        if workload == "resnet":
            from twins import torch_resnet

            model = torch_resnet(torch)
        elif workload == "lstm":
            from bench_rnn import torch_twin

            model = torch_twin(torch, "lstm")
        else:
            model = torch_cnn_a(torch, batch_norm=workload == "cnn-bn")
        opt, loss_fn = torch.optim.Adam(model.parameters(), lr=1e-3), torch.nn.CrossEntropyLoss()

    def step():
        opt.zero_grad()
        loss = loss_fn(model(xt), yt)
        loss.backward()
        opt.step()
        return loss.item()

    if workload in MLPS:
        return {"step": median_time(step, repeats), "gemm": _torch_step_products(torch, model, xt, repeats)}
    return {"step": median_time(step, repeats)}


def _torch_step_products(torch, model, x, repeats: int) -> float:
    """PyTorch's products of one training step of an MLP alone, at its Linear layers' shapes:
    each one's forward ``h @ W^T``, ``dW = delta^T h`` and ``dx = delta W`` (not the first
    layer's: its input needs no gradient)."""
    weights = [m.weight for m in model if isinstance(m, torch.nn.Linear)]
    with torch.no_grad():
        inputs = [x]
        for w in weights[:-1]:  # each layer's input shape (values do not matter)
            inputs.append(inputs[-1] @ w.T)
        deltas = [torch.randn(len(x), w.shape[0]) for w in weights]

    def products():
        with torch.no_grad():
            for i, (w, h, delta) in enumerate(zip(weights, inputs, deltas)):
                h @ w.T
                delta.T @ h
                if i:
                    delta @ w

    return median_time(products, repeats)


def _torch_pass(torch, x, repeats: int) -> dict:
    """PyTorch's inference pass over ``x`` (eval mode, no_grad, batch by batch, as
    bench_train.py's), and its products alone (each weight's ``h @ W^T``, batch by batch)."""
    from bench_train import torch_mlp

    model = torch_mlp(torch, "mlp").eval()
    xt = torch.from_numpy(x)
    batches = [xt[i : i + INFER_BATCH] for i in range(0, len(xt), INFER_BATCH)]
    weights = [m.weight for m in model if isinstance(m, torch.nn.Linear)]

    def run():
        with torch.no_grad():
            for b in batches:
                model(b)

    def products():
        with torch.no_grad():
            for b in batches:
                h = b
                for w in weights:
                    h = h @ w.T

    return {"step": median_time(run, repeats), "gemm": median_time(products, repeats)}


def summarise(runs: dict[str, list[dict]]) -> dict:
    """Medians over rounds: glassnet's step, per-layer passes and GEMMs; torch's step (ms); the
    step ratio, the median of each round's own; for the book, the plain NumPy step and glassnet's
    step over it (each round's own ratio, the median)."""
    g, t = runs["glassnet"], runs["torch"]

    def med(key, part):
        return statistics.median(r[part][key] for r in g) * 1e3

    step_g = statistics.median(r["step"] for r in g) * 1e3
    step_t = statistics.median(r["step"] for r in t) * 1e3
    ratio, _ = paired_ratio([r["step"] for r in g], [r["step"] for r in t])  # each round's, median
    layers = {k: round(med(k, "layers"), 3) for k in g[0]["layers"]}
    gemms = {k: round(med(k, "gemms"), 3) for k in g[0]["gemms"]}
    gemm_total = sum(gemms.values())
    rest = statistics.median(r["rest"] for r in g) * 1e3  # loss, optimizer, Python, per step
    layer_total = step_g - rest
    torch_gemm = (
        {"torch_gemm_ms": round(statistics.median(r["gemm"] for r in t) * 1e3, 3)} if "gemm" in t[0] else {}
    )
    plain = {}
    if "plain" in g[0]:
        over, _ = paired_ratio([r["step"] for r in g], [r["plain"] for r in g])
        plain = {"plain_numpy_step_ms": round(statistics.median(r["plain"] for r in g) * 1e3, 3),
                 "glassnet_over_plain_numpy": round(over, 3)}  # fmt: skip
    return {
        **torch_gemm,
        **plain,
        "glassnet_step_ms": round(step_g, 3),
        "torch_step_ms": round(step_t, 3),
        "ratio": round(ratio, 3),
        "gemm_ms": round(gemm_total, 3),
        "layers_ms": round(layer_total, 3),
        "non_gemm_layer_ms": round(layer_total - gemm_total, 3),
        "loss_and_optimizer_ms": round(rest, 3),
        "gemm_only_ratio": round(gemm_total / step_t, 3),
        "per_layer_ms": layers,
        "per_gemm_ms": gemms,
    }


def table(s: dict, workload: str) -> str:
    infer = workload == "mlp-infer"
    batch = INFER_BATCH if infer else _batch(workload)
    unit = "inference pass (10,000 images, batch 500)" if infer else f"training step (batch {batch})"
    what = "pass" if infer else "step"
    f = ".3f" if workload in MLPS else ".2f"  # the MLP's step: a millisecond or so, the book's: tens of us
    torch_gemm = [f"| PyTorch: its GEMMs alone | {s['torch_gemm_ms']:{f}} |"] if "torch_gemm_ms" in s else []
    plain = ([f"| plain NumPy: the same step as one function, no glassnet | {s['plain_numpy_step_ms']:{f}} |"]
             if "plain_numpy_step_ms" in s else [])  # fmt: skip
    lines = [
        f"| part of one {unit} | ms |",
        "| --- | --- |",
        f"| glassnet, whole {what} | {s['glassnet_step_ms']:{f}} |",
        f"| PyTorch, whole {what} | {s['torch_step_ms']:{f}} |",
        *torch_gemm,
        *plain,
        f"| glassnet: the GEMMs alone (same shapes) | {s['gemm_ms']:{f}} |",
        f"| glassnet: layers' passes other than GEMMs (copies, layout, element-wise) | "
        f"{s['non_gemm_layer_ms']:{f}} |",
        f"| glassnet: {OUTSIDE_LAYERS[what]} | {s['loss_and_optimizer_ms']:{f}} |",
        "",
        "| layer pass | glassnet ms |",
        "| --- | --- |",
        *(f"| {k} | {v:{f}} |" for k, v in s["per_layer_ms"].items()),
        "",
        "| GEMM | ms |",
        "| --- | --- |",
        *(f"| {k} | {v:{f}} |" for k, v in s["per_gemm_ms"].items()),
    ]
    return "\n".join(lines)


def main() -> None:
    args = build_parser().parse_args()
    if args.impl:
        answer(args, lambda: (time_glassnet(args.workload, args.repeats) if args.impl == "glassnet"
                              else time_torch(args.workload, args.repeats, args.threads)))  # fmt: skip
        return
    runs: dict[str, list[dict]] = {"glassnet": [], "torch": []}
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), OPENBLAS_NUM_THREADS=str(args.threads))
    for r in range(args.rounds):
        for impl in round_order(r):
            cmd = [sys.executable, __file__, "--impl", impl, "--workload", args.workload,
                   "--repeats", str(args.repeats), "--threads", str(args.threads)]  # fmt: skip
            runs[impl].append(json.loads(run_child(cmd, env).strip().splitlines()[-1]))
    s = summarise(runs)
    print(json.dumps(s) if args.json else table(s, args.workload))


if __name__ == "__main__":
    main()
