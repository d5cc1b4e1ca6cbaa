"""Optimizers, in order of increasing complexity, each matching ``torch.optim`` step for step.

An optimizer sees a flat list of ``Param``s, never layers. It gathers them into one
contiguous vector: every ``p.data`` becomes a view into ``self.data`` and every ``p.grad`` a
view into ``self.grad`` (PyTorch's "foreach"/fused idea), so ``step()`` is the docstring's
update rule written once, on whole vectors, however many layers the model has; its state
(momentum, moments) are vectors of the same length. Layers see no difference: they read and
write ``p.data``/``p.grad`` as before. A second optimizer over the same parameters, in the
same order, shares the vectors; anything that replaces a ``p.data`` array afterwards
(``model.to(dtype)``) makes ``step()`` raise, rather than update a stale copy.

``weight_decay`` follows PyTorch: it applies to every parameter given (the L1/L2
regularizers in ``gn.regularizers`` skip biases instead).
"""

from __future__ import annotations

import math

import numpy as np

from .module import Param


def _address(a: np.ndarray) -> int:
    return a.__array_interface__["data"][0]


def flatten_params(params: list[Param]) -> tuple[np.ndarray, np.ndarray]:
    """One 1-D ``(data, grad)`` pair holding every parameter, in order; each ``p.data`` and
    ``p.grad`` is re-pointed at its slice (values kept). Already-flat parameters are reused."""
    dtype = params[0].data.dtype
    for p in params:
        if p.data.dtype != dtype:
            raise TypeError(
                f"optimizer: all parameters must share one dtype; {p.name} is {p.data.dtype}, "
                f"the first is {dtype} (convert the model with model.to(dtype) first)"
            )
    if len({id(p) for p in params}) != len(params):
        raise ValueError("optimizer: the same Param appears twice in the parameter list")
    total = sum(p.data.size for p in params)
    data, grad = params[0].data.base, params[0].grad.base
    if data is not None and grad is not None and data.shape == (total,) and grad.shape == (total,):
        offset, item = 0, dtype.itemsize
        for p in params:
            if (p.data.base is not data or p.grad.base is not grad
                    or _address(p.data) != _address(data) + offset * item
                    or _address(p.grad) != _address(grad) + offset * item):  # fmt: skip
                break
            offset += p.data.size
        else:
            return data, grad
    data, grad = np.empty(total, dtype), np.empty(total, dtype)
    offset = 0
    for p in params:
        n = p.data.size
        data[offset : offset + n] = p.data.reshape(-1)
        grad[offset : offset + n] = p.grad.reshape(-1)
        p.data = data[offset : offset + n].reshape(p.data.shape)
        p.grad = grad[offset : offset + n].reshape(p.data.shape)
        offset += n
    return data, grad


class Optimizer:
    def __init__(self, params, lr: float) -> None:
        self.params: list[Param] = list(params)
        if not self.params:
            raise ValueError(f"{type(self).__name__}: got an empty parameter list")
        for p in self.params:
            if not isinstance(p, Param):
                raise TypeError(
                    f"{type(self).__name__}: expected glassnet Params (model.parameters()), "
                    f"got {type(p).__name__}"
                )
        if lr < 0:
            raise ValueError(f"{type(self).__name__}: lr must be >= 0, got {lr}")
        self.lr = float(lr)
        self.t = 0  # steps taken
        self.data, self.grad = flatten_params(self.params)

    def check_views(self) -> None:
        """Raise if some ``p.data``/``p.grad`` no longer lives in this optimizer's vectors."""
        for p in self.params:
            if p.data.base is not self.data or p.grad.base is not self.grad:
                raise RuntimeError(
                    f"{type(self).__name__}: parameter {p.name} {p.data.shape} was replaced after "
                    "this optimizer was created (model.to(dtype), or another optimizer over a "
                    "different parameter list); create the optimizer again"
                )

    def zero_grad(self) -> None:
        self.grad.fill(0)

    def step(self) -> None:
        self.check_views()
        self.t += 1
        self.update(self.data, self.grad)

    def update(self, w: np.ndarray, g: np.ndarray) -> None:
        raise NotImplementedError

    def state_dict(self) -> dict[str, np.ndarray]:
        """Step count, learning rate and every state vector, by name (for checkpoints)."""
        state = {"t": np.array(self.t), "lr": np.array(self.lr)}
        state.update({k: v for k, v in self._state().items() if v is not None})
        return state

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        self.t, self.lr = int(state["t"]), float(state["lr"])
        for key, vector in self._state().items():
            if vector is not None:
                vector[...] = state[key]

    def _state(self) -> dict[str, np.ndarray | None]:
        return {}

    def _zeros(self) -> np.ndarray:
        return np.zeros_like(self.data)


class SGD(Optimizer):
    """Stochastic gradient descent with optional momentum (PyTorch's ``SGD``).

        g = grad + weight_decay * w
        b = g on the first step, else momentum * b + (1 - dampening) * g
        g = g + momentum * b if nesterov else b          (when momentum > 0)
        w = w - lr * g
    With momentum 0 this is the book's rule w -> w - eta dC/dw.
    """

    def __init__(self, params, lr: float = 0.01, momentum: float = 0.0, dampening: float = 0.0,
                 weight_decay: float = 0.0, nesterov: bool = False) -> None:  # fmt: skip
        super().__init__(params, lr)
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("SGD: nesterov needs momentum > 0 and dampening = 0")
        self.momentum, self.dampening = float(momentum), float(dampening)
        self.weight_decay, self.nesterov = float(weight_decay), nesterov
        self.buf = self._zeros() if momentum else None

    def update(self, w, g):
        if self.weight_decay:
            g = g + self.weight_decay * w
        if self.momentum:
            b = self.buf
            if self.t == 1:
                b[...] = g
            else:
                b *= self.momentum
                b += (1.0 - self.dampening) * g
            g = g + self.momentum * b if self.nesterov else b
        w -= self.lr * g

    def _state(self):
        return {"buf": self.buf}


