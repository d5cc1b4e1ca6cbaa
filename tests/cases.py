"""The test table: every row of ``glassnet.gradcheck.builtin_cases()`` and its PyTorch reference.

``CASES`` is the library's own table (constructor and input sampler per layer/loss), keyed by
case name. ``TORCH_REFERENCES`` holds, under the same keys, a function that builds the same
computation in torch (float64) from the glassnet object, with the same parameters copied in:

- layers: ``ref(layer, x) -> (y, params)``, ``x`` a torch tensor, ``params`` the torch
  parameters keyed by glassnet parameter name (so their ``.grad`` can be compared); a layer
  with buffers returns ``(y, params, buffers)``, torch's buffers keyed by glassnet name;
- losses: ``ref(loss, pred, target) -> scalar``, ``pred`` a torch tensor, ``target`` as given to
  glassnet;
- regularizers: ``ref(regularizer, weights) -> scalar``, ``weights`` the torch tensors of the
  row's parameters with ``decay=True`` (the documented formula: torch has no such module).

Each row records the constructor arguments it sets (``Case.args``); ``NO_ROW_NEEDED`` lists
the arguments that need no row with a non-default value, with the reason.

A test asserts the two tables have the same keys: adding a layer without a torch row fails.
``REALISTIC`` gives each layer with parameters a realistic size for the directional check.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

import glassnet as gn
from glassnet.gradcheck import FromInitialState, builtin_cases

try:
    import torch
except ImportError:  # a test dependency; without it only the torch comparisons skip
    torch = None

CASES = {case.name: case for case in builtin_cases()}
LAYER_CASES = [name for name, case in CASES.items() if case.kind == "layer"]
LOSS_CASES = [name for name, case in CASES.items() if case.kind == "loss"]
REGULARIZER_CASES = [name for name, case in CASES.items() if case.kind == "regularizer"]


def rows_of(*classes: type) -> list[str]:
    """The names of the rows that build one of ``classes``."""
    return [name for name, case in CASES.items() if case.cls in classes]


# layers whose output is random in training and the identity in eval; every other layer must
# give the same output in both modes
STOCHASTIC = set(rows_of(gn.Dropout, gn.GaussianDropout))
# layers that are deterministic in each mode but compute differently in training and eval by
# design (batch norm: batch statistics in training, running statistics in eval)
MODE_DEPENDENT = set(rows_of(gn.BatchNorm1d, gn.BatchNorm2d))
RECURRENT = rows_of(gn.RNN, gn.GRU, gn.LSTM)

# Constructor arguments that need no row with a non-default value, each with the reason. Every
# other argument of every exported layer, loss and regularizer has one (test_gradcheck checks).
NO_ROW_NEEDED = {
    "rng": "plumbing: the generator a layer draws its weights or noise from; every row passes "
    "one (Case.make), and the noise's distribution is tested on its own (test_layers)",
    "dtype": "plumbing: the rows run in float64 (the checks convert) and the float32 contract is "
    "checked for every row (test_float32_stays_float32)",
    "FixedDropoutPenalty.terms": "weights and coefficients measured from a model and data by "
    "from_model; tested against the formula and torch in test_dropout_penalty",
}


def make(name: str, seed: int = 0):
    """A row's object and its sampled input(s), from one seeded generator."""
    rng = np.random.default_rng(seed)
    case = CASES[name]
    return case.make(rng), case.sample(rng)


def has_params(name: str) -> bool:
    return CASES[name].kind == "layer" and bool(make(name)[0].parameters())


# --- the one place where glassnet and torch layouts differ -----------------------------------


