"""Recurrent layers beyond the table: final and initial states against PyTorch, the Sequential
paths (LastStep, backward_params), bad input, save/load, and exploding gradients with clipping.
The table (glassnet/cases.py) already checks every RNN/GRU/LSTM row by finite differences and
against torch (outputs, dx, every parameter gradient, dh0/dc0)."""

from __future__ import annotations

import re

import numpy as np
import pytest

import glassnet as gn
from glassnet.torch_reference import load_params, recurrent, torch_layout, torch_name

CLASSES = {"RNN": gn.RNN, "GRU": gn.GRU, "LSTM": gn.LSTM}


def make(kind: str, **kwargs) -> gn.Module:
    rng = np.random.default_rng(0)
    return CLASSES[kind](3, 5, rng=rng, **kwargs).to(np.float64)


@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
@pytest.mark.parametrize("kind", CLASSES)
def test_final_state_and_initial_state_gradient_match_torch(kind, bidirectional, torch):
    layer = make(kind, num_layers=2, bidirectional=bidirectional)
    rng = np.random.default_rng(1)
    x = rng.standard_normal((4, 6, 3))
    shape = (2 * layer.directions, 4, 5)
    states = [rng.standard_normal(shape) for _ in range(layer.states)]
    given = states[0] if kind != "LSTM" else tuple(states)
    y = layer.forward(x, given)
    dy = rng.standard_normal(y.shape)
    layer.zero_grad()
    layer.backward(dy)

    module = getattr(torch.nn, kind)(3, 5, num_layers=2, bidirectional=bidirectional, batch_first=True,
                                     dtype=torch.float64)  # fmt: skip
    load_params(layer, module)
    tstates = [torch.tensor(s, requires_grad=True) for s in states]
    yt, final = module(torch.tensor(x), tstates[0] if kind != "LSTM" else tuple(tstates))
    yt.backward(torch.from_numpy(dy))
    tight = dict(rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(y, yt.detach().numpy(), **tight)
    finals = final if kind == "LSTM" else (final,)
    np.testing.assert_allclose(layer.h_n, finals[0].detach().numpy(), **tight)
    np.testing.assert_allclose(layer.dh0, tstates[0].grad.numpy(), **tight)
    if kind == "LSTM":
        np.testing.assert_allclose(layer.c_n, finals[1].detach().numpy(), **tight)
        np.testing.assert_allclose(layer.dc0, tstates[1].grad.numpy(), **tight)
    # h_n is the last output of the top layer's forward direction and the first of its reverse
    np.testing.assert_array_equal(layer.h_n[-layer.directions], y[:, -1, :5])
    if bidirectional:
        np.testing.assert_array_equal(layer.h_n[-1], y[:, 0, 5:])


# configurations the table's rows leave out: three layers, no bias in the gated cells, a ReLU
# RNN run backwards from a given state, one step, one example, one input feature (the np.dot
# path), and float32 against torch's float32
LESS_COVERED = [
    ("RNN", dict(nonlinearity="relu", num_layers=3, bidirectional=True), (3, 5, 2), np.float64),
    ("GRU", dict(num_layers=3, bidirectional=True, bias=False), (3, 5, 2), np.float64),
    ("LSTM", dict(num_layers=3, bidirectional=True, bias=False), (3, 5, 2), np.float64),
    ("GRU", dict(bidirectional=True), (1, 1, 2), np.float64),
    ("LSTM", dict(num_layers=2, bidirectional=True), (1, 1, 1), np.float64),
    ("RNN", dict(bidirectional=True), (2, 6, 1), np.float64),
    ("GRU", dict(num_layers=2, bidirectional=True), (4, 7, 1), np.float32),
    ("LSTM", dict(num_layers=2, bidirectional=True), (4, 7, 3), np.float32),
]


@pytest.mark.parametrize("kind, kwargs, shape, dtype", LESS_COVERED, ids=str)
def test_less_covered_configurations_match_torch(kind, kwargs, shape, dtype, torch):
    rng = np.random.default_rng(9)
    n, _, features = shape
    layer = CLASSES[kind](features, 3, rng=rng, dtype=dtype, **kwargs)
    x = rng.standard_normal(shape).astype(dtype)
    states = [rng.standard_normal((layer.num_layers * layer.directions, n, 3)).astype(dtype)
              for _ in range(layer.states)]  # fmt: skip
    y = layer.forward(x, states[0] if kind != "LSTM" else tuple(states))
    dy = rng.standard_normal(y.shape).astype(dtype)
    layer.zero_grad()
    dx = layer.backward(dy)

    tdtype = torch.float64 if dtype == np.float64 else torch.float32
    module = getattr(torch.nn, kind)(features, 3, batch_first=True, dtype=tdtype, **kwargs)
    params = load_params(layer, module)
    xt = torch.tensor(x, requires_grad=True)
    tstates = [torch.tensor(s, requires_grad=True) for s in states]
    yt, final = module(xt, tstates[0] if kind != "LSTM" else tuple(tstates))
    yt.backward(torch.from_numpy(dy))
    tol = dict(rtol=1e-10, atol=1e-12) if dtype == np.float64 else dict(rtol=1e-4, atol=1e-5)
    finals = final if kind == "LSTM" else (final,)
    pairs = [(y, yt), (dx, xt.grad), (layer.h_n, finals[0]), (layer.dh0, tstates[0].grad)]
    if kind == "LSTM":
        pairs += [(layer.c_n, finals[1]), (layer.dc0, tstates[1].grad)]
    pairs += [(torch_layout(layer, name, p.grad), params[name].grad) for name, p in layer.named_parameters()]
    for i, (ours, theirs) in enumerate(pairs):
        assert ours.dtype == dtype, i
        np.testing.assert_allclose(ours, theirs.detach().numpy(), **tol, err_msg=str(i))


@pytest.mark.parametrize("kind", CLASSES)
def test_no_state_leaks_between_calls(kind):
    layer = make(kind, num_layers=2, bidirectional=True)
    rng = np.random.default_rng(10)
    x, x2 = rng.standard_normal((4, 6, 3)), rng.standard_normal((2, 3, 3))
    shape = (4, 4, 5)
    given = rng.standard_normal(shape) if kind != "LSTM" else (rng.standard_normal(shape),) * 2
    dy = rng.standard_normal((4, 6, 10))
    layer.forward(x, given)
    layer.zero_grad()
    dx = layer.backward(dy)
    first = {name: p.grad.copy() for name, p in layer.named_parameters()}
    dh0 = layer.dh0.copy()
    # a second backward of the same forward: the same dx and dh0, parameter gradients doubled
    np.testing.assert_array_equal(layer.backward(dy), dx)
    np.testing.assert_array_equal(layer.dh0, dh0)
    for name, p in layer.named_parameters():
        np.testing.assert_allclose(p.grad, 2 * first[name], rtol=1e-14, err_msg=name)
    # a new forward (another batch size, zero initial state, eval mode): nothing of the
    # previous batch is left to read, and the result does not depend on what came before
    layer.eval()
    y2 = layer.forward(x2)
    assert layer.dh0 is None and getattr(layer, "dc0", None) is None
    assert layer.h_n.shape == (4, 2, 5)
    layer.train()
    np.testing.assert_array_equal(make(kind, num_layers=2, bidirectional=True).forward(x2), y2)


def test_zero_initial_state_is_the_default(torch):
    layer = make("GRU", bidirectional=True)
    x = np.random.default_rng(2).standard_normal((3, 4, 3))
    np.testing.assert_array_equal(layer.forward(x), layer.forward(x, np.zeros((2, 3, 5))))
    yt, _ = recurrent(layer, torch.tensor(x))
    np.testing.assert_allclose(layer.forward(x), yt.detach().numpy(), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("kind", CLASSES)
def test_whole_model_gradients_with_last_step(kind):
    # the usual classifier: recurrent layer, its last step, a linear head, cross-entropy
    rng = np.random.default_rng(3)
    model = gn.Sequential(
        CLASSES[kind](3, 4, bidirectional=True, rng=rng), gn.LastStep(), gn.Linear(8, 3, rng=rng)
    )
    errors = gn.check_gradients(
        model, gn.CrossEntropyLoss(), rng.standard_normal((5, 6, 3)), rng.integers(0, 3, 5)
    )
    assert max(errors.values()) < 1e-6, errors


@pytest.mark.parametrize("kind", CLASSES)
def test_backward_params_gives_the_gradients_of_backward(kind):
    # Sequential calls backward_params on its first layer: the same gradients, no dx product
    layer = make(kind, num_layers=2, bidirectional=True)
    rng = np.random.default_rng(4)
    x = rng.standard_normal((3, 5, 3))
    dy = rng.standard_normal(layer.forward(x).shape)
    layer.zero_grad()
    layer.backward(dy)
    full = {name: p.grad.copy() for name, p in layer.named_parameters()}
    layer.zero_grad()
    assert layer.backward_params(dy) is None
    for name, p in layer.named_parameters():
        np.testing.assert_allclose(p.grad, full[name], rtol=1e-13, atol=1e-15, err_msg=name)


@pytest.mark.parametrize("features", [1, 3])
@pytest.mark.parametrize("kind", ["RNN", "GRU"])  # the LSTM folds every input into its steps
def test_bias_as_a_row_of_the_input_product_agrees_with_product_then_add(kind, features):
    # few input features: the bias is one more row of the input product; beyond, and here with
    # bias_row_max_features = 0, the straightforward x W_x + bias: the same outputs and gradients
    rng = np.random.default_rng(2)
    x = rng.standard_normal((4, 6, features)).astype(np.float32)
    dy = rng.standard_normal((4, 6, 2 * 5)).astype(np.float32)
    results = []
    for limit in (8, 0):
        layer = CLASSES[kind](features, 5, num_layers=2, bidirectional=True, rng=0)
        layer.bias_row_max_features = limit
        for p in layer.params:
            p.grad = np.zeros_like(p.data)
        y = layer.forward(x)
        results.append([y, layer.backward(dy)] + [p.grad.copy() for p in layer.params])
    assert CLASSES[kind].bias_row_max_features >= features  # the first run took the bias-row path
    for fast, plain in zip(*results):
        np.testing.assert_allclose(fast, plain, rtol=1e-5, atol=1e-6)


def plain_lstm(x, W_x, W_h, b, h, c, dy, dh_n, dc_n):
    """The LSTM of the class docstring, step by step in float64 (N, F) rows, forward and then
    backward through time: the reference for the feature-major scan."""
    H = W_h.shape[0]
    sig = lambda a: 1 / (1 + np.exp(-a))  # noqa: E731
    steps = []
    for t in range(x.shape[1]):
        a = x[:, t] @ W_x + h @ W_h + b
        i, f, g, o = sig(a[:, :H]), sig(a[:, H : 2 * H]), np.tanh(a[:, 2 * H : 3 * H]), sig(a[:, 3 * H :])
        c_prev, h_prev = c, h
        c = f * c_prev + i * g
        h = o * np.tanh(c)
        steps.append((i, f, g, o, c_prev, h_prev, c))
    y, c_n = np.stack([s[5] for s in steps[1:]] + [h], axis=1), c
    grads = [np.zeros_like(W_x), np.zeros_like(W_h), np.zeros_like(b)]
    dx, dh_next, dc = np.zeros_like(x), dh_n.copy(), dc_n.copy()
    for t in reversed(range(x.shape[1])):
        i, f, g, o, c_prev, h_prev, c_t = steps[t]
        dh = dy[:, t] + dh_next
        dc = dc + dh * o * (1 - np.tanh(c_t) ** 2)
        delta = np.concatenate([dc * g * i * (1 - i), dc * c_prev * f * (1 - f), dc * i * (1 - g**2),
                                dh * np.tanh(c_t) * o * (1 - o)], axis=1)  # fmt: skip
        grads[0] += x[:, t].T @ delta
        grads[1] += h_prev.T @ delta
        grads[2] += delta.sum(axis=0)
        dx[:, t] = delta @ W_x.T
        dh_next, dc = delta @ W_h.T, dc * f
    return y, h, c_n, dx, dh_next, dc, grads


@pytest.mark.parametrize("features", [1, 3, 9])
@pytest.mark.parametrize("bias", [True, False])
def test_lstm_scan_equals_the_plain_formula_float64(features, bias):
    # the feature-major scan with its kept local derivatives (gated.py) against the class
    # docstring's equations written plainly: outputs, final states, dx, dh0, dc0, every gradient
    rng = np.random.default_rng(3)
    layer = gn.LSTM(features, 5, bias=bias, rng=0, dtype=np.float64)
    x = rng.standard_normal((4, 7, features))
    h0, c0, dh_n, dc_n = (rng.standard_normal((1, 4, 5)) for _ in range(4))
    dy = rng.standard_normal((4, 7, 5))
    layer.zero_grad()
    y = layer.forward(x, (h0, c0))
    dx = layer.backward(dy, dh_n, dc_n)
    W_x, W_h = layer.params[0].data, layer.params[1].data
    b = layer.params[2].data + layer.params[3].data if bias else np.zeros(20)
    want = plain_lstm(x, W_x, W_h, b, h0[0], c0[0], dy, dh_n[0], dc_n[0])
    got = (y, layer.h_n[0], layer.c_n[0], dx, layer.dh0[0], layer.dc0[0])
    for name, g, w in zip(("y", "h_n", "c_n", "dx", "dh0", "dc0"), got, want[:6]):
        np.testing.assert_allclose(g, w, rtol=1e-10, atol=1e-12, err_msg=name)
    for p, w in zip(layer.params, want[6] + [want[6][2]]):  # b_x and b_h get the same gradient
        np.testing.assert_allclose(p.grad, w, rtol=1e-10, atol=1e-12, err_msg=p.name)


def test_lstm_backward_after_a_no_grad_forward_says_why():
    # under no_grad() the forward keeps nothing for backward (predict, evaluate)
    layer = gn.LSTM(2, 3, rng=0)
    x = np.ones((2, 4, 2), np.float32)
    with gn.no_grad():
        y = layer.forward(x)
    with pytest.raises(RuntimeError, match=r"LSTM\.backward: the forward pass ran under no_grad\(\)"):
        layer.backward(np.ones_like(y))
    layer.forward(x)  # and a training forward afterwards works
    assert layer.backward(np.ones_like(y)).shape == x.shape


@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("kind", CLASSES)
def test_the_output_is_read_only_so_an_edit_cannot_change_the_gradients(kind, bidirectional):
    """A one-direction layer's output is a view of the states its backward reads: an in-place
    edit used to change dx and every gradient. It raises now; an edited copy leaves them alone."""
    rng = np.random.default_rng(3)
    layer = CLASSES[kind](2, 3, bidirectional=bidirectional, rng=0)
    x = rng.standard_normal((4, 5, 2)).astype(np.float32)
    dy = rng.standard_normal((4, 5, 6 if bidirectional else 3)).astype(np.float32)
    y = layer.forward(x)
    want = layer.backward(dy)
    y = layer.forward(x)
    with pytest.raises(ValueError, match="read-only"):
        y *= 2.0
    doubled = y * 2.0  # a new array: the layer's memory is untouched
    assert doubled.flags.writeable
    np.testing.assert_array_equal(layer.backward(dy), want)


@pytest.mark.parametrize("features", [2, 9])  # RNN and GRU: the bias-row input product, and the plain one
@pytest.mark.parametrize("kind", CLASSES)
def test_a_batch_of_zero_rows_goes_through_forward_and_backward(kind, features):
    # as PyTorch's layers do: (0, T, F) in, (0, T, D H) out, zero gradients (it crashed on a reshape)
    layer = CLASSES[kind](features, 5, num_layers=2, bidirectional=True, rng=0)
    x = np.zeros((0, 3, features), np.float32)
    y = layer.forward(x)
    assert y.shape == (0, 3, 10) and layer.h_n.shape == (4, 0, 5)
    assert layer.backward(np.zeros_like(y)).shape == x.shape
    assert all(p.grad.shape == p.data.shape and not p.grad.any() for p in layer.params)


def test_a_float32_dy_with_a_final_state_gradient_is_taken_in_the_layers_dtype():
    # dLoss/dh_n joins dy at the last step: in a float64 layer that sum is float64, not rounded
    # to float32 as a copy of a float32 dy would be
    rng = np.random.default_rng(0)
    layer = gn.LSTM(2, 4, rng=1).to(np.float64)
    x, dh_n = rng.standard_normal((3, 5, 2)), rng.standard_normal((1, 3, 4))
    dy32 = rng.standard_normal((3, 5, 4)).astype(np.float32)
    results = []
    for dy in (dy32, dy32.astype(np.float64)):
        layer.forward(x)
        layer.zero_grad()
        results.append([layer.backward(dy, dh_n), layer.dh0.copy()] + [p.grad.copy() for p in layer.params])
    for a, b in zip(*results):
        np.testing.assert_array_equal(a, b)


def test_float32_stays_float32_and_agrees_with_float64():
    layer = gn.GRU(3, 5, num_layers=2, bidirectional=True, rng=np.random.default_rng(5))
    x = np.random.default_rng(6).standard_normal((4, 7, 3)).astype(np.float32)
    y32 = layer.forward(x)
    dx32 = layer.backward(np.ones_like(y32))
    assert y32.dtype == dx32.dtype == layer.h_n.dtype == np.float32
    layer.to(np.float64)
    y64 = layer.forward(x.astype(np.float64))
    np.testing.assert_allclose(y32, y64, rtol=1e-5, atol=1e-6)


# --- bad input ---------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(4, 3), (4, 6, 2), (4, 0, 3), (2, 4, 6, 3)], ids=str)
@pytest.mark.parametrize("kind", CLASSES)
def test_wrong_input_shape_names_the_layer(kind, shape):
    with pytest.raises(gn.ShapeError) as info:
        make(kind).forward(np.zeros(shape))
    message = str(info.value)
    assert kind in message and "(N, T, 3)" in message and str(shape) in message


def test_wrong_initial_state_names_the_layer_and_the_shape():
    x = np.zeros((4, 6, 3))
    with pytest.raises(gn.ShapeError, match=r"GRU: initial state h0 .*\(2, 4, 5\).*\(1, 4, 5\)"):
        make("GRU", bidirectional=True).forward(x, np.zeros((1, 4, 5)))
    with pytest.raises(gn.ShapeError, match=r"LSTM: initial state \(h0, c0\)"):
        make("LSTM").forward(x, np.zeros((1, 4, 5)))  # h0 without c0
    with pytest.raises(gn.ShapeError, match="LastStep expects a sequence"):
        gn.LastStep().forward(np.zeros((4, 3)))
    with pytest.raises(gn.ShapeError, match="Reshape expects"):
        gn.Reshape((2, 3)).forward(np.zeros((4, 5)))


def test_bad_constructor_arguments():
    with pytest.raises(ValueError, match="RNN: nonlinearity must be 'tanh' or 'relu', got 'sigmoid'"):
        gn.RNN(3, 4, nonlinearity="sigmoid")


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(hidden_size=0), "hidden_size must be an integer >= 1, got 0"),
        (dict(input_size=3.5), "input_size must be an integer >= 1, got 3.5"),
        (dict(hidden_size="4"), "hidden_size must be an integer >= 1, got '4'"),
        (dict(num_layers=True), "num_layers must be an integer >= 1, got True"),
        (dict(num_layers=0), "num_layers must be an integer >= 1, got 0"),
        # an integer dtype silently truncated the uniform init to all-zero weights
        (dict(dtype=np.int32), "dtype must be float32 or float64, got <class 'numpy.int32'>"),
        (dict(dtype=np.float16), "dtype must be float32 or float64"),
    ],
    ids=str,
)
@pytest.mark.parametrize("kind", CLASSES)
def test_constructor_errors_name_the_argument(kind, kwargs, message):
    args = {"input_size": 3, "hidden_size": 4, **kwargs}
    with pytest.raises(ValueError, match=f"^{kind}: " + re.escape(message)):
        CLASSES[kind](**args)


