"""README's speed tables, made from the results files: no number on the front page is typed by hand.

    python benchmarks/summary.py            # rewrite README.md's speed tables from benchmarks/results
    python benchmarks/summary.py --check    # exit 1 if README.md's tables are not the generated ones

``run_all.py`` runs it after writing a machine's file, and a test checks that README.md holds
what this script makes from the committed files. One column per machine: every full run's
``<machine>.json`` in ``benchmarks/results`` (``--quick`` runs are left out), the newest first,
headed by the stamp's CPU, family and model, and the dates the column's figures were measured.
The first table gives each workload's ratio glassnet / PyTorch (times: below 1, glassnet is
faster; throughput: above 1), glassnet's other ways beside it (``fit(shards=2)``, two MPI ranks),
and the issue's target with a tick where a figure meets it. The second table gives, from
``breakdown.py``, glassnet's step, its matrix products alone and PyTorch's whole step: where the
products alone take as long as PyTorch's whole step, nothing but faster products can close the gap.
The text between the two markers in README.md is replaced; the rest of README.md is left as it is.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path

from run_all import (
    ATTENTION_TARGET,
    INFER_TARGETS,
    LAYER_TARGETS,
    RESULTS,
    TRAIN_TARGETS,
    _ratios,
    inference_ratio,
)

README = Path(__file__).resolve().parent.parent / "README.md"
BEGIN = "<!-- speed tables: made by benchmarks/summary.py from benchmarks/results; do not edit -->"
END = "<!-- end of the generated speed tables -->"


@dataclass(frozen=True)
class Row:
    """A row of the ratio table: ``label``, the issue's ``target`` ("" for none), and where its
    figures are: a result's (table, key) and what to read from it; ``ways`` are glassnet's other
    ways of running the same workload (another key of the same table), each with its words."""

    label: str
    target: str
    table: str
    key: str
    read: str = "train"  # "train": the time ratio; "infer": the throughput ratio; else a row's name prefix
    ways: tuple[tuple[str, str], ...] = ()


SHARDS, RANKS = ("shards2", "with `fit(shards=2)`"), ("ranks2", "on 2 MPI ranks")
ROWS = (
    Row("MLP 784-256-128-10", TRAIN_TARGETS["mlp"], "train", "mlp", ways=(RANKS,)),
    Row("the book's 784-30-10, batch 10", TRAIN_TARGETS["book"], "train", "book", ways=(RANKS,)),
    Row("CNN-A", TRAIN_TARGETS["cnn"], "train", "cnn", ways=(SHARDS, RANKS)),
    Row("CNN-A + BatchNorm2d", TRAIN_TARGETS["cnn-bn"], "train", "cnn-bn", ways=(SHARDS, RANKS)),
    Row("GRU(1 -> 64), T = 40", TRAIN_TARGETS["gru"], "rnn", "gru", ways=(RANKS,)),
    Row("LSTM(1 -> 64), T = 40", TRAIN_TARGETS["lstm"], "rnn", "lstm", ways=(RANKS,)),
    Row("MultiheadAttention(64, 4)", ATTENTION_TARGET, "attention", "", "MultiheadAttention"),
    Row(
        "TransformerEncoderLayer(64, 4, 128), post-norm",
        ATTENTION_TARGET,
        "attention",
        "",
        "TransformerEncoderLayer(64, 4, 128) post-norm",
    ),
    Row(
        "Conv2d(1, 32, 5), the first layer",
        LAYER_TARGETS["Conv2d(1,32,5) first layer"],
        "layers",
        "",
        "Conv2d(1,32,5) first layer",
    ),
    Row("Conv2d(32, 64, 5)", LAYER_TARGETS["Conv2d(32,64,5)"], "layers", "", "Conv2d(32,64,5)"),
    Row("`resnet` preset", "", "train", "resnet", ways=(SHARDS,)),
    Row("`vit` preset", "", "train", "vit", ways=(SHARDS,)),
    Row(
        "CNN-A inference (throughput)",
        INFER_TARGETS["cnn"],
        "train",
        "cnn",
        "infer",
        (("shards2", "with `predict(shards=2)`"),),
    ),
    Row("MLP inference (throughput)", INFER_TARGETS["mlp"], "train", "mlp", "infer"),
)
# breakdown.py's workloads, by key, as the second table names them
BREAKDOWNS = {
    "": "CNN-A, a training step",
    "resnet": "`resnet` preset, a training step",
    "lstm": "LSTM(1 -> 64), a training step",
    "mlp": "MLP, a training step",
    "book": "the book's net, a training step",
    "mlp-infer": "MLP, an inference pass over 10,000 images",
}


@dataclass(frozen=True)
class Machine:
    """One full run's file: its stamp and its results by (table, key)."""

    stamp: dict
    results: dict[tuple[str, str], dict]

    def header(self, used: list[dict]) -> str:
        """The CPU, its family and model, its cores, NumPy's BLAS and its kernel, and the dates of
        the figures ``used``."""
        dates = sorted({r.get("measured", self.stamp["date"]) for r in used}) or [self.stamp["date"]]
        first, last = dates[0].removesuffix(" UTC"), dates[-1].removesuffix(" UTC")
        if first == last:
            when = first
        elif first[:10] == last[:10]:  # one day: "2026-12-05 15:40 to 16:20"
            when = f"{first} to {last[11:]}"
        else:
            when = f"{first} to {last}"
        cpu = re.sub(r"\((R|TM)\)|\bProcessor\b|\bCPU\b|@.*$", "", self.stamp["cpu"])
        family = self.stamp.get("cpu_family")
        cpu = " ".join(cpu.split()) + (f", {family}" if family and family != "unknown" else "")
        blas = str(self.stamp.get("blas", "")).split(" ")[0].replace("openblas", "OpenBLAS")
        kernel = f", {blas} {self.stamp['blas_kernel']}" if self.stamp.get("blas_kernel") else ""
        return f"{cpu}, {self.stamp['cores']} cores{kernel} ({when} UTC)"


