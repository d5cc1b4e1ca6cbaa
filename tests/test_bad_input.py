"""Bad input in memory is caught where it enters (fit, evaluate, predict, a constructor), with
a message naming the argument, what was expected and what was given: one case per row."""

from __future__ import annotations

import numpy as np
import pytest

import glassnet as gn

RNG = np.random.default_rng(0)
X = RNG.standard_normal((40, 2)).astype(np.float32)
Y = RNG.integers(0, 3, 40)


def model(dtype=np.float32):
    return gn.Sequential(gn.Linear(2, 8, rng=np.random.default_rng(1), dtype=dtype), gn.ReLU(),
                         gn.Linear(8, 3, rng=np.random.default_rng(2), dtype=dtype))  # fmt: skip


def fit(x=X, y=Y, val=None, **kwargs):
    m = model()
    opt = kwargs.pop("opt", None) or gn.optim.SGD(m.parameters(), lr=0.1)
    return gn.fit(m, gn.CrossEntropyLoss(), opt, (x, y), val_data=val, verbose=False, **kwargs)


def evaluate(x=X, y=Y, **kwargs):
    return gn.evaluate(model(), gn.CrossEntropyLoss(), (x, y), **kwargs)


def predict(x=X, **kwargs):
    return gn.predict(model(), x, **kwargs)


def params():
    return model().parameters()


def with_value(a, index, value):
    a = a.copy()
    a[index] = value
    return a


