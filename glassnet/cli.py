"""The ``glassnet`` command line: parses arguments and calls library functions.

glassnet train --dataset fashion-mnist --model mlp --epochs 20 --out runs/mlp
glassnet train --resume runs/mlp          # go on after a crash, exactly where the run stopped
glassnet train --model cnn --out runs/mlp --overwrite   # start over a directory holding a run
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

Errors in what the user typed or in the files read are one line, ``glassnet CMD: error: ...``,
exit status 2; any other exception is a bug in glassnet, ``glassnet CMD: internal error: ...``,
exit status 3 (``GLASSNET_TRACEBACK=1`` shows its traceback).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import math
import os
import re
import sys
import time
from dataclasses import dataclass

import numpy as np

from .callbacks import Callback

DATASETS = ("fashion-mnist", "mnist", "digits", "mnist1d")


def load_dataset(name: str, data_dir: str | None):
    from . import datasets

    if data_dir is not None and name not in ("fashion-mnist", "mnist"):
        # the generated and bundled data sets have no files to point at: an ignored option
        # would leave the user believing their files were used
        raise ValueError(
            f"--data-dir {data_dir}: only fashion-mnist and mnist read IDX files; {name} has none"
        )
    if name == "fashion-mnist":
        return datasets.load_fashion_mnist(path=data_dir)
    if name == "mnist":
        return datasets.load_mnist(path=data_dir)
    if name == "digits":
        return datasets.load_digits()
    if name == "mnist1d":
        return datasets.load_mnist1d()
    raise ValueError(f"--dataset {name!r}: expected one of {', '.join(DATASETS)}")


def make_optimizer(name: str, params, lr: float, momentum: float):
    from . import optim

    if name == "sgd":
        return optim.SGD(params, lr=lr, momentum=momentum)
    if momentum:  # the adaptive optimizers have no momentum option: it would be ignored
        raise ValueError(f"--momentum {momentum}: only --optimizer sgd takes a momentum, not {name}")
    classes = {
        "adam": optim.Adam,
        "adamw": optim.AdamW,
        "rmsprop": optim.RMSprop,
        "adagrad": optim.Adagrad,
    }
    return classes[name](params, lr=lr)


# --- option values --------------------------------------------------------------------------
# Each is an argparse ``type=``: the parser refuses a bad value with a message naming the option
# (``argument --batch-size: expected an integer >= 1, got '0'``), and read_run_config applies the
# same checks to a config.json, which it parses as a command line. Written as what is valid, so
# that NaN, for which every comparison is false, is refused too.
def _value(kind: type, ok, expected: str):
    def parse(text: str):
        try:
            value = kind(text)
        except (ValueError, OverflowError):
            value = None
        if value is None or not ok(value):
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}")
        return value

    parse.__name__ = expected  # what argparse would name it in its own messages
    return parse


positive_int = _value(int, lambda v: v >= 1, "an integer >= 1")
count = _value(int, lambda v: v >= 0, "an integer >= 0")
seed = _value(int, lambda v: 0 <= v < 2**128, "an integer in [0, 2^128)")
positive_float = _value(float, lambda v: 0 < v < math.inf, "a finite number > 0")
nonnegative_float = _value(float, lambda v: 0 <= v < math.inf, "a finite number >= 0")
fraction = _value(float, lambda v: 0 <= v < 1, "a number in [0, 1)")
# SGD takes any momentum >= 0, but with 1 or more the velocity never forgets a gradient and
# grows without bound: the run diverges
momentum = _value(float, lambda v: 0 <= v < 1, "a number in [0, 1)")


# the train options a run directory's config.json records; --resume reads them back
RUN_OPTIONS = ("dataset", "data_dir", "model", "epochs", "batch_size", "lr", "optimizer", "momentum", "l2",
               "val_fraction", "patience", "schedule", "shift", "flip", "seed",
               "checkpoint_every", "gradient_flow", "tensorboard")  # fmt: skip


def read_run_config(path: str) -> dict:
    """The options a run directory's ``config.json`` records, checked as the command line
    checks them (types, choices, ranges); anything wrong is a ``FileFormatError`` naming the file."""
    from .errors import FileFormatError
    from .io import open_regular

    with open_regular(path) as f:  # a FIFO is refused; FileNotFoundError names the path
        text = f.read(1 << 20)
    try:
        saved = json.loads(text)
    except (ValueError, RecursionError) as e:
        raise FileFormatError(path, f"not valid JSON: {str(e)[:200]}") from None
    if not isinstance(saved, dict) or set(saved) != set(RUN_OPTIONS):
        raise FileFormatError(path, f"expected an object with the keys {', '.join(RUN_OPTIONS)}")
    # the parser checks types, choices and ranges; a config.json edited by hand must pass the same
    errors = io.StringIO()
    try:
        with contextlib.redirect_stderr(errors), contextlib.redirect_stdout(errors):
            check = train_parser().parse_args(to_argv(saved))
    except SystemExit:
        lines = errors.getvalue().strip().splitlines() or ["not accepted by the train options"]
        raise FileFormatError(path, lines[-1].split(": error: ", 1)[-1][:300]) from None
    if any(
        getattr(check, k) != saved[k] or type(getattr(check, k)) is not type(saved[k]) for k in RUN_OPTIONS
    ):
        raise FileFormatError(path, "holds values of the wrong types for the train options")
    return saved


def resume_args(args, given: set[str]) -> argparse.Namespace:
    """The options of the run in ``args.resume`` (its config.json); options typed on this
    command line (``given``, whatever their value) must agree with them, since the resumed run
    is the same run."""
    path = os.path.join(args.resume, "config.json")
    if not os.path.exists(path):
        raise FileNotFoundError(
            f"{path}: not found; --resume takes the --out directory of a glassnet train run"
        )
    saved = read_run_config(path)
    differ = []
    for key in sorted(given & set(RUN_OPTIONS)):
        if getattr(args, key) != saved[key]:
            was = "default (the preset's)" if saved[key] is None else repr(saved[key])
            differ.append(
                f"--{key.replace('_', '-')} {getattr(args, key)} differs from the resumed run's {was}"
            )
    if differ:
        raise ValueError(f"{'; '.join(differ)} ({path}); --resume continues the run as it was configured")
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
            argv.append(f"{flag}={value}")  # one token: a value starting with '-' is a value
    return argv


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


# --- the run directory ------------------------------------------------------------------------
# The files of a run, in the order train writes them: config.json first, the checkpoint after
# every epoch, then model.safetensors and, last, history.json. A run is FINISHED when both of the
# last two exist; a directory holding any of these files but not both holds an UNFINISHED run.
RESULT_FILES = ("history.json", "model.safetensors", "gradient_flow.json", "metrics.csv")


def run_files(out: str) -> list[str]:
    """Which of a run's files ``out`` holds (config.json, the checkpoint, the results)."""
    from .checkpoint import FILENAME

    names = ("config.json", FILENAME, "model.safetensors", "history.json")
    return [n for n in names if os.path.exists(os.path.join(out, n))]


