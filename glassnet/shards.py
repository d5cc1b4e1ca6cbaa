"""A training step split by rows of the batch over threads of this one process.

    gn.fit(model, loss_fn, opt, (x, y), batch_size=128, shards=2)

With ``shards=k`` each batch's rows are cut into k contiguous parts, and each part runs
forward and backward through its own *replica* of the model, one part per thread, with NumPy's
BLAS held to one thread. A replica is a copy of the model's layers whose parameters are the
model's own arrays (``p.data``, the same memory, re-pointed before every step) and whose
gradients are its own; each layer instance keeps what its forward keeps for one part only. The
step is the model's step, in three phases:

    forward    pred = [replica_1(x_1); ...; replica_k(x_k)]            (the parts, in threads)
    loss       C = loss_fn(pred, y),  delta = dC/dpred                  (the whole batch, here)
    backward   replica_i.backward_params(delta_i),  dC/dw = sum_i dC/dw from part i   (threads)

The loss runs once on the whole batch, so its reduction, class weights, ``ignore_index`` and
sample weights mean what they mean without shards. Every layer sends each example's rows
through the same arithmetic whichever part holds it, and BP3 and BP4 sum over the batch's
examples (dC/dW = sum_n a_n delta_n): the parts' sums added up are the batch's sum, so the
gradients are the unsharded step's, to float rounding (the sum in another order).

Why: on a CPU whose two cores share no cache, every product NumPy splits over its two BLAS
threads leaves half of its result on the other core, for the one-thread passes after it (the
im2col copies, the pooling, the element-wise work). A part that stays on one thread keeps its
data in that core's cache from its first layer to its last, and NumPy lets go of the GIL
inside its products and large element-wise loops, so the two parts run side by side. That pays
where a model's passes are large (a convolutional net); small passes (an MLP's, an LSTM's per
step) are over before the GIL is handed on, and there it is slower (the measurements:
docs/speed.md, "Batch shards on threads").

Batch norm mixes the examples of a batch (``Module.mixes_examples``): its statistics are the
whole batch's. Each replica's batch-norm layer is therefore synchronised with its twins in the
other parts (its ``sync``, as ``glassnet.distributed`` does over processes with
``sync_batchnorm=True``, PyTorch's ``SyncBatchNorm``): its sums over its part are added to the
other parts' at a barrier, mu and var in forward, dbeta and dgamma in backward, so every part
normalises with the whole batch's statistics and the step is the unsharded one to rounding. The
running statistics are the model's own arrays, updated once per step (by the first part). Any
other layer that declares ``mixes_examples`` is refused. Stochastic layers (dropout) draw their
masks from generators seeded, each step, from the model's own (so a run is reproducible from
``fit``'s ``rng`` and a checkpoint resumes it bit for bit), one per part.
"""

from __future__ import annotations

import contextlib
import copy
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from .data import inputs_of, take_rows
from .layers.norm import _BatchNorm
from .module import Module, check_arg, grad_enabled, no_grad

RUNNING_STATS = ("running_mean", "running_var", "num_batches_tracked")


class _Exchange:
    """The sums of one batch-norm layer's replicas, one per part: ``allreduce`` waits until every
    part has given its array, then returns their sum, added in part order (every part gets the
    same numbers)."""

    def __init__(self, parts: int, examples: int) -> None:
        self.examples = examples  # the whole batch's n_b
        self.barrier = threading.Barrier(parts)
        self.slots: list = [None] * parts

    def allreduce(self, part: int, a: np.ndarray) -> np.ndarray:
        self.slots[part] = a
        self.barrier.wait()
        total = np.array(self.slots[0], copy=True)
        for other in self.slots[1:]:
            total += other
        self.barrier.wait()  # no part gives its next array before every part has read these
        return total


class _PartSync:
    """One replica's batch-norm ``sync`` (the interface of ``glassnet.layers.norm``): its part's
    sums added to the other parts' (``_Exchange``). Its delta is the whole batch's loss's
    already, so its weight is 1; only the first part updates the shared running statistics."""

    weight = 1.0

    def __init__(self, exchange: _Exchange, part: int) -> None:
        self.exchange, self.part = exchange, part
        self.updates_running_stats = part == 0

    @property
    def examples(self) -> int:
        return self.exchange.examples

    def allreduce(self, a: np.ndarray) -> np.ndarray:
        return self.exchange.allreduce(self.part, a)


