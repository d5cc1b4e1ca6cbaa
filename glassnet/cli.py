"""The ``glassnet`` command line: parses arguments and calls library functions.

glassnet train --dataset fashion-mnist --model mlp --epochs 20 --out runs/mlp
glassnet train --resume runs/mlp          # go on after a crash, exactly where the run stopped
mpiexec -n 4 glassnet train --model cnn --out runs/cnn4   # data-parallel on 4 processes (MPI)
glassnet train --model cnn --out runs/mlp --overwrite   # start over a directory holding a run
glassnet evaluate runs/mlp/model.safetensors --dataset fashion-mnist
glassnet predict runs/mlp/model.safetensors images.npy --out predictions.npy
glassnet summary runs/mlp/model.safetensors
glassnet summary --preset cnn --batch-size 128
glassnet export runs/mlp/model.safetensors --onnx mlp.onnx
glassnet diagnose --dataset fashion-mnist --model book --epochs 1 --subset 10000
glassnet plot runs/mlp
glassnet gradcheck
glassnet compare experiments/dropout_study.toml --out results/dropout
glassnet report results/dropout
glassnet lr-find --dataset fashion-mnist --model mlp

Errors in what the user typed or in the files read are one line, ``glassnet CMD: error: ...``,
exit status 2; any other exception is a bug in glassnet, ``glassnet CMD: internal error: ...``,
exit status 3 (``GLASSNET_TRACEBACK=1`` shows its traceback).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import sys
import time

import numpy as np

# the named choices and the option values, each defined once (re-exported for older imports)
from .choices import DATASETS, OPTIMIZERS, SCHEDULES, load_dataset, make_optimizer, momentum_for  # noqa: F401
from .runs import (  # noqa: F401
    RUN_OPTIONS,
    TrainOptions,
    Value,
    at_least_10,
    count,
    fraction,
    metric_names,
    momentum,
    nonnegative_float,
    positive_float,
    positive_int,
    read_run_config,
    seed,
)


def typed_options(argv: list[str]) -> set[str]:
    """The train options typed in ``argv`` (the words after ``train``), whatever their values:
    the parser fills in every option it does not see, so ``--seed 0`` would be
    indistinguishable from no ``--seed`` by value. Parsing into a namespace that already holds
    a marker for every option leaves the marker where nothing was typed."""
    parser = train_parser()
    unset = object()
    namespace = argparse.Namespace(**dict.fromkeys(vars(parser.parse_args([])), unset))
    parser.parse_args(argv, namespace=namespace)
    return {k for k, v in vars(namespace).items() if v is not unset}


def cmd_train(args) -> int:
    """``glassnet.runs.train_run`` with the typed options; its status lines and result printed."""
    from .runs import train_run

    if not args.resume and "dataset" not in args.given:  # the data set the preset is made for
        from .models import PRESETS

        args.dataset = PRESETS[args.model].dataset
    options = TrainOptions(**{k: getattr(args, k) for k in RUN_OPTIONS})
    result = train_run(options, args.out, resume=args.resume, overwrite=args.overwrite, given=args.given,
                       say=lambda line: print(line, flush=True), clock=time.perf_counter)  # fmt: skip
    if result.rank == 0:  # under mpiexec the other ranks are silent
        print(result.line())
    return 0


def cmd_evaluate(args) -> int:
    import glassnet as gn

    model = gn.load(args.model)
    meta = gn.load_metadata(args.model)  # its fields checked: dataset and model are strings
    dataset = args.dataset or meta.get("dataset")
    if dataset is None:
        raise ValueError(f"--dataset: not given, and {args.model} does not name its data set")
    if dataset not in DATASETS:
        raise ValueError(
            f"--dataset: {args.model} records data set {dataset[:100]!r}, not one of {', '.join(DATASETS)}; "
            "pass --dataset"
        )
    _, test = load_dataset(dataset, args.data_dir)
    check_outputs(args.model, model, test.x[:1], int(test.y.max()) + 1, dataset)
    # the loss the model was trained with: its preset's (cross-entropy for files from elsewhere)
    preset = gn.models.PRESETS.get(meta.get("model"))
    loss = preset.loss() if preset is not None else gn.CrossEntropyLoss()
    names = [] if not args.metrics else args.metrics.split(",")
    confusion = gn.metrics.Confusion()  # the per-class report's counts, from evaluate's one pass
    metrics = [*names, confusion] if args.report else names or None
    result = gn.evaluate(model, loss, test, metrics=metrics, shards=args.shards)
    result.pop(confusion.name, None)
    if args.report:
        report = gn.metrics.report_from_counts(confusion.counts, class_names(dataset))
        print(gn.metrics.format_report(report))
    print(json.dumps({"dataset": dataset, "examples": test.n, **result}))
    return 0


def check_outputs(path: str, model, x: np.ndarray, classes: int, dataset: str) -> None:
    """Refuse a model whose outputs are not one score per class of ``dataset``: its labels
    would index past the outputs inside the loss."""
    import glassnet as gn

    out = gn.predict(model, x)  # non-finite outputs raise, naming the parameter that holds NaN
    if out.ndim != 2 or out.shape[1] < classes:
        raise ValueError(
            f"{path}: the model's outputs have shape (N, {', '.join(map(str, out.shape[1:]))}), "
            f"expected (N, {classes}): one score per class of {dataset}"
        )


# the names of the classes of the data sets that have them; the digit data sets' are the digits
def class_names(dataset: str | None) -> list[str] | None:
    from .datasets import FASHION_MNIST_CLASSES

    if dataset == "fashion-mnist":
        return list(FASHION_MNIST_CLASSES)
    if dataset in ("mnist", "digits", "mnist1d"):
        return [str(i) for i in range(10)]
    return None


def cmd_predict(args) -> int:
    import glassnet as gn

    model = gn.load(args.model)
    meta = gn.load_metadata(args.model)  # its fields checked: input_shape, dataset
    names = None
    if args.names:
        names = class_names(meta.get("dataset"))
        if names is None:
            raise ValueError(
                f"--names: {args.model} does not record a data set with class names "
                f"(its dataset: {meta.get('dataset', 'none')!r:.100})"
            )
    x = gn.io.load_npy(args.input)  # never unpickled: a .npy can hold objects
    if x.dtype.kind not in "biuf" or x.ndim < 1:
        raise ValueError(
            f"{args.input}: expected an array of numbers (N, ...), got {x.dtype} of shape {x.shape}"
        )
    shape = meta.get("input_shape")
    if shape is not None and tuple(x.shape[1:]) != tuple(shape):
        if x.ndim >= 2 and math.prod(x.shape[1:]) == math.prod(shape):
            x = x.reshape(-1, *shape)
        else:
            raise ValueError(
                f"{args.input}: examples of shape {x.shape[1:]}, "
                f"the model in {args.model} expects {tuple(shape)}"
            )
    if x.dtype.kind in "iu" and gn.module.takes_integers(model):
        pass  # token ids (an Embedding reads them): kept as they are, whatever their integer dtype
    elif x.dtype == np.uint8:
        x = x / np.float32(255)  # raw image bytes, scaled as the training data was
    elif x.dtype.kind != "f":
        x = x.astype(np.float32)  # integers and booleans: the model computes in floats
    out = gn.predict(model, x, shards=args.shards)
    if args.out:
        from .io import atomic_save_npy

        atomic_save_npy(args.out, out)
        print(f"wrote {out.shape} outputs to {args.out}")
        return 0
    if out.ndim != 2:
        raise ValueError(
            f"{args.model}: the model's outputs have shape {out.shape}, not (N, classes); "
            "save them with --out"
        )
    classes = out.argmax(axis=1)
    if names is not None and out.shape[1] != len(names):
        raise ValueError(f"--names: the model has {out.shape[1]} outputs, its data set {len(names)} classes")
    print("\n".join(names[c] if names else str(c) for c in classes.tolist()))
    return 0


def cmd_summary(args) -> int:
    import glassnet as gn

    if (args.model is None) == (args.preset is None):
        raise ValueError("give a model file or --preset NAME (one of the two)")
    shape = input_shape_option(args.input_shape)
    if args.preset is not None:
        preset = gn.models.PRESETS[args.preset]
        shape = shape or preset.input_shape  # the data set the preset is made for
        model = gn.models.build(args.preset, np.random.default_rng(0), shape, args.classes)
    else:
        model = gn.load(args.model)
        if shape is None:  # the file's, checked by load_metadata
            saved = gn.load_metadata(args.model).get("input_shape")
            shape = tuple(saved) if saved else None
    print(gn.summary(model, shape, args.batch_size))
    return 0


def input_shape_option(shape: list[int] | None) -> tuple[int, ...] | None:
    """``--input-shape`` checked as the model file's metadata is (``io.input_shape_problem``)."""
    from glassnet.io import input_shape_problem

    if shape is None:
        return None
    problem = input_shape_problem(list(shape))
    if problem:
        raise ValueError(f"--input-shape: {problem}")
    return tuple(shape)


