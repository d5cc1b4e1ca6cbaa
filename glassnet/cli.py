"""The ``glassnet`` command line: parses arguments and calls library functions.

glassnet train --dataset fashion-mnist --model mlp --epochs 20 --out runs/mlp
glassnet evaluate runs/mlp/model.safetensors --dataset fashion-mnist
glassnet predict runs/mlp/model.safetensors images.npy --out predictions.npy
glassnet summary runs/mlp/model.safetensors
glassnet gradcheck
glassnet compare experiments/dropout_study.toml --out results/dropout
glassnet report results/dropout
glassnet lr-find --dataset fashion-mnist --model mlp
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np

DATASETS = ("fashion-mnist", "mnist", "digits")


def load_dataset(name: str, data_dir: str | None):
    from . import datasets

    if name == "fashion-mnist":
        return datasets.load_fashion_mnist(path=data_dir)
    if name == "mnist":
        return datasets.load_mnist(path=data_dir)
    if name == "digits":
        return datasets.load_digits()
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


def cmd_train(args) -> int:
    import glassnet as gn
    from glassnet import callbacks, models

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
    os.makedirs(args.out, exist_ok=True)
    cbs = [callbacks.CSVLogger(os.path.join(args.out, "metrics.csv"))]
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
        + (f", {augment!r}" if augment else ""),
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

    atomic_write_text(
        os.path.join(args.out, "history.json"),
        json.dumps({**history.to_dict(), **metadata}, indent=2),
    )
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
    try:
        x = np.load(args.input, allow_pickle=False)  # never unpickle: a .npy can hold objects
    except (ValueError, OSError) as e:
        raise SystemExit(f"glassnet predict: cannot read {args.input} as a .npy array: {e}") from None
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

    model = gn.load(args.model)
    shape = gn.load_metadata(args.model).get("input_shape")
    print(gn.diagnostics.summary(model, tuple(shape) if shape else None))
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
    from .experiments import compare

    compare(args.config, args.out, workers=args.workers, scheduler=args.scheduler)
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
    train, _ = load_dataset(args.dataset, args.data_dir)
    if args.train_size:
        idx = rng.permutation(train.n)[: args.train_size]
        train = gn.data.Dataset(train.x[idx], train.y[idx])
    preset = models.PRESETS[args.model]
    model = models.build(args.model, rng, train.x.shape[1:], int(train.y.max()) + 1)
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
    t.add_argument("--out", default="runs/model", help="directory for model, history, metrics")
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

    s = sub.add_parser("summary", help="layers, output shapes and parameter counts")
    s.add_argument("model")
    s.set_defaults(func=cmd_summary)

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
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (FileNotFoundError, ValueError, ImportError) as e:
        print(f"glassnet {args.command}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
