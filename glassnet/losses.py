"""Losses: ``forward(pred, target) -> float`` and ``backward() -> dpred``.

``backward`` returns dC/d(pred) for exactly the ``pred`` forward received, so it is BP1's
grad_a C for the network's last layer (for logit losses, that already includes the
Hadamard product with the output nonlinearity: delta^L = softmax(z) - y). With mean
reduction the gradient carries the 1/N.
"""

from __future__ import annotations

import functools
import math

import numpy as np

from . import functional as F
from .module import ShapeError, check_arg


def _labels(target: np.ndarray, n: int, classes: int, loss: str) -> np.ndarray:
    """Check integer class labels, shape (n,) and each in [0, classes); return them as uintp.

    As unsigned integers a negative label wraps to a huge one, so one ``max`` checks both ends.
    """
    if target.shape != (n,):
        raise ShapeError(f"{loss}: expected {n} integer labels, got target of shape {target.shape}")
    labels = target.astype(np.uintp)
    if n and labels.max() >= classes:
        bad = target[(target < 0) | (target >= classes)][0]
        raise ValueError(f"{loss}: label {bad} out of range for {classes} classes (0..{classes - 1})")
    return labels


@functools.lru_cache(maxsize=32)
def _eye(classes: int, dtype: np.dtype) -> np.ndarray:
    eye = np.eye(classes, dtype=dtype)
    eye.flags.writeable = False  # shared by every call: nobody may write into it
    return eye


def _one_hot(labels: np.ndarray, classes: int, dtype: np.dtype) -> np.ndarray:
    return _eye(classes, dtype)[labels]  # a gather of rows: a fresh array


def _targets_like(pred: np.ndarray, target, loss: str) -> np.ndarray:
    """Float targets of pred's shape; integer labels for (N, C) predictions are one-hot encoded."""
    target = np.asarray(target)
    if target.dtype.kind in "iu" and pred.ndim == 2 and target.ndim == 1:
        return _one_hot(_labels(target, pred.shape[0], pred.shape[1], loss), pred.shape[1], pred.dtype)
    if target.shape != pred.shape:
        raise ShapeError(f"{loss}: prediction has shape {pred.shape} but target has shape {target.shape}")
    return target.astype(pred.dtype, copy=False)


class Loss:
    """Base class: subclasses set ``self.dpred`` in forward; backward returns it.

    ``position_labels`` says whether the loss takes integer labels with more than one axis,
    a class per position (``CrossEntropyLoss``'s K-dimensional form); ``fit`` refuses such
    labels for any other loss rather than let it read class indices as numbers."""

    position_labels: bool = False

    def __call__(self, pred, target) -> float:
        return self.forward(pred, target)

    def backward(self) -> np.ndarray:
        return self.dpred

    def config(self) -> dict:
        return {}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.config().items())
        return f"{type(self).__name__}({args})"


class MSELoss(Loss):
    """C = mean over every element of (a - y)^2 (PyTorch's ``MSELoss``).

    Integer labels against (N, C) predictions are one-hot encoded.
    Backward: dC/da = 2 (a - y) / (number of elements).
    """

    def forward(self, pred, target):
        diff = pred - _targets_like(pred, target, "MSELoss")
        self.dpred = diff * (2.0 / diff.size)
        return float(np.vdot(diff, diff)) / diff.size


class QuadraticCost(Loss):
    """The book's quadratic cost C = 1/(2n) sum_x ||a(x) - y(x)||^2, over a batch of n.

    This is MSE summed over outputs (not averaged) and halved, so Nielsen's chapter 1 learning
    rate eta = 3.0 behaves as in the book. Integer labels are one-hot encoded (the book's y(x)).
    Backward: dC/da = (a - y) / n.
    """

    def forward(self, pred, target):
        diff = pred - _targets_like(pred, target, "QuadraticCost")
        n = pred.shape[0]
        self.dpred = diff * (1.0 / n)
        return 0.5 * float(np.vdot(diff, diff)) / n