def cmd_export(args) -> int:
    import glassnet as gn

    model = gn.load(args.model)
    shape = input_shape_option(args.input_shape)
    if shape is None:  # the file's, checked by load_metadata
        saved = gn.load_metadata(args.model).get("input_shape")
        if not saved:
            raise ValueError(f"--input-shape: not given, and {args.model} does not record its input shape")
        shape = tuple(saved)
    gn.export_onnx(model, args.onnx, shape)
    print(f"wrote {args.onnx} (ONNX opset {gn.onnx_export.OPSET}, input (N, {', '.join(map(str, shape))}))")
    return 0


def cmd_diagnose(args) -> int:
    import glassnet as gn

    preset = gn.models.PRESETS[args.model]
    args.dataset = args.dataset or preset.dataset  # the data set the preset is made for
    rng = np.random.default_rng(args.seed)
    train, _ = load_dataset(args.dataset, args.data_dir)
    classes = int(train.y.max()) + 1  # before subsetting: a small subset may miss a class
    if args.subset and args.subset < train.n:
        keep = rng.permutation(train.n)[: args.subset]
        train = gn.data.Dataset(train.x[keep], train.y[keep])
    model = gn.models.build(args.model, rng, train.x.shape[1:], classes)
    lr = args.lr if args.lr is not None else preset.lr
    optimizer = args.optimizer or preset.optimizer
    opt = make_optimizer(optimizer, model.parameters(), lr, momentum_for(optimizer, None, preset))
    flow = gn.GradientFlow(probe_size=args.probe_size)
    print(
        f"glassnet: diagnosing {args.model} on {train.n} {args.dataset} examples, {args.epochs} epoch(s), "
        f"{args.optimizer or preset.optimizer} lr={lr}, batch {args.batch_size or preset.batch_size}; "
        f"statistics on a probe batch of {min(args.probe_size, train.n)} training examples",
        flush=True,
    )
    batch = args.batch_size or preset.batch_size
    gn.fit(model, preset.loss(), opt, train, epochs=args.epochs, batch_size=batch, callbacks=[flow],
           regularizer=gn.L2(preset.l2) if preset.l2 else None, rng=rng)  # fmt: skip
    first = flow.history[0]
    print(f"\nbefore training (loss {first['loss']:.4f}):")
    print("\n".join(f"- {v}" for v in first["verdicts"]) or "- no problems found")
    speeds = flow.speeds()
    print("\nspeed of learning (rms delta) per weight layer, by epoch:")
    for name, s in speeds.items():
        print(f"  {name:9s} " + "  ".join(f"{v:.2e}" for v in s))
    print(f"\nafter {args.epochs} epoch(s):")
    print(flow.report())
    return 0


