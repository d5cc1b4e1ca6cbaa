"""Diagnostics on constructed networks whose answer is known: dead units, saturation, vanishing
and exploding gradients, update ratios, the probe leaving training untouched, summary."""

from __future__ import annotations

import math

import numpy as np
import pytest

import glassnet as gn
from glassnet import diagnostics as D


def data(n=64, d=10, classes=3, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, d)).astype(np.float32), rng.integers(0, classes, n)


def row_of(rep, index):
    return next(r for r in rep.layers if r["index"] == index)


def test_all_dead_relu_layer_is_reported_as_100_percent_dead():
    rng = np.random.default_rng(0)
    model = gn.Sequential(gn.Linear(10, 8, rng=rng), gn.ReLU(), gn.Linear(8, 3, rng=rng))
    model[0].b.data[:] = -100.0  # z < 0 for every example: the ReLU never fires
    x, y = data()
    rep = D.report(model, gn.CrossEntropyLoss(), x, y)
    assert row_of(rep, "0")["dead"] == 1.0
    assert any("100% of ReLU units in layer 1 (#0 Linear) are dead" in v for v in rep.verdicts)
    # a dead unit passes no gradient back: dC/db of the layer is exactly zero
    assert row_of(rep, "0")["db"] == 0.0


def test_dead_fraction_counts_units_dead_for_the_whole_batch():
    rng = np.random.default_rng(0)
    model = gn.Sequential(gn.Linear(10, 8, rng=rng), gn.ReLU(), gn.Linear(8, 3, rng=rng))
    model[0].b.data[:] = 100.0
    model[0].b.data[[1, 5]] = -100.0  # exactly 2 of 8 units dead
    rep = D.report(model, gn.CrossEntropyLoss(), *data())
    assert row_of(rep, "0")["dead"] == 0.25
    assert any("25% of ReLU units" in v for v in rep.verdicts)
    model[0].b.data[5] = 100.0  # 1 of 8 (12.5%) is still above the 10% threshold; 0 is not
    assert row_of(D.report(model, gn.CrossEntropyLoss(), *data()), "0")["dead"] == 0.125
    model[0].b.data[1] = 100.0
    rep = D.report(model, gn.CrossEntropyLoss(), *data())
    assert row_of(rep, "0")["dead"] == 0.0 and not any("dead" in v for v in rep.verdicts)


class MyReLU(gn.ReLU):
    """A user's subclass of an activation (say, to log something) is still that activation."""


def test_dead_units_behind_a_subclassed_relu_are_counted():
    rng = np.random.default_rng(0)
    model = gn.Sequential(gn.Linear(10, 8, rng=rng), MyReLU(), gn.Linear(8, 3, rng=rng))
    model[0].b.data[:] = -100.0
    rep = D.report(model, gn.CrossEntropyLoss(), *data())
    assert row_of(rep, "0")["activation"] == "MyReLU" and row_of(rep, "0")["dead"] == 1.0


def test_dead_conv_units_are_channels():
    rng = np.random.default_rng(0)
    model = gn.Sequential(gn.Conv2d(1, 4, 3, rng=rng), gn.ReLU(), gn.Flatten(), gn.Linear(4 * 36, 2, rng=rng))
    model[0].b.data[:] = 50.0
    model[0].b.data[2] = -50.0
    x = np.random.default_rng(1).random((8, 1, 8, 8), dtype=np.float32)
    rep = D.report(model, gn.CrossEntropyLoss(), x, np.zeros(8, dtype=np.int64))
    assert row_of(rep, "0")["dead"] == 0.25 and row_of(rep, "0")["units"] == 4


@pytest.mark.parametrize("act, threshold", [(gn.Sigmoid, 6.0), (gn.Tanh, 3.0)])
def test_saturated_layer_is_reported_and_a_healthy_one_is_not(act, threshold):
    rng = np.random.default_rng(0)
    model = gn.Sequential(gn.Linear(10, 16, rng=rng), act(), gn.Linear(16, 3, rng=rng))
    x, y = data()
    model[0].W.data *= 1e-3  # |z| tiny: h'(z) near its maximum
    model[0].b.data[:] = 0.0
    rep = D.report(model, gn.CrossEntropyLoss(), x, y)
    assert row_of(rep, "0")["saturated"] == 0.0 and not any("saturated" in v for v in rep.verdicts)
    model[0].W.data *= 1e5  # weights 100x the default: |z| far beyond the threshold almost everywhere
    z = x @ model[0].W.data + model[0].b.data
    rep = D.report(model, gn.CrossEntropyLoss(), x, y)
    expected = np.mean(np.abs(z) > threshold)  # the documented threshold in terms of z
    assert row_of(rep, "0")["saturated"] == pytest.approx(expected, abs=0.01)
    assert expected > 0.8
    assert any(f"of {act.__name__.lower()} activations in layer 1" in v for v in rep.verdicts)


