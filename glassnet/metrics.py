"""Metrics beyond accuracy: top-k accuracy, macro precision/recall/F1, a per-class report,
MAE and RMSE.

Two forms of each:

- functions on whole arrays (``top_k_accuracy(scores, labels, k)``, ``classification_report(
  labels, predicted)``, ``mean_absolute_error(pred, target)`` ...), the same numbers as
  scikit-learn's functions of those names;
- streaming ``Metric`` objects for ``fit(..., metrics=[...])`` and ``evaluate(..., metrics=)``,
  which see the data batch by batch (``reset``, ``update(pred, y)``, ``result``) and give the
  value over all of it: they keep counts (a confusion matrix, sums), never a mean of batch means.

``get("top5")`` names them as the CLI does: ``topK`` (any K >= 1), ``macro_precision``,
``macro_recall``, ``macro_f1``, ``mae``, ``rmse``.

Classification metrics read the model's outputs as scores: the predicted class is the argmax
over axis 1 (logits (N, C) or (N, C, d1, ...)), or ``score > 0`` for one logit per example
(``BCEWithLogitsLoss``: classes 0 and 1). Targets are integer labels (N,) or (N, d1, ...), or
one-hot/probability rows (the argmax is the label). Labels equal to ``ignore_index`` (a
``CrossEntropyLoss``'s, passed by fit) are left out.

Macro averages are over the classes that occur among the labels or the predictions (as
scikit-learn's default ``labels``); a class never predicted has precision 0, one never present
recall 0 (scikit-learn's ``zero_division=0``).
"""

from __future__ import annotations

import math
import re

import numpy as np

# --- functions on whole arrays ----------------------------------------------------------------


def _classes_of(scores: np.ndarray, target: np.ndarray, ignore_index: int | None = None):
    """(predicted classes, label classes, number of classes), flat, ignored positions removed."""
    scores, target = np.asarray(scores), np.asarray(target)
    if scores.ndim >= 2 and scores.shape[1] > 1:
        predicted, classes = scores.argmax(axis=1), scores.shape[1]
    else:  # one logit per example: class 1 where it is > 0
        predicted, classes = (scores.reshape(scores.shape[0], -1) > 0).astype(np.intp), 2
        if predicted.shape[1] == 1:
            predicted = predicted[:, 0]
    if classes == 2 and predicted.ndim == 1 and not (scores.ndim >= 2 and scores.shape[1] == 2):
        labels = (target.reshape(predicted.shape) > (0.5 if target.dtype.kind == "f" else 0)).astype(np.intp)
    elif target.shape == scores.shape and target.dtype.kind == "f":
        labels = target.argmax(axis=1)  # one-hot or probability rows
    else:
        labels = target.reshape(predicted.shape)
    labels, predicted = labels.reshape(-1), predicted.reshape(-1)
    if ignore_index is not None:
        kept = labels != ignore_index
        labels, predicted = labels[kept], predicted[kept]
    if labels.size and (labels.min() < 0 or labels.max() >= classes):
        bad = labels[(labels < 0) | (labels >= classes)][0]
        raise ValueError(f"metrics: label {bad} out of range for {classes} classes (0..{classes - 1})")
    return predicted, labels.astype(np.intp), classes


def confusion_matrix(labels, predicted, classes: int | None = None) -> np.ndarray:
    """counts[i, j]: examples of class i predicted as class j (scikit-learn's layout); classes
    0 .. ``classes`` - 1 (default: up to the largest label or prediction)."""
    labels, predicted = np.asarray(labels).reshape(-1), np.asarray(predicted).reshape(-1)
    if labels.shape != predicted.shape:
        raise ValueError(f"confusion_matrix: {labels.size} labels but {predicted.size} predictions")
    for what, v in (("labels", labels), ("predictions", predicted)):
        if v.size and v.dtype.kind not in "iub":
            raise ValueError(f"confusion_matrix: {what} must be integer classes, got dtype {v.dtype}")
    if classes is None:
        classes = int(max(labels.max(initial=-1), predicted.max(initial=-1))) + 1
    for what, v in (("label", labels), ("prediction", predicted)):
        if v.size and (v.min() < 0 or v.max() >= classes):
            bad = v[(v < 0) | (v >= classes)][0]
            raise ValueError(f"confusion_matrix: {what} {bad} out of range for {classes} classes")
    flat = labels.astype(np.int64) * classes + predicted.astype(np.int64)
    return np.bincount(flat, minlength=classes * classes).reshape(classes, classes)


