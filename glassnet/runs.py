"""A training run in a directory: what ``glassnet train`` does, as a function tests can call.

    from glassnet.runs import TrainOptions, train_run
    result = train_run(TrainOptions(dataset="digits", model="book", epochs=3), "runs/book")
    result = train_run(None, resume="runs/book")            # go on after a crash

``TrainOptions`` holds the options of a run as the command line names them (``None``: the
preset's value); ``train_run`` merges them over the preset's recipe, checks every combination,
loads the data and builds the model before it touches the run directory, then trains with a
checkpoint after every epoch and writes the results. Errors name the options as the command line
spells them (``--val-fraction``), since that is where they are typed.

The files of a run, in the order they are written: ``config.json`` (the options) first, the
checkpoint after every epoch, then ``model.safetensors`` and, last, ``history.json``. A run is
FINISHED when both of the last two exist; a directory holding any of these files but not both
holds an UNFINISHED run. A new run refuses a directory holding either (``overwrite=True``
discards it); ``resume=DIR`` continues an unfinished run with the options of its config.json.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, fields, replace

import numpy as np

from .callbacks import Callback
from .choices import (
    DATASETS,
    DIGIT_DATASETS,
    OPTIMIZERS,
    SCHEDULES,
    load_dataset,
    make_optimizer,
    momentum_for,
)
from .module import is_number


# --- option values ----------------------------------------------------------------------------
@dataclass(frozen=True)
class Value:
    """The valid values of an option: a type and a test, written as what is valid (so that NaN,
    for which every comparison is false, is refused too). Called on text it is the parser's
    ``type=`` (``argument --batch-size: expected an integer >= 1, got '0'``); ``read_run_config``
    applies the same call to a config.json value's text."""

    kind: type
    ok: Callable[[object], bool]
    expected: str

    @property
    def __name__(self) -> str:  # what argparse names the type in its own messages
        return self.expected

    def __call__(self, text: str):
        try:
            value = self.kind(text)
        except (ValueError, OverflowError):
            value = None
        if value is None or not self.ok(value):
            raise argparse.ArgumentTypeError(f"expected {self.expected}, got {text!r}")
        return value


positive_int = Value(int, lambda v: v >= 1, "an integer >= 1")
count = Value(int, lambda v: v >= 0, "an integer >= 0")
seed = Value(int, lambda v: 0 <= v < 2**128, "an integer in [0, 2^128)")
positive_float = Value(float, lambda v: 0 < v < math.inf, "a finite number > 0")
nonnegative_float = Value(float, lambda v: 0 <= v < math.inf, "a finite number >= 0")
fraction = Value(float, lambda v: 0 <= v < 1, "a number in [0, 1)")
# SGD takes any momentum >= 0, but with 1 or more the velocity never forgets a gradient and
# grows without bound: the run diverges
momentum = Value(float, lambda v: 0 <= v < 1, "a number in [0, 1)")
at_least_10 = Value(int, lambda v: v >= 10, "an integer >= 10")


def _metric_list(text: str) -> bool:
    from .metrics import get_all

    names = text.split(",")
    if {"mae", "rmse"} & set(names):  # regression metrics: every data set here has class labels
        return False
    try:
        get_all(names)
    except (ValueError, TypeError):
        return False
    return True


# --metrics: names of glassnet.metrics, comma-separated ("top5,macro_f1"); the classification
# ones, since every data set of the command line has class labels (mae and rmse are the API's)
metric_names = Value(str, _metric_list, "comma-separated classification metrics: topK (top5, ...), "
                     "macro_precision, macro_recall, macro_f1, each once")  # fmt: skip


