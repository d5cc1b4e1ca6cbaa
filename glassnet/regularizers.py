"""Weight penalties added to the loss: L1, L2, elastic net, and the fixed penalty of dropout.

They apply to parameters with ``decay=True`` (weights), never to biases or normalisation
parameters. ``penalty(params)`` is added to the reported loss; ``backward(params)`` adds its
gradient into ``p.grad``, so the optimizer sees dC/dw = dC0/dw + d(penalty)/dw.

Conventions:
- ``L2(lam)``: penalty lam/2 * sum w^2, gradient lam * w. The same update as PyTorch's
  ``weight_decay=lam`` in SGD (but limited to weights; torch decays every tensor it is given).
- The book (chapter 3) writes C = C0 + lambda/(2n) sum w^2 with n the training-set size,
  so Nielsen's lambda maps to ``L2(lambda / n)``: lambda = 5.0 on 50,000 images is L2(1e-4).
- ``L1(lam)``: penalty lam * sum |w|, gradient lam * sign(w) (0 at w = 0, as torch's sign).
- ``ElasticNet(l1, l2)``: L1(l1) + L2(l2).
- ``FixedDropoutPenalty``: 1/2 sum_ij c_i W_ij^2 with c_i = p/(1-p) E[x_i^2], the quadratic
  approximation of dropout, measured once and frozen (see its docstring for the derivation).
"""

from __future__ import annotations

import math

import numpy as np

from .module import Param, check_arg, evaluating


def _strength(owner: str, name: str, value) -> float:
    """A penalty's strength: a finite number >= 0 (NaN or inf would poison every weight)."""
    return float(check_arg(owner, name, value, lambda v: 0 <= v < math.inf, "a finite number >= 0"))


class Regularizer:
    def penalty(self, params: list[Param]) -> float:
        return sum(self.term(p.data) for p in params if p.decay)

    def backward(self, params: list[Param]) -> None:
        for p in params:
            if p.decay:
                p.grad += self.grad(p.data)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"{type(self).__name__}({args})"


class L2(Regularizer):
    def __init__(self, lam: float) -> None:
        self.lam = _strength("L2", "lam", lam)

    def term(self, w):
        return 0.5 * self.lam * float(np.vdot(w, w))

    def grad(self, w):
        return self.lam * w


class L1(Regularizer):
    def __init__(self, lam: float) -> None:
        self.lam = _strength("L1", "lam", lam)

    def term(self, w):
        return self.lam * float(np.abs(w).sum())

    def grad(self, w):
        return self.lam * np.sign(w)


class ElasticNet(Regularizer):
    def __init__(self, l1: float, l2: float) -> None:
        self.l1, self.l2 = _strength("ElasticNet", "l1", l1), _strength("ElasticNet", "l2", l2)

    def term(self, w):
        return self.l1 * float(np.abs(w).sum()) + 0.5 * self.l2 * float(np.vdot(w, w))

    def grad(self, w):
        return self.l1 * np.sign(w) + self.l2 * w