def _per_class(counts: np.ndarray) -> dict[str, np.ndarray]:
    """Precision, recall, F1 and support per class from a confusion matrix (0 where undefined)."""
    tp = np.diag(counts).astype(np.float64)
    predicted, support = counts.sum(axis=0), counts.sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(predicted > 0, tp / predicted, 0.0)
        recall = np.where(support > 0, tp / support, 0.0)
        f1 = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0.0)
    return {"precision": precision, "recall": recall, "f1": f1, "support": support,
            "present": (predicted > 0) | (support > 0)}  # fmt: skip


def _macro(counts: np.ndarray, which: str) -> float:
    per = _per_class(counts)
    present = per["present"]
    return float(per[which][present].mean()) if present.any() else 0.0


def precision_recall_f1(labels, predicted, classes: int | None = None) -> dict[str, float]:
    """Macro-averaged precision, recall and F1 of class predictions (scikit-learn's
    ``precision_recall_fscore_support(average="macro", zero_division=0)``)."""
    counts = confusion_matrix(labels, predicted, classes)
    return {k: _macro(counts, k) for k in ("precision", "recall", "f1")}


def classification_report(labels, predicted, classes: int | None = None, names=None) -> dict:
    """Per class: precision, recall, f1 and support, plus "macro avg" and "accuracy" (the keys
    and numbers of scikit-learn's ``classification_report(..., output_dict=True)``, every
    class from 0 to ``classes - 1`` listed; ``names`` labels them)."""
    return report_from_counts(confusion_matrix(labels, predicted, classes), names)


def report_from_counts(counts: np.ndarray, names=None) -> dict:
    """``classification_report`` from a confusion matrix (``Confusion().counts``)."""
    counts = np.asarray(counts)
    per = _per_class(counts)
    names = [str(c) for c in range(len(counts))] if names is None else [str(n) for n in names]
    if len(names) != len(counts):
        raise ValueError(f"classification_report: {len(names)} names for {len(counts)} classes")
    report = {
        name: {
            "precision": float(per["precision"][c]),
            "recall": float(per["recall"][c]),
            "f1-score": float(per["f1"][c]),
            "support": int(per["support"][c]),
        }  # fmt: skip
        for c, name in enumerate(names)
    }
    total = int(counts.sum())
    report["accuracy"] = float(np.trace(counts) / total) if total else 0.0
    report["macro avg"] = {"precision": _macro(counts, "precision"), "recall": _macro(counts, "recall"),
                           "f1-score": _macro(counts, "f1"), "support": total}  # fmt: skip
    return report


def format_report(report: dict) -> str:
    """A ``classification_report`` as a table, one row per class."""
    width = max(len("macro avg"), *(len(k) for k in report))
    lines = [f"{'':>{width}}  precision  recall  f1-score  support"]
    for name, row in report.items():
        if name == "accuracy":
            continue
        lines.append(
            f"{name:>{width}}  {row['precision']:9.4f}  {row['recall']:6.4f}  {row['f1-score']:8.4f}  "
            f"{row['support']:7d}"
        )
    lines.append(f"{'accuracy':>{width}}  {report['accuracy']:.4f}")
    return "\n".join(lines)


def top_k_accuracy(scores, labels, k: int = 5) -> float:
    """The fraction of examples whose label is among the ``k`` highest scores (scikit-learn's
    ``top_k_accuracy_score`` for scores (N, C) and labels (N,)). Ties: the first ``k`` by
    ``argpartition``."""
    scores, labels = np.asarray(scores), np.asarray(labels)
    if labels.size == 0:
        return 0.0
    return _top_k_hits(scores, labels, k) / labels.size


def _top_k_hits(scores: np.ndarray, labels: np.ndarray, k: int) -> int:
    if scores.ndim < 2 or scores.shape[1] < 2:
        raise ValueError(f"top-{k} accuracy needs class scores (N, C, ...), got shape {scores.shape}")
    moved = np.moveaxis(scores, 1, -1).reshape(-1, scores.shape[1])
    labels = labels.reshape(-1)
    if k >= moved.shape[1]:
        return int(labels.size)
    # the label is in the top k when fewer than k scores beat it (ties counted for the label)
    own = moved[np.arange(len(labels)), labels][:, None]
    return int(np.count_nonzero((moved > own).sum(axis=1) < k))


