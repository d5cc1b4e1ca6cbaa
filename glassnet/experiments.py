"""Experiments with statistics: every variant of a configuration trained over several seeds.

One run is one (variant, seed): build the variant's model from the seed, train it, and record
the test loss and accuracy after every epoch. ``compare`` runs them all, in parallel worker
processes on this machine (one per core by default) or on a Dask cluster, and writes each
finished run to ``OUT/<variant>/seed<k>.json`` atomically, so an interrupted experiment started
again skips what is done. ``glassnet.report`` then summarises the files (means, confidence
intervals, Welch tests against the baseline, learning curves).

    import glassnet as gn
    exp = gn.experiments.load_config("experiments/dropout_study.toml")
    results = gn.experiments.compare(exp, "results/dropout")      # also writes report.md, curves.png

Reproducibility: a run is a function of its configuration and its seed only. The seed seeds a
``numpy.random.SeedSequence``; member j of an ensemble (j = 0 for a single network) draws
initial weights, shuffling and dropout masks from its child ``spawn(K)[j]``, so member 0 of an
ensemble is the single network of the same seed, and a run gives bit-identical numbers in this
process, in a pool worker or on a Dask worker (BLAS is single-threaded in pool workers).
The training subset is drawn once from ``subset_seed``, the same for every run.

Pool workers exit when the process that started them dies, even by ``kill -9``: each watches
its parent (see ``_worker_init``), so an interrupted experiment leaves no process behind.
"""

from __future__ import annotations

import functools
import json
import math
import multiprocessing
import os
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from contextlib import contextmanager

import numpy as np
from scipy.special import logsumexp

from . import choices
from .experiment_config import (
    RESULT_FORMAT,
    ConfigError,
    Experiment,
    check_data_sizes,
    load_config,
    parse_config,
    read_result,
    result_path,
)
from .lr_find import LRFindResult, lr_find

# BLAS threads in pool workers: N workers x 1 thread fill N cores without oversubscription,
# and a single-threaded GEMM gives the same bits whichever worker runs it
_WORKER_ENV = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


# --- building a run from its configuration ---------------------------------------------------
@functools.lru_cache(maxsize=2)  # a worker process loads the data set once, not once per run
def _load_data(data_json: str):
    from .data import Dataset

    cfg = json.loads(data_json)
    train, test = choices.load_dataset(cfg["dataset"])
    check_data_sizes(cfg, train.n, test.n)
    if cfg["train_size"] or cfg["holdout"]:
        size = cfg["train_size"] or train.n - cfg["holdout"]
        order = np.random.default_rng(cfg["subset_seed"]).permutation(train.n)
        if cfg["holdout"]:  # evaluate on training examples outside the subset, never on the test set
            rest = np.sort(order[size : size + cfg["holdout"]])
            test = Dataset(train.x[rest], train.y[rest])
        idx = np.sort(order[:size])
        train = Dataset(train.x[idx], train.y[idx])
    if cfg["test_size"] and not cfg["holdout"]:
        test = Dataset(test.x[: cfg["test_size"]], test.y[: cfg["test_size"]])
    return train, test


def load_data(data: dict):
    """The (train, test) pair an experiment's ``[data]`` table describes (cached per process);
    a ``ConfigError`` if it asks for more examples than the data set holds."""
    return _load_data(json.dumps(data, sort_keys=True))


def build_model(cfg: dict, rng: np.random.Generator, in_shape: tuple[int, ...], classes: int):
    """The variant's network: a preset's, or Flatten, [dropout], (Linear, activation, [dropout])
    per hidden size, Linear. Dropout layers draw nothing at construction, so variants that differ
    only in dropout start from the same weights for the same seed."""
    from . import layers as L
    from . import models
    from .module import Sequential

    if "preset" in cfg:
        return models.build(cfg["preset"], rng, in_shape, classes)
    act = {"relu": L.ReLU, "tanh": L.Tanh, "sigmoid": L.Sigmoid, "gelu": L.GELU, "elu": L.ELU,
           "leaky_relu": L.LeakyReLU}[cfg["activation"]]  # fmt: skip
    noise = L.GaussianDropout if cfg["dropout"] == "gaussian" else L.Dropout

    def drop(p):
        return [noise(p, rng=rng)] if p > 0 else []

    net, n = [L.Flatten(), *drop(cfg["input_dropout"])], math.prod(in_shape)
    for h in cfg["hidden"]:
        net += [L.Linear(n, h, init=cfg["init"], rng=rng), act(), *drop(cfg["hidden_dropout"])]
        n = h
    return Sequential(*net, L.Linear(n, classes, init=cfg["init"], rng=rng))


