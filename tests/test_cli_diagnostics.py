"""The diagnostics commands end to end on the small digits data set: what `train` saves for the
plots, `plot`, `diagnose`, `summary --preset`."""

import json

import numpy as np
import pytest

import glassnet as gn
from glassnet.cli import main

pytest.importorskip("sklearn")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    args = [
        "train",
        "--dataset",
        "digits",
        "--model",
        "mlp",
        "--epochs",
        "2",
        "--out",
        str(out),
        "--seed",
        "3",
    ]
    assert main(args) == 0
    return out


def test_train_saves_confusion_matrix_and_gradient_flow(run):
    history = json.loads((run / "history.json").read_text())
    confusion = np.array(history["confusion"])
    _, test = gn.datasets.load_digits()
    assert confusion.shape == (10, 10) and confusion.sum() == test.n
    assert np.trace(confusion) / test.n == pytest.approx(history["test"]["accuracy"])
    flow = json.loads((run / "gradient_flow.json").read_text())
    assert [h["epoch"] for h in flow["history"]] == [0, 1, 2]
    assert [r["type"] for r in flow["history"][0]["layers"]] == ["Linear", "Linear", "Linear"]


def test_plot_writes_every_figure(run, capsys):
    pytest.importorskip("matplotlib")
    assert main(["plot", str(run)]) == 0
    names = ["learning_curves", "confusion_matrix", "gradient_flow", "first_layer_weights"]
    for name in names:
        assert (run / f"{name}.png").read_bytes()[:4] == b"\x89PNG"
    assert capsys.readouterr().out.count("wrote ") == 4


def test_train_without_gradient_flow_and_its_plots(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    args = ["train", "--dataset", "digits", "--epochs", "1", "--out", str(tmp_path), "--no-gradient-flow"]
    assert main(args) == 0
    assert not (tmp_path / "gradient_flow.json").exists()
    assert main(["plot", str(tmp_path)]) == 0
    assert sorted(p.name for p in tmp_path.glob("*.png")) == [
        "confusion_matrix.png",
        "first_layer_weights.png",
        "learning_curves.png",
    ]


def test_plot_of_a_directory_without_a_run_is_a_clear_error(tmp_path, capsys):
    assert main(["plot", str(tmp_path)]) == 2
    assert "history.json not found" in capsys.readouterr().err


def test_diagnose_prints_the_report(capsys):
    assert (
        main(["diagnose", "--dataset", "digits", "--model", "book", "--subset", "500", "--probe-size", "200"])
        == 0
    )
    out = capsys.readouterr().out
    assert "before training" in out and "speed of learning (rms delta)" in out
    assert "1 (#1)  Linear" in out and "2 (#3)  Linear" in out and "|dC/dW|" in out
    # the book's net trains with SGD lr 3.0: the loss printed after the epoch is below the first
    losses = [float(line.split("loss ")[1].split(")")[0]) for line in out.splitlines() if "loss " in line]
    assert len(losses) == 2 and losses[1] < losses[0]


def test_summary_of_a_preset_with_memory(capsys):
    assert main(["summary", "--preset", "cnn", "--batch-size", "128"]) == 0
    out = capsys.readouterr().out
    assert "(N, 32, 24, 24)" in out and "memory for a training batch of 128" in out
    assert main(["summary"]) == 2
    assert "summary: error: give a model file or --preset NAME (one of the two)" in capsys.readouterr().err


def test_diagnose_on_a_small_subset_keeps_every_class(monkeypatch, capsys):
    built = []
    build = gn.models.build
    monkeypatch.setattr(gn.models, "build", lambda *a: built.append(a[3]) or build(*a))
    args = ["diagnose", "--dataset", "digits", "--model", "book", "--subset", "5", "--probe-size", "5"]
    assert main(args) == 0
    assert built == [10]  # 5 examples hold at most 5 of the 10 classes
