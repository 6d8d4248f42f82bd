"""Mini-batches (Chapter 1): how noisy a mini-batch gradient is, and training with one.

A mini-batch gradient g_B is the mean of B per-example gradients. Its error E‖g_B − g‖²
against the full gradient g is σ²/B when the B examples are drawn with replacement and
σ²/B · (N − B)/(N − 1) when drawn without (the finite-population correction), where
σ² = (1/N) Σᵢ ‖gᵢ − g‖². :func:`gradient_noise` measures both.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

import torch
from torch import Tensor

from .data import LogisticTask
from .seeding import generator

__all__ = ["noise_formula", "NoiseConfig", "GradientNoise", "gradient_noise", "error_ratio",
           "MinibatchConfig", "TrainingRun", "train_minibatch"]


def noise_formula(sigma2: float, n: int, batch: Tensor | int, replace: bool) -> Tensor:
    """E‖g_B − g‖² for batches of size ``batch`` drawn with or without replacement from n examples."""
    b = torch.as_tensor(batch, dtype=torch.float64)
    return sigma2 / b if replace else sigma2 / b * (n - b) / (n - 1)


@dataclass(frozen=True)
class NoiseConfig:
    """Which batch sizes to measure, how many batches to draw for each, and the seed of the draws."""

    batch_sizes: tuple[int, ...] = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)
    draws: int = 2000
    seed: int = 0


@dataclass
class GradientNoise:
    """Measured mean squared error of the mini-batch gradient (with its standard error) per batch size."""

    n: int
    sigma2: float
    batch_sizes: Tensor
    measured: dict[str, Tensor] = field(default_factory=dict)  # "with" / "without" replacement
    stderr: dict[str, Tensor] = field(default_factory=dict)

    def predicted(self, replace: bool) -> Tensor:
        return noise_formula(self.sigma2, self.n, self.batch_sizes, replace)


def gradient_noise(task: LogisticTask, w: Tensor, config: NoiseConfig = NoiseConfig()) -> GradientNoise:
    """Draw ``config.draws`` mini-batches of each size, both ways, and measure E‖g_B − g‖² at parameters ``w``."""
    dev = task.per_example_grads(w)
    dev = dev - dev.mean(dim=0)  # gᵢ − g
    n, device = task.n, w.device
    gen = generator(config.seed, device)
    out = GradientNoise(n, float((dev * dev).sum(1).mean()), torch.tensor(config.batch_sizes))
    for key in ("with", "without"):
        means, errs = [], []
        for b in config.batch_sizes:
            if key == "with":
                idx = torch.randint(n, (config.draws, b), generator=gen, device=device)
            else:
                idx = torch.rand(config.draws, n, generator=gen, device=device).argsort(dim=1)[:, :b]
            # each draw as a row of weights count/B over the examples: g_B − g = weights @ (gᵢ − g)
            weights = torch.zeros(config.draws, n, dtype=dev.dtype, device=device)
            weights.scatter_add_(1, idx, torch.full(idx.shape, 1.0 / b, dtype=dev.dtype, device=device))
            sq = ((weights @ dev) ** 2).sum(dim=1)
            means.append(float(sq.mean()))
            errs.append(float(sq.std()) / math.sqrt(config.draws))
        out.measured[key] = torch.tensor(means, dtype=torch.float64)
        out.stderr[key] = torch.tensor(errs, dtype=torch.float64)
    return out


def error_ratio(task: LogisticTask, small: int, large: int, draws: int = 10000, seed: int = 0) -> dict[str, float]:
    """By what factor E‖g_B − g‖² at w = 0 falls from B = ``small`` to B = ``large``, measured with and without
    replacement (Exercise 1.2)."""
    noise = gradient_noise(task, task.zeros(), NoiseConfig(batch_sizes=(small, large), draws=draws, seed=seed))
    return {key: float(m[0] / m[1]) for key, m in noise.measured.items()}


@dataclass(frozen=True)
class MinibatchConfig:
    """Mini-batch SGD on the logistic task: batch size (0: the full batch), step size, epochs, seed."""

    batch_size: int = 32
    lr: float = 0.1
    epochs: int = 10
    seed: int = 0


@dataclass
class TrainingRun:
    """The full training loss, measured every few updates, of one mini-batch run."""

    config: MinibatchConfig
    batch_size: int
    updates_per_epoch: int
    updates: Tensor  # update counts at which the loss was measured, from 0
    losses: Tensor
    diverged_at: int | None = None

    @property
    def epochs(self) -> Tensor:
        """The same measurement points in epochs (passes over the data)."""
        return self.updates.double() / self.updates_per_epoch


def train_minibatch(task: LogisticTask, config: MinibatchConfig,
                    progress: Callable[[float], None] | None = None, max_points: int = 400) -> TrainingRun:
    """Shuffle every epoch, step ``torch.optim.SGD`` once per mini-batch, record the loss on all the data."""
    n = task.n
    b = n if config.batch_size <= 0 else min(config.batch_size, n)
    per_epoch = math.ceil(n / b)  # the last batch of an epoch may be smaller, as in DataLoader
    every = max(1, per_epoch * config.epochs // max_points)
    device = task.features.device
    gen = generator(config.seed, device)
    w = task.zeros().requires_grad_(True)
    opt = torch.optim.SGD([w], lr=config.lr)
    updates, losses = [0], [float(task.loss(w.detach()))]
    step, diverged = 0, None
    for epoch in range(config.epochs):
        order = torch.randperm(n, generator=gen, device=device)
        for start in range(0, n, b):
            opt.zero_grad()
            task.loss(w, order[start:start + b]).backward()
            opt.step()
            step += 1
            if step % every == 0 or step == per_epoch * config.epochs:
                with torch.no_grad():
                    updates.append(step)
                    losses.append(float(task.loss(w)))
                if not math.isfinite(losses[-1]):
                    diverged = step
                    break
            if progress is not None:  # per update, so even a one-epoch run shows the bar moving
                progress(step / (per_epoch * config.epochs))
        if diverged is not None:
            break
    if diverged is not None:  # keep the run up to the step where it blew up
        updates, losses = updates[:-1], losses[:-1]
    return TrainingRun(config, b, per_epoch, torch.tensor(updates), torch.tensor(losses, dtype=torch.float64), diverged)
