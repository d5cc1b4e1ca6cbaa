"""Pooling beyond the table rows: PyTorch's tie rule (the first maximum takes the gradient), the
fast tiled path against the general one, output sizes over a grid, errors and config round trips.
The table (glassnet/cases.py) already runs every pooling row through finite differences, the
directional check, PyTorch and the layer contracts."""

from __future__ import annotations

import json

import numpy as np
import pytest

import glassnet as gn

MAX_2D = [
    dict(kernel_size=2),
    dict(kernel_size=3),
    dict(kernel_size=3, stride=2, padding=1),
    dict(kernel_size=(2, 3), stride=(1, 2), padding=(1, 1)),
    dict(kernel_size=3, stride=1),
]
MAX_1D = [
    dict(kernel_size=2),
    dict(kernel_size=3, stride=2, padding=1),
    dict(kernel_size=4, stride=1, padding=2),
]


def torch_grads(module, x, dy, torch):
    xt = torch.tensor(x, requires_grad=True)
    yt = module(xt)
    yt.backward(torch.from_numpy(dy))
    return yt.detach().numpy(), xt.grad.numpy()


def ours(layer, x, dy=None, seed=1):
    y = layer.forward(x)
    if dy is None:
        dy = np.random.default_rng(seed).standard_normal(y.shape).astype(y.dtype)
    return y, dy, layer.backward(dy)


# --- ties: the first maximum in each window takes all of delta, as in PyTorch --------------------


def nonzero_integers(shape, seed=1):
    """An upstream gradient whose sums are exact, so dx can be compared bit for bit with torch's
    however the two order the adds of overlapping windows; no entry is 0, so a misrouted delta shows."""
    rng = np.random.default_rng(seed)
    return rng.integers(1, 10, size=shape) * rng.choice([-1.0, 1.0], size=shape)


TIED = {
    "zeros (ReLU's dead units)": lambda rng, shape: np.zeros(shape),
    "constant": lambda rng, shape: np.full(shape, 1.5),
    "small integers": lambda rng, shape: rng.integers(0, 3, size=shape).astype(np.float64),
    "ReLU of integers": lambda rng, shape: np.maximum(rng.integers(-2, 2, size=shape), 0).astype(np.float64),
}


@pytest.mark.parametrize("kind", TIED)
@pytest.mark.parametrize("kwargs", MAX_2D, ids=str)
def test_maxpool2d_ties_as_torch(kwargs, kind, torch):
    rng = np.random.default_rng(0)
    x = TIED[kind](rng, (2, 3, 7, 8))
    layer = gn.MaxPool2d(**kwargs)
    y, dy, dx = ours(layer, x, nonzero_integers(layer.forward(x).shape))
    ty, tdx = torch_grads(torch.nn.MaxPool2d(**kwargs), x, dy, torch)
    np.testing.assert_array_equal(y, ty)
    np.testing.assert_array_equal(dx, tdx)


@pytest.mark.parametrize("kind", TIED)
@pytest.mark.parametrize("kwargs", MAX_1D, ids=str)
def test_maxpool1d_ties_as_torch(kwargs, kind, torch):
    rng = np.random.default_rng(0)
    x = TIED[kind](rng, (2, 3, 11))
    layer = gn.MaxPool1d(**kwargs)
    y, dy, dx = ours(layer, x, nonzero_integers(layer.forward(x).shape))
    ty, tdx = torch_grads(torch.nn.MaxPool1d(**kwargs), x, dy, torch)
    np.testing.assert_array_equal(y, ty)
    np.testing.assert_array_equal(dx, tdx)


@pytest.mark.parametrize("kind", TIED)
def test_global_maxpool_ties_as_torch(kind, torch):
    x = TIED[kind](np.random.default_rng(0), (2, 3, 4, 5))
    y, dy, dx = ours(gn.GlobalMaxPool2d(), x, nonzero_integers(x.shape[:2]))
    reference = torch.nn.Sequential(torch.nn.AdaptiveMaxPool2d(1), torch.nn.Flatten())
    ty, tdx = torch_grads(reference, x, dy, torch)
    np.testing.assert_array_equal(y, ty)
    np.testing.assert_array_equal(dx, tdx)