def is_finished(files: list[str]) -> bool:
    return "model.safetensors" in files and "history.json" in files


def refuse_to_replace(out: str) -> None:
    """A new run over a directory that holds one must be asked for with --overwrite: a typo,
    a forgotten --resume or a wrong --out would otherwise discard hours of training."""
    files = run_files(out)
    if not files:
        return
    if is_finished(files):
        raise FileExistsError(
            f"--out {out} holds a finished run ({', '.join(files)}); use --overwrite to replace "
            "it or choose another --out"
        )
    raise FileExistsError(
        f"--out {out} holds an unfinished run ({', '.join(files)}); use --resume {out} to "
        f"continue it or --overwrite to discard it"
    )


def start_run_dir(out: str, config: dict) -> None:
    """Make ``out`` the new run's: the earlier run's results and checkpoint go first (a kill
    between leaves no finished run and no checkpoint to resume under the new options), then
    the new config.json."""
    from .checkpoint import FILENAME
    from .io import write_atomic

    os.makedirs(out, exist_ok=True)
    for name in (*RESULT_FILES, FILENAME):
        with contextlib.suppress(FileNotFoundError):
            os.remove(os.path.join(out, name))
    write_atomic(os.path.join(out, "config.json"), json.dumps(config, indent=2).encode())