@pytest.mark.parametrize("kind", CLASSES)
def test_constructor_takes_numpy_integers_and_float_dtypes(kind):
    layer = CLASSES[kind](np.int64(3), np.int64(4), num_layers=np.int32(2), dtype="float64")
    assert (layer.input_size, layer.hidden_size, layer.num_layers) == (3, 4, 2)
    assert type(layer.hidden_size) is int  # config() is written to JSON
    assert all(p.data.dtype == np.float64 for p in layer.parameters())


@pytest.mark.parametrize("shape", [40, (), (0, 4), (True, 4), (2.0, 2), "ab", None], ids=repr)
def test_reshape_refuses_a_bad_shape_naming_it(shape):
    with pytest.raises(ValueError, match=r"^Reshape: shape must be a tuple of integers >= 1, got "):
        gn.Reshape(shape)


def test_reshape_takes_numpy_integers():
    layer = gn.Reshape((np.int64(40), np.int32(1)))  # e.g. from np.prod
    assert layer.shape == (40, 1) and all(type(s) is int for s in layer.shape)
    assert layer.forward(np.zeros((2, 40))).shape == (2, 40, 1)


# --- files -------------------------------------------------------------------------------------


def test_recurrent_models_save_and_load(tmp_path):
    rng = np.random.default_rng(7)
    model = gn.Sequential(
        gn.Reshape((6, 2)),
        gn.LSTM(2, 4, num_layers=2, bidirectional=True, rng=rng),
        gn.GRU(8, 3, bias=False, rng=rng),
        gn.RNN(3, 3, nonlinearity="relu", rng=rng),
        gn.LastStep(),
        gn.Linear(3, 2, rng=rng),
    )
    gn.save(model, tmp_path / "rnn.safetensors")
    loaded = gn.load(tmp_path / "rnn.safetensors")
    assert repr(loaded) == repr(model)
    assert list(loaded.state_dict()) == list(model.state_dict())
    assert "1.W_h_l1_reverse" in loaded.state_dict()
    x = rng.standard_normal((3, 12)).astype(np.float32)
    np.testing.assert_array_equal(loaded.forward(x), model.forward(x))


