"""The commands that read files (summary, predict, evaluate, plot, report) on hostile and on
unusual but honest ones: a one-line error naming the file and the field, never a traceback;
figures that do not apply skipped with a note; a preset's own input shape; predictions one per
row, by name on request; a FIFO never hangs a reader."""

from __future__ import annotations

import json
import math
import os
import signal

import numpy as np
import pytest
from harness import TINY_EXPERIMENT

import glassnet as gn
import glassnet.io as gio
from glassnet import models
from glassnet.cli import main
from glassnet.errors import FileFormatError

pytest.importorskip("sklearn")


def model_file(path, in_shape=(1, 8, 8), preset="mlp", **meta):
    """A model file as ``glassnet train`` writes it, with its metadata replaced by ``meta``:
    written as ``gn.save`` writes, checksums included, but without its check of ``meta`` (which
    refuses the hostile fields: such a file comes from elsewhere, an older glassnet or an edit)."""
    model = models.build(preset, np.random.default_rng(0), in_shape, 10)
    header = {
        "glassnet_format": gio.FORMAT,
        "glassnet_architecture": json.dumps(gio.architecture(model)),
        "glassnet_user": json.dumps(meta),
    }
    gio.write_atomic(path, gio.serialise(model.state_dict(), header))
    return path


def error_line(capsys, command: str) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"glassnet {command}: error: "), err
    return lines[0]


# --- 1. hostile glassnet_user metadata -----------------------------------------------------------
HOSTILE = [
    ("input_shape", 5),
    ("input_shape", "ab"),
    ("input_shape", [2.0]),
    ("input_shape", [[2]]),
    ("input_shape", [1e5, 1e5]),
    ("input_shape", [100000, 100000]),  # 10^10 values: a MemoryError before
    ("input_shape", []),
    ("input_shape", [0, 8]),
    ("input_shape", [True, 8]),
    ("model", []),
    ("model", {"a": 1}),
    ("dataset", ["digits"]),
]


@pytest.mark.parametrize("field, value", HOSTILE)
@pytest.mark.parametrize("command", ["summary", "predict", "evaluate", "export"])
def test_hostile_metadata_is_a_one_line_error_naming_file_and_field(tmp_path, capsys, command, field, value):
    path = model_file(
        tmp_path / "m.safetensors", **{"dataset": "digits", "input_shape": [1, 8, 8], field: value}
    )
    np.save(tmp_path / "x.npy", np.zeros((2, 1, 8, 8), np.float32))
    argv = {
        "summary": ["summary", str(path)],
        "predict": ["predict", str(path), str(tmp_path / "x.npy")],
        "evaluate": ["evaluate", str(path), "--dataset", "digits"],
        "export": ["export", str(path), "--onnx", str(tmp_path / "m.onnx")],
    }[command]
    assert main(argv) == 2
    line = error_line(capsys, command)
    assert f"{path}: glassnet_user metadata: '{field}'" in line


def test_load_metadata_checks_only_the_fields_glassnet_reads(tmp_path):
    meta = {"input_shape": [1, 28, 28], "classes": 10, "dataset": "x", "model": "y", "mine": [[1.5], None]}
    assert gn.load_metadata(model_file(tmp_path / "ok.safetensors", **meta)) == meta
    with pytest.raises(
        FileFormatError, match=r"'input_shape' \[1024, 1025\] holds more than 1,048,576 values"
    ):
        gn.load_metadata(model_file(tmp_path / "big.safetensors", input_shape=[1024, 1025]))
    gn.load_metadata(model_file(tmp_path / "edge.safetensors", input_shape=[1024, 1024]))  # the most


# --- 2. plot and report on broken files ---------------------------------------------------------
@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    assert main(["train", "--dataset", "digits", "--model", "mlp", "--epochs", "1", "--out", str(out)]) == 0
    return out


