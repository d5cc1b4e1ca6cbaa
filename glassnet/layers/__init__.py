"""Layers, one family per file."""

from .activations import ELU, GELU, LeakyReLU, ReLU, Sigmoid, Softmax, Softplus, Tanh
from .attention import MultiheadAttention
from .conv import Conv1d, Conv2d
from .dropout import Dropout, GaussianDropout
from .embedding import ClassToken, Embedding, PositionalEmbedding
from .gated import GRU, LSTM
from .graph import Graph, Residual
from .linear import Linear
from .merge import Add, Concat, Identity, Multiply
from .norm import BatchNorm1d, BatchNorm2d, LayerNorm
from .pooling import AvgPool1d, AvgPool2d, GlobalAvgPool2d, GlobalMaxPool2d, MaxPool1d, MaxPool2d
from .recurrent import RNN, LastStep
from .reshape import Flatten, Permute, Reshape, Token, TokenMean
from .transformer import TransformerEncoderLayer

__all__ = [
    "Add",
    "AvgPool1d",
    "AvgPool2d",
    "BatchNorm1d",
    "BatchNorm2d",
    "ClassToken",
    "Concat",
    "Conv1d",
    "Conv2d",
    "Dropout",
    "ELU",
    "Embedding",
    "Flatten",
    "GaussianDropout",
    "GELU",
    "GlobalAvgPool2d",
    "GlobalMaxPool2d",
    "Graph",
    "GRU",
    "Identity",
    "LastStep",
    "LayerNorm",
    "LeakyReLU",
    "Linear",
    "LSTM",
    "MaxPool1d",
    "MaxPool2d",
    "MultiheadAttention",
    "Multiply",
    "Permute",
    "PositionalEmbedding",
    "ReLU",
    "Reshape",
    "Residual",
    "RNN",
    "Sigmoid",
    "Softmax",
    "Softplus",
    "Tanh",
    "Token",
    "TokenMean",
    "TransformerEncoderLayer",
]
