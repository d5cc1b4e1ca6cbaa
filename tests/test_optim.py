"""Optimizers against ``torch.optim``: the same parameters and gradients, step for step.

Every case runs 10 steps in float64 with a fresh random gradient per step (the same arrays go to
both libraries) and compares the parameters after every step. State is compared through a
``state_dict`` round trip that must continue bit for bit, and ``clip_grad_norm`` against
``torch.nn.utils.clip_grad_norm_``.
"""

from __future__ import annotations

import numpy as np
import pytest

import glassnet as gn
from glassnet import optim
from glassnet.module import Param

torch = pytest.importorskip("torch")

STEPS = 10
SHAPES = [(4, 3), (3,), (2, 2, 3)]

# (glassnet class, torch class, keyword arguments both accept)
CASES = {
    "SGD": (optim.SGD, "SGD", dict(lr=0.1)),
    "SGD momentum": (optim.SGD, "SGD", dict(lr=0.1, momentum=0.9)),
    "SGD dampening": (optim.SGD, "SGD", dict(lr=0.1, momentum=0.9, dampening=0.3)),
    "SGD nesterov": (optim.SGD, "SGD", dict(lr=0.1, momentum=0.8, nesterov=True)),
    "SGD weight_decay": (optim.SGD, "SGD", dict(lr=0.1, weight_decay=0.05)),
    "SGD all": (optim.SGD, "SGD", dict(lr=0.05, momentum=0.9, weight_decay=0.01, nesterov=True)),
    "RMSprop": (optim.RMSprop, "RMSprop", dict(lr=0.01)),
    "RMSprop alpha eps": (optim.RMSprop, "RMSprop", dict(lr=0.01, alpha=0.9, eps=1e-6)),
    "RMSprop centered": (optim.RMSprop, "RMSprop", dict(lr=0.01, centered=True)),
    "RMSprop momentum": (optim.RMSprop, "RMSprop", dict(lr=0.01, momentum=0.9)),
    "RMSprop weight_decay": (optim.RMSprop, "RMSprop", dict(lr=0.01, weight_decay=0.1)),
    "RMSprop all": (
        optim.RMSprop,
        "RMSprop",
        dict(lr=0.01, momentum=0.5, centered=True, weight_decay=0.1),
    ),
    "Adagrad": (optim.Adagrad, "Adagrad", dict(lr=0.1)),
    "Adagrad lr_decay": (optim.Adagrad, "Adagrad", dict(lr=0.1, lr_decay=0.05)),
    "Adagrad initial_accumulator_value": (
        optim.Adagrad,
        "Adagrad",
        dict(lr=0.1, initial_accumulator_value=0.5),
    ),
    "Adagrad weight_decay": (optim.Adagrad, "Adagrad", dict(lr=0.1, weight_decay=0.1)),
    "Adagrad all": (
        optim.Adagrad,
        "Adagrad",
        dict(lr=0.1, lr_decay=0.01, weight_decay=0.1, initial_accumulator_value=0.2, eps=1e-8),
    ),
    "Adam": (optim.Adam, "Adam", dict(lr=0.01)),
    "Adam betas eps": (optim.Adam, "Adam", dict(lr=0.01, betas=(0.8, 0.99), eps=1e-6)),
    "Adam weight_decay": (optim.Adam, "Adam", dict(lr=0.01, weight_decay=0.1)),
    "Adam amsgrad": (optim.Adam, "Adam", dict(lr=0.01, amsgrad=True)),
    "Adam amsgrad weight_decay": (
        optim.Adam,
        "Adam",
        dict(lr=0.01, amsgrad=True, weight_decay=0.1),
    ),
    "AdamW": (optim.AdamW, "AdamW", dict(lr=0.01)),
    "AdamW weight_decay": (optim.AdamW, "AdamW", dict(lr=0.01, weight_decay=0.3)),
    "AdamW amsgrad": (optim.AdamW, "AdamW", dict(lr=0.01, weight_decay=0.1, amsgrad=True)),
    # PyTorch's maximize: the step climbs the gradient; weight decay is added after the sign flip
    "SGD maximize": (
        optim.SGD,
        "SGD",
        dict(lr=0.05, momentum=0.9, weight_decay=0.1, nesterov=True, maximize=True),
    ),
    "RMSprop maximize": (
        optim.RMSprop,
        "RMSprop",
        dict(lr=0.01, momentum=0.5, centered=True, weight_decay=0.1, maximize=True),
    ),
    "Adagrad maximize": (
        optim.Adagrad,
        "Adagrad",
        dict(lr=0.1, lr_decay=0.01, weight_decay=0.1, maximize=True),
    ),
    "Adam maximize": (optim.Adam, "Adam", dict(lr=0.01, amsgrad=True, weight_decay=0.1, maximize=True)),
    "AdamW maximize": (optim.AdamW, "AdamW", dict(lr=0.01, weight_decay=0.1, maximize=True)),
}