def machines(directory: Path = RESULTS) -> list[Machine]:
    """Every full run's file in ``directory``, the newest first (by the stamp's date)."""
    found = []
    for path in sorted(directory.glob("*.json")):
        try:
            data = json.loads(path.read_text())
            if data.get("quick", True) or "machine" not in data:
                continue
            entries = [e for e in data.get("results", []) if "error" not in e["result"]]
            machine = Machine(data["machine"], {(e["table"], e["key"]): e["result"] for e in entries})
            machine.header([])  # the stamp's fields, read now: a broken file is named here
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
            raise ValueError(
                f"{path} is not a results file run_all.py wrote ({type(e).__name__}: {e})"
            ) from None
        found.append(machine)
    return sorted(found, key=lambda m: m.stamp["date"], reverse=True)


def _ratio(r: dict, read: str) -> float | None:
    """The figure ``read`` from one result: a training or recurrent time ratio, a throughput
    ratio, or the time ratio of the table row whose name starts with ``read``."""
    if read == "infer":
        return float(inference_ratio(r)) if "inference_examples_per_s" in r else None
    rows = [v for name, v in _ratios(r).items() if name.startswith("" if read == "train" else read)]
    return float(rows[0]) if rows else None


def meets(value: float, target: str) -> bool:
    """Whether ``value`` meets a target written "<= 0.9" or ">= 1.0" (words after the number are
    a comment: "<= 0.2 (5x faster)"); no target, no tick."""
    m = re.match(r"\s*(<=|>=)\s*([0-9.]+)", target)
    if not m:
        return False
    bound = float(m.group(2))
    # compared as shown, to two decimals: a table that prints 0.90 against "<= 0.9" meets it
    shown = round(value, 2)
    return shown <= bound if m.group(1) == "<=" else shown >= bound


def _cell(value: float, target: str) -> str:
    return f"{value:.2f}" + (" ✓" if meets(value, target) else "")


def ratio_cell(m: Machine, row: Row, used: list[dict]) -> str:
    """One machine's figures for ``row``: the plain run's, then glassnet's other ways'; "" where
    the machine's file has none. ``used`` collects the results read (for the header's dates)."""
    parts = []
    r = m.results.get((row.table, row.key))
    v = None if r is None else _ratio(r, row.read)
    if v is not None:
        used.append(r)
        parts.append(_cell(v, row.target))
    for suffix, words in row.ways:
        rw = m.results.get((row.table, f"{row.key}-{suffix}"))
        vw = None if rw is None else _ratio(rw, row.read)
        if vw is not None:
            used.append(rw)
            parts.append(f"{_cell(vw, row.target)} {words}")
    return "; ".join(parts)


