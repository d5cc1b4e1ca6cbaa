"""Callbacks: EarlyStopping, ModelCheckpoint, CSVLogger, History, ProgressBar and the hooks.

EarlyStopping is driven both by hand (a fake sequence of logs) and through ``fit``. To control
which epoch is "best" inside ``fit``, a ``Score`` callback placed before the others writes a
scripted metric into the shared ``logs`` dict, and ``Snapshot`` records the weights after each
epoch so restored weights can be compared with the right epoch's.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re

import numpy as np
import pytest

import glassnet as gn
from glassnet.callbacks import Callback


def blobs(n: int, seed: int):
    rng = np.random.default_rng(seed)
    centers = np.array([[0.0, 2.0], [2.0, -1.0], [-2.0, -1.0]])
    y = rng.integers(0, 3, size=n)
    return (centers[y] + 0.8 * rng.standard_normal((n, 2))).astype(np.float32), y


DATA, VAL = blobs(120, 0), blobs(60, 1)


def make_model(seed: int = 1) -> gn.Sequential:
    rng = np.random.default_rng(seed)
    return gn.Sequential(gn.Linear(2, 8, rng=rng), gn.Tanh(), gn.Linear(8, 3, rng=rng))


def train(model=None, callbacks=(), epochs=6, lr=0.05, val=True, **kwargs):
    model = model if model is not None else make_model()
    history = gn.fit(
        model,
        gn.CrossEntropyLoss(),
        gn.optim.SGD(model.parameters(), lr=lr),
        DATA,
        epochs=epochs,
        batch_size=40,
        val_data=VAL if val else None,
        callbacks=list(callbacks),
        rng=np.random.default_rng(0),
        verbose=False,
        **kwargs,
    )
    return model, history


class Score(Callback):
    """Adds ``score`` = scores[epoch] to the epoch's logs (must come before its readers)."""

    def __init__(self, scores):
        self.scores = list(scores)

    def on_epoch_end(self, epoch, logs):
        logs["score"] = self.scores[epoch]


class Snapshot(Callback):
    def __init__(self):
        self.weights = []

    def on_epoch_end(self, epoch, logs):
        self.weights.append({k: v.copy() for k, v in self.model.state_dict().items()})


def assert_weights(model, expected: dict) -> None:
    state = model.state_dict()
    assert state.keys() == expected.keys()
    for k in state:
        np.testing.assert_array_equal(state[k], expected[k], err_msg=k)


def differs(model, expected: dict) -> bool:
    return any(not np.array_equal(v, expected[k]) for k, v in model.state_dict().items())


# --- EarlyStopping by hand ----------------------------------------------------------------------
def drive(cb, values, key="val_loss"):
    """Feed ``values`` as consecutive epochs; return the epoch at which it asked to stop."""
    cb.model = make_model()
    cb.on_train_begin({})
    for epoch, v in enumerate(values):
        cb.on_epoch_end(epoch, {key: v, "loss": 1.0})
        if cb.stop_training:
            return epoch
    return None


def test_early_stopping_waits_patience_epochs():
    es = gn.EarlyStopping(patience=3)
    # best at epoch 1; epochs 2, 3, 4 do not improve on it -> stop at the end of epoch 4
    assert drive(es, [1.0, 0.9, 0.95, 0.92, 0.91, 0.5]) == 4
    assert es.best == 0.9 and es.best_epoch == 1 and es.stopped_epoch == 4


def test_early_stopping_an_improvement_resets_the_wait():
    es = gn.EarlyStopping(patience=2)
    assert drive(es, [1.0, 1.1, 0.8, 0.9, 0.7, 0.75, 0.71, 0.6]) == 6
    assert es.best_epoch == 4


def test_early_stopping_min_delta():
    es = gn.EarlyStopping(patience=2, min_delta=0.1)
    # 0.95 and 0.91 are better, but not by more than 0.1
    assert drive(es, [1.0, 0.95, 0.91, 0.5]) == 2
    assert es.best_epoch == 0
    es = gn.EarlyStopping(patience=2, min_delta=0.1)
    assert drive(es, [1.0, 0.85, 0.7, 0.65, 0.62]) == 4


