"""Learning-rate schedules against ``torch.optim.lr_scheduler``, epoch by epoch."""

from __future__ import annotations

import math

import numpy as np
import pytest

from glassnet import optim, schedules
from glassnet.module import Param

torch = pytest.importorskip("torch")

EPOCHS = 15
BASE_LR = 0.3


def glassnet_optimizer(lr: float = BASE_LR) -> optim.SGD:
    return optim.SGD([Param(np.zeros(2), "W")], lr=lr)


def torch_optimizer(lr: float = BASE_LR):
    return torch.optim.SGD([torch.zeros(2, requires_grad=True)], lr=lr)


def lrs(opt, sched, torch_opt=None, tsched=None, epochs: int = EPOCHS):
    """The lr in force during epochs 0..epochs-1, stepping after each epoch (as fit does)."""
    ours, theirs = [], []
    for _ in range(epochs):
        ours.append(opt.lr)
        sched.step()
        if torch_opt is not None:
            theirs.append(torch_opt.param_groups[0]["lr"])
            torch_opt.step()  # torch warns when the scheduler steps before the optimizer
            tsched.step()
    return ours, theirs


CASES = {
    "StepLR": (
        lambda o: schedules.StepLR(o, step_size=4, gamma=0.5),
        lambda o: torch.optim.lr_scheduler.StepLR(o, step_size=4, gamma=0.5),
    ),
    "StepLR step 1": (
        lambda o: schedules.StepLR(o, step_size=1, gamma=0.9),
        lambda o: torch.optim.lr_scheduler.StepLR(o, step_size=1, gamma=0.9),
    ),
    "ExponentialLR": (
        lambda o: schedules.ExponentialLR(o, gamma=0.8),
        lambda o: torch.optim.lr_scheduler.ExponentialLR(o, gamma=0.8),
    ),
    # torch's cosine is periodic after T_max (it rises again), glassnet's stays flat: compare
    # on T_max >= the epochs run, and check the flat part on its own below
    "CosineAnnealingLR": (
        lambda o: schedules.CosineAnnealingLR(o, T_max=EPOCHS),
        lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=EPOCHS),
    ),
    "CosineAnnealingLR eta_min": (
        lambda o: schedules.CosineAnnealingLR(o, T_max=20, eta_min=0.01),
        lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=20, eta_min=0.01),
    ),
    "LinearWarmup": (
        lambda o: schedules.LinearWarmup(o, warmup=5, start_factor=0.1),
        lambda o: torch.optim.lr_scheduler.LinearLR(o, start_factor=0.1, end_factor=1.0, total_iters=5),
    ),
    "LinearWarmup 1/3": (
        lambda o: schedules.LinearWarmup(o, warmup=7, start_factor=1 / 3),
        lambda o: torch.optim.lr_scheduler.LinearLR(o, start_factor=1 / 3, end_factor=1.0, total_iters=7),
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_matches_torch(case):
    make, make_torch = CASES[case]
    opt, topt = glassnet_optimizer(), torch_optimizer()
    sched, tsched = make(opt), make_torch(topt)
    ours, theirs = lrs(opt, sched, topt, tsched)
    assert ours == pytest.approx(theirs, rel=1e-12, abs=1e-15)
    assert opt.lr == pytest.approx(topt.param_groups[0]["lr"], rel=1e-12, abs=1e-15)
    assert all(isinstance(lr, float) for lr in ours)


def test_step_returns_the_new_lr():
    opt = glassnet_optimizer()
    sched = schedules.ExponentialLR(opt, gamma=0.5)
    assert sched.step() == opt.lr == pytest.approx(BASE_LR * 0.5)


def test_cosine_is_flat_after_t_max():
    opt = glassnet_optimizer()
    sched = schedules.CosineAnnealingLR(opt, T_max=4, eta_min=0.02)
    ours, _ = lrs(opt, sched, epochs=8)
    expected = [0.02 + (BASE_LR - 0.02) * (1 + math.cos(math.pi * e / 4)) / 2 for e in range(5)]
    assert ours[:5] == pytest.approx(expected, rel=1e-12)
    assert ours[4:] == pytest.approx([0.02] * 4, rel=1e-12)


def test_warmup_then_cosine_documented_values():
    """Linear ramp over ``warmup`` epochs, then the cosine shifted by ``warmup``, then flat."""
    warmup, T, eta_min, sf = 3, 6, 0.01, 0.2
    opt = glassnet_optimizer()
    cosine = schedules.CosineAnnealingLR(opt, T_max=T, eta_min=eta_min)
    sched = schedules.LinearWarmup(opt, warmup=warmup, start_factor=sf, after=cosine)
    ours, _ = lrs(opt, sched, epochs=EPOCHS)

    def documented(e):
        if e < warmup:
            return BASE_LR * (sf + (1 - sf) * e / warmup)
        k = min(e - warmup, T)
        return eta_min + (BASE_LR - eta_min) * (1 + math.cos(math.pi * k / T)) / 2

    assert ours == pytest.approx([documented(e) for e in range(EPOCHS)], rel=1e-12)
    assert ours[0] == pytest.approx(BASE_LR * sf)
    assert ours[warmup] == pytest.approx(BASE_LR)
    assert ours[warmup + T :] == pytest.approx([eta_min] * (EPOCHS - warmup - T))


def test_warmup_sets_the_first_lr_at_construction():
    opt = glassnet_optimizer()
    schedules.LinearWarmup(opt, warmup=4, start_factor=0.25)
    assert opt.lr == pytest.approx(BASE_LR * 0.25)


SCHEDULES = {
    "StepLR": lambda o: schedules.StepLR(o, step_size=3, gamma=0.5),
    "ExponentialLR": lambda o: schedules.ExponentialLR(o, gamma=0.9),
    "CosineAnnealingLR": lambda o: schedules.CosineAnnealingLR(o, T_max=10, eta_min=0.001),
    "LinearWarmup": lambda o: schedules.LinearWarmup(o, warmup=4, start_factor=0.1),
    "LinearWarmup+cosine": lambda o: schedules.LinearWarmup(
        o, warmup=2, after=schedules.CosineAnnealingLR(o, T_max=5, eta_min=0.01)
    ),
}


def interrupted(name: str, opt_lr: float):
    """6 epochs, then optimizer and schedule rebuilt (the optimizer with ``opt_lr``) and both
    loaded from their state dicts, then 6 more; returns (those 12 lrs, 12 uninterrupted)."""
    opt = glassnet_optimizer()
    full, _ = lrs(opt, SCHEDULES[name](opt), epochs=12)

    opt = glassnet_optimizer()
    sched = SCHEDULES[name](opt)
    first, _ = lrs(opt, sched, epochs=6)
    opt_state, sched_state = opt.state_dict(), sched.state_dict()
    assert sched_state["epoch"] == 6

    opt2 = glassnet_optimizer(lr=opt_lr)
    sched2 = SCHEDULES[name](opt2)
    opt2.load_state_dict(opt_state)
    sched2.load_state_dict(sched_state)
    assert opt2.lr == opt.lr
    rest, _ = lrs(opt2, sched2, epochs=6)
    return first + rest, full


@pytest.mark.parametrize("name", list(SCHEDULES))
def test_state_dict_round_trip(name):
    resumed, full = interrupted(name, BASE_LR)
    assert resumed == full


@pytest.mark.parametrize("name", list(SCHEDULES))
def test_state_dict_is_self_contained(name):
    """The state dict alone fixes the schedule: the lr the rebuilt optimizer was created with
    (here a wrong one) does not leak into the resumed lrs, as with torch's base_lrs."""
    resumed, full = interrupted(name, 99.0)
    assert resumed == pytest.approx(full, rel=1e-12)


@pytest.mark.parametrize("case", [c for c in CASES if "eta_min" not in c])
def test_zero_base_lr_matches_torch(case):
    """An optimizer at lr = 0 (a frozen phase) stays at 0 under every schedule, as in torch.
    (With eta_min > 0 torch's cosine climbs from 0 to eta_min; glassnet's schedules scale
    base_lr, so that case is left out.)"""
    make, make_torch = CASES[case]
    opt, topt = glassnet_optimizer(lr=0.0), torch_optimizer(lr=0.0)
    ours, theirs = lrs(opt, make(opt), topt, make_torch(topt), epochs=5)
    assert ours == theirs == [0.0] * 5


# --- bad arguments: one clear error when the schedule is built, not a crash (or a NaN lr) in fit ---
S = schedules
IN_0_1 = "start_factor must be a number in \\(0, 1\\] \\(as LinearLR\\), got"
BAD = [
    ("StepLR", lambda o: S.StepLR(o, 0), "step_size must be an integer >= 1, got 0"),
    ("StepLR", lambda o: S.StepLR(o, 2.7), "step_size must be an integer >= 1, got 2.7"),
    ("StepLR", lambda o: S.StepLR(o, "3"), "step_size must be an integer >= 1, got '3'"),
    ("StepLR", lambda o: S.StepLR(o, 2, math.nan), "gamma must be a finite number > 0, got nan"),
    ("StepLR", lambda o: S.StepLR(o, 2, 0.0), "gamma must be a finite number > 0, got 0.0"),
    ("StepLR", lambda o: S.StepLR(o, 2, math.inf), "gamma must be a finite number > 0, got inf"),
    ("ExponentialLR", lambda o: S.ExponentialLR(o, -1.0), "gamma must be a finite number > 0, got -1.0"),
    ("ExponentialLR", lambda o: S.ExponentialLR(o, None), "gamma must be a finite number > 0, got None"),
    ("CosineAnnealingLR", lambda o: S.CosineAnnealingLR(o, 0), "T_max must be an integer >= 1, got 0"),
    ("CosineAnnealingLR", lambda o: S.CosineAnnealingLR(o, 4.5), "T_max must be an integer >= 1, got 4.5"),
    ("CosineAnnealingLR", lambda o: S.CosineAnnealingLR(o, 4, -0.1), "eta_min must be a finite number >= 0"),
    ("CosineAnnealingLR", lambda o: S.CosineAnnealingLR(o, 4, math.nan), "eta_min must be a finite num"),
    ("LinearWarmup", lambda o: S.LinearWarmup(o, -1), "warmup must be an integer >= 0, got -1"),
    ("LinearWarmup", lambda o: S.LinearWarmup(o, 2.5), "warmup must be an integer >= 0, got 2.5"),
    ("LinearWarmup", lambda o: S.LinearWarmup(o, 3, -1.0), f"{IN_0_1} -1.0"),
    ("LinearWarmup", lambda o: S.LinearWarmup(o, 3, 0.0), f"{IN_0_1} 0.0"),
    ("LinearWarmup", lambda o: S.LinearWarmup(o, 3, 1.5), f"{IN_0_1} 1.5"),
    ("LinearWarmup", lambda o: S.LinearWarmup(o, 3, math.nan), f"{IN_0_1} nan"),
    ("LinearWarmup", lambda o: S.LinearWarmup(o, 2, after=S.ReduceLROnPlateau(o)),
     "after cannot be a ReduceLROnPlateau, which follows a metric; it must be an epoch-wise schedule"),
    ("LinearWarmup", lambda o: S.LinearWarmup(o, 2, after=S.OneCycleLR(o, 0.1, 10, cycle_momentum=False)),
     "after cannot be a OneCycleLR, which is stepped every batch"),
    ("LinearWarmup", lambda o: S.LinearWarmup(o, 2, after=S.StepLR(glassnet_optimizer(), 2)),
     "after must schedule the same optimizer as the warm-up"),
]  # fmt: skip


@pytest.mark.parametrize(("owner", "make", "message"), BAD, ids=[m for _, _, m in BAD])
def test_schedules_refuse_bad_arguments_when_built(owner, make, message):
    opt = glassnet_optimizer()
    with pytest.raises(ValueError, match=f"^{owner}: {message}"):
        make(opt)


def test_linear_warmup_after_must_be_a_schedule():
    with pytest.raises(TypeError, match="^LinearWarmup: after must be a schedule"):
        schedules.LinearWarmup(glassnet_optimizer(), 2, after=lambda epoch: 0.1)


def test_schedules_take_the_edges_of_their_ranges_and_numpy_numbers():
    opt = glassnet_optimizer()
    assert lrs(opt, schedules.StepLR(opt, np.int64(1), gamma=np.float32(2.0)), epochs=3)[0] == pytest.approx(
        [BASE_LR, 2 * BASE_LR, 4 * BASE_LR]
    )
    opt = glassnet_optimizer()
    assert lrs(opt, schedules.CosineAnnealingLR(opt, T_max=1), epochs=3)[0] == pytest.approx([BASE_LR, 0, 0])
    opt = glassnet_optimizer()  # start_factor 1: no ramp; warmup 0: straight to after
    assert lrs(opt, schedules.LinearWarmup(opt, 2, start_factor=1.0), epochs=3)[0] == [BASE_LR] * 3
    opt = glassnet_optimizer()
    after = schedules.ExponentialLR(opt, 0.5)
    assert lrs(opt, schedules.LinearWarmup(opt, 0, after=after), epochs=3)[0] == pytest.approx(
        [BASE_LR, BASE_LR / 2, BASE_LR / 4]
    )


# --- ReduceLROnPlateau and OneCycleLR against torch -----------------------------------------------

# a metric that improves, stalls, wobbles within the threshold, improves again, then stalls
METRIC = [1.0, 0.9, 0.9, 0.95, 0.9, 0.899995, 0.899, 0.7, 0.71, 0.72, 0.73, 0.69, 0.7, 0.7, 0.71, 0.72, 0.8]
PLATEAU = {
    "defaults": {},
    "patience 1": dict(patience=1),
    "max mode": dict(mode="max", patience=2, factor=0.5),
    "abs threshold, cooldown": dict(patience=1, threshold=0.05, threshold_mode="abs", cooldown=2, factor=0.5),
    "rel threshold, min_lr": dict(patience=0, threshold=0.01, min_lr=0.05, factor=0.3),
    "eps swallows the change": dict(patience=0, factor=0.9, eps=0.1),
}


@pytest.mark.parametrize("case", list(PLATEAU))
def test_reduce_lr_on_plateau_matches_torch(case):
    kwargs = PLATEAU[case]
    opt, topt = glassnet_optimizer(), torch_optimizer()
    sched = schedules.ReduceLROnPlateau(opt, **kwargs)
    tsched = torch.optim.lr_scheduler.ReduceLROnPlateau(topt, **kwargs)
    ours, theirs = [], []
    for value in METRIC * 2:
        sched.step(value)
        topt.step()
        tsched.step(value)
        ours.append(opt.lr)
        theirs.append(topt.param_groups[0]["lr"])
    assert ours == pytest.approx(theirs, rel=1e-12, abs=1e-15)
    assert len(set(ours)) > 1 or case == "eps swallows the change"  # the case table reduces


def test_reduce_lr_on_plateau_state_round_trip_continues_identically():
    opt = glassnet_optimizer()
    sched = schedules.ReduceLROnPlateau(opt, patience=1, cooldown=1, factor=0.5)
    for value in METRIC[:7]:
        sched.step(value)
    state = sched.state_dict()
    opt2 = glassnet_optimizer()
    sched2 = schedules.ReduceLROnPlateau(opt2, patience=1, cooldown=1, factor=0.5)
    sched2.load_state_dict(state)
    for value in METRIC[7:]:
        assert sched.step(value) == sched2.step(value)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(factor=1.0), "factor must be a number in \\[0, 1\\)"),
        (dict(mode="up"), "mode must be 'min' or 'max'"),
        (dict(threshold_mode="pct"), "threshold_mode must be 'rel' or 'abs'"),
        (dict(patience=-1), "patience must be an integer >= 0"),
    ],
)
def test_reduce_lr_on_plateau_refuses_bad_arguments_naming_them(kwargs, message):
    with pytest.raises(ValueError, match=f"^ReduceLROnPlateau: {message}"):
        schedules.ReduceLROnPlateau(glassnet_optimizer(), **kwargs)


