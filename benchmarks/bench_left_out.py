"""Ideas measured and left out: each alternative against glassnet's own path, in one process.

docs/speed.md lists ideas that were tried and gave nothing ("Measured and left out"). The ones
below are written here, outside the library, so that their verdict comes from a command and
can be measured again on another machine: each is timed against the layer it would replace,
alternating, ``--rounds`` times, on the shapes it was meant for; the report is the median of
each side and their ratio (alternative / glassnet: above 1, the alternative is slower). Each
alternative is first checked to compute the same numbers as the layer.

- ``batch norm in blocks of examples``: forward's centring and variance, then its scale and
  shift, and backward's sums and its four passes, a block of examples at a time while it is in
  cache (2 MiB), instead of whole-batch passes;
- ``Conv2d dx by blocks of examples``: delta Wmat^T for a few examples at a time and col2im
  from that cache-resident block, instead of one product per kernel tap;
- ``Winograd F(2x2, 3x3)``: the forward of a 3x3 convolution from 4x4 input tiles (B^T d B and
  A^T M A as whole-array additions, the 16 products V U as one stacked ``matmul``), instead of
  im2col and one product (both convolution rows against the windows, ``SPECTRAL_MAX_COST = 0``:
  CNN-A's Conv2d(32,64,5) and the 8x8 map's now go through the DFT by default, bench_paths.py);
- ``the LSTM on two threads``: LSTM(1 -> 64)'s forward and backward over T = 40 steps with the
  batch split in two halves, each on its own Python thread with the BLAS held to one thread (two
  LSTMs with the same weights; the halves' weight gradients add up to the whole batch's),
  instead of one thread driving the whole batch through a two-thread BLAS. This is the one way
  left to put the second core on the scan's element-wise passes, which NumPy runs on one thread.

A layer timed alone, the same call again and again, keeps its arrays in cache; inside a training
step they arrive from other layers. So the idea that wins alone (batch norm's) is also timed
where it would live: in CNN-A + BatchNorm2d's and the ``resnet`` preset's training step, with the
layer's methods switched to the alternative and back, alternating. (ReLU by rows against a row of
zeros and its backward through a float mask were here too; they are now the layer's own passes,
``glassnet.layers.activations.relu``.)

    python benchmarks/bench_left_out.py --rounds 8
"""

from __future__ import annotations

import argparse

from harness import alternating_ms, in_process_main, in_process_parser, windows_only

BATCH = 128
BN_BLOCK_BYTES = 2 << 20


def compare(name: str, alternative, glassnet, rounds: int, repeats: int, on=None, off=None) -> dict:
    """``alternative`` and ``glassnet`` timed in turn (``harness.alternating_ms``), each after its
    switch where one is given (``on``, ``off``: the class's methods switched; left off after)."""
    ms = alternating_ms({"alternative": (on, alternative), "glassnet": (off, glassnet)}, rounds, repeats)
    if off is not None:
        off()
    a, g = ms["alternative"], ms["glassnet"]
    return {"name": name, "alternative_ms": round(a, 3), "glassnet_ms": round(g, 3), "ratio": round(a / g, 3)}


def channels_last(np, rng, shape):
    """A float32 (N, C, H, W) array in channels-last memory, as convolutions return them."""
    n, c, h, w = shape
    return rng.standard_normal((n, h, w, c)).astype(np.float32).transpose(0, 3, 1, 2)


