"""glassnet.runs: a train run as a library call; config.json checked without the parser; the
data sets and optimizers named once (glassnet.choices)."""

from __future__ import annotations

import argparse
import json

import pytest

import glassnet as gn
from glassnet import choices, cli, experiment_config, experiments
from glassnet.errors import FileFormatError
from glassnet.runs import RUN_OPTIONS, TrainOptions, read_run_config, train_run

pytest.importorskip("sklearn")  # the digits data set

OPTIONS = TrainOptions(dataset="digits", model="book", epochs=1, seed=2, gradient_flow=False)


def test_train_run_trains_into_a_directory_and_resume_reads_a_finished_run_back(tmp_path):
    lines: list[str] = []
    result = train_run(OPTIONS, str(tmp_path / "run"), say=lines.append)
    assert result.epochs == 1 and result.test == gn.load_metadata(tmp_path / "run/model.safetensors")["test"]
    assert lines[0].startswith("glassnet: training book on digits") and not result.resumed
    assert json.loads((tmp_path / "run/config.json").read_text()) == vars(OPTIONS)
    assert result.line().startswith(f"test accuracy: {100 * result.test['accuracy']:.2f}%")
    again = train_run(None, resume=str(tmp_path / "run"), say=lines.append)
    assert lines[-1] == f"glassnet: {tmp_path / 'run'} is a finished run; nothing to resume"
    assert (again.test, again.epochs, again.session) == (result.test, 1, None)
    with pytest.raises(FileExistsError, match="holds a finished run"):
        train_run(OPTIONS, str(tmp_path / "run"))
    with pytest.raises(ValueError, match="--seed 3 differs from the resumed run's 2"):
        train_run(TrainOptions(seed=3), resume=str(tmp_path / "run"), given={"seed"})


def test_read_run_config_runs_no_parser(tmp_path, monkeypatch):
    """config.json is checked by the option values' own checks, not by argparse with its
    output redirected."""
    path = tmp_path / "config.json"
    path.write_text(json.dumps({**vars(TrainOptions()), "flip": True, "lr": 0.5}))

    def no_parser(*args, **kwargs):
        raise AssertionError("argparse was run")

    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", no_parser)
    assert read_run_config(str(path))["lr"] == 0.5


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("flip", 1, "holds values of the wrong types for the train options: flip is 1"),
        ("gradient_flow", None, "gradient_flow is null"),
        ("lr", 1, "lr is 1"),  # an int where the parser makes a float
        ("optimizer", "sgdd", "argument --optimizer: invalid choice: 'sgdd'"),
        ("schedule", 3, "schedule is 3"),
        ("momentum", 1.0, "argument --momentum: expected a number in [0, 1), got '1.0'"),
        ("shift", -1, "argument --shift: expected an integer >= 0, got '-1'"),
        ("tensorboard", ["x"], 'tensorboard is ["x"]'),
        ("lr", True, "argument --lr: expected one argument, not true"),
    ],
)
def test_every_kind_of_bad_config_value_is_named(tmp_path, key, value, message):
    path = tmp_path / "config.json"
    path.write_text(json.dumps({**vars(TrainOptions()), key: value}))
    with pytest.raises(FileFormatError) as e:
        read_run_config(str(path))
    assert message in str(e.value)


def test_the_choices_are_listed_once():
    parser = cli.build_parser()
    commands = parser._subparsers._group_actions[0].choices  # argparse keeps them only here
    for command in ("train", "diagnose", "lr-find"):
        (action,) = [a for a in commands[command]._actions if a.dest == "optimizer"]
        assert action.choices is choices.OPTIMIZERS
        (action,) = [a for a in commands[command]._actions if a.dest == "dataset"]
        assert action.choices is choices.DATASETS
    assert experiment_config.OPTIMIZERS is choices.OPTIMIZERS
    assert set(RUN_OPTIONS) == set(vars(cli.train_parser().parse_args([]))) - {"out", "resume", "overwrite"}


def test_experiments_build_their_optimizer_with_the_shared_switch():
    model = gn.Sequential(gn.Linear(2, 2))
    sgd = experiments.make_optimizer({"name": "sgd", "lr": 0.1, "momentum": 0.9}, model.parameters())
    assert type(sgd) is gn.optim.SGD and sgd.momentum == 0.9
    adam = experiments.make_optimizer({"name": "adam", "lr": 0.1, "momentum": 0.9}, model.parameters())
    assert type(adam) is gn.optim.Adam  # an experiment file's momentum is SGD's only, as it says
    with pytest.raises(ValueError, match="only --optimizer sgd takes a momentum, not adamw"):
        choices.make_optimizer("adamw", model.parameters(), 0.1, 0.9)


def test_a_presets_flips_are_off_on_the_digit_sets_unless_asked_for():
    """The resnet, vit and vgg-small presets flip Fashion-MNIST's garments (a mirrored shirt is a
    shirt); on mnist and digits those flips trained on mirrored 2s, 3s and 7s. Now the preset's
    flips stay off there, its shifts stay on, and --flip still turns flips on."""
    from glassnet.runs import prepare

    for model in ("resnet", "vit", "vgg-small"):
        digits = prepare(TrainOptions(dataset="digits", model=model, epochs=1))
        assert (digits.augment.shift, digits.augment.flip) == (2, False)
        asked = prepare(TrainOptions(dataset="digits", model=model, epochs=1, flip=True))
        assert asked.augment.flip is True
    fashion = prepare(TrainOptions(dataset="fashion-mnist", model="vit", epochs=1))
    assert (fashion.augment.shift, fashion.augment.flip) == (2, True)
