"""Layers, one family per file."""

from .activations import ELU, GELU, LeakyReLU, ReLU, Sigmoid, Softmax, Softplus, Tanh
from .attention import MultiheadAttention
from .conv import Conv1d, Conv2d
from .dropout import Dropout, GaussianDropout
from .embedding import ClassToken, Embedding, PositionalEmbedding
from .gated import GRU, LSTM
from .linear import Linear
from .norm import BatchNorm1d, BatchNorm2d, LayerNorm
from .pooling import AvgPool1d, AvgPool2d, GlobalAvgPool2d, GlobalMaxPool2d, MaxPool1d, MaxPool2d
from .recurrent import RNN, LastStep
from .reshape import Flatten, Permute, Reshape, Token, TokenMean
from .transformer import TransformerEncoderLayer

__all__ = [
    "TransformerEncoderLayer",
    "TokenMean",
    "Token",
    "PositionalEmbedding",
    "Permute",
    "MultiheadAttention",
    "LayerNorm",
    "Embedding",
    "ClassToken",
    "AvgPool1d",
    "AvgPool2d",
    "BatchNorm1d",
    "BatchNorm2d",
    "Conv1d",
    "Conv2d",
    "ELU",
    "GELU",
    "Dropout",
    "Flatten",
    "GaussianDropout",
    "GRU",
    "GlobalAvgPool2d",
    "GlobalMaxPool2d",
    "LastStep",
    "LeakyReLU",
    "LSTM",
    "Linear",
    "MaxPool1d",
    "MaxPool2d",
    "RNN",
    "ReLU",
    "Reshape",
    "Sigmoid",
    "Softmax",
    "Softplus",
    "Tanh",
]
