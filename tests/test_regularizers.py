"""L1, L2 and elastic-net penalties: values, gradients (torch autograd and finite differences),
weights-only application, and the SGD equivalence of L2 with torch's weight_decay."""

from __future__ import annotations

import numpy as np
import pytest
from harness import rows

import glassnet as gn
from glassnet.gradcheck import TOLERANCE, check_regularizer_gradients, numeric_grad, relative_error
from glassnet.module import Param

torch = pytest.importorskip("torch")


def params(rng: np.random.Generator, away_from_zero: bool = False) -> list[Param]:
    """Two weights and a bias (decay=False), float64."""

    def draw(shape):
        w = rng.standard_normal(shape)
        if away_from_zero:  # keep |w| >= 0.1 so central differences never straddle the L1 kink
            w = np.sign(w) * (0.1 + np.abs(w))
        return w

    return [
        Param(draw((4, 3)), "W1"),
        Param(draw(3), "b1", decay=False),
        Param(draw((3, 2)), "W2"),
    ]


REGULARIZERS = {
    "L2": lambda: gn.L2(0.3),
    "L1": lambda: gn.L1(0.2),
    "ElasticNet": lambda: gn.ElasticNet(0.2, 0.3),
}


# --- the table's rows: the documented formula in torch autograd, and finite differences ----------


@pytest.mark.parametrize("case", rows("regularizer"))
def test_row_matches_the_formula_in_torch(case):
    reg, ps = case.build()
    reg.backward(ps)
    tws = [torch.tensor(p.data, requires_grad=True) for p in ps]
    total = case.torch(reg, [t for t, p in zip(tws, ps) if p.decay])
    total.backward()
    assert reg.penalty(ps) == pytest.approx(total.item(), rel=1e-13)
    for p, t in zip(ps, tws):
        expected = t.grad.numpy() if t.grad is not None else np.zeros(p.shape)
        np.testing.assert_allclose(p.grad, expected, rtol=1e-14, atol=1e-15, err_msg=p.name)


@pytest.mark.parametrize("case", rows("regularizer"))
def test_row_matches_finite_differences(case):
    reg, ps = case.build()
    errors = check_regularizer_gradients(reg, ps)
    assert set(errors) == {p.name for p in ps}
    assert max(errors.values()) < TOLERANCE, errors


def test_l2_penalty_is_half_lam_sum_of_squares_over_weights_only():
    ps = params(np.random.default_rng(0))
    lam = 0.3
    expected = lam / 2 * sum(float((p.data**2).sum()) for p in ps if p.decay)
    assert gn.L2(lam).penalty(ps) == pytest.approx(expected, rel=1e-14)
    # the bias does not count: changing it leaves the penalty alone
    ps[1].data += 100.0
    assert gn.L2(lam).penalty(ps) == pytest.approx(expected, rel=1e-14)


def test_l2_gradient_is_lam_w_and_bias_untouched():
    ps = params(np.random.default_rng(1))
    upstream = [np.random.default_rng(2).standard_normal(p.shape) for p in ps]
    for p, g in zip(ps, upstream):
        p.grad[...] = g
    gn.L2(0.3).backward(ps)
    for p, g in zip(ps, upstream):
        # added into .grad, not overwriting it
        expected = g + 0.3 * p.data if p.decay else g
        np.testing.assert_allclose(p.grad, expected, rtol=1e-15)


@pytest.mark.parametrize("name", list(REGULARIZERS))
def test_bias_gradient_untouched(name):
    ps = params(np.random.default_rng(3))
    REGULARIZERS[name]().backward(ps)
    np.testing.assert_array_equal(ps[1].grad, 0.0)
    assert all(np.any(p.grad != 0) for p in ps if p.decay)


def test_l1_matches_torch_autograd_including_zero():
    rng = np.random.default_rng(4)
    w = rng.standard_normal((5, 4))
    w[0, :2] = 0.0  # torch's |w|' at 0 is sign(0) = 0
    lam = 0.2
    p = Param(w.copy(), "W")
    reg = gn.L1(lam)
    reg.backward([p])
    tw = torch.tensor(w, requires_grad=True)
    tloss = lam * tw.abs().sum()
    tloss.backward()
    assert reg.penalty([p]) == pytest.approx(tloss.item(), rel=1e-14)
    np.testing.assert_allclose(p.grad, tw.grad.numpy(), rtol=1e-15, atol=0)
    np.testing.assert_array_equal(p.grad[0, :2], 0.0)


