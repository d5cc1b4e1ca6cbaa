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
    """One row of the built-in table: how to build the layer/loss and sample its inputs.

    ``sample(rng)`` returns the input (layers) or (pred, target) (losses), drawn away from kinks
    (|z| >= 0.1 around ReLU's 0, margins away from hinge points) so differences are smooth.
    """

    name: str
    make: Callable[[np.random.Generator], object]
    sample: Callable[[np.random.Generator], object]
    kind: str = "layer"


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


def builtin_cases() -> list[Case]:
    """Every built-in layer and loss with small inputs; ``glassnet gradcheck`` runs these."""
    from . import layers as L
    from . import losses

    def labels(n, c):
        return lambda rng: rng.integers(0, c, size=n)

    def hinge_sample(rng):
        # logits spaced by 0.3 so no margin sits within eps of its kink at 0
        z = rng.permutation(np.arange(5) * 0.3)[None, :] + np.arange(4)[:, None] * 0.05
        return z + rng.standard_normal((4, 1)), rng.integers(0, 5, size=4)

    def binary_hinge_sample(rng):
        # scores t (1 + d), |d| >= 0.1: every margin 1 - t z = -d is away from the kink
        t = np.tile([1, -1], 3)
        return t * (1 + away_from_zero((6,), 0.1, 0.8)(rng)), t

    def huber_sample(rng):
        r = away_from_zero((4, 3), 0.1, 0.8)(rng) + np.where(rng.random((4, 3)) < 0.5, 0, 1.5)
        t = rng.standard_normal((4, 3))
        return t + r, t

    return [
        Case("Linear", lambda rng: L.Linear(5, 4, rng=rng), _normal((3, 5))),
        Case("Linear (3-D input)", lambda rng: L.Linear(4, 3, rng=rng), _normal((2, 3, 4))),
        Case("Linear (no bias)", lambda rng: L.Linear(5, 4, bias=False, rng=rng), _normal((3, 5))),
        Case("Sigmoid", lambda rng: L.Sigmoid(), _normal((3, 5), 2.0)),
        Case("Tanh", lambda rng: L.Tanh(), _normal((3, 5))),
        Case("ReLU", lambda rng: L.ReLU(), away_from_zero((3, 5))),
        Case("LeakyReLU", lambda rng: L.LeakyReLU(0.1), away_from_zero((3, 5))),
        Case("ELU", lambda rng: L.ELU(1.3), away_from_zero((3, 5))),
        Case("Softplus", lambda rng: L.Softplus(beta=2.0), _normal((3, 5), 3.0)),
        Case("GELU", lambda rng: L.GELU(), _normal((3, 5), 2.0)),
        Case("GELU (tanh)", lambda rng: L.GELU("tanh"), _normal((3, 5), 2.0)),
        Case("Softmax", lambda rng: L.Softmax(), _normal((3, 5), 2.0)),
        Case("Softmax (axis=1 of 3)", lambda rng: L.Softmax(axis=1), _normal((2, 4, 3))),
        Case("Flatten", lambda rng: L.Flatten(), _normal((2, 3, 2, 2))),
        Case("Dropout", lambda rng: L.Dropout(0.4, rng=rng), _normal((4, 6))),
        Case("GaussianDropout", lambda rng: L.GaussianDropout(0.3, rng=rng), _normal((4, 6))),
        Case(
            "MSELoss",
            lambda rng: losses.MSELoss(),
            lambda rng: (rng.standard_normal((4, 3)), rng.standard_normal((4, 3))),
            "loss",
        ),
        Case(
            "QuadraticCost",
            lambda rng: losses.QuadraticCost(),
            lambda rng: (rng.standard_normal((4, 3)), labels(4, 3)(rng)),
            "loss",
        ),
        Case(
            "CrossEntropyLoss",
            lambda rng: losses.CrossEntropyLoss(),
            lambda rng: (rng.standard_normal((4, 5)) * 3, labels(4, 5)(rng)),
            "loss",
        ),
        Case(
            "CrossEntropyLoss (probabilities)",
            lambda rng: losses.CrossEntropyLoss(),
            lambda rng: (rng.standard_normal((4, 5)), rng.dirichlet(np.ones(5), size=4)),
            "loss",
        ),
        Case(
            "CrossEntropyLoss (label smoothing)",
            lambda rng: losses.CrossEntropyLoss(0.1),
            lambda rng: (rng.standard_normal((4, 5)), labels(4, 5)(rng)),
            "loss",
        ),
        Case(
            "BCEWithLogitsLoss",
            lambda rng: losses.BCEWithLogitsLoss(),
            lambda rng: (rng.standard_normal((4, 3)) * 3, rng.random((4, 3))),
            "loss",
        ),
        Case("HingeLoss", lambda rng: losses.HingeLoss(), hinge_sample, "loss"),
        Case("HingeLoss (binary)", lambda rng: losses.HingeLoss(), binary_hinge_sample, "loss"),
        Case("HuberLoss", lambda rng: losses.HuberLoss(1.0), huber_sample, "loss"),
        # --- convolution rows ---
        Case("Conv2d", lambda rng: L.Conv2d(3, 4, 3, rng=rng), _normal((2, 3, 6, 5))),
        Case(
            "Conv2d (stride 2, padding 1)",
            lambda rng: L.Conv2d(2, 3, 3, stride=2, padding=1, rng=rng),
            _normal((2, 2, 7, 6)),
        ),  # fmt: skip
        Case(
            "Conv2d (5x3, dilation 2, no bias)",
            lambda rng: L.Conv2d(2, 3, (5, 3), padding=(2, 1), dilation=2, bias=False, rng=rng),
            _normal((2, 2, 9, 7)),
        ),  # fmt: skip
        Case("Conv2d (1x1)", lambda rng: L.Conv2d(4, 2, 1, rng=rng), _normal((2, 4, 3, 3))),
        Case("Conv1d", lambda rng: L.Conv1d(3, 4, 5, padding=2, rng=rng), _normal((2, 3, 11))),
        Case(
            "Conv1d (stride 2, dilation 2)",
            lambda rng: L.Conv1d(2, 3, 3, stride=2, dilation=2, rng=rng),
            _normal((2, 2, 12)),
        ),  # fmt: skip
        # --- pooling rows ---
        # pooling: each input is a permutation of values 0.05 apart plus noise under 0.005, so no
        # two units of a window are within 1e-3 and no difference step crosses a tie
        *(
            Case(
                name,
                make_layer,
                lambda rng, shape=shape: (
                    (rng.permutation(np.prod(shape)).reshape(shape) - np.prod(shape) / 2) * 0.05
                    + rng.uniform(0, 0.005, shape)
                ),
            )
            for name, make_layer, shape in [
                ("MaxPool2d", lambda rng: L.MaxPool2d(2), (2, 3, 6, 6)),
                ("MaxPool2d (3, stride 2, padding 1)", lambda rng: L.MaxPool2d(3, 2, 1), (2, 3, 7, 7)),
                ("MaxPool2d (2x3, stride (2, 1))", lambda rng: L.MaxPool2d((2, 3), (2, 1)), (2, 2, 5, 7)),
                ("AvgPool2d", lambda rng: L.AvgPool2d(2), (2, 3, 6, 6)),
                ("AvgPool2d (3, stride 2, padding 1)", lambda rng: L.AvgPool2d(3, 2, 1), (2, 3, 7, 7)),
                ("MaxPool1d", lambda rng: L.MaxPool1d(2), (2, 3, 8)),
                ("MaxPool1d (3, stride 2, padding 1)", lambda rng: L.MaxPool1d(3, 2, 1), (2, 3, 9)),
                ("AvgPool1d (3, stride 1)", lambda rng: L.AvgPool1d(3, stride=1), (2, 3, 8)),
                ("GlobalAvgPool2d", lambda rng: L.GlobalAvgPool2d(), (2, 3, 4, 5)),
                ("GlobalMaxPool2d", lambda rng: L.GlobalMaxPool2d(), (2, 3, 4, 5)),
            ]
        ),
        # --- normalization rows ---
        # batch norm in training mode (the default: batch statistics); gamma and beta are drawn at
        # random, not left at ones and zeros, so that the check exercises them
        *(
            Case(
                name,
                lambda rng, build=build: (
                    bn := build(),
                    [np.copyto(p.data, rng.uniform(0.5, 1.5, p.shape)) for p in bn.parameters()],
                )[0],
                # the second block of draws: check_layer_gradients takes its upstream gradient from
                # the same seed, and an upstream proportional to x is in the null space of dx
                lambda rng, shape=shape: 2.0 * rng.standard_normal((2, *shape))[1],
            )
            for name, build, shape in [
                ("BatchNorm1d", lambda: L.BatchNorm1d(4), (6, 4)),
                ("BatchNorm1d (3-D input)", lambda: L.BatchNorm1d(3), (2, 3, 5)),
                ("BatchNorm2d", lambda: L.BatchNorm2d(3), (2, 3, 3, 4)),
                ("BatchNorm1d (affine=False)", lambda: L.BatchNorm1d(4, affine=False), (5, 4)),
            ]
        ),
        # --- recurrent rows ---
        # (N, T, features) = (2, 5, 3), hidden size 4: backprop through time over five steps
        Case("RNN (tanh)", lambda rng: L.RNN(3, 4, rng=rng), _normal((2, 5, 3))),
        Case("RNN (relu)", lambda rng: L.RNN(3, 4, nonlinearity="relu", rng=rng), _normal((2, 5, 3))),
        Case(
            "RNN (2 layers, bidirectional, no bias)",
            lambda rng: L.RNN(3, 4, num_layers=2, bidirectional=True, bias=False, rng=rng),
            _normal((2, 5, 3)),
        ),  # fmt: skip
        Case("GRU", lambda rng: L.GRU(3, 4, rng=rng), _normal((2, 5, 3))),
        Case(
            "GRU (2 layers, bidirectional)",
            lambda rng: L.GRU(3, 4, num_layers=2, bidirectional=True, rng=rng),
            _normal((2, 5, 3)),
        ),  # fmt: skip
        Case(
            "GRU (h0 given, bidirectional)",
            lambda rng: FromInitialState(L.GRU(3, 4, bidirectional=True, rng=rng), 2, rng),
            _normal((2, 5, 3)),
        ),  # fmt: skip
        Case("LSTM", lambda rng: L.LSTM(3, 4, rng=rng), _normal((2, 5, 3))),
        Case(
            "LSTM (2 layers, bidirectional)",
            lambda rng: L.LSTM(2, 3, num_layers=2, bidirectional=True, rng=rng),
            _normal((2, 4, 2)),
        ),  # fmt: skip
        Case(
            "LSTM (h0, c0 given, 2 layers)",
            lambda rng: FromInitialState(L.LSTM(3, 4, num_layers=2, rng=rng), 2, rng),
            _normal((2, 5, 3)),
        ),  # fmt: skip
        Case("LastStep", lambda rng: L.LastStep(), _normal((2, 4, 3))),
        Case("Reshape", lambda rng: L.Reshape((2, 2)), _normal((3, 4))),
    ]


def run_builtin_checks(seed: int = 0) -> list[tuple[str, str, float]]:
    """(case, array, error) for every built-in case; ``glassnet gradcheck`` prints these."""
    rows = []
    for case in builtin_cases():
        rng = np.random.default_rng(seed)
        obj = case.make(rng)
        if case.kind == "loss":
            pred, target = case.sample(rng)
            errors = check_loss_gradients(obj, pred, target)
        else:
            errors = check_layer_gradients(obj, case.sample(rng), seed=seed)
        rows.extend((case.name, name, err) for name, err in errors.items())
    return rows