def make_optimizer(cfg: dict, params):
    """The variant's optimizer (``[optimizer]``: name, lr, momentum); the momentum is SGD's only,
    as the experiment file says, and is not passed to the others."""
    momentum = cfg["momentum"] if cfg["name"] == "sgd" else 0.0
    return choices.make_optimizer(cfg["name"], params, cfg["lr"], momentum)


def make_regularizer(cfg: dict, model, x: np.ndarray):
    """The variant's penalty; ``dropout-penalty`` measures E[x^2] of every layer's input over the
    training inputs ``x`` with ``model`` as initialised, and freezes it."""
    from . import regularizers as R

    kind = cfg["kind"]
    if kind == "none":
        return None
    if kind == "l1":
        return R.L1(cfg["l1"])
    if kind == "l2":
        return R.L2(cfg["l2"])
    if kind == "elastic":
        return R.ElasticNet(cfg["l1"], cfg["l2"])
    return R.FixedDropoutPenalty.from_model(model, x, cfg["p_input"], cfg["p_hidden"], cfg["scale"])


# --- one run ---------------------------------------------------------------------------------
def _scores(log_probs: np.ndarray, y: np.ndarray) -> dict[str, float]:
    """Loss and accuracies of an ensemble from its members' log-probabilities (K, N, C).

    average: the prediction is the mean of the members' softmax probabilities (its log is
    logsumexp over members - log K, computed stably); its loss is the cross-entropy of that mean.
    vote: each member votes for its argmax; the most votes win, ties going to the lower class.
    For K = 1 both are the network's own accuracy and loss.
    """
    k, n, c = log_probs.shape
    mean_log = logsumexp(log_probs, axis=0) - math.log(k)
    votes = np.zeros((n, c), dtype=np.int64)
    for member in log_probs:
        votes[np.arange(n), member.argmax(axis=1)] += 1
    return {
        "loss": float(-mean_log[np.arange(n), y].mean()),
        "average_accuracy": float(np.mean(mean_log.argmax(axis=1) == y)),
        "vote_accuracy": float(np.mean(votes.argmax(axis=1) == y)),
    }


