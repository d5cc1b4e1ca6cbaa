"""Property-based fuzzing of every command that reads a file: a run directory, its history,
gradient-flow, config and checkpoint files, a model file's metadata, a .npy of examples and an
experiment's result files are mutated (a value anywhere in a JSON document replaced by a hostile
one, a key deleted, the document replaced, the bytes cut short or flipped, a file deleted or
turned into a directory or /dev/zero), and the command that reads them is run in this process.

The property, for every example: ``main()`` returns 0 (the mutation was harmless) or 2 (one
line ``glassnet <command>: error: ...`` on stderr); nothing escapes ``main()`` but argparse's
``SystemExit(2)``, no traceback is printed, no internal error (exit 3) and no hang (each example
runs under a ``signal.alarm`` that fails the test). Derandomized: CI sees the same examples
every run. ``train --resume`` runs for real on mutated checkpoints (a finished one-epoch run on
the digits, so resuming is quick); on a mutated config.json it runs up to ``fit``, which is
replaced by a stub: reading and checking the file is what is under test, not a training run of
whatever length the mutation asked for.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import resource
import shutil
import signal
from pathlib import Path

import numpy as np
import pytest
from harness import TINY_EXPERIMENT
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import glassnet as gn
from glassnet import cli
from glassnet import experiments as ex

pytest.importorskip("sklearn")  # the digits data set
pytest.importorskip("matplotlib")  # plot and report draw figures

TIMEOUT = 20  # seconds per example; the slowest honest one (plot, resume) takes about one
MEMORY = 2 << 30  # bytes an example may allocate; an honest one needs a few megabytes


def fuzz(examples: int):
    """Hypothesis settings: ``examples`` per test, the same ones every run, no deadline (the
    timeout above guards each example)."""
    return settings(
        max_examples=examples,
        derandomize=True,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )


class HangError(Exception):
    pass


def _alarm(signum, frame):
    raise HangError(f"the command ran for more than {TIMEOUT} s")


@contextlib.contextmanager
def memory_limit(extra: int = MEMORY):
    """Cap this process's address space at its present size plus ``extra`` bytes, so that a
    file asking for gigabytes makes the allocation fail (``MemoryError``) instead of the
    machine swapping or the kernel killing the test run (Linux; elsewhere no cap)."""
    try:
        with open("/proc/self/status") as f:
            size = next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmSize:"))
    except (OSError, StopIteration):
        yield
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    cap = size + extra if hard == resource.RLIM_INFINITY else min(size + extra, hard)
    resource.setrlimit(resource.RLIMIT_AS, (cap, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


def run(argv: list[str]) -> tuple[int, str, str]:
    """``main(argv)`` in this process under the timeout and the memory cap; its exit code,
    stdout and stderr. Fails the test on a hang, an escaping exception (``MemoryError``
    included), an internal error or a traceback."""
    out, err = io.StringIO(), io.StringIO()
    previous = signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(TIMEOUT)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), memory_limit():
            try:
                code = cli.main(argv)
            except SystemExit as e:  # argparse refusing the command line itself
                code = e.code
                assert code == 2, f"{argv}: SystemExit({code!r})"
    except HangError:
        pytest.fail(f"{argv}: hung (no answer in {TIMEOUT} s)")
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    stdout, stderr = out.getvalue(), err.getvalue()
    assert code in (0, 2), f"{argv}: exit {code}\n{stderr[-2000:]}"
    assert "Traceback" not in stderr + stdout, f"{argv}:\n{stderr[-2000:]}"
    if code == 2:
        errors = [line for line in stderr.splitlines() if ": error: " in line]
        assert errors, f"{argv}: exit 2 without an error line\n{stderr[-2000:]}"
        assert errors[-1].startswith(f"glassnet {argv[0]}: error: ") or errors[-1].startswith("glassnet")
    return code, stdout, stderr


# --- the templates: a real run directory, an experiment's results, a .npy of examples -----------
@pytest.fixture(scope="module")
def templates(tmp_path_factory):
    root = tmp_path_factory.mktemp("templates")
    run_dir = root / "run"
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        code = cli.main(["train", "--dataset", "digits", "--model", "mlp", "--epochs", "1",
                         "--out", str(run_dir)])  # fmt: skip
    assert code == 0 and (run_dir / "checkpoint.safetensors").exists()
    ex.compare(TINY_EXPERIMENT, root / "results", workers=1, report=False, log=lambda line: None)
    _, test = gn.datasets.load_digits()
    np.save(run_dir / "x.npy", test.x[:7])
    return root


@pytest.fixture
def work(templates, tmp_path_factory, monkeypatch):
    """A factory of fresh copies of the templates, one per example (a run may write into it)."""
    monkeypatch.chdir(tmp_path_factory.mktemp("cwd"))  # anything a mutated path names lands here

    def fresh() -> Path:
        d = tmp_path_factory.mktemp("ex")
        shutil.copytree(templates / "run", d / "run")
        shutil.copytree(templates / "results", d / "results")
        return d

    return fresh


@pytest.fixture
def small_figures(monkeypatch):
    """Figures drawn at a low resolution and 4 first-layer tiles instead of 64: a fifth of the
    time, and the files are read and checked exactly as before."""
    from glassnet import plots

    draw = plots.first_layer_weights
    monkeypatch.setattr(plots, "DPI", 20)
    monkeypatch.setattr(plots, "first_layer_weights", lambda *a, **k: draw(*a, **k, max_units=4))


# --- mutations ---------------------------------------------------------------------------------
SPECIAL = [0, -1, 1, 2**31, 2**63, 10**30, 1e5, 100000, -1e-300, 1e308, "", "nan", "0", [], {}, [0], [[2]]]
leaf = (
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=8)
    | st.sampled_from(SPECIAL)
)
hostile = st.recursive(
    leaf,
    lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=6), c, max_size=4),
    max_leaves=8,
)


def mutate_json(data: st.DataObject, doc):
    """``doc`` with one change somewhere in it: a value replaced or a key or item removed (or
    the whole document replaced)."""
    if not isinstance(doc, (dict, list)) or not doc or data.draw(st.integers(0, 9)) == 0:
        return data.draw(hostile)
    key = data.draw(st.sampled_from(sorted(doc) if isinstance(doc, dict) else range(len(doc))))
    action = data.draw(st.sampled_from(["descend", "descend", "replace", "delete"]))
    doc = doc.copy()
    if action == "delete":
        del doc[key]
    elif action == "replace":
        doc[key] = data.draw(hostile)
    else:
        doc[key] = mutate_json(data, doc[key])
    return doc


def mutate_bytes(data: st.DataObject, raw: bytes) -> bytes:
    how = data.draw(st.sampled_from(["truncate", "flip", "splice"]))
    at = data.draw(st.integers(0, max(len(raw) - 1, 0)))
    if how == "truncate":
        return raw[:at]
    if how == "flip":
        return raw[:at] + bytes([raw[at] ^ (1 << data.draw(st.integers(0, 7)))]) + raw[at + 1 :]
    return raw[:at] + data.draw(st.binary(max_size=16)) + raw[at + 1 :]


def mutate_file(data: st.DataObject, path: Path) -> None:
    """Change the file at ``path``: its JSON (if it is JSON), its bytes, or what it is."""
    how = data.draw(st.sampled_from(["json", "json", "json", "bytes", "delete", "directory", "dev-zero"]))
    if how == "json" and path.suffix == ".json":
        path.write_text(json.dumps(mutate_json(data, json.loads(path.read_text()))))
    elif how in ("json", "bytes"):
        path.write_bytes(mutate_bytes(data, path.read_bytes()))
    else:
        path.unlink()
        if how == "directory":
            path.mkdir()
        elif how == "dev-zero":
            path.symlink_to("/dev/zero")


def set_metadata(path: Path, meta) -> None:
    """Rewrite the model file at ``path`` with ``meta`` as its glassnet_user metadata (JSON)."""
    import safetensors.numpy
    from safetensors import safe_open

    with safe_open(str(path), framework="numpy") as f:
        header, tensors = f.metadata(), {k: f.get_tensor(k) for k in f.keys()}
    header["glassnet_user"] = json.dumps(meta)
    path.write_bytes(safetensors.numpy.save(tensors, metadata=header))


# --- the properties ----------------------------------------------------------------------------
@fuzz(30)
@given(data=st.data(), name=st.sampled_from(["history.json", "gradient_flow.json", "model.safetensors"]))
def test_plot_of_a_mutated_run_directory(work, data, name, small_figures):
    run_dir = work() / "run"
    mutate_file(data, run_dir / name)
    run(["plot", str(run_dir)])


@fuzz(80)
@given(data=st.data(), command=st.sampled_from(["summary", "predict", "predict-names", "evaluate"]))
def test_commands_reading_mutated_model_metadata(work, data, command):
    run_dir = work() / "run"
    model = run_dir / "model.safetensors"
    set_metadata(model, mutate_json(data, gn.load_metadata(model)))
    argv = {
        "summary": ["summary", str(model)],
        "predict": ["predict", str(model), str(run_dir / "x.npy")],
        "predict-names": ["predict", str(model), str(run_dir / "x.npy"), "--names"],
        "evaluate": ["evaluate", str(model), "--dataset", "digits"],  # never a download
    }[command]
    run(argv)


@fuzz(40)
@given(data=st.data(), target=st.sampled_from(["x.npy", "model.safetensors"]))
def test_predict_on_mutated_files(work, data, target):
    run_dir = work() / "run"
    mutate_file(data, run_dir / target)
    run(["predict", str(run_dir / "model.safetensors"), str(run_dir / "x.npy")])


class ReachedError(Exception):
    """Raised by the stand-in for fit: the mutated config.json was read and accepted."""


@fuzz(40)
@given(data=st.data())
def test_resume_with_a_mutated_config(work, data, monkeypatch):
    run_dir = work() / "run"
    mutate_file(data, run_dir / "config.json")
    digits = gn.datasets.load_digits()

    def fit(*args, **kwargs):
        raise ReachedError

    monkeypatch.setattr(gn, "fit", fit)
    monkeypatch.setattr(cli, "load_dataset", lambda name, data_dir: digits)
    try:
        run(["train", "--resume", str(run_dir)])
    except ReachedError:
        pass  # a config the train options accept: the run would start here


@fuzz(15)
@given(data=st.data())
def test_resume_with_a_mutated_checkpoint(work, data):
    run_dir = work() / "run"
    mutate_file(data, run_dir / "checkpoint.safetensors")
    run(["train", "--resume", str(run_dir)])


@fuzz(40)
@given(data=st.data(), name=st.sampled_from(["experiment.json", "none/seed0.json", "ens/seed1.json"]))
def test_report_on_mutated_result_files(work, data, name):
    results = work() / "results"
    mutate_file(data, results / name)
    baseline = data.draw(st.sampled_from([[], ["--baseline", "ens"], ["--baseline", "x"]]))
    run(["report", str(results), *baseline])


@fuzz(16)
@given(
    target=st.sampled_from(["run", "run/model.safetensors", "run/x.npy", "results", "results/none"]),
    how=st.sampled_from(["delete", "file"]),
    command=st.sampled_from(["plot", "summary", "predict", "evaluate", "report", "resume"]),
)
def test_commands_on_a_run_directory_with_parts_missing(work, target, how, command, small_figures):
    d = work()
    path = d / target
    shutil.rmtree(path) if path.is_dir() else path.unlink()
    if how == "file":
        path.write_text("{}")
    model, x = str(d / "run/model.safetensors"), str(d / "run/x.npy")
    argv = {
        "plot": ["plot", str(d / "run")],
        "summary": ["summary", model],
        "predict": ["predict", model, x],
        "evaluate": ["evaluate", model, "--dataset", "digits"],
        "report": ["report", str(d / "results")],
        "resume": ["train", "--resume", str(d / "run"), "--epochs", "1"],
    }[command]
    code, _, _ = run(argv)
    assert code == 2 or os.fspath(path) not in " ".join(argv[1:])