def cmd_plot(args) -> int:
    from .plots import plot_run

    figures = plot_run(args.run_dir)
    for path in figures.written:
        print(f"wrote {path}")
    for name, why in figures.skipped:
        print(f"skipped {name}: {why}")
    return 0


def cmd_gradcheck(args) -> int:
    from .gradcheck import TOLERANCE, run_builtin_checks

    rows = run_builtin_checks(seed=args.seed)
    # both columns as wide as their longest entry (a container's "block.0.W", "0.in_proj_weight")
    width = max(len("layer / loss"), *(len(case) for case, _, _ in rows))
    arrays = max(len("array"), *(len(name) for _, name, _ in rows))
    print(f"{'layer / loss'.ljust(width)}  {'array'.ljust(arrays)}  {'rel. error':>10s}  result")
    failed = 0
    for case, name, err in rows:
        ok = err < TOLERANCE
        failed += not ok
        print(f"{case.ljust(width)}  {name.ljust(arrays)}  {err:10.2e}  {'ok' if ok else 'FAIL'}")
    print(
        f"{len(rows) - failed} passed, {failed} failed (float64 central differences, tolerance {TOLERANCE:g})"
    )
    return 1 if failed else 0


def cmd_compare(args) -> int:
    """Run the experiment; exit status 1 when some runs failed. Each failed run has had its
    line on stderr as it ended (``bad/seed0 failed: ShapeError: ...``); one last line names them
    all. Not 2: the other runs finished and are saved, and the same command again reruns only
    the failed ones. A run's error is not a glassnet bug to report with a traceback."""
    from .experiments import FailedRunsError, compare

    try:
        compare(args.config, args.out, workers=args.workers, scheduler=args.scheduler)
    except FailedRunsError as e:
        print(f"glassnet compare: error: {e}", file=sys.stderr)
        return 1
    print(f"wrote {os.path.join(args.out, 'report.md')} and curves.png")
    return 0


