"""The training loop: ``train_step``, ``fit``, ``evaluate`` and ``predict`` on tiny synthetic data.

Covers learning, bit-for-bit reproducibility from one seed, dtypes, modes, data validation,
non-finite losses, regularizers, schedules, gradient clipping and the per-epoch progress line.
"""

from __future__ import annotations

import re

import numpy as np
import pytest

import glassnet as gn
from glassnet.callbacks import Callback


def blobs(n: int = 600, seed: int = 0, spread: float = 0.7):
    """Three well-separated Gaussian blobs in 2-D, float32 x, int64 labels."""
    rng = np.random.default_rng(seed)
    centers = np.array([[0.0, 3.0], [3.0, -2.0], [-3.0, -2.0]])
    y = rng.integers(0, 3, size=n)
    x = centers[y] + spread * rng.standard_normal((n, 2))
    return x.astype(np.float32), y


DATA = blobs()
VAL = blobs(150, seed=1)


def make_model(seed: int = 1, dropout: float = 0.2, dtype=np.float32) -> gn.Sequential:
    rng = np.random.default_rng(seed)
    return gn.Sequential(
        gn.Linear(2, 16, rng=rng, dtype=dtype),
        gn.ReLU(),
        gn.Dropout(dropout),  # no rng: fit must give it one
        gn.Linear(16, 3, rng=rng, dtype=dtype),
    )


def weights(model) -> dict[str, np.ndarray]:
    return {k: v.copy() for k, v in model.state_dict().items()}


def run(seed=0, epochs=3, **kwargs):
    model = make_model()
    opt = gn.optim.Adam(model.parameters(), lr=0.02)
    kwargs.setdefault("val_data", VAL)
    history = gn.fit(
        model,
        gn.CrossEntropyLoss(),
        opt,
        DATA,
        epochs=epochs,
        batch_size=32,
        rng=np.random.default_rng(seed),
        verbose=False,
        **kwargs,
    )
    return model, history


# --- learning, reproducibility --------------------------------------------------------------
def test_fit_learns_separable_blobs():
    model, history = run(epochs=5)
    assert history.history["accuracy"][-1] > 0.95
    assert history.history["val_accuracy"][-1] > 0.95
    assert history.history["loss"][-1] < history.history["loss"][0]
    scores = gn.evaluate(model, gn.CrossEntropyLoss(), VAL)
    assert scores["accuracy"] > 0.95


def test_fit_is_reproducible_bit_for_bit_with_dropout():
    m1, h1 = run(seed=0)
    m2, h2 = run(seed=0)
    assert h1.to_dict() == h2.to_dict()
    w1, w2 = weights(m1), weights(m2)
    assert w1.keys() == w2.keys()
    for k in w1:
        np.testing.assert_array_equal(w1[k], w2[k], err_msg=k)


@pytest.mark.parametrize(
    "wrap", [tuple, list, lambda xy: gn.data.Dataset(*xy)], ids=["tuple", "list", "Dataset"]
)
def test_fit_accepts_pairs(wrap):
    m1, h1 = run(val_data=wrap(VAL))
    model = make_model()
    h2 = gn.fit(
        model,
        gn.CrossEntropyLoss(),
        gn.optim.Adam(model.parameters(), lr=0.02),
        wrap(DATA),
        epochs=3,
        batch_size=32,
        val_data=VAL,
        rng=np.random.default_rng(0),
        verbose=False,
    )
    assert h1.to_dict() == h2.to_dict()


def test_different_seeds_differ():
    m1, h1 = run(seed=0)
    m2, h2 = run(seed=1)
    assert h1.history["loss"] != h2.history["loss"]
    assert not np.array_equal(m1[0].W.data, m2[0].W.data)


def test_different_seeds_differ_without_shuffling():
    """With shuffle=False only the dropout masks depend on the seed, and they must."""
    m1, _ = run(seed=0, shuffle=False)
    m2, _ = run(seed=1, shuffle=False)
    assert not np.array_equal(m1[0].W.data, m2[0].W.data)
    m3, _ = run(seed=0, shuffle=False)
    np.testing.assert_array_equal(m1[0].W.data, m3[0].W.data)


def test_history_keys_and_lengths():
    _, history = run(epochs=3)
    assert set(history.history) == {"loss", "accuracy", "val_loss", "val_accuracy"}
    assert history.epoch == [0, 1, 2]
    assert all(len(v) == 3 for v in history.history.values())
    assert all(isinstance(v, float) for vs in history.history.values() for v in vs)
    _, history = run(epochs=2, val_data=None)
    assert set(history.history) == {"loss", "accuracy"}


