"""The training loop: ``train_step``, ``fit``, ``evaluate``, ``predict``."""

from __future__ import annotations

import contextlib
import copy
import functools
import inspect
import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from . import metrics as M
from .anomaly import AnomalyError, TerminateOnNaN, checked_step
from .callbacks import Callback, History, Loop, ProgressBar
from .checkpoint import BackupAndRestore
from .data import Dataset, as_dataset, batch_slices, check_inputs, inputs_of, take_rows
from .losses import BCEWithLogitsLoss, HingeLoss, Loss, class_last_hint

# evaluating and model_dtype live in module (the tools below training use them); re-exported here
from .module import (
    Module,
    ShapeError,
    as_rng,
    cast_inputs,
    check_arg,
    check_modules_once,
    evaluating,
    integer_inputs,
    model_dtype,
    no_grad,
    one_output,
    takes_integers,
)
from .optim import Optimizer, clip_grad_norm
from .schedules import ReduceLROnPlateau, Schedule
from .shards import Shards
from .walk import leaves


def train_step(
    model: Module,
    loss_fn: Loss,
    optimizer: Optimizer,
    x: np.ndarray,
    y: np.ndarray,
    regularizer=None,
    clip_norm: float | None = None,
    shards: Shards | None = None,
) -> float:
    """One gradient step on one mini-batch; returns the loss (with the penalty, if any).

    Forward through every layer, BP1 at the loss, BP2 back through every layer (accumulating
    BP3/BP4 into each ``p.grad``), then the optimizer's update. The input needs no gradient,
    so ``backward_params`` skips the first layer's dx. A non-finite loss raises
    ``FloatingPointError`` before the parameters are touched. ``optimizer`` must hold the
    model's parameters (see ``fit``). ``shards``: a ``gn.Shards(model, k)`` runs the step's
    forward and backward on k parts of the batch in threads (``fit``'s ``shards`` option).
    """
    check_optimizer(model, optimizer, "train_step")
    _check_reduction(loss_fn, "train_step")
    if shards is not None and shards.model is not model:
        raise ValueError("train_step: shards was built over another model than the one given")
    x = cast_inputs(model, x)
    return _step(model, loss_fn, optimizer, x, y, regularizer, clip_norm, shards=shards)[0]


def _step(
    model, loss_fn, optimizer, x, y, regularizer, clip_norm, reduce=None, shards=None
) -> tuple[float, np.ndarray]:
    """One step; ``reduce`` (distributed training) averages the gradients over the processes
    and returns the whole batch's loss, before the loss is checked and the gradients clipped;
    ``shards`` (``glassnet.shards``) runs forward and backward on parts of the batch in threads.
    ``x``: an array, or a tuple of arrays for a model with several inputs."""
    optimizer.zero_grad()
    # with shards, the batch's parts forward in threads, their outputs stacked
    pred = one_output(model.forward(*inputs_of(x)) if shards is None else shards.forward(x), "train_step")
    loss = loss_fn.forward(pred, y)
    (model if shards is None else shards).backward_params(loss_fn.backward())
    if regularizer is not None:
        loss += regularizer.penalty(optimizer.params)
        regularizer.backward(optimizer.params)
    if reduce is not None:
        loss = reduce(loss)
    if not math.isfinite(loss):
        ignored = getattr(getattr(loss_fn, "loss", loss_fn), "ignore_index", None)  # WeightedLoss's own
        y = np.asarray(y)
        if ignored is not None and y.dtype.kind in "iu" and y.size and (y == ignored).all():
            raise ValueError(
                f"a batch whose every label is ignore_index ({ignored}) has no loss to learn from (its mean "
                "is 0/0, NaN as in PyTorch): use a larger batch_size, or leave such examples out"
            )
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


def _forward(model: Module, x, name: str, shards: Shards | None = None) -> np.ndarray:
    """``model.forward(x)`` (``model.forward(*x)`` for a tuple of inputs; on ``shards``' parts
    where given), a shape error naming the argument ``x`` came from."""
    try:
        return model.forward(*inputs_of(x)) if shards is None else shards.forward(x)
    except ShapeError as e:
        shapes = " and ".join(str(a.shape[1:]) for a in inputs_of(x))
        raise ShapeError(
            f"{name}: x has examples of shape {shapes}, which the model cannot take: {e}"
        ) from None


