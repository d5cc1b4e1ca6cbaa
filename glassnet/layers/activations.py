"""Element-wise activations and the softmax layer.

Each backward is the Hadamard product of BP1/BP2: ``dx = dy * sigma'(z)``, with sigma'
written in terms of whatever forward already computed (``y`` for sigmoid and tanh, so
nothing is recomputed). Subgradients at kinks follow PyTorch: ReLU'(0) = 0, LeakyReLU'(0) = negative_slope,
ELU'(0) = alpha (the derivative from the left).
"""

from __future__ import annotations

import math

import numpy as np
from scipy import special

from .. import functional as F
from ..module import Module, ShapeError, check_arg, grad_enabled, ran_under_no_grad
from .linear import Linear


def _finite(owner: str, name: str, value) -> float:
    return float(check_arg(owner, name, value, math.isfinite, "a finite number"))


class Sigmoid(Module):
    """y = 1 / (1 + e^-z).  Shapes: any -> same.  Backward: dz = dy * y * (1 - y)."""

    def forward(self, x):
        self.y = F.sigmoid(x)
        return self.y

    def backward(self, dy):
        y = self.y
        return dy * y * (1 - y)


class Tanh(Module):
    """y = tanh(z).  Shapes: any -> same.  Backward: dz = dy * (1 - y^2)."""

    def forward(self, x):
        self.y = np.tanh(x)
        return self.y

    def backward(self, dy):
        return dy * (1 - self.y * self.y)


class ReLU(Module):
    """y = max(z, 0).  Shapes: any -> same.  Backward: dz = dy * [z > 0] (ReLU'(0) = 0).

    Both passes are the formula, written for NumPy's fast loops (``relu`` and ``relu_grad``
    below): ``tests/test_layers.py::test_relu_fast_paths_are_the_formula`` checks them equal
    to ``np.maximum(z, 0)`` and ``dy * (z > 0)`` bit for bit."""

    def forward(self, x):
        self.y = relu(x)
        return self.y

    def joined_step(self, before: Module):
        # the exact classes: a subclass may change either function, or keep its output
        return LinearThenReLU(before, self) if type(before) is Linear and type(self) is ReLU else None

    def backward(self, dy):
        if self.y is None:
            raise RuntimeError(
                "ReLU.backward: the last forward ran inside a Sequential that ran this ReLU and the "
                "max-pool after it as one step (glassnet.layers.pooling.PoolThenReLU), which keeps no "
                "output of the ReLU alone; run backward through that Sequential, or run the layers' "
                "forwards one by one"
            )
        return relu_grad(dy, self.y)


RELU_ROW = 16384  # numbers per row of the zero row that ReLU's maximum runs against
_ZERO_ROWS: dict[np.dtype, np.ndarray] = {}


def relu(x, out: np.ndarray | None = None) -> np.ndarray:
    """max(x, 0), into ``out`` where given (``out=x``: in place, as ``LinearThenReLU`` runs it).
    NumPy runs ``np.maximum(x, 0)`` (an array against a broadcast scalar) through a scalar
    loop, and ``maximum`` of two arrays through SIMD, several times faster (docs/speed.md). So
    x's memory, in its own order (a convolution's NCHW view of channels-last memory too), is
    taken as rows of ``RELU_ROW`` numbers against one read-only row of zeros; the tail, small
    arrays, arrays that are not one block of memory and an ``out`` laid out otherwise than x
    take ``np.maximum(x, 0)``."""
    if not isinstance(x, np.ndarray) or x.size < RELU_ROW or x.dtype.kind != "f":
        return np.maximum(x, 0, out=out)
    y = np.empty_like(x) if out is None else out  # x's memory order
    src, dst = x.ravel(order="K"), y.ravel(order="K")
    same_order = out is None or out.strides == x.strides
    if not (same_order and np.may_share_memory(src, x) and np.may_share_memory(dst, y)):  # not one block
        return np.maximum(x, 0, out=out)
    zero = _ZERO_ROWS.get(x.dtype)
    if zero is None:
        zero = _ZERO_ROWS[x.dtype] = np.zeros(RELU_ROW, x.dtype)
        zero.flags.writeable = False
    whole = src.size - src.size % RELU_ROW
    np.maximum(src[:whole].reshape(-1, RELU_ROW), zero, out=dst[:whole].reshape(-1, RELU_ROW))
    np.maximum(src[whole:], 0, out=dst[whole:])
    return y


