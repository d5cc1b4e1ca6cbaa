"""Batch normalization beyond the table's rows: running statistics and eval mode against torch,
momentum=None, buffers through save/load, to() and check_gradients, messages, a batch of 1."""

from __future__ import annotations

import numpy as np
import pytest

import glassnet as gn
from glassnet.gradcheck import check_layer_gradients

TIGHT = dict(rtol=1e-10, atol=1e-12)

# (class, constructor kwargs, input shape)
SETUPS = {
    "1d": (gn.BatchNorm1d, {}, (8, 5)),
    "1d (N, C, L)": (gn.BatchNorm1d, {}, (4, 5, 6)),
    "2d": (gn.BatchNorm2d, {}, (3, 5, 4, 3)),
    "2d momentum 0.3": (gn.BatchNorm2d, {"momentum": 0.3}, (3, 5, 4, 3)),
    "2d momentum None": (gn.BatchNorm2d, {"momentum": None}, (3, 5, 4, 3)),
    "1d momentum None, eps 1e-3": (gn.BatchNorm1d, {"momentum": None, "eps": 1e-3}, (8, 5)),
    "2d affine=False": (gn.BatchNorm2d, {"affine": False}, (3, 5, 4, 3)),
}


def batches(shape, count, seed=0):
    """Batches with per-channel offsets and scales, so the statistics are not ~(0, 1)."""
    rng = np.random.default_rng(seed)
    c = shape[1]
    offset = rng.uniform(-3, 3, c).reshape(c, *[1] * (len(shape) - 2))
    scale = rng.uniform(0.5, 3, c).reshape(offset.shape)
    return [rng.standard_normal(shape) * scale + offset for _ in range(count)]


def randomize_affine(layer, seed=1):
    rng = np.random.default_rng(seed)
    for p in layer.parameters():
        p.data[...] = rng.uniform(0.5, 1.5, p.shape)
    return layer


def pair(name, dtype=np.float64):
    """A glassnet layer with random gamma, beta and the torch twin with the same values."""
    import torch

    cls, kwargs, shape = SETUPS[name]
    layer = randomize_affine(cls(shape[1], dtype=dtype, **kwargs))
    twin = getattr(torch.nn, cls.__name__)(shape[1], dtype=torch.float64, **kwargs)
    with torch.no_grad():
        for pname, p in layer.named_parameters():
            getattr(twin, pname).copy_(torch.from_numpy(p.data.astype(np.float64)))
    return layer, twin, shape


def assert_buffers_equal(layer, twin, **tol):
    np.testing.assert_allclose(layer.running_mean, twin.running_mean.numpy(), **tol)
    np.testing.assert_allclose(layer.running_var, twin.running_var.numpy(), **tol)
    assert int(layer.num_batches_tracked) == int(twin.num_batches_tracked)


# --- running statistics and eval mode against torch ----------------------------------------------


@pytest.mark.parametrize("name", SETUPS)
def test_running_stats_match_torch_over_training_steps(name, torch):
    layer, twin, shape = pair(name)
    for x in batches(shape, 5):
        y = layer.forward(x)
        np.testing.assert_allclose(y, twin(torch.from_numpy(x)).detach().numpy(), **TIGHT)
        assert_buffers_equal(layer, twin, **TIGHT)
    assert int(layer.num_batches_tracked) == 5


@pytest.mark.parametrize("name", SETUPS)
def test_eval_forward_and_backward_match_torch(name, torch):
    layer, twin, shape = pair(name)
    for x in batches(shape, 3):  # running statistics far from (0, 1)
        layer.forward(x)
        twin(torch.from_numpy(x))
    layer.eval()
    twin.eval()
    x = batches(shape, 1, seed=5)[0]
    dy = np.random.default_rng(6).standard_normal(shape)
    layer.zero_grad()
    y = layer.forward(x)
    dx = layer.backward(dy)
    xt = torch.tensor(x, requires_grad=True)
    yt = twin(xt)
    yt.backward(torch.from_numpy(dy))
    np.testing.assert_allclose(y, yt.detach().numpy(), **TIGHT)
    np.testing.assert_allclose(dx, xt.grad.numpy(), **TIGHT)
    for pname, p in layer.named_parameters():
        np.testing.assert_allclose(p.grad, getattr(twin, pname).grad.numpy(), **TIGHT, err_msg=pname)
    assert_buffers_equal(layer, twin, **TIGHT)  # eval leaves the running statistics alone


