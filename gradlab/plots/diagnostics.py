"""Plots of the gradient diagnostics (:mod:`gradlab.diagnostics`, Chapters 5–7) and of Chapter 5's dead-ReLU
experiment (:mod:`gradlab.gradients.dead_relu`)."""
from __future__ import annotations

import math

import matplotlib as mpl
import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.ticker import MaxNLocator

from ..diagnosis import Diagnostics
from ..gradients.dead_relu import PHASES, DeadRelu
from ..style import PALETTE, series_style
from . import axes_or_new

__all__ = ["plot_grad_heatmap", "plot_layer_norms", "plot_dead_fraction", "plot_saturation", "plot_update_ratio",
           "plot_dead_phases", "plot_dead_losses"]



def _floor(values: np.ndarray) -> float:
    """Where a log axis starts: a decade below the smallest positive finite value."""
    ok = values[np.isfinite(values) & (values > 0)]
    return float(ok.min()) / 10 if ok.size else 1e-12


def _zeros_at(ax: Axes, x: np.ndarray, values: np.ndarray, bottom: float, what: str) -> None:
    """Exact zeros (an update lost to rounding, a layer with no gradient) as triangles on the log axis' floor."""
    zero = values == 0
    if zero.any():
        ax.plot(x[zero], np.full(int(zero.sum()), bottom), "v", color=PALETTE[4], markersize=8, clip_on=False,
                label=f"exactly 0 ({what})")


def _column(d: Diagnostics, step: int | None) -> int:
    """The position in ``d.steps`` of optimizer step ``step`` (None: the last recorded)."""
    if len(d.steps) == 0:
        raise ValueError("nothing was recorded: run at least one step with the monitor attached")
    if step is None:
        return len(d.steps) - 1
    hits = (d.steps == step).nonzero()
    if not len(hits):
        raise ValueError(f"step {step} was not recorded; the recorded steps run from {int(d.steps[0])} to "
                         f"{int(d.steps[-1])}")
    return int(hits[0])


def _layer_axis(ax: Axes, names, horizontal: bool = True) -> None:
    n = len(names)
    every = max(1, math.ceil(n / 24))  # at most about 24 readable labels
    ticks = list(range(0, n, every))
    if horizontal:
        ax.set_xticks(ticks, [names[i] for i in ticks], rotation=60, ha="right", fontsize=9)
        ax.set_xlim(-0.6, n - 0.4)
    else:
        ax.set_yticks(ticks, [names[i] for i in ticks], fontsize=9)


def plot_grad_heatmap(d: Diagnostics, ax: Axes | None = None, colorbar: bool = True) -> Axes:
    """Gradient norm per layer (rows, first layer at the top) and recorded step (columns), log colour scale."""
    ax = axes_or_new(ax)
    g = d.grad_norm.numpy()
    ok = np.isfinite(g) & (g > 0)
    lo, hi = (float(g[ok].min()), float(g[ok].max())) if ok.any() else (1e-8, 1.0)
    cmap = mpl.colormaps["viridis"].with_extremes(bad="white")
    mesh = ax.pcolormesh(d.steps.numpy(), np.arange(len(d.layers)), np.ma.masked_where(~ok, g), shading="nearest",
                         cmap=cmap, norm=mpl.colors.LogNorm(vmin=lo, vmax=max(hi, lo * 10)))
    ax.set_ylim(len(d.layers) - 0.5, -0.5)  # the first layer at the top
    _layer_axis(ax, d.layers, horizontal=False)
    ax.set(xlabel="step k", ylabel="layer (input layer at the top)")
    ax.grid(False)
    if colorbar:
        ax.figure.colorbar(mesh, ax=ax, label="gradient norm per layer (log scale)")
    if not ok.all():
        ax.set_title("white: no gradient, zero, or not finite", fontsize=10)
    return ax


def plot_layer_norms(d: Diagnostics, step: int | None = None, ax: Axes | None = None,
                     thresholds: tuple[float, float] | None = (1e-5, 1e3)) -> Axes:
    """The gradient norm of every layer at one step (default: the last recorded), input to output, log y; the
    heuristic thresholds of :func:`gradlab.diagnosis.find` dotted."""
    ax = axes_or_new(ax)
    j = _column(d, step)
    g = d.grad_norm[:, j].numpy()
    x = np.arange(len(d.layers))
    style = series_style(0)
    bottom = _floor(g)
    ax.plot(x, np.where(np.isfinite(g) & (g > 0), g, np.nan), color=style["color"], marker=style["marker"],
            linewidth=1.6, label=f"step {int(d.steps[j])}")
    _zeros_at(ax, x, g, bottom, "no gradient reached it")
    if thresholds is not None:
        for value, text in zip(thresholds, ("vanishing heuristic", "exploding heuristic")):
            ax.axhline(value, color="0.4", linestyle=":", linewidth=1.2)
            ax.annotate(f"{text} ({value:g})", (0.01, value), xycoords=("axes fraction", "data"), fontsize=9,
                        va="bottom", color="0.3")
    _layer_axis(ax, d.layers)
    ax.set(yscale="log", xlabel="layer (input to output)", ylabel="gradient norm")
    ax.set_ylim(bottom=bottom)
    ax.legend(fontsize=9, loc="best")
    return ax