def test_early_stopping_patience_never_reached():
    es = gn.EarlyStopping(patience=3)
    assert drive(es, [1.0, 0.9, 0.8, 0.85, 0.84]) is None
    assert es.stopped_epoch is None


def test_early_stopping_mode_max_for_accuracy():
    es = gn.EarlyStopping(monitor="val_accuracy", patience=2)
    assert es.mode == "max"
    assert drive(es, [0.5, 0.7, 0.6, 0.65, 0.9], key="val_accuracy") == 3
    assert es.best == 0.7 and es.best_epoch == 1
    # an explicit mode wins over the name
    es = gn.EarlyStopping(monitor="score", patience=1, mode="max")
    assert drive(es, [1.0, 2.0, 1.5], key="score") == 2
    es = gn.EarlyStopping(monitor="val_accuracy", patience=1, mode="min")
    assert drive(es, [0.5, 0.4, 0.6], key="val_accuracy") == 2


def test_early_stopping_nan_is_not_an_improvement():
    es = gn.EarlyStopping(patience=2)
    assert drive(es, [1.0, math.nan, math.nan, 0.1]) == 2
    assert es.best == 1.0


def test_early_stopping_bad_mode():
    with pytest.raises(ValueError, match="mode"):
        gn.EarlyStopping(mode="maximum")


def test_early_stopping_missing_monitor_by_hand():
    es = gn.EarlyStopping(monitor="val_loss")
    es.on_train_begin({})
    with pytest.raises(KeyError, match=r"val_loss.*\['accuracy', 'loss'\].*val_data"):
        es.on_epoch_end(0, {"loss": 1.0, "accuracy": 0.5})


# mode="auto" as Keras 3: the loss and the errors fall, glassnet's other metrics rise, others refused
LOWER = ["loss", "val_loss", "mae", "val_mae", "rmse", "val_rmse"]
HIGHER = ["accuracy", "val_accuracy", "top1", "val_top5", "top12", "macro_precision", "val_macro_precision",
          "macro_recall", "val_macro_recall", "macro_f1", "val_macro_f1", "confusion",
          "val_confusion"]  # fmt: skip


@pytest.mark.parametrize("monitor", LOWER + HIGHER)
def test_auto_mode_follows_how_each_logged_metric_improves(monitor, tmp_path):
    expected = "min" if monitor in LOWER else "max"
    assert gn.EarlyStopping(monitor=monitor).mode == expected
    assert gn.ModelCheckpoint(tmp_path / "m", monitor=monitor, save_best_only=True).mode == expected


def test_auto_mode_knows_every_metric_glassnet_names():
    """A metric added to glassnet.metrics.NAMES needs a direction for mode="auto"."""
    for name in gn.metrics.NAMES:
        assert gn.EarlyStopping(monitor=f"val_{name}").mode in ("min", "max")


def test_auto_mode_does_not_stop_while_macro_f1_rises():
    es = gn.EarlyStopping(monitor="val_macro_f1", patience=1)
    assert drive(es, [0.2, 0.5, 0.8, 0.9], key="val_macro_f1") is None
    assert es.best == 0.9 and es.best_epoch == 3


def test_auto_mode_checkpoint_keeps_the_best_macro_f1(tmp_path):
    ck = gn.ModelCheckpoint(tmp_path / "m-{epoch}.safetensors", monitor="val_macro_f1", save_best_only=True)
    _, history = train(callbacks=[ck], epochs=5, metrics=["macro_f1"])
    f1 = history.history["val_macro_f1"]
    saved = [e for e in history.epoch if f1[e] > max(f1[:e], default=-1.0)]
    assert saved == [0, 1, 2, 3, 4]  # rising every epoch ("min" kept only the first)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(f"m-{e + 1}.safetensors" for e in saved)