class TrainTime(Callback):
    """Seconds of training a run has cost, across resumes. Its state travels in the
    checkpoint, so a resumed run adds its time to that spent up to the checkpoint it continues
    from (work after that checkpoint is redone, and counted once)."""

    def __init__(self) -> None:
        self.before, self.start = 0.0, None

    def on_train_begin(self, logs):
        self.before, self.start = 0.0, time.perf_counter()

    @property
    def seconds(self) -> float:
        return self.before + (0.0 if self.start is None else time.perf_counter() - self.start)

    def state_dict(self) -> dict:
        return {"seconds": self.seconds}

    def load_state_dict(self, state: dict) -> None:
        seconds = state["seconds"]
        if not (
            isinstance(seconds, (int, float)) and not isinstance(seconds, bool) and 0 <= seconds < math.inf
        ):
            raise ValueError(f"'seconds' must be a finite number >= 0, got {str(seconds)[:40]}")
        self.before, self.start = float(seconds), time.perf_counter()


def result_line(result: dict, epochs: int, seconds: str, out: str) -> str:
    return (
        f"test accuracy: {100 * result['accuracy']:.2f}%  test loss: {result['loss']:.4f}  "
        f"({epochs} epoch{'' if epochs == 1 else 's'}, {seconds}); saved {out}/model.safetensors"
    )


def print_finished(out: str) -> None:
    """What a finished run reached, from its model file's metadata (nothing is rewritten)."""
    import glassnet as gn
    from glassnet.errors import FileFormatError

    path = os.path.join(out, "model.safetensors")
    meta = gn.load_metadata(path)
    test, epochs, seconds = meta.get("test"), meta.get("epochs_run"), meta.get("train_seconds")
    numbers = (
        isinstance(test, dict)
        and all(isinstance(test.get(k), (int, float)) for k in ("accuracy", "loss"))
        and isinstance(epochs, int)
        and isinstance(seconds, (int, float))
    )
    if not numbers:
        raise FileFormatError(path, "its metadata lacks the run's test result, epochs_run or train_seconds")
    print(f"glassnet: {out} is a finished run; nothing to resume")
    print(result_line(test, epochs, f"{seconds:.0f} s", out))


@dataclass
class Training:
    """Everything a train run needs, built and checked before the run directory is touched."""

    preset: object
    epochs: int
    batch_size: int
    lr: float
    l2: float
    optimizer: str
    patience: int
    schedule: str
    rng: np.random.Generator
    train: object
    val: object
    test: object
    classes: int
    model: object
    opt: object
    augment: object


def _or(value, default):
    """An option's value, or the preset's where it was not given (None; 0 is a value)."""
    return default if value is None else value


