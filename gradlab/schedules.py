"""Chapter 4's learning-rate schedules as closed formulas of the step k, each what ``torch.optim.lr_scheduler`` does.

A schedule is a frozen dataclass with PyTorch's argument names and defaults. :func:`lr_at` gives η_k, the learning
rate of optimizer step k = 0, 1, …: what PyTorch's scheduler holds after k calls of ``step()``, one per optimizer
step, for an optimizer built with ``base_lr`` (for :class:`OneCycle`, the peak). ``to_torch(optimizer)`` builds
PyTorch's scheduler, which experiments use. Where PyTorch multiplies the previous η at each step (its chainable
form) the two differ by rounding: at most 2e-13 relative over 3T_max steps with T_max = 1000, 8e-12 with
T_max = 10000 and η_min > 0. ReduceLROnPlateau follows the losses, not k: it is in :mod:`gradlab.plateau`.
"""
from __future__ import annotations

import math
import operator
from dataclasses import asdict, dataclass
from typing import ClassVar, Union

import torch
from torch.optim import Optimizer, lr_scheduler

__all__ = ["Step", "MultiStep", "Exponential", "Cosine", "Warmup", "WarmupCosine", "OneCycle", "WarmRestarts", "Schedule",
           "lr_at", "momentum_at", "torch_trace"]


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise ValueError(message)


def _whole(value, name: str, least: int) -> None:
    _check(isinstance(value, int) and value >= least, f"{name} must be a whole number ≥ {least}, got {value!r}")


def _cosine(k: int, period: int, base_lr: float, eta_min: float) -> float:
    return eta_min + (base_lr - eta_min) * (1 + math.cos(math.pi * k / period)) / 2  # PyTorch's, term for term


@dataclass(frozen=True)
class _Schedule:
    """A schedule: its formula and PyTorch's scheduler (by default the one named ``torch_name``, fields as kwargs)."""

    torch_name: ClassVar[str]

    def lr(self, k: int, base_lr: float) -> float:
        """η_k for an optimizer built with ``base_lr`` (:func:`lr_at` checks the arguments first)."""
        raise NotImplementedError

    def to_torch(self, optimizer: Optimizer) -> lr_scheduler.LRScheduler:
        """PyTorch's scheduler for ``optimizer``, to step once after each optimizer step."""
        return getattr(lr_scheduler, self.torch_name)(optimizer, **asdict(self))


