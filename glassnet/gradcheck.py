"""Numerical gradient checks: is every backward the derivative of its forward?

Central differences in float64, (f(t + eps) - f(t - eps)) / (2 eps), have error O(eps^2) from
the Taylor remainder plus O(1e-16 / eps) from rounding; eps = 1e-6 balances the two near 1e-10.
Layers are checked against f = sum(R * layer(x)) with a random upstream gradient R (an
all-ones R would hide a transposed or mis-summed backward). Stochastic layers draw the same
noise at every evaluation (their generator is re-seeded before each forward), so the
function being differentiated is fixed.

The error reported for an array is max |analytic - numeric| / max(|numeric|, |analytic|, 1e-12)
with both maxima over the array: the worst entry measured against that gradient's scale, so
a tiny entry's rounding noise cannot dominate. A correct float64 backward scores ~1e-8 or less.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from .module import Module, Param

EPS = 1e-6
TOLERANCE = 1e-6


def relative_error(analytic: np.ndarray, numeric: np.ndarray) -> float:
    scale = max(float(np.abs(numeric).max(initial=0)), float(np.abs(analytic).max(initial=0)), 1e-12)
    return float(np.abs(analytic - numeric).max(initial=0)) / scale


def numeric_grad(
    f: Callable[[], float], a: np.ndarray, eps: float = EPS, entries: np.ndarray | None = None
) -> np.ndarray:
    """d f / d a by central differences, perturbing ``a`` in place (restored afterwards).

    With ``entries`` (flat indices) only those are computed; the rest stay NaN.
    """
    # *_like and order="A" keep a's memory order (Linear's W is column-major): flat views
    grad = np.full_like(a, np.nan, dtype=np.float64) if entries is not None else np.zeros_like(a, np.float64)
    flat, gflat = a.reshape(-1, order="A"), grad.reshape(-1, order="A")
    assert np.shares_memory(flat, a), "numeric_grad needs a contiguous array"
    for i in range(flat.size) if entries is None else entries:
        old = flat[i]
        flat[i] = old + eps
        plus = f()
        flat[i] = old - eps
        minus = f()
        flat[i] = old
        gflat[i] = (plus - minus) / (2 * eps)
    return grad


def _compare(analytic, numeric) -> float:
    mask = ~np.isnan(numeric)
    return relative_error(analytic[mask], numeric[mask])


def _entries(a: np.ndarray, max_entries: int | None, rng) -> np.ndarray | None:
    if max_entries is None or a.size <= max_entries:
        return None
    return rng.choice(a.size, size=max_entries, replace=False)


def _all_errors(f, module: Module, x_name: str, x, dx, eps, max_entries, rng) -> dict[str, float]:
    """The error of dx and of every parameter gradient against differences of ``f``."""
    errors = {x_name: _compare(dx, numeric_grad(f, x, eps, _entries(x, max_entries, rng)))}
    for name, p in module.named_parameters():
        errors[name] = _compare(p.grad, numeric_grad(f, p.data, eps, _entries(p.data, max_entries, rng)))
    return errors


class _FrozenNoise:
    """Re-seed every stochastic layer before each forward; restore their generators after."""

    def __init__(self, model: Module, seed: int) -> None:
        self.model, self.seed = model, seed
        self.saved = [(m, m.rng) for m in model.modules() if hasattr(m, "rng")]

    def reseed(self) -> None:
        for m, _ in self.saved:
            m.rng = np.random.default_rng(self.seed)

    def restore(self) -> None:
        for m, rng in self.saved:
            m.rng = rng


def check_layer_gradients(
    layer: Module, x: np.ndarray, seed: int = 0, eps: float = EPS, max_entries: int | None = None
) -> dict[str, float]:
    """Check ``dx`` and every parameter gradient of one layer; ``layer`` is converted to float64.

    Returns {"x": error, "<param name>": error, ...}.
    """
    layer.to(np.float64)
    x = np.array(x, dtype=np.float64)
    # a stream of its own: the table's samplers draw from default_rng(seed), and an upstream
    # gradient equal to a multiple of x would hide errors
    rng = np.random.default_rng([seed, 1])
    noise = _FrozenNoise(layer, seed)
    try:
        noise.reseed()
        y = layer.forward(x)
        upstream = rng.standard_normal(y.shape)

        def f() -> float:
            noise.reseed()
            return float(np.vdot(upstream, layer.forward(x)))

        layer.zero_grad()
        noise.reseed()
        layer.forward(x)
        dx = layer.backward(upstream.copy())
        return _all_errors(f, layer, "x", x, dx, eps, max_entries, rng)
    finally:
        noise.restore()


def check_loss_gradients(loss_fn, pred: np.ndarray, target, eps: float = EPS) -> dict[str, float]:
    """Check a loss's ``backward()`` against differences of its ``forward``."""
    pred = np.array(pred, dtype=np.float64)
    target = np.asarray(target)
    if target.dtype.kind == "f":
        target = target.astype(np.float64)
    loss_fn.forward(pred, target)
    analytic = loss_fn.backward().copy()
    numeric = numeric_grad(lambda: loss_fn.forward(pred, target), pred, eps)
    return {"pred": relative_error(analytic, numeric)}


