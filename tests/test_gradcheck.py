"""The checker has teeth: planted wrong backwards fail it, correct models pass it, and checking a
model leaves it exactly as it was (dtype, arrays, mode, generators)."""

from __future__ import annotations

import numpy as np
import pytest
from cases import CASES, grads_after_backward

import glassnet as gn
from glassnet.gradcheck import (
    check_gradients,
    check_layer_gradients,
    check_loss_gradients,
    run_builtin_checks,
)

TOL = 1e-6
CAUGHT = 1e-3  # a planted bug must score far above TOL, not just above it

# --- mutants: each one plausible slip in a backward ---------------------------------------------


class LinearForgetsBias(gn.Linear):
    def backward_params(self, dy):
        self.W.grad += self.x.T @ dy  # db never accumulated


class LinearUsesW(gn.Linear):
    def backward(self, dy):
        self.backward_params(dy)
        return dy @ self.W.data  # W where W^T belongs (shapes agree: the layer is square)


class LinearTransposesDW(gn.Linear):
    def backward_params(self, dy):
        self.W.grad += dy.T @ self.x  # (x^T dy)^T: the shapes agree for a square layer
        self.b.grad += dy.sum(axis=0)


class SigmoidUsesY(gn.Sigmoid):
    def backward(self, dy):
        return dy * self.y  # sigma' = y (1 - y), not y


class TanhForgetsSquare(gn.Tanh):
    def backward(self, dy):
        return dy * (1 - self.y)


class ELUForgetsAlpha(gn.ELU):
    def backward(self, dy):
        return np.where(self.pos, dy, dy * self.y)  # alpha e^z = y + alpha, not y


class GELUForgetsDensity(gn.GELU):
    def backward(self, dy):
        return dy * self.cdf  # the z phi(z) term is missing


class SoftmaxMissingSum(gn.Softmax):
    def backward(self, dy):
        return self.y * dy  # the diagonal of the Jacobian only


class SoftmaxZeroGrad(gn.Softmax):
    def backward(self, dy):
        # right for an all-ones upstream gradient (the true dz is y (1 - sum y) = 0 there):
        # only a random upstream gradient exposes it
        return np.zeros_like(dy)


class DropoutIgnoresMask(gn.Dropout):
    def backward(self, dy):
        return dy


LAYER_MUTANTS = {
    "Linear forgets db": lambda rng: LinearForgetsBias(4, 4, rng=rng),
    "Linear uses W, not W^T": lambda rng: LinearUsesW(4, 4, rng=rng),
    "Linear transposes dW": lambda rng: LinearTransposesDW(4, 4, rng=rng),
    "Sigmoid uses y": lambda rng: SigmoidUsesY(),
    "Tanh forgets the square": lambda rng: TanhForgetsSquare(),
    "ELU forgets alpha": lambda rng: ELUForgetsAlpha(1.3),
    "GELU forgets the density": lambda rng: GELUForgetsDensity(),
    "Softmax missing the sum": lambda rng: SoftmaxMissingSum(),
    "Softmax zero gradient": lambda rng: SoftmaxZeroGrad(),
    "Dropout ignores its mask": lambda rng: DropoutIgnoresMask(0.5, rng=rng),
}


class MSELossNoMean(gn.MSELoss):
    def forward(self, pred, target):
        value = super().forward(pred, target)
        self.dpred = self.dpred * self.dpred.size  # the 1/N dropped
        return value


class CrossEntropyNoMean(gn.CrossEntropyLoss):
    def forward(self, pred, target):
        value = super().forward(pred, target)
        self.dpred = self.dpred * pred.shape[0]
        return value


class CrossEntropyNoSoftmax(gn.CrossEntropyLoss):
    def forward(self, pred, target):
        value = super().forward(pred, target)
        onehot = np.eye(pred.shape[1])[target]
        self.dpred = (pred - onehot) / pred.shape[0]  # z - y where softmax(z) - y belongs
        return value


class HuberForgetsClip(gn.HuberLoss):
    def forward(self, pred, target):
        value = super().forward(pred, target)
        self.dpred = (pred - target) / pred.size  # the quadratic gradient in the linear tails too
        return value


def labels(rng, n=5, c=4):
    return rng.integers(0, c, size=n)


LOSS_MUTANTS = {
    "MSELoss without 1/N": (MSELossNoMean, lambda rng: rng.standard_normal((5, 4))),
    "CrossEntropyLoss without 1/N": (CrossEntropyNoMean, labels),
    "CrossEntropyLoss without softmax": (CrossEntropyNoSoftmax, labels),
    "HuberLoss without clip": (HuberForgetsClip, lambda rng: 3 * rng.standard_normal((5, 4))),
}


class L2TwiceTheGradient(gn.L2):
    def grad(self, w):
        return 2 * self.lam * w  # the penalty is lam/2 |w|^2: its gradient is lam w


# --- the checker catches every mutant -----------------------------------------------------------


@pytest.mark.parametrize("name", LAYER_MUTANTS)
def test_layer_check_catches_mutant(name):
    rng = np.random.default_rng(0)
    errors = check_layer_gradients(LAYER_MUTANTS[name](rng), rng.standard_normal((5, 4)))
    assert max(errors.values()) > CAUGHT, errors


@pytest.mark.parametrize("name", LAYER_MUTANTS)
def test_model_check_catches_mutant_inside_sequential(name):
    rng = np.random.default_rng(0)
    mutant = LAYER_MUTANTS[name](rng)
    model = gn.Sequential(gn.Linear(3, 4, rng=rng), mutant, gn.Linear(4, 2, rng=rng))
    x, y = rng.standard_normal((5, 3)), rng.integers(0, 2, size=5)
    errors = check_gradients(model, gn.CrossEntropyLoss(), x, y)
    assert max(errors.values()) > CAUGHT, errors


