"""FixedDropoutPenalty: the derivation (Monte Carlo over real dropout masks), its gradient (float64
central differences), PyTorch computing the same penalty, and the frozen E[x^2] of hidden layers."""

from __future__ import annotations

import numpy as np
import pytest

import glassnet as gn
from glassnet.gradcheck import TOLERANCE, numeric_grad, relative_error


def mlp(rng, dtype=np.float64):
    return gn.Sequential(
        gn.Flatten(),
        gn.Linear(6, 5, rng=rng, dtype=dtype),
        gn.ReLU(),
        gn.Linear(5, 3, rng=rng, dtype=dtype),
    )


def test_penalty_is_what_dropout_adds_to_a_squared_error():
    """E over inverted-dropout masks of 1/2 ||x~ W - t||^2 (mean over examples) equals the clean
    loss plus the penalty: the docstring's derivation, checked against gn.Dropout itself."""
    rng = np.random.default_rng(0)
    p, n, d, k = 0.3, 40, 6, 4
    x, W = rng.standard_normal((n, d)), rng.standard_normal((d, k))
    t = rng.standard_normal((n, k))
    layer = gn.Linear(d, k, bias=False, dtype=np.float64)
    layer.W.data[...] = W
    model = gn.Sequential(layer)
    pen = gn.FixedDropoutPenalty.from_model(model, x, p_input=p, p_hidden=0.0)
    drop = gn.Dropout(p, rng=np.random.default_rng(1))
    draws = 20_000
    noisy = np.mean([0.5 * np.sum((drop.forward(x) @ W - t) ** 2) / n for _ in range(draws)])
    clean = 0.5 * np.sum((x @ W - t) ** 2) / n
    expected = 0.5 * (p / (1 - p)) * np.sum((x**2).mean(axis=0)[:, None] * W**2)
    assert pen.penalty(model.parameters()) == pytest.approx(expected, rel=1e-12)
    # Monte Carlo error of the mean over 20,000 masks: well under 2% here
    assert noisy - clean == pytest.approx(expected, rel=0.02)
    # and it is not the plain L2 of the same total strength (the inputs' scale matters)
    assert abs(expected - 0.5 * (p / (1 - p)) * np.mean(x**2) * np.sum(W**2)) > 0.02 * expected


def test_hidden_layers_use_the_frozen_activations_of_the_model_as_built():
    rng = np.random.default_rng(2)
    model = mlp(rng)
    x = rng.standard_normal((30, 6))
    pen = gn.FixedDropoutPenalty.from_model(model, x, p_input=0.2, p_hidden=0.5, scale=0.25, batch_size=7)
    h = np.maximum(x @ model[1].W.data + model[1].b.data, 0.0)
    (W1, c1), (W2, c2) = pen.terms
    assert W1 is model[1].W and W2 is model[3].W
    np.testing.assert_allclose(c1[:, 0], 0.25 * 0.2 / 0.8 * (x**2).mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(c2[:, 0], 0.25 * 0.5 / 0.5 * (h**2).mean(axis=0), rtol=1e-12)
    # frozen: training the weights later does not change the coefficients
    model[1].W.data *= 3.0
    np.testing.assert_allclose(pen.terms[1][1][:, 0], 0.25 * (h**2).mean(axis=0), rtol=1e-12)
    # the model's mode is put back
    assert all(m.training for m in model.modules())


def test_gradient_matches_central_differences():
    rng = np.random.default_rng(3)
    model = mlp(rng)
    x = rng.standard_normal((20, 6))
    pen = gn.FixedDropoutPenalty.from_model(model, x, p_input=0.2, p_hidden=0.5)
    params = model.parameters()
    upstream = [rng.standard_normal(p.shape) for p in params]
    for p, g in zip(params, upstream):
        p.grad[...] = g
    pen.backward(params)
    for p, g in zip(params, upstream):
        numeric = numeric_grad(lambda: pen.penalty(params), p.data)
        assert relative_error(p.grad - g, numeric) < TOLERANCE, p.name  # added into .grad
        if not p.decay:
            np.testing.assert_array_equal(p.grad, g)  # biases carry no penalty


def test_penalty_and_gradient_match_torch(torch):
    """The same network in torch: E[x^2] measured through its layers, the penalty and its
    gradient by autograd (torch stores Linear weights transposed, (out, in))."""
    rng = np.random.default_rng(4)
    model = mlp(rng)
    x = rng.standard_normal((25, 6))
    p_in, p_hid = 0.2, 0.5
    pen = gn.FixedDropoutPenalty.from_model(model, x, p_input=p_in, p_hidden=p_hid)
    pen.backward(model.parameters())
    tnet = torch.nn.Sequential(torch.nn.Linear(6, 5), torch.nn.ReLU(), torch.nn.Linear(5, 3)).double()
    with torch.no_grad():
        for t_layer, g_layer in ((tnet[0], model[1]), (tnet[2], model[3])):
            t_layer.weight.copy_(torch.tensor(g_layer.W.data.T))
            t_layer.bias.copy_(torch.tensor(g_layer.b.data))
    tx = torch.tensor(x)
    with torch.no_grad():
        h = tnet[1](tnet[0](tx))
    coef_in = p_in / (1 - p_in) * (tx**2).mean(dim=0)
    coef_hid = p_hid / (1 - p_hid) * (h**2).mean(dim=0)
    w0, w2 = tnet[0].weight, tnet[2].weight
    total = 0.5 * (coef_in[None, :] * w0**2).sum() + 0.5 * (coef_hid[None, :] * w2**2).sum()
    total.backward()
    assert pen.penalty(model.parameters()) == pytest.approx(total.item(), rel=1e-12)
    np.testing.assert_allclose(model[1].W.grad, w0.grad.numpy().T, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(model[3].W.grad, w2.grad.numpy().T, rtol=1e-12, atol=1e-15)


def test_float32_stays_float32_and_fit_reports_the_penalty():
    rng = np.random.default_rng(5)
    model = mlp(rng, dtype=np.float32)
    x = rng.standard_normal((32, 6)).astype(np.float32)
    y = rng.integers(0, 3, 32)
    pen = gn.FixedDropoutPenalty.from_model(model, x, p_input=0.2, p_hidden=0.5)
    assert all(c.dtype == np.float32 for _, c in pen.terms)
    opt = gn.optim.SGD(model.parameters(), lr=0.0)  # lr 0: the reported loss is at fixed weights
    clean = gn.evaluate(model, gn.CrossEntropyLoss(), (x, y))["loss"]
    h = gn.fit(model, gn.CrossEntropyLoss(), opt, (x, y), epochs=1, batch_size=32, regularizer=pen,
               verbose=False, rng=rng)  # fmt: skip
    assert h.history["loss"][0] == pytest.approx(clean + pen.penalty(model.parameters()), rel=1e-5)
    assert all(p.grad.dtype == np.float32 for p in model.parameters())


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"p_input": 1.0, "p_hidden": 0.5}, "p_input"),
        ({"p_input": 0.2, "p_hidden": -0.1}, "p_hidden"),
        ({"p_input": 0.2, "p_hidden": 0.5, "scale": -1.0}, "scale"),
    ],
)
def test_bad_arguments_are_rejected(kwargs, match):
    rng = np.random.default_rng(6)
    with pytest.raises(ValueError, match=match):
        gn.FixedDropoutPenalty.from_model(mlp(rng), rng.standard_normal((4, 6)), **kwargs)


