"""Plots of Chapter 1 (gradient descent): paths on contour maps, loss curves, thresholds, noise, escapes,
a small network's minima and an online learner tracking a moving optimum."""
from __future__ import annotations

import functools
from typing import Sequence

import numpy as np
import torch
from matplotlib.axes import Axes

from ..descent import ConvergenceRun, DescentPath, StabilitySweep
from ..landscapes import Surface
from ..minima import Interpolation, TrainedNets
from ..online import TrackingRun, steady_error
from ..saddles import EscapeSweep, SaddleRun
from ..stochastic import GradientNoise, TrainingRun
from ..style import PALETTE, series_style
from . import axes_or_new

__all__ = ["plot_surface", "plot_path", "plot_gaps", "plot_stability", "plot_gradient_noise", "plot_training",
           "plot_saddle_loss", "plot_manifold_distance", "plot_escape", "plot_convergence", "plot_final_losses",
           "plot_interpolation", "plot_tracking", "plot_tracking_error"]

TINY = 1e-16  # floor for log axes: a gap of exactly 0 would vanish from the plot


def plot_surface(surface: Surface, ax: Axes | None = None, box: Sequence[float] | None = None) -> Axes:
    """Contours of f − f* at geometrically spaced heights, minima marked with stars."""
    ax = axes_or_new(ax)
    x0, x1, y0, y1 = box or surface.box
    xs, ys, gap, levels = _contour_grid(surface, (x0, x1, y0, y1))
    # grey contours, so that the coloured paths drawn on top stand out (also in grayscale print)
    ax.contour(xs, ys, gap, levels=levels, colors="0.65", linewidths=0.9, linestyles="solid")
    mins = np.array(surface.minimizers())
    ax.plot(mins[:, 0], mins[:, 1], "*", color="black", markersize=14, linestyle="none", label="minimum")
    ax.set(xlim=(x0, x1), ylim=(y0, y1), xlabel="$x$", ylabel="$y$")
    ax.grid(False)
    return ax


@functools.lru_cache(maxsize=64)
def _contour_grid(surface: Surface, box: tuple[float, float, float, float]):
    """f − f* on a 160 × 160 grid and its contour heights: the same for every redraw of a widget
    that keeps the surface, so it is computed once (surfaces are frozen, hence hashable)."""
    x0, x1, y0, y1 = box
    xs, ys = torch.meshgrid(torch.linspace(x0, x1, 160, dtype=torch.float64),
                            torch.linspace(y0, y1, 160, dtype=torch.float64), indexing="xy")
    gap = (surface.loss(torch.stack([xs, ys], dim=-1)) - surface.minimum_value()).numpy()
    top = float(np.quantile(gap, 0.95))
    levels = np.geomspace(max(top * 1e-4, 1e-6), top, 14)
    arrays = (xs.numpy(), ys.numpy(), gap, levels)
    for a in arrays:  # shared between calls: nobody may change them
        a.flags.writeable = False
    return arrays


def plot_path(path: DescentPath, ax: Axes | None = None, label: str | None = None, index: int = 0,
              contours: bool = True) -> Axes:
    """The iterates x_0, x_1, … as a line over the surface's contours; the frame grows to show a wandering path."""
    ax = axes_or_new(ax)
    pts = path.points.detach().cpu().numpy()
    x0, x1, y0, y1 = path.surface.box
    if len(pts):  # widen the frame to the path, at most 3× the surface's box
        w, h = x1 - x0, y1 - y0
        x0, x1 = max(min(x0, pts[:, 0].min()), x0 - w), min(max(x1, pts[:, 0].max()), x1 + w)
        y0, y1 = max(min(y0, pts[:, 1].min()), y0 - h), min(max(y1, pts[:, 1].max()), y1 + h)
    if contours:
        plot_surface(path.surface, ax, (x0, x1, y0, y1))
    style = series_style(index)
    ax.plot(pts[:, 0], pts[:, 1], color=style["color"], linestyle="-", linewidth=1.6, marker=".",
            markersize=4, label=label)
    if len(pts):
        ax.plot(*pts[0], "o", color=style["color"], markersize=9, markerfacecolor="white", linestyle="none")
    ax.set(xlim=(x0, x1), ylim=(y0, y1))
    return ax


