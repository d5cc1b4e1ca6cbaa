"""fit around callbacks: its keyword options are settings and callbacks (``fit_options``), a
callback sees the run's live position, and ``BackupAndRestore`` passed by hand checkpoints and
resumes exactly as ``fit(checkpoint=..., resume_from=...)`` does."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

import glassnet as gn
from glassnet.anomaly import TerminateOnNaN
from glassnet.callbacks import ProgressBar
from glassnet.checkpoint import BackupAndRestore, read_checkpoint
from glassnet.train import OPTIONS, fit_options

sys.path.insert(0, str(Path(__file__).parent))
import resume_worker as worker  # noqa: E402


class CrashError(Exception):
    pass


class CrashAt(gn.Callback):
    def __init__(self, step: int) -> None:
        self.step = step

    def on_batch_end(self, batch, logs):
        if self.loop.position.step == self.step:
            raise CrashError


def train_by_hand(run_dir, resume: bool, extra=()):
    """resume_worker.train with a BackupAndRestore of its own instead of fit's options."""
    model, opt, schedule, callbacks = worker.build(str(run_dir))
    backup = BackupAndRestore(run_dir, every=worker.EVERY, resume_from=run_dir if resume else None)
    gn.fit(model, gn.CrossEntropyLoss(), opt, worker.data()[0], worker.EPOCHS, worker.BATCH,
           worker.data()[1], [*callbacks, *extra, backup], rng=np.random.default_rng(2),
           scheduler=schedule, augment=gn.data.Augment(shift=1, flip=True), verbose=False)  # fmt: skip
    return model


def test_a_hand_made_backup_and_restore_resumes_exactly_as_fit_options_do(tmp_path):
    (tmp_path / "ref").mkdir()
    (tmp_path / "b").mkdir()
    reference = worker.train(str(tmp_path / "ref"), checkpoint=False).state_dict()
    with pytest.raises(CrashError):
        train_by_hand(tmp_path, resume=False, extra=[CrashAt(13)])
    assert read_checkpoint(tmp_path).meta["position"]["step"] == 12  # mid-epoch, every 3 steps
    # fit's options make the same callback: resuming the hand-made run's checkpoint through them
    model = worker.train(str(tmp_path), resume=True)
    assert all(np.array_equal(a, b) for a, b in zip(model.state_dict().values(), reference.values()))
    with pytest.raises(CrashError):
        worker.train(str(tmp_path / "b"), extra=[CrashAt(20)])
    model = train_by_hand(tmp_path / "b", resume=True)
    assert all(np.array_equal(a, b) for a, b in zip(model.state_dict().values(), reference.values()))


def test_backup_and_restore_must_follow_every_callback_with_state(tmp_path):
    model, opt, schedule, callbacks = worker.build(str(tmp_path))
    with pytest.raises(ValueError, match="after every callback with state; EarlyStopping, CSVLogger follow"):
        gn.fit(model, gn.CrossEntropyLoss(), opt, worker.data()[0], 1, worker.BATCH,
               callbacks=[BackupAndRestore(tmp_path), *callbacks], verbose=False)  # fmt: skip
    assert not (tmp_path / "checkpoint.safetensors").exists()


def test_backup_and_restore_checks_its_arguments(tmp_path):
    with pytest.raises(ValueError, match="BackupAndRestore: every must be an integer >= 1, got 0"):
        BackupAndRestore(tmp_path, every=0)
    with pytest.raises(ValueError, match="every needs a path"):
        BackupAndRestore(None, every=3)
    with pytest.raises(ValueError, match="give a path to write checkpoints to, resume_from, or both"):
        BackupAndRestore()  # neither: a callback that did nothing, without a word


def test_fit_options_become_settings_and_callbacks(tmp_path):
    settings, made = fit_options({}, 2, 5)
    assert [type(cb) for cb in made] == [ProgressBar] and settings.shuffle and settings.clip_norm is None
    options = dict(rng=7, shuffle=False, clip_norm=2.0, verbose=False, detect_anomaly=True,
                   checkpoint=tmp_path, checkpoint_every=4, resume_from=tmp_path)  # fmt: skip
    settings, made = fit_options(options, 2, 5)
    assert (settings.shuffle, settings.clip_norm) == (False, 2.0)
    assert settings.rng.integers(1 << 30) == np.random.default_rng(7).integers(1 << 30)
    assert [type(cb) for cb in made] == [TerminateOnNaN, BackupAndRestore]
    backup = made[-1]
    assert (backup.path, backup.every, backup.resume_from) == (tmp_path, 4, tmp_path)
    assert set(OPTIONS) == {"rng", "shuffle", "regularizer", "clip_norm", "augment", "scheduler", "verbose",
                            "detect_anomaly", "checkpoint", "checkpoint_every", "resume_from", "metrics",
                            "sample_weight", "class_weight", "distributed", "shards"}  # fmt: skip


def test_fit_refuses_an_unknown_keyword_as_python_does():
    model = gn.Sequential(gn.Linear(2, 2, rng=np.random.default_rng(0)))
    data = (np.zeros((4, 2), np.float32), np.zeros(4, np.int64))
    with pytest.raises(TypeError, match="fit\\(\\) got an unexpected keyword argument 'chekpoint'"):
        gn.fit(model, gn.CrossEntropyLoss(), gn.optim.SGD(model.parameters()), data, chekpoint="x")


def test_callbacks_see_the_live_position():
    seen = []

    class Watch(gn.Callback):
        def on_batch_end(self, batch, logs):
            p = self.loop.position
            seen.append((p.epoch, p.batch, p.step, batch))

    model = gn.Sequential(gn.Linear(2, 2, rng=np.random.default_rng(0)))
    data = (np.zeros((5, 2), np.float32), np.zeros(5, np.int64))
    gn.fit(model, gn.CrossEntropyLoss(), gn.optim.SGD(model.parameters()), data, 2, 2,
           callbacks=[Watch()], verbose=False)  # fmt: skip
    assert seen == [(0, 1, 1, 0), (0, 2, 2, 1), (0, 3, 3, 2), (1, 1, 4, 0), (1, 2, 5, 1), (1, 3, 6, 2)]


def test_detect_anomaly_is_a_terminate_on_nan_callback():
    """The option and the callback are one thing: the logged metrics are checked at an epoch's
    end too (here one a callback before it logs)."""

    class LogsNaN(gn.Callback):
        def on_epoch_end(self, epoch, logs):
            logs["custom"] = float("nan")

    model = gn.Sequential(gn.Linear(2, 2, rng=np.random.default_rng(0)))
    data = (np.ones((4, 2), np.float32), np.zeros(4, np.int64))
    with pytest.raises(gn.AnomalyError, match="custom is nan after epoch 1"):
        gn.fit(model, gn.CrossEntropyLoss(), gn.optim.SGD(model.parameters()), data, 1, 4,
               callbacks=[LogsNaN()], verbose=False, detect_anomaly=True)  # fmt: skip
