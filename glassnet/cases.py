"""The case table: one row per built-in layer, loss and regularizer set-up, and all about it.

``CASES`` is one list of ``Case`` rows. A row holds everything the checks need to know about
one set-up, as fields: the class and the constructor arguments it sets, how to sample its
input, its PyTorch reference, and, for layers, a realistic size for the directional check and
how training and eval differ. Adding a layer is one edit: its rows here.

Who reads the table:

- ``glassnet gradcheck`` (``gradcheck.run_builtin_checks``): finite differences on every row;
- the tests, over the same rows: finite differences, a directional check at the realistic size,
  a float64 comparison with PyTorch, the layer contracts (dtype, ``dy`` untouched, gradients
  accumulate, train/eval), and the rules of the table itself: every exported layer, loss and
  regularizer has a row, and every constructor argument has a row with a non-default value
  (``NO_ROW_NEEDED`` lists the exceptions, each with its reason).

The table lives in the library, not in tests/, because the CLI needs the constructors and
samplers; the torch references live beside them (``torch_reference``) because a row whose
parts sit in several files, keyed by name, can be half-added without anything noticing. torch
stays a test dependency: each reference imports it when called, never at import.

Rows are written out one by one, a row per line or a few lines (``# fmt: off`` keeps them so),
with no loops or generated names: the row's name is its test id.
"""

from __future__ import annotations

import copy
import inspect
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from . import layers as L
from . import losses, regularizers
from . import torch_reference as T
from .module import Module, Param, Sequential

# how a layer's output in training relates to its output in eval
MODES = {
    "same": "the same output in both modes",
    "noise": "random in training, the identity in eval (dropout)",
    "statistics": "batch statistics in training, running statistics in eval (batch norm)",
    "noise inside": "random in training (dropout inside the layer), deterministic in eval",
}
# the batch of the directional check's realistic model (tests/harness.py builds it)
REALISTIC_BATCH = 64


@dataclass(frozen=True, eq=False)
class Case:
    """One row of the table.

    - ``name``: unique; the test id and the label ``glassnet gradcheck`` prints.
    - ``cls``, ``args``: the class and every constructor argument the row gives, by name (a
      generator ``rng`` is added by ``make`` when the class takes one), so a test can read which
      arguments the table exercises with which values.
    - ``sample(rng)``: the input (layers; a tuple of inputs for a layer with several, called
      as ``forward(*inputs)``), (pred, target) (losses) or a list of ``Param``
      (regularizers), drawn away from kinks (|z| >= 0.1 around ReLU's 0, margins away from hinge
      points) so differences are smooth.
    - ``torch``: the PyTorch reference, a function of ``torch_reference`` (its signature per kind
      is documented there).
    - ``wrap(obj, rng)``: adjusts the built object where the row needs more than a constructor
      call (random batch-norm gamma, a recurrent layer run from a given state).
    - layers only: ``realistic(rng)`` builds the layer at a realistic size for the directional
      check (None: the row's own small layer, fine for layers without parameters);
      ``features`` is the per-example input shape there; ``mode`` is a key of ``MODES``.
    """

    name: str
    cls: type
    args: dict[str, object]
    sample: Callable[[np.random.Generator], object]
    torch: Callable[..., object]
    wrap: Callable[[object, np.random.Generator], object] | None = None
    realistic: Callable[[np.random.Generator], Module] | None = None
    features: tuple[int, ...] = (256,)
    mode: str = "same"

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"Case {self.name!r}: mode must be one of {list(MODES)}, got {self.mode!r}")

    @property
    def kind(self) -> str:
        """The row's kind, from its class: "layer", "loss" or "regularizer"."""
        if issubclass(self.cls, losses.Loss):
            return "loss"
        if issubclass(self.cls, regularizers.Regularizer):
            return "regularizer"
        return "layer"

    def make(self, rng: np.random.Generator) -> object:
        """The row's object, built from ``args`` (and ``rng``, if the class takes one).

        A container's modules in ``args`` (``Residual``'s block, a ``Graph``'s nodes) are
        copied, so that every build has its own, and their parameters drawn from ``rng``."""
        kwargs = copy.deepcopy(self.args)
        if "rng" in inspect.signature(self.cls).parameters:
            kwargs["rng"] = rng
        obj = self.cls(**kwargs)
        if isinstance(obj, Module) and obj.children:
            obj.reset_parameters(rng)
        return obj if self.wrap is None else self.wrap(obj, rng)

    def build(self, seed: int = 0) -> tuple[object, object]:
        """The row's object and its sampled input, both drawn from ``default_rng(seed)``."""
        rng = np.random.default_rng(seed)
        obj = self.make(rng)
        return obj, self.sample(rng)


# Constructor arguments (or whole classes) that need no row with a non-default value, each with
# the reason. Every other argument of every exported layer, loss and regularizer has one, and
# every other class has a row (tests/test_gradcheck.py checks both).
NO_ROW_NEEDED = {
    "rng": "plumbing: the generator a layer draws its weights or noise from; every row passes "
    "one (Case.make), and the noise's distribution is tested on its own (test_layers)",
    "dtype": "plumbing: the rows run in float64 (the checks convert) and the float32 contract is "
    "checked for every row (test_float32_stays_float32)",
    "FixedDropoutPenalty": "its penalty belongs to the weights it was measured on (from_model), not "
    "to the parameters it is given, so the regularizer harness cannot run it; tested against the "
    "formula, finite differences and torch in test_dropout_penalty",
}


# --- samplers ------------------------------------------------------------------------------------


def away_from_zero(shape, low: float = 0.1, high: float = 2.0):
    """Magnitudes in [low, high), random signs: no entry within ``low`` of a kink at 0."""

    def sample(rng):
        mag = rng.uniform(low, high, size=shape)
        return np.where(rng.random(shape) < 0.5, -mag, mag)

    return sample


def _normal(shape, scale=1.0):
    return lambda rng: rng.standard_normal(shape) * scale


def _bands(shape, *bands: tuple[float, float]):
    """Values drawn in turn from each (low, high) band, shuffled: a sampler that reaches every
    branch of a piecewise function (one band per piece) and stays off its kinks (the gaps)."""

    def sample(rng):
        n = int(np.prod(shape))
        values = [rng.uniform(*bands[i % len(bands)]) for i in range(n)]
        return rng.permutation(np.array(values)).reshape(shape)

    return sample


def _distinct(shape):
    """A permutation of values 0.05 apart plus noise under 0.005: no two units of a pooling
    window are within 1e-3 of each other, so no difference step crosses a tie."""
    n = np.prod(shape)
    return lambda rng: (rng.permutation(n).reshape(shape) - n / 2) * 0.05 + rng.uniform(0, 0.005, shape)


def _labels(n, classes):
    return lambda rng: rng.integers(0, classes, size=n)


def _ignoring(n, classes, ignore):
    """Logits (n, classes) and labels with the first two set to ``ignore`` (kept out of the loss)."""

    def sample(rng):
        labels = rng.integers(0, classes, size=n)
        labels[:2] = ignore
        if ignore in range(classes):  # some kept label differs from the ignored class
            labels[2:] = (ignore + 1 + rng.integers(0, classes - 1, size=n - 2)) % classes
        return rng.standard_normal((n, classes)) * 2, labels

    return sample


def _hinge(rng):
    # logits spaced by 0.3 so no margin (1 or 0.45) sits within eps of its kink at 0
    z = rng.permutation(np.arange(5) * 0.3)[None, :] + np.arange(4)[:, None] * 0.05
    return z + rng.standard_normal((4, 1)), rng.integers(0, 5, size=4)


def _binary_hinge(rng):
    # scores t (1 + d), |d| >= 0.1: every margin 1 - t z = -d is away from the kink
    t = np.tile([1, -1], 3)
    return t * (1 + away_from_zero((6,), 0.1, 0.8)(rng)), t


def _binary_hinge_half_margin(rng):
    # t z in three bands for margin 0.5: violated, satisfied only because the margin is 0.5
    # (a loss that used 1 would count these), and satisfied for either
    t = np.tile([1, -1], 6)
    return t * _bands((12,), (-1.0, 0.4), (0.6, 0.9), (1.1, 2.0))(rng), t


def _huber(rng):
    r = away_from_zero((4, 3), 0.1, 0.8)(rng) + np.where(rng.random((4, 3)) < 0.5, 0, 1.5)
    t = rng.standard_normal((4, 3))
    return t + r, t


