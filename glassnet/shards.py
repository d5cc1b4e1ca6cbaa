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
where a model's passes are large (a convolutional net: CNN-A's forward and backward on an
Intel Xeon, 29-30 against 38-40 ms); small passes (an MLP's, an LSTM's per step) are over
before the GIL is handed on, and there it is slower (docs/speed.md, "Batch shards on threads").

Not for a layer that mixes the examples of a batch (``Module.mixes_examples``: batch norm,
whose statistics are the whole batch's; per part they would be another layer's, PyTorch's
``DataParallel`` without ``SyncBatchNorm``): a model holding one is refused. Stochastic layers
(dropout) draw their masks from generators seeded, each step, from the model's own (so a run
is reproducible from ``fit``'s ``rng`` and a checkpoint resumes it bit for bit), one per part.
"""

from __future__ import annotations

import copy
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from .data import take_rows
from .module import Module, check_arg, one_output


def _inputs(x) -> tuple:
    return x if isinstance(x, tuple) else (x,)


class Shards:
    """``count`` replicas of ``model`` and the threads that run them (``count - 1`` helper
    threads; the calling thread runs the first part). ``forward(x)`` and
    ``backward_params(delta)`` are the model's, for a whole batch (module docstring)."""

    def __init__(self, model: Module, count: int) -> None:
        check_arg("fit", "shards", count, lambda v: v >= 1, "an integer >= 1", int)
        mixing = [type(m).__name__ for m in model.modules() if m.mixes_examples]
        if mixing:
            raise ValueError(
                f"fit: shards={count} splits each batch over replicas of the model, but its {mixing[0]} "
                "mixes the examples of a batch (its statistics are the whole batch's; per part they would "
                "be another layer's): train this model without shards"
            )
        self.model, self.count = model, int(count)
        self.replicas = [copy.deepcopy(model) for _ in range(self.count)]
        helpers = self.count - 1  # the calling thread runs the first part
        self.pool = ThreadPoolExecutor(helpers, thread_name_prefix="glassnet-shard") if helpers else None
        self._parts: list[slice] = []
        self._blas = None

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
                if isinstance(getattr(m, "rng", None), np.random.Generator):
                    r.rng = np.random.default_rng(m.rng.integers(2**63))

    def _run(self, work, args: list) -> list:
        """``work(replica, arg)`` for every part: the first on this thread, the others on the
        helpers, BLAS held to one thread; results in part order (a part's error raised here)."""
        with self._one_blas_thread():
            later = [self.pool.submit(work, r, a) for r, a in zip(self.replicas[1:], args[1:])]
            first = work(self.replicas[0], args[0])
            return [first] + [f.result() for f in later]

    def forward(self, x) -> np.ndarray:
        """pred for the whole batch: each part's rows through its replica, stacked in order."""
        n = len(_inputs(x)[0])
        k = min(self.count, n)
        bounds = [n * i // k for i in range(k + 1)]
        self._parts = [slice(bounds[i], bounds[i + 1]) for i in range(k)]
        self._sync()

        def forward(replica, rows):
            return one_output(replica.forward(*_inputs(take_rows(x, rows))), "fit")

        outs = self._run(forward, self._parts)
        return outs[0] if k == 1 else np.concatenate(outs)

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
