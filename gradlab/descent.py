"""Gradient descent from scratch on Chapter 1's 2-D surfaces, and what the chapter measures with it:
the closed form on a quadratic, the stability threshold, steps to a tolerance, the convex rate
(escape times from a saddle live in :mod:`gradlab.saddles`).

The update is heavy-ball momentum in PyTorch's form (``torch.optim.SGD`` with ``dampening=0``):
v ← βv + g, x ← x − ηv; β = 0 is plain gradient descent. Tests check it against ``torch.optim.SGD``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from .data import LogisticTask, minimize
from .device import real_dtype
from .landscapes import Quadratic, Surface

__all__ = ["DescentConfig", "DescentPath", "iterate", "first_divergence", "descend", "quadratic_closed_form",
           "final_distances", "stability_threshold", "steps_to_tolerance",
           "StabilitySweep", "stability_sweep", "ConvergenceRun", "convex_convergence"]


@dataclass(frozen=True)
class DescentConfig:
    """One run: step size η, steps, momentum β, gradient-noise σ, warmup, and when a run counts as diverged."""

    lr: float = 0.1
    steps: int = 100
    momentum: float = 0.0
    noise: float = 0.0  # std of Gaussian noise added to every gradient coordinate
    warmup: int = 0  # the step size ramps linearly from η/warmup up to η over this many steps
    blowup: float = 1e6  # a point farther than this from the origin has diverged


@dataclass
class DescentPath:
    """The iterates of one run up to (not including) the step where it diverged, if it did."""

    surface: Surface
    config: DescentConfig
    points: Tensor  # (k+1, 2)
    losses: Tensor  # (k+1,)
    diverged_at: int | None

    @property
    def gaps(self) -> Tensor:
        """f(x_k) − f*, the suboptimality at every step."""
        return self.losses - self.surface.minimum_value()


def iterate(surface: Surface, starts: Tensor, lrs: Tensor | float, config: DescentConfig,
            generator: torch.Generator | None = None, precondition: Tensor | None = None) -> Tensor:
    """All iterates, shape (steps+1, n, 2), of n runs from ``starts`` (n, 2) with step sizes ``lrs`` (n,).

    No early stop: a diverging run turns into inf/NaN, which :func:`first_divergence` finds afterwards
    (cheaper than a check per step). ``precondition`` P (2×2) makes the step x ← x − η P g.
    """
    x = starts
    lr = torch.as_tensor(lrs, dtype=x.dtype, device=x.device).reshape(-1, 1)
    noise = None
    if config.noise > 0:
        noise = config.noise * torch.randn((config.steps, *x.shape), generator=generator,
                                           dtype=x.dtype, device=x.device)
    v = torch.zeros_like(x)
    out = [x]
    for k in range(config.steps):
        g = surface.grad(x)
        if noise is not None:
            g = g + noise[k]
        if precondition is not None:
            g = g @ precondition.T
        v = config.momentum * v + g
        x = x - (lr * min(1.0, (k + 1) / config.warmup) if config.warmup else lr) * v
        out.append(x)
    return torch.stack(out)


def first_divergence(points: Tensor, losses: Tensor, blowup: float) -> Tensor:
    """Per run, the first step whose loss is not finite or whose point lies beyond ``blowup``; −1 if none."""
    bad = ~torch.isfinite(losses) | ~(points.norm(dim=-1) <= blowup)  # NaN compares False: bad
    first = bad.int().argmax(dim=0)
    return torch.where(bad.any(dim=0), first, torch.full_like(first, -1))


def descend(surface: Surface, start: tuple[float, float], config: DescentConfig,
            generator: torch.Generator | None = None, device: torch.device | str = "cpu",
            precondition: Tensor | None = None) -> DescentPath:
    """One run of gradient descent (with momentum and gradient noise if the config says so)."""
    x0 = torch.tensor([start], dtype=real_dtype(device), device=device)
    points = iterate(surface, x0, config.lr, config, generator, precondition)[:, 0]
    losses = surface.loss(points)
    k = int(first_divergence(points[:, None], losses[:, None], config.blowup)[0])
    if k >= 0:
        return DescentPath(surface, config, points[:k], losses[:k], diverged_at=k)
    return DescentPath(surface, config, points, losses, diverged_at=None)


def quadratic_closed_form(surface: Quadratic, start: tuple[float, float], lr: float, k: int) -> Tensor:
    """x_k = (I − ηH)^k x_0: where k steps of gradient descent land on a quadratic, without iterating."""
    h = surface.hessian(torch.float64)
    step = torch.eye(2, dtype=torch.float64) - lr * h
    return torch.linalg.matrix_power(step, k) @ torch.tensor(start, dtype=torch.float64)


def final_distances(surface: Surface, start: tuple[float, float], lrs: Tensor, steps: int,
                    device: torch.device | str = "cpu") -> Tensor:
    """Distance to the minimum after ``steps`` steps, relative to where it started, for each step size; inf if diverged."""
    dtype = real_dtype(device)
    lrs = torch.as_tensor(lrs, dtype=dtype, device=device)
    x0 = torch.tensor([start], dtype=dtype, device=device).expand(len(lrs), 2)
    cfg = DescentConfig(steps=steps)
    pts = iterate(surface, x0, lrs, cfg)
    dist = surface.distance_to_minimum(pts[-1]) / surface.distance_to_minimum(x0)
    bad = first_divergence(pts, surface.loss(pts), cfg.blowup) >= 0
    return torch.where(bad | ~torch.isfinite(dist), torch.full_like(dist, math.inf), dist)


def stability_threshold(surface: Surface, start: tuple[float, float], lo: float, hi: float,
                        steps: int = 500, rounds: int = 4, probes: int = 32) -> float:
    """The step size where gradient descent stops converging, found by experiment.

    "Converging" means ending closer to the minimum than it started after ``steps`` steps.
    Each round tries ``probes`` step sizes across the bracket [lo, hi] at once and keeps the
    sub-bracket where the outcome flips, so the bracket shrinks ``probes − 1``-fold per round.
    """
    for _ in range(rounds):
        lrs = torch.linspace(lo, hi, probes, dtype=torch.float64)
        ok = (final_distances(surface, start, lrs, steps) < 1.0).tolist()
        if not ok[0] or ok[-1]:
            raise ValueError(f"the bracket [{lo:.3g}, {hi:.3g}] must start converging and end diverging")
        flip = ok.index(False)
        lo, hi = float(lrs[flip - 1]), float(lrs[flip])
    return 0.5 * (lo + hi)


@dataclass
class StabilitySweep:
    """Relative distance to the minimum after ``steps`` steps, per condition number and step size."""

    kappas: tuple[float, ...]
    lrs: Tensor
    distances: Tensor  # (len(kappas), len(lrs)); inf where the run diverged
    thresholds: Tensor  # measured step size where convergence stops, per κ
    steps: int

    def predicted(self) -> Tensor:
        """2/L for each quadratic."""
        return torch.tensor([2.0 / Quadratic(kappa=k).smoothness for k in self.kappas], dtype=torch.float64)


def stability_sweep(kappas: tuple[float, ...], lrs: Tensor, steps: int,
                    start: tuple[float, float] = (1.0, 1.0)) -> StabilitySweep:
    """Sweep step sizes on quadratics of several condition numbers; refine each threshold from the sweep's own bracket."""
    lrs = torch.as_tensor(lrs, dtype=torch.float64)
    rows, found = [], []
    for kappa in kappas:
        surface = Quadratic(kappa=kappa)
        dist = final_distances(surface, start, lrs, steps)
        ok = (dist < 1.0).tolist()
        if True not in ok or False not in ok:
            raise ValueError(f"κ = {kappa:g}: the step sizes must include both converging and diverging runs")
        flip = ok.index(False)
        found.append(stability_threshold(surface, start, float(lrs[flip - 1]), float(lrs[flip]), steps))
        rows.append(dist)
    return StabilitySweep(tuple(kappas), lrs, torch.stack(rows), torch.tensor(found, dtype=torch.float64), steps)


