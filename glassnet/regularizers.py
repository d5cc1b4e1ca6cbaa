"""Weight penalties added to the loss: L1, L2 and elastic net.

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
"""

from __future__ import annotations

import numpy as np

from .module import Param


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
        if lam < 0:
            raise ValueError(f"L2: lam must be >= 0, got {lam}")
        self.lam = float(lam)

    def term(self, w):
        return 0.5 * self.lam * float(np.vdot(w, w))

    def grad(self, w):
        return self.lam * w


class L1(Regularizer):
    def __init__(self, lam: float) -> None:
        if lam < 0:
            raise ValueError(f"L1: lam must be >= 0, got {lam}")
        self.lam = float(lam)

    def term(self, w):
        return self.lam * float(np.abs(w).sum())

    def grad(self, w):
        return self.lam * np.sign(w)


class ElasticNet(Regularizer):
    def __init__(self, l1: float, l2: float) -> None:
        if l1 < 0 or l2 < 0:
            raise ValueError(f"ElasticNet: l1 and l2 must be >= 0, got {l1}, {l2}")
        self.l1, self.l2 = float(l1), float(l2)

    def term(self, w):
        return self.l1 * float(np.abs(w).sum()) + 0.5 * self.l2 * float(np.vdot(w, w))

    def grad(self, w):
        return self.l1 * np.sign(w) + self.l2 * w
