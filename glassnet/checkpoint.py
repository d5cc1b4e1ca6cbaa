"""Checkpoints: everything a training run needs to continue exactly where it stopped.

The ``BackupAndRestore`` callback writes one after every epoch and, with ``every=N``, after
every N optimizer steps, and continues the run one was written by; ``fit(..., checkpoint=PATH,
checkpoint_every=N, resume_from=PATH)`` stands for it. A resumed run ends with the same
weights, bit for bit, as one that never stopped, because the checkpoint holds every number the
rest of the run depends on:

    model/<name>        every parameter and buffer (BatchNorm running statistics)
    optimizer/<key>     the optimizer's step count, learning rate and state vectors
    order               the current epoch's shuffled order (a mid-epoch checkpoint only)
    callbacks/<i>/<key> a callback's arrays (EarlyStopping's best weights)

and, in the header's JSON (``"glassnet_checkpoint"``), where the run is (epoch, batch within
it, step, the epoch's running loss sum and correct count, the last epoch's logs, whether a
callback stopped it), the random generator's state (``bit_generator.state``: plain integers),
the learning-rate schedule's state, the history, each callback's state, and the run's
configuration (batch size, shuffling, the model, the optimizer with its options, the schedule,
the regularizer, clip_norm, a CRC of the training data), which a resume checks against the call
that resumes. ``fit`` draws every random number
of a run (shuffling, augmentation, dropout: ``model.set_rng(rng)``) from one generator, so one
state is all of it.

The file is a safetensors file written atomically (``io.write_atomic``: a temporary file,
flush, fsync, rename, fsync of the directory): a crash, a kill or a full disk at any moment
leaves the previous checkpoint as it was. Its header also holds a CRC-32 of every tensor and of
the metadata (``io.serialise``), verified on every read: a changed bit is refused, naming the
tensor, instead of resuming into other weights. Nothing is pickled; reading a checkpoint runs no
code, and anything wrong with it is a ``FileFormatError`` naming the file.
"""

from __future__ import annotations

import contextlib
import copy
import json
import math
import os
import zlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .callbacks import Callback, Position
from .data import Dataset
from .errors import FileFormatError, WriteError
from .io import FORMAT, check_format, read_file, serialise, shorten, write_atomic
from .module import Module, check_arg, is_int, is_number
from .optim import Optimizer
from .schedules import Schedule

KEY = "glassnet_checkpoint"
FILENAME = "checkpoint.safetensors"  # the name used inside a run directory
_GENERATORS = ("PCG64", "PCG64DXSM", "MT19937", "Philox", "SFC64")


def checkpoint_path(path: str | os.PathLike) -> str:
    """``path`` itself, or ``path/checkpoint.safetensors`` when ``path`` is a directory."""
    path = os.fspath(path)
    return os.path.join(path, FILENAME) if os.path.isdir(path) else path


def _writable_checkpoint(path: str | os.PathLike) -> str:
    """``checkpoint_path(path)``, checked when training begins rather than at the first save an
    epoch later: a path ending in a separator is a directory, made if need be (as Keras's
    BackupAndRestore makes its backup_dir); any other path's folder must exist."""
    text = os.fspath(path)
    if text.endswith((os.sep, "/")) and not os.path.exists(text):
        try:
            os.makedirs(text)
        except OSError as e:
            raise WriteError(text, e) from None
    file = checkpoint_path(text)
    folder = os.path.dirname(file) or "."
    if not os.path.isdir(folder):
        error = NotADirectoryError if os.path.exists(folder) else FileNotFoundError
        what = "is a file" if os.path.exists(folder) else "does not exist"
        raise error(f"checkpoint={text}: its folder {folder} {what} (give an existing folder, or a new one/)")
    return file


def remove_temporaries(path: str | os.PathLike) -> list[str]:
    """Delete the temporary files that writes of ``path`` killed midway left beside it
    (``.<name>.*.tmp``, ``io.write_atomic``'s names; beside a link's target, where
    ``write_atomic`` writes through a symbolic link); returns their names."""
    directory, name = os.path.split(os.path.realpath(path))
    removed = []
    with contextlib.suppress(OSError):
        for entry in os.listdir(directory):
            if entry.startswith(f".{name}.") and entry.endswith(".tmp"):
                with contextlib.suppress(OSError):
                    os.unlink(os.path.join(directory, entry))
                    removed.append(entry)
    return removed


@dataclass
class Snapshot:
    """A checkpoint file read and checked for its structure, not yet applied to anything."""

    path: str
    meta: dict
    tensors: dict[str, np.ndarray]


