"""Losses: ``forward(pred, target) -> float`` and ``backward() -> dpred``.

``backward`` returns dC/d(pred) for exactly the ``pred`` forward received, so it is BP1's
grad_a C for the network's last layer (for logit losses, that already includes the
Hadamard product with the output nonlinearity: delta^L = softmax(z) - y).

Every loss is written once as its *terms* ``l`` (one per element, or per example/position
where the loss sums over classes) and their derivatives ``dl/dpred``; ``reduction`` then
says what forward returns, with PyTorch's names and meaning:

- ``"mean"`` (the default): sum(l) / D, and dC/dpred = (dl/dpred) / D. D is the number of
  terms, except for ``CrossEntropyLoss`` with class labels, where it is the sum of the class
  weights of the targets that are not ``ignore_index`` (PyTorch's weighted mean);
- ``"sum"``: sum(l), and dC/dpred = dl/dpred;
- ``"none"``: the array of terms ``l`` itself; ``backward(grad)`` then takes the upstream
  gradient dC/dl (of the terms' shape) and returns dC/dpred = dC/dl * dl/dpred (there is no
  single number to differentiate, as in PyTorch, where such a loss needs ``.backward(grad)``).
  ``fit`` and ``evaluate`` need one number per batch and refuse it.

``forward(pred, target, sample_weight=w)`` multiplies each example's terms (and their
gradients) by ``w[n]`` before the reduction, the divisor D unchanged (Keras's weighted mean:
sum_n w_n l_n / N); ``fit(..., sample_weight=, class_weight=)`` is built on it.
"""

from __future__ import annotations

import functools
import math

import numpy as np

from . import functional as F
from .module import ShapeError, check_arg

REDUCTIONS = ("mean", "sum", "none")


def _check_reduction(owner: str, reduction) -> str:
    if reduction not in REDUCTIONS:
        raise ValueError(
            f"{owner}: reduction must be one of {list(REDUCTIONS)} (PyTorch's), got {reduction!r}"
        )
    return reduction


def _labels(target: np.ndarray, n: int, classes: int, loss: str) -> np.ndarray:
    """Check integer class labels, shape (n,) and each in [0, classes); return them as uintp.

    Labels of any other dtype (floats, even whole ones, bools) are refused, as
    ``CrossEntropyLoss`` refuses them and PyTorch requires int64: a cast would truncate 0.5 to 0.
    As unsigned integers a negative label wraps to a huge one, so one ``max`` checks both ends.
    """
    if target.dtype.kind not in "iu":
        raise ShapeError(
            f"{loss}: class labels must be integers, got target of dtype {target.dtype} "
            f"(shape {target.shape}); pass y.astype(np.int64) if they are whole numbers"
        )
    if target.shape != (n,):
        raise ShapeError(f"{loss}: expected {n} integer labels, got target of shape {target.shape}")
    labels = target.astype(np.uintp)
    if n and labels.max() >= classes:
        bad = target[(target < 0) | (target >= classes)][0]
        raise ValueError(f"{loss}: label {bad} out of range for {classes} classes (0..{classes - 1})")
    return labels


def class_last_hint(logits_shape: tuple[int, ...], labels_shape: tuple[int, ...]) -> str:
    """A clause for a refusal where integer labels fit logits whose classes are on the *last*
    axis, (N, d1, ..., C), not on axis 1 as PyTorch's and glassnet's losses take them: the
    common slip of a language model (N, T, vocab) without its final ``Permute``; else ""."""
    if len(logits_shape) < 3 or tuple(labels_shape) != tuple(logits_shape[:-1]):
        return ""
    order = (0, len(logits_shape) - 1, *range(1, len(logits_shape) - 1))
    return (
        f"; these look like logits with the classes last, (N, ..., C): the class axis is 1, as in "
        f"PyTorch, so end the model with gn.Permute({order}) (a language model's (N, T, vocab) "
        f"-> (N, vocab, T))"
    )


@functools.lru_cache(maxsize=32)
def _eye(classes: int, dtype: np.dtype) -> np.ndarray:
    eye = np.eye(classes, dtype=dtype)
    eye.flags.writeable = False  # shared by every call: nobody may write into it
    return eye


def _one_hot(labels: np.ndarray, classes: int, dtype: np.dtype) -> np.ndarray:
    return _eye(classes, dtype)[labels]  # a gather of rows: a fresh array