def make_params(rng: np.random.Generator) -> list[Param]:
    # the 1-D one is a bias: optimizer weight decay still applies to it, as in torch
    return [Param(rng.standard_normal(s), f"p{i}", decay=len(s) > 1) for i, s in enumerate(SHAPES)]


def gradients(rng: np.random.Generator, steps: int = STEPS) -> list[list[np.ndarray]]:
    """A different random gradient for every parameter at every step, some of them large."""
    return [[rng.standard_normal(s) * rng.choice([0.1, 1.0, 5.0]) for s in SHAPES] for _ in range(steps)]


def torch_params(params: list[Param]) -> list:
    return [torch.tensor(p.data.copy(), dtype=torch.float64, requires_grad=True) for p in params]


def step_both(opt, params, topt, tparams, grads) -> None:
    for p, tp, g in zip(params, tparams, grads):
        p.grad[...] = g
        tp.grad = torch.tensor(g.copy())
    opt.step()
    topt.step()


def assert_params_equal(params, tparams, step: int) -> None:
    for p, tp in zip(params, tparams):
        np.testing.assert_allclose(
            p.data, tp.detach().numpy(), rtol=1e-12, atol=1e-14, err_msg=f"{p.name}, step {step}"
        )


@pytest.mark.parametrize("gathered", [True, False], ids=["one vector", "param by param"])
@pytest.mark.parametrize("case", list(CASES))
def test_matches_torch_step_for_step(case, gathered):
    cls, torch_name, kwargs = CASES[case]
    rng = np.random.default_rng(0)
    params = make_params(rng)
    tparams = torch_params(params)
    if not gathered:  # another optimizer gathered them with an extra parameter in front
        optim.SGD([Param(np.zeros(2), "other"), *params], lr=0.0)
    opt = cls(params, **kwargs)
    assert (opt.data is not None) == gathered
    topt = getattr(torch.optim, torch_name)(tparams, **kwargs)
    for step, grads in enumerate(gradients(rng), start=1):
        step_both(opt, params, topt, tparams, grads)
        assert_params_equal(params, tparams, step)
        for p in params:
            assert p.data.dtype == np.float64
    assert opt.t == STEPS


@pytest.mark.parametrize("case", list(CASES))
def test_state_dict_round_trip_continues_identically(case):
    """5 steps, save, load into a fresh optimizer on copied params, 5 more: bit for bit the
    same as 10 uninterrupted steps."""
    cls, _, kwargs = CASES[case]
    rng = np.random.default_rng(1)
    start = make_params(rng)
    grads = gradients(rng)

    reference = [Param(p.data.copy(), p.name, p.decay) for p in start]
    ref_opt = cls(reference, **kwargs)
    for gs in grads:
        for p, g in zip(reference, gs):
            p.grad[...] = g
        ref_opt.step()

    first = [Param(p.data.copy(), p.name, p.decay) for p in start]
    opt = cls(first, **kwargs)
    for gs in grads[:5]:
        for p, g in zip(first, gs):
            p.grad[...] = g
        opt.step()
    # a checkpoint holds copies, not views of live state
    saved = {k: np.array(v, copy=True) for k, v in opt.state_dict().items()}

    resumed = [Param(p.data.copy(), p.name, p.decay) for p in first]
    kwargs_other_lr = {**kwargs, "lr": 123.0}  # lr must come from the state dict
    opt2 = cls(resumed, **kwargs_other_lr)
    opt2.load_state_dict(saved)
    assert opt2.t == 5 and opt2.lr == kwargs["lr"]
    for gs in grads[5:]:
        for p, g in zip(resumed, gs):
            p.grad[...] = g
        opt2.step()
    for p, q in zip(resumed, reference):
        np.testing.assert_array_equal(p.data, q.data)


