"""glassnet: deep learning on NumPy with backpropagation you can read.

import glassnet as gn
train, test = gn.datasets.load_fashion_mnist()
model = gn.Sequential(gn.Flatten(), gn.Linear(784, 256), gn.ReLU(), gn.Linear(256, 10))
opt = gn.optim.Adam(model.parameters(), lr=1e-3)
gn.fit(model, gn.CrossEntropyLoss(), opt, train, epochs=5, batch_size=128, val_data=test)
"""

from . import _malloc

_malloc.tune_malloc()

from . import (  # noqa: E402
    anomaly,
    checkpoint,
    data,
    datasets,
    diagnostics,
    experiments,
    functional,
    init,
    models,
    optim,
    plots,
    report,
    schedules,
)
from .anomaly import AnomalyError, TerminateOnNaN  # noqa: E402
from .callbacks import Callback, CSVLogger, EarlyStopping, History, ModelCheckpoint, ProgressBar  # noqa: E402
from .checkpoint import BackupAndRestore  # noqa: E402
from .diagnostics import GradientFlow  # noqa: E402
from .errors import FileFormatError, WriteError  # noqa: E402
from .gradcheck import check_gradients  # noqa: E402
from .io import load, load_metadata, save  # noqa: E402
from .layers import *  # noqa: E402, F403
from .layers import __all__ as _layers  # noqa: E402
from .losses import (  # noqa: E402
    BCEWithLogitsLoss,
    CrossEntropyLoss,
    HingeLoss,
    HuberLoss,
    MSELoss,
    QuadraticCost,
)
from .module import Module, Param, Sequential, ShapeError  # noqa: E402
from .optim import clip_grad_norm  # noqa: E402
from .regularizers import L1, L2, ElasticNet, FixedDropoutPenalty  # noqa: E402
from .tensorboard import TensorBoard  # noqa: E402
from .tracing import trace  # noqa: E402
from .train import evaluate, evaluating, fit, predict, train_step  # noqa: E402

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
    "check_gradients",
    "clip_grad_norm",
    "data",
    "datasets",
    "diagnostics",
    "experiments",
    "models",
    "evaluate",
    "evaluating",
    "fit",
    "functional",
    "init",
    "load",
    "load_metadata",
    "optim",
    "plots",
    "predict",
    "report",
    "save",
    "schedules",
    "trace",
    "train_step",
]
