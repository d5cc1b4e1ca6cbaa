"""The training loop: ``train_step``, ``fit``, ``evaluate``, ``predict``."""

from __future__ import annotations

import math
from contextlib import contextmanager

import numpy as np

from .anomaly import AnomalyError, TerminateOnNaN, checked_step
from .callbacks import Callback, History, ProgressBar
from .data import Dataset, as_dataset, batch_slices
from .losses import BCEWithLogitsLoss, HingeLoss, Loss
from .module import Module
from .optim import Optimizer, clip_grad_norm


def model_dtype(model: Module):
    params = model.parameters()
    return params[0].data.dtype if params else np.float32


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
    ``FloatingPointError`` before the parameters are touched.
    """
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


def _probe(model: Module, ds: Dataset, name: str) -> np.ndarray:
    """Run one example forward before any training (a shape error shows at once) and check
    that integer labels fit the model's outputs; returns that output."""
    with evaluating(model):
        out = model.forward(ds.x[:1])
    if ds.y.ndim == 1 and ds.y.dtype.kind in "iu" and out.ndim == 2 and out.shape[1] > 1:
        low, high, classes = int(ds.y.min()), int(ds.y.max()), out.shape[1]
        if low < 0 or high >= classes:
            raise ValueError(
                f"{name}: label {low if low < 0 else high} out of range for the model's "
                f"{classes} outputs (0..{classes - 1})"
            )
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
    rng: np.random.Generator | None = None,
    shuffle: bool = True,
    scheduler=None,
    clip_norm: float | None = None,
    augment=None,
    verbose: bool = True,
    detect_anomaly: bool = False,
) -> History:
    """Train ``model`` for ``epochs`` passes over ``train_data`` (an ``(x, y)`` pair).

    ``rng`` drives shuffling, ``augment`` (a callable ``(x_batch, rng) -> x_batch`` such as
    ``gn.data.Augment(shift=2, flip=True)``, applied to training batches only) and every
    stochastic layer (``model.set_rng(rng)``), so a run is reproducible from one seed.
    Returns a ``History`` of per-epoch ``loss``, ``accuracy`` and, with ``val_data``,
    ``val_loss`` and ``val_accuracy``.

    ``detect_anomaly=True`` (or a ``TerminateOnNaN`` callback) checks every value of every
    step and raises ``gn.anomaly.AnomalyError`` at the first NaN/inf, naming the layer, the
    phase, the batch's example indices and the shapes (slower; off, it costs nothing).
    """
    if epochs < 0 or batch_size < 1:
        raise ValueError(f"fit: epochs must be >= 0 and batch_size >= 1, got {epochs}, {batch_size}")
    dtype = model_dtype(model)
    train = as_dataset(train_data, "train_data", dtype)
    val = as_dataset(val_data, "val_data", dtype) if val_data is not None else None
    count = _counter(loss_fn, _probe(model, train, "train_data"), train.y[:1])
    if val is not None:
        _probe(model, val, "val_data")
    rng = rng if rng is not None else np.random.default_rng()
    model.set_rng(rng)
    history = History()
    slices = batch_slices(train.n, batch_size)
    cbs: list[Callback] = [history, *(callbacks or [])]
    if verbose:
        cbs.append(ProgressBar(epochs, len(slices)))
    for cb in cbs:
        cb.model, cb.optimizer, cb.loss_fn, cb.train_data = model, optimizer, loss_fn, train
    checked = detect_anomaly or any(isinstance(cb, TerminateOnNaN) for cb in cbs)
    step = checked_step if checked else _step
    batch_cbs = [cb for cb in cbs if type(cb).on_batch_end is not Callback.on_batch_end]
    logs: dict = {}
    try:
        for cb in cbs:
            cb.on_train_begin(logs)
        for epoch in range(epochs):
            for cb in cbs:
                cb.on_epoch_begin(epoch)
            model.train()
            # gather each batch by index: a whole-epoch shuffled copy would be a fresh
            # 190 MB allocation per epoch for Fashion-MNIST, page-faulted in every time
            order = rng.permutation(train.n) if shuffle else None
            total, correct = 0.0, 0
            for b, sl in enumerate(slices):
                idx = sl if order is None else order[sl]
                xb, yb = train.x[idx], train.y[idx]
                if augment is not None:
                    xb = augment(xb, rng)
                try:
                    loss, pred = step(model, loss_fn, optimizer, xb, yb, regularizer, clip_norm)
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
            logs = {"loss": total / train.n}
            if count is not None:
                logs["accuracy"] = correct / train.n
            if val is not None:
                logs.update({f"val_{k}": v for k, v in evaluate(model, loss_fn, val).items()})
            if scheduler is not None:
                logs["lr"] = optimizer.lr
                scheduler.step()
            for cb in cbs:
                cb.on_epoch_end(epoch, logs)
            if any(cb.stop_training for cb in cbs):
                break
    finally:
        for cb in cbs:
            cb.on_train_end(logs)
    return history


@contextmanager
def evaluating(model: Module):
    """Run a block in eval mode, then put every module back in the mode it had."""
    modes = [m.training for m in model.modules()]
    model.eval()
    try:
        yield model
    finally:
        for m, mode in zip(model.modules(), modes):
            m.training = mode


def evaluate(model: Module, loss_fn: Loss, data, batch_size: int = 1000) -> dict[str, float]:
    """Mean loss (and accuracy, for classification) over ``data`` in eval mode."""
    ds = as_dataset(data, "data", model_dtype(model))
    total, correct, count = 0.0, 0, None
    with evaluating(model):
        for i, sl in enumerate(batch_slices(ds.n, batch_size)):
            pred = model.forward(ds.x[sl])
            total += loss_fn.forward(pred, ds.y[sl]) * (sl.stop - sl.start)
            if i == 0:
                count = _counter(loss_fn, pred, ds.y[sl])
            if count is not None:
                correct += count(pred, ds.y[sl])
    out = {"loss": total / ds.n}
    if count is not None:
        out["accuracy"] = correct / ds.n
    return out


def predict(model: Module, x: np.ndarray, batch_size: int = 1000) -> np.ndarray:
    """The model's outputs for ``x``, in eval mode, batch by batch."""
    x = np.asarray(x)
    if x.dtype.kind not in "fiub":
        raise TypeError(f"predict: x must be numeric, got dtype {x.dtype}")
    x = x.astype(model_dtype(model), copy=False)
    with evaluating(model):
        if len(x) == 0:
            return model.forward(x)
        outs = [model.forward(x[sl]) for sl in batch_slices(len(x), batch_size)]
    return np.concatenate(outs)


__all__ = ["Dataset", "evaluate", "fit", "predict", "train_step"]