def prepare(args) -> Training:
    """Resolve the preset's defaults, check every combination the parser cannot, load the data
    and build the model and optimizer, all without writing anything: a run that cannot start
    fails here, before it could disturb the directory it was pointed at."""
    import glassnet as gn
    from glassnet import models

    preset = models.PRESETS[args.model]
    optimizer = _or(args.optimizer, preset.optimizer)
    patience = _or(args.patience, preset.patience)
    rng = np.random.default_rng(args.seed)
    train, test = load_dataset(args.dataset, args.data_dir)
    val = None
    if args.val_fraction > 0:
        try:
            train, val = gn.data.train_val_split(train, args.val_fraction, rng)
        except ValueError as e:
            raise ValueError(f"--val-fraction {args.val_fraction}: {e}") from None
    elif args.patience:  # typed, > 0: early stopping needs a validation set to watch
        raise ValueError(
            f"--patience {args.patience}: early stopping needs a validation set (--val-fraction > 0)"
        )
    classes = int(train.y.max()) + 1
    try:  # and one example forward, in eval mode (no random numbers drawn): fit would fail on it
        model = models.build(args.model, rng, train.x.shape[1:], classes)
        gn.predict(model, train.x[:1])
    except ValueError as e:
        raise ValueError(
            f"--model {args.model} does not fit {args.dataset}'s examples of shape {train.x.shape[1:]}: {e}"
        ) from None
    lr = _or(args.lr, preset.lr)
    opt = make_optimizer(optimizer, model.parameters(), lr, _or(args.momentum, preset.momentum))
    shift, flip = _or(args.shift, preset.shift), _or(args.flip, preset.flip)
    augment = gn.data.Augment(shift, flip) if shift or flip else None
    if augment is not None:  # on two examples, with a generator of its own: the run's is untouched
        try:
            augment(train.x[:2], np.random.default_rng(0))
        except ValueError as e:
            raise ValueError(f"--shift/--flip: {e}") from None
    if args.tensorboard:
        try:  # what the TensorBoard callback imports when training begins
            import tensorboardX  # noqa: F401
        except ModuleNotFoundError as e:
            if e.name != "tensorboardX":
                raise
            raise ImportError(
                "--tensorboard needs tensorboardX: pip install 'glassnet[tensorboard]'"
            ) from None
    return Training(preset, _or(args.epochs, preset.epochs), _or(args.batch_size, preset.batch_size), lr,
                    _or(args.l2, preset.l2), optimizer, patience, args.schedule or preset.schedule or "none",
                    rng, train, val, test, classes, model, opt, augment)  # fmt: skip


def cmd_train(args) -> int:
    import glassnet as gn
    from glassnet import callbacks
    from glassnet.checkpoint import FILENAME

    # nothing in the run directory changes before the options are checked, the data is loaded
    # and the model built: a run that cannot start leaves the directory as it found it
    resume_from = None
    if args.resume:
        if args.overwrite:
            raise ValueError("--overwrite discards a run and --resume continues it: give one of the two")
        args = resume_args(args, args.given)
        if is_finished(run_files(args.out)):
            print_finished(args.out)  # rewriting its files would change nothing but their times
            return 0
    else:
        args.out = args.out or "runs/model"
        if not args.overwrite:
            refuse_to_replace(args.out)
    t = prepare(args)
    if args.resume:
        if os.path.exists(os.path.join(args.out, FILENAME)):
            resume_from = args.out
        else:  # killed before its first checkpoint: nothing to resume, so start it again
            print(f"glassnet: {args.out} has no checkpoint yet; starting the run from the beginning")
    if resume_from is None:
        start_run_dir(args.out, {k: getattr(args, k) for k in RUN_OPTIONS})

    timer = TrainTime()
    cbs = [callbacks.CSVLogger(os.path.join(args.out, "metrics.csv")), timer]
    flow = gn.GradientFlow() if args.gradient_flow else None
    if flow is not None:
        cbs.append(flow)
    if args.tensorboard:
        from .tensorboard import TensorBoard

        cbs.append(TensorBoard(args.tensorboard, gradient_flow=flow))
    if t.val is not None and t.patience > 0:
        cbs.append(callbacks.EarlyStopping("val_loss", patience=t.patience, restore_best=True))
    scheduler = gn.schedules.CosineAnnealingLR(t.opt, t.epochs) if t.schedule == "cosine" else None
    print(
        f"glassnet: training {args.model} on {args.dataset} ({t.train.n} train, "
        f"{0 if t.val is None else t.val.n} validation, {t.test.n} test examples), {t.optimizer} lr={t.lr}, "
        f"batch {t.batch_size}, up to {t.epochs} epochs, seed {args.seed}"
        + (f", {t.augment!r}" if t.augment else "")
        + (f"; resuming from {resume_from}" if resume_from else ""),
        flush=True,
    )
    start = time.perf_counter()
    history = gn.fit(
        t.model,
        t.preset.loss(),
        t.opt,
        t.train,
        epochs=t.epochs,
        batch_size=t.batch_size,
        val_data=t.val,
        callbacks=cbs,
        regularizer=gn.L2(t.l2) if t.l2 else None,
        rng=t.rng,
        scheduler=scheduler,
        augment=t.augment,
        checkpoint=args.out,
        checkpoint_every=args.checkpoint_every,
        resume_from=resume_from,
    )
    session = time.perf_counter() - start
    result = save_results(args, t, history, timer.seconds, flow)
    seconds = f"{timer.seconds:.0f} s" + (f", {session:.0f} s of it in this resume" if resume_from else "")
    print(result_line(result, len(history.epoch), seconds, args.out))
    return 0