def plot_gaps(path: DescentPath, ax: Axes | None = None, label: str | None = None, index: int = 0) -> Axes:
    """f(x_k) − f* against the step k, log scale: a straight line means a constant rate."""
    ax = axes_or_new(ax)
    gaps = path.gaps.detach().cpu().numpy().clip(TINY)
    style = series_style(index)
    ax.semilogy(np.arange(len(gaps)), gaps, color=style["color"], linestyle=style["linestyle"], label=label)
    ax.set(xlabel="step $k$", ylabel="$f(x_k) - f^*$")
    if path.diverged_at is not None:
        ax.axvline(path.diverged_at, color=PALETTE[1], linestyle=":", linewidth=1.5)
        ax.annotate(f"diverged at step {path.diverged_at}", (path.diverged_at, gaps.max() if len(gaps) else 1.0),
                    ha="right", va="top", color=PALETTE[1], fontsize=11)
    return ax


def plot_stability(sweep: StabilitySweep, ax: Axes | None = None) -> Axes:
    """Distance left after the run against the step size, per κ: the measured cliff and 2/L as a dashed line."""
    ax = axes_or_new(ax)
    lrs = sweep.lrs.numpy()
    for i, (kappa, dist, found, pred) in enumerate(zip(sweep.kappas, sweep.distances, sweep.thresholds,
                                                        sweep.predicted())):
        style = series_style(i)
        d = dist.numpy()
        ok = np.isfinite(d)
        ax.loglog(lrs[ok], d[ok], color=style["color"], linestyle=style["linestyle"], label=f"κ = {kappa:g}")
        ax.plot(lrs[~ok], np.full((~ok).sum(), 1e3), "x", color=style["color"], linestyle="none")
        ax.axvline(float(pred), color=style["color"], linestyle="--", linewidth=1.2, alpha=0.8)
        ax.plot([float(found)], [1.0], marker=style["marker"], color=style["color"], markersize=10,
                markeredgecolor="black", linestyle="none")
    ax.axhline(1.0, color="gray", linewidth=1.0)
    ax.set(xlabel="learning rate η", ylabel=f"distance after {sweep.steps} steps / start", ylim=(1e-12, 3e3))
    ax.legend(title="dashed: 2/L; marker: measured; ×: diverged", fontsize=10, title_fontsize=10, loc="lower left")
    return ax


def plot_gradient_noise(noise: GradientNoise, ax: Axes | None = None) -> Axes:
    """E‖g_B − g‖² against B, log-log: measured (with ±2 standard errors) and both formulas."""
    ax = axes_or_new(ax)
    b = noise.batch_sizes.numpy()
    for i, (key, replace) in enumerate((("with", True), ("without", False))):
        style = series_style(i)
        m, se = noise.measured[key].numpy(), noise.stderr[key].numpy()
        ax.errorbar(b, m, yerr=2 * se, marker=style["marker"], color=style["color"], linestyle="none",
                    markersize=8, capsize=3, label=f"measured, {key} replacement")
        ax.plot(b, noise.predicted(replace).numpy(), color=style["color"], linestyle=style["linestyle"],
                label=r"$\sigma^2/B$" if replace else r"$\sigma^2/B \cdot (N-B)/(N-1)$")
    ax.set(xscale="log", yscale="log", xlabel="batch size $B$", ylabel=r"$E\,\|g_B - g\|^2$")
    ax.legend(fontsize=10)
    return ax


def plot_training(runs: Sequence[TrainingRun], ax: Axes | None = None, by: str = "epoch") -> Axes:
    """The full training loss of each run against epochs (passes over the data) or updates (optimizer steps)."""
    ax = axes_or_new(ax)
    for i, run in enumerate(runs):
        style = series_style(i)
        x = run.epochs.numpy() if by == "epoch" else run.updates.numpy()
        label = f"B = {run.batch_size}" + (" (full)" if run.updates_per_epoch == 1 else "")
        ax.plot(x, run.losses.numpy(), color=style["color"], linestyle=style["linestyle"], label=label)
        if run.diverged_at is not None:
            ax.annotate(f"diverged at update {run.diverged_at}", (x[-1], float(run.losses[-1])), color=PALETTE[1])
    ax.set_yscale("log")
    if by == "epoch":
        ax.set(xlabel="epoch (passes over the data)", ylabel="training loss")
    else:
        ax.set(xscale="symlog", xlabel="update (optimizer steps)", ylabel="training loss")
    ax.legend(fontsize=10)
    return ax


