"""Learning-rate schedules, stepped once per epoch (as PyTorch's ``lr_scheduler``).

Each schedule is a closed form ``lr_at(epoch)`` of the optimizer's initial learning rate
``base_lr``; ``step()`` advances the epoch and sets ``optimizer.lr = lr_at(epoch)``. Pass one
to ``gn.fit(..., scheduler=...)`` or call ``step()`` yourself after each epoch.
"""

from __future__ import annotations

import math


class Schedule:
    def __init__(self, optimizer) -> None:
        self.optimizer = optimizer
        self.base_lr = optimizer.lr
        self.epoch = 0

    def lr_at(self, epoch: int) -> float:
        raise NotImplementedError

    def step(self) -> float:
        self.epoch += 1
        self.optimizer.lr = self.lr_at(self.epoch)
        return self.optimizer.lr

    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "base_lr": self.base_lr}

    def load_state_dict(self, state: dict) -> None:
        self.epoch, self.base_lr = int(state["epoch"]), float(state["base_lr"])
        self.optimizer.lr = self.lr_at(self.epoch)


class StepLR(Schedule):
    """lr = base_lr * gamma ** (epoch // step_size)."""

    def __init__(self, optimizer, step_size: int, gamma: float = 0.1) -> None:
        super().__init__(optimizer)
        self.step_size, self.gamma = int(step_size), float(gamma)

    def lr_at(self, epoch):
        return self.base_lr * self.gamma ** (epoch // self.step_size)


class ExponentialLR(Schedule):
    """lr = base_lr * gamma ** epoch."""

    def __init__(self, optimizer, gamma: float) -> None:
        super().__init__(optimizer)
        self.gamma = float(gamma)

    def lr_at(self, epoch):
        return self.base_lr * self.gamma**epoch


class CosineAnnealingLR(Schedule):
    """lr = eta_min + (base_lr - eta_min) (1 + cos(pi epoch / T_max)) / 2, flat after T_max."""

    def __init__(self, optimizer, T_max: int, eta_min: float = 0.0) -> None:  # noqa: N803
        super().__init__(optimizer)
        self.T_max, self.eta_min = int(T_max), float(eta_min)

    def lr_at(self, epoch):
        e = min(epoch, self.T_max)
        return self.eta_min + (self.base_lr - self.eta_min) * (1 + math.cos(math.pi * e / self.T_max)) / 2


class LinearWarmup(Schedule):
    """Ramp linearly from ``start_factor * base_lr`` to ``base_lr`` over ``warmup`` epochs,
    then follow ``after`` (another schedule on the same optimizer), shifted by ``warmup``.

    With ``after=None`` this is PyTorch's ``LinearLR(start_factor, 1.0, total_iters=warmup)``.
    Build ``after`` first, as in ``LinearWarmup(opt, 5, after=CosineAnnealingLR(opt, 45))``,
    so that it records the optimizer's initial learning rate, not the warm-up's first one.
    """

    def __init__(
        self, optimizer, warmup: int, start_factor: float = 0.1, after: Schedule | None = None
    ) -> None:
        super().__init__(optimizer)
        self.warmup, self.start_factor, self.after = int(warmup), float(start_factor), after
        optimizer.lr = self.lr_at(0)

    def lr_at(self, epoch):
        if epoch < self.warmup:
            return self.base_lr * (self.start_factor + (1.0 - self.start_factor) * epoch / self.warmup)
        return self.base_lr if self.after is None else self.after.lr_at(epoch - self.warmup)

    def state_dict(self) -> dict:
        state = super().state_dict()
        if self.after is not None:
            state["after"] = self.after.state_dict()
        return state

    def load_state_dict(self, state: dict) -> None:
        if self.after is not None:
            self.after.load_state_dict(state["after"])
        super().load_state_dict(state)