def run_one(spec: dict) -> dict:
    """Train one (variant, seed) from ``spec = {"variant", "seed", "config"}``; returns its result
    (JSON-ready): the configuration, per-epoch history, final and best test metrics, wall time."""
    from . import schedules
    from .functional import log_softmax
    from .losses import CrossEntropyLoss
    from .train import evaluate, fit, predict

    cfg, seed = spec["config"], spec["seed"]
    train, test = load_data(cfg["data"])
    tcfg = cfg["train"]
    classes = int(max(train.y.max(), test.y.max())) + 1
    start = time.perf_counter()
    members = []
    for child in np.random.SeedSequence(seed).spawn(tcfg["ensemble"]):
        rng = np.random.default_rng(child)
        model = build_model(cfg["model"], rng, train.x.shape[1:], classes)
        opt = make_optimizer(cfg["optimizer"], model.parameters())
        reg = make_regularizer(cfg["regularizer"], model, train.x)
        sched = schedules.CosineAnnealingLR(opt, tcfg["epochs"]) if tcfg["schedule"] == "cosine" else None
        members.append((model, opt, reg, sched, rng))
    loss_fn = CrossEntropyLoss()
    hist: dict[str, list[float]] = {
        k: [] for k in ("train_loss", "train_accuracy", "test_loss", "test_accuracy")
    }
    for _ in range(tcfg["epochs"]):
        # members train in lockstep, one epoch each, so the ensemble has a learning curve too;
        # fit(epochs=1) E times with the same generator is fit(epochs=E), draw for draw
        train_logs, log_probs = [], []
        for model, opt, reg, sched, rng in members:
            h = fit(model, loss_fn, opt, train, 1, tcfg["batch_size"], regularizer=reg, rng=rng,
                    scheduler=sched, verbose=False)  # fmt: skip
            train_logs.append((h.history["loss"][-1], h.history["accuracy"][-1]))
            log_probs.append(log_softmax(predict(model, test.x).astype(np.float64)))
        s = _scores(np.stack(log_probs), test.y)
        hist["train_loss"].append(float(np.mean([t[0] for t in train_logs])))
        hist["train_accuracy"].append(float(np.mean([t[1] for t in train_logs])))
        hist["test_loss"].append(s["loss"])
        hist["test_accuracy"].append(s[f"{tcfg['ensemble_mode']}_accuracy"])
    wall = time.perf_counter() - start
    clean_train = [evaluate(m[0], loss_fn, train) for m in members]  # eval mode: no dropout
    acc, loss = np.array(hist["test_accuracy"]), np.array(hist["test_loss"])
    return {
        "format": RESULT_FORMAT,
        "variant": spec["variant"],
        "seed": seed,
        "config": cfg,
        "history": {"epoch": list(range(1, tcfg["epochs"] + 1)), **hist},
        "final": {
            "test_accuracy": hist["test_accuracy"][-1],
            "test_loss": hist["test_loss"][-1],
            "train_accuracy": float(np.mean([r["accuracy"] for r in clean_train])),
            "train_loss": float(np.mean([r["loss"] for r in clean_train])),
            **(
                {"average_accuracy": s["average_accuracy"], "vote_accuracy": s["vote_accuracy"]}
                if len(members) > 1
                else {}
            ),
        },  # fmt: skip
        "best": {
            "test_accuracy": float(acc.max()),
            "test_accuracy_epoch": int(acc.argmax()) + 1,
            "test_loss": float(loss.min()),
            "test_loss_epoch": int(loss.argmin()) + 1,
        },
        "members": [
            {
                "test_accuracy": float(np.mean(lp.argmax(axis=1) == test.y)),
                "test_loss": float(-lp[np.arange(test.n), test.y].mean()),
            }
            for lp in log_probs
        ],  # fmt: skip
        "wall_seconds": round(wall, 3),
    }


# --- many runs ---------------------------------------------------------------------------------
def run_specs(exp: Experiment) -> list[dict]:
    return [{"variant": v, "seed": s, "config": cfg} for v, cfg in exp.variants.items() for s in exp.seeds]


def _is_done(result: dict | None, spec: dict) -> bool:
    # JSON round-trips the configuration exactly (ints stay ints, floats keep their repr); the
    # variant too: a file moved with its renamed folder still says its old name, and the report
    # reads only a file whose variant and seed are those of its path
    return (
        result is not None
        and result.get("variant") == spec["variant"]
        and result.get("seed") == spec["seed"]
        and result.get("config") == spec["config"]
    )