def mean_absolute_error(pred, target) -> float:
    """mean |pred - target| over every element."""
    diff = np.asarray(pred, np.float64) - np.asarray(target, np.float64).reshape(np.shape(pred))
    return float(np.abs(diff).mean())


def root_mean_squared_error(pred, target) -> float:
    """sqrt(mean (pred - target)^2) over every element (Keras's RMSE; scikit-learn's for one
    output, and the square root of its multi-output ``mean_squared_error``)."""
    diff = np.asarray(pred, np.float64) - np.asarray(target, np.float64).reshape(np.shape(pred))
    return math.sqrt(float(np.mean(diff * diff)))


# --- streaming metrics for fit and evaluate --------------------------------------------------------


class Metric:
    """A metric over batches: ``reset()``, ``update(pred, y)`` per batch, ``result()``.

    ``ignore_index``: labels to leave out (fit sets it from a ``CrossEntropyLoss``)."""

    name = "metric"
    ignore_index: int | None = None

    def reset(self) -> None:
        raise NotImplementedError

    def update(self, pred: np.ndarray, y: np.ndarray) -> None:
        raise NotImplementedError

    def result(self) -> float:
        raise NotImplementedError

    # the running counts, by attribute name: what a checkpoint keeps of a metric mid-epoch
    counts_state: tuple[str, ...] = ()

    def state_dict(self) -> dict:
        """The running counts (``counts_state``), so that a run resumed mid-epoch goes on
        counting where it stopped."""
        return {k: getattr(self, k) for k in self.counts_state}

    def load_state_dict(self, state: dict) -> None:
        """Counts from ``state_dict``; each must have the kind of value this metric keeps (a count,
        a sum, or a square integer matrix or None for a confusion matrix)."""
        if set(state) != set(self.counts_state):
            raise ValueError(
                f"{self.name}: expected the counts {list(self.counts_state)}, got {sorted(state)}"
            )
        for k, v in state.items():
            if v is None or isinstance(v, np.ndarray):
                if v is not None and (v.ndim != 2 or v.shape[0] != v.shape[1] or v.dtype.kind not in "iu"):
                    raise ValueError(
                        f"{self.name}: {k} must be a square matrix of counts, got {v.dtype} {v.shape}"
                    )
            elif isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
                raise ValueError(f"{self.name}: {k} must be a finite count >= 0, got {v!r}")
            setattr(self, k, v)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"


class TopKAccuracy(Metric):
    """The fraction of labels among the ``k`` highest scores (over every position)."""

    def __init__(self, k: int = 5) -> None:
        if not isinstance(k, (int, np.integer)) or isinstance(k, bool) or k < 1:
            raise ValueError(f"TopKAccuracy: k must be an integer >= 1, got {k!r}")
        self.k, self.name = int(k), f"top{k}"
        self.reset()

    counts_state = ("hits", "count")

    def reset(self):
        self.hits, self.count = 0, 0

    def update(self, pred, y):
        pred, y = np.asarray(pred), np.asarray(y)
        if y.dtype.kind == "f" and y.shape == pred.shape:
            y = y.argmax(axis=1)
        if y.dtype.kind not in "iu":
            raise ValueError(
                f"{self.name}: top-k accuracy needs integer labels or one-hot rows, got {y.dtype}"
            )
        if self.ignore_index is not None:
            kept = (y != self.ignore_index).reshape(-1)
            if not kept.all():
                moved = np.moveaxis(pred, 1, -1).reshape(-1, pred.shape[1])[kept]
                pred, y = moved, y.reshape(-1)[kept]
        self.hits += _top_k_hits(pred, y, self.k)
        self.count += y.size

    def result(self):
        return self.hits / self.count if self.count else 0.0


class _Confusion(Metric):
    """A confusion matrix over batches; subclasses read what they need from it."""

    which = ""

    def __init__(self) -> None:
        self.name = f"macro_{self.which}"
        self.reset()

    counts_state = ("counts",)

    def reset(self):
        self.counts = None

    def update(self, pred, y):
        predicted, labels, classes = _classes_of(pred, y, self.ignore_index)
        counts = confusion_matrix(labels, predicted, classes)
        self.counts = counts if self.counts is None else self.counts + counts

    def result(self):
        return 0.0 if self.counts is None else _macro(self.counts, self.which)