# --- exploding gradients -----------------------------------------------------------------------


def chaotic_rnn(gain: float = 2.0, hidden: int = 32) -> gn.Sequential:
    """A tanh RNN whose recurrent weights are ``gain`` times an orthogonal matrix: tanh keeps
    every state in (-1, 1), but the Jacobians d h_t / d h_{t-1} = diag(1 - h_t^2) W_h^T do not
    shrink on average, so the gradient grows exponentially with the sequence length."""
    rng = np.random.default_rng(0)
    rnn = gn.RNN(1, hidden, rng=rng)
    q, _ = np.linalg.qr(rng.standard_normal((hidden, hidden)))
    rnn.cells[0][1].data[...] = gain * q
    return gn.Sequential(rnn, gn.LastStep(), gn.Linear(hidden, 1, rng=rng))


def sequence_batch(T: int):
    rng = np.random.default_rng(1)
    return rng.standard_normal((16, T, 1)), rng.standard_normal((16, 1))


def gradient_norm(model, T: int) -> tuple[float, float]:
    x, y = sequence_batch(T)
    loss_fn = gn.MSELoss()
    model.zero_grad()
    loss = loss_fn.forward(model.forward(x), y)
    model.backward(loss_fn.backward())
    return loss, gn.clip_grad_norm(model.parameters(), float("inf"))


