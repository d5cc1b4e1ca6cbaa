"""Callbacks for ``gn.fit``, Keras-style: every hook is a no-op unless overridden.

``fit`` sets ``callback.model``, ``callback.optimizer``, ``callback.loss_fn``,
``callback.train_data`` (a ``Dataset``) and ``callback.loop`` (a ``Loop``: the run's settings,
its callbacks and its live ``Position``) before ``on_train_begin``.
A callback ends training by setting ``self.stop_training = True``. ``on_train_end`` runs
however training ends (last epoch, early stop, an exception or Ctrl-C).

The hooks, in the order fit calls them: ``on_train_begin(logs)`` once (each callback resets
itself here, but for ``ModelCheckpoint``'s best value); ``on_epoch_begin(epoch)``;
``on_batch_end(batch, logs)`` after every optimizer step, with ``loop.position`` already
counting that step; ``on_epoch_end(epoch, logs)``; ``on_train_end(logs)``. ``fit`` calls them
in the order of its list: ``History`` first, then the caller's callbacks, then those its
options stand for (``ProgressBar``, ``TerminateOnNaN``, ``BackupAndRestore``).

A callback with state that a resumed run needs (``fit(..., resume_from=...)``) returns it from
``state_dict()`` as a flat dict of JSON values and NumPy arrays, and takes it back in
``load_state_dict(state)``. ``load_state_dict`` raises ``ValueError`` for a state it cannot use:
it comes from a file. Restoring is itself a callback's work (``BackupAndRestore``): in its
``on_train_begin``, after every earlier callback has reset itself, it loads their state and
replaces ``loop.position`` with where the checkpoint stood, and ``fit`` starts from there.
"""

from __future__ import annotations

import csv
import io as _io
import math
import os
import string
import sys
import time
from dataclasses import dataclass, field

import numpy as np

from . import metrics as _metrics
from .module import check_arg, is_number


@dataclass
class Position:
    """Where a run stands: ``epoch`` epochs done, plus ``batch`` batches of the next one, after
    ``step`` optimizer steps in all.

    ``total`` and ``correct`` are that epoch's running loss sum and correct count so far,
    ``order`` its shuffled order (None without shuffling), ``logs`` the last finished epoch's
    metrics, and ``stopped`` whether a callback ended the run.
    """

    epoch: int = 0
    batch: int = 0
    step: int = 0
    total: float = 0.0
    correct: int = 0
    order: np.ndarray | None = None
    logs: dict = field(default_factory=dict)
    stopped: bool = False


@dataclass
class Loop:
    """What one ``fit`` call runs, for the callbacks that need more than the model.

    ``callbacks`` is fit's whole list (``History`` first); ``steps`` the batches per epoch;
    ``position`` is live: fit updates it after every step and epoch, and a callback that
    resumes a run replaces it in ``on_train_begin``. The rest are fit's arguments.
    """

    callbacks: list
    rng: np.random.Generator
    scheduler: object
    regularizer: object
    clip_norm: float | None
    batch_size: int
    shuffle: bool
    steps: int
    position: Position = field(default_factory=Position)


class Callback:
    stop_training = False
    loop: Loop | None = None

    def on_train_begin(self, logs: dict) -> None: ...
    def on_epoch_begin(self, epoch: int) -> None: ...
    def on_batch_end(self, batch: int, logs: dict) -> None: ...
    def on_epoch_end(self, epoch: int, logs: dict) -> None: ...
    def on_train_end(self, logs: dict) -> None: ...

    def state_dict(self) -> dict | None:
        """The state a resumed run needs; None: this callback has none."""
        return None

    def load_state_dict(self, state: dict) -> None: ...


def _check(ok: bool, what: str) -> None:
    if not ok:
        raise ValueError(what)


