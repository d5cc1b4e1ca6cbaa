"""The training loop: ``train_step``, ``fit``, ``evaluate``, ``predict``."""

from __future__ import annotations

import math
import os

import numpy as np

from .anomaly import AnomalyError, TerminateOnNaN, checked_step
from .callbacks import Callback, History, ProgressBar
from .checkpoint import Position, Run, checkpoint_path, read_checkpoint, remove_temporaries
from .data import Dataset, as_dataset, batch_slices, check_inputs
from .losses import BCEWithLogitsLoss, HingeLoss, Loss

# evaluating and model_dtype live in module (the tools below training use them); re-exported here
from .module import Module, ShapeError, as_rng, check_arg, evaluating, model_dtype
from .optim import Optimizer, clip_grad_norm
from .walk import leaves


def train_step(
    model: Module,
    loss_fn: Loss,
    optimizer: Optimizer,
    x: np.ndarray,
    y: np.ndarray,
    regularizer=None,
    clip_norm: float | None = None,
) -> float:
    """One gradient step on one mini-batch; returns the loss (with the penalty, if any).

    Forward through every layer, BP1 at the loss, BP2 back through every layer (accumulating
    BP3/BP4 into each ``p.grad``), then the optimizer's update. The input needs no gradient,
    so ``backward_params`` skips the first layer's dx. A non-finite loss raises
    ``FloatingPointError`` before the parameters are touched. ``optimizer`` must hold the
    model's parameters (see ``fit``).
    """
    check_optimizer(model, optimizer, "train_step")
    x = np.asarray(x).astype(model_dtype(model), copy=False)
    return _step(model, loss_fn, optimizer, x, y, regularizer, clip_norm)[0]


def _step(model, loss_fn, optimizer, x, y, regularizer, clip_norm) -> tuple[float, np.ndarray]:
    optimizer.zero_grad()
    pred = model.forward(x)
    loss = loss_fn.forward(pred, y)
    model.backward_params(loss_fn.backward())
    if regularizer is not None:
        loss += regularizer.penalty(optimizer.params)
        regularizer.backward(optimizer.params)
    if not math.isfinite(loss):
        raise FloatingPointError(f"the training loss became {loss}")
    if clip_norm is not None:
        clip_grad_norm(optimizer.params, clip_norm)
    optimizer.step()
    return loss, pred


def check_optimizer(model: Module, optimizer: Optimizer, owner: str = "fit") -> None:
    """Refuse an optimizer that holds a parameter that is not ``model``'s (by identity).

    Built over another model (or over a copy: ``gn.load`` makes new parameters) it would step
    weights the forward pass never reads, and training would change nothing without a word. A
    subset of the model's parameters is fine: that is how one trains some layers only."""
    own = {id(p) for p in model.parameters()}
    foreign = [p for p in optimizer.params if id(p) not in own]
    if foreign:
        raise ValueError(
            f"{owner}: optimizer holds {len(foreign)} of its {len(optimizer.params)} parameters that are "
            f"not this model's (the first: {foreign[0].name} of shape {foreign[0].data.shape}); build it "
            "from model.parameters() (or a subset of them) of the model being trained"
        )


def check_finite_output(model: Module, out: np.ndarray, owner: str) -> None:
    """Raise ``FloatingPointError`` if the model's output holds NaN or inf, naming the first
    layer whose parameters do (a diverged run's weights) or, if none, saying the forward
    overflowed. Without it a NaN model "predicts" class 0 (argmax of NaNs) without a word."""
    if np.isfinite(out).all():
        return
    layers = dict(leaves(model))
    for name, p in model.named_parameters():
        if not np.isfinite(p.data).all():
            layer = layers.get(name.rpartition(".")[0])
            kind = f" ({type(layer).__name__})" if layer is not None else ""
            raise FloatingPointError(
                f"{owner}: the model's output holds NaN/inf: parameter {name}{kind} holds "
                f"{np.count_nonzero(~np.isfinite(p.data))} NaN/inf values (weights of a diverged run?)"
            )
    raise FloatingPointError(
        f"{owner}: the model's output holds NaN/inf, though every parameter is finite: the forward "
        "pass overflowed (inputs far larger than the model was trained on?)"
    )