def _huber_half_delta(rng):
    # |r| below delta = 0.5, between delta and 1 (where a backward clipping at 1 differs),
    # and above 1; both signs
    r = _bands((4, 3), (0.05, 0.4), (0.6, 0.9), (1.1, 2.5))(rng) * np.tile([1, -1], 6).reshape(4, 3)
    t = rng.standard_normal((4, 3))
    return t + r, t


def _weights(rng: np.random.Generator) -> list[Param]:
    """Two weights and a bias (``decay=False``) in float64, |w| >= 0.1: a regularizer row's
    input (central differences never straddle L1's kink at 0)."""

    def draw(shape):
        w = rng.standard_normal(shape)
        return np.sign(w) * (0.1 + np.abs(w))

    return [Param(draw((4, 3)), "W1"), Param(draw(3), "b1", decay=False), Param(draw((3, 2)), "W2")]


# --- wrappers ------------------------------------------------------------------------------------


def _random_affine(bn, rng):
    # gamma and beta drawn at random, not left at ones and zeros, so the check exercises them
    for p in bn.parameters():
        np.copyto(p.data, rng.uniform(0.5, 1.5, p.shape))
    return bn


def _random_affine_inside(model, rng):
    # the batch norms inside a container, as _random_affine
    for m in model.modules():
        if isinstance(m, (L.BatchNorm1d, L.BatchNorm2d)):
            _random_affine(m, rng)
    return model


def _inputs(*samplers):
    """A multi-input layer's sampler: one array per input, drawn in turn."""
    return lambda rng: tuple(sample(rng) for sample in samplers)


# --- containers: the modules rows give to Residual and Graph (Case.make copies them and draws
# their parameters) ---


def _residual_block():
    # Linear, ReLU, then batch norm: a bias straight before batch norm has a zero gradient,
    # which finite differences cannot measure against
    return Sequential(L.Linear(4, 4), L.ReLU(), L.BatchNorm1d(4))


def _fan_out_fan_in():
    """Two inputs; h feeds three consumers (fan-out), three merges (fan-in)."""
    return {
        "inputs": ["x", "x2"],
        "nodes": [
            ("h", L.Linear(4, 6), "x"),
            ("a", L.Tanh(), "h"),
            ("g", L.Multiply(), ["a", "x2"]),
            ("s", L.Add(), ["h", "g", "a"]),
            ("c", L.Concat(), ["s", "h"]),
            ("out", L.Linear(12, 3), "c"),
        ],
        "outputs": "out",
    }


def _unet_like():
    """One input; a skip over two blocks, joined by concatenation (a U-Net's skip)."""
    return {
        "inputs": "x",
        "nodes": [
            ("down", L.Linear(4, 5), "x"),
            ("act", L.ReLU(), "down"),
            ("up", L.Linear(5, 4), "act"),
            ("join", L.Concat(axis=-1), ["up", "x"]),
            ("out", L.Linear(8, 2), "join"),
        ],
        "outputs": "out",
    }


class FromInitialState(Module):
    """A recurrent layer run from a given initial state, held as a parameter ``h0`` (and ``c0``
    for an LSTM) so that the table's checks (finite differences, PyTorch) cover the layer's
    gradient with respect to its initial state, ``dh0`` (and ``dc0``)."""

    def __init__(self, layer: Module, batch: int, rng: np.random.Generator) -> None:
        super().__init__()
        self.layer = layer
        self.children = [layer]
        shape = (layer.num_layers * layer.directions, batch, layer.hidden_size)
        names = ["h0", "c0"][: layer.states]
        dtype = layer.parameters()[0].data.dtype
        self.params = [Param(rng.uniform(-1, 1, shape).astype(dtype), name, decay=False) for name in names]

    def forward(self, x: np.ndarray) -> np.ndarray:
        states = [p.data for p in self.params]
        return self.layer.forward(x, states[0] if len(states) == 1 else tuple(states))

    def backward(self, dy: np.ndarray) -> np.ndarray:
        dx = self.layer.backward(dy)
        for p, grad in zip(self.params, [self.layer.dh0, getattr(self.layer, "dc0", None)]):
            p.grad += grad
        return dx


def _from_initial_state(batch: int):
    return lambda layer, rng: FromInitialState(layer, batch, rng)


class WithFinalState(Module):
    """A recurrent layer whose output is its output sequence and its final state h_n (and an
    LSTM's c_n), each flattened per example and laid side by side, so that the table's checks
    cover the gradient flowing into the final states: ``backward(dy, dh_n=..., dc_n=...)``."""

    def __init__(self, layer: Module) -> None:
        super().__init__()
        self.layer = layer
        self.children = [layer]

    def forward(self, x: np.ndarray) -> np.ndarray:
        y = self.layer.forward(x)
        states = [self.layer.h_n] + ([self.layer.c_n] if self.layer.states == 2 else [])
        self.shapes = [y.shape] + [s.shape for s in states]
        n = x.shape[0]
        per_example = [s.transpose(1, 0, 2).reshape(n, -1) for s in states]  # (N, num_layers D H)
        return np.concatenate([y.reshape(n, -1), *per_example], axis=1)

    def backward(self, dy: np.ndarray) -> np.ndarray:
        sizes = np.cumsum([int(np.prod(shape[1:] if k == 0 else (shape[0], shape[2])))
                           for k, shape in enumerate(self.shapes)])[:-1]  # fmt: skip
        parts = np.split(dy, sizes, axis=1)
        dout = parts[0].reshape(self.shapes[0])
        finals = [p.reshape(s[1], s[0], s[2]).transpose(1, 0, 2) for p, s in zip(parts[1:], self.shapes[1:])]
        return self.layer.backward(dout, *finals)  # dh_n (and dc_n)


def _random_params(layer, rng):
    # every parameter drawn at random (biases and LayerNorm's gamma/beta too, which start at
    # zeros and ones), so no term of a backward can hide behind a 0 or a 1
    for p in layer.parameters():
        np.copyto(p.data, rng.uniform(-0.8, 0.8, p.shape))
    return layer


class WithTokenIds(Module):
    """An ``Embedding`` looked up at fixed token ids, plus the row's float input: y = W[ids] + x.

    Token ids are integers and have no gradient, so the table's checks, which perturb their
    input, cannot run on an ``Embedding`` alone; the float input added here gives them an input
    whose gradient (dy) they check, while the finite differences and PyTorch check dW (the
    scatter-add over repeated ids).

    PyTorch's padding row is a stop-gradient, not a derivative: W[padding_idx] gets no gradient
    although the output at padding positions is that row. Finite differences would see it, so
    the vectors at padding positions are multiplied by 0 here (in the torch reference too);
    tests/test_attention.py checks the padding row's zero gradient against PyTorch directly."""

    def __init__(self, layer: Module, ids: np.ndarray) -> None:
        super().__init__()
        self.layer, self.ids = layer, ids
        self.children = [layer]
        pad = getattr(layer, "padding_idx", None)
        self.keep = (ids != pad)[..., None] if pad is not None else None

    def forward(self, x: np.ndarray) -> np.ndarray:
        vectors = self.layer.forward(self.ids)
        return (vectors if self.keep is None else vectors * self.keep) + x

    def backward(self, dy: np.ndarray) -> np.ndarray:
        self.layer.backward(dy if self.keep is None else dy * self.keep)
        return dy


def _with_token_ids(ids):
    return lambda layer, rng: WithTokenIds(layer, np.array(ids))


class WithMasks(Module):
    """A ``MultiheadAttention`` (self-attention on one input, cross-attention on three:
    ``(q, k, v)``) or ``TransformerEncoderLayer`` run with fixed masks: ``attn_mask`` and
    ``key_padding_mask`` (the encoder's ``src_mask`` and ``src_key_padding_mask``), so that the
    checks of the table, which pass inputs only, cover them."""

    def __init__(self, layer: Module, attn_mask=None, key_padding_mask=None) -> None:
        super().__init__()
        self.layer, self.attn_mask, self.key_padding_mask = layer, attn_mask, key_padding_mask
        self.children = [layer]

    def forward(self, *xs: np.ndarray) -> np.ndarray:
        if isinstance(self.layer, L.MultiheadAttention):
            return self.layer.forward(*xs, key_padding_mask=self.key_padding_mask, attn_mask=self.attn_mask)
        return self.layer.forward(*xs, src_mask=self.attn_mask, src_key_padding_mask=self.key_padding_mask)

    def backward(self, dy: np.ndarray) -> np.ndarray | tuple[np.ndarray, ...]:
        return self.layer.backward(dy)  # (dq, dk, dv) for three inputs