def plot_saddle_loss(run: SaddleRun, ax: Axes | None = None) -> Axes:
    """The loss gap during a run near the saddle: the plateau at the saddle's height, then the drop."""
    ax = plot_gaps(run.path, ax)
    ax.axhline(-run.path.surface.minimum_value(), color="gray", linestyle="--", linewidth=1.2)
    ax.axvline(run.predicted, color="black", linestyle=":", linewidth=1.5, label="predicted escape (no noise)")
    ax.set_title("loss: plateau at the saddle's height")
    ax.legend(fontsize=10, loc="lower left")
    return ax


def plot_manifold_distance(run: SaddleRun, ax: Axes | None = None) -> Axes:
    """|y_k|, the distance from the saddle's stable manifold, on a log scale, next to the linearized prediction."""
    ax = axes_or_new(ax)
    y = run.path.points[:, 1].abs().detach().cpu().numpy().clip(TINY)
    k = np.arange(len(y))
    ax.semilogy(k, y, color=PALETTE[0], label="measured $|y_k|$")
    rate = (1 + run.path.config.lr * abs(run.path.surface.negative_curvature))
    ax.semilogy(k, np.clip(max(run.offset, TINY) * rate ** k, TINY, 10), color="black", linestyle=":",
                label=r"$|y_0|\,(1 + \eta|\lambda|)^k$")
    ax.set(xlabel="step $k$", ylabel="distance from stable manifold", ylim=(max(min(y.min(), run.offset), TINY) / 10, 10))
    ax.set_title("escape: exponential in $k$")
    ax.legend(fontsize=10, loc="lower right")
    return ax


def plot_escape(sweep: EscapeSweep, ax: Axes | None = None) -> Axes:
    """Escape step against the start's offset y₀ (log x): measured markers, formula lines, and the noisy runs' floor."""
    ax = axes_or_new(ax)
    d = sweep.offsets.numpy()
    for i, lr in enumerate(sweep.lrs):
        style = series_style(i)
        ax.plot(d, sweep.measured[i].numpy(), marker=style["marker"], color=style["color"], linestyle="none",
                markersize=8, label=f"measured, η = {lr:g}")
        ax.plot(d, sweep.predicted[i].numpy(), color=style["color"], linestyle=style["linestyle"],
                label=rf"$\ln(r/y_0)\,/\ln(1+\eta|\lambda|)$, η = {lr:g}")
    style = series_style(len(sweep.lrs))
    ax.plot(d, sweep.noisy.numpy(), marker=style["marker"], color=style["color"], linestyle=style["linestyle"],
            label=f"η = {sweep.lrs[0]:g} with noise σ = {sweep.noise:g}")
    ax.set(xscale="log", xlabel=r"start $y_0$: offset from the stable manifold", ylabel="steps to escape")
    ax.invert_xaxis()  # closer to the manifold, to the right
    ax.legend(fontsize=10)
    return ax


def plot_convergence(run: ConvergenceRun, ax: Axes | None = None) -> Axes:
    """Measured f(w_k) − f* under the two bounds, log-log."""
    ax = axes_or_new(ax)
    k = np.arange(1, len(run.gaps))
    ax.loglog(k, run.gaps[1:].numpy().clip(TINY), color=PALETTE[0], label="measured $f(w_k) - f^*$")
    ax.loglog(k, run.sublinear_bound[1:].numpy(), color=PALETTE[1], linestyle="--",
              label=(r"convex bound $L\|w_0 - w^*\|^2 / 2k$" if abs(run.lr * run.smoothness - 1) < 1e-9
                     else r"convex bound $\|w_0 - w^*\|^2 / 2\eta k$"))
    ax.loglog(k, run.linear_bound[1:].numpy(), color=PALETTE[2], linestyle="-.",
              label=r"strongly convex bound $(1-\mu/L)^k\,(f(w_0) - f^*)$")
    ax.set(xlabel="step $k$", ylabel="suboptimality", ylim=(max(float(run.gaps[1:].min()), 1e-14) / 10, None))
    ax.legend(fontsize=10, loc="lower left")
    return ax


