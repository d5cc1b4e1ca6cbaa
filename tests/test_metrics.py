"""glassnet.metrics against scikit-learn, and metrics/weights in fit and evaluate."""

from __future__ import annotations

import numpy as np
import pytest

import glassnet as gn
from glassnet import metrics as M

sk = pytest.importorskip("sklearn.metrics")


def scores_and_labels(seed=0, n=200, c=6):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, c, size=n)
    scores = rng.standard_normal((n, c)) + 1.5 * np.eye(c)[labels]  # better than chance
    return scores, labels


@pytest.mark.parametrize("k", [1, 2, 3, 5])
def test_top_k_accuracy_matches_sklearn(k):
    scores, labels = scores_and_labels()
    expected = sk.top_k_accuracy_score(labels, scores, k=k, labels=np.arange(6))
    assert M.top_k_accuracy(scores, labels, k) == pytest.approx(expected, abs=1e-12)
    assert 0 < expected < 1 or k >= 5


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_macro_precision_recall_f1_and_report_match_sklearn(seed):
    scores, labels = scores_and_labels(seed)
    predicted = scores.argmax(axis=1)
    predicted[predicted == 3] = 2  # class 3 never predicted: precision 0 by zero_division=0
    ours = M.precision_recall_f1(labels, predicted, 6)
    p, r, f, _ = sk.precision_recall_fscore_support(labels, predicted, average="macro", zero_division=0)
    assert (ours["precision"], ours["recall"], ours["f1"]) == pytest.approx((p, r, f), abs=1e-12)
    report = M.classification_report(labels, predicted, 6)
    theirs = sk.classification_report(labels, predicted, output_dict=True, zero_division=0)
    for c in range(6):
        for key in ("precision", "recall", "f1-score", "support"):
            assert report[str(c)][key] == pytest.approx(theirs[str(c)][key], abs=1e-12), (c, key)
    assert report["accuracy"] == pytest.approx(theirs["accuracy"])
    for key in ("precision", "recall", "f1-score"):
        assert report["macro avg"][key] == pytest.approx(theirs["macro avg"][key], abs=1e-12)
    text = M.format_report(report)
    assert "macro avg" in text and text.count("\n") == 8


def test_macro_average_covers_only_classes_that_occur_as_sklearn():
    labels, predicted = np.array([0, 0, 1, 1]), np.array([0, 1, 1, 1])  # class 2 of 3 never seen
    ours = M.precision_recall_f1(labels, predicted, classes=3)
    p, r, f, _ = sk.precision_recall_fscore_support(labels, predicted, average="macro", zero_division=0)
    assert (ours["precision"], ours["recall"], ours["f1"]) == pytest.approx((p, r, f))


def test_mae_rmse_match_sklearn():
    rng = np.random.default_rng(3)
    pred, target = rng.standard_normal((50, 3)), rng.standard_normal((50, 3))
    assert M.mean_absolute_error(pred, target) == pytest.approx(sk.mean_absolute_error(target, pred))
    assert M.root_mean_squared_error(pred, target) == pytest.approx(
        np.sqrt(sk.mean_squared_error(target, pred))
    )
    one = pred[:, :1], target[:, :1]
    assert M.root_mean_squared_error(*one) == pytest.approx(sk.root_mean_squared_error(one[1], one[0]))


@pytest.mark.parametrize("name", ["top3", "macro_precision", "macro_recall", "macro_f1"])
def test_streaming_metrics_over_batches_equal_the_whole_array(name):
    """Counts, not a mean of batch means: uneven batches give the whole data's value."""
    scores, labels = scores_and_labels(4, n=103)
    metric = M.get(name)
    metric.reset()
    for lo, hi in [(0, 10), (10, 97), (97, 103)]:
        metric.update(scores[lo:hi], labels[lo:hi])
    if name == "top3":
        expected = sk.top_k_accuracy_score(labels, scores, k=3, labels=np.arange(6))
    else:
        which = name.removeprefix("macro_")
        expected = getattr(sk, f"{which}_score")(
            labels, scores.argmax(axis=1), average="macro", zero_division=0
        )
    assert metric.result() == pytest.approx(expected, abs=1e-12)


def test_streaming_mae_rmse_and_ignored_labels():
    rng = np.random.default_rng(5)
    pred, target = rng.standard_normal((30, 2)), rng.standard_normal((30, 2))
    for name, fn in (
        ("mae", sk.mean_absolute_error),
        ("rmse", lambda t, p: np.sqrt(sk.mean_squared_error(t, p))),
    ):
        m = M.get(name)
        m.update(pred[:7], target[:7])
        m.update(pred[7:], target[7:])
        assert m.result() == pytest.approx(fn(target, pred))
    # positions (N, C, T) with ignored labels: counted as the kept positions alone
    logits = rng.standard_normal((4, 3, 5))
    labels = rng.integers(0, 3, size=(4, 5))
    labels[:, 0] = -100
    (m,) = M.get_all(["macro_f1"], ignore_index=-100)
    m.update(logits, labels)
    kept = labels != -100
    expected = sk.f1_score(labels[kept], logits.argmax(axis=1)[kept], average="macro", zero_division=0)
    assert m.result() == pytest.approx(expected)


