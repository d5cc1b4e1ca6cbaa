"""NaN provenance: a non-finite value injected at a known layer and phase is reported there,
with the batch's example indices; checked training equals plain training when all is finite."""

from __future__ import annotations

import numpy as np
import pytest

import glassnet as gn
from glassnet.anomaly import AnomalyError


def data(n=40, d=6, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, d)).astype(np.float32), rng.integers(0, 3, n)


def mlp(seed=0):
    rng = np.random.default_rng(seed)
    return gn.Sequential(gn.Linear(6, 8, rng=rng), gn.Tanh(), gn.Linear(8, 8, rng=rng), gn.Sigmoid(),
                         gn.Linear(8, 3, rng=rng))  # fmt: skip


def fit(model, lr=0.1, callbacks=None, detect_anomaly=True, shuffle=False, x=None, batch_size=10):
    x, y = data() if x is None else (x, data()[1])
    opt = gn.optim.SGD(model.parameters(), lr=lr)
    return gn.fit(model, gn.CrossEntropyLoss(), opt, (x, y), epochs=2, batch_size=batch_size,
                  callbacks=callbacks, shuffle=shuffle, rng=np.random.default_rng(1), verbose=False,
                  detect_anomaly=detect_anomaly)  # fmt: skip


def test_inf_weight_is_found_in_the_forward_z_of_its_layer():
    model = mlp()
    model[2].W.data[4, 1] = np.inf  # layer #2: its z is the first non-finite value
    with pytest.raises(AnomalyError) as info:
        fit(model)
    e = info.value
    assert (e.phase, e.layer, e.layer_type, e.shape) == ("forward z", "2", "Linear", (10, 8))
    assert (e.epoch, e.batch) == (1, 1) and list(e.indices) == list(range(10))
    msg = str(e)
    assert "its input was finite" in msg and "parameter W holds 1 inf of 64 values" in msg
    assert "first at [4, 1]" in msg and "examples [0, 1, 2, 3, 4, 5, 6, 7, ...] (10 in all)" in msg
    assert e.batch_shape == (10, 6) and msg.endswith("input batch of shape (10, 6)")


class NaNBackward(gn.Module):
    """Identity forward; a backward that returns NaN: a broken custom layer."""

    def forward(self, x):
        return x

    def backward(self, dy):
        return dy * np.float32(np.nan)


def test_a_backward_returning_nan_is_a_delta_error_at_that_layer():
    rng = np.random.default_rng(0)
    model = gn.Sequential(gn.Linear(6, 8, rng=rng), NaNBackward(), gn.ReLU(), gn.Linear(8, 3, rng=rng))
    with pytest.raises(AnomalyError) as info:
        fit(model)
    e = info.value
    assert (e.phase, e.layer, e.layer_type, e.shape) == ("delta (BP2)", "1", "NaNBackward", (10, 8))
    assert "the delta it received was finite" in str(e)


class BrokenReLU(gn.ReLU):
    """A ReLU whose forward turns every output of unit 2 into NaN."""

    def forward(self, x):
        y = super().forward(x).copy()
        y[:, 2] = np.nan
        return y


def test_an_activation_making_nan_from_finite_z_is_an_activation_error():
    rng = np.random.default_rng(0)
    model = gn.Sequential(gn.Linear(6, 8, rng=rng), BrokenReLU(), gn.Linear(8, 3, rng=rng))
    with pytest.raises(AnomalyError) as info:
        fit(model)
    e = info.value
    assert (e.phase, e.layer, e.layer_type) == ("activation", "1", "BrokenReLU")
    assert "10 NaN of 80 values" in str(e) and "first at [0, 2]" in str(e) and "input was finite" in str(e)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # the overflow itself warns; the check names it
def test_a_loss_overflowing_on_finite_predictions_is_a_loss_error():
    rng = np.random.default_rng(0)
    model = gn.Sequential(gn.Linear(6, 3, rng=rng))
    model[0].W.data[:] = 1e20  # predictions about 1e20: finite in float32, their squares are not
    x, y = data()
    targets = np.zeros((len(y), 3), np.float32)
    with pytest.raises(AnomalyError) as info:
        gn.fit(model, gn.MSELoss(), gn.optim.SGD(model.parameters(), lr=0.1), (x, targets), epochs=1,
               batch_size=10, shuffle=False, verbose=False, detect_anomaly=True)  # fmt: skip
    assert (info.value.phase, info.value.layer_type, info.value.batch) == ("loss", "MSELoss", 1)


