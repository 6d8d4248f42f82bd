"""Plots of Chapter 4 (learning-rate schedules): the noise floor, schedules on the digits, warmup, search."""
from __future__ import annotations

import math

import numpy as np
from matplotlib.axes import Axes

from ..scheduling.floor import FloorRuns
from ..style import PALETTE, series_style
from . import axes_or_new

__all__ = ["plot_floor_curves", "plot_floor_val", "plot_floor_sweep"]

TINY = 1e-12  # an excess loss is positive; a floor for the log axis


def plot_floor_curves(runs: FloorRuns, ax: Axes | None = None) -> Axes:
    """f − f* against the step, mean over seeds, each constant run beside its predicted floor (dotted)."""
    ax = axes_or_new(ax)
    steps = runs.steps.numpy()
    n = len(runs.config.lrs)
    for i, label in enumerate(runs.labels):
        style = series_style(i) if i < n else {"color": "black", "linestyle": "-"}
        y = np.clip(runs.excess[i].numpy(), TINY, None)
        ax.plot(steps, y, color=style["color"], linestyle=style["linestyle"], linewidth=2.2 if i == n else 1.6,
                label=label)
        if i < n and math.isfinite(float(runs.predicted[i])):
            ax.axhline(float(runs.predicted[i]), color=style["color"], linestyle=":", linewidth=1.2)
    ax.set(yscale="log", xlabel="step k", ylabel="training loss above its minimum, f − f*", xlim=(0, steps[-1]))
    finite = runs.excess[np.isfinite(runs.excess.numpy())]
    if finite.numel():
        ax.set_ylim(max(float(finite.min()) / 2, TINY), min(float(finite.max()) * 2, 1e6))
    ax.legend(fontsize=9, loc="upper right", title="dotted: predicted floor", title_fontsize=9)
    return ax


def plot_floor_val(runs: FloorRuns, ax: Axes | None = None) -> Axes:
    """The validation loss along the same runs, with the validation loss of the training minimum w* dotted."""
    ax = axes_or_new(ax)
    steps = runs.steps.numpy()
    n = len(runs.config.lrs)
    for i, label in enumerate(runs.labels):
        style = series_style(i) if i < n else {"color": "black", "linestyle": "-"}
        ax.plot(steps, runs.val_loss[i].numpy(), color=style["color"], linestyle=style["linestyle"],
                linewidth=2.2 if i == n else 1.6, label=label)
    ax.axhline(runs.val_star, color="0.4", linestyle=":", linewidth=1.4, label="at the training minimum w*")
    finite = runs.val_loss[np.isfinite(runs.val_loss.numpy())]
    top = float(finite.quantile(0.9)) if finite.numel() else 2 * runs.val_star
    ax.set(xlabel="step k", ylabel="validation loss", xlim=(0, steps[-1]),
           ylim=(runs.val_star * 0.98, max(top, runs.val_star * 1.2)))
    ax.legend(fontsize=9, loc="upper right")
    return ax


def plot_floor_sweep(runs: FloorRuns, ax: Axes | None = None, mark: float | None = None) -> Axes:
    """The measured floor against η on log–log axes, the formula, and its small-η line η tr(Σ)/4B."""
    ax = axes_or_new(ax)
    lrs = np.array(runs.config.lrs)
    measured = runs.measured.numpy()
    ok = np.isfinite(measured)
    ax.plot(lrs[ok], measured[ok], "o", color=PALETTE[0], markersize=8, label="measured (second half of the run)")
    grid = np.geomspace(lrs.min() / 1.5, min(lrs.max() * 1.5, 1.99 / runs.task.lam_max), 200)
    from ..scheduling.floor import predicted_floor

    ax.plot(grid, [predicted_floor(runs.task, float(g), runs.config.batch_size) for g in grid], color=PALETTE[1],
            linewidth=1.8, label="formula (η/2B) Σ Σᵢᵢ/(2 − ηλᵢ)")
    small = float(runs.task.noise_diag.sum()) / (4 * runs.config.batch_size)
    ax.plot(grid, small * grid, color="0.4", linestyle="--", linewidth=1.2, label="small η: η tr(Σ)/4B")
    ax.axvline(2 / runs.task.lam_max, color="0.3", linestyle=":", linewidth=1.2)
    ax.annotate("2/λ_max", (2 / runs.task.lam_max, 0.02), xycoords=("data", "axes fraction"), rotation=90,
                ha="right", va="bottom", fontsize=9, color="0.3")
    if mark is not None and mark < 2 / runs.task.lam_max:
        ax.plot([mark], [predicted_floor(runs.task, mark, runs.config.batch_size)], "*", color="black",
                markersize=14, label=f"chosen η = {mark:g}")
    ax.set(xscale="log", yscale="log", xlabel="learning rate η", ylabel="floor: mean f − f*",
           title=f"B = {runs.config.batch_size}")
    ax.legend(fontsize=9, loc="upper left")
    return ax
