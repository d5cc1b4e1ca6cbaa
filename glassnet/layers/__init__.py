"""Layers, one family per file."""

from .activations import ELU, GELU, LeakyReLU, ReLU, Sigmoid, Softmax, Softplus, Tanh
from .conv import Conv1d, Conv2d
from .dropout import Dropout, GaussianDropout
from .gated import GRU, LSTM
from .graph import Graph, Residual
from .linear import Linear
from .merge import Add, Concat, Identity, Multiply
from .norm import BatchNorm1d, BatchNorm2d
from .pooling import AvgPool1d, AvgPool2d, GlobalAvgPool2d, GlobalMaxPool2d, MaxPool1d, MaxPool2d
from .recurrent import RNN, LastStep
from .reshape import Flatten, Reshape

__all__ = [
    "Add",
    "AvgPool1d",
    "AvgPool2d",
    "BatchNorm1d",
    "BatchNorm2d",
    "Concat",
    "Conv1d",
    "Conv2d",
    "ELU",
    "GELU",
    "Dropout",
    "Flatten",
    "GaussianDropout",
    "GRU",
    "Graph",
    "GlobalAvgPool2d",
    "GlobalMaxPool2d",
    "Identity",
    "LastStep",
    "LeakyReLU",
    "LSTM",
    "Linear",
    "MaxPool1d",
    "MaxPool2d",
    "Multiply",
    "RNN",
    "ReLU",
    "Reshape",
    "Residual",
    "Sigmoid",
    "Softmax",
    "Softplus",
    "Tanh",
]
