"""Callbacks for ``gn.fit``, Keras-style: every hook is a no-op unless overridden.

``fit`` sets ``callback.model``, ``callback.optimizer``, ``callback.loss_fn``,
``callback.train_data`` (a ``Dataset``) and ``callback.loop`` (a ``Loop``: the run's settings,
its callbacks and its live ``Position``) before ``on_train_begin``.
A callback ends training by setting ``self.stop_training = True``. ``on_train_end`` runs
however training ends (last epoch, early stop, an exception or Ctrl-C).

The hooks, in the order fit calls them: ``on_train_begin(logs)`` once (each callback resets
itself here); ``on_epoch_begin(epoch)``; ``on_batch_end(batch, logs)`` after every optimizer
step, with ``loop.position`` already counting that step; ``on_epoch_end(epoch, logs)``;
``on_train_end(logs)``. ``fit`` calls them in the order of its list: ``History`` first, then
the caller's callbacks, then those its options stand for (``ProgressBar``, ``TerminateOnNaN``,
``BackupAndRestore``).

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
import sys
import time
from dataclasses import dataclass, field

import numpy as np

from .module import is_number


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


def _mode_for(monitor: str, mode: str) -> str:
    if mode != "auto":
        if mode not in ("min", "max"):
            raise ValueError(f"mode must be 'auto', 'min' or 'max', got {mode!r}")
        return mode
    return "max" if "acc" in monitor else "min"


class EarlyStopping(Callback):
    """Stop when ``monitor`` has not improved by ``min_delta`` for ``patience`` epochs.

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
        self.monitor, self.patience, self.min_delta = monitor, int(patience), abs(float(min_delta))
        self.restore_best, self.mode = restore_best, _mode_for(monitor, mode)
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


class ModelCheckpoint(Callback):
    """Save the model with ``gn.save`` (atomically) after each epoch, or only when
    ``monitor`` improves (``save_best_only=True``). ``path`` may contain ``{epoch}``, counted
    from 1 as the progress display counts (Keras' convention)."""

    def __init__(
        self, path: str, monitor: str = "val_loss", save_best_only: bool = False, mode: str = "auto"
    ) -> None:
        self.path, self.monitor, self.save_best_only = str(path), monitor, save_best_only
        self.mode, self.best = _mode_for(monitor, mode), None

    def on_epoch_end(self, epoch, logs):
        from .io import save

        value = logs.get(self.monitor)
        if self.save_best_only:
            if value is None:
                raise KeyError(f"ModelCheckpoint: monitor {self.monitor!r} not in {sorted(logs)}")
            better = self.best is None or (value < self.best if self.mode == "min" else value > self.best)
            if not better:
                return
            self.best = value
        save(self.model, self.path.format(epoch=epoch + 1), metadata={"epoch": epoch + 1, "logs": logs})

    def state_dict(self) -> dict:
        return {"best": None if self.best is None else float(self.best)}

    def load_state_dict(self, state: dict) -> None:
        _check(state["best"] is None or is_number(state["best"]), "'best' must be a number")
        self.best = state["best"]


class CSVLogger(Callback):
    """Write one CSV row per epoch; the file is rewritten atomically after each epoch, so a
    crash never leaves a half-written line."""

    def __init__(self, path: str) -> None:
        self.path = str(path)
        self.rows: list[dict] = []

    def on_train_begin(self, logs):
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
        self.epochs, self.steps = epochs, steps
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
