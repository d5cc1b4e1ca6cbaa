"""Training speed, glassnet against PyTorch, on Fashion-MNIST, same data/batch/threads.

Both loops do the same work per batch: gather the batch by index, forward, loss, backward,
optimizer step, and the bookkeeping ``gn.fit`` does for its epoch report (the batch loss as a
Python float and the number of correct predictions); neither evaluates a validation set.

Each measurement runs in its own process (NumPy's and torch's BLAS thread pools starve each
other in one process), a glassnet and a torch process per round, back to back (which runs first
alternates from round to round); a process warms up for a few steps, then times ``--epochs``
full training epochs (no evaluation). The report is the median seconds per epoch of each
library and the ratio glassnet / torch (below 1 means glassnet is faster): the median over
rounds of each round's own ratio (harness.paired_ratio), with those ratios. After training, the
same process times ``--infer-passes`` inference passes over the first ``--infer-size`` training
images, batch 500, in eval mode without gradients (glassnet: ``gn.predict``): examples per
second of the best pass (the steady state, as the best epoch is) and of the first pass (what a
single evaluation after training sees; a first pass pays for memory not yet mapped).

    python benchmarks/bench_train.py --workload mlp --rounds 3
    python benchmarks/bench_train.py --workload book --rounds 3
    python benchmarks/bench_train.py --workload resnet --rounds 2 --epochs 1

The ``resnet`` and ``vit`` workloads are the presets of those names against their PyTorch
twins (benchmarks/twins.py), each trained with its preset's optimizer, lr, momentum and L2 on
both sides (twins.torch_optimizer), batch 128, without augmentation (the same in both).
``--train-size`` times epochs over the first examples only (a quick check). ``--shards K``
trains glassnet with ``fit(shards=K)`` and infers with ``predict(shards=K)`` (each batch's
parts side by side in K threads, BLAS on one thread each: ``glassnet.shards``); PyTorch's side
is the same either way. ``--ranks K`` trains glassnet over K MPI ranks instead (``mpiexec -n
K``, ``fit(distributed=gn.distributed.MPI(sync_batchnorm=True))``, each rank's BLAS on
``--threads`` / K threads, the same global batch, batch norm over all of it), and times no
inference on that side.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time

from harness import (
    alternate,
    alternating_parser,
    epoch_timer,
    mpiexec,
    paired_ratio,
    positive_int,
    refuse_more_ranks_than_threads,
)
from twins import TWINS, torch_optimizer

WORKLOADS = {
    # name: (layer sizes, activation, loss, batch size, learning rate, momentum)
    "mlp": ([784, 256, 128, 10], "relu", "ce", 128, 0.05, 0.9),
    "book": ([784, 30, 10], "sigmoid", "quadratic", 10, 3.0, 0.0),
    # CNN-A (and with BatchNorm2d after each conv): Adam lr 1e-3, batch 128 (lr column unused)
    "cnn": ("cnn-a", None, "ce", 128, 1e-3, None),
    "cnn-bn": ("cnn-a-bn", None, "ce", 128, 1e-3, None),
    # the resnet and vit presets and their twins, with the preset's optimizer, lr, momentum and
    # L2 (batch and lr columns unused: the preset's)
    "resnet": ("resnet", None, "ce", 128, None, None),
    "vit": ("vit", None, "ce", 128, None, None),
}


def torch_cnn_a(torch, batch_norm: bool):
    nn = torch.nn
    bn = (lambda c: [nn.BatchNorm2d(c)]) if batch_norm else (lambda c: [])
    return nn.Sequential(nn.Conv2d(1, 32, 5), *bn(32), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(32, 64, 5), *bn(64), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Flatten(), nn.Dropout(0.5), nn.Linear(1024, 10))  # fmt: skip


def _mlp_layers(nn, workload: str) -> list:
    """The MLP or the book's net in a library ``nn`` with ``Linear``, ``ReLU``, ``Sigmoid``
    (glassnet's layers take ``rng``: bound by the caller)."""
    sizes, act = WORKLOADS[workload][:2]
    layers = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2 or act == "sigmoid":
            layers.append(nn.ReLU() if act == "relu" else nn.Sigmoid())
    return layers


def glassnet_mlp(gn, workload: str, rng):
    """The ``mlp`` or ``book`` workload's network in glassnet, its weights drawn from ``rng``."""

    class Layers:  # gn's layers with the generator bound, under the names _mlp_layers uses
        Linear = staticmethod(lambda a, b: gn.Linear(a, b, rng=rng))
        ReLU, Sigmoid = gn.ReLU, gn.Sigmoid

    return gn.Sequential(*_mlp_layers(Layers, workload))


def torch_mlp(torch, workload: str):
    """The same network in PyTorch."""
    return torch.nn.Sequential(*_mlp_layers(torch.nn, workload))


def glassnet_loss(gn, loss_name: str):
    """glassnet's loss of a ``WORKLOADS`` row: cross-entropy, or the book's quadratic cost."""
    return gn.CrossEntropyLoss() if loss_name == "ce" else gn.QuadraticCost()


def torch_loss(torch, loss_name: str, yt):
    """PyTorch's loss of a ``WORKLOADS`` row and the targets it takes for the labels ``yt``:
    cross-entropy on the labels, or the book's quadratic cost (0.5 * sum of squares / batch) on
    their one-hot rows."""
    if loss_name == "ce":
        return torch.nn.CrossEntropyLoss(), yt

    def quadratic(out, t):
        return 0.5 * ((out - t) ** 2).sum() / out.shape[0]

    return quadratic, torch.nn.functional.one_hot(yt, 10).float()


def peak_rss_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def load(threads: int, train_size: int | None = None):
    os.environ["OMP_NUM_THREADS"] = os.environ["OPENBLAS_NUM_THREADS"] = str(threads)
    import glassnet as gn

    gn.tune_malloc()  # as the CLI does (both libraries' processes: the same allocator for each)

    train, _ = gn.datasets.load_fashion_mnist(flatten=True)
    return train.x[:train_size], train.y[:train_size]


def run_glassnet(workload: str, epochs: int, threads: int, train_size: int | None = None,
                 infer_size: int = 10000, infer_passes: int = 3, shards: int = 1,
                 ranks: int = 1) -> dict:  # fmt: skip
    """glassnet's side: the model warmed up, ``epochs`` epochs of ``gn.fit`` timed, then the
    inference passes. ``ranks`` > 1: this process is one of ``mpiexec``'s ranks, fit trains over
    all of them (each on its part of every batch), and no inference is timed (``predict`` runs
    on one process)."""
    x, y = load(threads, train_size)
    import numpy as np

    import glassnet as gn

    # batch norm over the whole global batch on every rank, as PyTorch's one process normalises
    dist = gn.distributed.MPI(sync_batchnorm=True) if ranks > 1 else None

    sizes, act, loss_name, bs, lr, momentum = WORKLOADS[workload]
    rng = np.random.default_rng(0)
    regularizer = None
    if isinstance(sizes, str):  # a CNN on (N, 1, 28, 28) images, trained with Adam
        x = x.reshape(-1, 1, 28, 28)
        if sizes in TWINS:  # a preset, with its own optimizer, as glassnet train builds it
            from glassnet.choices import make_optimizer

            preset = gn.models.PRESETS[sizes]
            model = gn.models.build(sizes, rng, (1, 28, 28), 10)
            opt = make_optimizer(preset.optimizer, model.parameters(), preset.lr, preset.momentum)
            regularizer = gn.L2(preset.l2) if preset.l2 else None
        else:
            model = gn.models.cnn_a(rng, (1, 28, 28), 10, batch_norm=sizes.endswith("bn"))
            opt = gn.optim.Adam(model.parameters(), lr=lr)
    else:
        model = glassnet_mlp(gn, workload, rng)
        opt = gn.optim.SGD(model.parameters(), lr=lr, momentum=momentum)
    loss_fn = glassnet_loss(gn, loss_name)
    # warm-up, on the batch's parts where fit will run them (plain steps would leave the model's
    # layers holding whole-batch buffers that fit's replicas never use); the warm-up's replicas
    # are let go before fit makes its own, so that the peak memory is fit's
    parts = gn.Shards(model, shards) if shards > 1 else None
    rows = bs // ranks  # a rank's part of a batch: what its layers will see in fit
    for i in range(min(20, len(x) // bs)):
        gn.train_step(model, loss_fn, opt, x[i * bs : i * bs + rows], y[i * bs : i * bs + rows], regularizer,
                      shards=parts)  # fmt: skip
    if parts is not None:
        parts.close()
        parts = None

    timer = epoch_timer()
    gn.fit(model, loss_fn, opt, (x, y), epochs=epochs, batch_size=bs, rng=rng, verbose=False,
           regularizer=regularizer, callbacks=[timer], shards=shards, distributed=dist)  # fmt: skip
    if dist is not None:
        return {"train": min(timer.times), "rss": peak_rss_mb(), "rank": dist.rank}
    n_infer = min(infer_size, len(x))
    passes = _passes(lambda: gn.predict(model, x[:n_infer], batch_size=500, shards=shards), infer_passes)
    return {"train": min(timer.times), **_throughput(n_infer, passes), "rss": peak_rss_mb()}


def _passes(run, count: int) -> list[float]:
    """Seconds of each of ``count`` calls of ``run`` (inference passes over the same images)."""
    times = []
    for _ in range(count):
        t = time.perf_counter()
        run()
        times.append(time.perf_counter() - t)
    return times


def _throughput(n: int, times: list[float]) -> dict:
    """Examples per second of the best pass (the steady state, as an epoch's time is the best
    epoch's) and of the first one (what a single ``evaluate`` after training sees)."""
    return {"infer": n / min(times), "infer_first": n / times[0]}


def run_torch(workload: str, epochs: int, threads: int, train_size: int | None = None,
              infer_size: int = 10000, infer_passes: int = 3) -> dict:  # fmt: skip
    x, y = load(threads, train_size)
    import torch

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    sizes, act, loss_name, bs, lr, momentum = WORKLOADS[workload]
    if isinstance(sizes, str):
        x = x.reshape(-1, 1, 28, 28)
        if sizes in TWINS:
            import glassnet as gn

            model = TWINS[sizes](torch)
            opt = torch_optimizer(torch, gn.models.PRESETS[sizes], model)
        else:
            model = torch_cnn_a(torch, batch_norm=sizes.endswith("bn"))
            opt = torch.optim.Adam(model.parameters(), lr=lr)
    else:
        model = torch_mlp(torch, workload)
        opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    loss_fn, target = torch_loss(torch, loss_name, yt)

    def epoch(n_batches: int) -> tuple[float, int]:
        perm = torch.randperm(len(xt))
        total, correct = 0.0, 0
        for i in range(n_batches):
            idx = perm[i * bs : (i + 1) * bs]  # gather per batch, as glassnet's fit does
            opt.zero_grad()
            out = model(xt[idx])
            loss = loss_fn(out, target[idx])
            loss.backward()
            opt.step()
            # the bookkeeping gn.fit does for its epoch report: summed loss and accuracy
            total += loss.item() * len(idx)
            correct += int((out.argmax(dim=1) == yt[idx]).sum())
        return total, correct

    model.train()
    epoch(min(20, len(xt) // bs))  # warm-up
    n = -(-len(xt) // bs)
    times = []
    for _ in range(epochs):
        t = time.perf_counter()
        epoch(n)
        times.append(time.perf_counter() - t)
    model.eval()
    n_infer = min(infer_size, len(xt))

    def predict():
        with torch.no_grad():
            for i in range(0, n_infer, 500):
                model(xt[i : i + 500])

    passes = _passes(predict, infer_passes)
    return {"train": min(times), **_throughput(n_infer, passes), "rss": peak_rss_mb()}


def build_parser() -> argparse.ArgumentParser:
    ap = alternating_parser(__doc__, rounds=3, as_json=False)
    ap.add_argument("--workload", choices=sorted(WORKLOADS), default="mlp")
    ap.add_argument("--epochs", type=positive_int, default=2, help="timed epochs per process (min taken)")
    ap.add_argument("--train-size", type=positive_int,
                    help="time epochs over the first N training images only")  # fmt: skip
    ap.add_argument("--infer-size", type=positive_int, default=10000,
                    help="images timed for inference (batch 500)")  # fmt: skip
    ap.add_argument("--infer-passes", type=positive_int, default=3,
                    help="inference passes over those images (the best and the first reported)")  # fmt: skip
    ap.add_argument("--shards", type=positive_int, default=1,
                    help="glassnet: fit(shards=K), a batch in K parts in threads")  # fmt: skip
    ap.add_argument(
        "--ranks",
        type=positive_int,
        default=1,
        help="glassnet on K MPI ranks (mpiexec -n K), BLAS on threads / K each; no inference",
    )
    return ap


def main() -> None:
    ap = build_parser()
    args = ap.parse_args()
    if args.impl:
        if args.impl == "glassnet":
            ranks = args.ranks  # each rank on its share of the threads
            out = run_glassnet(args.workload, args.epochs, max(1, args.threads // ranks), args.train_size,
                               args.infer_size, args.infer_passes, args.shards, ranks)  # fmt: skip
            if out.pop("rank", 0) != 0:
                return  # under mpiexec rank 0 answers
        else:
            out = run_torch(args.workload, args.epochs, args.threads, args.train_size, args.infer_size,
                            args.infer_passes)  # fmt: skip
        print(json.dumps(out))
        return
    refuse_more_ranks_than_threads(ap, args)
    if args.ranks > 1 and args.shards > 1:
        ap.error("--ranks and --shards split the batch two ways: give one of them")
    extra = ["--train-size", str(args.train_size)] if args.train_size else []
    extra += ["--shards", str(args.shards)] if args.shards > 1 else []
    extra += ["--ranks", str(args.ranks)] if args.ranks > 1 else []
    extra += ["--infer-size", str(args.infer_size), "--infer-passes", str(args.infer_passes)]
    launch = {"glassnet": [mpiexec("bench_train.py"), "-n", str(args.ranks)]} if args.ranks > 1 else None
    common = ["--workload", args.workload, "--epochs", str(args.epochs), "--threads", str(args.threads)]
    results = alternate(__file__, args.rounds, [*common, *extra], launch=launch)

    def median(impl, key):
        return statistics.median(r[key] for r in results[impl])

    def paired(key):  # the median of each round's ratio, and those ratios
        ratio, pairs = paired_ratio(*([r[key] for r in results[i]] for i in ("glassnet", "torch")))
        return round(ratio, 3), [round(p, 3) for p in pairs]

    g, t = median("glassnet", "train"), median("torch", "train")
    ratio, pairs = paired("train")
    report = {
        "workload": args.workload,
        "threads": args.threads,
        "ranks": args.ranks,
        "glassnet_s_per_epoch": round(g, 3),
        "torch_s_per_epoch": round(t, 3),
        "ratio": ratio,
        "pair_ratios": pairs,
        "ratio_of_medians": round(g / t, 3),
        "peak_rss_mb": {i: round(median(i, "rss")) for i in results},  # on ranks: rank 0's
    }
    if args.ranks == 1:  # on ranks glassnet times no inference
        report |= {
            "inference_examples_per_s": {i: round(median(i, "infer")) for i in results},
            "inference_ratio": paired("infer")[0],
            "inference_first_pass_examples_per_s": {i: round(median(i, "infer_first")) for i in results},
            "inference_first_pass_ratio": paired("infer_first")[0],
        }
    print(json.dumps(report))


if __name__ == "__main__":
    main()