def steps_to_tolerance(surface: Surface, start: tuple[float, float], config: DescentConfig, tol: float,
                       precondition: Tensor | None = None) -> int | None:
    """The first step k with f(x_k) − f* ≤ ``tol``, or None if it is not reached within ``config.steps``."""
    path = descend(surface, start, config, precondition=precondition)
    hit = (path.gaps <= tol).nonzero()
    return int(hit[0]) if len(hit) else None


@dataclass
class ConvergenceRun:
    """Full-batch gradient descent with a constant η ≤ 1/L on a convex task, next to the two textbook bounds."""

    smoothness: float  # L
    strong_convexity: float  # μ
    lr: float  # η
    gaps: Tensor  # f(w_k) − f*, k = 0..steps
    sublinear_bound: Tensor  # ‖w_0 − w*‖² / (2ηk): any convex, L-smooth f and η ≤ 1/L (inf at k = 0)
    linear_bound: Tensor  # (1 − μ/L)^k (f(w_0) − f*): μ-strongly convex f, η = 1/L

    def sublinear_is_tighter(self) -> Tensor:
        """Per step k ≥ 1, whether the 1/k bound lies below the geometric one."""
        return self.sublinear_bound[1:] < self.linear_bound[1:]

    def switches(self) -> list[int]:
        """The steps k at which the tighter of the two bounds changes (the first step is k = 1)."""
        tighter = self.sublinear_is_tighter()
        return [int(k) + 2 for k in (tighter[1:] != tighter[:-1]).nonzero().flatten()]


def convex_convergence(task: LogisticTask, steps: int, lr: float | None = None) -> ConvergenceRun:
    """Run ``torch.optim.SGD`` with step η (1/L by default) on the full batch; measure f(w_k) − f* against both bounds.

    The 1/k bound ‖w_0 − w*‖²/(2ηk) holds for any η ≤ 1/L; at η = 1/L it is L‖w_0 − w*‖²/(2k). The geometric
    bound is the one for η = 1/L.
    """
    big_l, mu = task.smoothness(), task.strong_convexity()
    lr = 1.0 / big_l if lr is None else lr
    if not 0 < lr <= 1.0 / big_l * (1 + 1e-12):
        raise ValueError(f"the bounds need 0 < η ≤ 1/L = {1 / big_l:.4g}; got η = {lr:.4g}")
    w_star, f_star = minimize(task)
    w = task.zeros().requires_grad_(True)
    opt = torch.optim.SGD([w], lr=lr)
    gaps = []
    for k in range(steps + 1):
        opt.zero_grad()
        loss = task.loss(w)
        gaps.append(float(loss.detach()) - f_star)
        if k < steps:
            loss.backward()
            opt.step()
    k = torch.arange(steps + 1, dtype=torch.float64)
    r0 = float(((task.zeros() - w_star) ** 2).sum())
    sub = torch.where(k > 0, r0 / (2 * lr * k), torch.full_like(k, math.inf))
    lin = (1 - mu / big_l) ** k * gaps[0]
    return ConvergenceRun(big_l, mu, lr, torch.tensor(gaps, dtype=torch.float64), sub, lin)