class Run:
    """The live objects of one ``fit`` call, which a checkpoint saves and restores."""

    def __init__(
        self,
        model: Module,
        optimizer: Optimizer,
        rng: np.random.Generator,
        scheduler: Schedule | None,
        history: Callback,
        callbacks: Sequence[Callback],
        train: Dataset,
        batch_size: int,
        shuffle: bool,
        regularizer=None,
        clip_norm: float | None = None,
    ) -> None:
        self.model, self.optimizer, self.rng, self.scheduler = model, optimizer, rng, scheduler
        self.history, self.callbacks = history, list(callbacks)
        # the most correct predictions an epoch can count: one per label (N T for a class per
        # position, a language model's tokens), one per example otherwise
        self.n_labels = int(train.y.size) if train.y.dtype.kind in "iu" else int(train.n)
        # what the schedule sets as it goes (OneCycleLR's momentum or beta1) is its state, restored
        # with it, not an option the two runs must share
        driven = {"lr", "t", getattr(scheduler, "momentum_attr", None)}
        self.config = {
            "batch_size": int(batch_size),
            "shuffle": bool(shuffle),
            "n_train": int(train.n),
            "data_crc32": _crc32(*(train.x if isinstance(train.x, tuple) else (train.x,)), train.y),
            "model": repr(model),
            "optimizer": type(optimizer).__name__,
            # momentum, betas, eps, weight decay, ...: a resume with other values would silently
            # differ (lr, t and what the schedule drives are state, restored from the checkpoint)
            "optimizer_options": {
                k: v
                for k, v in sorted(vars(optimizer).items())
                if type(v) in (bool, int, float, str) and k not in driven
            },  # fmt: skip
            "scheduler": None if scheduler is None else type(scheduler).__name__,
            "regularizer": None if regularizer is None else repr(regularizer),
            "clip_norm": None if clip_norm is None else float(clip_norm),
        }

    # --- saving -----------------------------------------------------------------------------
    def save(self, path: str, pos: Position) -> None:
        """Write the checkpoint at ``pos`` to ``path``, atomically (``WriteError`` on failure)."""
        tensors = {f"model/{k}": v for k, v in self.model.state_dict().items()}
        tensors.update({f"optimizer/{k}": v for k, v in self.optimizer.state_dict().items()})
        if pos.order is not None and pos.batch > 0:
            tensors["order"] = pos.order
        callbacks = []
        for i, cb in enumerate([self.history, *self.callbacks]):
            state = cb.state_dict()
            if state is None:
                continue
            plain = {}
            for k, v in state.items():
                if isinstance(v, np.ndarray):
                    tensors[f"callbacks/{i}/{k}"] = v
                else:
                    plain[k] = v
            callbacks.append({"index": i, "type": type(cb).__name__, "state": plain})
        meta = {
            "position": {
                "epoch": pos.epoch,
                "batch": pos.batch,
                "step": pos.step,
                "total": pos.total,
                "correct": pos.correct,
                "logs": {k: float(v) for k, v in pos.logs.items()},
                "stopped": pos.stopped,
            },
            "rng": self.rng.bit_generator.state,
            "scheduler": None if self.scheduler is None else self.scheduler.state_dict(),
            "callbacks": callbacks,
            "config": self.config,
        }
        header = {"glassnet_format": FORMAT, KEY: json.dumps(meta, default=_plain)}
        write_atomic(path, serialise(tensors, header))  # with CRC-32s, which read_checkpoint verifies

    # --- restoring --------------------------------------------------------------------------
    def restore(self, snap: Snapshot) -> Position:
        """Load ``snap`` into the live objects (after ``on_train_begin``, which resets callbacks)
        and return where the run continues. Anything that does not fit is a FileFormatError."""
        path, meta, tensors = snap.path, snap.meta, snap.tensors

        def bad(problem: str) -> FileFormatError:
            return FileFormatError(path, problem)

        for key, value in self.config.items():
            if meta["config"].get(key) != value:
                raise bad(
                    f"the checkpoint was written by a run with {key}={shorten(meta['config'].get(key))}, "
                    f"this one has {key}={shorten(value)}; an exact resume needs the same"
                )
        # check everything that can be checked before changing anything
        pos = self._position(bad, meta["position"], tensors.get("order"))
        model, opt = _group(tensors, "model/"), _group(tensors, "optimizer/")
        _check_arrays(path, "model", self.model.state_dict(), model)
        _check_arrays(path, "optimizer", self.optimizer.state_dict(), opt)
        _check_finite(path, tensors)
        t, lr = opt["t"], opt["lr"]
        if t.dtype.kind != "i" or int(t) < 0 or lr.dtype.kind != "f" or not 0 <= float(lr) < math.inf:
            raise bad(f"optimizer state: t={t} must be a count and lr={lr} a finite float >= 0")
        if (meta["scheduler"] is None) != (self.scheduler is None):
            raise bad("the checkpoint and this run differ in having a learning-rate schedule")

        # the rest is checked as it is loaded: a refusal puts everything back as it was, or
        # the caller's model would keep the file's weights (and on_train_end would copy
        # EarlyStopping's best weights from the file into it)
        before = self._snapshot()
        try:
            self.model.load_state_dict(model)
            self.optimizer.load_state_dict(opt)
            if self.scheduler is not None:
                try:
                    self.scheduler.load_state_dict(meta["scheduler"])
                except (KeyError, ValueError, TypeError, AttributeError, OverflowError) as e:
                    raise bad(f"scheduler state: {type(e).__name__}: {shorten(str(e))}") from None
                if not 0 <= self.optimizer.lr < math.inf:
                    raise bad(f"the scheduler state gives the learning rate {self.optimizer.lr}")
            self._restore_rng(bad, meta["rng"])
            self._restore_callbacks(bad, meta["callbacks"], tensors)
        except FileFormatError:
            self._put_back(before)
            raise
        return pos

    def _snapshot(self) -> tuple:
        return (
            {k: np.array(v) for k, v in self.model.state_dict().items()},
            {k: np.array(v) for k, v in self.optimizer.state_dict().items()},
            None if self.scheduler is None else copy.deepcopy(self.scheduler.state_dict()),
            copy.deepcopy(self.rng.bit_generator.state),
            [(cb, copy.deepcopy(cb.state_dict())) for cb in [self.history, *self.callbacks]],
        )

    def _put_back(self, before: tuple) -> None:
        model, opt, scheduler, rng, callbacks = before
        self.model.load_state_dict(model)
        if self.scheduler is not None:
            self.scheduler.load_state_dict(scheduler)
        self.optimizer.load_state_dict(opt)  # after the schedule, which sets lr
        self.rng.bit_generator.state = rng
        for cb, state in callbacks:
            if state is not None:
                cb.load_state_dict(state)

    def _restore_rng(self, bad, state) -> None:
        expected = type(self.rng.bit_generator).__name__
        if not isinstance(state, dict) or state.get("bit_generator") not in _GENERATORS:
            raise bad(f"'rng' must be the state of one of {', '.join(_GENERATORS)}")
        if state["bit_generator"] != expected:
            raise bad(
                f"the checkpoint's generator is {state['bit_generator']}, fit's rng is {expected}: "
                f"pass rng=np.random.Generator(np.random.{state['bit_generator']}())"
            )
        try:
            self.rng.bit_generator.state = state  # NumPy checks every field and its range
        except (KeyError, ValueError, TypeError, OverflowError) as e:
            raise bad(f"'rng' is not a valid {expected} state: {shorten(str(e))}") from None

    def _restore_callbacks(self, bad, saved: list, tensors: dict[str, np.ndarray]) -> None:
        live = [
            (i, cb) for i, cb in enumerate([self.history, *self.callbacks]) if cb.state_dict() is not None
        ]
        have = [(i, type(cb).__name__) for i, cb in live]
        want = [(entry.get("index"), entry.get("type")) for entry in saved]
        if have != want:
            raise bad(
                f"the checkpoint holds the state of callbacks {want}, this run has {have} (index, type)"
            )
        for (i, cb), entry in zip(live, saved):
            state = entry["state"]
            if not isinstance(state, dict):
                raise bad(f"callback #{i} ({type(cb).__name__}): its state must be an object")
            state = {**state, **_group(tensors, f"callbacks/{i}/")}
            try:
                cb.load_state_dict(state)
            except (KeyError, ValueError, TypeError, OverflowError) as e:
                raise bad(
                    f"callback #{i} ({type(cb).__name__}): {type(e).__name__}: {shorten(str(e))}"
                ) from None

    def _position(self, bad, p: dict, order: np.ndarray | None) -> Position:
        n, batches = self.config["n_train"], math.ceil(self.config["n_train"] / self.config["batch_size"])
        for key in ("epoch", "batch", "step", "correct"):
            if not is_int(p.get(key)) or p[key] < 0:
                raise bad(f"position.{key} must be a non-negative integer, got {shorten(p.get(key))}")
        if not _is_finite(p.get("total")):
            raise bad(f"position.total must be a finite number, got {shorten(p.get('total'))}")
        if not isinstance(p.get("stopped"), bool):
            raise bad("position.stopped must be true or false")
        logs = p.get("logs")
        if not isinstance(logs, dict) or not all(map(_is_float, logs.values())):
            raise bad("position.logs must map names to numbers")
        if p["batch"] >= batches or p["correct"] > self.n_labels:
            raise bad(f"position batch={p['batch']}, correct={p['correct']} is impossible for {n} examples")
        if p["batch"] and self.config["shuffle"]:
            if order is None:
                raise bad("a mid-epoch checkpoint of a shuffled run must hold the epoch's 'order'")
            if order.shape != (n,) or order.dtype != np.int64 or not _is_permutation(order):
                raise bad(
                    f"'order' must be a permutation of 0..{n - 1} (int64), got {order.dtype} {order.shape}"
                )
        else:
            order = None
        return Position(p["epoch"], p["batch"], p["step"], float(p["total"]), p["correct"], order,
                        {k: float(v) for k, v in logs.items()}, p["stopped"])  # fmt: skip


