"""Data-parallel training over MPI (glassnet.distributed): K = 2 ranks under ``mpiexec`` against
one process, resume after a rank is killed, a failing rank, the command line; and, in-process,
the rules (shards, buckets, the batch check) and synchronised batch norm on two threads.

The MPI runs are subprocesses (tests/distributed_worker.py) with timeouts; one ``mpiexec`` runs
every equivalence case, so the file costs a few launches."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

import glassnet as gn
from glassnet import distributed
from glassnet.layers.norm import _BatchNorm

sys.path.insert(0, os.path.dirname(__file__))
import distributed_worker as worker  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
WORKER = os.path.join(HERE, "distributed_worker.py")
MPIEXEC = shutil.which("mpiexec")
needs_mpi = pytest.mark.skipif(
    MPIEXEC is None or importlib.util.find_spec("mpi4py") is None,
    reason="needs mpi4py and mpiexec on PATH (pip install 'glassnet[mpi]')",
)

# model-optimizer-dtype-batch; batch 7 of 30 examples: shards of 4 and 3, and a last batch of 2.
# Batch norm with Adam in float64 only: a convolution's bias before batch norm has a gradient of
# zero but for rounding, and Adam divides that noise by its own RMS: in float32 (noise near eps)
# the steps are O(lr) in a direction rounding chooses, in either process alike
CASES = ["mlp-sgd-64-8", "mlp-adam-32-8", "mlp-sgd-64-7", "mlp-plain-64-2", "mlp-sgdsub-64-8", "cnn-sgd-64-8",
         "cnn-adam-32-8", "cnnbn-sgd-64-8", "cnnbn-sgd-32-8", "cnnbn-adam-64-8", "gru-sgd-64-8",
         "gru-adam-32-8", "lstm-adam-32-8", "lstm-sgd-64-8", "cnnbnlocal-sgd-64-8"]  # fmt: skip


def mpiexec(args: list[str], ranks: int = 2, timeout: float = 120, **kw) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": ROOT, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
    return subprocess.run([MPIEXEC, "-n", str(ranks), sys.executable, *args], env=env, capture_output=True,
                          text=True, timeout=timeout, **kw)  # fmt: skip


def weights(path: str) -> dict[str, np.ndarray]:
    with np.load(path) as f:
        return dict(f)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Every case once on two ranks (one mpiexec), and the same in this process, alone."""
    out = str(tmp_path_factory.mktemp("dist"))
    done = mpiexec([WORKER, out, *CASES])
    assert done.returncode == 0, done.stderr[-3000:]
    single = {}
    for case in CASES:
        model, history, _ = worker.run(case, out, single=True)
        single[case] = (model.state_dict(), history.history)
    return out, single


