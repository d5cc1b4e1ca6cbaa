"""The command line, end to end on the small digits data set (fast) and on crafted files."""

import json

import numpy as np
import pytest
from harness import DIGITS_RUN

import glassnet as gn
from glassnet.cli import main

pytest.importorskip("sklearn")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    code = main(["train", "--dataset", "digits", "--model", "mlp", "--epochs", "3", "--out", str(out),
                 "--seed", "1"])  # fmt: skip
    assert code == 0
    return out


def test_train_writes_model_history_and_metrics(trained, capsys):
    assert (trained / "model.safetensors").exists()
    history = json.loads((trained / "history.json").read_text())
    assert history["epochs_run"] == 3 and len(history["history"]["val_loss"]) == 3
    assert 0.5 < history["test"]["accuracy"] <= 1.0  # 3 epochs on digits is well above chance
    lines = (trained / "metrics.csv").read_text().splitlines()
    assert lines[0].startswith("epoch,loss,accuracy,val_loss,val_accuracy") and len(lines) == 4


def test_train_is_reproducible_from_the_seed(trained, tmp_path):
    assert main(["train", "--dataset", "digits", "--epochs", "3", "--out", str(tmp_path), "--seed", "1"]) == 0
    a, b = gn.io.load_state(trained / "model.safetensors"), gn.io.load_state(tmp_path / "model.safetensors")
    assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)


def test_evaluate_prints_json(trained, capsys):
    assert main(["evaluate", str(trained / "model.safetensors")]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    saved = json.loads((trained / "history.json").read_text())["test"]
    assert result["dataset"] == "digits" and result["accuracy"] == pytest.approx(saved["accuracy"])


def test_predict_prints_classes_and_writes_outputs(trained, tmp_path, capsys):
    _, test = gn.datasets.load_digits()
    np.save(tmp_path / "x.npy", test.x[:5])
    assert main(["predict", str(trained / "model.safetensors"), str(tmp_path / "x.npy")]) == 0
    printed = [int(c) for c in capsys.readouterr().out.splitlines()]  # one class per row
    model = gn.load(trained / "model.safetensors")
    assert printed == list(gn.predict(model, test.x[:5]).argmax(axis=1))
    out = tmp_path / "out.npy"
    assert (
        main(["predict", str(trained / "model.safetensors"), str(tmp_path / "x.npy"), "--out", str(out)]) == 0
    )
    assert np.load(out).shape == (5, 10)


def test_evaluate_and_predict_on_shards_give_the_plain_results(trained, tmp_path, capsys):
    """--shards K on evaluate and predict: each batch's forward in K parts on threads, the same
    numbers to rounding; a K below 1 is argparse's one-line error."""
    model = str(trained / "model.safetensors")
    results = []
    for extra in ([], ["--shards", "3"]):
        assert main(["evaluate", model, *extra]) == 0
        results.append(json.loads(capsys.readouterr().out.strip().splitlines()[-1]))
    assert results[1]["accuracy"] == results[0]["accuracy"]
    assert results[1]["loss"] == pytest.approx(results[0]["loss"], rel=1e-6)
    _, test = gn.datasets.load_digits()
    np.save(tmp_path / "x.npy", test.x[:7])
    for extra in ([], ["--shards", "2"]):
        out = str(tmp_path / f"{len(extra)}.npy")
        assert main(["predict", model, str(tmp_path / "x.npy"), "--out", out, *extra]) == 0
    np.testing.assert_allclose(np.load(tmp_path / "2.npy"), np.load(tmp_path / "0.npy"), rtol=1e-5, atol=1e-6)
    with pytest.raises(SystemExit) as stop:
        main(["evaluate", model, "--shards", "0"])
    assert stop.value.code == 2
    assert "argument --shards: expected an integer >= 1, got '0'" in capsys.readouterr().err


def test_predict_refuses_pickled_npy(trained, tmp_path, capsys):
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    assert main(["predict", str(trained / "model.safetensors"), str(tmp_path / "obj.npy")]) == 2
    assert "obj.npy: holds Python objects (object), which only pickle could read" in capsys.readouterr().err


def test_predict_rejects_wrong_shape(trained, tmp_path, capsys):
    np.save(tmp_path / "bad.npy", np.zeros((2, 5, 5), np.float32))
    assert main(["predict", str(trained / "model.safetensors"), str(tmp_path / "bad.npy")]) == 2
    assert "bad.npy: examples of shape (5, 5), the model in" in capsys.readouterr().err


def test_summary_lists_layers_and_parameters(trained, capsys):
    assert main(["summary", str(trained / "model.safetensors")]) == 0
    out = capsys.readouterr().out
    assert "Linear(in_features=64, out_features=256" in out and "(N, 10)" in out
    assert f"total parameters: {64 * 256 + 256 + 256 * 128 + 128 + 128 * 10 + 10:,}" in out


def test_gradcheck_passes_and_prints_a_row_per_array(capsys):
    assert main(["gradcheck"]) == 0
    out = capsys.readouterr().out
    assert "Linear" in out and "CrossEntropyLoss" in out and " 0 failed" in out
    # the columns line up, also after long array names ("block.0.W" of a Residual's block)
    lines = out.splitlines()[1:-1]
    assert any(" block.0.W " in line for line in lines)
    header = out.splitlines()[0]
    results = {line.rindex(" ") + 1 for line in lines}  # where "ok" / "FAIL" starts
    assert results == {header.index("result")}, sorted(results)
    errors_end = {line.rindex(" ") - 1 for line in lines}  # just past the right-aligned error
    assert errors_end == {header.index("rel. error") + len("rel. error")}


def test_corrupt_model_file_is_a_clear_error(tmp_path, capsys):
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"\x00" * 100)
    assert main(["summary", str(bad)]) == 2
    assert "bad.safetensors" in capsys.readouterr().err