@pytest.mark.parametrize("name", list(REGULARIZERS))
def test_penalty_and_gradient_match_torch_autograd(name):
    rng = np.random.default_rng(5)
    ps = params(rng)
    reg = REGULARIZERS[name]()
    reg.backward(ps)
    l1 = getattr(reg, "l1", reg.lam if isinstance(reg, gn.L1) else 0.0)
    l2 = getattr(reg, "l2", reg.lam if isinstance(reg, gn.L2) else 0.0)
    tps = [torch.tensor(p.data, requires_grad=True) for p in ps]
    total = sum(l1 * t.abs().sum() + l2 / 2 * (t * t).sum() for t, p in zip(tps, ps) if p.decay)
    total.backward()
    assert reg.penalty(ps) == pytest.approx(total.item(), rel=1e-13)
    for p, t in zip(ps, tps):
        expected = t.grad.numpy() if t.grad is not None else np.zeros(p.shape)
        np.testing.assert_allclose(p.grad, expected, rtol=1e-14, atol=1e-15)


def test_elastic_net_is_l1_plus_l2():
    rng = np.random.default_rng(6)
    ps = params(rng)
    qs = [Param(p.data.copy(), p.name, p.decay) for p in ps]
    net = gn.ElasticNet(0.2, 0.3)
    net.backward(ps)
    gn.L1(0.2).backward(qs)
    gn.L2(0.3).backward(qs)
    expected = gn.L1(0.2).penalty(qs) + gn.L2(0.3).penalty(qs)
    assert net.penalty(ps) == pytest.approx(expected, rel=1e-14)
    for p, q in zip(ps, qs):
        np.testing.assert_allclose(p.grad, q.grad, rtol=1e-15)


@pytest.mark.parametrize("name", list(REGULARIZERS))
def test_gradient_matches_finite_differences(name):
    ps = params(np.random.default_rng(7), away_from_zero=True)
    reg = REGULARIZERS[name]()
    reg.backward(ps)
    for p in ps:
        numeric = numeric_grad(lambda: reg.penalty(ps), p.data)
        if p.decay:
            assert relative_error(p.grad, numeric) < TOLERANCE, p.name
        else:
            np.testing.assert_array_equal(numeric, 0.0)
            np.testing.assert_array_equal(p.grad, 0.0)


@pytest.mark.parametrize(
    "make",
    [
        lambda: gn.L2(-0.1),
        lambda: gn.L1(-0.1),
        lambda: gn.ElasticNet(-0.1, 0.1),
        lambda: gn.ElasticNet(0.1, -0.1),
    ],
    ids=["L2", "L1", "ElasticNet l1", "ElasticNet l2"],
)
def test_negative_lam_rejected(make):
    with pytest.raises(ValueError, match=r"^(L1|L2|ElasticNet)\b.*>= 0"):
        make()


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf"), -1e-3, "0.1", None])
@pytest.mark.parametrize(
    ("make", "name"),
    [
        (lambda v: gn.L2(v), "L2: lam"),
        (lambda v: gn.L1(v), "L1: lam"),
        (lambda v: gn.ElasticNet(v, 0.1), "ElasticNet: l1"),
        (lambda v: gn.ElasticNet(0.1, v), "ElasticNet: l2"),
    ],
    ids=["L2", "L1", "ElasticNet l1", "ElasticNet l2"],
)
def test_non_finite_negative_or_non_numeric_strength_rejected(make, name, value):
    """L1(nan) or L2(inf) would turn every weight to NaN at the first step, far from the cause."""
    with pytest.raises(ValueError, match=rf"^{name} must be a finite number >= 0, got"):
        make(value)


@pytest.mark.parametrize(
    "kwargs",
    [{"scale": float("nan")}, {"scale": float("inf")}, {"p_input": float("nan")}, {"p_hidden": 1.0}],
    ids=["scale nan", "scale inf", "p_input nan", "p_hidden 1"],
)
def test_fixed_dropout_penalty_rejects_bad_values(kwargs):
    model = gn.Sequential(gn.Linear(3, 2, rng=np.random.default_rng(0)))
    args = {"p_input": 0.2, "p_hidden": 0.5, "scale": 1.0, **kwargs}
    name = next(iter(kwargs))
    with pytest.raises(ValueError, match=rf"^FixedDropoutPenalty: {name} must be"):
        gn.FixedDropoutPenalty.from_model(model, np.ones((4, 3), np.float32), **args)


