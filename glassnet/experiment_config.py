"""The experiment file: a base configuration plus named variants, read from TOML and checked strictly;
and the result files (one JSON per run) that ``experiments`` writes and ``report`` reads.

::

    name = "dropout-study"     # optional, shown in the report
    baseline = "none"          # the variant the others are compared with (default: the first)
    seeds = 5                  # N (seeds 0..N-1) or a list of distinct seeds, e.g. [0, 1, 2]

    [data]                     # the same for every variant and run
    dataset = "fashion-mnist"  # fashion-mnist | mnist | digits
    train_size = 5000          # a random subset of the training set; 0 = all of it
    test_size = 0              # the first test_size test examples; 0 = all of them
    subset_seed = 0            # which subset (fixed: every run sees the same examples)
    holdout = 0                # > 0: evaluate on this many training examples outside the subset
                               # instead of the test set (to tune without looking at the test set)

    [train]
    epochs = 40
    batch_size = 128
    ensemble = 1               # K > 1: K independently trained members, predictions combined
    ensemble_mode = "average"  # average (of softmax probabilities) | vote (majority, ties to the lower class)
    schedule = "none"          # none | cosine (over the epochs)

    [model]                    # an MLP: Flatten, [dropout], per hidden size: Linear, activation, [dropout]
    hidden = [512, 512]
    activation = "relu"        # relu | tanh | sigmoid | gelu | elu | leaky_relu
    init = "he_uniform"        # any gn.init name
    input_dropout = 0.0        # drop probability on the input
    hidden_dropout = 0.0       # drop probability after each hidden activation
    dropout = "bernoulli"      # bernoulli (gn.Dropout) | gaussian (gn.GaussianDropout, the same rates)
    # or instead: preset = "mlp" (a gn.models preset's network; no other model keys)

    [optimizer]
    name = "adam"              # sgd | adam | adamw | rmsprop | adagrad
    lr = 1e-3
    momentum = 0.0             # sgd only

    [regularizer]
    kind = "none"              # none | l1 (key l1) | l2 (key l2) | elastic (l1, l2)
                               # | dropout-penalty (p_input, p_hidden, scale): gn.FixedDropoutPenalty

    [variants.none]            # no changes: the base itself
    [variants.dropout]
    model = { input_dropout = 0.2, hidden_dropout = 0.5 }
    [variants.l2]
    regularizer = { kind = "l2", l2 = 1e-4 }

A variant may hold the tables ``train``, ``model``, ``optimizer`` and ``regularizer``.
``train``, ``optimizer`` and ``model`` change the base key by key (a ``model`` with ``preset``
replaces it); ``regularizer`` replaces the base's whole (its keys depend on ``kind``). ``data``
cannot change: variants are compared on the same examples. Unknown keys, wrong types, values
out of range and missing tables raise ``ConfigError`` naming the file, the key and what was
expected; no other exception escapes ``load_config`` or ``parse_config``. The sizes in ``[data]``
need the data set's own sizes: ``check_data_sizes`` compares them, and ``compare`` calls it once
it has loaded the data set, before any run starts.
"""

from __future__ import annotations

import math
import os
import re
import tomllib
from dataclasses import dataclass

from .choices import OPTIMIZERS
from .errors import FileFormatError
from .io import open_regular, read_json
from .module import is_int

DATASETS = ("fashion-mnist", "mnist", "digits")
ACTIVATIONS = ("relu", "tanh", "sigmoid", "gelu", "elu", "leaky_relu")
INITS = ("torch_default", "he_uniform", "he_normal", "glorot_uniform", "glorot_normal",
         "lecun_uniform", "lecun_normal", "book_normal", "standard_normal")  # fmt: skip
REGULARIZERS = {  # kind -> the keys it uses
    "none": (),
    "l1": ("l1",),
    "l2": ("l2",),
    "elastic": ("l1", "l2"),
    "dropout-penalty": ("p_input", "p_hidden", "scale"),
}
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")  # a variant name is a directory name
_RESERVED = ("experiment.json", "report.md", "curves.png")  # written in the same directory