def _targets_like(pred: np.ndarray, target, loss: str) -> np.ndarray:
    """Float targets of pred's shape; integer labels (N,) for (N, C) predictions with C >= 2 are
    one-hot encoded. For one output (N, 1) there are no classes: integer (N,) targets there are
    regression targets of the wrong shape, refused (PyTorch would broadcast them to (N, N))."""
    target = np.asarray(target)
    if target.dtype.kind in "iu" and pred.ndim == 2 and target.ndim == 1:
        if pred.shape[1] == 1:
            raise ShapeError(
                f"{loss}: integer targets of shape {target.shape} are one-hot encoded only for (N, C) "
                f"predictions with C >= 2 classes, and the prediction has shape {pred.shape}; for a "
                "regression with one output pass float targets of shape (N, 1): "
                "y.reshape(-1, 1).astype(np.float32)"
            )
        return _one_hot(_labels(target, pred.shape[0], pred.shape[1], loss), pred.shape[1], pred.dtype)
    if target.shape != pred.shape:
        raise ShapeError(f"{loss}: prediction has shape {pred.shape} but target has shape {target.shape}")
    return target.astype(pred.dtype, copy=False)


def _weights_for(owner: str, name: str, weight, shape: tuple | None = None) -> np.ndarray | None:
    """A non-negative, finite float64 weight array (None stays None); ``shape``: it must have it."""
    if weight is None:
        return None
    try:
        w = np.array(weight, dtype=np.float64)
    except (TypeError, ValueError):
        raise TypeError(f"{owner}: {name} must be an array of numbers, got {type(weight).__name__}") from None
    if shape is not None and w.shape != shape:
        raise ShapeError(f"{owner}: {name} must have shape {shape}, got {w.shape}")
    if not np.isfinite(w).all() or (w < 0).any():
        raise ValueError(f"{owner}: {name} must hold finite numbers >= 0")
    w.flags.writeable = False
    return w


class Loss:
    """Base class: subclasses give ``terms(pred, target) -> (l, dl, D, axes)`` (see the module
    docstring: the terms, their derivatives of pred's shape, the mean's divisor, and the axes of
    pred the terms sum over); ``forward`` reduces them and ``backward`` returns dC/dpred.

    A subclass may instead override ``forward`` itself and set ``self.dpred`` (a custom loss).

    ``position_labels`` says whether the loss takes integer labels with more than one axis,
    a class per position (``CrossEntropyLoss``'s K-dimensional form); ``fit`` refuses such
    labels for any other loss rather than let it read class indices as numbers."""

    position_labels: bool = False
    reduction: str = "mean"  # the class default, for subclasses that set no reduction

    def __init__(self, *, reduction: str = "mean") -> None:
        self.reduction = _check_reduction(type(self).__name__, reduction)

    def __call__(self, pred, target, sample_weight=None):
        if sample_weight is None:
            return self.forward(pred, target)
        return self.forward(pred, target, sample_weight=sample_weight)

    def terms(self, pred: np.ndarray, target) -> tuple[np.ndarray, np.ndarray, float, tuple[int, ...]]:
        raise NotImplementedError(f"{type(self).__name__} defines neither terms() nor forward()")

    def forward(self, pred, target, sample_weight=None):
        """The reduced loss (a float), or the terms (an array) with ``reduction="none"``."""
        pred = np.asarray(pred)
        l, dl, divisor, axes = self.terms(pred, target)
        if sample_weight is not None:
            w = self.check_sample_weight(sample_weight, pred.shape[0]).astype(pred.dtype)
            l = l * w.reshape((-1,) + (1,) * (l.ndim - 1))
            dl *= w.reshape((-1,) + (1,) * (dl.ndim - 1))
        if self.reduction == "none":
            self.dpred, self._dl, self._axes, self._shape = None, dl, axes, l.shape
            return l
        if self.reduction == "sum":
            self.dpred = dl
            return float(l.sum())
        if divisor == 0:  # nothing to average over (e.g. every target ignored): 0/0, as PyTorch
            self.dpred = self._gradient_of_empty_mean(dl)
            return math.nan
        dl *= 1.0 / divisor
        self.dpred = dl
        return float(l.sum()) / divisor

    def _gradient_of_empty_mean(self, dl: np.ndarray) -> np.ndarray:
        """dC/dpred when the mean's divisor D is 0 (the loss is NaN): dl / 0, NaN everywhere
        (an empty batch has no entries at all). ``CrossEntropyLoss`` overrides it."""
        dl *= np.nan
        return dl

    def check_sample_weight(self, sample_weight, n: int) -> np.ndarray:
        return _weights_for(type(self).__name__, "sample_weight", sample_weight, (n,))

    def backward(self, grad=None) -> np.ndarray:
        """dC/dpred. With ``reduction="none"``, ``grad`` is dC/d(terms), of the terms' shape."""
        if self.reduction != "none":
            if grad is not None:
                raise ValueError(
                    f"{type(self).__name__}: backward(grad) is for reduction='none'; with "
                    f"reduction={self.reduction!r} the loss is one number and backward() takes no grad"
                )
            return self.dpred
        if grad is None:
            raise ValueError(
                f"{type(self).__name__}(reduction='none') returned one loss per term {self._shape}: "
                "pass backward(grad) with dC/d(terms) of that shape, or use reduction 'mean' or 'sum'"
            )
        grad = np.asarray(grad)
        if grad.shape != self._shape:
            raise ShapeError(
                f"{type(self).__name__}: backward(grad) needs grad of the terms' shape {self._shape}, "
                f"got {grad.shape}"
            )
        return self._dl * np.expand_dims(grad, self._axes).astype(self._dl.dtype, copy=False)

    def config(self) -> dict:
        return {} if self.reduction == "mean" else {"reduction": self.reduction}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.config().items())
        return f"{type(self).__name__}({args})"


