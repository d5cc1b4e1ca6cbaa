"""How far apart are this machine's two cores, and what does it cost glassnet's second thread?

NumPy runs a product on two BLAS threads and everything else on one: the element-wise pass after
a product reads the half that the other thread wrote. Where the two cores share a cache that is
cheap; where they do not (two dies, two sockets, or a VM whose two virtual CPUs the host places
on different dies, and moves between placements by the second), every such hand-over is a
transfer between caches, and writing again into a buffer the other core has just read first
takes it back. This script measures both, over and over for ``--seconds``:

- the distance: reading 1 MB that a thread pinned to the other core has just written, over
  reading it after this core wrote it (about 1 where the two share a cache);
- at the same moment, ``Conv2d(32, 64, 5).backward`` on CNN-A's shapes (batch 128) with its BLAS
  at two threads and at one; and, at two threads, its dx loop alone two ways: each kernel tap's
  product written into one buffer, tap after tap, then added to dx (the layer until 2026-12-05),
  and with a buffer of its own for each tap (the layer's now), both on the pixel-major memory
  the layer's adds now run on (``PIXEL_MAJOR_DX``);
- the same two ways for the dx of the ``resnet`` preset's Conv2d(16, 16, 3, padding=1) at
  28x28 by row-shifted products (``_dx_shifted_rows``, which keeps its one buffer);
- CNN-A's inference (``gn.predict``, 2,000 images in batches of 500, images per second) with
  the windows of each block of examples written into one buffer, block after block (the layer
  until 2026-12-05), in a ring of ``NO_GRAD_RING_BYTES``, in two blocks' buffers, and timed:
  as the layer now chooses among the three by timing them on its calls (``glassnet.tuning``).

Every convolution here runs by windows (``SPECTRAL_MAX_COST = 0``; CNN-A's second one goes
through the DFT by default, which hands over whole products, not windows).

Each probe is classed "near" (distance < 1.3) or "far" (>= 1.4); the report gives each class's
count and median times. Needs two CPUs (it pins one thread to each).

    python benchmarks/probe_cores.py --seconds 60
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import threading
import time

from harness import median_time, positive_int, windows_only

NEAR, FAR = 1.3, 1.4  # the distance's classes (between them: unclassed)
MB = 1 << 20


class Distance:
    """Reads of 1 MB written by a thread pinned to the other CPU, over reads of 1 MB this thread
    (pinned to the first) wrote: the cost of handing data from one core to the other."""

    def __init__(self, np, cpus: tuple[int, int]):
        self.np, self.cpus = np, cpus
        self.a, self.out = np.zeros(MB // 4, np.float32), np.empty(MB // 4, np.float32)
        self.go, self.done = threading.Event(), threading.Event()
        threading.Thread(target=self._writer, daemon=True).start()

    def _writer(self) -> None:
        os.sched_setaffinity(0, {self.cpus[1]})
        while True:
            self.go.wait()
            self.go.clear()
            self.a.fill(1.0)
            self.done.set()

    def measure(self, reads: int = 30) -> float:
        np, mask = self.np, os.sched_getaffinity(0)
        os.sched_setaffinity(0, {self.cpus[0]})
        try:
            other, own = [], []
            for _ in range(reads):
                self.go.set()
                self.done.wait()
                self.done.clear()
                t = time.perf_counter()
                np.multiply(self.a, 2.0, out=self.out)
                other.append(time.perf_counter() - t)
                self.a.fill(1.0)
                t = time.perf_counter()
                np.multiply(self.a, 2.0, out=self.out)
                own.append(time.perf_counter() - t)
        finally:
            os.sched_setaffinity(0, mask)
        return statistics.median(other) / statistics.median(own)


def tap_loop(np, d, taps, dxp, shares, place, per_tap: bool):
    """A dx loop as the convolution runs it: for each kernel tap (a, b), the product d @ taps[a, b]
    into ``shares[a kw + b]`` (``per_tap``) or into ``shares[0]`` every time, then added at once
    to dx's region ``place(a, b)``."""
    kh, kw = taps.shape[:2]

    def run():
        dxp[...] = 0
        for a in range(kh):
            for b in range(kw):
                share = shares[a * kw + b if per_tap else 0]
                np.matmul(d, taps[a, b], out=share)
                region = place(a, b)
                region += share.reshape(region.shape)

    return run


def conv_backward(np, gn):
    """Conv2d(32, 64, 5)'s backward on CNN-A's shapes, and its dx loop alone with one buffer
    written over tap after tap or with a buffer per tap."""
    rng = np.random.default_rng(0)
    conv = gn.Conv2d(32, 64, 5, rng=rng)
    x = rng.standard_normal((128, 32, 12, 12)).astype(np.float32)
    x = np.ascontiguousarray(x.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)  # NHWC memory, as a pool's
    dy = rng.standard_normal((128, 64, 8, 8)).astype(np.float32)
    dy = np.ascontiguousarray(dy.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)
    conv.forward(x)
    # on pixel-major memory, as the layer's dx (``_dx_by_taps``): delta's rows (Ho, Wo, N), dx (H, W, N, C)
    delta = np.ascontiguousarray(dy.transpose(2, 3, 0, 1)).reshape(-1, 64)
    taps = conv._kernel().transpose(0, 1, 3, 2).copy()  # (kh, kw, out, C), as the layer's dx
    shares = np.empty((25, len(delta), 32), np.float32)
    dxp = np.zeros((12, 12, 128, 32), np.float32)

    def place(a, b):  # the input pixels under tap (a, b)
        return dxp[a : a + 8, b : b + 8]

    loops = (tap_loop(np, delta, taps, dxp, shares, place, per_tap) for per_tap in (False, True))
    return (lambda: conv.backward(dy)), *loops


