"""GELU's float32 path (functional.gelu_float32) against its formula, z Phi(z) with Phi =
(1 + erf(z / sqrt 2)) / 2, in float64: over a dense grid with both tails, at the special values,
across block boundaries and layouts, through the layer's backward, and against PyTorch."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import special

import glassnet as gn
from glassnet import functional as F

EPS32 = float(np.finfo(np.float32).eps)
TINY32 = float(np.finfo(np.float32).tiny)


def formula(z: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """y, Phi, phi in float64, the docstring's formula written out (scipy's erf)."""
    z = z.astype(np.float64)
    cdf = 0.5 * (1 + special.erf(z / math.sqrt(2)))
    pdf = np.exp(-0.5 * z * z) / math.sqrt(2 * math.pi)
    return z * cdf, cdf, pdf


def test_the_fitted_polynomial_is_erfcx_to_float32_eps():
    # the coefficients' claim, in float64 with the coefficients rounded to float32 as used:
    # P(v) = erfcx(s) / 2 with v = s / (1 + p s)
    coef = [float(np.float32(c)) for c in F._HALF_ERFCX]
    for s_max, bound in [(1, 0.3), (8, 2), (9.5, 3.5)]:
        s = np.linspace(0, s_max, 100_001)
        v = s / (1 + F._ERFCX_P * s)
        poly = np.polynomial.polynomial.polyval(v, coef)
        assert np.max(np.abs(poly / (special.erfcx(s) / 2) - 1)) < bound * EPS32, s_max


def exact(z: np.ndarray) -> np.ndarray:
    """z Phi(z) in float64 with scipy's ndtr: the formula without 1 + erf's loss in the tail."""
    z = z.astype(np.float64)
    return z * special.ndtr(z)


def rel_over_condition(y: np.ndarray, z: np.ndarray) -> float:
    """max |y - exact| / |exact| / (eps (1 + z^2)) over the normal (not subnormal) results."""
    ref, z64 = exact(z), z.astype(np.float64)
    normal = np.abs(ref) > TINY32
    if not normal.any():
        return 0.0
    return float(np.max(np.abs(y - ref)[normal] / np.abs(ref[normal]) / (EPS32 * (1 + z64[normal] ** 2))))


def test_dense_grid_within_two_eps_times_the_condition_number():
    # relative error of y <= c eps (1 + z^2): z^2 is the condition number of e^(-z^2/2) for
    # large |z|, shared by every float32 evaluation; the grid runs to where Phi underflows
    z = np.linspace(-13, 8, 2_000_001, dtype=np.float32)
    y, cdf, pdf = F.gelu_float32(z, keep=True)
    assert y.dtype == cdf.dtype == pdf.dtype == np.float32
    np.testing.assert_array_equal(F.gelu_float32(z, keep=False)[0], y)  # predict's path
    y64, cdf64, pdf64 = formula(z)
    # the float64 formula's own 1 + erf loses Phi's tail below about z = -5: scipy's ndtr there
    y64 = np.where(z < -5, z * special.ndtr(z.astype(np.float64)), y64)
    cdf64 = special.ndtr(z.astype(np.float64))
    z64 = z.astype(np.float64)
    cond = EPS32 * (1 + z64**2)
    normal = np.abs(y64) > TINY32
    assert np.max(np.abs(y - y64)[normal] / np.abs(y64[normal]) / cond[normal]) < 3
    assert np.max(np.abs(cdf - cdf64)[normal] / cdf64[normal] / cond[normal]) < 3
    normal = pdf64 > TINY32
    assert np.max(np.abs(pdf - pdf64)[normal] / pdf64[normal] / cond[normal]) < 3
    # near 0, where the fast path's cancellation risk sits, a few eps outright
    near = np.abs(z) < 1
    assert np.max(np.abs(y - y64)[near & (z != 0)] / np.abs(y64[near & (z != 0)])) < 4 * EPS32


def test_beats_float32_one_plus_erf_in_the_negative_tail():
    # (1 + erf) / 2 in float32 (the old path) loses every digit by z = -6; the fast path does not
    z = np.float32([-3.0, -6.0, -9.0])
    y = F.gelu_float32(z, keep=False)[0]
    exact = z.astype(np.float64) * special.ndtr(z.astype(np.float64))
    old = z * (0.5 * (1 + special.erf(z * np.float32(1 / math.sqrt(2)))))
    assert np.all(np.abs(y / exact - 1) < 1e-5)
    assert np.abs(old[1] / exact[1] - 1) > 0.5


def test_special_values():
    z = np.float32([0.0, -0.0, np.inf, -1e30, 1e30, 1e-40, -1e-40, np.nan])
    with np.errstate(invalid="ignore"):
        y, cdf, pdf = F.gelu_float32(z, keep=True)
    assert cdf[0] == cdf[1] == 0.5 and pdf[0] == pdf[1] == np.float32(1 / math.sqrt(2 * math.pi))
    assert y[0] == 0 and not np.signbit(y[0]) and y[1] == 0 and np.signbit(y[1])
    assert y[2] == np.inf and cdf[2] == 1 and pdf[2] == 0  # as scipy's erf path (z * 1)
    assert y[3] == 0 and cdf[3] == 0 and y[4] == np.float32(1e30) and cdf[4] == 1
    assert y[5] == np.float32(1e-40) * np.float32(0.5) and y[6] == -y[5]  # subnormals: z / 2
    assert np.isnan(y[7]) and np.isnan(cdf[7]) and np.isnan(pdf[7])
    with np.errstate(invalid="raise"):  # no warning from 1/0 or an overflowing z^2
        F.gelu_float32(np.float32([0.0, 1e30, -1e30]), keep=True)


@pytest.mark.parametrize("n", [0, 1, F._GELU_BLOCK - 1, F._GELU_BLOCK, 2 * F._GELU_BLOCK + 7])
def test_block_boundaries(n):
    z = np.random.default_rng(n).standard_normal(n).astype(np.float32) * 3
    y, cdf, pdf = F.gelu_float32(z, keep=True)
    assert y.shape == cdf.shape == pdf.shape == (n,)
    # each element as if alone: blocks do not leak into each other
    for i in {0, n // 2, n - 1} - {-1} if n else ():
        assert y[i] == F.gelu_float32(z[i : i + 1], keep=False)[0][0]
    assert rel_over_condition(y, z) < 3


def test_layouts_and_shapes():
    z = np.random.default_rng(0).standard_normal((3, 4, 5)).astype(np.float32)
    for view in (z, z.transpose(2, 0, 1), z[:, ::2], z[0, 0, 0][()]):
        y, cdf, _ = F.gelu_float32(view, keep=True)
        assert y.shape == cdf.shape == np.shape(view)
        assert rel_over_condition(y, np.asarray(view)) < 3


def test_layer_float32_forward_and_backward_follow_the_float64_formula():
    rng = np.random.default_rng(3)
    z = (rng.standard_normal((8, 50, 16)) * 3).astype(np.float32)
    dy = rng.standard_normal(z.shape).astype(np.float32)
    layer = gn.GELU()
    y = layer.forward(z)
    dz = layer.backward(dy)
    assert y.dtype == dz.dtype == np.float32
    y64, cdf64, pdf64 = formula(z)
    dz64 = dy * (cdf64 + z * pdf64)
    assert rel_over_condition(y, z) < 3
    # dz = dy (Phi + z phi): Phi + z phi cancels near z = -1 and in the tail; an absolute bound
    scale = np.abs(dy) * (1 + np.abs(z))
    assert np.max(np.abs(dz - dz64) / scale) < 4 * EPS32 * (1 + z.astype(np.float64) ** 2).max()
    assert np.max(np.abs(dz - dz64) / scale / (1 + z.astype(np.float64) ** 2)) < 4 * EPS32
    # float64 keeps scipy's erf: exactly the formula
    layer64 = gn.GELU()
    np.testing.assert_allclose(layer64.forward(z.astype(np.float64)), y64, rtol=1e-12, atol=1e-300)


def test_backward_after_no_grad_forward_is_an_error():
    layer = gn.GELU()
    x = np.ones((2, 3), np.float32)
    layer.forward(x)
    with gn.no_grad():
        y = layer.forward(x)
    np.testing.assert_array_equal(y, gn.GELU().forward(x))
    with pytest.raises(RuntimeError, match="GELU.backward: the forward pass ran under no_grad"):
        layer.backward(np.ones_like(y))


def test_float32_matches_torch(torch):
    # torch's CPU erf for float32 is accurate to ~1.5e-7 absolute (Abramowitz-Stegun 7.1.26), so
    # y = z Phi(z) to ~1e-6 absolute (0.4e-6 here, against 1e-6 for torch, from float64) and
    # dz = dy (Phi + z phi) drops to 0 below z = -5.3 in torch where it is ~1e-6 dy
    z = np.linspace(-10, 10, 200_001, dtype=np.float32)
    dy = np.random.default_rng(0).standard_normal(z.shape).astype(np.float32)
    layer = gn.GELU()
    y = layer.forward(z)
    dz = layer.backward(dy)
    zt = torch.tensor(z, requires_grad=True)
    yt = torch.nn.functional.gelu(zt)
    yt.backward(torch.tensor(dy))
    np.testing.assert_allclose(y, yt.detach().numpy(), rtol=1e-6, atol=2e-6)
    np.testing.assert_allclose(dz, zt.grad.numpy(), rtol=1e-6, atol=1e-5)
    assert np.abs(y - exact(z)).max() < 0.5 * np.abs(yt.detach().numpy() - exact(z)).max()