@pytest.mark.parametrize("monitor", ["score", "val_score", "acc", "lr", "val_top0"])
def test_auto_mode_refuses_a_name_it_cannot_read(monitor, tmp_path):
    message = rf"^{{}}: mode='auto' cannot tell whether monitor='{monitor}' should be minimized or maximized"
    with pytest.raises(ValueError, match=message.format("EarlyStopping")):
        gn.EarlyStopping(monitor=monitor)
    with pytest.raises(ValueError, match=message.format("ModelCheckpoint")):
        gn.ModelCheckpoint(tmp_path / "m", monitor=monitor, save_best_only=True)
    assert gn.EarlyStopping(monitor=monitor, mode="max").mode == "max"
    assert gn.ModelCheckpoint(tmp_path / "m", monitor=monitor).mode == "auto"  # not needed: saves every epoch


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        (dict(patience=-1), ValueError, "patience must be an integer >= 0, got -1"),
        (dict(patience="3"), ValueError, "patience must be an integer >= 0, got '3'"),
        (dict(patience=2.9), ValueError, "patience must be an integer >= 0, got 2.9"),
        (dict(patience=True), ValueError, "patience must be an integer >= 0, got True"),
        (dict(min_delta=math.nan), ValueError, "min_delta must be a finite number >= 0, got nan"),
        (dict(min_delta=math.inf), ValueError, "min_delta must be a finite number >= 0, got inf"),
        (dict(min_delta=-0.1), ValueError, "min_delta must be a finite number >= 0, got -0.1"),
        (dict(min_delta="0.1"), ValueError, "min_delta must be a finite number >= 0, got '0.1'"),
        (dict(monitor=None), TypeError, "monitor must be the name of a logged metric \\(a str\\), got None"),
        (dict(monitor=""), ValueError, "monitor must be the name of a logged metric, got an empty string"),
        (dict(restore_best="yes"), TypeError, "restore_best must be True or False, got 'yes'"),
        (dict(mode="maximum"), ValueError, "mode must be 'auto', 'min' or 'max', got 'maximum'"),
    ],
)
def test_early_stopping_refuses_bad_arguments_naming_them(kwargs, error, message):
    with pytest.raises(error, match=f"^EarlyStopping: {message}$"):
        gn.EarlyStopping(**kwargs)


def test_early_stopping_takes_numpy_numbers_and_patience_zero():
    es = gn.EarlyStopping(patience=np.int64(0), min_delta=np.float32(0.5))
    assert (es.patience, es.min_delta) == (0, 0.5) and type(es.patience) is int
    assert drive(es, [1.0, 0.6]) == 1  # better, but not by more than 0.5


@pytest.mark.parametrize(
    ("args", "kwargs", "error", "message"),
    [
        ((None,), {}, TypeError, "path must be a str or a path-like object, got NoneType"),
        ((3,), {}, TypeError, "path must be a str or a path-like object, got int"),
        (("",), {}, ValueError, "path must be a file name, got ''"),
        (("m",), dict(monitor=None), TypeError, "monitor must be the name of a logged metric"),
        (("m",), dict(monitor=""), ValueError, "monitor must be the name of a logged metric"),
        (("m",), dict(save_best_only=1), TypeError, "save_best_only must be True or False, got 1"),
        (("m",), dict(mode="up"), ValueError, "mode must be 'auto', 'min' or 'max', got 'up'"),
    ],
)
def test_model_checkpoint_refuses_bad_arguments_naming_them(args, kwargs, error, message):
    with pytest.raises(error, match=f"^ModelCheckpoint: {message}"):
        gn.ModelCheckpoint(*args, **kwargs)


@pytest.mark.parametrize(
    ("make", "error", "message"),
    [
        (lambda: gn.CSVLogger(None), TypeError, "^CSVLogger: path must be a str or a path-like object"),
        (lambda: gn.CSVLogger(""), ValueError, "^CSVLogger: path must be a file name"),
        (lambda: gn.ProgressBar(-1, 3), ValueError, "^ProgressBar: epochs must be an integer >= 0, got -1"),
        (lambda: gn.ProgressBar(2, 2.5), ValueError, "^ProgressBar: steps must be an integer >= 0, got 2.5"),
        (lambda: gn.ProgressBar(2, 3, stream="out"), TypeError, "^ProgressBar: stream must be a text stream"),
    ],
)
def test_other_callbacks_refuse_bad_arguments_naming_them(make, error, message):
    with pytest.raises(error, match=message):
        make()


