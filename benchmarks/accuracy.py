"""Test accuracy of the presets on Fashion-MNIST or MNIST-1D, next to the published figures.

Runs ``glassnet train`` (the same code path a user runs) for each preset and seed, then prints
a Markdown table: preset, seed, epochs run, training seconds, test accuracy, and the published
row it should be read against (zalandoresearch/fashion-mnist README; for MNIST-1D the table of
Greydanus 2020).

    python benchmarks/accuracy.py --presets mlp --seeds 0 1 2
    python benchmarks/accuracy.py --dataset mnist1d --val-fraction 0 --seeds 0 1 2 \
        --presets mnist1d-logistic mnist1d-mlp mnist1d-cnn mnist1d-gru
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
from pathlib import Path

from glassnet.cli import main as glassnet

RECORDS = Path(__file__).resolve().parent / "results" / "accuracy"

PUBLISHED = {
    "mlp": "MLP 256-128-100: 88.3%",
    "cnn": "2 conv + pooling: 91.6%; PyTorch twin here: 90.8%",
    "cnn-bn": "2 conv + pooling + BN: 93.4%",
    "vgg-small": "2 conv + pooling + BN: 93.4%; small 3x3 net in PyTorch here: 93.5%",
    "resnet": "ResNet18: 94.9%; target >= 94.0%, within 0.5 of the twin (benchmarks/twins.py)",
    "vit": "(no published row); target >= 88.0%, within 0.5 of the twin (benchmarks/twins.py)",
    "book": "(the book's chapter 1 net; no published Fashion row)",
    "book-ch3": "(the book's chapter 3 net; no published Fashion row)",
    # MNIST-1D, Greydanus 2020, test accuracy
    "mnist1d-logistic": "logistic regression: 32%",
    "mnist1d-mlp": "MLP: 68%",
    "mnist1d-cnn": "CNN: 94%",
    "mnist1d-gru": "GRU: 91%",
}


def run(preset: str, seed: int, epochs: int | None, extra: list[str], dataset: str = "fashion-mnist") -> dict:
    with tempfile.TemporaryDirectory() as out:
        args = ["train", "--dataset", dataset, "--model", preset, "--seed", str(seed), "--out", out]
        if epochs is not None:
            args += ["--epochs", str(epochs)]
        args += extra
        if glassnet(args) != 0:
            raise SystemExit(f"training {preset} (seed {seed}) failed")
        return json.loads((Path(out) / "history.json").read_text())


def recipe_id(recipe: dict) -> str:
    """Eight hex digits naming a recipe stamp (``recipe_stamp``) in a record's file name."""
    import hashlib

    return hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:8]


def record(directory: Path, result: dict) -> Path:
    """Write one run's result, with the machine it ran on and the command, as
    ``<preset>-<library>-seed<N>-<machine>-<recipe id>.json`` under ``directory`` (atomically):
    a run of a new recipe never overwrites the same seed's run of an earlier one."""
    from run_all import machine_slug, machine_stamp

    from glassnet.io import write_atomic

    threads = int(os.environ.get("OPENBLAS_NUM_THREADS") or os.environ.get("OMP_NUM_THREADS") or 0) or None
    stamp = machine_stamp(threads, dict(os.environ))
    result = {**result, "machine": stamp, "command": [Path(sys.argv[0]).name, *sys.argv[1:]]}
    directory.mkdir(parents=True, exist_ok=True)
    name = f"{result['preset']}-{result['library']}-seed{result['seed']}-{machine_slug(stamp)}"
    name += f"-{recipe_id(result['recipe'])}.json"
    write_atomic(directory / name, (json.dumps(result, indent=1) + "\n").encode())
    return directory / name


def recipe_stamp(name: str, epochs: int | None = None) -> dict:
    """What a record stands for: preset ``name``'s training recipe (every field but the builder;
    ``epochs``: the run's own count) and ``architecture``, a fingerprint of the model it builds
    (the tree ``gn.save`` writes: layers, sizes, dropout rates). When a preset changes, the
    records of its earlier recipe keep their stamp, and accuracy_table.py no longer counts them."""
    import dataclasses
    import hashlib

    import numpy as np

    import glassnet as gn

    preset = gn.models.PRESETS[name]
    if epochs is not None:
        preset = dataclasses.replace(preset, epochs=epochs)
    recipe = {f.name: getattr(preset, f.name) for f in dataclasses.fields(preset) if f.name != "build"}
    recipe["loss"] = recipe["loss"].__name__
    model = preset.build(np.random.default_rng(0), preset.input_shape, 10)  # both data sets: 10 classes
    tree = json.dumps(gn.io.architecture(model), sort_keys=True).encode()
    return {**recipe, "architecture": hashlib.sha256(tree).hexdigest()[:16]}