@needs_mpi
@pytest.mark.parametrize("case", [c for c in CASES if "local" not in c])
def test_two_ranks_train_as_one_process(runs, case):
    out, single = runs
    alone, history = single[case]
    rank0, rank1 = weights(f"{out}/{case}.rank0.npz"), weights(f"{out}/{case}.rank1.npz")
    info = json.load(open(f"{out}/{case}.json"))
    assert info["size"] == 2 and info["resyncs"] == 0
    batches = -(-worker.N // int(case.split("-")[3]))
    assert info["steps"] == worker.EPOCHS * batches  # one gradient reduction per step
    # float64: equal but for the last bits (BLAS takes other kernels for other batch shapes, so
    # the same example's forward may differ in its last bit); float32: summation tolerance
    tol = dict(rtol=1e-10, atol=1e-12) if "-64-" in case else dict(rtol=2e-4, atol=2e-5)
    assert rank0.keys() == alone.keys()
    if case.startswith("cnnbn-adam"):
        # a convolution's bias just before batch norm has a gradient of zero but for rounding, and
        # Adam divides by the gradient's RMS (+ eps = 1e-8): that noise moves the bias, and with it
        # the running mean, by ~1e-9
        tol["atol"] = 1e-8
    for name in alone:
        np.testing.assert_allclose(rank0[name], alone[name], **tol, err_msg=name)
        np.testing.assert_array_equal(rank1[name], rank0[name], err_msg=name)  # the ranks agree
    for key in history:  # the logged loss and accuracy are the whole batch's
        np.testing.assert_allclose(info["history"][key], history[key], **tol)


@needs_mpi
def test_per_rank_batch_norm_differs_from_one_process(runs):
    """The control for the synchronised case: with per-rank statistics the runs do differ (so
    the agreement above is sync_batchnorm's doing), and the ranks end with rank 0's buffers."""
    out, single = runs
    alone, _ = single["cnnbnlocal-sgd-64-8"]
    rank0 = weights(f"{out}/cnnbnlocal-sgd-64-8.rank0.npz")
    rank1 = weights(f"{out}/cnnbnlocal-sgd-64-8.rank1.npz")
    assert max(np.abs(rank0[k] - alone[k]).max() for k in alone) > 1e-6
    for name in rank0:
        np.testing.assert_array_equal(rank1[name], rank0[name], err_msg=name)


@needs_mpi
def test_resume_after_kill_9_of_one_rank(runs, tmp_path):
    """kill -9 of rank 1 mid-run ends the job; resuming on two ranks gives the uninterrupted
    run's weights bit for bit, and on one rank (another count the batch allows) to rounding."""
    out, single = runs
    case, ckpt = "mlp-sgd-64-8", str(tmp_path / "ckpt")
    os.makedirs(ckpt)  # a directory: it holds checkpoint.safetensors
    env = {**os.environ, "PYTHONPATH": ROOT, "OMP_NUM_THREADS": "1"}
    job = subprocess.Popen([MPIEXEC, "-n", "2", sys.executable, WORKER, str(tmp_path / "a"), case,
                            "--checkpoint", ckpt, "--slow", "0.3"], env=env, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while not os.path.exists(os.path.join(ckpt, "checkpoint.safetensors")) or not os.path.exists(
            tmp_path / "a" / "pid.1"
        ):
            assert time.monotonic() < deadline and job.poll() is None, "no checkpoint appeared"
            time.sleep(0.05)
        time.sleep(0.4)  # a step or two more
        os.kill(int((tmp_path / "a" / "pid.1").read_text()), signal.SIGKILL)
        start = time.monotonic()
        job.wait(timeout=30)  # not a hang: mpiexec ends the other rank
        assert job.returncode != 0 and time.monotonic() - start < 30
    finally:
        if job.poll() is None:
            job.kill()
    snapshot = gn.checkpoint.read_checkpoint(ckpt)
    steps = snapshot.meta["position"]["step"]
    assert 0 < steps < worker.EPOCHS * 4  # it was interrupted mid-run
    shutil.copytree(ckpt, tmp_path / "ckpt1")

    resumed = mpiexec([WORKER, str(tmp_path / "b"), case, "--checkpoint", ckpt, "--resume"])
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    uninterrupted = weights(f"{out}/{case}.rank0.npz")
    for r in (0, 1):
        got = weights(str(tmp_path / "b" / f"{case}.rank{r}.npz"))
        for name in uninterrupted:
            np.testing.assert_array_equal(got[name], uninterrupted[name], err_msg=f"rank {r} {name}")

    one = mpiexec([WORKER, str(tmp_path / "c"), case, "--checkpoint", str(tmp_path / "ckpt1"), "--resume"], 1)
    assert one.returncode == 0, one.stderr[-3000:]
    got = weights(str(tmp_path / "c" / f"{case}.rank0.npz"))
    for name in uninterrupted:
        np.testing.assert_allclose(got[name], uninterrupted[name], rtol=1e-10, atol=1e-12, err_msg=name)


@needs_mpi
def test_an_error_on_one_rank_ends_the_job(tmp_path):
    start = time.monotonic()
    done = mpiexec([WORKER, str(tmp_path), "mlp-sgd-64-8", "--fail-rank", "1"], timeout=60)
    assert done.returncode != 0 and time.monotonic() - start < 60
    assert "glassnet.distributed: rank 1 of 2 stopped: RuntimeError: planted failure" in done.stderr
    assert "MPI_Abort" in done.stderr


@needs_mpi
def test_cli_reports_ranks_and_the_per_rank_batch(tmp_path):
    """glassnet train under mpiexec: one report, from rank 0; a batch of 33 on 2 ranks is 17 + 16."""
    out = tmp_path / "run"
    done = mpiexec(["-m", "glassnet", "train", "--dataset", "digits", "--model", "mlp", "--epochs", "1",
                    "--batch-size", "33", "--out", str(out)], timeout=180)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    text = done.stdout + done.stderr
    assert text.count("glassnet: training") == 1, text
    assert "2 ranks (MPI)" in text and "17 examples on the first rank, 16 on the others" in text, text
    assert text.count("test accuracy") == 1
    assert sorted(os.listdir(out)) == sorted(
        [
            "config.json",
            "checkpoint.safetensors",
            "model.safetensors",
            "history.json",
            "metrics.csv",
            "gradient_flow.json",
        ]  # fmt: skip
    )


# --- in-process: the rules ---------------------------------------------------------------------
def test_shards_are_contiguous_and_the_first_ranks_take_one_more():
    assert distributed.shard_sizes(8, 2) == [4, 4]
    assert distributed.shard_sizes(7, 2) == [4, 3]
    assert distributed.shard_sizes(10, 4) == [3, 3, 2, 2]
    assert distributed.describe_shards(64, 2) == "32 examples per rank"
    assert distributed.describe_shards(10, 4) == "3 examples on the first 2 ranks, 2 on the others"


def test_buckets_cover_the_vector_last_parameters_first():
    # 40 floats are 160 bytes, a bucket of >= 100 bytes; 5 + 300 the next; 10 alone, the last
    assert distributed._buckets([10, 300, 5, 40], 4, 100) == [(315, 355), (10, 315), (0, 10)]
    assert distributed._buckets([10, 300, 5, 40], 4, 200) == [(10, 355), (0, 10)]
    assert distributed._buckets([10, 300, 5, 40], 4, 1 << 30) == [(0, 355)]


def test_world_size_reads_the_launchers_variables(monkeypatch):
    for name in distributed._SIZE_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    assert distributed.world_size() == 1 and distributed.from_environment() is None
    monkeypatch.setenv("OMPI_COMM_WORLD_SIZE", "4")
    assert distributed.world_size() == 4


def test_a_batch_smaller_than_the_rank_count_is_refused():
    dist = object.__new__(distributed.MPI)
    dist.size, dist.rank = 4, 0
    model = gn.Sequential(gn.Linear(2, 2, rng=0))
    opt = gn.optim.SGD(model.parameters())
    with pytest.raises(ValueError, match="every global batch needs at least 4 examples.*a batch has 2"):
        dist.start(model, opt, 10, 8, np.random.default_rng(0))  # 8 + 2
    with pytest.raises(ValueError, match="a batch has 3"):
        dist.start(model, opt, 3, 8, np.random.default_rng(0))
    with pytest.raises(ValueError, match="detect_anomaly"):
        dist.local_options({"detect_anomaly": True})
    options = {"verbose": True, "checkpoint": "c", "checkpoint_every": 2, "resume_from": "c", "rng": 3}
    assert dist.local_options(options) == options  # rank 0 prints and writes
    dist.rank = 1
    assert dist.local_options(options) == {"verbose": False, "checkpoint": None, "checkpoint_every": None,
                                           "resume_from": None, "rng": 3}  # fmt: skip


class ThreadComm:
    """Two "ranks" on two threads: allreduce sums through a barrier (synchronised batch norm)."""

    def __init__(self, ranks: int) -> None:
        self.barrier, self.slots = threading.Barrier(ranks), [None] * ranks


class ThreadSync:
    def __init__(self, comm: ThreadComm, rank: int, n_r: int, n_b: int) -> None:
        self.comm, self.rank, self.weight, self.examples = comm, rank, n_r / n_b, n_b

    def allreduce(self, a):
        self.comm.slots[self.rank] = a.copy()
        self.comm.barrier.wait()
        total = sum(self.comm.slots)
        self.comm.barrier.wait()
        return total


@pytest.mark.parametrize("cls,shape", [(gn.BatchNorm2d, (7, 3, 4, 5)), (gn.BatchNorm1d, (7, 3))])
def test_synchronised_batch_norm_equals_the_whole_batch(cls, shape):
    """Forward and backward of BatchNorm split 4 + 3 over two threads equal one layer on the
    whole batch: the output, dx, dgamma and dbeta (the parameter gradients after the
    example-weighted sum), and the running statistics. Float64."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal(shape)
    g = rng.standard_normal(shape)  # dC/dy of the whole batch's loss (a mean over 7)
    whole = cls(3, dtype=np.float64)
    whole.weight.data[...] = rng.standard_normal(3)
    whole.bias.data[...] = rng.standard_normal(3)
    y, dx = whole.forward(x), whole.backward(g)
    comm, parts, results = ThreadComm(2), [(0, 4), (4, 7)], [None, None]

    def rank(r):
        lo, hi = parts[r]
        layer = cls(3, dtype=np.float64)
        layer.load_state_dict({k: v for k, v in whole.state_dict().items() if k in ("weight", "bias")}
                              | {"running_mean": np.zeros(3), "running_var": np.ones(3),
                                 "num_batches_tracked": np.array(0)})  # fmt: skip
        layer.sync = ThreadSync(comm, r, hi - lo, 7)
        out = layer.forward(x[lo:hi])
        # rank r's loss is a mean over its own n_r examples: its delta is dy n_b / n_r
        back = layer.backward(g[lo:hi] * (7 / (hi - lo)))
        results[r] = (out, back, layer)

    threads = [threading.Thread(target=rank, args=(r,)) for r in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    (y0, dx0, l0), (y1, dx1, l1) = results
    np.testing.assert_allclose(np.concatenate([y0, y1]), y, rtol=1e-12, atol=1e-12)
    # dx in the whole batch's units: rank r's times w_r
    np.testing.assert_allclose(np.concatenate([dx0 * 4 / 7, dx1 * 3 / 7]), dx, rtol=1e-10, atol=1e-12)
    for name in ("weight", "bias"):
        averaged = getattr(l0, name).grad * 4 / 7 + getattr(l1, name).grad * 3 / 7
        np.testing.assert_allclose(averaged, getattr(whole, name).grad, rtol=1e-12, atol=1e-12)
    for name in ("running_mean", "running_var"):
        np.testing.assert_allclose(getattr(l0, name), getattr(whole, name), rtol=1e-12)
        np.testing.assert_array_equal(getattr(l1, name), getattr(l0, name))
    assert isinstance(l0, _BatchNorm) and l0.sync is not None