class BackupAndRestore(Callback):
    """Checkpoint the run to ``path`` after every epoch and, with ``every=N``, after every N
    optimizer steps; with ``resume_from``, continue the run that checkpoint was written by.

    ``fit(..., checkpoint=PATH, checkpoint_every=N, resume_from=PATH)`` makes one of these (as
    Keras' callback of the same name, which saves the weights only; this one saves everything in
    the module docstring, so a resumed run is exact). ``path`` may be a directory, which then
    holds ``checkpoint.safetensors``. Either may be None: no writing, or no resuming.

    It restores in ``on_train_begin``, after the callbacks before it have reset themselves, and
    saves in ``on_epoch_end``, after they have taken the epoch in: so it must come after every
    callback with state (``fit`` refuses a run where it does not; the one fit makes is last),
    and a stateless callback after it that stops training is not recorded as having stopped it.
    """

    def __init__(
        self,
        path: str | os.PathLike | None = None,
        every: int | None = None,
        resume_from: str | os.PathLike | None = None,
    ) -> None:
        if every is not None:
            check_arg("BackupAndRestore", "every", every, lambda v: v >= 1, "an integer >= 1", int)
            if path is None:
                raise ValueError("BackupAndRestore: every needs a path (where to write)")
        if path is None and resume_from is None:  # it would do nothing, without a word
            raise ValueError("BackupAndRestore: give a path to write checkpoints to, resume_from, or both")
        self.path, self.every, self.resume_from = path, every or 0, resume_from
        self.run: Run | None = None

    def on_train_begin(self, logs):
        loop = self.loop
        later = loop.callbacks[loop.callbacks.index(self) + 1 :]
        stateful = [type(cb).__name__ for cb in later if cb.state_dict() is not None]
        if stateful:
            raise ValueError(
                f"BackupAndRestore must come after every callback with state; {', '.join(stateful)} "
                "follow it (their state would be saved before they took an epoch in)"
            )
        self.file = None if self.path is None else _writable_checkpoint(self.path)
        if self.file is not None:
            remove_temporaries(self.file)  # left by a write that a crash cut short
        # read (and check) the file before building the run: a bad file fails at once
        snapshot = None if self.resume_from is None else read_checkpoint(self.resume_from)
        self.run = Run(self.model, self.optimizer, loop.rng, loop.scheduler, loop.callbacks[0],
                       loop.callbacks[1:], self.train_data, loop.batch_size, loop.shuffle,
                       loop.regularizer, loop.clip_norm)  # fmt: skip
        if snapshot is not None:
            loop.position = self.run.restore(snapshot)

    def on_batch_end(self, batch, logs):
        pos = self.loop.position
        # the epoch's last batch is left to on_epoch_end, which saves anyway
        if self.every and pos.step % self.every == 0 and pos.batch < self.loop.steps:
            self.run.save(self.file, pos)

    def on_epoch_end(self, epoch, logs):
        if self.file is not None:
            stopped = any(cb.stop_training for cb in self.loop.callbacks)
            self.run.save(
                self.file, Position(epoch + 1, 0, self.loop.position.step, logs=logs, stopped=stopped)
            )


