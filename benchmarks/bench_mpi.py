"""Data-parallel training over MPI: CNN-A throughput on 1 and 2 ranks, and the allreduce's cost.

    python benchmarks/bench_mpi.py                      # the table, written to --out
    python benchmarks/bench_mpi.py --steps 10 --quick   # a short check
    python benchmarks/bench_mpi.py --ranks 2,4,8,16     # the scaling on a machine with 16 cores

Three configurations train CNN-A (Adam, global batch 128, Fashion-MNIST-shaped 1x28x28 inputs;
random values: the speed does not depend on them), each in fresh processes, and time
``--steps`` optimizer steps after warm-up steps:

    1 rank, 1 BLAS thread       one process alone (threadpoolctl limits its BLAS)
    1 process, 2 BLAS threads   the same machine's two cores used by threads
    2 ranks, 1 BLAS thread each ``mpiexec -n 2``, gn.fit(..., distributed=gn.distributed.MPI())
                                (``--ranks 2,4,8``: each of those counts)

For the runs on K ranks it reports the seconds per step spent in the gradient allreduces (the
waits for the slower rank included). Then, on the most ranks, the time of one allreduce of n bytes for
n from 8 B to 16 MiB (after a barrier, median of repeats), fitted as t = alpha + n / bandwidth:
the latency and bandwidth the scaling model in docs/distributed.md takes (the least time of the
repeats: on a shared machine the others measure the scheduler). It also measures one
rank's seconds per example for the ResNet preset, for that model. The table is stamped with the
machine (CPU, BLAS via threadpoolctl, date).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time

from harness import positive_int  # benchmarks/: the script's own folder

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
BATCH = 128


def child(a) -> None:
    """One configuration's measurement; prints one JSON line (rank 0)."""
    from threadpoolctl import threadpool_info, threadpool_limits

    threadpool_limits(a.threads)  # before any BLAS call
    import numpy as np

    import glassnet as gn

    dist = gn.distributed.MPI() if a.mpi else None
    rank = 0 if dist is None else dist.rank
    rng = np.random.default_rng(0)
    in_shape = (1, 28, 28) if a.model == "cnn" else (3, 32, 32)
    n = BATCH * (a.steps + a.warmup)
    x = rng.standard_normal((n, *in_shape)).astype(np.float32)
    y = rng.integers(0, 10, n)
    model = gn.models.build(a.model, np.random.default_rng(1), in_shape, 10)
    opt = gn.optim.Adam(model.parameters(), lr=1e-3)
    params = sum(p.data.size for p in model.parameters())

    class Clock(gn.Callback):
        def on_batch_end(self, batch, logs):
            if batch == a.warmup - 1:
                self.start = time.perf_counter()
                self.reduced = 0.0 if dist is None else dist.allreduce_seconds

    clock = Clock()
    gn.fit(model, gn.CrossEntropyLoss(), opt, (x, y), epochs=1, batch_size=BATCH, shuffle=False,
           verbose=False, callbacks=[clock], distributed=dist)  # fmt: skip
    seconds = time.perf_counter() - clock.start
    result = {"seconds_per_step": seconds / a.steps, "examples_per_second": a.steps * BATCH / seconds,
              "params": params, "threads": a.threads, "ranks": 1 if dist is None else dist.size}  # fmt: skip
    if dist is not None:
        result["allreduce_per_step"] = (dist.allreduce_seconds - clock.reduced) / a.steps
        result["sizes"] = sweep(dist, a.quick)
    if rank == 0:
        result["blas"] = [
            f"{i.get('internal_api')} {i.get('version')} ({i.get('threading_layer', '')})"
            for i in threadpool_info()
            if i.get("user_api") == "blas"
        ]
        print(json.dumps(result), flush=True)