def cmd_report(args) -> int:
    from .report import render

    print(render(args.results, baseline=args.baseline), end="")
    return 0


def cmd_lr_find(args) -> int:
    import glassnet as gn
    from glassnet import models
    from glassnet.lr_find import lr_find, plot_lr_find

    if not args.start < args.end:
        raise ValueError(f"--end {args.end} must be larger than --start {args.start}")
    # where the results go, checked before the range test runs (minutes) rather than after it
    folder, name = os.path.split(args.out)
    if not name:
        raise ValueError(
            f"--out {args.out!r}: a file name prefix is needed (writes PREFIX.json and PREFIX.png)"
        )
    if folder and not os.path.isdir(folder):
        raise NotADirectoryError(f"--out {args.out}: the folder {folder} does not exist")
    rng = np.random.default_rng(args.seed)
    if args.batch_size is not None and args.batch_size < 1:
        raise ValueError(f"--batch-size: expected an integer >= 1, got {args.batch_size}")
    args.dataset = args.dataset or models.PRESETS[args.model].dataset  # the preset's data set
    train, _ = load_dataset(args.dataset, args.data_dir)
    classes = int(train.y.max()) + 1  # of the data set: a small subset may lack the top class
    if args.train_size is not None:
        if not 1 <= args.train_size <= train.n:
            raise ValueError(
                f"--train-size: expected 1..{train.n} (the training set's size), got {args.train_size}"
            )
        idx = rng.permutation(train.n)[: args.train_size]
        train = gn.data.Dataset(train.x[idx], train.y[idx])
    preset = models.PRESETS[args.model]
    model = models.build(args.model, rng, train.x.shape[1:], classes)
    optimizer = args.optimizer or preset.optimizer
    momentum = momentum_for(optimizer, args.momentum, preset)  # as glassnet train would use
    opt = make_optimizer(optimizer, model.parameters(), args.start, momentum)
    result = lr_find(model, preset.loss(), opt, train, start=args.start, end=args.end, steps=args.steps,
                     batch_size=args.batch_size or preset.batch_size, rng=rng)  # fmt: skip
    from .callbacks import atomic_write_text

    atomic_write_text(args.out + ".json", json.dumps(result.to_dict()))
    try:
        plot_lr_find(result, args.out + ".png", f"lr range test: {args.model}, {opt.__class__.__name__}")
        plotted = f" and {args.out}.png"
    except ImportError:
        plotted = " (no plot: pip install 'glassnet[plot]')"
    low, high = result.suggestion
    print(
        f"{len(result.lrs)} steps from lr {result.lrs[0]:.3g} to {result.lrs[-1]:.3g}; "
        f"smoothed loss lowest at lr {result.min_lr:.3g}, steepest at {result.steepest_lr:.3g}\n"
        f"suggested learning rate: {low:.3g} .. {high:.3g}; wrote {args.out}.json{plotted}"
    )
    if not result.diverged:
        print(
            f"warning: the loss did not diverge up to lr {result.lrs[-1]:.3g}, so the upper end is "
            "not founded on the 'too hot' side; run again with a larger --end",
            file=sys.stderr,
        )
    return 0