def breakdown_cell(r: dict | None) -> str:
    """glassnet's step / its products alone / PyTorch's step, in ms; the products alone as a
    share of PyTorch's step in brackets; for the book's net, the same step as one plain NumPy
    function (``breakdown.book_step_numpy``) after them."""
    if r is None:
        return ""
    g, gemm, t = r["glassnet_step_ms"], r["gemm_ms"], r["torch_step_ms"]
    f = ".3f" if g < 1 else ".2f"  # the book's step: tens of microseconds
    plain = r.get("plain_numpy_step_ms")  # the book's: the same step as one plain NumPy function
    also = "" if plain is None else f"; the same step in plain NumPy {plain:{f}}"
    return f"{g:{f}} / {gemm:{f}} / {t:{f}} ({gemm / t:.2f}){also}"


def render(found: list[Machine]) -> str:
    """The text between README's markers (the markers excluded), from one or more machines."""
    ratio_rows, used = [], {i: [] for i in range(len(found))}
    for row in ROWS:
        cells = [ratio_cell(m, row, used[i]) for i, m in enumerate(found)]
        if any(cells):
            ratio_rows.append(f"| {row.label} | {row.target} | " + " | ".join(cells) + " |")
    heads = [m.header(used[i]) for i, m in enumerate(found)]
    lines = [
        "| workload (ratio glassnet / PyTorch) | target | " + " | ".join(heads) + " |",
        "| --- | --- | " + " | ".join("---" for _ in found) + " |",
        *ratio_rows,
        "",
    ]
    kept = [k for k in BREAKDOWNS if any(("breakdown", k) in m.results for m in found)]
    if kept:
        lines += [
            "What stands between each net and PyTorch's time, from `benchmarks/breakdown.py`: glassnet's "
            "step (or pass) / NumPy's matrix products alone at its shapes / PyTorch's whole step, in ms (in "
            "brackets, the products alone over PyTorch's whole step: at 1.00 or more, only faster products "
            "could close the gap; below it, the rest is glassnet's copies, element-wise passes and Python).",
            "",
            "| breakdown | " + " | ".join(m.header([m.results[("breakdown", k)] for k in kept
                                                       if ("breakdown", k) in m.results]) for m in found)
            + " |",
            "| --- | " + " | ".join("---" for _ in found) + " |",
            *(f"| {BREAKDOWNS[k]} | "
              + " | ".join(breakdown_cell(m.results.get(("breakdown", k))) for m in found) + " |"
              for k in kept),
        ]  # fmt: skip
    return "\n".join(lines).rstrip("\n")


def replaced(readme: str, block: str, path: Path = README) -> str:
    """``readme`` with the text between its markers replaced by ``block``; a README without
    both markers, in order, is refused (nothing is appended to a file by guesswork)."""
    start, end = readme.find(BEGIN), readme.find(END)
    if start < 0 or end < start:
        raise ValueError(f"{path} has no speed-table markers: put {BEGIN!r} and {END!r} where the tables go")
    return readme[: start + len(BEGIN)] + "\n" + block + "\n" + readme[end:]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--check", action="store_true", help="exit 1 if README.md is out of date; write nothing")
    ap.add_argument("--results", type=Path, default=RESULTS, help="results folder (benchmarks/results)")
    ap.add_argument("--readme", type=Path, default=README, help="the README to rewrite (README.md)")
    args = ap.parse_args(argv)
    try:
        old = args.readme.read_text()
        found = machines(args.results)
        if not found:  # a mistyped folder must not wipe README's tables
            raise ValueError(f"{args.results} holds no full run's results (<machine>.json from run_all.py)")
        new = replaced(old, render(found), args.readme)
    except (OSError, ValueError) as e:
        print(f"summary.py: {e}", file=sys.stderr)
        return 2
    if args.check:
        if new != old:
            print(f"{args.readme}'s speed tables are not the ones {args.results} gives: "
                  "run python benchmarks/summary.py", file=sys.stderr)  # fmt: skip
            return 1
        return 0
    if new != old:
        sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # glassnet's atomic write
        from glassnet.io import write_atomic

        write_atomic(args.readme, new.encode())
    print(f"{args.readme}: speed tables from {len(found)} machines' files")
    return 0


if __name__ == "__main__":
    sys.exit(main())