def relu_grad(dy, y) -> np.ndarray:
    """dy * (y > 0), with y = relu(z) (y > 0 exactly where z > 0). ``dy * (y > 0)`` multiplies
    by a boolean array through a loop that casts as it goes; writing the comparison into a float
    array first and multiplying two float arrays is faster."""
    if not isinstance(dy, np.ndarray) or dy.shape != y.shape or dy.dtype.kind != "f":
        return dy * (y > 0)
    dx = np.empty_like(dy)
    np.greater(y, 0, out=dx)
    dx *= dy
    return dx


class LinearThenReLU:
    """A ``Linear`` directly followed by a ``ReLU``, run by ``Sequential`` as one step: the ReLU
    runs in place on the product the Linear has just made,

        y = max(x W + b, 0),   the max written over x W + b,

    instead of into a second array of the same size (a fresh array and another pass over
    memory that the product's two BLAS threads have just written). Nothing else keeps
    ``x W + b``: the Linear keeps its input x, the ReLU its output y. So both layers keep what
    they keep when run one by one, y is theirs bit for bit, and backward is theirs too:

        delta = dy * [y > 0]  (BP2's Hadamard product, the ReLU's),   then the Linear's BP3, BP4, dx.

    Not a module: the two layers stay in the model as they are (``summary``, ``save``, the
    parameter names), and a walk (diagnostics, ``trace``, NaN provenance) runs them one by one.
    ``glassnet.module.JOIN_STEPS = False`` runs them one by one everywhere.
    """

    reports = 0  # Sequential names the Linear (index 0 of the pair) in its errors and skips its dx

    def __init__(self, linear: Linear, relu_layer: ReLU) -> None:
        self.linear, self.relu = linear, relu_layer

    def forward(self, x: np.ndarray) -> np.ndarray:
        z = self.linear.forward(x)  # a new array, which no layer keeps
        self.relu.y = relu(z, out=z)
        return z

    def backward(self, dy: np.ndarray) -> np.ndarray:
        return self.linear.backward(self.relu.backward(dy))

    def backward_params(self, dy: np.ndarray) -> None:
        self.linear.backward_params(self.relu.backward(dy))


class LeakyReLU(Module):
    """y = z if z > 0 else negative_slope * z.

    Shapes: any -> same.  Backward: dz = dy if z > 0 else negative_slope * dy.
    """

    def __init__(self, negative_slope: float = 0.01) -> None:
        super().__init__()
        self.negative_slope = _finite("LeakyReLU", "negative_slope", negative_slope)

    def forward(self, x):
        self.pos = x > 0
        return np.where(self.pos, x, self.negative_slope * x)

    def backward(self, dy):
        return np.where(self.pos, dy, self.negative_slope * dy)

    def config(self):
        return {"negative_slope": self.negative_slope}


class ELU(Module):
    """y = z if z > 0 else alpha * (e^z - 1).

    Shapes: any -> same.  Backward: dz = dy if z > 0 else dy * (y + alpha)  (y + alpha = alpha e^z).
    """

    def __init__(self, alpha: float = 1.0) -> None:
        super().__init__()
        self.alpha = _finite("ELU", "alpha", alpha)

    def forward(self, x):
        self.pos = x > 0
        # expm1 of min(z, 0): no overflow for large positive z, accurate near 0
        self.y = np.where(self.pos, x, self.alpha * np.expm1(np.minimum(x, 0)))
        return self.y

    def backward(self, dy):
        return np.where(self.pos, dy, dy * (self.y + self.alpha))

    def config(self):
        return {"alpha": self.alpha}


