"""The learning-rate range test on the digits MLP (Chapter 4): its suggestion across seeds, then one-cycle with it.

:func:`gradlab.lr_finder.find_lr` runs on an ``nn.Sequential`` and a ``DataLoader``, as it would on a reader's
model; the training runs that follow use :func:`gradlab.batched_mlp.train_runs`, whose network is the same.
"""
from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from ..batched_mlp import Curves, DigitsSplit, MLPConfig, Run, digits_split, train_runs
from ..lr_finder import LRFinderResult, find_lr
from ..schedules import OneCycle
from .digits import CurvesResult

__all__ = ["RULES", "RangeTestConfig", "RangeTest", "range_test"]

RULES = ("steepest", "min_over_10")


@dataclass(frozen=True)
class RangeTestConfig:
    """One range test per seed (the model's initial weights and the batch order), then three training runs."""

    seeds: int = 5
    steps: int = 100
    smoothing: float = 0.98
    rule: str = "steepest"  # which suggestion the training runs use (the median over seeds)
    train_seeds: int = 3
    mlp: MLPConfig = MLPConfig(hidden=32, epochs=10, batch_size=64)

    def __post_init__(self):
        if self.rule not in RULES:
            raise ValueError(f"rule is one of {RULES}, not {self.rule!r}")
        if self.seeds < 1 or self.train_seeds < 1 or self.steps < 10:
            raise ValueError("need at least one seed and 10 sweep steps")


@dataclass(frozen=True, eq=False)
class RangeTest(CurvesResult):
    """The sweeps, their suggestions, the η chosen from them, and one-cycle against two constant rates."""

    config: RangeTestConfig
    sweeps: tuple[LRFinderResult, ...]
    suggestions: tuple[float, ...]  # per seed, by the config's rule (NaN where the rule gave none)
    peak: float  # the median suggestion: one-cycle's η_max
    curves: Curves  # one-cycle at peak, constant at peak, constant at peak/10; train_seeds copies each

    labels = ("one-cycle at η_max", "constant η_max", "constant η_max/10")

    @property
    def spread(self) -> float:
        """The largest suggestion over the smallest: how far one seed's answer can be from another's."""
        ok = [s for s in self.suggestions if math.isfinite(s)]
        return max(ok) / min(ok) if ok else math.nan

    def final(self, metric: str = "val_loss") -> torch.Tensor:
        """The mean over seeds of the final value of ``metric`` for each of the three runs."""
        return getattr(self.curves, metric)[:, -1].reshape(3, self.config.train_seeds).mean(1)


def _sweep(split: DigitsSplit, cfg: RangeTestConfig, seed: int) -> LRFinderResult:
    torch.manual_seed(seed)  # nn.Linear's initial weights, inside range_test's fork_rng; the order has its own
    model = nn.Sequential(nn.Linear(64, cfg.mlp.hidden), nn.ReLU(), nn.Linear(cfg.mlp.hidden, 10))
    order = torch.Generator().manual_seed(seed)
    loader = DataLoader(TensorDataset(split.x_train, split.y_train), batch_size=cfg.mlp.batch_size, shuffle=True,
                        generator=order)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    return find_lr(model, nn.functional.cross_entropy, loader, optimizer, start_lr=1e-5, end_lr=10.0,
                   steps=cfg.steps, smoothing=cfg.smoothing)


def range_test(config: RangeTestConfig = RangeTestConfig(), split: DigitsSplit | None = None,
               progress: Callable[[float], None] | None = None) -> RangeTest:
    """Sweep once per seed, take the median suggestion as η_max, then train one-cycle and constant rates with it."""
    split = split if split is not None else digits_split(0)
    sweeps = []
    with torch.random.fork_rng(devices=[]):  # the reader's global generator is left as it was
        for seed in range(config.seeds):
            sweeps.append(_sweep(split, config, seed))
            if progress is not None:
                progress(0.4 * (seed + 1) / config.seeds)
    picks = tuple(math.nan if getattr(s, config.rule) is None else float(getattr(s, config.rule)) for s in sweeps)
    finite = [p for p in picks if math.isfinite(p)]
    peak = statistics.median(finite) if finite else 0.1
    total = config.mlp.epochs * math.ceil(split.x_train.shape[0] / config.mlp.batch_size)
    runs = [Run("momentum", lr, seed=s, schedule=sched) for lr, sched in
            ((peak, OneCycle(total)), (peak, None), (peak / 10, None)) for s in range(config.train_seeds)]
    sub = None if progress is None else (lambda f: progress(0.4 + 0.6 * f))
    return RangeTest(config, tuple(sweeps), picks, peak, train_runs(split, runs, config.mlp, sub))