def check_gradients(
    model: Module,
    loss_fn,
    x: np.ndarray,
    y,
    regularizer=None,
    eps: float = EPS,
    max_entries: int | None = None,
    seed: int = 0,
) -> dict[str, float]:
    """Check a whole model: every parameter's gradient of loss (+ penalty) by finite differences.

    The model is checked in float64 (its parameters are converted for the check and put back
    afterwards, as are its buffers and its train/eval mode), in training mode with dropout
    masks frozen. Returns {"input": error, "0.W": error, ...}; ``max_entries`` samples that many
    entries per array for big models.
    """
    params = model.parameters()
    saved = [(p, p.data, p.grad) for p in params]
    # buffers are attributes of their module, by the same name; model.to() may replace them
    # and the check's forwards update them, so put back the original arrays and values
    buffers = [(m, name, b, b.copy()) for m in model.modules() for name, b in m.buffers().items()]
    modes = [m.training for m in model.modules()]
    noise = _FrozenNoise(model, seed)
    rng = np.random.default_rng(seed)
    x = np.array(x, dtype=np.float64)
    y = np.asarray(y)
    if y.dtype.kind == "f":
        y = y.astype(np.float64)
    try:
        model.to(np.float64)
        model.train()

        def f() -> float:
            noise.reseed()
            loss = loss_fn.forward(model.forward(x), y)
            return loss + (regularizer.penalty(params) if regularizer is not None else 0.0)

        model.zero_grad()
        f()
        dx = model.backward(loss_fn.backward())
        if regularizer is not None:
            regularizer.backward(params)
        return _all_errors(f, model, "input", x, dx, eps, max_entries, rng)
    finally:
        noise.restore()
        for p, data, grad in saved:
            p.data, p.grad = data, grad
        for m, mode in zip(model.modules(), modes):
            m.training = mode
        for m, name, b, value in buffers:
            b[...] = value
            setattr(m, name, b)


def directional_check(model: Module, loss_fn, x: np.ndarray, y, eps: float = 1e-6, seed: int = 0) -> float:
    """One random direction v through all parameters at once: compare
    (L(t + eps v) - L(t - eps v)) / (2 eps) with grad . v. Two forwards whatever the size,
    so it runs at realistic sizes. Returns the relative error. The model must be float64.
    """
    params = model.parameters()
    rng = np.random.default_rng(seed)
    noise = _FrozenNoise(model, seed)
    try:
        vs = [rng.standard_normal(p.shape) for p in params]

        def f() -> float:
            noise.reseed()
            return loss_fn.forward(model.forward(x), y)

        model.zero_grad()
        f()
        model.backward(loss_fn.backward())
        analytic = sum(float(np.vdot(p.grad, v)) for p, v in zip(params, vs))
        for p, v in zip(params, vs):
            p.data += eps * v
        plus = f()
        for p, v in zip(params, vs):
            p.data -= 2 * eps * v
        minus = f()
        for p, v in zip(params, vs):
            p.data += eps * v
    finally:
        noise.restore()
    numeric = (plus - minus) / (2 * eps)
    return abs(analytic - numeric) / max(abs(analytic), abs(numeric), 1e-12)