@dataclass
class TrainOptions:
    """The options of one ``glassnet train`` run, named as on the command line (``batch_size``
    is ``--batch-size``); None takes the model preset's value. ``config.json`` records them."""

    dataset: str = "fashion-mnist"
    data_dir: str | None = None
    model: str = "mlp"
    epochs: int | None = None
    batch_size: int | None = None
    lr: float | None = None
    optimizer: str | None = None
    momentum: float | None = None
    l2: float | None = None
    val_fraction: float = 1 / 12
    patience: int | None = None
    schedule: str | None = None
    shift: int | None = None
    flip: bool | None = None
    seed: int = 0
    checkpoint_every: int | None = None
    gradient_flow: bool = True
    tensorboard: str | None = None
    metrics: str | None = None
    shards: int = 1


RUN_OPTIONS = tuple(f.name for f in fields(TrainOptions))
# options added after runs were first recorded: an older config.json lacks them (--metrics, --shards)
ADDED_LATER = {"metrics": None, "shards": 1}


def option_values() -> dict[str, Value | tuple[str, ...] | type]:
    """Each option's valid values: a ``Value``, a tuple of choices, or ``str``/``bool``."""
    from .models import PRESETS

    return {
        "dataset": DATASETS, "data_dir": str, "model": tuple(sorted(PRESETS)), "epochs": positive_int,
        "batch_size": positive_int, "lr": positive_float, "optimizer": OPTIMIZERS, "momentum": momentum,
        "l2": nonnegative_float, "val_fraction": fraction, "patience": count, "schedule": SCHEDULES,
        "shift": count, "flip": bool, "seed": seed, "checkpoint_every": positive_int,
        "gradient_flow": bool, "tensorboard": str, "metrics": metric_names, "shards": positive_int,
    }  # fmt: skip


def _config_problem(key: str, value, valid, nullable: bool) -> str | None:
    """What is wrong with ``value`` for option ``key`` in a config.json, or None."""
    flag = "--" + key.replace("_", "-")
    wrong = f"holds values of the wrong types for the train options: {key} is {json.dumps(value)}"
    if value is None:
        return None if nullable else wrong
    if isinstance(value, bool) and valid is not bool:
        return f"argument {flag}: expected one argument, not {json.dumps(value)}"
    if isinstance(valid, Value):
        try:  # the parser's own check, on the text the command line would have held
            parsed = valid(str(value))
        except argparse.ArgumentTypeError as e:
            return f"argument {flag}: {e}"
        return None if type(parsed) is type(value) and parsed == value else wrong
    if isinstance(valid, tuple):
        if not isinstance(value, str):
            return wrong
        return None if value in valid else f"argument {flag}: invalid choice: {value!r} (choose from {valid})"
    return None if isinstance(value, valid) else wrong


def read_run_config(path: str) -> dict:
    """The options a run directory's ``config.json`` records, checked as the command line
    checks them (types, choices, ranges); anything wrong is a ``FileFormatError`` naming the file."""
    from .errors import FileFormatError
    from .io import read_json

    saved = read_json(path, max_bytes=1 << 20)  # a FIFO, a huge file, bad JSON: FileFormatError
    if isinstance(saved, dict):  # a run from before an option existed: its default
        saved = {**ADDED_LATER, **saved}
    if not isinstance(saved, dict):
        raise FileFormatError(path, f"expected an object with the keys {', '.join(RUN_OPTIONS)}")
    missing, extra = [k for k in RUN_OPTIONS if k not in saved], sorted(set(saved) - set(RUN_OPTIONS))
    if missing or extra:
        what = [f"lack {', '.join(missing)}"] if missing else []
        what += [f"have unknown keys {', '.join(map(repr, extra))}"] if extra else []
        raise FileFormatError(path, f"the run's options {' and '.join(what)}"[:300])
    valid, defaults = option_values(), TrainOptions()
    for key in RUN_OPTIONS:
        problem = _config_problem(key, saved[key], valid[key], getattr(defaults, key) is None)
        if problem is not None:
            raise FileFormatError(path, problem[:300])
    return saved


# --- the run directory ------------------------------------------------------------------------
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
    from .plots import RUN_FIGURES

    os.makedirs(out, exist_ok=True)
    for name in (*RESULT_FILES, *RUN_FIGURES, FILENAME):  # glassnet plot's figures of the old run too
        with contextlib.suppress(FileNotFoundError):
            os.remove(os.path.join(out, name))
    write_atomic(os.path.join(out, "config.json"), json.dumps(config, indent=2).encode())


