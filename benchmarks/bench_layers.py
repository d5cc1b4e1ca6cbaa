"""Per-layer forward + backward time, glassnet against PyTorch, for the shapes of CNN-A.

CNN-A = Conv2d(1,32,5) ReLU MaxPool2d(2) Conv2d(32,64,5) ReLU MaxPool2d(2) Flatten Dropout(.5)
Linear(1024,10) on Fashion-MNIST batches of 128 (float32). Each library runs in its own process
(their BLAS thread pools starve each other in one), alternating, the two processes living
through all rounds (harness.alternate_live); each row is the median of ``--repeats`` timings
of forward + backward on the same input, after a warm-up. The first conv
needs no input gradient in a network (nor in torch, whose input has no requires_grad), so it
is timed without one. glassnet's 4-D inputs and output errors are laid out as inside CNN-A:
NCHW views of pixel-major (H, W, N, C) memory after the first convolution (which returns that
layout before a max-pool) and around the second (which computes through the DFT and returns it
too), of channels-last memory for the first convolution alone; torch's are its usual NCHW
tensors. Ratio = glassnet / torch (below 1: glassnet faster). Both processes call
``gn.tune_malloc()`` first (glassnet's CLI does; each library gets the same allocator,
harness.same_allocator); ``--malloc default`` leaves glibc's allocator as it is in both, to
measure what the tuning is worth.

    python benchmarks/bench_layers.py --rounds 2
    python benchmarks/bench_layers.py --rounds 2 --malloc default
"""

from __future__ import annotations

import argparse

from harness import (
    alternate_live,
    alternating_parser,
    answer,
    layer_table,
    median_time,
    same_allocator,
    thread_env,
)

# name: (glassnet constructor, torch constructor, input shape (batch 128), input needs grad,
# glassnet's memory layout of x and dy inside CNN-A)
SPECS = {
    "Conv2d(1,32,5) first layer": ("Conv2d(1, 32, 5)", "Conv2d(1, 32, 5)", (128, 1, 28, 28), False,
                                   "channels-last"),
    "ReLU (128,32,24,24)": ("ReLU()", "ReLU()", (128, 32, 24, 24), True, "pixel-major"),
    "MaxPool2d(2) (128,32,24,24)": ("MaxPool2d(2)", "MaxPool2d(2)", (128, 32, 24, 24), True, "pixel-major"),
    "Conv2d(32,64,5)": ("Conv2d(32, 64, 5)", "Conv2d(32, 64, 5)", (128, 32, 12, 12), True, "pixel-major"),
    "MaxPool2d(2) (128,64,8,8)": ("MaxPool2d(2)", "MaxPool2d(2)", (128, 64, 8, 8), True, "pixel-major"),
    "BatchNorm2d(32) (128,32,24,24)": ("BatchNorm2d(32)", "BatchNorm2d(32)", (128, 32, 24, 24), True,
                                       "pixel-major"),
    "BatchNorm2d(64) (128,64,8,8)": ("BatchNorm2d(64)", "BatchNorm2d(64)", (128, 64, 8, 8), True,
                                     "pixel-major"),
    "Linear(1024,10)": ("Linear(1024, 10)", "Linear(1024, 10)", (128, 1024), True, None),
}  # fmt: skip


def _as_in_network(a, layout: str | None):
    """A 4-D array laid out as glassnet's layers see it inside CNN-A: an NCHW view of
    channels-last memory (N, H, W, C) or of pixel-major memory (H, W, N, C)."""
    import numpy as np

    if a.ndim != 4:
        return a
    axes = (0, 2, 3, 1) if layout == "channels-last" else (2, 3, 0, 1)
    return np.ascontiguousarray(a.transpose(axes)).transpose(np.argsort(axes))


def time_glassnet(spec, repeats: int, tune_malloc: bool) -> float:
    import numpy as np

    import glassnet as gn

    if tune_malloc:
        gn.tune_malloc()

    ctor, _, shape, needs_grad, layout = spec
    layer = eval(ctor, {"__builtins__": {}}, vars(gn))  # noqa: S307 - the table above
    rng = np.random.default_rng(0)
    x = _as_in_network(rng.standard_normal(shape).astype(np.float32), layout)
    dy = _as_in_network(rng.standard_normal(layer.forward(x).shape).astype(np.float32), layout)

    def once():
        layer.forward(x)
        layer.backward(dy) if needs_grad else layer.backward_params(dy)

    return median_time(once, repeats)


def time_torch(spec, repeats: int, threads: int, tune_malloc: bool) -> float:
    if tune_malloc:
        same_allocator()
    import torch

    torch.set_num_threads(threads)
    _, ctor, shape, needs_grad, _ = spec
    layer = eval(ctor, {"__builtins__": {}}, vars(torch.nn))  # noqa: S307 - the table above
    x = torch.randn(shape, requires_grad=needs_grad)
    dy = torch.randn(layer(x).shape)

    def once():
        layer(x).backward(dy)

    return median_time(once, repeats)


def build_parser() -> argparse.ArgumentParser:
    ap = alternating_parser(__doc__, rounds=2, repeats=20)
    ap.add_argument("--malloc", choices=["tuned", "default"], default="tuned",
                    help="tuned: both processes call gn.tune_malloc() (as glassnet's CLI does)")  # fmt: skip
    return ap


def main() -> None:
    args = build_parser().parse_args()
    if args.impl:

        def measure():
            out = {}
            for name, spec in SPECS.items():
                try:
                    tuned = args.malloc == "tuned"
                    out[name] = (time_glassnet(spec, args.repeats, tuned) if args.impl == "glassnet"
                                 else time_torch(spec, args.repeats, args.threads, tuned))  # fmt: skip
                except AttributeError:  # a layer this version of glassnet does not have yet
                    out[name] = None
            return out

        answer(args, measure)
        return
    child = ["--repeats", str(args.repeats), "--threads", str(args.threads), "--malloc", args.malloc]
    results = alternate_live(__file__, args.rounds, child, env=thread_env(args.threads))
    layer_table(results, SPECS, "layer (forward + backward, batch 128)", args.json, args.threads)


if __name__ == "__main__":
    main()
