"""The ``glassnet`` command line: parses arguments and calls library functions.

glassnet train --dataset fashion-mnist --model mlp --epochs 20 --out runs/mlp
glassnet train --resume runs/mlp          # go on after a crash, exactly where the run stopped
glassnet evaluate runs/mlp/model.safetensors --dataset fashion-mnist
glassnet predict runs/mlp/model.safetensors images.npy --out predictions.npy
glassnet summary runs/mlp/model.safetensors
glassnet summary --preset cnn --batch-size 128
glassnet diagnose --dataset fashion-mnist --model book --epochs 1 --subset 10000
glassnet plot runs/mlp
glassnet gradcheck
glassnet compare experiments/dropout_study.toml --out results/dropout
glassnet report results/dropout
glassnet lr-find --dataset fashion-mnist --model mlp
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import sys
import time

import numpy as np

DATASETS = ("fashion-mnist", "mnist", "digits", "mnist1d")


def load_dataset(name: str, data_dir: str | None):
    from . import datasets

    if name == "fashion-mnist":
        return datasets.load_fashion_mnist(path=data_dir)
    if name == "mnist":
        return datasets.load_mnist(path=data_dir)
    if name == "digits":
        return datasets.load_digits()
    if name == "mnist1d":
        return datasets.load_mnist1d()
    raise SystemExit(f"glassnet: unknown dataset {name!r}; expected one of {', '.join(DATASETS)}")


def make_optimizer(name: str, params, lr: float, momentum: float):
    from . import optim

    if name == "sgd":
        return optim.SGD(params, lr=lr, momentum=momentum)
    classes = {
        "adam": optim.Adam,
        "adamw": optim.AdamW,
        "rmsprop": optim.RMSprop,
        "adagrad": optim.Adagrad,
    }
    return classes[name](params, lr=lr)


# the train options a run directory's config.json records; --resume reads them back
RUN_OPTIONS = ("dataset", "data_dir", "model", "epochs", "batch_size", "lr", "optimizer", "momentum", "l2",
               "val_fraction", "patience", "schedule", "shift", "flip", "seed",
               "checkpoint_every", "gradient_flow", "tensorboard")  # fmt: skip


def read_run_config(path: str) -> dict:
    """The options a run directory's ``config.json`` records, checked as the command line
    checks them (types, choices); anything wrong is a ``FileFormatError`` naming the file."""
    from .errors import FileFormatError

    with open(path, "rb") as f:  # FileNotFoundError names the path
        text = f.read(1 << 20)
    try:
        saved = json.loads(text)
    except (ValueError, RecursionError) as e:
        raise FileFormatError(path, f"not valid JSON: {str(e)[:200]}") from None
    if not isinstance(saved, dict) or set(saved) != set(RUN_OPTIONS):
        raise FileFormatError(path, f"expected an object with the keys {', '.join(RUN_OPTIONS)}")
    # the parser checks types and choices; a config.json edited by hand must pass the same
    errors = io.StringIO()
    try:
        with contextlib.redirect_stderr(errors), contextlib.redirect_stdout(errors):
            check = build_parser().parse_args(["train", *to_argv(saved)])
    except SystemExit:
        lines = errors.getvalue().strip().splitlines() or ["not accepted by the train options"]
        raise FileFormatError(path, lines[-1].split(": error: ", 1)[-1][:300]) from None
    if any(
        getattr(check, k) != saved[k] or type(getattr(check, k)) is not type(saved[k]) for k in RUN_OPTIONS
    ):
        raise FileFormatError(path, "holds values of the wrong types for the train options")
    return saved


def resume_args(args, given: set[str]) -> argparse.Namespace:
    """The options of the run in ``args.resume`` (its config.json); options given on this
    command line must agree with them, since the resumed run is the same run."""
    path = os.path.join(args.resume, "config.json")
    if not os.path.exists(path):
        raise FileNotFoundError(
            f"{path}: not found; --resume takes the --out directory of a glassnet train run"
        )
    saved = read_run_config(path)
    for key in sorted(given & set(RUN_OPTIONS)):
        if getattr(args, key) != saved[key]:
            was = "default (the preset's)" if saved[key] is None else repr(saved[key])
            raise ValueError(
                f"--{key.replace('_', '-')} {getattr(args, key)} differs from the resumed run's "
                f"{was} ({path}); --resume continues the run as it was configured"
            )
    if args.out not in (None, args.resume):
        raise ValueError(f"--out {args.out}: a resumed run writes to its own directory {args.resume}")
    return argparse.Namespace(**saved, out=args.resume, resume=args.resume)


def to_argv(options: dict) -> list[str]:
    argv = []
    for key, value in options.items():
        flag = "--" + key.replace("_", "-")
        if value is None:
            continue
        if isinstance(value, bool):
            argv.append(flag if value else "--no-" + flag[2:])
        else:
            argv += [flag, str(value)]
    return argv


def cmd_train(args) -> int:
    import glassnet as gn
    from glassnet import callbacks, models
    from glassnet.checkpoint import FILENAME
    from glassnet.io import write_atomic

    resume_from = None
    if args.resume:
        args = resume_args(args, args.given)
        if os.path.exists(os.path.join(args.out, FILENAME)):
            resume_from = args.out
        else:  # killed before its first checkpoint: nothing to resume, so start it again
            print(f"glassnet: {args.out} has no checkpoint yet; starting the run from the beginning")
    if args.out is None:
        args.out = "runs/model"
    os.makedirs(args.out, exist_ok=True)
    if resume_from is None:
        # the directory is this run's now: an earlier run's checkpoint left there must not be
        # resumed under this run's config.json (removed first: a kill between leaves neither)
        with contextlib.suppress(FileNotFoundError):
            os.remove(os.path.join(args.out, FILENAME))
        config = {k: getattr(args, k) for k in RUN_OPTIONS}
        write_atomic(os.path.join(args.out, "config.json"), json.dumps(config, indent=2).encode())

    preset = models.PRESETS[args.model]
    epochs = args.epochs if args.epochs is not None else preset.epochs
    batch_size = args.batch_size or preset.batch_size
    lr = args.lr if args.lr is not None else preset.lr
    l2 = args.l2 if args.l2 is not None else preset.l2
    optimizer = args.optimizer or preset.optimizer
    patience = args.patience if args.patience is not None else preset.patience
    schedule = args.schedule or preset.schedule or "none"
    rng = np.random.default_rng(args.seed)
    train, test = load_dataset(args.dataset, args.data_dir)
    if args.val_fraction > 0:
        train, val = gn.data.train_val_split(train, args.val_fraction, rng)
    else:
        val = None
    classes = int(train.y.max()) + 1
    in_shape = train.x.shape[1:]
    model = models.build(args.model, rng, in_shape, classes)
    opt = make_optimizer(optimizer, model.parameters(), lr, args.momentum or preset.momentum)
    cbs = [callbacks.CSVLogger(os.path.join(args.out, "metrics.csv"))]
    flow = gn.GradientFlow() if args.gradient_flow else None
    if flow is not None:
        cbs.append(flow)
    if args.tensorboard:
        from .tensorboard import TensorBoard

        cbs.append(TensorBoard(args.tensorboard, gradient_flow=flow))
    if val is not None and patience > 0:
        cbs.append(callbacks.EarlyStopping("val_loss", patience=patience, restore_best=True))
    scheduler = gn.schedules.CosineAnnealingLR(opt, epochs) if schedule == "cosine" else None
    shift = args.shift if args.shift is not None else preset.shift
    flip = args.flip if args.flip is not None else preset.flip
    augment = gn.data.Augment(shift, flip) if shift or flip else None
    print(
        f"glassnet: training {args.model} on {args.dataset} ({train.n} train, "
        f"{0 if val is None else val.n} validation, {test.n} test examples), {optimizer} lr={lr}, "
        f"batch {batch_size}, up to {epochs} epochs, seed {args.seed}"
        + (f", {augment!r}" if augment else "")
        + (f"; resuming from {resume_from}" if resume_from else ""),
        flush=True,
    )
    start = time.perf_counter()
    history = gn.fit(
        model,
        preset.loss(),
        opt,
        train,
        epochs=epochs,
        batch_size=batch_size,
        val_data=val,
        callbacks=cbs,
        regularizer=gn.L2(l2) if l2 else None,
        rng=rng,
        scheduler=scheduler,
        augment=augment,
        checkpoint=args.out,
        checkpoint_every=args.checkpoint_every,
        resume_from=resume_from,
    )
    seconds = time.perf_counter() - start
    result = gn.evaluate(model, preset.loss(), test)
    metadata = {
        "dataset": args.dataset,
        "model": args.model,
        "input_shape": list(in_shape),
        "classes": classes,
        "seed": args.seed,
        "epochs_run": len(history.epoch),
        "train_seconds": round(seconds, 1),
        "test": result,
    }
    gn.save(model, os.path.join(args.out, "model.safetensors"), metadata=metadata)
    from .callbacks import atomic_write_text
    from .plots import confusion_counts

    # what `glassnet plot` draws: curves, the test confusion matrix, the gradient flow
    predicted = gn.predict(model, test.x).argmax(axis=1)
    confusion = confusion_counts(test.y, predicted, classes).tolist()
    atomic_write_text(
        os.path.join(args.out, "history.json"),
        json.dumps({**history.to_dict(), **metadata, "confusion": confusion}, indent=2),
    )
    if flow is not None:
        atomic_write_text(os.path.join(args.out, "gradient_flow.json"), json.dumps(flow.to_dict()))
    print(
        f"test accuracy: {100 * result['accuracy']:.2f}%  test loss: {result['loss']:.4f}  "
        f"({len(history.epoch)} epochs, {seconds:.0f} s); saved {args.out}/model.safetensors"
    )
    return 0


def cmd_evaluate(args) -> int:
    import glassnet as gn

    model = gn.load(args.model)
    meta = gn.load_metadata(args.model)
    dataset = args.dataset or meta.get("dataset")
    if dataset is None:
        raise SystemExit("glassnet evaluate: pass --dataset (the model file does not name one)")
    _, test = load_dataset(dataset, args.data_dir)
    # the loss the model was trained with: its preset's (cross-entropy for files from elsewhere)
    preset = gn.models.PRESETS.get(meta.get("model"))
    loss = preset.loss() if preset is not None else gn.CrossEntropyLoss()
    result = gn.evaluate(model, loss, test)
    print(json.dumps({"dataset": dataset, "examples": test.n, **result}))
    return 0


def cmd_predict(args) -> int:
    import glassnet as gn

    model = gn.load(args.model)
    x = gn.io.load_npy(args.input)  # never unpickled: a .npy can hold objects
    shape = gn.load_metadata(args.model).get("input_shape")
    if shape is not None and tuple(x.shape[1:]) != tuple(shape):
        if x.ndim >= 1 and x[0].size == np.prod(shape):
            x = x.reshape(-1, *shape)
        else:
            raise SystemExit(
                f"glassnet predict: {args.input} has examples of shape {x.shape[1:]}, "
                f"the model expects {tuple(shape)}"
            )
    if x.dtype == np.uint8:
        x = x / np.float32(255)  # raw image bytes, scaled as the training data was
    out = gn.predict(model, x)
    classes = out.argmax(axis=1) if out.ndim == 2 else out
    if args.out:
        from .io import atomic_save_npy

        atomic_save_npy(args.out, out)
        print(f"wrote {out.shape} outputs to {args.out}")
    else:
        print(" ".join(str(int(c)) for c in classes))
    return 0


def cmd_summary(args) -> int:
    import glassnet as gn

    if (args.model is None) == (args.preset is None):
        raise SystemExit("glassnet summary: give a model file or --preset NAME (one of the two)")
    if args.preset is not None:
        shape = tuple(args.input_shape)
        model = gn.models.build(args.preset, np.random.default_rng(0), shape, args.classes)
    else:
        model = gn.load(args.model)
        shape = gn.load_metadata(args.model).get("input_shape")
        shape = tuple(shape) if shape else None
    print(gn.summary(model, shape, args.batch_size))
    return 0


def cmd_diagnose(args) -> int:
    import glassnet as gn

    preset = gn.models.PRESETS[args.model]
    rng = np.random.default_rng(args.seed)
    train, _ = load_dataset(args.dataset, args.data_dir)
    classes = int(train.y.max()) + 1  # before subsetting: a small subset may miss a class
    if args.subset and args.subset < train.n:
        keep = rng.permutation(train.n)[: args.subset]
        train = gn.data.Dataset(train.x[keep], train.y[keep])
    model = gn.models.build(args.model, rng, train.x.shape[1:], classes)
    lr = args.lr if args.lr is not None else preset.lr
    opt = make_optimizer(args.optimizer or preset.optimizer, model.parameters(), lr, preset.momentum)
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

    for path in plot_run(args.run_dir):
        print(f"wrote {path}")
    return 0


def cmd_gradcheck(args) -> int:
    from .gradcheck import TOLERANCE, run_builtin_checks

    rows = run_builtin_checks(seed=args.seed)
    width = max(len(case) for case, _, _ in rows)
    print(f"{'layer / loss'.ljust(width)}  {'array':6s}  {'rel. error':>10s}  result")
    failed = 0
    for case, name, err in rows:
        ok = err < TOLERANCE
        failed += not ok
        print(f"{case.ljust(width)}  {name:6s}  {err:10.2e}  {'ok' if ok else 'FAIL'}")
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

    rng = np.random.default_rng(args.seed)
    if args.batch_size is not None and args.batch_size < 1:
        raise ValueError(f"--batch-size: expected an integer >= 1, got {args.batch_size}")
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
    opt = make_optimizer(args.optimizer or preset.optimizer, model.parameters(), args.start, args.momentum)
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


def build_parser() -> argparse.ArgumentParser:
    from .models import PRESETS

    p = argparse.ArgumentParser(
        prog="glassnet", description="Deep learning on NumPy with backpropagation you can read."
    )
    sub = p.add_subparsers(dest="command", required=True)

    t = sub.add_parser("train", help="train a preset model on a data set, report test accuracy")
    t.add_argument("--dataset", choices=DATASETS, default="fashion-mnist")
    t.add_argument("--data-dir", help="directory holding the IDX files (default: search)")
    t.add_argument("--model", choices=sorted(PRESETS), default="mlp")
    t.add_argument("--epochs", type=int, help="default: the preset's")
    t.add_argument("--batch-size", type=int)
    t.add_argument("--lr", type=float)
    t.add_argument("--optimizer", choices=["sgd", "adam", "adamw", "rmsprop", "adagrad"])
    t.add_argument("--momentum", type=float, default=None)
    t.add_argument("--l2", type=float, help="L2 penalty lam (lam/2 sum w^2)")
    t.add_argument(
        "--val-fraction",
        type=float,
        default=1 / 12,
        help="share of training data held out for early stopping (default 1/12)",
    )
    t.add_argument("--patience", type=int, help="early-stopping patience (default: the preset's); 0 disables")
    t.add_argument(
        "--schedule", choices=["none", "cosine"], help="learning-rate schedule (default: the preset's)"
    )
    t.add_argument("--shift", type=int, help="augment: random shifts by up to this many pixels")
    t.add_argument("--flip", action=argparse.BooleanOptionalAction, help="augment: random horizontal flips")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--out", help="directory for model, history, metrics, checkpoint (default runs/model)")
    t.add_argument(
        "--checkpoint-every",
        type=int,
        metavar="N",
        help="also checkpoint every N steps (always: after every epoch), to OUT/checkpoint.safetensors",
    )
    t.add_argument(
        "--resume", metavar="RUN_DIR", help="continue the run in RUN_DIR (its --out) from its last checkpoint"
    )
    t.add_argument(
        "--gradient-flow",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="measure per-layer gradient flow each epoch on 1,000 training examples (gradient_flow.json)",
    )
    t.add_argument("--tensorboard", metavar="DIR", help="also write TensorBoard event files to DIR")
    t.set_defaults(func=cmd_train)

    e = sub.add_parser("evaluate", help="test loss and accuracy of a saved model")
    e.add_argument("model")
    e.add_argument("--dataset", choices=DATASETS)
    e.add_argument("--data-dir")
    e.set_defaults(func=cmd_evaluate)

    r = sub.add_parser("predict", help="predict the classes of examples in a .npy file")
    r.add_argument("model")
    r.add_argument("input", help=".npy array of examples (N, ...)")
    r.add_argument("--out", help="write the raw outputs to this .npy instead of printing classes")
    r.set_defaults(func=cmd_predict)

    s = sub.add_parser("summary", help="layers, output shapes, parameter counts, memory for a batch")
    s.add_argument("model", nargs="?", help="a saved model file")
    s.add_argument("--preset", choices=sorted(PRESETS), help="a preset instead of a file")
    s.add_argument("--input-shape", type=int, nargs="+", default=[1, 28, 28], help="for --preset")
    s.add_argument("--classes", type=int, default=10, help="for --preset")
    s.add_argument("--batch-size", type=int, default=32, help="batch for the memory estimate")
    s.set_defaults(func=cmd_summary)

    d = sub.add_parser("diagnose", help="train briefly and report gradient flow, dead and saturated units")
    d.add_argument("--dataset", choices=DATASETS, default="fashion-mnist")
    d.add_argument("--data-dir")
    d.add_argument("--model", choices=sorted(PRESETS), default="mlp")
    d.add_argument("--epochs", type=int, default=1)
    d.add_argument("--subset", type=int, default=10000, help="train on this many examples (0: all)")
    d.add_argument("--batch-size", type=int)
    d.add_argument("--lr", type=float)
    d.add_argument("--optimizer", choices=["sgd", "adam", "adamw", "rmsprop", "adagrad"])
    d.add_argument("--probe-size", type=int, default=1000, help="examples in the probe batch")
    d.add_argument("--seed", type=int, default=0)
    d.set_defaults(func=cmd_diagnose)

    pl = sub.add_parser("plot", help="write PNG figures of a training run (needs matplotlib)")
    pl.add_argument("run_dir", help="the --out directory of glassnet train")
    pl.set_defaults(func=cmd_plot)

    g = sub.add_parser("gradcheck", help="numerically check every built-in layer and loss")
    g.add_argument("--seed", type=int, default=0)
    g.set_defaults(func=cmd_gradcheck)

    c = sub.add_parser("compare", help="run an experiment's variants over seeds and compare them")
    c.add_argument("config", help="the experiment's TOML file (see README: Experiments)")
    c.add_argument("--out", default="results", help="directory for the result files and the report")
    c.add_argument("--workers", type=int, help="processes on this machine (default: one per core)")
    c.add_argument("--scheduler", help="tcp://HOST:PORT of a Dask scheduler to run on instead")
    c.set_defaults(func=cmd_compare)

    rp = sub.add_parser("report", help="re-render report.md and curves.png from result files")
    rp.add_argument("results", help="the directory compare wrote")
    rp.add_argument("--baseline", help="compare with this variant instead of the experiment's baseline")
    rp.set_defaults(func=cmd_report)

    lf = sub.add_parser("lr-find", help="learning-rate range test: loss against a growing learning rate")
    lf.add_argument("--dataset", choices=DATASETS, default="fashion-mnist")
    lf.add_argument("--data-dir")
    lf.add_argument("--train-size", type=int, help="a random subset of this many training examples")
    lf.add_argument("--model", choices=sorted(PRESETS), default="mlp")
    lf.add_argument("--optimizer", choices=["sgd", "adam", "adamw", "rmsprop", "adagrad"])
    lf.add_argument("--momentum", type=float, default=0.0)
    lf.add_argument("--batch-size", type=int)
    lf.add_argument("--start", type=float, default=1e-6)
    lf.add_argument("--end", type=float, default=10.0)
    lf.add_argument("--steps", type=int, default=300)
    lf.add_argument("--seed", type=int, default=0)
    lf.add_argument("--out", default="lr_find", help="writes OUT.json and OUT.png")
    lf.set_defaults(func=cmd_lr_find)
    return p


def main(argv: list[str] | None = None) -> int:
    from ._malloc import tune_malloc

    tune_malloc()  # the command owns its process: let freed batches be reused (see _malloc)
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "train":  # which options were given, for --resume to check
        defaults = vars(parser.parse_args(["train"]))
        args.given = {k for k, v in vars(args).items() if v != defaults.get(k)}
    try:
        return args.func(args)
    except (OSError, ValueError, ImportError) as e:
        print(f"glassnet {args.command}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
