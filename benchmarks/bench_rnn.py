"""Recurrent training speed, glassnet against PyTorch, on MNIST-1D sequences.

The workload of the recurrent issue: GRU(1 -> 64) over the 40 steps of each MNIST-1D signal,
the last step into Linear(64, 10), cross-entropy, Adam lr 1e-3, batch 128; the figure is the
training time of one epoch (the 4,000 training signals). ``--workload lstm`` swaps in an LSTM.
Both loops do the same per-batch work as ``benchmarks/bench_train.py`` (gather by index,
forward, loss, backward, step, the epoch report's loss and accuracy bookkeeping).

Each library runs in a process of its own (their thread pools starve each other in one
process), started once and warmed up; every round asks both, one after the other, which one
first alternating (``harness.alternate_live``), and each times ``--epochs`` epochs and reports
the fastest. An epoch takes a fraction of a second, so a round of fresh processes spent longer
importing torch between its two measurements than measuring, long enough for this VM's cores
to change placement (docs/speed.md); a round's two measurements are now about a second apart.
The report is the median over rounds of each library's seconds per epoch and the ratio
glassnet / torch (below 1: glassnet faster): the median over rounds of each round's own ratio,
with those ratios.

``--ranks K`` trains glassnet's side over K MPI ranks (``mpiexec -n K``, ``gn.fit(...,
distributed=gn.distributed.MPI())``, each rank's BLAS on ``--threads`` / K threads): the same
global batch of 128, split 64 and 64 over two ranks, against PyTorch's one process on
``--threads`` threads. Python's lock keeps a recurrent layer's threads from working at once
(``fit(shards=2)`` is slower for it); processes do not share one.

    python benchmarks/bench_rnn.py --workload gru --rounds 5 --threads 2
    python benchmarks/bench_rnn.py --workload lstm --rounds 5 --threads 2 --ranks 2
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time

from harness import (
    alternate_live,
    alternating_parser,
    answer,
    epoch_timer,
    mpiexec,
    paired_ratio,
    positive_int,
    refuse_more_ranks_than_threads,
)

HIDDEN, BATCH, LR = 64, 128, 1e-3


def load(threads: int):
    os.environ["OMP_NUM_THREADS"] = os.environ["OPENBLAS_NUM_THREADS"] = str(threads)
    import glassnet as gn

    gn.tune_malloc()  # as the CLI does (both libraries' processes: the same allocator for each)

    train, _ = gn.datasets.load_mnist1d()
    return train.x.reshape(-1, 40, 1), train.y  # (N, T = 40, 1 feature)


def glassnet_session(workload: str, epochs: int, threads: int, ranks: int = 1):
    """The model built and warmed up; returns the measurement: ``epochs`` epochs of ``gn.fit``
    (the same model training on from call to call), the fastest epoch's seconds. ``ranks`` > 1:
    this process is one of ``mpiexec``'s ranks, and fit trains over all of them."""
    x, y = load(threads)
    import numpy as np

    import glassnet as gn

    dist = gn.distributed.MPI() if ranks > 1 else None
    rng = np.random.default_rng(0)
    model = glassnet_model(gn, workload, rng)
    opt = gn.optim.Adam(model.parameters(), lr=LR)
    loss_fn = gn.CrossEntropyLoss()
    rows = BATCH // ranks  # warm-up on a rank's part of a batch, what its layers will see in fit
    for i in range(5):
        gn.train_step(model, loss_fn, opt, x[i * BATCH : i * BATCH + rows], y[i * BATCH : i * BATCH + rows])

    def measure() -> dict:
        timer = epoch_timer()
        gn.fit(model, loss_fn, opt, (x, y), epochs=epochs, batch_size=BATCH, rng=rng, verbose=False,
               callbacks=[timer], distributed=dist)  # fmt: skip
        return {"train": min(timer.times)}

    return measure


def glassnet_model(gn, workload: str, rng):
    """GRU or LSTM(1 -> 64), its last step into Linear(64, 10)."""
    cell = gn.GRU if workload == "gru" else gn.LSTM
    return gn.Sequential(cell(1, HIDDEN, rng=rng), gn.LastStep(), gn.Linear(HIDDEN, 10, rng=rng))


