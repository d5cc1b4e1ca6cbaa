"""fit(shards=k) and gn.Shards: a step's forward and backward on k parts of the batch in
threads, each part through a replica of the model sharing its weights. The step must be the
plain step's, to float rounding, for any loss; models that mix a batch's examples are refused."""

from __future__ import annotations

import contextlib

import numpy as np
import pytest
from threadpoolctl import threadpool_info

import glassnet as gn


def _cnn(rng, dtype=np.float64):
    return gn.Sequential(
        gn.Conv2d(1, 4, 3, rng=rng, dtype=dtype),
        gn.ReLU(),
        gn.MaxPool2d(2),
        gn.Conv2d(4, 6, 3, padding=1, rng=rng, dtype=dtype),
        gn.Tanh(),
        gn.Flatten(),
        gn.Linear(6 * 4 * 4, 5, rng=rng, dtype=dtype),
    )


def _cnn_bn(rng, dtype=np.float64):
    """One input channel, batch norm, ReLU, max-pool, a convolution: CNN-A + BatchNorm2d's
    shape, whose first convolution returns its output pixel-major for the pool; then batch
    norm on channels-last memory, and BatchNorm1d on rows."""
    return gn.Sequential(
        gn.Conv2d(1, 4, 3, rng=rng, dtype=dtype),
        gn.BatchNorm2d(4, dtype=dtype),
        gn.ReLU(),
        gn.MaxPool2d(2),
        gn.Conv2d(4, 6, 3, padding=1, rng=rng, dtype=dtype),
        gn.BatchNorm2d(6, dtype=dtype),
        gn.ReLU(),
        gn.Flatten(),
        gn.Linear(6 * 4 * 4, 7, rng=rng, dtype=dtype),
        gn.BatchNorm1d(7, dtype=dtype),
        gn.Linear(7, 5, rng=rng, dtype=dtype),
    )


MODELS = {
    "cnn-bn": (_cnn_bn, (1, 10, 10), 5),
    "cnn": (_cnn, (1, 10, 10), 5),
    "mlp": (lambda rng: gn.Sequential(gn.Linear(12, 9, rng=rng, dtype=np.float64), gn.ReLU(),
                                      gn.Linear(9, 4, rng=rng, dtype=np.float64)), (12,), 4),
    "lstm": (lambda rng: gn.Sequential(gn.LSTM(3, 5, rng=rng, dtype=np.float64), gn.LastStep(),
                                       gn.Linear(5, 4, rng=rng, dtype=np.float64)), (6, 3), 4),
    "residual": (lambda rng: gn.Sequential(gn.Linear(8, 8, rng=rng, dtype=np.float64),
                                           gn.Residual(gn.Sequential(gn.ReLU(), gn.Linear(8, 8, rng=rng,
                                                                                          dtype=np.float64))),
                                           gn.LayerNorm(8, dtype=np.float64),
                                           gn.Linear(8, 3, rng=rng, dtype=np.float64)), (8,), 3),
}  # fmt: skip


def _one_step(name, rows, shards, loss_fn, seed=0):
    build, shape, classes = MODELS[name]
    model = build(np.random.default_rng(seed))
    rng = np.random.default_rng(1)
    x = rng.standard_normal((rows, *shape))
    y = rng.integers(0, classes, rows)
    opt = gn.optim.SGD(model.parameters(), lr=0.5, momentum=0.9)  # gathers the parameters: views
    helper = gn.Shards(model, shards) if shards > 1 else None
    losses = [gn.train_step(model, loss_fn, opt, x, y, shards=helper) for _ in range(2)]
    if helper is not None:
        helper.close()
    state = [p.data.copy() for p in model.parameters()]
    for m in model.modules():  # batch norm's running statistics: the model's own, updated once a step
        if isinstance(m, (gn.BatchNorm1d, gn.BatchNorm2d)):
            state += [m.running_mean.copy(), m.running_var.copy(), m.num_batches_tracked.copy()]
    with gn.no_grad():  # and the model in eval mode after training with shards
        state.append(model.eval().forward(x))
    return losses, state