def test_gradient_norm_explodes_with_sequence_length_and_matches_torch(torch):
    model = chaotic_rnn().to(np.float64)
    losses, norms = zip(*(gradient_norm(model, T) for T in (10, 100, 200)))
    assert max(losses) < 5  # the forward stays bounded...
    assert (
        norms[0] < 100 and norms[1] > 1e4 * norms[0] and norms[2] > 1e4 * norms[1]
    )  # ...its gradient does not
    # the same long sequence in torch: the same exploding norm (backprop through 100 steps agrees;
    # the system is chaotic, so rounding differences grow with T as the gradient does: at T = 200
    # the two libraries' float64 norms differ in the second digit)
    rnn = model[0]
    x, y = sequence_batch(100)
    yt, params = recurrent(rnn, torch.tensor(x))
    head = torch.nn.Linear(32, 1, dtype=torch.float64)
    with torch.no_grad():
        head.weight.copy_(torch.from_numpy(model[2].W.data.T.copy()))
        head.bias.copy_(torch.from_numpy(model[2].b.data))
    torch.nn.functional.mse_loss(head(yt[:, -1]), torch.tensor(y)).backward()
    torch_norm = torch.nn.utils.clip_grad_norm_([*params.values(), *head.parameters()], float("inf"))
    assert float(torch_norm) == pytest.approx(norms[1], rel=1e-7)


