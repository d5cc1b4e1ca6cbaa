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

The rows these checks run on, for ``glassnet gradcheck`` and the tests, are the case table in
``glassnet.cases``.
"""

from __future__ import annotations

from collections.abc import Callable

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
    """The error of dx (one per input: ``x`` and ``dx`` may be tuples, named ``x0``, ``x1``, ...)
    and of every parameter gradient against differences of ``f``.

    An input of integers (token ids: nudging one by eps is no input at all) and an input whose
    gradient is None (what ``Embedding`` returns for its ids, even passed as floats) have no
    entry: they are never perturbed. The parameters are checked all the same."""
    errors = {}
    for name, xk, dxk in _named_inputs(x_name, x, dx):
        if dxk is None or xk.dtype.kind != "f":
            continue
        errors[name] = _compare(dxk, numeric_grad(f, xk, eps, _entries(xk, max_entries, rng)))
    for name, p in module.named_parameters():
        errors[name] = _compare(p.grad, numeric_grad(f, p.data, eps, _entries(p.data, max_entries, rng)))
    return errors


def _named_inputs(x_name: str, x, dx) -> list[tuple[str, np.ndarray, np.ndarray | None]]:
    if not isinstance(x, tuple):
        return [(x_name, x, dx)]
    if dx is None:  # no input has a gradient
        return [(f"{x_name}{k}", xk, None) for k, xk in enumerate(x)]
    if not isinstance(dx, tuple) or len(dx) != len(x):
        got = f"a tuple of {len(dx)}" if isinstance(dx, tuple) else type(dx).__name__
        raise ValueError(f"backward must return one gradient per input ({len(x)}), got {got}")
    return [(f"{x_name}{k}", xk, dxk) for k, (xk, dxk) in enumerate(zip(x, dx))]


def _float64(x) -> np.ndarray:
    """A float64 copy of an input to perturb; integer inputs (token ids) stay as they are."""
    x = np.asarray(x)
    return x if x.dtype.kind in "iu" else np.array(x, dtype=np.float64)


def as_inputs(x) -> tuple[np.ndarray, ...]:
    """A layer's input(s) as a tuple, for ``forward(*inputs)``: a tuple or list of arrays stays
    as it is (a multi-input layer: ``Add``, a ``Graph`` with several inputs), an array is one."""
    return tuple(x) if isinstance(x, (tuple, list)) else (x,)


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
    layer: Module, x, seed: int = 0, eps: float = EPS, max_entries: int | None = None
) -> dict[str, float]:
    """Check ``dx`` and every parameter gradient of one layer; ``layer`` is converted to float64.

    ``x`` is the input, or a tuple of inputs for a layer with several (``forward(*x)``, whose
    backward returns one gradient per input). Returns {"x": error, "<param name>": error, ...};
    with several inputs {"x0": error, "x1": error, ...} instead of "x". Integer inputs are
    kept as they are and, as inputs whose gradient is None, not checked (``_all_errors``).
    """
    layer.to(np.float64)
    several = isinstance(x, (tuple, list))
    xs = tuple(_float64(xk) for xk in as_inputs(x))
    x = xs if several else xs[0]
    # a stream of its own: the table's samplers draw from default_rng(seed), and an upstream
    # gradient equal to a multiple of x would hide errors
    rng = np.random.default_rng([seed, 1])
    noise = _FrozenNoise(layer, seed)
    try:
        noise.reseed()
        y = layer.forward(*xs)
        upstream = rng.standard_normal(y.shape)

        def f() -> float:
            noise.reseed()
            return float(np.vdot(upstream, layer.forward(*xs)))

        layer.zero_grad()
        noise.reseed()
        layer.forward(*xs)
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
    x,
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
    entries per array for big models. ``x`` may be a tuple of inputs (a model with several:
    "input0", "input1", ...). Integer inputs (token ids for a model starting with an
    ``Embedding``) are kept as integers and not perturbed, and an input whose gradient is None
    has no entry; every parameter is still checked.
    """
    params = model.parameters()
    saved = [(p, p.data, p.grad) for p in params]
    # buffers are attributes of their module, by the same name; model.to() may replace them
    # and the check's forwards update them, so put back the original arrays and values
    buffers = [(m, name, b, b.copy()) for m in model.modules() for name, b in m.buffers().items()]
    modes = [m.training for m in model.modules()]
    noise = _FrozenNoise(model, seed)
    rng = np.random.default_rng(seed)
    several = isinstance(x, (tuple, list))
    xs = tuple(_float64(xk) for xk in as_inputs(x))
    x = xs if several else xs[0]
    y = np.asarray(y)
    if y.dtype.kind == "f":
        y = y.astype(np.float64)
    try:
        model.to(np.float64)
        model.train()

        def f() -> float:
            noise.reseed()
            loss = loss_fn.forward(model.forward(*xs), y)
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


def directional_check(model: Module, loss_fn, x, y, eps: float = 1e-6, seed: int = 0) -> float:
    """One random direction v through all parameters at once: compare
    (L(t + eps v) - L(t - eps v)) / (2 eps) with grad . v. Two forwards whatever the size,
    so it runs at realistic sizes. Returns the relative error. The model must be float64;
    ``x`` may be a tuple of inputs (a model with several).
    """
    params = model.parameters()
    xs = as_inputs(x)
    rng = np.random.default_rng(seed)
    noise = _FrozenNoise(model, seed)
    try:
        vs = [rng.standard_normal(p.shape) for p in params]

        def f() -> float:
            noise.reseed()
            return loss_fn.forward(model.forward(*xs), y)

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
    """(case, array, error) for every row of the case table (``glassnet.cases.CASES``);
    ``glassnet gradcheck`` prints these."""
    from .cases import CASES

    rows = []
    for case in CASES:
        obj, sample = case.build(seed)
        if case.kind == "loss":
            errors = check_loss_gradients(obj, *sample)
        elif case.kind == "regularizer":
            errors = check_regularizer_gradients(obj, sample)
        else:
            errors = check_layer_gradients(obj, sample, seed=seed)
        rows.extend((case.name, name, err) for name, err in errors.items())
    return rows
