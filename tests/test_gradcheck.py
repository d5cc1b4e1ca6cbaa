"""The checker has teeth: planted wrong backwards fail it, correct models pass it, and checking a
model leaves it exactly as it was (dtype, arrays, mode, generators)."""

from __future__ import annotations

import inspect

import numpy as np
import pytest
from harness import grads_after_backward

import glassnet as gn
from glassnet.cases import CASES, NO_ROW_NEEDED
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
    assert {case for case, _, _ in rows} == {case.name for case in CASES}
    bad = [row for row in rows if not row[2] < TOL]
    assert not bad, bad


# --- the rules of the table: every class has a row, every argument a non-default value -----------


def exported_classes() -> list[type]:
    """Every exported layer, loss and regularizer class (the bases excluded)."""
    from glassnet import losses, regularizers

    def concrete(module, base):
        classes = [
            c for c in vars(module).values() if isinstance(c, type) and c.__module__ == module.__name__
        ]
        return [c for c in classes if issubclass(c, base) and c is not base]

    layers = [getattr(gn.layers, name) for name in gn.layers.__all__]
    return layers + concrete(losses, losses.Loss) + concrete(regularizers, regularizers.Regularizer)


def constructor_arguments(cls: type) -> dict[str, object]:
    """Argument name -> default (``inspect.Parameter.empty`` where there is none)."""
    params = list(inspect.signature(cls.__init__).parameters.values())[1:]
    return {p.name: p.default for p in params if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)}


def non_default(value, default) -> bool:
    """A required argument counts whatever its value; 1.0 for a default of 1 does not count."""
    return default is inspect.Parameter.empty or bool(value != default)


def missing_rows(cases: list = CASES) -> list[str]:
    """``Class.argument`` for every argument that no row of ``cases`` sets to a non-default value."""
    missing = []
    for cls in exported_classes():
        if cls.__name__ in NO_ROW_NEEDED:
            continue
        for arg, default in constructor_arguments(cls).items():
            if arg in NO_ROW_NEEDED or f"{cls.__name__}.{arg}" in NO_ROW_NEEDED:
                continue
            rows = [c for c in cases if c.cls is cls and arg in c.args]
            if not any(non_default(c.args[arg], default) for c in rows):
                missing.append(f"{cls.__name__}.{arg}")
    return missing


def classes_without_a_row(cases: list = CASES) -> list[str]:
    """The exported classes that no row of ``cases`` builds (the listed exceptions aside)."""
    tabled = {case.cls for case in cases}
    return [c.__name__ for c in exported_classes() if c not in tabled and c.__name__ not in NO_ROW_NEEDED]


def test_every_constructor_argument_has_a_row_with_a_non_default_value():
    """A bug that ignores an argument (HuberLoss's delta in backward, Softplus comparing z
    instead of beta z with its threshold) survives every test that leaves it at its default.
    So every argument of every exported layer, loss and regularizer needs a row in the table
    that sets it to another value, and those rows go through finite differences and PyTorch
    (or the documented formula); the exceptions, with reasons, are in cases.NO_ROW_NEEDED."""
    missing = missing_rows()
    assert not missing, f"add a row to glassnet/cases.py with a non-default value of {missing}"


def test_every_class_has_a_row_and_the_exceptions_exist():
    """Every class of ``glassnet.layers.__all__`` and every concrete loss and regularizer is
    built by a row of the table (``NO_ROW_NEEDED`` lists the exceptions, with the reason), and
    every exception names a class or an argument that exists."""
    classes = exported_classes()
    assert {c.__name__ for c in classes} >= {"Linear", "LSTM", "HuberLoss", "L1", "FixedDropoutPenalty"}
    assert len(classes) >= len(gn.layers.__all__) + 6 + 4  # every layer, 6 losses, 4 regularizers
    missing = classes_without_a_row()
    assert not missing, f"classes without a row in glassnet/cases.py: {missing}"
    names = {c.__name__ for c in classes}
    arguments = {a for c in classes for a in constructor_arguments(c)}
    qualified = {f"{c.__name__}.{a}" for c in classes for a in constructor_arguments(c)}
    stale = [entry for entry in NO_ROW_NEEDED if entry not in names | arguments | qualified]
    assert not stale, f"NO_ROW_NEEDED names no class or argument: {stale}"


@pytest.mark.parametrize("cls", [gn.Conv1d, gn.HingeLoss, gn.ElasticNet], ids=lambda c: c.__name__)
def test_the_rule_sees_a_class_without_a_row(cls):
    """The class rule has teeth for each kind (layer, loss, regularizer): take a class's rows
    away and it is named, and nothing else is."""
    assert classes_without_a_row([case for case in CASES if case.cls is not cls]) == [cls.__name__]


def test_the_rule_sees_a_missing_row():
    """The argument rule has teeth: take the one row with a non-default delta away and it names it."""
    assert missing_rows([case for case in CASES if case.name != "HuberLoss (delta 0.5)"]) == [
        "HuberLoss.delta"
    ]


def test_row_names_are_unique():
    """A row's name is its test id and its label in ``glassnet gradcheck``: two rows with one
    name would be told apart by neither."""
    names = [case.name for case in CASES]
    assert len(names) == len(set(names)), sorted(n for n in names if names.count(n) > 1)


def test_the_table_imports_without_torch():
    """torch is a test dependency: the table and its references import it only when a reference
    is called, so ``glassnet gradcheck`` runs where torch is not installed."""
    import subprocess
    import sys

    code = "import sys, glassnet.cases, glassnet.gradcheck; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_check_gradients_takes_a_model_with_several_inputs():
    rng = np.random.default_rng(0)
    a, b, y = (rng.standard_normal((3, 4)) for _ in range(3))
    errors = gn.check_gradients(gn.Add(), gn.MSELoss(), (a, b), y)
    assert set(errors) == {"input0", "input1"} and max(errors.values()) < 1e-6, errors