@dataclass(frozen=True)
class Step(_Schedule):
    """StepLR: η_k = η γ^⌊k / step_size⌋."""

    torch_name = "StepLR"
    step_size: int
    gamma: float = 0.1

    def __post_init__(self):
        _whole(self.step_size, "step_size", 1)
        _check(self.gamma > 0, f"gamma must be positive, got {self.gamma}")

    def lr(self, k: int, base_lr: float) -> float:
        return base_lr * self.gamma ** (k // self.step_size)


@dataclass(frozen=True)
class MultiStep(_Schedule):
    """MultiStepLR: η_k = η γ^(number of milestones ≤ k); in any order, repeats count, one at 0 acts at once."""

    torch_name = "MultiStepLR"
    milestones: tuple[int, ...]
    gamma: float = 0.1

    def __post_init__(self):
        object.__setattr__(self, "milestones", tuple(self.milestones))  # a list would leave the config mutable
        for m in self.milestones:  # PyTorch's step() never reaches a negative one, yet its step(epoch) counts it
            _whole(m, "a milestone", 0)
        _check(self.gamma > 0, f"gamma must be positive, got {self.gamma}")

    def lr(self, k: int, base_lr: float) -> float:
        return base_lr * self.gamma ** sum(m <= k for m in self.milestones)


@dataclass(frozen=True)
class Exponential(_Schedule):
    """ExponentialLR: η_k = η γ^k (γ > 1 grows it, as a learning-rate range test does)."""

    torch_name = "ExponentialLR"
    gamma: float

    def __post_init__(self):
        _check(self.gamma > 0, f"gamma must be positive, got {self.gamma}")

    def lr(self, k: int, base_lr: float) -> float:
        return base_lr * self.gamma**k


@dataclass(frozen=True)
class Cosine(_Schedule):
    """CosineAnnealingLR: η_k = η_min + ½(η − η_min)(1 + cos(πk / T_max)), for every k.

    It does not stay at η_min after T_max: it climbs back to η at 2T_max and falls again by 3T_max. PyTorch's
    chainable form follows the same periodic curve; it special-cases k ≡ T_max + 1 only to avoid dividing 0 by 0.
    """

    torch_name = "CosineAnnealingLR"
    T_max: int
    eta_min: float = 0.0

    def __post_init__(self):
        _whole(self.T_max, "T_max", 1)
        _check(self.eta_min >= 0, f"eta_min must be ≥ 0, got {self.eta_min}")

    def lr(self, k: int, base_lr: float) -> float:
        return _cosine(k, self.T_max, base_lr, self.eta_min)


@dataclass(frozen=True)
class Warmup(_Schedule):
    """LinearLR: η_k = η(s + (1 − s)k / T_w) for k < T_w, then η itself: warmup, then a constant rate."""

    torch_name = "LinearLR"
    warmup_steps: int
    start_factor: float = 1 / 3

    def __post_init__(self):
        _whole(self.warmup_steps, "warmup_steps", 1)
        _check(0 < self.start_factor <= 1, f"start_factor must be in (0, 1], got {self.start_factor}")

    def lr(self, k: int, base_lr: float) -> float:
        return base_lr * (self.start_factor + (1 - self.start_factor) * min(k, self.warmup_steps) / self.warmup_steps)

    def to_torch(self, optimizer: Optimizer) -> lr_scheduler.LRScheduler:
        """PyTorch's scheduler for ``optimizer``, to step once after each optimizer step."""
        return lr_scheduler.LinearLR(optimizer, self.start_factor, total_iters=self.warmup_steps)


@dataclass(frozen=True)
class WarmupCosine(_Schedule):
    """Linear warmup over T_w steps, then cosine to η_min at T: ``SequentialLR([LinearLR, CosineAnnealingLR])``.

    LinearLR cannot start from 0 (``start_factor`` > 0): η_k = η(s + (1 − s)k / T_w) for k < T_w, and η itself
    is first reached at k = T_w, where the cosine (with T_max = T − T_w) begins.
    """

    total_steps: int
    warmup_steps: int
    start_factor: float = 1 / 3
    eta_min: float = 0.0

    def __post_init__(self):
        _whole(self.warmup_steps, "warmup_steps", 0)
        _check(isinstance(self.total_steps, int) and self.warmup_steps < self.total_steps,
               f"warmup ({self.warmup_steps} steps) must end before the run ({self.total_steps!r} steps) does")
        _check(0 < self.start_factor <= 1, f"start_factor must be in (0, 1], got {self.start_factor}")
        _check(self.eta_min >= 0, f"eta_min must be ≥ 0, got {self.eta_min}")

    def lr(self, k: int, base_lr: float) -> float:
        if k < self.warmup_steps:
            return base_lr * (self.start_factor + (1 - self.start_factor) * k / self.warmup_steps)
        return _cosine(k - self.warmup_steps, self.total_steps - self.warmup_steps, base_lr, self.eta_min)

    def to_torch(self, optimizer: Optimizer) -> lr_scheduler.LRScheduler:
        """PyTorch's scheduler for ``optimizer``, to step once after each optimizer step."""
        warmup = lr_scheduler.LinearLR(optimizer, self.start_factor, total_iters=self.warmup_steps)
        decay = lr_scheduler.CosineAnnealingLR(optimizer, self.total_steps - self.warmup_steps, self.eta_min)
        return lr_scheduler.SequentialLR(optimizer, [warmup, decay], milestones=[self.warmup_steps])


@dataclass(frozen=True)
class OneCycle(_Schedule):
    """OneCycleLR: from η / div_factor up to the peak η, then down to η / (div_factor · final_div_factor).

    Momentum (SGD's ``momentum``, Adam's β₁) moves the other way, base_momentum at the peak. PyTorch allows
    k = total_steps, past the last optimizer step, extrapolating the last phase (below 0 with "linear"). Stricter
    than PyTorch, each phase must last a step: it divides by 0 when pct_start · total_steps = 1.
    """

    total_steps: int
    pct_start: float = 0.3
    anneal_strategy: str = "cos"
    cycle_momentum: bool = True
    base_momentum: float = 0.85
    max_momentum: float = 0.95
    div_factor: float = 25.0
    final_div_factor: float = 1e4
    three_phase: bool = False

    def __post_init__(self):
        _whole(self.total_steps, "total_steps", 2)
        _check(self.anneal_strategy in ("cos", "linear"),
               f"anneal_strategy is 'cos' or 'linear', not {self.anneal_strategy!r}")
        _check(min(self.div_factor, self.final_div_factor) > 0, "div_factor and final_div_factor must be positive")
        ends = [0.0] + [phase[0] for phase in self._phases()]
        _check(0 <= self.pct_start <= 1 and all(a < b for a, b in zip(ends, ends[1:])),
               f"pct_start = {self.pct_start} leaves a phase without steps (they end at steps {ends[1:]})")

    def _phases(self) -> list[tuple]:
        """(last step, (lr from, lr to), (momentum from, momentum to)) of each phase, as PyTorch lays them out."""
        up = float(self.pct_start * self.total_steps) - 1  # a float: 0.3 · 10 − 1 = 2.0000000000000004
        if self.three_phase:
            return [(up, ("initial", "max"), ("max", "base")),
                    (float(2 * self.pct_start * self.total_steps) - 2, ("max", "initial"), ("base", "max")),
                    (self.total_steps - 1, ("initial", "min"), ("max", "max"))]
        return [(up, ("initial", "max"), ("max", "base")), (self.total_steps - 1, ("max", "min"), ("base", "max"))]

    def _anneal(self, k: int, values: dict[str, float], which: int) -> float:
        """Step k's value between the ends of its phase (``which``: 1 for learning rates, 2 for momenta)."""
        _check(k <= self.total_steps, f"step {k} is past total_steps = {self.total_steps}")
        start, phases = 0.0, self._phases()
        for phase in phases:
            if k <= phase[0] or phase is phases[-1]:
                break
            start = phase[0]
        a, b = (values[name] for name in phase[which])
        pct = (k - start) / (phase[0] - start)
        if self.anneal_strategy == "cos":  # so η_0 = 0.0040000000000000036, not 0.004, for a peak of 0.1
            return b + (a - b) / 2.0 * (math.cos(math.pi * pct) + 1)
        return (b - a) * pct + a

    def lr(self, k: int, base_lr: float) -> float:
        initial = base_lr / self.div_factor
        return self._anneal(k, {"initial": initial, "max": base_lr, "min": initial / self.final_div_factor}, 1)

    def to_torch(self, optimizer: Optimizer) -> lr_scheduler.LRScheduler:
        """PyTorch's scheduler for ``optimizer``, whose learning rate is the peak, to step after each optimizer step."""
        return lr_scheduler.OneCycleLR(optimizer, [g["lr"] for g in optimizer.param_groups], **asdict(self))


@dataclass(frozen=True)
class WarmRestarts(_Schedule):
    """CosineAnnealingWarmRestarts (SGDR): cosine over T_0 steps, back to η, each next period T_mult times longer."""

    torch_name = "CosineAnnealingWarmRestarts"
    T_0: int
    T_mult: int = 1
    eta_min: float = 0.0

    def __post_init__(self):
        _whole(self.T_0, "T_0", 1)
        _whole(self.T_mult, "T_mult", 1)
        _check(self.eta_min >= 0, f"eta_min must be ≥ 0, got {self.eta_min}")

    def lr(self, k: int, base_lr: float) -> float:
        period = self.T_0
        if self.T_mult == 1:
            k %= period
        while k >= period:  # in whole numbers: PyTorch's step(epoch) takes a float log, which can miss a restart
            k, period = k - period, period * self.T_mult
        return _cosine(k, period, base_lr, self.eta_min)


Schedule = Union[Step, MultiStep, Exponential, Cosine, Warmup, WarmupCosine, OneCycle, WarmRestarts]


def _step(k) -> int:
    try:
        k = operator.index(k)
    except TypeError:
        raise ValueError(f"the step k must be a whole number, got {k!r}") from None
    _check(k >= 0, f"the step k must be ≥ 0, got {k}")
    return k


def lr_at(schedule: Schedule, k: int, base_lr: float) -> float:
    """η_k: the learning rate of optimizer step k under ``schedule``, for an optimizer built with ``base_lr``."""
    if not isinstance(schedule, _Schedule):
        raise TypeError(f"not a schedule of the step: {schedule!r} (for ReduceLROnPlateau see gradlab.plateau)")
    _check(base_lr > 0, f"base_lr must be positive, got {base_lr}")
    return schedule.lr(_step(k), base_lr)


def momentum_at(schedule: OneCycle, k: int) -> float:
    """The momentum (SGD's ``momentum``, Adam's β₁) that one-cycle gives step k."""
    if not isinstance(schedule, OneCycle):
        raise TypeError(f"only one-cycle sets the momentum, not {schedule!r}")
    _check(schedule.cycle_momentum, "with cycle_momentum=False the optimizer's own momentum is left alone")
    return schedule._anneal(_step(k), {"max": schedule.max_momentum, "base": schedule.base_momentum}, 2)


def torch_trace(schedule: Schedule, steps: int, base_lr: float = 0.1,
                kind: str = "sgd") -> tuple[list[float], list[float]]:
    """η and the momentum (SGD's, or Adam's β₁ for ``kind="adam"``) of steps 0 to ``steps`` under PyTorch's scheduler.

    The scheduler drives a real optimizer of one parameter, stepped once per step after the optimizer, as in
    training; nothing moves, since the parameter has no gradient. Chapter 4 sets this beside :func:`lr_at`.
    """
    _check(kind in ("sgd", "adam"), f"kind is 'sgd' or 'adam', not {kind!r}")
    _whole(steps, "steps", 0)
    params = [torch.zeros(1, requires_grad=True)]
    opt = torch.optim.Adam(params, lr=base_lr) if kind == "adam" else torch.optim.SGD(params, lr=base_lr, momentum=0.9)
    scheduler = schedule.to_torch(opt)
    lrs, momenta = [], []
    for k in range(steps + 1):
        if k:
            opt.step()  # no gradient: it moves nothing, yet keeps the order of the two steps right
            scheduler.step()
        group = opt.param_groups[0]
        lrs.append(group["lr"])
        momenta.append(group["betas"][0] if kind == "adam" else group["momentum"])
    return lrs, momenta