ONE_CYCLE = {
    "defaults, cos": dict(max_lr=0.5, total_steps=40),
    "linear": dict(max_lr=0.5, total_steps=37, anneal_strategy="linear", pct_start=0.25),
    "epochs x steps": dict(max_lr=1.0, epochs=4, steps_per_epoch=9, div_factor=10.0, final_div_factor=100.0),
    "three phase": dict(max_lr=0.5, total_steps=50, three_phase=True, pct_start=0.4),
    "three phase linear": dict(max_lr=0.2, total_steps=31, three_phase=True, anneal_strategy="linear"),
}


@pytest.mark.parametrize("optimizer", ["SGD momentum", "Adam", "SGD, no cycling"])
@pytest.mark.parametrize("case", list(ONE_CYCLE))
def test_one_cycle_matches_torch_lr_momentum_and_weights(case, optimizer):
    """Every step's lr and momentum (SGD's momentum, Adam's beta1) as torch's, and the weights
    after each step (so the cycled momentum is the one the update used)."""
    kwargs = dict(ONE_CYCLE[case])
    rng = np.random.default_rng(0)
    w = rng.standard_normal(5)
    p = Param(w.copy(), "W")
    tp = torch.tensor(w.copy(), requires_grad=True)
    if optimizer == "Adam":
        opt, topt, attr = optim.Adam([p], lr=0.1), torch.optim.Adam([tp], lr=0.1), "beta1"
    else:
        opt, topt, attr = (
            optim.SGD([p], lr=0.1, momentum=0.9),
            torch.optim.SGD([tp], lr=0.1, momentum=0.9),
            "momentum",
        )
    if optimizer == "SGD, no cycling":
        kwargs["cycle_momentum"] = False
    sched = schedules.OneCycleLR(opt, **kwargs)
    tsched = torch.optim.lr_scheduler.OneCycleLR(topt, **kwargs)
    total = sched.total_steps
    for step in range(total):
        group = topt.param_groups[0]
        assert opt.lr == pytest.approx(group["lr"], rel=1e-12, abs=1e-15), step
        tmomentum = group["betas"][0] if attr == "beta1" else group["momentum"]
        assert getattr(opt, attr) == pytest.approx(tmomentum, rel=1e-12), step
        g = rng.standard_normal(5)
        p.grad[...] = g
        tp.grad = torch.tensor(g.copy())
        opt.step()
        topt.step()
        sched.step()
        tsched.step()
        np.testing.assert_allclose(p.data, tp.detach().numpy(), rtol=1e-10, atol=1e-12)
    assert opt.lr == pytest.approx(topt.param_groups[0]["lr"], rel=1e-12)
    with pytest.raises(ValueError, match="more than total_steps"):
        sched.step()