def _forward(model: Module, x: np.ndarray, name: str) -> np.ndarray:
    """``model.forward(x)``, a shape error naming the argument ``x`` came from."""
    try:
        return model.forward(x)
    except ShapeError as e:
        raise ShapeError(
            f"{name}: x has examples of shape {x.shape[1:]}, which the model cannot take: {e}"
        ) from None


def _probe(model: Module, ds: Dataset, name: str, loss_fn: Loss) -> np.ndarray:
    """Run one example forward and through the loss before any work is done (a shape error
    shows at once, naming the argument), and check that integer labels fit the model's
    outputs; returns that output."""
    with evaluating(model):
        out = _forward(model, ds.x[:1], name)
    if ds.y.ndim == 1 and ds.y.dtype.kind in "iu" and out.ndim == 2 and out.shape[1] > 1:
        low, high, classes = int(ds.y.min()), int(ds.y.max()), out.shape[1]
        if low < 0 or high >= classes:
            raise ValueError(
                f"{name}: label {low if low < 0 else high} out of range for the model's "
                f"{classes} outputs (0..{classes - 1})"
            )
    try:
        loss_fn.forward(out, ds.y[:1])
    except ValueError as e:  # ShapeError is one
        raise type(e)(
            f"{name}: the loss cannot take the model's output (shape {out.shape[1:]} per example) with "
            f"targets y of shape {ds.y.shape[1:]} per example and dtype {ds.y.dtype}: {e}"
        ) from None
    return out


def _counter(loss_fn: Loss, pred: np.ndarray, y: np.ndarray):
    """A function counting a batch's correct predictions, chosen once from an example batch;
    None where accuracy means nothing (regression)."""
    if pred.ndim == 2 and pred.shape[1] > 1:
        if y.ndim == 1 and y.dtype.kind in "iu":
            return lambda p, t: np.count_nonzero(p.argmax(axis=1) == t)
        if y.shape == pred.shape:
            return lambda p, t: np.count_nonzero(p.argmax(axis=1) == t.argmax(axis=1))
        return None
    if isinstance(loss_fn, (BCEWithLogitsLoss, HingeLoss)):
        return lambda p, t: np.count_nonzero((p.reshape(-1) > 0) == (t.reshape(-1) > 0))
    return None


