"""The optimizer race on a real network (Chapter 3): a small MLP on the digits, each optimizer at its own η.

Each optimizer's η is picked from a sweep by the final validation loss of one seed; then every optimizer
is trained at its η from several other seeds (initial weights and batch order), and the final validation
accuracy is reported as a mean and a standard deviation over seeds. The η is chosen on the same validation
set, so the numbers are slightly optimistic for every optimizer alike; one data set, one network and one
budget of epochs are one problem, not a ranking of optimizers (Wilson et al. 2017; Schmidt et al. 2021).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from torch import Tensor

from .batched_mlp import Curves, DigitsSplit, MLPConfig, Run, digits_split, train_runs

__all__ = ["RACERS", "DigitsRaceConfig", "LrSweep", "lr_sweep", "DigitsRace", "digits_race"]

RACERS = ("SGD", "momentum", "Adagrad", "RMSprop", "Adam", "AdamW")
ADAMW_DECAY = 1e-2  # torch.optim.AdamW's default α; the others have none


def _run(kind: str, lr: float, seed: int) -> Run:
    return Run(kind, lr, ADAMW_DECAY if kind == "AdamW" else 0.0, seed=seed)


@dataclass(frozen=True)
class DigitsRaceConfig:
    """The racers, the η swept for each, the network and its training, the sweep's seed and the race's seeds."""

    kinds: tuple[str, ...] = RACERS
    lrs: tuple[float, ...] = (1e-3, 3e-3, 1e-2, 3e-2, 0.1, 0.3, 1.0, 3.0)
    mlp: MLPConfig = MLPConfig(hidden=32, epochs=15, batch_size=128)
    sweep_seed: int = 0
    seeds: tuple[int, ...] = (1, 2, 3, 4, 5)
    lr_scale: float = 1.0  # every tuned η multiplied by this in the race (1: as tuned)
    split_seed: int = 0


@dataclass
class LrSweep:
    """Final validation loss (kinds, lrs) of the sweep, NaN where a run diverged, and each kind's best η."""

    kinds: tuple[str, ...]
    lrs: tuple[float, ...]
    val_loss: Tensor
    best_lrs: tuple[float, ...]


def lr_sweep(config: DigitsRaceConfig, split: DigitsSplit | None = None,
             progress: Callable[[float], None] | None = None) -> LrSweep:
    """Every racer at every η from ``sweep_seed``, in one batched run; the best η by final validation loss."""
    split = split or digits_split(config.split_seed)
    runs = [_run(k, lr, config.sweep_seed) for k in config.kinds for lr in config.lrs]
    curves = train_runs(split, runs, config.mlp, progress)
    loss = curves.val_loss[:, -1].clone()
    loss[[d is not None for d in curves.diverged]] = float("nan")
    loss = loss.reshape(len(config.kinds), len(config.lrs))
    best = tuple(config.lrs[int(torch.nan_to_num(row, nan=float("inf")).argmin())] for row in loss)
    return LrSweep(config.kinds, config.lrs, loss, best)


@dataclass
class DigitsRace:
    """The sweep, then every racer at its tuned η (× ``lr_scale``) from every seed: curves (kinds·seeds, epochs+1)."""

    config: DigitsRaceConfig
    sweep: LrSweep
    curves: Curves  # run i·S + j is racer i from seed j
    diverged_at: int | None = None
    diverged_run: str | None = None

    def _per_kind(self, values: Tensor) -> Tensor:
        return values.reshape(len(self.config.kinds), len(self.config.seeds), *values.shape[1:])

    def final(self, metric: str = "val_acc") -> tuple[Tensor, Tensor]:
        """Mean and standard deviation over seeds of a final metric ("val_acc", "val_loss", …) per racer."""
        v = self._per_kind(getattr(self.curves, metric)[:, -1])
        return v.mean(1), (v.std(1) if v.shape[1] > 1 else torch.zeros_like(v[:, 0]))

    def curve(self, metric: str) -> tuple[Tensor, Tensor]:
        """Mean and standard deviation over seeds of a metric per epoch: (kinds, epochs + 1) each."""
        v = self._per_kind(getattr(self.curves, metric))
        return v.mean(1), (v.std(1) if v.shape[1] > 1 else torch.zeros_like(v[:, 0]))

    def winner(self) -> str:
        """The racer with the highest mean final validation accuracy."""
        mean, _ = self.final("val_acc")
        return self.config.kinds[int(torch.nan_to_num(mean, nan=-1.0).argmax())]


def digits_race(config: DigitsRaceConfig = DigitsRaceConfig(), split: DigitsSplit | None = None,
                progress: Callable[[float], None] | None = None, sweep: LrSweep | None = None) -> DigitsRace:
    """Sweep η (unless ``sweep`` is given), then race every optimizer at its own η from every seed."""
    split = split or digits_split(config.split_seed)
    report = progress or (lambda f: None)
    start = 0.0 if sweep is not None else 0.6  # the sweep takes the first part of the bar when it runs here
    if sweep is None:
        sweep = lr_sweep(config, split, lambda f: report(0.6 * f))
    runs = [_run(k, lr * config.lr_scale, s) for k, lr in zip(config.kinds, sweep.best_lrs) for s in config.seeds]
    curves = train_runs(split, runs, config.mlp, lambda f: report(start + (1 - start) * f))
    return DigitsRace(config, sweep, curves, curves.diverged_at, curves.diverged_run)