class RMSprop(Optimizer):
    """Divide the gradient by a running RMS of recent gradients (PyTorch's ``RMSprop``).

    g = grad + weight_decay * w
    s = alpha * s + (1 - alpha) * g^2
    if centered: m = alpha * m + (1 - alpha) * g;  d = sqrt(s - m^2) + eps
    else:        d = sqrt(s) + eps
    if momentum: b = momentum * b + g / d;  w = w - lr * b
    else:        w = w - lr * g / d
    """

    def __init__(self, params, lr: float = 0.01, alpha: float = 0.99, eps: float = 1e-8,
                 weight_decay: float = 0.0, momentum: float = 0.0,
                 centered: bool = False) -> None:  # fmt: skip
        super().__init__(params, lr)
        self.alpha, self.eps, self.weight_decay = float(alpha), float(eps), float(weight_decay)
        self.momentum, self.centered = float(momentum), centered
        self.square_avg = self._zeros()
        self.grad_avg = self._zeros() if centered else None
        self.buf = self._zeros() if momentum else None

    def update(self, w, g):
        a, s, m = self.alpha, self.square_avg, self.grad_avg
        if self.weight_decay:
            g = g + self.weight_decay * w
        s *= a
        s += (1.0 - a) * g * g
        if self.centered:
            m *= a
            m += (1.0 - a) * g
            d = np.sqrt(s - m * m)
        else:
            d = np.sqrt(s)
        d += self.eps
        if self.momentum:
            self.buf *= self.momentum
            self.buf += g / d
            w -= self.lr * self.buf
        else:
            w -= self.lr * (g / d)

    def _state(self):
        return {"square_avg": self.square_avg, "grad_avg": self.grad_avg, "buf": self.buf}


class Adagrad(Optimizer):
    """Per-coordinate step sizes shrinking with the sum of squared gradients (``Adagrad``).

    g = grad + weight_decay * w
    s = s + g^2
    w = w - lr / (1 + (t - 1) * lr_decay) * g / (sqrt(s) + eps)
    """

    def __init__(self, params, lr: float = 0.01, lr_decay: float = 0.0, weight_decay: float = 0.0,
                 initial_accumulator_value: float = 0.0, eps: float = 1e-10) -> None:  # fmt: skip
        super().__init__(params, lr)
        self.lr_decay, self.weight_decay, self.eps = float(lr_decay), float(weight_decay), float(eps)
        self.initial_accumulator_value = float(initial_accumulator_value)
        self.sum = np.full_like(self.data, initial_accumulator_value)

    def update(self, w, g):
        clr = self.lr / (1.0 + (self.t - 1) * self.lr_decay)
        if self.weight_decay:
            g = g + self.weight_decay * w
        self.sum += g * g
        w -= clr * (g / (np.sqrt(self.sum) + self.eps))

    def _state(self):
        return {"sum": self.sum}


class Adam(Optimizer):
    """Adam (Kingma & Ba 2015), PyTorch's ``Adam``, with bias-corrected moment estimates.

    g = grad + weight_decay * w               (L2 through the gradient; see AdamW)
    m = beta1 * m + (1 - beta1) * g
    v = beta2 * v + (1 - beta2) * g^2         (amsgrad: vmax = max(vmax, v), used for v)
    w = w - lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)
    """

    decoupled = False

    def __init__(self, params, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0.0, amsgrad: bool = False) -> None:  # fmt: skip
        super().__init__(params, lr)
        self.beta1, self.beta2 = float(betas[0]), float(betas[1])
        if not (0 <= self.beta1 < 1 and 0 <= self.beta2 < 1):
            raise ValueError(f"{type(self).__name__}: betas must be in [0, 1), got {betas}")
        self.eps, self.weight_decay, self.amsgrad = float(eps), float(weight_decay), amsgrad
        self.m, self.v = self._zeros(), self._zeros()
        self.vmax = self._zeros() if amsgrad else None

    def update(self, w, g):
        b1, b2, m, v = self.beta1, self.beta2, self.m, self.v
        if self.weight_decay:
            if self.decoupled:
                w *= 1.0 - self.lr * self.weight_decay
            else:
                g = g + self.weight_decay * w
        m += (1.0 - b1) * (g - m)  # = b1 m + (1 - b1) g, written as torch's lerp
        v *= b2
        v += (1.0 - b2) * g * g
        if self.amsgrad:
            np.maximum(self.vmax, v, out=self.vmax)
            v = self.vmax
        denom = np.sqrt(v)
        denom *= 1.0 / math.sqrt(1.0 - b2**self.t)
        denom += self.eps
        w -= (self.lr / (1.0 - b1**self.t)) * (m / denom)

    def _state(self):
        return {"m": self.m, "v": self.v, "vmax": self.vmax}


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter), PyTorch's ``AdamW``.

    w = w * (1 - lr * weight_decay), then the Adam step with g = grad.
    """

    decoupled = True

    def __init__(self, params, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0.01, amsgrad: bool = False) -> None:  # fmt: skip
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad)


def clip_grad_norm(params, max_norm: float) -> float:
    """Scale all gradients together so their global L2 norm is at most ``max_norm``.

    PyTorch's ``clip_grad_norm_``: returns the norm before clipping; the scale is
    max_norm / (norm + 1e-6), applied only when it is below 1.
    """
    params = list(params)
    total = math.sqrt(sum(float(np.vdot(p.grad, p.grad)) for p in params))
    scale = max_norm / (total + 1e-6)
    if scale < 1.0:
        for p in params:
            p.grad *= scale
    return total