def compare(
    config,
    out_dir: str | os.PathLike,
    workers: int | None = None,
    scheduler: str | None = None,
    report: bool = True,
    log=None,
) -> list[dict]:
    """Run every (variant, seed) of ``config`` not already done in ``out_dir``; returns all results.

    ``config`` is an ``Experiment``, a path to a TOML file or a dict of the same layout.
    ``workers``: processes on this machine (default ``os.cpu_count()``; 1 runs in this process).
    ``scheduler``: the address of a Dask scheduler (``"tcp://HOST:PORT"``) to send the runs to
    instead (needs ``pip install 'glassnet[dask]'``). A result file whose variant, seed and stored
    configuration equal the run's is kept, not run again (resume); one that differs is
    overwritten. If there are runs to do, the data set is loaded first: a ``[data]`` table
    asking for more examples than it holds is a ``ConfigError`` naming the key
    (``check_data_sizes``), raised before any run starts or any file is written. A run that
    raises is logged by name and the others go on; at the end ``FailedRunsError`` (a
    ``RuntimeError``) names every failed run, chained from the first error, and no report is
    written; the finished runs are saved, so calling again retries only the failed ones. When
    there are runs to do, an earlier ``report.md`` and ``curves.png`` in ``out_dir`` are removed
    before they start, so a failed or interrupted run leaves no report of other results
    (``glassnet report OUT`` renders one from the result files at any time).
    ``report`` renders ``report.md`` and ``curves.png`` at the end. ``log`` is a callable taking
    one line of progress (default: print to stderr).
    """
    exp = _experiment(config)
    out_dir = os.fspath(out_dir)
    log = log if log is not None else functools.partial(print, file=sys.stderr, flush=True)
    from .io import write_atomic

    specs = run_specs(exp)
    todo = [s for s in specs if not _is_done(read_result(result_path(out_dir, s["variant"], s["seed"])), s)]
    if todo:
        # every run would fail on sizes the data set cannot give: one usage error instead, up front
        data = exp.variants[exp.baseline]["data"]  # the same in every variant
        train, test = choices.load_dataset(data["dataset"])
        check_data_sizes(data, train.n, test.n, exp.source)
        del train, test  # not held while the runs go: each loads its own subset (load_data)
    os.makedirs(out_dir, exist_ok=True)
    if todo:
        # the report of the runs before these no longer describes OUT (the configuration may have
        # changed, and a run may fail or be interrupted): removed, not left unmarked; the result
        # files stay, and `glassnet report OUT` renders it again from them at any time
        old = [f for f in ("report.md", "curves.png") if os.path.isfile(os.path.join(out_dir, f))]
        for f in old:
            os.remove(os.path.join(out_dir, f))
        if old:
            log(f"glassnet compare: removed the out-of-date {' and '.join(old)} (written again at the end)")
    # the variants' configurations too: a report leaves out result files of another configuration
    meta = {"name": exp.name, "baseline": exp.baseline, "variants": list(exp.variants),
            "seeds": list(exp.seeds), "source": exp.source, "configs": exp.variants}  # fmt: skip
    write_atomic(os.path.join(out_dir, "experiment.json"), json.dumps(meta, indent=2).encode())
    log(f"glassnet compare: {len(specs)} runs, {len(specs) - len(todo)} already done, {len(todo)} to run")
    # longest first (ensembles), so the last worker is not left with a long run alone
    todo.sort(key=lambda s: -s["config"]["train"]["epochs"] * s["config"]["train"]["ensemble"])
    failures, first_error = [], None
    for spec, result, error in _execute(todo, workers, scheduler):
        name = f"{spec['variant']}/seed{spec['seed']}"
        if error is not None:
            failures.append((spec["variant"], spec["seed"], _one_line(error)))
            first_error = first_error or error
            log(f"  {name} failed: {_one_line(error)}")
            continue
        path = result_path(out_dir, spec["variant"], spec["seed"])
        os.makedirs(os.path.dirname(path), exist_ok=True)
        write_atomic(path, json.dumps(result, indent=1).encode())
        acc, seconds = result["final"]["test_accuracy"], result["wall_seconds"]
        log(f"  {name}: test accuracy {acc:.4f} ({seconds:.0f} s)")
    if failures:  # named in the experiment's order, whichever worker ended first
        order = {(s["variant"], s["seed"]): i for i, s in enumerate(specs)}
        failures.sort(key=lambda f: order[f[0], f[1]])
        raise FailedRunsError(out_dir, failures, len(specs)) from first_error
    results = [read_result(result_path(out_dir, s["variant"], s["seed"])) for s in specs]
    if report:
        from .report import render

        render(out_dir)
    return results


class FailedRunsError(RuntimeError):
    """Some runs of ``compare`` raised; the others finished and are saved in ``out_dir``.

    ``failures`` holds ``(variant, seed, error)`` per failed run, in the experiment's order, the
    error as one line (``"ShapeError: Conv2d: input 2x2 is smaller ..."``); ``total`` is the
    number of runs in the experiment. The message names the runs, not their errors: ``compare``
    has logged each failure's error as it happened."""

    def __init__(self, out_dir: str, failures: list[tuple[str, int, str]], total: int):
        self.out_dir, self.failures, self.total = out_dir, failures, total
        names = ", ".join(f"{v}/seed{s}" for v, s, _ in failures)
        super().__init__(
            f"{len(failures)} of {total} runs failed ({names}); the others are saved in {out_dir}, and "
            "running the same experiment again runs only the failed ones (no report was written; "
            f"glassnet report {out_dir} renders one of the finished runs)"
        )

    def __reduce__(self):  # the three-argument constructor survives copy and pickling
        return type(self), (self.out_dir, self.failures, self.total)