def test_coefficients_must_fit_the_weight():
    w = gn.Param(np.zeros((4, 3)), "W")
    with pytest.raises(ValueError, match="do not fit"):
        gn.FixedDropoutPenalty([(w, np.ones(3))])
    with pytest.raises(ValueError, match=">= 0"):
        gn.FixedDropoutPenalty([(w, -np.ones(4))])


def test_under_cross_entropy_the_factor_is_the_variance_of_the_weights_under_the_softmax():
    """The docstring's cross-entropy statement: E over masks of CE(x~ W) - CE(x W) is, to second
    order, 1/2 sum_i Var[x~_i] Var_{k~s}(W_ik), at most half of the squared-error penalty; the
    diagonal-only curvature s_k (1 - s_k) misses the off-diagonal terms."""
    from scipy.special import log_softmax, softmax

    rng = np.random.default_rng(7)
    p, n, d, c = 0.05, 50, 8, 10
    x, W, y = rng.standard_normal((n, d)), 0.1 * rng.standard_normal((d, c)), rng.integers(0, c, n)

    def ce(z):
        return -log_softmax(z, axis=1)[np.arange(n), y].mean()

    drop = gn.Dropout(p, rng=np.random.default_rng(8))
    z = x @ W
    s, var = softmax(z, axis=1), x**2 * p / (1 - p)
    dz = (s - np.eye(c)[y]) / n  # dCE/dz: the first-order term has mean 0 over masks, so
    # subtracting it leaves the expectation unchanged and takes out most of the Monte Carlo noise
    noisy = np.mean(
        [ce(z + e) - ce(z) - np.vdot(dz, e) for e in (drop.forward(x) @ W - z for _ in range(20_000))]
    )
    spread = s @ (W**2).T - (s @ W.T) ** 2  # (n, d): Var_{k~s}(W_ik) per example and input
    second = 0.5 * np.mean(np.sum(var * spread, axis=1))
    diagonal = 0.5 * np.mean(np.sum(var * ((s * (1 - s)) @ (W**2).T), axis=1))
    squared = 0.5 * np.mean(np.sum(var * np.sum(W**2, axis=1), axis=1))
    assert noisy == pytest.approx(second, rel=0.05)
    assert abs(diagonal - noisy) > 2 * abs(second - noisy)  # the off-diagonal terms count
    assert second < 0.1 * squared  # near-uniform over 10 classes: about 1/10, not 1 (nor 1/4)