def add_train_options(t: argparse.ArgumentParser) -> None:
    """The options of ``glassnet train``; ``train_parser`` has them alone, for config.json."""
    from .models import PRESETS

    t.add_argument("--dataset", choices=DATASETS, default="fashion-mnist",
                   help="default: the preset's (mnist1d for the mnist1d presets)")  # fmt: skip
    t.add_argument("--data-dir", help="directory holding the IDX files (default: search)")
    t.add_argument("--model", choices=sorted(PRESETS), default="mlp")
    t.add_argument("--epochs", type=positive_int, help="default: the preset's")
    t.add_argument("--batch-size", type=positive_int)
    t.add_argument("--lr", type=positive_float)
    t.add_argument("--optimizer", choices=OPTIMIZERS)
    t.add_argument("--momentum", type=momentum, default=None, help="SGD's momentum, in [0, 1)")
    t.add_argument("--l2", type=nonnegative_float, help="L2 penalty lam (lam/2 sum w^2)")
    t.add_argument(
        "--val-fraction",
        type=fraction,
        default=1 / 12,
        help="share of training data held out for early stopping (default 1/12; 0: none)",
    )
    t.add_argument(
        "--patience", type=count, help="early-stopping patience (default: the preset's); 0 disables"
    )
    t.add_argument("--schedule", choices=SCHEDULES, help="learning-rate schedule (default: the preset's)")
    t.add_argument("--shift", type=count, help="augment: random shifts by up to this many pixels")
    t.add_argument("--flip", action=argparse.BooleanOptionalAction,
                   help="augment: random horizontal flips (default: the preset's on fashion-mnist; "
                        "off on mnist and digits, where a mirrored digit may be no digit)")  # fmt: skip
    t.add_argument("--seed", type=seed, default=0)
    t.add_argument("--out", help="directory for model, history, metrics, checkpoint (default runs/model)")
    t.add_argument(
        "--checkpoint-every",
        type=positive_int,
        metavar="N",
        help="also checkpoint every N steps (always: after every epoch), to OUT/checkpoint.safetensors",
    )
    t.add_argument(
        "--resume", metavar="RUN_DIR", help="continue the run in RUN_DIR (its --out) from its last checkpoint"
    )
    t.add_argument(
        "--overwrite",
        action="store_true",
        help="start over a directory that holds a run (finished or not), discarding it",
    )
    t.add_argument(
        "--gradient-flow",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="measure per-layer gradient flow each epoch on 1,000 training examples (gradient_flow.json)",
    )
    t.add_argument("--tensorboard", metavar="DIR", help="also write TensorBoard event files to DIR")
    t.add_argument(
        "--shards",
        type=positive_int,
        default=1,
        metavar="K",
        help=SHARDS_HELP.replace("outputs", "step"),
    )
    t.add_argument(
        "--metrics",
        type=metric_names,
        metavar="LIST",
        help="more metrics to log and test, comma-separated: top5 (any topK below the class count), "
        "macro_precision, macro_recall, macro_f1",
    )


def train_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="glassnet train")
    add_train_options(parser)
    return parser


# summary's sizes: what a memory estimate and a preset's output layer can sensibly take
SUMMARY_CLASSES = Value(int, lambda v: 1 <= v <= 2**20, "an integer from 1 to 1,048,576")
SUMMARY_BATCH = Value(int, lambda v: 1 <= v <= 2**31, "an integer from 1 to 2,147,483,648")


class Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line, as every other error: it names the option and
    what was expected, and where the whole usage is (``--help``); exit status 2."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


SHARDS_HELP = (
    "each batch in K parts run side by side on threads, a replica of the model each (the same outputs "
    "to rounding; faster for convolutional nets where cores share no cache: docs/distributed.md)"
)


