"""Schedules on a real network (Chapter 4): the digits MLP trained under each schedule, and Adam's warmup.

Every run is a copy in :func:`gradlab.batched_mlp.train_runs`: ``torch.optim`` steps it and
``torch.optim.lr_scheduler`` sets its η after every update, so a whole comparison is one batched call.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch
from torch import Tensor

from .. import schedules as S
from ..batched_mlp import Curves, DigitsSplit, MLPConfig, Run, digits_split, train_runs

__all__ = ["SCHEDULES", "make_schedule", "ScheduleRaceConfig", "ScheduleRace", "schedule_race", "WarmupConfig",
           "WarmupSweep", "warmup_sweep", "PeakSweepConfig", "PeakSweep", "peak_sweep"]

SCHEDULES = ("constant", "step", "exponential", "cosine", "warmup + cosine", "one-cycle", "warm restarts")


def make_schedule(name: str, total_steps: int, warmup: float = 0.05) -> S.Schedule | None:
    """The chapter's version of each schedule over a run of ``total_steps`` updates (None: constant η).

    Each ends about two orders of magnitude below its peak, so they differ in shape, not in how far they fall.
    ``warmup`` is the fraction of the run spent warming up (warmup + cosine).
    """
    t = total_steps
    if name == "constant":
        return None
    if name == "step":
        return S.Step(step_size=max(1, math.ceil(t / 3)), gamma=0.1)
    if name == "exponential":
        return S.Exponential(gamma=0.01 ** (1 / t))
    if name == "cosine":
        return S.Cosine(T_max=t)
    if name == "warmup + cosine":
        return S.WarmupCosine(total_steps=t, warmup_steps=min(t - 1, max(1, round(warmup * t))))
    if name == "one-cycle":
        return S.OneCycle(total_steps=t)
    if name == "warm restarts":
        return S.WarmRestarts(T_0=max(1, math.ceil(t / 7)), T_mult=2)
    raise ValueError(f"schedule is one of {SCHEDULES}, not {name!r}")


@dataclass(frozen=True)
class ScheduleRaceConfig:
    """Each schedule in ``names`` at one peak η, ``seeds`` copies each, on the digits MLP for a fixed budget."""

    names: tuple[str, ...] = SCHEDULES
    kind: str = "momentum"  # an optimizer of gradlab.batched_mlp.KINDS
    lr: float = 0.1
    seeds: int = 3
    mlp: MLPConfig = MLPConfig(hidden=32, epochs=15, batch_size=64)


class CurvesResult:
    """A result whose first diverged copy is that of its curves (the widgets report it)."""

    curves: Curves

    @property
    def diverged_at(self) -> int | None:
        return self.curves.diverged_at

    @property
    def diverged_run(self) -> str | None:
        return self.curves.diverged_run


@dataclass(frozen=True, eq=False)
class ScheduleRace(CurvesResult):
    """The runs' curves, copies grouped by schedule (schedule i holds copies i·seeds … (i+1)·seeds − 1)."""

    config: ScheduleRaceConfig
    curves: Curves

    def per_schedule(self, values: Tensor) -> Tensor:
        """(schedules, seeds, …) from a per-copy tensor."""
        return values.reshape(len(self.config.names), self.config.seeds, *values.shape[1:])

    def final(self, metric: str = "val_loss") -> tuple[Tensor, Tensor]:
        """Mean and standard deviation over seeds of the final value of ``metric``, per schedule."""
        last = self.per_schedule(getattr(self.curves, metric)[:, -1])
        return last.mean(1), (last.std(1) if self.config.seeds > 1 else torch.zeros_like(last[:, 0]))


def schedule_race(config: ScheduleRaceConfig = ScheduleRaceConfig(), split: DigitsSplit | None = None,
                  progress: Callable[[float], None] | None = None) -> ScheduleRace:
    """Train every schedule of ``config`` with the same optimizer, peak η, seeds and budget (one batched call)."""
    split = split if split is not None else digits_split(0)
    total = config.mlp.epochs * math.ceil(split.x_train.shape[0] / config.mlp.batch_size)
    runs = [Run(config.kind, config.lr, seed=seed, schedule=make_schedule(name, total))
            for name in config.names for seed in range(config.seeds)]
    return ScheduleRace(config, train_runs(split, runs, config.mlp, progress))


