"""glassnet's fast paths against the plain path they replace, in one process, alternating.

Each fast path that a switch can turn off is timed on and off, ``--rounds`` times in turn, on
the shapes it was chosen for; the report is the median of each and their ratio (fast / plain:
below 1, the fast path is faster). One process, so both sides see the same BLAS, allocator and
machine state; no PyTorch here (the ratios against PyTorch are the other tables).

- ``dx by row-shifted products``: ``Conv2d``'s input gradient for a stride-1 convolution on a
  large map against the tap-by-tap scatter, on the ResNet preset's Conv2d(16,16,3) at 28x28,
  its Conv2d(32,32,3) at 14x14, and on its whole training step with the layer's threshold
  (``glassnet.layers.conv.SHIFTED_DX_MAX_WASTE``) and with the one it had before (1.4, which
  took the 14x14 maps too);
- ``cols written over``: the next training forward writing its windows into the last step's
  im2col matrix (``Conv2d._cols_buffer``) against a fresh matrix each step, on the ResNet step;
- ``windows in blocks``: ``Conv2d``'s forward writing and multiplying its im2col windows a few
  examples at a time (``glassnet.layers.conv.COLS_BLOCK_BYTES``) against the whole batch's
  matrix at once, on CNN-A's Conv2d(32,64,5), the ResNet's Conv2d(16,16,3) and the ResNet step
  (the layer times both ways on its calls and keeps the faster, ``glassnet.tuning``: here the
  blocks are pinned);
- ``no_grad windows``: CNN-A's inference with the blocks' windows in two blocks' buffers, in one,
  and as each layer chooses by timing these ways, against a ring of 64 MiB (``NO_GRAD_RING_BYTES``);
- ``dx adds on pixel-major memory``: the tap-by-tap dx adding its products on (H, W, N, C)
  memory (``glassnet.layers.conv.PIXEL_MAJOR_DX``) against the layer's channels-last memory, on
  CNN-A's Conv2d(32,64,5), the ResNet's Conv2d(64,64,3) at 7x7 and CNN-A's training step;
- ``dW in blocks``: the one-input-channel convolution's dW summed over blocks of its inner
  dimension (``glassnet.layers.conv.LONG_PRODUCT_BLOCK_BYTES``) against one product, on CNN-A's
  first layer and CNN-A's training step;
- ``a ReLU and its max-pool as one step``: ``Sequential`` running a ReLU and the max-pool after
  it as the pool then the ReLU (``glassnet.module.JOIN_STEPS``, ``PoolThenReLU``) against the
  two layers one by one, on CNN-A's first pair and on CNN-A's training steps with and without
  batch norm;
- ``a Linear and its ReLU as one step``: ``Sequential`` running the ReLU in place on the
  Linear's product (``LinearThenReLU``, the same switch) against the two layers one by one, on
  the MLP 784-256-128-10's inference pass (``predict``, 10,000 images, batch 500) and training
  step (batch 128); CNN-A's rows above switch both kinds of pairs (its classifier has one);
- ``a batch on two threads``: ``train_step`` with ``gn.Shards(model, 2)`` (each half of the
  batch forward and backward through its own replica on its own thread, BLAS on one thread
  each; ``glassnet.shards``, ``fit(shards=2)``) against the plain step (BLAS on two threads),
  on CNN-A, CNN-A + BatchNorm2d (batch norm synchronised), the MLP 784-256-128-10 and an
  LSTM(1 -> 64) classifier over T = 40 steps, batch 128 (each switch followed by a quarter of a
  second of untimed steps: OpenBLAS's second thread spins for a while after the plain steps'
  products, and slowed the first steps on two Python threads);
- ``the first convolution's output pixel-major``: the one-input-channel ``Conv2d`` before a
  max-pool returning its output as a view of (H, W, N, C) memory
  (``glassnet.layers.conv.PIXEL_MAJOR_OUT``) against channels-last, on CNN-A's training steps
  with and without batch norm;
- ``through the DFT``: the convolutions that the layer's rule sends through the discrete
  Fourier transform (``glassnet.layers._spectral``, ``SPECTRAL_MAX_COST``) against the
  windows, on CNN-A's Conv2d(32,64,5) at 12x12, the book's Conv2d(20,40,5) at 12x12, the
  ResNet's Conv2d(64,64,3) at 7x7 (pixel-major input and delta, as they come in these nets), and
  on the training steps and inference passes that hold them.

The rows before ``through the DFT`` measure the windows' machinery, so every convolution in them
runs by windows (``SPECTRAL_MAX_COST = 0``; CNN-A's second convolution no longer takes the
windows by default); the DFT's rows and the shards' rows run the layers' default.

    python benchmarks/bench_paths.py --rounds 8
"""