class ConfigError(ValueError):
    """A malformed experiment file or dictionary; the message names the source and the key."""


@dataclass(frozen=True)
class Experiment:
    """A checked experiment: each variant's complete configuration (base with its changes)."""

    name: str
    baseline: str
    seeds: tuple[int, ...]
    variants: dict[str, dict]  # name -> {"data", "train", "model", "optimizer", "regularizer"}
    source: str = "<dict>"


# --- the schema: key -> (kind, default, check); the check returns an error message or None ----------
def _one_of(options):
    return lambda v: None if v in options else f"expected one of {', '.join(map(repr, options))}"


def _at_least(low):
    return lambda v: None if v >= low else f"expected a number >= {low}"


def _probability(v):
    return None if 0.0 <= v < 1.0 else "expected a probability in [0, 1)"


def _positive(v):
    return None if v > 0 else "expected a number > 0"


def _sizes(v):
    return None if all(h >= 1 for h in v) else "expected a list of layer sizes >= 1"


REQUIRED = object()
SCHEMA: dict[str, dict[str, tuple]] = {
    "data": {
        "dataset": ("str", REQUIRED, _one_of(DATASETS)),
        "train_size": ("int", 0, _at_least(0)),
        "test_size": ("int", 0, _at_least(0)),
        "subset_seed": ("int", 0, _at_least(0)),
        "holdout": ("int", 0, _at_least(0)),
    },
    "train": {
        "epochs": ("int", REQUIRED, _at_least(1)),
        "batch_size": ("int", 128, _at_least(1)),
        "ensemble": ("int", 1, _at_least(1)),
        "ensemble_mode": ("str", "average", _one_of(("average", "vote"))),
        "schedule": ("str", "none", _one_of(("none", "cosine"))),
    },
    "model": {
        "preset": ("str", None, None),  # checked against gn.models.PRESETS below
        "hidden": ("ints", [256], _sizes),
        "activation": ("str", "relu", _one_of(ACTIVATIONS)),
        "init": ("str", "he_uniform", _one_of(INITS)),
        "input_dropout": ("float", 0.0, _probability),
        "hidden_dropout": ("float", 0.0, _probability),
        "dropout": ("str", "bernoulli", _one_of(("bernoulli", "gaussian"))),
    },
    "optimizer": {
        "name": ("str", "adam", _one_of(OPTIMIZERS)),
        "lr": ("float", 1e-3, _positive),
        "momentum": ("float", 0.0, _probability),
    },
    "regularizer": {
        "kind": ("str", "none", _one_of(tuple(REGULARIZERS))),
        "l1": ("float", REQUIRED, _at_least(0.0)),
        "l2": ("float", REQUIRED, _at_least(0.0)),
        "p_input": ("float", REQUIRED, _probability),
        "p_hidden": ("float", REQUIRED, _probability),
        "scale": ("float", 1.0, _at_least(0.0)),
    },
}
_KINDS = {"str": "a string", "int": "an integer", "float": "a number", "ints": "a list of integers"}


def _value(source: str, where: str, key: str, kind: str, check, value):
    """``value`` converted to ``kind`` (ints stay ints, numbers become floats), or ConfigError."""
    ok = {
        "str": isinstance(value, str),
        "int": is_int(value),
        "float": isinstance(value, (int, float)) and not isinstance(value, bool),
        "ints": isinstance(value, list) and all(is_int(v) for v in value),
    }[kind]
    if not ok:
        raise ConfigError(f"{source}: {where} {key}: expected {_KINDS[kind]}, got {value!r}")
    if kind == "float":
        value = float(value)
        if not math.isfinite(value):
            raise ConfigError(f"{source}: {where} {key}: expected a finite number, got {value!r}")
    if kind == "ints":
        value = list(value)
    problem = check(value) if check is not None else None
    if problem:
        raise ConfigError(f"{source}: {where} {key}: {problem}, got {value!r}")
    return value


def _table(source: str, where: str, value) -> dict:
    if not isinstance(value, dict):
        raise ConfigError(f"{source}: {where}: expected a table, got {value!r}")
    return value