RECIPE_FLAGS = ("optimizer", "lr", "momentum", "l2")


def add_recipe_args(ap: argparse.ArgumentParser) -> None:
    """A candidate recipe: ``glassnet train``'s flags of these names, checked by the same option
    types (twins.py takes the same flags; its twins mirror these three optimizers)."""
    from glassnet import runs

    ap.add_argument("--optimizer", choices=["adam", "adamw", "sgd"])
    ap.add_argument("--lr", type=runs.positive_float)
    ap.add_argument("--momentum", type=runs.momentum)
    ap.add_argument("--l2", type=runs.nonnegative_float)


def recipe_of(ap: argparse.ArgumentParser, args, presets: list[str]) -> dict:
    """The candidate recipe the flags give (empty: the presets' own), refused with a one-line
    usage error where a record would be written, or where one library would train what the
    other cannot: a momentum for another optimizer than SGD (glassnet refuses it, PyTorch's
    Adam would ignore it), or an L2 penalty with AdamW (the twin has no mirror for both)."""
    from glassnet.models import PRESETS

    recipe = {k: getattr(args, k) for k in RECIPE_FLAGS if getattr(args, k) is not None}
    if recipe and args.record:  # a record stands for the preset's own recipe (accuracy_table.py)
        ap.error("--record is for the preset's own recipe; a candidate recipe's result is printed only")
    for name in presets:
        if name not in PRESETS:
            continue  # glassnet train names it
        optimizer = recipe.get("optimizer", PRESETS[name].optimizer)
        if recipe.get("momentum") and optimizer != "sgd":
            ap.error(f"--momentum: only SGD takes a momentum; {name} would train with {optimizer}")
        if recipe.get("l2") and optimizer == "adamw":
            ap.error(f"--l2 with AdamW ({name}): the twin has no mirror of L2 on top of AdamW's decay")
    return recipe


def build_parser() -> argparse.ArgumentParser:
    """The script's options; seeds and epoch counts by ``glassnet train``'s own option types (a
    seed below 0 or an epoch count below 1 is argparse's one-line usage error)."""
    from glassnet import runs

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--presets", nargs="+", default=["mlp"])
    ap.add_argument("--seeds", nargs="+", type=runs.seed, default=[0])
    ap.add_argument("--dataset", default="fashion-mnist", choices=["fashion-mnist", "mnist1d"])
    ap.add_argument("--epochs", type=runs.positive_int, help="override the presets' epoch counts")
    ap.add_argument("--val-fraction", help="passed to glassnet train (0: train on the whole training set)")
    ap.add_argument("--twin", action="store_true",
                    help="train on all 60,000 images with no validation split or early stopping, "
                         "as the PyTorch twin does (--val-fraction 0)")  # fmt: skip
    ap.add_argument("--record", nargs="?", const=RECORDS, type=Path, metavar="DIR",
                    help="write each finished run as a stamped JSON file under DIR "
                         "(default benchmarks/results/accuracy; accuracy_table.py renders them)")  # fmt: skip
    add_recipe_args(ap)
    return ap


def main() -> None:
    ap = build_parser()
    args = ap.parse_args()
    recipe = [f"--{k}={v}" for k, v in recipe_of(ap, args, args.presets).items()]
    rows = [
        "| preset | seed | epochs | train s | test accuracy | published |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for preset in args.presets:
        accs = []
        for seed in args.seeds:
            extra = ["--val-fraction", "0"] if args.twin else []
            if args.val_fraction is not None:
                extra = ["--val-fraction", args.val_fraction]
            extra += recipe
            h = run(preset, seed, args.epochs, extra, args.dataset)
            acc = 100 * h["test"]["accuracy"]
            if args.record:
                record(args.record, {"library": "glassnet", "preset": preset, "seed": seed,
                                     "dataset": args.dataset, "epochs": h["epochs_run"],
                                     "train_seconds": h["train_seconds"], "accuracy": h["test"]["accuracy"],
                                     "twin_recipe": args.twin and args.val_fraction is None,
                                     "recipe": recipe_stamp(preset, args.epochs)})  # fmt: skip
            accs.append(acc)
            rows.append(f"| {preset} | {seed} | {h['epochs_run']} | {h['train_seconds']:.0f} | {acc:.2f}% | "
                        f"{PUBLISHED.get(preset, '')} |")  # fmt: skip
        if len(accs) > 1:
            rows.append(f"| {preset} | mean of {len(accs)} | | | {statistics.mean(accs):.2f}% "
                        f"(sd {statistics.stdev(accs):.2f}) | |")  # fmt: skip
    print("\n".join(rows))


if __name__ == "__main__":
    main()