def test_missing_model_file(tmp_path, capsys):
    assert main(["evaluate", str(tmp_path / "nope.safetensors"), "--dataset", "digits"]) == 2
    assert "nope.safetensors" in capsys.readouterr().err


# --- checkpoints and --resume -------------------------------------------------------------------


class CrashError(BaseException):
    """A crash that main() does not turn into an error message: as a kill, it ends the run."""


def test_resume_continues_a_crashed_run_exactly(trained, tmp_path, monkeypatch):
    import glassnet.train

    real, calls = glassnet.train._step, 0

    def crash_at_step_17(*args):
        nonlocal calls
        calls += 1
        if calls == 17:  # in the second epoch, after the checkpoint of step 16
            raise CrashError
        return real(*args)

    out = tmp_path / "run"
    monkeypatch.setattr(glassnet.train, "_step", crash_at_step_17)
    with pytest.raises(CrashError):
        main([*DIGITS_RUN, "--out", str(out)])
    monkeypatch.undo()
    assert json.loads((out / "config.json").read_text())["checkpoint_every"] == 4
    assert not (out / "model.safetensors").exists()

    assert main(["train", "--resume", str(out)]) == 0
    # the run without checkpoints every 4 steps (the trained fixture) ends with the same weights
    want, got = gn.io.load_state(trained / "model.safetensors"), gn.io.load_state(out / "model.safetensors")
    assert want.keys() == got.keys() and all(np.array_equal(want[k], got[k]) for k in want)
    assert (
        gn.load_metadata(out / "model.safetensors")["test"]
        == gn.load_metadata(trained / "model.safetensors")["test"]
    )
    # the gradient flow measured before the crash came back with the checkpoint
    flow = json.loads((out / "gradient_flow.json").read_text())["history"]
    assert flow == json.loads((trained / "gradient_flow.json").read_text())["history"]
    assert [h["epoch"] for h in flow] == [0, 1, 2, 3]