def test_momentum_none_is_the_cumulative_average():
    layer = gn.BatchNorm1d(3, momentum=None, dtype=np.float64)
    xs = batches((10, 3), 4)
    for x in xs:
        layer.forward(x)
    np.testing.assert_allclose(layer.running_mean, np.mean([x.mean(0) for x in xs], axis=0), rtol=1e-12)
    np.testing.assert_allclose(layer.running_var, np.mean([x.var(0, ddof=1) for x in xs], axis=0), rtol=1e-12)


@pytest.mark.parametrize("name", ["2d", "2d affine=False", "1d (N, C, L)"])
def test_training_gradients_match_finite_differences_and_torch(name, torch):
    # the table holds BatchNorm2d with gamma; this adds affine=False for 2d and more shapes
    layer, twin, shape = pair(name)
    x = batches(shape, 1)[0]
    assert max(check_layer_gradients(layer, x, seed=3).values()) < 1e-6
    dy = np.random.default_rng(7).standard_normal(shape)
    layer.zero_grad()
    layer.forward(x)
    dx = layer.backward(dy)
    xt = torch.tensor(x, requires_grad=True)
    twin(xt).backward(torch.from_numpy(dy))
    np.testing.assert_allclose(dx, xt.grad.numpy(), **TIGHT)
    for pname, p in layer.named_parameters():
        np.testing.assert_allclose(p.grad, getattr(twin, pname).grad.numpy(), **TIGHT, err_msg=pname)


@pytest.mark.parametrize("name", ["2d", "2d affine=False"])
def test_eval_gradients_match_finite_differences(name):
    layer, _, shape = pair(name)
    for x in batches(shape, 2):
        layer.forward(x)
    layer.eval()
    errors = check_layer_gradients(layer, batches(shape, 1, seed=9)[0], seed=3)
    assert max(errors.values()) < 1e-6, errors


@pytest.mark.parametrize("mode", ["train", "eval"])
def test_backward_params_gives_the_gradients_of_backward(mode):
    layer = randomize_affine(gn.BatchNorm2d(4, dtype=np.float64))
    x, dy = batches((3, 4, 5, 5), 2)
    layer.train(mode == "train")
    layer.forward(x)
    layer.backward(dy)
    full = [p.grad.copy() for p in layer.parameters()]
    layer.zero_grad()
    assert layer.backward_params(dy) is None
    for p, g in zip(layer.parameters(), full):
        np.testing.assert_array_equal(p.grad, g)


def test_trains_like_torch_inside_a_network(torch):
    # Linear (no bias: batch norm removes it anyway) -> BatchNorm1d -> ReLU -> Linear, SGD with
    # momentum through gn.train_step (flat-vector optimizer, backward_params) against torch
    rng = np.random.default_rng(0)
    model = gn.Sequential(
        gn.Linear(6, 5, bias=False, rng=rng, dtype=np.float64),
        randomize_affine(gn.BatchNorm1d(5, dtype=np.float64)),
        gn.ReLU(),
        gn.Linear(5, 3, rng=rng, dtype=np.float64),
    )
    twin = torch.nn.Sequential(
        torch.nn.Linear(6, 5, bias=False),
        torch.nn.BatchNorm1d(5),
        torch.nn.ReLU(),
        torch.nn.Linear(5, 3),
    ).double()
    with torch.no_grad():
        twin[0].weight.copy_(torch.from_numpy(model[0].W.data.T))
        twin[1].weight.copy_(torch.from_numpy(model[1].weight.data))
        twin[1].bias.copy_(torch.from_numpy(model[1].bias.data))
        twin[3].weight.copy_(torch.from_numpy(model[3].W.data.T))
        twin[3].bias.copy_(torch.from_numpy(model[3].b.data))
    opt = gn.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    topt = torch.optim.SGD(twin.parameters(), lr=0.1, momentum=0.9)
    for _ in range(4):
        x, y = rng.standard_normal((16, 6)), rng.integers(0, 3, size=16)
        loss = gn.train_step(model, gn.CrossEntropyLoss(), opt, x, y)
        topt.zero_grad()
        tloss = torch.nn.functional.cross_entropy(twin(torch.from_numpy(x)), torch.from_numpy(y))
        tloss.backward()
        topt.step()
        assert loss == pytest.approx(tloss.item(), rel=1e-10)
    np.testing.assert_allclose(model[1].weight.data, twin[1].weight.detach().numpy(), rtol=1e-9)
    np.testing.assert_allclose(model[1].bias.data, twin[1].bias.detach().numpy(), rtol=1e-9, atol=1e-12)
    assert_buffers_equal(model[1], twin[1], rtol=1e-9)
    x = rng.standard_normal((7, 6))
    out = gn.predict(model, x)
    np.testing.assert_allclose(out, twin.eval()(torch.from_numpy(x)).detach().numpy(), rtol=1e-9)