# --- the alternatives --------------------------------------------------------------------------
def batch_norm_in_blocks(np, x2, dy2, c, hw, gamma, beta, eps=1e-5):
    """Training forward and backward of batch norm on (N, H W C) rows, a block of rows at a time:
    returns y and dx (the layer's formulas: docs/speed.md, "Batch norm on a convolution's output")."""
    from glassnet.layers.norm import _channel_dot, _channel_sum

    n, m = len(x2), x2.size // c
    step = max(1, BN_BLOCK_BYTES // x2[0].nbytes)
    blocks = [slice(s, min(s + step, n)) for s in range(0, n, step)]
    spread = lambda v: np.tile(v, hw)  # noqa: E731
    mu = spread(_channel_sum(x2, c, True) * (1.0 / m))
    xc, y, dx = np.empty_like(x2), np.empty_like(x2), np.empty_like(x2)
    sq = np.zeros(c, x2.dtype)
    for b in blocks:
        np.subtract(x2[b], mu, out=xc[b])
        sq += _channel_dot(xc[b], xc[b], c, True)
    inv_sigma = 1.0 / np.sqrt(sq * (1.0 / m) + eps)
    scale, shift = spread(inv_sigma * gamma), spread(beta)
    for b in blocks:
        np.multiply(xc[b], scale, out=y[b])
        y[b] += shift
    dbeta, dgamma = np.zeros(c, x2.dtype), np.zeros(c, x2.dtype)
    for b in blocks:
        dbeta += _channel_sum(dy2[b], c, True)
        dgamma += _channel_dot(dy2[b], xc[b], c, True)
    dgamma *= inv_sigma
    a, mean_dy = spread(dgamma * (-inv_sigma / m)), spread(dbeta * (1.0 / m))
    for b in blocks:
        np.multiply(xc[b], a, out=dx[b])
        dx[b] += dy2[b]
        dx[b] -= mean_dy
        dx[b] *= scale
    return y, dx


def conv_dx_in_blocks(np, delta, wmat_t, n, ho, wo, hp, wp, c, k, block_bytes=4 << 20):
    """dxp (N, Hp, Wp, C) of a stride-1 convolution: delta Wmat^T for a few examples at a time,
    then col2im from that block while it is in cache."""
    dxp = np.zeros((n, hp, wp, c), delta.dtype)
    rows = ho * wo
    step = max(1, block_bytes // (rows * k * k * c * delta.itemsize))
    buf = np.empty((min(step, n) * rows, k * k * c), delta.dtype)
    for s in range(0, n, step):
        e = min(s + step, n)
        d = np.matmul(delta[s * rows : e * rows], wmat_t, out=buf[: (e - s) * rows])
        d6 = d.reshape(e - s, ho, wo, k, k, c)
        for i in range(k):
            for j in range(k):
                dxp[s:e, i : i + ho, j : j + wo] += d6[:, :, :, i, j]
    return dxp


def winograd_kernel(np, W):
    """U = G g G^T for every (out, in) pair: W (K, C, 3, 3) -> (16, C, K)."""
    G = np.array([[1, 0, 0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0, 0, 1]], np.float64)
    return (
        np.einsum("ia,kcab,jb->ijck", G, W.astype(np.float64), G).astype(W.dtype).reshape(16, *W.shape[1::-1])
    )


def winograd_forward(np, xp, U):
    """y (N, H, W, K) of a 3x3, stride-1 convolution of the padded channels-last xp (N, H+2, W+2, C),
    H and W even, by F(2x2, 3x3): y = A^T [(G g G^T) * (B^T d B)] A per 2x2 output tile."""
    from numpy.lib.stride_tricks import as_strided

    n, hp, wp, c = xp.shape
    th, tw = (hp - 2) // 2, (wp - 2) // 2
    s = xp.strides
    d = as_strided(xp, (n, th, tw, 4, 4, c), (s[0], 2 * s[1], 2 * s[2], s[1], s[2], s[3]), writeable=False)
    rows = np.empty(
        (4, n, th, tw, 4, c), xp.dtype
    )  # B^T d, B^T = [[1,0,-1,0],[0,1,1,0],[0,-1,1,0],[0,1,0,-1]]
    np.subtract(d[:, :, :, 0], d[:, :, :, 2], out=rows[0])
    np.add(d[:, :, :, 1], d[:, :, :, 2], out=rows[1])
    np.subtract(d[:, :, :, 2], d[:, :, :, 1], out=rows[2])
    np.subtract(d[:, :, :, 1], d[:, :, :, 3], out=rows[3])
    V = np.empty((4, 4, n, th, tw, c), xp.dtype)  # (B^T d) B
    np.subtract(rows[..., 0, :], rows[..., 2, :], out=V[:, 0])
    np.add(rows[..., 1, :], rows[..., 2, :], out=V[:, 1])
    np.subtract(rows[..., 2, :], rows[..., 1, :], out=V[:, 2])
    np.subtract(rows[..., 1, :], rows[..., 3, :], out=V[:, 3])
    M = np.matmul(V.reshape(16, n * th * tw, c), U).reshape(4, 4, n, th, tw, -1)
    r0 = M[0] + M[1]  # A^T M, A^T = [[1,1,1,0],[0,1,-1,-1]]
    r0 += M[2]
    r1 = M[1] - M[2]
    r1 -= M[3]
    y = np.empty((n, th, 2, tw, 2, M.shape[-1]), xp.dtype)
    for i, r in enumerate((r0, r1)):  # (A^T M) A
        np.add(r[0], r[1], out=y[:, :, i, :, 0])
        y[:, :, i, :, 0] += r[2]
        np.subtract(r[1], r[2], out=y[:, :, i, :, 1])
        y[:, :, i, :, 1] -= r[3]
    return y.reshape(n, 2 * th, 2 * tw, -1)


def batch_norm_switch(gn, np):
    """(on, off): BatchNorm2d's training forward and backward on channels-last input in blocks of
    examples (as ``batch_norm_in_blocks``, with the layer's running statistics and gradients)."""
    import math

    from glassnet.layers import norm
    from glassnet.layers.norm import _channel_dot, _channel_sum

    forward, backward = norm._BatchNorm.forward, norm._BatchNorm.backward

    def blocks(a2):
        step = max(1, BN_BLOCK_BYTES // a2[0].nbytes)
        return [slice(s, min(s + step, len(a2))) for s in range(0, len(a2), step)]

    def fast_forward(self, x):
        cl = x.ndim == 4 and x.shape[1] > 1 and x.transpose(0, 2, 3, 1).flags.c_contiguous
        if not (self.training and cl and self.sync is None and self.affine):
            return forward(self, x)
        n, c = x.shape[:2]
        self.channels_last, self.length, self.batch_stats, self.x2 = True, math.prod(x.shape[2:]), True, None
        self.pixel_major, self.tiles = False, self.length
        x2, m = self._rows(x), n * self.length
        mu = _channel_sum(x2, c, True) * (1.0 / m)
        xc, y, sq, spread_mu = np.empty_like(x2), np.empty_like(x2), np.zeros(c, x2.dtype), self._spread(mu)
        for b in blocks(x2):
            np.subtract(x2[b], spread_mu, out=xc[b])
            sq += _channel_dot(xc[b], xc[b], c, True)
        if self.track_running_stats:
            self._update_running_stats(mu, sq * (1.0 / m), m)
        self.xc, self.inv_sigma = xc, 1.0 / np.sqrt(sq * (1.0 / m) + self.eps)
        scale, shift = self._spread(self.inv_sigma * self.weight.data), self._spread(self.bias.data)
        for b in blocks(x2):
            np.multiply(xc[b], scale, out=y[b])
            y[b] += shift
        return self._unrows(y, x.shape)

    def fast_backward(self, dy):
        if not (self.batch_stats and self.channels_last and self.sync is None and self.affine):
            return backward(self, dy)
        xc, c = self.xc, self.num_features
        dy2, m = self._rows(dy), xc.size // c
        dbeta, dgamma = np.zeros(c, dy2.dtype), np.zeros(c, dy2.dtype)
        for b in blocks(dy2):
            dbeta += _channel_sum(dy2[b], c, True)
            dgamma += _channel_dot(dy2[b], xc[b], c, True)
        dgamma *= self.inv_sigma
        self.weight.grad += dgamma
        self.bias.grad += dbeta
        a, mean_dy = self._spread(dgamma * (-self.inv_sigma / m)), self._spread(dbeta * (1.0 / m))
        k, dx = self._spread(self.inv_sigma * self.weight.data), np.empty_like(dy2)
        for b in blocks(dy2):
            np.multiply(xc[b], a, out=dx[b])
            dx[b] += dy2[b]
            dx[b] -= mean_dy
            dx[b] *= k
        return self._unrows(dx, dy.shape)

    def on():
        norm._BatchNorm.forward, norm._BatchNorm.backward = fast_forward, fast_backward

    def off():
        norm._BatchNorm.forward, norm._BatchNorm.backward = forward, backward

    return on, off


# --- the measurements --------------------------------------------------------------------------
def lstm_on_two_threads(gn, np, rng, rounds: int, repeats: int) -> dict:
    """LSTM(1 -> 64), T = 40, batch ``BATCH`` (bench_rnn.py's layer): forward and backward of two
    half batches on two Python threads, the BLAS held to one thread, against the layer on the
    whole batch with the BLAS's two threads. Checked first: the halves' outputs are the whole
    batch's and their weight gradients add up to its."""
    from concurrent.futures import ThreadPoolExecutor

    from threadpoolctl import threadpool_limits

    T, H = 40, 64
    x = rng.standard_normal((BATCH, T, 1)).astype(np.float32)
    dy = rng.standard_normal((BATCH, T, H)).astype(np.float32) / (BATCH * T)
    whole = gn.LSTM(1, H, rng=rng)
    halves = [gn.LSTM(1, H) for _ in range(2)]
    for half in halves:  # the same weights
        for mine, theirs in zip(half.parameters(), whole.parameters()):
            mine.data[...] = theirs.data
    parts = [slice(0, BATCH // 2), slice(BATCH // 2, BATCH)]

    def one(layer, rows):
        layer.zero_grad()
        y = layer.forward(x[rows])
        layer.backward_params(dy[rows])
        return y

    pool = ThreadPoolExecutor(2)

    def two_threads():
        return [f.result() for f in [pool.submit(one, layer, rows) for layer, rows in zip(halves, parts)]]

    def one_thread():
        return one(whole, slice(None))

    y = one_thread()
    np.testing.assert_allclose(np.concatenate(two_threads()), y, rtol=1e-5, atol=1e-6)
    for p, a, b in zip(whole.parameters(), *(h.parameters() for h in halves)):
        np.testing.assert_allclose(a.grad + b.grad, p.grad, rtol=1e-3, atol=1e-6)
    held = []

    def on():  # the BLAS held to one thread while the halves run
        held.append(threadpool_limits(limits=1, user_api="blas"))

    def off():
        while held:
            held.pop().restore_original_limits()

    try:
        return compare(f"LSTM(1 -> {H}) forward + backward on ({BATCH},{T},1): batch halves on two Python "
                       "threads, BLAS on one each / one thread, BLAS on two", two_threads, one_thread,
                       rounds, repeats, on=on, off=off)  # fmt: skip
    finally:
        pool.shutdown()


def _conv_rows(gn, np, rng, rounds: int, repeats: int) -> list[dict]:
    """Conv2d dx by blocks of examples and Winograd F(2x2, 3x3), each against the layer's windows."""
    rows = []
    for c, out, k, hw, pad in ((32, 64, 5, 12, 0), (16, 16, 3, 28, 1)):
        conv = gn.Conv2d(c, out, k, padding=pad, rng=rng)
        x = channels_last(np, rng, (BATCH, c, hw, hw))
        y = conv.forward(x)
        dy = channels_last(np, rng, y.shape)
        ho = y.shape[2]
        hp = hw + 2 * pad
        delta = dy.transpose(0, 2, 3, 1).reshape(-1, out)
        wmat_t = np.ascontiguousarray(conv._wmat(c).T)

        def alternative(delta=delta, wmat_t=wmat_t, conv=conv, c=c, k=k, ho=ho, hp=hp, pad=pad, hw=hw):
            conv.W.grad += (
                (conv.cols.T @ delta).reshape(k, k, c, -1).transpose(3, 2, 0, 1)
            )  # dW, as the layer
            conv.b.grad += delta.sum(axis=0)
            dxp = conv_dx_in_blocks(np, delta, wmat_t, BATCH, ho, ho, hp, hp, c, k)
            return dxp[:, pad : pad + hw, pad : pad + hw].transpose(0, 3, 1, 2)

        np.testing.assert_allclose(alternative(), conv.backward(dy), rtol=1e-3, atol=1e-3)
        rows.append(compare(f"Conv2d({c},{out},{k}) backward on ({BATCH},{c},{hw},{hw}): dx by blocks of "
                            "examples / the layer's", alternative, lambda conv=conv, dy=dy: conv.backward(dy),
                            rounds, repeats))  # fmt: skip

    for c, hw in ((16, 28), (32, 14), (64, 8)):
        conv = gn.Conv2d(c, c, 3, padding=1, bias=False, rng=rng)
        x = channels_last(np, rng, (BATCH, c, hw, hw))
        xp = np.zeros((BATCH, hw + 2, hw + 2, c), np.float32)
        xp[:, 1:-1, 1:-1] = x.transpose(0, 2, 3, 1)
        U = winograd_kernel(np, conv.W.data)
        np.testing.assert_allclose(winograd_forward(np, xp, U), conv.forward(x).transpose(0, 2, 3, 1),
                                   rtol=1e-4, atol=1e-4)  # fmt: skip
        rows.append(compare(f"Conv2d({c},{c},3, padding 1) forward on ({BATCH},{c},{hw},{hw}): Winograd "
                            "F(2x2, 3x3) / im2col", lambda xp=xp, U=U: winograd_forward(np, xp, U),
                            lambda conv=conv, x=x: conv.forward(x), rounds, repeats))  # fmt: skip

    return rows


def measure(rounds: int, repeats: int) -> list[dict]:
    import numpy as np

    import glassnet as gn

    gn.tune_malloc()
    rng = np.random.default_rng(0)
    rows = []
    for shape in ((BATCH, 32, 24, 24), (BATCH, 16, 28, 28)):
        n, c, h, w = shape
        x, dy = channels_last(np, rng, shape), channels_last(np, rng, shape)
        bn = gn.BatchNorm2d(c)
        bn.weight.data[...] = rng.uniform(0.5, 1.5, c)
        bn.bias.data[...] = rng.standard_normal(c)

        def layer(bn=bn, x=x, dy=dy):
            return bn.forward(x), bn.backward(dy)

        x2, dy2 = (a.transpose(0, 2, 3, 1).reshape(n, -1) for a in (x, dy))

        def blocked(x2=x2, dy2=dy2, c=c, hw=h * w, bn=bn):
            return batch_norm_in_blocks(np, x2, dy2, c, hw, bn.weight.data, bn.bias.data)

        y_ref, dx_ref = layer()
        y_alt, dx_alt = blocked()
        np.testing.assert_allclose(y_alt, y_ref.transpose(0, 2, 3, 1).reshape(n, -1), rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(dx_alt, dx_ref.transpose(0, 2, 3, 1).reshape(n, -1), rtol=1e-3, atol=1e-4)
        rows.append(compare(f"BatchNorm2d({c}) forward + backward on {shape}: in blocks of examples / "
                            "whole-batch passes", blocked, layer, rounds, repeats))  # fmt: skip

    with windows_only():  # the convolutions' rows: against the windows they would change
        rows += _conv_rows(gn, np, rng, rounds, repeats)
    rows.append(lstm_on_two_threads(gn, np, rng, rounds, repeats))

    steps = {"CNN-A + BatchNorm2d": gn.models.cnn_a(rng, (1, 28, 28), 10, batch_norm=True),
             "`resnet` preset": gn.models.resnet(rng, (1, 28, 28), 10)}  # fmt: skip
    xb, yb = rng.random((BATCH, 1, 28, 28), dtype=np.float32), rng.integers(0, 10, BATCH)
    for label, model in steps.items():
        opt, loss_fn = gn.optim.Adam(model.parameters(), lr=1e-3), gn.CrossEntropyLoss()

        def step(model=model, opt=opt, loss_fn=loss_fn):
            gn.train_step(model, loss_fn, opt, xb, yb)

        few = max(2, repeats // 2) if label.startswith("`resnet`") else repeats
        on, off = batch_norm_switch(gn, np)
        name = f"{label} training step (batch {BATCH}): batch norm in blocks / the layers'"
        rows.append(compare(name, step, step, rounds, few, on=on, off=off))
    return rows


def build_parser() -> argparse.ArgumentParser:
    return in_process_parser(__doc__, "alternations of the two sides", repeats=5)


def main() -> None:
    header = ("idea", "alternative ms", "glassnet ms", "alternative / glassnet")
    in_process_main(build_parser(), measure, header, ("alternative_ms", "glassnet_ms"))


if __name__ == "__main__":
    main()