def test_state_dict_survives_an_npz_file(tmp_path):
    """A checkpoint written with np.savez and read back resumes exactly (plain arrays only)."""
    rng = np.random.default_rng(2)
    grads = gradients(rng, 6)
    reference = make_params(np.random.default_rng(3))
    ref_opt = optim.Adam(reference, lr=0.01, amsgrad=True, weight_decay=0.1)
    params = make_params(np.random.default_rng(3))
    opt = optim.Adam(params, lr=0.01, amsgrad=True, weight_decay=0.1)
    for k, gs in enumerate(grads):
        for p, q, g in zip(params, reference, gs):
            p.grad[...] = g
            q.grad[...] = g
        ref_opt.step()
        opt.step()
        if k == 2:
            state = opt.state_dict()
            assert all(isinstance(v, np.ndarray) for v in state.values())
            np.savez(tmp_path / "opt.npz", **state)
            params = [Param(p.data.copy(), p.name, p.decay) for p in params]
            opt = optim.Adam(params, lr=0.5, amsgrad=True, weight_decay=0.1)
            with np.load(tmp_path / "opt.npz") as f:
                opt.load_state_dict(dict(f))
            assert opt.t == 3
    for p, q in zip(params, reference):
        np.testing.assert_array_equal(p.data, q.data)


# --- clip_grad_norm -----------------------------------------------------------------------------
@pytest.mark.parametrize("max_norm", [0.5, 3.0, 1e3])
def test_clip_grad_norm_matches_torch(max_norm):
    rng = np.random.default_rng(3)
    params = make_params(rng)
    tparams = torch_params(params)
    for p, tp in zip(params, tparams):
        p.grad[...] = rng.standard_normal(p.shape)
        tp.grad = torch.tensor(p.grad.copy())
    before = [p.grad.copy() for p in params]
    norm = gn.clip_grad_norm(params, max_norm)
    tnorm = torch.nn.utils.clip_grad_norm_(tparams, max_norm)
    assert isinstance(norm, float)
    assert norm == pytest.approx(float(tnorm), rel=1e-13)
    for p, tp in zip(params, tparams):
        np.testing.assert_allclose(p.grad, tp.grad.numpy(), rtol=1e-13, atol=0)
    total = np.sqrt(sum(float((g**2).sum()) for g in before))
    if total <= max_norm:  # the no-clip case leaves gradients exactly alone
        for p, g in zip(params, before):
            np.testing.assert_array_equal(p.grad, g)
    else:
        clipped = np.sqrt(sum(float((p.grad**2).sum()) for p in params))
        assert clipped == pytest.approx(max_norm, rel=1e-6)


def test_clip_grad_norm_keeps_float32():
    p = Param(np.ones((3, 3), np.float32), "W")
    p.grad[...] = 10.0
    norm = gn.clip_grad_norm([p], 1.0)
    assert norm == pytest.approx(30.0)
    assert p.grad.dtype == np.float32


def test_clip_grad_norm_zero_gradients():
    p = Param(np.ones(4), "W")
    assert gn.clip_grad_norm([p], 1.0) == 0.0
    np.testing.assert_array_equal(p.grad, 0.0)


# --- errors -------------------------------------------------------------------------------------
OPTIMIZERS = [optim.SGD, optim.RMSprop, optim.Adagrad, optim.Adam, optim.AdamW]


@pytest.mark.parametrize("cls", OPTIMIZERS, ids=lambda c: c.__name__)
def test_empty_parameter_list(cls):
    with pytest.raises(ValueError, match=rf"^{cls.__name__}\b.*empty"):
        cls([], lr=0.1)
    with pytest.raises(ValueError, match=rf"^{cls.__name__}\b"):
        cls(iter([]), lr=0.1)


@pytest.mark.parametrize("cls", OPTIMIZERS, ids=lambda c: c.__name__)
def test_non_param_items(cls):
    good = Param(np.zeros(3), "W")
    with pytest.raises(TypeError, match=rf"^{cls.__name__}\b.*ndarray"):
        cls([good, np.zeros(3)], lr=0.1)
    with pytest.raises(TypeError, match=rf"^{cls.__name__}\b.*Tensor"):
        cls([torch.zeros(3)], lr=0.1)
    # a model instead of model.parameters(): iterating a Sequential yields layers
    model = gn.Sequential(gn.Linear(2, 2, rng=np.random.default_rng(0)))
    with pytest.raises(TypeError, match=rf"^{cls.__name__}\b.*Linear"):
        cls(model, lr=0.1)


@pytest.mark.parametrize("cls", OPTIMIZERS, ids=lambda c: c.__name__)
def test_negative_lr(cls):
    with pytest.raises(ValueError, match=rf"^{cls.__name__}\b.*lr.*-0\.5"):
        cls([Param(np.zeros(3), "W")], lr=-0.5)


