"""Momentum (Chapter 3): its two ways of being written, Nesterov's look-ahead, and its rate against theory.

On f = ½xᵀHx, heavy ball in PyTorch's form (v ← βv + g, x ← x − ηv) acts on each eigen-direction of H,
with eigenvalue λ, through the 2×2 matrix M(η, β, λ) = [[1 − ηλ, −ηβ], [λ, β]] on (x, v). The error
shrinks per step by the spectral radius ρ, the largest |root| of z² − (1 + β − ηλ)z + β = 0 over the
eigenvalues. Polyak (1964): η = 4/(√L + √μ)², β = ((√κ − 1)/(√κ + 1))² makes both ends double roots
of size √β = (√κ − 1)/(√κ + 1), against (κ − 1)/(κ + 1) for gradient descent at its best η = 2/(L + μ).
A root reaches −1 when η = 2(1 + β)/L: the stability bound. The runs use ``torch.optim.SGD``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Sequence

import torch
from torch import Tensor

from .landscapes import Quadratic
from .optimizers import SGD, HeavyBall

__all__ = ["MomentumForms", "momentum_forms", "nesterov_lookahead", "gd_best", "polyak_tuned",
           "heavy_ball_max_lr", "iteration_matrices", "spectral_radius", "RateMap", "rate_map",
           "measured_rates", "MomentumRateConfig", "MomentumRates", "momentum_rates"]

Grad = Callable[[Tensor], Tensor]


@dataclass
class MomentumForms:
    """The same run in PyTorch's form and in the textbook's: iterates and velocities, step by step."""

    lrs: tuple[float, ...]
    torch_points: Tensor  # (steps+1, d)
    textbook_points: Tensor
    torch_velocity: Tensor  # (steps, d): v after each step, v ← βv + g
    textbook_velocity: Tensor  # (steps, d): v ← βv − ηg; equals −η v_torch while η is constant


def momentum_forms(grad: Grad, x0: Tensor, lrs: Sequence[float], beta: float) -> MomentumForms:
    """Run both forms of heavy ball from ``x0`` with the step sizes ``lrs`` (one per step)."""
    runs = []
    for cls in (SGD, HeavyBall):
        x = x0.clone()
        opt = cls([x], lr=lrs[0], momentum=beta)
        points, velocities = [x.clone()], []
        for lr in lrs:
            opt.lr = lr
            x.grad = grad(x)
            opt.step()
            points.append(x.clone())
            velocities.append(opt.state[0]["v"].clone())
        runs.append((torch.stack(points), torch.stack(velocities)))
    (tp, tv), (hp, hv) = runs
    return MomentumForms(tuple(lrs), tp, hp, tv, hv)


def nesterov_lookahead(grad: Grad, x0: Tensor, lr: float, beta: float, steps: int) -> tuple[Tensor, Tensor]:
    """Nesterov as the look-ahead (Sutskever et al. 2013): u ← βu − η∇f(x + βu), x ← x + u.

    Returns the iterates x_k and the look-ahead points y_k = x_k + βu_k, (steps+1, d) each. With
    u = −ηv, y follows y ← y − η(g(y) + βv), v ← βv + g(y): ``torch.optim.SGD(nesterov=True)``
    keeps y as its parameter.
    """
    x, u = x0.clone(), torch.zeros_like(x0)
    xs, ys = [x], [x + beta * u]
    for _ in range(steps):
        u = beta * u - lr * grad(x + beta * u)
        x = x + u
        xs.append(x)
        ys.append(x + beta * u)
    return torch.stack(xs), torch.stack(ys)


def gd_best(big_l: float, mu: float) -> tuple[float, float]:
    """Gradient descent's best constant step on a quadratic, η = 2/(L + μ), and its rate (κ − 1)/(κ + 1)."""
    return 2.0 / (big_l + mu), (big_l - mu) / (big_l + mu)


def polyak_tuned(big_l: float, mu: float) -> tuple[float, float, float]:
    """Polyak's heavy ball: η = 4/(√L + √μ)², β = ((√κ − 1)/(√κ + 1))², rate √β."""
    sl, sm = math.sqrt(big_l), math.sqrt(mu)
    rate = (sl - sm) / (sl + sm)
    return 4.0 / (sl + sm) ** 2, rate**2, rate