def deep(activation, init, width=30, depth=5, seed=0, batch_norm=False):
    rng = np.random.default_rng(seed)
    layers, n = [], 20
    for _ in range(depth):
        layers += [gn.Linear(n, width, init=init, rng=rng)]
        layers += [gn.BatchNorm1d(width)] if batch_norm else []
        layers += [activation()]
        n = width
    return gn.Sequential(*layers, gn.Linear(n, 10, init=init, rng=rng))


def test_deep_sigmoid_stack_has_vanishing_gradients_earlier_layers_slower():
    model = deep(gn.Sigmoid, "book_normal")
    x, y = data(n=500, d=20, classes=10)
    rep = D.report(model, gn.CrossEntropyLoss(), x, y)
    speeds = [r["speed"] for r in rep.layers if r["weight"]][:-1]
    assert speeds[0] < speeds[-1] / 10  # the first hidden layer learns much slower than the last
    v = next(v for v in rep.verdicts if v.startswith("vanishing gradients"))
    assert "layer 1 (#0 Linear) learns" in v and "slower than layer 5 (#8 Linear)" in v
    # the ratio quoted is the measured one
    quoted = float(v.split(" learns ")[1].split("x")[0])
    assert quoted == pytest.approx(speeds[-1] / speeds[0], rel=0.01)
    # ReLU + He initialisation, and sigmoid with batch norm, close the gap: no verdict
    for model in (deep(gn.ReLU, "he_normal"), deep(gn.Sigmoid, "book_normal", batch_norm=True)):
        assert not any("vanishing" in v for v in D.report(model, gn.CrossEntropyLoss(), x, y).verdicts)


def test_exploding_gradients_in_depth():
    model = deep(lambda: gn.LeakyReLU(1.0), "standard_normal", depth=4)  # linear, weights N(0, 1)
    x, y = data(n=100, d=20, classes=10)
    rep = D.report(model, gn.CrossEntropyLoss(), x, y)
    assert any(v.startswith("exploding gradients: layer 1 (#0 Linear) learns") for v in rep.verdicts)


def test_update_ratio_is_the_step_the_optimizer_would_take_and_changes_nothing():
    rng = np.random.default_rng(0)
    model = gn.Sequential(gn.Linear(10, 8, rng=rng), gn.Tanh(), gn.Linear(8, 3, rng=rng))
    x, y = data()
    opt = gn.optim.SGD(model.parameters(), lr=0.1)
    rep = D.report(model, gn.CrossEntropyLoss(), x, y, opt)
    model.zero_grad()  # the same gradients, computed the plain way
    loss = gn.CrossEntropyLoss()
    loss.forward(model.forward(x), y)
    model.backward(loss.backward())
    for index, layer in (("0", model[0]), ("2", model[2])):
        # SGD's step is lr * g: over the layer's W and b together, lr ||g|| / ||w||
        g = np.sqrt(sum(np.sum(p.grad.astype(np.float64) ** 2) for p in layer.params))
        expected = 0.1 * g / np.sqrt(sum(np.sum(p.data.astype(np.float64) ** 2) for p in layer.params))
        assert row_of(rep, index)["update"] == pytest.approx(expected, rel=1e-5)
    # Adam: state and step count untouched by the report
    model.zero_grad()
    adam = gn.optim.Adam(model.parameters(), lr=1e-3)
    gn.train_step(model, gn.CrossEntropyLoss(), adam, x, y)
    before = (
        {k: v.copy() for k, v in adam.state.items()},
        adam.t,
        [p.data.copy() for p in model.parameters()],
    )
    rep = D.report(model, gn.CrossEntropyLoss(), x, y, adam)
    assert adam.t == before[1] and all(np.array_equal(adam.state[k], v) for k, v in before[0].items())
    assert all(np.array_equal(p.data, d) for p, d in zip(model.parameters(), before[2]))
    assert all(0 < r["update"] < 0.1 for r in rep.layers)
    # a layer whose weights are all zero has no ratio (not inf, not a false "non-finite" verdict)
    for p in model[0].params:
        p.data[...] = 0
    rep = D.report(model, gn.CrossEntropyLoss(), x, y, adam)
    assert row_of(rep, "0")["update"] is None and not any("non-finite" in v for v in rep.verdicts)


