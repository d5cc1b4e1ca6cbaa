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