def plot_final_losses(runs: Sequence[TrainedNets], ax: Axes | None = None) -> Axes:
    """Where each seed's run ended, f(θ), one column of points per network width."""
    ax = axes_or_new(ax)
    for i, run in enumerate(runs):
        style = series_style(i)
        losses = run.losses.cpu().numpy()
        spread = np.linspace(-0.15, 0.15, len(losses)) if len(losses) > 1 else np.zeros(1)
        ax.plot(i + spread, losses, marker=style["marker"], color=style["color"], linestyle="none", markersize=9,
                label=f"{run.config.hidden} hidden units")
    ax.set(xticks=range(len(runs)), xticklabels=[f"{r.config.hidden} hidden units" for r in runs],
           xlim=(-0.6, len(runs) - 0.4),
           ylim=(0, None), ylabel=r"loss where the run ended, $f(\theta)$")
    ax.set_title(f"one point per seed, {runs[0].config.steps} steps each")
    return ax


def plot_interpolation(line: Interpolation, ax: Axes | None = None) -> Axes:
    """f along straight lines from one solution: to another seed's, to a shuffled copy of itself, to the other aligned."""
    ax = axes_or_new(ax)
    t = line.ts.cpu().numpy()
    for i, (values, label) in enumerate(((line.between, r"$\theta_A$ to $\theta_B$, another seed's solution"),
                                         (line.permuted, r"$\theta_A$ to itself shuffled (same function)"),
                                         (line.aligned, r"$\theta_A$ to $\theta_B$ with units matched"))):
        style = series_style(i)
        ax.plot(t, values.cpu().numpy(), color=style["color"], linestyle=style["linestyle"], marker=style["marker"],
                markersize=5, label=label)
    top = float(max(line.between.max(), line.permuted.max(), line.aligned.max()))
    ax.set(xlabel=r"position $t$ on the line $(1-t)\,\theta_A + t\,\theta_B$", ylabel=r"loss $f(\theta)$", xlim=(0, 1),
           ylim=(0, 1.4 * top))  # headroom for the legend
    ax.set_title("the loss along straight lines between solutions")
    ax.legend(fontsize=10, loc="upper left")
    return ax


def plot_tracking(run: TrackingRun, ax: Axes | None = None) -> Axes:
    """One coordinate of the optimum w*_k and of each schedule's w_k in the first stream, against the step k."""
    ax = axes_or_new(ax)
    k = np.arange(len(run.optimum))
    ax.plot(k, run.optimum.numpy(), color="0.4", linewidth=3.0, label="optimum $w^*_k$")
    for i, name in enumerate(run.schedules):
        style = series_style(i)
        ax.plot(k, run.weights[i].numpy(), color=style["color"], linestyle=style["linestyle"], linewidth=1.6,
                label=f"$w_k$, {name} η")
    ax.set(xlabel="example $k$ of the stream", ylabel="first coordinate")
    ax.legend(fontsize=10)
    return ax


def plot_tracking_error(run: TrackingRun, ax: Axes | None = None, legend: bool = True) -> Axes:
    """‖w_k − w*_k‖² (mean over the streams) against k, log-log, with the constant rate's predicted level."""
    ax = axes_or_new(ax)
    k = np.arange(1, run.errors.shape[1])
    for i, name in enumerate(run.schedules):
        style = series_style(i)
        ax.loglog(k, run.errors[i, 1:].numpy().clip(TINY), color=style["color"], linestyle=style["linestyle"],
                  label=f"{name} η")
    ax.axhline(steady_error(run.config), color="black", linestyle=":", linewidth=1.5, label="predicted level, constant η")
    ax.set(xlabel="example $k$ of the stream", ylabel=r"$\|w_k - w^*_k\|^2$")
    if legend:
        ax.legend(fontsize=10, loc="lower left")
    return ax
