"""Checkpoints and resume: a run stopped anywhere (an exception, SIGKILL, SIGKILL during the
checkpoint write itself) and resumed ends with the same weights, bit for bit, as a run that
never stopped; a failing write (disk full, permission denied) leaves the previous checkpoint
intact and stops with a clear error; a checkpoint that does not match the run is refused."""

from __future__ import annotations

import errno
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest
import safetensors.numpy

import glassnet as gn
import glassnet.io as gio
from glassnet.checkpoint import read_checkpoint
from glassnet.errors import FileFormatError, WriteError

sys.path.insert(0, str(Path(__file__).parent))
import resume_worker as worker  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent  # the repository, so a subprocess imports this glassnet
STEPS = worker.EPOCHS * 8  # 80 examples in batches of 10


class CrashError(Exception):
    pass


class CrashAt(gn.Callback):
    """Raise after the ``step``-th batch of the run (stateless: a resumed run need not have it)."""

    def __init__(self, step: int) -> None:
        self.step, self.seen = step, 0

    def on_batch_end(self, batch, logs):
        self.seen += 1
        if self.seen == self.step:
            raise CrashError


class Reference(dict):
    """The final weights of the run that never stopped (and wrote no checkpoint); ``.csv`` is
    its per-epoch log, every loss and accuracy written exactly (repr of the floats)."""

    csv: str


@pytest.fixture(scope="module")
def reference():
    run_dir = tempfile.mkdtemp()
    ref = Reference(worker.train(run_dir, checkpoint=False).state_dict())
    ref.csv = (Path(run_dir) / "metrics.csv").read_text()
    return ref


def assert_same_weights(state: dict, reference: dict) -> None:
    assert state.keys() == reference.keys()
    for name in reference:
        assert state[name].dtype == reference[name].dtype
        np.testing.assert_array_equal(state[name], reference[name], err_msg=name)


def assert_same_run(run_dir: Path, state: dict, reference: Reference) -> None:
    """The same final weights and the same history: a resumed epoch's loss sum and correct
    count went on from where the checkpoint left them."""
    assert_same_weights(state, reference)
    assert (run_dir / "metrics.csv").read_text() == reference.csv


def step_of(run_dir) -> int:
    return read_checkpoint(run_dir).meta["position"]["step"]


# --- exact resume, in process -----------------------------------------------------------------
# a crash in batch s leaves the checkpoint of an earlier step: mid-epoch (4, 8, 13, 31) or
# at an epoch's end (9: step 8, the end of epoch 1; 25: step 24)
@pytest.mark.parametrize("crash_at", [4, 8, 9, 13, 25, 31])
def test_resume_after_a_crash_is_bit_for_bit_exact(tmp_path, reference, crash_at):
    with pytest.raises(CrashError):
        worker.train(str(tmp_path), extra=[CrashAt(crash_at)])
    saved = step_of(tmp_path)
    # the last checkpoint before the crash: every 3 steps and at each epoch's end (every 8)
    assert saved == max(s for s in range(crash_at) if s % 3 == 0 or s % 8 == 0)
    model = worker.train(str(tmp_path), resume=True)
    assert_same_run(tmp_path, model.state_dict(), reference)
    assert step_of(tmp_path) == STEPS  # the step count went on from the checkpoint's


def test_checkpointing_does_not_change_the_run(tmp_path, reference):
    model = worker.train(str(tmp_path))
    assert_same_run(tmp_path, model.state_dict(), reference)
    assert step_of(tmp_path) == STEPS


def test_resuming_a_finished_run_changes_nothing(tmp_path, reference):
    worker.train(str(tmp_path))
    before = (tmp_path / "checkpoint.safetensors").read_bytes()
    model = worker.train(str(tmp_path), resume=True)
    assert_same_weights(model.state_dict(), reference)
    # the final checkpoint is rewritten by nobody: no epoch ran
    assert (tmp_path / "checkpoint.safetensors").read_bytes() == before


