"""glassnet: deep learning on NumPy with backpropagation you can read.

import glassnet as gn
train, test = gn.datasets.load_fashion_mnist()
model = gn.Sequential(gn.Flatten(), gn.Linear(784, 256), gn.ReLU(), gn.Linear(256, 10))
opt = gn.optim.Adam(model.parameters(), lr=1e-3)
gn.fit(model, gn.CrossEntropyLoss(), opt, train, epochs=5, batch_size=128, val_data=test)
"""

from . import (
    anomaly,
    checkpoint,
    data,
    datasets,
    diagnostics,
    distributed,
    experiments,
    functional,
    init,
    metrics,
    models,
    onnx_export,
    optim,
    plots,
    report,
    schedules,
    tuning,
)
from ._malloc import tune_malloc
from .anomaly import AnomalyError, TerminateOnNaN
from .callbacks import Callback, CSVLogger, EarlyStopping, History, ModelCheckpoint, ProgressBar
from .checkpoint import BackupAndRestore
from .diagnostics import GradientFlow, summary
from .errors import FileFormatError, WriteError
from .gradcheck import check_gradients
from .io import load, load_metadata, save
from .layers import *  # noqa: F403
from .layers import __all__ as _layers
from .layers.attention import causal_mask
from .losses import (
    BCEWithLogitsLoss,
    CrossEntropyLoss,
    HingeLoss,
    HuberLoss,
    MSELoss,
    QuadraticCost,
)
from .module import Module, Param, Sequential, ShapeError, no_grad
from .onnx_export import export_onnx
from .optim import clip_grad_norm
from .regularizers import L1, L2, ElasticNet, FixedDropoutPenalty
from .shards import Shards
from .tensorboard import TensorBoard
from .torch_interop import from_torch, load_torch_weights, save_torch_weights, to_torch
from .tracing import trace
from .train import evaluate, evaluating, fit, predict, train_step

__version__ = "0.1.0"

__all__ = [
    *_layers,
    "AnomalyError",
    "BCEWithLogitsLoss",
    "BackupAndRestore",
    "CSVLogger",
    "Callback",
    "CrossEntropyLoss",
    "EarlyStopping",
    "ElasticNet",
    "GradientFlow",
    "FileFormatError",
    "FixedDropoutPenalty",
    "Shards",
    "HingeLoss",
    "History",
    "HuberLoss",
    "L1",
    "L2",
    "MSELoss",
    "ModelCheckpoint",
    "Module",
    "Param",
    "ProgressBar",
    "QuadraticCost",
    "Sequential",
    "ShapeError",
    "TensorBoard",
    "TerminateOnNaN",
    "anomaly",
    "WriteError",
    "checkpoint",
    "causal_mask",
    "check_gradients",
    "clip_grad_norm",
    "data",
    "datasets",
    "diagnostics",
    "distributed",
    "experiments",
    "models",
    "evaluate",
    "export_onnx",
    "from_torch",
    "evaluating",
    "no_grad",
    "fit",
    "functional",
    "init",
    "load",
    "load_metadata",
    "load_torch_weights",
    "metrics",
    "onnx_export",
    "optim",
    "plots",
    "predict",
    "report",
    "save",
    "save_torch_weights",
    "schedules",
    "summary",
    "to_torch",
    "trace",
    "train_step",
    "tune_malloc",
    "tuning",
]