def save_results(args, t: Training, history, seconds: float, flow) -> dict:
    """model.safetensors (weights and metadata), then history.json, the mark of a finished run."""
    import glassnet as gn

    from .callbacks import atomic_write_text
    from .plots import confusion_counts

    result = gn.evaluate(t.model, t.preset.loss(), t.test)
    classes = t.classes
    metadata = {
        "dataset": args.dataset,
        "model": args.model,
        "input_shape": list(t.train.x.shape[1:]),
        "classes": classes,
        "seed": args.seed,
        "epochs_run": len(history.epoch),
        "train_seconds": round(seconds, 1),
        "test": result,
    }
    if flow is not None:  # before history.json: a finished run has all of its files
        atomic_write_text(os.path.join(args.out, "gradient_flow.json"), json.dumps(flow.to_dict()))
    gn.save(t.model, os.path.join(args.out, "model.safetensors"), metadata=metadata)
    # what `glassnet plot` draws: curves, the test confusion matrix, the gradient flow
    predicted = gn.predict(t.model, t.test.x).argmax(axis=1)
    confusion = confusion_counts(t.test.y, predicted, classes).tolist()
    atomic_write_text(
        os.path.join(args.out, "history.json"),
        json.dumps({**history.to_dict(), **metadata, "confusion": confusion}, indent=2),
    )
    return result


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
    result = gn.evaluate(model, loss, test)
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
    if x.dtype == np.uint8:
        x = x / np.float32(255)  # raw image bytes, scaled as the training data was
    elif x.dtype.kind != "f":
        x = x.astype(np.float32)  # integers and booleans: the model computes in floats
    out = gn.predict(model, x)
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


def positive(flag: str, value: int, most: int) -> int:
    if not 1 <= value <= most:
        raise ValueError(f"{flag}: expected an integer from 1 to {most:,}, got {value}")
    return value


def cmd_summary(args) -> int:
    import glassnet as gn
    from glassnet.io import MAX_INPUT_DIMS, MAX_INPUT_SIZE

    if (args.model is None) == (args.preset is None):
        raise ValueError("give a model file or --preset NAME (one of the two)")
    positive("--batch-size", args.batch_size, 2**31)
    shape = args.input_shape
    if shape is not None:
        if len(shape) > MAX_INPUT_DIMS or any(n < 1 for n in shape) or math.prod(shape) > MAX_INPUT_SIZE:
            raise ValueError(
                f"--input-shape: expected 1 to {MAX_INPUT_DIMS} positive sizes of at most "
                f"{MAX_INPUT_SIZE:,} values in all, got {' '.join(map(str, shape))}"
            )
        shape = tuple(shape)
    if args.preset is not None:
        preset = gn.models.PRESETS[args.preset]
        shape = shape or preset.input_shape  # the data set the preset is made for
        classes = positive("--classes", args.classes, 2**20)
        model = gn.models.build(args.preset, np.random.default_rng(0), shape, classes)
    else:
        model = gn.load(args.model)
        if shape is None:  # the file's, checked by load_metadata
            saved = gn.load_metadata(args.model).get("input_shape")
            shape = tuple(saved) if saved else None
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

    figures = plot_run(args.run_dir)
    for path in figures.written:
        print(f"wrote {path}")
    for name, why in figures.skipped:
        print(f"skipped {name}: {why}")
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

    if not args.start < args.end:
        raise ValueError(f"--end {args.end} must be larger than --start {args.start}")
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


