"""Dropout and Gaussian dropout: multiplicative noise in training, identity in eval.

Both draw their noise from ``self.rng``, a ``numpy.random.Generator`` given to the
constructor, or by ``model.set_rng(rng)`` (``gn.fit(..., rng=...)`` does this), so a run is
reproducible from one seed.
"""

from __future__ import annotations

import math

import numpy as np

from ..module import Module, as_rng, check_arg


class Dropout(Module):
    """Zero each activation with probability ``p`` and scale the survivors by 1/(1-p).

    ``p`` is the probability of *dropping* (PyTorch's and Keras' convention). The dropout paper
    (Srivastava et al. 2014) writes the *keep* probability, p_paper = 1 - p, and scales the
    weights by p_paper at test time; scaling by 1/(1-p) during training instead ("inverted
    dropout") gives the same expected activation and leaves eval a plain identity.

    Shapes: any -> same.
    Backward: dx = dy * m, with m = [u >= p] / (1 - p) the mask forward drew.
    """

    def __init__(self, p: float = 0.5, rng: np.random.Generator | int | None = None) -> None:
        super().__init__()
        # p = 1 would drop everything and scale by 1/0: no network can learn through it
        self.p = float(check_arg("Dropout", "p", p, lambda v: 0.0 <= v < 1.0, "a probability in [0, 1)"))
        self.rng = as_rng(rng, "Dropout")

    def forward(self, x):
        if not self.training or self.p == 0.0:
            self.mask = None
            return x
        keep = self.rng.random(x.shape, dtype=x.dtype if x.dtype == np.float32 else np.float64)
        self.mask = (keep >= self.p).astype(x.dtype)
        self.mask *= 1.0 / (1.0 - self.p)
        return x * self.mask

    def backward(self, dy):
        return dy if self.mask is None else dy * self.mask

    def config(self):
        return {"p": self.p}


class GaussianDropout(Module):
    """Multiply each activation by noise drawn from N(1, sigma^2), sigma = sqrt(rate/(1-rate)).

    Keras' ``GaussianDropout(rate)``: the same mean and variance as inverted dropout with
    drop probability ``rate``, but smooth noise instead of a 0/1 mask.

    Shapes: any -> same.
    Backward: dx = dy * noise (the noise forward drew).
    """

    def __init__(self, rate: float = 0.5, rng: np.random.Generator | int | None = None) -> None:
        super().__init__()
        self.rate = float(check_arg("GaussianDropout", "rate", rate, lambda v: 0.0 <= v < 1.0, "in [0, 1)"))
        self.rng = as_rng(rng, "GaussianDropout")

    def forward(self, x):
        if not self.training or self.rate == 0.0:
            self.noise = None
            return x
        sigma = math.sqrt(self.rate / (1.0 - self.rate))
        dtype = x.dtype if x.dtype == np.float32 else np.float64
        self.noise = self.rng.standard_normal(x.shape, dtype=dtype)
        self.noise *= sigma
        self.noise += 1.0
        return x * self.noise

    def backward(self, dy):
        return dy if self.noise is None else dy * self.noise

    def config(self):
        return {"rate": self.rate}
