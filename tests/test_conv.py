"""Conv2d / Conv1d beyond the shared table: sizes, errors, config, files, memory layout."""

import contextlib
import json

import numpy as np
import pytest
from harness import memory_layout

import glassnet as gn
from glassnet.layers.conv import conv_out_size

torch = pytest.importorskip("torch")


@pytest.mark.parametrize("h,k,s,p,d", [(28, 5, 1, 0, 1), (12, 3, 2, 1, 1), (9, 3, 1, 2, 2), (7, 7, 1, 0, 1),
                                       (10, 4, 3, 1, 1), (11, 1, 2, 0, 1)])  # fmt: skip
def test_output_size_matches_torch(h, k, s, p, d):
    layer = gn.Conv2d(2, 3, k, stride=s, padding=p, dilation=d, rng=np.random.default_rng(0))
    x = np.zeros((1, 2, h, h + 1), np.float32)
    t = torch.nn.Conv2d(2, 3, k, stride=s, padding=p, dilation=d)(torch.zeros(1, 2, h, h + 1))
    assert layer.forward(x).shape == tuple(t.shape)
    assert conv_out_size(h, k, s, p, d) == t.shape[2]


def test_channel_mismatch_names_the_layer_and_both_counts():
    model = gn.Sequential(gn.Conv2d(1, 8, 3), gn.ReLU(), gn.Conv2d(32, 4, 3))
    with pytest.raises(gn.ShapeError, match=r"layer #2 \(Conv2d\): Conv2d expects 32 input channels, got 8"):
        model.forward(np.zeros((2, 1, 10, 10), np.float32))


@pytest.mark.parametrize("layer,shape,pattern", [
    (gn.Conv2d(3, 4, 3), (2, 3, 10), r"Conv2d expects input \(N, C, H, W\), got shape \(2, 3, 10\)"),
    (gn.Conv1d(3, 4, 3), (2, 3, 10, 10), r"Conv1d expects input \(N, C, L\)"),
    (gn.Conv2d(3, 4, 5), (2, 3, 4, 4), r"smaller than the \(dilated, padded\) kernel"),
])  # fmt: skip
def test_bad_input_shapes(layer, shape, pattern):
    with pytest.raises(gn.ShapeError, match=pattern):
        layer.forward(np.zeros(shape, np.float32))


def test_bad_constructor_arguments():
    with pytest.raises(ValueError, match="kernel_size must be an int or a pair"):
        gn.Conv2d(1, 2, (3, 3, 3))
    with pytest.raises(
        ValueError, match=r"Conv2d: padding must be >= 0 \(an int or a pair of ints\), got \(-1, -1\)"
    ):
        gn.Conv2d(1, 2, 3, padding=-1)
    with pytest.raises(ValueError, match="Conv1d: stride must be an int"):
        gn.Conv1d(1, 2, 3, stride=(1, 2))


@pytest.mark.parametrize("layer", [
    gn.Conv2d(2, 3, (3, 5), stride=(1, 2), padding=(1, 2), dilation=(2, 1)),
    gn.Conv1d(2, 3, 5, stride=2, padding=1, dilation=2, bias=False),
])  # fmt: skip
def test_config_rebuilds_the_same_layer_through_json(layer):
    again = type(layer)(**json.loads(json.dumps(layer.config())))
    assert again.config() == layer.config() and repr(again) == repr(layer)
    assert again.W.shape == layer.W.shape


def test_save_and_load_a_cnn(tmp_path):
    rng = np.random.default_rng(1)
    model = gn.models.cnn_a(rng, (1, 28, 28), 10, batch_norm=True)
    x = rng.random((3, 1, 28, 28)).astype(np.float32)
    gn.fit(model, gn.CrossEntropyLoss(), gn.optim.Adam(model.parameters()), (x, np.arange(3)), epochs=1,
           batch_size=3, rng=rng, verbose=False)  # fmt: skip
    gn.save(model, tmp_path / "cnn.safetensors")
    again = gn.load(tmp_path / "cnn.safetensors")
    np.testing.assert_array_equal(gn.predict(again, x), gn.predict(model, x))