def test_tie_goes_to_first_maximum_in_row_major_order():
    x = np.array([[[[1.0, 5.0], [5.0, 5.0]]]])
    layer = gn.MaxPool2d(2)
    layer.forward(x)
    np.testing.assert_array_equal(layer.backward(np.array([[[[2.0]]]])), [[[[0.0, 2.0], [0.0, 0.0]]]])


# --- the tiled fast path and the general path ----------------------------------------------------

TILED = [  # (layer, input shape): stride == kernel, no padding; some sizes leave a cropped border
    (gn.MaxPool2d(2), (3, 4, 8, 6)),
    (gn.MaxPool2d(2), (2, 3, 7, 9)),
    (gn.MaxPool2d(3), (2, 2, 10, 8)),
    (gn.MaxPool2d((2, 3)), (2, 3, 6, 7)),
    (gn.MaxPool1d(3), (2, 3, 13)),
    (gn.AvgPool2d(2), (3, 4, 8, 6)),
    (gn.AvgPool2d(3), (2, 2, 10, 8)),
    (gn.AvgPool2d((3, 2)), (2, 3, 7, 7)),
    (gn.AvgPool1d(2), (2, 3, 9)),
]
TORCH_CLASS = {"MaxPool2d", "MaxPool1d", "AvgPool2d", "AvgPool1d"}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(("layer", "shape"), TILED, ids=lambda v: repr(v))
def test_fast_path_equals_general_path_and_torch(layer, shape, dtype, torch):
    assert layer.tiled
    x = np.random.default_rng(0).standard_normal(shape).astype(dtype)
    y_fast, dy, dx_fast = ours(layer, x)
    general = type(layer)(**layer.config())
    general.tiled = False  # force the zero-filled, slice-adding backward
    y_general, _, dx_general = ours(general, x, dy)
    np.testing.assert_array_equal(y_fast, y_general)
    np.testing.assert_array_equal(dx_fast, dx_general)
    assert y_fast.dtype == dx_fast.dtype == dx_general.dtype == dtype

    module = getattr(torch.nn, type(layer).__name__)(layer.kernel_size, layer.stride, layer.padding)
    ty, tdx = torch_grads(module, x.astype(np.float64), dy.astype(np.float64), torch)
    tol = dict(rtol=1e-6, atol=1e-6) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(y_fast, ty, **tol)
    np.testing.assert_allclose(dx_fast, tdx, **tol)


