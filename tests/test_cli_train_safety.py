"""`glassnet train` never loses a run: a new run that cannot start, or that was not meant to
replace one, leaves the directory as it was; --resume takes the options typed and nothing
else; option values are checked by the parser; errors are one line, never a traceback; the
training time adds up across resumes. Small runs on the digits data set."""

import json
import math

import numpy as np
import pytest
from harness import DIGITS_RUN

import glassnet as gn
import glassnet.checkpoint
import glassnet.cli
import glassnet.plots
import glassnet.runs
import glassnet.train
from glassnet.cli import main, read_run_config, typed_options
from glassnet.errors import FileFormatError

pytest.importorskip("sklearn")


REAL_STEP = glassnet.train._step


class CrashError(BaseException):
    """A crash that main() does not turn into an error message: as a kill, it ends the run."""


def crash_at_step(monkeypatch, n: int, tick=None) -> None:
    """Make the n-th training step raise CrashError (``tick`` is called at every step)."""
    calls = 0

    def step(*args):
        nonlocal calls
        calls += 1
        if tick is not None:
            tick()
        if calls == n:
            raise CrashError
        return REAL_STEP(*args)

    monkeypatch.setattr(glassnet.train, "_step", step)


def files(directory) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir())}


@pytest.fixture
def unfinished(tmp_path, monkeypatch):
    """A run directory whose run crashed in its second epoch, after a checkpoint."""
    out = tmp_path / "run"
    crash_at_step(monkeypatch, 17)
    with pytest.raises(CrashError):
        main([*DIGITS_RUN, "--out", str(out)])
    monkeypatch.undo()
    assert (out / "checkpoint.safetensors").exists() and not (out / "model.safetensors").exists()
    return out


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    out = tmp_path_factory.mktemp("finished")
    assert main([*DIGITS_RUN, "--epochs", "1", "--out", str(out)]) == 0
    return out