class Confusion(_Confusion):
    """The confusion matrix itself: after ``evaluate(..., metrics=[c])``, ``c.counts[i, j]`` is
    how many labels i were predicted as j, from the same forward pass as the loss (no second
    pass over the data for a confusion matrix or a per-class report). Its logged value is the
    accuracy the matrix holds, under the name "confusion"."""

    def __init__(self) -> None:
        self.name = "confusion"
        self.reset()

    def result(self):
        total = 0 if self.counts is None else self.counts.sum()
        return float(np.trace(self.counts) / total) if total else 0.0


class MacroPrecision(_Confusion):
    which = "precision"


class MacroRecall(_Confusion):
    which = "recall"


class MacroF1(_Confusion):
    which = "f1"


class MAE(Metric):
    name = "mae"

    def __init__(self) -> None:
        self.reset()

    counts_state = ("total", "count")

    def reset(self):
        self.total, self.count = 0.0, 0

    def update(self, pred, y):
        diff = self._diff(pred, y)
        self.total += float(np.abs(diff).sum())
        self.count += diff.size

    def _diff(self, pred, y) -> np.ndarray:
        """pred - target, the target as many numbers as pred (a regression's: class labels are
        refused, since a difference to a class index means nothing)."""
        pred, y = np.asarray(pred, np.float64), np.asarray(y)
        if y.size != pred.size:
            kind = "class labels" if y.dtype.kind in "iu" else "targets"
            raise ValueError(
                f"metrics: {self.name} compares predictions and targets of one shape (a regression), "
                f"got predictions {pred.shape} and {kind} {y.shape}"
            )
        return pred - y.astype(np.float64).reshape(pred.shape)

    def result(self):
        return self.total / self.count if self.count else 0.0


class RMSE(MAE):
    name = "rmse"

    def update(self, pred, y):
        diff = self._diff(pred, y)
        self.total += float(np.vdot(diff, diff))
        self.count += diff.size

    def result(self):
        return math.sqrt(self.total / self.count) if self.count else 0.0


NAMES = {"macro_precision": MacroPrecision, "macro_recall": MacroRecall, "macro_f1": MacroF1,
         "mae": MAE, "rmse": RMSE}  # fmt: skip


def get(name) -> Metric:
    """A fresh metric by name ("top5", "macro_f1", "mae", ...), or ``name`` if it is a Metric."""
    if isinstance(name, Metric):
        return name
    if not isinstance(name, str):
        raise TypeError(
            f"metrics: expected a metric name or a glassnet.metrics.Metric, got {type(name).__name__}"
        )
    match = re.fullmatch(r"top_?(\d+)(?:_accuracy)?", name)
    if match:
        return TopKAccuracy(int(match.group(1)))
    if name not in NAMES:
        raise ValueError(
            f"metrics: unknown metric {name!r}; known: topK (top5, top3, ...), {', '.join(NAMES)}"
        )
    return NAMES[name]()


def get_all(names, ignore_index: int | None = None) -> list[Metric]:
    """``get`` of each of ``names`` (None: none), with ``ignore_index`` set on each; two
    metrics of one name are refused (their logs would overwrite each other)."""
    if names is None:
        return []
    if isinstance(names, (str, Metric)):
        names = [names]
    metrics = [get(n) for n in names]
    seen = [m.name for m in metrics]
    for m in metrics:
        if seen.count(m.name) > 1:
            raise ValueError(f"metrics: {m.name!r} is asked for twice")
        if m.name in ("loss", "accuracy", "lr"):
            raise ValueError(f"metrics: {m.name!r} is logged already; give another name")
        m.ignore_index = ignore_index
    return metrics


__all__ = [
    "Confusion", "MAE", "RMSE", "MacroF1", "MacroPrecision", "MacroRecall", "Metric", "TopKAccuracy",
    "classification_report", "confusion_matrix", "format_report", "get", "get_all", "report_from_counts",
    "mean_absolute_error", "precision_recall_f1", "root_mean_squared_error", "top_k_accuracy",
]  # fmt: skip