GENERAL = [
    (gn.MaxPool2d(3, stride=2, padding=1), (2, 3, 9, 8)),
    (gn.MaxPool2d(3, stride=1, padding=1), (2, 2, 5, 6)),
    (gn.MaxPool2d((3, 2), stride=(2, 3), padding=(1, 0)), (2, 2, 8, 9)),
    (gn.MaxPool2d(2, stride=3), (2, 2, 8, 8)),  # stride > kernel: units in no window
    (gn.AvgPool2d(3, stride=2, padding=1), (2, 3, 9, 8)),
    (gn.AvgPool2d(4, stride=2, padding=2), (2, 2, 7, 7)),
    (gn.MaxPool1d(5, stride=2, padding=2), (3, 2, 12)),
    (gn.AvgPool1d(3, stride=1, padding=1), (3, 2, 12)),
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(("layer", "shape"), GENERAL, ids=lambda v: repr(v))
def test_general_path_matches_torch(layer, shape, dtype, torch):
    assert not layer.tiled
    x = np.random.default_rng(0).standard_normal(shape).astype(dtype)
    y, dy, dx = ours(layer, x)
    assert y.dtype == dx.dtype == dtype and dx.shape == x.shape
    module = getattr(torch.nn, type(layer).__name__)(layer.kernel_size, layer.stride, layer.padding)
    ty, tdx = torch_grads(module, x.astype(np.float64), dy.astype(np.float64), torch)
    tol = dict(rtol=1e-6, atol=1e-6) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(y, ty, **tol)
    np.testing.assert_allclose(dx, tdx, **tol)


@pytest.mark.parametrize("shape", [(2, 3, 4, 5), (1, 2, 1, 1), (3, 1, 6, 2)], ids=str)
def test_global_pools_equal_a_whole_map_window(shape):
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    for global_layer, window in [(gn.GlobalAvgPool2d(), gn.AvgPool2d), (gn.GlobalMaxPool2d(), gn.MaxPool2d)]:
        y, dy, dx = ours(global_layer, x)
        assert y.shape == shape[:2] and y.dtype == dx.dtype == np.float32
        whole = window(shape[2:])
        y_whole, _, dx_whole = ours(whole, x, dy[:, :, None, None])
        np.testing.assert_allclose(y, y_whole[:, :, 0, 0], rtol=1e-6)
        np.testing.assert_allclose(dx, dx_whole, rtol=1e-6)


# --- output sizes and errors ---------------------------------------------------------------------


def test_output_sizes_match_torch_over_a_grid(torch):
    checked = 0
    for size in range(1, 9):
        for k in range(1, 5):
            for s in range(1, 4):
                for p in range(k // 2 + 1):
                    for ours_cls, torch_cls, shape in [
                        (gn.MaxPool2d, torch.nn.MaxPool2d, (1, 2, size, size + 1)),
                        (gn.AvgPool2d, torch.nn.AvgPool2d, (1, 2, size, size + 1)),
                        (gn.MaxPool1d, torch.nn.MaxPool1d, (1, 2, size)),
                        (gn.AvgPool1d, torch.nn.AvgPool1d, (1, 2, size)),
                    ]:
                        x = np.zeros(shape)
                        if size + 2 * p < k:
                            with pytest.raises(gn.ShapeError, match="smaller than kernel_size"):
                                ours_cls(k, s, p).forward(x)
                            continue
                        expected = torch_cls(k, s, p)(torch.from_numpy(x)).shape
                        assert ours_cls(k, s, p).forward(x).shape == expected, (ours_cls, size, k, s, p)
                        checked += 1
    assert checked > 500


@pytest.mark.parametrize(
    ("layer", "shape", "message"),
    [
        (gn.MaxPool2d(2), (3, 4), "MaxPool2d expects input (N, C, H, W), got shape (3, 4)"),
        (gn.AvgPool2d(2), (2, 3, 4), "AvgPool2d expects input (N, C, H, W), got shape (2, 3, 4)"),
        (gn.MaxPool1d(2), (2, 3, 4, 5), "MaxPool1d expects input (N, C, L), got shape (2, 3, 4, 5)"),
        (gn.AvgPool1d(2), (8,), "AvgPool1d expects input (N, C, L), got shape (8,)"),
        (gn.GlobalAvgPool2d(), (2, 3), "GlobalAvgPool2d expects input (N, C, H, W), got shape (2, 3)"),
        (gn.GlobalMaxPool2d(), (2, 3, 4), "GlobalMaxPool2d expects input (N, C, H, W), got shape (2, 3, 4)"),
    ],
    ids=lambda v: repr(v) if isinstance(v, gn.Module) else None,
)
def test_wrong_rank_names_layer_and_expected_shape(layer, shape, message):
    with pytest.raises(gn.ShapeError) as info:
        layer.forward(np.zeros(shape, np.float32))
    assert str(info.value) == message


@pytest.mark.parametrize(
    ("layer", "shape"),
    [
        (gn.MaxPool2d(3), (1, 1, 2, 5)),
        (gn.MaxPool2d((2, 4)), (1, 1, 5, 3)),
        (gn.AvgPool2d(5, padding=1), (1, 1, 2, 2)),
        (gn.MaxPool1d(4), (2, 3, 3)),
    ],
    ids=str,
)
def test_input_smaller_than_kernel_is_a_shape_error(layer, shape):
    with pytest.raises(gn.ShapeError, match=f"{type(layer).__name__}: input .* smaller than kernel_size"):
        layer.forward(np.zeros(shape, np.float32))


def test_shape_error_in_sequential_names_the_layer_index():
    model = gn.Sequential(gn.ReLU(), gn.MaxPool2d(2), gn.MaxPool2d(4))
    with pytest.raises(gn.ShapeError, match=r"layer #2 \(MaxPool2d\).*smaller than kernel_size"):
        model.forward(np.zeros((1, 1, 6, 6), np.float32))


@pytest.mark.parametrize(
    ("build", "match"),
    [
        (lambda: gn.MaxPool2d(2, padding=2), "padding must be at most half the kernel size"),
        (lambda: gn.AvgPool2d(3, padding=2), "padding must be at most half the kernel size"),
        (lambda: gn.MaxPool2d((4, 2), padding=(2, 2)), "padding must be at most half the kernel size"),
        (lambda: gn.MaxPool1d(1, padding=1), "padding must be at most half the kernel size"),
        (lambda: gn.MaxPool2d(0), "kernel_size and stride must be >= 1"),
        (lambda: gn.AvgPool1d(2, stride=0), "kernel_size and stride must be >= 1"),
        (lambda: gn.MaxPool2d(2, padding=-1), "padding >= 0"),
        (lambda: gn.MaxPool2d((2, 2, 2)), "kernel_size must be an int or 2 ints"),
        (lambda: gn.MaxPool1d((2, 2)), "kernel_size must be an int or 1 ints"),
        (lambda: gn.AvgPool2d(2.0), "kernel_size must be an int or 2 ints"),
        (lambda: gn.MaxPool2d(2, stride="2"), "stride must be an int or 2 ints"),
    ],
)
def test_bad_arguments_are_value_errors(build, match):
    with pytest.raises(ValueError, match=match):
        build()


def test_padding_up_to_half_the_kernel_is_accepted(torch):
    for k in range(1, 6):
        gn.MaxPool2d(k, padding=k // 2)
        torch.nn.MaxPool2d(k, padding=k // 2)(torch.zeros(1, 1, 8, 8))  # torch's limit is the same


# --- config round trips --------------------------------------------------------------------------

LAYERS = [
    gn.MaxPool2d(2),
    gn.MaxPool2d(3, stride=2, padding=1),
    gn.MaxPool2d((2, 3), stride=[1, 2], padding=(1, 0)),
    gn.AvgPool2d(2, 1),
    gn.AvgPool2d([3, 3], padding=[1, 1]),
    gn.MaxPool1d(3, stride=2, padding=1),
    gn.AvgPool1d((4,), padding=2),
    gn.GlobalAvgPool2d(),
    gn.GlobalMaxPool2d(),
]


@pytest.mark.parametrize("layer", LAYERS, ids=repr)
def test_config_round_trip(layer):
    config = layer.config()
    assert json.loads(json.dumps(config)) == config  # plain ints and lists
    for again in [type(layer)(**config), type(layer)(**json.loads(json.dumps(config)))]:
        assert again.config() == config
        assert repr(again) == repr(layer)
        if hasattr(layer, "kernel_size"):
            assert (again.kernel_size, again.stride, again.padding) == (
                layer.kernel_size,
                layer.stride,
                layer.padding,
            )


def test_config_and_repr_read_like_torch():
    assert (
        repr(gn.MaxPool2d(2)) == "MaxPool2d(kernel_size=2, stride=2, padding=0, dilation=1, ceil_mode=False)"
    )
    assert (
        repr(gn.AvgPool2d((2, 3), padding=(1, 1)))
        == "AvgPool2d(kernel_size=[2, 3], stride=[2, 3], padding=1, ceil_mode=False, count_include_pad=True)"
    )
    assert gn.MaxPool1d(3, 1).config() == {
        "kernel_size": 3,
        "stride": 1,
        "padding": 0,
        "dilation": 1,
        "ceil_mode": False,
    }
    assert gn.MaxPool2d([2, 2], [1, 1]).kernel_size == (2, 2)  # tuples inside, whatever came in


def test_save_and_load_a_pooling_model(tmp_path):
    rng = np.random.default_rng(0)
    model = gn.Sequential(
        gn.MaxPool2d(3, stride=2, padding=1),
        gn.AvgPool2d((2, 1)),
        gn.GlobalMaxPool2d(),
        gn.Linear(3, 2, rng=rng),
    )
    path = tmp_path / "pool.safetensors"
    gn.save(model, path)
    loaded = gn.load(path)
    assert repr(loaded) == repr(model)
    x = rng.standard_normal((2, 3, 9, 8)).astype(np.float32)
    np.testing.assert_array_equal(loaded.forward(x), model.forward(x))


# --- what forward keeps --------------------------------------------------------------------------


def test_maxpool_keeps_one_byte_per_output_not_the_input():
    layer = gn.MaxPool2d(2)
    x = np.random.default_rng(0).standard_normal((2, 3, 8, 8)).astype(np.float32)
    y = layer.forward(x)
    kept = [v for v in vars(layer).values() if isinstance(v, np.ndarray)]
    assert not any(np.shares_memory(v, x) for v in kept)
    assert sum(v.nbytes for v in kept) == y.size  # the argmax offsets, uint8


@pytest.mark.parametrize("layer", [gn.MaxPool2d(2), gn.AvgPool2d(2), gn.MaxPool2d(3, stride=2, padding=1)])
def test_backward_takes_dy_in_any_layout_and_keeps_the_inputs(layer):
    """After a conv the input is channels-last memory while dy from a Flatten above is C order:
    dx is the same either way and lies in memory as the input did."""
    rng = np.random.default_rng(4)
    x = rng.standard_normal((3, 6, 4, 5)).transpose(0, 3, 1, 2)  # (N, C, H, W) view, channels last
    y = layer.forward(x)
    dy_c = rng.standard_normal(y.shape)  # C order
    dy_last = np.ascontiguousarray(dy_c.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)
    dx_c, dx_last = layer.backward(dy_c).copy(), layer.backward(dy_last)
    np.testing.assert_array_equal(dx_c, dx_last)
    assert gn.functional.axis_order(layer.backward(dy_c)) == gn.functional.axis_order(x) == [0, 2, 3, 1]


# --- PyTorch's further options: ceil_mode, dilation (max), count_include_pad (average) -----------


@pytest.mark.parametrize(
    "cls", [gn.MaxPool2d, gn.AvgPool2d, gn.MaxPool1d, gn.AvgPool1d], ids=lambda c: c.__name__
)
@pytest.mark.parametrize("k,s,p", [(2, 2, 0), (3, 2, 1), (3, 1, 1), (2, 3, 0)])
def test_the_plain_window_code_agrees_with_the_fast_code(cls, k, s, p):
    """The options run in plain window code; with the default options it must compute what the
    fast strided-view code computes, forward and backward."""
    rng = np.random.default_rng(0)
    shape = (2, 3, 7, 8) if cls.ndim == 2 else (2, 3, 9)
    x = rng.permutation(int(np.prod(shape))).reshape(shape) * 0.01
    fast, plain = cls(k, s, p), cls(k, s, p)
    plain.general = True
    y = fast.forward(x)
    np.testing.assert_allclose(plain.forward(x), y, rtol=1e-14)  # max: equal; mean: summed in another order
    dy = rng.standard_normal(y.shape)
    np.testing.assert_allclose(plain.backward(dy), fast.backward(dy), rtol=1e-14, atol=1e-15)


@pytest.mark.parametrize("name", ["MaxPool2d", "AvgPool2d", "MaxPool1d", "AvgPool1d"])
def test_every_option_combination_matches_torch(name, torch):
    """Sizes where ceil mode adds a partial window, drops one that would start in the padding,
    and leaves the size alone; forward, backward and the output size against PyTorch."""
    import itertools

    rng = np.random.default_rng(1)
    compared = 0
    for k, s, p, d, ceil, include in itertools.product([2, 3], [1, 2, 3], [0, 1], [1, 2], [False, True],
                                                       [True, False]):  # fmt: skip
        if ("Avg" in name and d > 1) or ("Max" in name and not include):
            continue
        options = dict(kernel_size=k, stride=s, padding=p, ceil_mode=ceil)
        options.update(dilation=d) if "Max" in name else options.update(count_include_pad=include)
        if p > (d * (k - 1) + 1) // 2:
            continue  # refused by both (the padding rule)
        layer, reference = getattr(gn, name)(**options), getattr(torch.nn, name)(**options)
        for n in (5, 6, 7, 8):
            shape = (1, 2, n, n + 1) if "2d" in name else (1, 2, n)
            x = rng.permutation(int(np.prod(shape))).reshape(shape) * 0.01
            xt = torch.tensor(x, requires_grad=True)
            try:
                yt = reference(xt)
            except RuntimeError:
                with pytest.raises(gn.ShapeError):
                    layer.forward(x)
                continue
            y = layer.forward(x)
            dy = rng.standard_normal(y.shape)
            yt.backward(torch.from_numpy(dy))
            np.testing.assert_allclose(y, yt.detach().numpy(), rtol=1e-12, err_msg=str(options))
            np.testing.assert_allclose(layer.backward(dy), xt.grad.numpy(), rtol=1e-12, err_msg=str(options))
            compared += 1
    assert compared > 50


def test_old_pooling_configs_still_load_and_bad_options_are_named():
    """A file written before the options has no such keys: the defaults apply."""
    assert gn.MaxPool2d(**{"kernel_size": 2, "stride": 2, "padding": 0}).general is False
    with pytest.raises(ValueError, match="MaxPool1d: dilation must be >= 1, got 0"):
        gn.MaxPool1d(2, dilation=0)
    with pytest.raises(
        ValueError, match=r"padding must be at most half the kernel size, got padding=2 .*dilation=\[1, 2\]"
    ):
        gn.MaxPool2d(2, padding=2, dilation=(1, 2))
    with pytest.raises(TypeError, match="dilation"):  # PyTorch's AvgPool has no dilation either
        gn.AvgPool2d(2, dilation=2)


@pytest.mark.parametrize("kw", MAX_2D)
def test_max_pool_under_no_grad_gives_the_same_max_and_keeps_no_argmax(kw):
    rng = np.random.default_rng(7)
    pool = gn.MaxPool2d(**kw)
    x = rng.standard_normal((2, 3, 9, 8)).astype(np.float32)
    y = pool.forward(x)
    with gn.no_grad():
        y_fast = pool.forward(x)
    np.testing.assert_array_equal(y_fast, y)
    assert pool.idx is None
    with pytest.raises(RuntimeError, match=r"MaxPool2d.backward: the forward pass ran under no_grad"):
        pool.backward(np.ones_like(y))


def test_predict_and_evaluate_run_under_no_grad_and_training_still_works():
    rng = np.random.default_rng(8)
    model = gn.models.cnn_a(rng, (1, 28, 28), 10)
    x, y = rng.random((4, 1, 28, 28)).astype(np.float32), np.arange(4)
    model.eval()
    expected = model.forward(x)
    model.train()
    np.testing.assert_array_equal(gn.predict(model, x), expected)
    # nothing kept for a backward (CNN-A's second convolution runs through the DFT: its spectra)
    assert model[3].spectral is None and model[2].idx is None
    gn.evaluate(model, gn.CrossEntropyLoss(), (x, y))
    gn.train_step(model, gn.CrossEntropyLoss(), gn.optim.SGD(model.parameters(), lr=0.1), x, y)
    assert model[3].spectral is not None and model[2].idx is not None


# --- integer input -------------------------------------------------------------------------------

INT_POOLS = [  # fast path, padded fast path, and the plain window code (ceil_mode / dilation)
    lambda: gn.MaxPool2d(2),
    lambda: gn.MaxPool2d(3, stride=1, padding=1),
    lambda: gn.MaxPool2d(3, stride=2, padding=1, ceil_mode=True),
    lambda: gn.MaxPool1d(2),
    lambda: gn.MaxPool1d(3, stride=1, padding=1),
    lambda: gn.MaxPool1d(2, dilation=2, padding=1),
    lambda: gn.AvgPool2d(2),
    lambda: gn.AvgPool2d(3, stride=2, padding=1),
    lambda: gn.AvgPool2d(3, stride=2, padding=1, count_include_pad=False),
    lambda: gn.AvgPool1d(3),
    lambda: gn.AvgPool1d(3, stride=1, padding=1),
    lambda: gn.GlobalAvgPool2d(),
    lambda: gn.GlobalMaxPool2d(),
]


@pytest.mark.parametrize(
    ("dtype", "float_dtype"),
    [(np.int64, np.float64), (np.int32, np.float64), (np.uint8, np.float32), (bool, np.float32)],
)
@pytest.mark.parametrize("make", INT_POOLS, ids=lambda make: repr(make()))
def test_integer_input_is_pooled_in_floats_as_conv2d(make, dtype, float_dtype):
    # padding with -inf raised OverflowError and averaging UFuncTypeError; now integer input is
    # cast to the smallest exact float dtype, as Conv2d's output for it (float64 for int64)
    layer = make()
    ndim = 1 if "1d" in type(layer).__name__ else 2
    x = np.random.default_rng(3).integers(0, 200, (2, 3, 7) if ndim == 1 else (2, 3, 7, 6)).astype(dtype)
    y = layer.forward(x)
    reference = make()
    y_float = reference.forward(x.astype(float_dtype))
    assert y.dtype == float_dtype == np.result_type(x.dtype, gn.Conv2d(3, 1, 1).W.data.dtype)
    np.testing.assert_array_equal(y, y_float)
    dy = np.random.default_rng(4).standard_normal(y.shape).astype(float_dtype)
    np.testing.assert_array_equal(layer.backward(dy), reference.backward(dy))


# --- a ReLU and the max-pool after it, run by Sequential as one step (PoolThenReLU) -----------------


def _relu_pool_net(pool, dtype):
    """Conv2d (a channels-last output), ReLU, the pool, Flatten, Linear: the pair inside a chain,
    with a layer that has parameters on each side of it."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4, 2, 9, 9))
    front = [gn.Conv2d(2, 3, 3, rng=rng), gn.ReLU(), pool, gn.Flatten()]
    width = gn.Sequential(*front).forward(x).shape[1]
    return gn.Sequential(*front, gn.Linear(width, 5, rng=rng)).to(dtype), x.astype(dtype)


def _step(net, x, dy_seed=2):
    for p in net.parameters():
        p.grad[...] = 0
    y = net.forward(x)
    dy = np.random.default_rng(dy_seed).standard_normal(y.shape).astype(y.dtype)
    dx = net.backward(dy)
    return y, dx, [p.grad.copy() for p in net.parameters()]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(
    "make",
    [
        lambda: gn.MaxPool2d(2),
        lambda: gn.MaxPool2d(3, stride=2, padding=1),
        lambda: gn.MaxPool2d(2, stride=1),
        lambda: gn.MaxPool2d(2, ceil_mode=True),
        lambda: gn.MaxPool2d(2, dilation=2),
    ],
)
def test_relu_then_max_pool_as_one_step_gives_the_layers_numbers_bit_for_bit(make, dtype, monkeypatch):
    from glassnet.layers import pooling

    net, x = _relu_pool_net(make(), dtype)
    # ties and whole windows <= 0: the conv's bias pushed down, its input rounded to a few values
    net[0].b.data[...] = -0.3
    x = np.round(x * 2) / 2
    assert any(isinstance(step, pooling.PoolThenReLU) for _, step in net.steps())
    fused = _step(net, x)
    assert net[1].y is None  # the ReLU kept no output: the pair ran as one step
    monkeypatch.setattr(gn.module, "JOIN_STEPS", False)
    assert not any(isinstance(step, pooling.PoolThenReLU) for _, step in net.steps())
    plain = _step(net, x)
    assert net[1].y is not None
    pooled = gn.Sequential(*net.layers[:3]).forward(x)
    assert (pooled == 0).mean() > 0.1, "some windows must hold no positive unit for the test to mean anything"
    np.testing.assert_array_equal(fused[0], plain[0])
    np.testing.assert_array_equal(fused[1], plain[1])
    for f, p in zip(fused[2], plain[2]):
        np.testing.assert_array_equal(f, p)


def test_relu_then_max_pool_1d_as_one_step_and_under_no_grad():
    from glassnet.layers import pooling

    rng = np.random.default_rng(3)
    x = np.round(rng.standard_normal((5, 3, 17)) * 2) / 2
    net = gn.Sequential(gn.Conv1d(3, 4, 3, rng=rng), gn.ReLU(), gn.MaxPool1d(3, stride=2, padding=1))
    y = net.forward(x)
    dy = rng.standard_normal(y.shape)
    dx = net.backward(dy)
    assert net[1].y is None
    plain_y = x
    for layer in net:  # the layers one by one
        plain_y = layer.forward(plain_y)
    plain_dx = dy
    for layer in reversed(net.layers):
        plain_dx = layer.backward(plain_dx)
    np.testing.assert_array_equal(y, plain_y)
    np.testing.assert_array_equal(dx, plain_dx)
    with gn.no_grad():
        np.testing.assert_array_equal(net.forward(x), plain_y)
    assert isinstance(net.steps()[1][1], pooling.PoolThenReLU)


def test_only_a_plain_relu_directly_before_a_max_pool_is_taken_with_it():
    from glassnet.layers import pooling

    class MyReLU(gn.ReLU):
        pass

    chains = {
        "pair": ([gn.ReLU(), gn.MaxPool2d(2)], [pooling.PoolThenReLU]),
        "subclass": ([MyReLU(), gn.MaxPool2d(2)], [MyReLU, gn.MaxPool2d]),
        "average": ([gn.ReLU(), gn.AvgPool2d(2)], [gn.ReLU, gn.AvgPool2d]),
        "apart": ([gn.ReLU(), gn.Identity(), gn.MaxPool2d(2)], [gn.ReLU, gn.Identity, gn.MaxPool2d]),
        "pool first": ([gn.MaxPool2d(2), gn.ReLU()], [gn.MaxPool2d, gn.ReLU]),
        "two pairs": ([gn.ReLU(), gn.MaxPool2d(2), gn.ReLU(), gn.MaxPool2d(2)], [pooling.PoolThenReLU] * 2),
    }
    for name, (layers, kinds) in chains.items():
        steps = gn.Sequential(*layers).steps()
        assert [type(s) for _, s in steps] == kinds, name
    assert [i for i, _ in gn.Sequential(gn.Flatten(), gn.ReLU(), gn.MaxPool1d(2)).steps()] == [0, 2]


def test_the_relu_of_a_pair_refuses_a_backward_of_its_own_and_shape_errors_name_the_pool():
    net = gn.Sequential(gn.ReLU(), gn.MaxPool2d(2))
    net.forward(np.random.default_rng(0).standard_normal((2, 1, 4, 4)))
    with pytest.raises(RuntimeError, match=r"ReLU\.backward: .*max-pool after it as one step"):
        net[0].backward(np.ones((2, 1, 4, 4)))
    with pytest.raises(gn.ShapeError, match=r"layer #1 \(MaxPool2d\).*smaller than kernel_size"):
        gn.Sequential(gn.ReLU(), gn.MaxPool2d(4)).forward(np.zeros((1, 1, 2, 2)))


def test_a_walk_runs_the_pair_layer_by_layer_and_the_chain_backward_follows_it():
    """diagnostics, trace and NaN provenance walk a Sequential child by child (so they see the
    ReLU's own output); a backward through the Sequential right after such a walk must retrace
    the layers, not the joined step the walk did not run."""
    from glassnet import walk

    rng = np.random.default_rng(4)
    x = rng.standard_normal((3, 2, 8, 8))
    dy = rng.standard_normal((3, 2 * 4 * 4))
    net = gn.Sequential(gn.Conv2d(2, 2, 3, padding=1, rng=rng, dtype=np.float64), gn.ReLU(), gn.MaxPool2d(2),
                        gn.Flatten())  # fmt: skip
    net.forward(rng.standard_normal(x.shape))  # plans the joined step, on other data
    seen = {}
    walk.forward(net, x, lambda name, m, a, b: seen.setdefault(name, b))
    np.testing.assert_array_equal(seen["1"], np.maximum(seen["0"], 0))  # the ReLU's own output
    dx_walked = net.backward(dy)
    dx_chain = (net.forward(x), net.backward(dy))[1]
    np.testing.assert_array_equal(dx_walked, dx_chain)