def test_a_new_run_in_an_old_run_directory_never_resumes_the_old_checkpoint(tmp_path, monkeypatch, capsys):
    import glassnet.train

    out = tmp_path / "run"
    assert main([*DIGITS_RUN, "--epochs", "1", "--out", str(out)]) == 0
    assert (out / "checkpoint.safetensors").exists()
    real, calls = glassnet.train._step, 0

    def crash_at_step_2(*args):  # before the new run's first checkpoint (step 4)
        nonlocal calls
        calls += 1
        if calls == 2:
            raise CrashError
        return real(*args)

    monkeypatch.setattr(glassnet.train, "_step", crash_at_step_2)
    with pytest.raises(CrashError):
        main([*DIGITS_RUN, "--epochs", "1", "--lr", "0.5", "--out", str(out), "--overwrite"])
    monkeypatch.undo()
    # the old run's finished checkpoint would pass every check of the new run's config.json
    # and "resume" it to the old run's weights, trained with another learning rate
    assert not (out / "checkpoint.safetensors").exists()
    capsys.readouterr()
    assert main(["train", "--resume", str(out)]) == 0
    assert "has no checkpoint yet; starting the run from the beginning" in capsys.readouterr().out


def test_resume_refuses_other_options_and_missing_runs(tmp_path, capsys):
    out = tmp_path / "run"
    assert main([*DIGITS_RUN, "--epochs", "1", "--out", str(out)]) == 0
    assert main(["train", "--resume", str(out), "--lr", "0.5"]) == 2
    assert "--lr 0.5 differs from the resumed run's default (the preset's)" in capsys.readouterr().err
    assert main(["train", "--resume", str(out), "--seed", "3"]) == 2
    assert "--seed 3 differs from the resumed run's 1" in capsys.readouterr().err
    assert main(["train", "--resume", str(tmp_path / "nope")]) == 2
    assert "nope/config.json: not found" in capsys.readouterr().err
    config = json.loads((out / "config.json").read_text())
    for key, value, message in [("model", "os.system", "argument --model: invalid choice: 'os.system'"),
                                ("epochs", "3", "holds values of the wrong types")]:  # fmt: skip
        (out / "config.json").write_text(json.dumps({**config, key: value}))
        assert main(["train", "--resume", str(out)]) == 2
        assert f"config.json: {message}" in capsys.readouterr().err
    (out / "config.json").write_text('{"model": "mlp"')
    assert main(["train", "--resume", str(out)]) == 2
    assert "config.json: not valid JSON" in capsys.readouterr().err


def test_train_the_mnist1d_gru(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))  # the generated data set is cached under ~/.cache
    out = tmp_path / "run"
    args = ["train", "--dataset", "mnist1d", "--model", "mnist1d-gru", "--epochs", "1", "--out", str(out)]
    assert main(args) == 0
    history = json.loads((out / "history.json").read_text())
    assert history["input_shape"] == [40] and history["classes"] == 10
    assert 0.2 < history["test"]["accuracy"] <= 1.0  # one epoch: well above chance (0.1)
    assert (tmp_path / ".cache" / "glassnet" / "mnist1d").is_dir()
    x = np.random.default_rng(0).standard_normal((3, 40)).astype(np.float32)
    np.save(tmp_path / "signals.npy", x)
    assert main(["predict", str(out / "model.safetensors"), str(tmp_path / "signals.npy")]) == 0