class History(Callback):
    """Per-epoch metrics: ``history.history["val_accuracy"][-1]``, ``history.epoch``."""

    def __init__(self) -> None:
        self.history: dict[str, list[float]] = {}
        self.epoch: list[int] = []

    def on_epoch_end(self, epoch, logs):
        self.epoch.append(epoch)
        for k, v in logs.items():
            self.history.setdefault(k, []).append(float(v))

    def to_dict(self) -> dict:
        return {"epoch": list(self.epoch), "history": {k: list(v) for k, v in self.history.items()}}

    def state_dict(self) -> dict:
        return self.to_dict()

    def load_state_dict(self, state: dict) -> None:
        epoch, history = state["epoch"], state["history"]
        _check(isinstance(epoch, list) and all(type(e) is int for e in epoch), "'epoch' must list integers")
        _check(
            isinstance(history, dict)
            and all(isinstance(v, list) and all(map(is_number, v)) for v in history.values()),
            "'history' must map names to lists of numbers",
        )
        self.epoch = [int(e) for e in epoch]
        self.history = {k: [float(x) for x in v] for k, v in history.items()}

    def __repr__(self) -> str:
        last = {k: round(v[-1], 4) for k, v in self.history.items()}
        return f"History(epochs={len(self.epoch)}, last={last})"


def _check_monitor(owner: str, monitor) -> str:
    if not isinstance(monitor, str):
        raise TypeError(f"{owner}: monitor must be the name of a logged metric (a str), got {monitor!r}")
    if not monitor:
        raise ValueError(f"{owner}: monitor must be the name of a logged metric, got an empty string")
    return monitor


def _check_bool(owner: str, name: str, value) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{owner}: {name} must be True or False, got {value!r}")
    return bool(value)


def _direction(monitor: str) -> str | None:
    """The way the metric fit logs as ``monitor`` (with or without "val_") improves, "min" or
    "max"; None for a name glassnet does not log itself."""
    name = monitor.removeprefix("val_")
    if name == "loss":
        return "min"
    if name in ("accuracy", _metrics.Confusion().name):  # Confusion logs its matrix's accuracy
        return "max"
    try:
        metric = _metrics.get(name)  # topK, macro_precision, macro_recall, macro_f1, mae, rmse
    except ValueError:
        return None
    if isinstance(metric, _metrics.MAE):  # MAE and RMSE: errors
        return "min"
    if isinstance(metric, (_metrics.TopKAccuracy, _metrics.MacroPrecision, _metrics.MacroRecall,
                           _metrics.MacroF1)):  # fmt: skip
        return "max"
    return None


def _mode_for(monitor: str, mode: str, owner: str = "EarlyStopping", needed: bool = True) -> str:
    """``mode``, with "auto" resolved as Keras 3 does: "min" for the loss and the errors (mae,
    rmse), "max" for accuracy, topK, macro_precision/recall/f1 and confusion, each with or
    without "val_"; any other name is refused (a custom metric may go either way), unless
    ``needed`` is False, and then "auto" is kept."""
    if mode not in ("auto", "min", "max"):
        raise ValueError(f"{owner}: mode must be 'auto', 'min' or 'max', got {mode!r}")
    if mode != "auto":
        return mode
    direction = _direction(monitor)
    if direction is None and needed:
        raise ValueError(
            f"{owner}: mode='auto' cannot tell whether monitor={monitor!r} should be minimized or "
            "maximized (it knows loss, mae and rmse: min; accuracy, topK, macro_precision, "
            "macro_recall, macro_f1 and confusion: max; each also with 'val_'); pass mode='min' or "
            "mode='max'"
        )
    return direction or mode