@dataclass
class Case:
    """One row of the built-in table: the class, the constructor arguments the row sets, and
    how to sample its inputs.

    ``args`` holds every constructor argument the row gives, by name (a generator ``rng`` is
    added by ``make`` when the class takes one), so a test can read which arguments the table
    exercises with which values. ``wrap(obj, rng)`` adjusts the built object where the row needs
    more than a constructor call (random batch-norm gamma, a recurrent layer run from a given
    state). ``kind`` is "layer", "loss" or "regularizer".

    ``sample(rng)`` returns the input (layers), (pred, target) (losses) or a list of ``Param``
    (regularizers), drawn away from kinks (|z| >= 0.1 around ReLU's 0, margins away from hinge
    points) so differences are smooth.
    """

    name: str
    cls: type
    args: dict[str, object]
    sample: Callable[[np.random.Generator], object]
    kind: str = "layer"
    wrap: Callable[[object, np.random.Generator], object] | None = None

    def make(self, rng: np.random.Generator) -> object:
        """The row's object, built from ``args`` (and ``rng``, if the class takes one)."""
        kwargs = dict(self.args)
        if "rng" in inspect.signature(self.cls).parameters:
            kwargs["rng"] = rng
        obj = self.cls(**kwargs)
        return obj if self.wrap is None else self.wrap(obj, rng)


def away_from_zero(shape, low: float = 0.1, high: float = 2.0):
    def sample(rng):
        mag = rng.uniform(low, high, size=shape)
        return np.where(rng.random(shape) < 0.5, -mag, mag)

    return sample


def _normal(shape, scale=1.0):
    return lambda rng: rng.standard_normal(shape) * scale


class FromInitialState(Module):
    """A recurrent layer run from a given initial state, held as a parameter ``h0`` (and ``c0``
    for an LSTM) so that the table's checks (finite differences, PyTorch) cover the layer's
    gradient with respect to its initial state, ``dh0`` (and ``dc0``)."""

    def __init__(self, layer: Module, batch: int, rng: np.random.Generator) -> None:
        super().__init__()
        self.layer = layer
        self.children = [layer]
        shape = (layer.num_layers * layer.directions, batch, layer.hidden_size)
        names = ["h0", "c0"][: layer.states]
        dtype = layer.parameters()[0].data.dtype
        self.params = [Param(rng.uniform(-1, 1, shape).astype(dtype), name, decay=False) for name in names]

    def forward(self, x: np.ndarray) -> np.ndarray:
        states = [p.data for p in self.params]
        return self.layer.forward(x, states[0] if len(states) == 1 else tuple(states))

    def backward(self, dy: np.ndarray) -> np.ndarray:
        dx = self.layer.backward(dy)
        for p, grad in zip(self.params, [self.layer.dh0, getattr(self.layer, "dc0", None)]):
            p.grad += grad
        return dx


def _bands(shape, *bands: tuple[float, float]):
    """Values drawn in turn from each (low, high) band, shuffled: a sampler that reaches every
    branch of a piecewise function (one band per piece) and stays off its kinks (the gaps)."""

    def sample(rng):
        n = int(np.prod(shape))
        values = [rng.uniform(*bands[i % len(bands)]) for i in range(n)]
        return rng.permutation(np.array(values)).reshape(shape)

    return sample


def _weights(rng: np.random.Generator) -> list[Param]:
    """Two weights and a bias (``decay=False``) in float64, |w| >= 0.1: a regularizer row's
    input (central differences never straddle L1's kink at 0)."""

    def draw(shape):
        w = rng.standard_normal(shape)
        return np.sign(w) * (0.1 + np.abs(w))

    return [Param(draw((4, 3)), "W1"), Param(draw(3), "b1", decay=False), Param(draw((3, 2)), "W2")]


def _random_affine(bn, rng):
    # gamma and beta drawn at random, not left at ones and zeros, so the check exercises them
    for p in bn.parameters():
        np.copyto(p.data, rng.uniform(0.5, 1.5, p.shape))
    return bn