def test_regression_has_no_accuracy():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 3)).astype(np.float32)
    y = (x @ np.array([[1.0], [-2.0], [0.5]])).astype(np.float32)
    model = gn.Sequential(gn.Linear(3, 1, rng=rng))
    opt = gn.optim.SGD(model.parameters(), lr=0.1)
    history = gn.fit(model, gn.MSELoss(), opt, (x, y), epochs=3, val_data=(x, y), verbose=False)
    assert set(history.history) == {"loss", "val_loss"}
    assert history.history["loss"][-1] < history.history["loss"][0]
    assert set(gn.evaluate(model, gn.MSELoss(), (x, y))) == {"loss"}


def test_zero_epochs():
    model = make_model()
    before = weights(model)
    history = gn.fit(
        model, gn.CrossEntropyLoss(), gn.optim.SGD(model.parameters()), DATA, epochs=0, verbose=False
    )
    assert history.history == {} and history.epoch == []
    for k, v in weights(model).items():
        np.testing.assert_array_equal(v, before[k])


# --- evaluate, predict, modes ---------------------------------------------------------------
def test_evaluate_returns_loss_and_accuracy():
    model = make_model()
    x, y = VAL
    scores = gn.evaluate(model, gn.CrossEntropyLoss(), VAL, batch_size=64)
    assert set(scores) == {"loss", "accuracy"}
    logits = gn.predict(model, x)
    assert scores["loss"] == pytest.approx(gn.CrossEntropyLoss().forward(logits, y), rel=1e-5)
    assert scores["accuracy"] == pytest.approx(float(np.mean(logits.argmax(1) == y)))


@pytest.mark.parametrize(
    "loss", [dict(ignore_index=-100), dict(weight=[1.0, 5.0, 0.2]), dict(label_smoothing=0.1)]
)
def test_evaluates_loss_is_the_mean_over_all_the_data_whatever_the_batch_size(loss):
    """With class weights or ignored targets a batch's mean divides by its own share of the
    divisor: batch means times their rows weighed the batches wrongly, and a batch of ignored
    targets alone made the whole loss NaN. The reference: PyTorch's mean over all the data."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((12, 4)), rng.integers(0, 3, 12)
    y[:4] = -100 if "ignore_index" in loss else y[:4]
    model = gn.Sequential(gn.Linear(4, 3, rng=rng, dtype=np.float64))
    weight = None if "weight" not in loss else torch.tensor(loss["weight"], dtype=torch.float64)
    theirs = torch.nn.functional.cross_entropy(
        torch.tensor(model.forward(x)), torch.tensor(y), weight=weight, ignore_index=-100,
        label_smoothing=loss.get("label_smoothing", 0.0),
    ).item()  # fmt: skip
    for batch_size in (12, 5, 4, 3, 1):
        ours = gn.evaluate(model, gn.CrossEntropyLoss(**loss), (x, y), batch_size=batch_size)["loss"]
        assert ours == pytest.approx(theirs, rel=1e-12), batch_size


def test_evaluate_restores_modes():
    model = make_model()
    loss_fn = gn.CrossEntropyLoss()
    model.train()
    first = gn.evaluate(model, loss_fn, VAL)
    assert all(m.training for m in model.modules())
    # dropout is off in evaluate: the same numbers every time
    assert gn.evaluate(model, loss_fn, VAL) == first
    model.eval()
    gn.evaluate(model, loss_fn, VAL)
    assert not any(m.training for m in model.modules())
    model.train()
    model[2].eval()  # a mixed state comes back as it was
    gn.evaluate(model, loss_fn, VAL)
    assert [m.training for m in model.modules()] == [True, True, True, False, True]


def test_predict_shape_dtype_and_eval_mode():
    model = make_model(dropout=0.5).train()
    x = VAL[0].astype(np.float64)
    p1 = gn.predict(model, x, batch_size=7)
    p2 = gn.predict(model, x)
    assert p1.shape == (len(x), 3)
    assert p1.dtype == np.float32
    np.testing.assert_allclose(p1, p2, rtol=1e-6)  # dropout off; batching does not matter
    np.testing.assert_array_equal(p2, gn.predict(model, x))
    assert all(m.training for m in model.modules())
    model.eval()
    np.testing.assert_array_equal(p2, model.forward(x.astype(np.float32)))


# --- dtypes ----------------------------------------------------------------------------------
class Recorder(Callback):
    """Remembers the dtype of the first layer's input and of the loss gradient per batch."""

    def __init__(self) -> None:
        self.dtypes = set()

    def on_batch_end(self, batch, logs):
        self.dtypes.add(self.model[0].x.dtype)