class MSELoss(Loss):
    """C = mean over every element of (a - y)^2 (PyTorch's ``MSELoss``).

    Integer labels (N,) against (N, C) predictions, C >= 2, are one-hot encoded (for one
    output (N, 1) they are refused: pass float targets (N, 1)).
    Terms l = (a - y)^2, one per element; dl/da = 2 (a - y) (so with the mean,
    dC/da = 2 (a - y) / (number of elements)).
    """

    def terms(self, pred, target):
        diff = pred - _targets_like(pred, target, "MSELoss")
        return diff * diff, diff * 2.0, diff.size, ()


class QuadraticCost(Loss):
    """The book's quadratic cost C = 1/(2n) sum_x ||a(x) - y(x)||^2, over a batch of n.

    This is MSE summed over outputs (not averaged) and halved, so Nielsen's chapter 1 learning
    rate eta = 3.0 behaves as in the book. Integer labels (N,) are one-hot encoded (the book's
    y(x)) for C >= 2 outputs.
    Terms: one per example, l_x = ||a(x) - y(x)||^2 / 2 (``reduction`` "sum" gives
    sum_x l_x, "none" the n of them); dl/da = a - y, so with the mean dC/da = (a - y) / n.
    """

    def terms(self, pred, target):
        diff = pred - _targets_like(pred, target, "QuadraticCost")
        axes = tuple(range(1, diff.ndim))
        return 0.5 * np.square(diff).sum(axis=axes), diff, pred.shape[0], axes


