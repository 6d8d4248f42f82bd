"""The cliff of a one-unit recurrent network, and clipping on it (Chapter 5, Experiment 7).

After Pascanu, Mikolov & Bengio (2013), "On the difficulty of training recurrent neural networks", their
Figure 6: x_τ = w·sigmoid(x_{τ−1}) + b for τ = 1 … T_seq = 50 from x_0 = 0.5, no input, loss
𝓛 = (sigmoid(x_T) − 0.7)². For w above 4 the map has two stable fixed points over a range of b; where b leaves
that range one of them disappears, x_T falls from one to the other and 𝓛 jumps (from about 0.35 to about 0.01 at
w = 5) across a wall a thousandth of a unit wide, whose gradient is huge. Beyond the wall lies a plateau where
sigmoid(x_T) ≈ 1 and 𝓛 ≈ 0.09 with almost no gradient: a step thrown there stays there.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from .clipping import EPS

__all__ = ["cliff_loss", "cliff_grad", "CliffConfig", "Cliff", "cliff"]


def _sigmoid(x: float) -> float:
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    e = math.exp(x)  # no overflow for very negative x
    return e / (1.0 + e)


def cliff_loss(w: Tensor, b: Tensor, seq_len: int = 50, x0: float = 0.5, target: float = 0.7) -> Tensor:
    """𝓛(w, b) = (sigmoid(x_T) − target)² of the one-unit network, elementwise over broadcast ``w`` and ``b``."""
    w, b = torch.broadcast_tensors(torch.as_tensor(w, dtype=torch.float64), torch.as_tensor(b, dtype=torch.float64))
    x = torch.full_like(w, x0)
    for _ in range(seq_len):
        x = w * torch.sigmoid(x) + b
    return (torch.sigmoid(x) - target) ** 2


def cliff_grad(w: float, b: float, seq_len: int = 50, x0: float = 0.5, target: float = 0.7
               ) -> tuple[float, float, float]:
    """(𝓛, ∂𝓛/∂w, ∂𝓛/∂b) by carrying ∂x_τ/∂w and ∂x_τ/∂b forward with x_τ (plain floats: the widget takes
    hundreds of steps per redraw). Tested against autograd through :func:`cliff_loss`."""
    x, dw, db = x0, 0.0, 0.0
    for _ in range(seq_len):
        s = _sigmoid(x)
        slope = w * s * (1.0 - s)  # ∂x_τ/∂x_{τ−1}
        x, dw, db = w * s + b, s + slope * dw, 1.0 + slope * db
    s = _sigmoid(x)
    outer = 2.0 * (s - target) * s * (1.0 - s)
    return (s - target) ** 2, outer * dw, outer * db


@dataclass(frozen=True)
class CliffConfig:
    """Gradient descent at η from (w0, b0), plain and clipped by norm at ν, and the surface over ``window``
    (w_min, w_max, b_min, b_max) on a ``grid`` × ``grid`` lattice."""

    w0: float = 5.0
    b0: float = -3.5
    lr: float = 1.0  # η
    max_norm: float = 0.5  # ν
    steps: int = 100
    seq_len: int = 50  # T_seq
    x0: float = 0.5
    target: float = 0.7
    window: tuple[float, float, float, float] = (1.0, 9.0, -6.0, 2.0)
    grid: int = 161

    def __post_init__(self):
        if not (self.lr > 0 and self.max_norm > 0):
            raise ValueError(f"η and ν must be positive, got η = {self.lr}, ν = {self.max_norm}")
        if self.steps < 1 or self.seq_len < 1 or self.grid < 2:
            raise ValueError("steps, T_seq and the grid need at least 1, 1 and 2 points")
        w_lo, w_hi, b_lo, b_hi = self.window
        if not (w_lo < w_hi and b_lo < b_hi):
            raise ValueError(f"the window (w_min, w_max, b_min, b_max) must be increasing, got {self.window}")


@dataclass(frozen=True, eq=False)
class Cliff:
    """The surface and both descents: ``paths`` (2, steps + 1, 2) of (w, b), plain then clipped; ``losses``
    (2, steps + 1); ``grad_norms`` (2, steps), ‖∇𝓛‖ before clipping; ``jump``: the plain run's longest step."""

    config: CliffConfig
    w: Tensor
    b: Tensor
    surface: Tensor  # (grid over w, grid over b)
    paths: Tensor
    losses: Tensor
    grad_norms: Tensor
    jump: tuple[int, float]  # (step k, distance moved)
    diverged_at: int | None = None
    diverged_run: str | None = None


def _descend(c: CliffConfig, clip: bool) -> tuple[list, list, list]:
    w, b = c.w0, c.b0
    path, losses, norms = [(w, b)], [], []
    for _ in range(c.steps):
        loss, gw, gb = cliff_grad(w, b, c.seq_len, c.x0, c.target)
        norm = math.hypot(gw, gb)
        scale = min(1.0, c.max_norm / (norm + EPS)) if clip else 1.0
        w, b = w - c.lr * scale * gw, b - c.lr * scale * gb
        losses.append(loss)
        norms.append(norm)
        path.append((w, b))
    losses.append(cliff_grad(w, b, c.seq_len, c.x0, c.target)[0])
    return path, losses, norms


def cliff(config: CliffConfig = CliffConfig()) -> Cliff:
    """The loss surface of the one-unit network and gradient descent on it, with and without clipping."""
    c = config
    w_lo, w_hi, b_lo, b_hi = c.window
    w = torch.linspace(w_lo, w_hi, c.grid, dtype=torch.float64)
    b = torch.linspace(b_lo, b_hi, c.grid, dtype=torch.float64)
    surface = cliff_loss(w[:, None], b[None, :], c.seq_len, c.x0, c.target)
    runs = [_descend(c, clip) for clip in (False, True)]
    paths = torch.tensor([r[0] for r in runs], dtype=torch.float64)
    losses = torch.tensor([r[1] for r in runs], dtype=torch.float64)
    norms = torch.tensor([r[2] for r in runs], dtype=torch.float64)
    moves = (paths[0, 1:] - paths[0, :-1]).norm(dim=1)
    bad = ~torch.isfinite(losses[0])
    k = int(torch.nan_to_num(moves, nan=math.inf).argmax())
    return Cliff(c, w, b, surface, paths, losses, norms, (k, float(moves[k])),
                 diverged_at=int(bad.nonzero()[0]) if bad.any() else None,
                 diverged_run="without clipping" if bad.any() else None)