def fit(
    model: Module,
    loss_fn: Loss,
    optimizer: Optimizer,
    train_data,
    epochs: int = 1,
    batch_size: int = 32,
    val_data=None,
    callbacks: list[Callback] | None = None,
    regularizer=None,
    rng: np.random.Generator | int | None = None,
    shuffle: bool = True,
    scheduler=None,
    clip_norm: float | None = None,
    augment=None,
    verbose: bool = True,
    detect_anomaly: bool = False,
    checkpoint: str | os.PathLike | None = None,
    checkpoint_every: int | None = None,
    resume_from: str | os.PathLike | None = None,
) -> History:
    """Train ``model`` for ``epochs`` passes over ``train_data`` (an ``(x, y)`` pair).

    ``rng`` drives shuffling, ``augment`` (a callable ``(x_batch, rng) -> x_batch`` such as
    ``gn.data.Augment(shift=2, flip=True)``, applied to training batches only) and every
    stochastic layer (``model.set_rng(rng)``), so a run is reproducible from one seed (a
    ``np.random.Generator``, an integer seed, or None for a fresh unseeded generator).
    ``optimizer`` must be built over the model's parameters, or a subset of them to train
    some layers only; one holding a parameter of another model raises ``ValueError``.
    Returns a ``History`` of per-epoch ``loss``, ``accuracy`` and, with ``val_data``,
    ``val_loss`` and ``val_accuracy``. A ``batch_size`` larger than the data set means one
    batch of all of it per epoch (as Keras).

    ``detect_anomaly=True`` (or a ``TerminateOnNaN`` callback) checks every value of every
    step and raises ``gn.anomaly.AnomalyError`` at the first NaN/inf, naming the layer, the
    phase, the batch's example indices and the shapes (slower; off, it costs nothing).

    ``checkpoint`` (a file, or a directory to hold ``checkpoint.safetensors``) is written
    atomically after every epoch and, with ``checkpoint_every=N``, after every N steps; it
    holds all a run needs to go on (see ``glassnet.checkpoint``). ``resume_from`` continues
    the run a checkpoint was written by: call ``fit`` with the same model architecture,
    optimizer and schedule types, data, ``batch_size``, ``shuffle`` and callbacks (the
    checkpoint restores their state, the weights and the generator's state), and the run
    ends with the same weights, bit for bit, as if it had never stopped. ``epochs`` is the
    total, counted from the run's start.
    """
    _check_count("epochs", epochs, 0)
    _check_count("batch_size", batch_size, 1)
    check_optimizer(model, optimizer)
    rng = as_rng(rng, "fit")
    if clip_norm is not None:
        check_arg("fit", "clip_norm", clip_norm, lambda v: 0 < v < math.inf, "a number > 0 or None")
    if checkpoint_every is not None:
        _check_count("checkpoint_every", checkpoint_every, 1)
        if checkpoint is None:
            raise ValueError("fit: checkpoint_every needs checkpoint= (where to write)")
    dtype = model_dtype(model)
    train = as_dataset(train_data, "train_data", dtype)
    val = as_dataset(val_data, "val_data", dtype) if val_data is not None else None
    count = _counter(loss_fn, _probe(model, train, "train_data", loss_fn), train.y[:1])
    if val is not None:
        _probe(model, val, "val_data", loss_fn)
    model.set_rng(rng)
    history = History()
    slices = batch_slices(train.n, batch_size)
    cbs: list[Callback] = [history, *(callbacks or [])]
    run = None
    if checkpoint is not None or resume_from is not None:
        run = Run(model, optimizer, rng, scheduler, history, callbacks or [], train, batch_size, shuffle,
                  regularizer, clip_norm)  # fmt: skip
        if checkpoint is not None:
            checkpoint = checkpoint_path(checkpoint)
            remove_temporaries(checkpoint)  # left by a write that a crash cut short
    # read (and check) the checkpoint before anything starts: a bad file fails at once
    snapshot = None if resume_from is None else read_checkpoint(resume_from)
    every = checkpoint_every or 0
    if verbose:
        cbs.append(ProgressBar(epochs, len(slices)))
    for cb in cbs:
        cb.model, cb.optimizer, cb.loss_fn, cb.train_data = model, optimizer, loss_fn, train
    checked = detect_anomaly or any(isinstance(cb, TerminateOnNaN) for cb in cbs)
    step_fn = checked_step if checked else _step
    batch_cbs = [cb for cb in cbs if type(cb).on_batch_end is not Callback.on_batch_end]
    logs: dict = {}
    try:
        for cb in cbs:
            cb.on_train_begin(logs)
        # restored after on_train_begin, which resets the callbacks
        start = Position() if snapshot is None else run.restore(snapshot)
        step, logs = start.step, start.logs
        for epoch in range(start.epoch, start.epoch if start.stopped else epochs):
            for cb in cbs:
                cb.on_epoch_begin(epoch)
            model.train()
            if epoch == start.epoch and start.batch:  # a resumed epoch goes on in its own order
                order, total, correct, first = start.order, start.total, start.correct, start.batch
            else:
                # gather each batch by index: a whole-epoch shuffled copy would be a fresh
                # 190 MB allocation per epoch for Fashion-MNIST, page-faulted in every time
                order = rng.permutation(train.n) if shuffle else None
                total, correct, first = 0.0, 0, 0
            for b in range(first, len(slices)):
                sl = slices[b]
                idx = sl if order is None else order[sl]
                xb, yb = train.x[idx], train.y[idx]
                if augment is not None:
                    xb = augment(xb, rng)
                try:
                    loss, pred = step_fn(model, loss_fn, optimizer, xb, yb, regularizer, clip_norm)
                except AnomalyError as e:
                    raise e.at(epoch, b, idx, xb.shape) from None
                except FloatingPointError as e:
                    raise FloatingPointError(
                        f"fit: {e} at epoch {epoch + 1}, batch {b + 1} (the parameters were not "
                        f"updated by it); try a smaller learning rate (lr={optimizer.lr}) or clip_norm; "
                        "fit(..., detect_anomaly=True) names the layer and phase where it starts"
                    ) from None
                total += loss * (sl.stop - sl.start)
                if count is not None:
                    correct += count(pred, yb)
                for cb in batch_cbs:
                    cb.on_batch_end(b, {"loss": loss})
                step += 1
                if every and step % every == 0 and b + 1 < len(slices):  # the epoch's end saves anyway
                    run.save(checkpoint, Position(epoch, b + 1, step, total, correct, order, logs))
            logs = {"loss": float(total / train.n)}
            if count is not None:
                logs["accuracy"] = float(correct / train.n)
            if val is not None:
                logs.update({f"val_{k}": v for k, v in evaluate(model, loss_fn, val).items()})
            if scheduler is not None:
                logs["lr"] = optimizer.lr
                scheduler.step()
            for cb in cbs:
                cb.on_epoch_end(epoch, logs)
            stopped = any(cb.stop_training for cb in cbs)
            if checkpoint is not None:
                run.save(checkpoint, Position(epoch + 1, 0, step, logs=logs, stopped=stopped))
            if stopped:
                break
    finally:
        for cb in cbs:
            cb.on_train_end(logs)
    return history