def test_report_leaves_gradients_buffers_and_modes_as_they_were():
    rng = np.random.default_rng(0)
    model = gn.Sequential(gn.Linear(10, 8, rng=rng), gn.BatchNorm1d(8), gn.ReLU(), gn.Dropout(0.5, rng=rng),
                          gn.Linear(8, 3, rng=rng))  # fmt: skip
    for p in model.parameters():
        p.grad[...] = 7.0
    model.eval()
    buffers = {k: v.copy() for k, v in model.named_buffers()}
    rng_state = model[3].rng.bit_generator.state
    rep = D.report(model, gn.CrossEntropyLoss(), *data())
    assert all((p.grad == 7.0).all() for p in model.parameters())
    assert all(np.array_equal(v, buffers[k]) for k, v in model.named_buffers())
    assert not any(m.training for m in model.modules())
    assert model[3].rng.bit_generator.state == rng_state  # the probe drew no dropout mask
    # an eval-mode model is probed as in training: batch norm on the batch's statistics
    model.train()
    assert rep.loss == D.report(model, gn.CrossEntropyLoss(), *data()).loss


def test_gradient_flow_callback_records_every_epoch_and_does_not_change_training():
    x, y = data(n=120)

    def run(callbacks):
        rng = np.random.default_rng(3)
        model = gn.Sequential(gn.Linear(10, 16, rng=rng), gn.BatchNorm1d(16), gn.ReLU(),
                              gn.Dropout(0.3, rng=rng), gn.Linear(16, 3, rng=rng))  # fmt: skip
        opt = gn.optim.Adam(model.parameters(), lr=1e-2)
        gn.fit(model, gn.CrossEntropyLoss(), opt, (x, y), epochs=3, batch_size=32, callbacks=callbacks,
               rng=np.random.default_rng(4), verbose=False)  # fmt: skip
        return model

    flow = gn.GradientFlow(probe_size=50)
    a, b = run([flow]), run([])
    assert all(np.array_equal(p.data, q.data) for p, q in zip(a.parameters(), b.parameters()))
    assert all(np.array_equal(u, v) for (_, u), (_, v) in zip(a.named_buffers(), b.named_buffers()))
    assert [h["epoch"] for h in flow.history] == [0, 1, 2, 3]
    # every layer with parameters has a speed: the batch norm layer too
    assert set(flow.speeds()) == {"layer 1", "layer 2", "layer 3"} and len(flow.speeds()["layer 1"]) == 4
    # the last measurement is a report of the trained model on the probe batch
    rep = D.report(a, gn.CrossEntropyLoss(), x[:50], y[:50])
    assert flow.report().loss == pytest.approx(rep.loss, rel=1e-6)
    assert flow.history[-1]["layers"][0]["speed"] == pytest.approx(rep.layers[0]["speed"], rel=1e-5)


def test_gradient_norm_growth_across_epochs_is_an_exploding_verdict():
    flow = D.GradientFlow()
    flow.history = [{"grad_norm": 2.0}, {"grad_norm": 1.0}, {"grad_norm": 30.0}]
    assert flow._growth(1.2e4) == "exploding: gradient norm grew 1e+04x in 2 epochs"
    assert flow._growth(500.0) is None
    assert flow._growth(math.inf) is None