class Softplus(Module):
    """y = log(1 + e^(beta z)) / beta, and y = z where beta z > threshold (as PyTorch).

    Shapes: any -> same.  Backward: dz = dy * sigmoid(beta z) (1 above the threshold).
    """

    def __init__(self, beta: float = 1.0, threshold: float = 20.0) -> None:
        super().__init__()
        # beta divides the output: 0 or a negative slope has no meaning here
        check_arg("Softplus", "beta", beta, lambda v: 0 < v < math.inf, "a finite number > 0")
        self.beta, self.threshold = float(beta), _finite("Softplus", "threshold", threshold)

    def forward(self, x):
        self.x = x
        bx = self.beta * x
        self.linear = bx > self.threshold
        # logaddexp(0, bx) = log(1 + e^bx) without overflow
        return np.where(self.linear, x, np.logaddexp(0, bx) / self.beta)

    def backward(self, dy):
        return np.where(self.linear, dy, dy * F.sigmoid(self.beta * self.x))

    def config(self):
        return {"beta": self.beta, "threshold": self.threshold}


class GELU(Module):
    """y = z Phi(z), Phi the standard normal CDF (``approximate="none"``, PyTorch's default),
    or the tanh approximation 0.5 z (1 + tanh(sqrt(2/pi) (z + 0.044715 z^3))).

    Shapes: any -> same.
    Backward: dz = dy * (Phi(z) + z phi(z)), phi the normal density; for "tanh",
    dz = dy * (0.5 (1 + t) + 0.5 z (1 - t^2) sqrt(2/pi) (1 + 3 * 0.044715 z^2)).

    Phi(z) = (1 + erf(z / sqrt 2)) / 2 (scipy's erf) for float64; float32 takes
    ``functional.gelu_float32``, the same function in float32 ufuncs (tests/test_gelu.py holds
    it to the float64 formula), which also returns phi for backward.
    """

    def __init__(self, approximate: str = "none") -> None:
        super().__init__()
        if approximate not in ("none", "tanh"):
            raise ValueError(f"GELU: approximate must be 'none' or 'tanh', got {approximate!r}")
        self.approximate = approximate

    def forward(self, x):
        keep = grad_enabled()
        self.x = x if keep else None
        if self.approximate == "tanh":
            k = math.sqrt(2 / math.pi)
            self.t = np.tanh(k * (x + 0.044715 * x**3))
            return 0.5 * x * (1 + self.t)
        if x.dtype == np.float32:
            y, self.cdf, self.pdf = F.gelu_float32(x, keep)
            return y
        cdf = 0.5 * (1 + special.erf(x * (1 / math.sqrt(2))))
        self.cdf, self.pdf = (cdf, None) if keep else (None, None)
        return x * cdf

    def backward(self, dy):
        x = self.x
        if x is None:
            raise ran_under_no_grad("GELU")
        if self.approximate == "tanh":
            k, t = math.sqrt(2 / math.pi), self.t
            return dy * (0.5 * (1 + t) + 0.5 * x * (1 - t * t) * k * (1 + 3 * 0.044715 * x * x))
        # phi(z) from forward when it computed it (float32), else e^(-z^2/2) / sqrt(2 pi)
        pdf = self.pdf if self.pdf is not None else np.exp(-0.5 * x * x) * (1 / math.sqrt(2 * math.pi))
        return dy * (self.cdf + x * pdf)

    def config(self):
        return {"approximate": self.approximate}


class Softmax(Module):
    """y_j = e^(z_j) / sum_k e^(z_k) along ``axis``; usable anywhere in a network.

    Before a loss prefer raw logits with ``CrossEntropyLoss``, which fuses the two stably.

    Shapes: any with the ``axis`` (negative counts from the end, as NumPy) -> same.
    Backward: the Jacobian is dy_j/dz_k = y_j (1[j=k] - y_k), so
        dz = y * (dy - sum_k(dy_k y_k))   (one broadcast, no Jacobian matrix built).
    """

    def __init__(self, axis: int = -1) -> None:
        super().__init__()
        self.axis = int(check_arg("Softmax", "axis", axis, lambda v: True, "an integer", int))

    def forward(self, x):
        if not -x.ndim <= self.axis < x.ndim:
            raise ShapeError(
                f"Softmax(axis={self.axis}) expects an input with that axis (at least "
                f"{self.axis + 1 if self.axis >= 0 else -self.axis} dims), got shape {x.shape}"
            )
        self.y = F.softmax(x, self.axis)
        return self.y

    def backward(self, dy):
        y = self.y
        return y * (dy - (dy * y).sum(axis=self.axis, keepdims=True))

    def config(self):
        return {"axis": self.axis}