# --- dtype ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["train", "eval"])
@pytest.mark.parametrize("shape", [(6, 4), (3, 4, 5)], ids=str)
def test_float32_stays_float32(shape, mode):
    layer = randomize_affine(gn.BatchNorm1d(4))
    x, dy = (a.astype(np.float32) for a in batches(shape, 2))
    layer.forward(x)  # running statistics from a float32 batch stay float32
    layer.train(mode == "train")
    y = layer.forward(x)
    dx = layer.backward(dy)
    assert y.dtype == dx.dtype == np.float32
    for name, a in [*((n, p.grad) for n, p in layer.named_parameters()), *layer.named_buffers()]:
        assert a.dtype == (np.int64 if name == "num_batches_tracked" else np.float32), name


def test_to_float64_converts_the_buffers():
    layer = gn.BatchNorm2d(3)
    layer.forward(batches((2, 3, 4, 4), 1)[0].astype(np.float32))
    mean, var = layer.running_mean.copy(), layer.running_var.copy()
    assert layer.to(np.float64) is layer
    assert layer.running_mean.dtype == layer.running_var.dtype == np.float64
    assert layer.num_batches_tracked.dtype == np.int64 and layer.num_batches_tracked.shape == ()
    assert all(p.data.dtype == p.grad.dtype == np.float64 for p in layer.parameters())
    np.testing.assert_array_equal(layer.running_mean, mean)
    np.testing.assert_array_equal(layer.running_var, var)
    assert layer.eval().forward(np.ones((2, 3, 4, 4))).dtype == np.float64
    model = gn.Sequential(gn.BatchNorm1d(2, affine=False))
    model.to(np.float64)  # through Sequential, and without parameters
    assert model[0].running_var.dtype == np.float64


def test_params_take_no_weight_decay():
    layer = gn.BatchNorm2d(3)
    assert [(n, p.decay) for n, p in layer.named_parameters()] == [("weight", False), ("bias", False)]
    assert gn.BatchNorm2d(3, affine=False).parameters() == []


# --- buffers: state_dict, save/load, check_gradients --------------------------------------------


def bn_model(dtype=np.float32):
    rng = np.random.default_rng(0)
    return gn.Sequential(
        gn.Linear(6, 4, bias=False, rng=rng, dtype=dtype),
        gn.BatchNorm1d(4, momentum=None, dtype=dtype),
        gn.ReLU(),
        gn.Linear(4, 3, rng=rng, dtype=dtype),
    )


def test_state_dict_holds_the_buffers_by_name():
    model = bn_model()
    state = model.state_dict()
    assert list(state) == [
        "0.W", "1.weight", "1.bias", "3.W", "3.b",  # parameters, then buffers
        "1.running_mean", "1.running_var", "1.num_batches_tracked",
    ]  # fmt: skip
    assert state["1.running_var"] is model[1].running_var  # references: load writes into them
    assert state["1.num_batches_tracked"].shape == () and state["1.num_batches_tracked"].dtype == np.int64


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_save_and_load_keep_the_running_statistics(tmp_path, dtype):
    model = bn_model(dtype)
    for x in batches((16, 6), 3):
        model.forward(x.astype(dtype))
    path = tmp_path / "bn.safetensors"
    gn.save(model, path)
    loaded = gn.load(path)
    assert repr(loaded) == repr(model)
    assert loaded[1].momentum is None
    for name, a in model.state_dict().items():
        b = loaded.state_dict()[name]
        assert b.dtype == a.dtype and b.shape == a.shape, name
        np.testing.assert_array_equal(b, a, err_msg=name)
    assert int(loaded[1].num_batches_tracked) == 3
    x = batches((5, 6), 1, seed=4)[0].astype(dtype)
    np.testing.assert_array_equal(loaded.eval()(x), model.eval()(x))