@pytest.mark.parametrize("name", sorted(MODELS))
@pytest.mark.parametrize("rows, shards", [(12, 2), (7, 3), (2, 3)])  # even, uneven, fewer rows than parts
def test_a_sharded_step_is_the_plain_step(name, rows, shards):
    plain_loss, plain = _one_step(name, rows, 1, gn.CrossEntropyLoss())
    loss, sharded = _one_step(name, rows, shards, gn.CrossEntropyLoss())
    np.testing.assert_allclose(loss, plain_loss, rtol=1e-12)
    for a, b in zip(sharded, plain):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)
    # the check can fail: a step that lost one part's gradient moves the weights elsewhere
    _, other = _one_step(name, rows, 1, gn.CrossEntropyLoss(), seed=5)
    assert any(not np.allclose(a, b) for a, b in zip(other, plain))


def test_the_loss_runs_once_on_the_whole_batch():
    """A weighted mean divides by the whole batch's weights (and skips ignored labels); per part
    it would divide by each part's own."""
    loss_fn = gn.CrossEntropyLoss(weight=np.array([1.0, 5.0, 0.5, 2.0, 1.0]), ignore_index=0)
    plain_loss, plain = _one_step("cnn", 9, 1, loss_fn)
    loss, sharded = _one_step("cnn", 9, 2, loss_fn)
    np.testing.assert_allclose(loss, plain_loss, rtol=1e-12)
    for a, b in zip(sharded, plain):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)