class EarlyStopping(Callback):
    """Stop when ``monitor`` has not improved by more than ``min_delta`` for ``patience`` epochs.

    ``monitor`` names a logged metric; ``patience`` is an integer >= 0, ``min_delta`` a finite
    number >= 0. ``mode`` is "min", "max" or "auto": as Keras 3, "auto" minimizes the loss, mae
    and rmse and maximizes accuracy, topK, macro_precision, macro_recall, macro_f1 and confusion
    (each also with "val_"), and refuses any other name: pass mode="min" or "max" for it.
    A value that is not finite (NaN) never counts as an improvement.

    With ``restore_best=True`` the best epoch's weights (and buffers) are copied back whenever
    training ends, also when it simply ran out of epochs (Keras restores only on an early stop).
    """

    def __init__(
        self,
        monitor: str = "val_loss",
        patience: int = 5,
        min_delta: float = 0.0,
        restore_best: bool = False,
        mode: str = "auto",
    ) -> None:
        owner = "EarlyStopping"
        self.monitor = _check_monitor(owner, monitor)
        self.patience = int(check_arg(owner, "patience", patience, lambda v: v >= 0, "an integer >= 0", int))
        self.min_delta = float(
            check_arg(owner, "min_delta", min_delta, lambda v: 0 <= v < math.inf, "a finite number >= 0")
        )
        self.restore_best = _check_bool(owner, "restore_best", restore_best)
        self.mode = _mode_for(monitor, mode, owner)
        self.best, self.best_epoch, self.best_state, self.wait = None, None, None, 0
        self.stopped_epoch = None

    def _improved(self, value: float) -> bool:
        if self.best is None:
            return True
        if self.mode == "min":
            return value < self.best - self.min_delta
        return value > self.best + self.min_delta

    def on_train_begin(self, logs):
        self.best, self.best_epoch, self.best_state, self.wait = None, None, None, 0
        self.stop_training, self.stopped_epoch = False, None

    def on_epoch_end(self, epoch, logs):
        if self.monitor not in logs:
            raise KeyError(
                f"EarlyStopping: monitor {self.monitor!r} is not among the logged metrics "
                f"{sorted(logs)} (validation metrics need val_data)"
            )
        value = float(logs[self.monitor])
        if math.isfinite(value) and self._improved(value):
            self.best, self.best_epoch, self.wait = value, epoch, 0
            if self.restore_best:
                self.best_state = {k: v.copy() for k, v in self.model.state_dict().items()}
        else:
            self.wait += 1
            if self.wait >= self.patience:
                self.stop_training, self.stopped_epoch = True, epoch

    def on_train_end(self, logs):
        if self.restore_best and self.best_state is not None:
            self.model.load_state_dict(self.best_state)

    def state_dict(self) -> dict:
        state = {"best": self.best, "best_epoch": self.best_epoch, "wait": self.wait,
                 "stop_training": self.stop_training, "stopped_epoch": self.stopped_epoch}  # fmt: skip
        for name, array in (self.best_state or {}).items():
            state[f"best_state/{name}"] = array
        return state

    def load_state_dict(self, state: dict) -> None:
        best, best_epoch, wait = state["best"], state["best_epoch"], state["wait"]
        _check(best is None or (is_number(best) and math.isfinite(best)), "'best' must be a finite number")
        for key in ("best_epoch", "stopped_epoch"):
            _check(
                state[key] is None or (type(state[key]) is int and state[key] >= 0),
                f"{key!r} must be an epoch",
            )
        _check(type(wait) is int and wait >= 0, "'wait' must be a count")
        _check(isinstance(state["stop_training"], bool), "'stop_training' must be true or false")
        arrays = {k.removeprefix("best_state/"): v for k, v in state.items() if k.startswith("best_state/")}
        if arrays or (self.restore_best and best is not None):
            own = self.model.state_dict()
            _check(set(arrays) == set(own), f"the best weights must name {sorted(own)}, got {sorted(arrays)}")
            for name, a in arrays.items():
                _check(
                    isinstance(a, np.ndarray) and a.shape == own[name].shape and a.dtype == own[name].dtype,
                    f"best weight {name!r} must be {own[name].dtype} {own[name].shape}",
                )
        self.best, self.best_epoch, self.wait = best, best_epoch, wait
        self.stop_training, self.stopped_epoch = state["stop_training"], state["stopped_epoch"]
        self.best_state = {k: a.copy() for k, a in arrays.items()} if arrays else None


def _check_path(owner: str, path) -> str:
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"{owner}: path must be a str or a path-like object, got {type(path).__name__}")
    path = os.fspath(path)
    if not isinstance(path, str) or not path:
        raise ValueError(f"{owner}: path must be a file name, got {path!r}")
    return path


def _check_folder(owner: str, path: str, folder: str) -> None:
    """Raise ``NotADirectoryError`` if ``folder`` (where ``path``'s files go) does not exist."""
    if folder and not os.path.isdir(folder):
        raise NotADirectoryError(f"{owner}: the folder {folder!r} of path {path!r} does not exist")