# --- EarlyStopping through fit ------------------------------------------------------------------
def test_early_stopping_through_fit_when_val_loss_stops_improving():
    es = gn.EarlyStopping(patience=2, min_delta=1.0)
    # lr so small the validation loss barely moves: never better by min_delta after epoch 0
    _, history = train(callbacks=[es], epochs=20, lr=1e-9)
    assert history.epoch == [0, 1, 2]
    assert es.stopped_epoch == 2 and es.best_epoch == 0
    losses = history.history["val_loss"]
    assert max(losses) - min(losses) < 1e-6


def test_early_stopping_through_fit_real_training_runs_all_epochs():
    es = gn.EarlyStopping(patience=2)
    _, history = train(callbacks=[es], epochs=4)
    assert len(history.epoch) == 4  # the validation loss keeps falling
    assert es.stopped_epoch is None


def test_early_stopping_missing_monitor_through_fit():
    es = gn.EarlyStopping(monitor="val_loss")
    with pytest.raises(KeyError, match=r"EarlyStopping.*'val_loss'.*val_data"):
        train(callbacks=[es], val=False)


@pytest.mark.parametrize("restore", [True, False])
def test_restore_best_on_early_stop(restore):
    snap = Snapshot()
    es = gn.EarlyStopping(monitor="score", patience=2, restore_best=restore, mode="min")
    model, history = train(callbacks=[Score([3, 1, 2, 2.5, 0, 0]), snap, es], epochs=6)
    assert history.epoch == [0, 1, 2, 3]
    assert es.best_epoch == 1
    if restore:
        assert_weights(model, snap.weights[1])
        assert differs(model, snap.weights[3])
    else:
        assert_weights(model, snap.weights[3])


def test_restore_best_when_epochs_run_out():
    snap = Snapshot()
    es = gn.EarlyStopping(monitor="score", patience=5, restore_best=True, mode="min")
    model, history = train(callbacks=[Score([3, 1, 2, 2.5]), snap, es], epochs=4)
    assert len(history.epoch) == 4 and es.stopped_epoch is None
    assert_weights(model, snap.weights[1])


def test_restore_best_when_the_last_epoch_is_best():
    snap = Snapshot()
    es = gn.EarlyStopping(monitor="score", patience=5, restore_best=True, mode="min")
    model, _ = train(callbacks=[Score([3, 2, 1]), snap, es], epochs=3)
    assert_weights(model, snap.weights[2])


class Boom(Callback):
    def __init__(self, epoch, batch=None):
        self.at = (epoch, batch)
        self.epoch = None

    def on_epoch_begin(self, epoch):
        self.epoch = epoch

    def on_batch_end(self, batch, logs):
        if self.at == (self.epoch, batch):
            raise RuntimeError("boom in a batch")

    def on_epoch_end(self, epoch, logs):
        if self.at == (epoch, None):
            raise RuntimeError("boom at epoch end")


@pytest.mark.parametrize("boom", [Boom(3), Boom(3, batch=1)], ids=["epoch end", "mid-epoch"])
def test_restore_best_on_an_exception_from_another_callback(boom):
    snap = Snapshot()
    es = gn.EarlyStopping(monitor="score", patience=5, restore_best=True, mode="min")
    model = make_model()
    with pytest.raises(RuntimeError, match="boom"):
        train(model, callbacks=[Score([3, 1, 2, 2.5, 2.7]), snap, es, boom], epochs=5)
    assert_weights(model, snap.weights[1])


def test_early_stopping_reused_across_fits_starts_afresh():
    es = gn.EarlyStopping(monitor="score", patience=1, mode="min")
    train(callbacks=[Score([1, 2, 3]), es], epochs=3)
    assert es.stopped_epoch == 1
    _, history = train(callbacks=[Score([5, 4, 3]), es], epochs=3)
    assert len(history.epoch) == 3 and es.stopped_epoch is None and es.best == 3