BAD_HISTORY = [
    ([1, 2], "expected an object with a 'history' object"),
    ({"history": [1, 2]}, "expected an object with a 'history' object"),
    ({"history": {"accuracy": [0.5]}}, "'history' has no 'loss' list"),
    ({"history": {"loss": [1, "x"]}}, "'history'.'loss' must be a non-empty list of numbers"),
    ({"history": {"loss": [1, 2], "val_loss": [1]}}, "'history'.'val_loss' has 1 epochs, 'loss' 2"),
    ({"history": {"loss": [1]}, "confusion": [[1, 2]]}, "'confusion' must be a square list of lists"),
    ({"history": {"loss": [1]}, "confusion": [[-1]]}, "'confusion' must be a square list of lists"),
    ({"history": {"loss": [1]}, "input_shape": "ab"}, "history.json: 'input_shape' must be a list"),
]
LAYER = {"layer": 1, "index": "1", "type": "Linear", "weight": True, "speed": 0.1}
BAD_FLOW = [
    ({"layers": 5}, "expected an object with a 'history' list"),
    ({"history": [{"layers": 5}]}, "'history'[0] must be an object with an integer 'epoch'"),
    ({"history": [{"epoch": 0, "layers": [{"layer": 1}]}]}, "'history'[0].'layers'[0] must be an object"),
    ({"history": [{"epoch": 0, "layers": [{**LAYER, "speed": "1"}]}]}, "'history'[0].'layers'[0] must be an"),
    ({"history": [{"epoch": 0, "layers": [LAYER, LAYER]}]}, "'history'[0] lists layer 1 (1) twice"),
]


@pytest.mark.parametrize("history, problem", BAD_HISTORY)
def test_plot_refuses_a_broken_history_json(run_dir, tmp_path, capsys, history, problem):
    (tmp_path / "history.json").write_text(json.dumps(history))
    assert main(["plot", str(tmp_path)]) == 2
    assert f"{tmp_path / 'history.json'}: {problem}" in error_line(capsys, "plot")
    assert not list(tmp_path.glob("*.png"))  # checked before anything is drawn


@pytest.mark.parametrize("flow, problem", BAD_FLOW)
def test_plot_refuses_a_broken_gradient_flow_json(run_dir, tmp_path, capsys, flow, problem):
    (tmp_path / "history.json").write_bytes((run_dir / "history.json").read_bytes())
    (tmp_path / "gradient_flow.json").write_text(json.dumps(flow))
    assert main(["plot", str(tmp_path)]) == 2
    assert f"{tmp_path / 'gradient_flow.json'}: {problem}" in error_line(capsys, "plot")
    assert not list(tmp_path.glob("*.png"))


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    from glassnet import experiments as ex

    out = tmp_path_factory.mktemp("results")
    ex.compare(TINY_EXPERIMENT, out, workers=1, report=False, log=lambda line: None)
    return out


def _edit(path, change):
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


BAD_RESULTS = [
    ("none/seed0.json", lambda r: r.pop("final"), "expected a 'final' object with the numbers"),
    ("none/seed1.json", lambda r: r["best"].pop("test_loss"), "expected a 'best' object with the numbers"),
    (
        "ens/seed0.json",
        lambda r: r["history"]["test_loss"].pop(),
        "expected a 'history' object of number lists",
    ),
    ("ens/seed0.json", lambda r: r.update(members=[]), "expected a non-empty 'members' list"),
    ("ens/seed0.json", lambda r: r["config"]["train"].pop("ensemble_mode"), "'ensemble_mode' (a string)"),
    ("none/seed0.json", lambda r: r.update(seed="0"), "expected 'variant' (a string), 'seed' (an integer)"),
    ("none/seed0.json", lambda r: r.update(format=99), "not a glassnet result file"),
    ("experiment.json", lambda m: m.update(variants=[["none"]]), "expected a 'variants' list of names"),
    ("experiment.json", lambda m: m.update(seeds=5), "'seeds' must be a list of integers or null"),
    ("experiment.json", lambda m: m.update(configs=[]), "'configs' must be an object"),
]


@pytest.mark.parametrize("name, change, problem", BAD_RESULTS)
def test_report_refuses_a_broken_result_file(results, tmp_path, capsys, name, change, problem):
    import shutil

    shutil.copytree(results, tmp_path / "r")
    _edit(tmp_path / "r" / name, change)
    assert main(["report", str(tmp_path / "r")]) == 2
    line = error_line(capsys, "report")
    assert f"{tmp_path / 'r' / name}: " in line and problem in line


def test_report_of_a_run_that_diverged(results, tmp_path, capsys):
    import shutil

    shutil.copytree(results, tmp_path / "r")
    for seed in (0, 1):  # NaN losses: JSON's NaN, as json.dumps writes a diverged run's
        _edit(
            tmp_path / "r" / "none" / f"seed{seed}.json",
            lambda r: r["history"].update(test_loss=[math.nan] * 2),
        )
    assert main(["report", str(tmp_path / "r")]) == 0
    assert (tmp_path / "r" / "curves.png").stat().st_size > 1000