def resume_options(
    run_dir: str, options: TrainOptions | None, given: set[str], out: str | None
) -> TrainOptions:
    """The options of the run in ``run_dir`` (its config.json); options the caller set
    (``given``, whatever their value) must agree with them, since the resumed run is the same run."""
    path = os.path.join(run_dir, "config.json")
    if not os.path.exists(path):
        raise FileNotFoundError(
            f"{path}: not found; --resume takes the --out directory of a glassnet train run"
        )
    saved = read_run_config(path)
    differ = []
    for key in sorted(given & set(RUN_OPTIONS)):
        if getattr(options, key) != saved[key]:
            was = "default (the preset's)" if saved[key] is None else repr(saved[key])
            differ.append(
                f"--{key.replace('_', '-')} {getattr(options, key)} differs from the resumed run's {was}"
            )
    if differ:
        raise ValueError(f"{'; '.join(differ)} ({path}); --resume continues the run as it was configured")
    if out is not None and os.path.realpath(out) != os.path.realpath(run_dir):  # run/ and ./run are run
        raise ValueError(f"--out {out}: a resumed run writes to its own directory {run_dir}")
    return TrainOptions(**saved)


class TrainTime(Callback):
    """Seconds of training a run has cost, across resumes. Its state travels in the
    checkpoint, so a resumed run adds its time to that spent up to the checkpoint it continues
    from (work after that checkpoint is redone, and counted once)."""

    def __init__(self, clock: Callable[[], float] = time.perf_counter) -> None:
        self.clock, self.before, self.start = clock, 0.0, None

    def on_train_begin(self, logs):
        self.before, self.start = 0.0, self.clock()

    @property
    def seconds(self) -> float:
        return self.before + (0.0 if self.start is None else self.clock() - self.start)

    def state_dict(self) -> dict:
        return {"seconds": self.seconds}

    def load_state_dict(self, state: dict) -> None:
        seconds = state["seconds"]
        if not (is_number(seconds) and 0 <= seconds < math.inf):
            raise ValueError(f"'seconds' must be a finite number >= 0, got {str(seconds)[:40]}")
        self.before, self.start = float(seconds), self.clock()


# --- preparing a run ----------------------------------------------------------------------------
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