def test_load_state_dict_writes_buffers_in_place():
    a, b = gn.BatchNorm2d(3), gn.BatchNorm2d(3)
    a.forward(batches((2, 3, 4, 4), 1)[0].astype(np.float32))
    running_mean = b.running_mean
    b.load_state_dict(a.state_dict())
    assert b.running_mean is running_mean
    np.testing.assert_array_equal(b.running_mean, a.running_mean)
    assert int(b.num_batches_tracked) == 1
    b.reset_running_stats()
    assert not b.running_mean.any() and (b.running_var == 1).all() and int(b.num_batches_tracked) == 0


def test_check_gradients_restores_the_running_stats():
    model = bn_model()
    x, y = batches((8, 6), 1)[0].astype(np.float32), np.arange(8) % 3
    model.forward(x)
    before = {k: v.copy() for k, v in model.named_buffers()}
    errors = gn.check_gradients(model, gn.CrossEntropyLoss(), x, y)
    assert max(errors.values()) < 1e-6, errors
    for k, v in model.named_buffers():
        np.testing.assert_array_equal(v, before[k], err_msg=k)
    assert model[1].training


def test_check_gradients_restores_the_buffer_dtype():
    model = bn_model()
    x, y = batches((8, 6), 1)[0].astype(np.float32), np.arange(8) % 3
    gn.check_gradients(model, gn.CrossEntropyLoss(), x, y)
    assert model[1].running_mean.dtype == np.float32
    assert model.eval()(x).dtype == np.float32


# --- messages -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "layer, shape, expected",
    [
        (gn.BatchNorm2d(16), (2, 8, 4, 4), "BatchNorm2d expects input (N, 16, H, W), got shape (2, 8, 4, 4)"),
        (gn.BatchNorm2d(16), (2, 16), "BatchNorm2d expects input (N, 16, H, W), got shape (2, 16)"),
        (gn.BatchNorm1d(16), (2, 8), "BatchNorm1d expects input (N, 16) or (N, 16, L), got shape (2, 8)"),
        (gn.BatchNorm1d(16), (2, 16, 3, 3), "BatchNorm1d expects input (N, 16) or (N, 16, L), got shape"),
        (gn.BatchNorm1d(16), (16,), "BatchNorm1d expects input (N, 16) or (N, 16, L), got shape (16,)"),
    ],
)
def test_wrong_shape_names_the_layer(layer, shape, expected):
    with pytest.raises(gn.ShapeError, match=expected.replace("(", r"\(").replace(")", r"\)")):
        layer.forward(np.zeros(shape, np.float32))


def test_wrong_shape_inside_sequential_names_the_index():
    model = gn.Sequential(gn.Linear(4, 3), gn.BatchNorm1d(4))
    with pytest.raises(gn.ShapeError, match=r"layer #1 \(BatchNorm1d\)"):
        model.forward(np.zeros((2, 4), np.float32))


@pytest.mark.parametrize("layer, shape", [(gn.BatchNorm1d(3), (1, 3)), (gn.BatchNorm2d(3), (1, 3, 1, 1))])
def test_one_value_per_channel_in_training_raises_as_torch(layer, shape, torch):
    x = np.ones(shape, np.float32)
    with pytest.raises(ValueError, match="Expected more than 1 value per channel when training") as info:
        layer.forward(x)
    assert type(layer).__name__ in str(info.value) and str(shape) in str(info.value)
    with pytest.raises(ValueError, match="Expected more than 1 value per channel when training"):
        getattr(torch.nn, type(layer).__name__)(3)(torch.from_numpy(x))
    assert int(layer.num_batches_tracked) == 0  # nothing was updated
    assert layer.eval().forward(x).shape == shape  # eval needs no batch statistics