# (what is wrong, the call, the pieces its message must hold: argument, expected, given)
CASES = [
    # wrong shapes
    (
        "fit: x of the wrong shape",
        lambda: fit(x=np.zeros((40, 3), np.float32)),
        ["train_data: x has examples of shape (3,)", "Linear expects input (N, ..., 2)", "got shape (1, 3)"],
    ),
    (
        "evaluate: x of the wrong shape",
        lambda: evaluate(x=np.zeros((40, 5), np.float32)),
        ["data: x has examples of shape (5,)", "Linear expects input (N, ..., 2)", "(1, 5)"],
    ),
    (
        "evaluate: an output the loss cannot take",
        lambda: evaluate(x=np.zeros((40, 2, 2), np.float32)),
        [
            "data: the loss cannot take the model's output (shape (2, 3) per example)",
            "y of shape ()",
            # 3-D logits are PyTorch's K-dimensional form, (N, C, d1): labels (N, d1) expected
            "CrossEntropyLoss: labels for logits (1, 2, 3) must have shape (1, 3), got (1,)",
        ],
    ),
    (
        "predict: x of the wrong shape",
        lambda: predict(np.zeros((5, 4), np.float32)),
        ["predict: x has examples of shape (4,)", "Linear expects input (N, ..., 2)", "(5, 4)"],
    ),
    (
        "predict: a scalar",
        lambda: predict(np.float32(1.0)),
        ["predict: x must have one row per example", "scalar"],
    ),
    (
        "y of the wrong shape",
        lambda: fit(y=np.zeros((40, 2), np.float32)),
        [
            "train_data: the loss cannot take",
            "targets y of shape (2,) per example and dtype float32",
            "targets must have the logits' shape (1, 3)",
            "got (1, 2)",
        ],
    ),
    # wrong dtypes
    (
        "integer x",
        lambda: fit(x=(X * 100).astype(np.int64)),
        ["train_data: x must be a float array", "(float16, float32 or float64)", "got dtype int64", "/ 255"],
    ),
    (
        "uint8 x to predict",
        lambda: predict(np.zeros((2, 2), np.uint8)),
        ["predict: x must be a float array", "got dtype uint8"],
    ),
    (
        "object x",
        lambda: evaluate(x=np.array([[1.0, 2.0]] * 40, dtype=object)),
        ["data: x must be a float array", "got dtype object"],
    ),
    (
        "float16 layer",
        lambda: gn.Linear(2, 3, dtype=np.float16),
        ["Linear: dtype must be float32 or float64", "float16"],
    ),
    (
        "integer layer",
        lambda: gn.Conv2d(1, 2, 3, dtype=np.int32),
        ["Conv2d: dtype must be float32 or float64", "int32"],
    ),
    (
        "float16 model",
        lambda: model().to(np.float16),
        ["Sequential.to: dtype must be float32 or float64", "float16"],
    ),
    # NaN and inf
    (
        "NaN in x",
        lambda: fit(x=with_value(X, (7, 1), np.nan)),
        ["train_data: x contains 1 NaN/inf values (first at row 7)"],
    ),
    (
        "inf in val x",
        lambda: fit(val=(with_value(X, (3, 0), np.inf), Y)),
        ["val_data: x contains 1 NaN/inf", "row 3"],
    ),
    ("NaN in evaluate", lambda: evaluate(x=with_value(X, (0, 0), np.nan)), ["data: x contains 1 NaN/inf"]),
    (
        "inf in predict",
        lambda: predict(with_value(X, (2, 1), -np.inf)),
        ["predict: x contains 1 NaN/inf", "row 2"],
    ),
    (
        "float64 beyond float32",
        lambda: predict(with_value(X.astype(np.float64), (4, 0), 1e300)),
        ["predict: x contains 1 NaN/inf values (first at row 4)"],
    ),
    (
        "NaN in float targets",
        lambda: fit(y=with_value(np.eye(3, dtype=np.float32)[Y], (5, 2), np.nan)),
        ["train_data: y contains 1 NaN/inf values (first at row 5)"],
    ),
    # labels
    (
        "label out of range",
        lambda: fit(y=with_value(Y, 9, 3)),
        ["train_data: label 3 out of range for the model's 3 outputs (0..2)"],
    ),
    (
        "negative label in evaluate",
        lambda: evaluate(y=with_value(Y, 0, -1)),
        ["data: label -1 out of range", "(0..2)"],
    ),
    (
        "float labels",
        lambda: fit(y=Y.astype(np.float32)),
        [
            "train_data: the loss cannot take",
            "y of shape () per example and dtype float32",
            "probability targets must have the logits' shape (1, 3), got (1,)",
        ],
    ),
    (
        "string labels",
        lambda: fit(y=Y.astype(str)),
        ["train_data: y must be integer class labels or float targets", "got dtype <U"],
    ),
    (
        "bool labels",
        lambda: evaluate(y=Y > 0),
        ["data: y must be integer class labels or float targets", "bool"],
    ),
    # sizes
    (
        "empty dataset",
        lambda: fit(x=X[:0], y=Y[:0]),
        ["train_data: x must have at least one row", "shape (0, 2)"],
    ),
    ("empty evaluation set", lambda: evaluate(x=X[:0], y=Y[:0]), ["data: x must have at least one row"]),
    ("mismatched lengths", lambda: fit(y=Y[:-3]), ["train_data: x has 40 rows but y has 37"]),
    ("val not a pair", lambda: fit(val=X), ["val_data: expected a (x, y) pair, got ndarray"]),
    # fit's hyperparameters
    ("negative epochs", lambda: fit(epochs=-1), ["fit: epochs must be an integer >= 0, got -1"]),
    ("fractional epochs", lambda: fit(epochs=2.5), ["fit: epochs must be an integer >= 0, got 2.5"]),
    ("zero batch size", lambda: fit(batch_size=0), ["fit: batch_size must be an integer >= 1, got 0"]),
    ("float batch size", lambda: fit(batch_size=32.0), ["fit: batch_size must be an integer >= 1, got 32.0"]),
    (
        "evaluate batch size",
        lambda: evaluate(batch_size=-5),
        ["evaluate: batch_size must be an integer >= 1, got -5"],
    ),
    (
        "predict batch size",
        lambda: predict(batch_size=0),
        ["predict: batch_size must be an integer >= 1, got 0"],
    ),
    ("clip_norm", lambda: fit(clip_norm=0.0), ["fit: clip_norm must be a number > 0 or None, got 0.0"]),
    # optimizers
    (
        "negative lr",
        lambda: gn.optim.SGD(params(), lr=-0.1),
        ["SGD: lr must be a finite number >= 0, got -0.1"],
    ),
    (
        "NaN lr",
        lambda: gn.optim.Adam(params(), lr=float("nan")),
        ["Adam: lr must be a finite number >= 0, got nan"],
    ),
    (
        "string lr",
        lambda: gn.optim.RMSprop(params(), lr="0.1"),
        ["RMSprop: lr must be a finite number >= 0, got '0.1'"],
    ),
    (
        "negative momentum",
        lambda: gn.optim.SGD(params(), momentum=-0.9),
        ["SGD: momentum must be a finite number >= 0, got -0.9"],
    ),
    (
        "dampening",
        lambda: gn.optim.SGD(params(), momentum=0.9, dampening=2),
        ["SGD: dampening must be in [0, 1], got 2"],
    ),
    (
        "betas",
        lambda: gn.optim.AdamW(params(), betas=(0.9, 1.0)),
        ["AdamW: betas must be a pair of numbers in [0, 1), got (0.9, 1.0)"],
    ),
    (
        "negative eps",
        lambda: gn.optim.Adam(params(), eps=-1e-8),
        ["Adam: eps must be a finite number >= 0, got -1e-08"],
    ),
    (
        "negative weight decay",
        lambda: gn.optim.Adagrad(params(), weight_decay=-1),
        ["Adagrad: weight_decay must be a finite number >= 0, got -1"],
    ),
    (
        "RMSprop alpha",
        lambda: gn.optim.RMSprop(params(), alpha=1.5),
        ["RMSprop: alpha must be in [0, 1], got 1.5"],
    ),
    # layers
    ("dropout p = 1", lambda: gn.Dropout(1.0), ["Dropout: p must be a probability in [0, 1), got 1.0"]),
    ("dropout p < 0", lambda: gn.Dropout(-0.1), ["Dropout: p must be a probability in [0, 1), got -0.1"]),
    (
        "dropout p NaN",
        lambda: gn.Dropout(float("nan")),
        ["Dropout: p must be a probability in [0, 1), got nan"],
    ),
    (
        "Gaussian dropout rate",
        lambda: gn.GaussianDropout(1),
        ["GaussianDropout: rate must be in [0, 1), got 1"],
    ),
    ("Linear size 0", lambda: gn.Linear(0, 3), ["Linear: in_features must be an integer >= 1, got 0"]),
    ("Linear size 2.5", lambda: gn.Linear(2, 2.5), ["Linear: out_features must be an integer >= 1, got 2.5"]),
    ("Conv channels", lambda: gn.Conv2d(1, 0, 3), ["Conv2d: out_channels must be an integer >= 1, got 0"]),
    (
        "Conv kernel size",
        lambda: gn.Conv2d(1, 2, (3, 0)),
        ["Conv2d: kernel_size must be >= 1 (an int or a pair of ints), got (3, 0)"],
    ),
    (
        "Conv kernel type",
        lambda: gn.Conv2d(1, 2, 2.5),
        ["Conv2d: kernel_size must be an int or a pair of ints, got 2.5"],
    ),
    ("BatchNorm eps", lambda: gn.BatchNorm1d(4, eps=0), ["BatchNorm1d: eps must be a number > 0, got 0"]),
    (
        "BatchNorm momentum",
        lambda: gn.BatchNorm2d(4, momentum=1.5),
        ["BatchNorm2d: momentum must be in [0, 1] or None, got 1.5"],
    ),
]


