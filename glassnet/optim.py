"""Optimizers, in order of increasing complexity, each matching ``torch.optim`` step for step.

An optimizer sees a flat list of ``Param``s, never layers. Each one's update rule is written
once, plainly, in ``update(w, g, state)`` on whole arrays (``state`` holds its momentum or
moment arrays, shaped like ``w``). To make a step cost a handful of vector operations however
many layers the model has (PyTorch's "foreach"/fused idea), a new optimizer gathers its
parameters into one contiguous vector: every ``p.data`` becomes a view into ``self.data`` and
every ``p.grad`` a view into ``self.grad``, and ``update`` runs once on the whole vector.
Layers see no difference: they read and write ``p.data``/``p.grad`` in place as before. The
re-pointing is the one thing a user sees: an optimizer changes what ``p.data`` is (a view),
not its values.

Parameters already gathered by another optimizer are left where they are: in the same order,
the two share the vector; as a subset (say, a second optimizer with its own learning rate
for one layer), the new optimizer updates parameter by parameter. If something replaces a
gathered ``p.data`` afterwards (``model.to(dtype)``), ``step()`` raises instead of updating a
stale copy.

``weight_decay`` follows PyTorch: it applies to every parameter given (the L1/L2
regularizers in ``gn.regularizers`` skip biases instead). ``maximize=True`` (every optimizer,
as PyTorch's) steps up the gradient: each rule below runs with grad replaced by -grad, the
weight decay still added after (g = -grad + weight_decay * w), as in torch.
"""

from __future__ import annotations

import math
import operator

import numpy as np

from .module import Param, check_arg


def _nonneg(owner: str, **values) -> None:
    """Each of ``values`` must be a finite number >= 0 (learning rates, decays, eps, momenta)."""
    for name, value in values.items():
        check_arg(owner, name, value, lambda v: 0 <= v < math.inf, "a finite number >= 0")


_DATA, _GRAD = operator.attrgetter("data"), operator.attrgetter("grad")


def _same(a: np.ndarray) -> np.ndarray:
    return a


def _address(a: np.ndarray) -> int:
    return a.__array_interface__["data"][0]


def memory_order(a: np.ndarray) -> str:
    """ "F" for a column-major array (``Linear``'s weights), else "C": the order in which its
    elements lie in memory, and so in an optimizer's flat vectors."""
    return "F" if a.flags.f_contiguous and not a.flags.c_contiguous else "C"


def state_view(vector: np.ndarray, lo: int, hi: int, p: Param) -> np.ndarray:
    """Parameter ``p``'s slice ``[lo, hi)`` of a flat vector, shaped and ordered like ``p.data``."""
    return vector[lo:hi].reshape(p.data.shape, order=memory_order(p.data))


def _shared_vectors(params: list[Param], total: int):
    """The (data, grad) vectors holding exactly these parameters in this order, if any."""
    data, grad = params[0].data.base, params[0].grad.base
    if data is None or grad is None or data.shape != (total,) or grad.shape != (total,):
        return None
    offset, item = 0, data.dtype.itemsize
    for p in params:
        if (p.data.base is not data or p.grad.base is not grad
                or _address(p.data) != _address(data) + offset * item
                or _address(p.grad) != _address(grad) + offset * item):  # fmt: skip
            return None
        offset += p.data.size
    return data, grad


def flatten_params(params: list[Param]) -> tuple[np.ndarray, np.ndarray] | None:
    """Gather the parameters into one 1-D ``(data, grad)`` pair, in order, re-pointing each
    ``p.data``/``p.grad`` at its slice (values kept); reuse such a pair if it exists already.
    Returns None, touching nothing, when some parameter already lives in another vector."""
    total = sum(p.data.size for p in params)
    shared = _shared_vectors(params, total)
    if shared is not None:
        return shared
    if any(p.data.base is not None or p.grad.base is not None for p in params):
        return None
    dtype = params[0].data.dtype
    data, grad = np.empty(total, dtype), np.empty(total, dtype)
    offset = 0
    for p in params:
        n = p.data.size
        order = memory_order(p.data)  # copy in memory order, so a column-major W stays one
        data[offset : offset + n] = p.data.reshape(-1, order=order)
        grad[offset : offset + n] = p.grad.reshape(-1, order=order)
        p.data = data[offset : offset + n].reshape(p.data.shape, order=order)
        p.grad = grad[offset : offset + n].reshape(p.data.shape, order=order)
        offset += n
    return data, grad