def torch_twin(torch, workload: str):
    """The same network in PyTorch: the recurrent layer's last output into Linear(64, 10)."""
    cell = torch.nn.GRU if workload == "gru" else torch.nn.LSTM

    class Net(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.rnn = cell(1, HIDDEN, batch_first=True)
            self.head = torch.nn.Linear(HIDDEN, 10)

        def forward(self, x):
            return self.head(self.rnn(x)[0][:, -1])

    return Net()


def torch_session(workload: str, epochs: int, threads: int):
    """As ``glassnet_session``, for the PyTorch twin."""
    x, y = load(threads)
    import torch

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = torch_twin(torch, workload)
    opt = torch.optim.Adam(model.parameters(), lr=LR)
    loss_fn = torch.nn.CrossEntropyLoss()
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)

    def epoch(n_batches: int) -> tuple[float, int]:
        perm = torch.randperm(len(xt))
        total, correct = 0.0, 0
        for i in range(n_batches):
            idx = perm[i * BATCH : (i + 1) * BATCH]
            opt.zero_grad()
            out = model(xt[idx])
            loss = loss_fn(out, yt[idx])
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
            correct += int((out.argmax(dim=1) == yt[idx]).sum())
        return total, correct

    model.train()
    epoch(5)  # warm-up
    n = -(-len(xt) // BATCH)

    def measure() -> dict:
        times = []
        for _ in range(epochs):
            t = time.perf_counter()
            epoch(n)
            times.append(time.perf_counter() - t)
        return {"train": min(times)}

    return measure


def build_parser() -> argparse.ArgumentParser:
    ap = alternating_parser(__doc__, rounds=5, as_json=False)
    ap.add_argument("--workload", choices=["gru", "lstm"], default="gru")
    ap.add_argument("--epochs", type=positive_int, default=3, help="timed epochs per process (min taken)")
    ap.add_argument("--ranks", type=positive_int, default=1,
                    help="glassnet on K MPI ranks (mpiexec -n K), BLAS on threads / K each")  # fmt: skip
    return ap


def main() -> None:
    ap = build_parser()
    args = ap.parse_args()
    if args.impl:
        ranks = args.ranks if args.impl == "glassnet" else 1
        args.threads = max(1, args.threads // ranks)  # each rank's share of the threads
        measure = []  # built at the first request, after answer() has set the threads

        def run() -> dict:
            if not measure:
                if args.impl == "glassnet":
                    measure.append(glassnet_session(args.workload, args.epochs, args.threads, ranks))
                else:
                    measure.append(torch_session(args.workload, args.epochs, args.threads))
            return measure[0]()

        answer(args, run, ranks)  # on ranks, rank 0 reads the requests and passes each on
        return
    refuse_more_ranks_than_threads(ap, args)
    launch = {"glassnet": [mpiexec("bench_rnn.py"), "-n", str(args.ranks)]} if args.ranks > 1 else None
    common = ["--workload", args.workload, "--epochs", str(args.epochs), "--threads", str(args.threads)]
    runs = alternate_live(__file__, args.rounds, [*common, "--ranks", str(args.ranks)], launch=launch)
    results = {impl: [r["train"] for r in rs] for impl, rs in runs.items()}
    g, t = statistics.median(results["glassnet"]), statistics.median(results["torch"])
    ratio, pairs = paired_ratio(results["glassnet"], results["torch"])
    report = {
        "workload": f"{args.workload}(1 -> {HIDDEN}), T = 40, batch {BATCH}, last step, Linear({HIDDEN}, 10)",
        "threads": args.threads,
        "ranks": args.ranks,
        "glassnet_s_per_4000": round(g, 4),
        "torch_s_per_4000": round(t, 4),
        "ratio": round(ratio, 3),
        "pair_ratios": [round(p, 3) for p in pairs],
        "ratio_of_medians": round(g / t, 3),
    }
    print(json.dumps(report))


if __name__ == "__main__":
    main()
