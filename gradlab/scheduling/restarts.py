"""Warm restarts and snapshot ensembles (Chapter 4; Loshchilov & Hutter 2017, Huang et al. 2017).

SGDR runs cosine cycles of T_0, T_0·T_mult, … epochs on the digits MLP; at the end of each cycle, where η is
at its lowest and just before it jumps back up, the weights are saved. The ensemble averages the snapshots'
predicted probabilities. It is set against the last snapshot alone and against one cosine over the same budget.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F

from ..batched_mlp import Curves, DigitsSplit, MLPConfig, Run, digits_split, forward, train_runs
from ..schedules import Cosine, WarmRestarts
from .digits import CurvesResult

__all__ = ["RestartsConfig", "Restarts", "cycle_ends", "restarts"]


def cycle_ends(T_0: int, T_mult: int, epochs: int) -> tuple[int, ...]:
    """The epochs at which SGDR's cycles end (T_0, T_0 + T_0·T_mult, …), up to ``epochs``."""
    ends, end, period = [], 0, T_0
    while end + period <= epochs:
        end += period
        ends.append(end)
        period *= T_mult
    return tuple(ends)


@dataclass(frozen=True)
class RestartsConfig:
    """SGDR with periods in epochs, against one cosine over the same ``epochs``; ``seeds`` copies of each."""

    T_0: int = 3
    T_mult: int = 2
    epochs: int = 21
    lr: float = 0.2
    kind: str = "momentum"
    seeds: int = 3
    hidden: int = 32
    batch_size: int = 64

    def __post_init__(self):
        if self.T_0 < 1 or self.T_mult < 1 or self.epochs < self.T_0:
            raise ValueError(f"need T_0 ≥ 1, T_mult ≥ 1 and at least one whole cycle (epochs ≥ T_0), got {self}")


@dataclass(frozen=True, eq=False)
class Restarts(CurvesResult):
    """The curves (SGDR copies first, then cosine), and each seed's snapshot, ensemble and final scores."""

    config: RestartsConfig
    curves: Curves
    snapshot_epochs: tuple[int, ...]
    snapshot_loss: torch.Tensor  # (seeds, snapshots): each snapshot's validation loss
    ensemble_loss: torch.Tensor  # (seeds,): the averaged probabilities' validation loss
    ensemble_acc: torch.Tensor
    final_loss: torch.Tensor  # (2, seeds): SGDR's last weights, one cosine's last weights
    final_acc: torch.Tensor


def restarts(config: RestartsConfig = RestartsConfig(), split: DigitsSplit | None = None,
             progress: Callable[[float], None] | None = None) -> Restarts:
    """Train SGDR and one cosine (one batched call), keep SGDR's snapshots, and score their ensemble."""
    split = split if split is not None else digits_split(0)
    per_epoch = math.ceil(split.x_train.shape[0] / config.batch_size)
    sgdr = WarmRestarts(T_0=config.T_0 * per_epoch, T_mult=config.T_mult)
    cosine = Cosine(T_max=config.epochs * per_epoch)
    n = config.seeds
    runs = [Run(config.kind, config.lr, seed=s, schedule=sgdr) for s in range(n)]
    runs += [Run(config.kind, config.lr, seed=s, schedule=cosine) for s in range(n)]
    ends = cycle_ends(config.T_0, config.T_mult, config.epochs)
    snaps: list[list[torch.Tensor]] = []

    def keep(epoch: int, params: list[torch.Tensor]) -> None:
        if epoch in ends:
            snaps.append([p[:n] for p in params])  # the SGDR copies only

    mlp = MLPConfig(hidden=config.hidden, epochs=config.epochs, batch_size=config.batch_size)
    curves = train_runs(split, runs, mlp, progress, on_epoch=keep)
    y = split.y_val.expand(n, -1)
    with torch.no_grad():
        logits = [forward(p, split.x_val) for p in snaps]  # each (seeds, N, 10)
        snapshot_loss = torch.stack([F.cross_entropy(z.transpose(1, 2), y, reduction="none").mean(1)
                                     for z in logits], 1).double()
        probs = torch.stack([z.softmax(-1) for z in logits]).mean(0)
        ensemble_loss = F.nll_loss(probs.clamp_min(1e-12).log().transpose(1, 2), y, reduction="none").mean(1).double()
        ensemble_acc = (probs.argmax(-1) == split.y_val).double().mean(1)
    final_loss = curves.val_loss[:, -1].reshape(2, n)
    final_acc = curves.val_acc[:, -1].reshape(2, n)
    return Restarts(config, curves, ends, snapshot_loss, ensemble_loss, ensemble_acc, final_loss, final_acc)