def test_summary_shapes_counts_memory_and_layer_named_on_mismatch():
    rng = np.random.default_rng(0)
    model = gn.Sequential(gn.Conv2d(1, 4, 3, rng=rng), gn.BatchNorm2d(4), gn.ReLU(), gn.Flatten(),
                          gn.Linear(4 * 26 * 26, 10, rng=rng))  # fmt: skip
    text = gn.summary(model, (1, 28, 28), batch_size=100)
    assert text == D.summary(model, (1, 28, 28), 100)
    assert "(N, 4, 26, 26)" in text and "(N, 2704)" in text and "(N, 10)" in text
    trainable = 4 * 9 + 4 + 8 + 2704 * 10 + 10
    assert f"trainable: {trainable:,}   non-trainable (buffers): 9" in text  # mean, var, count
    kept = (3 * 4 * 26 * 26 + 2704 + 10) * 100 * 4
    assert f"layer outputs {kept / 2**20:.1f} MiB" in text
    with pytest.raises(gn.ShapeError, match=r"layer #4 \(Linear\) cannot take input of shape \(N, 2304\)"):
        gn.summary(model, (1, 26, 26))
    nested = gn.Sequential(gn.Sequential(gn.Linear(5, 4), gn.ReLU()), gn.Linear(3, 2))
    with pytest.raises(gn.ShapeError, match=r"layer #1 \(Linear\)"):
        gn.summary(nested, (5,))
    with pytest.raises(gn.ShapeError, match=r"layer #0.0 \(Linear\)"):
        gn.summary(nested, (6,))


@pytest.mark.parametrize(
    "make",
    [lambda ps: gn.optim.SGD(ps, lr=0.1, momentum=0.9), lambda ps: gn.optim.Adam(ps, lr=1e-2)],
    ids=["sgd-momentum", "adam"],
)
def test_update_ratio_with_optimizer_state_is_the_step_then_taken(make):
    # Linear's W is column-major: the state the ratio reads must be laid out as step() lays it
    rng = np.random.default_rng(0)
    model = gn.Sequential(gn.Linear(10, 8, rng=rng), gn.Tanh(), gn.Linear(8, 3, rng=rng))
    x, y = data()
    opt = make(model.parameters())
    for i in range(3):  # momentum / moments that differ from the probe batch's gradient
        gn.train_step(model, gn.CrossEntropyLoss(), opt, 3 * x[i::3], y[i::3])
    rep = D.report(model, gn.CrossEntropyLoss(), x, y, opt)
    before = [[p.data.astype(np.float64) for p in layer.params] for layer in (model[0], model[2])]
    gn.train_step(model, gn.CrossEntropyLoss(), opt, x, y)
    for index, layer, old in (("0", model[0], before[0]), ("2", model[2], before[1])):
        step = sum(np.sum((p.data - w) ** 2) for p, w in zip(layer.params, old))
        expected = np.sqrt(step / sum(np.sum(w**2) for w in old))
        assert row_of(rep, index)["update"] == pytest.approx(expected, rel=1e-4)


@pytest.mark.parametrize("loss_fn", [gn.CrossEntropyLoss(), gn.MSELoss()])
def test_speed_and_delta_are_the_per_example_deltas_of_trace(loss_fn):
    # the documented formulas, against the book's delta of each example's own cost (gn.trace)
    rng = np.random.default_rng(0)
    model = gn.Sequential(gn.Linear(10, 7, rng=rng), gn.Sigmoid(), gn.Linear(7, 5, rng=rng), gn.ReLU(),
                          gn.Linear(5, 3, rng=rng)).to(np.float64)  # fmt: skip
    x, labels = data(n=12)
    x = x.astype(np.float64)
    y = labels if isinstance(loss_fn, gn.CrossEntropyLoss) else np.eye(3)[labels]
    rep = D.report(model, loss_fn, x, y)
    traces = [gn.trace(model, loss_fn, x[i], y[i]) for i in range(len(x))]
    for l, row in enumerate(r for r in rep.layers if r["weight"]):
        deltas = np.array([t.layers[l].delta for t in traces])  # (examples, units)
        assert row["speed"] == pytest.approx(np.sqrt(np.mean(deltas**2)), rel=1e-9)
        assert row["delta"] == pytest.approx(np.sqrt(np.mean(np.sum(deltas**2, axis=1))), rel=1e-9)
        assert row["db"] == pytest.approx(np.linalg.norm(deltas.mean(axis=0)), rel=1e-9)


