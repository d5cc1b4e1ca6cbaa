"""Run every speed benchmark and write stamped tables for this machine.

    python benchmarks/run_all.py            # the full run (long: whole epochs, several rounds)
    python benchmarks/run_all.py --quick    # fewer rounds, epochs over a slice (minutes)
    python benchmarks/run_all.py --only layers attention   # some tables only

Each benchmark script runs as it would by hand (its own alternating glassnet / PyTorch child
processes), with ``OPENBLAS_CORETYPE`` and ``OPENBLAS_L2_SIZE`` removed from the environment
(they pin NumPy's OpenBLAS to old kernels on some images). The tables go to
``benchmarks/results/<machine>.md`` and ``.json`` (``<machine>-quick`` for ``--quick``), where
``<machine>`` is made from the CPU model and core count: results from other machines stay side by
side. Every file carries its stamp: CPU model (``lscpu``), cores, threads, NumPy and its BLAS
(version, kernel and threads from threadpoolctl, read in a child process with the benchmarks'
environment), PyTorch version, Python version and the date. No number in those files is typed
by hand; ratios are glassnet / PyTorch (time ratios: below 1, glassnet is faster; throughput
ratios: above 1, glassnet is faster). A full run into ``benchmarks/results`` then remakes
README.md's speed tables from every machine's file (``summary.py``). ``--render`` runs nothing:
it writes this machine's page again from its ``.json`` (after a change to the page's wording).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import os
import platform
import re
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
DROP_ENV = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")

# the issue's targets: ratio glassnet / PyTorch (time: at most; throughput: at least)
TRAIN_TARGETS = {"mlp": "<= 0.9", "book": "<= 0.2 (5x faster)", "cnn": "<= 1.3", "cnn-shards2": "<= 1.3",
                 "cnn-bn": "<= 1.4", "cnn-bn-shards2": "<= 1.4",
                 "gru": "<= 0.9", "lstm": "<= 1.0"}  # fmt: skip
# the breakdowns of a training row's step, said against its target above instead of 1.0
BREAKDOWN_TO_TARGET = ("mlp", "book")
INFER_TARGETS = {"mlp": ">= 1.0", "cnn": ">= 0.8", "cnn-shards2": ">= 0.8"}
LAYER_TARGETS = {"Conv2d(1,32,5) first layer": "<= 2.0", "Conv2d(32,64,5)": "<= 1.5"}
ATTENTION_TARGET = "<= 1.0"  # issue 13: the attention table's layers (not its LayerNorm row)
ATTENTION_TARGET_ROWS = ("MultiheadAttention", "TransformerEncoderLayer")
TRAIN_LABELS = {
    "mlp": "MLP 784-256-128-10 ReLU, CE, SGD momentum, batch 128",
    "book": "book ch. 1: 784-30-10 sigmoid, quadratic cost, SGD, batch 10",
    "cnn": "CNN-A, Adam, batch 128",
    "cnn-shards2": "CNN-A, Adam, batch 128, glassnet `fit(shards=2)`",
    "cnn-bn": "CNN-A + BatchNorm2d, Adam, batch 128",
    "cnn-bn-shards2": "CNN-A + BatchNorm2d, Adam, batch 128, glassnet `fit(shards=2)` (synchronised)",
    "resnet": "`resnet` preset against its twin, SGD momentum + L2, batch 128",
    "resnet-shards2": "`resnet` preset against its twin, SGD momentum + L2, batch 128, glassnet "
    "`fit(shards=2)` (synchronised)",
    "vit": "`vit` preset against its twin, AdamW, batch 128",
    "vit-shards2": "`vit` preset against its twin, AdamW, batch 128, glassnet `fit(shards=2)`",
    "gru": "GRU(1 -> 64), MNIST-1D, T = 40, Adam, batch 128",
    "lstm": "LSTM(1 -> 64), MNIST-1D, T = 40, Adam, batch 128",
}


def train_label(key: str) -> str:
    """A training row's label; a row on K MPI ranks (key "<workload>-ranks<K>") is its workload's,
    saying so."""
    base, ranks = _on_ranks(key)
    label = TRAIN_LABELS.get(base, base)
    return label if ranks == 1 else f"{label}, glassnet on {ranks} MPI ranks (one BLAS thread each)"


def train_target(key: str) -> str:
    """A training row's target: on MPI ranks, its workload's."""
    return TRAIN_TARGETS.get(_on_ranks(key)[0], "")


def _on_ranks(key: str) -> tuple[str, int]:
    """("lstm", 2) for "lstm-ranks2", (key, 1) for a row in one process."""
    base, sep, ranks = key.partition("-ranks")
    return (base, int(ranks)) if sep else (key, 1)


TABLES = [
    "train", "rnn", "layers", "attention", "breakdown", "paths", "left-out", "kernels", "cores", "one-thread"
]  # fmt: skip
# the workloads run once more at one thread (table "one-thread"), by (table, key)
ONE_THREAD = (("train", "mlp"), ("train", "cnn"), ("rnn", "lstm"), ("attention", ""))


@dataclasses.dataclass(frozen=True)
class Workload:
    """One benchmark command: ``script`` (in benchmarks/) with ``args``; ``table`` says which
    table its JSON line feeds, ``key`` its row (a training workload) or nothing (a whole table)."""

    table: str  # one of TABLES
    key: str
    script: str
    args: tuple[str, ...]

    def command(self) -> list[str]:
        return [sys.executable, str(HERE / self.script), *self.args]


def workloads(quick: bool, threads: int = 2) -> list[Workload]:
    """The run's commands, in order. ``quick``: one or two rounds, epochs over a slice of the
    training set, fewer inference images; the full run: whole epochs and more rounds."""
    t = ("--threads", str(threads))

    def train(key, rounds, epochs, train_size=None, infer_size=10000, shards=1, ranks=1):
        size = ("--train-size", str(train_size)) if train_size else ()
        split = ("--shards", str(shards)) if shards > 1 else ()  # glassnet's fit(shards=...)
        split += ("--ranks", str(ranks)) if ranks > 1 else ()  # glassnet over MPI ranks (mpiexec)
        args = ("--workload", key, "--rounds", str(rounds), "--epochs", str(epochs), *size,
                "--infer-size", str(infer_size), *split, *t)  # fmt: skip
        name = f"{key}-shards{shards}" if shards > 1 else f"{key}-ranks{ranks}" if ranks > 1 else key
        return Workload("train", name, "bench_train.py", args)

    def rnn(key, rounds, epochs, ranks=1):
        split = ("--ranks", str(ranks)) if ranks > 1 else ()  # glassnet over MPI ranks (mpiexec)
        args = ("--workload", key, "--rounds", str(rounds), "--epochs", str(epochs), *split, *t)
        return Workload("rnn", f"{key}-ranks{ranks}" if ranks > 1 else key, "bench_rnn.py", args)

    def table(name, script, rounds, repeats, key="", extra=()):  # a whole table, one JSON line
        args = (*extra, "--rounds", str(rounds), "--repeats", str(repeats), "--json", *t)
        return Workload(name, key, script, args)

    def cores(seconds):  # where the two cores sit, probed for ``seconds``
        return Workload("cores", "", "probe_cores.py", ("--seconds", str(seconds), "--json", *t))

    run = (_quick_workloads if quick else _full_workloads)(train, rnn, table, cores)
    run = [w for w in run if _ranks(w.args) <= threads]  # a rank per thread: the same cores as PyTorch's
    if threads > 1:  # the same commands at one thread: what the other threads buy each library
        run += [
            dataclasses.replace(w, table="one-thread", key=w.key or w.table, args=_at_one_thread(w.args))
            for w in run
            if (w.table, w.key) in ONE_THREAD
        ]
    return run


def _ranks(args: tuple[str, ...]) -> int:
    return int(args[args.index("--ranks") + 1]) if "--ranks" in args else 1


def _at_one_thread(args: tuple[str, ...]) -> tuple[str, ...]:
    i = args.index("--threads")
    return (*args[:i], "--threads", "1", *args[i + 2 :])


def _quick_workloads(train, rnn, table, cores) -> list[Workload]:
    return [
        train("mlp", 2, 1),
        train("book", 2, 1, train_size=20000),
        train("cnn", 2, 1, train_size=12800, infer_size=5000),
        train("cnn", 2, 1, train_size=12800, infer_size=5000, shards=2),
        train("cnn-bn", 2, 1, train_size=12800, infer_size=5000),
        train("cnn-bn", 2, 1, train_size=12800, infer_size=5000, shards=2),
        train("mlp", 2, 1, ranks=2),
        train("resnet", 1, 1, train_size=640, infer_size=500),
        rnn("gru", 2, 1),
        rnn("lstm", 2, 1),
        rnn("lstm", 2, 1, ranks=2),
        table("layers", "bench_layers.py", 1, 10),
        table("attention", "bench_attention.py", 1, 10),
        table("breakdown", "breakdown.py", 1, 10),
        table("breakdown", "breakdown.py", 1, 5, "resnet", ("--workload", "resnet")),
        table("breakdown", "breakdown.py", 1, 10, "lstm", ("--workload", "lstm")),
        table("breakdown", "breakdown.py", 1, 5, "mlp-infer", ("--workload", "mlp-infer")),
        table("breakdown", "breakdown.py", 1, 5, "mlp", ("--workload", "mlp")),
        table("breakdown", "breakdown.py", 1, 50, "book", ("--workload", "book")),  # 50 steps: milliseconds
        table("paths", "bench_paths.py", 2, 4),
        table("left-out", "bench_left_out.py", 1, 2),
        table("kernels", "bench_kernels.py", 1, 5),
        cores(10),
    ]


def _full_workloads(train, rnn, table, cores) -> list[Workload]:
    return [
        train("mlp", 3, 2),
        train("book", 3, 1),
        train("cnn", 3, 1),
        train("cnn", 3, 1, shards=2),
        train("cnn-bn", 3, 1),
        train("cnn-bn", 3, 1, shards=2),
        train("mlp", 3, 2, ranks=2),  # processes instead of threads: no lock shared (docs/speed.md)
        train("book", 3, 1, ranks=2),
        train("cnn", 3, 1, ranks=2),
        train("resnet", 2, 1, train_size=6400, infer_size=2000),
        train("resnet", 2, 1, train_size=6400, infer_size=2000, shards=2),
        train("vit", 2, 1, train_size=6400, infer_size=2000),
        train("vit", 2, 1, train_size=6400, infer_size=2000, shards=2),
        rnn("gru", 15, 3),  # a recurrent epoch is short and its ratio noisy: many rounds (live children)
        rnn("lstm", 15, 3),
        rnn("gru", 15, 3, ranks=2),
        rnn("lstm", 15, 3, ranks=2),
        table("layers", "bench_layers.py", 7, 20),  # ms-long layers, their ratios noisy: more rounds
        table("attention", "bench_attention.py", 21, 30),  # its two processes live: a round is 2 s
        table("breakdown", "breakdown.py", 3, 20),
        table("breakdown", "breakdown.py", 3, 10, "resnet", ("--workload", "resnet")),
        table("breakdown", "breakdown.py", 5, 20, "lstm", ("--workload", "lstm")),
        table("breakdown", "breakdown.py", 5, 10, "mlp-infer", ("--workload", "mlp-infer")),
        table("breakdown", "breakdown.py", 5, 20, "mlp", ("--workload", "mlp")),
        table("breakdown", "breakdown.py", 5, 200, "book", ("--workload", "book")),  # a step of tens of us
        table("paths", "bench_paths.py", 8, 8),
        table("left-out", "bench_left_out.py", 6, 4),
        table("kernels", "bench_kernels.py", 3, 15),
        cores(60),
    ]


def bench_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in DROP_ENV}


_STAMP_CHILD = """
import json, sys, numpy
try:
    import threadpoolctl
    blas = [i for i in threadpoolctl.threadpool_info() if i.get("user_api") == "blas"]