def test_float64_model_stays_float64():
    model = make_model().to(np.float64)
    opt = gn.optim.Adam(model.parameters(), lr=0.01)
    rec = Recorder()
    gn.fit(
        model,
        gn.CrossEntropyLoss(),
        opt,
        DATA,
        epochs=2,
        val_data=VAL,
        callbacks=[rec],
        rng=np.random.default_rng(0),
        verbose=False,
        regularizer=gn.L2(1e-3),
        clip_norm=1.0,
    )
    assert rec.dtypes == {np.dtype(np.float64)}
    for p in model.parameters():
        assert p.data.dtype == np.float64 and p.grad.dtype == np.float64
    assert gn.predict(model, VAL[0]).dtype == np.float64


def test_float64_input_to_float32_model_trains_in_float32():
    model = make_model()
    opt = gn.optim.Adam(model.parameters(), lr=0.01)
    rec = Recorder()
    x, y = DATA
    gn.fit(
        model,
        gn.CrossEntropyLoss(),
        opt,
        (x.astype(np.float64), y),
        epochs=2,
        val_data=(VAL[0].astype(np.float64), VAL[1]),
        callbacks=[rec],
        rng=np.random.default_rng(0),
        verbose=False,
        regularizer=gn.L1(1e-4),
        clip_norm=1.0,
        scheduler=gn.schedules.CosineAnnealingLR(opt, T_max=2),
    )
    assert rec.dtypes == {np.dtype(np.float32)}
    for p in model.parameters():
        assert p.data.dtype == np.float32 and p.grad.dtype == np.float32
    for name, a in opt.state_dict().items():
        if name not in ("t", "lr"):
            assert a.dtype == np.float32, name


def test_float64_regression_targets_become_float32():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((32, 3))
    y = rng.standard_normal((32, 2))  # float64 targets must not promote the loss gradient
    model = gn.Sequential(gn.Linear(3, 2, rng=rng))
    gn.fit(model, gn.MSELoss(), gn.optim.SGD(model.parameters(), lr=0.01), (x, y), epochs=1, verbose=False)
    assert model[0].W.data.dtype == np.float32


# --- non-finite losses -----------------------------------------------------------------------
@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # the overflow itself warns first
def test_diverging_loss_raises_naming_epoch_and_batch():
    model = make_model(dropout=0.0)
    opt = gn.optim.SGD(model.parameters(), lr=1e6)
    with pytest.raises(FloatingPointError, match=r"epoch 1, batch \d+") as e:
        gn.fit(model, gn.MSELoss(), opt, DATA, epochs=3, verbose=False, rng=np.random.default_rng(0))
    assert re.search(r"\b(nan|inf)\b", str(e.value))


class Poison(Callback):
    """Writes ``value`` into the first weight after batch ``batch`` of epoch ``epoch`` (0-based)."""

    def __init__(self, epoch: int, batch: int, value: float) -> None:
        self.at, self.value, self.epoch = (epoch, batch), value, None

    def on_epoch_begin(self, epoch):
        self.epoch = epoch

    def on_batch_end(self, batch, logs):
        if (self.epoch, batch) == self.at:
            self.model[0].W.data[0, 0] = self.value


@pytest.mark.parametrize(
    "value,epochs,at,pattern",
    [
        (np.nan, 3, (1, 2), r"nan at epoch 2, batch 4\b"),
        # inf - inf in the update warns before the loss is seen
        pytest.param(
            np.inf,
            2,
            (0, 1),
            r"epoch 1, batch 3\b",
            marks=pytest.mark.filterwarnings("ignore::RuntimeWarning"),
        ),
    ],
    ids=["nan", "inf"],
)
def test_non_finite_parameter_raises_naming_epoch_and_batch(value, epochs, at, pattern):
    model = make_model()
    opt = gn.optim.SGD(model.parameters(), lr=0.01)
    with pytest.raises(FloatingPointError, match=pattern):
        gn.fit(
            model,
            gn.CrossEntropyLoss(),
            opt,
            DATA,
            epochs=epochs,
            batch_size=32,
            callbacks=[Poison(*at, value)],
            verbose=False,
            rng=np.random.default_rng(0),
        )