@pytest.mark.parametrize("name", LOSS_MUTANTS)
def test_loss_check_catches_mutant(name):
    rng = np.random.default_rng(0)
    cls, target = LOSS_MUTANTS[name]
    pred = rng.standard_normal((5, 4))
    errors = check_loss_gradients(cls(), pred, target(rng))
    assert errors["pred"] > CAUGHT, errors


@pytest.mark.parametrize("name", LOSS_MUTANTS)
def test_model_check_catches_mutant_loss(name):
    rng = np.random.default_rng(0)
    cls, target = LOSS_MUTANTS[name]
    model = gn.Sequential(gn.Linear(3, 4, rng=rng), gn.Tanh(), gn.Linear(4, 4, rng=rng))
    errors = check_gradients(model, cls(), rng.standard_normal((5, 3)), target(rng))
    assert min(errors.values()) > CAUGHT, errors  # every gradient starts from the wrong dpred


def test_model_check_catches_wrong_regularizer_gradient():
    rng = np.random.default_rng(0)
    model = gn.Sequential(gn.Linear(3, 4, rng=rng), gn.Tanh(), gn.Linear(4, 2, rng=rng))
    x, y = rng.standard_normal((5, 3)), rng.integers(0, 2, size=5)
    wrong = L2TwiceTheGradient(0.5)
    errors = check_gradients(model, gn.CrossEntropyLoss(), x, y, regularizer=wrong)
    assert errors["0.W"] > CAUGHT and errors["2.W"] > CAUGHT, errors
    assert errors["0.b"] < TOL and errors["2.b"] < TOL, errors  # biases take no penalty


# --- contract checks have teeth too (the gradient check alone cannot see these) -----------------


class LinearOverwritesGrads(gn.Linear):
    def backward_params(self, dy):
        self.W.grad[...] = self.x.T @ dy  # = where += belongs: a shared weight loses a term
        self.b.grad[...] = dy.sum(axis=0)


class ReLUWritesIntoDy(gn.ReLU):
    def backward(self, dy):
        dy *= self.y > 0
        return dy


def test_accumulation_contract_catches_overwrite():
    rng = np.random.default_rng(0)
    layer, x = LinearOverwritesGrads(4, 3, rng=rng), rng.standard_normal((5, 4)).astype(np.float32)
    assert max(check_layer_gradients(layer, x).values()) < TOL  # invisible to the gradient check
    dy = rng.standard_normal((5, 3))
    once, twice = grads_after_backward(layer, x, dy, 1), grads_after_backward(layer, x, dy, 2)
    assert not np.allclose(twice["W"], 2 * once["W"])


def test_dy_contract_catches_in_place_write():
    layer, x = ReLUWritesIntoDy(), np.array([[-1.0, 2.0, -3.0]])
    assert max(check_layer_gradients(layer, x).values()) < TOL  # invisible to the gradient check
    layer.forward(x)
    dy = np.ones_like(x)
    layer.backward(dy)
    assert not np.array_equal(dy, np.ones_like(x))


# --- correct models pass, and are left as they were ---------------------------------------------


def dropout_model(rng):
    return gn.Sequential(
        gn.Linear(6, 8, rng=rng), gn.Tanh(), gn.Dropout(0.3, rng=rng), gn.Linear(8, 3, rng=rng)
    )


@pytest.mark.parametrize("mode", ["train", "eval"])
def test_check_gradients_passes_dropout_and_l2_and_restores_model(mode):
    rng = np.random.default_rng(0)
    model = dropout_model(rng)
    model.train(mode == "train")
    dropout_rng = model[2].rng
    params = model.parameters()
    arrays = [(p.data, p.grad) for p in params]
    for p in params:
        p.grad += 0.25  # gradients the caller had accumulated must survive the check
    values = [(p.data.copy(), p.grad.copy()) for p in params]
    x, y = rng.standard_normal((5, 6)).astype(np.float32), rng.integers(0, 3, size=5)

    errors = check_gradients(model, gn.CrossEntropyLoss(), x, y, regularizer=gn.L2(0.1))

    assert set(errors) == {"input", "0.W", "0.b", "3.W", "3.b"}
    assert max(errors.values()) < TOL, errors
    for p, (data, grad), (data_value, grad_value) in zip(params, arrays, values, strict=True):
        assert p.data is data and p.grad is grad, p
        assert p.data.dtype == np.float32 and p.grad.dtype == np.float32, p
        np.testing.assert_array_equal(p.data, data_value)
        np.testing.assert_array_equal(p.grad, grad_value)
    assert all(m.training == (mode == "train") for m in model.modules())
    assert model[2].rng is dropout_rng


def test_check_gradients_freezes_dropout_masks():
    # without frozen masks the differences would see a new mask per evaluation and fail
    rng = np.random.default_rng(1)
    dropout = gn.Dropout(0.5, rng=rng)
    model = gn.Sequential(gn.Linear(6, 8, rng=rng), dropout, gn.Linear(8, 3, rng=rng))
    x, y = rng.standard_normal((5, 6)), rng.integers(0, 3, size=5)
    assert max(check_gradients(model, gn.CrossEntropyLoss(), x, y).values()) < TOL


def test_builtin_checks_all_pass():
    rows = run_builtin_checks()
    assert {case for case, _, _ in rows} == set(CASES)
    bad = [row for row in rows if not row[2] < TOL]
    assert not bad, bad