class Optimizer:
    """Base of the optimizers: holds the parameters, their state, ``zero_grad`` and ``step``.

    Creating one changes the parameters it is given: each ``p.data`` and ``p.grad`` becomes a
    view of its slice of the flat vectors ``self.data``/``self.grad`` (values kept; see the
    module docstring). Change a parameter in place (``p.data[...] = v``); an array assigned to
    ``p.data`` afterwards is not updated, and ``step()`` raises to say so.
    """

    state_names: tuple[str, ...] = ()  # the per-coordinate state arrays ``update`` receives
    maximize: bool = False

    def __init__(self, params, lr: float, maximize: bool = False) -> None:
        self.params: list[Param] = list(params)
        name = type(self).__name__
        if not self.params:
            raise ValueError(f"{name}: got an empty parameter list")
        for p in self.params:
            if not isinstance(p, Param):
                raise TypeError(
                    f"{name}: expected glassnet Params (model.parameters()), got {type(p).__name__}"
                )
        if len({id(p) for p in self.params}) != len(self.params):
            raise ValueError(f"{name}: the same Param appears twice in the parameter list")
        dtype = self.params[0].data.dtype
        for p in self.params:
            if p.data.dtype != dtype:
                raise TypeError(
                    f"{name}: all parameters must share one dtype; {p.name} is {p.data.dtype}, the first "
                    f"is {dtype} (convert the model with model.to(dtype) first)"
                )
        _nonneg(name, lr=lr)
        if not isinstance(maximize, (bool, np.bool_)):
            raise TypeError(f"{name}: maximize must be True or False, got {maximize!r}")
        self.lr, self.maximize = float(lr), bool(maximize)
        self.t = 0  # steps taken
        flat = flatten_params(self.params)
        self.data, self.grad = flat if flat is not None else (None, None)
        # the views handed out, kept alive so that identity checks them in step()
        self._views = ([p.data for p in self.params], [p.grad for p in self.params])
        size = sum(p.data.size for p in self.params)
        # state vectors cover all parameters in order; parameter i owns [offsets[i], offsets[i+1])
        self.offsets = np.cumsum([0] + [p.data.size for p in self.params]).tolist()
        self.state = {k: np.zeros(size, dtype) for k in self.state_names}

    def zero_grad(self) -> None:
        """Fill every gradient with zeros: one ``fill`` of the flat vector when there is one."""
        if self.grad is not None:
            self.grad.fill(0)
            return
        for p in self.params:
            p.zero_grad()

    def step(self) -> None:
        """One update: on the whole gathered vector, or parameter by parameter.

        With ``maximize`` (PyTorch's option) ``update`` receives -grad, so every rule climbs
        the objective instead of descending it; ``p.grad`` itself is left as it is."""
        self.t += 1
        sign = np.negative if self.maximize else _same
        if self.data is not None:
            self.check_views()
            self.update(self.data, sign(self.grad), self.state)
            return
        for i, p in enumerate(self.params):
            lo, hi = self.offsets[i], self.offsets[i + 1]
            self.update(p.data, sign(p.grad), {k: state_view(v, lo, hi, p) for k, v in self.state.items()})

    def update(self, w: np.ndarray, g: np.ndarray, state: dict[str, np.ndarray]) -> None:
        raise NotImplementedError

    def check_views(self) -> None:
        """Raise if some ``p.data``/``p.grad`` no longer lives in this optimizer's vectors."""
        data, grad = self._views
        # identity checked by map/operator.is_ in C: this runs every step, and a Python loop
        # would cost more than the update itself for a small model
        if all(map(operator.is_, map(_DATA, self.params), data)) and all(
            map(operator.is_, map(_GRAD, self.params), grad)
        ):
            return
        for p, d, g in zip(self.params, data, grad):
            if p.data is not d or p.grad is not g:
                raise RuntimeError(
                    f"{type(self).__name__}: parameter {p.name} {p.data.shape} was replaced after this "
                    "optimizer was created (model.to(dtype)?); create the optimizer again"
                )

    def state_dict(self) -> dict[str, np.ndarray]:
        """Step count, learning rate and every state vector, by name (for checkpoints)."""
        return {"t": np.array(self.t), "lr": np.array(self.lr), **self.state}

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        expected = {"t", "lr", *self.state}
        if set(state) != expected:
            raise KeyError(
                f"{type(self).__name__}.load_state_dict: expected keys {sorted(expected)}, "
                f"got {sorted(state)}"
            )
        for key, vector in self.state.items():
            if np.shape(state[key]) != vector.shape:
                raise ValueError(
                    f"{type(self).__name__}.load_state_dict: {key!r} has shape {np.shape(state[key])}, "
                    f"expected {vector.shape}"
                )
            vector[...] = state[key]
        self.t, self.lr = int(state["t"]), float(state["lr"])