def sweep(dist, quick: bool) -> list[tuple[int, float]]:
    """The least seconds of one allreduce of n bytes (float32), after a barrier, for growing n:
    on a shared machine the other repeats measure the scheduler (a rank that lost its core)."""
    import numpy as np

    out = []
    for power in range(1, 23, 3 if quick else 1):
        buf = np.ones((4 << power) // 4, np.float32)
        times = []
        for _ in range(5 if quick else 20):
            dist.comm.Barrier()
            t = time.perf_counter()
            dist.comm.Allreduce(dist.MPI.IN_PLACE, buf, op=dist.MPI.SUM)
            times.append(time.perf_counter() - t)
        out.append((buf.nbytes, min(times)))
    return out


def fit_line(sizes: list[tuple[int, float]]) -> tuple[float, float]:
    """t = alpha + n / bandwidth from the sweeps (the least time of each size over the rounds):
    alpha the smallest message's time, the bandwidth the median of n / (t - alpha) over the
    messages of 1 MiB and more. Returns (alpha seconds, bandwidth bytes/s)."""
    best: dict[int, float] = {}
    for n, t in sizes:
        best[n] = min(t, best.get(n, float("inf")))
    alpha = best[min(best)]
    rates = [n / (t - alpha) for n, t in best.items() if n >= 1 << 20 and t > alpha]
    return alpha, statistics.median(rates) if rates else float("inf")


def ring_allreduce(k: int, nbytes: float, alpha: float, bandwidth: float) -> float:
    """Seconds of a ring allreduce of ``nbytes`` over k machines: 2 (k - 1) messages of
    nbytes / k each way (reduce-scatter, then allgather), each costing alpha + size / bandwidth."""
    return 0.0 if k == 1 else 2 * (k - 1) * alpha + 2 * (k - 1) / k * nbytes / bandwidth


def scaling(per_example: float, nbytes: float, alpha: float, bandwidth: float, batch: int = BATCH) -> list:
    """(k, compute s/step, allreduce s/step, speed-up) for k machines sharing a global batch:
    compute per_example * batch / k, then the allreduce (no overlap, as glassnet.distributed)."""
    rows = []
    for k in (1, 2, 4, 8, 16, 32, 64, 128):  # 128 = the batch: one example per machine
        compute, reduce = per_example * batch / k, ring_allreduce(k, nbytes, alpha, bandwidth)
        rows.append((k, compute, reduce, per_example * batch / (compute + reduce)))
    return rows


def crossover(per_example: float, nbytes: float, alpha: float, bandwidth: float, batch: int = BATCH) -> str:
    """The smallest k at which the allreduce takes longer than the compute (k <= batch: every
    machine needs an example of each batch)."""
    for k in range(2, batch + 1):
        if per_example * batch / k < ring_allreduce(k, nbytes, alpha, bandwidth):
            return f"from k = {k}"
    return f"never for k <= {batch}"


def model_table(name: str, per_example: float, nbytes: float, networks: dict) -> list[str]:
    lines = [f"{name}: {per_example * 1e3:.3f} ms/example on one core, {nbytes / 1e6:.2f} MB of gradients",
             "",
             "| k | " + " | ".join(f"{n}: compute / allreduce / speed-up" for n in networks) + " |",
             "| ---: |" + " ---: |" * len(networks)]  # fmt: skip
    cols = {n: scaling(per_example, nbytes, *net) for n, net in networks.items()}
    for i, k in enumerate(r[0] for r in cols[next(iter(cols))]):
        cells = [f"{c[i][1] * 1e3:.1f} / {c[i][2] * 1e3:.2f} ms / {c[i][3]:.1f}" for c in cols.values()]
        lines.append(f"| {k} | " + " | ".join(cells) + " |")
    lines.append("")
    lines.append("The allreduce takes longer than the compute: " + "; ".join(
        f"{n}: {crossover(per_example, nbytes, *net)}" for n, net in networks.items()) + ".")  # fmt: skip
    return lines


def run(args: list[str], ranks: int = 0) -> dict:
    env = {**os.environ, "PYTHONPATH": ROOT, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, os.path.abspath(__file__), "--child", *args]
    if ranks:
        cmd = [shutil.which("mpiexec"), "-n", str(ranks), *cmd, "--mpi"]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env).stdout
    return json.loads(out.strip().splitlines()[-1])


def networks(alpha: float, bandwidth: float) -> dict[str, tuple[float, float]]:
    """The measured shared memory, and two networks (latency, bytes/s) of the usual kinds."""
    return {"shared memory (measured)": (alpha, bandwidth), "10 GbE": (30e-6, 1.25e9),
            "100 Gb/s IB": (2e-6, 12.5e9)}  # fmt: skip


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def rank_counts(text: str) -> list[int]:
    """``--ranks``: comma-separated rank counts, each an integer >= 1 (argparse's usage error
    otherwise, not a traceback from ``int``)."""
    try:
        counts = [int(k) for k in text.split(",")]
    except ValueError:
        counts = []
    if not counts or min(counts) < 1:
        raise argparse.ArgumentTypeError(
            f"expected rank counts >= 1 separated by commas, e.g. 2,4,8; got {text!r}"
        )
    return counts


