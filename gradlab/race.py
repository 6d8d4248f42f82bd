"""Chapter 3's optimizer race on the 2-D surfaces, and what rotating the surface does to it.

Every run here uses ``torch.optim``. The optimizers raced (SGD, heavy ball, Nesterov, Adagrad, RMSprop,
Adam) all act entry by entry, so a parameter of shape (n, 2) whose rows see independent gradients is
n independent runs: the rotation sweep runs all its angles in one tensor. All racers of one
``torch.optim`` class share an optimizer, one parameter group each, and gradients come in closed form
from the surface, so one step of the whole race costs a few optimizer calls.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Sequence

import torch
from torch import Tensor

from .divergence import first_nonfinite
from .landscapes import Quadratic, Rosenbrock, Saddle, Surface
from .momentum import gd_best, polyak_tuned

__all__ = ["KINDS", "Racer", "make_optimizers", "run_racers", "first_diverged", "TRACKS", "track",
           "RaceConfig", "RaceResult", "race", "rotation_racers", "RotationConfig", "RotationSweep", "rotation_sweep"]

KINDS = ("GD", "momentum", "Nesterov", "Adagrad", "RMSprop", "Adam")


@dataclass(frozen=True)
class Racer:
    """One optimizer in the race: its kind, learning rate η and β (momentum's β, or Adam's β1)."""

    kind: str
    lr: float
    beta: float = 0.9  # ignored by GD, Adagrad and RMSprop

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"unknown optimizer {self.kind!r}; choose one of {KINDS}")

    def group(self) -> tuple[type, dict]:
        """The ``torch.optim`` class and the parameter-group settings that make this racer."""
        return {"GD": (torch.optim.SGD, {}),
                "momentum": (torch.optim.SGD, {"momentum": self.beta}),
                "Nesterov": (torch.optim.SGD, {"momentum": self.beta, "nesterov": self.beta > 0}),
                "Adagrad": (torch.optim.Adagrad, {}),
                "RMSprop": (torch.optim.RMSprop, {}),
                "Adam": (torch.optim.Adam, {"betas": (self.beta, 0.999)})}[self.kind]


def make_optimizers(racers: Sequence[Racer], params: Sequence[Tensor]) -> list[torch.optim.Optimizer]:
    """One ``torch.optim`` optimizer per class, with a parameter group per racer (racer i moves ``params[i]``)."""
    groups: dict[type, list[dict]] = {}
    for racer, p in zip(racers, params):
        cls, settings = racer.group()
        groups.setdefault(cls, []).append({"params": [p], "lr": racer.lr, **settings})
    return [cls(g) for cls, g in groups.items()]


def run_racers(grad: Callable[[Tensor], Tensor], loss: Callable[[Tensor], Tensor], starts: Tensor,
               racers: Sequence[Racer], steps: int, stop_below: float | None = None) -> tuple[Tensor, Tensor]:
    """Iterates (k+1, R, n, 2) and losses (k+1, R, n) of every racer from each of the n ``starts`` (n, 2).

    ``grad`` and ``loss`` take points (R, n, 2). With ``stop_below``, the run ends at the first step
    where every run's loss is below it or not finite; otherwise after ``steps`` steps.
    """
    params = [starts.detach().clone().requires_grad_(True) for _ in racers]
    optimizers = make_optimizers(racers, params)
    x = torch.stack([p.detach() for p in params])
    points, losses = [x.clone()], [loss(x)]
    for _ in range(steps):
        if stop_below is not None and bool((~(losses[-1] > stop_below) | ~torch.isfinite(losses[-1])).all()):
            break
        g = grad(x)
        for p, gi in zip(params, g):
            p.grad = gi
        for opt in optimizers:
            opt.step()
        x = torch.stack([p.detach() for p in params])
        points.append(x.clone())
        losses.append(loss(x))
    return torch.stack(points), torch.stack(losses)


def first_diverged(points: Tensor, losses: Tensor, blowup: float) -> int | None:
    """The first step of one run (points (k+1, 2), losses (k+1,)) whose loss is not finite or whose point
    lies beyond ``blowup`` from the origin; None if there is none."""
    far = ~(points.norm(dim=-1) <= blowup)  # NaN compares False: far
    return first_nonfinite(torch.where(far, torch.full_like(losses, math.inf), losses).tolist())


# The race's tracks: each surface with a start that shows something (a start rotated with its surface).
_ROT = math.pi / 4
TRACKS: dict[str, tuple[Surface, tuple[float, float]]] = {
    "quadratic": (Quadratic(kappa=10.0), (-1.5, 0.5)),
    "rotated quadratic": (Quadratic(kappa=10.0, angle=_ROT),
                          (-1.5 * math.cos(_ROT) - 0.5 * math.sin(_ROT), -1.5 * math.sin(_ROT) + 0.5 * math.cos(_ROT))),
    "Rosenbrock": (Rosenbrock(), (-1.2, 1.0)),
    "saddle": (Saddle(), (-1.5, 0.01)),
}


def track(name: str) -> tuple[Surface, tuple[float, float]]:
    """A surface of the race and its start, by name (see ``TRACKS``)."""
    if name not in TRACKS:
        raise ValueError(f"unknown track {name!r}; choose one of {sorted(TRACKS)}")
    return TRACKS[name]


@dataclass(frozen=True)
class RaceConfig:
    """A race: the surface, the start, the racers, how many steps, and the tolerance on f − f*."""

    surface: Surface = field(default_factory=lambda: TRACKS["quadratic"][0])
    start: tuple[float, float] = (-1.5, 0.5)
    racers: tuple[Racer, ...] = (Racer("GD", 0.1), Racer("momentum", 0.1), Racer("Adam", 0.1))
    steps: int = 200
    tol: float = 1e-6
    blowup: float = 1e6  # a point farther than this from the origin has diverged


@dataclass
class RaceResult:
    """Each racer's path and loss gap up to where it diverged, steps to the tolerance, and the first divergence."""

    config: RaceConfig
    labels: tuple[str, ...]
    paths: tuple[Tensor, ...]  # (k+1, 2) each
    gaps: tuple[Tensor, ...]  # f(x_k) − f*, (k+1,) each
    steps_to_tol: tuple[int | None, ...]
    diverged: tuple[int | None, ...]  # per racer
    diverged_at: int | None = None  # the earliest divergence, for the widget's message
    diverged_run: str | None = None


