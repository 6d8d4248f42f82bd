"""Online learning (Chapter 1): SGD that sees each example of a stream once, on a linear regression whose
optimum may drift, with a constant learning rate or one that decays like 1/k.

Example k is x_k ~ N(0, I_d) with target y_k = x_kᵀ w*_k + ε_k, ε_k ~ N(0, σ²), and loss ½(x_kᵀ w − y_k)²,
so one step is w ← w − η_k x_k (x_kᵀ w − y_k). The optimum moves by a random walk,
w*_{k+1} = w*_k + ξ_k with ξ_k ~ N(0, q² I); q = 0 is a stream with a fixed optimum.

For Gaussian x_k the error e_k = w_k − w*_k obeys, in expectation (using E[x xᵀ] = I and
E[(xᵀe)² ‖x‖²] = (d + 2)‖e‖²),

    E‖e_{k+1}‖² = (1 − 2η + (d + 2)η²) E‖e_k‖² + η² σ² d + q² d,

so with a constant η < 2/(d + 2) it settles at (η² σ² d + q² d) / (2η − (d + 2)η²): :func:`steady_error`.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from .seeding import generator

__all__ = ["StreamConfig", "TrackingRun", "track", "steady_error"]


@dataclass(frozen=True)
class StreamConfig:
    """The stream (dimension d, label noise σ, drift q per step), the learning rate, and how many streams to average."""

    dim: int = 5
    noise: float = 0.5  # σ, the standard deviation of the label noise
    drift: float = 0.0  # q, the standard deviation of each coordinate's step of the optimum per example
    lr: float = 0.05  # η: constant, and the decaying schedule's first step
    steps: int = 20000
    streams: int = 20  # independent streams; the error is averaged over them
    seed: int = 0


@dataclass
class TrackingRun:
    """Both schedules on the same streams: the squared error per step and one coordinate's path."""

    config: StreamConfig
    schedules: tuple[str, ...]  # ("constant", "decaying")
    errors: Tensor  # (2, steps + 1): ‖w_k − w*_k‖², mean over the streams
    optimum: Tensor  # (steps + 1,): w*_k's first coordinate in the first stream
    weights: Tensor  # (2, steps + 1): w_k's first coordinate in the first stream, per schedule

    def late_error(self, fraction: float = 0.1) -> Tensor:
        """Mean squared error over the last ``fraction`` of the steps, per schedule."""
        start = int(len(self.errors[0]) * (1 - fraction))
        return self.errors[:, start:].mean(dim=1)


def steady_error(config: StreamConfig) -> float:
    """E‖w − w*‖² where a constant learning rate settles: (η²σ²d + q²d) / (2η − (d + 2)η²)."""
    eta, d = config.lr, config.dim
    rate = 2 * eta - (d + 2) * eta**2
    if rate <= 0:
        raise ValueError(f"η = {eta} does not converge in mean square for d = {d}: it needs η < 2/(d + 2)")
    return (eta**2 * config.noise**2 * d + config.drift**2 * d) / rate


def track(config: StreamConfig) -> TrackingRun:
    """Run SGD with η_k = η (constant) and η_k = η/(1 + ηk) (decaying, ~1/k) on the same streams, from w_0 = 0."""
    g = generator(config.seed)
    n, r, d = config.steps, config.streams, config.dim
    w_star = torch.randn(r, d, generator=g, dtype=torch.float64)  # w*_0
    w = torch.zeros(2, r, d, dtype=torch.float64)
    lrs = torch.tensor([[config.lr], [config.lr]], dtype=torch.float64)  # per schedule, as a column
    errors, optimum, weights = [((w - w_star) ** 2).sum(-1).mean(-1)], [w_star[0, 0]], [w[:, 0, 0]]
    for k in range(n):
        x = torch.randn(r, d, generator=g, dtype=torch.float64)
        y = (x * w_star).sum(-1) + config.noise * torch.randn(r, generator=g, dtype=torch.float64)
        lrs[1] = config.lr / (1 + config.lr * k)
        residual = (w * x).sum(-1) - y  # (2, r)
        w = w - lrs[:, :, None] * residual[..., None] * x
        if config.drift > 0:
            w_star = w_star + config.drift * torch.randn(r, d, generator=g, dtype=torch.float64)
        errors.append(((w - w_star) ** 2).sum(-1).mean(-1))
        optimum.append(w_star[0, 0])
        weights.append(w[:, 0, 0])
    return TrackingRun(config, ("constant", "decaying"), torch.stack(errors, dim=1), torch.stack(optimum),
                       torch.stack(weights, dim=1))
