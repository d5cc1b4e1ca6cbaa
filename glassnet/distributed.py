"""Data-parallel training over MPI: ``gn.fit(..., distributed=gn.distributed.MPI())``.

Run the same script on K processes (``mpiexec -n K python train.py``). Every rank holds the
whole model; each global batch (``batch_size``, what the user gives) is split into K
contiguous shards, one per rank; each rank runs forward and backward on its shard, and the
gradients are averaged with allreduce before the optimizer steps, so every rank takes the same
step and the weights stay the same on every rank. This is synchronous data parallelism as in
Horovod's ``DistributedOptimizer`` and PyTorch's ``DistributedDataParallel``.

The rules (docs/distributed.md says the same for users):

- **Shards.** Every rank draws the same shuffled order (the one ``rng``); a global batch of
  n_b examples gives rank r the contiguous slice of ``q = n_b // K`` examples, the first
  ``n_b % K`` ranks one more. Every global batch (the last, short one of an epoch too) must
  hold at least K examples; ``fit`` refuses a run where one does not.
- **The average.** Rank r's loss is the mean over its n_r examples, so its gradient g_r is
  (1/n_r) sum over its examples. Each rank scales its gradient by w_r = n_r / n_b before the
  allreduce (a sum): sum_r w_r g_r = (1/n_b) sum over the whole batch, the single-process
  gradient exactly in exact arithmetic, also when n_b is not a multiple of K. A regularizer's
  penalty gradient, the same on every rank, comes out once (the w_r sum to 1). Gradient
  clipping and the finite-loss check act on the averaged values, identically on every rank.
- **Buckets.** The optimizer keeps every gradient in one flat vector (``optim``); it is cut
  into buckets of about ``bucket_bytes``, last layers first (as DDP, whose buckets follow the
  order backward completes them), and one non-blocking allreduce per bucket is started, all
  before the first is waited for.
- **Start.** Rank 0 broadcasts the weights and buffers, the optimizer state, the random
  generator's state, the learning-rate schedule, the run's position and every callback's state
  when training begins (after a ``resume_from`` restore, which only rank 0 reads).
- **Randomness.** Shuffling draws from ``rng``, the same on every rank. Dropout and
  augmentation draw from a per-rank generator, reseeded before every step from
  ``SeedSequence(entropy, spawn_key=(rank, step))`` where ``entropy`` comes from ``rng`` when
  ``fit`` starts: independent streams per rank, reproducible from the one seed, and exact
  across a resume (the step count is in the checkpoint).
- **Batch norm.** Per-rank statistics by default (as DDP). ``sync_batchnorm=True`` makes every
  ``BatchNorm`` layer reduce its sums over all ranks, in forward and backward (see
  ``layers/norm.py``), so training equals one process with the whole batch. With per-rank
  statistics, the running statistics are rank 0's, broadcast at the end of every epoch (DDP's
  ``broadcast_buffers``), so validation and the saved model agree on every rank.
- **Output.** Only rank 0 prints progress and writes checkpoints; ``fit`` drops ``verbose``,
  ``checkpoint`` and ``resume_from`` on the others. Callbacks that write (``CSVLogger``,
  ``TensorBoard``) should be given on rank 0 only (``if dist.rank == 0``).
- **Failure.** An exception on a rank while training (other than the non-finite loss, which
  every rank raises at the same step) prints ``glassnet.distributed: rank r of K ...`` and
  calls ``MPI_Abort``: the other ranks would otherwise wait in their next allreduce forever.
  A rank killed by a signal ends the job through ``mpiexec`` (MPICH's hydra kills the rest).

mpi4py is imported when an ``MPI`` object is made, so glassnet works without it
(``pip install 'glassnet[mpi]'`` installs mpi4py and the ``mpich`` wheel, which brings
``mpiexec``).
"""

from __future__ import annotations

import copy
import dataclasses
import json
import os
import sys
import time
import zlib

import numpy as np

