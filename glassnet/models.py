"""Preset models with the recipes that train them, used by ``glassnet train --model NAME``.

A preset is a function ``(rng, in_shape, classes) -> Sequential`` plus its default training
recipe (loss, optimizer, learning rate, batch size, epochs, regularizer); every part can be
overridden from the command line or by calling ``fit`` yourself.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from . import layers as L
from .losses import CrossEntropyLoss, QuadraticCost
from .module import Sequential


def mlp(rng, in_shape, classes):
    """784-256-128-10 ReLU with dropout: the issue's quick-start network."""
    n = math.prod(in_shape)
    return Sequential(
        L.Flatten(),
        L.Linear(n, 256, init="he_uniform", rng=rng), L.ReLU(), L.Dropout(0.2, rng=rng),
        L.Linear(256, 128, init="he_uniform", rng=rng), L.ReLU(), L.Dropout(0.2, rng=rng),
        L.Linear(128, classes, rng=rng),
    )  # fmt: skip


def book(rng, in_shape, classes):
    """The book's chapter 1 network: 784-30-10 sigmoid, N(0, 1) weights and biases."""
    n = math.prod(in_shape)
    return Sequential(
        L.Flatten(),
        L.Linear(n, 30, init="standard_normal", rng=rng), L.Sigmoid(),
        L.Linear(30, classes, init="standard_normal", rng=rng), L.Sigmoid(),
    )  # fmt: skip


def book_ch3(rng, in_shape, classes):
    """The book's chapter 3 network: 784-100-10 sigmoid, N(0, 1/n_in) weights, softmax
    cross-entropy and L2 (lambda = 5 on n = 50,000, i.e. L2(1e-4))."""
    n = math.prod(in_shape)
    return Sequential(
        L.Flatten(),
        L.Linear(n, 100, init="book_normal", rng=rng), L.Sigmoid(),
        L.Linear(100, classes, init="book_normal", rng=rng),
    )  # fmt: skip


def _flat_size(net: list, in_shape) -> int:
    """Features after ``net`` (conv/pool stack) for one example of ``in_shape``."""
    x = np.zeros((1, *in_shape), dtype=np.float32)
    for layer in net:
        layer.eval()  # eval: a probe must not move batch-norm running statistics
        x = layer.forward(x)
        layer.train()
    return x[0].size


def cnn_a(rng, in_shape, classes, batch_norm: bool = False):
    """CNN-A: Conv2d(1,32,5) ReLU MaxPool2d(2) Conv2d(32,64,5) ReLU MaxPool2d(2) Flatten
    Dropout(0.5) Linear(1024,10), optionally with BatchNorm2d after each conv (``cnn-bn``)."""

    def bn(c):
        return [L.BatchNorm2d(c)] if batch_norm else []

    net = [L.Conv2d(in_shape[0], 32, 5, rng=rng), *bn(32), L.ReLU(), L.MaxPool2d(2),
           L.Conv2d(32, 64, 5, rng=rng), *bn(64), L.ReLU(), L.MaxPool2d(2), L.Flatten()]  # fmt: skip
    return Sequential(*net, L.Dropout(0.5, rng=rng), L.Linear(_flat_size(net, in_shape), classes, rng=rng))


def cnn_bn(rng, in_shape, classes):
    return cnn_a(rng, in_shape, classes, batch_norm=True)


def vgg_small(rng, in_shape, classes):
    """The best small preset: 3x3 conv 32-32 / pool / 64-64 / pool with batch norm, FC-256,
    dropout 0.3 after each block and 0.5 before the classifier (trained with shifts, flips and
    a cosine schedule)."""

    def block(c_in, c_out):
        return [L.Conv2d(c_in, c_out, 3, padding=1, bias=False, rng=rng), L.BatchNorm2d(c_out), L.ReLU(),
                L.Conv2d(c_out, c_out, 3, padding=1, bias=False, rng=rng), L.BatchNorm2d(c_out), L.ReLU(),
                L.MaxPool2d(2), L.Dropout(0.3, rng=rng)]  # fmt: skip

    net = [*block(in_shape[0], 32), *block(32, 64), L.Flatten()]
    return Sequential(
        *net,
        L.Linear(_flat_size(net, in_shape), 256, bias=False, rng=rng), L.BatchNorm1d(256), L.ReLU(),
        L.Dropout(0.5, rng=rng), L.Linear(256, classes, rng=rng),
    )  # fmt: skip


