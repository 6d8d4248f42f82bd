"""The linear scaling rule (Chapter 4; Goyal et al. 2017): batch size against learning rate at a fixed budget.

With B examples per update and a fixed number of epochs, a run makes N/B updates. The linear rule scales
η = η₀·B/B₀ so that k small steps and one k-times-larger batch move the weights about as far (while the gradient
changes little over those steps); the square-root rule (Krizhevsky 2014; for Adam, Malladi et al. 2022) scales
η₀·√(B/B₀), which keeps the variance of the gradient noise per step's move the same; "none" keeps η₀.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch

from ..batched_mlp import DigitsSplit, MLPConfig, Run, digits_split, train_runs
from ..schedules import Warmup

__all__ = ["RULES", "scaled_lr", "ScalingConfig", "Scaling", "scaling"]

RULES = ("linear", "sqrt", "none")


def scaled_lr(rule: str, base_lr: float, base_batch: int, batch: int) -> float:
    """η for batch size ``batch`` under ``rule``, from η₀ = ``base_lr`` at B₀ = ``base_batch``."""
    ratio = batch / base_batch
    if rule == "linear":
        return base_lr * ratio
    if rule == "sqrt":
        return base_lr * math.sqrt(ratio)
    if rule == "none":
        return base_lr
    raise ValueError(f"rule is one of {RULES}, not {rule!r}")


@dataclass(frozen=True)
class ScalingConfig:
    """Every (B, rule) pair, ``seeds`` copies each, for ``epochs`` epochs; warmup over ``warmup`` of the updates."""

    batch_sizes: tuple[int, ...] = (16, 32, 64, 128, 256, 512)
    base_batch: int = 32
    base_lr: float = 0.05
    kind: str = "momentum"
    warmup: float = 0.0  # a fraction of each run's updates; 0: none
    epochs: int = 6
    seeds: int = 2
    hidden: int = 32

    def __post_init__(self):
        if not 0 <= self.warmup < 1:
            raise ValueError(f"warmup is a fraction of the run in [0, 1), got {self.warmup}")
        if min(self.batch_sizes) < 1 or self.base_batch < 1:
            raise ValueError("batch sizes must be positive")


@dataclass(frozen=True, eq=False)
class Scaling:
    """Final training and validation loss per rule and batch size (mean over seeds); NaN where a run diverged."""

    config: ScalingConfig
    lrs: torch.Tensor  # (rules, batch sizes)
    val_loss: torch.Tensor  # (rules, batch sizes)
    train_loss: torch.Tensor
    updates: tuple[int, ...]  # per batch size
    diverged_at: int | None = None
    diverged_run: str | None = None


def scaling(config: ScalingConfig = ScalingConfig(), split: DigitsSplit | None = None,
            progress: Callable[[float], None] | None = None) -> Scaling:
    """One batched call per batch size, holding every rule's copies."""
    split = split if split is not None else digits_split(0)
    n = split.x_train.shape[0]
    shape = (len(RULES), len(config.batch_sizes))
    lrs, val, train = torch.empty(shape), torch.empty(shape), torch.empty(shape)
    updates, first = [], None
    for j, b in enumerate(config.batch_sizes):
        total = config.epochs * math.ceil(n / b)
        updates.append(total)
        warm = Warmup(max(1, round(config.warmup * total)), start_factor=0.01) if config.warmup > 0 else None
        runs = [Run(config.kind, scaled_lr(rule, config.base_lr, config.base_batch, b), seed=s, schedule=warm)
                for rule in RULES for s in range(config.seeds)]
        sub = None if progress is None else (lambda f, j=j: progress((j + f) / len(config.batch_sizes)))
        curves = train_runs(split, runs, MLPConfig(config.hidden, config.epochs, b), sub)
        bad = torch.tensor([d is not None for d in curves.diverged]).reshape(len(RULES), config.seeds)
        v = curves.val_loss[:, -1].reshape(len(RULES), config.seeds)
        t = curves.train_loss[:, -1].reshape(len(RULES), config.seeds)
        val[:, j] = torch.where(bad.any(1), math.nan, v.mean(1))
        train[:, j] = torch.where(bad.any(1), math.nan, t.mean(1))
        lrs[:, j] = torch.tensor([scaled_lr(r, config.base_lr, config.base_batch, b) for r in RULES])
        if curves.diverged_at is not None and first is None:
            first = (curves.diverged_at, f"B = {b}, {curves.diverged_run}")
    return Scaling(config, lrs, val, train, tuple(updates), diverged_at=first and first[0],
                   diverged_run=first and first[1])
