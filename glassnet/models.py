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


PRESETS: dict[str, Preset] = {
    # patience = epochs: never stops early, but keeps the epoch with the best validation loss
    "mlp": Preset(mlp, lr=1e-3, batch_size=128, epochs=30, schedule="cosine", patience=30),
    "book": Preset(book, loss=QuadraticCost, optimizer="sgd", lr=3.0, batch_size=10, epochs=30),
    "book-ch3": Preset(book_ch3, optimizer="sgd", lr=0.5, batch_size=10, epochs=30, l2=1e-4),
}


def build(name: str, rng: np.random.Generator, in_shape: tuple[int, ...], classes: int) -> Sequential:
    try:
        preset = PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown model preset {name!r}; expected one of {sorted(PRESETS)}") from None
    return preset.build(rng, in_shape, classes)