def test_resuming_an_early_stopped_run_does_not_train_on(tmp_path):
    x, y = worker.data()[0]

    def run(resume):
        model = gn.Sequential(gn.Flatten(), gn.Linear(64, 2, rng=np.random.default_rng(0)))
        stop = gn.EarlyStopping("loss", patience=1, min_delta=10.0, restore_best=True)
        opt = gn.optim.SGD(model.parameters(), lr=0.1)
        history = gn.fit(model, gn.CrossEntropyLoss(), opt, (x, y), epochs=10, batch_size=16,
                         callbacks=[stop], rng=np.random.default_rng(0), verbose=False,
                         checkpoint=tmp_path, resume_from=tmp_path if resume else None)  # fmt: skip
        return model, history, stop

    model, history, stop = run(False)
    assert len(history.epoch) == 2 and stop.stopped_epoch == 1
    again, history2, stop2 = run(True)
    assert history2.to_dict() == history.to_dict() and stop2.stopped_epoch == 1
    assert_same_weights(again.state_dict(), model.state_dict())


def test_checkpoint_contents(tmp_path):
    with pytest.raises(CrashError):
        worker.train(str(tmp_path), extra=[CrashAt(13)])
    snap = read_checkpoint(tmp_path)
    meta, tensors = snap.meta, snap.tensors
    assert meta["position"] | {"total": 0, "logs": {}} == {
        "epoch": 1, "batch": 4, "step": 12, "total": 0, "correct": meta["position"]["correct"],
        "logs": {}, "stopped": False,
    }  # fmt: skip
    assert set(meta["position"]["logs"]) == {"loss", "accuracy", "val_loss", "val_accuracy", "lr"}
    assert meta["rng"]["bit_generator"] == "PCG64" and isinstance(meta["rng"]["state"]["state"], int)
    assert meta["scheduler"] == {"epoch": 1, "base_lr": 0.01}
    assert [c["type"] for c in meta["callbacks"]] == ["History", "EarlyStopping", "CSVLogger"]
    assert meta["config"]["batch_size"] == 10 and meta["config"]["optimizer"] == "Adam"
    assert {"model/0.W", "model/1.running_mean", "optimizer/m", "optimizer/v", "optimizer/t", "order"} <= set(
        tensors
    )
    assert sorted(tensors["order"]) == list(range(80))
    assert any(k.startswith("callbacks/1/best_state/") for k in tensors)
    assert int(tensors["optimizer/t"]) == 12


# --- a real SIGKILL from outside, and one during the checkpoint write ---------------------------
def spawn(run_dir, *args) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    return subprocess.Popen(
        [sys.executable, str(ROOT / "tests" / "resume_worker.py"), str(run_dir), *args],
        env=env,
        stderr=subprocess.PIPE,
    )


def finish(proc: subprocess.Popen) -> int:
    _, err = proc.communicate(timeout=120)
    assert proc.returncode in (0, -signal.SIGKILL), err.decode()
    return proc.returncode


@pytest.mark.parametrize("seed", [0, 1])
def test_sigkill_at_a_random_moment_then_resume_is_exact(tmp_path, reference, seed):
    # at least 29 x 0.05 = 1.45 s of training after the first save (step 3): the kill, at most
    # 0.5 s after it, lands mid-run even when this process is slow to wake on a loaded machine
    # (the sleeps cost nothing: the kill ends them)
    proc = spawn(tmp_path, "--slow", "0.05")
    deadline = time.monotonic() + 60
    while not (tmp_path / "checkpoint.safetensors").exists():
        assert proc.poll() is None and time.monotonic() < deadline, "the run never wrote a checkpoint"
        time.sleep(0.002)
    time.sleep(np.random.default_rng(seed).uniform(0.0, 0.5))
    proc.send_signal(signal.SIGKILL)
    assert finish(proc) == -signal.SIGKILL
    assert not (tmp_path / "final.safetensors").exists()
    assert 0 < step_of(tmp_path) <= STEPS

    assert finish(spawn(tmp_path, "--resume")) == 0
    assert_same_run(tmp_path, gio.load_state(tmp_path / "final.safetensors"), reference)