def test_output_is_an_nchw_view_of_channels_last_memory_and_layout_flows_through():
    rng = np.random.default_rng(2)
    conv, relu, pool = gn.Conv2d(3, 8, 3, rng=rng), gn.ReLU(), gn.MaxPool2d(2)
    y = conv.forward(rng.standard_normal((2, 3, 10, 10)).astype(np.float32))
    assert y.shape == (2, 8, 8, 8) and y.transpose(0, 2, 3, 1).flags.c_contiguous
    z = pool.forward(relu.forward(y))
    assert z.transpose(0, 2, 3, 1).flags.c_contiguous  # the next conv's channels-last view is free
    dx = pool.backward(np.ones_like(z))
    assert dx.transpose(0, 2, 3, 1).flags.c_contiguous  # and so is the delta the conv receives


def test_float32_stays_float32_and_dy_is_untouched():
    rng = np.random.default_rng(3)
    conv = gn.Conv1d(2, 3, 3, padding=1, rng=rng)
    x = rng.standard_normal((2, 2, 7)).astype(np.float32)
    y = conv.forward(x)
    dy = rng.standard_normal(y.shape).astype(np.float32)
    before = dy.copy()
    dx = conv.backward(dy)
    assert y.dtype == dx.dtype == conv.W.grad.dtype == np.float32
    np.testing.assert_array_equal(dy, before)


# --- PyTorch's options: groups, padding "same"/"valid", padding_mode ----------------------------
# (the numbers are checked in the table: glassnet/cases.py rows "Conv2d (groups 2)", ...)


@pytest.mark.parametrize("make,message", [
    (lambda: gn.Conv2d(4, 6, 3, groups=4),
     "Conv2d: out_channels must be divisible by groups, got out_channels=6"),
    (lambda: gn.Conv1d(3, 6, 3, groups=2),
     "Conv1d: in_channels must be divisible by groups, got in_channels=3"),
    (lambda: gn.Conv2d(2, 2, 3, groups=0), "Conv2d: groups must be an integer >= 1, got 0"),
    (lambda: gn.Conv2d(2, 2, 3, stride=2, padding="same"),
     r"Conv2d: padding='same' is not supported for strided convolutions \(as in PyTorch\), "
     r"got stride=\(2, 2\)"),
    (lambda: gn.Conv1d(2, 2, 3, stride=2, padding="same"), "Conv1d: padding='same' .* got stride=2"),
    (lambda: gn.Conv2d(2, 2, 3, padding="full"),
     "Conv2d: padding must be an int, a pair of ints, 'same' or 'valid'"),
    (lambda: gn.Conv2d(2, 2, 3, padding_mode="mirror"),
     r"Conv2d: padding_mode must be one of \['zeros', 'reflect', 'replicate', 'circular'\], got 'mirror'"),
])  # fmt: skip
def test_bad_option_values_are_refused_naming_them(make, message):
    with pytest.raises(ValueError, match=message):
        make()


@pytest.mark.parametrize("mode,size,message", [
    ("reflect", 2, r"padding_mode='reflect' needs the padding \(2\) smaller than the input size"),
    ("circular", 1, r"padding_mode='circular' needs the padding \(2\) at most the input size"),
])  # fmt: skip
def test_padding_wider_than_the_input_is_refused_as_pytorch_does(mode, size, message):
    layer = gn.Conv1d(1, 1, 3, padding=2, padding_mode=mode)
    with pytest.raises(gn.ShapeError, match=message):
        layer.forward(np.zeros((1, 1, size), np.float32))
    with pytest.raises(RuntimeError):  # PyTorch refuses the same input
        torch.nn.Conv1d(1, 1, 3, padding=2, padding_mode=mode)(torch.zeros(1, 1, size))