def test_binary_logits_are_read_as_classes_0_and_1():
    z = np.array([[2.0], [-1.0], [0.5], [-3.0]])
    y = np.array([[1.0], [1.0], [0.0], [0.0]])
    m = M.get("macro_recall")
    m.update(z, y)
    assert m.result() == pytest.approx(sk.recall_score([1, 1, 0, 0], [1, 0, 1, 0], average="macro"))


def test_unknown_or_repeated_metric_names_are_refused():
    with pytest.raises(ValueError, match="unknown metric 'f1'; known: topK"):
        M.get_all(["f1"])
    with pytest.raises(ValueError, match="'top5' is asked for twice"):
        M.get_all(["top5", "top_5_accuracy"])
    with pytest.raises(ValueError, match="k must be an integer >= 1"):
        M.get("top0")


# --- in fit and evaluate --------------------------------------------------------------------------


def classifier(seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((60, 4))
    y = (x[:, 0] > 0).astype(int) + 2 * (x[:, 1] > 0.5).astype(int)  # 4 classes
    model = gn.Sequential(gn.Linear(4, 4, rng=rng)).to(np.float64)
    return model, x, y


def test_fit_and_evaluate_log_metrics_equal_to_sklearn_on_predictions():
    model, x, y = classifier()
    opt = gn.optim.SGD(model.parameters(), lr=0.1)
    history = gn.fit(model, gn.CrossEntropyLoss(), opt, (x, y), epochs=2, batch_size=16, val_data=(x, y),
                     metrics=["top2", "macro_f1", "macro_precision"], verbose=False)  # fmt: skip
    for key in ("top2", "macro_f1", "macro_precision", "val_top2", "val_macro_f1", "val_macro_precision"):
        assert len(history.history[key]) == 2
    scores = gn.predict(model, x)
    out = gn.evaluate(model, gn.CrossEntropyLoss(), (x, y), batch_size=7, metrics=["top2", "macro_f1"])
    assert out["top2"] == pytest.approx(sk.top_k_accuracy_score(y, scores, k=2, labels=np.arange(4)))
    assert out["macro_f1"] == pytest.approx(
        sk.f1_score(y, scores.argmax(1), average="macro", zero_division=0)
    )
    assert history.history["val_macro_f1"][-1] == pytest.approx(out["macro_f1"])  # the same model, eval mode


def test_evaluate_regression_mae_rmse():
    rng = np.random.default_rng(1)
    x, t = rng.standard_normal((25, 3)), rng.standard_normal((25, 2))
    model = gn.Sequential(gn.Linear(3, 2, rng=rng))
    out = gn.evaluate(model, gn.MSELoss(), (x, t), batch_size=4, metrics=["mae", "rmse"])
    pred = gn.predict(model, x)
    assert out["mae"] == pytest.approx(sk.mean_absolute_error(t, pred))
    assert out["rmse"] == pytest.approx(np.sqrt(out["loss"]))  # MSELoss's mean is the MSE


def test_fit_sample_weight_one_batch_is_the_hand_weighted_mean_and_torch_step():
    """One batch of all examples: the logged loss is sum_n w_n l_n / N (Keras), and the step
    equals torch's on that weighted loss."""
    torch = pytest.importorskip("torch")
    model, x, y = classifier()
    w = np.random.default_rng(2).uniform(0, 2, len(y))
    w0 = model.layers[0].W.data.copy(), model.layers[0].b.data.copy()
    terms = gn.CrossEntropyLoss(reduction="none").forward(gn.predict(model, x), y)
    opt = gn.optim.SGD(model.parameters(), lr=0.5)
    history = gn.fit(model, gn.CrossEntropyLoss(), opt, (x, y), epochs=1, batch_size=len(y), sample_weight=w,
                     verbose=False, shuffle=False)  # fmt: skip
    assert history.history["loss"][0] == pytest.approx(float((w * terms).sum() / len(y)), rel=1e-12)

    lin = torch.nn.Linear(4, 4, dtype=torch.float64)
    with torch.no_grad():  # glassnet's Linear computes x W + b with W (in, out): torch's weight is W.T
        lin.weight.copy_(torch.from_numpy(w0[0].T.copy()))
        lin.bias.copy_(torch.from_numpy(w0[1]))
    per = torch.nn.functional.cross_entropy(lin(torch.from_numpy(x)), torch.from_numpy(y), reduction="none")
    (per * torch.from_numpy(w)).mean().backward()
    with torch.no_grad():
        expected_w = lin.weight - 0.5 * lin.weight.grad
    np.testing.assert_allclose(model.layers[0].W.data, expected_w.numpy().T, rtol=1e-10, atol=1e-12)


def test_class_weight_is_sample_weight_by_label_and_shuffles_with_the_data():
    model, x, y = classifier()
    cw = {0: 1.0, 1: 3.0, 2: 0.5, 3: 2.0}
    runs = []
    for kwargs in (dict(class_weight=cw), dict(sample_weight=np.array([cw[c] for c in y]))):
        m = gn.Sequential(gn.Linear(4, 4, rng=np.random.default_rng(9)))
        opt = gn.optim.SGD(m.parameters(), lr=0.1)
        gn.fit(m, gn.CrossEntropyLoss(), opt, (x, y), epochs=2, batch_size=8, rng=3, verbose=False, **kwargs)
        runs.append(m.layers[0].W.data.copy())
    np.testing.assert_array_equal(runs[0], runs[1])
    # the weights follow their examples through the shuffle: zero weight on class 1 alone
    # equals dropping those examples' gradients, which a misaligned weight would not
    m = gn.Sequential(gn.Linear(4, 4, rng=np.random.default_rng(9)))
    gn.fit(m, gn.CrossEntropyLoss(reduction="sum"), gn.optim.SGD(m.parameters(), lr=0.1), (x, y), epochs=1,
           batch_size=8, rng=3, verbose=False, class_weight={0: 1.0, 1: 0.0, 2: 1.0, 3: 1.0})  # fmt: skip
    kept = y != 1
    m2 = gn.Sequential(gn.Linear(4, 4, rng=np.random.default_rng(9)))
    opt2 = gn.optim.SGD(m2.parameters(), lr=0.1)
    order = np.random.default_rng(3).permutation(len(y))
    for lo in range(0, len(y), 8):
        idx = order[lo : lo + 8]
        idx = idx[kept[idx]]
        if len(idx):
            gn.train_step(m2, gn.CrossEntropyLoss(reduction="sum"), opt2, x[idx], y[idx])
        else:
            opt2.step()
    np.testing.assert_allclose(m.layers[0].W.data, m2.layers[0].W.data, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        (
            dict(sample_weight=np.ones(5)),
            ValueError,
            "sample_weight must hold one weight per training example",
        ),
        (dict(sample_weight=-np.ones(60)), ValueError, "sample_weight must hold finite numbers >= 0"),
        (dict(class_weight=[1.0, 2.0]), TypeError, "class_weight must be a dict"),
        (dict(class_weight={0: 1.0, 1: 1.0}), ValueError, "class_weight has no weight for class 2"),
        (
            dict(class_weight={0: 1, 1: 1, 2: 1, 3: -1}),
            ValueError,
            "class_weight\\[3\\] must be a finite number",
        ),
        (dict(metrics=["f1"]), ValueError, "unknown metric 'f1'"),
    ],
)
def test_fit_refuses_bad_weights_and_metrics_naming_them(kwargs, error, message):
    model, x, y = classifier()
    with pytest.raises(error, match=message):
        gn.fit(
            model, gn.CrossEntropyLoss(), gn.optim.SGD(model.parameters()), (x, y), verbose=False, **kwargs
        )