def _check_count(name: str, value, low: int, owner: str = "fit") -> None:
    check_arg(owner, name, value, lambda v: v >= low, f"an integer >= {low}", int)


def evaluate(model: Module, loss_fn: Loss, data, batch_size: int = 1000) -> dict[str, float]:
    """Mean loss (and accuracy, for classification) over ``data`` in eval mode, as floats.

    A model whose output holds NaN/inf raises ``FloatingPointError`` naming the first
    parameter that does."""
    _check_count("batch_size", batch_size, 1, "evaluate")
    ds = as_dataset(data, "data", model_dtype(model))
    _probe(model, ds, "data", loss_fn)
    total, correct, count = 0.0, 0, None
    with evaluating(model):
        for i, sl in enumerate(batch_slices(ds.n, batch_size)):
            pred = model.forward(ds.x[sl])
            check_finite_output(model, pred, "evaluate")
            total += loss_fn.forward(pred, ds.y[sl]) * (sl.stop - sl.start)
            if i == 0:
                count = _counter(loss_fn, pred, ds.y[sl])
            if count is not None:
                correct += count(pred, ds.y[sl])
    # plain floats (a NumPy scalar would print as np.float64(...) and is not JSON's float)
    out = {"loss": float(total / ds.n)}
    if count is not None:
        out["accuracy"] = float(correct / ds.n)
    return out


def predict(model: Module, x: np.ndarray, batch_size: int = 1000) -> np.ndarray:
    """The model's outputs for ``x`` (a float array, one row per example; no rows gives no
    outputs), in eval mode, batch by batch. A model whose output holds NaN/inf raises
    ``FloatingPointError`` naming the first parameter that does."""
    _check_count("batch_size", batch_size, 1, "predict")
    x = check_inputs(x, "predict", model_dtype(model))
    with evaluating(model):
        if len(x) == 0:
            return _forward(model, x, "predict")
        outs = [_forward(model, x[sl], "predict") for sl in batch_slices(len(x), batch_size)]
    out = np.concatenate(outs)
    check_finite_output(model, out, "predict")
    return out


__all__ = ["Dataset", "evaluate", "evaluating", "fit", "model_dtype", "predict", "train_step"]