def _basic_block(rng, c_in: int, c_out: int, stride: int) -> list:
    """He et al.'s basic block: two 3x3 convs with batch norm, the input added back, then ReLU.
    Where the block halves the map or widens it, the shortcut is a strided 1x1 conv + BN."""
    block = Sequential(
        L.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False, rng=rng), L.BatchNorm2d(c_out),
        L.ReLU(),
        L.Conv2d(c_out, c_out, 3, padding=1, bias=False, rng=rng), L.BatchNorm2d(c_out),
    )  # fmt: skip
    shortcut = None
    if stride != 1 or c_in != c_out:
        shortcut = Sequential(
            L.Conv2d(c_in, c_out, 1, stride=stride, bias=False, rng=rng), L.BatchNorm2d(c_out)
        )
    return [L.Residual(block, shortcut), L.ReLU()]


def resnet(rng, in_shape, classes, widths: tuple[int, ...] = (16, 32, 64), blocks: int = 2):
    """A small ResNet for 28x28 images: a 3x3 conv stem of ``widths[0]`` channels + BN + ReLU,
    then one stage of ``blocks`` basic blocks per width (each stage after the first halves the
    map with a stride-2 conv: 28 -> 14 -> 7), global average pooling and a linear classifier.
    The default is the 14-layer size of the CIFAR ResNets (175k parameters); ``widths=(32, 64,
    128)`` has 4x the parameters (and a longer epoch: ``benchmarks/bench_train.py --workload
    resnet`` measures the default)."""
    net = [
        L.Conv2d(in_shape[0], widths[0], 3, padding=1, bias=False, rng=rng),
        L.BatchNorm2d(widths[0]),
        L.ReLU(),
    ]
    c = widths[0]
    for i, width in enumerate(widths):
        for j in range(blocks):
            net += _basic_block(rng, c, width, 2 if i > 0 and j == 0 else 1)
            c = width
    return Sequential(*net, L.GlobalAvgPool2d(), L.Linear(c, classes, rng=rng))