def test_nesterov_needs_momentum():
    with pytest.raises(ValueError, match="SGD.*nesterov"):
        optim.SGD([Param(np.zeros(3), "W")], lr=0.1, nesterov=True)
    with pytest.raises(ValueError, match="SGD.*nesterov"):
        optim.SGD([Param(np.zeros(3), "W")], lr=0.1, momentum=0.9, dampening=0.1, nesterov=True)


@pytest.mark.parametrize("cls", [optim.Adam, optim.AdamW], ids=lambda c: c.__name__)
def test_adam_betas(cls):
    with pytest.raises(ValueError, match=rf"^{cls.__name__}\b.*betas"):
        cls([Param(np.zeros(3), "W")], betas=(0.9, 1.0))


@pytest.mark.parametrize("cls", OPTIMIZERS, ids=lambda c: c.__name__)
def test_float32_params_stay_float32(cls):
    rng = np.random.default_rng(4)
    p = Param(rng.standard_normal((3, 4)).astype(np.float32), "W")
    opt = cls([p], lr=0.01)
    for _ in range(3):
        p.grad[...] = rng.standard_normal(p.shape)
        opt.step()
    assert p.data.dtype == np.float32 and p.grad.dtype == np.float32
    for name, a in opt.state_dict().items():
        if name not in ("t", "lr"):
            assert a.dtype == np.float32, name


def test_zero_grad_keeps_buffers():
    p = Param(np.zeros(3), "W")
    opt = optim.SGD([p], lr=0.1)
    buf = p.grad  # the optimizer may re-point grads into its own vector; after that, they stay
    p.grad += 1.0
    opt.zero_grad()
    assert p.grad is buf
    np.testing.assert_array_equal(buf, 0.0)


def test_parameters_stay_live_views_of_the_optimizer():
    """Layers keep reading p.data/p.grad: a step through the optimizer is seen by the model,
    and model.zero_grad() clears what the optimizer steps on."""
    rng = np.random.default_rng(5)
    model = gn.Sequential(gn.Linear(3, 2, rng=rng, dtype=np.float64))
    opt = optim.SGD(model.parameters(), lr=0.5)
    x = rng.standard_normal((4, 3))
    before = model.forward(x).copy()
    model[0].W.grad[...] = 1.0
    opt.step()
    np.testing.assert_allclose(model[0].W.data, model.state_dict()["0.W"])
    np.testing.assert_allclose(model.forward(x), before - 0.5 * x.sum(axis=1, keepdims=True))
    model.zero_grad()
    opt.step()  # zero gradient: nothing moves
    np.testing.assert_allclose(model.forward(x), before - 0.5 * x.sum(axis=1, keepdims=True))


def test_replacing_a_parameter_after_creating_the_optimizer_raises():
    model = gn.Sequential(gn.Linear(3, 2, rng=np.random.default_rng(6)))
    opt = optim.Adam(model.parameters(), lr=0.1)
    model.to(np.float64)
    with pytest.raises(RuntimeError, match=r"^Adam\b.*W"):
        opt.step()


def test_mixed_dtypes_and_repeated_params_rejected():
    a = Param(np.zeros(3, np.float32), "a")
    b = Param(np.zeros(3, np.float64), "b")
    with pytest.raises(TypeError, match="dtype"):
        optim.SGD([a, b], lr=0.1)
    with pytest.raises(ValueError, match="twice"):
        optim.SGD([a, a], lr=0.1)


def test_optimizers_over_overlapping_parameter_lists_both_work():
    """A second optimizer over a subset (its own lr for one layer) leaves the first one's
    vector alone and updates parameter by parameter; both match a hand-written step."""
    rng = np.random.default_rng(7)
    model = gn.Sequential(
        gn.Linear(3, 4, rng=rng, dtype=np.float64), gn.Linear(4, 2, rng=rng, dtype=np.float64)
    )
    everything = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    head = optim.Adam(model[1].parameters(), lr=0.01)
    assert everything.data is not None and head.data is None  # shares, does not re-gather
    same = optim.SGD(model.parameters(), lr=0.1)
    assert same.data is everything.data  # same list, same order: the same vector
    for _ in range(3):
        w0, w1 = model[0].W.data.copy(), model[1].W.data.copy()
        g0, g1 = rng.standard_normal(w0.shape), rng.standard_normal(w1.shape)
        everything.zero_grad()
        model[0].W.grad[...], model[1].W.grad[...] = g0, g1
        buf = everything.state["buf"].copy()
        everything.step()
        previous = optim.state_view(buf, 0, g0.size, model[0].W)  # W's slice, in W's layout
        expected_buf = g0 if everything.t == 1 else 0.9 * previous + g0
        np.testing.assert_allclose(model[0].W.data, w0 - 0.1 * expected_buf, rtol=1e-12)
        after_sgd = model[1].W.data.copy()
        head.step()  # Adam's first steps move every coordinate by about lr
        assert not np.allclose(model[1].W.data, after_sgd) and np.isfinite(model[1].W.data).all()
    assert np.abs(model[1].W.data - w1).max() > 0


