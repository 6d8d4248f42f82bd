"""Chapter 1's saddle experiments: how long gradient descent, started close to a saddle's stable
manifold, takes to leave it; measured, and predicted from the linearized dynamics."""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from .descent import DescentConfig, DescentPath, descend, iterate
from .landscapes import Saddle
from .seeding import generator as make_generator

__all__ = ["escape_steps", "predicted_escape_steps", "SaddleRun", "saddle_run", "EscapeSweep", "escape_sweep"]


def escape_steps(surface: Saddle, offsets: Tensor, config: DescentConfig, x0: float = 1.0, radius: float = 0.5,
                 generator: torch.Generator | None = None) -> Tensor:
    """For runs started at (x0, offset): the first step with |y| ≥ ``radius``; NaN if none escaped in time."""
    offsets = torch.as_tensor(offsets, dtype=torch.float64)
    starts = torch.stack([torch.full_like(offsets, x0), offsets], dim=-1)
    ys = iterate(surface, starts, config.lr, config, generator)[..., 1]
    out = ys.abs() >= radius
    first = out.int().argmax(dim=0).double()
    return torch.where(out.any(dim=0), first, torch.full_like(first, math.nan))


def predicted_escape_steps(offsets: Tensor, lr: float, curvature: float, momentum: float = 0.0,
                           radius: float = 0.5) -> Tensor:
    """Steps for |y| to grow from ``offset`` to ``radius`` if it grew as in the linearized dynamics.

    Near the saddle y_{k+1} = y_k + η|λ| y_k + β(y_k − y_{k−1}), so y_k ≈ A r^k with r the larger root of
    z² − (1 + η|λ| + β) z + β = 0; without momentum r = 1 + η|λ| and A = offset, giving
    ln(radius/offset) / ln(1 + η|λ|) ≈ ln(radius/offset) / (η|λ|) for small η|λ|.
    """
    offsets = torch.as_tensor(offsets, dtype=torch.float64)
    a = 1.0 + lr * abs(curvature) + momentum
    disc = math.sqrt(a * a - 4.0 * momentum)
    r, s = 0.5 * (a + disc), 0.5 * (a - disc)
    amp = offsets * (1.0 + lr * abs(curvature) - s) / (r - s)  # y_1 = (1 + η|λ|) y_0 fixes A
    return torch.log(radius / amp) / math.log(r)


@dataclass
class SaddleRun:
    """One run near the saddle of :class:`Saddle`: its path, when it escaped, and when the formula says it would."""

    path: DescentPath
    offset: float
    escaped_at: int | None
    predicted: float  # noise-free, linearized escape step

    @property
    def diverged_at(self) -> int | None:
        return self.path.diverged_at


def saddle_run(surface: Saddle, offset: float, config: DescentConfig, x0: float = 1.0, radius: float = 0.5,
               generator: torch.Generator | None = None) -> SaddleRun:
    """Gradient descent from (x0, offset), ``offset`` away from the saddle's stable manifold (the x-axis)."""
    path = descend(surface, (x0, offset), config, generator)
    out = (path.points[:, 1].abs() >= radius).nonzero()
    pred = float(predicted_escape_steps(offset, config.lr, surface.negative_curvature, config.momentum, radius))
    return SaddleRun(path, offset, int(out[0]) if len(out) else None, pred)


@dataclass
class EscapeSweep:
    """Measured escape steps against the offset from the stable manifold, per step size, with the formula."""

    offsets: Tensor
    lrs: tuple[float, ...]
    measured: Tensor  # (len(lrs), len(offsets)), noise-free
    predicted: Tensor  # same shape
    noise: float
    noisy: Tensor  # (len(offsets),): median over ``repeats`` noisy runs at lrs[0]


def escape_sweep(surface: Saddle, offsets: Tensor, lrs: tuple[float, ...], steps: int, noise: float,
                 repeats: int = 9, seed: int = 0) -> EscapeSweep:
    """Escape steps for every offset and step size without noise, and at ``lrs[0]`` with gradient noise σ = ``noise``."""
    offsets = torch.as_tensor(offsets, dtype=torch.float64)
    measured = torch.stack([escape_steps(surface, offsets, DescentConfig(lr=lr, steps=steps)) for lr in lrs])
    predicted = torch.stack([predicted_escape_steps(offsets, lr, surface.negative_curvature) for lr in lrs])
    noisy_cfg = DescentConfig(lr=lrs[0], steps=steps, noise=noise)
    many = escape_steps(surface, offsets.repeat(repeats), noisy_cfg, generator=make_generator(seed))
    noisy = many.reshape(repeats, -1).nanmedian(dim=0).values
    return EscapeSweep(offsets, tuple(lrs), measured, predicted, noise, noisy)