def build_parser() -> argparse.ArgumentParser:
    from .models import PRESETS

    p = Parser(prog="glassnet", description="Deep learning on NumPy with backpropagation you can read.")
    sub = p.add_subparsers(dest="command", required=True)

    t = sub.add_parser("train", help="train a preset model on a data set, report test accuracy")
    add_train_options(t)
    t.set_defaults(func=cmd_train)

    e = sub.add_parser("evaluate", help="test loss and accuracy of a saved model")
    e.add_argument("model")
    e.add_argument("--dataset", choices=DATASETS)
    e.add_argument("--data-dir")
    e.add_argument(
        "--metrics", type=metric_names, metavar="LIST", help="as glassnet train's: top5,macro_f1,..."
    )
    e.add_argument("--report", action="store_true", help="print precision, recall and F1 per class first")
    e.add_argument("--shards", type=positive_int, default=1, metavar="K", help=SHARDS_HELP)
    e.set_defaults(func=cmd_evaluate)

    r = sub.add_parser("predict", help="predict the classes of examples in a .npy file")
    r.add_argument("model")
    r.add_argument("input", help=".npy array of examples (N, ...)")
    r.add_argument("--out", help="write the raw outputs to this .npy instead of printing classes")
    r.add_argument(
        "--names",
        action="store_true",
        help="print class names (of the data set the model file records) instead of numbers",
    )
    r.add_argument("--shards", type=positive_int, default=1, metavar="K", help=SHARDS_HELP)
    r.set_defaults(func=cmd_predict)

    s = sub.add_parser("summary", help="layers, output shapes, parameter counts, memory for a batch")
    s.add_argument("model", nargs="?", help="a saved model file")
    s.add_argument("--preset", choices=sorted(PRESETS), help="a preset instead of a file")
    s.add_argument(
        "--input-shape",
        type=int,
        nargs="+",
        help="one example's shape (default: the preset's data set's, or the model file's)",
    )
    s.add_argument("--classes", type=SUMMARY_CLASSES, default=10, help="for --preset (default 10)")
    s.add_argument("--batch-size", type=SUMMARY_BATCH, default=32, help="batch for the memory estimate")
    s.set_defaults(func=cmd_summary)

    x = sub.add_parser("export", help="write a saved model as an ONNX file (needs the onnx extra)")
    x.add_argument("model", help="a saved model file")
    x.add_argument("--onnx", required=True, metavar="OUT", help="the ONNX file to write")
    x.add_argument(
        "--input-shape", type=int, nargs="+", help="one example's shape (default: the model file's)"
    )
    x.set_defaults(func=cmd_export)

    d = sub.add_parser("diagnose", help="train briefly and report gradient flow, dead and saturated units")
    d.add_argument("--dataset", choices=DATASETS, help="default: the preset's (fashion-mnist, or mnist1d)")
    d.add_argument("--data-dir")
    d.add_argument("--model", choices=sorted(PRESETS), default="mlp")
    d.add_argument("--epochs", type=positive_int, default=1)
    d.add_argument("--subset", type=count, default=10000, help="train on this many examples (0: all)")
    d.add_argument("--batch-size", type=positive_int)
    d.add_argument("--lr", type=positive_float)
    d.add_argument("--optimizer", choices=OPTIMIZERS)
    d.add_argument("--probe-size", type=positive_int, default=1000, help="examples in the probe batch")
    d.add_argument("--seed", type=seed, default=0)
    d.set_defaults(func=cmd_diagnose)

    pl = sub.add_parser("plot", help="write PNG figures of a training run (needs matplotlib)")
    pl.add_argument("run_dir", help="the --out directory of glassnet train")
    pl.set_defaults(func=cmd_plot)

    g = sub.add_parser("gradcheck", help="numerically check every built-in layer and loss")
    g.add_argument("--seed", type=seed, default=0)
    g.set_defaults(func=cmd_gradcheck)

    c = sub.add_parser("compare", help="run an experiment's variants over seeds and compare them")
    c.add_argument("config", help="the experiment's TOML file (see docs/howto/experiments.md)")
    c.add_argument("--out", default="results", help="directory for the result files and the report")
    c.add_argument("--workers", type=positive_int, help="processes on this machine (default: one per core)")
    c.add_argument("--scheduler", help="tcp://HOST:PORT of a Dask scheduler to run on instead")
    c.set_defaults(func=cmd_compare)

    rp = sub.add_parser("report", help="re-render report.md and curves.png from result files")
    rp.add_argument("results", help="the directory compare wrote")
    rp.add_argument("--baseline", help="compare with this variant instead of the experiment's baseline")
    rp.set_defaults(func=cmd_report)

    lf = sub.add_parser("lr-find", help="learning-rate range test: loss against a growing learning rate")
    lf.add_argument("--dataset", choices=DATASETS, help="default: the preset's (fashion-mnist, or mnist1d)")
    lf.add_argument("--data-dir")
    lf.add_argument("--train-size", type=positive_int, help="a random subset of this many training examples")
    lf.add_argument("--model", choices=sorted(PRESETS), default="mlp")
    lf.add_argument("--optimizer", choices=OPTIMIZERS)
    lf.add_argument("--momentum", type=momentum, default=None,
                    help="SGD's momentum, in [0, 1) (default: the preset's, as train's)")  # fmt: skip
    lf.add_argument("--batch-size", type=positive_int)
    lf.add_argument("--start", type=positive_float, default=1e-6)
    lf.add_argument("--end", type=positive_float, default=10.0)
    lf.add_argument("--steps", type=at_least_10, default=300)
    lf.add_argument("--seed", type=seed, default=0)
    lf.add_argument("--out", default="lr_find", help="writes OUT.json and OUT.png")
    lf.set_defaults(func=cmd_lr_find)
    return p