# --- 1. a new run never disturbs an earlier one ------------------------------------------------
@pytest.mark.parametrize(
    "extra",
    [
        [],  # --resume forgotten
        ["--dataset", "fashion-mnist", "--data-dir", "/nonexistent"],
        ["--lr", "0.5"],
        # told to discard the run, but unable to start: the old run must still be there
        ["--overwrite", "--dataset", "fashion-mnist", "--data-dir", "/nonexistent"],
        ["--overwrite", "--val-fraction", "0.0001"],
        ["--overwrite", "--model", "cnn"],
        ["--overwrite", "--momentum", "0.5"],
        ["--overwrite", "--val-fraction", "0", "--patience", "2"],
        ["--overwrite", "--shift", "2", "--dataset", "mnist1d", "--model", "mnist1d-mlp"],
        ["--overwrite", "--tensorboard", "__file__"],  # a file where the event files' folder goes
        ["--overwrite", "--metrics", "top10"],  # K as large as the 10 classes
    ],
)
def test_a_new_run_that_fails_or_was_not_asked_for_leaves_an_unfinished_run_alone(unfinished, extra, capsys):
    before = files(unfinished)
    extra = [str(unfinished / "config.json") if e == "__file__" else e for e in extra]
    assert main([*DIGITS_RUN, "--out", str(unfinished), *extra]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and err.startswith("glassnet train: error: ")
    if "--overwrite" not in extra:
        assert f"use --resume {unfinished} to continue it or --overwrite to discard it" in err
    assert files(unfinished) == before
    assert main(["train", "--resume", str(unfinished)]) == 0
    assert f"resuming from {unfinished}" in capsys.readouterr().out


@pytest.mark.parametrize("extra", [["--batch-size", "-1"], ["--batch-size", "0"], ["--l2", "nan"]])
def test_a_new_run_with_a_bad_value_leaves_an_unfinished_run_alone(unfinished, extra, capsys):
    before = files(unfinished)
    with pytest.raises(SystemExit) as e:
        main([*DIGITS_RUN, "--out", str(unfinished), *extra])
    assert e.value.code == 2 and files(unfinished) == before


def test_overwrite_discards_an_unfinished_run(unfinished, capsys):
    assert main([*DIGITS_RUN, "--epochs", "1", "--lr", "0.01", "--out", str(unfinished), "--overwrite"]) == 0
    assert json.loads((unfinished / "config.json").read_text())["lr"] == 0.01
    assert gn.load_metadata(unfinished / "model.safetensors")["epochs_run"] == 1


def test_overwrite_removes_the_old_runs_figures_too(tmp_path, capsys):
    out = tmp_path / "run"
    assert main([*DIGITS_RUN, "--epochs", "1", "--out", str(out), "--no-gradient-flow"]) == 0
    for name in glassnet.plots.RUN_FIGURES:  # as glassnet plot leaves them
        (out / name).write_bytes(b"an old run's figure")
    assert main([*DIGITS_RUN, "--epochs", "1", "--out", str(out), "--overwrite", "--no-gradient-flow"]) == 0
    assert not [name for name in glassnet.plots.RUN_FIGURES if (out / name).exists()]


def test_resume_takes_its_own_directory_however_it_is_written(unfinished, capsys, monkeypatch):
    monkeypatch.chdir(unfinished.parent)
    assert main(["train", "--resume", "run", "--out", "./run/"]) == 0
    assert main(["train", "--resume", "run", "--out", "other"]) == 2
    assert "--out other: a resumed run writes to its own directory run" in capsys.readouterr().err


def test_an_empty_out_is_refused_not_taken_for_the_default(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)  # an unset shell variable: --out "$RUN"
    assert main([*DIGITS_RUN, "--out", ""]) == 2
    assert "--out: empty; give the run's directory" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()


def test_an_out_that_is_a_file_is_refused_naming_it(tmp_path, capsys):
    (tmp_path / "outfile").write_text("not a run")
    assert main([*DIGITS_RUN, "--out", str(tmp_path / "outfile")]) == 2
    assert f"--out {tmp_path / 'outfile'}: a file, not a directory for the run" in capsys.readouterr().err
    assert (tmp_path / "outfile").read_text() == "not a run"


def test_the_class_count_comes_from_the_whole_training_set_not_the_split():
    """A large --val-fraction can leave the highest class out of the training part: the model
    must still have an output for it (the validation labels have it)."""
    t = glassnet.runs.prepare(glassnet.runs.TrainOptions(dataset="digits", model="mlp", val_fraction=0.999))
    assert t.train.n < 10 and int(t.train.y.max()) < 9 and t.classes == 10


@pytest.mark.parametrize(
    ("out", "message"),
    [("", "a file name prefix"), ("lrf/", "a file name prefix"), ("missing/a", "folder missing does not")],
)
def test_lr_find_checks_where_it_writes_before_the_range_test(out, message, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "lrf").mkdir()
    monkeypatch.setattr("glassnet.lr_find.lr_find", lambda *a, **k: pytest.fail("the range test ran"))
    assert main(["lr-find", "--dataset", "digits", "--out", out]) == 2
    assert message in capsys.readouterr().err


def test_a_new_run_over_a_finished_run_needs_overwrite(tmp_path, capsys):
    out = tmp_path / "run"
    assert main([*DIGITS_RUN, "--epochs", "1", "--out", str(out)]) == 0
    before = files(out)
    assert main([*DIGITS_RUN, "--epochs", "1", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert f"--out {out} holds a finished run" in err and "use --overwrite to replace it" in err
    assert files(out) == before
    # replaced: nothing of the old run's results survives beside the new run's
    assert main([*DIGITS_RUN, "--epochs", "1", "--out", str(out), "--overwrite", "--no-gradient-flow"]) == 0
    assert not (out / "gradient_flow.json").exists()
    assert json.loads((out / "config.json").read_text())["gradient_flow"] is False


def test_a_directory_with_only_a_config_or_a_model_counts_as_a_run(tmp_path, capsys):
    for name in ("config.json", "model.safetensors"):
        out = tmp_path / name
        out.mkdir()
        (out / name).write_text("{}")
        assert main([*DIGITS_RUN, "--out", str(out)]) == 2
        assert "holds an unfinished run" in capsys.readouterr().err
        assert (out / name).read_text() == "{}"


def test_overwrite_and_resume_exclude_each_other(finished, capsys):
    assert main(["train", "--resume", str(finished), "--overwrite"]) == 2
    assert "--overwrite discards a run and --resume continues it" in capsys.readouterr().err


# --- 2. --resume: the options typed, whatever their values -------------------------------------
def test_typed_options_are_those_on_the_command_line_even_at_their_defaults():
    assert typed_options(["--seed", "0", "--no-gradient-flow", "--dataset=fashion-mnist"]) == {
        "seed",
        "gradient_flow",
        "dataset",
    }
    assert typed_options(["--se", "0"]) == {"seed"}  # an abbreviation argparse accepts
    assert typed_options([]) == set()


def test_resume_refuses_options_that_differ_even_when_they_are_the_defaults(tmp_path, capsys):
    out = tmp_path / "D"
    train = ["train", "--dataset", "digits", "--model", "book", "--epochs", "1", "--seed", "3"]
    assert main([*train, "--out", str(out)]) == 0
    before = files(out)
    argv = ["train", "--resume", str(out), "--dataset", "fashion-mnist", "--seed", "0", "--model", "mlp"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    for option in ("--dataset fashion-mnist", "--seed 0", "--model mlp"):
        assert f"{option} differs from the resumed run's" in err
    assert main(["train", "--resume", str(out), "--gradient-flow", "--val-fraction", "0"]) == 2
    err = capsys.readouterr().err
    assert "--val-fraction 0.0 differs" in err and "--gradient-flow" not in err  # True agrees
    # options that agree are accepted, even typed
    assert main(["train", "--resume", str(out), "--seed", "3", "--model", "book"]) == 0
    assert files(out) == before


# --- 3. values checked by the parser, and in config.json ---------------------------------------
@pytest.mark.parametrize(
    ("command", "option", "value"),
    [
        ("train", "--batch-size", "0"),
        ("train", "--epochs", "0"),
        ("train", "--lr", "0"),
        ("train", "--lr", "inf"),
        ("train", "--lr", "nan"),
        ("train", "--momentum", "5"),
        ("train", "--momentum", "-0.1"),
        ("train", "--l2", "nan"),
        ("train", "--l2", "-1"),
        ("train", "--val-fraction", "-0.1"),
        ("train", "--val-fraction", "1"),
        ("train", "--patience", "-1"),
        ("train", "--shift", "-2"),
        ("train", "--checkpoint-every", "0"),
        ("train", "--seed", "-1"),
        ("train", "--seed", "1.5"),
        ("diagnose", "--subset", "-1"),
        ("diagnose", "--probe-size", "0"),
        ("diagnose", "--epochs", "0"),
        ("diagnose", "--lr", "-1"),
        ("lr-find", "--start", "0"),
        ("lr-find", "--end", "nan"),
        ("lr-find", "--steps", "5"),
        ("lr-find", "--train-size", "0"),
        ("lr-find", "--momentum", "1"),
        ("gradcheck", "--seed", "-1"),
        ("summary", "--classes", "0"),
        ("compare", "--workers", "0"),
    ],
)
def test_the_parser_refuses_values_out_of_range_naming_the_option(
    command, option, value, monkeypatch, capsys
):
    name = "cmd_" + command.replace("-", "_")
    monkeypatch.setattr(glassnet.cli, name, lambda args: 0)  # a value the parser lets through runs nothing
    positional = {"compare": ["x.toml"]}.get(command, [])
    with pytest.raises(SystemExit) as e:
        main([command, *positional, option, value])
    assert e.value.code == 2
    assert f"argument {option}: expected " in capsys.readouterr().err


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("batch_size", 0, "argument --batch-size: expected an integer >= 1"),
        ("lr", math.nan, "argument --lr: expected a finite number > 0"),
        ("val_fraction", -0.1, "argument --val-fraction: expected a number in [0, 1)"),
        ("epochs", 2.5, "argument --epochs: expected an integer >= 1, got '2.5'"),
        ("seed", True, "argument --seed: expected one argument"),  # to_argv writes a flag
    ],
)
def test_config_json_values_are_checked_as_the_command_line_checks_them(
    finished, tmp_path, key, value, message
):
    config = json.loads((finished / "config.json").read_text())
    path = tmp_path / "config.json"
    path.write_text(json.dumps({**config, key: value}))
    with pytest.raises(FileFormatError) as e:
        read_run_config(str(path))
    assert str(e.value).startswith(f"{path}: {message}")


def test_config_json_with_missing_or_unknown_keys_names_them(finished, tmp_path):
    config = json.loads((finished / "config.json").read_text())
    path = tmp_path / "config.json"
    del config["lr"]
    path.write_text(json.dumps({**config, "learning_rate": 0.1}))
    with pytest.raises(
        FileFormatError, match="the run's options lack lr and have unknown keys 'learning_rate'"
    ):
        read_run_config(str(path))


def test_config_json_values_that_look_like_options_are_values(finished, tmp_path):
    config = json.loads((finished / "config.json").read_text())
    path = tmp_path / "config.json"
    path.write_text(json.dumps({**config, "data_dir": "--lr", "tensorboard": "-x"}))
    assert read_run_config(str(path))["data_dir"] == "--lr"


def test_options_that_would_be_ignored_are_refused(tmp_path, capsys):
    cases = [
        (["--data-dir", str(tmp_path)], "--data-dir"),  # digits has no files
        (["--momentum", "0.9"], "--momentum 0.9: only --optimizer sgd takes a momentum, not adam"),
        (["--val-fraction", "0", "--patience", "3"], "--patience 3: early stopping needs a validation set"),
    ]
    for extra, message in cases:
        assert main([*DIGITS_RUN, "--out", str(tmp_path / "run"), *extra]) == 2
        assert message in capsys.readouterr().err
        assert not (tmp_path / "run").exists()
    # 0 is a value, not "the preset's": --momentum 0 with SGD is plain SGD
    argv = [*DIGITS_RUN, "--model", "book", "--optimizer", "sgd", "--momentum", "0", "--epochs", "1"]
    assert main([*argv, "--out", str(tmp_path / "sgd")]) == 0


def test_lr_find_refuses_an_end_below_the_start(capsys):
    assert main(["lr-find", "--dataset", "digits", "--start", "1", "--end", "0.1"]) == 2
    assert "--end 0.1 must be larger than --start 1.0" in capsys.readouterr().err


# --- 4. one line for every error, never a traceback --------------------------------------------
@pytest.mark.parametrize(
    "argv",
    [
        [
            "train",
            "--dataset",
            "digits",
            "--model",
            "mlp",
            "--optimizer",
            "sgd",
            "--lr",
            "1e6",
            "--epochs",
            "1",
        ],
        [
            "diagnose",
            "--dataset",
            "digits",
            "--model",
            "mlp",
            "--optimizer",
            "sgd",
            "--lr",
            "1e6",
            "--subset",
            "300",
        ],
    ],
)
def test_a_diverging_run_is_a_one_line_error(argv, tmp_path, capsys):
    out = ["--out", str(tmp_path / "run")] if argv[0] == "train" else []
    assert main([*argv, *out]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert err.startswith(f"glassnet {argv[0]}: error: the training diverged: the training loss became")
    assert "at epoch 1, batch " in err and err.endswith("try a lower --lr than 1000000.0")


@pytest.mark.parametrize(
    ("exception", "code", "message"),
    [
        (KeyError("x"), 3, "internal error: KeyError: 'x' (a bug in glassnet; set GLASSNET_TRACEBACK=1"),
        (TypeError("bad\nthing"), 3, "internal error: TypeError: bad thing (a bug in glassnet"),
        (MemoryError("Unable to allocate 9 TiB"), 2, "error: out of memory: Unable to allocate 9 TiB"),
        (FileFormatError("f.json", "broken"), 2, "error: f.json: broken"),
        (PermissionError(13, "Permission denied", "x"), 2, "error: x: permission denied"),
        (
            FileNotFoundError(2, "No such file or directory", "m.safetensors"),
            2,
            "error: m.safetensors: no such file or directory",
        ),  # fmt: skip
        (OSError("no file name"), 2, "error: no file name"),
    ],
)
def test_main_turns_exceptions_into_one_line(monkeypatch, capsys, exception, code, message):
    def fail(args):
        raise exception

    monkeypatch.setattr(glassnet.cli, "cmd_gradcheck", fail)
    monkeypatch.delenv("GLASSNET_TRACEBACK", raising=False)
    assert main(["gradcheck"]) == code
    err = capsys.readouterr().err
    assert err.startswith(f"glassnet gradcheck: {message}") and len(err.splitlines()) == 1
    if code == 3:
        monkeypatch.setenv("GLASSNET_TRACEBACK", "1")
        with pytest.raises(type(exception)):
            main(["gradcheck"])


def test_a_checkpoint_holding_nan_is_refused_naming_the_file_and_tensor(tmp_path, monkeypatch, capsys):
    real_save = glassnet.checkpoint.Run.save

    def save_nan_and_crash(self, path, pos):  # damage, written by the real writer (checksums too)
        self.model.parameters()[0].data.flat[0] = np.nan
        real_save(self, path, pos)
        raise CrashError

    out = tmp_path / "run"
    monkeypatch.setattr(glassnet.checkpoint.Run, "save", save_nan_and_crash)
    with pytest.raises(CrashError):
        main([*DIGITS_RUN, "--out", str(out)])
    monkeypatch.undo()
    assert main(["train", "--resume", str(out)]) == 2
    err = capsys.readouterr().err
    assert "checkpoint.safetensors: tensor 'model/" in err and "holds NaN or infinite values" in err


# --- 5. the training time of a resumed run; a finished run is not rewritten --------------------
class Clock:
    """A perf_counter that moves 10 s per training step and stands still otherwise."""

    def __init__(self):
        self.now = 0.0

    def perf_counter(self):
        return self.now

    def tick(self):
        self.now += 10.0


def test_resume_adds_to_the_time_spent_before_the_crash(tmp_path, monkeypatch, capsys):
    clock = Clock()
    monkeypatch.setattr(glassnet.cli, "time", clock)
    whole = tmp_path / "whole"
    crash_at_step(monkeypatch, 0, clock.tick)  # never crashes: counts the steps of a whole run
    assert main([*DIGITS_RUN, "--out", str(whole)]) == 0
    total = gn.load_metadata(whole / "model.safetensors")["train_seconds"]
    assert total > 170

    clock.now = 0.0
    out = tmp_path / "run"
    crash_at_step(monkeypatch, 17, clock.tick)  # after the checkpoint of step 16
    with pytest.raises(CrashError):
        main([*DIGITS_RUN, "--out", str(out)])
    crash_at_step(monkeypatch, 0, clock.tick)
    capsys.readouterr()
    assert main(["train", "--resume", str(out)]) == 0
    # 16 steps before the checkpoint, the rest after it: the crashed step is redone, counted once
    assert gn.load_metadata(out / "model.safetensors")["train_seconds"] == total
    assert json.loads((out / "history.json").read_text())["train_seconds"] == total
    resumed = total - 160
    assert f"{total:.0f} s, {resumed:.0f} s of it in this resume); saved" in capsys.readouterr().out


def test_resume_of_a_finished_run_rewrites_nothing(finished, capsys):
    before = files(finished)
    mtimes = {p.name: p.stat().st_mtime_ns for p in finished.iterdir()}
    assert main(["train", "--resume", str(finished)]) == 0
    out = capsys.readouterr().out
    result = gn.load_metadata(finished / "model.safetensors")["test"]
    assert f"glassnet: {finished} is a finished run; nothing to resume" in out
    assert f"test accuracy: {100 * result['accuracy']:.2f}%" in out
    assert files(finished) == before
    assert {p.name: p.stat().st_mtime_ns for p in finished.iterdir()} == mtimes


def test_a_run_killed_before_its_history_was_written_is_finished_by_resume(tmp_path, capsys):
    out = tmp_path / "run"
    assert main([*DIGITS_RUN, "--epochs", "1", "--out", str(out)]) == 0
    seconds = gn.load_metadata(out / "model.safetensors")["train_seconds"]
    (out / "history.json").unlink()  # as a kill between model.safetensors and history.json
    assert main([*DIGITS_RUN, "--epochs", "1", "--out", str(out)]) == 2
    assert "holds an unfinished run" in capsys.readouterr().err
    assert main(["train", "--resume", str(out)]) == 0
    assert json.loads((out / "history.json").read_text())["epochs_run"] == 1
    assert gn.load_metadata(out / "model.safetensors")["train_seconds"] == pytest.approx(seconds, abs=0.5)


@pytest.mark.parametrize("argv", [["train", "--epochs", "0"], ["train", "--no-such-option"], ["nonsense"]])
def test_a_usage_error_is_one_line_naming_the_option(argv, capsys):
    # argparse printed the whole usage first: two or more lines where every other error has one
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and ": error: " in err and "--help)" in err, err


def test_an_mnist1d_preset_trains_on_mnist1d_unless_told_otherwise(tmp_path, capsys, monkeypatch):
    # without --dataset, --model mnist1d-* trained on Fashion-MNIST (a 784-step GRU)
    seen = []
    real = glassnet.runs.load_dataset

    def spy(name, data_dir):
        seen.append(name)
        return real("digits", None)  # the training itself is not what is tested

    monkeypatch.setattr(glassnet.runs, "load_dataset", spy)
    monkeypatch.setattr(glassnet.train, "fit", lambda *a, **k: (_ for _ in ()).throw(ValueError("stop")))
    main(["train", "--model", "mnist1d-logistic", "--epochs", "1", "--out", str(tmp_path / "a")])
    main(["train", "--model", "mlp", "--epochs", "1", "--out", str(tmp_path / "b")])
    main(["train", "--model", "mnist1d-logistic", "--dataset", "digits", "--out", str(tmp_path / "c")])
    assert seen == ["mnist1d", "fashion-mnist", "digits"]