# --- 3. plot skips a figure that does not apply, says so, draws the rest ---------------------------
def fake_run(directory, preset, in_shape):
    directory.mkdir()
    model_file(directory / "model.safetensors", in_shape, preset, input_shape=list(in_shape))
    history = {"history": {"loss": [2.0, 1.5], "accuracy": [0.3, 0.5]}, "input_shape": list(in_shape),
               "confusion": [[3, 1], [0, 4]]}  # fmt: skip
    (directory / "history.json").write_text(json.dumps(history))
    return directory


@pytest.mark.parametrize("preset", [p for p in models.PRESETS if p.startswith("mnist1d")])
def test_plot_of_an_mnist1d_run_skips_the_weight_images_and_reports_the_rest(tmp_path, capsys, preset):
    run = fake_run(tmp_path / "run", preset, (40,))
    assert main(["plot", str(run)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out == [
        f"wrote {run / 'learning_curves.png'}",
        f"wrote {run / 'confusion_matrix.png'}",
        "skipped first-layer weights: the inputs are 1-D (input_shape [40]), not images",
    ]
    assert sorted(p.name for p in run.glob("*.png")) == ["confusion_matrix.png", "learning_curves.png"]


def test_first_layer_weights_says_why_it_does_not_apply(tmp_path):
    from glassnet.plots import NotApplicableError, first_layer_weights

    rng = np.random.default_rng(0)
    for preset, problem in [("mnist1d-gru", "reads its input with GRU"), ("mnist1d-cnn", "1-D kernels"),
                            ("mnist1d-mlp", "pass image_shape for 40 inputs")]:  # fmt: skip
        with pytest.raises(NotApplicableError, match=problem):
            first_layer_weights(models.build(preset, rng, (40,), 10), tmp_path / "w.png")
    assert not (tmp_path / "w.png").exists()


def test_plot_of_an_image_run_still_draws_the_weights(run_dir, capsys):
    assert main(["plot", str(run_dir)]) == 0
    out = capsys.readouterr().out
    assert f"wrote {run_dir / 'first_layer_weights.png'}" in out and "skipped" not in out


# --- 4. summary --preset describes the preset's own data set ---------------------------------------
@pytest.mark.parametrize("preset", sorted(models.PRESETS))
def test_summary_of_a_preset_uses_its_data_sets_input_shape(capsys, preset):
    shape = (40,) if preset.startswith("mnist1d") else (1, 28, 28)
    assert models.PRESETS[preset].input_shape == shape
    expected = models.build(preset, np.random.default_rng(0), shape, 10)
    assert main(["summary", "--preset", preset]) == 0
    out = capsys.readouterr().out
    count = sum(p.data.size for p in expected.parameters()) + sum(b.size for _, b in expected.named_buffers())
    assert f"total parameters: {count:,} " in out


def test_summary_of_the_mnist1d_gru_counts_its_14634_parameters(capsys):
    assert main(["summary", "--preset", "mnist1d-gru"]) == 0
    assert "total parameters: 14,634 " in capsys.readouterr().out
    assert (
        main(["summary", "--preset", "mnist1d-gru", "--input-shape", "20"]) == 0
    )  # 20 steps: GRU 1,824 + Linear(640, 10)
    assert "total parameters: 8,234 " in capsys.readouterr().out


@pytest.mark.parametrize(
    "args, problem",
    [
        (["--input-shape", "0", "8"], "--input-shape: must be a list of 1 to 8 positive integers"),
        (["--input-shape", *["2"] * 9], "--input-shape: must be a list of 1 to 8 positive integers"),
        (["--input-shape", "2048", "2048"], "--input-shape: [2048, 2048] holds more than 1,048,576 values"),
    ],
)
def test_summary_checks_its_options(capsys, args, problem):
    assert main(["summary", "--preset", "mlp", *args]) == 2
    assert problem in error_line(capsys, "summary")


def test_summary_of_a_file_takes_an_input_shape_the_file_lacks(tmp_path, capsys):
    path = model_file(tmp_path / "m.safetensors")  # no input_shape recorded
    assert main(["summary", str(path), "--input-shape", "1", "8", "8"]) == 0
    assert "(N, 10)" in capsys.readouterr().out


# --- 5. predict: one class per row, names on request ---------------------------------------------
def test_predict_prints_one_class_per_row_and_names_with_names(tmp_path, capsys):
    path = model_file(
        tmp_path / "m.safetensors", (1, 28, 28), dataset="fashion-mnist", input_shape=[1, 28, 28]
    )
    x = np.random.default_rng(0).random((4, 28, 28)).astype(np.float32)  # reshaped to (1, 28, 28)
    np.save(tmp_path / "x.npy", x)
    expected = gn.predict(gn.load(path), x.reshape(4, 1, 28, 28)).argmax(axis=1)
    assert main(["predict", str(path), str(tmp_path / "x.npy")]) == 0
    assert capsys.readouterr().out.splitlines() == [str(c) for c in expected]
    assert main(["predict", str(path), str(tmp_path / "x.npy"), "--names"]) == 0
    names = gn.datasets.FASHION_MNIST_CLASSES
    assert capsys.readouterr().out.splitlines() == [names[c] for c in expected]


def test_predict_names_needs_a_data_set_with_names(tmp_path, capsys):
    np.save(tmp_path / "x.npy", np.zeros((2, 1, 8, 8), np.float32))
    for meta in ({}, {"dataset": "my-own"}):
        path = model_file(tmp_path / "m.safetensors", **meta)
        assert main(["predict", str(path), str(tmp_path / "x.npy"), "--names"]) == 2
        assert "--names: " in error_line(capsys, "predict")
    path = model_file(tmp_path / "d.safetensors", dataset="digits")
    assert main(["predict", str(path), str(tmp_path / "x.npy"), "--names"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 2


@pytest.mark.parametrize("dtype", [np.uint8, np.int16, np.int64])
def test_predict_keeps_token_ids_of_any_integer_dtype_as_they_are(tmp_path, capsys, dtype):
    """uint8 ids were divided by 255 (as image bytes are) and then refused as non-integer."""
    model = gn.Sequential(gn.Embedding(10, 4, rng=0), gn.TokenMean(), gn.Linear(4, 3, rng=1))
    gn.save(model, tmp_path / "m.safetensors", metadata={"input_shape": [5]})
    ids = np.array([[1, 2, 3, 4, 5], [9, 9, 9, 9, 0], [0, 0, 7, 7, 7]])
    np.save(tmp_path / "x.npy", ids.astype(dtype))
    assert main(["predict", str(tmp_path / "m.safetensors"), str(tmp_path / "x.npy")]) == 0
    expected = gn.predict(model, ids).argmax(axis=1)
    assert capsys.readouterr().out.splitlines() == [str(c) for c in expected]


def test_predict_still_scales_uint8_images(tmp_path, capsys):
    path = model_file(tmp_path / "m.safetensors", input_shape=[1, 8, 8])
    x = np.random.default_rng(1).integers(0, 256, (4, 1, 8, 8)).astype(np.uint8)
    np.save(tmp_path / "x.npy", x)
    expected = gn.predict(gn.load(path), x / np.float32(255)).argmax(axis=1)
    assert main(["predict", str(path), str(tmp_path / "x.npy")]) == 0
    assert capsys.readouterr().out.splitlines() == [str(c) for c in expected]


@pytest.mark.parametrize(
    "x, problem",
    [
        (np.array(["a", "b"]), "expected an array of numbers"),
        (np.zeros((2, 3), np.complex64), "expected an array of numbers"),
        (np.float32(1.0), "expected an array of numbers"),
        (np.zeros((0, 5), np.float32), "examples of shape (5,)"),
        (np.zeros((2, 5, 5), np.float32), "examples of shape (5, 5), the model in"),
    ],
)
def test_predict_refuses_arrays_that_are_not_examples(tmp_path, capsys, x, problem):
    path = model_file(tmp_path / "m.safetensors", input_shape=[1, 8, 8])
    np.save(tmp_path / "x.npy", x)
    assert main(["predict", str(path), str(tmp_path / "x.npy")]) == 2
    assert problem in error_line(capsys, "predict")


def test_predict_refuses_outputs_that_are_not_finite(tmp_path, capsys):
    model = models.build("mlp", np.random.default_rng(0), (1, 8, 8), 10)
    model.parameters()[0].data[:] = np.nan
    gn.save(model, tmp_path / "m.safetensors", metadata={"input_shape": [1, 8, 8]})
    np.save(tmp_path / "x.npy", np.zeros((3, 1, 8, 8), np.float32))
    # argmax of NaN outputs would name class 0 for every example without a word
    assert main(["predict", str(tmp_path / "m.safetensors"), str(tmp_path / "x.npy")]) == 2
    assert "parameter 1.W (Linear) holds 16384 NaN/inf values" in error_line(capsys, "predict")


def test_predict_on_overflowing_inputs_gives_the_one_line_error_and_no_numpy_warnings(tmp_path, capsys):
    """Inputs of 1e38 overflow in the first product: the command says so in its one error line;
    NumPy's RuntimeWarnings (a file, a line number and a source line each) would read like a
    traceback before it. Warnings turned into errors here: one escaping would end as exit 3."""
    import warnings

    path = model_file(tmp_path / "m.safetensors", input_shape=[1, 8, 8])
    np.save(tmp_path / "x.npy", np.full((2, 1, 8, 8), 1e38, np.float32))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert main(["predict", str(path), str(tmp_path / "x.npy")]) == 2
    assert "NaN/inf" in error_line(capsys, "predict")


def test_evaluate_refuses_a_model_with_too_few_outputs(tmp_path, capsys):
    model = gn.Sequential(gn.layers.Flatten(), gn.layers.Linear(64, 3))
    gn.save(model, tmp_path / "m.safetensors", metadata={"dataset": "digits"})
    assert main(["evaluate", str(tmp_path / "m.safetensors")]) == 2
    assert "expected (N, 10): one score per class of digits" in error_line(capsys, "evaluate")


def test_evaluate_refuses_an_unknown_recorded_data_set(tmp_path, capsys):
    path = model_file(tmp_path / "m.safetensors", dataset="imagenet")
    assert main(["evaluate", str(path)]) == 2
    assert "records data set 'imagenet'" in error_line(capsys, "evaluate")


def test_a_data_dir_that_is_not_a_folder_is_named_as_typed(tmp_path, capsys):
    path = model_file(tmp_path / "m.safetensors", dataset="fashion-mnist", preset="mlp")
    (tmp_path / "a-file").write_text("")
    for data_dir, what in [
        (tmp_path / "nope", "no such directory"),
        (tmp_path / "a-file", "a file, not a directory"),
    ]:
        assert main(["evaluate", str(path), "--data-dir", str(data_dir)]) == 2
        expected = f"--data-dir {data_dir}: {what} (give the folder holding the IDX files)"
        assert error_line(capsys, "evaluate") == f"glassnet evaluate: error: {expected}"


# --- 7. a FIFO in place of a file never hangs a reader ---------------------------------------------
class HangError(Exception):
    pass


def within(seconds: int, argv: list[str]) -> int:
    def alarm(signum, frame):
        raise HangError(f"{argv} did not answer in {seconds} s")

    previous = signal.signal(signal.SIGALRM, alarm)
    signal.alarm(seconds)
    try:
        return main(argv)
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


@pytest.mark.parametrize("name", ["history.json", "gradient_flow.json"])
def test_plot_never_waits_on_a_fifo(run_dir, tmp_path, capsys, name):
    for f in ("history.json", "gradient_flow.json"):
        (tmp_path / f).write_bytes((run_dir / f).read_bytes())
    (tmp_path / name).unlink()
    os.mkfifo(tmp_path / name)
    assert within(10, ["plot", str(tmp_path)]) == 2
    assert f"{tmp_path / name}: is a named pipe (FIFO), not a regular file" in error_line(capsys, "plot")


def test_report_never_waits_on_a_fifo(results, tmp_path, capsys):
    import shutil

    shutil.copytree(results, tmp_path / "r")
    (tmp_path / "r" / "none" / "seed1.json").unlink()
    os.mkfifo(tmp_path / "r" / "none" / "seed1.json")
    assert within(10, ["report", str(tmp_path / "r")]) == 2
    assert "seed1.json: is a named pipe (FIFO), not a regular file" in error_line(capsys, "report")


@pytest.mark.parametrize("command", ["predict-model", "predict-npy", "summary"])
def test_predict_and_summary_never_wait_on_a_fifo(tmp_path, capsys, command):
    path = model_file(tmp_path / "m.safetensors", input_shape=[1, 8, 8])
    np.save(tmp_path / "x.npy", np.zeros((2, 1, 8, 8), np.float32))
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    argv = {
        "predict-model": ["predict", str(fifo), str(tmp_path / "x.npy")],
        "predict-npy": ["predict", str(path), str(fifo)],
        "summary": ["summary", str(fifo)],
    }[command]
    assert within(10, argv) == 2
    assert str(fifo) in error_line(capsys, argv[0])
