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


# --- a CNN with batch norm: conv, pooling, BN, dropout-free, Adam ----------------------------


def small_cnn(rng):
    f64 = np.float64
    model = gn.Sequential(
        gn.Conv2d(1, 4, 3, padding=1, rng=rng, dtype=f64), gn.ReLU(), gn.MaxPool2d(2),
        gn.Conv2d(4, 6, 3, bias=False, rng=rng, dtype=f64), gn.BatchNorm2d(6, dtype=f64), gn.Tanh(),
        gn.AvgPool2d(2), gn.Flatten(), gn.Linear(6, 3, rng=rng, dtype=f64),
    )  # fmt: skip
    tmodel = nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(4, 6, 3, bias=False), nn.BatchNorm2d(6), nn.Tanh(),
        nn.AvgPool2d(2), nn.Flatten(), nn.Linear(6, 3),
    ).double()  # fmt: skip
    with torch.no_grad():
        for g, t in zip(model, tmodel):
            if isinstance(g, gn.Linear):  # the one layout difference: torch weight = W.T
                t.weight.copy_(torch.tensor(g.W.data.T))
                t.bias.copy_(torch.tensor(g.b.data))
            elif isinstance(g, gn.Conv2d):  # conv kernels share PyTorch's (out, in, kh, kw)
                t.weight.copy_(torch.tensor(g.W.data))
                if g.b is not None:  # none before batch norm: its gradient is 0 up to rounding,
                    t.bias.copy_(torch.tensor(g.b.data))  # which Adam would amplify
    return model, tmodel


def test_cnn_with_batch_norm_matches_torch_step_for_step():
    rng = np.random.default_rng(3)
    model, tmodel = small_cnn(rng)
    opt = gn.optim.Adam(model.parameters(), lr=0.01)
    topt = torch.optim.Adam(tmodel.parameters(), lr=0.01)
    loss_fn, tloss = gn.CrossEntropyLoss(), nn.CrossEntropyLoss()
    for step in range(STEPS):
        x = rng.standard_normal((BATCH, 1, 8, 8))
        y = rng.integers(0, 3, size=BATCH)
        loss = gn.train_step(model, loss_fn, opt, x, y)
        topt.zero_grad()
        tl = tloss(tmodel(torch.tensor(x)), torch.tensor(y))
        tl.backward()
        topt.step()
        assert loss == pytest.approx(tl.item(), rel=1e-10)
        for (name, p), tp in zip(model.named_parameters(), tmodel.parameters()):
            expected = tp.detach().numpy()
            got = p.data.T if name.endswith("W") and p.data.ndim == 2 else p.data
            np.testing.assert_allclose(got, expected, rtol=1e-9, atol=1e-12, err_msg=f"{name}, step {step}")
    bn, tbn = model[4], tmodel[4]
    np.testing.assert_allclose(bn.running_mean, tbn.running_mean.numpy(), rtol=1e-10)
    np.testing.assert_allclose(bn.running_var, tbn.running_var.numpy(), rtol=1e-10)
    model.eval(), tmodel.eval()
    x = rng.standard_normal((4, 1, 8, 8))
    np.testing.assert_allclose(gn.predict(model, x), tmodel(torch.tensor(x)).detach().numpy(), rtol=1e-9)


@pytest.mark.parametrize("preset", sorted(gn.models.PRESETS))
def test_every_preset_builds_and_runs_on_28x28_images(preset):
    model = gn.models.build(preset, np.random.default_rng(0), (1, 28, 28), 10)
    assert gn.predict(model, np.zeros((2, 1, 28, 28), np.float32)).shape == (2, 10)
    for m in model.modules():  # building probed shapes in eval mode: statistics still fresh
        if isinstance(m, gn.BatchNorm2d | gn.BatchNorm1d):
            assert int(m.num_batches_tracked) == 0 and (m.running_var == 1).all()