def heavy_ball_max_lr(beta: float | Tensor, big_l: float) -> float | Tensor:
    """The stability bound of heavy ball: η < 2(1 + β)/L."""
    return 2.0 * (1.0 + beta) / big_l


def iteration_matrices(lrs: Tensor, betas: Tensor, eigenvalues: Tensor) -> Tensor:
    """M(η, β, λ) on (x, v) for every combination: shape (*lrs.shape, len(eigenvalues), 2, 2), broadcast."""
    eta, beta, lam = lrs[..., None], betas[..., None], eigenvalues
    eta, beta, lam = torch.broadcast_tensors(eta, beta, lam)
    top = torch.stack([1 - eta * lam, -eta * beta], dim=-1)
    bottom = torch.stack([lam, beta], dim=-1)
    return torch.stack([top, bottom], dim=-2)


def spectral_radius(lrs: Tensor, betas: Tensor, eigenvalues: Tensor) -> Tensor:
    """The asymptotic rate of heavy ball, max over eigenvalues of |eig M|, for all (η, β) pairs at once.

    A 2×2 matrix's eigenvalues are the roots of z² − tr·z + det: a complex pair of size √det when
    tr² < 4 det, else real, the larger of size (|tr| + √(tr² − 4 det))/2. In closed form, because a
    general eigenvalue solver takes a LAPACK call per matrix (a tenth of a second for a 160 × 160 map).
    """
    m = iteration_matrices(lrs, betas, eigenvalues)
    tr = m[..., 0, 0] + m[..., 1, 1]
    det = m[..., 0, 0] * m[..., 1, 1] - m[..., 0, 1] * m[..., 1, 0]
    disc = tr * tr - 4 * det
    size = torch.where(disc < 0, det.clamp(min=0).sqrt(), (tr.abs() + disc.clamp(min=0).sqrt()) / 2)
    return size.amax(dim=-1)


@dataclass
class RateMap:
    """Heavy ball's rate ρ(η, β) on a quadratic, over a grid: rows are β, columns are η."""

    kappa: float
    lrs: Tensor  # (n_lr,)
    betas: Tensor  # (n_beta,)
    rates: Tensor  # (n_beta, n_lr); ≥ 1 where the run does not converge

    @property
    def smoothness(self) -> float:
        """L, the quadratic's largest curvature."""
        return Quadratic(kappa=self.kappa).smoothness


def rate_map(kappa: float, lrs: Tensor, betas: Tensor) -> RateMap:
    """ρ over the grid ``betas`` × ``lrs`` on Quadratic(κ) (curvatures 1 and κ), all pairs in one batched computation."""
    _check_kappa(kappa)
    lrs, betas = torch.as_tensor(lrs, dtype=torch.float64), torch.as_tensor(betas, dtype=torch.float64)
    eig = torch.tensor([1.0, kappa], dtype=torch.float64)
    b, e = torch.meshgrid(betas, lrs, indexing="ij")
    return RateMap(kappa, lrs, betas, spectral_radius(e, b, eig))


def _check_kappa(kappa: float) -> None:
    if not kappa >= 1:  # the formulas below take μ = 1 and L = κ
        raise ValueError(f"the condition number κ must be at least 1, not {kappa:g}")


def _run_sgd(surface: Quadratic, start: tuple[float, float], pairs: Sequence[tuple[float, float]],
             steps: int, nesterov: bool = False) -> Tensor:
    """‖x_k‖ for each (η, β), all in one ``torch.optim.SGD`` with a parameter group per pair: (steps+1, n)."""
    x = [torch.tensor(start, dtype=torch.float64, requires_grad=True) for _ in pairs]
    opt = torch.optim.SGD([{"params": [p], "lr": lr, "momentum": beta, "nesterov": nesterov}
                           for p, (lr, beta) in zip(x, pairs)], lr=0.0)
    norms = [torch.stack([p.detach().norm() for p in x])]
    for _ in range(steps):
        for p in x:
            p.grad = surface.grad(p.detach())  # closed form: no autograd graph for a quadratic
        opt.step()
        norms.append(torch.stack([p.detach().norm() for p in x]))
    return torch.stack(norms)