def test_linear_weights_stay_column_major_through_gathering_and_conversion(tmp_path):
    """Linear's W lives column-major (PyTorch's bytes, the faster product at small batches):
    gathering into the optimizer's vector, model.to and gn.load keep that layout, and the
    per-parameter path steps it exactly as the gathered path does."""
    rng = np.random.default_rng(2)
    model = gn.Sequential(gn.Linear(5, 3, rng=rng), gn.Linear(3, 2, rng=rng)).to(np.float64)
    twin = gn.Sequential(gn.Linear(5, 3), gn.Linear(3, 2)).to(np.float64)
    twin.load_state_dict(model.state_dict())
    gathered = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    one_by_one = optim.SGD(twin.parameters(), lr=0.1, momentum=0.9)
    one_by_one.data = None  # force the per-parameter fallback
    for m in (model, twin):
        assert all(layer.W.data.flags.f_contiguous and layer.W.grad.flags.f_contiguous for layer in m)
    assert np.shares_memory(model[0].W.data, gathered.data)
    x, dy = rng.standard_normal((4, 5)), rng.standard_normal((4, 2))
    for _ in range(3):
        for m, opt in ((model, gathered), (twin, one_by_one)):
            opt.zero_grad()
            m.forward(x)
            m.backward(dy)
            opt.step()
    for a, b in zip(model.parameters(), twin.parameters()):
        np.testing.assert_array_equal(a.data, b.data)
    gn.save(model, tmp_path / "m.safetensors")
    assert gn.load(tmp_path / "m.safetensors")[0].W.data.flags.f_contiguous


def test_lazy_zero_grad_reads_as_zero_writes_then_accumulates():
    """zero_grad() only marks gradients (PyTorch's set_to_none): they read as zeros, the next
    backward writes its result, a second backward adds, and a parameter no backward touched
    steps with a zero gradient, not with last step's leftovers."""
    rng = np.random.default_rng(3)
    used, unused = gn.Linear(4, 3, rng=rng, dtype=np.float64), gn.Linear(4, 3, rng=rng, dtype=np.float64)
    opt = optim.SGD(used.parameters() + unused.parameters(), lr=0.1)
    x, dy = rng.standard_normal((5, 4)), rng.standard_normal((5, 3))
    for layer in (used, unused):
        layer.forward(x)
        layer.backward(dy)
    assert np.abs(unused.W.grad).max() > 0
    opt.zero_grad()
    before = unused.W.data.copy(), unused.b.data.copy()
    used.forward(x)
    used.backward(dy)
    np.testing.assert_allclose(used.W.grad, x.T @ dy, rtol=1e-12)
    np.testing.assert_allclose(used.b.grad, dy.sum(axis=0), rtol=1e-12)
    used.backward(dy)
    np.testing.assert_allclose(used.W.grad, 2 * x.T @ dy, rtol=1e-12)
    opt.step()
    np.testing.assert_array_equal(unused.W.data, before[0])
    np.testing.assert_array_equal(unused.b.data, before[1])
    assert not unused.W.grad.any() and not unused.b.grad.any()
    model = gn.Sequential(used)
    model.zero_grad()
    assert not used.W.grad.any()


def test_maximize_climbs_and_leaves_the_gradient_as_it_was():
    """One plain SGD step with maximize goes up the gradient by lr * grad, p.grad untouched."""
    p = Param(np.array([1.0, -2.0]), "w")
    opt = optim.SGD([p], lr=0.5, maximize=True)
    p.grad[...] = [2.0, 4.0]
    opt.step()
    np.testing.assert_array_equal(p.data, [2.0, 0.0])
    np.testing.assert_array_equal(p.grad, [2.0, 4.0])


def test_maximize_must_be_a_bool():
    with pytest.raises(TypeError, match="^Adam: maximize must be True or False, got 'yes'"):
        optim.Adam([Param(np.zeros(2), "w")], maximize="yes")
