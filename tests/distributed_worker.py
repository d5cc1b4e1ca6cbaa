"""Small training runs for tests/test_distributed.py, importable and runnable under mpiexec.

    mpiexec -n 2 python tests/distributed_worker.py OUT_DIR CASE [CASE ...] [--checkpoint DIR]
        [--resume] [--slow SECONDS] [--fail-rank R]
    python tests/distributed_worker.py OUT_DIR CASE --single      # one process, no MPI

A CASE is ``model-optimizer-dtype-batch``: ``mlp-sgd-64-8``, ``mlp-plain-64-2`` (SGD alone),
``mlp-sgdsub-64-8`` (an optimizer without a flat gradient vector),
``cnn-adam-32-8``, ``cnnbn-sgd-64-8`` (synchronised batch norm), ``cnnbnlocal-sgd-64-8``
(per-rank statistics), ``gru-adam-64-8``, ``lstm-adam-32-8`` (LSTM(1 -> 4), its last step into
Linear(4, 3): the recurrent net docs/speed.md trains on ranks). Each run trains for a few steps on
synthetic data and writes rank r's final weights and buffers to OUT_DIR/CASE.rank<r>.npz and,
on rank 0, OUT_DIR/CASE.json (the history and the allreduce counters). Every rank writes its
pid to OUT_DIR/pid.<r> first, so that a test can kill one.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import glassnet as gn  # noqa: E402

N = 30  # examples: with batch 8, three batches of 8 and a last one of 6 an epoch
EPOCHS = 2


def data(model: str, dtype):
    rng = np.random.default_rng(0)
    if model == "mlp":
        x = rng.standard_normal((N, 6))
    elif model == "gru":
        x = rng.standard_normal((N, 5))  # 5 steps of one feature (mnist1d_gru reshapes)
    elif model == "lstm":
        x = rng.standard_normal((N, 5, 1))  # 5 steps of one feature
    else:
        x = rng.standard_normal((N, 1, 16, 16))  # CNN-A's smallest input: 16 -> 12 -> 6 -> 2 -> 1
    y = rng.integers(0, 3, N)
    return x.astype(dtype), y


def build(model: str, dtype):
    rng = np.random.default_rng(1)
    if model == "mlp":
        net = gn.Sequential(gn.Linear(6, 7, rng=rng), gn.Tanh(), gn.Linear(7, 3, rng=rng))
    elif model == "gru":
        net = gn.models.mnist1d_gru(rng, (5,), 3, hidden=4)
    elif model == "lstm":
        net = gn.Sequential(gn.LSTM(1, 4, rng=rng), gn.LastStep(), gn.Linear(4, 3, rng=rng))
    else:
        net = gn.models.cnn_a(rng, (1, 16, 16), 3, batch_norm=model.startswith("cnnbn"))
        for layer in net:
            if isinstance(layer, gn.Dropout):
                layer.p = 0.0  # dropout masks are per-rank: off, so that the runs can agree
    return net.to(dtype)


def run(case: str, out: str, single: bool = False, checkpoint=None, resume=False, slow=0.0, fail=False):
    """Train CASE; returns (model, history, dist)."""
    model_name, opt_name, bits, batch = case.split("-")
    dtype = np.float64 if bits == "64" else np.float32
    model = build(model_name, dtype)
    plain = opt_name == "plain"  # SGD without momentum, penalty or clipping
    if plain:
        opt = gn.optim.SGD(model.parameters(), lr=0.1)
    elif opt_name == "sgd":
        opt = gn.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    elif opt_name == "sgdsub":  # all but the first parameter, which live in another optimizer's
        gn.optim.SGD(model.parameters())  # vector: the optimizer has no flat gradient of its own
        opt = gn.optim.SGD(model.parameters()[1:], lr=0.1, momentum=0.9)
        assert opt.grad is None
    else:
        opt = gn.optim.Adam(model.parameters(), lr=0.01)
    # the MLP's 73 parameters in buckets of 64 bytes: several allreduces per step
    buckets = 64 if model_name == "mlp" else 4 << 20
    dist = None if single else gn.distributed.MPI(sync_batchnorm=model_name == "cnnbn", bucket_bytes=buckets)
    extra = {}
    if checkpoint:
        extra = {
            "checkpoint": checkpoint,
            "checkpoint_every": 1,
            "resume_from": checkpoint if resume else None,
        }
    callbacks = [Sleep(slow)] * bool(slow) + [Fail()] * fail
    history = gn.fit(model, gn.CrossEntropyLoss(), opt, data(model_name, dtype), epochs=EPOCHS,
                     batch_size=int(batch), rng=np.random.default_rng(2), verbose=False, distributed=dist,
                     callbacks=callbacks, regularizer=None if plain else gn.L2(1e-3),
                     clip_norm=None if plain else 5.0, **extra)  # fmt: skip
    return model, history, dist


class Fail(gn.Callback):
    """Raise on this rank at the second batch: the others must not wait forever."""

    def on_batch_end(self, batch, logs):
        if batch == 1:
            raise RuntimeError("planted failure")


class Sleep(gn.Callback):
    def __init__(self, seconds):
        self.seconds = seconds

    def on_batch_end(self, batch, logs):
        time.sleep(self.seconds)


def main(argv=None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("out")
    p.add_argument("cases", nargs="+")
    p.add_argument("--single", action="store_true")
    p.add_argument("--checkpoint")
    p.add_argument("--resume", action="store_true")
    p.add_argument("--slow", type=float, default=0.0)
    p.add_argument("--fail-rank", type=int, default=-1, help="this rank raises at its second batch")
    a = p.parse_args(argv)
    rank = int(os.environ.get("PMI_RANK", "0"))
    os.makedirs(a.out, exist_ok=True)
    with open(os.path.join(a.out, f"pid.{rank}"), "w") as f:
        f.write(str(os.getpid()))
    for case in a.cases:
        model, history, dist = run(case, a.out, a.single, a.checkpoint, a.resume, a.slow, rank == a.fail_rank)
        np.savez(os.path.join(a.out, f"{case}.rank{rank}.npz"), **model.state_dict())
        if rank == 0:
            info = {"history": history.history, "steps": getattr(dist, "steps", 0),
                    "resyncs": getattr(dist, "resyncs", 0), "size": getattr(dist, "size", 1)}  # fmt: skip
            with open(os.path.join(a.out, f"{case}.json"), "w") as f:
                json.dump(info, f)
    return 0


if __name__ == "__main__":
    sys.exit(main())