class FixedDropoutPenalty(Regularizer):
    """The weight penalty that dropout amounts to, to second order, frozen at the start.

    Derivation (inverted dropout, glassnet's convention). A ``Linear`` layer ``y = x~ W`` sees
    its input through dropout: x~_i = x_i m_i / q with m_i ~ Bernoulli(q), q = 1 - p the keep
    probability. Then E[x~_i] = x_i and Var[x~_i] = x_i^2 (1/q - 1) = x_i^2 p / (1 - p), the
    m_i independent. For a squared error C = 1/2 ||y - t||^2 on the layer's output,
    E[C(x~)] = C(x) + 1/2 sum_j Var[y_j] (bias-variance), and Var[y_j] = sum_i Var[x~_i] W_ij^2:

        E_mask[C] = C(x) + 1/2 sum_ij (p / (1 - p)) x_i^2 W_ij^2.

    Averaged over the training set, dropout adds the L2-like penalty
    1/2 sum_ij c_i W_ij^2 with c_i = scale * (p / (1 - p)) * E_data[x_i^2]: each input's weights
    are decayed in proportion to how large that input is. Non-inverted dropout (the notes' and
    the dropout paper's: no 1/q in training, weights scaled by q at test) gives
    Var[y_j] = sum_i p (1 - p) x_i^2 W_ij^2, the notes' lambda = p(1-p) times the squared inputs;
    the two agree after the reparametrisation W' = q W that turns one convention into the other.

    "Fixed" means two approximations, both deliberate: E[x_i^2] is measured once, before
    training, and frozen (for the first layer the input pixels; for a hidden layer the
    activations of the *initial* network, in eval mode), whereas real dropout sees the current
    activations; and the curvature of the loss is taken as 1 (squared error 1/2 ||y - t||^2
    per example; ``gn.MSELoss``, the mean over k outputs without the 1/2, is ``scale = 2/k``).
    For softmax cross-entropy on logits y the second-order term is 1/2 E[e^T H e] with
    H = diag(s) - s s^T (s the softmax output) and e = sum_i (x~_i - x_i) W_i: the noise of
    one input moves every logit at once, so the off-diagonal -s_j s_k count, and input i
    contributes 1/2 Var[x~_i] (sum_k s_k W_ik^2 - (sum_k s_k W_ik)^2), the variance of row
    W_i under s, in place of sum_k W_ik^2 (Wager et al. 2013 do this for GLMs). That factor
    is at most 1/2 (the largest eigenvalue of H), about 1/C for a near-uniform prediction
    over C classes, and goes to 0 as predictions become confident; ``scale`` lets a caller
    put such a factor in. For hidden layers the derivation also ignores the layers above
    (their curvature): the penalty is what dropout would cost if each layer's output were
    scored by squared error directly.

    Like the others it adds ``penalty`` to the loss and its gradient c_i W_ij into ``W.grad``,
    but it belongs to the weights it was built for, not to whatever ``params`` it is given:
    build it with ``from_model`` for the model it regularises.
    """

    def __init__(self, terms: list[tuple[Param, np.ndarray]]) -> None:
        for p, c in terms:
            if c.ndim != 1 or p.data.ndim != 2 or len(c) != p.data.shape[0]:
                raise ValueError(
                    f"FixedDropoutPenalty: coefficients of shape {c.shape} do not fit weight "
                    f"{p.name} of shape {p.data.shape} (one per input row)"
                )
            if np.any(c < 0) or not np.all(np.isfinite(c)):
                raise ValueError("FixedDropoutPenalty: coefficients must be finite and >= 0")
        # stored in the weight's dtype, as a column: c_i scales row i of W (W is (in, out))
        self.terms = [(p, c.astype(p.data.dtype)[:, None]) for p, c in terms]

    @classmethod
    def from_model(
        cls, model, x: np.ndarray, p_input: float, p_hidden: float, scale: float = 1.0, batch_size: int = 1000
    ) -> FixedDropoutPenalty:
        """The penalty for ``model`` (a ``Sequential`` without dropout layers) as if its first
        ``Linear`` saw dropout ``p_input`` on its input and every later ``Linear`` ``p_hidden``;
        E[x_i^2] of each layer's input is measured over ``x`` with the model as it is now."""
        from .layers import Linear

        for name, p in (("p_input", p_input), ("p_hidden", p_hidden)):
            check_arg("FixedDropoutPenalty", name, p, lambda v: 0.0 <= v < 1.0, "in [0, 1)")
        _strength("FixedDropoutPenalty", "scale", scale)
        layers = list(model.layers)
        sums: list[np.ndarray | None] = [None] * len(layers)
        with evaluating(model):
            for start in range(0, len(x), batch_size):
                h = x[start : start + batch_size]
                for i, layer in enumerate(layers):
                    if isinstance(layer, Linear):
                        flat = h.reshape(-1, layer.in_features).astype(np.float64)
                        s = np.einsum("ni,ni->i", flat, flat)
                        sums[i] = s if sums[i] is None else sums[i] + s
                    h = layer.forward(h)
        terms, first = [], True
        for layer, s in zip(layers, sums):
            if isinstance(layer, Linear):
                p = p_input if first else p_hidden
                first = False
                terms.append((layer.W, scale * (p / (1.0 - p)) * s / len(x)))
        if not terms:
            raise ValueError("FixedDropoutPenalty.from_model: the model has no Linear layer")
        return cls(terms)

    def penalty(self, params: list[Param]) -> float:
        return sum(0.5 * float(np.vdot(c * p.data, p.data)) for p, c in self.terms)

    def backward(self, params: list[Param]) -> None:
        for p, c in self.terms:
            p.grad += c * p.data

    def __repr__(self) -> str:
        shapes = ", ".join(f"{p.name}{p.data.shape}" for p, _ in self.terms)
        return f"FixedDropoutPenalty({shapes})"
