"""A model with several inputs (a ``Graph`` with two named inputs) through ``Dataset``, ``fit``,
``evaluate``, ``predict``, ``train_step``, checkpoints and ``detect_anomaly``.

The reference: a two-input graph that concatenates its inputs and applies one ``Linear`` is the
same function as that ``Linear`` on the concatenated array, so with the same weights, data order
and optimizer, ``fit`` must leave the same weights (float64, exactly the same products).
"""

from __future__ import annotations

import numpy as np
import pytest

import glassnet as gn
from glassnet.data import Dataset


def two_input_graph(w: np.ndarray, b: np.ndarray) -> gn.Graph:
    lin = gn.Linear(5, 3, dtype=np.float64)
    lin.W.data[...], lin.b.data[...] = w, b
    return gn.Graph(
        inputs=["a", "b"],
        nodes=[("ab", gn.Concat(axis=1), ["a", "b"]), ("out", lin, "ab"), ("act", gn.Tanh(), "out")],
        outputs="act",
    )


@pytest.fixture
def data():
    rng = np.random.default_rng(3)
    xa, xb = rng.standard_normal((40, 2)), rng.standard_normal((40, 3))
    y = rng.integers(0, 3, 40)
    return xa, xb, y


@pytest.mark.parametrize(
    "options",
    [
        dict(),
        dict(detect_anomaly=True),
        dict(sample_weight=np.arange(40) % 3 + 1.0),
        dict(shards=2, sample_weight=np.arange(40) % 3 + 1.0),  # each input's rows split alike
    ],
)
def test_fit_on_two_inputs_equals_fit_on_their_concatenation(data, options):
    xa, xb, y = data
    rng = np.random.default_rng(0)
    w, b = rng.standard_normal((5, 3)) * 0.3, rng.standard_normal(3) * 0.1
    graph = two_input_graph(w, b)
    chain = gn.Sequential(gn.Linear(5, 3, dtype=np.float64), gn.Tanh())
    chain.layers[0].W.data[...], chain.layers[0].b.data[...] = w, b
    loss = gn.CrossEntropyLoss()
    for model, train in ((graph, Dataset((xa, xb), y)), (chain, Dataset(np.concatenate([xa, xb], 1), y))):
        opt = gn.optim.SGD(model.parameters(), lr=0.5, momentum=0.9)
        gn.fit(model, loss, opt, train, epochs=3, batch_size=8, rng=1, verbose=False, **options)
    lin = graph.nodes[1][1]
    assert not np.allclose(lin.W.data, w)  # it trained
    np.testing.assert_allclose(lin.W.data, chain.layers[0].W.data, rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(lin.b.data, chain.layers[0].b.data, rtol=1e-13, atol=1e-15)
    test = Dataset((xa, xb), y)
    expected = gn.evaluate(chain, loss, Dataset(np.concatenate([xa, xb], 1), y))
    assert gn.evaluate(graph, loss, test) == pytest.approx(expected, rel=1e-12)
    np.testing.assert_allclose(
        gn.predict(graph, (xa, xb), batch_size=7), gn.predict(chain, np.concatenate([xa, xb], 1)), rtol=1e-13
    )


def test_train_step_takes_a_tuple_of_inputs(data):
    xa, xb, y = data
    graph = two_input_graph(np.full((5, 3), 0.1), np.zeros(3))
    opt = gn.optim.SGD(graph.parameters(), lr=0.1)
    first = gn.train_step(graph, gn.CrossEntropyLoss(), opt, (xa, xb), y)
    assert gn.train_step(graph, gn.CrossEntropyLoss(), opt, (xa, xb), y) < first


def test_a_dataset_of_several_inputs_indexes_each_with_the_labels(data):
    xa, xb, y = data
    ds = Dataset((xa, xb), y)
    assert ds.n == len(ds) == 40
    sub = ds[ds.y == 1]
    np.testing.assert_array_equal(sub.x[0], xa[y == 1])
    np.testing.assert_array_equal(sub.x[1], xb[y == 1])
    assert isinstance(ds[:5].x, tuple) and ds[:5].x[1].shape == (5, 3)
    assert repr(ds[:5]) == "Dataset(n=5, x=(float64 (5, 2), float64 (5, 3)), y=int64 (5,))"
    with pytest.raises(ValueError, match=r"Dataset: x\[1\] has 39 rows but y has 40"):
        Dataset((xa, xb[:39]), y)
    with pytest.raises(ValueError, match="x is an empty tuple"):
        Dataset((), y)


def test_bad_inputs_are_named_by_their_position(data):
    xa, xb, y = data
    graph = two_input_graph(np.zeros((5, 3)), np.zeros(3))
    opt = gn.optim.SGD(graph.parameters(), lr=0.1)
    with pytest.raises(ValueError, match=r"train_data: x\[1\] has 39 rows but y has 40"):
        gn.fit(graph, gn.CrossEntropyLoss(), opt, ((xa, xb[:39]), y), epochs=1, verbose=False)
    bad = xb.copy()
    bad[4, 1] = np.nan
    with pytest.raises(
        ValueError, match=r"train_data: x\[1\]: x contains 1 NaN/inf values \(first at row 4\)"
    ):
        gn.fit(graph, gn.CrossEntropyLoss(), opt, ((xa, bad), y), epochs=1, verbose=False)
    with pytest.raises(gn.ShapeError, match=r"train_data: x has examples of shape \(2,\) and \(4,\)"):
        gn.fit(graph, gn.CrossEntropyLoss(), opt, ((xa, np.zeros((40, 4))), y), epochs=1, verbose=False)
    with pytest.raises(
        ValueError, match=r"predict: the inputs x\[0\], x\[1\], \.\.\. must have the same rows"
    ):
        gn.predict(graph, (xa, xb[:3]))


def test_checkpoint_resume_with_two_inputs_matches_an_uninterrupted_run(data, tmp_path):
    xa, xb, y = data
    w, b = np.full((5, 3), 0.05), np.zeros(3)
    train = Dataset((xa, xb), y)

    def run(epochs, start=w, **kw):
        graph = two_input_graph(start, b)
        opt = gn.optim.Adam(graph.parameters(), lr=0.01)
        gn.fit(
            graph, gn.CrossEntropyLoss(), opt, train, epochs=epochs, batch_size=8, rng=2, verbose=False, **kw
        )
        return graph.nodes[1][1].W.data.copy()

    whole = run(4)
    run(2, checkpoint=tmp_path / "ck")
    # other starting weights: only the checkpoint's can give the uninterrupted run's
    resumed = run(4, start=w * 3, checkpoint=tmp_path / "ck", resume_from=tmp_path / "ck")
    np.testing.assert_array_equal(resumed, whole)


def test_summary_takes_one_shape_per_input():
    graph = two_input_graph(np.zeros((5, 3)), np.zeros(3))
    table = gn.summary(graph, [(2,), (3,)])
    assert "(N, 5)" in table and "(N, 3)" in table and "total parameters: 18" in table
    with pytest.raises(gn.ShapeError, match="summary: layer #out"):
        gn.summary(graph, [(2,), (4,)])


def test_report_trace_and_gradient_flow_take_a_tuple_of_inputs(data):
    """The tools that walk the model take x as fit does: a tuple of one array per input. The
    walk's gradients are the concatenated model's (the same function, as above)."""
    xa, xb, y = data
    rng = np.random.default_rng(0)
    w, b = rng.standard_normal((5, 3)), rng.standard_normal(3)
    graph, chain = two_input_graph(w, b), gn.Sequential(gn.Linear(5, 3, dtype=np.float64), gn.Tanh())
    chain[0].W.data[...], chain[0].b.data[...] = w, b
    ours = gn.diagnostics.report(graph, gn.CrossEntropyLoss(), (xa, xb), y)
    theirs = gn.diagnostics.report(chain, gn.CrossEntropyLoss(), np.hstack([xa, xb]), y)
    assert ours.loss == pytest.approx(theirs.loss)
    assert [r["dW"] for r in ours.layers if r["dW"]] == pytest.approx(
        [r["dW"] for r in theirs.layers if r["dW"]]
    )
    traced = gn.trace(graph, gn.CrossEntropyLoss(), (xa[0], xb[0]), y[0])
    chained = gn.trace(chain, gn.CrossEntropyLoss(), np.hstack([xa, xb])[0], y[0])
    assert traced.loss == pytest.approx(chained.loss)
    flow = gn.GradientFlow(probe_size=20)
    gn.fit(graph, gn.CrossEntropyLoss(), gn.optim.SGD(graph.parameters(), lr=0.1), Dataset((xa, xb), y),
           epochs=1, batch_size=10, verbose=False, rng=0, callbacks=[flow])  # fmt: skip
    assert len(flow.history) == 2 and flow.to_dict()["probe_size"] == 20


def test_the_walking_tools_refuse_a_graph_with_several_outputs_by_name(data):
    xa, _, y = data
    rng = np.random.default_rng(0)
    two_heads = gn.Graph("x", [("h", gn.Linear(2, 4, rng=rng), "x"), ("c", gn.Linear(4, 3, rng=rng), "h"),
                               ("r", gn.Linear(4, 1, rng=rng), "h")], ["c", "r"])  # fmt: skip
    with pytest.raises(TypeError, match="^diagnostics.report: the model returns 2 outputs"):
        gn.diagnostics.report(two_heads, gn.CrossEntropyLoss(), xa, y)
    with pytest.raises(TypeError, match="^trace: the model returns 2 outputs"):
        gn.trace(two_heads, gn.CrossEntropyLoss(), xa[0], y[0])
    one_head = gn.Graph(two_heads.inputs, two_heads.nodes, outputs="c")  # as docs/howto/graphs.md shows
    assert np.isfinite(gn.trace(one_head, gn.CrossEntropyLoss(), xa[0], y[0]).loss)