except ImportError:
    blas = []
try:
    import torch
    tv = torch.__version__
except ImportError:
    tv = None
print(json.dumps({"numpy": numpy.__version__, "blas": blas, "torch": tv}))
"""


def machine_stamp(threads: int, env: dict[str, str] | None = None) -> dict:
    """What the tables were measured on: CPU model and cores (lscpu), the NumPy / BLAS / PyTorch
    the benchmarks' child processes load (read in one such child), Python, the date (UTC)."""
    cpu, cores, family = platform.processor() or platform.machine(), os.cpu_count(), "unknown"
    try:
        lscpu = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        fields = dict(line.split(":", 1) for line in lscpu.splitlines() if ":" in line)
        fields = {k.strip(): v.strip() for k, v in fields.items()}
        cpu = fields.get("Model name", cpu)
        cores = int(fields.get("CPU(s)", cores))
        if "CPU family" in fields:  # one model name covers several generations
            family = f"family {fields['CPU family']} model {fields.get('Model', '?')}"
    except (OSError, subprocess.CalledProcessError, ValueError):
        pass
    out = subprocess.run([sys.executable, "-c", _STAMP_CHILD], capture_output=True, text=True, check=True,
                         env=env if env is not None else bench_env()).stdout  # fmt: skip
    libs = json.loads(out.strip().splitlines()[-1])
    blas = libs["blas"][0] if libs["blas"] else {}
    return {
        "cpu": cpu,
        "cpu_family": family,
        "cores": cores,
        "threads": threads,
        "numpy": libs["numpy"],
        "blas": " ".join(str(blas.get(k)) for k in ("internal_api", "version")) if blas else "unknown",
        "blas_kernel": blas.get("architecture", "unknown"),
        "blas_threads_default": blas.get("num_threads"),
        "torch": libs["torch"],
        "python": platform.python_version(),
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
    }