def race(config: RaceConfig) -> RaceResult:
    """Run every racer on the surface with ``torch.optim``, from the same start, for the same number of steps."""
    s, racers = config.surface, config.racers
    labels = tuple(r.kind for r in racers)
    if len(set(labels)) != len(labels):
        raise ValueError("each optimizer may race once")
    start = torch.tensor([config.start], dtype=torch.float64)
    points, losses = run_racers(s.grad, s.loss, start, racers, config.steps)
    paths, gaps, hits, bad = [], [], [], []
    for i in range(len(racers)):
        pts, gap = points[:, i, 0], losses[:, i, 0] - s.minimum_value()
        k = first_diverged(pts, gap, config.blowup)
        if k is not None:
            pts, gap = pts[:k], gap[:k]
        hit = (gap <= config.tol).nonzero()
        paths.append(pts)
        gaps.append(gap)
        hits.append(int(hit[0]) if len(hit) else None)
        bad.append(k)
    first = min((k, i) for i, k in enumerate(bad) if k is not None) if any(k is not None for k in bad) else None
    return RaceResult(config, labels, tuple(paths), tuple(gaps), tuple(hits), tuple(bad),
                      diverged_at=first and first[0], diverged_run=first and labels[first[1]])


def rotation_racers(kappa: float) -> tuple[Racer, ...]:
    """GD at its best η and heavy ball at Polyak's (η, β) for Quadratic(κ); the adaptive ones at fixed η."""
    gd_lr, _ = gd_best(kappa, 1.0)
    hb_lr, hb_beta, _ = polyak_tuned(kappa, 1.0)
    return (Racer("GD", gd_lr), Racer("momentum", hb_lr, hb_beta), Racer("Adagrad", 0.5), Racer("RMSprop", 0.03),
            Racer("Adam", 0.1))


@dataclass(frozen=True)
class RotationConfig:
    """Quadratic(κ) rotated by each angle, the start (u, v) in its own axes rotated with it, and the racers."""

    kappa: float = 50.0
    angles: tuple[float, ...] = tuple(k * math.pi / 36 for k in range(19))  # 0° to 90° by 5°, in radians
    start: tuple[float, float] = (1.0, 1.0)  # along the flat and the steep axis
    racers: tuple[Racer, ...] | None = None  # None: rotation_racers(kappa)
    max_steps: int = 2000
    tol: float = 1e-6


@dataclass
class RotationSweep:
    """Steps to f − f* ≤ tol per racer and angle (NaN: not within ``max_steps``), and the paths themselves."""

    config: RotationConfig
    labels: tuple[str, ...]
    angles: Tensor  # (n,), radians
    steps: Tensor  # (R, n)
    points: Tensor  # (k+1, R, n, 2)
    losses: Tensor  # (k+1, R, n)


def rotation_sweep(config: RotationConfig) -> RotationSweep:
    """Race on the quadratic at every angle at once, rotating the start with the surface, until all reach tol."""
    racers = config.racers or rotation_racers(config.kappa)
    angles = torch.tensor(config.angles, dtype=torch.float64)
    c, s = torch.cos(angles), torch.sin(angles)
    rot = torch.stack([torch.stack([c, -s], -1), torch.stack([s, c], -1)], -2)  # (n, 2, 2), as in Quadratic
    h = rot @ torch.diag(torch.tensor([1.0, config.kappa], dtype=torch.float64)) @ rot.transpose(-1, -2)
    starts = rot @ torch.tensor(config.start, dtype=torch.float64)

    def grad(x: Tensor) -> Tensor:
        return (x.unsqueeze(-2) @ h).squeeze(-2)

    def loss(x: Tensor) -> Tensor:
        return 0.5 * (x * grad(x)).sum(-1)

    points, losses = run_racers(grad, loss, starts, racers, config.max_steps, stop_below=config.tol)
    reached = losses <= config.tol
    first = reached.int().argmax(0).to(torch.float64)
    steps = torch.where(reached.any(0), first, torch.full_like(first, math.nan))
    return RotationSweep(config, tuple(r.kind for r in racers), angles, steps, points, losses)