def test_sigkill_during_the_checkpoint_write_then_resume_is_exact(tmp_path, reference):
    nth = int(np.random.default_rng(7).integers(2, 10))
    assert finish(spawn(tmp_path, "--kill-during-write", str(nth))) == -signal.SIGKILL
    # the killed write left half a temporary file; the checkpoint is the previous one, whole
    leftovers = [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
    assert len(leftovers) == 1 and leftovers[0].stat().st_size > 0
    assert step_of(tmp_path) > 0

    assert finish(spawn(tmp_path, "--resume")) == 0
    assert_same_run(tmp_path, gio.load_state(tmp_path / "final.safetensors"), reference)
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


# --- failing writes -------------------------------------------------------------------------------
def fail_on_write(monkeypatch, nth: int, error: OSError, where: str) -> None:
    """Make the nth checkpoint write fail in ``os.fsync`` (after the data) or when creating
    the temporary file."""
    calls = 0
    real_fsync, real_tmp = os.fsync, tempfile.NamedTemporaryFile

    def counted() -> bool:
        nonlocal calls
        calls += 1
        return calls == nth

    if where == "fsync":

        def fsync(fd):
            if os.path.basename(os.readlink(f"/proc/self/fd/{fd}")).startswith(".checkpoint") and counted():
                raise error
            return real_fsync(fd)

        monkeypatch.setattr(os, "fsync", fsync)
    else:

        def named_temporary_file(*args, **kwargs):
            if kwargs.get("prefix", "").startswith(".checkpoint") and counted():
                raise error
            return real_tmp(*args, **kwargs)

        monkeypatch.setattr(tempfile, "NamedTemporaryFile", named_temporary_file)


@pytest.mark.parametrize(
    ("error", "where", "reason"),
    [
        (OSError(errno.ENOSPC, "No space left on device"), "fsync", "No space left on device"),
        (PermissionError(errno.EACCES, "Permission denied"), "create", "Permission denied"),
    ],
)
def test_a_failing_write_keeps_the_previous_checkpoint_and_stops(tmp_path, monkeypatch, error, where, reason):
    fail_on_write(monkeypatch, 5, error, where)
    with pytest.raises(WriteError) as info:
        worker.train(str(tmp_path))
    monkeypatch.undo()
    path = tmp_path / "checkpoint.safetensors"
    assert str(info.value) == (
        f"cannot write {path}: {reason}; the previous file there (if any) is unchanged"
    )
    assert info.value.errno == error.errno and isinstance(info.value, OSError)
    assert step_of(tmp_path) == 9  # the 4th checkpoint: steps 3, 6, 8 (epoch end), 9
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
    # and the run resumes from it as if nothing had happened
    model = worker.train(str(tmp_path), resume=True)
    assert_same_weights(model.state_dict(), worker.train(tempfile.mkdtemp(), checkpoint=False).state_dict())


def test_a_read_only_directory(tmp_path):
    worker.train(str(tmp_path), extra=[])
    before = (tmp_path / "checkpoint.safetensors").read_bytes()
    os.chmod(tmp_path, 0o500)
    try:
        if os.geteuid() == 0:  # root writes anyway: check the file is still rewritten whole
            worker.train(str(tmp_path))
            assert step_of(tmp_path) == STEPS
        else:
            with pytest.raises(WriteError, match="checkpoint.safetensors: Permission denied"):
                worker.train(str(tmp_path))
            assert (tmp_path / "checkpoint.safetensors").read_bytes() == before
    finally:
        os.chmod(tmp_path, 0o700)


# --- refusals ---------------------------------------------------------------------------------------
def small_fit(tmp_path, resume=False, **kwargs):
    x, y = worker.data()[0]
    model = gn.Sequential(gn.Flatten(), gn.Linear(64, 2, rng=np.random.default_rng(0)))
    args = dict(epochs=2, batch_size=16, rng=np.random.default_rng(0), verbose=False, checkpoint=tmp_path)
    args.update(kwargs)
    data = args.pop("data", (x, y))
    momentum = 0.9 if args.pop("opt", None) == "momentum" else 0.0
    opt = gn.optim.SGD(model.parameters(), lr=0.1, momentum=momentum)
    args.setdefault("resume_from", tmp_path if resume else None)
    return gn.fit(model, gn.CrossEntropyLoss(), opt, data, **args)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (dict(batch_size=8), "batch_size=16, this one has batch_size=8"),
        (dict(shuffle=False), "shuffle=True, this one has shuffle=False"),
        (dict(data="other"), "data_crc32="),
        (dict(callbacks=[gn.EarlyStopping("loss")]), "callbacks"),
        (dict(rng=np.random.Generator(np.random.MT19937(0))), "generator is PCG64, fit's rng is MT19937"),
        (dict(opt="momentum"), "optimizer_options=.*'momentum': 0.0.*this one has .*'momentum': 0.9"),
        (dict(regularizer=gn.L2(1e-3)), "regularizer=None, this one has regularizer='L2"),
        (dict(clip_norm=1.0), "clip_norm=None, this one has clip_norm=1.0"),
    ],
)
def test_resume_refuses_a_different_run(tmp_path, change, message):
    small_fit(tmp_path)
    if change.get("data") == "other":
        x, y = worker.data()[0]
        change = dict(data=(x[::-1].copy(), y[::-1].copy()))
    with pytest.raises(FileFormatError, match=message) as info:
        small_fit(tmp_path, resume=True, **change)
    assert info.value.path == str(tmp_path / "checkpoint.safetensors")