def test_train_and_evaluate_metrics_and_report(tmp_path, capsys):
    """--metrics: logged per epoch (train and validation), in the test result and the printed
    line; evaluate --metrics prints the same numbers, --report a per-class table (sklearn's)."""
    from sklearn.metrics import classification_report, f1_score, top_k_accuracy_score

    out = tmp_path / "run"
    assert main(["train", "--dataset", "digits", "--epochs", "2", "--out", str(out), "--seed", "1",
                 "--metrics", "top3,macro_f1", "--no-gradient-flow"]) == 0  # fmt: skip
    line = capsys.readouterr().out.strip().splitlines()[-1]
    assert "test top3: " in line and "test macro_f1: " in line
    history = json.loads((out / "history.json").read_text())
    for key in ("top3", "macro_f1", "val_top3", "val_macro_f1"):
        assert len(history["history"][key]) == 2
    header = (out / "metrics.csv").read_text().splitlines()[0]
    assert "top3" in header and "val_macro_f1" in header

    model = gn.load(out / "model.safetensors")
    _, test = gn.datasets.load_digits()
    scores = gn.predict(model, test.x)
    assert main(["evaluate", str(out / "model.safetensors"), "--metrics", "macro_f1,top3", "--report"]) == 0
    printed = capsys.readouterr().out.strip().splitlines()
    result = json.loads(printed[-1])
    assert result["macro_f1"] == pytest.approx(f1_score(test.y, scores.argmax(1), average="macro"))
    assert result["top3"] == pytest.approx(top_k_accuracy_score(test.y, scores, k=3))
    assert result["macro_f1"] == pytest.approx(history["test"]["macro_f1"])
    theirs = classification_report(test.y, scores.argmax(1), output_dict=True, zero_division=0)
    row = next(r for r in printed if r.split()[:1] == ["7"])
    assert float(row.split()[3]) == pytest.approx(theirs["7"]["f1-score"], abs=5e-5)
    assert any(r.strip().startswith("macro avg") for r in printed)


@pytest.mark.parametrize("names", ["top5,f2", "mae", "top3,rmse"])
def test_metrics_option_refuses_unknown_and_regression_names(tmp_path, capsys, names):
    """mae and rmse compare predictions with targets of their shape; the command line's data
    sets have class labels, so they are refused when parsed (they crashed after config.json)."""
    with pytest.raises(SystemExit):
        main(["train", "--dataset", "digits", "--out", str(tmp_path), "--metrics", names])
    assert "argument --metrics: expected comma-separated classification metrics" in capsys.readouterr().err
    assert not (tmp_path / "config.json").exists()


def test_metrics_option_refuses_a_top_k_as_large_as_the_class_count(tmp_path, capsys):
    argv = ["train", "--dataset", "digits", "--out", str(tmp_path / "run"), "--metrics", "top10"]
    assert main(argv) == 2
    assert "--metrics top10: K must be below the 10 classes of digits" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_regression_metrics_refuse_class_labels_by_name():
    with pytest.raises(
        ValueError, match=r"metrics: mae compares .* got predictions \(4, 3\) and class labels \(4,\)"
    ):
        gn.metrics.MAE().update(np.zeros((4, 3)), np.zeros(4, np.int64))
    rmse = gn.metrics.RMSE()
    rmse.update(np.zeros((4, 1)), np.ones(4))  # a column of targets: the same numbers, another shape
    assert rmse.result() == 1.0


@pytest.mark.parametrize("command", [["evaluate"], ["summary"], ["export", "--onnx", "out.onnx"]])
def test_a_missing_model_file_is_named_in_one_line(command, tmp_path, capsys):
    missing = tmp_path / "nope.safetensors"
    argv = [command[0], str(missing), *command[1:]]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"glassnet {command[0]}: error: {missing}: no such file or directory"


def test_train_with_shards_records_them_and_a_resume_must_agree(tmp_path, capsys):
    """--shards K: each batch in K parts on threads; config.json records it (a resumed run is
    the same run: its dropout masks come per part), and a config from before --shards reads as 1."""
    out = tmp_path / "run"
    args = ["train", "--dataset", "digits", "--model", "mlp", "--epochs", "2", "--seed", "1"]
    assert main([*args, "--shards", "2", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "each batch in 2 parts on threads" in printed
    history = json.loads((out / "history.json").read_text())
    assert 0.5 < history["test"]["accuracy"] <= 1.0
    config = json.loads((out / "config.json").read_text())
    assert config["shards"] == 2
    assert main(["train", "--resume", str(out), "--shards", "1"]) != 0
    assert "--shards 1 differs from the resumed run's 2" in capsys.readouterr().err
    del config["shards"]  # a run directory written before --shards existed
    (out / "config.json").write_text(json.dumps(config))
    assert gn.runs.read_run_config(str(out / "config.json"))["shards"] == 1
