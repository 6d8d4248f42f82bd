"""Inside Adam (Chapter 3): what β1, β2, ε and the bias correction each do to the steps.

Adam's first step, from m_0 = v_0 = 0: m_1 = (1 − β1)g, v_1 = (1 − β2)g². Bias-corrected, m̂_1 = g and
v̂_1 = g², so the step η m̂/(√v̂ + ε) is η g/(|g| + ε): η·sign(g) in size as ε → 0, whatever g's scale.
Uncorrected, it is η(1 − β1)g/(√(1 − β2)|g| + ε): (1 − β1)/√(1 − β2) times larger as ε → 0, about 3.16
at the defaults β1 = 0.9, β2 = 0.999. For a constant gradient the uncorrected factor at step k is
(1 − β1^k)/√(1 − β2^k) and the corrected one stays 1. With ε far above √v̂ the step is (η/ε)m̂: momentum
SGD on the averaged gradient with learning rate η/ε (``torch.optim.SGD(momentum=β1, dampening=β1)``
once β1^k is negligible).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from .landscapes import Quadratic
from .optimizers import Adam
from .race import first_diverged

__all__ = ["first_step_factor", "first_step_sizes", "constant_gradient_factor", "InsideAdamConfig", "InsideAdam",
           "inside_adam"]


def first_step_factor(beta1: float, beta2: float, bias_correction: bool = True) -> float:
    """|first step| / η per coordinate as ε → 0: 1 with the correction, (1 − β1)/√(1 − β2) without."""
    return 1.0 if bias_correction else (1 - beta1) / math.sqrt(1 - beta2)


def first_step_sizes(g: Tensor, beta1: float, beta2: float, eps: float, bias_correction: bool = True) -> Tensor:
    """|first step| / η per coordinate for the first gradient ``g``, any ε: |g|/(|g| + ε) with the correction,
    (1 − β1)|g|/(√(1 − β2)|g| + ε) without."""
    if bias_correction:
        return g.abs() / (g.abs() + eps)
    return (1 - beta1) * g.abs() / (math.sqrt(1 - beta2) * g.abs() + eps)


def constant_gradient_factor(k: Tensor, beta1: float, beta2: float, bias_correction: bool = True) -> Tensor:
    """|step k| / η under a constant gradient, ε → 0: 1 with the correction, (1 − β1^k)/√(1 − β2^k) without."""
    k = torch.as_tensor(k, dtype=torch.float64)
    if bias_correction:
        return torch.ones_like(k)
    return (1 - beta1**k) / torch.sqrt(1 - beta2**k)


@dataclass(frozen=True)
class InsideAdamConfig:
    """Adam on Quadratic(κ) from ``start``: η, β1, β2, ε, with or without the bias correction."""

    lr: float = 0.1
    beta1: float = 0.9
    beta2: float = 0.999
    eps: float = 1e-8
    bias_correction: bool = True
    steps: int = 150
    kappa: float = 10.0
    start: tuple[float, float] = (-1.5, 0.5)


@dataclass
class InsideAdam:
    """Adam's path and step sizes, and the path of its large-ε limit when that run is stable."""

    config: InsideAdamConfig
    surface: Quadratic
    path: Tensor  # (steps+1, 2)
    step_factors: Tensor  # (steps,): max over coordinates of |x_k+1 − x_k| / η
    first_predicted: float  # the first of them, from the first gradient and the formula
    limit_path: Tensor | None  # momentum SGD with lr η/ε; None where that run would diverge
    limit_lr: float  # η/ε

    @property
    def gaps(self) -> Tensor:
        """f(x_k) − f* along Adam's path (f* = 0)."""
        return self.surface.loss(self.path)


def _run(opt: torch.optim.Optimizer | Adam, x: Tensor, surface: Quadratic, steps: int) -> Tensor:
    points = [x.detach().clone()]
    for _ in range(steps):
        x.grad = surface.grad(x.detach())
        opt.step()
        points.append(x.detach().clone())
    return torch.stack(points)


def inside_adam(config: InsideAdamConfig) -> InsideAdam:
    """Run Adam as configured: ``torch.optim.Adam`` with the correction, gradlab's Adam without (torch has no switch)."""
    q = Quadratic(kappa=config.kappa)
    x = torch.tensor(config.start, dtype=torch.float64, requires_grad=True)
    betas = (config.beta1, config.beta2)
    if config.bias_correction:
        opt = torch.optim.Adam([x], lr=config.lr, betas=betas, eps=config.eps)
    else:
        opt = Adam([x], lr=config.lr, betas=betas, eps=config.eps, bias_correction=False)
    path = _run(opt, x, q, config.steps)
    factors = (path[1:] - path[:-1]).abs().amax(-1) / config.lr
    limit_lr = config.lr / config.eps
    limit = None
    # the averaging form steps (η/ε)·average = (1 − β1)η/ε · torch's v: stable below 2(1 + β1)/L
    if (1 - config.beta1) * limit_lr < 2 * (1 + config.beta1) / q.smoothness:
        y = torch.tensor(config.start, dtype=torch.float64, requires_grad=True)
        sgd = torch.optim.SGD([y], lr=limit_lr, momentum=config.beta1, dampening=config.beta1)
        limit = _run(sgd, y, q, config.steps)
        k = first_diverged(limit, q.loss(limit), 1e6)
        limit = limit if k is None else limit[:k]
    first = first_step_sizes(q.grad(path[0]), config.beta1, config.beta2, config.eps, config.bias_correction)
    return InsideAdam(config, q, path, factors, float(first.max()), limit, limit_lr)