def test_clip_grad_norm_keeps_training_bounded():
    x, y = sequence_batch(200)
    x, y = x.astype(np.float32), y.astype(np.float32)
    runs = {}
    for clip in (None, 1.0):
        model = chaotic_rnn()
        start = np.concatenate([p.data.ravel() for p in model.parameters()])
        opt = gn.optim.SGD(model.parameters(), lr=0.01)
        for _ in range(10):
            gn.train_step(model, gn.MSELoss(), opt, x, y, clip_norm=clip)
        end = np.concatenate([p.data.ravel() for p in model.parameters()])
        runs[clip] = float(np.linalg.norm(end - start))
    # without clipping one step moves the weights by lr times a norm of about 1e11
    assert runs[None] > 1e6
    # with clipping every step moves them by at most lr * max_norm
    assert runs[1.0] <= 10 * 0.01 * 1.0 * (1 + 1e-5)


# --- a whole model, trained step for step -------------------------------------------------------


@pytest.mark.parametrize("kind", CLASSES)
def test_training_steps_match_torch(kind, torch):
    # recurrent layer, last step, linear head, cross-entropy, Adam: five steps in both libraries
    rng = np.random.default_rng(8)
    model = gn.Sequential(
        CLASSES[kind](3, 6, bidirectional=True, rng=rng), gn.LastStep(), gn.Linear(12, 4, rng=rng)
    )
    model.to(np.float64)
    rnn = getattr(torch.nn, kind)(3, 6, bidirectional=True, batch_first=True, dtype=torch.float64)
    head = torch.nn.Linear(12, 4, dtype=torch.float64)
    load_params(model[0], rnn)
    load_params(model[2], head)
    opt = gn.optim.Adam(model.parameters(), lr=1e-2)
    topt = torch.optim.Adam([*rnn.parameters(), *head.parameters()], lr=1e-2)
    for _ in range(5):
        x, y = rng.standard_normal((8, 7, 3)), rng.integers(0, 4, 8)
        loss = gn.train_step(model, gn.CrossEntropyLoss(), opt, x, y)
        topt.zero_grad()
        tloss = torch.nn.functional.cross_entropy(head(rnn(torch.tensor(x))[0][:, -1]), torch.tensor(y))
        tloss.backward()
        topt.step()
        assert loss == pytest.approx(tloss.item(), rel=1e-10)
    for name, p in model[0].named_parameters():
        ours = torch_layout(model[0], name, p.data)
        np.testing.assert_allclose(
            ours, getattr(rnn, torch_name(name)).detach().numpy(), rtol=1e-8, atol=1e-10
        )