# --- every layer of any module tree (issue 11, items 10 and 11) -----------------------------------
class Block(gn.Module):
    """A user-written residual block, y = x + lin2(relu(lin1(x))): a container that is not a
    ``Sequential``, whose forward and backward are its own code."""

    def __init__(self, width, rng):
        super().__init__()
        self.lin1, self.act, self.lin2 = (
            gn.Linear(width, width, rng=rng),
            gn.ReLU(),
            gn.Linear(width, width, rng=rng),
        )
        self.children = [self.lin1, self.act, self.lin2]

    def forward(self, x):
        return x + self.lin2(self.act(self.lin1(x)))

    def backward(self, dy):
        return dy + self.lin1.backward(self.act.backward(self.lin2.backward(dy)))


def residual(seed=0):
    rng = np.random.default_rng(seed)
    return gn.Sequential(gn.Linear(10, 8, rng=rng), gn.Tanh(), Block(8, rng), gn.ReLU(),
                         gn.Linear(8, 3, rng=rng)).to(np.float64)  # fmt: skip


def plain_grads(model, loss_fn, x, y):
    model.zero_grad()
    loss_fn.forward(model.forward(x), y)
    model.backward(loss_fn.backward())
    return {id(p): p.grad.copy() for p in model.parameters()}


def test_report_and_gradient_flow_see_inside_a_user_written_container():
    model, (x, y) = residual(), data()
    x = x.astype(np.float64)
    block = model[2]
    rep = D.report(model, gn.CrossEntropyLoss(), x, y)
    assert [r["index"] for r in rep.layers] == ["0", "2.0", "2.2", "4"]
    assert [r["layer"] for r in rep.layers] == [1, 2, 3, 4]
    grads = plain_grads(model, gn.CrossEntropyLoss(), x, y)
    for index, layer in (("2.0", block.lin1), ("2.2", block.lin2)):
        assert row_of(rep, index)["dW"] == pytest.approx(np.linalg.norm(grads[id(layer.W)]), rel=1e-9)
        assert row_of(rep, index)["db"] == pytest.approx(np.linalg.norm(grads[id(layer.b)]), rel=1e-9)
    # lin1's z feeds the block's own ReLU: its dead units are counted
    block.lin1.b.data[:] = -100.0
    rep = D.report(model, gn.CrossEntropyLoss(), x, y)
    assert row_of(rep, "2.0")["dead"] == 1.0
    assert any("100% of ReLU units in layer 2 (#2.0 Linear) are dead" in v for v in rep.verdicts)
    flow = gn.GradientFlow(probe_size=30)
    gn.fit(model, gn.CrossEntropyLoss(), gn.optim.SGD(model.parameters(), lr=0.1), (x, y), epochs=1,
           batch_size=16, callbacks=[flow], verbose=False, rng=np.random.default_rng(0))  # fmt: skip
    assert set(flow.speeds()) == {"layer 1", "layer 2", "layer 3", "layer 4"}


def test_trace_sees_inside_a_user_written_container():
    model, (x, y) = residual(), data(n=6)
    x = x.astype(np.float64)
    traces = [gn.trace(model, gn.CrossEntropyLoss(), x[i], y[i]) for i in range(len(x))]
    assert [t.names for t in traces[0].layers] == [["0", "1"], ["2.0", "2.1"], ["2.2", "3"], ["4"]]
    grads = plain_grads(model.eval(), gn.CrossEntropyLoss(), x, y)
    block = model[2]
    for l, layer in ((1, block.lin1), (2, block.lin2)):
        dW = np.mean([t.layers[l].dW for t in traces], axis=0)
        np.testing.assert_allclose(dW, grads[id(layer.W)], rtol=1e-10, atol=1e-14)
        for t in traces:  # BP4: a^{l-1} is the input the inner layer really received
            np.testing.assert_allclose(
                t.layers[l].dW, np.outer(t.layers[l].a_in, t.layers[l].delta), rtol=1e-12
            )
    # a^1 of lin2 is the output of the block's ReLU
    np.testing.assert_allclose(traces[0].layers[2].a_in, np.maximum(traces[0].layers[1].z, 0), rtol=1e-12)
    assert "layer 3: #2.2 Linear, #3 ReLU" in str(traces[0])