class Poison(gn.Module):
    """Identity, except that an example whose first feature exceeds 100 comes out NaN."""

    def forward(self, x):
        return np.where(x[:, :1] > 100, np.float32(np.nan), x)

    def backward(self, dy):
        return dy


def test_the_batch_holding_the_bad_example_is_named_also_when_shuffled():
    rng = np.random.default_rng(0)
    model = gn.Sequential(Poison(), gn.Linear(6, 3, rng=rng))
    x = data()[0]
    x[37, :] = 1e4
    with pytest.raises(AnomalyError) as info:
        fit(model, x=x)  # batches of 10 in order: example 37 is in batch 4
    e = info.value
    assert (e.phase, e.layer, e.batch, e.epoch) == ("forward", "0", 4, 1)
    assert list(e.indices) == list(range(30, 40))
    with pytest.raises(AnomalyError) as info:
        fit(model, x=x, shuffle=True)
    assert 37 in info.value.indices and len(info.value.indices) == 10
    # the same example squashed by tanh first never trips Poison: no false alarm
    squash = gn.Sequential(gn.Linear(6, 6, rng=rng), gn.Tanh(), Poison(), gn.Linear(6, 3, rng=rng))
    fit(squash, x=x)


def test_an_overflowing_update_is_named_and_undone():
    model = mlp()
    x, y = data()
    before = [p.data.copy() for p in model.parameters()]
    with pytest.raises(AnomalyError) as info:
        fit(model, lr=1e39)  # lr * gradient overflows float32
    e = info.value
    assert e.phase == "optimizer update" and (e.epoch, e.batch) == (1, 1)
    assert e.layer in {"0", "2", "4"} and "its gradient was finite" in str(e) and "lr=1e+39" in str(e)
    assert all(np.array_equal(p.data, b) for p, b in zip(model.parameters(), before))


def test_terminate_on_nan_callback_turns_checking_on():
    model = mlp()
    model[4].b.data[0] = np.nan
    with pytest.raises(AnomalyError, match=r"phase 'forward z' at layer #4 \(Linear\)"):
        fit(model, callbacks=[gn.TerminateOnNaN()], detect_anomaly=False)


def test_terminate_on_nan_checks_the_logged_metrics():
    with pytest.raises(AnomalyError, match="val_loss is nan after epoch 3"):
        gn.TerminateOnNaN().on_epoch_end(2, {"loss": 0.5, "val_loss": float("nan")})
    gn.TerminateOnNaN().on_epoch_end(2, {"loss": 0.5, "val_loss": 0.7})


def test_without_checking_fit_still_fails_and_says_how_to_find_the_source():
    model = mlp()
    model[2].W.data[0, 0] = np.nan
    with pytest.raises(FloatingPointError, match="detect_anomaly=True") as info:
        fit(model, detect_anomaly=False)
    assert not isinstance(info.value, AnomalyError)


def test_checked_training_equals_plain_training():
    a, b = mlp(), mlp()
    fit(a, detect_anomaly=True, shuffle=True)
    fit(b, detect_anomaly=False, shuffle=True)
    assert all(np.array_equal(p.data, q.data) for p, q in zip(a.parameters(), b.parameters()))


def test_checked_training_with_a_regularizer_equals_plain_training():
    runs = []
    for detect in (True, False):
        model = mlp()
        x, y = data()
        gn.fit(model, gn.CrossEntropyLoss(), gn.optim.Adam(model.parameters(), lr=1e-2), (x, y), epochs=2,
               batch_size=8, regularizer=gn.L2(1e-3), rng=np.random.default_rng(0), verbose=False,
               detect_anomaly=detect, clip_norm=1.0)  # fmt: skip
        runs.append(model)
    assert all(np.array_equal(p.data, q.data) for p, q in zip(*(m.parameters() for m in runs)))


def test_an_overflowing_update_undoes_the_optimizer_state_too():
    model = mlp()
    x, y = data()
    opt = gn.optim.Adam(model.parameters(), lr=1e39)  # Adam's step is about lr: w overflows
    with pytest.raises(AnomalyError, match="optimizer update"):
        gn.fit(model, gn.CrossEntropyLoss(), opt, (x, y), epochs=1, batch_size=10, shuffle=False,
               verbose=False, detect_anomaly=True)  # fmt: skip
    assert opt.t == 0 and all(not v.any() for v in opt.state.values())
