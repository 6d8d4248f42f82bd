"""Grid against random search (Chapter 4; Bergstra & Bengio 2012) over a measured landscape of the digits MLP.

The landscape is the validation loss after training at every (η, α) of a fine grid: η log-spaced over three
decades (it matters), α the weight decay (it matters far less). A search of n trials is judged by whether its
best trial lands in the best fraction p of the landscape's cells. Random search draws n cells uniformly, which
is log-uniform in η; its chance is exactly 1 − (1 − p)ⁿ when it draws with replacement. A grid of m × m = n
trials, evenly spaced, tests only m distinct values of η: its chance is measured over random placements.
Between the trained grid points the loss is interpolated, so a search is not confined to them.
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np
import torch

from ..batched_mlp import MLPConfig, Run, digits_split, train_runs

__all__ = ["LandscapeConfig", "Landscape", "landscape", "SearchOdds", "top_level", "search_odds"]


@dataclass(frozen=True)
class LandscapeConfig:
    """The (η, α) grid: ``n_lr`` learning rates of SGD with momentum, ``n_decay`` weight decays, one seed each."""

    lr_range: tuple[float, float] = (1e-3, 1.0)
    decay_range: tuple[float, float] = (1e-5, 1e-1)
    n_lr: int = 24
    n_decay: int = 8
    mlp: MLPConfig = MLPConfig(hidden=32, epochs=8, batch_size=64)


@dataclass(frozen=True, eq=False)
class Landscape:
    """The final validation loss over the grid, rows η and columns α (diverged runs: +inf)."""

    config: LandscapeConfig
    lrs: np.ndarray
    decays: np.ndarray
    val_loss: np.ndarray  # (n_lr, n_decay)

    def top(self, fraction: float) -> np.ndarray:
        """A boolean mask of the best ``fraction`` of the cells (at least one)."""
        flat = self.val_loss.ravel()
        k = max(1, int(round(fraction * flat.size)))
        order = np.argsort(flat, kind="stable")
        mask = np.zeros(flat.size, dtype=bool)
        mask[order[:k]] = True
        return mask.reshape(self.val_loss.shape)


@functools.lru_cache(maxsize=4)
def landscape(config: LandscapeConfig = LandscapeConfig()) -> Landscape:
    """Train every grid point once (one batched call); cached, so a widget only resamples it."""
    lrs = np.geomspace(*config.lr_range, config.n_lr)
    decays = np.geomspace(*config.decay_range, config.n_decay)
    runs = [Run("momentum", float(lr), weight_decay=float(a), seed=0) for lr in lrs for a in decays]
    curves = train_runs(digits_split(0), runs, config.mlp)
    loss = curves.val_loss[:, -1].numpy().copy()
    loss[~np.isfinite(loss) | np.array([d is not None for d in curves.diverged])] = np.inf
    return Landscape(config, lrs, decays, loss.reshape(config.n_lr, config.n_decay))


@dataclass(frozen=True, eq=False)
class SearchOdds:
    """For each n: the chance that the best of n trials is in the top fraction, by grid and by random search."""

    ns: np.ndarray
    grid: np.ndarray  # over random placements of the evenly spaced m × m grid (n = m²)
    random: np.ndarray  # over random draws
    formula: np.ndarray  # 1 − (1 − p)ⁿ
    fraction: float
    distinct_lrs: np.ndarray  # how many values of η a grid of n trials tests: m (random search: n)
    lr_sampling: str = "log"


def _surface(land: Landscape):
    """The loss between the grid points, bilinear in (log η, log α) on the unit square; the log of the loss, so
    a diverged corner does not swamp its neighbours."""
    from scipy.interpolate import RegularGridInterpolator

    loss = np.log(np.minimum(land.val_loss, 1e6))
    u = np.linspace(0, 1, loss.shape[0])
    v = np.linspace(0, 1, loss.shape[1])
    return RegularGridInterpolator((u, v), loss)


def top_level(land: Landscape, fraction: float) -> float:
    """The validation loss below which lies the best ``fraction`` of the interpolated surface (a fine mesh)."""
    mesh = np.stack(np.meshgrid(np.linspace(0, 1, 241), np.linspace(0, 1, 241), indexing="ij"), -1).reshape(-1, 2)
    return float(np.exp(np.quantile(_surface(land)(mesh), fraction)))


def search_odds(land: Landscape, fraction: float = 0.05, ns: tuple[int, ...] = (1, 4, 9, 16, 25, 36, 49, 64),
                draws: int = 2000, seed: int = 0, lr_sampling: str = "log") -> SearchOdds:
    """Grid and random search over ``land``'s surface: the chance of landing in its best ``fraction``, per n.

    The best ``fraction`` is the region below that quantile of the surface on a fine mesh. A random search draws
    n points uniformly (log-uniform in η and α); a grid puts m points evenly along each axis, with a random
    offset, so each placement is as likely as any other. Both are measured over ``draws`` searches. With
    ``lr_sampling="linear"`` random search draws η uniformly between the ends of the range instead (and the
    grid spaces η evenly too): most trials then land in the top decade.
    """
    if lr_sampling not in ("log", "linear"):
        raise ValueError(f"lr_sampling is 'log' or 'linear', not {lr_sampling!r}")
    lo, hi = land.config.lr_range

    def along_lr(u: np.ndarray) -> np.ndarray:
        """A position in [0, 1] along the log-η axis for a draw u in [0, 1] under the chosen sampling."""
        return u if lr_sampling == "log" else np.log((lo + u * (hi - lo)) / lo) / np.log(hi / lo)

    if not 0 < fraction < 1:
        raise ValueError(f"the top fraction must lie in (0, 1), got {fraction}")
    surface = _surface(land)
    level = math.log(top_level(land, fraction))
    rng = np.random.default_rng(seed)
    grid, rand, distinct = [], [], []
    for n in ns:
        m = math.isqrt(n)
        if n < 1 or m * m != n:
            raise ValueError(f"a grid needs n = m² trials, got n = {n}")
        points = rng.random((draws, n, 2))
        points[..., 0] = along_lr(points[..., 0])
        rand.append(float((surface(points.reshape(-1, 2)).reshape(draws, n) <= level).any(1).mean()))
        offsets = rng.random((draws, 1, 2)) / m
        ticks = np.arange(m) / m
        lattice = np.stack(np.meshgrid(ticks, ticks, indexing="ij"), -1).reshape(1, n, 2)
        placed = (lattice + offsets).reshape(-1, 2)
        placed[:, 0] = along_lr(placed[:, 0])
        grid.append(float((surface(placed).reshape(draws, n) <= level).any(1).mean()))
        distinct.append(m)
    ns_arr = np.array(ns)
    return SearchOdds(ns_arr, np.array(grid), np.array(rand), 1 - (1 - fraction) ** ns_arr, float(fraction),
                      np.array(distinct), lr_sampling)