def prepare(o: TrainOptions) -> Training:
    """Merge the options over the preset's recipe, check every combination the parser cannot,
    load the data and build the model and optimizer, all without writing anything: a run that
    cannot start fails here, before it could disturb the directory it was pointed at."""
    from . import data, models
    from .train import predict

    preset = models.PRESETS[o.model]
    optimizer, patience = _or(o.optimizer, preset.optimizer), _or(o.patience, preset.patience)
    rng = np.random.default_rng(o.seed)
    train, test = load_dataset(o.dataset, o.data_dir)
    classes = int(train.y.max()) + 1  # of the whole training set: a split may leave out the top class
    val = None
    if o.val_fraction > 0:
        try:
            train, val = data.train_val_split(train, o.val_fraction, rng)
        except ValueError as e:
            raise ValueError(f"--val-fraction {o.val_fraction}: {e}") from None
    elif o.patience:  # typed, > 0: early stopping needs a validation set to watch
        raise ValueError(
            f"--patience {o.patience}: early stopping needs a validation set (--val-fraction > 0)"
        )
    try:  # and one example forward, in eval mode (no random numbers drawn): fit would fail on it
        model = models.build(o.model, rng, train.x.shape[1:], classes)
        predict(model, train.x[:1])
    except ValueError as e:
        raise ValueError(
            f"--model {o.model} does not fit {o.dataset}'s examples of shape {train.x.shape[1:]}: {e}"
        ) from None
    for metric in metric_list(o.metrics) or []:
        k = int(metric[3:]) if metric.startswith("top") else 0
        if k >= classes:  # the true class is always among the top k of k classes
            raise ValueError(f"--metrics {metric}: K must be below the {classes} classes of {o.dataset}")
    lr = _or(o.lr, preset.lr)
    opt = make_optimizer(optimizer, model.parameters(), lr, momentum_for(optimizer, o.momentum, preset))
    # a mirrored garment is the same garment; a mirrored digit is not always a digit (2, 3, 7):
    # a preset's flips are for Fashion-MNIST, and on the digit sets only --flip turns them on
    flip_default = preset.flip and o.dataset not in DIGIT_DATASETS
    shift, flip = _or(o.shift, preset.shift), _or(o.flip, flip_default)
    augment = data.Augment(shift, flip) if shift or flip else None
    if augment is not None:  # on two examples, with a generator of its own: the run's is untouched
        try:
            augment(train.x[:2], np.random.default_rng(0))
        except ValueError as e:
            raise ValueError(f"--shift/--flip: {e}") from None
    if o.tensorboard:
        if os.path.exists(o.tensorboard) and not os.path.isdir(o.tensorboard):
            raise NotADirectoryError(
                f"--tensorboard {o.tensorboard}: a file, not a directory for event files"
            )
        try:  # what the TensorBoard callback imports when training begins
            import tensorboardX  # noqa: F401
        except ModuleNotFoundError as e:
            if e.name != "tensorboardX":
                raise
            raise ImportError(
                "--tensorboard needs tensorboardX: pip install 'glassnet[tensorboard]'"
            ) from None
    return Training(preset, _or(o.epochs, preset.epochs), _or(o.batch_size, preset.batch_size), lr,
                    _or(o.l2, preset.l2), optimizer, patience, o.schedule or preset.schedule or "none",
                    rng, train, val, test, classes, model, opt, augment)  # fmt: skip


# --- running it -----------------------------------------------------------------------------------
@dataclass
class RunResult:
    """What a run reached: its directory, test metrics, epochs and training seconds (across
    resumes); ``session`` the seconds of this call's training, None for a run finished before."""

    out: str
    test: dict
    epochs: int
    seconds: float
    session: float | None = None
    resumed: bool = False
    rank: int = 0  # under mpiexec, the process's rank: only rank 0 evaluates, writes and reports

    def line(self) -> str:
        """The one-line summary ``glassnet train`` prints."""
        seconds = f"{self.seconds:.0f} s"
        if self.resumed and self.session is not None:
            seconds += f", {self.session:.0f} s of it in this resume"
        more = "".join(f"test {k}: {v:.4f}  " for k, v in self.test.items() if k not in ("accuracy", "loss"))
        return (
            f"test accuracy: {100 * self.test['accuracy']:.2f}%  test loss: {self.test['loss']:.4f}  {more}"
            f"({self.epochs} epoch{'' if self.epochs == 1 else 's'}, {seconds}); "
            f"saved {self.out}/model.safetensors"
        )


def finished_result(out: str) -> RunResult:
    """What a finished run reached, from its model file's metadata (nothing is rewritten)."""
    from .errors import FileFormatError
    from .io import load_metadata

    path = os.path.join(out, "model.safetensors")
    meta = load_metadata(path)
    test, epochs, seconds = meta.get("test"), meta.get("epochs_run"), meta.get("train_seconds")
    numbers = (
        isinstance(test, dict)
        and all(isinstance(test.get(k), (int, float)) for k in ("accuracy", "loss"))
        and isinstance(epochs, int)
        and isinstance(seconds, (int, float))
    )
    if not numbers:
        raise FileFormatError(path, "its metadata lacks the run's test result, epochs_run or train_seconds")
    return RunResult(out, test, epochs, seconds)