@dataclass(frozen=True)
class WarmupConfig:
    """A large η on a deeper MLP: ``seeds`` copies per warmup length T_w (in updates), the peak held after it."""

    warmups: tuple[int, ...] = (0, 10, 50, 150)
    lr: float = 0.04
    seeds: int = 8
    kind: str = "Adam"
    mlp: MLPConfig = MLPConfig(hidden=48, epochs=5, batch_size=32, depth=6)
    fail_loss: float = math.log(10)  # a final validation loss no better than guessing among 10 classes
    early: int = 40  # the first updates, where the loss spikes without warmup


@dataclass(frozen=True, eq=False)
class WarmupSweep(CurvesResult):
    """Per warmup length: which copies failed (diverged, or ended no better than chance), the highest loss of the
    first ``early`` updates, and the curves."""

    config: WarmupConfig
    curves: Curves
    failed: Tensor  # (len(warmups), seeds) bool
    early_peak: Tensor  # (len(warmups), seeds): the largest mini-batch loss of the first updates

    @property
    def fraction(self) -> Tensor:
        return self.failed.double().mean(1)


def warmup_sweep(config: WarmupConfig = WarmupConfig(), split: DigitsSplit | None = None,
                 progress: Callable[[float], None] | None = None) -> WarmupSweep:
    """Every (T_w, seed) copy: η rises linearly from η/100 over T_w updates (LinearLR), then stays at η."""
    split = split if split is not None else digits_split(0)
    total = config.mlp.epochs * math.ceil(split.x_train.shape[0] / config.mlp.batch_size)
    if max(config.warmups) >= total or min(config.warmups) < 0:
        raise ValueError(f"warmups must lie in [0, {total}) updates (the run's length), got {config.warmups}")
    runs = []
    for tw in config.warmups:
        schedule = S.Warmup(tw, start_factor=0.01) if tw > 0 else None
        runs += [Run(config.kind, config.lr, seed=seed, schedule=schedule) for seed in range(config.seeds)]
    curves = train_runs(split, runs, config.mlp, progress)
    final = curves.val_loss[:, -1]
    diverged = torch.tensor([d is not None for d in curves.diverged])
    failed = diverged | ~torch.isfinite(final) | (final >= config.fail_loss)
    early = torch.nan_to_num(curves.step_loss[:, : config.early], nan=math.inf).max(1).values
    shape = (len(config.warmups), config.seeds)
    return WarmupSweep(config, curves, failed.reshape(shape), early.reshape(shape))


@dataclass(frozen=True)
class PeakSweepConfig:
    """Each schedule of ``names`` at each peak η, ``seeds`` copies each: does the schedule still matter for Adam?"""

    peaks: tuple[float, ...] = (1e-3, 3e-3, 1e-2, 3e-2, 1e-1)
    names: tuple[str, ...] = ("constant", "warmup + cosine")
    kind: str = "Adam"
    seeds: int = 3
    mlp: MLPConfig = MLPConfig(hidden=32, epochs=15, batch_size=64)


@dataclass(frozen=True, eq=False)
class PeakSweep(CurvesResult):
    """Final validation loss per (peak, schedule, seed); copies ordered peak-major, then schedule, then seed."""

    config: PeakSweepConfig
    curves: Curves

    def final(self, metric: str = "val_loss") -> Tensor:
        """(peaks, schedules, seeds) final values of ``metric``."""
        c = self.config
        return getattr(self.curves, metric)[:, -1].reshape(len(c.peaks), len(c.names), c.seeds)


def peak_sweep(config: PeakSweepConfig = PeakSweepConfig(), split: DigitsSplit | None = None,
               progress: Callable[[float], None] | None = None) -> PeakSweep:
    """Train every (peak, schedule, seed) copy in one batched call."""
    split = split if split is not None else digits_split(0)
    total = config.mlp.epochs * math.ceil(split.x_train.shape[0] / config.mlp.batch_size)
    runs = [Run(config.kind, peak, seed=seed, schedule=make_schedule(name, total))
            for peak in config.peaks for name in config.names for seed in range(config.seeds)]
    return PeakSweep(config, train_runs(split, runs, config.mlp, progress))