def machine_slug(stamp: dict) -> str:
    """A file name for this machine: the CPU model in lower case, words joined by '-', its family
    and model numbers where lscpu gives them, the core count and NumPy's BLAS kernel
    (``amd-epyc-f25m17-2c-skylakex``). One model name ("AMD EPYC") covers several CPU
    generations (a Zen 4 is family 25, a Zen 5 family 26), and one CPU runs OpenBLAS's Haswell
    or SkylakeX kernels as ``OPENBLAS_CORETYPE`` says, with different tables."""
    model = re.sub(r"\((r|tm)\)|\bcpu\b|@.*$|\bprocessor\b", " ", stamp["cpu"].lower())
    words = re.findall(r"[a-z0-9]+", model)
    numbers = re.findall(r"\d+", str(stamp.get("cpu_family") or ""))  # "family 25 model 17"
    family = [f"f{numbers[0]}m{numbers[1]}"] if len(numbers) >= 2 else []
    kernel = re.findall(r"[a-z0-9]+", str(stamp.get("blas_kernel", "unknown")).lower())
    return "-".join([*words[:6], *family, f"{stamp['cores']}c", *kernel[:1]])


def run(w: Workload, env: dict[str, str]) -> dict:
    """Run one benchmark command; its last stdout line is its JSON report."""
    print("$", " ".join([Path(sys.executable).name, *w.command()[1:]]), flush=True)
    proc = subprocess.run(w.command(), capture_output=True, text=True, env=env, cwd=HERE)
    if proc.returncode != 0:
        return {"error": (proc.stderr or proc.stdout).strip().splitlines()[-3:]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _num(v, fmt: str) -> str:
    return "n/a" if v is None else format(v, fmt)


def render(stamp: dict, results: list[tuple[Workload, dict]], quick: bool) -> str:
    """The Markdown page: the stamp, then one table per kind of benchmark, from ``results``."""
    by_table: dict[str, list[tuple[Workload, dict]]] = {}
    for w, r in results:
        by_table.setdefault(w.table, []).append((w, r))
    lines = [
        f"# Speed benchmarks: {stamp['cpu']}, {stamp['cores']} cores",
        "",
        "Generated by `python benchmarks/run_all.py"
        + (" --quick" if quick else "")
        + "`; do not edit by hand.",
        "",
        "| machine | |",
        "| --- | --- |",
        *(f"| {k} | {v} |" for k, v in stamp.items()),
        f"| run | {'quick (fewer rounds, epochs over a slice of the data)' if quick else 'full'} |",
        *(
            f"| {table} measured | {date} (kept from an earlier run; `--only` reran the others) |"
            for table, date in _earlier_dates(stamp, results).items()
        ),  # fmt: skip
        "",
        "Ratios are glassnet / PyTorch, each library in its own processes: each round runs a glassnet "
        "process and a PyTorch process back to back (which one first alternates from round to round), "
        'and a ratio is the median over rounds of each round\'s own ratio (the column "each round"); '
        "the times are each library's median. Times: below 1, glassnet is faster. Throughput: above 1, "
        "glassnet is faster.",
        "",
    ]
    errors = [(w, r) for w, r in results if "error" in r]
    train = [(w, r) for w, r in by_table.get("train", []) + by_table.get("rnn", []) if "error" not in r]
    if train:
        lines += ["## Training (seconds per epoch)", "",
                  "| workload | glassnet s | PyTorch s | ratio | each round | target | command |",
                  "| --- | --- | --- | --- | --- | --- | --- |"]  # fmt: skip
        for w, r in train:
            g, t = _times(r)[""]
            rounds = ", ".join(f"{p:.2f}" for p in r.get("pair_ratios", []))
            cmd = "python benchmarks/" + " ".join([w.script, *w.args])
            lines.append(f"| {train_label(w.key)} | {_num(g, '.3f')} | {_num(t, '.3f')} | "
                         f"**{_num(_ratios(r)[''], '.2f')}** | {rounds} | "
                         f"{train_target(w.key)} | `{cmd}` |")  # fmt: skip
        lines.append("")
    infer = [(w, r) for w, r in by_table.get("train", []) if "inference_examples_per_s" in r]
    if infer:
        lines += ["## Inference (images per second, batch 500) and peak memory", "",
                  "Best of three passes over the images (the first pass, which also maps the memory the "
                  "passes reuse, in its own column).", "",
                  "| workload | glassnet img/s | PyTorch img/s | ratio | first pass: glassnet, PyTorch, "
                  "ratio | target | glassnet peak RSS MB | PyTorch peak RSS MB |",
                  "| --- | --- | --- | --- | --- | --- | --- | --- |"]  # fmt: skip
        for w, r in infer:
            g, t = r["inference_examples_per_s"]["glassnet"], r["inference_examples_per_s"]["torch"]
            first = r.get("inference_first_pass_examples_per_s")
            first_cell = "n/a"  # results from before the first pass was reported
            if first:
                fg, ft = first["glassnet"], first["torch"]
                first_cell = f"{fg:,}, {ft:,}, {r.get('inference_first_pass_ratio', fg / ft):.2f}"
            rss = r.get("peak_rss_mb", {})
            ratio = inference_ratio(r)
            lines.append(f"| {w.key} | {g:,} | {t:,} | **{ratio:.2f}** | {first_cell} | "
                         f"{INFER_TARGETS.get(w.key, '')} | {rss.get('glassnet', 'n/a')} | "
                         f"{rss.get('torch', 'n/a')} |")  # fmt: skip
        lines.append("")
    titles = {
        "layers": "Per layer, CNN-A shapes (forward + backward, batch 128, ms)",
        "attention": "Attention (forward + backward, N = 128, T = 16, E = 64, 4 heads, ms)",
    }
    for table, title in titles.items():
        for w, r in by_table.get(table, []):
            if "error" in r:
                continue
            lines += [f"## {title}", "", f"`python benchmarks/{' '.join([w.script, *w.args])}`", "",
                      "| layer | glassnet ms | PyTorch ms | ratio | each round | target |",
                      "| --- | --- | --- | --- | --- | --- |"]  # fmt: skip
            for name, row in r["rows"].items():
                if table == "attention":
                    target = ATTENTION_TARGET if name.startswith(ATTENTION_TARGET_ROWS) else ""
                else:
                    target = LAYER_TARGETS.get(name, "")
                rounds = ", ".join(f"{p:.2f}" for p in row.get("pair_ratios", []))
                lines.append(f"| {name} | {row['glassnet_ms']:.2f} | {row['torch_ms']:.2f} | "
                             f"**{row['ratio']:.2f}** | {rounds} | {target} |")  # fmt: skip
            lines.append("")
    for w, r in by_table.get("breakdown", []):
        if "error" not in r:
            lines += breakdown_lines(w, r)
    in_process = {  # table: (title, note, header, the two sides' keys)
        "paths": ("Fast paths against the plain ones (one process, alternating, ms)", [],
                  ("path", "fast ms", "plain ms", "fast / plain"), ("fast_ms", "plain_ms")),
        "left-out": ("Ideas measured and left out (the alternative against glassnet's path, one process, "
                     "alternating, ms)",
                     ["Above 1, the alternative is slower. docs/speed.md says what each one is.", ""],
                     ("idea", "alternative ms", "glassnet ms", "alternative / glassnet"),
                     ("alternative_ms", "glassnet_ms")),
    }  # fmt: skip
    for table, spec in in_process.items():
        for w, r in by_table.get(table, []):
            if "error" not in r:
                lines += in_process_lines(w, r, *spec)
    for w, r in by_table.get("kernels", []):
        if "error" not in r:
            lines += kernel_lines(w, r)
    for w, r in by_table.get("cores", []):
        if "error" not in r:
            lines += [f"## Where the {r.get('threads', 2)} cores sit, and what it costs the second thread "
                      f"({r['probes']} probes over {r['seconds']} s)", "",
                      f"`python benchmarks/{' '.join([w.script, *w.args])}`", "",
                      "Distance: the time to read 1 MB the other core has just written over the time to read "
                      "it after this core wrote it (near: below 1.3; far: 1.4 and above). docs/speed.md says "
                      "what it means for the tables above.", "",
                      *cores_table(r), ""]  # fmt: skip
    one = [(w, r) for w, r in by_table.get("one-thread", []) if "error" not in r]
    if one:
        lines += one_thread_lines(one, results)
    if errors:
        lines += ["## Benchmarks that failed", ""]
        lines += [f"- `{' '.join([w.script, *w.args])}`: {' '.join(r['error'])}" for w, r in errors]
        lines.append("")
    return "\n".join(lines)


def _times(r: dict) -> dict[str, tuple[float, float]]:
    """(glassnet, PyTorch) times of a training, recurrent or attention result, by row: an
    attention table's rows by layer (ms), a training workload's one row (s) under ""."""
    if "rows" in r:
        return {name: (row["glassnet_ms"], row["torch_ms"]) for name, row in r["rows"].items()}
    g = r.get("glassnet_s_per_epoch", r.get("glassnet_s_per_4000"))
    t = r.get("torch_s_per_epoch", r.get("torch_s_per_4000"))
    return {"": (g, t)}


def _ratios(r: dict) -> dict[str, float]:
    """The ratios of a training, recurrent or attention result, by row as ``_times``: the median
    of each round's own ratio (results from before it was reported: the ratio of the medians)."""
    if "rows" in r:
        return {name: row["ratio"] for name, row in r["rows"].items()}
    ((g, t),) = _times(r).values()
    return {"": r.get("ratio", r.get("ratio_of_medians", g / t))}


def inference_ratio(r: dict) -> float:
    """A training result's throughput ratio glassnet / PyTorch: the median of each round's own
    (results from before it was reported: the ratio of the medians)."""
    ips = r["inference_examples_per_s"]
    return r.get("inference_ratio", ips["glassnet"] / ips["torch"])


def one_thread_lines(one: list[tuple[Workload, dict]], results: list[tuple[Workload, dict]]) -> list[str]:
    """The one-thread table: each workload's times at one thread, its ratio there and at the
    thread count of the tables above, and how much faster those threads made each library (its
    time at one thread / its time there)."""
    many = {(w.key or w.table): (w, r) for w, r in results
            if w.table != "one-thread" and (w.table, w.key) in ONE_THREAD and "error" not in r}  # fmt: skip
    if not many:
        return []
    w0 = next(iter(many.values()))[0]
    n = w0.args[w0.args.index("--threads") + 1]
    lines = [f"## What {n} threads buy each library (the same commands at one thread)", "",
             f"NumPy runs its BLAS products on {n} threads and every element-wise pass on one; PyTorch "
             f"runs both on {n}. Speed-up: a library's time at one thread over its time at {n} (the "
             "tables above, same run).", "",
             f"| workload | glassnet, 1 thread | PyTorch, 1 thread | ratio, 1 thread | ratio, {n} threads | "
             "speed-up, glassnet | speed-up, PyTorch | command |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]  # fmt: skip
    for w, r in one:
        other = _times(many[w.key][1]) if w.key in many else {}
        other_ratio = _ratios(many[w.key][1]) if w.key in many else {}
        for name, (g1, t1) in _times(r).items():
            unit = " ms" if name else " s"
            gn_, tn = other.get(name, (None, None))
            there = (["n/a"] * 3 if gn_ is None else
                     [f"{other_ratio[name]:.2f}", f"{g1 / gn_:.2f}x", f"{t1 / tn:.2f}x"])  # fmt: skip
            cells = [f"{g1:.3f}{unit}", f"{t1:.3f}{unit}", f"**{_ratios(r)[name]:.2f}**", *there,
                     f"`python benchmarks/{' '.join([w.script, *w.args])}`"]  # fmt: skip
            lines.append(f"| {name or train_label(w.key)} | " + " | ".join(cells) + " |")
    return [*lines, ""]


def in_process_lines(w: Workload, r: dict, title: str, note: list[str], header: tuple[str, ...],
                     keys: tuple[str, str]) -> list[str]:  # fmt: skip
    """The table of an in-process comparison (bench_paths.py, bench_left_out.py): its heading,
    its command, ``note``, then one row per comparison: name, the two sides' ms (``keys``), ratio."""
    lines = [f"## {title}", "", f"`python benchmarks/{' '.join([w.script, *w.args])}`", "", *note,
             "| " + " | ".join(header) + " |", "| --- | --- | --- | --- |"]  # fmt: skip
    for row in r["rows"]:
        lines.append(f"| {row['name']} | {row[keys[0]]:.2f} | {row[keys[1]]:.2f} | **{row['ratio']:.2f}** |")
    return [*lines, ""]


def cores_table(report: dict) -> list[str]:
    """probe_cores.py's report as a Markdown table (its own output without --json too)."""
    n = report.get("threads", 2)
    lines = [f"Conv2d(32,64,5) (CNN-A): its backward at {n} threads and at 1; its dx loop at {n} threads "
             "with one buffer and with a buffer per tap. Conv2d(16,16,3) (ResNet, 28x28): its dx by "
             "shifted rows, the same two ways. Times in ms. CNN-A's inference (batch 500) with the windows "
             "in one block's buffer, in a ring of 64 MiB, in two blocks' buffers, and as the layer chooses "
             "by timing the three on its own calls (glassnet.tuning), images per second.", "",
             f"| cores | probes | distance | backward, {n} threads | backward, 1 thread | dx, one buffer | "
             "dx, a buffer per tap | ResNet dx, one buffer | ResNet dx, a buffer per tap | inference, one "
             "buffer | inference, ring | inference, two blocks | inference, timed |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]  # fmt: skip
    keys = ("backward_2", "backward_1", "dx_one_buffer", "dx_per_tap", "rows_one_buffer", "rows_per_tap")
    for name, c in report["classes"].items():
        cells = " | ".join(f"{c[k]:.2f}" for k in keys)
        ways = ("infer_one_buffer", "infer_ring", "infer_two", "infer_timed")
        infer = " | ".join(f"{c[k]:,.0f}" if k in c else "n/a" for k in ways)  # n/a: an older report
        lines.append(f"| {name} | {c['probes']} | {c['distance']:.2f} | {cells} | {infer} |")
    return lines


def kernel_lines(w: Workload, r: dict) -> list[str]:
    """The BLAS kernels' table: each product's median ms under each kernel OPENBLAS_CORETYPE
    names, with its ratio to the first (the default kernel); a kernel whose child died, as such."""
    ok = {k: v for k, v in r["kernels"].items() if "ms" in v}
    first = next(iter(ok))
    lines = ["## NumPy's BLAS kernels on glassnet's products (median ms; in brackets, the ratio to "
             f"{first})", "", f"`python benchmarks/{' '.join([w.script, *w.args])}`", "",
             "| product | " + " | ".join(f"{k} (ran on {v['ran_on']})" for k, v in ok.items()) + " |",
             "| --- |" + " --- |" * len(ok)]  # fmt: skip
    for name, base in ok[first]["ms"].items():
        cells = [f"{v['ms'][name]:.2f} ({v['ms'][name] / base:.2f})" for v in ok.values()]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += [f"- {k}: the child failed ({v['error']})" for k, v in r["kernels"].items() if "ms" not in v]
    return [*lines, ""]


def _earlier_dates(stamp: dict, results: list[tuple[Workload, dict]]) -> dict[str, str]:
    """Tables whose results were measured before this run's date (kept by ``--only``)."""
    dates: dict[str, str] = {}
    for w, r in results:
        if r.get("measured", stamp["date"]) != stamp["date"]:
            dates.setdefault(w.table, r["measured"])
    return dates


def breakdown_lines(w: Workload, s: dict) -> list[str]:
    """What stands between CNN-A (the ResNet preset, the LSTM, the MLP's inference) and 1.0, or
    between the MLP's or the book's training step and its target (TRAIN_TARGETS), from
    breakdown.py; for the book, its step against the same step in one plain NumPy function."""
    step_g, step_t, gemm = s["glassnet_step_ms"], s["torch_step_ms"], s["gemm_ms"]
    infer = w.key == "mlp-infer"
    what = "pass" if infer else "step"
    outside = ("predict's own work: the input check, the batches, the output check" if infer
               else "loss, optimizer, zero_grad, Python")  # fmt: skip
    net = {"resnet": "the `resnet` preset", "lstm": "the LSTM(1 -> 64), T = 40,",
           "mlp-infer": "the MLP's inference", "mlp": "the MLP's training step",
           "book": "the book's training step"}.get(w.key, "CNN-A")  # fmt: skip
    # bench_train.py's batch for the book (not imported here: in the test process ``harness`` is
    # the tests' module of that name, and bench_train imports the benchmarks')
    batch = 10 if w.key == "book" else 128
    unit = (
        "one inference pass over 10,000 images, batch 500" if infer else f"one training step, batch {batch}"
    )
    other = {"lstm": "the LSTM's element-wise passes and copies",
             "mlp-infer": "the layers' other work: bias adds, ReLUs",
             "mlp": "the layers' other work: bias adds and sums, ReLUs and their gradients",
             "book": "the layers' other work: bias adds and sums, sigmoids and their derivatives"}.get(
        w.key, "the layers' other work: im2col / col2im copies, layout, element-wise, pooling")  # fmt: skip
    # the training table's target where the breakdown is of its row's step, else 1.0
    goal = TRAIN_TARGETS[w.key].split()[1] if w.key in BREAKDOWN_TO_TARGET else "1.0"
    at_goal = "PyTorch's" if goal == "1.0" else f"{goal}x PyTorch's"
    # the MLP's step takes a millisecond or so, the book's tens of microseconds: ms to three places
    cell, prose = (".3f", ".3f") if w.key in BREAKDOWN_TO_TARGET else (".2f", ".1f")
    torch_gemm = ([f"| PyTorch, its GEMMs alone (the same products) | {s['torch_gemm_ms']:{cell}} | |"]
                  if "torch_gemm_ms" in s else [])  # fmt: skip
    plain = s.get("plain_numpy_step_ms")
    plain_row = ([f"| plain NumPy: the same step as one function, no glassnet (`book_step_numpy`) | "
                  f"{plain:{cell}} | {plain / step_g:.0%} |"] if plain is not None else [])  # fmt: skip
    ratio = (
        f"Time ratio {s['ratio']:.2f} (throughput {1 / s['ratio']:.2f})"
        if infer
        else f"Step ratio {s['ratio']:.2f}"
        + (f", against the training table's target {TRAIN_TARGETS[w.key]}" if goal != "1.0" else "")
    )
    lines = [
        f"## What stands between {net} and {goal} ({unit}, ms)", "",
        f"`python benchmarks/{' '.join([w.script, *w.args])}`", "",
        f"| part | ms | share of glassnet's {what} |", "| --- | --- | --- |",
        f"| glassnet, whole {what} | {step_g:{cell}} | 100% |",
        f"| the GEMMs alone (NumPy's BLAS, the layers' shapes) | {gemm:{cell}} | {gemm / step_g:.0%} |",
        f"| {other} | {s['non_gemm_layer_ms']:{cell}} | {s['non_gemm_layer_ms'] / step_g:.0%} |",
        f"| {outside} | {s['loss_and_optimizer_ms']:{cell}} | "
        f"{s['loss_and_optimizer_ms'] / step_g:.0%} |",
        *plain_row,
        f"| PyTorch, whole {what} | {step_t:{cell}} | |",
        *torch_gemm,
        "",
        f"{ratio}. The GEMMs alone are {s['gemm_only_ratio']:.2f}x PyTorch's whole {what}: "
        + (f"even with everything else free, NumPy's GEMMs at these shapes would not reach {goal}."
           if s["gemm_only_ratio"] >= float(goal) else
           f"glassnet's {what} is at or below {at_goal} in this run ({step_g:{prose}} against "
           f"{step_t:{prose}} ms), {step_g - gemm:{prose}} ms of it outside the GEMMs."
           if s["ratio"] <= float(goal) else
           f"the other {step_g - gemm:{prose}} ms of glassnet's {what} is what stands between "
           f"{s['ratio']:.2f} and {goal} (PyTorch does the whole {what} in {step_t:{prose}} ms"
           + (f", {s['torch_gemm_ms']:{prose}} of them in its GEMMs" if "torch_gemm_ms" in s else "")
           + ")."),
        "",
        *(_plain_numpy_lines(s, float(goal)) if plain is not None else []),
        "| layer pass | ms |", "| --- | --- |",
        *(f"| {k} | {v:{cell}} |" for k, v in s["per_layer_ms"].items()),
        "",
        "| GEMM (same shapes, alone) | ms |", "| --- | --- |",
        *(f"| {k} | {v:{cell}} |" for k, v in s["per_gemm_ms"].items()),
        "",
    ]  # fmt: skip
    return lines


def _plain_numpy_lines(s: dict, goal: float) -> list[str]:
    """The book's breakdown: glassnet's step against the same arithmetic in one plain NumPy
    function, timed in glassnet's process beside each step (the median of each round's own ratio),
    and that function against PyTorch's step and the target ``goal``."""
    step_g, plain, over = s["glassnet_step_ms"], s["plain_numpy_step_ms"], s["glassnet_over_plain_numpy"]
    cost = (f"glassnet's framework around the same arithmetic (train_step's checks, the calls from layer "
            f"to layer and into the loss and the optimizer) costs {step_g - plain:.3f} ms a step over "
            "hand-written NumPy" if round(over, 2) > 1 and step_g - plain >= 0.0005
            else "glassnet's step is no slower than hand-written NumPy in this run")  # fmt: skip
    alone = plain / s["torch_step_ms"]
    return [f"glassnet's step takes {over:.2f}x the same step written as one plain NumPy function "
            f"({step_g:.3f} against {plain:.3f} ms): {cost}. The plain function takes {alone:.2f}x PyTorch's "
            "step" + (f": hand-written NumPy would not reach {goal} either." if alone > goal else "."),
            ""]  # fmt: skip


def write_results(stamp: dict, results: list[tuple[Workload, dict]], quick: bool,
                  directory: Path = RESULTS) -> tuple[Path, Path]:  # fmt: skip
    """Write ``<machine>[-quick].md`` and ``.json`` under ``directory`` (atomically), leaving
    other machines' files alone; returns the two paths."""
    from glassnet.io import write_atomic

    directory.mkdir(parents=True, exist_ok=True)
    name = machine_slug(stamp) + ("-quick" if quick else "")
    md, js = directory / f"{name}.md", directory / f"{name}.json"
    data = {"machine": stamp, "quick": quick,
            "results": [{"table": w.table, "key": w.key, "command": [w.script, *w.args], "result": r}
                        for w, r in results]}  # fmt: skip
    write_atomic(js, (json.dumps(data, indent=1) + "\n").encode())
    write_atomic(md, (render(stamp, results, quick) + "\n").encode())
    return md, js


def build_parser() -> argparse.ArgumentParser:
    from glassnet.runs import positive_int  # the parent process only times its children

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="fewer rounds, epochs over a slice (minutes)")
    ap.add_argument("--threads", type=positive_int, default=2)
    ap.add_argument("--only", nargs="+", choices=TABLES,
                    help="rerun these tables; the machine's file keeps the others, dated")  # fmt: skip
    ap.add_argument("--out", type=Path, default=RESULTS, help="results folder (default benchmarks/results)")
    ap.add_argument("--render", action="store_true",
                    help="run nothing: write this machine's page again from its .json, as measured "
                         "(after a change to the page's wording)")  # fmt: skip
    return ap


def main() -> None:
    sys.path.insert(0, str(HERE.parent))  # glassnet from this checkout (its io helpers)
    args = build_parser().parse_args()
    env = bench_env()
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(HERE.parent), env.get("PYTHONPATH")]))
    stamp = machine_stamp(args.threads, env)
    if args.render:
        print(f"wrote {render_again(stamp, args.quick, args.out)}")
    else:
        measure(args, env, stamp)
    if args.out.resolve() == RESULTS.resolve() and not args.quick:  # README's tables, from the files
        import summary

        summary.main([])