class SGD(Optimizer):
    """Stochastic gradient descent with optional momentum (PyTorch's ``SGD``).

        g = grad + weight_decay * w
        b = g on the first step, else momentum * b + (1 - dampening) * g
        g = g + momentum * b if nesterov else b          (when momentum > 0)
        w = w - lr * g
    With momentum 0 this is the book's rule w -> w - eta dC/dw.
    """

    def __init__(self, params, lr: float = 0.01, momentum: float = 0.0, dampening: float = 0.0,
                 weight_decay: float = 0.0, nesterov: bool = False, *,
                 maximize: bool = False) -> None:  # fmt: skip
        _nonneg("SGD", momentum=momentum, weight_decay=weight_decay)
        check_arg("SGD", "dampening", dampening, lambda v: 0 <= v <= 1, "in [0, 1]")
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError(
                f"SGD: nesterov needs momentum > 0 and dampening = 0, "
                f"got momentum={momentum}, dampening={dampening}"
            )
        self.momentum, self.dampening = float(momentum), float(dampening)
        self.weight_decay, self.nesterov = float(weight_decay), nesterov
        self.state_names = ("buf",) if momentum else ()
        super().__init__(params, lr, maximize)

    def update(self, w, g, state):
        if self.weight_decay:
            g = g + self.weight_decay * w
        if self.momentum:
            b = state["buf"]
            if self.t == 1:
                b[...] = g
            else:
                b *= self.momentum
                b += (1.0 - self.dampening) * g if self.dampening else g
            g = g + self.momentum * b if self.nesterov else b
        w -= self.lr * g


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
                 centered: bool = False, *, maximize: bool = False) -> None:  # fmt: skip
        check_arg("RMSprop", "alpha", alpha, lambda v: 0 <= v <= 1, "in [0, 1]")
        _nonneg("RMSprop", eps=eps, weight_decay=weight_decay, momentum=momentum)
        self.alpha, self.eps, self.weight_decay = float(alpha), float(eps), float(weight_decay)
        self.momentum, self.centered = float(momentum), centered
        self.state_names = ("square_avg",) + ("grad_avg",) * centered + ("buf",) * bool(momentum)
        super().__init__(params, lr, maximize)

    def update(self, w, g, state):
        a, s = self.alpha, state["square_avg"]
        if self.weight_decay:
            g = g + self.weight_decay * w
        s *= a
        s += (1.0 - a) * g * g
        if self.centered:
            m = state["grad_avg"]
            m *= a
            m += (1.0 - a) * g
            d = np.sqrt(s - m * m)
        else:
            d = np.sqrt(s)
        d += self.eps
        if self.momentum:
            b = state["buf"]
            b *= self.momentum
            b += g / d
            w -= self.lr * b
        else:
            w -= self.lr * (g / d)