def test_one_cycle_refuses_momentum_cycling_without_momentum():
    for opt in (optim.SGD([Param(np.zeros(2), "W")], lr=0.1), optim.Adagrad([Param(np.zeros(2), "W")])):
        with pytest.raises(
            ValueError, match="^OneCycleLR: cycle_momentum=True needs an optimizer with momentum"
        ):
            schedules.OneCycleLR(opt, max_lr=0.1, total_steps=10)
        schedules.OneCycleLR(opt, max_lr=0.1, total_steps=10, cycle_momentum=False)  # fine


def test_one_cycle_needs_a_length():
    with pytest.raises(ValueError, match="give total_steps, or epochs and steps_per_epoch"):
        schedules.OneCycleLR(glassnet_optimizer(), max_lr=0.1, epochs=3, cycle_momentum=False)


def test_fit_steps_one_cycle_every_batch_and_plateau_every_epoch():
    import glassnet as gn

    rng = np.random.default_rng(0)
    x = rng.standard_normal((40, 3))
    y = x @ np.array([[1.0], [-2.0], [0.5]])
    model = gn.Sequential(gn.Linear(3, 1, rng=rng))
    opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    sched = schedules.OneCycleLR(opt, max_lr=0.05, epochs=3, steps_per_epoch=4)
    history = gn.fit(
        model, gn.MSELoss(), opt, (x, y), epochs=3, batch_size=10, scheduler=sched, verbose=False
    )
    assert sched.epoch == 12
    # logged: the lr of each epoch's last batch (steps 3, 7, 11)
    assert history.history["lr"] == pytest.approx([sched.lr_at(3), sched.lr_at(7), sched.lr_at(11)])

    model = gn.Sequential(gn.Linear(3, 1, rng=rng))
    opt = optim.SGD(model.parameters(), lr=0.02)
    # a large relative threshold: most epochs do not count as improvements, so lr drops
    sched = schedules.ReduceLROnPlateau(opt, patience=0, threshold=0.5, factor=0.5, monitor="loss")
    history = gn.fit(
        model, gn.MSELoss(), opt, (x, y), epochs=6, batch_size=10, scheduler=sched, verbose=False
    )
    topt = torch_optimizer(0.02)
    tsched = torch.optim.lr_scheduler.ReduceLROnPlateau(topt, patience=0, threshold=0.5, factor=0.5)
    expected = []
    for loss in history.history["loss"]:
        expected.append(topt.param_groups[0]["lr"])
        topt.step()
        tsched.step(loss)
    assert history.history["lr"] == pytest.approx(expected, rel=1e-12)
    assert len(set(expected)) > 1
    with pytest.raises(KeyError, match="monitor='val_accuracy' is not logged"):
        gn.fit(model, gn.MSELoss(), opt, (x, y), epochs=1, verbose=False,
               scheduler=schedules.ReduceLROnPlateau(opt, monitor="val_accuracy"))  # fmt: skip