def _with_masks(attn_mask=None, key_padding_mask=None):
    def wrap(layer, rng):
        return WithMasks(_random_params(layer, rng), attn_mask, key_padding_mask)

    return wrap


def _realistic_encoder(norm_first: bool):
    # GELU, not the row's ReLU: among the 131,072 hidden units of the realistic check some sit
    # within a step (1e-6) of ReLU's kink, and the difference quotient across a kink is not the
    # derivative; the ReLU path is checked at the row's own size, away from kinks
    return lambda rng: L.TransformerEncoderLayer(
        64, 4, 128, dropout=0.0, activation="gelu", norm_first=norm_first, rng=rng
    )


# masks for a batch of N = 2 sequences of T = 3 tokens and 2 heads: the causal mask (boolean);
# per example and head, additive, with -inf in some places and finite values elsewhere (every
# query keeps a key); padding of the second example's last key (boolean, and additive)
_CAUSAL3 = np.triu(np.ones((3, 3), dtype=bool), k=1)
_ADDITIVE3 = np.array(
    [[[0.0, -np.inf, 0.5], [0.3, 0.0, -1.0], [-np.inf, 0.2, 0.0]]] * 2
    + [[[0.0, 0.7, -np.inf], [-0.4, 0.0, 0.0], [0.0, -np.inf, 1.0]]] * 2
)
_PAD3 = np.array([[False, False, False], [False, False, True]])
_PAD3_ADDITIVE = np.where(_PAD3, -np.inf, 0.0)
# cross-attention: T = 3 queries, S = 5 keys (N = 2, 2 heads); boolean (T, S), additive per
# example and head (N H, T, S); every query keeps a key; padding of the second example's last two
_CROSS_BOOL = np.array(
    [[False, True, False, True, False], [True, False, False, False, True], [False] * 4 + [True]]
)
_CROSS_ADDITIVE = np.array(
    [[[0.0, -np.inf, 0.5, 0.1, -0.2], [0.3, 0.0, -np.inf, -1.0, 0.0], [-np.inf, 0.2, 0.0, 0.4, -np.inf]]] * 2
    + [
        [
            [0.0, 0.7, -np.inf, 0.0, -0.3],
            [-0.4, -np.inf, 0.0, 0.0, 0.6],
            [0.0, -np.inf, 1.0, -np.inf, -np.inf],
        ]
    ]
    * 2
)
_CROSS_PAD = np.array([[False] * 5, [False, False, False, True, True]])
_QKV = _inputs(_normal((2, 3, 4)), _normal((2, 5, 4)), _normal((2, 5, 4)))  # q (N, T, E), k and v (N, S, E)
_QKV_WIDTHS = _inputs(_normal((2, 3, 4)), _normal((2, 5, 3)), _normal((2, 5, 6)))  # kdim 3, vdim 6


def _cross_attention(attn_mask, key_padding_mask, **kwargs):
    """The realistic model of a cross-attention row with masks: the row's layer (E = 4; the
    realistic graph feeds it inputs of the row's per-example shapes) with masks for a batch of
    REALISTIC_BATCH, the row's per-example masks repeated (N H rows of a per-head mask in order
    n H + h, so whole blocks of H repeat)."""
    reps = REALISTIC_BATCH // len(key_padding_mask)
    per_head = attn_mask is not None and attn_mask.ndim == 3
    mask = np.tile(attn_mask, (reps, 1, 1)) if per_head else attn_mask
    pad = np.tile(key_padding_mask, (reps, 1))
    return lambda rng: WithMasks(
        _random_params(L.MultiheadAttention(4, 2, **kwargs, rng=rng), rng), mask, pad
    )


# --- the table -------------------------------------------------------------------------------------