rank_counts.__name__ = "rank counts"  # what argparse names the type in its messages


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--mpi", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--threads", type=positive_int, default=1, help=argparse.SUPPRESS)
    p.add_argument("--model", default="cnn", help=argparse.SUPPRESS)
    p.add_argument("--steps", type=positive_int, default=30, help="timed steps per configuration")
    p.add_argument("--warmup", type=positive_int, default=3,
                   help="untimed steps first (at least 1: the clock starts after one)")  # fmt: skip
    p.add_argument("--rounds", type=positive_int, default=2, help="repeats of each configuration (median)")
    p.add_argument("--quick", action="store_true", help="fewer message sizes and repeats")
    p.add_argument("--ranks", type=rank_counts, default=[2],
                   help="rank counts to time, e.g. 2,4,8,16 (a larger machine)")  # fmt: skip
    p.add_argument("--out", default=os.path.join(HERE, "results", "mpi.md"))
    return p


def main() -> None:
    a = build_parser().parse_args()
    if a.child:
        child(a)
        return
    common = ["--steps", str(a.steps), "--warmup", str(a.warmup)] + ["--quick"] * a.quick
    ranks = a.ranks
    configs = {"1 rank, 1 BLAS thread": (["--threads", "1"], 0),
               "1 process, 2 BLAS threads": (["--threads", "2"], 0)}  # fmt: skip
    configs.update({f"{k} ranks, 1 BLAS thread each": (["--threads", "1"], k) for k in ranks})
    results: dict[str, list[dict]] = {k: [] for k in configs}
    for r in range(a.rounds):  # alternate the configurations: the load of the machine drifts
        for name, (args, count) in configs.items():
            results[name].append(run(common + args, count))
            print(
                f"round {r + 1}: {name}: {results[name][-1]['examples_per_second']:.0f} examples/s",
                flush=True,
            )
    resnet = run(["--model", "resnet", "--threads", "1", "--steps", "3", "--warmup", "1"])
    two = results[f"{ranks[-1]} ranks, 1 BLAS thread each"]
    alpha, bandwidth = fit_line([s for r in two for s in r["sizes"]])
    base = statistics.median(r["examples_per_second"] for r in results["1 rank, 1 BLAS thread"])
    lines = [
        "| configuration | examples/s | s/step | speed-up | allreduce s/step |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for name, rs in results.items():
        eps = statistics.median(r["examples_per_second"] for r in rs)
        sps = statistics.median(r["seconds_per_step"] for r in rs)
        red = statistics.median(r.get("allreduce_per_step", 0.0) for r in rs)
        lines.append(f"| {name} | {eps:.0f} | {sps:.4f} | {eps / base:.2f} | {red * 1e3:.2f} ms |" if red
                     else f"| {name} | {eps:.0f} | {sps:.4f} | {eps / base:.2f} | - |")  # fmt: skip
    cnn_params, resnet_params = two[0]["params"], resnet["params"]
    one_step = statistics.median(r["seconds_per_step"] for r in results["1 rank, 1 BLAS thread"])
    stamp = (f"{cpu_name()}, {os.cpu_count()} logical CPUs; BLAS: {', '.join(two[0]['blas'])}; "
             f"Python {platform.python_version()}; {datetime.date.today().isoformat()}")  # fmt: skip
    text = "\n".join([
        f"CNN-A training, Adam, global batch {BATCH}, {a.steps} timed steps, median of {a.rounds} rounds.",
        f"Machine: {stamp}.", "", *lines, "",
        f"Allreduce on {ranks[-1]} ranks (shared memory), t = alpha + n / bandwidth (8 B..16 MiB, least of "
        f"the repeats): "
        f"alpha = {alpha * 1e6:.1f} us, bandwidth = {bandwidth / 1e9:.2f} GB/s.",
        f"Compute, one rank, one BLAS thread: CNN-A {one_step / BATCH * 1e3:.3f} ms/example "
        f"({cnn_params} parameters, {4 * cnn_params / 1e6:.2f} MB of float32 gradients); "
        f"ResNet preset (3x32x32) {resnet['seconds_per_step'] / BATCH * 1e3:.3f} ms/example "
        f"({resnet_params} parameters, {4 * resnet_params / 1e6:.2f} MB).",
        "", "Scaling model (docs/distributed.md): global batch 128 over k machines of one core each,",
        "ring allreduce, no overlap of compute and communication.", "",
        *model_table("CNN-A", one_step / BATCH, 4 * cnn_params, networks(alpha, bandwidth)), "",
        *model_table("ResNet preset", resnet["seconds_per_step"] / BATCH, 4 * resnet_params,
                     networks(alpha, bandwidth)),  # fmt: skip
        "", "Raw: " + json.dumps({"results": results, "resnet": resnet}),
    ])  # fmt: skip
    from glassnet.io import write_atomic

    write_atomic(a.out, (text + "\n").encode())
    print(text.rsplit("\nRaw:", 1)[0])
    print(f"written to {a.out}")


if __name__ == "__main__":
    main()