from __future__ import annotations

import argparse
import time

from harness import alternating_ms, in_process_main, in_process_parser, windows_only

BATCH = 128
SETTLE_S = 0.25  # seconds of untimed training steps after switching shards on or off (``_shards_rows``)


def compare(name: str, work, fast, plain, rounds: int, repeats: int) -> dict:
    """``work`` timed with ``fast()`` then ``plain()`` switched on, alternating; ms and ratio."""
    ms = alternating_ms({"fast": (fast, work), "plain": (plain, work)}, rounds, repeats)
    fast()
    f, p = ms["fast"], ms["plain"]
    return {"name": name, "fast_ms": round(f, 3), "plain_ms": round(p, 3), "ratio": round(f / p, 3)}


def measure(rounds: int, repeats: int) -> list[dict]:
    import numpy as np

    import glassnet as gn

    gn.tune_malloc()
    rng = np.random.default_rng(0)
    with windows_only():  # the windows' rows: every convolution by windows
        results = _windows_rows(gn, np, rng, rounds, repeats)
    loss_fn, few = gn.CrossEntropyLoss(), max(2, repeats // 4)
    results += _spectral_rows(gn, np, rng, loss_fn, rounds, repeats, few)
    results += _shards_rows(gn, np, rng, loss_fn, rounds, repeats, few)
    return results


def _windows_rows(gn, np, rng, rounds: int, repeats: int) -> list[dict]:
    """The rows of the windows' machinery (every row before ``through the DFT``)."""
    from glassnet import tuning
    from glassnet.layers import conv as conv_module

    shifted = conv_module.SHIFTED_DX_MAX_WASTE

    def set_waste(v):
        return lambda: setattr(conv_module, "SHIFTED_DX_MAX_WASTE", v)

    results = []
    for c, hw in ((16, 28), (32, 14)):
        conv = gn.Conv2d(c, c, 3, padding=1, rng=rng)
        x = rng.standard_normal((BATCH, hw, hw, c)).astype(np.float32).transpose(0, 3, 1, 2)  # NHWC memory
        y = conv.forward(x)
        dy = rng.standard_normal(y.shape).astype(np.float32)
        dy = np.ascontiguousarray(dy.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)
        results.append(compare(f"Conv2d({c},{c},3, padding 1) backward on ({BATCH},{c},{hw},{hw}): "
                               "dx by row-shifted products / tap by tap", lambda: conv.backward(dy),  # noqa: B023
                               set_waste(1e9), set_waste(0.0), rounds, repeats))  # fmt: skip

    model = gn.models.resnet(np.random.default_rng(0), (1, 28, 28), 10).to(np.float32)
    xb = rng.random((BATCH, 1, 28, 28), dtype=np.float32)
    yb = rng.integers(0, 10, BATCH)
    opt, loss_fn = gn.optim.Adam(model.parameters(), lr=1e-3), gn.CrossEntropyLoss()

    def step():
        gn.train_step(model, loss_fn, opt, xb, yb)

    few = max(2, repeats // 4)
    resnet = "`resnet` preset training step: dx by row-shifted products"
    results.append(compare(f"{resnet} at 28x28 (the layer's threshold, {shifted}) / tap by tap",
                           step, set_waste(shifted), set_waste(0.0), rounds, few))  # fmt: skip
    results.append(compare(f"{resnet} at 28x28 and 14x14 (threshold 1.4) / tap by tap",
                           step, set_waste(1.4), set_waste(0.0), rounds, few))  # fmt: skip
    reuse = gn.Conv2d._cols_buffer

    def set_reuse(on):
        return lambda: setattr(gn.Conv2d, "_cols_buffer", reuse if on else lambda self, *a: None)

    results.append(compare("`resnet` preset training step: cols written over / a fresh matrix each step",
                           step, set_reuse(True), set_reuse(False), rounds, few))  # fmt: skip

    block = conv_module.COLS_BLOCK_BYTES

    def set_block(v):
        def switch():
            conv_module.COLS_BLOCK_BYTES = v
            tuning.FIXED["conv_windows"] = "blocks"  # not timed against the whole batch here

        return switch

    whole = 1 << 40
    for c, out, k, hw, pad in ((32, 64, 5, 12, 0), (16, 16, 3, 28, 1)):
        conv = gn.Conv2d(c, out, k, padding=pad, rng=rng)
        x = rng.standard_normal((BATCH, hw, hw, c)).astype(np.float32).transpose(0, 3, 1, 2)  # NHWC memory
        name = f"Conv2d({c},{out},{k}) forward on ({BATCH},{c},{hw},{hw})"
        results.append(compare(f"{name}: windows in blocks / the whole batch's at once",
                               lambda: conv.forward(x),  # noqa: B023
                               set_block(block), set_block(whole), rounds, repeats))  # fmt: skip
    results.append(compare("`resnet` preset training step: windows in blocks / the whole batch's at once",
                           step, set_block(block), set_block(whole), rounds, few))  # fmt: skip
    del tuning.FIXED["conv_windows"]

    def set_pixel_major(on):
        return lambda: setattr(conv_module, "PIXEL_MAJOR_DX", on)

    for c, out, k, hw, pad in ((32, 64, 5, 12, 0), (64, 64, 3, 7, 1)):
        conv = gn.Conv2d(c, out, k, padding=pad, rng=rng)
        x = rng.standard_normal((BATCH, hw, hw, c)).astype(np.float32).transpose(0, 3, 1, 2)  # NHWC memory
        y = conv.forward(x)
        dy = np.ascontiguousarray(rng.standard_normal(y.shape).astype(np.float32).transpose(0, 2, 3, 1))
        dy = dy.transpose(0, 3, 1, 2)
        results.append(compare(f"Conv2d({c},{out},{k}) backward on ({BATCH},{c},{hw},{hw}): "
                               "dx adds on pixel-major / channels-last memory", lambda: conv.backward(dy),  # noqa: B023
                               set_pixel_major(True), set_pixel_major(False), rounds, repeats))  # fmt: skip
    cnn = gn.models.cnn_a(np.random.default_rng(0), (1, 28, 28), 10)
    cnn_opt = gn.optim.Adam(cnn.parameters(), lr=1e-3)

    def cnn_step():
        gn.train_step(cnn, loss_fn, cnn_opt, xb, yb)

    results.append(compare("CNN-A training step: dx adds on pixel-major / channels-last memory",
                           cnn_step, set_pixel_major(True), set_pixel_major(False), rounds, few))  # fmt: skip
    long_block = conv_module.LONG_PRODUCT_BLOCK_BYTES

    def set_long_block(v):
        return lambda: setattr(conv_module, "LONG_PRODUCT_BLOCK_BYTES", v)

    first = gn.Conv2d(1, 32, 5, rng=rng)
    y = first.forward(xb)
    dy = np.ascontiguousarray(rng.standard_normal(y.shape).astype(np.float32).transpose(0, 2, 3, 1))
    dy = dy.transpose(0, 3, 1, 2)
    results.append(compare(f"Conv2d(1,32,5) backward_params on ({BATCH},1,28,28): dW in blocks / one product",
                           lambda: first.backward_params(dy), set_long_block(long_block),
                           set_long_block(whole), rounds, repeats))  # fmt: skip
    results.append(compare("CNN-A training step: the first layer's dW in blocks / one product", cnn_step,
                           set_long_block(long_block), set_long_block(whole), rounds, few))  # fmt: skip

    def set_join(on):
        return lambda: setattr(gn.module, "JOIN_STEPS", on)

    pair = gn.Sequential(gn.ReLU(), gn.MaxPool2d(2))
    z = first.forward(xb)  # CNN-A's first convolution's output: an NCHW view of channels-last memory
    dz = rng.standard_normal((BATCH, 12, 12, 32)).astype(np.float32).transpose(0, 3, 1, 2)  # as y lies

    def pair_pass():
        pair.forward(z)
        pair.backward(dz)

    results.append(compare(f"ReLU + MaxPool2d(2) forward + backward on ({BATCH},32,24,24): the pool then the "
                           "ReLU / the ReLU then the pool", pair_pass, set_join(True), set_join(False),
                           rounds, repeats))  # fmt: skip
    results.append(compare("CNN-A training step: joined steps (each ReLU and its max-pool, the Linear and "
                           "its ReLU) / layer by layer",
                           cnn_step, set_join(True), set_join(False), rounds, few))  # fmt: skip
    bn = gn.models.cnn_a(np.random.default_rng(0), (1, 28, 28), 10, batch_norm=True)
    bn_opt = gn.optim.Adam(bn.parameters(), lr=1e-3)
    results.append(compare("CNN-A + BatchNorm2d training step: joined steps / layer by layer",
                           lambda: gn.train_step(bn, loss_fn, bn_opt, xb, yb),
                           set_join(True), set_join(False), rounds, few))  # fmt: skip
    mlp = gn.Sequential(gn.Linear(784, 256, rng=rng), gn.ReLU(), gn.Linear(256, 128, rng=rng), gn.ReLU(),
                        gn.Linear(128, 10, rng=rng))  # fmt: skip
    mlp_opt = gn.optim.SGD(mlp.parameters(), lr=0.01, momentum=0.9)
    images = rng.random((10000, 784), dtype=np.float32)
    results.append(compare("MLP 784-256-128-10 inference pass (predict, 10,000 images, batch 500): each "
                           "Linear and its ReLU as one step / layer by layer",
                           lambda: gn.predict(mlp, images, batch_size=500), set_join(True), set_join(False),
                           rounds, few))  # fmt: skip
    results.append(compare(f"MLP 784-256-128-10 training step (batch {BATCH}): each Linear and its ReLU as "
                           "one step / layer by layer",
                           lambda: gn.train_step(mlp, loss_fn, mlp_opt, images[:BATCH], yb),
                           set_join(True), set_join(False), rounds, repeats))  # fmt: skip

    def set_pixel_major_out(on):
        return lambda: setattr(conv_module, "PIXEL_MAJOR_OUT", on)

    results.append(compare("CNN-A training step: the first convolution's output pixel-major / channels-last",
                           cnn_step, set_pixel_major_out(True), set_pixel_major_out(False),
                           rounds, few))  # fmt: skip
    results.append(compare("CNN-A + BatchNorm2d training step: the first convolution's output pixel-major / "
                           "channels-last", lambda: gn.train_step(bn, loss_fn, bn_opt, xb, yb),
                           set_pixel_major_out(True), set_pixel_major_out(False), rounds, few))  # fmt: skip
    results += _no_grad_windows_rows(gn, np, rounds, few)
    return results


def _spectral_rows(gn, np, rng, loss_fn, rounds: int, repeats: int, few: int) -> list[dict]:
    """The convolutions the rule sends through the DFT, and the steps and passes that hold them,
    against the windows (``SPECTRAL_MAX_COST`` switched between the layer's value and 0)."""
    from glassnet.layers import conv as conv_module

    spectral = conv_module.SPECTRAL_MAX_COST

    def set_cost(v):
        return lambda: setattr(conv_module, "SPECTRAL_MAX_COST", v)

    def pixel_major(shape):  # (N, C, H, W) as the NCHW view of (H, W, N, C) memory
        n, c, h, w = shape
        return rng.standard_normal((h, w, n, c)).astype(np.float32).transpose(2, 3, 0, 1)

    rows = []
    for c, out, k, hw, pad, what in ((32, 64, 5, 12, 0, "CNN-A's"), (20, 40, 5, 12, 0, "the book's"),
                                     (64, 64, 3, 7, 1, "the ResNet's")):  # fmt: skip
        conv = gn.Conv2d(c, out, k, padding=pad, rng=rng)
        x = pixel_major((BATCH, c, hw, hw))
        dy = pixel_major(conv.forward(x).shape)
        assert conv.spectral is not None, f"{what} Conv2d({c},{out},{k}) takes the windows"

        def work(conv=conv, x=x, dy=dy):
            conv.forward(x)
            conv.backward(dy)

        rows.append(compare(f"{what} Conv2d({c},{out},{k}) forward + backward on ({BATCH},{c},{hw},{hw}): "
                            "through the DFT / by windows", work, set_cost(spectral), set_cost(0),
                            rounds, repeats))  # fmt: skip
    xb, yb = rng.random((BATCH, 1, 28, 28), dtype=np.float32), rng.integers(0, 10, BATCH)
    images = rng.random((2000, 1, 28, 28), dtype=np.float32)
    nets = {
        "CNN-A": gn.models.cnn_a(np.random.default_rng(0), (1, 28, 28), 10),
        "CNN-A + BatchNorm2d": gn.models.cnn_a(np.random.default_rng(0), (1, 28, 28), 10, batch_norm=True),
        "`resnet` preset": gn.models.resnet(np.random.default_rng(0), (1, 28, 28), 10).to(np.float32),
        "the book's chapter 6 network with two convolutions": gn.models.book_ch6(
            np.random.default_rng(0), (1, 28, 28), 10, convs=2),
    }  # fmt: skip
    for label, model in nets.items():
        opt = gn.optim.Adam(model.parameters(), lr=1e-3)
        rows.append(compare(f"{label} training step (batch {BATCH}): through the DFT where the rule says / "
                            "by windows", lambda m=model, o=opt: gn.train_step(m, loss_fn, o, xb, yb),
                            set_cost(spectral), set_cost(0), rounds, few))  # fmt: skip
    cnn = nets["CNN-A"]
    rows.append(compare("CNN-A inference pass (predict, 2,000 images, batch 500): through the DFT / by "
                        "windows", lambda: gn.predict(cnn, images, batch_size=500),
                        set_cost(spectral), set_cost(0), rounds, few))  # fmt: skip
    return rows


def _no_grad_windows_rows(gn, np, rounds: int, few: int) -> list[dict]:
    """CNN-A's inference with its no_grad windows in two blocks' buffers, in one, and as each
    layer chooses by timing its ways (``glassnet.tuning``), against the 64 MiB ring."""
    from glassnet import tuning

    model = gn.models.cnn_a(np.random.default_rng(0), (1, 28, 28), 10)
    images = np.random.default_rng(1).random((2000, 1, 28, 28), dtype=np.float32)

    def pin(way):
        def switch():
            if way is None:
                tuning.FIXED.pop("conv_no_grad_windows", None)
            else:
                tuning.FIXED["conv_no_grad_windows"] = way

        return switch

    name = "CNN-A inference pass (predict, 2,000 images, batch 500): no_grad windows"
    rows = []
    ways = (("two", "in two blocks' buffers"), ("one", "in one block's buffer"),
            (None, "the way each layer times fastest"))  # fmt: skip
    for fast, label in ways:
        rows.append(compare(f"{name} {label} / in a 64 MiB ring",
                            lambda: gn.predict(model, images, batch_size=500), pin(fast), pin("ring"),
                            rounds, few))  # fmt: skip
    pin(None)()
    return rows


def _shards_rows(gn, np, rng, loss_fn, rounds: int, repeats: int, few: int) -> list[dict]:
    """Training steps with their batch on two threads (``gn.Shards``) and on one."""
    mlp = gn.Sequential(gn.Linear(784, 256, rng=rng), gn.ReLU(), gn.Linear(256, 128, rng=rng), gn.ReLU(),
                        gn.Linear(128, 10, rng=rng))  # fmt: skip
    lstm = gn.Sequential(gn.LSTM(1, 64, rng=rng), gn.LastStep(), gn.Linear(64, 10, rng=rng))
    models = {
        "CNN-A": (gn.models.cnn_a(np.random.default_rng(0), (1, 28, 28), 10), (BATCH, 1, 28, 28), few),
        "CNN-A + BatchNorm2d": (gn.models.cnn_a(np.random.default_rng(0), (1, 28, 28), 10, batch_norm=True),
                                (BATCH, 1, 28, 28), few),
        "MLP 784-256-128-10": (mlp, (BATCH, 784), repeats),
        "LSTM(1 -> 64), T = 40,": (lstm, (BATCH, 40, 1), repeats),
    }  # fmt: skip
    yb = rng.integers(0, 10, BATCH)
    rows = []
    for label, (model, shape, count) in models.items():
        xb = rng.random(shape, dtype=np.float32)
        opt = gn.optim.Adam(model.parameters(), lr=1e-3)
        shards, use = gn.Shards(model, 2), {}

        def step(model=model, opt=opt, xb=xb, use=use):
            gn.train_step(model, loss_fn, opt, xb, yb, shards=use.get("shards"))

        def switch(to, step=step, use=use):
            """Shards on or off, then untimed steps for SETTLE_S seconds: after products on two
            BLAS threads, OpenBLAS's second thread spins on its core for a while (about 0.1 s
            here) waiting for more, and the first steps on two Python threads after a switch ran
            1.5-2x slower for it, which a run of fit(shards=k) pays once, not every few steps."""
            use.clear()
            use.update(to)
            settled = time.perf_counter() + SETTLE_S
            while time.perf_counter() < settled:
                step()

        name = f"{label} training step (batch {BATCH}): the batch on two threads (shards=2) / one"
        rows.append(compare(name,
                            step, lambda s=shards, switch=switch: switch({"shards": s}),
                            lambda switch=switch: switch({}), rounds, count))  # fmt: skip
        shards.close()
    return rows


def build_parser() -> argparse.ArgumentParser:
    return in_process_parser(__doc__, "alternations of the fast and plain path", repeats=8)


def main() -> None:
    header = ("path", "fast ms", "plain ms", "fast / plain")
    in_process_main(build_parser(), measure, header, ("fast_ms", "plain_ms"))


if __name__ == "__main__":
    main()
