"""The convolution through the discrete Fourier transform (glassnet/layers/_spectral.py): which
layers take it, that it is the same convolution as the windows' (to rounding) and PyTorch's, its
gradients by finite differences, and the memory layouts it takes and gives. The definition
itself (loop by loop) is checked for every path in test_conv.py
(``test_conv_equals_the_plain_formula_float64``, "spectral")."""

from __future__ import annotations

import numpy as np
import pytest
from harness import memory_layout

import glassnet as gn
from glassnet.gradcheck import check_layer_gradients
from glassnet.layers import _spectral
from glassnet.layers import conv as conv_module


@pytest.fixture
def always(monkeypatch):
    """Every convolution through the DFT (small test shapes would otherwise take the windows)."""
    monkeypatch.setattr(conv_module, "SPECTRAL_MAX_COST", 1e9)


def _paths(conv, x, dy, monkeypatch):
    """(y, dx, dW, db) through the windows, then through the DFT, from zeroed gradients."""
    out = []
    for cost in (0, 1e9):
        monkeypatch.setattr(conv_module, "SPECTRAL_MAX_COST", cost)
        for p in conv.parameters():
            p.grad[...] = 0
        y = conv.forward(x)
        assert (conv.spectral is not None) == (cost > 0)
        dx = conv.backward(dy)
        out.append((y, dx, conv.W.grad.copy(), None if conv.b is None else conv.b.grad.copy()))
    return out


def test_the_rule_takes_many_channels_on_small_images_whatever_the_batch():
    rng = np.random.default_rng(0)
    cnn = gn.models.cnn_a(rng, (1, 28, 28), 10)
    x = rng.random((3, 1, 28, 28)).astype(np.float32)
    cnn.forward(x)
    first, second = cnn[0], next(m for m in cnn if isinstance(m, gn.Conv2d) and m.in_channels == 32)
    assert first.spectral is None and second.spectral is not None  # CNN-A's Conv2d(32, 64, 5) on 12x12
    cnn.forward(x[:1])
    assert second.spectral is not None  # the rule reads the layer and the image, not the batch
    assert _spectral.cost(32, 64, 144, 64, (12, 12), 25) == pytest.approx(0.507, abs=1e-3)
    wide = gn.Conv2d(16, 16, 3, padding=1, rng=rng)  # 28x28: the transforms cost more than the windows
    wide.forward(rng.standard_normal((2, 16, 28, 28)).astype(np.float32))
    assert wide.spectral is None


def test_the_rule_can_be_switched_off_and_stops_at_large_images(monkeypatch):
    rng = np.random.default_rng(1)
    conv = gn.Conv2d(32, 64, 5, rng=rng)
    x = rng.standard_normal((2, 32, 12, 12)).astype(np.float32)
    conv.forward(x)
    assert conv.spectral is not None
    monkeypatch.setattr(conv_module, "SPECTRAL_MAX_COST", 0)
    conv.forward(x)
    assert conv.spectral is None
    monkeypatch.setattr(conv_module, "SPECTRAL_MAX_COST", 1e9)
    monkeypatch.setattr(conv_module, "SPECTRAL_MAX_PIXELS", 12 * 12 - 1)  # dense matrices grow as pixels^2
    conv.forward(x)
    assert conv.spectral is None


def test_cnn_a_shape_float32_agrees_with_the_windows_to_rounding(monkeypatch):
    rng = np.random.default_rng(2)
    conv = gn.Conv2d(32, 64, 5, rng=rng)
    x = rng.standard_normal((6, 32, 12, 12)).astype(np.float32)
    dy = rng.standard_normal((6, 64, 8, 8)).astype(np.float32)
    windows, spectral = _paths(conv, x, dy, monkeypatch)
    for a, b in zip(windows, spectral):
        assert b.dtype == np.float32
        np.testing.assert_allclose(b, a, rtol=0, atol=2e-6 * np.abs(a).max())


GEOMETRIES = [
    dict(),
    dict(padding=2, bias=False),
    dict(stride=(2, 1), padding=(1, 2), dilation=(1, 2)),
    dict(kernel_size=(2, 4), padding="same"),
    dict(groups=2, padding_mode="circular", padding=1),
]


@pytest.mark.parametrize("kw", GEOMETRIES, ids=str)
def test_finite_differences_through_the_dft(kw, always):
    rng = np.random.default_rng(3)
    conv = gn.Conv2d(4, 6, **{"kernel_size": 3, **kw}, rng=rng, dtype=np.float64)
    x = rng.standard_normal((2, 4, 7, 8))
    errors = check_layer_gradients(conv, x)
    assert max(errors.values()) < 1e-6, errors
    convs = conv._group_convs if conv.groups > 1 else [conv]
    assert all(c.spectral is not None for c in convs)


