"""Optimizers, in order of increasing complexity, each matching ``torch.optim`` step for step.

An optimizer sees a flat list of ``Param``s, never layers; its state sits in lists aligned with
that list; ``step()`` updates ``p.data`` in place and is the docstring's update rule written
plainly. ``weight_decay`` follows PyTorch: it applies to every parameter given (L2/L1
regularizers in ``gn.regularizers`` skip biases instead).
"""

from __future__ import annotations

import math

import numpy as np

from .module import Param


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

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad.fill(0)

    def _zeros(self) -> list[np.ndarray]:
        return [np.zeros_like(p.data) for p in self.params]

    def state_dict(self) -> dict[str, np.ndarray]:
        """Step count and every state array, by name (for checkpoints)."""
        state = {"t": np.array(self.t), "lr": np.array(self.lr)}
        for key, arrays in self._state().items():
            for i, a in enumerate(arrays):
                if a is not None:
                    state[f"{key}.{i}"] = a
        return state

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        self.t, self.lr = int(state["t"]), float(state["lr"])
        for key, arrays in self._state().items():
            for i, a in enumerate(arrays):
                if a is not None:
                    a[...] = state[f"{key}.{i}"]

    def _state(self) -> dict[str, list]:
        return {}


class SGD(Optimizer):
    """Stochastic gradient descent with optional momentum (PyTorch's ``SGD``).

        g = grad + weight_decay * w
        b = g on the first step, else momentum * b + (1 - dampening) * g
        g = g + momentum * b if nesterov else b          (when momentum > 0)
        w = w - lr * g
    With momentum 0 this is the book's rule w -> w - eta dC/dw.
    """

    def __init__(self, params, lr: float = 0.01, momentum: float = 0.0, dampening: float = 0.0,
                 weight_decay: float = 0.0, nesterov: bool = False) -> None:
        super().__init__(params, lr)
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("SGD: nesterov needs momentum > 0 and dampening = 0")
        self.momentum, self.dampening = float(momentum), float(dampening)
        self.weight_decay, self.nesterov = float(weight_decay), nesterov
        self.buf = self._zeros() if momentum else [None] * len(self.params)

    def step(self) -> None:
        self.t += 1
        for p, b in zip(self.params, self.buf):
            g = p.grad if not self.weight_decay else p.grad + self.weight_decay * p.data
            if self.momentum:
                if self.t == 1:
                    b[...] = g
                else:
                    b *= self.momentum
                    b += (1.0 - self.dampening) * g
                g = g + self.momentum * b if self.nesterov else b
            p.data -= self.lr * g

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
                 weight_decay: float = 0.0, momentum: float = 0.0, centered: bool = False) -> None:
        super().__init__(params, lr)
        self.alpha, self.eps, self.weight_decay = float(alpha), float(eps), float(weight_decay)
        self.momentum, self.centered = float(momentum), centered
        self.square_avg = self._zeros()
        self.grad_avg = self._zeros() if centered else [None] * len(self.params)
        self.buf = self._zeros() if momentum else [None] * len(self.params)

    def step(self) -> None:
        self.t += 1
        a = self.alpha
        for p, s, m, b in zip(self.params, self.square_avg, self.grad_avg, self.buf):
            g = p.grad if not self.weight_decay else p.grad + self.weight_decay * p.data
            s *= a
            s += (1.0 - a) * g * g
            if self.centered:
                m *= a
                m += (1.0 - a) * g
                d = np.sqrt(s - m * m) + self.eps
            else:
                d = np.sqrt(s) + self.eps
            if self.momentum:
                b *= self.momentum
                b += g / d
                p.data -= self.lr * b
            else:
                p.data -= self.lr * (g / d)

    def _state(self):
        return {"square_avg": self.square_avg, "grad_avg": self.grad_avg, "buf": self.buf}


class Adagrad(Optimizer):
    """Per-coordinate step sizes shrinking with the sum of squared gradients (``Adagrad``).

        g = grad + weight_decay * w
        s = s + g^2
        w = w - lr / (1 + (t - 1) * lr_decay) * g / (sqrt(s) + eps)
    """

    def __init__(self, params, lr: float = 0.01, lr_decay: float = 0.0, weight_decay: float = 0.0,
                 initial_accumulator_value: float = 0.0, eps: float = 1e-10) -> None:
        super().__init__(params, lr)
        self.lr_decay, self.weight_decay, self.eps = float(lr_decay), float(weight_decay), float(eps)
        self.initial_accumulator_value = float(initial_accumulator_value)
        self.sum = [np.full_like(p.data, initial_accumulator_value) for p in self.params]

    def step(self) -> None:
        self.t += 1
        clr = self.lr / (1.0 + (self.t - 1) * self.lr_decay)
        for p, s in zip(self.params, self.sum):
            g = p.grad if not self.weight_decay else p.grad + self.weight_decay * p.data
            s += g * g
            p.data -= clr * (g / (np.sqrt(s) + self.eps))

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
                 eps: float = 1e-8, weight_decay: float = 0.0, amsgrad: bool = False) -> None:
        super().__init__(params, lr)
        self.beta1, self.beta2 = float(betas[0]), float(betas[1])
        if not (0 <= self.beta1 < 1 and 0 <= self.beta2 < 1):
            raise ValueError(f"{type(self).__name__}: betas must be in [0, 1), got {betas}")
        self.eps, self.weight_decay, self.amsgrad = float(eps), float(weight_decay), amsgrad
        self.m, self.v = self._zeros(), self._zeros()
        self.vmax = self._zeros() if amsgrad else [None] * len(self.params)

    def step(self) -> None:
        self.t += 1
        b1, b2 = self.beta1, self.beta2
        step_size = self.lr / (1.0 - b1**self.t)
        root_bc2 = math.sqrt(1.0 - b2**self.t)
        for p, m, v, vmax in zip(self.params, self.m, self.v, self.vmax):
            g = p.grad
            if self.weight_decay:
                if self.decoupled:
                    p.data *= 1.0 - self.lr * self.weight_decay
                else:
                    g = g + self.weight_decay * p.data
            m += (1.0 - b1) * (g - m)  # = b1 m + (1 - b1) g, written as torch's lerp
            v *= b2
            v += (1.0 - b2) * g * g
            if self.amsgrad:
                np.maximum(vmax, v, out=vmax)
                v = vmax
            denom = np.sqrt(v)
            denom *= 1.0 / root_bc2
            denom += self.eps
            p.data -= step_size * (m / denom)

    def _state(self):
        return {"m": self.m, "v": self.v, "vmax": self.vmax}


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter), PyTorch's ``AdamW``.

        w = w * (1 - lr * weight_decay), then the Adam step with g = grad.
    """

    decoupled = True

    def __init__(self, params, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0.01, amsgrad: bool = False) -> None:
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