def torch_layout(layer: gn.Module, name: str, a: np.ndarray) -> np.ndarray:
    """A glassnet parameter (or its gradient) in the layout of the torch parameter it maps to.

    glassnet is batch-first everywhere: ``Linear`` stores ``W`` as (in_features, out_features)
    and computes ``y = x @ W + b``, so a mini-batch is one product with no transpose. PyTorch's
    ``nn.Linear`` stores ``weight`` as (out_features, in_features) and computes
    ``x @ weight.T + bias``, so ``weight = W.T``. Every other parameter has the same layout in
    both libraries. Used both to copy parameters into torch and to compare gradients.

    Recurrent layers (``RNN``, ``GRU``, ``LSTM``) follow the same rule: their input and hidden
    weights ``W_x_l{k}{_reverse}`` (in, G H) and ``W_h_l{k}{_reverse}`` (H, G H) multiply from
    the right, so PyTorch's ``weight_ih_l{k}{_reverse}`` and ``weight_hh_l{k}{_reverse}`` are
    their transposes; the gate blocks are in PyTorch's order and the biases are the same.
    A parameter of a child module (``"0.W_x_l0"``) is looked up in that child.
    """
    head, dot, rest = name.partition(".")
    if dot and head.isdigit():
        return torch_layout(layer.children[int(head)], rest, a)
    if isinstance(layer, gn.Linear) and name == "W":
        return a.T
    if isinstance(layer, (gn.RNN, gn.GRU, gn.LSTM)) and name.startswith("W_"):
        return a.T
    return a


# glassnet parameter name -> torch attribute name
TORCH_NAMES = {"W": "weight", "b": "bias", "weight": "weight", "bias": "bias"}
# recurrent parameters: the prefix maps, the layer/direction suffix ("_l1_reverse") is the same
RECURRENT_NAMES = {"W_x": "weight_ih", "W_h": "weight_hh", "b_x": "bias_ih", "b_h": "bias_hh"}


def torch_name(name: str) -> str:
    if name[:3] in RECURRENT_NAMES:
        return RECURRENT_NAMES[name[:3]] + name[3:]
    return TORCH_NAMES[name]


def load_params(layer: gn.Module, module) -> dict[str, object]:
    """Copy ``layer``'s parameters into the torch ``module``; return them by glassnet name."""
    params = {}
    with torch.no_grad():
        for name, p in layer.named_parameters():
            tp = getattr(module, torch_name(name))
            tp.copy_(torch.from_numpy(np.ascontiguousarray(torch_layout(layer, name, p.data))))
            params[name] = tp
    assert len(params) == len(list(module.parameters())), "a torch parameter was not loaded"
    return params


# --- layer references --------------------------------------------------------------------------


def torch_linear(layer, x):
    module = torch.nn.Linear(
        layer.in_features, layer.out_features, bias=layer.b is not None, dtype=torch.float64
    )
    params = load_params(layer, module)
    return module(x), params


def torch_conv(layer, x):
    cls = torch.nn.Conv1d if isinstance(layer, gn.Conv1d) else torch.nn.Conv2d
    config = layer.config()
    del config["init"]
    module = cls(**config, dtype=torch.float64)
    params = load_params(layer, module)
    return module(x), params


def torch_recurrent(layer, x):
    """torch.nn.RNN/GRU/LSTM (batch_first) with the glassnet layer's parameters; a
    ``FromInitialState`` row also passes its h0 (and c0) as leaf tensors whose gradients are
    compared with the row's ``h0``/``c0`` parameters."""
    inner = layer.layer if isinstance(layer, FromInitialState) else layer
    config = inner.config()
    if isinstance(inner, gn.RNN):
        config["nonlinearity"] = inner.nonlinearity
    module = getattr(torch.nn, type(inner).__name__)(**config, batch_first=True, dtype=torch.float64)
    params = load_params(inner, module)
    if inner is layer:
        return module(x)[0], params
    params = {f"0.{name}": p for name, p in params.items()}
    states = [torch.tensor(p.data, requires_grad=True) for p in layer.params]
    for p, tp in zip(layer.params, states):
        params[p.name] = tp
    return module(x, states[0] if len(states) == 1 else tuple(states))[0], params


