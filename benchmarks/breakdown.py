"""Where a training step's time goes (CNN-A, CNN-A + BN, the ``resnet`` preset, or the LSTM of
``bench_rnn.py``): each layer's forward and backward, the GEMMs alone, the loss and the
optimizer, against PyTorch's whole step on the same batch. ``--workload mlp-infer`` does the
same for an inference pass of the MLP of ``bench_train.py`` (``gn.predict`` over 10,000 images,
batch 500: each layer's forward, the products alone, and PyTorch's pass and its products alone).

glassnet's process times ``gn.train_step`` on one fixed batch of 128 Fashion-MNIST-shaped images
(median of ``--repeats`` steps after a warm-up), with every layer's ``forward`` / ``backward``
wrapped by a timer (a ReLU and the max-pool that ``Sequential`` runs with it as one step, as
one row; the layers inside a residual block too: for the ResNet, the passes of
layers of one kind and shape are summed into one row, "Conv2d(16,16,3,s1) x4 forward"); then
it times, alone, the matrix products that the convolutions and the linear layer do with the
same shapes (forward ``cols @ Wmat``, ``dW = cols^T delta``, and the
input gradient ``delta Wmat^T`` where the layer computes one; for the LSTM, on a batch of 128
MNIST-1D-shaped sequences (T = 40, one feature), the T products of its forward scan, the T of
its backward scan and the stacked product of its weight gradient). What is left of the step is
copies, layout work, element-wise passes and Python. PyTorch's process times its own whole step
(forward, loss, backward, Adam) on the same shapes. Each of ``--rounds`` rounds runs the two
processes back to back (which one first alternates); the figures are medians over rounds, the
step ratio the median of each round's own ratio (harness.paired_ratio).

    python benchmarks/breakdown.py --rounds 2
    python benchmarks/breakdown.py --rounds 2 --json     # one JSON line (for run_all.py)
    python benchmarks/breakdown.py --workload resnet --rounds 2
    python benchmarks/breakdown.py --workload lstm --rounds 3
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
# what a step or pass spends outside its layers' passes
OUTSIDE_LAYERS = {
    "step": "loss, optimizer, zero_grad, Python",
    "pass": "predict's own work: the input check, the batches, the output check",
}


def build_parser() -> argparse.ArgumentParser:
    ap = alternating_parser(__doc__, rounds=2, repeats=20)
    ap.add_argument("--workload", choices=["cnn", "cnn-bn", "resnet", "lstm", "mlp-infer"], default="cnn")
    return ap


def _data(workload: str):
    import numpy as np

    rng = np.random.default_rng(0)
    if workload == "mlp-infer":  # flat images, as many as the inference table's pass
        return rng.random((INFER_IMAGES, 784), dtype=np.float32), None
    shape = (BATCH, 40, 1) if workload == "lstm" else (BATCH, 1, 28, 28)  # MNIST-1D, or images
    x = rng.random(shape, dtype=np.float32)
    y = rng.integers(0, 10, BATCH)
    return x, y


def time_glassnet(workload: str, repeats: int) -> dict:
    import numpy as np

    import glassnet as gn

    gn.tune_malloc()
    from glassnet.module import named_modules
    from glassnet.walk import leaves

    x, y = _data(workload)
    if workload == "resnet":
        model = gn.models.resnet(np.random.default_rng(0), (1, 28, 28), 10)
    elif workload == "lstm":
        from bench_rnn import glassnet_model

        model = glassnet_model(gn, "lstm", np.random.default_rng(0))
    elif workload == "mlp-infer":
        from bench_train import glassnet_mlp

        model = glassnet_mlp(gn, "mlp", np.random.default_rng(0))
    else:
        model = gn.models.cnn_a(np.random.default_rng(0), (1, 28, 28), 10, batch_norm=workload == "cnn-bn")
    opt, loss_fn = gn.optim.Adam(model.parameters(), lr=1e-3), gn.CrossEntropyLoss()

    # every layer's passes, timed in place: one wrapper per bound method
    spent: dict[str, list[float]] = {}
    depth = [0]  # only the outermost pass counts (Linear.backward calls its backward_params)

    def timed(key, fn):
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
        return run

    layers_ = [layer for _, layer in leaves(model)]  # the layers inside blocks too
    names = [f"{name} {type(layer).__name__}" for name, layer in leaves(model)]
    for name, layer in zip(names, layers_):
        layer.forward = timed(f"{name} forward", layer.forward)
        layer.backward = timed(f"{name} backward", layer.backward)
        layer.backward_params = timed(f"{name} backward_params", layer.backward_params)
    # two layers Sequential runs as one step (a ReLU and its max-pool, a Linear and its ReLU): one row
    joined = {}
    for seq_name, seq in named_modules(model):
        for i, step_ in seq.steps() if isinstance(seq, gn.Sequential) else ():
            if not isinstance(step_, gn.Module):
                prefix, lo = f"{seq_name}." if seq_name else "", i - step_.reports  # the pair's first layer
                pair = f"{prefix}{lo}-{lo + 1} {type(seq[lo]).__name__}+{type(seq[lo + 1]).__name__}"
                joined[pair] = pair.split(" ")[1]
                step_.forward = timed(f"{pair} forward", step_.forward)
                step_.backward = timed(f"{pair} backward", step_.backward)
    if workload == "mlp-infer":  # one inference pass, as the inference table times it

        def step():
            gn.predict(model, x, batch_size=INFER_BATCH)
    else:

        def step():
            gn.train_step(model, loss_fn, opt, x, y)

    for _ in range(3):
        step()
    for times in spent.values():
        times.clear()
    steps, rests = [], []  # per step (or pass): its time, and what its layers' passes left of it
    per_step: dict[str, list[float]] = {k: [] for k in spent}  # each layer pass's time, per step
    for _ in range(repeats):
        before = {k: len(v) for k, v in spent.items()}
        t = time.perf_counter()
        step()
        steps.append(time.perf_counter() - t)
        for k, v in spent.items():  # once a training step; once a batch in an inference pass
            if len(v) > before[k]:
                per_step[k].append(sum(v[before[k] :]))
        rests.append(steps[-1] - sum(p[-1] for p in per_step.values() if p))
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
        elif isinstance(layer, gn.Linear):
            cols = rng.standard_normal((BATCH, layer.in_features)).astype(np.float32)
            wmat = rng.standard_normal((layer.in_features, layer.out_features)).astype(np.float32)
            delta = rng.standard_normal((BATCH, layer.out_features)).astype(np.float32)
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
    }


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

    return {"step": median_time(step, repeats)}


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
    step ratio, the median of each round's own."""
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
    return {
        **torch_gemm,
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


def table(s: dict) -> str:
    unit = (
        "inference pass (10,000 images, batch 500)" if "torch_gemm_ms" in s else "training step (batch 128)"
    )
    what = "pass" if "torch_gemm_ms" in s else "step"
    torch_gemm = [f"| PyTorch: its GEMMs alone | {s['torch_gemm_ms']:.2f} |"] if "torch_gemm_ms" in s else []
    lines = [
        f"| part of one {unit} | ms |",
        "| --- | --- |",
        f"| glassnet, whole {what} | {s['glassnet_step_ms']:.2f} |",
        f"| PyTorch, whole {what} | {s['torch_step_ms']:.2f} |",
        *torch_gemm,
        f"| glassnet: the GEMMs alone (same shapes) | {s['gemm_ms']:.2f} |",
        f"| glassnet: layers' passes other than GEMMs (copies, layout, element-wise) | "
        f"{s['non_gemm_layer_ms']:.2f} |",
        f"| glassnet: {OUTSIDE_LAYERS[what]} | {s['loss_and_optimizer_ms']:.2f} |",
        "",
        "| layer pass | glassnet ms |",
        "| --- | --- |",
        *(f"| {k} | {v:.2f} |" for k, v in s["per_layer_ms"].items()),
        "",
        "| GEMM | ms |",
        "| --- | --- |",
        *(f"| {k} | {v:.2f} |" for k, v in s["per_gemm_ms"].items()),
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
    print(json.dumps(s) if args.json else table(s))


if __name__ == "__main__":
    main()