def vit(rng, in_shape, classes, patch: int = 4, dim: int = 64, depth: int = 6, heads: int = 4,
        mlp: int = 128, dropout: float = 0.0):  # fmt: skip
    """A small Vision Transformer (Dosovitskiy et al. 2020): ``patch`` x ``patch`` patches
    embedded by a Conv2d of stride = kernel = ``patch`` (28x28 -> 7x7 = 49 tokens of ``dim``),
    a class token, learned position embeddings, ``depth`` pre-norm encoder layers of ``heads``
    heads with GELU MLPs of ``mlp`` units, a final LayerNorm on the class token and a linear head.
    ``dropout``: the rate of every dropout (after the embeddings, in attention, in each layer);
    0 by default: with the ``vit`` preset's shifts and flips, 0.1 left the 30-epoch run
    underfitting (training accuracy below test accuracy) and 2.5 points lower on the test set
    (the records in ``benchmarks/results/accuracy/``)."""
    if len(in_shape) != 3:
        raise ValueError(f"vit: expects images (C, H, W), got examples of shape {tuple(in_shape)}")
    c, h, w = in_shape
    if h % patch or w % patch:
        raise ValueError(f"vit: the image's {h}x{w} is not a whole number of {patch}x{patch} patches")
    tokens = (h // patch) * (w // patch)
    return Sequential(
        L.Conv2d(c, dim, patch, stride=patch, rng=rng), L.Reshape((dim, tokens)), L.Permute((0, 2, 1)),
        L.ClassToken(dim), L.PositionalEmbedding(tokens + 1, dim, rng=rng), L.Dropout(dropout, rng=rng),
        *[L.TransformerEncoderLayer(dim, heads, mlp, dropout, activation="gelu", norm_first=True, rng=rng)
          for _ in range(depth)],
        L.Token(0), L.LayerNorm(dim), L.Linear(dim, classes, rng=rng),
    )  # fmt: skip


def book_ch6(rng, in_shape, classes, convs: int = 1, activation=L.Sigmoid):
    """The book's chapter 6 networks: ``convs`` x (Conv2d(., 20 or 40, 5) + MaxPool2d(2)) with
    ``activation``, a 100-unit fully connected layer, and a softmax output layer."""
    c, net = in_shape[0], []
    for i in range(convs):
        out = 20 * (i + 1)
        net += [L.Conv2d(c, out, 5, init="book_normal", rng=rng), activation(), L.MaxPool2d(2)]
        c = out
    net.append(L.Flatten())
    return Sequential(
        *net,
        L.Linear(_flat_size(net, in_shape), 100, init="book_normal", rng=rng), activation(),
        L.Linear(100, classes, init="book_normal", rng=rng),
    )  # fmt: skip


# --- MNIST-1D (Greydanus 2020): (N, 40) signals, the paper's four model families -------------


def mnist1d_logistic(rng, in_shape, classes):
    """Logistic regression: one Linear layer on the 40 values (softmax in the loss)."""
    return Sequential(L.Flatten(), L.Linear(math.prod(in_shape), classes, rng=rng))


def mnist1d_mlp(rng, in_shape, classes, hidden: int = 512, p: float = 0.5):
    """MLP 40-512-512-10 ReLU with dropout 0.5 (the paper's is 40-100-100-10 with a residual
    second layer, which reaches 64% in PyTorch here, below the paper's 68%)."""
    return Sequential(
        L.Flatten(),
        L.Linear(math.prod(in_shape), hidden, rng=rng), L.ReLU(), L.Dropout(p, rng=rng),
        L.Linear(hidden, hidden, rng=rng), L.ReLU(), L.Dropout(p, rng=rng),
        L.Linear(hidden, classes, rng=rng),
    )  # fmt: skip


def mnist1d_cnn(rng, in_shape, classes, channels: int = 32):
    """The paper's CNN with wider layers: Conv1d(1, c, 5, stride 2, padding 1), then twice
    Conv1d(c, c, 3, stride 2, padding 1), ReLU after each, and a linear classifier."""
    n = math.prod(in_shape)
    net = [L.Reshape((1, n)),
           L.Conv1d(1, channels, 5, stride=2, padding=1, rng=rng), L.ReLU(),
           L.Conv1d(channels, channels, 3, stride=2, padding=1, rng=rng), L.ReLU(),
           L.Conv1d(channels, channels, 3, stride=2, padding=1, rng=rng), L.ReLU(), L.Flatten()]  # fmt: skip
    return Sequential(*net, L.Linear(_flat_size(net, in_shape), classes, rng=rng))


def mnist1d_gru(rng, in_shape, classes, hidden: int = 16):
    """The paper's GRU with hidden size 16 (the paper's is 6): a bidirectional GRU(1 -> hidden)
    over the 40 steps, every step's output flattened into a linear classifier (as the paper's
    reference code does)."""
    n = math.prod(in_shape)
    return Sequential(
        L.Reshape((n, 1)), L.GRU(1, hidden, bidirectional=True, rng=rng), L.Flatten(),
        L.Linear(2 * hidden * n, classes, rng=rng),
    )  # fmt: skip


# one example's shape in each data set the command line loads: a preset's default input
INPUT_SHAPES: dict[str, tuple[int, ...]] = {
    "fashion-mnist": (1, 28, 28),
    "mnist": (1, 28, 28),
    "digits": (1, 8, 8),
    "mnist1d": (40,),
}


@dataclass
class Preset:
    build: object
    loss: type = CrossEntropyLoss
    optimizer: str = "adam"
    lr: float = 1e-3
    batch_size: int = 128
    epochs: int = 20
    l2: float = 0.0
    momentum: float = 0.0
    schedule: str | None = None  # "cosine": CosineAnnealingLR over the run's epochs
    patience: int = 3  # early stopping on validation loss, restoring the best weights
    shift: int = 0  # augmentation: random shifts by up to this many pixels
    flip: bool = False  # augmentation: random horizontal flips
    dataset: str = "fashion-mnist"  # the data set it is made for (a key of INPUT_SHAPES)
    warmup: int = 0  # epochs of linear learning-rate warm-up (from lr / 10) before the schedule

    @property
    def input_shape(self) -> tuple[int, ...]:
        """One example's shape in the preset's data set: what ``summary --preset`` describes."""
        return INPUT_SHAPES[self.dataset]


# what every MNIST-1D preset shares (the paper's recipe with Adam): batch 100, a cosine schedule
MNIST1D_RECIPE = {"batch_size": 100, "schedule": "cosine", "patience": 0, "dataset": "mnist1d"}

PRESETS: dict[str, Preset] = {
    # patience = epochs: never stops early, but keeps the epoch with the best validation loss
    "mlp": Preset(mlp, lr=1e-3, batch_size=128, epochs=30, schedule="cosine", patience=30),
    "book": Preset(book, loss=QuadraticCost, optimizer="sgd", lr=3.0, batch_size=10, epochs=30),
    "book-ch3": Preset(book_ch3, optimizer="sgd", lr=0.5, batch_size=10, epochs=30, l2=1e-4),
    # CNN-A and its twin recipe in PyTorch (Adam 1e-3, batch 128, 15 epochs): the parity check
    "cnn": Preset(cnn_a, epochs=15, patience=15),
    "cnn-bn": Preset(cnn_bn, epochs=15, patience=15),
    "vgg-small": Preset(vgg_small, epochs=18, schedule="cosine", patience=18, shift=2, flip=True),
    # residual and attention networks (issue 13): the same recipes as their PyTorch twins in
    # benchmarks/twins.py; no early stopping, the best validation epoch kept
    # resnet: SGD with momentum and L2 on the weights, as the CIFAR ResNets train, for 30 epochs
    # (why, from the runs of the earlier recipes, Adam and 20 epochs: docs/benchmarks.md;
    # their records stay in benchmarks/results/accuracy/)
    "resnet": Preset(
        resnet,
        optimizer="sgd",
        lr=0.1,
        momentum=0.9,
        l2=5e-4,
        epochs=30,
        schedule="cosine",
        patience=30,
        shift=2,
        flip=True,
    ),  # fmt: skip
    "vit": Preset(
        vit,
        optimizer="adamw",
        lr=1e-3,
        epochs=30,
        schedule="cosine",
        warmup=3,
        patience=30,
        shift=2,
        flip=True,
    ),  # fmt: skip
    # the book's chapter 6 progression (its lambda = 0.1 on n = 50,000 is L2(2e-6))
    "book-ch6-conv": Preset(book_ch6, optimizer="sgd", lr=0.1, batch_size=10, epochs=20, l2=2e-6),
    "book-ch6-conv2": Preset(
        lambda r, s, c: book_ch6(r, s, c, convs=2), optimizer="sgd", lr=0.1, batch_size=10, epochs=20, l2=2e-6
    ),  # fmt: skip
    "book-ch6-relu": Preset(
        lambda r, s, c: book_ch6(r, s, c, convs=2, activation=L.ReLU),
        optimizer="sgd",
        lr=0.03,
        batch_size=10,
        epochs=20,
        l2=2e-6,
    ),  # fmt: skip
    # MNIST-1D (the paper trains with Adam lr 1e-2, batch 100, 8000 steps = 200 epochs of 4,000);
    # no early stopping: the final model is the result, as in the paper
    "mnist1d-logistic": Preset(mnist1d_logistic, lr=1e-2, epochs=100, **MNIST1D_RECIPE),
    "mnist1d-mlp": Preset(mnist1d_mlp, lr=1e-3, epochs=200, **MNIST1D_RECIPE),
    "mnist1d-cnn": Preset(mnist1d_cnn, lr=1e-2, epochs=200, l2=1e-3, **MNIST1D_RECIPE),
    "mnist1d-gru": Preset(mnist1d_gru, lr=1e-2, epochs=100, l2=1e-3, **MNIST1D_RECIPE),
}


def build(name: str, rng: np.random.Generator, in_shape: tuple[int, ...], classes: int) -> Sequential:
    try:
        preset = PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown model preset {name!r}; expected one of {sorted(PRESETS)}") from None
    return preset.build(rng, in_shape, classes)