# --- bad data --------------------------------------------------------------------------------
def fit_with(train=DATA, val=None, **kwargs):
    model = make_model()
    return gn.fit(
        model,
        gn.CrossEntropyLoss(),
        gn.optim.SGD(model.parameters(), lr=0.1),
        train,
        epochs=2,
        val_data=val,
        verbose=False,
        rng=np.random.default_rng(0),
        **kwargs,
    )


def with_nan(x):
    x = x.copy()
    x[5, 1] = np.nan
    return x


def out_of_range(y):
    y = y.copy()
    y[-1] = 7
    return y


BAD_DATA = {
    "nan in x": (dict(train=(with_nan(DATA[0]), DATA[1])), "train_data"),
    "nan in val x": (dict(val=(with_nan(VAL[0]), VAL[1])), "val_data"),
    "inf in float y": (dict(train=(DATA[0], np.full((600, 3), np.inf))), "train_data"),
    "length mismatch": (dict(train=(DATA[0], DATA[1][:-1])), "train_data"),
    "val length mismatch": (dict(val=(VAL[0][:-2], VAL[1])), "val_data"),
    "labels out of range": (dict(train=(DATA[0], out_of_range(DATA[1]))), "train_data"),
    "negative label": (dict(train=(DATA[0], np.where(DATA[1] == 0, -1, DATA[1]))), "train_data"),
    "val labels out of range": (dict(val=(VAL[0], out_of_range(VAL[1]))), "val_data"),
    "val_data an array": (dict(val=VAL[0]), "val_data"),
    "val_data a 1-tuple": (dict(val=(VAL[0],)), "val_data"),
    "val_data a string": (dict(val="val.npz"), "val_data"),
    "val_data a dict": (dict(val={"x": VAL[0], "y": VAL[1]}), "val_data"),
    "train_data an array": (dict(train=DATA[0]), "train_data"),
    "string x": (dict(train=(np.array([["a", "b"]] * 600), DATA[1])), "train_data"),
    "empty x": (dict(train=(np.zeros((0, 2)), np.zeros(0, int))), "train_data"),
}


@pytest.mark.parametrize("case", list(BAD_DATA))
def test_bad_data_raises_value_error_naming_the_argument(case):
    kwargs, name = BAD_DATA[case]
    with pytest.raises(ValueError, match=rf"\b{name}\b"):
        fit_with(**kwargs)


@pytest.mark.parametrize("kwargs", [dict(epochs=-1), dict(batch_size=0)])
def test_bad_epochs_or_batch_size(kwargs):
    model = make_model()
    with pytest.raises(ValueError, match="^fit: "):
        gn.fit(
            model,
            gn.CrossEntropyLoss(),
            gn.optim.SGD(model.parameters()),
            DATA,
            verbose=False,
            **{"epochs": 1, **kwargs},
        )


# --- train_step and fit options --------------------------------------------------------------
def test_train_step_returns_the_loss_before_the_update():
    model = make_model(dropout=0.0)
    x, y = DATA[0][:50], DATA[1][:50]
    loss_fn = gn.CrossEntropyLoss()
    expected = loss_fn.forward(model.forward(x), y)
    before = model[0].W.data.copy()
    loss = gn.train_step(model, loss_fn, gn.optim.SGD(model.parameters(), lr=0.1), x, y)
    assert isinstance(loss, float)
    assert loss == expected
    assert not np.array_equal(before, model[0].W.data)


def test_train_step_includes_the_penalty():
    model = make_model(dropout=0.0)
    x, y = DATA[0][:50], DATA[1][:50]
    loss_fn = gn.CrossEntropyLoss()
    reg = gn.L2(0.1)
    expected = loss_fn.forward(model.forward(x), y) + reg.penalty(model.parameters())
    loss = gn.train_step(model, loss_fn, gn.optim.SGD(model.parameters(), lr=0.1), x, y, regularizer=reg)
    assert loss == pytest.approx(expected, rel=1e-12)


def test_fit_batch_larger_than_dataset():
    model = make_model(dropout=0.0)
    loss_fn = gn.CrossEntropyLoss()
    first = loss_fn.forward(model.forward(DATA[0]), DATA[1])
    history = gn.fit(
        model,
        loss_fn,
        gn.optim.SGD(model.parameters(), lr=0.1),
        DATA,
        epochs=2,
        batch_size=10_000,
        shuffle=False,
        verbose=False,
    )
    # one batch per epoch: the epoch loss is that batch's loss, before its update
    assert history.history["loss"][0] == pytest.approx(first, rel=1e-6)
    assert history.history["loss"][1] < first


