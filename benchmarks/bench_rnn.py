"""Recurrent training speed, glassnet against PyTorch, on MNIST-1D sequences.

The workload of the recurrent issue: GRU(1 -> 64) over the 40 steps of each MNIST-1D signal,
the last step into Linear(64, 10), cross-entropy, Adam lr 1e-3, batch 128; the figure is the
training time of one epoch (the 4,000 training signals). ``--workload lstm`` swaps in an LSTM.
Both loops do the same per-batch work as ``benchmarks/bench_train.py`` (gather by index,
forward, loss, backward, step, the epoch report's loss and accuracy bookkeeping).

Each measurement runs in its own process, a glassnet and a torch process per round, back to
back, which one first alternating (their thread pools starve each other in one process); each
process warms up, then times ``--epochs`` epochs and reports the fastest. The report is the
median over rounds of each library's seconds per epoch and the ratio glassnet / torch (below 1:
glassnet faster): the median over rounds of each round's own ratio, with those ratios.

    python benchmarks/bench_rnn.py --workload gru --rounds 5 --threads 2
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time

from harness import alternate, alternating_parser, epoch_timer, paired_ratio, positive_int

HIDDEN, BATCH, LR = 64, 128, 1e-3


def load(threads: int):
    os.environ["OMP_NUM_THREADS"] = os.environ["OPENBLAS_NUM_THREADS"] = str(threads)
    import glassnet as gn

    gn.tune_malloc()  # as the CLI does (both libraries' processes: the same allocator for each)

    train, _ = gn.datasets.load_mnist1d()
    return train.x.reshape(-1, 40, 1), train.y  # (N, T = 40, 1 feature)


def run_glassnet(workload: str, epochs: int, threads: int) -> dict:
    x, y = load(threads)
    import numpy as np

    import glassnet as gn

    rng = np.random.default_rng(0)
    model = glassnet_model(gn, workload, rng)
    opt = gn.optim.Adam(model.parameters(), lr=LR)
    loss_fn = gn.CrossEntropyLoss()
    for i in range(5):  # warm-up
        gn.train_step(model, loss_fn, opt, x[i * BATCH : (i + 1) * BATCH], y[i * BATCH : (i + 1) * BATCH])

    timer = epoch_timer()
    gn.fit(model, loss_fn, opt, (x, y), epochs=epochs, batch_size=BATCH, rng=rng, verbose=False,
           callbacks=[timer])  # fmt: skip
    return {"train": min(timer.times)}


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


def run_torch(workload: str, epochs: int, threads: int) -> dict:
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
    times = []
    for _ in range(epochs):
        t = time.perf_counter()
        epoch(n)
        times.append(time.perf_counter() - t)
    return {"train": min(times)}


def build_parser() -> argparse.ArgumentParser:
    ap = alternating_parser(__doc__, rounds=5, as_json=False)
    ap.add_argument("--workload", choices=["gru", "lstm"], default="gru")
    ap.add_argument("--epochs", type=positive_int, default=3, help="timed epochs per process (min taken)")
    return ap


def main() -> None:
    args = build_parser().parse_args()
    if args.impl:
        fn = run_glassnet if args.impl == "glassnet" else run_torch
        print(json.dumps(fn(args.workload, args.epochs, args.threads)))
        return
    runs = alternate(__file__, args.rounds, ["--workload", args.workload, "--epochs", str(args.epochs),
                                              "--threads", str(args.threads)])  # fmt: skip
    results = {impl: [r["train"] for r in rs] for impl, rs in runs.items()}
    g, t = statistics.median(results["glassnet"]), statistics.median(results["torch"])
    ratio, pairs = paired_ratio(results["glassnet"], results["torch"])
    report = {
        "workload": f"{args.workload}(1 -> {HIDDEN}), T = 40, batch {BATCH}, last step, Linear({HIDDEN}, 10)",
        "threads": args.threads,
        "glassnet_s_per_4000": round(g, 4),
        "torch_s_per_4000": round(t, 4),
        "ratio": round(ratio, 3),
        "pair_ratios": [round(p, 3) for p in pairs],
        "ratio_of_medians": round(g / t, 3),
    }
    print(json.dumps(report))


if __name__ == "__main__":
    main()