def stateless(build: Callable) -> Callable:
    """The reference of a layer without parameters: ``build(layer)`` makes the torch module."""

    def ref(layer, x):
        return build(layer)(x), {}

    return ref


def torch_dropout(layer, x):
    # the RNGs differ: multiply by the mask the glassnet layer drew (None in eval: identity)
    return (x if layer.mask is None else x * torch.from_numpy(layer.mask)), {}


def torch_gaussian_dropout(layer, x):
    return (x if layer.noise is None else x * torch.from_numpy(layer.noise)), {}


def torch_batch_norm(layer, x):
    """torch's batch norm of the same class and config, in training mode (the table's mode),
    gamma and beta copied in; its running statistics after the forward are returned as the
    third element, compared with the glassnet layer's buffers."""
    bn = getattr(torch.nn, type(layer).__name__)(**layer.config(), dtype=x.dtype)
    params = load_params(layer, bn)
    y = bn(x)
    return y, params, {name: getattr(bn, name) for name in layer.buffers()}


# --- loss references ---------------------------------------------------------------------------


def as_torch_target(target):
    """Integer labels become int64 (torch's class indices), float targets float64."""
    target = np.asarray(target)
    return torch.from_numpy(target.astype(np.int64 if target.dtype.kind in "iu" else np.float64))


def torch_quadratic_cost(loss, pred, target):
    # the book's C = 1/(2n) sum_x ||a(x) - y(x)||^2, y(x) the one-hot label
    onehot = torch.nn.functional.one_hot(as_torch_target(target), pred.shape[1]).to(pred.dtype)
    return 0.5 * ((pred - onehot) ** 2).sum() / pred.shape[0]


def torch_cross_entropy(loss, pred, target):
    module = torch.nn.CrossEntropyLoss(label_smoothing=loss.label_smoothing)
    return module(pred, as_torch_target(target))


def torch_hinge(loss, pred, target):
    target = np.asarray(target)
    if pred.ndim == 2 and pred.shape[1] > 1:
        return torch.nn.MultiMarginLoss(margin=loss.margin)(pred, as_torch_target(target))
    t = as_torch_target(np.where(target == 0, -1, target).reshape(pred.shape))
    return torch.clamp(loss.margin - t * pred, min=0).mean()


def torch_loss(build: Callable) -> Callable:
    """The reference of a loss that is one torch module built by ``build(loss)``."""

    def ref(loss, pred, target):
        return build(loss)(pred, as_torch_target(target))

    return ref