def train_run(
    options: TrainOptions | None,
    out: str | None = None,
    *,
    resume: str | None = None,
    overwrite: bool = False,
    given: set[str] = frozenset(),
    say: Callable[[str], None] = lambda line: None,
    clock: Callable[[], float] = time.perf_counter,
) -> RunResult:
    """Train a run into ``out`` (default ``runs/model``), or continue the one in ``resume``.

    ``given`` names the options the caller set (a resumed run refuses any that differ from its
    config.json, whatever their value); ``say`` receives the status lines (``glassnet train``
    prints them); ``clock`` times the run. A finished run given to ``resume`` is not trained
    again: its result is read back. Nothing in the directory changes before the options are
    checked, the data is loaded and the model built.

    Under ``mpiexec -n K`` (K > 1) the run is data-parallel (``glassnet.distributed``): every
    rank trains on its shard of each batch; rank 0 alone writes the run directory and reports
    (the others return a result with ``test`` empty). An error on any rank ends the job.
    """
    from .distributed import from_environment

    dist = from_environment()
    if dist is None:
        return _train_run(options, out, resume, overwrite, given, say, clock, None)
    try:
        return _train_run(options, out, resume, overwrite, given, say if dist.rank == 0 else _silent, clock,
                          dist)  # fmt: skip
    except BaseException as e:
        dist.failed(e)  # MPI_Abort: a rank stopping alone would leave the others waiting
        raise


def _silent(line: str) -> None:
    pass


def _train_run(options, out, resume, overwrite, given, say, clock, dist) -> RunResult:
    rank = 0 if dist is None else dist.rank
    if resume:
        if overwrite:
            raise ValueError("--overwrite discards a run and --resume continues it: give one of the two")
        options, out = resume_options(resume, options, given, out), resume
        if is_finished(run_files(out)):
            say(f"glassnet: {out} is a finished run; nothing to resume")
            # rewriting its files would change nothing but their times
            return replace(finished_result(out), rank=rank)
    else:
        if out == "":  # an unset shell variable: not the default directory without a word
            raise ValueError(
                "--out: empty; give the run's directory (default runs/model when --out is left out)"
            )
        options, out = options or TrainOptions(), out or "runs/model"
        if os.path.exists(out) and not os.path.isdir(out):
            raise NotADirectoryError(f"--out {out}: a file, not a directory for the run")
        if not overwrite:
            refuse_to_replace(out)
    t = prepare(options)
    from .checkpoint import FILENAME

    resume_from = out if resume and os.path.exists(os.path.join(out, FILENAME)) else None
    if resume and resume_from is None:  # killed before its first checkpoint: nothing to resume
        say(f"glassnet: {out} has no checkpoint yet; starting the run from the beginning")
    if dist is not None:  # every rank has checked the directory before rank 0 writes to it
        dist.comm.Barrier()
    if resume_from is None and rank == 0:
        start_run_dir(out, {k: getattr(options, k) for k in RUN_OPTIONS})
    timer, flow, cbs = _callbacks(options, t, out, clock, writes=rank == 0)
    if dist is not None:
        from .distributed import describe_shards

        ranks = f"; {dist.size} ranks (MPI), {describe_shards(t.batch_size, dist.size)}"
    else:
        ranks = ""
    say(
        f"glassnet: training {options.model} on {options.dataset} ({t.train.n} train, "
        f"{0 if t.val is None else t.val.n} validation, {t.test.n} test examples), {t.optimizer} lr={t.lr}, "
        f"batch {t.batch_size}, up to {t.epochs} epochs, seed {options.seed}"
        + (f", {t.augment!r}" if t.augment else "")
        + (f", each batch in {options.shards} parts on threads" if options.shards > 1 else "")
        + ranks
        + (f"; resuming from {resume_from}" if resume_from else "")
    )
    from .regularizers import L2
    from .train import fit

    scheduler = make_scheduler(t.opt, t.schedule, t.epochs, t.preset.warmup)
    start = clock()
    history = fit(t.model, t.preset.loss(), t.opt, t.train, t.epochs, t.batch_size, t.val, cbs,
                  regularizer=L2(t.l2) if t.l2 else None, rng=t.rng, augment=t.augment, scheduler=scheduler,
                  checkpoint=out, checkpoint_every=options.checkpoint_every,
                  resume_from=resume_from, metrics=metric_list(options.metrics),
                  distributed=dist, shards=options.shards)  # fmt: skip
    session = clock() - start
    if rank != 0:  # rank 0 evaluates and writes the results
        return RunResult(out, {}, len(history.epoch), timer.seconds, session, resume_from is not None, rank)
    test = save_results(options, t, out, history, timer.seconds, flow)
    return RunResult(out, test, len(history.epoch), timer.seconds, session, resume_from is not None)