def test_resume_from_nothing_or_a_model_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="checkpoint.safetensors"):
        small_fit(tmp_path, resume=True)
    gn.save(gn.Sequential(gn.ReLU()), tmp_path / "model.safetensors")
    with pytest.raises(FileFormatError, match="model.safetensors: not a glassnet checkpoint"):
        small_fit(tmp_path, resume_from=tmp_path / "model.safetensors")


def test_checkpoint_every_needs_a_checkpoint_and_a_positive_count(tmp_path):
    with pytest.raises(ValueError, match="checkpoint_every needs checkpoint="):
        small_fit(tmp_path, checkpoint=None, checkpoint_every=2)
    with pytest.raises(ValueError, match=r"fit: checkpoint_every must be an integer >= 1, got 0"):
        small_fit(tmp_path, checkpoint_every=0)


@pytest.mark.parametrize(
    ("name", "tamper", "problem"),
    [
        (
            "order",
            lambda a: np.concatenate([a[:1], a[:-1]]),
            "'order' must be a permutation of 0..79 (int64)",
        ),
        (
            "model/0.W",
            lambda a: a.astype(np.float64),
            "model entry '0.W' is float64 (4, 1, 3, 3), the run has float32",
        ),
        ("optimizer/m", lambda a: a[:-1], "optimizer entry 'm' is float32"),
    ],
    ids=["order with a repeat", "weights cast", "optimizer state cut"],
)
def test_a_tampered_checkpoint_is_refused(tmp_path, name, tamper, problem):
    """A repeated index would train twice on one example and skip another; a silent cast of
    the weights would break the bit-for-bit promise; both are refused, naming the file."""
    with pytest.raises(CrashError):
        worker.train(str(tmp_path), extra=[CrashAt(13)])  # mid-epoch: the order is saved
    path = tmp_path / "checkpoint.safetensors"
    snap = read_checkpoint(path)
    tensors = {**snap.tensors, name: tamper(snap.tensors[name])}
    metadata = {"glassnet_format": "1", "glassnet_checkpoint": json.dumps(snap.meta)}
    safetensors.numpy.save_file(tensors, str(path), metadata=metadata)
    with pytest.raises(FileFormatError, match=re.escape(problem)) as info:
        worker.train(str(tmp_path), resume=True)
    assert info.value.path == str(path)