def test_fit_epoch_loss_is_the_example_weighted_mean():
    """600 examples in batches of 256: the epoch loss weights the short last batch by its size."""
    model = make_model(dropout=0.0)
    loss_fn = gn.CrossEntropyLoss()
    x, y = DATA
    expected = (
        sum(
            loss_fn.forward(model.forward(x[sl]), y[sl]) * (sl.stop - sl.start)
            for sl in gn.data.batch_slices(600, 256)
        )
        / 600
    )
    history = gn.fit(
        model,
        loss_fn,
        gn.optim.SGD(model.parameters(), lr=0.0),
        DATA,
        epochs=1,
        batch_size=256,
        shuffle=False,
        verbose=False,
    )
    assert history.history["loss"][0] == pytest.approx(expected, rel=1e-6)


def test_fit_includes_the_regularizer_in_the_loss():
    """With lr = 0 nothing moves, so the loss with L2 is the loss without it plus the penalty."""

    def epoch_loss(reg):
        model = make_model(dropout=0.0)
        penalty = reg.penalty(model.parameters()) if reg is not None else 0.0
        history = gn.fit(
            model,
            gn.CrossEntropyLoss(),
            gn.optim.SGD(model.parameters(), lr=0.0),
            DATA,
            epochs=2,
            batch_size=64,
            regularizer=reg,
            verbose=False,
            rng=np.random.default_rng(0),
        )
        return history.history["loss"], penalty

    plain, _ = epoch_loss(None)
    regularized, penalty = epoch_loss(gn.L2(0.5))
    assert penalty > 0.1
    assert regularized == pytest.approx([v + penalty for v in plain], rel=1e-6)