def test_fit_with_shards_trains_as_without_and_restores_blas_threads():
    rng = np.random.default_rng(2)
    x, y = rng.standard_normal((40, 1, 10, 10)), rng.integers(0, 5, 40)
    before = [i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"]
    runs = {}
    for k in (1, 2):
        model = _cnn(np.random.default_rng(0))
        opt = gn.optim.Adam(model.parameters(), lr=1e-2)
        history = gn.fit(model, gn.CrossEntropyLoss(), opt, (x, y), epochs=2, batch_size=16, rng=3,
                         verbose=False, shards=k)  # fmt: skip
        runs[k] = history.history["loss"], [p.data for p in model.parameters()]
    np.testing.assert_allclose(runs[2][0], runs[1][0], rtol=1e-9)
    for a, b in zip(runs[2][1], runs[1][1]):
        np.testing.assert_allclose(a, b, rtol=1e-8, atol=1e-10)
    assert [i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"] == before


def _dropout_run(tmp_path=None, resume=False, epochs=3):
    rng = np.random.default_rng(4)
    x, y = rng.standard_normal((48, 10)), rng.integers(0, 3, 48)
    model = gn.Sequential(gn.Linear(10, 16, rng=np.random.default_rng(0)), gn.ReLU(), gn.Dropout(0.5),
                          gn.Linear(16, 3, rng=np.random.default_rng(1)))  # fmt: skip
    opt = gn.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    extra = {} if tmp_path is None else {"checkpoint": tmp_path, "resume_from": tmp_path if resume else None}
    gn.fit(model, gn.CrossEntropyLoss(), opt, (x, y), epochs=epochs, batch_size=16, rng=7, verbose=False,
           shards=2, **extra)  # fmt: skip
    return model


def test_dropout_under_shards_is_reproducible_resumable_and_draws_each_part_its_own_masks(tmp_path):
    a, b = _dropout_run(), _dropout_run()
    for p, q in zip(a.parameters(), b.parameters()):
        np.testing.assert_array_equal(p.data, q.data)  # the same seed, the same run
    # two epochs, then resumed to three: the run that never stopped, bit for bit
    _dropout_run(tmp_path, epochs=2)
    resumed = _dropout_run(tmp_path, resume=True, epochs=3)
    for p, q in zip(resumed.parameters(), a.parameters()):
        np.testing.assert_array_equal(p.data, q.data)
    # each part's replica draws its own mask: the two halves' masks differ
    model = gn.Sequential(gn.Dropout(0.5))
    shards = gn.Shards(model, 2)
    model.set_rng(np.random.default_rng(0))
    out = shards.forward(np.ones((2, 64)))
    shards.close()
    assert not np.array_equal(out[0], out[1]) and set(np.unique(out)) == {0.0, 2.0}


def test_models_that_mix_examples_and_bad_counts_are_refused():
    class BatchMean(gn.Module):  # subtracts the batch's mean: mixes examples, shares no sums
        mixes_examples = True

        def forward(self, x):
            return x - x.mean(axis=0)

        def backward(self, dy):
            return dy - dy.mean(axis=0)

    with pytest.raises(ValueError, match=r"shards=2 .* its BatchMean mixes the examples of a batch"):
        gn.Shards(gn.Sequential(gn.Linear(3, 2), BatchMean()), 2)
    model = _cnn(np.random.default_rng(0))
    opt = gn.optim.SGD(model.parameters(), lr=0.1)
    data = (np.zeros((4, 1, 10, 10)), np.zeros(4, np.int64))
    for bad in (0, 1.5, "two"):
        with pytest.raises(ValueError, match="fit: shards must be an integer >= 1"):
            gn.fit(model, gn.CrossEntropyLoss(), opt, data, verbose=False, shards=bad)
    with pytest.raises(ValueError, match="shards=2 does not combine with detect_anomaly"):
        gn.fit(model, gn.CrossEntropyLoss(), opt, data, verbose=False, shards=2, detect_anomaly=True)
    with pytest.raises(ValueError, match="shards was built over another model"):
        other = gn.Shards(_cnn(np.random.default_rng(0)), 2)
        gn.train_step(model, gn.CrossEntropyLoss(), opt, *data, shards=other)


def test_an_error_in_one_part_is_raised_and_no_part_waits_forever_at_batch_norm():
    """A part that fails between two batch norms leaves the others at the second one's barrier:
    the failing part breaks it, and the part's own error is the one raised."""

    class FailOnThree(gn.Module):
        def forward(self, x):
            if len(x) == 3:
                raise ValueError("boom: a part of three rows")
            return x

        def backward(self, dy):
            return dy

    rng = np.random.default_rng(0)
    model = gn.Sequential(gn.Linear(4, 5, rng=rng), gn.BatchNorm1d(5), FailOnThree(), gn.BatchNorm1d(5),
                          gn.Linear(5, 2, rng=rng))  # fmt: skip
    shards = gn.Shards(model, 3)
    with pytest.raises(ValueError, match="boom"):
        shards.forward(rng.standard_normal((7, 4)))  # parts of 2, 2 and 3 rows
    out = shards.forward(rng.standard_normal((6, 4)))  # the next step's barriers are new ones
    shards.close()
    assert out.shape == (6, 2)


def test_predict_on_parts_gives_the_plain_outputs_and_leaves_the_generator_alone():
    model = _cnn_bn(np.random.default_rng(0))
    x = np.random.default_rng(1).standard_normal((23, 1, 10, 10))
    opt = gn.optim.SGD(model.parameters(), lr=0.1)
    gn.fit(model, gn.CrossEntropyLoss(), opt, (x, np.arange(23) % 5), epochs=1, batch_size=8, verbose=False)
    plain = gn.predict(model, x, batch_size=10)  # batch norm in eval mode: the running statistics
    for k in (2, 3):
        np.testing.assert_allclose(
            gn.predict(model, x, batch_size=10, shards=k), plain, rtol=1e-12, atol=1e-12
        )
    # dropout draws nothing in eval mode: predict on parts leaves the model's generator as it was
    dropout = gn.Sequential(gn.Linear(4, 4), gn.Dropout(0.5))
    dropout.set_rng(np.random.default_rng(9))
    gn.predict(dropout, np.ones((6, 4), np.float32), shards=2)
    assert dropout[1].rng.bit_generator.state == np.random.default_rng(9).bit_generator.state
    with pytest.raises(ValueError, match="predict: shards must be an integer >= 1"):
        gn.predict(model, x, shards=0)


def test_evaluate_on_parts_gives_the_plain_results_and_fit_validates_on_parts(monkeypatch):
    """evaluate(shards=k): the loss, accuracy and metrics of the whole batches' outputs, as
    without shards; fit(shards=k) validates on its own k parts too (its val_ logs as without),
    not on replicas made anew every epoch."""
    rng = np.random.default_rng(5)
    x, y = rng.standard_normal((23, 1, 10, 10)), np.arange(23) % 5
    model = _cnn_bn(np.random.default_rng(0))
    opt = gn.optim.SGD(model.parameters(), lr=0.1)
    gn.fit(model, gn.CrossEntropyLoss(), opt, (x, y), epochs=1, batch_size=8, verbose=False)
    plain = gn.evaluate(model, gn.CrossEntropyLoss(), (x, y), batch_size=10, metrics=["top2", "macro_f1"])
    for k in (2, 3):
        parts = gn.evaluate(model, gn.CrossEntropyLoss(), (x, y), batch_size=10, metrics=["top2", "macro_f1"],
                            shards=k)  # fmt: skip
        assert parts.keys() == plain.keys() == {"loss", "accuracy", "top2", "macro_f1"}
        for key in plain:
            assert parts[key] == pytest.approx(plain[key], rel=1e-12), key
    with pytest.raises(ValueError, match="evaluate: shards must be an integer >= 1"):
        gn.evaluate(model, gn.CrossEntropyLoss(), (x, y), shards=0)
    made = []

    class Counted(gn.Shards):
        def __init__(self, *args, **kwargs):
            made.append(args[1])
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(gn.train, "Shards", Counted)
    logs = {}
    for k in (1, 2):
        model = _cnn(np.random.default_rng(0))
        opt = gn.optim.SGD(model.parameters(), lr=0.1)
        history = gn.fit(model, gn.CrossEntropyLoss(), opt, (x[:16], y[:16]), epochs=2, batch_size=8, rng=1,
                         val_data=(x[16:], y[16:]), verbose=False, shards=k)  # fmt: skip
        logs[k] = history.history["val_loss"]
    np.testing.assert_allclose(logs[2], logs[1], rtol=1e-9)
    assert made == [2]  # one Shards for the whole run of two epochs, validation included


SEEN_MODES: list[bool] = []


class _RecordsGradMode(gn.Module):
    """Passes its input on, noting whether its forward ran with gradients on (per thread)."""

    def forward(self, x):
        SEEN_MODES.append(gn.module.grad_enabled())
        return x

    def backward(self, dy):
        return dy


def test_every_part_runs_in_the_callers_grad_mode():
    """no_grad() holds per thread: the helpers' parts must take the caller's mode, or under
    predict and evaluate they keep what only a backward reads (a convolution's windows)."""
    rng = np.random.default_rng(3)
    model = gn.Sequential(
        gn.Conv2d(2, 3, 3, rng=rng), _RecordsGradMode(), gn.Flatten(), gn.Linear(12, 2, rng=rng)
    )
    x = rng.standard_normal((6, 2, 4, 4)).astype(np.float32)
    shards = gn.Shards(model, 3)
    for grad, expected_cols in ((False, None), (True, (2 * 2 * 2, 18))):
        SEEN_MODES.clear()
        with contextlib.nullcontext() if grad else gn.no_grad():
            shards.forward(x)
        assert SEEN_MODES == [grad] * 3
        for replica in shards.replicas:
            cols = replica[0].cols
            assert (cols is None) if expected_cols is None else cols.shape == expected_cols
    shards.close()


def test_predict_on_parts_of_a_graph_with_two_outputs():
    rng = np.random.default_rng(2)
    graph = gn.Graph("x", [("h", gn.Linear(3, 4, rng=rng), "x"), ("a", gn.Linear(4, 2, rng=rng), "h"),
                           ("b", gn.Linear(4, 5, rng=rng), "h")], outputs=["a", "b"])  # fmt: skip
    x = rng.standard_normal((9, 3)).astype(np.float32)
    plain, parts = gn.predict(graph, x), gn.predict(graph, x, shards=2)
    assert isinstance(parts, tuple) and len(parts) == 2
    for p, q in zip(parts, plain):
        np.testing.assert_allclose(p, q, rtol=1e-6)