# --- PyTorch's dropout between stacked layers, and gradients into the final states ----------------
# (the table checks both by finite differences and against torch: rows "LSTM (h_n, c_n outputs,
# 2 layers, bidirectional)", "GRU (2 layers, bidirectional, dropout 0.3)", ...)


@pytest.mark.parametrize("kind", CLASSES)
def test_sequence_to_sequence_encoder_gets_the_decoders_gradient_through_h_n(kind, torch):
    """An encoder read through its final state only: the decoder starts from it (h0 = h_n), so
    the encoder's error is the decoder's dLoss/dh0, passed as dh_n (dc_n), with dy=None."""
    rng = np.random.default_rng(3)
    encoder, decoder = make(kind, num_layers=2), CLASSES[kind](4, 5, num_layers=2, rng=rng).to(np.float64)
    source, target = rng.standard_normal((3, 6, 3)), rng.standard_normal((3, 4, 4))
    encoder.forward(source)
    final = (encoder.h_n, encoder.c_n) if kind == "LSTM" else encoder.h_n
    y = decoder.forward(target, final)
    dy = rng.standard_normal(y.shape)
    decoder.backward(dy)
    finals = (decoder.dh0, decoder.dc0) if kind == "LSTM" else (decoder.dh0,)
    dx = encoder.backward(None, *finals)

    tenc, tdec = recurrent_twin(encoder, torch), recurrent_twin(decoder, torch)
    xs = torch.tensor(source, requires_grad=True)
    _, state = tenc(xs)
    yt, _ = tdec(torch.from_numpy(target), state)
    yt.backward(torch.from_numpy(dy))
    np.testing.assert_allclose(dx, xs.grad.numpy(), rtol=1e-10, atol=1e-12)
    for name, p in encoder.named_parameters():
        ours = torch_layout(encoder, name, p.grad)
        np.testing.assert_allclose(ours, getattr(tenc, torch_name(name)).grad.numpy(), rtol=1e-9, atol=1e-12)


