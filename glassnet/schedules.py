"""Learning-rate schedules, stepped once per epoch (as PyTorch's ``lr_scheduler``).

Each schedule is a closed form ``lr_at(epoch)`` of the optimizer's initial learning rate
``base_lr``; ``step()`` advances the epoch and sets ``optimizer.lr = lr_at(epoch)``. Pass one
to ``gn.fit(..., scheduler=...)`` or call ``step()`` yourself after each epoch.

Two follow PyTorch's other kinds: ``ReduceLROnPlateau`` reads a metric (``fit`` passes it the
epoch's logs; call ``step(value)`` yourself), and ``OneCycleLR`` is stepped after every batch
(``per_batch = True``: ``fit`` steps it after each optimizer step).
"""

from __future__ import annotations

import math

from .module import check_arg


class Schedule:
    per_batch = False  # True: stepped after every optimizer step, not every epoch

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


def _check_gamma(owner: str, gamma) -> None:
    check_arg(owner, "gamma", gamma, lambda v: 0 < v < math.inf, "a finite number > 0")


class StepLR(Schedule):
    """lr = base_lr * gamma ** (epoch // step_size); ``step_size`` an integer >= 1, ``gamma`` a
    finite number > 0."""

    def __init__(self, optimizer, step_size: int, gamma: float = 0.1) -> None:
        check_arg("StepLR", "step_size", step_size, lambda v: v >= 1, "an integer >= 1", int)
        _check_gamma("StepLR", gamma)
        super().__init__(optimizer)
        self.step_size, self.gamma = int(step_size), float(gamma)

    def lr_at(self, epoch):
        return self.base_lr * self.gamma ** (epoch // self.step_size)


class ExponentialLR(Schedule):
    """lr = base_lr * gamma ** epoch; ``gamma`` a finite number > 0."""

    def __init__(self, optimizer, gamma: float) -> None:
        _check_gamma("ExponentialLR", gamma)
        super().__init__(optimizer)
        self.gamma = float(gamma)

    def lr_at(self, epoch):
        return self.base_lr * self.gamma**epoch


class CosineAnnealingLR(Schedule):
    """lr = eta_min + (base_lr - eta_min) (1 + cos(pi epoch / T_max)) / 2, flat after T_max;
    ``T_max`` an integer >= 1, ``eta_min`` a finite number >= 0."""

    def __init__(self, optimizer, T_max: int, eta_min: float = 0.0) -> None:  # noqa: N803
        check_arg("CosineAnnealingLR", "T_max", T_max, lambda v: v >= 1, "an integer >= 1", int)
        check_arg(
            "CosineAnnealingLR", "eta_min", eta_min, lambda v: 0 <= v < math.inf, "a finite number >= 0"
        )
        super().__init__(optimizer)
        self.T_max, self.eta_min = int(T_max), float(eta_min)

    def lr_at(self, epoch):
        e = min(epoch, self.T_max)
        return self.eta_min + (self.base_lr - self.eta_min) * (1 + math.cos(math.pi * e / self.T_max)) / 2


class LinearWarmup(Schedule):
    """Ramp linearly from ``start_factor * base_lr`` to ``base_lr`` over ``warmup`` epochs,
    then follow ``after`` (another schedule on the same optimizer), shifted by ``warmup``.

    With ``after=None`` this is PyTorch's ``LinearLR(start_factor, 1.0, total_iters=warmup)``;
    ``start_factor`` is in (0, 1], as LinearLR requires, and ``warmup`` an integer >= 0 (0: no
    warm-up). Build ``after`` first, as in ``LinearWarmup(opt, 5, after=CosineAnnealingLR(opt, 45))``,
    so that it records the optimizer's initial learning rate, not the warm-up's first one.
    ``after`` must be an epoch-wise schedule with a closed form on the same optimizer (StepLR,
    ExponentialLR, CosineAnnealingLR): ReduceLROnPlateau, which follows a metric, and
    OneCycleLR, stepped after every batch, are refused (as a ``ValueError`` when built).
    """

    def __init__(
        self, optimizer, warmup: int, start_factor: float = 0.1, after: Schedule | None = None
    ) -> None:
        owner = "LinearWarmup"
        check_arg(owner, "warmup", warmup, lambda v: v >= 0, "an integer >= 0", int)
        check_arg(
            owner, "start_factor", start_factor, lambda v: 0 < v <= 1, "a number in (0, 1] (as LinearLR)"
        )
        if after is not None:
            if not isinstance(after, Schedule):
                raise TypeError(
                    f"{owner}: after must be a schedule (such as CosineAnnealingLR), got {after!r}"
                )
            if isinstance(after, ReduceLROnPlateau) or after.per_batch:
                why = "follows a metric" if isinstance(after, ReduceLROnPlateau) else "is stepped every batch"
                raise ValueError(
                    f"{owner}: after cannot be a {type(after).__name__}, which {why}; it must be an "
                    "epoch-wise schedule with a closed form (StepLR, ExponentialLR, CosineAnnealingLR)"
                )
            if after.optimizer is not optimizer:
                raise ValueError(f"{owner}: after must schedule the same optimizer as the warm-up")
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


class ReduceLROnPlateau(Schedule):
    """Multiply the learning rate by ``factor`` when a metric stops improving (PyTorch's).

    ``step(value)`` after each epoch: ``value`` improves on the best so far when it is below
    best * (1 - threshold) (``mode="min"``, ``threshold_mode="rel"``), below best - threshold
    ("abs"); above best * (1 + threshold) or best + threshold for ``mode="max"``. After more
    than ``patience`` epochs in a row without improvement, lr = max(lr * factor, min_lr)
    (kept if that changes it by no more than ``eps``), then ``cooldown`` epochs in which bad
    epochs are not counted.

    In ``fit`` it reads ``monitor`` from the epoch's logs (default "val_loss"; "loss" without
    validation data). ``step`` also takes the logs dict itself, which is what fit passes.
    """

    def __init__(self, optimizer, mode: str = "min", factor: float = 0.1, patience: int = 10,
                 threshold: float = 1e-4, threshold_mode: str = "rel", cooldown: int = 0,
                 min_lr: float = 0.0, eps: float = 1e-8, *, monitor: str = "val_loss") -> None:  # fmt: skip
        owner = "ReduceLROnPlateau"
        if mode not in ("min", "max"):
            raise ValueError(f"{owner}: mode must be 'min' or 'max', got {mode!r}")
        if threshold_mode not in ("rel", "abs"):
            raise ValueError(f"{owner}: threshold_mode must be 'rel' or 'abs', got {threshold_mode!r}")
        check_arg(owner, "factor", factor, lambda v: 0 <= v < 1, "a number in [0, 1) (PyTorch: factor < 1)")
        check_arg(owner, "patience", patience, lambda v: v >= 0, "an integer >= 0", int)
        check_arg(owner, "cooldown", cooldown, lambda v: v >= 0, "an integer >= 0", int)
        for name, value in (("threshold", threshold), ("min_lr", min_lr), ("eps", eps)):
            check_arg(owner, name, value, lambda v: 0 <= v < math.inf, "a finite number >= 0")
        if not isinstance(monitor, str):
            raise TypeError(f"{owner}: monitor must be the name of a logged metric, got {monitor!r}")
        super().__init__(optimizer)
        self.mode, self.factor, self.patience = mode, float(factor), int(patience)
        self.threshold, self.threshold_mode = float(threshold), threshold_mode
        self.cooldown, self.min_lr, self.eps, self.monitor = int(cooldown), float(min_lr), float(eps), monitor
        self.best = math.inf if mode == "min" else -math.inf
        self.num_bad_epochs = self.cooldown_counter = 0

    def lr_at(self, epoch):
        raise TypeError("ReduceLROnPlateau has no closed form: its learning rate follows the metric")

    def is_better(self, a: float, best: float) -> bool:
        if self.mode == "min":
            return a < (
                best * (1.0 - self.threshold) if self.threshold_mode == "rel" else best - self.threshold
            )
        return a > (best * (1.0 + self.threshold) if self.threshold_mode == "rel" else best + self.threshold)

    def value_from(self, logs: dict) -> float:
        """The monitored metric from fit's epoch logs ("loss" stands in for a missing
        "val_loss", as there is no validation data)."""
        key = self.monitor
        if key not in logs and key == "val_loss":
            key = "loss"
        if key not in logs:
            raise KeyError(
                f"ReduceLROnPlateau: monitor={self.monitor!r} is not logged; logged: {sorted(logs)}"
            )
        return logs[key]

    def step(self, metrics=None) -> float:
        if metrics is None:
            raise TypeError("ReduceLROnPlateau.step needs the metric's value (PyTorch's step(metrics))")
        current = float(self.value_from(metrics) if isinstance(metrics, dict) else metrics)
        self.epoch += 1
        if self.is_better(current, self.best):
            self.best, self.num_bad_epochs = current, 0
        else:
            self.num_bad_epochs += 1
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.num_bad_epochs = 0  # bad epochs in the cooldown do not count
        if self.num_bad_epochs > self.patience:
            old = self.optimizer.lr
            new = max(old * self.factor, self.min_lr)
            if old - new > self.eps:
                self.optimizer.lr = new
            self.cooldown_counter, self.num_bad_epochs = self.cooldown, 0
        return self.optimizer.lr

    def state_dict(self) -> dict:
        return {**super().state_dict(), "lr": self.optimizer.lr, "best": self.best,
                "num_bad_epochs": self.num_bad_epochs, "cooldown_counter": self.cooldown_counter}  # fmt: skip

    def load_state_dict(self, state: dict) -> None:
        self.epoch, self.base_lr = int(state["epoch"]), float(state["base_lr"])
        self.best = float(state["best"])
        self.num_bad_epochs, self.cooldown_counter = (
            int(state["num_bad_epochs"]),
            int(state["cooldown_counter"]),
        )
        self.optimizer.lr = float(state["lr"])


class OneCycleLR(Schedule):
    """The 1cycle policy (Smith & Topin), PyTorch's ``OneCycleLR``, stepped after every batch.

    Over ``total_steps`` (or ``epochs * steps_per_epoch``) steps the learning rate goes from
    max_lr / div_factor up to ``max_lr`` in the first ``pct_start`` of them, then down to
    max_lr / (div_factor * final_div_factor), annealed by cosine ("cos") or linearly; with
    ``three_phase`` it comes back to the initial lr symmetrically, then anneals to the minimum.
    Phase k ends at step e_k (pct_start T - 1, T - 1; three-phase: pct_start T - 1,
    2 pct_start T - 2, T - 1) and at step t within it
        lr = anneal(start, end, (t - e_{k-1}) / (e_k - e_{k-1})).

    ``cycle_momentum`` (default True, as torch) moves the momentum the other way, between
    ``max_momentum`` and ``base_momentum``: SGD's or RMSprop's ``momentum``, Adam's beta1.
    The optimizer must have momentum to cycle: an SGD built with momentum=0 is refused (torch
    would silently switch momentum on), as is Adagrad; pass cycle_momentum=False for those.
    Building it sets the optimizer's lr (and momentum) to the first step's, as torch does.
    """

    per_batch = True

    def __init__(self, optimizer, max_lr: float, total_steps: int | None = None, epochs: int | None = None,
                 steps_per_epoch: int | None = None, pct_start: float = 0.3, anneal_strategy: str = "cos",
                 cycle_momentum: bool = True, base_momentum: float = 0.85, max_momentum: float = 0.95,
                 div_factor: float = 25.0, final_div_factor: float = 1e4,
                 three_phase: bool = False) -> None:  # fmt: skip
        owner = "OneCycleLR"
        if total_steps is not None:
            check_arg(owner, "total_steps", total_steps, lambda v: v > 0, "an integer > 0", int)
            self.total_steps = int(total_steps)
        elif epochs is not None and steps_per_epoch is not None:
            check_arg(owner, "epochs", epochs, lambda v: v > 0, "an integer > 0", int)
            check_arg(owner, "steps_per_epoch", steps_per_epoch, lambda v: v > 0, "an integer > 0", int)
            self.total_steps = int(epochs) * int(steps_per_epoch)
        else:
            raise ValueError(f"{owner}: give total_steps, or epochs and steps_per_epoch")
        check_arg(owner, "max_lr", max_lr, lambda v: 0 <= v < math.inf, "a finite number >= 0")
        check_arg(owner, "pct_start", pct_start, lambda v: 0 <= v <= 1, "a number in [0, 1]")
        for name, value in (("div_factor", div_factor), ("final_div_factor", final_div_factor)):
            check_arg(owner, name, value, lambda v: 0 < v < math.inf, "a finite number > 0")
        if anneal_strategy not in ("cos", "linear"):
            raise ValueError(f"{owner}: anneal_strategy must be 'cos' or 'linear', got {anneal_strategy!r}")
        self.max_lr, self.pct_start, self.anneal_strategy = float(max_lr), float(pct_start), anneal_strategy
        self.initial_lr = self.max_lr / div_factor
        self.min_lr = self.initial_lr / final_div_factor
        self.div_factor, self.final_div_factor, self.three_phase = (
            float(div_factor),
            float(final_div_factor),
            three_phase,
        )
        self.cycle_momentum = bool(cycle_momentum)
        self.momentum_attr = None
        if self.cycle_momentum:
            for name, value in (("base_momentum", base_momentum), ("max_momentum", max_momentum)):
                check_arg(owner, name, value, lambda v: 0 <= v < 1, "a number in [0, 1)")
            self.momentum_attr = self._momentum_of(optimizer)
        self.base_momentum, self.max_momentum = float(base_momentum), float(max_momentum)
        T, p = self.total_steps, self.pct_start  # noqa: N806
        i, a, m = self.initial_lr, self.max_lr, self.min_lr
        hi, lo = self.max_momentum, self.base_momentum
        if three_phase:
            self.phases = [(p * T - 1, i, a, hi, lo), (2 * p * T - 2, a, i, lo, hi), (T - 1, i, m, hi, hi)]
        else:
            self.phases = [(p * T - 1, i, a, hi, lo), (T - 1, a, m, lo, hi)]
        super().__init__(optimizer)
        self._set(0)
        self.trained_lr = optimizer.lr  # the lr of the latest step taken (fit logs it)

    @staticmethod
    def _momentum_of(optimizer) -> str:
        if hasattr(optimizer, "beta1"):
            return "beta1"
        if getattr(optimizer, "momentum", 0):
            return "momentum"
        raise ValueError(
            f"OneCycleLR: cycle_momentum=True needs an optimizer with momentum (SGD or RMSprop built "
            f"with momentum > 0, or Adam/AdamW's beta1); {type(optimizer).__name__} has none: build it "
            "with momentum, or pass cycle_momentum=False"
        )

    def _anneal(self, start: float, end: float, pct: float) -> float:
        if self.anneal_strategy == "cos":
            return end + (start - end) / 2.0 * (math.cos(math.pi * pct) + 1)
        return (end - start) * pct + start

    def values_at(self, step: int) -> tuple[float, float]:
        """(lr, momentum) at ``step`` (0 .. total_steps), as torch's get_lr."""
        if step > self.total_steps:
            raise ValueError(
                f"OneCycleLR: stepped {step} times, more than total_steps={self.total_steps} "
                "(fit more epochs than the schedule was built for?)"
            )
        start = 0.0
        for k, (end, lr0, lr1, m0, m1) in enumerate(self.phases):
            if step <= end or k == len(self.phases) - 1:
                pct = (step - start) / (end - start)
                return self._anneal(lr0, lr1, pct), self._anneal(m0, m1, pct)
            start = end
        raise AssertionError("unreachable")

    def lr_at(self, epoch):
        return self.values_at(epoch)[0]

    def _set(self, step: int) -> None:
        lr, momentum = self.values_at(step)
        self.optimizer.lr = lr
        if self.momentum_attr is not None:
            setattr(self.optimizer, self.momentum_attr, momentum)

    def step(self) -> float:
        self.trained_lr = self.optimizer.lr
        self.epoch += 1
        self._set(self.epoch)
        return self.optimizer.lr

    def load_state_dict(self, state: dict) -> None:
        self.epoch, self.base_lr = int(state["epoch"]), float(state["base_lr"])
        self._set(self.epoch)
        self.trained_lr = self.optimizer.lr if self.epoch == 0 else self.values_at(self.epoch - 1)[0]