@pytest.mark.parametrize("part", ["callbacks", "rng", "scheduler"])
def test_a_refused_resume_leaves_the_run_as_it_was(tmp_path, part):
    """A checkpoint refused late in the restore (a callback's state, the generator's, the
    schedule's) had already overwritten the weights and optimizer state, and EarlyStopping's
    best weights from the file were then copied into the model by on_train_end."""
    with pytest.raises(CrashError):
        worker.train(str(tmp_path), extra=[CrashAt(13)])
    path = tmp_path / "checkpoint.safetensors"
    snap = read_checkpoint(path)
    meta = snap.meta
    if part == "callbacks":
        meta["callbacks"][2]["state"]["rows"] = "x"  # CSVLogger's, after EarlyStopping's
    elif part == "rng":
        meta["rng"]["state"]["state"] = -1
    else:
        meta["scheduler"]["epoch"] = "x"
    safetensors.numpy.save_file(
        snap.tensors, str(path), metadata={"glassnet_format": "1", "glassnet_checkpoint": json.dumps(meta)}
    )
    model, opt, schedule, callbacks = worker.build(str(tmp_path))
    before = {k: v.copy() for k, v in model.state_dict().items()}
    opt_before, lr = {k: np.array(v) for k, v in opt.state_dict().items()}, opt.lr
    with pytest.raises(FileFormatError, match=part if part != "callbacks" else "CSVLogger"):
        gn.fit(model, gn.CrossEntropyLoss(), opt, worker.data()[0], epochs=3, batch_size=worker.BATCH,
               callbacks=callbacks, rng=np.random.default_rng(2), scheduler=schedule, verbose=False,
               resume_from=tmp_path)  # fmt: skip
    assert_same_weights(model.state_dict(), before)
    assert_same_weights(opt.state_dict(), opt_before)
    assert opt.lr == lr and schedule.epoch == 0 and callbacks[0].best_state is None


def tensor_ranges(path: Path) -> dict[str, tuple[int, int]]:
    """Each tensor's byte range in the file (after the 8-byte length and the JSON header)."""
    raw = path.read_bytes()
    n = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8 : 8 + n])
    return {k: (8 + n + v["data_offsets"][0], 8 + n + v["data_offsets"][1])
            for k, v in header.items() if k != "__metadata__"}  # fmt: skip


def flip_bit(path: Path, at: int, bit: int) -> None:
    data = bytearray(path.read_bytes())
    data[at] ^= 1 << bit
    path.write_bytes(bytes(data))


def test_a_bit_flip_in_the_checkpoint_data_is_refused_naming_the_tensor(tmp_path):
    """One flipped bit in a weight resumed silently, and the run ended with other weights. The
    checkpoint carries a CRC-32 of every tensor: any changed bit of any tensor is refused."""
    with pytest.raises(CrashError):
        worker.train(str(tmp_path), extra=[CrashAt(13)])
    path = tmp_path / "checkpoint.safetensors"
    good = path.read_bytes()
    ranges = tensor_ranges(path)
    assert {"model/0.W", "optimizer/m", "optimizer/t", "order"} <= set(ranges)
    rng = np.random.default_rng(0)
    for name, (start, end) in ranges.items():
        for at in {start, end - 1, int(rng.integers(start, end))}:
            path.write_bytes(good)
            flip_bit(path, at, int(rng.integers(8)))
            with pytest.raises(FileFormatError) as info:
                read_checkpoint(tmp_path)
            assert info.value.path == str(path)
            assert f"tensor {name!r} fails its CRC-32 check" in info.value.problem
    path.write_bytes(good)
    flip_bit(path, ranges["model/0.W"][0] + 5, 3)
    with pytest.raises(FileFormatError, match="'model/0.W' fails its CRC-32 check"):
        worker.train(str(tmp_path), resume=True)  # the resume itself refuses it