def _check_keys(source: str, where: str, table: dict, allowed) -> None:
    unknown = sorted(str(k) for k in table if k not in allowed)
    if unknown:
        raise ConfigError(
            f"{source}: {where}: unknown key {unknown[0]!r}; expected one of {', '.join(sorted(allowed))}"
        )


def _section(source: str, where: str, name: str, table: dict, base: dict | None) -> dict:
    """``table`` (one section) checked and laid over ``base`` (or the defaults), complete."""
    schema = SCHEMA[name]
    table = _table(source, where, table)
    _check_keys(source, where, table, schema)
    if name == "regularizer":
        return _regularizer(source, where, table)
    if name == "model":
        return _model(source, where, table, base)
    out = dict(base) if base is not None else {}
    for key, value in table.items():
        kind, _, check = schema[key]
        out[key] = _value(source, where, key, kind, check, value)
    for key, (_, default, _) in schema.items():
        if key not in out:
            if default is REQUIRED:
                raise ConfigError(f"{source}: {where}: missing key {key!r}")
            out[key] = default
    return out


def _model(source: str, where: str, table: dict, base: dict | None) -> dict:
    schema = SCHEMA["model"]
    if "preset" in table:
        from .models import PRESETS

        if len(table) > 1:
            raise ConfigError(f"{source}: {where}: 'preset' takes no other model keys, got {sorted(table)}")
        preset = _value(source, where, "preset", "str", _one_of(tuple(sorted(PRESETS))), table["preset"])
        return {"preset": preset}
    if base is not None and "preset" in base:
        raise ConfigError(f"{source}: {where}: cannot change keys of the base's preset {base['preset']!r}")
    out = dict(base) if base is not None else {k: d for k, (_, d, _) in schema.items() if k != "preset"}
    for key, value in table.items():
        kind, _, check = schema[key]
        out[key] = _value(source, where, key, kind, check, value)
    return out


def _regularizer(source: str, where: str, table: dict) -> dict:
    schema = SCHEMA["regularizer"]
    kind = _value(source, where, "kind", "str", _one_of(tuple(REGULARIZERS)), table.get("kind", "none"))
    uses = REGULARIZERS[kind]
    out = {"kind": kind}
    for key in table:
        if key != "kind" and key not in uses:
            raise ConfigError(
                f"{source}: {where} {key}: not used by kind {kind!r} "
                f"(which takes {', '.join(uses) or 'nothing'})"
            )
    for key in uses:
        typ, default, check = schema[key]
        if key not in table:
            if default is REQUIRED:
                raise ConfigError(f"{source}: {where}: kind {kind!r} needs key {key!r}")
            out[key] = default
        else:
            out[key] = _value(source, where, key, typ, check, table[key])
    return out


# --- the whole file -------------------------------------------------------------------------------
def parse_config(raw, source: str = "<dict>") -> Experiment:
    """Check a dictionary with the layout of the experiment file and resolve every variant."""
    raw = _table(source, "the experiment", raw)
    _check_keys(source, "top level", raw, {"name", "baseline", "seeds", "variants", *SCHEMA})
    name = _value(source, "top level", "name", "str", None, raw.get("name", ""))
    for section in ("data", "train", "variants"):
        if section not in raw:
            raise ConfigError(f"{source}: missing table [{section}]")
    base = {s: _section(source, f"[{s}]", s, raw.get(s, {}), None) for s in SCHEMA}
    variants_raw = _table(source, "[variants]", raw["variants"])
    if not variants_raw:
        raise ConfigError(f"{source}: [variants]: expected at least one variant")
    variants = {}
    for vname, changes in variants_raw.items():
        if not isinstance(vname, str) or not _NAME.fullmatch(vname):
            raise ConfigError(
                f"{source}: [variants.{vname}]: a variant name must be letters, digits, '_', '.' or '-' "
                "(it becomes a directory name), starting with a letter or digit, at most 64 characters"
            )
        if vname in _RESERVED:
            raise ConfigError(
                f"{source}: [variants.{vname}]: the name of a file the report writes beside the variants"
            )
        where = f"[variants.{vname}]"
        changes = _table(source, where, changes)
        _check_keys(source, where, changes, {"train", "model", "optimizer", "regularizer"})
        variants[vname] = {
            s: _section(source, f"[variants.{vname}.{s}]", s, changes[s], base[s])
            if s in changes
            else base[s]
            for s in SCHEMA
        }
    baseline = _value(source, "top level", "baseline", "str", None, raw.get("baseline", next(iter(variants))))
    if baseline not in variants:
        raise ConfigError(
            f"{source}: top level baseline: {baseline!r} is not a variant ({', '.join(variants)})"
        )
    return Experiment(name, baseline, _seeds(source, raw.get("seeds", 5)), variants, source)