@pytest.mark.parametrize(("call", "pieces"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_is_caught_at_the_boundary_with_a_clear_message(call, pieces):
    with pytest.raises(ValueError) as info:
        call()
    message = str(info.value)
    for piece in pieces:
        assert piece in message, f"{piece!r} not in {message!r}"


def test_a_batch_larger_than_the_data_is_one_batch_of_all_of_it():
    """Documented behaviour, not an error (as Keras): one step per epoch on every example."""
    history = fit(batch_size=1000, epochs=2, shuffle=False)
    assert len(history.history["loss"]) == 2


def test_float16_data_is_cast_up_exactly():
    """float16 inputs lose nothing in float32, so they are accepted (unlike integers)."""
    x16 = X.astype(np.float16)
    np.testing.assert_array_equal(predict(x16), predict(x16.astype(np.float32)))


@pytest.mark.parametrize("label_dtype", [np.uint8, np.int8, np.int16, np.uint32, np.int64])
def test_numpy_scalars_and_labels_of_any_integer_dtype_are_accepted(label_dtype):
    """Legitimate input the checks must not refuse: NumPy scalars as hyperparameters (what
    ``np.linspace`` or a config loaded with NumPy gives) and labels of every integer dtype."""
    rng = np.random.default_rng(1)
    m = gn.Sequential(gn.Linear(np.int64(2), np.int32(8), rng=rng), gn.ReLU(),
                      gn.Dropout(np.float32(0.25)), gn.Linear(8, np.uint8(3), rng=rng))  # fmt: skip
    opt = gn.optim.SGD(m.parameters(), lr=np.float32(0.1), momentum=np.float64(0.9))
    history = gn.fit(m, gn.CrossEntropyLoss(), opt, (X, Y.astype(label_dtype)), epochs=np.int64(2),
                     batch_size=np.int32(8), clip_norm=np.float32(5.0), verbose=False)  # fmt: skip
    assert len(history.epoch) == 2
    assert set(gn.evaluate(m, gn.CrossEntropyLoss(), (X, Y.astype(label_dtype)))) == {"loss", "accuracy"}