from .callbacks import Callback, Position
from .layers.norm import _BatchNorm
from .module import Module, check_arg
from .optim import Optimizer, memory_order

ABORT_GRACE_SECONDS = 0.5  # see Distributed.failed

# the variables launchers set in every rank's environment: MPICH/Intel MPI (hydra), Open MPI,
# Slurm's srun
_SIZE_VARIABLES = ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "PMIX_SIZE", "SLURM_NTASKS")


def world_size() -> int:
    """How many ranks the launcher started, from the environment (1 outside ``mpiexec``);
    mpi4py is not imported."""
    for name in _SIZE_VARIABLES:
        value = os.environ.get(name, "")
        if value.isdigit() and int(value) >= 1:
            return int(value)
    return 1


def from_environment(**options) -> MPI | None:
    """An ``MPI()`` when the process runs under ``mpiexec`` with more than one rank, else None
    (what ``glassnet train`` does)."""
    return MPI(**options) if world_size() > 1 else None


def shard_sizes(n: int, ranks: int) -> list[int]:
    """The examples each rank takes of a global batch of ``n``: ``n // ranks``, the first
    ``n % ranks`` ranks one more."""
    q, extra = divmod(n, ranks)
    return [q + (r < extra) for r in range(ranks)]


def describe_shards(batch_size: int, ranks: int) -> str:
    """The per-rank batch as ``glassnet train`` reports it."""
    sizes = shard_sizes(batch_size, ranks)
    if sizes[0] == sizes[-1]:
        return f"{sizes[0]} examples per rank"
    extra = batch_size % ranks
    first = "the first rank" if extra == 1 else f"the first {extra} ranks"
    return f"{sizes[0]} examples on {first}, {sizes[-1]} on the others"


class _Sync:
    """What a ``BatchNorm`` layer with ``sync`` set uses: ``allreduce`` (a sum over the ranks),
    ``weight`` (this rank's share w_r = n_r / n_b of the global batch) and ``examples``
    (the global batch's n_b); each rank updates its own copy of the running statistics."""

    updates_running_stats = True

    def __init__(self, dist: MPI) -> None:
        self.dist = dist

    @property
    def weight(self) -> float:
        return self.dist.weight

    @property
    def examples(self) -> int:
        return self.dist.examples

    def allreduce(self, a: np.ndarray) -> np.ndarray:
        out = np.ascontiguousarray(a).copy()
        self.dist.comm.Allreduce(self.dist.MPI.IN_PLACE, out, op=self.dist.MPI.SUM)
        return out