def measure(args: argparse.Namespace, env: dict[str, str], stamp: dict) -> None:
    """Run the tables asked for and write this machine's files (``--only``: keeping the others)."""
    every = workloads(args.quick, args.threads)
    todo = [w for w in every if not args.only or w.table in args.only]
    fresh = {(w.table, w.key): dict(run(w, env), measured=stamp["date"]) for w in todo}
    kept = earlier_results(stamp, args.quick, args.out) if args.only else {}
    results = [(w, fresh.get((w.table, w.key), kept.get((w.table, w.key)))) for w in every]
    md, js = write_results(stamp, [(w, r) for w, r in results if r is not None], args.quick, args.out)
    print(f"wrote {md} and {js}")


def render_again(stamp: dict, quick: bool, directory: Path) -> Path:
    """This machine's page written again from its .json (the stamp and every figure as stored,
    nothing measured): what ``render`` makes of them now. Returns the page's path."""
    from glassnet.io import write_atomic

    name = machine_slug(stamp) + ("-quick" if quick else "")
    path = directory / f"{name}.json"
    if not path.exists():
        raise SystemExit(f"run_all.py --render: no {path} to render; run the benchmarks first")
    data = json.loads(path.read_text())
    results = [(Workload(e["table"], e["key"], e["command"][0], tuple(e["command"][1:])), e["result"])
               for e in data["results"]]  # fmt: skip
    md = directory / f"{name}.md"
    write_atomic(md, (render(data["machine"], results, quick) + "\n").encode())
    return md


def earlier_results(stamp: dict, quick: bool, directory: Path) -> dict[tuple[str, str], dict]:
    """The results this machine's file already holds, by (table, key): ``--only`` reruns some
    tables and keeps the others, each with the date it was measured."""
    path = directory / f"{machine_slug(stamp)}{'-quick' if quick else ''}.json"
    if not path.exists():
        return {}
    data = json.loads(path.read_text())
    date = data.get("machine", {}).get("date", "unknown")
    return {(e["table"], e["key"]): {"measured": date, **e["result"]} for e in data.get("results", [])}


if __name__ == "__main__":
    main()