TORCH_REFERENCES: dict[str, Callable] = {
    "Linear": torch_linear,
    "Linear (3-D input)": torch_linear,
    "Linear (no bias)": torch_linear,
    "Linear (he_normal init)": torch_linear,
    "Sigmoid": stateless(lambda layer: torch.nn.Sigmoid()),
    "Tanh": stateless(lambda layer: torch.nn.Tanh()),
    "ReLU": stateless(lambda layer: torch.nn.ReLU()),
    "LeakyReLU": stateless(lambda layer: torch.nn.LeakyReLU(layer.negative_slope)),
    "ELU": stateless(lambda layer: torch.nn.ELU(layer.alpha)),
    "Softplus": stateless(lambda layer: torch.nn.Softplus(layer.beta, layer.threshold)),
    "Softplus (beta 0.5, threshold 3)": stateless(
        lambda layer: torch.nn.Softplus(layer.beta, layer.threshold)
    ),
    "GELU": stateless(lambda layer: torch.nn.GELU(approximate=layer.approximate)),
    "GELU (tanh)": stateless(lambda layer: torch.nn.GELU(approximate=layer.approximate)),
    "Softmax": stateless(lambda layer: torch.nn.Softmax(dim=layer.axis)),
    "Softmax (axis=1 of 3)": stateless(lambda layer: torch.nn.Softmax(dim=layer.axis)),
    "Flatten": stateless(lambda layer: torch.nn.Flatten()),
    "Dropout": torch_dropout,
    "GaussianDropout": torch_gaussian_dropout,
    "MSELoss": torch_loss(lambda loss: torch.nn.MSELoss()),
    "QuadraticCost": torch_quadratic_cost,
    "CrossEntropyLoss": torch_cross_entropy,
    "CrossEntropyLoss (probabilities)": torch_cross_entropy,
    "CrossEntropyLoss (label smoothing)": torch_cross_entropy,
    "BCEWithLogitsLoss": torch_loss(lambda loss: torch.nn.BCEWithLogitsLoss()),
    "HingeLoss": torch_hinge,
    "HingeLoss (margin 0.45)": torch_hinge,
    "HingeLoss (binary)": torch_hinge,
    "HingeLoss (binary, margin 0.5)": torch_hinge,
    "HuberLoss": torch_loss(lambda loss: torch.nn.HuberLoss(delta=loss.delta)),
    "HuberLoss (delta 0.5)": torch_loss(lambda loss: torch.nn.HuberLoss(delta=loss.delta)),
    # --- regularizer references: the documented formulas on the decayed weights ---
    "L1": lambda reg, weights: reg.lam * sum(w.abs().sum() for w in weights),
    "L2": lambda reg, weights: reg.lam / 2 * sum((w * w).sum() for w in weights),
    "ElasticNet": lambda reg, weights: sum(
        reg.l1 * w.abs().sum() + reg.l2 / 2 * (w * w).sum() for w in weights
    ),
    # --- convolution references ---
    "Conv2d": torch_conv,
    "Conv2d (stride 2, padding 1)": torch_conv,
    "Conv2d (5x3, dilation 2, no bias)": torch_conv,
    "Conv2d (1x1)": torch_conv,
    "Conv2d (glorot_uniform init)": torch_conv,
    "Conv1d": torch_conv,
    "Conv1d (stride 2, dilation 2)": torch_conv,
    "Conv1d (no bias, lecun_normal init)": torch_conv,
    # --- pooling references ---
    "MaxPool2d": stateless(lambda layer: torch.nn.MaxPool2d(layer.kernel_size, layer.stride, layer.padding)),
    "MaxPool2d (3, stride 2, padding 1)": stateless(
        lambda layer: torch.nn.MaxPool2d(layer.kernel_size, layer.stride, layer.padding)
    ),
    "MaxPool2d (2x3, stride (2, 1))": stateless(
        lambda layer: torch.nn.MaxPool2d(layer.kernel_size, layer.stride, layer.padding)
    ),
    "AvgPool2d": stateless(lambda layer: torch.nn.AvgPool2d(layer.kernel_size, layer.stride, layer.padding)),
    "AvgPool2d (3, stride 2, padding 1)": stateless(
        lambda layer: torch.nn.AvgPool2d(layer.kernel_size, layer.stride, layer.padding)
    ),
    "MaxPool1d": stateless(lambda layer: torch.nn.MaxPool1d(layer.kernel_size, layer.stride, layer.padding)),
    "MaxPool1d (3, stride 2, padding 1)": stateless(
        lambda layer: torch.nn.MaxPool1d(layer.kernel_size, layer.stride, layer.padding)
    ),
    **dict.fromkeys(
        ["AvgPool1d (3, stride 1)", "AvgPool1d (3, stride 2, padding 1)"],
        stateless(lambda layer: torch.nn.AvgPool1d(layer.kernel_size, layer.stride, layer.padding)),
    ),
    # global pooling is adaptive pooling to 1x1, then flatten (torch.amax would split ties)
    "GlobalAvgPool2d": stateless(
        lambda layer: torch.nn.Sequential(torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten())
    ),
    "GlobalMaxPool2d": stateless(
        lambda layer: torch.nn.Sequential(torch.nn.AdaptiveMaxPool2d(1), torch.nn.Flatten())
    ),
    # --- normalization references ---
    **dict.fromkeys(MODE_DEPENDENT, torch_batch_norm),
    # --- recurrent references ---
    **dict.fromkeys(RECURRENT, torch_recurrent),
    "LastStep": stateless(lambda layer: lambda x: x[:, -1]),
    "Reshape": stateless(lambda layer: torch.nn.Unflatten(1, layer.shape)),
}


