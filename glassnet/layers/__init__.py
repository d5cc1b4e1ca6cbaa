"""Layers, one family per file."""

from .activations import ELU, GELU, LeakyReLU, ReLU, Sigmoid, Softmax, Softplus, Tanh
from .dropout import Dropout, GaussianDropout
from .linear import Linear
from .reshape import Flatten

__all__ = [
    "ELU",
    "GELU",
    "Dropout",
    "Flatten",
    "GaussianDropout",
    "LeakyReLU",
    "Linear",
    "ReLU",
    "Sigmoid",
    "Softmax",
    "Softplus",
    "Tanh",
]