# the errors a user's input or files cause (FileFormatError is a ValueError); anything else
# escaping a command is a bug in glassnet
USER_ERRORS = (OSError, ValueError, ImportError, FloatingPointError, MemoryError)


def error_message(command: str, e: BaseException) -> str:
    """One line for a user error; a diverged training run gets the command line's advice."""
    text = " ".join(str(e).split()) or type(e).__name__
    if isinstance(e, MemoryError):
        return f"out of memory: {text}"
    if isinstance(e, OSError) and e.filename is not None and e.strerror:
        # "[Errno 2] No such file or directory: 'm.safetensors'" -> "m.safetensors: no such file or directory"
        return f"{os.fsdecode(e.filename)}: {e.strerror[0].lower()}{e.strerror[1:]}"
    if isinstance(e, FloatingPointError) and command in ("train", "diagnose"):
        # fit's advice names Python arguments (clip_norm, detect_anomaly): the command line's is --lr
        text = text.removeprefix("fit: ")
        lr = re.search(r"\(lr=([^)]+)\)", text)
        text = text.split("; try ")[0]
        return f"the training diverged: {text}; try a lower --lr" + (f" than {lr[1]}" if lr else "")
    return text


def main(argv: list[str] | None = None) -> int:
    from ._malloc import tune_malloc

    tune_malloc()  # the command owns its process: let freed batches be reused (see _malloc)
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser().parse_args(argv)
    if args.command == "train":  # which options were typed, for --resume to check
        args.given = typed_options(argv[argv.index("train") + 1 :])
    # a diverging run overflows before its loss turns NaN, and inputs of 1e38 overflow in predict:
    # each command reports a non-finite result as an error (below), and NumPy's warnings on the
    # way would print source lines that read like a traceback
    try:
        with np.errstate(all="ignore"):
            return args.func(args)
    except USER_ERRORS as e:
        print(f"glassnet {args.command}: error: {error_message(args.command, e)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"glassnet {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as e:
        if os.environ.get("GLASSNET_TRACEBACK") == "1":
            raise
        text = " ".join(str(e).split())[:500]
        print(
            f"glassnet {args.command}: internal error: {type(e).__name__}: {text} "
            "(a bug in glassnet; set GLASSNET_TRACEBACK=1 for the traceback)",
            file=sys.stderr,
        )
        return 3


if __name__ == "__main__":
    sys.exit(main())