# --- ModelCheckpoint ----------------------------------------------------------------------------
def test_checkpoint_every_epoch_with_epoch_in_the_name(tmp_path):
    path = tmp_path / "model-{epoch}.safetensors"
    snap = Snapshot()
    model, history = train(callbacks=[snap, gn.ModelCheckpoint(str(path))], epochs=3)
    files = sorted(p.name for p in tmp_path.iterdir())
    # {epoch} counts from 1, as the progress line and Keras do; History.epoch from 0
    assert files == [f"model-{e + 1}.safetensors" for e in history.epoch]
    for e in history.epoch:
        f = tmp_path / f"model-{e + 1}.safetensors"
        loaded = gn.load(f)
        assert_weights(loaded, snap.weights[e])
        meta = gn.load_metadata(f)
        assert meta["epoch"] == e + 1
        assert meta["logs"]["val_loss"] == history.history["val_loss"][e]
    # the loaded model predicts like the trained one
    np.testing.assert_array_equal(
        gn.predict(gn.load(tmp_path / "model-3.safetensors"), VAL[0]), gn.predict(model, VAL[0])
    )


def test_checkpoint_epoch_format_spec(tmp_path):
    train(callbacks=[gn.ModelCheckpoint(str(tmp_path / "m{epoch:03d}.safetensors"))], epochs=2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m001.safetensors", "m002.safetensors"]


def test_checkpoint_save_best_only(tmp_path):
    snap = Snapshot()
    named = gn.ModelCheckpoint(
        str(tmp_path / "m-{epoch}.safetensors"), monitor="score", save_best_only=True, mode="min"
    )
    fixed = gn.ModelCheckpoint(
        str(tmp_path / "best.safetensors"), monitor="score", save_best_only=True, mode="min"
    )
    train(callbacks=[Score([3, 1, 2, 0.5, 0.7]), snap, named, fixed], epochs=5)
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == ["best.safetensors", "m-1.safetensors", "m-2.safetensors", "m-4.safetensors"]
    assert_weights(gn.load(tmp_path / "best.safetensors"), snap.weights[3])
    assert gn.load_metadata(tmp_path / "best.safetensors")["epoch"] == 4


def test_checkpoint_save_best_only_mode_max(tmp_path):
    ck = gn.ModelCheckpoint(
        str(tmp_path / "m-{epoch}.safetensors"), monitor="val_accuracy", save_best_only=True
    )
    assert ck.mode == "max"
    _, history = train(callbacks=[ck], epochs=4)
    acc = history.history["val_accuracy"]
    saved = [e for e in history.epoch if acc[e] > max(acc[:e], default=-1.0)]
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == sorted(f"m-{e + 1}.safetensors" for e in saved)


def test_checkpoint_save_best_only_missing_monitor(tmp_path):
    ck = gn.ModelCheckpoint(str(tmp_path / "m.safetensors"), save_best_only=True)
    with pytest.raises(KeyError, match="val_loss"):
        train(callbacks=[ck], val=False, epochs=1)


def test_checkpoint_leaves_no_temporary_files(tmp_path):
    train(callbacks=[gn.ModelCheckpoint(str(tmp_path / "m.safetensors"))], epochs=3)
    assert [p.name for p in tmp_path.iterdir()] == ["m.safetensors"]


def test_checkpoint_path_formats_epoch_and_logged_metrics_as_keras(tmp_path):
    _, history = train(
        callbacks=[gn.ModelCheckpoint(tmp_path / "m_{epoch:02d}_{val_loss:.3f}_{{x}}.st")], epochs=2
    )
    expected = [f"m_{e + 1:02d}_{history.history['val_loss'][e]:.3f}_{{x}}.st" for e in history.epoch]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(expected)
    assert gn.load_metadata(tmp_path / expected[1])["epoch"] == 2


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("m_{}.st", r"has a positional placeholder \{\}; name what goes there"),
        ("m_{0}.st", r"has a positional placeholder \{0\}"),
        ("m_{epoch.real}.st", r"placeholder \{epoch.real\} must be a plain name"),
        ("m_{val_loss[0]}.st", r"placeholder \{val_loss\[0\]\} must be a plain name"),
        ("m_{epoch:{width}}.st", r"placeholder \{epoch\} must be a plain name"),
        ("run{epoch}/m.st", r"placeholder \{epoch\} is in the folder"),
        ("m_{epoch:s}.st", r"cannot be formatted \(Unknown format code 's'"),
        ("m_{val_loss:d}.st", r"cannot be formatted \(Unknown format code 'd'"),
        ("m_{epoch!z}.st", r"cannot be formatted"),
        ("m_{epoch.st", r"is not a valid template"),
        ("m_}.st", r"is not a valid template"),
    ],
)
def test_checkpoint_path_template_is_checked_when_built(path, message):
    with pytest.raises(ValueError, match=rf"^ModelCheckpoint: path '[^']*{re.escape(path)}'.*{message}"):
        gn.ModelCheckpoint(path)