def _one_line(error: BaseException) -> str:
    """``"Type: first line of the message"``: a worker's error as a log line, without the
    traceback a process pool chains to it."""
    lines = str(error).strip().splitlines()
    return f"{type(error).__name__}: {lines[0]}" if lines else type(error).__name__


def _experiment(config) -> Experiment:
    if isinstance(config, Experiment):
        return config
    if isinstance(config, dict):
        return parse_config(config)
    return load_config(config)


def _execute(specs: list[dict], workers: int | None, scheduler: str | None) -> Iterator[tuple]:
    """Yield (spec, result, error) as runs finish, on Dask, in a process pool or in this process."""
    if not specs:
        return
    if scheduler is not None:
        yield from _execute_dask(specs, scheduler)
        return
    workers = (os.cpu_count() or 1) if workers is None else workers
    if workers < 1:
        raise ValueError(f"compare: workers must be >= 1, got {workers}")
    if workers == 1:
        for spec in specs:
            try:
                result = run_one(spec)
            except Exception as e:  # as in a worker: name the run, go on with the others
                yield spec, None, e
            else:
                yield spec, result, None
        return
    # spawn: a fresh interpreter per worker (fork would copy this process's BLAS threads and
    # locks); it gets this process's sys.path, so it imports this same glassnet
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(min(workers, len(specs)), mp_context=ctx, initializer=_worker_init) as pool:
        # with spawn, each of the first max_workers submits starts a worker process: they are
        # all started inside this block, with single-threaded BLAS in their environment
        with _environment(_WORKER_ENV):
            futures = {pool.submit(run_one, spec): spec for spec in specs}
        try:
            for future in as_completed(futures):
                error = future.exception()
                yield futures[future], None if error else future.result(), error
        except BaseException:  # Ctrl-C or the caller stopped: drop the runs not yet started
            pool.shutdown(wait=True, cancel_futures=True)
            raise


def _worker_init() -> None:
    """Make this pool worker exit when the process that started it dies.

    Without this, a parent killed by SIGKILL (or dead of any cause that runs no cleanup) leaves
    its workers running their runs and then blocked forever on the task queue: each worker holds
    the queue's write end itself, so it never sees end-of-file. The workers hold the
    multiprocessing resource tracker's pipe too, so it lives on with them, and goes when they do.

    ``multiprocessing.parent_process()`` of a spawned child has a sentinel: on POSIX the read end
    of a pipe whose only write end the parent holds, on Windows the parent's process handle.
    It becomes ready when the parent exits, however it exits, so a daemon thread that waits on it
    (a blocking wait, no polling) and then ends the process covers every platform the pool runs
    on. ``os._exit``: the parent is gone, nothing in flight can be delivered, and a normal exit
    would wait for the main thread's run to finish."""
    parent = multiprocessing.parent_process()
    if parent is not None:
        threading.Thread(
            target=_exit_with_parent, args=(parent,), daemon=True, name="glassnet-parent-watch"
        ).start()


def _exit_with_parent(parent) -> None:
    parent.join()  # returns once the parent's end of the spawn pipe is closed: it has died
    os._exit(1)


def _execute_dask(specs: list[dict], address: str) -> Iterator[tuple]:
    try:
        from distributed import Client
        from distributed import as_completed as dask_completed
    except ImportError:
        raise ImportError("--scheduler needs Dask: pip install 'glassnet[dask]'") from None
    with Client(address) as client:
        # pure=False: two runs are never "the same task" to Dask, whatever their arguments
        futures = {client.submit(run_one, spec, pure=False): i for i, spec in enumerate(specs)}
        for future in dask_completed(futures):
            spec = specs[futures[future]]
            try:  # an error in the run, or a cancelled or lost task
                result = future.result()
            except Exception as e:
                yield spec, None, e
            else:
                yield spec, result, None


@contextmanager
def _environment(env: dict[str, str]):
    """Set environment variables for the worker processes started inside the block; the values
    this process had are put back after (its own BLAS is already initialised, so unaffected)."""
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


__all__ = [
    "ConfigError",
    "Experiment",
    "LRFindResult",
    "build_model",
    "compare",
    "load_config",
    "load_data",
    "lr_find",
    "parse_config",
    "read_result",
    "result_path",
    "run_one",
    "FailedRunsError",
]