def recurrent_twin(layer, torch):
    module = getattr(torch.nn, type(layer).__name__)(**layer.config(), batch_first=True, dtype=torch.float64)
    load_params(layer, module)
    return module


def test_bad_final_state_gradients_are_named():
    gru, lstm = make("GRU", num_layers=2), make("LSTM")
    x = np.zeros((2, 4, 3))
    gru.forward(x), lstm.forward(x)
    with pytest.raises(
        gn.ShapeError, match=r"GRU.backward: dh_n must have the final state's shape \(2, 2, 5\)"
    ):
        gru.backward(None, np.zeros((1, 2, 5)))
    with pytest.raises(ValueError, match="GRU: has no cell state, so no dc_n"):
        gru.backward(np.zeros((2, 4, 5)), dc_n=np.zeros((2, 2, 5)))
    with pytest.raises(ValueError, match="LSTM.backward: dy is None and no dh_n or dc_n is given"):
        lstm.backward(None)
    with pytest.raises(gn.ShapeError, match=r"LSTM.backward: dy must have the output's shape \(2, 4, 5\)"):
        lstm.backward(np.zeros((2, 5, 5)))
    dc_only = lstm.backward(None, dc_n=np.ones((1, 2, 5)))  # c_n alone reaches the loss
    grads = {name: p.grad for name, p in lstm.named_parameters()}
    assert dc_only.shape == x.shape and not grads["W_x_l0"].any()  # x = 0: dW_x = x^T delta = 0
    assert grads["b_x_l0"].any()