class MPI:
    """Synchronous data parallelism over an MPI communicator, for ``fit(..., distributed=...)``.

    ``comm``: an mpi4py communicator (default ``MPI.COMM_WORLD``). ``sync_batchnorm``: reduce
    batch norm's statistics over every rank (default False: per-rank statistics).
    ``bucket_bytes``: the size of one allreduce of gradients (default 4 MiB; DDP's is 25 MiB).
    After a run, ``steps``, ``allreduce_seconds`` (time in the gradient allreduces, waits for
    slower ranks included) and ``resyncs`` (epochs whose end found the ranks' weights
    different, then replaced by rank 0's; 0 unless the MPI library's sums differ by rank).
    """

    def __init__(self, comm=None, sync_batchnorm: bool = False, bucket_bytes: int = 4 << 20) -> None:
        try:
            from mpi4py import MPI as mpi  # noqa: N811 (the module, kept as self.MPI)
        except ModuleNotFoundError as e:
            if e.name != "mpi4py":
                raise
            raise ImportError(
                "glassnet.distributed needs mpi4py and an MPI library: pip install 'glassnet[mpi]'"
            ) from None
        check_arg("MPI", "bucket_bytes", bucket_bytes, lambda v: v >= 1, "an integer >= 1", int)
        self.MPI = mpi
        self.comm = mpi.COMM_WORLD if comm is None else comm
        self.rank, self.size = self.comm.Get_rank(), self.comm.Get_size()
        self.sync_batchnorm, self.bucket_bytes = bool(sync_batchnorm), int(bucket_bytes)
        self.weight, self.examples = 1.0, 0
        self.steps, self.allreduce_seconds, self.resyncs = 0, 0.0, 0
        # dropout and augmentation draw from here; reseeded before every step (see shard)
        self.rng = np.random.Generator(np.random.PCG64(0))
        self.entropy = 0

    def __repr__(self) -> str:
        return f"MPI(rank={self.rank}, size={self.size}, sync_batchnorm={self.sync_batchnorm})"

    # --- what fit calls -----------------------------------------------------------------------
    def local_options(self, options: dict) -> dict:
        """fit's options on this rank: only rank 0 prints and writes checkpoints (and reads the
        one it resumes from; the others receive its state in ``Broadcast.on_train_begin``)."""
        if options.get("detect_anomaly") and self.size > 1:
            raise ValueError(
                "fit: detect_anomaly is not supported with distributed training (an anomaly on one "
                "rank would leave the others waiting); run it in one process"
            )
        if self.rank == 0:
            return options
        quiet = {"verbose": False, "checkpoint": None, "checkpoint_every": None, "resume_from": None}
        return {**options, **quiet}

    def start(self, model: Module, optimizer: Optimizer, n: int, batch_size: int, rng) -> Callback:
        """Check that every global batch can be split, cut the gradients into buckets, attach
        synchronised batch norm; returns the callback fit runs last (``Broadcast``)."""
        last = n % batch_size if n > batch_size else n
        smallest = min(batch_size, last or batch_size)
        if smallest < self.size:
            raise ValueError(
                f"fit: distributed over {self.size} ranks, every global batch needs at least "
                f"{self.size} examples (one per rank), but with {n} examples and batch_size="
                f"{batch_size} a batch has {smallest}; choose a batch_size for which n % batch_size "
                f"is 0 or >= {self.size}, or drop {smallest} examples"
            )
        self.optimizer, self.model = optimizer, model
        self.buckets = _buckets([p.data.size for p in optimizer.params], optimizer.params[0].data.itemsize,
                                self.bucket_bytes)  # fmt: skip
        # from a copy: the run's own generator is not advanced, so a run with one rank and a
        # run without distributed shuffle alike
        self.entropy = int(copy.deepcopy(rng).integers(2**63))
        self.norms = [m for m in model.modules() if isinstance(m, _BatchNorm)]
        if self.sync_batchnorm:
            sync = _Sync(self)
            for layer in self.norms:
                layer.sync = sync
        return Broadcast(self)

    def stop(self) -> None:
        for layer in self.norms:
            layer.sync = None

    def shard(self, idx: np.ndarray, step: int) -> np.ndarray:
        """This rank's contiguous part of a global batch's indices; sets the gradient weight
        w_r = n_r / n_b and reseeds the per-rank generator for optimizer step ``step``."""
        sizes = shard_sizes(len(idx), self.size)
        lo = sum(sizes[: self.rank])
        self.examples, self.weight = len(idx), sizes[self.rank] / len(idx)
        seq = np.random.SeedSequence(self.entropy, spawn_key=(self.rank, step))
        self.rng.bit_generator.state = np.random.PCG64(seq).state
        return idx[lo : lo + sizes[self.rank]]

    def reduce(self, loss: float) -> float:
        """Average the gradients over the ranks, weighted by examples, one allreduce per bucket;
        returns the global batch's loss."""
        start = time.perf_counter()
        mpi = self.MPI
        opt = self.optimizer
        packed = None
        if opt.grad is not None:
            grad = opt.grad
        else:  # parameters that live in other vectors: gather them, reduce, scatter back
            packed = [p.grad.reshape(-1, order=memory_order(p.grad)) for p in opt.params]
            grad = np.concatenate(packed)
        if self.weight != 1.0:
            grad *= self.weight
        # last layers first: their gradients are complete first in backward (DDP's order)
        requests = [self.comm.Iallreduce(mpi.IN_PLACE, grad[lo:hi], op=mpi.SUM) for lo, hi in self.buckets]
        total = np.array([loss * self.weight])
        self.comm.Allreduce(mpi.IN_PLACE, total, op=mpi.SUM)
        mpi.Request.Waitall(requests)
        if packed is not None:
            offset = 0
            for p in opt.params:
                p.grad[...] = grad[offset : offset + p.grad.size].reshape(
                    p.grad.shape, order=memory_order(p.grad)
                )
                offset += p.grad.size
        self.steps += 1
        self.allreduce_seconds += time.perf_counter() - start
        return float(total[0])

    def sum(self, value: int) -> int:
        """An integer (a batch's correct predictions) summed over the ranks."""
        out = np.array([value], dtype=np.int64)
        self.comm.Allreduce(self.MPI.IN_PLACE, out, op=self.MPI.SUM)
        return int(out[0])

    def failed(self, error: BaseException) -> None:
        """End the whole job on an exception that only this rank may have raised: the others
        would wait in their next collective forever. A non-finite loss is computed from the
        reduced loss, so every rank raises it at the same step: it propagates as without MPI."""
        if self.size == 1 or type(error) is FloatingPointError:
            return
        sys.stderr.write(
            f"glassnet.distributed: rank {self.rank} of {self.size} stopped: {type(error).__name__}: "
            f"{error}\nglassnet.distributed: ending the job (MPI_Abort)\n"
        )
        sys.stderr.flush()
        # MPI_Abort makes mpiexec kill every process at once, and its forwarder may not yet have
        # read this rank's stderr pipe: without a moment's grace the reason can be lost (it was,
        # once, in CI under load). Half a second on a path that ends the job costs nothing.
        time.sleep(ABORT_GRACE_SECONDS)
        self.comm.Abort(1)

    # --- broadcasts ---------------------------------------------------------------------------
    def bcast_tree(self, tree):
        """Rank 0's ``tree`` (nested dicts and lists of JSON values and NumPy arrays) on every
        rank: the structure as JSON text, then each array by ``Bcast``. Nothing is pickled."""
        arrays: list[np.ndarray] = []

        def strip(node):
            if isinstance(node, np.ndarray):
                arrays.append(node if node.flags.c_contiguous else node.copy(order="C"))  # 0-d stays 0-d
                return {"__array__": len(arrays) - 1, "dtype": node.dtype.str, "shape": list(node.shape)}
            if isinstance(node, dict):
                return {k: strip(v) for k, v in node.items()}
            if isinstance(node, (list, tuple)):
                return [strip(v) for v in node]
            if isinstance(node, (np.integer, np.floating, np.bool_)):
                return node.item()
            return node

        text = json.dumps(strip(tree)).encode() if self.rank == 0 else b""
        length = np.array([len(text)], dtype=np.int64)
        self.comm.Bcast(length, root=0)
        buffer = (
            np.frombuffer(text, np.uint8).copy() if self.rank == 0 else np.empty(int(length[0]), np.uint8)
        )
        self.comm.Bcast(buffer, root=0)
        skeleton = json.loads(buffer.tobytes())
        if self.rank != 0:
            arrays = []
            _collect_specs(skeleton, arrays)
        for a in arrays:
            self.comm.Bcast(a, root=0)

        def build(node):
            if isinstance(node, dict):
                if "__array__" in node:
                    return arrays[node["__array__"]]
                return {k: build(v) for k, v in node.items()}
            if isinstance(node, list):
                return [build(v) for v in node]
            return node

        return build(skeleton)

    def same_weights(self, model: Module) -> bool:
        """Whether every rank holds the same weights and buffers (a CRC of each, gathered)."""
        crc = 0
        for a in model.state_dict().values():
            crc = zlib.crc32(np.ascontiguousarray(a).data, crc)
        crcs = np.empty(self.size, dtype=np.int64)
        self.comm.Allgather(np.array([crc], dtype=np.int64), crcs)
        return bool((crcs == crcs[0]).all())