def test_zero_lam_is_a_no_op():
    ps = params(np.random.default_rng(8))
    for reg in (gn.L2(0.0), gn.L1(0.0), gn.ElasticNet(0.0, 0.0)):
        assert reg.penalty(ps) == 0.0
        reg.backward(ps)
        for p in ps:
            np.testing.assert_array_equal(p.grad, 0.0)


def test_float32_stays_float32():
    p = Param(np.random.default_rng(9).standard_normal((3, 3)).astype(np.float32), "W")
    for reg in REGULARIZERS.values():
        reg().backward([p])
        assert p.grad.dtype == np.float32
        assert isinstance(reg().penalty([p]), float)


# --- with a model and an optimizer --------------------------------------------------------------
def test_sgd_step_with_l2_equals_torch_weight_decay():
    """On a bias-free model L2(lam) + SGD is exactly torch's SGD(weight_decay=lam)."""
    rng = np.random.default_rng(10)
    lam, lr = 0.05, 0.1
    model = gn.Sequential(
        gn.Linear(5, 4, bias=False, rng=rng, dtype=np.float64),
        gn.Tanh(),
        gn.Linear(4, 3, bias=False, rng=rng, dtype=np.float64),
    )
    # torch stores Linear weights (out, in), glassnet W is (in, out): copy transposed
    tmodel = torch.nn.Sequential(
        torch.nn.Linear(5, 4, bias=False), torch.nn.Tanh(), torch.nn.Linear(4, 3, bias=False)
    ).double()
    with torch.no_grad():
        tmodel[0].weight.copy_(torch.tensor(model[0].W.data.T))
        tmodel[2].weight.copy_(torch.tensor(model[2].W.data.T))
    opt = gn.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    topt = torch.optim.SGD(tmodel.parameters(), lr=lr, momentum=0.9, weight_decay=lam)
    loss_fn = gn.CrossEntropyLoss()
    for _ in range(3):
        x = rng.standard_normal((8, 5))
        y = rng.integers(0, 3, size=8)
        loss = gn.train_step(model, loss_fn, opt, x, y, regularizer=gn.L2(lam))
        weights = [tmodel[0].weight, tmodel[2].weight]
        penalty = lam / 2 * sum(float((w.detach() ** 2).sum()) for w in weights)  # before the step
        topt.zero_grad()
        tloss = torch.nn.functional.cross_entropy(tmodel(torch.tensor(x)), torch.tensor(y))
        tloss.backward()
        topt.step()
        assert loss == pytest.approx(tloss.item() + penalty, rel=1e-12)
        for layer, w in zip((model[0], model[2]), weights):
            np.testing.assert_allclose(layer.W.data, w.detach().numpy().T, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("name", list(REGULARIZERS))
def test_check_gradients_with_regularizer_passes(name):
    rng = np.random.default_rng(11)
    model = gn.Sequential(gn.Linear(4, 5, rng=rng), gn.Tanh(), gn.Linear(5, 3, rng=rng))
    # away from L1's kink at 0 (central differences across it would be wrong)
    for p in model.parameters():
        p.data[...] = np.sign(p.data) * (0.1 + np.abs(p.data))
    x = rng.standard_normal((6, 4))
    y = rng.integers(0, 3, size=6)
    errors = gn.check_gradients(model, gn.CrossEntropyLoss(), x, y, regularizer=REGULARIZERS[name]())
    assert set(errors) == {"input", "0.W", "0.b", "2.W", "2.b"}
    assert max(errors.values()) < TOLERANCE, errors
    # the model comes back as it was: float32
    assert all(p.data.dtype == np.float32 for p in model.parameters())


def test_check_gradients_sees_the_penalty():
    """A regularizer whose backward forgets its gradient must fail the check (the check has
    teeth for penalties, not only for layers)."""

    class Broken(gn.L2):
        def grad(self, w):
            return 0.0 * w

    rng = np.random.default_rng(12)
    model = gn.Sequential(gn.Linear(4, 3, rng=rng, dtype=np.float64))
    x, y = rng.standard_normal((5, 4)), rng.integers(0, 3, size=5)
    errors = gn.check_gradients(model, gn.CrossEntropyLoss(), x, y, regularizer=Broken(1.0))
    assert errors["0.W"] > 1e-3
    assert errors["0.b"] < TOLERANCE  # the bias carries no penalty
