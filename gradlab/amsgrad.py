"""When Adam fails (Chapter 3): Reddi, Kale and Kumar's online problem, where Adam goes to the worst point.

On x ∈ [−1, 1] the losses come in cycles of three, f_t(x) = Cx when t mod 3 = 1 and −x otherwise (t = 1,
2, …), C > 2: over a cycle they add up to (C − 2)x, smallest at x* = −1. With β1 = 0 and β2 = 1/(1 + C²)
(their Theorem 1) Adam's v forgets the large gradient C within a step, so the one step that pushes x down,
ηC/√v, is shorter than the two that push it up, η/√v each: x drifts to +1. AMSGrad divides by the largest v
so far, which keeps the memory of C, and goes to −1. Both are ``torch.optim.Adam`` (``amsgrad=False/True``),
projected onto [−1, 1] by clamping after each step.

With β1 = 0, a constant η, and x away from the ends, v settles into a cycle (a after C, b after the first −1,
c after the second): a = β2c + (1 − β2)C², b = β2a + (1 − β2), c = β2b + (1 − β2), so
a = (β2(1 − β2²) + (1 − β2)C²)/(1 − β2³). Each cycle then moves x by −η(C/√a − 1/√b − 1/√c) under Adam and
by −η(C − 2)/√a under AMSGrad, whose largest v is a (:func:`cycle_drift`).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = ["gradient", "cycle_drift", "AMSGradConfig", "OnlineRun", "adam_vs_amsgrad"]

SCHEDULES = ("constant", "1/sqrt(t)")


def gradient(t: int, c: float) -> float:
    """f_t'(x): C when t mod 3 = 1, −1 otherwise (t counts from 1)."""
    return c if t % 3 == 1 else -1.0


def cycle_drift(c: float, beta2: float, lr: float, amsgrad: bool = False) -> float:
    """x's change over one cycle of three steps once v is periodic (β1 = 0, constant η, ε → 0, no projection)."""
    a = (beta2 * (1 - beta2**2) + (1 - beta2) * c * c) / (1 - beta2**3)
    if amsgrad:
        return -lr * (c - 2) / math.sqrt(a)
    b = beta2 * a + (1 - beta2)
    cc = beta2 * b + (1 - beta2)
    return -lr * (c / math.sqrt(a) - 1 / math.sqrt(b) - 1 / math.sqrt(cc))


@dataclass(frozen=True)
class AMSGradConfig:
    """The problem's C, Adam's β1 and β2 (None: Reddi et al.'s 1/(1 + C²)), η and its schedule, steps, start."""

    c: float = 3.0
    beta1: float = 0.0
    beta2: float | None = None
    lr: float = 0.1
    schedule: str = "1/sqrt(t)"  # the paper's η_t = η/√t, or a constant η
    steps: int = 1500
    start: float = 0.0
    eps: float = 1e-8

    @property
    def b2(self) -> float:
        """β2 as used."""
        return 1 / (1 + self.c**2) if self.beta2 is None else self.beta2


@dataclass
class OnlineRun:
    """x_t of Adam and AMSGrad (2, steps + 1), and each one's average regret R_t/t against x* = −1 (2, steps)."""

    config: AMSGradConfig
    labels: tuple[str, ...]
    x: Tensor
    avg_regret: Tensor
    diverged_at: int | None = None  # the projection keeps x in [−1, 1]: never set
    diverged_run: str | None = None


def adam_vs_amsgrad(config: AMSGradConfig = AMSGradConfig()) -> OnlineRun:
    """Run ``torch.optim.Adam`` with and without ``amsgrad`` on the online problem, projected onto [−1, 1]."""
    if config.schedule not in SCHEDULES:
        raise ValueError(f"unknown schedule {config.schedule!r}; choose one of {SCHEDULES}")
    if config.c <= 2:
        raise ValueError("C must exceed 2, or x = −1 is not the best point")
    params = [torch.tensor([config.start], dtype=torch.float64, requires_grad=True) for _ in range(2)]
    groups = [{"params": [p], "amsgrad": flag} for p, flag in zip(params, (False, True))]
    opt = torch.optim.Adam(groups, lr=config.lr, betas=(config.beta1, config.b2), eps=config.eps)
    xs = [[config.start, config.start]]
    for t in range(1, config.steps + 1):
        if config.schedule == "1/sqrt(t)":  # step t uses η/√t (set by hand: a scheduler object costs more here)
            for group in opt.param_groups:
                group["lr"] = config.lr / math.sqrt(t)
        g = gradient(t, config.c)
        for p in params:
            p.grad = torch.full_like(p, g)
        opt.step()
        with torch.no_grad():
            for p in params:
                p.clamp_(-1.0, 1.0)  # the projection onto the feasible set [−1, 1]
        xs.append([float(p.detach()) for p in params])
    x = torch.tensor(xs, dtype=torch.float64).T
    g = torch.tensor([gradient(t, config.c) for t in range(1, config.steps + 1)], dtype=torch.float64)
    # f_t(x_t) − f_t(−1) = g_t (x_t + 1): the loss is linear
    regret = torch.cumsum(g * (x[:, :-1] + 1), dim=1) / torch.arange(1, config.steps + 1, dtype=torch.float64)
    return OnlineRun(config, ("Adam", "AMSGrad"), x, regret)