def test_fit_applies_the_regularizer_gradient():
    model_a, model_b = make_model(dropout=0.0), make_model(dropout=0.0)
    for model, reg in ((model_a, None), (model_b, gn.L2(1.0))):
        gn.fit(
            model,
            gn.CrossEntropyLoss(),
            gn.optim.SGD(model.parameters(), lr=0.1),
            DATA,
            epochs=1,
            batch_size=600,
            regularizer=reg,
            shuffle=False,
            verbose=False,
        )
    # one SGD step: the difference is exactly lr * lam * W on weights, nothing on biases
    w0 = make_model(dropout=0.0)[0].W.data
    np.testing.assert_allclose(model_a[0].W.data - model_b[0].W.data, 0.1 * w0, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(model_a[0].b.data, model_b[0].b.data, rtol=1e-6)


def test_scheduler_steps_once_per_epoch_and_lr_is_logged():
    model = make_model()
    opt = gn.optim.SGD(model.parameters(), lr=0.1)
    sched = gn.schedules.StepLR(opt, step_size=1, gamma=0.5)
    history = gn.fit(
        model,
        gn.CrossEntropyLoss(),
        opt,
        DATA,
        epochs=3,
        scheduler=sched,
        verbose=False,
        rng=np.random.default_rng(0),
    )
    assert history.history["lr"] == pytest.approx([0.1, 0.05, 0.025])
    assert opt.lr == pytest.approx(0.0125)
    assert sched.epoch == 3


def grads_of(model, x, y):
    model.zero_grad()
    loss_fn = gn.CrossEntropyLoss()
    loss_fn.forward(model.forward(x), y)
    model.backward(loss_fn.backward())
    return [p.grad.copy() for p in model.parameters()]


def test_train_step_clips_the_gradient_norm():
    model = make_model(dropout=0.0).to(np.float64)
    x, y = DATA[0][:64].astype(np.float64), DATA[1][:64]
    g = grads_of(model, x, y)
    norm = np.sqrt(sum(float((gi**2).sum()) for gi in g))
    max_norm = norm / 10
    before = [p.data.copy() for p in model.parameters()]
    gn.train_step(
        model, gn.CrossEntropyLoss(), gn.optim.SGD(model.parameters(), lr=1.0), x, y, clip_norm=max_norm
    )
    scale = max_norm / (norm + 1e-6)
    for b, gi, p in zip(before, g, model.parameters()):
        np.testing.assert_allclose(b - p.data, scale * gi, rtol=1e-9, atol=1e-15)


def test_fit_applies_clip_norm():
    model = make_model(dropout=0.0).to(np.float64)
    x, y = DATA[0].astype(np.float64), DATA[1]
    norm = np.sqrt(sum(float((gi**2).sum()) for gi in grads_of(model, x, y)))
    before = [p.data.copy() for p in model.parameters()]
    gn.fit(
        model,
        gn.CrossEntropyLoss(),
        gn.optim.SGD(model.parameters(), lr=1.0),
        (x, y),
        epochs=1,
        batch_size=600,
        shuffle=False,
        clip_norm=norm / 4,
        verbose=False,
    )
    step = np.sqrt(sum(float(((b - p.data) ** 2).sum()) for b, p in zip(before, model.parameters())))
    assert step == pytest.approx(norm / 4, rel=1e-6)


# --- verbose output --------------------------------------------------------------------------
def test_verbose_prints_one_line_per_epoch_to_stderr(capsys):
    model = make_model()
    gn.fit(
        model,
        gn.CrossEntropyLoss(),
        gn.optim.Adam(model.parameters(), lr=0.01),
        DATA,
        epochs=3,
        val_data=VAL,
        verbose=True,
        rng=np.random.default_rng(0),
    )
    out, err = capsys.readouterr()
    assert out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 3
    for i, line in enumerate(lines, start=1):
        assert line.startswith(f"epoch {i}/3 ")
        for key in ("loss=", "accuracy=", "val_loss=", "val_accuracy=", "time="):
            assert key in line


def test_not_verbose_prints_nothing(capsys):
    run(epochs=2)
    assert capsys.readouterr() == ("", "")


# --- shuffling -----------------------------------------------------------------------------------


class OrderRecorder(gn.Module):
    """The identity, recording the first feature of every training batch it sees: the order."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[np.ndarray] = []

    def forward(self, x):
        if self.training:
            self.seen.append(x[:, 0].copy())
        return x

    def backward(self, dy):
        return dy


@pytest.mark.parametrize("shuffle", [True, False])
def test_each_epoch_sees_every_example_once_in_a_new_order_only_when_shuffling(shuffle):
    n, batch = 40, 8
    x = np.stack([np.arange(n), np.zeros(n)], axis=1).astype(np.float32)  # feature 0 = index
    recorder = OrderRecorder()
    model = gn.Sequential(recorder, gn.Linear(2, 3, rng=np.random.default_rng(0)))
    opt = gn.optim.SGD(model.parameters(), lr=0.0)
    gn.fit(model, gn.CrossEntropyLoss(), opt, (x, np.zeros(n, np.int64)), epochs=3, batch_size=batch,
           shuffle=shuffle, rng=np.random.default_rng(1), verbose=False)  # fmt: skip
    per_epoch = len(recorder.seen) // 3
    epochs = [np.concatenate(recorder.seen[i * per_epoch : (i + 1) * per_epoch]) for i in range(3)]
    for order in epochs:
        np.testing.assert_array_equal(np.sort(order), np.arange(n))  # each example once
    if shuffle:
        assert not np.array_equal(epochs[0], np.arange(n))
        assert not np.array_equal(epochs[0], epochs[1]) and not np.array_equal(epochs[1], epochs[2])
    else:
        for order in epochs:
            np.testing.assert_array_equal(order, np.arange(n))


# --- the optimizer must hold the model's parameters ---------------------------------------------


def test_fit_refuses_an_optimizer_over_another_models_parameters():
    model, other = make_model(1), make_model(2)
    opt = gn.optim.SGD(other.parameters(), lr=0.1)
    with pytest.raises(ValueError, match=r"^fit: optimizer holds 4 of its 4 parameters that are not"):
        gn.fit(model, gn.CrossEntropyLoss(), opt, DATA, verbose=False)
    with pytest.raises(ValueError, match=r"^train_step: optimizer holds"):
        gn.train_step(model, gn.CrossEntropyLoss(), opt, DATA[0][:8], DATA[1][:8])
    # a mix of the two is refused too
    mixed = gn.optim.SGD(model.parameters()[:2] + other.parameters()[2:], lr=0.1)
    with pytest.raises(ValueError, match=r"^fit: optimizer holds 2 of its 4"):
        gn.fit(model, gn.CrossEntropyLoss(), mixed, DATA, verbose=False)


def test_fit_with_a_subset_of_the_parameters_trains_only_those():
    model = make_model(1)
    first, last = model[0], model[3]
    before = [p.data.copy() for p in first.params]
    last_before = [p.data.copy() for p in last.params]
    opt = gn.optim.SGD(last.parameters(), lr=0.1)  # fine-tune the last layer only
    gn.fit(model, gn.CrossEntropyLoss(), opt, DATA, rng=np.random.default_rng(0), verbose=False)
    for p, b in zip(first.params, before):
        np.testing.assert_array_equal(p.data, b)
    assert all(not np.array_equal(p.data, b) for p, b in zip(last.params, last_before))


# --- rng: a Generator, an integer seed or None; anything else names rng ---------------------------


def test_fit_accepts_an_integer_seed_as_default_rng_does():
    histories = []
    for rng in (5, np.random.default_rng(5)):
        model = make_model(1)
        opt = gn.optim.SGD(model.parameters(), lr=0.1)
        histories.append(gn.fit(model, gn.CrossEntropyLoss(), opt, DATA, epochs=2, rng=rng, verbose=False))
    assert histories[0].history == histories[1].history


RNG_TAKERS = {
    "fit": lambda rng: gn.fit(
        (m := make_model()), gn.CrossEntropyLoss(), gn.optim.SGD(m.parameters()), DATA, rng=rng
    ),
    "set_rng": lambda rng: make_model().set_rng(rng),
    "lr_find": lambda rng: gn.lr_find.lr_find(
        (m := make_model()), gn.CrossEntropyLoss(), gn.optim.SGD(m.parameters()), DATA, steps=10, rng=rng
    ),
    "shuffled": lambda rng: gn.data.shuffled(gn.data.as_dataset(DATA, "data", np.float32), rng),
    "train_val_split": lambda rng: gn.data.train_val_split(
        gn.data.as_dataset(DATA, "data", np.float32), 0.2, rng
    ),
    **{
        name: lambda rng, name=name: getattr(gn.layers, name)(**{"rng": rng, **REQUIRED.get(name, {})})
        for name in gn.layers.__all__
        if "rng" in __import__("inspect").signature(getattr(gn.layers, name)).parameters
    },
}
REQUIRED = {
    "Linear": {"in_features": 2, "out_features": 3},
    "Conv1d": {"in_channels": 2, "out_channels": 3, "kernel_size": 3},
    "Conv2d": {"in_channels": 2, "out_channels": 3, "kernel_size": 3},
    **dict.fromkeys(["RNN", "GRU", "LSTM"], {"input_size": 2, "hidden_size": 3}),
    "Embedding": {"num_embeddings": 5, "embedding_dim": 2},
    "PositionalEmbedding": {"num_positions": 5, "embedding_dim": 2},
    "MultiheadAttention": {"embed_dim": 4, "num_heads": 2},
    "TransformerEncoderLayer": {"d_model": 4, "nhead": 2},
}


@pytest.mark.parametrize(
    "bad",
    ["3", 3.0, [3], True, np.random.RandomState(0)],
    ids=["str", "float", "list", "bool", "RandomState"],
)
@pytest.mark.parametrize("taker", list(RNG_TAKERS))
def test_a_bad_rng_raises_type_error_naming_rng(taker, bad):
    with pytest.raises(TypeError, match=r"^\S+: rng must be a numpy.random.Generator"):
        RNG_TAKERS[taker](bad)


def test_every_layer_taking_rng_is_covered():
    takers = {"Linear", "Conv2d", "Conv1d", "RNN", "GRU", "LSTM", "Dropout", "GaussianDropout", "Embedding"}
    takers |= {"PositionalEmbedding", "MultiheadAttention", "TransformerEncoderLayer"}
    assert takers <= set(RNG_TAKERS)


# --- a model with NaN/inf weights says so --------------------------------------------------------


@pytest.mark.parametrize("value", [np.nan, np.inf])
def test_predict_and_evaluate_refuse_a_model_with_non_finite_weights(value):
    model = make_model(1)
    model[3].W.data[1, 2] = value
    for call in (lambda: gn.predict(model, DATA[0]), lambda: gn.evaluate(model, gn.CrossEntropyLoss(), DATA)):
        # inf * 0 is NaN: NumPy's warning is not what the test is about
        with (
            np.errstate(invalid="ignore"),
            pytest.raises(FloatingPointError, match=r"NaN/inf: parameter 3\.W"),
        ):
            call()
    with pytest.raises(FloatingPointError, match=r"^predict: .* parameter 3\.W \(Linear\) holds 1 NaN/inf"):
        with np.errstate(invalid="ignore"):
            gn.predict(model, DATA[0])


def test_predict_says_when_the_forward_overflows_with_finite_weights():
    model = gn.Sequential(gn.Linear(2, 2, rng=np.random.default_rng(0)))
    model[0].W.data[...] = 3e38  # float32: x @ W overflows to inf
    with pytest.raises(FloatingPointError, match="every parameter is finite: the forward pass overflowed"):
        with np.errstate(over="ignore"):
            gn.predict(model, np.ones((3, 2), np.float32))


# --- returned metrics are plain floats -----------------------------------------------------------


def test_evaluate_and_history_hold_plain_floats():
    model = make_model(1)
    opt = gn.optim.SGD(model.parameters(), lr=0.1)
    history = gn.fit(model, gn.CrossEntropyLoss(), opt, DATA, val_data=VAL, epochs=1, verbose=False)
    for key, values in history.history.items():
        assert all(type(v) is float for v in values), key
    for loss_fn, data in ((gn.CrossEntropyLoss(), VAL), (gn.HingeLoss(), VAL)):
        result = gn.evaluate(model, loss_fn, data)
        assert set(result) == {"loss", "accuracy"}
        assert all(type(v) is float for v in result.values()), result


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (dict(shuffle="batch"), "fit: shuffle must be True or False, got 'batch'"),
        (dict(detect_anomaly="yes"), "fit: detect_anomaly must be True or False"),
        (dict(regularizer=1e-4), "fit: regularizer must be a penalty .* got float"),
        (dict(augment=True), "fit: augment must be a callable .* got bool"),
        (dict(scheduler="cosine"), "fit: scheduler must be a glassnet.schedules schedule or None, got str"),
        (dict(callbacks=gn.callbacks.EarlyStopping()), "fit: callbacks must be a list of glassnet Callbacks"),
    ],
)
def test_fit_refuses_options_of_the_wrong_kind_before_training(options, message):
    """Each of these was accepted silently (shuffle="batch" read as True) or failed mid-epoch."""
    rng = np.random.default_rng(0)
    model = gn.Sequential(gn.Linear(3, 2, rng=rng))
    opt = gn.optim.SGD(model.parameters(), lr=0.1)
    before = model.parameters()[0].data.copy()
    with pytest.raises(TypeError, match=message):
        gn.fit(model, gn.CrossEntropyLoss(), opt, (rng.standard_normal((8, 3)), rng.integers(0, 2, 8)),
               verbose=False, **options)  # fmt: skip
    np.testing.assert_array_equal(model.parameters()[0].data, before)


@pytest.mark.parametrize("over", ["another optimizer", "the optimizer itself"])
def test_fit_refuses_a_scheduler_that_does_not_drive_its_optimizer(over):
    """A schedule over another optimizer set that one's lr while fit's stayed (and was logged);
    the optimizer itself given as the scheduler took an extra step at every epoch's end."""
    rng = np.random.default_rng(0)
    model = gn.Sequential(gn.Linear(3, 2, rng=rng))
    opt = gn.optim.SGD(model.parameters(), lr=0.1)
    other = gn.optim.SGD(gn.Sequential(gn.Linear(3, 2)).parameters(), lr=0.1)
    scheduler = gn.schedules.StepLR(other, step_size=1) if over == "another optimizer" else opt
    data = (rng.standard_normal((8, 3)), rng.integers(0, 2, 8))
    with pytest.raises((ValueError, TypeError), match="fit: scheduler"):
        gn.fit(model, gn.CrossEntropyLoss(), opt, data, verbose=False, scheduler=scheduler)


def test_a_batch_of_ignored_labels_alone_is_named_not_called_a_divergence():
    """Its mean loss is 0/0 (NaN, as PyTorch's): the message was 'the training loss became nan
    ... try a smaller learning rate', which sends the user the wrong way."""
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((12, 4)), rng.integers(0, 3, 12)
    y[:4] = -100
    model = gn.Sequential(gn.Linear(4, 3, rng=rng))
    with pytest.raises(ValueError, match=r"every label is ignore_index \(-100\) has no loss to learn from"):
        gn.fit(model, gn.CrossEntropyLoss(), gn.optim.SGD(model.parameters(), lr=0.1), (x, y), batch_size=4,
               shuffle=False, verbose=False)  # fmt: skip