# --- reading ------------------------------------------------------------------------------------
def read_checkpoint(path: str | os.PathLike) -> Snapshot:
    """Read a checkpoint and check its structure; ``Run.restore`` checks it against a run.

    ``path`` may be a run directory holding ``checkpoint.safetensors``. Raises
    ``FileNotFoundError`` if there is none and ``FileFormatError`` for anything wrong in it.
    """
    path = checkpoint_path(path)
    metadata, tensors = read_file(path, tensors=True)
    if KEY not in metadata:
        raise FileFormatError(path, f"not a glassnet checkpoint (no {KEY!r} in its metadata)")
    check_format(path, metadata)
    try:
        meta = json.loads(metadata[KEY])
    except (ValueError, RecursionError) as e:
        raise FileFormatError(path, f"{KEY} metadata is not valid JSON: {shorten(str(e))}") from None
    kinds = {
        "position": dict,
        "rng": dict,
        "callbacks": list,
        "config": dict,
        "scheduler": (dict, type(None)),
    }
    if not isinstance(meta, dict) or set(meta) != set(kinds):
        raise FileFormatError(path, f"{KEY} must be an object with exactly the keys {sorted(kinds)}")
    for key, kind in kinds.items():
        if not isinstance(meta[key], kind):
            raise FileFormatError(path, f"{KEY}.{key} has the wrong type ({type(meta[key]).__name__})")
    for entry in meta["callbacks"]:
        if not isinstance(entry, dict) or set(entry) != {"index", "type", "state"}:
            raise FileFormatError(path, "each entry of callbacks must have the keys index, type, state")
    return Snapshot(path, meta, tensors)