def _bars(ax: Axes, d: Diagnostics, stat: torch.Tensor, kinds: tuple[str, ...], step: int | None, limit: float,
          ylabel: str) -> Axes:
    j = _column(d, step)
    rows = [i for i, k in enumerate(d.act_kinds) if k in kinds]
    values = [float(stat[i, j]) for i in rows]
    ax.bar(range(len(rows)), np.nan_to_num(values, nan=0.0), color=PALETTE[0], alpha=0.8)
    ax.axhline(limit, color="0.3", linestyle=":", linewidth=1.2, label=f"heuristic: {100 * limit:.0f}%")
    _layer_axis(ax, [d.activations[i] for i in rows])
    ax.set(ylim=(0, 1.05), ylabel=ylabel, xlabel=f"activation layer (input to output), step {int(d.steps[j])}")
    if not rows:
        ax.annotate("no such activation layer in this model", (0.5, 0.5), xycoords="axes fraction", ha="center")
    ax.legend(fontsize=9, loc="upper left")
    return ax


def plot_dead_fraction(d: Diagnostics, step: int | None = None, ax: Axes | None = None, limit: float = 0.5) -> Axes:
    """The fraction of each ReLU-family layer's units that are off for every example of the batch, at one step."""
    return _bars(axes_or_new(ax), d, d.dead, ("relu", "leaky"), step, limit, "dead units (fraction of the layer)")


def plot_saturation(d: Diagnostics, step: int | None = None, ax: Axes | None = None, limit: float = 0.5) -> Axes:
    """The fraction of each sigmoid or tanh layer's outputs that are saturated, at one step."""
    return _bars(axes_or_new(ax), d, d.saturated, ("sigmoid", "tanh"), step, limit, "saturated outputs (fraction)")


def plot_update_ratio(d: Diagnostics, ax: Axes | None = None, target: float = 1e-3, factor: float = 10.0) -> Axes:
    """‖Δw‖/‖w‖ of each weight layer, median over the recorded steps (a bar from the smallest to the largest),
    with the rule of thumb's 1e-3 and the band of :func:`gradlab.diagnosis.find`."""
    ax = axes_or_new(ax)
    rows = [i for i, w in enumerate(d.weight_rows) if w]
    r = d.update_ratio[rows].numpy() if rows else np.empty((0, 0))
    r = np.where(np.isfinite(r), r, np.nan)
    x = np.arange(len(rows))
    bottom = min(_floor(r), target / factor / 10)
    if r.size and np.isfinite(r).any():
        with np.errstate(all="ignore"):
            med, lo, hi = (np.nanmedian(r, 1), np.nanmin(r, 1), np.nanmax(r, 1))
        shown = med > 0
        lo = np.where(lo > 0, lo, bottom)
        ax.errorbar(x[shown], med[shown], yerr=[(med - lo)[shown], (hi - med)[shown]], fmt="o", color=PALETTE[0],
                    capsize=3, label="median (bar: smallest to largest step)")
        _zeros_at(ax, x, np.where(np.isnan(med), np.nan, med), bottom, "median: the update rounded away")
    else:
        ax.annotate("no update recorded: pass the optimizer to the monitor", (0.5, 0.5), xycoords="axes fraction",
                    ha="center", fontsize=10)
    ax.axhline(target, color="0.3", linestyle="--", linewidth=1.2, label=f"rule of thumb {target:g}")
    ax.axhspan(target / factor, target * factor, color=PALETTE[3], alpha=0.12, label="not flagged")
    _layer_axis(ax, [d.layers[i] for i in rows])
    ax.set(yscale="log", xlabel="weight layer (input to output)", ylabel="update ratio ‖Δw‖/‖w‖ per step")
    ax.set_ylim(bottom=bottom)
    ax.legend(fontsize=9, loc="best")
    return ax


def plot_dead_phases(result: DeadRelu, ax: Axes | None = None) -> Axes:
    """Dead units per hidden layer before the shock, just after it and after recovery training (grouped bars)."""
    ax = axes_or_new(ax)
    n = len(result.layers)
    x = np.arange(1, n + 1)
    width = 0.8 / len(PHASES)
    hatches = ("", "//", "..")
    for p, phase in enumerate(PHASES):
        values = result.dead[p].numpy()
        ax.bar(x + (p - 1) * width, np.nan_to_num(values, nan=0.0), width, color=PALETTE[p], hatch=hatches[p],
               edgecolor="white", label=phase)
        for xi in x[np.isnan(values)]:
            ax.annotate("n/a", (xi + (p - 1) * width, 0.02), ha="center", fontsize=8, rotation=90)
    leaky = result.config.negative_slope > 0
    what = "negative on every training example" if leaky else "dead on the whole training set"
    ax.set(xticks=x, xlabel="hidden layer l (input to output)", ylabel=f"fraction of units {what}", ylim=(0, 1.12),
           xlim=(0.4, n + 0.6))
    ax.legend(fontsize=9, loc="upper left", ncols=3)
    return ax


def plot_dead_losses(result: DeadRelu, ax: Axes | None = None) -> Axes:
    """Training (dashed) and validation (solid) loss per epoch of the shocked run and the control; the shock dotted."""
    ax = axes_or_new(ax)
    x = result.epochs.numpy()
    for r, name in enumerate(("shocked", "control (no shock)")):
        style = series_style(r)
        for split, dash in (("val_loss", "-"), ("train_loss", "--")):
            y = getattr(result, split)[r].numpy()
            y = np.clip(np.where(np.isfinite(y), y, np.nan), 1e-3, 1e4)
            ax.plot(x, y, color=style["color"], linestyle=dash, linewidth=1.8,
                    label=name if split == "val_loss" else None)
    shock = result.config.warm_epochs
    ax.axvline(shock, color="0.3", linestyle=":", linewidth=1.4)
    ax.annotate(" shock", (shock, 0.03), xycoords=("data", "axes fraction"), ha="left", va="bottom", fontsize=9)
    ax.set(yscale="log", xlabel="epoch", ylabel="cross-entropy loss", xlim=(0, x[-1]))
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.legend(fontsize=9, loc="upper right", title="solid: validation, dashed: training", title_fontsize=9)
    return ax
