"""PyTorch twins of glassnet's ``resnet`` and ``vit`` presets: the same layers, sizes and
parameter counts, for the speed benchmark (bench_train.py) and for accuracy parity.

Each function takes the ``torch`` module as its first argument, so this file imports without
PyTorch (the tests check the parameter counts where torch is installed). Run as a script, it
trains a twin with its preset's recipe on all 60,000 training images, as
``python benchmarks/accuracy.py --presets NAME --twin`` trains glassnet's, and prints the test
accuracy:

    python benchmarks/twins.py --preset resnet --seeds 0 1 2
    python benchmarks/twins.py --preset vit --seeds 0 1 2
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import statistics
import sys
import time
from pathlib import Path

RECORDS = Path(__file__).resolve().parent / "results" / "accuracy"


def torch_resnet(torch, in_channels: int = 1, classes: int = 10, widths=(16, 32, 64), blocks: int = 2):
    """glassnet.models.resnet: 3x3 stem + BN + ReLU, ``blocks`` basic blocks per width (stride 2
    entering each stage after the first, 1x1 conv + BN shortcut where the shape changes),
    global average pooling, Linear."""
    nn = torch.nn

    class Residual(nn.Module):  # gn.Residual: y = block(x) + shortcut(x), then the ReLU after it
        def __init__(self, c_in: int, c_out: int, stride: int) -> None:
            super().__init__()
            self.block = nn.Sequential(
                nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(),
                nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False), nn.BatchNorm2d(c_out),
            )  # fmt: skip
            self.shortcut = nn.Identity()
            if stride != 1 or c_in != c_out:
                self.shortcut = nn.Sequential(
                    nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out)
                )

        def forward(self, x):
            return self.block(x) + self.shortcut(x)

    net = [nn.Conv2d(in_channels, widths[0], 3, 1, 1, bias=False), nn.BatchNorm2d(widths[0]), nn.ReLU()]
    c = widths[0]
    for i, width in enumerate(widths):
        for j in range(blocks):
            net += [Residual(c, width, 2 if i > 0 and j == 0 else 1), nn.ReLU()]
            c = width
    return nn.Sequential(*net, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c, classes))


def torch_vit(torch, in_channels: int = 1, classes: int = 10, image: int = 28, patch: int = 4, dim: int = 64,
              depth: int = 6, heads: int = 4, mlp: int = 128, dropout: float = 0.0):  # fmt: skip
    """glassnet.models.vit: Conv2d patch embedding (stride = kernel = ``patch``), class token,
    learned position embedding (N(0, 0.02^2), the class token zero, as glassnet and torchvision),
    dropout, ``depth`` pre-norm GELU encoder layers, LayerNorm on the class token, Linear."""
    nn = torch.nn
    tokens = (image // patch) ** 2

    class ViT(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.embed = nn.Conv2d(in_channels, dim, patch, stride=patch)
            self.cls = nn.Parameter(torch.zeros(1, 1, dim))
            self.pos = nn.Parameter(torch.randn(tokens + 1, dim) * 0.02)
            self.dropout = nn.Dropout(dropout)
            layer = nn.TransformerEncoderLayer(dim, heads, mlp, dropout, activation="gelu", batch_first=True,
                                               norm_first=True)  # fmt: skip
            self.encoder = nn.TransformerEncoder(layer, depth, enable_nested_tensor=False)
            self.norm = nn.LayerNorm(dim)
            self.head = nn.Linear(dim, classes)

        def forward(self, x):
            t = self.embed(x).flatten(2).transpose(1, 2)  # (N, E, H', W') -> (N, T, E)
            t = torch.cat([self.cls.expand(len(t), -1, -1), t], dim=1) + self.pos
            t = self.encoder(self.dropout(t))
            return self.head(self.norm(t[:, 0]))

    return ViT()


def torch_optimizer(torch, preset, model):
    """The preset's optimizer as ``glassnet train`` builds it (``glassnet.choices.make_optimizer``
    and, for ``l2``, the ``L2`` regularizer): Adam, AdamW (weight decay 0.01 on every parameter,
    both libraries' default) or SGD with the preset's momentum, at the preset's lr. glassnet's
    L2(lam) adds lam w to the gradient of every parameter that decays (the weights of
    convolutions and linear layers, not biases or batch norm's): PyTorch's ``weight_decay=lam``
    on those, in their own group."""
    params = list(model.parameters())
    groups = [{"params": params}]
    if preset.l2:
        decayed = [p for p in params if p.ndim > 1]  # weight matrices and kernels
        rest = [p for p in params if p.ndim <= 1]
        groups = [{"params": decayed, "weight_decay": preset.l2}, {"params": rest, "weight_decay": 0.0}]
    if preset.optimizer == "adamw":
        if preset.l2:  # the command line refuses it first (accuracy.recipe_of)
            raise ValueError("twins: AdamW's decay and an L2 penalty together are not mirrored")
        return torch.optim.AdamW(params, lr=preset.lr, weight_decay=0.01)
    if preset.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=preset.lr, momentum=preset.momentum)
    if preset.optimizer == "adam":
        return torch.optim.Adam(groups, lr=preset.lr)
    raise ValueError(f"twins: no twin for optimizer {preset.optimizer!r} (adam, adamw or sgd)")


TWINS = {"resnet": torch_resnet, "vit": torch_vit}


def epoch_lr(preset, epoch: int) -> float:
    """glassnet's learning rate for ``epoch`` of a ``glassnet train`` run of ``preset``: its
    linear warm-up from lr / 10 (LinearWarmup), then cosine annealing over the epochs left."""
    lr, w = preset.lr, preset.warmup
    if epoch < w:
        return lr * (0.1 + 0.9 * epoch / w)
    if preset.schedule != "cosine":
        return lr
    return lr * (1 + math.cos(math.pi * (epoch - w) / (preset.epochs - w))) / 2


def train_twin(
    name: str,
    seed: int,
    epochs: int | None = None,
    threads: int = 2,
    train_size: int | None = None,
    recipe: dict | None = None,
) -> dict:
    """Train the twin of preset ``name`` with its recipe (optimizer, lr, batch, epochs, warm-up
    and cosine per epoch, glassnet's own shift/flip augmentation on each batch) on all 60,000
    training images (``train_size``: the first ones only, a quick check); its test accuracy and
    training seconds. ``recipe``: preset fields to change (optimizer, lr, momentum, l2), as
    ``glassnet train``'s flags of those names change them."""
    os.environ["OMP_NUM_THREADS"] = os.environ["OPENBLAS_NUM_THREADS"] = str(threads)
    import numpy as np
    import torch

    import glassnet as gn

    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    preset = gn.models.PRESETS[name]
    if epochs is not None:
        preset = dataclasses.replace(preset, epochs=epochs, warmup=min(preset.warmup, max(epochs - 1, 0)))
    preset = dataclasses.replace(preset, **(recipe or {}))
    train, test = gn.datasets.load_fashion_mnist()
    if train_size is not None:
        train = train[:train_size]
    augment = gn.data.Augment(preset.shift, preset.flip) if preset.shift or preset.flip else None
    model = TWINS[name](torch)
    opt = torch_optimizer(torch, preset, model)
    bs, start = preset.batch_size, time.perf_counter()
    for epoch in range(preset.epochs):
        for group in opt.param_groups:
            group["lr"] = epoch_lr(preset, epoch)
        model.train()
        perm, began, total = rng.permutation(train.n), time.perf_counter(), 0.0
        for i in range(0, train.n, bs):
            idx = perm[i : i + bs]
            xb = train.x[idx] if augment is None else augment(train.x[idx], rng)
            opt.zero_grad()
            loss = torch.nn.functional.cross_entropy(
                model(torch.from_numpy(xb)), torch.from_numpy(train.y[idx])
            )
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
        # progress on stderr, as glassnet train prints it (stdout keeps one JSON line per run)
        print(f"twin {name} seed {seed}: epoch {epoch + 1}/{preset.epochs} loss={total / train.n:.4f} "
              f"lr={epoch_lr(preset, epoch):.4f} time={time.perf_counter() - began:.1f}s",
              file=sys.stderr, flush=True)  # fmt: skip
    seconds = time.perf_counter() - start
    model.eval()
    with torch.no_grad():
        out = torch.cat([model(torch.from_numpy(test.x[i : i + 500])) for i in range(0, test.n, 500)])
    accuracy = float((out.argmax(1).numpy() == test.y).mean())
    return {
        "preset": name,
        "seed": seed,
        "epochs": preset.epochs,
        **({"recipe": recipe} if recipe else {}),
        "train_seconds": seconds,
        "accuracy": accuracy,
    }


def build_parser() -> argparse.ArgumentParser:
    """The script's options. Counts are refused below 1 and seeds below 0 (or at 2^64 and
    above, past ``torch.manual_seed``) with argparse's one-line usage error, by glassnet's own
    option types (``glassnet train`` words them the same way)."""
    # benchmarks/: the script's own folder
    from accuracy import add_recipe_args

    from glassnet.runs import Value, positive_int

    torch_seed = Value(int, lambda v: 0 <= v < 2**64, "an integer in [0, 2^64)")
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", choices=sorted(TWINS), required=True)
    ap.add_argument("--seeds", nargs="+", type=torch_seed, default=[0])
    ap.add_argument("--epochs", type=positive_int, help="override the preset's epoch count")
    ap.add_argument("--threads", type=positive_int, default=2)
    ap.add_argument("--train-size", type=positive_int, help="train on the first N images only (a check)")
    add_recipe_args(ap)  # a candidate recipe, as accuracy.py gives it to glassnet's run
    ap.add_argument("--record", nargs="?", const=RECORDS, type=Path, metavar="DIR",
                    help="write each finished run as a stamped JSON file under DIR "
                         "(default benchmarks/results/accuracy; accuracy_table.py renders them)")  # fmt: skip
    return ap


def main() -> None:
    from accuracy import recipe_of, recipe_stamp, record  # benchmarks/: the script's own folder

    ap = build_parser()
    args = ap.parse_args()
    recipe = recipe_of(ap, args, [args.preset])
    accs = []
    for seed in args.seeds:
        result = train_twin(args.preset, seed, args.epochs, args.threads, args.train_size, recipe)
        accs.append(100 * result["accuracy"])
        print(json.dumps(result), flush=True)
        if args.record and args.train_size is None:
            stamp = recipe_stamp(args.preset, args.epochs)
            record(args.record, {"library": "pytorch", "dataset": "fashion-mnist", "twin_recipe": True,
                                 **result, "recipe": stamp})  # fmt: skip
    if len(accs) > 1:
        print(f"{args.preset} twin: mean {statistics.mean(accs):.2f}% (sd {statistics.stdev(accs):.2f}) "
              f"over seeds {args.seeds}")  # fmt: skip


if __name__ == "__main__":
    main()