def test_checkpoint_path_naming_an_unlogged_metric_fails_after_the_first_epoch_writing_nothing(tmp_path):
    ck = gn.ModelCheckpoint(tmp_path / "m_{epoch}_{val_f1:.2f}.st")
    history = gn.History()
    with pytest.raises(
        KeyError, match=r"placeholder \{val_f1\}, which is not logged; .*'epoch' .*'val_loss'"
    ):
        train(callbacks=[history, ck], epochs=3)
    assert history.epoch == [0] and list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "make",
    [
        lambda folder: gn.ModelCheckpoint(folder / "missing" / "m_{epoch}.st"),
        lambda folder: gn.ModelCheckpoint(folder / "missing" / "m.st"),
        lambda folder: gn.CSVLogger(folder / "missing" / "log.csv"),
    ],
    ids=["checkpoint template", "checkpoint", "csv"],
)
def test_a_missing_folder_is_found_when_training_begins(make, tmp_path):
    callback, rec = make(tmp_path), Recorder()
    with pytest.raises(NotADirectoryError, match=r"the folder '[^']*missing' of path .* does not exist"):
        train(callbacks=[rec, callback], epochs=2)
    assert [c[0] for c in rec.calls] == ["train_begin", "train_end"]  # no epoch ran


def test_checkpoint_path_that_is_a_folder_is_refused_when_training_begins(tmp_path):
    with pytest.raises(IsADirectoryError, match="is a folder; give a file name in it"):
        train(callbacks=[gn.ModelCheckpoint(tmp_path)], epochs=1)


def test_checkpoint_save_best_only_skips_a_nan_value(tmp_path):
    ck = gn.ModelCheckpoint(tmp_path / "m-{epoch}.st", monitor="score", save_best_only=True, mode="min")
    train(callbacks=[Score([math.nan, 2.0, 3.0, 1.0]), ck], epochs=4)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m-2.st", "m-4.st"]
    assert ck.best == 1.0
    with pytest.raises(ValueError, match="'best' must be a finite number"):
        ck.load_state_dict({"best": math.nan})


# --- CSVLogger ----------------------------------------------------------------------------------
class ReadCSV(Callback):
    """Reads the log file right after CSVLogger wrote it: it must always be complete."""

    def __init__(self, path):
        self.path, self.rows = path, []

    def on_epoch_end(self, epoch, logs):
        with open(self.path, newline="") as f:
            rows = list(csv.DictReader(f))
        assert len(rows) == epoch + 1
        self.rows.append(rows)


def test_csv_logger_header_and_one_row_per_epoch(tmp_path):
    path = tmp_path / "log.csv"
    reader = ReadCSV(path)
    _, history = train(callbacks=[gn.CSVLogger(str(path)), reader], epochs=3)
    text = path.read_text()
    lines = text.splitlines()
    assert lines[0] == "epoch,loss,accuracy,val_loss,val_accuracy"
    assert len(lines) == 4
    rows = list(csv.DictReader(io.StringIO(text)))
    assert [int(r["epoch"]) for r in rows] == history.epoch
    for key, values in history.history.items():
        assert [float(r[key]) for r in rows] == values  # exact: floats written with repr
    assert [p.name for p in tmp_path.iterdir()] == ["log.csv"]  # no temporary files left


