"""ReduceLROnPlateau on a noisy curve (Chapter 4): how often noise alone makes it cut the learning rate.

The digits MLP trains at a constant η; after every epoch its validation loss is measured twice: on a fresh
random sample of ``monitor`` validation examples (what a scheduler watches when a validation set is too large to
go through every epoch, or too small to be precise) and on the whole validation set (the reference). :func:`gradlab.plateau.plateau_decisions`, which makes ``ReduceLROnPlateau``'s decisions, is
replayed on the monitored curve. A reduction is *triggered by noise* when the reference curve was still
improving: its lowest value in the ``patience + 1`` epochs that ended at the reduction beat its best before them
by more than the threshold, so a scheduler watching the reference would have seen progress, not a plateau.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F

from ..batched_mlp import Curves, MLPConfig, Run, digits_split, forward, train_runs
from ..plateau import Plateau, plateau_decisions
from ..seeding import generator
from .digits import CurvesResult

__all__ = ["PlateauNoiseConfig", "PlateauNoise", "plateau_noise", "noise_triggered"]


@dataclass(frozen=True)
class PlateauNoiseConfig:
    """Constant-η training, a monitoring set of ``monitor`` validation examples, and the scheduler's settings."""

    lr: float = 0.05
    epochs: int = 40
    seeds: int = 4
    monitor: int = 100
    plateau: Plateau = Plateau(factor=0.5, patience=3, threshold=1e-2)
    mlp_hidden: int = 32
    batch_size: int = 64

    def __post_init__(self):
        if self.monitor < 1 or self.epochs < 2 or self.seeds < 1:
            raise ValueError(f"need a monitoring set, two epochs and a seed, got {self}")


def noise_triggered(plateau: Plateau, reference: list[float], epoch: int) -> bool:
    """Whether the reference curve improved by more than the threshold in the window that ended at ``epoch``."""
    start = max(0, epoch - plateau.patience)
    before = reference[:start]
    if not before:
        return False
    return plateau.improves(min(reference[start:epoch + 1]), min(before))


@dataclass(frozen=True, eq=False)
class PlateauNoise(CurvesResult):
    """Per seed: the monitored and reference curves, η after each epoch, and which reductions noise caused."""

    config: PlateauNoiseConfig
    curves: Curves
    monitored: torch.Tensor  # (seeds, epochs): the small set's validation loss after each epoch
    reference: torch.Tensor  # (seeds, epochs): the whole validation set's
    lrs: list[list[float]]  # per seed: η after each epoch, as ReduceLROnPlateau decides on the monitored curve
    reductions: list[list[int]]  # per seed: the epochs (0-based) after which η was cut
    false: list[list[int]]  # per seed: those of them triggered by noise

    @property
    def counts(self) -> tuple[int, int]:
        """All reductions and the noise-triggered ones, over every seed."""
        return sum(map(len, self.reductions)), sum(map(len, self.false))


@functools.lru_cache(maxsize=8)
def _measured(lr: float, epochs: int, seeds: int, monitor: int, hidden: int, batch_size: int):
    """Train and measure both curves every epoch; the scheduler's settings do not change the run (it is
    replayed), so one training serves every patience, factor and threshold."""
    split = digits_split(0)
    draw = generator(10_000)  # the monitoring samples: one stream, apart from the runs' own seeds
    monitored, reference = [], []

    def measure(epoch: int, params: list[torch.Tensor]) -> None:
        with torch.no_grad():
            pick_ = torch.randint(0, split.x_val.shape[0], (monitor,), generator=draw)
            small = (split.x_val[pick_], split.y_val[pick_])
            for x, y, out in ((*small, monitored), (split.x_val, split.y_val, reference)):
                logits = forward(params, x)
                out.append(F.cross_entropy(logits.transpose(1, 2), y.expand(seeds, -1), reduction="none").mean(1))

    runs = [Run("momentum", lr, seed=s) for s in range(seeds)]
    curves = train_runs(split, runs, MLPConfig(hidden=hidden, epochs=epochs, batch_size=batch_size),
                        on_epoch=measure)
    return curves, torch.stack(monitored, 1).double(), torch.stack(reference, 1).double()


def plateau_noise(config: PlateauNoiseConfig = PlateauNoiseConfig(),
                  progress: Callable[[float], None] | None = None) -> PlateauNoise:
    """Train (once per training setting: cached), then replay the scheduler on the monitored curve."""
    curves, mon, ref = _measured(config.lr, config.epochs, config.seeds, config.monitor, config.mlp_hidden,
                                 config.batch_size)
    if progress is not None:
        progress(1.0)
    lrs, reductions, false = [], [], []
    for s in range(config.seeds):
        trace = plateau_decisions(config.plateau, mon[s].tolist(), config.lr)
        cuts = [e for e in range(len(trace)) if trace[e] < (trace[e - 1] if e else config.lr)]
        lrs.append(trace)
        reductions.append(cuts)
        false.append([e for e in cuts if noise_triggered(config.plateau, ref[s].tolist(), e)])
    return PlateauNoise(config, curves, mon, ref, lrs, reductions, false)