class CrossEntropyLoss(Loss):
    """Softmax cross-entropy on logits z: C = -1/N sum_n sum_j y_nj log softmax(z_n)_j.

    ``target``: integer labels (N,) or class probabilities (N, C) (PyTorch's two forms).
    PyTorch's K-dimensional form works too: logits (N, C, d1, ...) with labels (N, d1, ...) or
    probabilities (N, C, d1, ...), a class per position (a language model's next token:
    ``Permute((0, 2, 1))`` its (N, T, vocab) logits), averaged over all N d1 ... positions.
    ``label_smoothing`` mixes the target with the uniform distribution, as PyTorch.
    The log-softmax is shifted by the row max, so no exp overflows.

    PyTorch's options, with its meaning (by name: ``label_smoothing`` stays the one positional):
    ``weight`` (C,): class c's terms are scaled by w_c: l_n = -sum_j w_j y_nj log p_nj. With
    class labels the mean divides by sum_n w_{y_n} (not by N), PyTorch's weighted mean;
    with probabilities by N.
    ``ignore_index``: positions whose label is this class contribute nothing and are not
    counted in the mean (class labels only; default -100, as PyTorch). A batch with every
    label ignored has mean NaN and gradient 0, as in PyTorch (the ignored positions take no
    part in it); where the mean's divisor sum_n w_{y_n} is 0 because the kept targets' classes
    weigh 0, their positions get a NaN gradient (0/0), the ignored ones 0, as PyTorch.
    ``reduction``: "mean", "sum", or "none" (one term per example or position).

    Backward (BP1 with the softmax folded in): for p = softmax(z) and u_j = w_j y_j,
        dl/dz_j = sum_k dl/dp_k dp_k/dz_j = p_j sum_k u_k - u_j,
    which is p_j - y_j for hard labels without weights; the mean divides it by the divisor.
    """

    position_labels = True  # integer labels (N, d1, ...) for logits (N, C, d1, ...)

    def __init__(
        self, label_smoothing: float = 0.0, *, weight=None, ignore_index: int = -100, reduction: str = "mean"
    ) -> None:
        super().__init__(reduction=reduction)
        check_arg(
            "CrossEntropyLoss", "label_smoothing", label_smoothing, lambda v: 0.0 <= v <= 1.0, "in [0, 1]"
        )
        check_arg("CrossEntropyLoss", "ignore_index", ignore_index, lambda v: True, "an integer", int)
        self.label_smoothing = float(label_smoothing)
        self.ignore_index = int(ignore_index)
        self.weight = _weights_for("CrossEntropyLoss", "weight", weight)
        if self.weight is not None and self.weight.ndim != 1:
            raise ShapeError(
                f"CrossEntropyLoss: weight must be one number per class (C,), got {self.weight.shape}"
            )

    def _class_weights(self, c: int, dtype) -> np.ndarray | None:
        if self.weight is None:
            return None
        if self.weight.shape != (c,):
            raise ShapeError(
                f"CrossEntropyLoss: weight has {self.weight.size} entries, but the logits have {c} classes"
            )
        return self.weight.astype(dtype)

    def terms(self, pred, target):
        target = np.asarray(target)
        if pred.ndim > 2:
            return self._terms_positions(pred, target)
        if pred.ndim != 2:
            raise ShapeError(f"CrossEntropyLoss expects logits (N, C), got shape {pred.shape}")
        return self._terms_rows(pred, target)

    def _terms_rows(self, pred, target):
        n, c = pred.shape
        self._ignored = None  # the rows whose label is ignore_index, where some are
        logp = F.log_softmax(pred, axis=1)
        p = np.exp(logp)
        w = self._class_weights(c, pred.dtype)
        rows = np.arange(n)
        if target.dtype.kind in "iu":
            if target.shape != (n,):
                raise ShapeError(
                    f"CrossEntropyLoss: expected {n} integer labels, got target of shape {target.shape}"
                )
            # a label in [0, C) with ignore_index outside it: nothing is ignored (one max checks it)
            labels = target.astype(np.uintp)
            every = (n == 0 or labels.max() < c) and not 0 <= self.ignore_index < c
            if not every:
                kept = target != self.ignore_index
                every = bool(kept.all())
                if every:
                    labels = _labels(target, n, c, "CrossEntropyLoss")  # names a label out of range
                else:
                    labels = np.zeros(n, np.uintp)
                    labels[kept] = _labels(target[kept], int(kept.sum()), c, "CrossEntropyLoss")
                    self._ignored = ~kept
            if w is None and every:
                divisor = n
                if self.label_smoothing == 0:
                    # the common case: pick one log-probability per row, no one-hot matrix built
                    l = -logp[rows, labels]
                    p[rows, labels] -= 1
                    return l, p, divisor, (1,)
            else:
                row_w = np.ones(n, pred.dtype) if w is None else w[labels]  # w_{y_n}
                if not every:
                    row_w[~kept] = 0
                divisor = float(row_w.sum())
            y = _one_hot(labels, c, pred.dtype)
            if self.label_smoothing:
                y = y * (1.0 - self.label_smoothing) + self.label_smoothing / c
            u = y if w is None else y * w
            if not every:
                u[~kept] = 0
        else:
            if target.shape != pred.shape:
                raise ShapeError(
                    f"CrossEntropyLoss: probability targets must have the logits' shape {pred.shape}, "
                    f"got {target.shape}"
                )
            y = target.astype(pred.dtype, copy=False)
            if self.label_smoothing:
                y = y * (1.0 - self.label_smoothing) + self.label_smoothing / c
            u = y if w is None else y * w
            divisor = n
        l = -(u * logp).sum(axis=1)
        p *= u.sum(axis=1, keepdims=True)
        p -= u
        return l, p, divisor, (1,)

    def _terms_positions(self, pred, target):
        """(N, C, d1, ...): every position is one more row of an (N d1 ..., C) batch."""
        c = pred.shape[1]
        moved = np.moveaxis(pred, 1, -1)  # (N, d1, ..., C)
        if target.dtype.kind in "iu":
            if target.shape != moved.shape[:-1]:
                raise ShapeError(
                    f"CrossEntropyLoss: labels for logits {pred.shape} must have shape {moved.shape[:-1]}, "
                    f"got {target.shape}{class_last_hint(pred.shape, target.shape)}"
                )
            rows = target.reshape(-1)
        else:
            if target.shape != pred.shape:
                raise ShapeError(
                    f"CrossEntropyLoss: probability targets must have the logits' shape {pred.shape}, "
                    f"got {target.shape}"
                )
            rows = np.moveaxis(target, 1, -1).reshape(-1, c)
        l, dl, divisor, _ = self._terms_rows(moved.reshape(-1, c), rows)
        if self._ignored is not None:
            self._ignored = self._ignored.reshape(moved.shape[:-1])
        return l.reshape(moved.shape[:-1]), np.moveaxis(dl.reshape(moved.shape), -1, 1), divisor, (1,)

    def _gradient_of_empty_mean(self, dl):
        """PyTorch's gradient of a mean over nothing: 0 at the ignored positions, which take no
        part in the loss, and NaN (0/0) at the kept ones, whose classes all weigh 0."""
        ignored = getattr(self, "_ignored", None)
        if ignored is None:
            return super()._gradient_of_empty_mean(dl)
        positions = np.moveaxis(dl, 1, -1)  # a view (N, d1, ..., C): one row per position
        positions[...] = np.nan
        positions[ignored] = 0
        return dl

    def config(self):
        out = {"label_smoothing": self.label_smoothing}
        if self.weight is not None:
            out["weight"] = self.weight.tolist()
        if self.ignore_index != -100:
            out["ignore_index"] = self.ignore_index
        return {**out, **super().config()}


