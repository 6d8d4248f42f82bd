"""ReduceLROnPlateau from scratch (Chapter 4): the learning rate follows the losses, not the step.

:func:`plateau_decisions` replays, on a given sequence of metric values, the decisions that
``torch.optim.lr_scheduler.ReduceLROnPlateau`` takes, one ``scheduler.step(value)`` per value; the closed-form
schedules of the step are in :mod:`gradlab.schedules`.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Iterable

from torch.optim import Optimizer, lr_scheduler

__all__ = ["Plateau", "plateau_decisions"]


@dataclass(frozen=True)
class Plateau:
    """ReduceLROnPlateau: η ← max(factor · η, min_lr) after more than ``patience`` values without improvement."""

    mode: str = "min"
    factor: float = 0.1
    patience: int = 10
    threshold: float = 1e-4
    threshold_mode: str = "rel"
    cooldown: int = 0
    min_lr: float = 0.0
    eps: float = 1e-8

    def __post_init__(self):
        if self.mode not in ("min", "max") or self.threshold_mode not in ("rel", "abs"):
            raise ValueError("mode is 'min' or 'max', threshold_mode 'rel' or 'abs', "
                             f"not {self.mode!r} and {self.threshold_mode!r}")
        if not 0 < self.factor < 1:
            raise ValueError(f"factor must be in (0, 1), got {self.factor}")
        if not all(isinstance(n, int) and n >= 0 for n in (self.patience, self.cooldown)):
            raise ValueError(f"patience and cooldown must be whole numbers ≥ 0, not {self.patience!r}, "
                             f"{self.cooldown!r}")
        if not min(self.threshold, self.min_lr, self.eps) >= 0:
            raise ValueError(f"threshold, min_lr and eps must be ≥ 0, not {self.threshold}, {self.min_lr}, "
                             f"{self.eps}")

    def improves(self, value: float, best: float) -> bool:
        """Whether ``value`` beats ``best`` by the threshold ("rel" with a negative best lets a worse value pass)."""
        if self.mode == "min":
            return value < (best * (1 - self.threshold) if self.threshold_mode == "rel" else best - self.threshold)
        return value > (best * (1 + self.threshold) if self.threshold_mode == "rel" else best + self.threshold)

    def to_torch(self, optimizer: Optimizer) -> lr_scheduler.ReduceLROnPlateau:
        """PyTorch's scheduler for ``optimizer``, to step with each new value: ``scheduler.step(value)``."""
        return lr_scheduler.ReduceLROnPlateau(optimizer, **asdict(self))


def plateau_decisions(plateau: Plateau, losses: Iterable[float], base_lr: float) -> list[float]:
    """The learning rate after each value of ``losses`` (the one the next epoch uses), as ReduceLROnPlateau decides."""
    best = math.inf if plateau.mode == "min" else -math.inf
    lr, bad, cooling, lrs = base_lr, 0, 0, []
    for value in map(float, losses):
        if plateau.improves(value, best):
            best, bad = value, 0
        else:
            bad += 1  # NaN never improves: it counts as bad
        if cooling > 0:
            cooling, bad = cooling - 1, 0  # values seen while cooling down are not held against the new η
        if bad > plateau.patience:
            new = max(lr * plateau.factor, plateau.min_lr)
            if lr - new > plateau.eps:  # a cut smaller than eps is skipped, yet the cooldown starts all the same
                lr = new
            cooling, bad = plateau.cooldown, 0
        lrs.append(lr)
    return lrs