def shifted_rows(np):
    """The ResNet's Conv2d(16, 16, 3, padding=1) dx at 28x28 by row-shifted products
    (``_dx_shifted_rows``'s loop), with one buffer or a buffer per tap."""
    rng = np.random.default_rng(0)
    n, hp, wp, c = 128, 30, 30, 16
    rows = n * hp * wp - 2 * wp - 2
    d = rng.random((rows, c), dtype=np.float32)
    taps = rng.random((3, 3, c, c), dtype=np.float32)
    dxp = np.zeros((n * hp * wp, c), np.float32)
    shares = np.empty((9, rows, c), np.float32)

    def place(a, b):  # the padded input's rows r + a Wp + b
        return dxp[a * wp + b : a * wp + b + rows]

    return tuple(tap_loop(np, d, taps, dxp, shares, place, per_tap) for per_tap in (False, True))


INFERENCE_WAYS = ("one_buffer", "ring", "two", "timed")


def inference(np, gn):
    """CNN-A's predict on 2,000 random images, batch 500, as images per second, with the
    no_grad windows in one block's buffer, in a ring of ``NO_GRAD_RING_BYTES``, in two blocks'
    buffers, and as the layer chooses by timing the three (``glassnet.tuning``; its
    choosers live on from probe to probe, as in a long run; pinned passes do not time)."""
    from glassnet import tuning

    rng = np.random.default_rng(0)
    model = gn.models.cnn_a(rng, (1, 28, 28), 10)
    x = rng.random((2000, 1, 28, 28), dtype=np.float32)

    def predict(way: str):
        def run():
            pinned = {"one_buffer": "one", "timed": None}.get(way, way)
            with tuning.fixed(**({} if pinned is None else {"conv_no_grad_windows": pinned})):
                gn.predict(model, x, batch_size=500)

        return run

    return tuple(predict(way) for way in INFERENCE_WAYS)


def probe(seconds: float, threads: int = 2) -> dict:
    with windows_only():  # the windows' hand-overs between cores are what is probed
        return _probe(seconds, threads)


def _probe(seconds: float, threads: int) -> dict:
    import numpy as np
    from threadpoolctl import threadpool_limits

    import glassnet as gn

    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        raise SystemExit("probe_cores.py: needs two CPUs (it pins a thread to each); this process has one")
    distance = Distance(np, (cpus[0], cpus[1]))
    backward, one_buffer, per_tap = conv_backward(np, gn)
    rows_one, rows_per_tap = shifted_rows(np)
    infer = inference(np, gn)

    def ms(work, repeats=5):
        return median_time(work, repeats) * 1e3

    probes = []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        d = distance.measure()
        with threadpool_limits(threads, user_api="blas"):
            two, loop, own = ms(backward), ms(one_buffer), ms(per_tap)
            r_one, r_own = ms(rows_one), ms(rows_per_tap)
            speeds = {f"infer_{way}": 2000e3 / ms(run, 2) for way, run in zip(INFERENCE_WAYS, infer)}
        with threadpool_limits(1, user_api="blas"):
            one = ms(backward)
        probes.append(
            {"distance": d, "backward_2": two, "backward_1": one, "dx_one_buffer": loop, "dx_per_tap": own,
             "rows_one_buffer": r_one, "rows_per_tap": r_own} | speeds
        )  # fmt: skip
    classes = {}
    for name, keep in (("near", lambda d: d < NEAR), ("far", lambda d: d >= FAR)):
        chosen = [p for p in probes if keep(p["distance"])]
        if chosen:
            classes[name] = {"probes": len(chosen)} | {
                k: round(statistics.median(p[k] for p in chosen), 3) for k in chosen[0]
            }
    return {"seconds": seconds, "threads": threads, "probes": len(probes), "classes": classes}


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=positive_int, default=60, help="how long to probe")
    ap.add_argument("--threads", type=positive_int, default=2, help="BLAS threads of the two-thread columns")
    ap.add_argument("--json", action="store_true", help="print one JSON line instead of a table")
    return ap


def main() -> None:
    from run_all import cores_table  # the table as the results file has it

    args = build_parser().parse_args()
    report = probe(args.seconds, args.threads)
    if args.json:
        print(json.dumps(report))
        return
    print(f"{report['probes']} probes over {args.seconds} s\n")
    print("\n".join(cores_table(report)))


if __name__ == "__main__":
    main()