class BCEWithLogitsLoss(Loss):
    """Binary cross-entropy on logits: C = mean(-y log s(z) - (1 - y) log(1 - s(z))).

    PyTorch's options: ``weight`` (broadcast to the logits' shape) scales each term;
    ``pos_weight`` (broadcast along the last axis: one per class) scales the positive part:
        l = weight * (-pos_weight y log s(z) - (1 - y) log(1 - s(z))).
    Computed as l = weight * ((1 - y) z + (1 + (pos_weight - 1) y) softplus(-z)) with
    softplus(-z) = max(-z, 0) + log(1 + e^-|z|), which never overflows.
    Backward: dl/dz = weight * ((1 + (pos_weight - 1) y) s(z) - pos_weight y), which is
    s(z) - y without weights; the mean divides by the number of elements.
    """

    def __init__(self, weight=None, *, reduction: str = "mean", pos_weight=None) -> None:
        super().__init__(reduction=reduction)
        self.weight = _weights_for("BCEWithLogitsLoss", "weight", weight)
        self.pos_weight = _weights_for("BCEWithLogitsLoss", "pos_weight", pos_weight)

    def _broadcast(self, name: str, w, shape, dtype):
        if w is None:
            return None
        try:
            if np.broadcast_shapes(w.shape, shape) == shape:
                return w.astype(dtype)
        except ValueError:
            pass
        raise ShapeError(
            f"BCEWithLogitsLoss: {name} of shape {w.shape} does not broadcast to the logits' {shape}"
        )

    def terms(self, pred, target):
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
        w = self._broadcast("weight", self.weight, pred.shape, pred.dtype)
        pw = self._broadcast("pos_weight", self.pos_weight, pred.shape, pred.dtype)
        softplus_neg = np.maximum(-pred, 0) + np.log1p(np.exp(-np.abs(pred)))  # -log s(z)
        if pw is None:
            l = (1 - y) * pred + softplus_neg
            dl = F.sigmoid(pred) - y
        else:
            scale = 1 + (pw - 1) * y
            l = (1 - y) * pred + scale * softplus_neg
            dl = scale * F.sigmoid(pred) - pw * y
        if w is not None:
            l, dl = l * w, dl * w
        return l, dl, pred.size, ()

    def config(self):
        out = {} if self.weight is None else {"weight": self.weight.tolist()}
        if self.pos_weight is not None:
            out["pos_weight"] = self.pos_weight.tolist()
        return {**out, **super().config()}