# --- realistic sizes for the directional check ----------------------------------------------

# Each layer row runs inside Sequential(Linear(d, d), layer, Flatten(), Linear(k, 10)) on a batch
# of 64, d the last entry of its feature shape (the first Linear makes every parameter-free
# layer's dx count). Rows with parameters need a realistic-size layer here; a test checks that.
BATCH = 64
REALISTIC: dict[str, Callable[[np.random.Generator], gn.Module]] = {
    "Linear": lambda rng: gn.Linear(256, 128, rng=rng),
    "Linear (3-D input)": lambda rng: gn.Linear(256, 128, rng=rng),
    "Linear (no bias)": lambda rng: gn.Linear(256, 128, bias=False, rng=rng),
    "Linear (he_normal init)": lambda rng: gn.Linear(256, 128, init="he_normal", rng=rng),
    # --- convolution realistic ---
    "Conv2d": lambda rng: gn.Conv2d(16, 32, 3, padding=1, rng=rng),
    "Conv2d (stride 2, padding 1)": lambda rng: gn.Conv2d(16, 32, 3, stride=2, padding=1, rng=rng),
    "Conv2d (5x3, dilation 2, no bias)": lambda r: gn.Conv2d(16, 8, (5, 3), dilation=2, bias=False, rng=r),
    "Conv2d (1x1)": lambda rng: gn.Conv2d(16, 32, 1, rng=rng),
    "Conv2d (glorot_uniform init)": lambda rng: gn.Conv2d(
        16, 32, 3, padding=1, init="glorot_uniform", rng=rng
    ),
    "Conv1d": lambda rng: gn.Conv1d(16, 32, 5, padding=2, rng=rng),
    "Conv1d (stride 2, dilation 2)": lambda rng: gn.Conv1d(16, 8, 3, stride=2, dilation=2, rng=rng),
    "Conv1d (no bias, lecun_normal init)": lambda rng: gn.Conv1d(
        16, 32, 3, padding=1, bias=False, init="lecun_normal", rng=rng
    ),
    # --- pooling realistic ---
    # --- normalization realistic ---
    "BatchNorm1d": lambda rng: gn.BatchNorm1d(256),
    "BatchNorm1d (3-D input)": lambda rng: gn.BatchNorm1d(32),
    "BatchNorm2d": lambda rng: gn.BatchNorm2d(16),
    "BatchNorm1d (affine=False)": lambda rng: gn.BatchNorm1d(256, affine=False),
    "BatchNorm1d (eps 0.5, momentum None)": lambda rng: gn.BatchNorm1d(256, eps=0.5, momentum=None),
    "BatchNorm2d (momentum 0.3, eps 0.1, affine=False)": lambda rng: gn.BatchNorm2d(
        16, momentum=0.3, eps=0.1, affine=False
    ),
    # --- recurrent realistic ---
    "RNN (tanh)": lambda rng: gn.RNN(32, 64, rng=rng),
    "RNN (relu)": lambda rng: gn.RNN(32, 64, nonlinearity="relu", rng=rng),
    "RNN (2 layers, bidirectional, no bias)": lambda rng: gn.RNN(
        32, 32, num_layers=2, bidirectional=True, bias=False, rng=rng
    ),
    "GRU": lambda rng: gn.GRU(32, 64, rng=rng),
    "GRU (2 layers, bidirectional)": lambda rng: gn.GRU(32, 32, num_layers=2, bidirectional=True, rng=rng),
    "GRU (h0 given, bidirectional)": lambda rng: FromInitialState(
        gn.GRU(32, 32, bidirectional=True, rng=rng), BATCH, rng
    ),
    "GRU (no bias)": lambda rng: gn.GRU(32, 64, bias=False, rng=rng),
    "LSTM": lambda rng: gn.LSTM(32, 64, rng=rng),
    "LSTM (2 layers, bidirectional)": lambda rng: gn.LSTM(32, 32, num_layers=2, bidirectional=True, rng=rng),
    "LSTM (h0, c0 given, 2 layers)": lambda rng: FromInitialState(
        gn.LSTM(32, 32, num_layers=2, rng=rng), BATCH, rng
    ),
    "LSTM (no bias)": lambda rng: gn.LSTM(32, 64, bias=False, rng=rng),
}
FEATURES = {  # per-example input shape; (256,) unless listed
    "Linear (3-D input)": (8, 256),
    "Softmax (axis=1 of 3)": (16, 32),
    "Flatten": (4, 4, 16),
    # --- convolution features ---
    "Conv2d": (16, 12, 12),
    "Conv2d (stride 2, padding 1)": (16, 12, 12),
    "Conv2d (5x3, dilation 2, no bias)": (16, 12, 12),
    "Conv2d (1x1)": (16, 8, 8),
    "Conv1d": (16, 40),
    "Conv1d (stride 2, dilation 2)": (16, 40),
    "Conv2d (glorot_uniform init)": (16, 12, 12),
    "Conv1d (no bias, lecun_normal init)": (16, 40),
    # --- pooling features ---
    "MaxPool2d": (8, 12, 12),
    "MaxPool2d (3, stride 2, padding 1)": (8, 12, 12),
    "MaxPool2d (2x3, stride (2, 1))": (8, 12, 12),
    "AvgPool2d": (8, 12, 12),
    "AvgPool2d (3, stride 2, padding 1)": (8, 12, 12),
    "MaxPool1d": (8, 32),
    "MaxPool1d (3, stride 2, padding 1)": (8, 32),
    "AvgPool1d (3, stride 1)": (8, 32),
    "AvgPool1d (3, stride 2, padding 1)": (8, 32),
    "GlobalAvgPool2d": (8, 12, 12),
    "GlobalMaxPool2d": (8, 12, 12),
    # --- normalization features ---
    "BatchNorm1d (3-D input)": (32, 64),
    "BatchNorm2d": (16, 12, 12),
    "BatchNorm2d (momentum 0.3, eps 0.1, affine=False)": (16, 12, 12),
    # --- recurrent features: (T, features) ---
    **dict.fromkeys(RECURRENT, (20, 32)),
    "LastStep": (20, 32),
    "Reshape": (4,),
}


def realistic_model(name: str, seed: int = 0):
    """(model, x, labels) in float32 for the directional check of layer row ``name``."""
    rng = np.random.default_rng(seed)
    layer = REALISTIC[name](rng) if name in REALISTIC else CASES[name].make(rng)
    shape = FEATURES.get(name, (256,))
    x = rng.standard_normal((BATCH, *shape)).astype(np.float32)
    first = gn.Linear(shape[-1], shape[-1], rng=rng)
    hidden = layer.forward(first.forward(x))
    model = gn.Sequential(first, layer, gn.Flatten(), gn.Linear(hidden[0].size, 10, rng=rng))
    return model, x, rng.integers(0, 10, size=BATCH)


# --- small harness helpers shared by the contract tests and the mutant tests ------------------


def grads_after_backward(layer: gn.Module, x: np.ndarray, dy: np.ndarray, times: int):
    """Zero the grads, run forward once and backward ``times`` times; return copies of the grads."""
    layer.zero_grad()
    layer.forward(x)
    for _ in range(times):
        layer.backward(dy)
    return {name: p.grad.copy() for name, p in layer.named_parameters()}
