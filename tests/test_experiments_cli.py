"""`glassnet compare` and `glassnet lr-find` as a user meets them: a failed run is named in one
line each, never a traceback; bad options are one-line errors; and a `compare` killed with
SIGKILL leaves no process behind (its pool workers and the multiprocessing resource tracker
see their parent die and exit)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import glassnet as gn
from glassnet.cli import main

pytest.importorskip("sklearn")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(gn.__file__)))  # the glassnet under test

FAILING = """
seeds = 2
[data]
dataset = "digits"
train_size = 200
test_size = 100
[train]
epochs = 1
[model]
hidden = [8]
[variants.none]
[variants.bad]
model = { preset = "cnn" }   # a 5x5 conv stack cannot take 8x8 digits: every run raises
"""


@pytest.mark.parametrize("workers", ["1", "2"])
def test_compare_names_each_failed_run_in_one_line_and_saves_the_others(tmp_path, capsys, workers):
    cfg, out = tmp_path / "e.toml", tmp_path / "res"
    cfg.write_text(FAILING)
    assert main(["compare", str(cfg), "--out", str(out), "--workers", workers]) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err and "RuntimeError" not in err
    for seed in (0, 1):  # one line per failed run: variant, seed, the error's first line
        (line,) = [x for x in err.splitlines() if f"bad/seed{seed} failed:" in x]
        assert line.strip().startswith(f"bad/seed{seed} failed: ShapeError: Conv2d: input 2x2")
    last = err.splitlines()[-1]
    assert last.startswith("glassnet compare: error: 2 of 4 runs failed (bad/seed0, bad/seed1)")
    assert str(out) in last and "again" in last
    assert sorted(p.name for p in (out / "none").glob("seed*.json")) == ["seed0.json", "seed1.json"]
    assert not (out / "bad").exists()


def test_compare_failure_keeps_the_library_contract(tmp_path):
    """The library raises ``FailedRunsError`` (a RuntimeError) listing every failed run."""
    from glassnet.experiments import FailedRunsError, compare

    cfg = tmp_path / "e.toml"
    cfg.write_text(FAILING)
    with pytest.raises(FailedRunsError) as info:
        compare(cfg, tmp_path / "res", workers=1, report=False, log=lambda line: None)
    e = info.value
    assert isinstance(e, RuntimeError) and e.total == 4
    assert [(v, s) for v, s, _ in e.failures] == [("bad", 0), ("bad", 1)]
    assert all(msg.startswith("ShapeError: ") and "\n" not in msg for _, _, msg in e.failures)
    assert isinstance(e.__cause__, gn.ShapeError)


def test_compare_refuses_a_train_size_beyond_the_data_set_up_front(tmp_path, capsys):
    # every run used to fail at run time (exit 1); it is a usage error: exit 2, nothing written
    n = gn.datasets.load_digits()[0].n
    cfg, out = tmp_path / "e.toml", tmp_path / "res"
    cfg.write_text(FAILING.replace("train_size = 200", "train_size = 100000"))
    assert main(["compare", str(cfg), "--out", str(out), "--workers", "1"]) == 2
    err = capsys.readouterr().err
    assert err == (
        f"glassnet compare: error: {cfg}: [data] train_size: expected at most {n} "
        f"(digits has {n} training examples), got 100000\n"
    )
    assert not out.exists()


# --- lr-find ---------------------------------------------------------------------------------
LR_FIND = ["lr-find", "--dataset", "digits", "--model", "mlp", "--steps", "20"]


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--start", "1e3", "--end", "1e6"], "lr_find: the loss diverged after"),  # at the first steps
        (["--train-size", "100000"], "--train-size: expected"),
        (["--start", "1", "--end", "0.1"], "--end 0.1 must be larger than --start 1.0"),
        # refused by the parser (SystemExit 2), in one line too
        (["--train-size", "0"], "argument --train-size: expected an integer >= 1"),
        (["--train-size", "-3"], "argument --train-size: expected an integer >= 1"),
        (["--batch-size", "0"], "argument --batch-size: expected an integer >= 1"),
        (["--batch-size", "-1"], "argument --batch-size: expected an integer >= 1"),
    ],
)
def test_lr_find_errors_are_one_line(tmp_path, capsys, extra, message):
    try:
        code = main([*LR_FIND, *extra, "--out", str(tmp_path / "lr")])
    except SystemExit as e:
        code = e.code
    assert code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"glassnet lr-find: error: {message}")
    assert not (tmp_path / "lr.json").exists()


def test_lr_find_checks_its_batch_size():
    data = (np.zeros((4, 3), np.float32), np.zeros(4, np.int64))
    model = gn.Sequential(gn.Linear(3, 2, rng=np.random.default_rng(0)))
    with pytest.raises(ValueError, match="lr_find: batch_size must be >= 1, got 0"):
        gn.experiments.lr_find(
            model, gn.CrossEntropyLoss(), gn.optim.SGD(model.parameters()), data, batch_size=0
        )


def test_lr_find_on_one_example_keeps_every_class(tmp_path, capsys):
    """A subset of one example of class 0 still gets a 10-class model: with one output the
    cross-entropy would be 0 whatever the weights, and the test would measure nothing."""
    full, _ = gn.datasets.load_digits()
    # the CLI draws its subset as rng.permutation(n)[:size] from the --seed's generator
    seed = next(s for s in range(200) if full.y[np.random.default_rng(s).permutation(full.n)[0]] == 0)
    argv = [*LR_FIND, "--train-size", "1", "--seed", str(seed), "--out", str(tmp_path / "lr")]
    assert main(argv) == 0
    capsys.readouterr()
    assert json.loads((tmp_path / "lr.json").read_text())["raw_losses"][0] > 1.0  # about ln 10


# --- kill -9 leaves nothing behind -------------------------------------------------------------
SLOW = """
seeds = 2
[data]
dataset = "digits"
train_size = 200
test_size = 100
[train]
epochs = 1000000   # runs that would go on for hours: the workers are busy when the parent dies
[model]
hidden = [8]
[variants.a]
"""


def _stat(pid: int) -> list[str] | None:
    """The fields of /proc/PID/stat after the command name (state first), or None if gone."""
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8", errors="replace") as f:
            text = f.read()
    except OSError:
        return None
    return text[text.rindex(")") + 2 :].split()  # the name may hold spaces and parentheses


def _children(pid: int) -> dict[int, str]:
    """{child pid: its start time} of every process whose parent is ``pid`` (no psutil)."""
    kids = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (fields := _stat(int(entry))) is not None and fields[1] == str(pid):
            kids[int(entry)] = fields[19]
    return kids


def _alive(pid: int, start: str) -> bool:
    fields = _stat(pid)
    # a zombie has exited (it waits for a reaper); another start time is a reused pid
    return fields is not None and fields[0] != "Z" and fields[19] == start


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="finds the processes in /proc")
def test_killing_compare_ends_its_workers_and_the_resource_tracker(tmp_path):
    cfg = tmp_path / "slow.toml"
    cfg.write_text(SLOW)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [ROOT, os.environ.get("PYTHONPATH")]))}
    argv = [sys.executable, "-m", "glassnet", "compare", str(cfg), "--out", str(tmp_path / "res"),
            "--workers", "2"]  # fmt: skip
    with open(tmp_path / "log", "wb") as log:
        proc = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path)
    kids: dict[int, str] = {}
    try:
        deadline = time.monotonic() + 120
        while len(kids) < 3 and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.2)  # two workers and the resource tracker
            kids = _children(proc.pid)
        time.sleep(2.0)  # the workers import glassnet and take their runs
        kids.update(_children(proc.pid))
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    assert len(kids) >= 3, f"compare did not start its workers: {(tmp_path / 'log').read_text()}"
    deadline = time.monotonic() + 10
    while any(_alive(*k) for k in kids.items()) and time.monotonic() < deadline:
        time.sleep(0.1)
    survivors = [pid for pid, start in kids.items() if _alive(pid, start)]
    for pid in survivors:  # clean up before failing: never leave them running
        os.kill(pid, signal.SIGKILL)
    assert not survivors, f"still running 10 s after compare was killed: {survivors}"