class CrossEntropyLoss(Loss):
    """Softmax cross-entropy on logits z: C = -1/N sum_n sum_j y_nj log softmax(z_n)_j.

    ``target``: integer labels (N,) or class probabilities (N, C) (PyTorch's two forms).
    PyTorch's K-dimensional form works too: logits (N, C, d1, ...) with labels (N, d1, ...) or
    probabilities (N, C, d1, ...), a class per position (a language model's next token:
    ``Permute((0, 2, 1))`` its (N, T, vocab) logits), averaged over all N d1 ... positions.
    ``label_smoothing`` mixes the target with the uniform distribution, as PyTorch.
    The log-softmax is shifted by the row max, so no exp overflows.

    Backward (BP1 with the softmax folded in): for p = softmax(z),
        dC/dz_j = sum_k dC/dp_k dp_k/dz_j = (p_j sum_k y_k - y_j) / N = (p_j - y_j) / N
    when each target row sums to one.
    """

    def __init__(self, label_smoothing: float = 0.0) -> None:
        check_arg(
            "CrossEntropyLoss", "label_smoothing", label_smoothing, lambda v: 0.0 <= v <= 1.0, "in [0, 1]"
        )
        self.label_smoothing = float(label_smoothing)

    position_labels = True  # integer labels (N, d1, ...) for logits (N, C, d1, ...)

    def forward(self, pred, target):
        if pred.ndim > 2:
            return self._forward_positions(pred, np.asarray(target))
        if pred.ndim != 2:
            raise ShapeError(f"CrossEntropyLoss expects logits (N, C), got shape {pred.shape}")
        n, c = pred.shape
        target = np.asarray(target)
        logp = F.log_softmax(pred, axis=1)
        if target.dtype.kind in "iu":
            labels = _labels(target, n, c, "CrossEntropyLoss")
            y = None if self.label_smoothing == 0 else _one_hot(labels, c, pred.dtype)
        else:
            if target.shape != pred.shape:
                raise ShapeError(
                    f"CrossEntropyLoss: probability targets must have the logits' shape {pred.shape}, "
                    f"got {target.shape}"
                )
            y = target.astype(pred.dtype, copy=False)
        if y is not None and self.label_smoothing:
            y = y * (1.0 - self.label_smoothing) + self.label_smoothing / c
        p = np.exp(logp)
        if y is None:
            # hard labels: pick one log-probability per row, no one-hot matrix built
            rows = np.arange(n)
            loss = -float(logp[rows, labels].sum()) / n
            p[rows, labels] -= 1
            p *= 1.0 / n
        else:
            loss = -float(np.vdot(y, logp)) / n
            p *= y.sum(axis=1, keepdims=True)
            p -= y
            p *= 1.0 / n
        self.dpred = p
        return loss

    def _forward_positions(self, pred, target):
        """(N, C, d1, ...): every position is one more row of an (N d1 ..., C) batch."""
        c = pred.shape[1]
        moved = np.moveaxis(pred, 1, -1)  # (N, d1, ..., C)
        if target.dtype.kind in "iu":
            if target.shape != moved.shape[:-1]:
                raise ShapeError(
                    f"CrossEntropyLoss: labels for logits {pred.shape} must have shape {moved.shape[:-1]}, "
                    f"got {target.shape}"
                )
            rows = target.reshape(-1)
        else:
            if target.shape != pred.shape:
                raise ShapeError(
                    f"CrossEntropyLoss: probability targets must have the logits' shape {pred.shape}, "
                    f"got {target.shape}"
                )
            rows = np.moveaxis(target, 1, -1).reshape(-1, c)
        loss = self.forward(moved.reshape(-1, c), rows)
        self.dpred = np.moveaxis(self.dpred.reshape(moved.shape), -1, 1)
        return loss

    def config(self):
        return {"label_smoothing": self.label_smoothing}