@pytest.mark.parametrize("k,d", [(3, 1), (4, 1), (2, 3), (4, 2)])
def test_padding_same_keeps_the_size_and_valid_is_no_padding(k, d):
    x = np.zeros((1, 2, 9, 8), np.float32)
    assert gn.Conv2d(2, 3, k, padding="same", dilation=d).forward(x).shape == (1, 3, 9, 8)
    assert (
        gn.Conv2d(2, 3, k, padding="valid", dilation=d).forward(x).shape
        == gn.Conv2d(2, 3, k, dilation=d).forward(x).shape
    )


def test_depthwise_weight_shape_and_init_are_pytorchs():
    layer = gn.Conv2d(8, 16, 3, groups=8, rng=0)
    assert layer.W.shape == tuple(torch.nn.Conv2d(8, 16, 3, groups=8).weight.shape) == (16, 1, 3, 3)
    # PyTorch's default init bound 1/sqrt(fan_in), fan_in = (in_channels / groups) k k = 9
    assert np.abs(layer.W.data).max() <= 1 / 3 and np.abs(layer.W.data).max() > 0.3


def test_groups_after_an_optimizer_repoints_the_parameters():
    """Optimizers re-point W.data and W.grad at slices of their flat vectors: each group's views
    must follow, or a step would train arrays that are no longer the layer's."""
    rng = np.random.default_rng(4)
    model = gn.Sequential(gn.Conv2d(4, 4, 3, groups=2, rng=rng, dtype=np.float64), gn.Flatten())
    opt = gn.optim.SGD(model.parameters(), lr=0.1)
    x = rng.standard_normal((2, 4, 5, 5))
    conv = model.layers[0]
    ref = torch.nn.Conv2d(4, 4, 3, groups=2, dtype=torch.float64)
    with torch.no_grad():
        ref.weight.copy_(torch.from_numpy(conv.W.data)), ref.bias.copy_(torch.from_numpy(conv.b.data))
    topt = torch.optim.SGD(ref.parameters(), lr=0.1)
    for _ in range(2):
        model.zero_grad()
        model.backward(np.ones_like(model.forward(x)))
        opt.step()
        topt.zero_grad()
        ref(torch.from_numpy(x)).sum().backward()
        topt.step()
    np.testing.assert_allclose(conv.W.data, ref.weight.detach().numpy(), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("layer", [
    gn.Conv2d(4, 6, (3, 4), padding="same", groups=2, padding_mode="circular"),
    gn.Conv1d(4, 4, 3, padding="valid", groups=4, padding_mode="replicate", bias=False),
])  # fmt: skip
def test_options_survive_save_and_load(layer, tmp_path):
    again = type(layer)(**json.loads(json.dumps(layer.config())))
    assert again.config() == layer.config() and again.W.shape == layer.W.shape
    gn.save(gn.Sequential(layer), tmp_path / "m.safetensors")
    x = np.random.default_rng(0).standard_normal((2, 4, 6, 7)[: layer.W.data.ndim]).astype(np.float32)
    np.testing.assert_array_equal(gn.load(tmp_path / "m.safetensors").forward(x), layer.forward(x))


def test_a_config_written_before_the_options_still_loads():
    """Files saved before groups and padding_mode existed have no such keys: the defaults apply."""
    old = {"in_channels": 2, "out_channels": 3, "kernel_size": [3, 3], "stride": [1, 1], "padding": [1, 1],
           "dilation": [1, 1], "bias": True, "init": "torch_default"}  # fmt: skip
    layer = gn.Conv2d(**old)
    assert layer.groups == 1 and layer.padding_mode == "zeros" and layer.W.shape == (3, 2, 3, 3)
    assert gn.Conv2d.state_shapes(**old) == {"W": (3, 2, 3, 3), "b": (3,)}


def _plain_conv(x, W, b, s, p, d):
    """The definition, loop by loop (float64): y[n, o, i, j] = b[o] + sum over c, a, e of
    W[o, c, a, e] x_padded[n, c, i s_h + a d_h, j s_w + e d_w]."""
    n, c, h, w = x.shape
    out, _, kh, kw = W.shape
    xp = np.pad(x, ((0, 0), (0, 0), (p[0], p[0]), (p[1], p[1])))
    ho = (h + 2 * p[0] - d[0] * (kh - 1) - 1) // s[0] + 1
    wo = (w + 2 * p[1] - d[1] * (kw - 1) - 1) // s[1] + 1
    y = np.zeros((n, out, ho, wo)) + (0 if b is None else b[None, :, None, None])
    for a in range(kh):
        for e in range(kw):
            patch = xp[:, :, a * d[0] : a * d[0] + s[0] * (ho - 1) + 1 : s[0],
                       e * d[1] : e * d[1] + s[1] * (wo - 1) + 1 : s[1]]  # fmt: skip
            y += np.einsum("nchw,oc->nohw", patch, W[:, :, a, e])
    return y


GEOMETRIES = [
    dict(),
    dict(padding=2),
    dict(padding=(2, 1)),
    dict(stride=2, padding=1, dilation=2),
    dict(stride=(2, 1), bias=False),
]


@pytest.mark.parametrize("kw", GEOMETRIES)
def test_one_channel_cols_t_is_the_transposed_im2col_with_a_ones_row(kw):
    """The fast path for C_in = 1 builds cols^T tap by tap; it must be exactly ``_cols``^T (and
    a row of ones for the bias), so its products are the plain im2col formula's."""
    from glassnet.layers.conv import _cols, _cols_t_one_channel

    rng = np.random.default_rng(4)
    conv = gn.Conv2d(1, 3, (3, 2), rng=rng, dtype=np.float64, **kw)
    x = rng.standard_normal((2, 1, 9, 8))
    (ph, pw), k, s, d = conv.padding, conv.kernel_size, conv.stride, conv.dilation
    xp = np.pad(x.transpose(0, 2, 3, 1), ((0, 0), (ph, ph), (pw, pw), (0, 0)))
    y = conv.forward(x)
    out_hw = y.shape[2:]
    cols_t = _cols_t_one_channel(xp[..., 0], k, s, d, out_hw, ones_row=True)
    np.testing.assert_array_equal(cols_t[:-1], _cols(xp, k, s, d, out_hw).T)
    np.testing.assert_array_equal(cols_t[-1], 1.0)


@pytest.mark.parametrize("dx_path", ["taps", "taps on channels-last memory", "shifted rows", "spectral"])
@pytest.mark.parametrize("c_in", [1, 3])
@pytest.mark.parametrize("kw", GEOMETRIES)
def test_conv_equals_the_plain_formula_float64(c_in, kw, dx_path, monkeypatch):
    """Forward, dW, db and dx of every path (C_in = 1: cols^T with the bias folded into the
    products; C_in > 1: im2col; through the DFT, ``_spectral``) against the definition and its
    derivatives, in float64; dx by the tap-by-tap scatter (its adds on pixel-major memory, and on
    channels-last memory) and, for stride 1 undilated, by row-shifted products."""
    from glassnet.layers import conv as conv_module

    monkeypatch.setattr(conv_module, "SHIFTED_DX_MAX_WASTE", 1e9 if dx_path == "shifted rows" else 0)
    monkeypatch.setattr(conv_module, "PIXEL_MAJOR_DX", dx_path != "taps on channels-last memory")
    monkeypatch.setattr(conv_module, "LONG_PRODUCT_BLOCK_BYTES", 1000)  # C_in = 1: dW in blocks of a few rows
    monkeypatch.setattr(conv_module, "SPECTRAL_MAX_COST", 1e9 if dx_path == "spectral" else 0)
    rng = np.random.default_rng(5)
    conv = gn.Conv2d(c_in, 4, 3, rng=rng, dtype=np.float64, **kw)
    x = rng.standard_normal((3, c_in, 10, 9))
    b = None if conv.b is None else conv.b.data
    y = conv.forward(x)
    assert (conv.spectral is not None) == (dx_path == "spectral")
    np.testing.assert_allclose(y, _plain_conv(x, conv.W.data, b, conv.stride, conv.padding, conv.dilation),
                               rtol=1e-12, atol=1e-12)  # fmt: skip
    dy = rng.standard_normal(y.shape)
    dx = conv.backward(dy)
    # the plain derivatives, through the linearity of the definition in W, b and x
    dW = np.zeros_like(conv.W.data)
    for idx in np.ndindex(*dW.shape):
        e = np.zeros_like(dW)
        e[idx] = 1
        dW[idx] = (_plain_conv(x, e, None, conv.stride, conv.padding, conv.dilation) * dy).sum()
    np.testing.assert_allclose(conv.W.grad, dW, rtol=1e-10, atol=1e-10)
    if b is not None:
        np.testing.assert_allclose(conv.b.grad, dy.sum(axis=(0, 2, 3)), rtol=1e-12, atol=1e-12)
    dx_plain = np.zeros_like(x)
    for idx in np.ndindex(*x.shape):
        e = np.zeros_like(x)
        e[idx] = 1
        dx_plain[idx] = (
            _plain_conv(e, conv.W.data, None, conv.stride, conv.padding, conv.dilation) * dy
        ).sum()
    np.testing.assert_allclose(dx, dx_plain, rtol=1e-10, atol=1e-10)


def test_long_product_in_blocks_is_the_product(monkeypatch):
    """_long_product (a short, wide a times a tall, narrow b, summed over blocks of the inner
    dimension) equals a @ b to rounding, with a last block shorter than the others, one row
    per block, and an inner dimension too short to split."""
    from glassnet.layers import conv as conv_module

    rng = np.random.default_rng(12)
    for block_bytes, inner in ((1000, 1000), (1000, 997), (8 * 30, 50), (1 << 20, 300)):
        monkeypatch.setattr(conv_module, "LONG_PRODUCT_BLOCK_BYTES", block_bytes)
        a, b = rng.standard_normal((26, inner)), rng.standard_normal((inner, 4))
        np.testing.assert_allclose(conv_module._long_product(a, b), a @ b, rtol=1e-12, atol=1e-12)
        a32, b32 = a.astype(np.float32), b.astype(np.float32)
        got = conv_module._long_product(a32, b32)
        assert got.dtype == np.float32
        np.testing.assert_allclose(got, a @ b, rtol=1e-4, atol=1e-3)


def test_tap_by_tap_dx_is_the_same_bits_in_either_memory_layout(monkeypatch):
    """The tap-by-tap dx adds the same products in the same order on pixel-major memory as on
    channels-last memory: the same float32 bits, strided, dilated, padded and grouped; the dx
    it returns is an NCHW view of channels-last memory, as the layers below expect."""
    from glassnet.layers import conv as conv_module

    monkeypatch.setattr(conv_module, "SHIFTED_DX_MAX_WASTE", 0)
    rng = np.random.default_rng(11)
    for kw in ({}, {"stride": 2, "padding": 1}, {"dilation": 2, "padding": 2}, {"groups": 2}):
        conv = gn.Conv2d(4, 6, 3, rng=rng, **kw)
        x = rng.standard_normal((5, 4, 11, 10)).astype(np.float32)
        dy = rng.standard_normal(conv.forward(x).shape).astype(np.float32)
        got = {}
        for pixel_major in (True, False):
            monkeypatch.setattr(conv_module, "PIXEL_MAJOR_DX", pixel_major)
            conv.forward(x)
            got[pixel_major] = conv.backward(dy)
        np.testing.assert_array_equal(got[True].view(np.uint32), got[False].view(np.uint32))
        if kw.get("groups", 1) == 1:
            assert got[True].transpose(0, 2, 3, 1).flags.c_contiguous


def test_no_grad_keeps_no_windows_and_backward_then_says_so():
    rng = np.random.default_rng(6)
    for c_in in (1, 2):
        conv = gn.Conv2d(c_in, 3, 3, rng=rng)
        x = rng.standard_normal((2, c_in, 7, 7)).astype(np.float32)
        y = conv.forward(x)
        with gn.no_grad():
            y_fast = conv.forward(x)
        assert conv.cols is None and conv.cols_t is None
        np.testing.assert_array_equal(y_fast, y)
        with pytest.raises(RuntimeError, match=r"Conv2d.backward: the forward pass ran under no_grad"):
            conv.backward(np.ones_like(y))
        conv.forward(x)
        conv.backward(np.ones_like(y))  # forward outside no_grad: backward works again


@pytest.mark.parametrize("c_in", [1, 3])
@pytest.mark.parametrize("training", [False, True])
@pytest.mark.parametrize("no_grad_way", ["ring", "two", "one"])
def test_forward_in_blocks_of_examples_equals_the_whole_batch(monkeypatch, c_in, training, no_grad_way):
    """The windows are written and multiplied a few examples at a time (``COLS_BLOCK_BYTES``):
    the rows of y, and in training the kept windows and so backward, are the whole batch's.
    Under no_grad nothing is kept for backward; its blocks take turns in a ring (way "ring"), in
    two blocks' buffers (way "two") or in one (way "one"). The ways are pinned here
    (glassnet.tuning times them otherwise)."""
    from glassnet import tuning
    from glassnet.layers import conv as conv_module

    monkeypatch.setitem(tuning.FIXED, "conv_windows", "blocks")
    monkeypatch.setitem(tuning.FIXED, "conv_no_grad_windows", no_grad_way)

    rng = np.random.default_rng(9)
    conv = gn.Conv2d(c_in, 4, 3, padding=1, rng=rng, dtype=np.float64)
    x = rng.standard_normal((7, c_in, 6, 5))
    dy = rng.standard_normal((7, 4, 6, 5))
    monkeypatch.setattr(conv_module, "COLS_BLOCK_BYTES", 1 << 30)  # the whole batch at once
    whole = conv.forward(x)
    grads = [conv.backward(dy), conv.W.grad.copy(), conv.b.grad.copy()]
    example = 6 * 5 * (9 * c_in + 1) * 8  # bytes of one example's windows
    # one example at a time; 3, 3, then 1; under no_grad the blocks take turns in a ring of
    # two blocks (which the last ones write over) or of more blocks than there are
    for block_bytes, ring_bytes in ((1, 2 * example), (3 * example, 6 * example), (1, 1 << 30)):
        monkeypatch.setattr(conv_module, "COLS_BLOCK_BYTES", block_bytes)
        monkeypatch.setattr(conv_module, "NO_GRAD_RING_BYTES", ring_bytes)
        conv.zero_grad()
        with contextlib.nullcontext() if training else gn.no_grad():
            blocked = conv.forward(x)
        np.testing.assert_allclose(blocked, whole, rtol=1e-13, atol=1e-13)
        assert blocked.transpose(0, 2, 3, 1).flags.c_contiguous
        if training:
            for got, want in zip([conv.backward(dy), conv.W.grad, conv.b.grad], grads):
                np.testing.assert_allclose(got, want, rtol=1e-13, atol=1e-13)
        else:
            assert conv.cols is None and conv.cols_t is None


@pytest.mark.parametrize("rows", [2, 0])
def test_a_1x1_convolution_on_a_convolutions_output_trains_step_after_step(rows):
    """A 1x1 kernel's windows over channels-last input (a convolution's output) are contiguous
    already: the windows matrix must still be a copy of the layer's own, since the next step
    writes into it (it was a read-only view of the input, and step 2 crashed). A batch of zero
    rows too."""
    rng = np.random.default_rng(0)
    model = gn.Sequential(gn.Conv2d(3, 4, 3, rng=rng), gn.Conv2d(4, 4, 1, rng=rng))
    for _ in range(3):
        x = rng.standard_normal((rows, 3, 6, 6)).astype(np.float32)
        y = model.forward(x)
        model.backward(np.ones_like(y))
        assert y.shape == (rows, 4, 4, 4) and model[1].cols.flags.writeable
    same = gn.Conv2d(3, 4, 3, padding=1, rng=rng)  # dx by row-shifted products
    assert same.backward(same.forward(np.zeros((rows, 3, 28, 28)))).shape == (rows, 3, 28, 28)
    pool = gn.GlobalMaxPool2d()
    assert pool.backward(pool.forward(np.zeros((rows, 3, 5, 5)))).shape == (rows, 3, 5, 5)
    norm = gn.BatchNorm2d(3).eval()  # training on zero rows has no batch statistics (PyTorch refuses it too)
    assert norm.forward(np.zeros((rows, 3, 5, 5), np.float32)).shape == (rows, 3, 5, 5)


def test_the_next_training_step_writes_its_windows_over_the_last_ones():
    """cols is reused from one training forward to the next (same shape and dtype); the
    gradients are then exactly a fresh layer's, and a new batch size gets a new matrix."""
    rng = np.random.default_rng(11)
    conv = gn.Conv2d(3, 4, 3, padding=1, rng=rng, dtype=np.float64)
    fresh = gn.Conv2d(3, 4, 3, padding=1, rng=rng, dtype=np.float64)
    fresh.load_state_dict(conv.state_dict())
    x1, x2 = rng.standard_normal((2, 5, 3, 6, 6))
    dy = rng.standard_normal((5, 4, 6, 6))
    conv.forward(x1)
    conv.backward(dy)
    first = conv.cols
    conv.zero_grad()
    y = conv.forward(x2)
    assert conv.cols is first  # written over, not allocated
    dx = conv.backward(dy)
    np.testing.assert_array_equal(y, fresh.forward(x2))
    np.testing.assert_array_equal(dx, fresh.backward(dy))
    np.testing.assert_array_equal(conv.W.grad, fresh.W.grad)
    np.testing.assert_array_equal(conv.b.grad, fresh.b.grad)
    conv.forward(x2[:3])
    assert conv.cols is not first and conv.cols.shape[0] == 3 * 36
    with gn.no_grad():
        conv.forward(x2)
    conv.forward(x2)  # after no_grad (nothing kept): a fresh matrix again
    assert conv.cols.shape[0] == 5 * 36


# --- the one-channel convolution's output pixel-major, for the max-pool after it -----------------


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(
    "kwargs", [dict(kernel_size=5), dict(kernel_size=3, padding=1, stride=2), dict(kernel_size=3, dilation=2)]
)
def test_one_channel_output_pixel_major_is_the_same_convolution(kwargs, dtype, monkeypatch):
    """With ``pixel_major_out`` the windows' columns, and so y's rows, come (i, j, n): y is the
    NCHW view of pixel-major memory, with the channels-last path's values; backward (dW, db, dx)
    reads delta in that order. float64 to rounding, float32 to a few ulps."""
    from glassnet.layers import conv as conv_module

    rng = np.random.default_rng(0)
    x = rng.standard_normal((5, 1, 11, 10)).astype(dtype)
    tol = dict(rtol=1e-12, atol=1e-12) if dtype == np.float64 else dict(rtol=1e-5, atol=1e-5)
    out = []
    for pm in (False, True):
        conv = gn.Conv2d(1, 4, rng=np.random.default_rng(1), dtype=dtype, **kwargs)
        conv.pixel_major_out = pm
        y = conv.forward(x)
        dy = np.random.default_rng(2).standard_normal(y.shape).astype(dtype)
        dx = conv.backward(dy)
        out.append((y, dx, conv.W.grad.copy(), conv.b.grad.copy(), memory_layout(y)))
    (y0, dx0, w0, b0, l0), (y1, dx1, w1, b1, l1) = out
    assert (l0, l1) == ("channels-last", "pixel-major")
    for a, b in ((y1, y0), (dx1, dx0), (w1, w0), (b1, b0)):
        np.testing.assert_allclose(a, b, **tol)
    monkeypatch.setattr(conv_module, "PIXEL_MAJOR_OUT", False)  # the switch turns it off
    conv = gn.Conv2d(1, 4, rng=np.random.default_rng(1), dtype=dtype, **kwargs)
    conv.pixel_major_out = True
    assert memory_layout(conv.forward(x)) == "channels-last"


def test_a_pixel_major_input_is_copied_channels_last_and_its_dx_comes_back_pixel_major():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((4, 6, 9, 9))
    x_pm = np.ascontiguousarray(x.transpose(2, 3, 0, 1)).transpose(2, 3, 0, 1)
    out = []
    for xi in (x, x_pm):
        conv = gn.Conv2d(6, 5, 3, rng=np.random.default_rng(4), dtype=np.float64)
        y = conv.forward(xi)
        dx = conv.backward(np.random.default_rng(5).standard_normal(y.shape))
        out.append((y, dx, conv.W.grad.copy()))
    for a, b in zip(out[0], out[1]):
        np.testing.assert_allclose(b, a, rtol=1e-12, atol=1e-12)
    assert memory_layout(out[1][1]) == "pixel-major"


def test_sequential_asks_a_one_channel_conv_for_pixel_major_output_only_before_a_max_pool():
    rng = np.random.default_rng(0)

    def first(*after, c_in=1):
        net = gn.Sequential(gn.Conv2d(c_in, 4, 3, rng=rng), *after)
        net.steps()
        return net[0].pixel_major_out

    def conv():
        return gn.Conv2d(4, 4, 3, rng=rng)

    assert first(gn.ReLU(), gn.MaxPool2d(2), conv())  # CNN-A
    assert first(gn.BatchNorm2d(4), gn.ReLU(), gn.MaxPool2d(2), conv())  # CNN-A + BatchNorm2d
    assert first(gn.MaxPool2d(2), conv())
    assert not first(gn.ReLU(), gn.MaxPool2d(2), conv(), c_in=3)  # its rows' order is not free
    assert not first(gn.ReLU(), gn.MaxPool2d(2), gn.Flatten())  # Flatten's copy would pay for it
    assert not first(gn.ReLU(), gn.MaxPool2d(2))
    assert not first(gn.BatchNorm2d(4), gn.ReLU(), conv())  # the ResNet's stem
    assert not first(gn.ReLU(), gn.AvgPool2d(2), conv())
    assert not first(gn.Flatten())
    assert not first()
    cnn = gn.models.cnn_a(rng, (1, 28, 28), 10)
    cnn.forward(np.zeros((2, 1, 28, 28), np.float32))
    assert cnn[0].pixel_major_out and cnn[0].pixel_rows
    with gn.no_grad():  # a large batch under no_grad runs in blocks of examples: channels-last
        y = cnn[0].forward(np.zeros((1200, 1, 28, 28), np.float32))
    assert memory_layout(y) == "channels-last" and not cnn[0].pixel_rows


def test_cnn_a_steps_with_the_first_output_pixel_major_or_not_agree(monkeypatch):
    from glassnet.layers import conv as conv_module

    rng = np.random.default_rng(6)
    x, y = rng.random((8, 1, 28, 28)).astype(np.float64), rng.integers(0, 10, 8)
    grads = []
    for on in (True, False):
        monkeypatch.setattr(conv_module, "PIXEL_MAJOR_OUT", on)
        for bn in (False, True):
            model = gn.models.cnn_a(np.random.default_rng(7), (1, 28, 28), 10, batch_norm=bn).to(np.float64)
            model.eval()  # no dropout draw: the two runs see the same network
            loss = gn.CrossEntropyLoss()
            loss.forward(model.forward(x), y)
            model.backward_params(loss.backward())
            assert model[0].pixel_rows == on
            grads.append([p.grad.copy() for p in model.parameters()])
    for a, b in zip(grads[:2], grads[2:]):
        for ga, gb in zip(a, b):
            np.testing.assert_allclose(ga, gb, rtol=1e-10, atol=1e-12)