class HingeLoss(Loss):
    """Margin loss, multi-class or binary.

    Multi-class, logits (N, C) with integer labels: PyTorch's ``MultiMarginLoss`` (p=1),
        C = 1/N sum_n 1/C sum_{j != y_n} max(0, margin - z_{n,y_n} + z_{n,j}),
    one term per example (its 1/C sum); the labels must be integers (N,). Binary, scores (N,)
    or (N, 1) with targets (N,) or (N, 1) in {-1, +1} or {0, 1} (0 is read as -1):
    C = mean(max(0, margin - t z)), the SVM hinge, one term per score. Scores of any other
    shape are refused (``MultiMarginLoss`` has no K-dimensional form).
    Backward: each violated margin adds +1 to dz_j and -1 to dz_y (multi-class, then / C, and
    / N for the mean); binary: dz = -t [margin - t z > 0] (/ N for the mean).
    """

    def __init__(self, margin: float = 1.0, *, reduction: str = "mean") -> None:
        super().__init__(reduction=reduction)
        check_arg("HingeLoss", "margin", margin, lambda v: 0.0 <= v < math.inf, "a finite number >= 0")
        self.margin = float(margin)

    def terms(self, pred, target):
        target = np.asarray(target)
        if pred.ndim == 2 and pred.shape[1] > 1:
            n, c = pred.shape
            labels = _labels(target, n, c, "HingeLoss")  # integers (N,), each in [0, C)
            rows = np.arange(n)
            margins = self.margin - pred[rows, labels][:, None] + pred
            margins[rows, labels] = 0
            active = margins > 0
            d = active.astype(pred.dtype)
            d[rows, labels] = -active.sum(axis=1)
            return np.maximum(margins, 0).sum(axis=1) * (1.0 / c), d * (1.0 / c), n, (1,)
        if not (pred.ndim == 1 or (pred.ndim == 2 and pred.shape[1] == 1)):
            raise ShapeError(
                "HingeLoss expects logits (N, C) with integer labels (N,), or binary scores (N,) or "
                f"(N, 1); got scores of shape {pred.shape} (PyTorch's MultiMarginLoss has no "
                "K-dimensional form)"
            )
        n = pred.shape[0]
        if target.shape not in ((n,), (n, 1)):
            raise ShapeError(
                f"HingeLoss: binary scores of shape {pred.shape} need one target per score, of shape "
                f"({n},) or ({n}, 1); got target of shape {target.shape}"
            )
        t = target.reshape(pred.shape).astype(pred.dtype)
        if not np.isin(t, (-1, 0, 1)).all():
            raise ValueError("HingeLoss: binary targets must be -1/+1 or 0/1")
        t = np.where(t == 0, -1, t).astype(pred.dtype)
        margins = self.margin - t * pred
        return np.maximum(margins, 0), -t * (margins > 0), pred.size, ()

    def config(self):
        return {"margin": self.margin, **super().config()}


class HuberLoss(Loss):
    """C = mean of 0.5 r^2 where |r| <= delta, else delta (|r| - 0.5 delta); r = a - y.

    PyTorch's ``HuberLoss``: quadratic near zero, linear in the tails.
    Backward: dl/da = clip(r, -delta, delta) (/ the number of elements for the mean).
    """

    def __init__(self, delta: float = 1.0, *, reduction: str = "mean") -> None:
        super().__init__(reduction=reduction)
        check_arg("HuberLoss", "delta", delta, lambda v: 0.0 < v < math.inf, "a finite number > 0")
        self.delta = float(delta)

    def terms(self, pred, target):
        r = pred - _targets_like(pred, target, "HuberLoss")
        a = np.abs(r)
        d = self.delta
        return np.where(a <= d, 0.5 * r * r, d * (a - 0.5 * d)), np.clip(r, -d, d), r.size, ()

    def config(self):
        return {"delta": self.delta, **super().config()}