def test_fit_and_evaluate_refuse_reduction_none_by_name():
    model, x, y = classifier()
    loss = gn.CrossEntropyLoss(reduction="none")
    with pytest.raises(
        ValueError, match="fit: CrossEntropyLoss\\(reduction='none'\\) returns a loss per element"
    ):
        gn.fit(model, loss, gn.optim.SGD(model.parameters()), (x, y), verbose=False)
    with pytest.raises(ValueError, match="evaluate: CrossEntropyLoss\\(reduction='none'\\)"):
        gn.evaluate(model, loss, (x, y))
    with pytest.raises(ValueError, match="train_step: CrossEntropyLoss\\(reduction='none'\\)"):
        gn.train_step(model, loss, gn.optim.SGD(model.parameters()), x, y)


def test_fit_with_ignore_index_labels_trains_and_skips_them():
    model, x, y = classifier()
    y = y.copy()
    y[::4] = -100
    opt = gn.optim.SGD(model.parameters(), lr=0.1)
    history = gn.fit(model, gn.CrossEntropyLoss(), opt, (x, y), epochs=1, batch_size=60, verbose=False,
                     metrics=["macro_recall"], shuffle=False)  # fmt: skip
    assert np.isfinite(history.history["loss"][0])


def test_accuracy_and_metrics_leave_ignored_labels_out():
    model, x, y = classifier()
    y = y.copy()
    y[::3] = 0
    loss = gn.CrossEntropyLoss(ignore_index=0)  # class 0 ignored: a valid class, so it would count
    out = gn.evaluate(model, loss, (x, y), batch_size=9, metrics=["macro_recall"])
    predicted, kept = gn.predict(model, x).argmax(axis=1), y != 0
    assert out["accuracy"] == pytest.approx(np.mean(predicted[kept] == y[kept]))
    assert out["macro_recall"] == pytest.approx(
        sk.recall_score(y[kept], predicted[kept], average="macro", zero_division=0)
    )
    history = gn.fit(model, loss, gn.optim.SGD(model.parameters(), lr=0.0), (x, y), epochs=1, batch_size=60,
                     verbose=False, shuffle=False)  # fmt: skip
    assert history.history["accuracy"][0] == pytest.approx(out["accuracy"])  # lr 0: the same model