def test_csv_logger_with_scheduler_logs_lr(tmp_path):
    path = tmp_path / "log.csv"
    model = make_model()
    opt = gn.optim.SGD(model.parameters(), lr=0.1)
    gn.fit(
        model,
        gn.CrossEntropyLoss(),
        opt,
        DATA,
        epochs=2,
        callbacks=[gn.CSVLogger(path)],
        scheduler=gn.schedules.ExponentialLR(opt, 0.5),
        verbose=False,
    )
    rows = list(csv.DictReader(path.open(newline="")))
    assert [float(r["lr"]) for r in rows] == [0.1, 0.05]


def test_csv_logger_second_fit_starts_a_new_file(tmp_path):
    path = tmp_path / "log.csv"
    logger = gn.CSVLogger(str(path))
    train(callbacks=[logger], epochs=3)
    train(callbacks=[logger], epochs=2)
    assert len(list(csv.DictReader(path.open(newline="")))) == 2


# --- History, ProgressBar, hooks ----------------------------------------------------------------
def test_history_to_dict():
    _, history = train(epochs=2)
    d = history.to_dict()
    assert d["epoch"] == [0, 1]
    assert set(d["history"]) == {"loss", "accuracy", "val_loss", "val_accuracy"}
    assert json.loads(json.dumps(d)) == d
    d["history"]["loss"].append(123.0)  # a copy: the History is untouched
    d["epoch"].append(9)
    assert len(history.history["loss"]) == 2 and history.epoch == [0, 1]
    assert repr(history).startswith("History(epochs=2")


def test_progress_bar_plain_stream():
    stream = io.StringIO()
    bar = gn.ProgressBar(epochs=2, steps=3, stream=stream)
    for epoch in range(2):
        bar.on_epoch_begin(epoch)
        for b in range(3):
            bar.on_batch_end(b, {"loss": 0.5})
        bar.on_epoch_end(epoch, {"loss": 0.25, "accuracy": 0.75})
    bar.on_train_end({})
    lines = stream.getvalue().splitlines()
    assert len(lines) == 2
    assert lines[0].startswith("epoch 1/2 loss=0.2500 accuracy=0.7500 time=")
    assert lines[1].startswith("epoch 2/2 ")


def test_progress_bar_on_a_terminal_uses_tqdm():
    class Tty(io.StringIO):
        def isatty(self):
            return True

    stream = Tty()
    bar = gn.ProgressBar(epochs=1, steps=25, stream=stream)
    bar.on_epoch_begin(0)
    for b in range(25):
        bar.on_batch_end(b, {"loss": 0.5})
    bar.on_epoch_end(0, {"loss": 0.25})
    bar.on_train_end({})
    out = stream.getvalue()
    assert "epoch 1/1" in out and "loss=0.2500" in out


class Recorder(Callback):
    def __init__(self):
        self.calls = []

    def on_train_begin(self, logs):
        self.calls.append(("train_begin", self.model is not None, self.optimizer is not None))

    def on_epoch_begin(self, epoch):
        self.calls.append(("epoch_begin", epoch))

    def on_batch_end(self, batch, logs):
        self.calls.append(("batch_end", batch, sorted(logs)))

    def on_epoch_end(self, epoch, logs):
        self.calls.append(("epoch_end", epoch, sorted(logs)))

    def on_train_end(self, logs):
        self.calls.append(("train_end",))


def test_hooks_are_called_in_order():
    rec = Recorder()
    train(callbacks=[rec], epochs=2, val=False)  # 120 examples, batches of 40: 3 batches
    epoch = [("batch_end", b, ["loss"]) for b in range(3)]
    assert rec.calls == [
        ("train_begin", True, True),
        ("epoch_begin", 0),
        *epoch,
        ("epoch_end", 0, ["accuracy", "loss"]),
        ("epoch_begin", 1),
        *epoch,
        ("epoch_end", 1, ["accuracy", "loss"]),
        ("train_end",),
    ]