def _probe(model: Module, ds: Dataset, name: str, loss_fn: Loss) -> np.ndarray:
    """Run one example forward and through the loss before any work is done (a shape error
    shows at once, naming the argument), and check that integer labels fit the model's
    outputs; returns that output."""
    with evaluating(model):
        out = _forward(model, take_rows(ds.x, slice(0, 1)), name)
    out = one_output(out, "evaluate" if name == "data" else "fit")
    if ds.y.dtype.kind in "iu" and ds.y.ndim > 1 and not loss_fn.position_labels:
        raise ValueError(
            f"{name}: integer labels y of shape {ds.y.shape[1:]} per example are a class per position, "
            f"which {type(loss_fn).__name__} does not take (CrossEntropyLoss does, with logits "
            "(N, C, d1, ...)); pass float targets for a regression"
        )
    ignored = getattr(loss_fn, "ignore_index", None)  # CrossEntropyLoss's: not a class
    labels = ds.y if ignored is None or ds.y.dtype.kind not in "iu" else ds.y[ds.y != ignored]
    if ds.y.dtype.kind in "iu" and out.ndim == ds.y.ndim + 1 and out.shape[1] > 1 and labels.size:
        low, high, classes = int(labels.min()), int(labels.max()), out.shape[1]
        if low < 0 or high >= classes:
            hint = class_last_hint(out.shape, (len(out), *ds.y.shape[1:]))
            raise ValueError(
                f"{name}: label {low if low < 0 else high} out of range for the model's "
                f"{classes} outputs (0..{classes - 1}){hint}"
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
    None where accuracy means nothing (regression). With a class per position (labels
    (N, T), logits (N, C, T)) it counts correct positions: see ``_accuracy``. Labels equal to
    the loss's ``ignore_index`` (``CrossEntropyLoss``) are never counted."""
    ignored = getattr(loss_fn, "ignore_index", None)
    if y.dtype.kind in "iu" and ignored is not None:
        hits = lambda p, t: np.count_nonzero((p.argmax(axis=1) == t) & (t != ignored))  # noqa: E731
    else:
        hits = lambda p, t: np.count_nonzero(p.argmax(axis=1) == t)  # noqa: E731
    if pred.ndim > 2 and y.ndim == pred.ndim - 1 and y.dtype.kind in "iu" and pred.shape[1] > 1:
        return hits
    if pred.ndim == 2 and pred.shape[1] > 1:
        if y.ndim == 1 and y.dtype.kind in "iu":
            return hits
        if y.shape == pred.shape:
            return lambda p, t: np.count_nonzero(p.argmax(axis=1) == t.argmax(axis=1))
        return None
    if isinstance(loss_fn, (BCEWithLogitsLoss, HingeLoss)):
        return lambda p, t: np.count_nonzero((p.reshape(-1) > 0) == (t.reshape(-1) > 0))
    return None


# fit's keyword options and their defaults: the first six are the loop's settings, the rest
# stand for callbacks (see fit_options)
OPTIONS = {"rng": None, "shuffle": True, "regularizer": None, "clip_norm": None, "augment": None,
           "scheduler": None, "verbose": True, "detect_anomaly": False, "checkpoint": None,
           "checkpoint_every": None, "resume_from": None, "metrics": None, "sample_weight": None,
           "class_weight": None, "distributed": None, "shards": 1}  # fmt: skip


@dataclass
class Settings:
    """The settings of fit's loop, from its keyword options (see ``fit``)."""

    rng: np.random.Generator
    shuffle: bool
    regularizer: object
    clip_norm: float | None
    augment: object
    scheduler: object


def fit_options(options: dict, epochs: int, steps: int) -> tuple[Settings, list[Callback]]:
    """Check fit's keyword ``options`` and turn them into the loop's ``Settings`` and the
    callbacks the others stand for: ``verbose`` a ``ProgressBar``, ``detect_anomaly`` a
    ``TerminateOnNaN``, ``checkpoint``/``checkpoint_every``/``resume_from`` a
    ``BackupAndRestore`` (last: it saves what the others took in)."""
    unknown = sorted(set(options) - set(OPTIONS))
    if unknown:
        raise TypeError(f"fit() got an unexpected keyword argument {unknown[0]!r}")
    o = {**OPTIONS, **options}
    if o["distributed"] is not None:  # only rank 0 prints and writes checkpoints
        o = o["distributed"].local_options(o)
    if o["clip_norm"] is not None:
        check_arg("fit", "clip_norm", o["clip_norm"], lambda v: 0 < v < math.inf, "a number > 0 or None")
    for name in ("shuffle", "verbose", "detect_anomaly"):  # "batch" (Keras's) would pass as true
        if not isinstance(o[name], (bool, np.bool_)):
            raise TypeError(f"fit: {name} must be True or False, got {o[name]!r}")
    wanted = {"regularizer": (lambda v: callable(getattr(v, "penalty", None)), "a penalty (gn.L2(1e-4))"),
              "augment": (callable, "a callable (x_batch, rng) -> x_batch"),
              "scheduler": (lambda v: isinstance(v, Schedule), "a glassnet.schedules schedule")}  # fmt: skip
    for name, (ok, what) in wanted.items():
        if o[name] is not None and not ok(o[name]):
            raise TypeError(f"fit: {name} must be {what} or None, got {type(o[name]).__name__}")
    if o["checkpoint_every"] is not None:
        _check_count("checkpoint_every", o["checkpoint_every"], 1)
        if o["checkpoint"] is None:
            raise ValueError("fit: checkpoint_every needs checkpoint= (where to write)")
    settings = Settings(as_rng(o["rng"], "fit"), o["shuffle"], o["regularizer"], o["clip_norm"],
                        o["augment"], o["scheduler"])  # fmt: skip
    made: list[Callback] = [ProgressBar(epochs, steps)] if o["verbose"] else []
    if o["detect_anomaly"]:
        made.append(TerminateOnNaN())
    if o["checkpoint"] is not None or o["resume_from"] is not None:
        made.append(BackupAndRestore(o["checkpoint"], o["checkpoint_every"], o["resume_from"]))
    return settings, made


def fit(
    model: Module,
    loss_fn: Loss,
    optimizer: Optimizer,
    train_data,
    epochs: int = 1,
    batch_size: int = 32,
    val_data=None,
    callbacks: list[Callback] | None = None,
    **options,
) -> History:
    """Train ``model`` for ``epochs`` passes over ``train_data`` (an ``(x, y)`` pair).

    Returns a ``History`` of per-epoch ``loss``, ``accuracy`` and, with ``val_data``,
    ``val_loss`` and ``val_accuracy``. ``loss`` is the mean of the epoch's batch losses, each
    weighed by its rows (the losses the steps took, as Keras logs them); ``val_loss``, as
    ``evaluate``'s, is the loss's mean over all the data, whatever the batch size (with class
    weights or ``ignore_index`` the two conventions differ). A ``batch_size`` larger than the
    data set means one batch of all of it per epoch (as Keras). ``optimizer`` must be built over the model's
    parameters, or a subset of them to train some layers only; one holding a parameter of
    another model raises ``ValueError``.

    The loop is all fit does; everything else is a callback (``glassnet.callbacks``), and the
    keyword options are settings of the loop or callbacks made for you (``fit_options``):

    ``rng``           drives shuffling, ``augment`` and every stochastic layer
                      (``model.set_rng(rng)``), so a run is reproducible from one seed (a
                      ``np.random.Generator``, an integer seed, or None for a fresh one)
    ``shuffle``       a new order every epoch (default True)
    ``regularizer``   a penalty added to the loss (``gn.L2(1e-4)``)
    ``clip_norm``     clip the gradients' global norm before each update
    ``augment``       a callable ``(x_batch, rng) -> x_batch`` such as
                      ``gn.data.Augment(shift=2, flip=True)``, for training batches only
    ``scheduler``     a learning-rate schedule, stepped after every epoch (``lr`` is logged);
                      ``ReduceLROnPlateau`` is given the epoch's logs (it reads its
                      ``monitor``), ``OneCycleLR`` is stepped after every batch
    ``verbose``       a ``ProgressBar`` (default True)
    ``metrics``       more to log each epoch (and for ``val_data``, prefixed ``val_``): names
                      such as "top5", "macro_precision", "macro_recall", "macro_f1", "mae",
                      "rmse", or ``glassnet.metrics.Metric`` objects (see ``glassnet.metrics``)
    ``sample_weight`` one weight >= 0 per training example (shuffled with it): each example's
                      loss is multiplied by it, the batch's mean still divided as without
                      weights (Keras's sum_n w_n l_n / N); the logged loss is that weighted one
    ``class_weight``  Keras's dict class -> weight, a per-example weight by label (times
                      ``sample_weight`` if both are given); validation is not weighted
    ``detect_anomaly`` a ``TerminateOnNaN``: every value of every step is checked, and the first
                      NaN/inf raises ``gn.anomaly.AnomalyError`` naming the layer, the phase,
                      the batch's example indices and the shapes (slower; off, it costs nothing)
    ``shards``        k > 1 splits each batch into k parts run forward and backward side by
                      side in threads, each by a replica of the model sharing its weights,
                      BLAS held to one thread each (``glassnet.shards``): the same gradients
                      to rounding, faster for convolutional nets where the two cores share no
                      cache; batch norm is synchronised across the parts
    ``distributed``   a ``gn.distributed.MPI()``: data-parallel training over the processes
                      ``mpiexec`` started, each taking its shard of every batch, the gradients
                      averaged by allreduce (``glassnet.distributed`` has the rules)
    ``checkpoint``, ``checkpoint_every``, ``resume_from``
                      a ``BackupAndRestore``: ``checkpoint`` (a file, or a directory to hold
                      ``checkpoint.safetensors``) is written atomically after every epoch and,
                      with ``checkpoint_every=N``, after every N steps. ``resume_from``
                      continues the run a checkpoint was written by: call ``fit`` with the same
                      model architecture, optimizer and schedule types, data, ``batch_size``,
                      ``shuffle`` and callbacks, and the run ends with the same weights, bit
                      for bit, as if it had never stopped. ``epochs`` is the total, counted
                      from the run's start.
    """
    _check_count("epochs", epochs, 0)
    _check_count("batch_size", batch_size, 1)
    check_optimizer(model, optimizer)
    check_modules_once("fit", model)  # a user's own container too (the built-in ones check when built)
    dtype, ids = model_dtype(model), integer_inputs(model)
    train = as_dataset(train_data, "train_data", dtype, ids)
    val = as_dataset(val_data, "val_data", dtype, ids) if val_data is not None else None
    _check_reduction(loss_fn, "fit")
    count = _counter(loss_fn, _probe(model, train, "train_data", loss_fn), train.y[:1])
    if val is not None:
        _probe(model, val, "val_data", loss_fn)
    weights = example_weights(loss_fn, train, options.get("sample_weight"), options.get("class_weight"))
    metrics = M.get_all(options.get("metrics"), getattr(loss_fn, "ignore_index", None))
    summed = getattr(loss_fn, "reduction", "mean") == "sum"
    counted = _labels_counted(train.y, loss_fn)  # the labels accuracy counts
    slices, history = batch_slices(train.n, batch_size), History()
    s, made = fit_options(options, epochs, len(slices))
    if s.scheduler is not None and s.scheduler.optimizer is not optimizer:
        raise ValueError(
            "fit: scheduler was built over another optimizer than the one fit steps: it would set that "
            "one's learning rate and leave this one's as it is; build it over the optimizer given to fit"
        )
    if callbacks is not None and not (
        isinstance(callbacks, (list, tuple)) and all(isinstance(cb, Callback) for cb in callbacks)
    ):
        raise TypeError(f"fit: callbacks must be a list of glassnet Callbacks, got {callbacks!r}"[:300])
    dist = options.get("distributed")
    if dist is not None:
        _check_distributed(options, summed)
    if dist is not None:  # last: it broadcasts what BackupAndRestore restored
        made.append(dist.start(model, optimizer, train.n, batch_size, s.rng))
    model.set_rng(s.rng if dist is None else dist.rng)  # dropout: per-rank streams
    counts = [_MetricCounts(metrics)] if metrics else []  # with state: before BackupAndRestore
    cbs: list[Callback] = [history, *counts, *(callbacks or []), *made]
    loop = Loop(cbs, s.rng, s.scheduler, s.regularizer, s.clip_norm, batch_size, s.shuffle, len(slices))
    for cb in cbs:
        cb.model, cb.optimizer, cb.loss_fn, cb.train_data, cb.loop = model, optimizer, loss_fn, train, loop
    step = checked_step if any(isinstance(cb, TerminateOnNaN) for cb in cbs) else _step
    per_batch = getattr(s.scheduler, "per_batch", False)
    if dist is not None:
        step = functools.partial(_step, reduce=dist.reduce)
    shards = _shards(model, options, step)
    if shards is not None:
        step = functools.partial(_step, shards=shards)
    batch_cbs = [cb for cb in cbs if type(cb).on_batch_end is not Callback.on_batch_end]
    logs: dict = {}
    try:
        for cb in cbs:
            cb.on_train_begin(logs)
        pos = loop.position  # where a BackupAndRestore resumes, or the start
        logs = pos.logs
        for epoch in range(pos.epoch, pos.epoch if pos.stopped else epochs):
            for cb in cbs:
                cb.on_epoch_begin(epoch)
            model.train()
            if pos.batch == 0:  # else a resumed epoch, which goes on in its own order
                # gather each batch by index: a whole-epoch shuffled copy would be a fresh
                # 190 MB allocation per epoch for Fashion-MNIST, page-faulted in every time
                pos.order = s.rng.permutation(train.n) if s.shuffle else None
                pos.total, pos.correct = 0.0, 0
                for m in metrics:
                    m.reset()
            for b in range(pos.batch, len(slices)):
                idx = slices[b] if pos.order is None else pos.order[slices[b]]
                examples = slices[b].stop - slices[b].start
                if dist is not None:  # this rank's shard; its generator reseeded for the step
                    idx = dist.shard(np.arange(slices[b].start, slices[b].stop) if pos.order is None else idx,
                                     pos.step)  # fmt: skip
                xb, yb = take_rows(train.x, idx), train.y[idx]
                if s.augment is not None:
                    xb = s.augment(xb, s.rng if dist is None else dist.rng)
                batch_loss = loss_fn if weights is None else WeightedLoss(loss_fn, weights[idx])
                try:
                    loss, pred = step(model, batch_loss, optimizer, xb, yb, s.regularizer, s.clip_norm)
                except FloatingPointError as e:
                    raise _placed(e, epoch, b, idx, inputs_of(xb)[0].shape, optimizer.lr) from None
                pos.total += loss if summed else loss * examples
                if count is not None:
                    pos.correct += count(pred, yb) if dist is None else dist.sum(count(pred, yb))
                for m in metrics:
                    m.update(pred, yb)
                pos.batch, pos.step = b + 1, pos.step + 1
                if per_batch:  # OneCycleLR: stepped after every optimizer step
                    s.scheduler.step()
                for cb in batch_cbs:
                    cb.on_batch_end(b, {"loss": loss})
            logs = _epoch_logs(model, loss_fn, optimizer, pos, train.n, counted, count, val, s.scheduler,
                               metrics, shards)  # fmt: skip
            for cb in cbs:
                cb.on_epoch_end(epoch, logs)
            pos.epoch, pos.batch, pos.logs = epoch + 1, 0, logs
            if any(cb.stop_training for cb in cbs):
                break
    except BaseException as e:
        if dist is not None:
            dist.failed(e)  # an error on one rank only ends the job (MPI_Abort), not a hang
        raise
    finally:
        if shards is not None:
            shards.close()
        for cb in cbs:
            cb.on_train_end(logs)
    return history


def _shards(model: Module, options: dict, step) -> Shards | None:
    """fit's ``shards`` option: None for 1 (the plain step), else the replicas and threads."""
    count = options.get("shards", 1)
    check_arg("fit", "shards", count, lambda v: v >= 1, "an integer >= 1", int)
    if count == 1:
        return None
    for name, on in (("detect_anomaly", step is checked_step), ("distributed", options.get("distributed"))):
        if on:
            raise ValueError(f"fit: shards={count} does not combine with {name} yet; use one or the other")
    return Shards(model, count, "fit")


def _check_distributed(options: dict, summed: bool) -> None:
    """Refuse what ``distributed`` does not combine with yet: each rank would weight, sum or
    score only its own shard, and rank 0 would report that as the whole batch's."""
    given = [k for k in ("sample_weight", "class_weight", "metrics") if options.get(k) is not None]
    if summed:
        given.append("a loss with reduction='sum'")
    if given:
        raise ValueError(
            f"fit: distributed training does not support {', '.join(given)} yet (each rank would see "
            "only its shard of the batch); train without distributed, or without them"
        )


def _placed(e: FloatingPointError, epoch: int, b: int, idx, shape: tuple, lr: float) -> FloatingPointError:
    """A step's non-finite loss, or ``AnomalyError``, with where in training it happened."""
    if isinstance(e, AnomalyError):
        return e.at(epoch, b, idx, shape)
    return FloatingPointError(
        f"fit: {e} at epoch {epoch + 1}, batch {b + 1} (the parameters were not updated by it); "
        f"try a smaller learning rate (lr={lr}) or clip_norm; fit(..., detect_anomaly=True) names "
        "the layer and phase where it starts"
    )


class _MetricCounts(Callback):
    """The running counts of fit's ``metrics`` as a callback's state, so that a checkpoint keeps
    them: an epoch resumed mid-way goes on counting where it stopped, and its logged metrics are
    an uninterrupted run's."""

    def __init__(self, metrics: list) -> None:
        self.metrics = metrics

    def state_dict(self) -> dict:
        return {f"{i}.{k}": v for i, m in enumerate(self.metrics) for k, v in m.state_dict().items()}

    def load_state_dict(self, state: dict) -> None:
        for i, m in enumerate(self.metrics):
            m.load_state_dict(
                {k.split(".", 1)[1]: v for k, v in state.items() if k.split(".", 1)[0] == str(i)}
            )


def _epoch_logs(
    model, loss_fn, optimizer, pos, n: int, labels: int, count, val, scheduler, metrics=(), shards=None
) -> dict[str, float]:
    """The epoch's metrics (mean loss, accuracy, validation's, ``metrics``), then the
    schedule's step: the logged ``lr`` is the one the epoch trained with. ``labels`` is the
    number of labels accuracy counts (see ``_labels_counted``); validation runs on ``shards``
    (the training steps' ``Shards``) where given."""
    logs = {"loss": float(pos.total / n)}
    if count is not None:
        logs["accuracy"] = float(pos.correct / labels) if labels else 0.0
    logs.update({m.name: float(m.result()) for m in metrics})
    if val is not None:
        fresh = [copy.deepcopy(m) for m in metrics]  # validation's own counts
        scores = _evaluate(model, loss_fn, val, EVALUATE_BATCH, fresh, shards)
        logs.update({f"val_{k}": v for k, v in scores.items()})
    if scheduler is not None:
        if getattr(scheduler, "per_batch", False):  # stepped after every batch: its last one's
            logs["lr"] = scheduler.trained_lr
        elif isinstance(scheduler, ReduceLROnPlateau):  # reads the epoch's metric
            logs["lr"] = optimizer.lr
            scheduler.step(logs)
        else:
            logs["lr"] = optimizer.lr
            scheduler.step()
    return logs


def _labels_counted(y: np.ndarray, loss_fn) -> int:
    """The labels accuracy counts: N T for integer labels (N, T) (a class per position:
    accuracy is over all tokens), else N; labels equal to the loss's ``ignore_index`` left out."""
    ignored = getattr(loss_fn, "ignore_index", None)
    if y.dtype.kind in "iu":
        return int(y.size if ignored is None else np.count_nonzero(y != ignored))
    return len(y)


EVALUATE_BATCH = 1000  # evaluate's batch, and fit's for its validation


def _check_count(name: str, value, low: int, owner: str = "fit") -> None:
    check_arg(owner, name, value, lambda v: v >= low, f"an integer >= {low}", int)


def evaluate(
    model: Module, loss_fn: Loss, data, batch_size: int = EVALUATE_BATCH, metrics=None, shards: int = 1
) -> dict[str, float]:
    """Mean loss (and accuracy, for classification) over ``data`` in eval mode, as floats,
    and each of ``metrics`` (names such as "top5", "macro_f1", "mae", or
    ``glassnet.metrics.Metric`` objects; see ``glassnet.metrics``) over all of ``data``.

    With a loss of ``reduction="sum"`` the loss is the sum over ``data`` divided by its
    number of examples. A model whose output holds NaN/inf raises ``FloatingPointError``
    naming the first parameter that does. ``shards=k`` runs each batch's forward in k parts
    side by side on threads, as ``predict`` does (the loss and the metrics see the whole
    batch's outputs)."""
    _check_count("batch_size", batch_size, 1, "evaluate")
    check_arg("evaluate", "shards", shards, lambda v: v >= 1, "an integer >= 1", int)
    with _parts(model, shards, "evaluate") as parts:
        return _evaluate(model, loss_fn, data, batch_size, metrics, parts)


def _evaluate(model: Module, loss_fn: Loss, data, batch_size: int, metrics, parts: Shards | None) -> dict:
    """``evaluate``'s work, each batch's forward on ``parts`` where given (``fit``'s own
    replicas for its validation: their timed ways and threads are warm already)."""
    _check_reduction(loss_fn, "evaluate")
    ds = as_dataset(data, "data", model_dtype(model), integer_inputs(model))
    _probe(model, ds, "data", loss_fn)
    ms = M.get_all(metrics, getattr(loss_fn, "ignore_index", None))
    for m in ms:
        m.reset()
    total, divisor, correct, count = 0.0, 0.0, 0, None
    with evaluating(model), no_grad():  # no backward follows: layers keep nothing for one
        for i, sl in enumerate(batch_slices(ds.n, batch_size)):
            pred = _forward(model, take_rows(ds.x, sl), "evaluate", parts)
            check_finite_output(model, pred, "evaluate")
            part, d = _sum_and_divisor(loss_fn, pred, ds.y[sl])
            total, divisor = total + part, divisor + d
            if i == 0:
                count = _counter(loss_fn, pred, ds.y[sl])
            if count is not None:
                correct += count(pred, ds.y[sl])
            for m in ms:
                m.update(pred, ds.y[sl])
    # plain floats (a NumPy scalar would print as np.float64(...) and is not JSON's float)
    out = {"loss": float(total / divisor) if divisor else math.nan}
    if count is not None:
        labels = _labels_counted(ds.y, loss_fn)
        out["accuracy"] = float(correct / labels) if labels else 0.0
    out.update({m.name: float(m.result()) for m in ms})
    return out


def _sum_and_divisor(loss_fn, pred: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """One batch's share of the loss over the whole data: the sum of its terms and its part of
    the mean's divisor, so that sum over batches / divisor over batches is the mean over all the
    data whatever the batch size. The divisor is the loss's own: the number of examples, or the
    summed class weights of the targets that are not ``ignore_index`` (PyTorch's weighted mean),
    where a batch's own mean times its rows would weigh each batch wrongly (a batch of ignored
    targets alone: NaN). ``reduction="sum"``: the data's sum over its number of examples. A loss
    without ``terms`` (its own ``forward``): its mean times the batch's rows."""
    rows = len(pred)
    if getattr(loss_fn, "reduction", "mean") == "sum":
        return loss_fn.forward(pred, y), rows
    if type(loss_fn).terms is Loss.terms or not isinstance(loss_fn, Loss):
        return loss_fn.forward(pred, y) * rows, rows
    terms, _, divisor, _ = loss_fn.terms(np.asarray(pred), y)
    return float(terms.sum()), float(divisor)


def _check_reduction(loss_fn, owner: str) -> None:
    """fit and evaluate need one number per batch: reduction="none" is refused by name."""
    if getattr(loss_fn, "reduction", "mean") == "none":
        raise ValueError(
            f"{owner}: {type(loss_fn).__name__}(reduction='none') returns a loss per element, but {owner} "
            "needs one number per batch: use reduction='mean' (or 'sum'); for per-example weights pass "
            "fit(..., sample_weight=...) or class_weight="
        )


class WeightedLoss(Loss):
    """``loss`` with one batch's per-example weights: what fit steps with when given
    ``sample_weight`` or ``class_weight``. forward is ``loss.forward(pred, y, sample_weight=w)``
    (each example's terms times w_n, the mean's divisor unchanged: Keras's weighted mean
    sum_n w_n l_n / N); backward is the loss's."""

    def __init__(self, loss: Loss, weights: np.ndarray) -> None:
        self.loss, self.weights = loss, weights
        self.reduction, self.position_labels = getattr(loss, "reduction", "mean"), loss.position_labels

    def forward(self, pred, target, sample_weight=None):
        return self.loss.forward(pred, target, sample_weight=self.weights)

    def backward(self, grad=None):
        return self.loss.backward()


def example_weights(loss_fn, train: Dataset, sample_weight=None, class_weight=None) -> np.ndarray | None:
    """fit's per-example weights: ``sample_weight`` (one number >= 0 per example of the
    training data, which shuffling keeps with its example) times ``class_weight[label]``
    (Keras's: a dict class -> weight, every class that occurs needs one; labels are integer
    classes (N,), or the argmax of one-hot rows, or 0/1 binary targets); None without either."""
    if sample_weight is None and class_weight is None:
        return None
    if "sample_weight" not in inspect.signature(loss_fn.forward).parameters:
        raise TypeError(
            f"fit: sample_weight and class_weight need a loss whose forward takes sample_weight (every "
            f"glassnet loss does); {type(loss_fn).__name__}.forward(pred, target) does not"
        )
    w = np.ones(train.n)
    if sample_weight is not None:
        try:
            sw = np.array(sample_weight, dtype=np.float64)
        except (TypeError, ValueError):
            raise TypeError(
                f"fit: sample_weight must be an array of numbers, got {type(sample_weight).__name__}"
            ) from None
        if sw.shape != (train.n,):
            raise ValueError(
                f"fit: sample_weight must hold one weight per training example, shape ({train.n},), "
                f"got {sw.shape}"
            )
        if not np.isfinite(sw).all() or (sw < 0).any():
            raise ValueError("fit: sample_weight must hold finite numbers >= 0")
        w *= sw
    if class_weight is not None:
        w *= _class_weights(class_weight, train.y)
    return w


def _class_weights(class_weight, y: np.ndarray) -> np.ndarray:
    if not isinstance(class_weight, dict):
        raise TypeError(
            f"fit: class_weight must be a dict class -> weight, got {type(class_weight).__name__}"
        )
    if y.dtype.kind in "iu" and y.ndim == 1:
        labels = y
    elif y.ndim == 2 and y.shape[1] > 1:
        labels = y.argmax(axis=1)  # one-hot rows, as Keras
    elif y.ndim <= 2 and y.size == len(y) and y.dtype.kind == "f":
        labels = np.rint(y.reshape(-1)).astype(np.int64)  # binary 0/1 targets, as Keras
    else:
        raise ValueError(
            f"fit: class_weight needs one class per example (labels (N,), one-hot rows or 0/1 targets), "
            f"got targets y of shape {y.shape[1:]} per example; for a class per position use "
            "CrossEntropyLoss(weight=...)"
        )
    table = {}
    for k, v in class_weight.items():
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)):
            raise TypeError(f"fit: class_weight's keys must be integer classes, got {k!r}")
        check_arg("fit", f"class_weight[{k}]", v, lambda x: 0 <= x < math.inf, "a finite number >= 0")
        table[int(k)] = float(v)
    present = np.unique(labels)
    missing = [int(c) for c in present if int(c) not in table]
    if missing:
        raise ValueError(
            f"fit: class_weight has no weight for class {missing[0]}, which occurs in the labels; give every "
            f"class one (the classes present: {present.tolist()[:20]})"
        )
    lookup = np.zeros(int(present.max()) + 1 if present.size else 0)
    for c in present:
        lookup[c] = table[int(c)]
    return lookup[labels]