def _tail_rate(norms: Tensor) -> Tensor:
    """The rate per step between the first and second halves of the run's second half, from each window's
    largest ‖x_k‖: complex roots make ‖x_k‖ oscillate under its envelope, and the maxima follow the envelope."""
    t = norms.shape[0] - 1
    a, b = norms[t // 2: 3 * t // 4].amax(0), norms[3 * t // 4: t + 1].amax(0)
    gap = (3 * t // 4) - (t // 2)
    return (b / a) ** (1.0 / gap)


def measured_rates(kappa: float, pairs: Sequence[tuple[float, float]], steps: int,
                   start: tuple[float, float] = (1.0, 1.0), nesterov: bool = False) -> Tensor:
    """Run heavy ball (or Nesterov) with each (η, β) on Quadratic(κ) with ``torch.optim.SGD``; its rate per step."""
    _check_kappa(kappa)
    return _tail_rate(_run_sgd(Quadratic(kappa=kappa), start, pairs, steps, nesterov))


@dataclass(frozen=True)
class MomentumRateConfig:
    """Gradient descent at its best η, Polyak's heavy ball, and heavy ball at a chosen (η, β), on Quadratic(κ)."""

    kappa: float = 100.0
    lr: float = 0.01  # the chosen η
    beta: float = 0.9  # the chosen β
    steps: int = 300
    start: tuple[float, float] = (1.0, 1.0)
    blowup: float = 1e6  # ‖x‖ beyond this counts as diverged


@dataclass
class MomentumRates:
    """Distances ‖x_k‖ of the three runs, their measured rates, and what theory predicts for each."""

    config: MomentumRateConfig
    labels: tuple[str, ...]
    settings: tuple[tuple[float, float], ...]  # (η, β) of each run
    distances: Tensor  # (steps+1, 3), cut at the first diverged step
    measured: Tensor  # (3,): rate per step, measured on the second half of the run
    predicted: Tensor  # (3,): (κ − 1)/(κ + 1), √β* and the spectral radius at the chosen pair
    diverged_at: int | None = None
    diverged_run: str | None = None


def momentum_rates(config: MomentumRateConfig) -> MomentumRates:
    """Run the three with ``torch.optim.SGD`` and compare each measured rate with its formula."""
    _check_kappa(config.kappa)
    if config.steps < 8:
        raise ValueError("the rate is measured on the second half of the run: give it at least 8 steps")
    q = Quadratic(kappa=config.kappa)
    big_l, mu = q.smoothness, 1.0
    gd_lr, gd_rate = gd_best(big_l, mu)
    hb_lr, hb_beta, hb_rate = polyak_tuned(big_l, mu)
    pairs = ((gd_lr, 0.0), (hb_lr, hb_beta), (config.lr, config.beta))
    labels = ("GD, η = 2/(L+μ)", "heavy ball, Polyak's η, β", "heavy ball, chosen η, β")
    norms = _run_sgd(q, config.start, pairs, config.steps)
    chosen = spectral_radius(torch.tensor([config.lr], dtype=torch.float64),
                             torch.tensor([config.beta], dtype=torch.float64),
                             torch.tensor([mu, big_l], dtype=torch.float64))
    predicted = torch.tensor([gd_rate, hb_rate, float(chosen[0])], dtype=torch.float64)
    bad = ~(norms <= config.blowup)  # NaN compares False: bad
    diverged_at = diverged_run = None
    if bool(bad.any()):
        first = torch.where(bad.any(0), bad.int().argmax(0), torch.full((3,), norms.shape[0]))
        i = int(first.argmin())
        diverged_at, diverged_run = int(first[i]), labels[i]
        norms = torch.where(torch.arange(norms.shape[0])[:, None] < first, norms, torch.full_like(norms, math.nan))
    return MomentumRates(config, labels, pairs, norms, _tail_rate(norms), predicted, diverged_at, diverged_run)
