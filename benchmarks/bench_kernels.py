"""NumPy's BLAS kernels compared on glassnet's matrix products.

OpenBLAS chooses one family of kernels for the CPU it starts on (threadpoolctl calls it the
``architecture``: SkylakeX, Haswell, Zen, ...), and the environment variable
``OPENBLAS_CORETYPE`` makes it take another one. Whether another kernel would serve a CPU
better is a question of measurement: this script times the products of glassnet's slowest
layers under each kernel named, every kernel in its own child processes (the variable is read
when NumPy loads), alternating, and reports the median of each product per kernel with its
ratio to the first kernel (the default one, unless ``--kernels`` says otherwise). Each child
reports the kernel OpenBLAS actually took: a name it does not know leaves the default.

    python benchmarks/bench_kernels.py                            # default, Haswell, SkylakeX, Zen
    python benchmarks/bench_kernels.py --kernels default Haswell --rounds 5

Only kernels whose instructions the CPU has can run: ``SkylakeX`` needs AVX-512, and a child
that dies of it is reported as failed, not hidden.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys

from harness import median_time, positive_int, run_child, thread_env

# name: (rows, inner, columns) of A (rows x inner) @ B (inner x columns), float32, batch 128
PRODUCTS = {
    "Conv2d(32,64,5) forward: cols @ W (8192x800 @ 800x64)": (8192, 800, 64),
    "Conv2d(32,64,5) dW: cols^T @ delta (800x8192 @ 8192x64)": (800, 8192, 64),
    "Conv2d(32,64,5) dx: delta @ W^T (8192x64 @ 64x800)": (8192, 64, 800),
    "ResNet Conv2d(16,16,3) forward (100352x144 @ 144x16)": (100352, 144, 16),
    "MLP Linear(784,256) forward (128x784 @ 784x256)": (128, 784, 256),
}
DEFAULT_KERNELS = ["default", "Haswell", "SkylakeX", "Zen"]


def measure(repeats: int) -> dict:
    """This process's kernel (as threadpoolctl reports it) and each product's median seconds."""
    import numpy as np
    from threadpoolctl import threadpool_info

    kernel = next((i.get("architecture") for i in threadpool_info() if i.get("user_api") == "blas"), None)
    rng = np.random.default_rng(0)
    times = {}
    for name, (m, k, n) in PRODUCTS.items():
        a = rng.standard_normal((m, k)).astype(np.float32)
        b = rng.standard_normal((k, n)).astype(np.float32)
        out = np.empty((m, n), np.float32)
        times[name] = median_time(lambda a=a, b=b, out=out: np.matmul(a, b, out=out), repeats)
    return {"kernel": kernel, "times": times}


def kernel_env(kernel: str, threads: int) -> dict[str, str]:
    """The child's environment: ``threads`` BLAS threads and the kernel forced (or not)."""
    env = thread_env(threads)
    env.pop("OPENBLAS_CORETYPE", None)
    if kernel != "default":
        env["OPENBLAS_CORETYPE"] = kernel
    return env


def compare(kernels: list[str], rounds: int, repeats: int, threads: int) -> dict:
    """Every kernel's children in turn, ``rounds`` times (the order reversed every other round);
    per kernel, the kernel it ran on and each product's median ms, or the error it died of."""
    runs: dict[str, list[dict]] = {k: [] for k in kernels}
    failed: dict[str, str] = {}
    for r in range(rounds):
        for kernel in kernels if r % 2 == 0 else kernels[::-1]:
            if kernel in failed:
                continue
            cmd = [sys.executable, __file__, "--child", "--repeats", str(repeats)]
            try:
                runs[kernel].append(json.loads(run_child(cmd, kernel_env(kernel, threads)).splitlines()[-1]))
            except RuntimeError as e:
                failed[kernel] = str(e).splitlines()[-1]
    table = {}
    for kernel, results in runs.items():
        if kernel in failed:
            table[kernel] = {"error": failed[kernel]}
            continue
        ms = {
            name: statistics.median(r["times"][name] for r in results) * 1e3 for name in results[0]["times"]
        }
        table[kernel] = {"ran_on": results[0]["kernel"], "ms": ms}
    return table


def print_table(table: dict, threads: int) -> None:
    ok = [k for k, v in table.items() if "ms" in v]
    print(f"float32 products, {threads} BLAS threads, median ms; in brackets: the ratio to {ok[0]}\n")
    print("| product | " + " | ".join(f"{k} (ran on {table[k]['ran_on']})" for k in ok) + " |")
    print("| --- |" + " --- |" * len(ok))
    for name in table[ok[0]]["ms"]:
        base = table[ok[0]]["ms"][name]
        cells = [f"{table[k]['ms'][name]:.2f} ({table[k]['ms'][name] / base:.2f})" for k in ok]
        print(f"| {name} | " + " | ".join(cells) + " |")
    for k, v in table.items():
        if "error" in v:
            print(f"\n{k}: the child failed ({v['error']})")


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--kernels", nargs="+", default=DEFAULT_KERNELS,
                    help="OPENBLAS_CORETYPE values to compare ('default': the variable unset)")  # fmt: skip
    ap.add_argument("--rounds", type=positive_int, default=3)
    ap.add_argument("--repeats", type=positive_int, default=15)
    ap.add_argument("--threads", type=positive_int, default=2)
    ap.add_argument("--json", action="store_true", help="one JSON line instead of the table")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    return ap


def main() -> None:
    args = build_parser().parse_args()
    if args.child:
        print(json.dumps(measure(args.repeats)))
        return
    table = compare(list(dict.fromkeys(args.kernels)), args.rounds, args.repeats, args.threads)
    if not any("ms" in v for v in table.values()):
        raise SystemExit(f"bench_kernels.py: every kernel's child failed: {table}")
    if args.json:
        print(json.dumps({"threads": args.threads, "kernels": table}))
    else:
        print_table(table, args.threads)


if __name__ == "__main__":
    main()