@contextlib.contextmanager
def _parts(model: Module, shards: int, owner: str) -> Iterator[Shards | None]:
    """``evaluate``'s and ``predict``'s replicas and threads for ``shards`` > 1 (None for 1),
    closed when the pass ends, however it ends."""
    parts = Shards(model, shards, owner) if shards > 1 else None
    try:
        yield parts
    finally:
        if parts is not None:
            parts.close()


def predict(model: Module, x: np.ndarray, batch_size: int = 1000, shards: int = 1) -> np.ndarray:
    """The model's outputs for ``x`` (a float array, one row per example, or integer ids for a
    model starting with an ``Embedding``; a tuple of such arrays for a model with several
    inputs, a ``Graph``'s; no rows gives no outputs), in eval mode, batch by
    batch; a tuple of arrays for a ``Graph`` with several outputs. A model whose output holds
    NaN/inf raises ``FloatingPointError`` naming the first
    parameter that does. ``shards=k`` runs each batch in k parts side by side on threads, each
    through a replica of the model (``glassnet.shards``): the same outputs to rounding, faster
    for networks with batch norm where the cores share no cache (docs/distributed.md)."""
    _check_count("batch_size", batch_size, 1, "predict")
    check_arg("predict", "shards", shards, lambda v: v >= 1, "an integer >= 1", int)
    check = lambda a, name, i=0: check_inputs(a, name, model_dtype(model), takes_integers(model, i))  # noqa: E731
    if isinstance(x, tuple):  # a model with several inputs: one array each, the same rows
        x = tuple(check(a, f"predict: x[{i}]", i) for i, a in enumerate(x))
        if len({len(a) for a in x}) > 1:
            raise ValueError(
                f"predict: the inputs x[0], x[1], ... must have the same rows, got {[len(a) for a in x]}"
            )
    else:
        x = check(x, "predict")
    n = len(inputs_of(x)[0])
    with evaluating(model), no_grad():  # no backward follows: layers keep nothing for one
        if n == 0:
            return _forward(model, x, "predict")
        with _parts(model, shards, "predict") as parts:
            outs = [_forward(model, take_rows(x, sl), "predict", parts) for sl in batch_slices(n, batch_size)]
    if isinstance(outs[0], tuple):  # a graph with several outputs: a tuple of their arrays
        out = tuple(np.concatenate(parts) for parts in zip(*outs))
        for o in out:
            check_finite_output(model, o, "predict")
        return out
    out = np.concatenate(outs)
    check_finite_output(model, out, "predict")
    return out


__all__ = ["Dataset", "evaluate", "evaluating", "fit", "model_dtype", "predict", "train_step"]
