"""Chapter 6's training figures: learning-rate stability with and without batch norm, and Santurkar et al.'s
evidence (distribution shift, loss variation and gradient predictiveness along the gradient)."""
from __future__ import annotations

import math
import warnings
from typing import Sequence

import numpy as np
from matplotlib.axes import Axes
from matplotlib.ticker import MaxNLocator

from ..normalization.smoothness import Smoothness
from ..normalization.stability import STABILITY_NORMS, TRAINS_BELOW, StabilityRun, Sweep
from ..style import PALETTE, series_style
from . import axes_or_new

__all__ = ["NORM_LABELS", "NETWORK_LABELS", "MEASURES", "plot_stability_curves", "plot_lr_sweep",
           "plot_smooth_losses", "plot_shift", "plot_smooth_measure"]

NORM_LABELS = {"none": "no normalization", "batch": "batch norm"}
NETWORK_LABELS = {"standard": "standard (no norm)", "batch": "batch norm", "noisy": "batch norm + noise"}
# measure → (Smoothness attribute, axis label)
MEASURES = {"loss_variation": ("loss_variation", "loss variation along −g: max − min of $\\mathcal{L}$"),
            "grad_change": ("grad_change", "gradient change max ‖∇$\\mathcal{L}$(w − sηg) − g‖"),
            "effective_L": ("effective_L", "effective smoothness L: max ‖Δ∇$\\mathcal{L}$‖ / ‖sηg‖"),
            "ics_cosine": ("ics_cosine", "ICS: cos(G, G′) (1: no shift)")}
CLIP = (1e-3, 1e3)


def _finite(y: np.ndarray) -> np.ndarray:
    return np.clip(np.where(np.isfinite(y), y, np.nan), *CLIP)


def _mark_divergence(ax: Axes, run: StabilityRun, color: str) -> None:
    if run.diverged_at is not None:
        last = np.where(np.isfinite(run.val_loss.numpy()))[0]
        e = int(last[-1]) if len(last) else 0
        ax.plot([e, e + 0.5], [float(run.val_loss[e]), 12.0], color=color, linestyle=":", linewidth=1.4)
        ax.plot([e + 0.5], [12.0], marker="x", color=color, markersize=11, markeredgewidth=2, linestyle="none")


def plot_stability_curves(runs: Sequence[StabilityRun], ax: Axes | None = None, train: bool = True,
                          label: str = "lr") -> Axes:
    """Validation (solid) and, optionally, training (dashed) loss per epoch, a colour per run; × marks a divergence.
    ``label``: "lr" names each run by its η, "norm" by its network."""
    ax = axes_or_new(ax)
    for i, r in enumerate(runs):
        color = series_style(i)["color"]
        name = f"η = {r.config.lr:g}" if label == "lr" else NORM_LABELS[r.config.norm]
        if r.diverged_at is not None:
            name += f" (diverged at step {r.diverged_at})"
        x = np.arange(len(r.val_loss))
        ax.plot(x, _finite(r.val_loss.numpy()), color=color, linestyle="-", linewidth=2.0, label=name)
        if train:
            ax.plot(x, _finite(r.train_loss.numpy()), color=color, linestyle="--", linewidth=1.4)
        _mark_divergence(ax, r, color)
    ax.axhline(math.log(10), color="0.4", linestyle=":", linewidth=1.2)
    ax.annotate("chance, ln 10", (0.99, math.log(10)), xycoords=("axes fraction", "data"), ha="right", va="bottom",
                fontsize=9, color="0.3")
    ax.set(yscale="log", xlabel="epoch", ylabel="cross-entropy loss", ylim=(0.005, 20))
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    title = "solid: validation, dashed: training" if train else "validation loss"
    ax.legend(fontsize=9, loc="lower left", title=title, title_fontsize=9)
    return ax


