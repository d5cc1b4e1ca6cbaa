"""``gn.trace``: one example's z, a, delta, dC/db, dC/dW agree with the batch computation."""

from __future__ import annotations

import numpy as np
import pytest

import glassnet as gn


def batch_pass(model, loss_fn, x, y):
    """The ordinary batch computation: outputs of every layer, and the batch's p.grads."""
    model.eval()
    model.zero_grad()
    outs, h = [], x
    for layer in model:
        h = layer.forward(h)
        outs.append(h)
    loss_fn.forward(h, y)
    model.backward(loss_fn.backward())
    return outs, {id(p): p.grad.copy() for p in model.parameters()}


@pytest.mark.parametrize("loss_fn", [gn.CrossEntropyLoss(), gn.QuadraticCost(), gn.MSELoss()])
def test_trace_of_each_example_agrees_with_the_batch(loss_fn):
    rng = np.random.default_rng(0)
    model = gn.Sequential(gn.Flatten(), gn.Linear(12, 7, rng=rng), gn.Sigmoid(), gn.Linear(7, 5, rng=rng),
                          gn.ReLU(), gn.Linear(5, 3, rng=rng)).to(np.float64)  # fmt: skip
    n = 6
    x = rng.standard_normal((n, 3, 4))
    y = rng.integers(0, 3, n)
    outs, grads = batch_pass(model, loss_fn, x, y)
    traces = [gn.trace(model, loss_fn, x[i], y[i]) for i in range(n)]
    weights = [model[1], model[3], model[5]]
    for l, layer in enumerate(weights):
        # BP4 and BP3: the batch gradient is the mean of the per-example gradients
        dW = np.mean([t.layers[l].dW for t in traces], axis=0)
        db = np.mean([t.layers[l].db for t in traces], axis=0)
        np.testing.assert_allclose(dW, grads[id(layer.W)], rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(db, grads[id(layer.b)], rtol=1e-12, atol=1e-15)
        k = 2 * l + 1  # index of the weight layer in the Sequential
        for i, t in enumerate(traces):
            np.testing.assert_allclose(t.layers[l].z, outs[k][i], rtol=1e-12)
            np.testing.assert_allclose(t.layers[l].a, outs[min(k + 1, 5)][i], rtol=1e-12)
            np.testing.assert_allclose(t.layers[l].a_in, outs[k - 1][i], rtol=1e-12)
            # BP4 for one example: the outer product of its a^{l-1} and delta^l
            np.testing.assert_allclose(
                t.layers[l].dW, np.outer(t.layers[l].a_in, t.layers[l].delta), rtol=1e-12
            )
            np.testing.assert_allclose(t.layers[l].db, t.layers[l].delta, rtol=1e-12)
    # delta^l is N times row n of the batch's dC/dz^l (the docstring's claim)
    model.zero_grad()
    w = gn.diagnostics.walk(model, loss_fn, x, y)
    for l, k in enumerate((1, 3, 5)):
        np.testing.assert_allclose([t.layers[l].delta for t in traces], n * w.grads[k], rtol=1e-12)
    # BP2 by hand: delta^1 = (delta^2 W^2^T) * sigma'(z^1)
    t = traces[0].layers
    s = 1 / (1 + np.exp(-t[0].z))
    np.testing.assert_allclose(t[0].delta, (t[1].delta @ model[3].W.data.T) * s * (1 - s), rtol=1e-10)


def test_trace_of_a_conv_net_and_its_report():
    rng = np.random.default_rng(1)
    model = gn.Sequential(gn.Conv2d(1, 3, 3, rng=rng), gn.ReLU(), gn.MaxPool2d(2), gn.Flatten(),
                          gn.Dropout(0.5, rng=rng), gn.Linear(27, 4, rng=rng))  # fmt: skip
    x = rng.random((5, 1, 8, 8), dtype=np.float32)
    y = rng.integers(0, 4, 5)
    for p in model.parameters():
        p.grad[...] = 3.0
    t = gn.trace(model, gn.CrossEntropyLoss(), x[2], y[2])
    assert all((p.grad == 3.0).all() for p in model.parameters())  # gradients put back
    assert model.training  # mode put back
    assert [layer.types for layer in t.layers] == [
        ["Conv2d", "ReLU", "MaxPool2d", "Flatten", "Dropout"],
        ["Linear"],
    ]
    assert (
        t.layers[0].z.shape == (3, 6, 6)
        and t.layers[0].a.shape == (27,)
        and t.layers[0].dW.shape == (3, 1, 3, 3)
    )
    # the batch gradient (eval mode, as trace) is the mean of the traced per-example gradients
    traces = [t if i == 2 else gn.trace(model, gn.CrossEntropyLoss(), x[i], y[i]) for i in range(5)]
    model.eval()
    model.zero_grad()
    loss = gn.CrossEntropyLoss()
    loss.forward(model.forward(x), y)
    model.backward(loss.backward())
    for l, layer in enumerate((model[0], model[5])):
        dW = np.mean([tr.layers[l].dW for tr in traces], axis=0)
        np.testing.assert_allclose(dW, layer.W.grad, rtol=1e-4, atol=1e-7)
    np.testing.assert_allclose(t.layers[1].a_in, t.layers[0].a)
    text = str(t)
    for needle in ("layer 1: #0 Conv2d, #1 ReLU", "z^1", "a^1", "Dropout(Flatten(MaxPool2d(ReLU(z^1))))",
                   "delta^2", "(BP1)", "(BP2)", "(BP3)", "(BP4)", f"C = {t.loss:.6g}"):  # fmt: skip
        assert needle in text


def test_trace_says_where_paths_are_summed():
    """A residual, a graph's fan-out and an encoder's residuals are not a chain: the trace names
    the module summing paths at each layer inside it, and a plain chain has no such line."""
    rng = np.random.default_rng(0)
    encoder = gn.Sequential(
        gn.Linear(4, 4, rng=rng),
        gn.TransformerEncoderLayer(4, 2, dim_feedforward=6, dropout=0.0, rng=rng),
        gn.Flatten(),
        gn.Linear(12, 3, rng=rng),
    )
    t = gn.trace(encoder, gn.CrossEntropyLoss(), rng.standard_normal((3, 4)), 1)
    inside = [layer.l for layer in t.layers if layer.sums]
    assert inside == [1, 2, 3]  # the layers holding the encoder's children; not the last Linear
    assert t.layers[0].sums[0].startswith("#1 TransformerEncoderLayer: residuals")
    text = str(t)
    assert text.count("sums paths: #1 TransformerEncoderLayer") == 3 and "+ other paths" in text

    residual = gn.Sequential(
        gn.Residual(gn.Sequential(gn.Linear(4, 4, rng=rng), gn.ReLU())), gn.Linear(4, 2, rng=rng)
    )
    t = gn.trace(residual, gn.CrossEntropyLoss(), rng.standard_normal(4), 1)
    assert [layer.sums for layer in t.layers] == [[f"#0 Residual: {gn.Residual.sums_paths}"], []]

    chain = gn.Sequential(gn.Linear(4, 4, rng=rng), gn.ReLU(), gn.Linear(4, 2, rng=rng))
    assert "sums paths" not in str(gn.trace(chain, gn.CrossEntropyLoss(), rng.standard_normal(4), 1))

    graph = gn.Graph(
        "x",
        [("h", gn.Linear(4, 4, rng=rng), "x"), ("a", gn.Linear(4, 4, rng=rng), "h"),
         ("s", gn.Add(), ["h", "a"]), ("o", gn.Linear(4, 2, rng=rng), "s")],
        "o",
    )  # fmt: skip
    t = gn.trace(graph, gn.CrossEntropyLoss(), rng.standard_normal(4), 1)
    fan_out = f"#(model) Graph: {gn.Graph.sums_paths}"
    assert [layer.sums for layer in t.layers] == [
        [fan_out],
        [fan_out, f"#s Add: {gn.Add.sums_paths}"],
        [fan_out],
    ]


def test_the_report_keeps_its_columns_for_long_parameter_names():
    """A layer's own parameters ("dC/dweight (#2.block.1)") are longer than the book's names:
    every quantity's "=" and "shape" still stand in one column."""
    rng = np.random.default_rng(0)
    block = gn.Residual(gn.Sequential(gn.Linear(3, 3, rng=rng), gn.LayerNorm(3)))
    model = gn.Sequential(gn.Linear(4, 3, rng=rng), gn.ReLU(), block, gn.Linear(3, 2, rng=rng))
    text = str(gn.trace(model, gn.CrossEntropyLoss(), rng.standard_normal(4), 1))
    rows = [line for line in text.splitlines() if " shape " in line]
    assert any("dC/dweight (#2.block.1)" in line for line in rows)
    assert len({line.index(" = ") for line in rows}) == 1
    assert len({line.index(" shape ") for line in rows}) == 1


def test_layers_before_the_first_weight_layer_show_their_gradients():
    """An RNN encoder before the first Linear is no z = a W + b of the book: it gets no layer of
    the trace, but its parameters' gradients are shown (they were left out without a word)."""
    torch = pytest.importorskip("torch")
    f = np.float64
    model = gn.Sequential(gn.RNN(3, 4, rng=0, dtype=f), gn.LastStep(), gn.Linear(4, 2, rng=1, dtype=f))
    x = np.random.default_rng(0).normal(size=(5, 3))
    t = gn.trace(model, gn.CrossEntropyLoss(), x, 1)
    assert [k.split(" ")[0] for k in t.leading] == ["W_x_l0", "W_h_l0", "b_x_l0", "b_h_l0"]
    assert "before layer 1" in str(t) and "dC/dW_x_l0 (#0)" in str(t)
    rnn = torch.nn.RNN(3, 4, batch_first=True, dtype=torch.float64)
    params = dict(model[0].named_parameters())
    with torch.no_grad():
        rnn.weight_ih_l0.copy_(torch.tensor(params["W_x_l0"].data.T))
        rnn.weight_hh_l0.copy_(torch.tensor(params["W_h_l0"].data.T))
        rnn.bias_ih_l0.copy_(torch.tensor(params["b_x_l0"].data))
        rnn.bias_hh_l0.copy_(torch.tensor(params["b_h_l0"].data))
    h = rnn(torch.tensor(x[None]))[0][:, -1]
    logits = h @ torch.tensor(model[2].W.data) + torch.tensor(model[2].b.data)
    torch.nn.functional.cross_entropy(logits, torch.tensor([1])).backward()
    np.testing.assert_allclose(t.leading["W_x_l0 (#0)"], rnn.weight_ih_l0.grad.numpy().T, rtol=1e-10)


def test_trace_given_a_batch_of_one_says_it_takes_one_example():
    """x[:1] instead of x[0]: the layer's refusal showed a shape with one axis more than the
    user passed, and nothing said why; now the message says what trace takes."""
    rng = np.random.default_rng(0)
    model = gn.Sequential(gn.Conv2d(1, 2, 3, rng=rng), gn.Flatten(), gn.Linear(2 * 6 * 6, 3, rng=rng))
    x = rng.standard_normal((4, 1, 8, 8)).astype(np.float32)
    with pytest.raises(gn.ShapeError) as e:
        gn.trace(model, gn.CrossEntropyLoss(), x[:1], np.array([1]))
    message = str(e.value)
    assert message.startswith("layer #0 (Conv2d): Conv2d expects input (N, C, H, W), got shape (1, 1, 1, 8")
    assert "x[0] rather than x[:1]" in message and "it was given (1, 1, 8, 8)" in message
    assert "dC/dW" in str(gn.trace(model, gn.CrossEntropyLoss(), x[0], 1))  # the one example: traced
    with pytest.raises(gn.ShapeError) as e:  # a wrong example, not a batch of one: no such hint
        gn.trace(gn.Sequential(gn.Linear(4, 3)), gn.CrossEntropyLoss(), np.ones(5, np.float32), 1)
    assert "Linear expects input (N, ..., 4)" in str(e.value) and "x[:1]" not in str(e.value)