def _from_initial_state(batch: int):
    return lambda layer, rng: FromInitialState(layer, batch, rng)


def builtin_cases() -> list[Case]:
    """Every built-in layer, loss and regularizer with small inputs; ``glassnet gradcheck`` runs
    these. Every constructor argument of every exported class has a row with a non-default
    value (a test enforces it): a bug that ignores an argument cannot hide behind its default."""
    from . import layers as L
    from . import losses, regularizers

    def labels(n, c):
        return lambda rng: rng.integers(0, c, size=n)

    def hinge_sample(rng):
        # logits spaced by 0.3 so no margin (1 or 0.45) sits within eps of its kink at 0
        z = rng.permutation(np.arange(5) * 0.3)[None, :] + np.arange(4)[:, None] * 0.05
        return z + rng.standard_normal((4, 1)), rng.integers(0, 5, size=4)

    def binary_hinge_sample(rng):
        # scores t (1 + d), |d| >= 0.1: every margin 1 - t z = -d is away from the kink
        t = np.tile([1, -1], 3)
        return t * (1 + away_from_zero((6,), 0.1, 0.8)(rng)), t

    def binary_hinge_half_margin(rng):
        # t z in three bands for margin 0.5: violated, satisfied only because the margin is 0.5
        # (a loss that used 1 would count these), and satisfied for either
        t = np.tile([1, -1], 6)
        return t * _bands((12,), (-1.0, 0.4), (0.6, 0.9), (1.1, 2.0))(rng), t

    def huber_sample(rng):
        r = away_from_zero((4, 3), 0.1, 0.8)(rng) + np.where(rng.random((4, 3)) < 0.5, 0, 1.5)
        t = rng.standard_normal((4, 3))
        return t + r, t

    def huber_half_delta(rng):
        # |r| below delta = 0.5, between delta and 1 (where a backward clipping at 1 differs),
        # and above 1; both signs
        r = _bands((4, 3), (0.05, 0.4), (0.6, 0.9), (1.1, 2.5))(rng) * np.tile([1, -1], 6).reshape(4, 3)
        t = rng.standard_normal((4, 3))
        return t + r, t

    def loss(name, cls, args, sample):
        return Case(name, cls, args, sample, "loss")

    def regularizer(name, cls, args):
        return Case(name, cls, args, _weights, "regularizer")

    return [
        Case("Linear", L.Linear, {"in_features": 5, "out_features": 4}, _normal((3, 5))),
        Case("Linear (3-D input)", L.Linear, {"in_features": 4, "out_features": 3}, _normal((2, 3, 4))),
        Case(
            "Linear (no bias)",
            L.Linear,
            {"in_features": 5, "out_features": 4, "bias": False},
            _normal((3, 5)),
        ),
        Case(
            "Linear (he_normal init)",
            L.Linear,
            {"in_features": 5, "out_features": 4, "init": "he_normal"},
            _normal((3, 5)),
        ),
        Case("Sigmoid", L.Sigmoid, {}, _normal((3, 5), 2.0)),
        Case("Tanh", L.Tanh, {}, _normal((3, 5))),
        Case("ReLU", L.ReLU, {}, away_from_zero((3, 5))),
        Case("LeakyReLU", L.LeakyReLU, {"negative_slope": 0.1}, away_from_zero((3, 5))),
        Case("ELU", L.ELU, {"alpha": 1.3}, away_from_zero((3, 5))),
        Case("Softplus", L.Softplus, {"beta": 2.0}, _normal((3, 5), 3.0)),
        # beta z against the threshold: z in (3, 6) is below it (z would not be); z > 6 above it
        Case(
            "Softplus (beta 0.5, threshold 3)",
            L.Softplus,
            {"beta": 0.5, "threshold": 3.0},
            _bands((3, 5), (-4.0, 2.5), (3.5, 5.5), (6.5, 9.0)),
        ),
        Case("GELU", L.GELU, {}, _normal((3, 5), 2.0)),
        Case("GELU (tanh)", L.GELU, {"approximate": "tanh"}, _normal((3, 5), 2.0)),
        Case("Softmax", L.Softmax, {}, _normal((3, 5), 2.0)),
        Case("Softmax (axis=1 of 3)", L.Softmax, {"axis": 1}, _normal((2, 4, 3))),
        Case("Flatten", L.Flatten, {}, _normal((2, 3, 2, 2))),
        Case("Dropout", L.Dropout, {"p": 0.4}, _normal((4, 6))),
        Case("GaussianDropout", L.GaussianDropout, {"rate": 0.3}, _normal((4, 6))),
        loss(
            "MSELoss",
            losses.MSELoss,
            {},
            lambda rng: (rng.standard_normal((4, 3)), rng.standard_normal((4, 3))),
        ),
        loss(
            "QuadraticCost",
            losses.QuadraticCost,
            {},
            lambda rng: (rng.standard_normal((4, 3)), labels(4, 3)(rng)),
        ),
        loss(
            "CrossEntropyLoss",
            losses.CrossEntropyLoss,
            {},
            lambda rng: (rng.standard_normal((4, 5)) * 3, labels(4, 5)(rng)),
        ),
        loss(
            "CrossEntropyLoss (probabilities)",
            losses.CrossEntropyLoss,
            {},
            lambda rng: (rng.standard_normal((4, 5)), rng.dirichlet(np.ones(5), size=4)),
        ),
        loss(
            "CrossEntropyLoss (label smoothing)",
            losses.CrossEntropyLoss,
            {"label_smoothing": 0.1},
            lambda rng: (rng.standard_normal((4, 5)), labels(4, 5)(rng)),
        ),
        loss(
            "BCEWithLogitsLoss",
            losses.BCEWithLogitsLoss,
            {},
            lambda rng: (rng.standard_normal((4, 3)) * 3, rng.random((4, 3))),
        ),
        loss("HingeLoss", losses.HingeLoss, {}, hinge_sample),
        # differences of logits are multiples of 0.3: those of 0.3 and less violate margin 0.45,
        # those of 0.6 and 0.9 satisfy it (and would violate the default margin 1)
        loss("HingeLoss (margin 0.45)", losses.HingeLoss, {"margin": 0.45}, hinge_sample),
        loss("HingeLoss (binary)", losses.HingeLoss, {}, binary_hinge_sample),
        loss("HingeLoss (binary, margin 0.5)", losses.HingeLoss, {"margin": 0.5}, binary_hinge_half_margin),
        loss("HuberLoss", losses.HuberLoss, {}, huber_sample),
        loss("HuberLoss (delta 0.5)", losses.HuberLoss, {"delta": 0.5}, huber_half_delta),
        regularizer("L1", regularizers.L1, {"lam": 0.2}),
        regularizer("L2", regularizers.L2, {"lam": 0.3}),
        regularizer("ElasticNet", regularizers.ElasticNet, {"l1": 0.2, "l2": 0.3}),
        # --- convolution rows ---
        Case(
            "Conv2d", L.Conv2d, {"in_channels": 3, "out_channels": 4, "kernel_size": 3}, _normal((2, 3, 6, 5))
        ),
        Case(
            "Conv2d (stride 2, padding 1)",
            L.Conv2d,
            {"in_channels": 2, "out_channels": 3, "kernel_size": 3, "stride": 2, "padding": 1},
            _normal((2, 2, 7, 6)),
        ),
        Case(
            "Conv2d (5x3, dilation 2, no bias)",
            L.Conv2d,
            {
                "in_channels": 2,
                "out_channels": 3,
                "kernel_size": (5, 3),
                "padding": (2, 1),
                "dilation": 2,
                "bias": False,
            },
            _normal((2, 2, 9, 7)),
        ),  # fmt: skip
        Case(
            "Conv2d (1x1)",
            L.Conv2d,
            {"in_channels": 4, "out_channels": 2, "kernel_size": 1},
            _normal((2, 4, 3, 3)),
        ),
        Case(
            "Conv2d (glorot_uniform init)",
            L.Conv2d,
            {"in_channels": 3, "out_channels": 4, "kernel_size": 3, "init": "glorot_uniform"},
            _normal((2, 3, 6, 5)),
        ),
        Case(
            "Conv1d",
            L.Conv1d,
            {"in_channels": 3, "out_channels": 4, "kernel_size": 5, "padding": 2},
            _normal((2, 3, 11)),
        ),
        Case(
            "Conv1d (stride 2, dilation 2)",
            L.Conv1d,
            {"in_channels": 2, "out_channels": 3, "kernel_size": 3, "stride": 2, "dilation": 2},
            _normal((2, 2, 12)),
        ),
        Case(
            "Conv1d (no bias, lecun_normal init)",
            L.Conv1d,
            {
                "in_channels": 3,
                "out_channels": 4,
                "kernel_size": 3,
                "padding": 1,
                "bias": False,
                "init": "lecun_normal",
            },
            _normal((2, 3, 9)),
        ),  # fmt: skip
        # --- pooling rows ---
        # pooling: each input is a permutation of values 0.05 apart plus noise under 0.005, so no
        # two units of a window are within 1e-3 and no difference step crosses a tie
        *(
            Case(
                name,
                cls,
                args,
                lambda rng, shape=shape: (
                    (rng.permutation(np.prod(shape)).reshape(shape) - np.prod(shape) / 2) * 0.05
                    + rng.uniform(0, 0.005, shape)
                ),
            )
            for name, cls, args, shape in [
                ("MaxPool2d", L.MaxPool2d, {"kernel_size": 2}, (2, 3, 6, 6)),
                (
                    "MaxPool2d (3, stride 2, padding 1)",
                    L.MaxPool2d,
                    {"kernel_size": 3, "stride": 2, "padding": 1},
                    (2, 3, 7, 7),
                ),
                (
                    "MaxPool2d (2x3, stride (2, 1))",
                    L.MaxPool2d,
                    {"kernel_size": (2, 3), "stride": (2, 1)},
                    (2, 2, 5, 7),
                ),
                ("AvgPool2d", L.AvgPool2d, {"kernel_size": 2}, (2, 3, 6, 6)),
                (
                    "AvgPool2d (3, stride 2, padding 1)",
                    L.AvgPool2d,
                    {"kernel_size": 3, "stride": 2, "padding": 1},
                    (2, 3, 7, 7),
                ),
                ("MaxPool1d", L.MaxPool1d, {"kernel_size": 2}, (2, 3, 8)),
                (
                    "MaxPool1d (3, stride 2, padding 1)",
                    L.MaxPool1d,
                    {"kernel_size": 3, "stride": 2, "padding": 1},
                    (2, 3, 9),
                ),
                ("AvgPool1d (3, stride 1)", L.AvgPool1d, {"kernel_size": 3, "stride": 1}, (2, 3, 8)),
                (
                    "AvgPool1d (3, stride 2, padding 1)",
                    L.AvgPool1d,
                    {"kernel_size": 3, "stride": 2, "padding": 1},
                    (2, 3, 9),
                ),
                ("GlobalAvgPool2d", L.GlobalAvgPool2d, {}, (2, 3, 4, 5)),
                ("GlobalMaxPool2d", L.GlobalMaxPool2d, {}, (2, 3, 4, 5)),
            ]
        ),  # fmt: skip
        # --- normalization rows ---
        # batch norm in training mode (the default: batch statistics), gamma and beta at random
        *(
            Case(
                name,
                cls,
                args,
                # the second block of draws: check_layer_gradients takes its upstream gradient from
                # the same seed, and an upstream proportional to x is in the null space of dx
                lambda rng, shape=shape: 2.0 * rng.standard_normal((2, *shape))[1],
                wrap=_random_affine,
            )
            for name, cls, args, shape in [
                ("BatchNorm1d", L.BatchNorm1d, {"num_features": 4}, (6, 4)),
                ("BatchNorm1d (3-D input)", L.BatchNorm1d, {"num_features": 3}, (2, 3, 5)),
                ("BatchNorm2d", L.BatchNorm2d, {"num_features": 3}, (2, 3, 3, 4)),
                ("BatchNorm1d (affine=False)", L.BatchNorm1d, {"num_features": 4, "affine": False}, (5, 4)),
                (
                    "BatchNorm1d (eps 0.5, momentum None)",
                    L.BatchNorm1d,
                    {"num_features": 4, "eps": 0.5, "momentum": None},
                    (6, 4),
                ),
                (
                    "BatchNorm2d (momentum 0.3, eps 0.1, affine=False)",
                    L.BatchNorm2d,
                    {"num_features": 1, "momentum": 0.3, "eps": 0.1, "affine": False},
                    (3, 1, 3, 4),
                ),
            ]
        ),  # fmt: skip
        # --- recurrent rows ---
        # (N, T, features) = (2, 5, 3), hidden size 4: backprop through time over five steps
        Case("RNN (tanh)", L.RNN, {"input_size": 3, "hidden_size": 4}, _normal((2, 5, 3))),
        Case(
            "RNN (relu)",
            L.RNN,
            {"input_size": 3, "hidden_size": 4, "nonlinearity": "relu"},
            _normal((2, 5, 3)),
        ),
        Case(
            "RNN (2 layers, bidirectional, no bias)",
            L.RNN,
            {"input_size": 3, "hidden_size": 4, "num_layers": 2, "bidirectional": True, "bias": False},
            _normal((2, 5, 3)),
        ),
        Case("GRU", L.GRU, {"input_size": 3, "hidden_size": 4}, _normal((2, 5, 3))),
        Case(
            "GRU (2 layers, bidirectional)",
            L.GRU,
            {"input_size": 3, "hidden_size": 4, "num_layers": 2, "bidirectional": True},
            _normal((2, 5, 3)),
        ),
        Case(
            "GRU (h0 given, bidirectional)",
            L.GRU,
            {"input_size": 3, "hidden_size": 4, "bidirectional": True},
            _normal((2, 5, 3)),
            wrap=_from_initial_state(2),
        ),
        Case("GRU (no bias)", L.GRU, {"input_size": 3, "hidden_size": 4, "bias": False}, _normal((2, 5, 3))),
        Case("LSTM", L.LSTM, {"input_size": 3, "hidden_size": 4}, _normal((2, 5, 3))),
        Case(
            "LSTM (2 layers, bidirectional)",
            L.LSTM,
            {"input_size": 2, "hidden_size": 3, "num_layers": 2, "bidirectional": True},
            _normal((2, 4, 2)),
        ),
        Case(
            "LSTM (h0, c0 given, 2 layers)",
            L.LSTM,
            {"input_size": 3, "hidden_size": 4, "num_layers": 2},
            _normal((2, 5, 3)),
            wrap=_from_initial_state(2),
        ),
        Case(
            "LSTM (no bias)", L.LSTM, {"input_size": 3, "hidden_size": 4, "bias": False}, _normal((2, 5, 3))
        ),
        Case("LastStep", L.LastStep, {}, _normal((2, 4, 3))),
        Case("Reshape", L.Reshape, {"shape": (2, 2)}, _normal((3, 4))),
    ]


def check_regularizer_gradients(regularizer, params: list[Param], eps: float = EPS) -> dict[str, float]:
    """Check a regularizer's ``backward(params)`` against differences of its ``penalty``, for
    every parameter (those with ``decay=False`` must get no gradient). Works on float64 copies."""
    params = [Param(np.array(p.data, dtype=np.float64), p.name, p.decay) for p in params]
    regularizer.backward(params)
    return {
        p.name: relative_error(p.grad, numeric_grad(lambda: regularizer.penalty(params), p.data, eps))
        for p in params
    }


def run_builtin_checks(seed: int = 0) -> list[tuple[str, str, float]]:
    """(case, array, error) for every built-in case; ``glassnet gradcheck`` prints these."""
    rows = []
    for case in builtin_cases():
        rng = np.random.default_rng(seed)
        obj = case.make(rng)
        if case.kind == "loss":
            pred, target = case.sample(rng)
            errors = check_loss_gradients(obj, pred, target)
        elif case.kind == "regularizer":
            errors = check_regularizer_gradients(obj, case.sample(rng))
        else:
            errors = check_layer_gradients(obj, case.sample(rng), seed=seed)
        rows.extend((case.name, name, err) for name, err in errors.items())
    return rows