@pytest.mark.parametrize("kind", CLASSES)
def test_dropout_acts_between_layers_in_training_only(kind):
    layer = make(kind, num_layers=3, dropout=0.5)
    x = np.random.default_rng(0).standard_normal((8, 6, 3))
    y1, y2 = layer.forward(x).copy(), layer.forward(x).copy()
    assert not np.array_equal(y1, y2), "new masks each forward"
    assert [m is None for m in layer.masks] == [False, False, True]  # not after the last layer
    kept = np.concatenate([m.ravel() for m in layer.masks[:2]])
    assert set(np.unique(kept)) == {0.0, 2.0} and 0.4 < (kept == 0).mean() < 0.6
    layer.eval()
    np.testing.assert_array_equal(layer.forward(x), layer.forward(x))
    assert all(m is None for m in layer.masks)
    plain = make(kind, num_layers=3).eval()
    np.testing.assert_array_equal(layer.forward(x), plain.forward(x))  # the same weights (seed 0)


def test_dropout_with_one_layer_warns_as_pytorch_does_and_bad_values_are_refused():
    with pytest.warns(UserWarning, match="LSTM: dropout=0.2 acts between stacked layers only"):
        gn.LSTM(3, 4, dropout=0.2)
    with pytest.raises(ValueError, match=r"GRU: dropout must be a probability in \[0, 1\), got 1.0"):
        gn.GRU(3, 4, num_layers=2, dropout=1.0)


def test_a_recurrent_config_written_before_dropout_still_loads():
    old = {"input_size": 3, "hidden_size": 4, "num_layers": 2, "bidirectional": False, "bias": True}
    assert gn.GRU(**old).dropout == 0.0
    assert gn.GRU.state_shapes(**old) == gn.GRU.state_shapes(**old, dropout=0.3)


@pytest.mark.parametrize("bidirectional", [False, True])
def test_lstm_backward_takes_dy_in_either_memory_order(bidirectional):
    """dy batch-major (a Linear on every step gives that) is copied feature-major in blocks first;
    dy already feature-major (LastStep gives the layer's own order) is read in place: the same
    gradients either way."""
    rng = np.random.default_rng(4)
    layer = gn.LSTM(3, 5, bidirectional=bidirectional, rng=0, dtype=np.float64)
    x = rng.standard_normal((37, 6, 3))  # 37 examples: blocks of 16 and a remainder
    width = 10 if bidirectional else 5
    dy = rng.standard_normal((37, 6, width))
    feature_major = np.ascontiguousarray(dy.transpose(1, 2, 0)).transpose(2, 0, 1)
    results = []
    for d in (dy, feature_major):
        layer.zero_grad()
        layer.forward(x)
        results.append([layer.backward(d), *(p.grad.copy() for p in layer.params)])
    for a, b in zip(*results):
        np.testing.assert_allclose(a, b, rtol=1e-13, atol=1e-13)