def _placeholders(owner: str, path: str) -> tuple[str, ...]:
    """The names ``path`` formats, checked as far as can be without the logs: plain names only,
    in the file name only, and their format specs valid for an integer epoch and float metrics."""
    try:
        parsed = list(string.Formatter().parse(path))
    except ValueError as e:
        raise ValueError(
            f"{owner}: path {path!r} is not a valid template ({e}); write a literal brace as {{{{ or }}}}"
        ) from None
    names: list[str] = []
    for i, (_, name, spec, _) in enumerate(parsed):
        if name is None:
            continue
        if name == "" or name.isdigit():
            raise ValueError(
                f"{owner}: path {path!r} has a positional placeholder {{{name}}}; name what goes there: "
                "{epoch} or a logged metric such as {val_loss:.3f} (a literal brace is {{ or }})"
            )
        if any(c in name for c in ".[]") or "{" in (spec or ""):
            raise ValueError(
                f"{owner}: path {path!r}: placeholder {{{name}}} must be a plain name, {{epoch}} or a "
                "logged metric, with a format spec of its own (no attributes, indices or nested fields)"
            )
        if any(os.sep in text or (os.altsep and os.altsep in text) for text, *_ in parsed[i + 1 :]):
            raise ValueError(
                f"{owner}: path {path!r}: placeholder {{{name}}} is in the folder; placeholders go in the "
                "file name only (the folder must exist when training begins)"
            )
        names.append(name)
    try:
        path.format(**_sample(names))
    except (ValueError, TypeError) as e:
        raise ValueError(
            f"{owner}: path {path!r} cannot be formatted ({e}); {{epoch}} is an integer and a "
            "metric a float, as in 'm_{epoch:02d}_{val_loss:.3f}.safetensors'"
        ) from None
    return tuple(dict.fromkeys(names))


def _sample(names) -> dict:
    return {name: 1 if name == "epoch" else 0.5 for name in names}


class ModelCheckpoint(Callback):
    """Save the model with ``gn.save`` (atomically) after each epoch, or only when
    ``monitor`` improves (``save_best_only=True``; a value that is not finite never does).

    ``path`` is formatted as Keras' ``filepath``: ``{epoch}`` is the epoch counted from 1, as the
    progress display counts, and ``{name}`` any metric logged for the epoch, each with a format
    spec if wanted: ``"m_{epoch:02d}_{val_loss:.3f}.safetensors"``. The template is checked when
    the callback is built (positional ``{}``, a spec that does not fit an integer epoch or a
    float metric, and placeholders in the folder are refused); the folder must exist when
    training begins (``NotADirectoryError``); a name that is not logged is a ``KeyError`` naming
    it and the logged names, at the end of the first epoch, before anything is written.

    ``mode`` is "min", "max" or "auto", which picks the direction from ``monitor``'s name as
    ``EarlyStopping`` does (needed only with ``save_best_only``). The best value so far is kept
    across ``fit`` calls, as Keras keeps it: training continued in a second call saves a model
    only when it beats the first call's best (build a new callback to start afresh); it is the
    one exception to the callbacks resetting themselves in ``on_train_begin``.
    """

    def __init__(
        self, path: str, monitor: str = "val_loss", save_best_only: bool = False, mode: str = "auto"
    ) -> None:
        owner = "ModelCheckpoint"
        self.path = _check_path(owner, path)
        self.names = _placeholders(owner, self.path)
        self.folder = os.path.dirname(self.path.format(**_sample(self.names)))
        self.monitor = _check_monitor(owner, monitor)
        self.save_best_only = _check_bool(owner, "save_best_only", save_best_only)
        self.mode, self.best = _mode_for(monitor, mode, owner, self.save_best_only), None

    def on_train_begin(self, logs):
        _check_folder("ModelCheckpoint", self.path, self.folder)
        if not self.names and os.path.isdir(self.path):
            raise IsADirectoryError(
                f"ModelCheckpoint: path {self.path!r} is a folder; give a file name in it"
            )

    def on_epoch_end(self, epoch, logs):
        from .io import save

        missing = [name for name in self.names if name != "epoch" and name not in logs]
        if missing:
            raise KeyError(
                f"ModelCheckpoint: path {self.path!r} has the placeholder {{{missing[0]}}}, which is not "
                f"logged; the names it can use are 'epoch' and the logged {sorted(logs)}"
            )
        value = logs.get(self.monitor)
        if self.save_best_only:
            if value is None:
                raise KeyError(f"ModelCheckpoint: monitor {self.monitor!r} not in {sorted(logs)}")
            value = float(value)
            if not math.isfinite(value):
                return
            better = self.best is None or (value < self.best if self.mode == "min" else value > self.best)
            if not better:
                return
            self.best = value
        values = {name: float(logs[name]) if is_number(logs[name]) else logs[name] for name in self.names
                  if name != "epoch"}  # fmt: skip
        save(
            self.model,
            self.path.format(**values, epoch=epoch + 1),
            metadata={"epoch": epoch + 1, "logs": logs},
        )

    def state_dict(self) -> dict:
        return {"best": None if self.best is None else float(self.best)}

    def load_state_dict(self, state: dict) -> None:
        best = state["best"]
        _check(best is None or (is_number(best) and math.isfinite(best)), "'best' must be a finite number")
        self.best = best