def metric_list(text: str | None) -> list[str] | None:
    """--metrics' names ("top5,macro_f1"), or None."""
    return None if not text else text.split(",")


def make_scheduler(opt, schedule: str, epochs: int, warmup: int = 0):
    """The run's learning-rate schedule: cosine annealing over the epochs (``"cosine"``) or a
    constant rate (``"none"``), after ``warmup`` epochs of linear warm-up from lr / 10 (a
    transformer's first steps, with Adam's second moments still near zero, are too large)."""
    from .schedules import CosineAnnealingLR, LinearWarmup

    warmup = min(warmup, epochs - 1) if epochs > 1 else 0
    # built before the warm-up, so that it records the optimizer's own rate (LinearWarmup's rule)
    after = CosineAnnealingLR(opt, epochs - warmup) if schedule == "cosine" else None
    return LinearWarmup(opt, warmup, after=after) if warmup else after


def _callbacks(
    o: TrainOptions, t: Training, out: str, clock, writes: bool = True
) -> tuple[TrainTime, object, list[Callback]]:
    """The run's callbacks, in the order its checkpoint records their state; without ``writes``
    (an MPI rank other than 0) none that writes a file."""
    from .callbacks import CSVLogger, EarlyStopping
    from .diagnostics import GradientFlow

    timer = TrainTime(clock)
    cbs: list[Callback] = [CSVLogger(os.path.join(out, "metrics.csv"))] * writes + [timer]
    flow = GradientFlow() if o.gradient_flow else None
    if flow is not None:
        cbs.append(flow)
    if o.tensorboard and writes:
        from .tensorboard import TensorBoard

        cbs.append(TensorBoard(o.tensorboard, gradient_flow=flow))
    if t.val is not None and t.patience > 0:
        cbs.append(EarlyStopping("val_loss", patience=t.patience, restore_best=True))
    return timer, flow, cbs


def save_results(o: TrainOptions, t: Training, out: str, history, seconds: float, flow) -> dict:
    """model.safetensors (weights and metadata), then history.json, the mark of a finished run."""
    from .callbacks import atomic_write_text
    from .io import save
    from .metrics import Confusion
    from .train import evaluate

    # the test set's confusion matrix (for `glassnet plot`) from evaluate's own forward pass
    confusion = Confusion()
    result = evaluate(t.model, t.preset.loss(), t.test, metrics=[*(metric_list(o.metrics) or []), confusion],
                      shards=o.shards)  # fmt: skip
    result.pop(confusion.name)
    metadata = {
        "dataset": o.dataset,
        "model": o.model,
        "input_shape": list(t.train.x.shape[1:]),
        "classes": t.classes,
        "seed": o.seed,
        "epochs_run": len(history.epoch),
        "train_seconds": round(seconds, 1),
        "test": result,
    }
    if flow is not None:  # before history.json: a finished run has all of its files
        atomic_write_text(os.path.join(out, "gradient_flow.json"), json.dumps(flow.to_dict()))
    save(t.model, os.path.join(out, "model.safetensors"), metadata=metadata)
    # what `glassnet plot` draws: curves, the test confusion matrix, the gradient flow
    atomic_write_text(
        os.path.join(out, "history.json"),
        json.dumps({**history.to_dict(), **metadata, "confusion": confusion.counts.tolist()}, indent=2),
    )
    return result


__all__ = ["RUN_OPTIONS", "RunResult", "TrainOptions", "TrainTime", "read_run_config", "train_run"]