class BCEWithLogitsLoss(Loss):
    """Binary cross-entropy on logits: C = mean(-y log s(z) - (1 - y) log(1 - s(z))).

    Computed as mean(max(z, 0) - z y + log(1 + e^-|z|)), which never overflows.
    Backward: dC/dz = (sigmoid(z) - y) / (number of elements).
    """

    def forward(self, pred, target):
        target = np.asarray(target)
        if target.shape != pred.shape:
            if target.shape == pred.shape[:1] and pred.ndim == 2 and pred.shape[1] == 1:
                target = target.reshape(pred.shape)
            else:
                raise ShapeError(
                    f"BCEWithLogitsLoss: prediction has shape {pred.shape} "
                    f"but target has shape {target.shape}"
                )
        y = target.astype(pred.dtype, copy=False)
        loss = np.maximum(pred, 0) - pred * y + np.log1p(np.exp(-np.abs(pred)))
        self.dpred = (F.sigmoid(pred) - y) * (1.0 / pred.size)
        return float(loss.mean())


class HingeLoss(Loss):
    """Margin loss, multi-class or binary.

    Multi-class, logits (N, C) with integer labels: PyTorch's ``MultiMarginLoss`` (p=1),
        C = 1/N sum_n 1/C sum_{j != y_n} max(0, margin - z_{n,y_n} + z_{n,j}).
    Binary, scores (N,) or (N, 1) with targets in {-1, +1} or {0, 1} (0 is read as -1):
        C = mean(max(0, margin - t z)), the SVM hinge.
    Backward: each violated margin adds +1 to dz_j and -1 to dz_y (multi-class, then / (N C));
    binary: dz = -t [margin - t z > 0] / N.
    """

    def __init__(self, margin: float = 1.0) -> None:
        check_arg("HingeLoss", "margin", margin, lambda v: 0.0 <= v < math.inf, "a finite number >= 0")
        self.margin = float(margin)

    def forward(self, pred, target):
        target = np.asarray(target)
        if pred.ndim == 2 and pred.shape[1] > 1:
            n, c = pred.shape
            labels = _labels(target, n, c, "HingeLoss")
            rows = np.arange(n)
            margins = self.margin - pred[rows, labels][:, None] + pred
            margins[rows, labels] = 0
            active = margins > 0
            d = active.astype(pred.dtype)
            d[rows, labels] = -active.sum(axis=1)
            self.dpred = d * (1.0 / (n * c))
            return float(np.maximum(margins, 0).sum()) / (n * c)
        t = target.reshape(pred.shape).astype(pred.dtype)
        if not np.isin(t, (-1, 0, 1)).all():
            raise ValueError("HingeLoss: binary targets must be -1/+1 or 0/1")
        t = np.where(t == 0, -1, t).astype(pred.dtype)
        margins = self.margin - t * pred
        self.dpred = -t * (margins > 0) * (1.0 / pred.size)
        return float(np.maximum(margins, 0).mean())

    def config(self):
        return {"margin": self.margin}


class HuberLoss(Loss):
    """C = mean of 0.5 r^2 where |r| <= delta, else delta (|r| - 0.5 delta); r = a - y.

    PyTorch's ``HuberLoss``: quadratic near zero, linear in the tails.
    Backward: dC/da = clip(r, -delta, delta) / (number of elements).
    """

    def __init__(self, delta: float = 1.0) -> None:
        check_arg("HuberLoss", "delta", delta, lambda v: 0.0 < v < math.inf, "a finite number > 0")
        self.delta = float(delta)

    def forward(self, pred, target):
        r = pred - _targets_like(pred, target, "HuberLoss")
        a = np.abs(r)
        d = self.delta
        loss = np.where(a <= d, 0.5 * r * r, d * (a - 0.5 * d))
        self.dpred = np.clip(r, -d, d) * (1.0 / r.size)
        return float(loss.mean())

    def config(self):
        return {"delta": self.delta}