def test_nan_provenance_names_a_layer_inside_a_user_written_container():
    from glassnet.anomaly import AnomalyError, _owner

    model, (x, y) = residual(), data()
    model[2].lin2.W.data[3, 5] = np.nan
    with pytest.raises(AnomalyError) as info:
        gn.fit(model, gn.CrossEntropyLoss(), gn.optim.SGD(model.parameters(), lr=0.1), (x, y), epochs=1,
               batch_size=10, verbose=False, detect_anomaly=True, rng=np.random.default_rng(0))  # fmt: skip
    e = info.value
    assert (e.phase, e.layer, e.layer_type) == ("forward z", "2.2", "Linear")
    assert "its input was finite" in str(e) and "parameter W holds 1 NaN of 64 values" in str(e)
    # the later phases name the owner of a parameter (a regularizer's or an update's) by its path
    assert _owner(model, model[2].lin2.b) == ("2.2", "Linear")


def test_summary_lists_the_layers_inside_a_user_written_container():
    text = gn.summary(residual(), (10,))
    for needle in ("2.0  Linear(in_features=8", "2.1  ReLU()", "2.2  Linear(in_features=8"):
        assert needle in text
    assert f"trainable: {88 + 72 + 72 + 27:,}" in text


def recurrent(seed=0):
    rng = np.random.default_rng(seed)
    return gn.Sequential(gn.GRU(3, 5, rng=rng), gn.LastStep(), gn.Linear(5, 4, rng=rng), gn.BatchNorm1d(4),
                         gn.ReLU(), gn.Linear(4, 2, rng=rng))  # fmt: skip


def test_every_layer_with_parameters_has_a_speed_and_a_line_in_the_figure():
    pytest.importorskip("matplotlib")
    from glassnet import plots

    rng = np.random.default_rng(1)
    x, y = rng.standard_normal((40, 6, 3)).astype(np.float32), rng.integers(0, 2, 40)
    model = recurrent()
    flow = gn.GradientFlow(probe_size=30)
    gn.fit(model, gn.CrossEntropyLoss(), gn.optim.Adam(model.parameters(), lr=1e-2), (x, y), epochs=2,
           batch_size=10, callbacks=[flow], verbose=False, rng=np.random.default_rng(0))  # fmt: skip
    rows = flow.history[0]["layers"]
    assert [(r["index"], r["type"]) for r in rows] == [("0", "GRU"), ("2", "Linear"), ("3", "BatchNorm1d"),
                                                       ("5", "Linear")]  # fmt: skip
    assert [r["units"] for r in rows] == [5, 4, 4, 2]  # a GRU's units are its hidden features, not steps
    speeds = flow.speeds()
    assert set(speeds) == {"layer 1", "layer 2", "layer 3", "layer 4"}
    assert all(len(s) == 3 and all(v > 0 for v in s) for s in speeds.values())
    ax = plots.figure(4, 3).subplots()
    plots._draw_speeds(ax, flow.to_dict()["history"], "t")
    labels = ax.get_legend_handles_labels()[1]
    assert labels == [
        "layer 1 (#0 GRU)",
        "layer 2 (#2 Linear)",
        "layer 3 (#3 BatchNorm1d)",
        "layer 4 (#5 Linear)",
    ]
    # |dC/dW| and |dC/db| cover all of a layer's parameters: the probe's total gradient norm is
    # the norm of every gradient of the model
    probe = model.parameters()
    with D.probing(model):
        D.walk(model, gn.CrossEntropyLoss(), x[:30], y[:30])
        total = np.sqrt(sum(np.sum(np.square(p.grad, dtype=np.float64)) for p in probe))
        gru = model[0]
        weights = np.sqrt(
            sum(np.sum(np.square(p.grad, dtype=np.float64)) for p in gru.params if "W" in p.name)
        )
    assert flow.history[-1]["grad_norm"] == pytest.approx(total, rel=1e-5)
    assert flow.history[-1]["layers"][0]["dW"] == pytest.approx(weights, rel=1e-5)