def _group(tensors: dict[str, np.ndarray], prefix: str) -> dict[str, np.ndarray]:
    return {k.removeprefix(prefix): v for k, v in tensors.items() if k.startswith(prefix)}


def _check_arrays(path: str, what: str, targets: dict, arrays: dict) -> None:
    """The same names, shapes and dtypes as ``targets``, or a FileFormatError (a silent cast
    would break the bit-for-bit promise)."""
    missing, unexpected = set(targets) - set(arrays), set(arrays) - set(targets)
    if missing or unexpected:
        raise FileFormatError(
            path,
            f"{what} state does not match this run: missing {shorten(sorted(missing))}, "
            f"unexpected {shorten(sorted(unexpected))}",
        )
    for name, target in targets.items():
        value, target = arrays[name], np.asarray(target)
        if value.shape != target.shape or value.dtype != target.dtype:
            raise FileFormatError(
                path,
                f"{what} entry {name!r} is {value.dtype} {value.shape}, "
                f"the run has {target.dtype} {target.shape}",
            )


def _check_finite(path: str, tensors: dict[str, np.ndarray]) -> None:
    """Every float of the run's state is finite: fit never writes NaN (a step that makes one
    is refused before the update), so a NaN or inf is damage, and resuming from it would only
    fail later, far from its cause."""
    for name, value in tensors.items():
        if value.dtype.kind in "fc" and not np.isfinite(value).all():
            raise FileFormatError(path, f"tensor {name!r} holds NaN or infinite values")


def _plain(v):
    """NumPy scalars as the Python numbers JSON knows (a count may be an ``np.int64``)."""
    if isinstance(v, (np.integer, np.floating, np.bool_)):
        return v.item()
    raise TypeError(f"a checkpoint cannot hold a {type(v).__name__}: {shorten(v)}")


def _crc32(*arrays: np.ndarray) -> int:
    crc = 0
    for a in arrays:
        crc = zlib.crc32(str((a.dtype.str, a.shape)).encode(), crc)
        crc = zlib.crc32(np.ascontiguousarray(a).data, crc)
    return crc


def _is_finite(v) -> bool:
    """A number that is a finite float (an integer too large for a float is not)."""
    try:
        return is_number(v) and math.isfinite(v)
    except OverflowError:
        return False


def _is_float(v) -> bool:
    """A float (a validation loss may be inf or NaN), or an integer a float can hold."""
    return isinstance(v, float) or _is_finite(v)


def _is_permutation(order: np.ndarray) -> bool:
    n = len(order)
    if n == 0:
        return True
    if order.min() < 0 or order.max() >= n:
        return False
    return bool((np.bincount(order, minlength=n) == 1).all())


__all__ = [
    "FILENAME",
    "BackupAndRestore",
    "Position",
    "Run",
    "Snapshot",
    "checkpoint_path",
    "read_checkpoint",
    "remove_temporaries",
]