class CSVLogger(Callback):
    """Write one CSV row per epoch; the file is rewritten atomically after each epoch, so a
    crash never leaves a half-written line."""

    def __init__(self, path: str) -> None:
        self.path = _check_path("CSVLogger", path)
        self.rows: list[dict] = []

    def on_train_begin(self, logs):
        _check_folder("CSVLogger", self.path, os.path.dirname(self.path))
        self.rows = []

    def on_epoch_end(self, epoch, logs):
        self.rows.append({"epoch": epoch, **{k: float(v) for k, v in logs.items()}})
        fields = list(dict.fromkeys(k for row in self.rows for k in row))
        buf = _io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=fields)
        writer.writeheader()
        writer.writerows(self.rows)
        atomic_write_text(self.path, buf.getvalue())

    def state_dict(self) -> dict:
        return {"rows": self.rows}

    def load_state_dict(self, state: dict) -> None:
        rows = state["rows"]
        _check(
            isinstance(rows, list)
            and all(isinstance(r, dict) and all(map(is_number, r.values())) for r in rows),
            "'rows' must be a list of objects of numbers",
        )
        self.rows = [dict(r) for r in rows]


def atomic_write_text(path: str, text: str) -> None:
    from .io import write_atomic

    write_atomic(path, text.encode())


def _fmt(logs: dict) -> str:
    return " ".join(f"{k}={v:.4f}" for k, v in logs.items())


class ProgressBar(Callback):
    """A tqdm bar per epoch on a terminal; one compact line per epoch otherwise (logs, CI)."""

    def __init__(self, epochs: int, steps: int, stream=None) -> None:
        for name, value in (("epochs", epochs), ("steps", steps)):
            check_arg("ProgressBar", name, value, lambda v: v >= 0, "an integer >= 0", int)
        if stream is not None and not callable(getattr(stream, "write", None)):
            raise TypeError(
                f"ProgressBar: stream must be a text stream (with write), got {type(stream).__name__}"
            )
        self.epochs, self.steps = int(epochs), int(steps)
        self.stream = stream if stream is not None else sys.stderr
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.bar = None

    def on_epoch_begin(self, epoch):
        self.start = time.perf_counter()
        if self.tty:
            from tqdm import tqdm

            self.bar = tqdm(
                total=self.steps,
                desc=f"epoch {epoch + 1}/{self.epochs}",
                file=self.stream,
                leave=True,
                dynamic_ncols=True,
            )

    def on_batch_end(self, batch, logs):
        if self.bar is not None and (batch % 20 == 0 or batch == self.steps - 1):
            self.bar.n = batch + 1
            self.bar.set_postfix(loss=f"{logs['loss']:.4f}", refresh=True)

    def on_epoch_end(self, epoch, logs):
        seconds = time.perf_counter() - self.start
        if self.bar is not None:
            self.bar.set_postfix_str(_fmt(logs))
            self.bar.close()
            self.bar = None
        else:
            print(
                f"epoch {epoch + 1}/{self.epochs} {_fmt(logs)} time={seconds:.1f}s",
                file=self.stream,
                flush=True,
            )

    def on_train_end(self, logs):
        if self.bar is not None:
            self.bar.close()


__all__ = [
    "CSVLogger",
    "Callback",
    "EarlyStopping",
    "History",
    "Loop",
    "ModelCheckpoint",
    "Position",
    "ProgressBar",
]