class Shards:
    """``count`` replicas of ``model`` and the threads that run them (``count - 1`` helper
    threads; the calling thread runs the first part). ``forward(x)`` and
    ``backward_params(delta)`` are the model's, for a whole batch (module docstring).
    ``owner`` starts every error message (``fit``, ``predict``)."""

    def __init__(self, model: Module, count: int, owner: str = "Shards") -> None:
        check_arg(owner, "shards", count, lambda v: v >= 1, "an integer >= 1", int)
        mixing = [
            type(m).__name__ for m in model.modules() if m.mixes_examples and not isinstance(m, _BatchNorm)
        ]
        if mixing:
            raise ValueError(
                f"{owner}: shards={count} splits each batch over replicas of the model, but its {mixing[0]} "
                "mixes the examples of a batch and has no way to share its part's sums with the other "
                "parts (batch norm has): train this model without shards"
            )
        self.model, self.count = model, int(count)
        self.replicas = [copy.deepcopy(model) for _ in range(self.count)]
        helpers = self.count - 1  # the calling thread runs the first part
        self.pool = ThreadPoolExecutor(helpers, thread_name_prefix="glassnet-shard") if helpers else None
        self._parts: list[slice] = []
        self._blas = None
        # each replica's batch-norm layers, and this step's exchanges between them (_link_norms)
        self._norms = [[m for m in r.modules() if isinstance(m, _BatchNorm)] for r in self.replicas]
        self._exchanges: list[_Exchange] = []

    def _one_blas_thread(self):
        """A context holding NumPy's BLAS to one thread (each part's thread is one), restoring it after."""
        if self._blas is None:
            from threadpoolctl import ThreadpoolController

            self._blas = ThreadpoolController()
        return self._blas.limit(limits=1, user_api="blas")

    def _sync(self) -> None:
        """Before each step: every replica's parameters are the model's arrays (an optimizer may
        have re-pointed them), its layers in the model's mode, and each stochastic layer's
        generator freshly seeded from the model's layer's (so the model's generator alone
        decides every mask, and a checkpoint of it resumes the run exactly)."""
        own = self.model.parameters()
        mods = list(self.model.modules())
        for replica in self.replicas:
            for p, q in zip(own, replica.parameters()):
                if q.data is not p.data:
                    q.data = p.data
            for m, r in zip(mods, replica.modules()):
                r.training = m.training
                # in eval mode dropout draws nothing: the model's generator is left as it is
                if m.training and isinstance(getattr(m, "rng", None), np.random.Generator):
                    r.rng = np.random.default_rng(m.rng.integers(2**63))
                if isinstance(m, _BatchNorm):  # the model's running statistics, shared
                    for name in RUNNING_STATS:
                        setattr(r, name, getattr(m, name))

    def _link_norms(self, n: int) -> None:
        """Each batch-norm layer's replicas in this step's parts share one ``_Exchange`` (new each
        step: the number of parts may change, and a failed step leaves its barriers broken)."""
        parts = len(self._parts)
        self._exchanges = [_Exchange(parts, n) for _ in self._norms[0]]
        for part, norms in enumerate(self._norms[:parts]):
            for layer, exchange in zip(norms, self._exchanges):
                layer.sync = _PartSync(exchange, part)

    def _run(self, work, args: list) -> list:
        """``work(replica, arg)`` for every part: the first on this thread, the others on the
        helpers, BLAS held to one thread; results in part order (a part's error raised here)."""

        # no_grad() holds per thread: a helper takes the caller's mode, or under predict and
        # evaluate its part would keep what only a backward reads (and take the training paths)
        mode = contextlib.nullcontext if grad_enabled() else no_grad

        def guarded(replica, arg):  # a failing part breaks its batch-norm barriers: none waits on
            try:
                with mode():
                    return work(replica, arg)
            except BaseException:
                for exchange in self._exchanges:
                    exchange.barrier.abort()
                raise

        with self._one_blas_thread():
            later = [self.pool.submit(guarded, r, a) for r, a in zip(self.replicas[1:], args[1:])]
            outcomes = []
            for run in [lambda: guarded(self.replicas[0], args[0])] + [f.result for f in later]:
                try:
                    outcomes.append((run(), None))
                except BaseException as e:  # noqa: BLE001 (re-raised below, the first real one)
                    outcomes.append((None, e))
        errors = [e for _, e in outcomes if e is not None]
        if errors:  # a part's own error, not the broken barrier the others saw because of it
            raise next((e for e in errors if not isinstance(e, threading.BrokenBarrierError)), errors[0])
        return [out for out, _ in outcomes]

    def forward(self, x) -> np.ndarray | tuple[np.ndarray, ...]:
        """pred for the whole batch: each part's rows through its replica, stacked in order (a
        tuple of such arrays for a graph with several outputs)."""
        n = len(inputs_of(x)[0])
        k = min(self.count, n)
        bounds = [n * i // k for i in range(k + 1)]
        self._parts = [slice(bounds[i], bounds[i + 1]) for i in range(k)]
        self._sync()
        self._link_norms(n)

        def forward(replica, rows):
            return replica.forward(*inputs_of(take_rows(x, rows)))

        outs = self._run(forward, self._parts)
        if k == 1:
            return outs[0]
        if isinstance(outs[0], tuple):
            return tuple(np.concatenate(parts) for parts in zip(*outs))
        return np.concatenate(outs)

    def backward_params(self, delta: np.ndarray) -> None:
        """BP2-BP4 for each part from its rows of delta = dC/dpred, in threads; then each
        parameter's gradient gets the parts' gradients added, in part order."""

        def backward(replica, rows):
            replica.zero_grad()
            replica.backward_params(delta[rows])

        self._run(backward, self._parts)
        parts = self.replicas[: len(self._parts)]
        for p, *qs in zip(self.model.parameters(), *(r.parameters() for r in parts)):
            for q in qs:
                p.grad += q.grad

    def close(self) -> None:
        """Let the helper threads go (``fit`` calls it when the run ends)."""
        if self.pool is not None:
            self.pool.shutdown()