def test_the_pytorch_options_page_runs(capsys):
    """docs/pytorch-options.md's Python snippets, in order, as a reader would paste them."""
    import pathlib
    import re

    text = (pathlib.Path(__file__).parent.parent / "docs" / "pytorch-options.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, re.S)
    assert len(blocks) >= 8
    namespace: dict = {}
    exec(compile("\n".join(blocks), "docs/pytorch-options.md", "exec"), namespace)  # noqa: S102
    assert "macro avg" in capsys.readouterr().out


def test_sample_weight_with_detect_anomaly_trains_the_same_weights():
    """detect_anomaly's checked step runs the weighted loss too: the same run, bit for bit."""
    _, x, y = classifier()
    w = np.random.default_rng(4).uniform(0, 2, len(y))
    runs = []
    for anomaly in (False, True):
        m = gn.Sequential(gn.Linear(4, 4, rng=np.random.default_rng(9))).to(np.float64)
        opt = gn.optim.Adam(m.parameters(), lr=0.01)
        gn.fit(m, gn.CrossEntropyLoss(), opt, (x, y), epochs=2, batch_size=8, rng=1, verbose=False,
               sample_weight=w, detect_anomaly=anomaly)  # fmt: skip
        runs.append(m.layers[0].W.data.copy())
    np.testing.assert_array_equal(runs[0], runs[1])
    m = gn.Sequential(gn.Linear(4, 4, rng=np.random.default_rng(9))).to(np.float64)
    gn.fit(m, gn.CrossEntropyLoss(), gn.optim.Adam(m.parameters(), lr=0.01), (x, y), epochs=2, batch_size=8,
           rng=1, verbose=False)  # fmt: skip
    assert not np.array_equal(m.layers[0].W.data, runs[0])  # the weights did change the run


def test_confusion_collects_evaluates_own_pass_and_reports_as_sklearn():
    """``Confusion`` reads the matrix off evaluate's forward pass (batch by batch), the same
    counts as scikit-learn's on the predictions; report_from_counts is classification_report."""
    model, x, y = classifier()
    calls = []
    forward = model.forward
    model.forward = lambda *a: calls.append(1) or forward(*a)
    confusion = M.Confusion()
    out = gn.evaluate(model, gn.CrossEntropyLoss(), (x, y), batch_size=7, metrics=[confusion])
    assert len(calls) == 1 + -(-len(x) // 7)  # the shape probe, then one pass over the data
    model.forward = forward
    predicted = gn.predict(model, x).argmax(1)
    np.testing.assert_array_equal(confusion.counts, sk.confusion_matrix(y, predicted, labels=np.arange(4)))
    assert out["confusion"] == pytest.approx(out["accuracy"])
    assert M.report_from_counts(confusion.counts) == M.classification_report(y, predicted, 4)


def test_confusion_matrix_refuses_what_is_not_a_class():
    """Negative or too large classes, or float predictions, are named, never wrapped around or
    counted in another cell."""
    with pytest.raises(ValueError, match="label -1 out of range for 3 classes"):
        M.confusion_matrix([0, -1, 2], [0, 1, 2], 3)
    with pytest.raises(ValueError, match="prediction 3 out of range for 3 classes"):
        M.confusion_matrix([0, 1, 2], [0, 3, 2], 3)
    with pytest.raises(ValueError, match="predictions must be integer classes, got dtype float64"):
        M.confusion_matrix([0, 1], [0.0, 1.0])
    with pytest.raises(ValueError, match="2 labels but 3 predictions"):
        M.confusion_matrix([0, 1], [0, 1, 1])
    assert M.confusion_matrix([], [], 2).tolist() == [[0, 0], [0, 0]]