class Adagrad(Optimizer):
    """Per-coordinate step sizes shrinking with the sum of squared gradients (``Adagrad``).

    g = grad + weight_decay * w
    s = s + g^2
    w = w - lr / (1 + (t - 1) * lr_decay) * g / (sqrt(s) + eps)
    """

    state_names = ("sum",)

    def __init__(self, params, lr: float = 0.01, lr_decay: float = 0.0, weight_decay: float = 0.0,
                 initial_accumulator_value: float = 0.0, eps: float = 1e-10, *,
                 maximize: bool = False) -> None:  # fmt: skip
        _nonneg("Adagrad", lr_decay=lr_decay, weight_decay=weight_decay, eps=eps,
                initial_accumulator_value=initial_accumulator_value)  # fmt: skip
        self.lr_decay, self.weight_decay, self.eps = float(lr_decay), float(weight_decay), float(eps)
        self.initial_accumulator_value = float(initial_accumulator_value)
        super().__init__(params, lr, maximize)
        self.state["sum"] += self.initial_accumulator_value

    def update(self, w, g, state):
        clr = self.lr / (1.0 + (self.t - 1) * self.lr_decay)
        if self.weight_decay:
            g = g + self.weight_decay * w
        s = state["sum"]
        s += g * g
        w -= clr * (g / (np.sqrt(s) + self.eps))


class Adam(Optimizer):
    """Adam (Kingma & Ba 2015), PyTorch's ``Adam``, with bias-corrected moment estimates.

    g = grad + weight_decay * w               (L2 through the gradient; see AdamW)
    m = beta1 * m + (1 - beta1) * g
    v = beta2 * v + (1 - beta2) * g^2         (amsgrad: vmax = max(vmax, v), used for v)
    w = w - lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)
    """

    decoupled = False

    def __init__(self, params, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0.0, amsgrad: bool = False, *,
                 maximize: bool = False) -> None:  # fmt: skip
        name = type(self).__name__
        check_arg(name, "betas", betas, lambda b: len(b) == 2 and all(0 <= v < 1 for v in b),
                  "a pair of numbers in [0, 1)", None)  # fmt: skip
        _nonneg(name, eps=eps, weight_decay=weight_decay)
        self.beta1, self.beta2 = float(betas[0]), float(betas[1])
        self.eps, self.weight_decay, self.amsgrad = float(eps), float(weight_decay), amsgrad
        self.state_names = ("m", "v") + ("vmax",) * amsgrad
        super().__init__(params, lr, maximize)

    def update(self, w, g, state):
        b1, b2, m, v = self.beta1, self.beta2, state["m"], state["v"]
        if self.weight_decay:
            if self.decoupled:
                w *= 1.0 - self.lr * self.weight_decay
            else:
                g = g + self.weight_decay * w
        m += (1.0 - b1) * (g - m)  # = b1 m + (1 - b1) g, written as torch's lerp
        v *= b2
        v += (1.0 - b2) * g * g
        if self.amsgrad:
            np.maximum(state["vmax"], v, out=state["vmax"])
            v = state["vmax"]
        denom = np.sqrt(v)
        denom *= 1.0 / math.sqrt(1.0 - b2**self.t)
        denom += self.eps
        w -= (self.lr / (1.0 - b1**self.t)) * (m / denom)


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter), PyTorch's ``AdamW``.

    w = w * (1 - lr * weight_decay), then the Adam step with g = grad.
    """

    decoupled = True

    def __init__(self, params, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0.01, amsgrad: bool = False, *,
                 maximize: bool = False) -> None:  # fmt: skip
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad, maximize=maximize)


def clip_grad_norm(params, max_norm: float) -> float:
    """Scale all gradients together so their global L2 norm is at most ``max_norm``.

    PyTorch's ``clip_grad_norm_``: returns the norm before clipping; the scale is
    max_norm / (norm + 1e-6), applied only when it is below 1.
    """
    # inf is allowed, as in torch: the idiom for measuring the norm without clipping
    check_arg("clip_grad_norm", "max_norm", max_norm, lambda v: v > 0, "a number > 0 (inf: measure only)")
    params = list(params)
    total = math.sqrt(sum(float(np.vdot(p.grad, p.grad)) for p in params))
    scale = max_norm / (total + 1e-6)
    if scale < 1.0:
        for p in params:
            p.grad *= scale
    return total