def test_gradient_flow_json_holds_null_for_a_non_finite_value_and_still_plots(tmp_path):
    import json

    rng = np.random.default_rng(0)
    model = gn.Sequential(gn.Linear(10, 8, rng=rng), gn.ReLU(), gn.Linear(8, 3, rng=rng))
    flow = gn.GradientFlow(data=data(), probe_size=20)
    flow.model, flow.loss_fn, flow.optimizer = model, gn.CrossEntropyLoss(), None  # as fit sets them
    flow.on_train_begin({})
    model[2].W.data[0, 0] = np.inf
    with np.errstate(all="ignore"):  # fit would have stopped; the probe measures what it finds
        flow.on_epoch_end(0, {})
    text = json.dumps(flow.to_dict(), allow_nan=False)  # valid JSON: no NaN or Infinity token
    last = json.loads(text)["history"][-1]
    assert last["loss"] is None and any(r["speed"] is None for r in last["layers"])
    assert flow.history[-1]["loss"] != flow.history[-1]["loss"]  # in memory the NaN stays
    pytest.importorskip("matplotlib")
    from glassnet import plots

    assert plots.gradient_flow(json.loads(text), tmp_path / "flow.png").endswith("flow.png")


class NaNBlock(Block):
    """A container whose own code (not any of its layers) makes the NaN."""

    def forward(self, x):
        y = super().forward(x)
        y[:, 0] = np.nan
        return y


def test_a_walk_leaves_no_trace_on_a_container_and_names_its_own_faults():
    from glassnet.anomaly import AnomalyError

    model, (x, y) = residual(), data()
    gn.summary(model, (10,))
    D.report(model, gn.CrossEntropyLoss(), x, y)
    with pytest.raises(gn.ShapeError, match=r"^layer #1.0 \(Linear\): Linear expects input \(N, \.\.\., 8\)"):
        D.report(gn.Sequential(gn.Linear(10, 7), model[2]), gn.CrossEntropyLoss(), x, y)
    # the children's own methods are back: nothing shadowed stays on an instance
    assert not any(k in vars(m) for m in model.modules() for k in ("forward", "backward", "backward_params"))
    rng = np.random.default_rng(0)
    model = gn.Sequential(gn.Linear(10, 8, rng=rng), NaNBlock(8, rng), gn.Linear(8, 3, rng=rng))
    with pytest.raises(AnomalyError) as info:
        gn.fit(model, gn.CrossEntropyLoss(), gn.optim.SGD(model.parameters(), lr=0.1), (x, y), epochs=1,
               batch_size=10, verbose=False, detect_anomaly=True, rng=np.random.default_rng(0))  # fmt: skip
    e = info.value
    assert (e.phase, e.layer, e.layer_type) == ("forward", "1", "NaNBlock")
    assert "its input was finite; its parameters are finite" in str(e)
    assert not any(k in vars(m) for m in model.modules() for k in ("forward", "backward", "backward_params"))


@pytest.mark.parametrize(
    "step",
    [dict(clip_norm=1e-3), dict(regularizer=gn.L2(0.5)), dict(maximize=True), dict(maximize=True, wd=0.5)],
)
def test_gradient_flows_update_ratio_is_the_step_fit_takes(step):
    """The update-to-weight ratio measured before the first epoch equals the change that
    epoch's one full-batch step makes: with fit's clip_norm and regularizer applied as its step
    applies them (they were ignored: a 440x larger step reported, with a false verdict), and with
    the optimizer's maximize (the gradient was not negated)."""
    f, rng = np.float64, np.random.default_rng(0)
    x, y = rng.normal(size=(20, 6)), rng.integers(0, 3, 20)
    model = gn.Sequential(gn.Linear(6, 10, rng=0, dtype=f), gn.Sigmoid(), gn.Linear(10, 3, rng=1, dtype=f))
    opt = gn.optim.SGD(model.parameters(), lr=1.0, momentum=0.9, maximize=step.get("maximize", False),
                       weight_decay=step.get("wd", 0.0))  # fmt: skip
    flow = gn.GradientFlow(probe_size=20)
    before = [p.data.copy() for p in model.parameters()]
    options = {k: v for k, v in step.items() if k in ("clip_norm", "regularizer")}
    gn.fit(model, gn.CrossEntropyLoss(), opt, (x, y), epochs=1, batch_size=20, shuffle=False, verbose=False,
           callbacks=[flow], **options)  # fmt: skip
    after = [p.data for p in model.parameters()]
    for layer, (i, j) in enumerate([(0, 2), (2, 4)]):
        moved = sum(np.sum((after[k] - before[k]) ** 2) for k in range(i, j))
        real = np.sqrt(moved / sum(np.sum(before[k] ** 2) for k in range(i, j)))
        assert flow.history[0]["layers"][layer]["update"] == pytest.approx(real, rel=1e-9)