def _seeds(source: str, seeds) -> tuple[int, ...]:
    if is_int(seeds):
        if not 1 <= seeds <= 10_000:
            raise ConfigError(f"{source}: top level seeds: expected a count in 1..10000, got {seeds}")
        return tuple(range(seeds))
    value = _value(source, "top level", "seeds", "ints", None, seeds)
    if not value or len(set(value)) != len(value) or min(value) < 0:
        raise ConfigError(f"{source}: top level seeds: expected distinct non-negative seeds, got {value!r}")
    return tuple(value)


def check_data_sizes(data: dict, n_train: int, n_test: int, source: str = "<dict>") -> None:
    """Refuse a checked ``[data]`` table that asks for more examples than its data set holds
    (``n_train`` training and ``n_test`` test examples, counted on the loaded data): a
    ``ConfigError`` naming the key, the data set's size and the value. ``holdout`` must leave at
    least one training example, ``train_size`` fit beside the holdout, and ``test_size`` (used
    only without a holdout) fit in the test set."""
    name, holdout = data["dataset"], data["holdout"]
    where = f"{source}: [data]"
    if holdout > n_train - 1:
        raise ConfigError(
            f"{where} holdout: expected at most {n_train - 1} ({name} has {n_train} training examples, "
            f"and at least one must be left to train on), got {holdout}"
        )
    if data["train_size"] > n_train - holdout:
        beside = f", {holdout} of them held out" if holdout else ""
        raise ConfigError(
            f"{where} train_size: expected at most {n_train - holdout} ({name} has {n_train} training "
            f"examples{beside}), got {data['train_size']}"
        )
    if not holdout and data["test_size"] > n_test:
        raise ConfigError(
            f"{where} test_size: expected at most {n_test} ({name} has {n_test} test examples), "
            f"got {data['test_size']}"
        )


def load_config(path: str | os.PathLike) -> Experiment:
    """Read and check an experiment TOML file; any defect raises ``ConfigError`` naming ``path``."""
    source = os.fspath(path)
    try:
        with open_regular(source) as f:  # a FIFO would block the read
            raw = tomllib.load(f)
    except FileFormatError as e:
        raise ConfigError(str(e)) from None
    except OSError as e:
        raise ConfigError(f"{source}: cannot read the file: {e.strerror or e}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError, ValueError, RecursionError) as e:
        raise ConfigError(f"{source}: not valid TOML: {e}") from None
    return parse_config(raw, source)


# --- the result files: one JSON file per run, written by experiments, read by report -----------
RESULT_FORMAT = 1


def result_path(out_dir: str | os.PathLike, variant: str, seed: int) -> str:
    return os.path.join(os.fspath(out_dir), variant, f"seed{seed}.json")


def read_result(path: str) -> dict | None:
    """A result file's contents, or None if it is missing, unreadable or not a result."""
    try:
        result = read_json(path)  # a FIFO is refused, not waited on
    except (OSError, ValueError):
        return None
    if not isinstance(result, dict) or result.get("format") != RESULT_FORMAT:
        return None
    return result


__all__ = [
    "RESULT_FORMAT",
    "ConfigError",
    "Experiment",
    "check_data_sizes",
    "load_config",
    "parse_config",
    "read_result",
    "result_path",
]
