"""Whole models against PyTorch: the same MLP and the same book-style sigmoid net, the same
weights and batches, a few optimizer steps; parameters and losses equal after every step."""

from __future__ import annotations

import numpy as np
import pytest

import glassnet as gn

torch = pytest.importorskip("torch")
nn = torch.nn

STEPS = 5
BATCH = 8


def mlp(rng):
    model = gn.Sequential(
        gn.Flatten(),
        gn.Linear(12, 16, rng=rng, dtype=np.float64),
        gn.Tanh(),
        gn.Linear(16, 8, rng=rng, dtype=np.float64),
        gn.ReLU(),
        gn.Linear(8, 3, rng=rng, dtype=np.float64),
    )
    tmodel = nn.Sequential(
        nn.Flatten(), nn.Linear(12, 16), nn.Tanh(), nn.Linear(16, 8), nn.ReLU(), nn.Linear(8, 3)
    )
    return model, tmodel


def book_net(rng):
    """Nielsen's network.py shape: sigmoid layers, quadratic cost, one-hot targets."""
    model = gn.Sequential(
        gn.Linear(12, 10, init="standard_normal", rng=rng, dtype=np.float64),
        gn.Sigmoid(),
        gn.Linear(10, 3, init="standard_normal", rng=rng, dtype=np.float64),
        gn.Sigmoid(),
    )
    tmodel = nn.Sequential(nn.Linear(12, 10), nn.Sigmoid(), nn.Linear(10, 3), nn.Sigmoid())
    return model, tmodel


def linear_pairs(model, tmodel):
    return [(g, t) for g, t in zip(model, tmodel) if isinstance(g, gn.Linear)]


def copy_weights(model, tmodel) -> None:
    """glassnet's Linear stores W as (in, out) for batch-first x @ W; torch's weight is (out, in).
    This is the one place the layouts meet: torch weight = W.T."""
    tmodel.double()
    with torch.no_grad():
        for g, t in linear_pairs(model, tmodel):
            t.weight.copy_(torch.tensor(g.W.data.T))
            t.bias.copy_(torch.tensor(g.b.data))


def assert_same_params(model, tmodel, step: int) -> None:
    for i, (g, t) in enumerate(linear_pairs(model, tmodel)):
        np.testing.assert_allclose(
            g.W.data,
            t.weight.detach().numpy().T,
            rtol=1e-9,
            atol=1e-12,
            err_msg=f"linear #{i} W after step {step}",
        )
        np.testing.assert_allclose(
            g.b.data,
            t.bias.detach().numpy(),
            rtol=1e-9,
            atol=1e-12,
            err_msg=f"linear #{i} b after step {step}",
        )


def cross_entropy(pred, y):
    return nn.functional.cross_entropy(pred, y)


def quadratic_cost(pred, y):
    # the book's C = 1/(2n) sum_x ||a - y||^2 with one-hot y
    onehot = nn.functional.one_hot(y, pred.shape[1]).double()
    return 0.5 * ((pred - onehot) ** 2).sum() / pred.shape[0]


OPTIMIZERS = {
    "Adam": (lambda ps: gn.optim.Adam(ps, lr=0.01), lambda ps: torch.optim.Adam(ps, lr=0.01)),
    "SGD momentum": (
        lambda ps: gn.optim.SGD(ps, lr=0.1, momentum=0.9),
        lambda ps: torch.optim.SGD(ps, lr=0.1, momentum=0.9),
    ),
    "SGD nesterov weight_decay": (
        lambda ps: gn.optim.SGD(ps, lr=0.1, momentum=0.9, nesterov=True, weight_decay=1e-3),
        lambda ps: torch.optim.SGD(ps, lr=0.1, momentum=0.9, nesterov=True, weight_decay=1e-3),
    ),
    "AdamW": (
        lambda ps: gn.optim.AdamW(ps, lr=0.01, weight_decay=0.1),
        lambda ps: torch.optim.AdamW(ps, lr=0.01, weight_decay=0.1),
    ),
}

MODELS = {
    # (builder, glassnet loss, torch loss, input shape of one example)
    "MLP": (mlp, gn.CrossEntropyLoss, cross_entropy, (3, 4)),
    "book net": (book_net, gn.QuadraticCost, quadratic_cost, (12,)),
}


def batches(rng, shape):
    return [(rng.standard_normal((BATCH, *shape)), rng.integers(0, 3, size=BATCH)) for _ in range(STEPS)]


def run_both(model_name, make_opt, make_topt, seed=0, use_train_step=True):
    build, loss_cls, tloss_fn, shape = MODELS[model_name]
    rng = np.random.default_rng(seed)
    model, tmodel = build(rng)
    copy_weights(model, tmodel)
    loss_fn = loss_cls()
    opt, topt = make_opt(model.parameters()), make_topt(tmodel.parameters())
    for step, (x, y) in enumerate(batches(rng, shape), start=1):
        if use_train_step:
            loss = gn.train_step(model, loss_fn, opt, x, y)
        else:  # the design's "hello world", with the full backward (dx of the input too)
            opt.zero_grad()
            loss = loss_fn.forward(model.forward(x), y)
            model.backward(loss_fn.backward())
            opt.step()
        topt.zero_grad()
        tloss = tloss_fn(tmodel(torch.tensor(x)), torch.tensor(y))
        tloss.backward()
        topt.step()
        assert loss == pytest.approx(tloss.item(), rel=1e-10), f"loss at step {step}"
        assert_same_params(model, tmodel, step)
        for p in model.parameters():
            assert p.data.dtype == np.float64
    return model


@pytest.mark.parametrize("opt_name", list(OPTIMIZERS))
@pytest.mark.parametrize("model_name", list(MODELS))
def test_training_matches_torch(model_name, opt_name):
    run_both(model_name, *OPTIMIZERS[opt_name])


@pytest.mark.parametrize("model_name", list(MODELS))
def test_hello_world_loop_matches_torch(model_name):
    run_both(model_name, *OPTIMIZERS["SGD momentum"], use_train_step=False)


def test_book_net_sgd_lr_3():
    """Chapter 1's setting: plain SGD with eta = 3.0 on the quadratic cost."""
    run_both(
        "book net",
        lambda ps: gn.optim.SGD(ps, lr=3.0),
        lambda ps: torch.optim.SGD(ps, lr=3.0),
    )


def test_parameters_actually_move():
    """Guard against a vacuous comparison: both models must change over the steps."""
    rng = np.random.default_rng(0)
    model, _ = mlp(rng)
    before = [p.data.copy() for p in model.parameters()]
    trained = run_both("MLP", *OPTIMIZERS["Adam"], seed=0)
    for b, p in zip(before, trained.parameters()):
        assert not np.allclose(b, p.data)
