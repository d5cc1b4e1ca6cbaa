"""Weight initializers: each takes ``(shape, rng, dtype)`` and returns a new array.

Fan-in and fan-out follow the layout of the weight: a dense ``W`` is ``(in, out)`` (glassnet
stores it batch-first, ``y = x @ W``); a convolution kernel is ``(out, in, *kernel)``.

| name              | distribution                  | use                                              |
| ----------------- | ----------------------------- | ------------------------------------------------ |
| torch_default     | U(+-1/sqrt(fan_in))           | PyTorch's Linear/Conv default (biases too)       |
| glorot_uniform    | U(+-sqrt(6/(fan_in+fan_out))) | Keras' default; tanh, sigmoid                    |
| glorot_normal     | N(0, 2/(fan_in+fan_out))      |                                                  |
| he_uniform        | U(+-sqrt(6/fan_in))           | ReLU nets                                        |
| he_normal         | N(0, 2/fan_in)                | ReLU nets                                        |
| lecun_uniform     | U(+-sqrt(3/fan_in))           | SELU, tanh                                       |
| lecun_normal      | N(0, 1/fan_in)                |                                                  |
| book_normal       | N(0, 1/n_in), biases N(0, 1)  | the book's default_weight_initializer (ch. 3)    |
| standard_normal   | N(0, 1), biases N(0, 1)       | the book's large_weight_initializer (ch. 1)      |
(N(0, v) names the variance.)
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

Initializer = Callable[[tuple[int, ...], np.random.Generator, np.dtype], np.ndarray]


def fans(shape: tuple[int, ...]) -> tuple[int, int]:
    """(fan_in, fan_out) of a dense ``(in, out)`` weight or a conv ``(out, in, *k)`` kernel."""
    if len(shape) == 1:
        return shape[0], shape[0]
    if len(shape) == 2:
        return shape[0], shape[1]
    receptive = math.prod(shape[2:])
    return shape[1] * receptive, shape[0] * receptive


def _uniform(shape, rng, dtype, bound: float) -> np.ndarray:
    return rng.uniform(-bound, bound, size=shape).astype(dtype)


def _normal(shape, rng, dtype, std: float) -> np.ndarray:
    return (rng.standard_normal(size=shape) * std).astype(dtype)


def torch_default(shape, rng, dtype=np.float32):
    return _uniform(shape, rng, dtype, 1.0 / math.sqrt(fans(shape)[0]))


def glorot_uniform(shape, rng, dtype=np.float32):
    fan_in, fan_out = fans(shape)
    return _uniform(shape, rng, dtype, math.sqrt(6.0 / (fan_in + fan_out)))


def glorot_normal(shape, rng, dtype=np.float32):
    fan_in, fan_out = fans(shape)
    return _normal(shape, rng, dtype, math.sqrt(2.0 / (fan_in + fan_out)))


def he_uniform(shape, rng, dtype=np.float32):
    return _uniform(shape, rng, dtype, math.sqrt(6.0 / fans(shape)[0]))


def he_normal(shape, rng, dtype=np.float32):
    return _normal(shape, rng, dtype, math.sqrt(2.0 / fans(shape)[0]))


def lecun_uniform(shape, rng, dtype=np.float32):
    return _uniform(shape, rng, dtype, math.sqrt(3.0 / fans(shape)[0]))


def lecun_normal(shape, rng, dtype=np.float32):
    return _normal(shape, rng, dtype, math.sqrt(1.0 / fans(shape)[0]))


book_normal = lecun_normal


def standard_normal(shape, rng, dtype=np.float32):
    return _normal(shape, rng, dtype, 1.0)


def zeros(shape, rng, dtype=np.float32):
    return np.zeros(shape, dtype=dtype)


INITIALIZERS: dict[str, Initializer] = {
    "torch_default": torch_default,
    "glorot_uniform": glorot_uniform,
    "xavier_uniform": glorot_uniform,
    "glorot_normal": glorot_normal,
    "xavier_normal": glorot_normal,
    "he_uniform": he_uniform,
    "kaiming_uniform": he_uniform,
    "he_normal": he_normal,
    "kaiming_normal": he_normal,
    "lecun_uniform": lecun_uniform,
    "lecun_normal": lecun_normal,
    "book_normal": book_normal,
    "standard_normal": standard_normal,
}


def bias_init(name: str, fan_in: int, shape, rng, dtype) -> np.ndarray:
    """The bias that goes with a named weight init.

    PyTorch's default draws biases like the weights; the book's two inits draw N(0, 1)
    (network2.py); every other scheme starts biases at zero, as Keras does.
    """
    if name == "torch_default":
        return _uniform(shape, rng, dtype, 1.0 / math.sqrt(fan_in))
    if name in ("book_normal", "standard_normal"):
        return _normal(shape, rng, dtype, 1.0)
    return np.zeros(shape, dtype=dtype)


def get(name: str) -> Initializer:
    try:
        return INITIALIZERS[name]
    except KeyError:
        raise ValueError(f"unknown initializer {name!r}; expected one of {sorted(INITIALIZERS)}") from None