class _CrashError(Exception):
    pass


@pytest.mark.parametrize("kind", ["OneCycleLR", "ReduceLROnPlateau"])
def test_resume_mid_run_with_the_new_schedules_is_exact(tmp_path, kind):
    import glassnet as gn

    class CrashAfter(gn.Callback):
        def __init__(self, n):
            self.n, self.seen = n, 0

        def on_batch_end(self, batch, logs):
            self.seen += 1
            if self.seen == self.n:
                raise _CrashError

    rng = np.random.default_rng(0)
    x = rng.standard_normal((40, 3))
    y = (x[:, 0] > 0).astype(int)

    def run(callbacks=(), resume=False, checkpoint=None):
        model = gn.Sequential(gn.Linear(3, 2, rng=np.random.default_rng(1)))
        opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        if kind == "OneCycleLR":
            sched = schedules.OneCycleLR(opt, max_lr=0.3, epochs=5, steps_per_epoch=4)
        else:
            sched = schedules.ReduceLROnPlateau(opt, patience=0, threshold=0.2, factor=0.5, monitor="loss")
        every, resume_from = (1 if checkpoint else None), (checkpoint if resume else None)
        gn.fit(model, gn.CrossEntropyLoss(), opt, (x, y), epochs=5, batch_size=10, rng=2, scheduler=sched,
               verbose=False, callbacks=list(callbacks), checkpoint=checkpoint, checkpoint_every=every,
               resume_from=resume_from)  # fmt: skip
        return model.layers[0].W.data.copy(), opt.lr

    expected = run()
    with pytest.raises(_CrashError):
        run([CrashAfter(11)], checkpoint=tmp_path)
    got = run(resume=True, checkpoint=tmp_path)
    np.testing.assert_array_equal(got[0], expected[0])
    assert got[1] == expected[1]
