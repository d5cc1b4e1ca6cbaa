"""Conv2d / Conv1d beyond the shared table: sizes, errors, config, files, memory layout."""

import json

import numpy as np
import pytest

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