def test_a_changed_checkpoint_header_is_refused(tmp_path):
    """The run's position, generator state and configuration are covered by a CRC-32 too."""
    with pytest.raises(CrashError):
        worker.train(str(tmp_path), extra=[CrashAt(13)])
    path = tmp_path / "checkpoint.safetensors"
    raw = path.read_bytes()
    position = b'{\\"position\\": {\\"epoch\\": 1'
    assert raw.count(position) == 1
    path.write_bytes(raw.replace(position, position[:-1] + b"0"))  # one bit: '1' -> '0'
    with pytest.raises(FileFormatError, match="its metadata fails its CRC-32 check"):
        read_checkpoint(path)


def test_a_checkpoint_without_checksums_still_resumes(tmp_path, reference):
    """Checkpoints written before the checksums existed resume as before (unverified)."""
    with pytest.raises(CrashError):
        worker.train(str(tmp_path), extra=[CrashAt(13)])
    path = tmp_path / "checkpoint.safetensors"
    snap = read_checkpoint(path)
    metadata = {"glassnet_format": "1", "glassnet_checkpoint": json.dumps(snap.meta)}
    safetensors.numpy.save_file(snap.tensors, str(path), metadata=metadata)
    assert gio.CHECKSUMS not in gio.read_file(str(path), tensors=False)[0]
    model = worker.train(str(tmp_path), resume=True)
    assert_same_run(tmp_path, model.state_dict(), reference)


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_resume_in_the_same_process_after_one_cycle_momentum(tmp_path, optimizer):
    """OneCycleLR cycles SGD's momentum (Adam's beta1) as it goes: that value is the schedule's
    state, restored with it, not an option the checkpoint must match (the resume was refused as
    'written by a run with momentum=0.95, this one has 0.875')."""
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((40, 4)).astype(np.float32), rng.integers(0, 3, 40)

    def setup():
        r = np.random.default_rng(1)
        model = gn.Sequential(gn.Linear(4, 8, rng=r), gn.ReLU(), gn.Linear(8, 3, rng=r))
        opt = (gn.optim.SGD(model.parameters(), lr=0.1, momentum=0.9) if optimizer == "sgd"
               else gn.optim.Adam(model.parameters(), lr=0.01))  # fmt: skip
        return model, opt, gn.schedules.OneCycleLR(opt, 0.1, epochs=3, steps_per_epoch=5)

    class Interrupt(gn.Callback):
        armed = True

        def on_batch_end(self, batch, logs):
            if self.armed and self.loop.position.step == 7:
                self.armed = False
                raise KeyboardInterrupt

    options = dict(epochs=3, batch_size=8, verbose=False, rng=0)
    model, opt, sched = setup()
    gn.fit(model, gn.CrossEntropyLoss(), opt, (x, y), scheduler=sched, **options)
    whole = model.state_dict()
    model, opt, sched = setup()
    ck, stop = str(tmp_path / "ck.safetensors"), Interrupt()
    with pytest.raises(KeyboardInterrupt):
        gn.fit(model, gn.CrossEntropyLoss(), opt, (x, y), scheduler=sched, checkpoint=ck, checkpoint_every=2,
               callbacks=[stop], **options)  # fmt: skip
    gn.fit(model, gn.CrossEntropyLoss(), opt, (x, y), scheduler=sched, checkpoint=ck, resume_from=ck,
           callbacks=[stop], **options)  # fmt: skip
    for k, v in whole.items():
        np.testing.assert_array_equal(model.state_dict()[k], v)