def plot_lr_sweep(sweep: Sweep, ax: Axes | None = None) -> Axes:
    """Final validation loss against η for both networks: each seed a dot, the seed mean a line; × diverged."""
    ax = axes_or_new(ax)
    lrs = np.asarray(sweep.config.lrs)
    for a, norm in enumerate(STABILITY_NORMS):
        st = series_style(a)
        vals = sweep.final_val[a].numpy()
        for s in range(vals.shape[0]):
            ax.plot(lrs, _finite(vals[s]), color=st["color"], marker=st["marker"], linestyle="none", alpha=0.45,
                    markersize=5)
            bad = sweep.diverged[a, s].numpy()
            ax.plot(lrs[bad], np.full(bad.sum(), 8.0 + 2 * a), color=st["color"], marker="x", linestyle="none",
                    markersize=9)
        with warnings.catch_warnings():  # an η where every seed diverged has no median: NaN, not drawn
            warnings.simplefilter("ignore", RuntimeWarning)
            mean = np.nanmedian(np.where(sweep.diverged[a].numpy(), np.nan, vals), axis=0)
        top = sweep.largest_stable[a]
        ax.plot(lrs, _finite(mean), color=st["color"], linestyle=st["linestyle"], linewidth=2.0,
                label=f"{NORM_LABELS[norm]}: trains up to η = {top:g}" if top else f"{NORM_LABELS[norm]}: never trains")
    ax.axhline(TRAINS_BELOW, color="0.4", linestyle=":", linewidth=1.2)
    ax.annotate("'trains': below ln(10)/2", (lrs[0], TRAINS_BELOW), ha="left", va="bottom", fontsize=9, color="0.3")
    ax.set(xscale="log", yscale="log", xlabel="learning rate η (plain SGD)",
           ylabel=f"final validation loss ({sweep.config.epochs} epochs)", ylim=(0.05, 15))
    ax.legend(fontsize=9, loc="upper left", title="median over seeds; dots: seeds, ×: diverged", title_fontsize=9)
    return ax


def plot_smooth_losses(results: Sequence[Smoothness], ax: Axes | None = None) -> Axes:
    """Training (dashed) and validation (solid) loss per epoch of one or more networks of Experiment 3."""
    ax = axes_or_new(ax)
    for r in results:
        i = ("standard", "batch", "noisy").index(r.config.network)
        color = series_style(i)["color"]
        x = np.arange(len(r.val_loss))
        ax.plot(x, _finite(r.val_loss.numpy()), color=color, linewidth=2.0, label=NETWORK_LABELS[r.config.network])
        ax.plot(x, _finite(r.train_loss.numpy()), color=color, linestyle="--", linewidth=1.4)
    ax.set(yscale="log", xlabel="epoch", ylabel="cross-entropy loss", ylim=(0.005, 10))
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.legend(fontsize=9, loc="lower left", title="solid: validation, dashed: training", title_fontsize=9)
    return ax


def plot_shift(result: Smoothness, ax: Axes | None = None) -> Axes:
    """A few units' input mean c over the mini-batch per step (lines) and c ± σ (band): the distribution's shift."""
    ax = axes_or_new(ax)
    mean, std = result.unit_mean.numpy(), result.unit_std.numpy()
    k = np.arange(mean.shape[0])
    for j in range(mean.shape[1]):
        color = PALETTE[j % len(PALETTE)]
        ax.fill_between(k, mean[:, j] - std[:, j], mean[:, j] + std[:, j], color=color, alpha=0.15, linewidth=0)
        ax.plot(k, mean[:, j], color=color, linestyle=series_style(j)["linestyle"], linewidth=1.2,
                label=f"unit {j + 1}")
    c = result.config
    ax.set(xlabel="optimizer step k", ylabel=f"input of layer {c.probe_layer + 1}: batch mean c ± σ",
           title=f"{NETWORK_LABELS[c.network]}: shift {result.shift:.2f} per step", xlim=(0, max(k[-1], 1)))
    ax.legend(fontsize=9, loc="upper right", ncols=3)
    return ax


def plot_smooth_measure(results: Sequence[Smoothness], measure: str = "loss_variation",
                        ax: Axes | None = None) -> Axes:
    """One of :data:`MEASURES` against the training step, a line per network."""
    if measure not in MEASURES:
        raise ValueError(f"measure is one of {tuple(MEASURES)}, not {measure!r}")
    ax = axes_or_new(ax)
    attr, ylabel = MEASURES[measure]
    for r in results:
        i = ("standard", "batch", "noisy").index(r.config.network)
        st = series_style(i)
        y = getattr(r, attr).numpy()
        y = y if measure == "ics_cosine" else np.clip(np.where(np.isfinite(y), y, np.nan), 1e-4, 1e4)
        ax.plot(r.probe_steps.numpy(), y, color=st["color"], linestyle=st["linestyle"], marker=st["marker"],
                markersize=4, linewidth=1.6, label=NETWORK_LABELS[r.config.network])
    ax.set(xlabel="optimizer step k", ylabel=ylabel)
    if measure == "ics_cosine":
        ax.set_ylim(-1.05, 1.05)
    else:
        ax.set_yscale("log")
    ax.legend(fontsize=9, loc="best")
    return ax