def test_conv1d_through_the_dft_is_the_windows_convolution(monkeypatch):
    rng = np.random.default_rng(4)
    conv = gn.Conv1d(3, 5, 4, padding=2, dilation=2, rng=rng, dtype=np.float64)
    x = rng.standard_normal((3, 3, 17))
    dy = rng.standard_normal(conv.forward(x).shape)
    windows, spectral = _paths(conv, x, dy, monkeypatch)
    for a, b in zip(windows, spectral):
        np.testing.assert_allclose(b, a, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("kw", GEOMETRIES, ids=str)
def test_matches_pytorch_float64(kw, always):
    torch = pytest.importorskip("torch")
    from glassnet.torch_reference import conv as torch_conv

    rng = np.random.default_rng(5)
    conv = gn.Conv2d(4, 6, **{"kernel_size": 3, **kw}, rng=rng, dtype=np.float64)
    x = rng.standard_normal((3, 4, 9, 8))
    y = conv.forward(x)
    dy = rng.standard_normal(y.shape)
    dx = conv.backward(dy)
    xt = torch.tensor(x, requires_grad=True)
    yt, params = torch_conv(conv, xt)
    yt.backward(torch.tensor(dy))
    np.testing.assert_allclose(y, yt.detach().numpy(), rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=1e-10, atol=1e-10)
    for name, p in params.items():
        np.testing.assert_allclose(getattr(conv, name).grad, p.grad.numpy(), rtol=1e-10, atol=1e-10)


def test_every_input_layout_gives_the_same_numbers_and_dx_lies_as_the_input(always):
    """y is the NCHW view of pixel-major memory; dx lies pixel-major where x did, else
    channels-last (as the windows' dx); NCHW, channels-last, pixel-major and strided inputs and
    deltas give the same numbers, and neither x nor dy is written to."""
    rng = np.random.default_rng(6)
    x = rng.standard_normal((3, 5, 8, 7))
    dy = rng.standard_normal((3, 4, 6, 5))
    layouts = {
        "nchw": lambda a: np.ascontiguousarray(a),
        "channels-last": lambda a: np.ascontiguousarray(a.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2),
        "pixel-major": lambda a: np.ascontiguousarray(a.transpose(2, 3, 0, 1)).transpose(2, 3, 0, 1),
        "other": lambda a: np.repeat(a, 2, axis=1)[:, ::2],
    }
    results = []
    for name, lay in layouts.items():
        conv = gn.Conv2d(5, 4, 3, rng=np.random.default_rng(7), dtype=np.float64)
        xi, dyi = lay(x), lay(dy)
        assert memory_layout(xi) == name
        x_before, dy_before = xi.copy(), dyi.copy()
        y = conv.forward(xi)
        dx = conv.backward(dyi)
        assert memory_layout(y) == "pixel-major"
        assert memory_layout(dx) == ("pixel-major" if name == "pixel-major" else "channels-last")
        np.testing.assert_array_equal(xi, x_before)
        np.testing.assert_array_equal(dyi, dy_before)
        results.append((y, dx, conv.W.grad.copy(), conv.b.grad.copy()))
    for other in results[1:]:
        for a, b in zip(results[0], other):
            np.testing.assert_allclose(b, a, rtol=1e-12, atol=1e-12)


def test_gradients_accumulate_and_no_grad_keeps_no_spectra(always):
    rng = np.random.default_rng(8)
    conv = gn.Conv2d(3, 4, 3, rng=rng, dtype=np.float64)
    x = rng.standard_normal((2, 3, 6, 6))
    y = conv.forward(x)
    dy = rng.standard_normal(y.shape)
    conv.backward(dy)
    once = conv.W.grad.copy(), conv.b.grad.copy()
    conv.forward(x)
    conv.backward(dy)
    np.testing.assert_allclose(conv.W.grad, 2 * once[0], rtol=1e-12)
    np.testing.assert_allclose(conv.b.grad, 2 * once[1], rtol=1e-12)
    with gn.no_grad():
        y_eval = conv.forward(x)
    assert conv.spectral is None
    np.testing.assert_array_equal(y_eval, y)  # the same products, kept or not
    with pytest.raises(RuntimeError, match=r"Conv2d.backward: the forward pass ran under no_grad"):
        conv.backward(dy)


def test_the_transforms_are_cached_per_geometry_and_read_only():
    args = ((12, 12), (12, 12), (0, 0), (8, 8), (1, 1), (5, 5), (1, 1), "f")
    first, again = _spectral._matrices(*args), _spectral._matrices(*args)
    assert all(a is b for a, b in zip(first, again))
    with pytest.raises(ValueError, match="read-only"):
        first[0][0, 0] = 1.0
    assert [m.shape for m in first] == [(2 * 84, 144), (64, 2 * 84), (2 * 84, 25)]


def test_cnn_a_trains_the_same_through_the_dft_as_through_the_windows(monkeypatch):
    """A few SGD steps of CNN-A (float32) with its second convolution through the DFT and
    through the windows: the same losses and weights to float32 rounding. (SGD: Adam's step is
    about lr times the gradient's sign where the gradient is tiny, which rounding may flip.)"""
    rng = np.random.default_rng(9)
    x, y = rng.random((16, 1, 28, 28)).astype(np.float32), rng.integers(0, 10, 16)
    runs = []
    for cost in (0, conv_module.SPECTRAL_MAX_COST):
        monkeypatch.setattr(conv_module, "SPECTRAL_MAX_COST", cost)
        model = gn.models.cnn_a(np.random.default_rng(10), (1, 28, 28), 10)
        opt = gn.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        losses = [gn.train_step(model, gn.CrossEntropyLoss(), opt, x, y) for _ in range(3)]
        runs.append((losses, [p.data.copy() for p in model.parameters()]))
    np.testing.assert_allclose(runs[1][0], runs[0][0], rtol=1e-5)
    for a, b in zip(runs[0][1], runs[1][1]):
        np.testing.assert_allclose(b, a, rtol=0, atol=1e-5)