def test_a_checkpoint_path_is_checked_when_training_begins(tmp_path):
    """A missing folder, or a file where the folder goes, failed at the first save, an epoch of
    training later; a path ending in '/' is a directory, made as Keras's BackupAndRestore makes
    its backup_dir."""
    rng = np.random.default_rng(0)
    data = (rng.standard_normal((16, 4)), rng.integers(0, 3, 16))
    (tmp_path / "file").write_text("")

    def fit(checkpoint):
        model = gn.Sequential(gn.Linear(4, 3, rng=np.random.default_rng(1)))

        class NoStep(gn.Callback):
            def on_batch_end(self, batch, logs):
                pytest.fail("trained before the checkpoint path was checked")

        gn.fit(model, gn.CrossEntropyLoss(), gn.optim.SGD(model.parameters(), lr=0.1), data, epochs=1,
               batch_size=8, verbose=False, checkpoint=checkpoint, callbacks=[NoStep()])  # fmt: skip

    with pytest.raises(FileNotFoundError, match="its folder .*missing does not exist"):
        fit(str(tmp_path / "missing" / "ck.safetensors"))
    with pytest.raises(NotADirectoryError, match="its folder .*file is a file"):
        fit(str(tmp_path / "file" / "ck.safetensors"))
    model = gn.Sequential(gn.Linear(4, 3))
    gn.fit(model, gn.CrossEntropyLoss(), gn.optim.SGD(model.parameters(), lr=0.1), data, epochs=1,
           verbose=False, checkpoint=str(tmp_path / "new") + "/")  # fmt: skip
    assert (tmp_path / "new" / "checkpoint.safetensors").exists()


def test_a_run_resumed_mid_epoch_logs_the_metrics_an_uninterrupted_run_logs(tmp_path):
    """fit's metrics count over the whole epoch: their running counts travel in the checkpoint
    (a resumed epoch counted its second half only, macro_f1 0.2696 against 0.2752)."""
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((40, 4)).astype(np.float32), rng.integers(0, 3, 40)
    options = dict(
        epochs=2, batch_size=8, verbose=False, rng=0, metrics=["macro_f1", "top2"], val_data=(x, y)
    )

    def setup():
        model = gn.Sequential(gn.Linear(4, 3, rng=np.random.default_rng(1)))
        return model, gn.optim.SGD(model.parameters(), lr=0.1)

    class Interrupt(gn.Callback):
        def on_batch_end(self, batch, logs):
            if self.loop.position.step == 8:
                raise KeyboardInterrupt

    model, opt = setup()
    whole = gn.fit(model, gn.CrossEntropyLoss(), opt, (x, y), **options).history
    model, opt = setup()
    ck = str(tmp_path / "ck.safetensors")
    with pytest.raises(KeyboardInterrupt):
        gn.fit(model, gn.CrossEntropyLoss(), opt, (x, y), checkpoint=ck, checkpoint_every=3,
               callbacks=[Interrupt()], **options)  # fmt: skip
    assert read_checkpoint(ck).meta["position"]["batch"] == 1  # mid-epoch: step 6 of 10
    model, opt = setup()
    resumed = gn.fit(
        model, gn.CrossEntropyLoss(), opt, (x, y), checkpoint=ck, resume_from=ck, **options
    ).history
    assert resumed == whole


def test_the_temporaries_of_a_killed_write_are_removed_beside_a_links_target(tmp_path):
    """write_atomic writes through a symbolic link, so a write killed midway leaves its
    temporary beside the link's target: that is where the next run must look for it."""
    from glassnet.checkpoint import remove_temporaries

    (tmp_path / "runs").mkdir()
    target = tmp_path / "runs" / "ck.safetensors"
    target.write_bytes(b"")
    (tmp_path / "latest.safetensors").symlink_to(target)
    left = tmp_path / "runs" / ".ck.safetensors.1234.tmp"
    left.write_bytes(b"half a checkpoint")
    assert remove_temporaries(tmp_path / "latest.safetensors") == [left.name]
    assert not left.exists() and target.exists()