def test_one_example_with_several_positions_trains():
    layer = gn.BatchNorm2d(3)
    assert layer.forward(batches((1, 3, 2, 2), 1)[0].astype(np.float32)).shape == (1, 3, 2, 2)


@pytest.mark.parametrize(
    "kwargs", [{"num_features": 0}, {"num_features": 3, "eps": 0.0}, {"num_features": 3, "momentum": 1.5}]
)
def test_bad_constructor_arguments(kwargs):
    with pytest.raises(ValueError, match="BatchNorm2d"):
        gn.BatchNorm2d(**kwargs)


def test_config_and_repr():
    layer = gn.BatchNorm1d(8, eps=1e-3, momentum=None, affine=False)
    assert layer.config() == {
        "num_features": 8,
        "eps": 1e-3,
        "momentum": None,
        "affine": False,
        "track_running_stats": True,
    }
    assert repr(layer) == (
        "BatchNorm1d(num_features=8, eps=0.001, momentum=None, affine=False, track_running_stats=True)"
    )


# --- track_running_stats=False (PyTorch's option) ------------------------------------------------


@pytest.mark.parametrize("cls,shape", [(gn.BatchNorm1d, (6, 3)), (gn.BatchNorm2d, (4, 3, 2, 2))])
def test_without_running_stats_eval_uses_the_batch_as_pytorch_does(cls, shape, torch):
    rng = np.random.default_rng(0)
    layer = cls(3, track_running_stats=False, dtype=np.float64)
    reference = getattr(torch.nn, cls.__name__)(3, track_running_stats=False, dtype=torch.float64)
    assert layer.buffers() == {} and dict(reference.named_buffers()) == {}
    assert set(layer.state_dict()) == set(reference.state_dict()) == {"weight", "bias"}
    x = rng.standard_normal(shape) * 2 + 1
    layer.eval(), reference.eval()
    xt = torch.tensor(x, requires_grad=True)
    yt = reference(xt)
    y = layer.forward(x)
    np.testing.assert_allclose(y, yt.detach().numpy(), rtol=1e-12, atol=1e-12)
    dy = rng.standard_normal(shape)
    yt.backward(torch.from_numpy(dy))
    np.testing.assert_allclose(layer.backward(dy), xt.grad.numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(layer.weight.grad, reference.weight.grad.numpy(), rtol=1e-10)
    with pytest.raises(gn.ShapeError, match="Expected more than 1 value per channel"):
        layer.forward(x[:1].reshape(1, 3, *shape[2:]) if len(shape) == 2 else x[:1, :, :1, :1])


def test_without_running_stats_save_and_load_hold_no_buffers(tmp_path):
    model = gn.Sequential(gn.Linear(4, 3), gn.BatchNorm1d(3, track_running_stats=False))
    gn.save(model, tmp_path / "m.safetensors")
    again = gn.load(tmp_path / "m.safetensors")
    assert set(again.state_dict()) == {"0.W", "0.b", "1.weight", "1.bias"}
    assert again.layers[1].track_running_stats is False
    x = np.random.default_rng(0).standard_normal((5, 4)).astype(np.float32)
    np.testing.assert_array_equal(gn.predict(again, x), gn.predict(model, x))


def test_a_batch_norm_config_written_before_the_option_still_loads():
    old = {"num_features": 3, "eps": 1e-5, "momentum": 0.1, "affine": True}
    assert gn.BatchNorm2d(**old).track_running_stats is True
    assert set(gn.BatchNorm2d.state_shapes(**old)) == {
        "weight",
        "bias",
        "running_mean",
        "running_var",
        "num_batches_tracked",
    }


@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("affine", [True, False])
def test_channels_last_input_gives_the_c_order_results_and_keeps_its_layout(training, affine):
    """A convolution's output (NCHW view of channels-last memory) runs on (N, H W C) rows; it
    must give what the (N, C H W) rows give for the same values (float64), and keep its layout
    in y and dx so the layers around it need no copies."""
    rng = np.random.default_rng(11)
    x = rng.standard_normal((3, 5, 4, 6)) * 2 + 1
    dy = rng.standard_normal(x.shape)
    x_cl = np.ascontiguousarray(x.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)
    dy_cl = np.ascontiguousarray(dy.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)
    results = []
    for xi, dyi in ((x, dy), (x_cl, dy_cl)):
        bn = gn.BatchNorm2d(5, affine=affine, dtype=np.float64)
        if affine:
            bn.weight.data[:] = rng.standard_normal(5) if not results else results[0][4]
            bn.bias.data[:] = np.linspace(-1, 1, 5)
        bn.running_mean[:] = np.linspace(-0.5, 0.5, 5)
        bn.running_var[:] = np.linspace(0.5, 2.0, 5)
        bn.train(training)
        y = bn.forward(xi)
        dx = bn.backward(dyi)
        grads = [p.grad.copy() for p in bn.parameters()]
        results.append((y, dx, grads, (bn.running_mean.copy(), bn.running_var.copy()),
                        bn.weight.data.copy() if affine else None, bn.channels_last))  # fmt: skip
    (y0, dx0, g0, s0, _, cl0), (y1, dx1, g1, s1, _, cl1) = results
    assert not cl0 and cl1
    np.testing.assert_allclose(y1, y0, **TIGHT)
    np.testing.assert_allclose(dx1, dx0, **TIGHT)
    for a, b in zip(g1, g0):
        np.testing.assert_allclose(a, b, **TIGHT)
    np.testing.assert_allclose(s1, s0, **TIGHT)
    assert y1.transpose(0, 2, 3, 1).flags.c_contiguous and dx1.transpose(0, 2, 3, 1).flags.c_contiguous
    assert y0.flags.c_contiguous and dx0.flags.c_contiguous


@pytest.mark.parametrize("training", [True, False])
def test_pixel_major_input_gives_the_c_order_results_and_keeps_its_layout(training):
    """A view of pixel-major (H, W, N, C) memory (what a one-channel convolution returns before a
    max-pool) runs on (H, W N C) rows: the C-order results (float64), its layout kept in y and dx,
    dy in another layout read right."""
    rng = np.random.default_rng(13)
    x = rng.standard_normal((3, 5, 4, 6)) * 2 + 1
    dy = rng.standard_normal(x.shape)
    x_pm = np.ascontiguousarray(x.transpose(2, 3, 0, 1)).transpose(2, 3, 0, 1)
    results = []
    for xi in (x, x_pm):
        bn = gn.BatchNorm2d(5, dtype=np.float64)
        bn.weight.data[:] = np.linspace(0.5, 1.5, 5)
        bn.bias.data[:] = np.linspace(-1, 1, 5)
        bn.running_var[:] = np.linspace(0.5, 2.0, 5)
        bn.train(training)
        y = bn.forward(xi)
        dx = bn.backward(dy)  # C order: copied into the layer's layout
        results.append(
            (y, dx, [p.grad.copy() for p in bn.parameters()], bn.running_mean.copy(), bn.pixel_major)
        )
    (y0, dx0, g0, m0, pm0), (y1, dx1, g1, m1, pm1) = results
    assert not pm0 and pm1
    for a, b in ((y1, y0), (dx1, dx0), *zip(g1, g0), (m1, m0)):
        np.testing.assert_allclose(a, b, **TIGHT)
    assert y1.transpose(2, 3, 0, 1).flags.c_contiguous and dx1.transpose(2, 3, 0, 1).flags.c_contiguous


def test_channels_last_forward_with_a_c_order_delta():
    """dy in the other layout (a layer above that allocated in C order) is copied into the
    layer's layout, not misread."""
    rng = np.random.default_rng(12)
    x = np.ascontiguousarray(rng.standard_normal((2, 4, 3, 5)).transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)
    dy = rng.standard_normal(x.shape)  # C order
    a, b = gn.BatchNorm2d(4, dtype=np.float64), gn.BatchNorm2d(4, dtype=np.float64)
    a.forward(x)
    b.forward(np.ascontiguousarray(x))
    np.testing.assert_allclose(a.backward(dy), b.backward(dy), **TIGHT)