# fmt: off
CASES: list[Case] = [
    # --- linear ---
    Case("Linear", L.Linear, {"in_features": 5, "out_features": 4}, _normal((3, 5)), torch=T.linear,
         realistic=lambda rng: L.Linear(256, 128, rng=rng)),
    Case("Linear (3-D input)", L.Linear, {"in_features": 4, "out_features": 3}, _normal((2, 3, 4)),
         torch=T.linear, realistic=lambda rng: L.Linear(256, 128, rng=rng), features=(8, 256)),
    Case("Linear (no bias)", L.Linear, {"in_features": 5, "out_features": 4, "bias": False}, _normal((3, 5)),
         torch=T.linear, realistic=lambda rng: L.Linear(256, 128, bias=False, rng=rng)),
    Case("Linear (he_normal init)", L.Linear, {"in_features": 5, "out_features": 4, "init": "he_normal"},
         _normal((3, 5)), torch=T.linear,
         realistic=lambda rng: L.Linear(256, 128, init="he_normal", rng=rng)),
    # --- activations ---
    Case("Sigmoid", L.Sigmoid, {}, _normal((3, 5), 2.0), torch=T.stateless(lambda nn, layer: nn.Sigmoid())),
    Case("Tanh", L.Tanh, {}, _normal((3, 5)), torch=T.stateless(lambda nn, layer: nn.Tanh())),
    Case("ReLU", L.ReLU, {}, away_from_zero((3, 5)), torch=T.stateless(lambda nn, layer: nn.ReLU())),
    Case("LeakyReLU", L.LeakyReLU, {"negative_slope": 0.1}, away_from_zero((3, 5)),
         torch=T.stateless(lambda nn, layer: nn.LeakyReLU(layer.negative_slope))),
    Case("ELU", L.ELU, {"alpha": 1.3}, away_from_zero((3, 5)),
         torch=T.stateless(lambda nn, layer: nn.ELU(layer.alpha))),
    Case("Softplus", L.Softplus, {"beta": 2.0}, _normal((3, 5), 3.0),
         torch=T.stateless(lambda nn, layer: nn.Softplus(layer.beta, layer.threshold))),
    # beta z against the threshold: z in (3, 6) is below it (z would not be); z > 6 above it
    Case("Softplus (beta 0.5, threshold 3)", L.Softplus, {"beta": 0.5, "threshold": 3.0},
         _bands((3, 5), (-4.0, 2.5), (3.5, 5.5), (6.5, 9.0)),
         torch=T.stateless(lambda nn, layer: nn.Softplus(layer.beta, layer.threshold))),
    Case("GELU", L.GELU, {}, _normal((3, 5), 2.0),
         torch=T.stateless(lambda nn, layer: nn.GELU(approximate=layer.approximate))),
    Case("GELU (tanh)", L.GELU, {"approximate": "tanh"}, _normal((3, 5), 2.0),
         torch=T.stateless(lambda nn, layer: nn.GELU(approximate=layer.approximate))),
    Case("Softmax", L.Softmax, {}, _normal((3, 5), 2.0),
         torch=T.stateless(lambda nn, layer: nn.Softmax(dim=layer.axis))),
    Case("Softmax (axis=1 of 3)", L.Softmax, {"axis": 1}, _normal((2, 4, 3)),
         torch=T.stateless(lambda nn, layer: nn.Softmax(dim=layer.axis)), features=(16, 32)),
    # --- reshaping ---
    Case("Flatten", L.Flatten, {}, _normal((2, 3, 2, 2)), torch=T.stateless(lambda nn, layer: nn.Flatten()),
         features=(4, 4, 16)),
    Case("Reshape", L.Reshape, {"shape": (2, 2)}, _normal((3, 4)),
         torch=T.stateless(lambda nn, layer: nn.Unflatten(1, layer.shape)), features=(4,)),
    # --- dropout ---
    Case("Dropout", L.Dropout, {"p": 0.4}, _normal((4, 6)), torch=T.dropout, mode="noise"),
    Case("GaussianDropout", L.GaussianDropout, {"rate": 0.3}, _normal((4, 6)), torch=T.gaussian_dropout,
         mode="noise"),
    # --- losses ---
    Case("MSELoss", losses.MSELoss, {},
         lambda rng: (rng.standard_normal((4, 3)), rng.standard_normal((4, 3))),
         torch=T.loss_module(lambda nn, loss: nn.MSELoss(reduction=loss.reduction))),
    Case("QuadraticCost", losses.QuadraticCost, {},
         lambda rng: (rng.standard_normal((4, 3)), _labels(4, 3)(rng)), torch=T.quadratic_cost),
    Case("CrossEntropyLoss", losses.CrossEntropyLoss, {},
         lambda rng: (rng.standard_normal((4, 5)) * 3, _labels(4, 5)(rng)), torch=T.cross_entropy),
    Case("CrossEntropyLoss (probabilities)", losses.CrossEntropyLoss, {},
         lambda rng: (rng.standard_normal((4, 5)), rng.dirichlet(np.ones(5), size=4)), torch=T.cross_entropy),
    Case("CrossEntropyLoss (label smoothing)", losses.CrossEntropyLoss, {"label_smoothing": 0.1},
         lambda rng: (rng.standard_normal((4, 5)), _labels(4, 5)(rng)), torch=T.cross_entropy),
    # PyTorch's K-dimensional form: a class per position (a language model's next tokens)
    Case("CrossEntropyLoss (N, C, T)", losses.CrossEntropyLoss, {},
         lambda rng: (rng.standard_normal((3, 5, 4)) * 2, rng.integers(0, 5, size=(3, 4))),
         torch=T.cross_entropy),
    Case("CrossEntropyLoss (N, C, T probabilities, smoothing)", losses.CrossEntropyLoss,
         {"label_smoothing": 0.2},
         lambda rng: (rng.standard_normal((2, 4, 3)),
                      rng.dirichlet(np.ones(4), size=(2, 3)).transpose(0, 2, 1)),
         torch=T.cross_entropy),
    Case("BCEWithLogitsLoss", losses.BCEWithLogitsLoss, {},
         lambda rng: (rng.standard_normal((4, 3)) * 3, rng.random((4, 3))),
         torch=T.bce_with_logits),
    Case("HingeLoss", losses.HingeLoss, {}, _hinge, torch=T.hinge),
    # differences of logits are multiples of 0.3: those of 0.3 and less violate margin 0.45,
    # those of 0.6 and 0.9 satisfy it (and would violate the default margin 1)
    Case("HingeLoss (margin 0.45)", losses.HingeLoss, {"margin": 0.45}, _hinge, torch=T.hinge),
    Case("HingeLoss (binary)", losses.HingeLoss, {}, _binary_hinge, torch=T.hinge),
    Case("HingeLoss (binary, margin 0.5)", losses.HingeLoss, {"margin": 0.5}, _binary_hinge_half_margin,
         torch=T.hinge),
    Case("HuberLoss", losses.HuberLoss, {}, _huber,
         torch=T.loss_module(lambda nn, loss: nn.HuberLoss(delta=loss.delta, reduction=loss.reduction))),
    Case("HuberLoss (delta 0.5)", losses.HuberLoss, {"delta": 0.5}, _huber_half_delta,
         torch=T.loss_module(lambda nn, loss: nn.HuberLoss(delta=loss.delta, reduction=loss.reduction))),
    # PyTorch's reduction="sum" (reduction="none" returns an array: tests/test_losses.py)
    Case("MSELoss (sum)", losses.MSELoss, {"reduction": "sum"},
         lambda rng: (rng.standard_normal((4, 3)), rng.standard_normal((4, 3))),
         torch=T.loss_module(lambda nn, loss: nn.MSELoss(reduction=loss.reduction))),
    Case("QuadraticCost (sum)", losses.QuadraticCost, {"reduction": "sum"},
         lambda rng: (rng.standard_normal((4, 3)), _labels(4, 3)(rng)), torch=T.quadratic_cost),
    Case("HingeLoss (sum)", losses.HingeLoss, {"reduction": "sum"}, _hinge, torch=T.hinge),
    Case("HingeLoss (binary, sum)", losses.HingeLoss, {"reduction": "sum"}, _binary_hinge, torch=T.hinge),
    Case("HuberLoss (sum)", losses.HuberLoss, {"reduction": "sum"}, _huber,
         torch=T.loss_module(lambda nn, loss: nn.HuberLoss(delta=loss.delta, reduction=loss.reduction))),
    # class weights: the mean divides by the weights of the targets kept (PyTorch's weighted
    # mean); label 1 is ignored, so a loss that counted it would differ in value and divisor
    Case("CrossEntropyLoss (weight, ignore_index)", losses.CrossEntropyLoss,
         {"weight": (0.5, 2.0, 1.0, 3.0, 0.25), "ignore_index": 1}, _ignoring(6, 5, 1),
         torch=T.cross_entropy),
    Case("CrossEntropyLoss (weight, smoothing, ignored -100, sum)", losses.CrossEntropyLoss,
         {"weight": (0.5, 2.0, 1.0, 3.0, 0.25), "label_smoothing": 0.2, "reduction": "sum"},
         _ignoring(6, 5, -100), torch=T.cross_entropy),
    Case("CrossEntropyLoss (weight, smoothing, ignored -100)", losses.CrossEntropyLoss,
         {"weight": (0.5, 2.0, 1.0, 3.0, 0.25), "label_smoothing": 0.2}, _ignoring(6, 5, -100),
         torch=T.cross_entropy),
    Case("CrossEntropyLoss (probabilities, weight)", losses.CrossEntropyLoss,
         {"weight": (0.5, 2.0, 1.0, 3.0)},
         lambda rng: (rng.standard_normal((4, 4)), rng.dirichlet(np.ones(4), size=4)), torch=T.cross_entropy),
    Case("CrossEntropyLoss (N, C, T weight, ignore_index)", losses.CrossEntropyLoss,
         {"weight": (0.5, 2.0, 1.0, 3.0), "ignore_index": 0},
         lambda rng: (rng.standard_normal((3, 4, 5)) * 2, rng.integers(0, 4, size=(3, 5))),
         torch=T.cross_entropy),
    Case("BCEWithLogitsLoss (weight, pos_weight)", losses.BCEWithLogitsLoss,
         {"weight": (0.5, 2.0, 1.5), "pos_weight": (3.0, 0.5, 1.0)},
         lambda rng: (rng.standard_normal((4, 3)) * 3, rng.random((4, 3))), torch=T.bce_with_logits),
    Case("BCEWithLogitsLoss (pos_weight, sum)", losses.BCEWithLogitsLoss,
         {"pos_weight": (2.5,), "reduction": "sum"},
         lambda rng: (rng.standard_normal((5, 1)) * 3, rng.integers(0, 2, size=(5, 1)).astype(float)),
         torch=T.bce_with_logits),
    # --- regularizers: the documented formulas in torch ---
    Case("L1", regularizers.L1, {"lam": 0.2}, _weights, torch=T.l1),
    Case("L2", regularizers.L2, {"lam": 0.3}, _weights, torch=T.l2),
    Case("ElasticNet", regularizers.ElasticNet, {"l1": 0.2, "l2": 0.3}, _weights, torch=T.elastic_net),
    # --- convolution ---
    Case("Conv2d", L.Conv2d, {"in_channels": 3, "out_channels": 4, "kernel_size": 3}, _normal((2, 3, 6, 5)),
         torch=T.conv, realistic=lambda rng: L.Conv2d(16, 32, 3, padding=1, rng=rng), features=(16, 12, 12)),
    Case("Conv2d (stride 2, padding 1)", L.Conv2d,
         {"in_channels": 2, "out_channels": 3, "kernel_size": 3, "stride": 2, "padding": 1},
         _normal((2, 2, 7, 6)), torch=T.conv,
         realistic=lambda rng: L.Conv2d(16, 32, 3, stride=2, padding=1, rng=rng), features=(16, 12, 12)),
    Case("Conv2d (5x3, dilation 2, no bias)", L.Conv2d,
         {"in_channels": 2, "out_channels": 3, "kernel_size": (5, 3), "padding": (2, 1), "dilation": 2,
          "bias": False},
         _normal((2, 2, 9, 7)), torch=T.conv,
         realistic=lambda rng: L.Conv2d(16, 8, (5, 3), dilation=2, bias=False, rng=rng),
         features=(16, 12, 12)),
    Case("Conv2d (1x1)", L.Conv2d, {"in_channels": 4, "out_channels": 2, "kernel_size": 1},
         _normal((2, 4, 3, 3)), torch=T.conv, realistic=lambda rng: L.Conv2d(16, 32, 1, rng=rng),
         features=(16, 8, 8)),
    Case("Conv2d (glorot_uniform init)", L.Conv2d,
         {"in_channels": 3, "out_channels": 4, "kernel_size": 3, "init": "glorot_uniform"},
         _normal((2, 3, 6, 5)), torch=T.conv,
         realistic=lambda rng: L.Conv2d(16, 32, 3, padding=1, init="glorot_uniform", rng=rng),
         features=(16, 12, 12)),
    # one input channel: the fast path (cols^T built tap by tap, the bias folded into the products)
    Case("Conv2d (one input channel, stride 2, padding 1)", L.Conv2d,
         {"in_channels": 1, "out_channels": 3, "kernel_size": 3, "stride": 2, "padding": 1},
         _normal((2, 1, 7, 6)), torch=T.conv, realistic=lambda rng: L.Conv2d(1, 32, 5, rng=rng),
         features=(1, 28, 28)),
    Case("Conv1d (one input channel, no bias)", L.Conv1d,
         {"in_channels": 1, "out_channels": 3, "kernel_size": 5, "dilation": 2, "bias": False},
         _normal((2, 1, 13)), torch=T.conv, realistic=lambda rng: L.Conv1d(1, 16, 5, bias=False, rng=rng),
         features=(1, 40)),
    Case("Conv1d", L.Conv1d, {"in_channels": 3, "out_channels": 4, "kernel_size": 5, "padding": 2},
         _normal((2, 3, 11)), torch=T.conv, realistic=lambda rng: L.Conv1d(16, 32, 5, padding=2, rng=rng),
         features=(16, 40)),
    Case("Conv1d (stride 2, dilation 2)", L.Conv1d,
         {"in_channels": 2, "out_channels": 3, "kernel_size": 3, "stride": 2, "dilation": 2},
         _normal((2, 2, 12)), torch=T.conv,
         realistic=lambda rng: L.Conv1d(16, 8, 3, stride=2, dilation=2, rng=rng), features=(16, 40)),
    Case("Conv1d (no bias, lecun_normal init)", L.Conv1d,
         {"in_channels": 3, "out_channels": 4, "kernel_size": 3, "padding": 1, "bias": False,
          "init": "lecun_normal"},
         _normal((2, 3, 9)), torch=T.conv,
         realistic=lambda rng: L.Conv1d(16, 32, 3, padding=1, bias=False, init="lecun_normal", rng=rng),
         features=(16, 40)),
    # groups: each block of input channels has its own filters (depthwise: one channel per block)
    Case("Conv2d (groups 2)", L.Conv2d, {"in_channels": 4, "out_channels": 6, "kernel_size": 3, "groups": 2},
         _normal((2, 4, 5, 6)), torch=T.conv,
         realistic=lambda rng: L.Conv2d(16, 32, 3, padding=1, groups=4, rng=rng), features=(16, 12, 12)),
    Case("Conv2d (depthwise, padding same)", L.Conv2d,
         {"in_channels": 3, "out_channels": 6, "kernel_size": 3, "groups": 3, "padding": "same"},
         _normal((2, 3, 5, 4)), torch=T.conv,
         realistic=lambda rng: L.Conv2d(16, 16, 3, padding="same", groups=16, rng=rng),
         features=(16, 12, 12)),
    # "same" with an even kernel reach d (k - 1): one unit more padding after than before
    Case("Conv2d (padding same, 4x2 kernel, dilation (1, 3))", L.Conv2d,
         {"in_channels": 2, "out_channels": 3, "kernel_size": (4, 2), "padding": "same", "dilation": (1, 3)},
         _normal((2, 2, 6, 7)), torch=T.conv,
         realistic=lambda rng: L.Conv2d(16, 8, (4, 2), padding="same", dilation=(1, 3), rng=rng),
         features=(16, 12, 12)),
    # padding wider than 1 on an axis, so that the mirror reaches past the edge's neighbour
    Case("Conv2d (padding_mode reflect, padding (2, 1))", L.Conv2d,
         {"in_channels": 2, "out_channels": 3, "kernel_size": 3, "padding": (2, 1),
          "padding_mode": "reflect"},
         _normal((2, 2, 5, 6)), torch=T.conv,
         realistic=lambda rng: L.Conv2d(16, 8, 3, padding=(2, 1), padding_mode="reflect", rng=rng),
         features=(16, 12, 12)),
    Case("Conv2d (padding_mode replicate, stride 2)", L.Conv2d,
         {"in_channels": 2, "out_channels": 3, "kernel_size": 3, "stride": 2, "padding": 2,
          "padding_mode": "replicate"},
         _normal((2, 2, 6, 5)), torch=T.conv,
         realistic=lambda rng: L.Conv2d(16, 8, 3, stride=2, padding=2, padding_mode="replicate", rng=rng),
         features=(16, 12, 12)),
    Case("Conv2d (padding_mode circular, padding same, groups 2)", L.Conv2d,
         {"in_channels": 2, "out_channels": 4, "kernel_size": (3, 4), "padding": "same", "groups": 2,
          "padding_mode": "circular"},
         _normal((2, 2, 4, 5)), torch=T.conv,
         realistic=lambda rng: L.Conv2d(16, 8, (3, 4), padding="same", groups=2, padding_mode="circular",
                                        rng=rng),
         features=(16, 12, 12)),
    Case("Conv1d (groups 2, padding valid)", L.Conv1d,
         {"in_channels": 4, "out_channels": 2, "kernel_size": 3, "groups": 2, "padding": "valid"},
         _normal((2, 4, 9)), torch=T.conv,
         realistic=lambda rng: L.Conv1d(16, 32, 3, groups=4, padding="valid", rng=rng), features=(16, 40)),
    Case("Conv1d (padding same, kernel 4, reflect)", L.Conv1d,
         {"in_channels": 2, "out_channels": 3, "kernel_size": 4, "padding": "same",
          "padding_mode": "reflect"},
         _normal((2, 2, 7)), torch=T.conv,
         realistic=lambda rng: L.Conv1d(16, 8, 4, padding="same", padding_mode="reflect", rng=rng),
         features=(16, 40)),
    Case("Conv1d (padding_mode circular, padding 2)", L.Conv1d,
         {"in_channels": 2, "out_channels": 3, "kernel_size": 3, "padding": 2, "padding_mode": "circular"},
         _normal((2, 2, 6)), torch=T.conv,
         realistic=lambda rng: L.Conv1d(16, 8, 3, padding=2, padding_mode="circular", rng=rng),
         features=(16, 40)),
    # --- pooling: inputs with no near-ties (_distinct) ---
    Case("MaxPool2d", L.MaxPool2d, {"kernel_size": 2}, _distinct((2, 3, 6, 6)), torch=T.pooling,
         features=(8, 12, 12)),
    Case("MaxPool2d (3, stride 2, padding 1)", L.MaxPool2d, {"kernel_size": 3, "stride": 2, "padding": 1},
         _distinct((2, 3, 7, 7)), torch=T.pooling, features=(8, 12, 12)),
    Case("MaxPool2d (2x3, stride (2, 1))", L.MaxPool2d, {"kernel_size": (2, 3), "stride": (2, 1)},
         _distinct((2, 2, 5, 7)), torch=T.pooling, features=(8, 12, 12)),
    Case("AvgPool2d", L.AvgPool2d, {"kernel_size": 2}, _distinct((2, 3, 6, 6)), torch=T.pooling,
         features=(8, 12, 12)),
    Case("AvgPool2d (3, stride 2, padding 1)", L.AvgPool2d, {"kernel_size": 3, "stride": 2, "padding": 1},
         _distinct((2, 3, 7, 7)), torch=T.pooling, features=(8, 12, 12)),
    Case("MaxPool1d", L.MaxPool1d, {"kernel_size": 2}, _distinct((2, 3, 8)), torch=T.pooling,
         features=(8, 32)),
    Case("MaxPool1d (3, stride 2, padding 1)", L.MaxPool1d, {"kernel_size": 3, "stride": 2, "padding": 1},
         _distinct((2, 3, 9)), torch=T.pooling, features=(8, 32)),
    Case("AvgPool1d (3, stride 1)", L.AvgPool1d, {"kernel_size": 3, "stride": 1}, _distinct((2, 3, 8)),
         torch=T.pooling, features=(8, 32)),
    Case("AvgPool1d (3, stride 2, padding 1)", L.AvgPool1d, {"kernel_size": 3, "stride": 2, "padding": 1},
         _distinct((2, 3, 9)), torch=T.pooling, features=(8, 32)),
    # PyTorch's further options: sizes where ceil mode adds a last, partial window
    Case("MaxPool2d (3, stride 2, ceil_mode)", L.MaxPool2d,
         {"kernel_size": 3, "stride": 2, "ceil_mode": True}, _distinct((2, 2, 6, 8)), torch=T.pooling,
         features=(8, 12, 12)),
    Case("MaxPool2d (2, dilation 2, padding 1)", L.MaxPool2d,
         {"kernel_size": 2, "stride": 1, "padding": 1, "dilation": 2}, _distinct((2, 2, 5, 6)),
         torch=T.pooling, features=(8, 12, 12)),
    Case("MaxPool1d (3, stride 2, dilation 2, ceil_mode)", L.MaxPool1d,
         {"kernel_size": 3, "stride": 2, "dilation": 2, "ceil_mode": True}, _distinct((2, 3, 10)),
         torch=T.pooling, features=(8, 32)),
    Case("AvgPool2d (3, stride 2, padding 1, ceil_mode)", L.AvgPool2d,
         {"kernel_size": 3, "stride": 2, "padding": 1, "ceil_mode": True}, _distinct((2, 2, 6, 7)),
         torch=T.pooling, features=(8, 12, 12)),
    Case("AvgPool2d (3, stride 2, padding 1, count_include_pad=False, ceil_mode)", L.AvgPool2d,
         {"kernel_size": 3, "stride": 2, "padding": 1, "count_include_pad": False, "ceil_mode": True},
         _distinct((2, 2, 6, 7)), torch=T.pooling, features=(8, 12, 12)),
    Case("AvgPool1d (3, stride 2, padding 1, count_include_pad=False)", L.AvgPool1d,
         {"kernel_size": 3, "stride": 2, "padding": 1, "count_include_pad": False}, _distinct((2, 3, 9)),
         torch=T.pooling, features=(8, 32)),
    Case("AvgPool1d (2, stride 3, ceil_mode)", L.AvgPool1d,
         {"kernel_size": 2, "stride": 3, "ceil_mode": True}, _distinct((2, 3, 8)), torch=T.pooling,
         features=(8, 32)),
    # global pooling is adaptive pooling to 1x1, then flatten (torch.amax would split ties)
    Case("GlobalAvgPool2d", L.GlobalAvgPool2d, {}, _distinct((2, 3, 4, 5)),
         torch=T.stateless(lambda nn, layer: nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())),
         features=(8, 12, 12)),
    Case("GlobalMaxPool2d", L.GlobalMaxPool2d, {}, _distinct((2, 3, 4, 5)),
         torch=T.stateless(lambda nn, layer: nn.Sequential(nn.AdaptiveMaxPool2d(1), nn.Flatten())),
         features=(8, 12, 12)),
    # --- normalization: training mode (batch statistics), gamma and beta at random ---
    Case("BatchNorm1d", L.BatchNorm1d, {"num_features": 4}, _normal((6, 4), 2.0), torch=T.batch_norm,
         wrap=_random_affine, realistic=lambda rng: L.BatchNorm1d(256), mode="statistics"),
    Case("BatchNorm1d (3-D input)", L.BatchNorm1d, {"num_features": 3}, _normal((2, 3, 5), 2.0),
         torch=T.batch_norm, wrap=_random_affine, realistic=lambda rng: L.BatchNorm1d(32), features=(32, 64),
         mode="statistics"),
    Case("BatchNorm2d", L.BatchNorm2d, {"num_features": 3}, _normal((2, 3, 3, 4), 2.0), torch=T.batch_norm,
         wrap=_random_affine, realistic=lambda rng: L.BatchNorm2d(16), features=(16, 12, 12),
         mode="statistics"),
    Case("BatchNorm1d (affine=False)", L.BatchNorm1d, {"num_features": 4, "affine": False},
         _normal((5, 4), 2.0), torch=T.batch_norm, wrap=_random_affine,
         realistic=lambda rng: L.BatchNorm1d(256, affine=False), mode="statistics"),
    Case("BatchNorm1d (eps 0.5, momentum None)", L.BatchNorm1d,
         {"num_features": 4, "eps": 0.5, "momentum": None}, _normal((6, 4), 2.0), torch=T.batch_norm,
         wrap=_random_affine, realistic=lambda rng: L.BatchNorm1d(256, eps=0.5, momentum=None),
         mode="statistics"),
    Case("BatchNorm2d (momentum 0.3, eps 0.1, affine=False)", L.BatchNorm2d,
         {"num_features": 1, "momentum": 0.3, "eps": 0.1, "affine": False}, _normal((3, 1, 3, 4), 2.0),
         torch=T.batch_norm, wrap=_random_affine,
         realistic=lambda rng: L.BatchNorm2d(16, momentum=0.3, eps=0.1, affine=False), features=(16, 12, 12),
         mode="statistics"),
    # no running statistics: the batch's own in eval too, so both modes compute the same
    Case("BatchNorm1d (track_running_stats=False)", L.BatchNorm1d,
         {"num_features": 3, "track_running_stats": False}, _normal((4, 3, 2), 2.0), torch=T.batch_norm,
         wrap=_random_affine, realistic=lambda rng: L.BatchNorm1d(256, track_running_stats=False)),
    Case("BatchNorm2d (track_running_stats=False, affine=False)", L.BatchNorm2d,
         {"num_features": 1, "track_running_stats": False, "affine": False}, _normal((2, 1, 3, 3), 2.0),
         torch=T.batch_norm,
         realistic=lambda rng: L.BatchNorm2d(16, affine=False, track_running_stats=False),
         features=(16, 12, 12)),
    # --- recurrent: (N, T, features) = (2, 5, 3), hidden size 4: backprop through five steps;
    # realistic (T, features) = (20, 32) ---
    Case("RNN (tanh)", L.RNN, {"input_size": 3, "hidden_size": 4}, _normal((2, 5, 3)), torch=T.recurrent,
         realistic=lambda rng: L.RNN(32, 64, rng=rng), features=(20, 32)),
    Case("RNN (relu)", L.RNN, {"input_size": 3, "hidden_size": 4, "nonlinearity": "relu"}, _normal((2, 5, 3)),
         torch=T.recurrent, realistic=lambda rng: L.RNN(32, 64, nonlinearity="relu", rng=rng),
         features=(20, 32)),
    Case("RNN (2 layers, bidirectional, no bias)", L.RNN,
         {"input_size": 3, "hidden_size": 4, "num_layers": 2, "bidirectional": True, "bias": False},
         _normal((2, 5, 3)), torch=T.recurrent,
         realistic=lambda rng: L.RNN(32, 32, num_layers=2, bidirectional=True, bias=False, rng=rng),
         features=(20, 32)),
    Case("GRU", L.GRU, {"input_size": 3, "hidden_size": 4}, _normal((2, 5, 3)), torch=T.recurrent,
         realistic=lambda rng: L.GRU(32, 64, rng=rng), features=(20, 32)),
    Case("GRU (2 layers, bidirectional)", L.GRU,
         {"input_size": 3, "hidden_size": 4, "num_layers": 2, "bidirectional": True}, _normal((2, 5, 3)),
         torch=T.recurrent, realistic=lambda rng: L.GRU(32, 32, num_layers=2, bidirectional=True, rng=rng),
         features=(20, 32)),
    Case("GRU (h0 given, bidirectional)", L.GRU, {"input_size": 3, "hidden_size": 4, "bidirectional": True},
         _normal((2, 5, 3)), torch=T.recurrent_from_state, wrap=_from_initial_state(2),
         realistic=lambda rng: FromInitialState(
             L.GRU(32, 32, bidirectional=True, rng=rng), REALISTIC_BATCH, rng),
         features=(20, 32)),
    Case("GRU (no bias)", L.GRU, {"input_size": 3, "hidden_size": 4, "bias": False}, _normal((2, 5, 3)),
         torch=T.recurrent, realistic=lambda rng: L.GRU(32, 64, bias=False, rng=rng), features=(20, 32)),
    Case("LSTM", L.LSTM, {"input_size": 3, "hidden_size": 4}, _normal((2, 5, 3)), torch=T.recurrent,
         realistic=lambda rng: L.LSTM(32, 64, rng=rng), features=(20, 32)),
    Case("LSTM (2 layers, bidirectional)", L.LSTM,
         {"input_size": 2, "hidden_size": 3, "num_layers": 2, "bidirectional": True}, _normal((2, 4, 2)),
         torch=T.recurrent, realistic=lambda rng: L.LSTM(32, 32, num_layers=2, bidirectional=True, rng=rng),
         features=(20, 32)),
    Case("LSTM (h0, c0 given, 2 layers)", L.LSTM, {"input_size": 3, "hidden_size": 4, "num_layers": 2},
         _normal((2, 5, 3)), torch=T.recurrent_from_state, wrap=_from_initial_state(2),
         realistic=lambda rng: FromInitialState(L.LSTM(32, 32, num_layers=2, rng=rng), REALISTIC_BATCH, rng),
         features=(20, 32)),
    Case("LSTM (no bias)", L.LSTM, {"input_size": 3, "hidden_size": 4, "bias": False}, _normal((2, 5, 3)),
         torch=T.recurrent, realistic=lambda rng: L.LSTM(32, 64, bias=False, rng=rng), features=(20, 32)),
    # the final states as outputs too: dLoss/dh_n and dLoss/dc_n flow in (sequence-to-sequence)
    Case("RNN (h_n an output, 2 layers)", L.RNN, {"input_size": 3, "hidden_size": 4, "num_layers": 2},
         _normal((2, 5, 3)), torch=T.recurrent_final_state, wrap=lambda layer, rng: WithFinalState(layer),
         realistic=lambda rng: WithFinalState(L.RNN(32, 32, num_layers=2, rng=rng)), features=(20, 32)),
    Case("GRU (h_n an output, bidirectional)", L.GRU,
         {"input_size": 3, "hidden_size": 4, "bidirectional": True},
         _normal((2, 5, 3)), torch=T.recurrent_final_state, wrap=lambda layer, rng: WithFinalState(layer),
         realistic=lambda rng: WithFinalState(L.GRU(32, 32, bidirectional=True, rng=rng)), features=(20, 32)),
    Case("LSTM (h_n, c_n outputs, 2 layers, bidirectional)", L.LSTM,
         {"input_size": 3, "hidden_size": 4, "num_layers": 2, "bidirectional": True},
         _normal((2, 5, 3)), torch=T.recurrent_final_state, wrap=lambda layer, rng: WithFinalState(layer),
         realistic=lambda rng: WithFinalState(L.LSTM(32, 32, num_layers=2, bidirectional=True, rng=rng)),
         features=(20, 32)),
    # dropout between stacked layers (training only): torch's layers one by one, glassnet's masks
    Case("RNN (3 layers, dropout 0.4)", L.RNN,
         {"input_size": 3, "hidden_size": 4, "num_layers": 3, "dropout": 0.4}, _normal((2, 5, 3)),
         torch=T.recurrent, realistic=lambda rng: L.RNN(32, 32, num_layers=3, dropout=0.4, rng=rng),
         features=(20, 32), mode="noise inside"),
    Case("GRU (2 layers, bidirectional, dropout 0.3)", L.GRU,
         {"input_size": 3, "hidden_size": 4, "num_layers": 2, "bidirectional": True, "dropout": 0.3},
         _normal((2, 5, 3)), torch=T.recurrent,
         realistic=lambda rng: L.GRU(32, 32, num_layers=2, bidirectional=True, dropout=0.3, rng=rng),
         features=(20, 32), mode="noise inside"),
    Case("LSTM (2 layers, dropout 0.5)", L.LSTM,
         {"input_size": 3, "hidden_size": 4, "num_layers": 2, "dropout": 0.5}, _normal((2, 5, 3)),
         torch=T.recurrent, realistic=lambda rng: L.LSTM(32, 32, num_layers=2, dropout=0.5, rng=rng),
         features=(20, 32), mode="noise inside"),
    Case("LastStep", L.LastStep, {}, _normal((2, 4, 3)),
         torch=T.stateless(lambda nn, layer: lambda x: x[:, -1]), features=(20, 32)),
    # --- merges: several inputs, forward(*xs), backward -> one gradient per input ---
    Case("Identity", L.Identity, {}, _normal((3, 5)), torch=T.merge),
    Case("Add", L.Add, {}, _inputs(_normal((3, 5)), _normal((3, 5))), torch=T.merge),
    Case("Add (three inputs, broadcast)", L.Add, {},
         _inputs(_normal((2, 3, 4)), _normal((4,)), _normal((2, 1, 4))), torch=T.merge, features=(3, 4)),
    Case("Multiply", L.Multiply, {}, _inputs(_normal((3, 5)), _normal((3, 5))), torch=T.merge),
    Case("Multiply (gate broadcast over H, W)", L.Multiply, {},
         _inputs(_normal((2, 3, 4, 4)), _normal((2, 3, 1, 1))), torch=T.merge, features=(3, 4, 4)),
    Case("Concat", L.Concat, {}, _inputs(_normal((3, 2)), _normal((3, 4)), _normal((3, 1))), torch=T.merge),
    Case("Concat (axis=-1, sequences)", L.Concat, {"axis": -1},
         _inputs(_normal((2, 3, 4)), _normal((2, 3, 2))), torch=T.merge, features=(3, 4)),
    # --- containers ---
    Case("Residual (Linear, ReLU, BatchNorm1d)", L.Residual, {"block": _residual_block()},
         _normal((6, 4), 2.0), torch=T.container, wrap=_random_affine_inside,
         realistic=lambda rng: L.Residual(
             Sequential(L.Linear(256, 256, rng=rng), L.ReLU(), L.BatchNorm1d(256))),
         mode="statistics"),
    Case("Residual (Linear shortcut)", L.Residual,
         {"block": Sequential(L.Linear(4, 3), L.Tanh()), "shortcut": L.Linear(4, 3, bias=False)},
         _normal((5, 4)), torch=T.container,
         realistic=lambda rng: L.Residual(Sequential(L.Linear(256, 128, rng=rng), L.Tanh()),
                                          L.Linear(256, 128, bias=False, rng=rng))),
    Case("Graph (two inputs, fan-out and fan-in)", L.Graph, _fan_out_fan_in(),
         _inputs(_normal((3, 4)), _normal((3, 6))), torch=T.container,
         realistic=lambda rng: L.Graph(**_fan_out_fan_in()).reset_parameters(rng)),
    Case("Graph (skip over two blocks, concatenated)", L.Graph, _unet_like(), _normal((3, 4)),
         torch=T.container, realistic=lambda rng: L.Graph(**_unet_like()).reset_parameters(rng),
         features=(4,)),
    # --- layer normalization, embeddings, tokens ---
    Case("LayerNorm", L.LayerNorm, {"normalized_shape": 4}, _normal((2, 3, 4), 2.0), torch=T.layer_norm,
         wrap=_random_affine, realistic=lambda rng: L.LayerNorm(256)),
    Case("LayerNorm (2-D shape, eps 0.1)", L.LayerNorm, {"normalized_shape": (3, 4), "eps": 0.1},
         _normal((2, 3, 4), 2.0), torch=T.layer_norm, wrap=_random_affine,
         realistic=lambda rng: L.LayerNorm((16, 16), eps=0.1), features=(16, 16)),
    Case("LayerNorm (no affine)", L.LayerNorm, {"normalized_shape": 4, "elementwise_affine": False},
         _normal((2, 3, 4), 2.0), torch=T.layer_norm,
         realistic=lambda rng: L.LayerNorm(256, elementwise_affine=False)),
    Case("LayerNorm (no bias)", L.LayerNorm, {"normalized_shape": 4, "bias": False}, _normal((2, 3, 4), 2.0),
         torch=T.layer_norm, wrap=_random_affine, realistic=lambda rng: L.LayerNorm(256, bias=False)),
    # ids repeat (their rows' gradients add up) and include the padding row (no gradient)
    Case("Embedding", L.Embedding, {"num_embeddings": 7, "embedding_dim": 3}, _normal((2, 5, 3)),
         torch=T.embedding_plus_input, wrap=_with_token_ids([[1, 4, 4, 0, 6], [4, 2, 1, 1, 5]]),
         realistic=lambda rng: WithTokenIds(L.Embedding(100, 32, rng=rng),
                                            rng.integers(0, 100, (REALISTIC_BATCH, 8))),
         features=(8, 32)),
    Case("Embedding (padding_idx 2)", L.Embedding,
         {"num_embeddings": 6, "embedding_dim": 3, "padding_idx": 2}, _normal((2, 4, 3)),
         torch=T.embedding_plus_input, wrap=_with_token_ids([[2, 0, 2, 5], [3, 2, 0, 0]]),
         realistic=lambda rng: WithTokenIds(L.Embedding(100, 32, padding_idx=0, rng=rng),
                                            rng.integers(0, 100, (REALISTIC_BATCH, 8))),
         features=(8, 32)),
    Case("PositionalEmbedding", L.PositionalEmbedding, {"num_positions": 6, "embedding_dim": 3},
         _normal((2, 4, 3)),
         torch=T.positional_embedding, realistic=lambda rng: L.PositionalEmbedding(16, 32, rng=rng),
         features=(16, 32)),
    Case("ClassToken", L.ClassToken, {"embedding_dim": 3}, _normal((2, 4, 3)), torch=T.class_token,
         wrap=_random_affine, realistic=lambda rng: L.ClassToken(32), features=(16, 32)),
    Case("Permute", L.Permute, {"dims": (0, 2, 1)}, _normal((2, 3, 4)),
         torch=T.stateless(lambda nn, layer: lambda x: x.permute(layer.dims)), features=(16, 32)),
    Case("Token (index 2)", L.Token, {"index": 2}, _normal((2, 4, 3)),
         torch=T.stateless(lambda nn, layer: lambda x: x[:, layer.index]), features=(16, 32)),
    Case("Token (index -1)", L.Token, {"index": -1}, _normal((2, 4, 3)),
         torch=T.stateless(lambda nn, layer: lambda x: x[:, layer.index]), features=(16, 32)),
    Case("TokenMean", L.TokenMean, {}, _normal((2, 4, 3)),
         torch=T.stateless(lambda nn, layer: lambda x: x.mean(dim=1)), features=(16, 32)),
    # --- attention: N = 2 sequences of T = 3 tokens of E = 4 features; realistic (16, 64) ---
    Case("MultiheadAttention (self)", L.MultiheadAttention, {"embed_dim": 4, "num_heads": 2},
         _normal((2, 3, 4)),
         torch=T.attention, wrap=_random_params, realistic=lambda rng: L.MultiheadAttention(64, 4, rng=rng),
         features=(16, 64)),
    Case("MultiheadAttention (causal boolean mask, key padding)", L.MultiheadAttention,
         {"embed_dim": 4, "num_heads": 2}, _normal((2, 3, 4)), torch=T.with_masks,
         wrap=_with_masks(_CAUSAL3, _PAD3), realistic=lambda rng: L.MultiheadAttention(64, 4, rng=rng),
         features=(16, 64)),
    Case("MultiheadAttention (additive masks per head)", L.MultiheadAttention,
         {"embed_dim": 4, "num_heads": 2}, _normal((2, 3, 4)), torch=T.with_masks,
         wrap=_with_masks(_ADDITIVE3, _PAD3_ADDITIVE),
         realistic=lambda rng: L.MultiheadAttention(64, 4, rng=rng), features=(16, 64)),
    Case("MultiheadAttention (causal, additive key padding)", L.MultiheadAttention,
         {"embed_dim": 4, "num_heads": 2, "causal": True}, _normal((2, 3, 4)), torch=T.with_masks,
         wrap=_with_masks(None, _PAD3_ADDITIVE),
         realistic=lambda rng: L.MultiheadAttention(64, 4, causal=True, rng=rng), features=(16, 64)),
    Case("MultiheadAttention (one head, no bias)", L.MultiheadAttention,
         {"embed_dim": 4, "num_heads": 1, "bias": False}, _normal((2, 3, 4)), torch=T.attention,
         wrap=_random_params, realistic=lambda rng: L.MultiheadAttention(64, 1, bias=False, rng=rng),
         features=(16, 64)),
    Case("MultiheadAttention (dropout 0.3)", L.MultiheadAttention,
         {"embed_dim": 4, "num_heads": 2, "dropout": 0.3}, _normal((2, 3, 4)), torch=T.attention,
         wrap=_random_params, realistic=lambda rng: L.MultiheadAttention(64, 4, dropout=0.3, rng=rng),
         features=(16, 64), mode="noise inside"),
    # cross-attention, forward(q, k, v): T = 3 queries attend to S = 5 keys and values (distinct
    # inputs, each with its own gradient); realistic: the row's size (the realistic graph feeds
    # it inputs of the row's per-example shapes) on a batch of 64
    Case("MultiheadAttention (cross: q, k, v distinct, T 3, S 5)", L.MultiheadAttention,
         {"embed_dim": 4, "num_heads": 2}, _QKV,
         torch=T.attention, wrap=_random_params,
         realistic=lambda rng: _random_params(L.MultiheadAttention(4, 2, rng=rng), rng), features=(3, 4)),
    # keys and values of other widths than the queries: q_proj_weight, k_proj_weight, v_proj_weight
    Case("MultiheadAttention (cross, kdim 3, vdim 6)", L.MultiheadAttention,
         {"embed_dim": 4, "num_heads": 2, "kdim": 3, "vdim": 6}, _QKV_WIDTHS,
         torch=T.attention, wrap=_random_params,
         realistic=lambda rng: _random_params(L.MultiheadAttention(4, 2, kdim=3, vdim=6, rng=rng), rng),
         features=(3, 4)),
    Case("MultiheadAttention (cross, kdim 3, vdim 6, masks, no bias)", L.MultiheadAttention,
         {"embed_dim": 4, "num_heads": 2, "kdim": 3, "vdim": 6, "bias": False}, _QKV_WIDTHS,
         torch=T.with_masks, wrap=_with_masks(_CROSS_BOOL, _CROSS_PAD),
         realistic=_cross_attention(_CROSS_BOOL, _CROSS_PAD, kdim=3, vdim=6, bias=False), features=(3, 4)),
    Case("MultiheadAttention (cross, boolean (T, S) mask, key padding)", L.MultiheadAttention,
         {"embed_dim": 4, "num_heads": 2}, _QKV,
         torch=T.with_masks, wrap=_with_masks(_CROSS_BOOL, _CROSS_PAD),
         realistic=_cross_attention(_CROSS_BOOL, _CROSS_PAD), features=(3, 4)),
    Case("MultiheadAttention (cross, additive masks per head, no bias)", L.MultiheadAttention,
         {"embed_dim": 4, "num_heads": 2, "bias": False},
         _QKV, torch=T.with_masks,
         wrap=_with_masks(_CROSS_ADDITIVE, np.where(_CROSS_PAD, -np.inf, 0.0)),
         realistic=_cross_attention(_CROSS_ADDITIVE, np.where(_CROSS_PAD, -np.inf, 0.0), bias=False),
         features=(3, 4)),
    # dropout 0 (not the default 0.1): torch draws its own masks; dropout in training is checked
    # by finite differences with frozen masks in tests/test_attention.py
    Case("TransformerEncoderLayer (post-norm, relu)", L.TransformerEncoderLayer,
         {"d_model": 4, "nhead": 2, "dim_feedforward": 6, "dropout": 0.0}, _normal((2, 3, 4)),
         torch=T.encoder_layer, wrap=_random_params,
         realistic=_realistic_encoder(norm_first=False), features=(16, 64)),
    Case("TransformerEncoderLayer (pre-norm, gelu, eps 0.1, no bias)", L.TransformerEncoderLayer,
         {"d_model": 4, "nhead": 2, "dim_feedforward": 6, "dropout": 0.0, "activation": "gelu",
          "layer_norm_eps": 0.1, "norm_first": True, "bias": False}, _normal((2, 3, 4)),
         torch=T.encoder_layer, wrap=_random_params,
         realistic=lambda rng: L.TransformerEncoderLayer(64, 4, 128, dropout=0.0, activation="gelu",
                                                         norm_first=True, bias=False, rng=rng),
         features=(16, 64)),
    Case("TransformerEncoderLayer (pre-norm, causal mask, key padding)", L.TransformerEncoderLayer,
         {"d_model": 4, "nhead": 2, "dim_feedforward": 6, "dropout": 0.0, "norm_first": True},
         _normal((2, 3, 4)), torch=T.with_masks, wrap=_with_masks(_CAUSAL3, _PAD3),
         realistic=_realistic_encoder(norm_first=True),
         features=(16, 64)),
    Case("TransformerEncoderLayer (causal, with an additive mask)", L.TransformerEncoderLayer,
         {"d_model": 4, "nhead": 2, "dim_feedforward": 6, "dropout": 0.0, "causal": True}, _normal((2, 3, 4)),
         torch=T.with_masks, wrap=_with_masks(_ADDITIVE3[0]),
         realistic=_realistic_encoder(norm_first=False), features=(16, 64)),
    Case("TransformerEncoderLayer (post-norm, additive masks)", L.TransformerEncoderLayer,
         {"d_model": 4, "nhead": 2, "dim_feedforward": 6, "dropout": 0.0}, _normal((2, 3, 4)),
         torch=T.with_masks, wrap=_with_masks(_ADDITIVE3, _PAD3_ADDITIVE),
         realistic=_realistic_encoder(norm_first=False), features=(16, 64)),
]
# fmt: on