def test_on_train_end_runs_after_an_exception():
    rec = Recorder()
    with pytest.raises(RuntimeError, match="boom"):
        train(callbacks=[rec, Boom(0, batch=1)], epochs=2)
    assert rec.calls[-1] == ("train_end",)


def test_a_callback_can_stop_training():
    class StopAfterOne(Callback):
        def on_epoch_end(self, epoch, logs):
            self.stop_training = True

    _, history = train(callbacks=[StopAfterOne()], epochs=5)
    assert history.epoch == [0]


# --- state for checkpoints ---------------------------------------------------------------------
def test_callback_state_round_trips_through_json_and_arrays(tmp_path):
    """What ``state_dict`` gives, ``load_state_dict`` takes back: a fresh callback then holds
    the same state (arrays copied, JSON values through a JSON round trip, as in a checkpoint)."""
    model = make_model()
    stop = gn.EarlyStopping(patience=2, restore_best=True)
    log = gn.CSVLogger(tmp_path / "m.csv")
    keep = gn.ModelCheckpoint(tmp_path / "best.safetensors", save_best_only=True)
    _, history = train(model, callbacks=[stop, log, keep], epochs=4)

    def through_json(state):
        plain = {k: v for k, v in state.items() if not isinstance(v, np.ndarray)}
        return {**json.loads(json.dumps(plain)), **{k: v for k, v in state.items() if k not in plain}}

    pairs = [
        (history, gn.History()),
        (stop, gn.EarlyStopping(patience=2, restore_best=True)),
        (log, gn.CSVLogger(tmp_path / "m.csv")),
        (keep, gn.ModelCheckpoint(tmp_path / "b")),
    ]
    for old, new in pairs:
        new.model = model
        new.load_state_dict(through_json(old.state_dict()))
        assert json.dumps(
            {k: v for k, v in new.state_dict().items() if not isinstance(v, np.ndarray)}
        ) == json.dumps({k: v for k, v in old.state_dict().items() if not isinstance(v, np.ndarray)})
    assert new.best == keep.best and gn.Callback().state_dict() is None
    restored = gn.EarlyStopping(patience=2, restore_best=True)
    restored.model = model
    restored.load_state_dict(through_json(stop.state_dict()))
    assert restored.best_state.keys() == stop.best_state.keys()
    for name in stop.best_state:
        np.testing.assert_array_equal(restored.best_state[name], stop.best_state[name])
        assert restored.best_state[name] is not stop.best_state[name]


@pytest.mark.parametrize(
    ("callback", "state", "message"),
    [
        (gn.History(), {"epoch": [0, 1.5], "history": {}}, "'epoch' must list integers"),
        (gn.History(), {"epoch": [0], "history": {"loss": ["x"]}}, "lists of numbers"),
        (
            gn.EarlyStopping(),
            {"best": float("nan"), "best_epoch": 0, "wait": 0, "stop_training": False, "stopped_epoch": None},
            "'best' must be a finite number",
        ),  # fmt: skip
        (
            gn.EarlyStopping(),
            {"best": 1.0, "best_epoch": 0, "wait": -1, "stop_training": False, "stopped_epoch": None},
            "'wait' must be a count",
        ),  # fmt: skip
        (
            gn.EarlyStopping(restore_best=True),
            {"best": 1.0, "best_epoch": 0, "wait": 0, "stop_training": False, "stopped_epoch": None},
            "the best weights must name",
        ),  # fmt: skip
        (gn.CSVLogger("x.csv"), {"rows": [{"loss": "high"}]}, "'rows' must be a list of objects of numbers"),
        # the next epoch's growth verdict reads grad_norm: a KeyError mid-run otherwise
        (gn.GradientFlow(), {"history": [{"layers": []}]}, "objects with 'grad_norm' and 'layers'"),
        (gn.GradientFlow(), {"history": [{"layers": {}, "grad_norm": 1.0}]}, "'grad_norm' and 'layers'"),
    ],
)
def test_callback_state_from_a_file_is_checked(callback, state, message):
    callback.model = make_model()
    with pytest.raises(ValueError, match=message):
        callback.load_state_dict(state)