def add_train_options(t: argparse.ArgumentParser) -> None:
    """The options of ``glassnet train``; ``train_parser`` has them alone, for config.json."""
    from .models import PRESETS

    t.add_argument("--dataset", choices=DATASETS, default="fashion-mnist")
    t.add_argument("--data-dir", help="directory holding the IDX files (default: search)")
    t.add_argument("--model", choices=sorted(PRESETS), default="mlp")
    t.add_argument("--epochs", type=positive_int, help="default: the preset's")
    t.add_argument("--batch-size", type=positive_int)
    t.add_argument("--lr", type=positive_float)
    t.add_argument("--optimizer", choices=["sgd", "adam", "adamw", "rmsprop", "adagrad"])
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
    t.add_argument(
        "--schedule", choices=["none", "cosine"], help="learning-rate schedule (default: the preset's)"
    )
    t.add_argument("--shift", type=count, help="augment: random shifts by up to this many pixels")
    t.add_argument("--flip", action=argparse.BooleanOptionalAction, help="augment: random horizontal flips")
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


def train_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="glassnet train")
    add_train_options(parser)
    return parser


class Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line, as every other error: it names the option and
    what was expected, and where the whole usage is (``--help``); exit status 2."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


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
    s.add_argument("--classes", type=positive_int, default=10, help="for --preset (default 10)")
    s.add_argument("--batch-size", type=positive_int, default=32, help="batch for the memory estimate")
    s.set_defaults(func=cmd_summary)

    d = sub.add_parser("diagnose", help="train briefly and report gradient flow, dead and saturated units")
    d.add_argument("--dataset", choices=DATASETS, default="fashion-mnist")
    d.add_argument("--data-dir")
    d.add_argument("--model", choices=sorted(PRESETS), default="mlp")
    d.add_argument("--epochs", type=positive_int, default=1)
    d.add_argument("--subset", type=count, default=10000, help="train on this many examples (0: all)")
    d.add_argument("--batch-size", type=positive_int)
    d.add_argument("--lr", type=positive_float)
    d.add_argument("--optimizer", choices=["sgd", "adam", "adamw", "rmsprop", "adagrad"])
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
    c.add_argument("config", help="the experiment's TOML file (see README: Experiments)")
    c.add_argument("--out", default="results", help="directory for the result files and the report")
    c.add_argument("--workers", type=positive_int, help="processes on this machine (default: one per core)")
    c.add_argument("--scheduler", help="tcp://HOST:PORT of a Dask scheduler to run on instead")
    c.set_defaults(func=cmd_compare)

    rp = sub.add_parser("report", help="re-render report.md and curves.png from result files")
    rp.add_argument("results", help="the directory compare wrote")
    rp.add_argument("--baseline", help="compare with this variant instead of the experiment's baseline")
    rp.set_defaults(func=cmd_report)

    lf = sub.add_parser("lr-find", help="learning-rate range test: loss against a growing learning rate")
    lf.add_argument("--dataset", choices=DATASETS, default="fashion-mnist")
    lf.add_argument("--data-dir")
    lf.add_argument("--train-size", type=positive_int, help="a random subset of this many training examples")
    lf.add_argument("--model", choices=sorted(PRESETS), default="mlp")
    lf.add_argument("--optimizer", choices=["sgd", "adam", "adamw", "rmsprop", "adagrad"])
    lf.add_argument("--momentum", type=momentum, default=0.0, help="SGD's momentum, in [0, 1)")
    lf.add_argument("--batch-size", type=positive_int)
    lf.add_argument("--start", type=positive_float, default=1e-6)
    lf.add_argument("--end", type=positive_float, default=10.0)
    lf.add_argument("--steps", type=_value(int, lambda v: v >= 10, "an integer >= 10"), default=300)
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
    # a diverging run overflows before its loss turns NaN; fit reports that as an error (below),
    # and NumPy's warnings on the way would print source lines that read like a traceback
    quiet = args.command in ("train", "diagnose")
    try:
        with np.errstate(all="ignore") if quiet else contextlib.nullcontext():
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
