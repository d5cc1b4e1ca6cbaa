"""The named choices the command line and experiment files share: data sets and optimizers.

Each list is written once here: ``glassnet train``'s parser, ``diagnose``, ``lr-find``,
the experiment files (``glassnet.experiment_config``) and the runs they describe
(``glassnet.runs``, ``glassnet.experiments``) all take their names and their switch from it.
"""

from __future__ import annotations

DATASETS = ("fashion-mnist", "mnist", "digits", "mnist1d")
# the handwritten digits, which a horizontal flip does not keep in their class (a mirrored 2, 3, 7)
DIGIT_DATASETS = ("mnist", "digits")
OPTIMIZERS = ("sgd", "adam", "adamw", "rmsprop", "adagrad")
SCHEDULES = ("none", "cosine")


def load_dataset(name: str, data_dir: str | None = None):
    """The ``(train, test)`` data sets called ``name``; ``data_dir`` holds the IDX files of
    fashion-mnist and mnist (None: search the usual places)."""
    from . import datasets

    if data_dir is not None and name not in ("fashion-mnist", "mnist"):
        # the generated and bundled data sets have no files to point at: an ignored option
        # would leave the user believing their files were used
        raise ValueError(
            f"--data-dir {data_dir}: only fashion-mnist and mnist read IDX files; {name} has none"
        )
    if data_dir is not None:
        datasets.check_data_dir(data_dir, "--data-dir")  # named as typed, before the loader's own check
    if name == "fashion-mnist":
        return datasets.load_fashion_mnist(path=data_dir)
    if name == "mnist":
        return datasets.load_mnist(path=data_dir)
    if name == "digits":
        return datasets.load_digits()
    if name == "mnist1d":
        return datasets.load_mnist1d()
    raise ValueError(f"--dataset {name!r}: expected one of {', '.join(DATASETS)}")


def make_optimizer(name: str, params, lr: float, momentum: float = 0.0):
    """The optimizer called ``name`` (one of ``OPTIMIZERS``) over ``params``; only SGD takes a
    ``momentum``, and a nonzero one for another is refused rather than ignored."""
    from . import optim

    if name == "sgd":
        return optim.SGD(params, lr=lr, momentum=momentum)
    if momentum:  # the adaptive optimizers have no momentum option: it would be ignored
        raise ValueError(f"--momentum {momentum}: only --optimizer sgd takes a momentum, not {name}")
    classes = {"adam": optim.Adam, "adamw": optim.AdamW, "rmsprop": optim.RMSprop, "adagrad": optim.Adagrad}
    if name not in classes:
        raise ValueError(f"optimizer {name!r}: expected one of {', '.join(OPTIMIZERS)}")
    return classes[name](params, lr=lr)


def momentum_for(optimizer: str, typed: float | None, preset) -> float:
    """The momentum a run uses: the one typed (``--momentum``), else the preset's where the run
    trains with SGD (a preset's momentum belongs to its SGD recipe: ``--optimizer adam`` on an
    SGD preset takes none), else 0."""
    if typed is not None:
        return typed
    return preset.momentum if optimizer == "sgd" else 0.0


__all__ = [
    "DATASETS",
    "DIGIT_DATASETS",
    "OPTIMIZERS",
    "SCHEDULES",
    "load_dataset",
    "make_optimizer",
    "momentum_for",
]