def _collect_specs(node, arrays: list) -> None:
    """Empty arrays, in index order, for the array entries of a broadcast skeleton."""
    if isinstance(node, dict):
        if "__array__" in node:
            arrays.append(np.empty(node["shape"], dtype=np.dtype(node["dtype"])))
            return
        for v in node.values():
            _collect_specs(v, arrays)
    elif isinstance(node, list):
        for v in node:
            _collect_specs(v, arrays)


def _buckets(sizes: list[int], itemsize: int, bucket_bytes: int) -> list[tuple[int, int]]:
    """[lo, hi) ranges of the flat gradient vector, whole parameters of about ``bucket_bytes``
    each, from the last parameter back."""
    ends = np.cumsum([0, *sizes]).tolist()
    buckets, hi, size = [], ends[-1], 0
    for i in range(len(sizes) - 1, -1, -1):
        size += sizes[i] * itemsize
        if size >= bucket_bytes or i == 0:
            buckets.append((ends[i], hi))
            hi, size = ends[i], 0
    return buckets


class Broadcast(Callback):
    """The callback ``fit`` runs last under ``distributed=``: rank 0's state to every rank when
    training begins, the ranks' weights compared at the end of every epoch (and rank 0's
    broadcast if they differ, with per-rank batch norm statistics always), batch norm detached
    when training ends."""

    def __init__(self, dist: MPI) -> None:
        self.dist = dist

    def on_train_begin(self, logs):
        dist, loop = self.dist, self.loop
        pos = loop.position
        # the callbacks with state, by type and occurrence: rank 0 may have more (CSVLogger)
        stateful = _keyed([cb for cb in loop.callbacks if cb is not self and cb.state_dict() is not None])
        tree = None
        if dist.rank == 0:
            tree = {
                "model": self.model.state_dict(),
                "optimizer": self.optimizer.state_dict(),
                "rng": loop.rng.bit_generator.state,
                "scheduler": None if loop.scheduler is None else loop.scheduler.state_dict(),
                "position": dataclasses.asdict(pos),  # every field: a Position's state is its fields
                "callbacks": {key: cb.state_dict() for key, cb in stateful.items()},
                "entropy": dist.entropy,
            }
        tree = dist.bcast_tree(tree)
        if dist.rank == 0:
            return
        self.model.load_state_dict(tree["model"])
        if loop.scheduler is not None:
            loop.scheduler.load_state_dict(tree["scheduler"])
        self.optimizer.load_state_dict(tree["optimizer"])  # after the schedule, which sets lr
        loop.rng.bit_generator.state = tree["rng"]
        loop.position = Position(**tree["position"])
        for key, cb in stateful.items():
            if key in tree["callbacks"]:
                cb.load_state_dict(tree["callbacks"][key])
        dist.entropy = tree["entropy"]

    def on_batch_end(self, batch, logs):
        if self.loop.position.batch < self.loop.steps:
            return
        # the epoch's last step: before validation and the checkpoint read the weights
        dist = self.dist
        if dist.norms and not dist.sync_batchnorm:
            self.model.load_state_dict(dist.bcast_tree(self.model.state_dict()))
        elif not dist.same_weights(self.model):
            dist.resyncs += 1
            self.model.load_state_dict(dist.bcast_tree(self.model.state_dict()))

    def on_train_end(self, logs):
        self.dist.stop()


def _keyed(callbacks: list[Callback]) -> dict[str, Callback]:
    seen: dict[str, int] = {}
    out = {}
    for cb in callbacks:
        name = type(cb).__name__
        out[f"{name}#{seen.get(name, 0)}"] = cb
        seen[name] = seen.get(name, 0) + 1
    return out


__all__ = ["MPI", "Broadcast", "describe_shards", "from_environment", "shard_sizes", "world_size"]
