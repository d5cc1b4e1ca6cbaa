"""Self-attention and a Transformer encoder layer, forward + backward, glassnet against PyTorch.

The issue's size: N = 128 sequences of T = 16 tokens of E = 64 features, 4 heads, float32;
the encoder layer has dim_feedforward = 128 and dropout 0 (both libraries' dropout would time
their random generators, not the layer). Each library runs in its own process (their BLAS
thread pools starve each other in one), alternating; each row is the median of ``--repeats``
timings on the same input after a warm-up. The two processes live through all rounds
(harness.alternate_live): a round's two measurements are well under a second apart. PyTorch's
attention is called as a layer inside an encoder calls it (``need_weights=False``). Both
processes run on glassnet's tuned allocator (harness.same_allocator). Ratio = glassnet / torch
(below 1: glassnet faster). The last row, the encoder layer's LayerNorm alone, shows what stands
between the encoder layer and a lower ratio (docs/speed.md).

    python benchmarks/bench_attention.py --rounds 15
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

N, T, E, HEADS, FF = 128, 16, 64, 4, 128
ROWS = [
    f"MultiheadAttention({E}, {HEADS}) self-attention ({N},{T},{E})",
    f"TransformerEncoderLayer({E}, {HEADS}, {FF}) post-norm ({N},{T},{E})",
    f"TransformerEncoderLayer({E}, {HEADS}, {FF}) pre-norm ({N},{T},{E})",
    f"LayerNorm({E}) ({N},{T},{E}), two in each encoder layer",
]


def time_glassnet(repeats: int) -> dict[str, float]:
    import numpy as np

    import glassnet as gn

    gn.tune_malloc()
    rng = np.random.default_rng(0)
    x = rng.standard_normal((N, T, E)).astype(np.float32)
    dy = rng.standard_normal((N, T, E)).astype(np.float32)
    layers = [
        gn.MultiheadAttention(E, HEADS, rng=rng),
        gn.TransformerEncoderLayer(E, HEADS, FF, dropout=0.0, rng=rng),
        gn.TransformerEncoderLayer(E, HEADS, FF, dropout=0.0, norm_first=True, rng=rng),
        gn.LayerNorm(E),
    ]
    out = {}
    for name, layer in zip(ROWS, layers):

        def once(layer=layer):
            layer.forward(x)
            layer.backward(dy)

        out[name] = median_time(once, repeats)
    return out


def time_torch(repeats: int, threads: int) -> dict[str, float]:
    same_allocator()
    import torch

    torch.set_num_threads(threads)
    x = torch.randn(N, T, E, requires_grad=True)
    dy = torch.randn(N, T, E)
    attn = torch.nn.MultiheadAttention(E, HEADS, batch_first=True)
    calls = [
        lambda: attn(x, x, x, need_weights=False)[0],
        torch.nn.TransformerEncoderLayer(E, HEADS, FF, dropout=0.0, batch_first=True),
        torch.nn.TransformerEncoderLayer(E, HEADS, FF, dropout=0.0, batch_first=True, norm_first=True),
        torch.nn.LayerNorm(E),
    ]
    out = {}
    for name, call in zip(ROWS, calls):

        def once(call=call):
            call(x).backward(dy) if isinstance(call, torch.nn.Module) else call().backward(dy)

        out[name] = median_time(once, repeats)
    return out


def build_parser() -> argparse.ArgumentParser:
    return alternating_parser(__doc__, rounds=2, repeats=30)


def main() -> None:
    args = build_parser().parse_args()
    if args.impl:

        def measure():
            if args.impl == "glassnet":
                return time_glassnet(args.repeats)
            return time_torch(args.repeats, args.threads)

        answer(args, measure)
        return
    child = ["--repeats", str(args.repeats), "--threads", str(args.threads)]
    results = alternate_live(__file__, args.rounds, child, env=thread_env(args.threads))
    layer_table(results, ROWS, "layer (forward + backward, float32)", args.json, args.threads)


if __name__ == "__main__":
    main()
