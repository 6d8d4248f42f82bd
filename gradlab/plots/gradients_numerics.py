"""Plots of Chapter 5's numerics: gradients against float16's range, loss scaling, GradScaler's scale, and the
activations' φ and φ′."""
from __future__ import annotations

import math

import numpy as np
from matplotlib.axes import Axes

from ..gradients.activations import LABELS, ActivationCurves
from ..gradients.precision import GradientCast, TrainedGradients
from ..gradients.loss_scaling import ScalerRun
from ..style import PALETTE, series_style
from . import axes_or_new

__all__ = ["plot_gradient_histogram", "plot_cast_fractions", "plot_layer_underflow", "plot_scale", "plot_scaler_loss",
           "plot_activation", "plot_derivative", "plot_derivative_histogram"]

LOST, SUBNORMAL, OVERFLOW = "#D55E00", "#E69F00", "#CC79A7"
_S = r"$\mathcal{S}$"  # the loss scale; DejaVu Sans has no 𝒮, mathtext has
FLOOR = 1e-6  # the bottom of the fraction axis: 1 entry in 10^6


def _window(cast: GradientCast, log2_scale: int) -> tuple[float, float, float]:
    """log2 of |g| where 𝒮·g, 𝒮 = 2^log2_scale, rounds to 0 (below), turns normal (from), overflows (from)."""
    lim = cast.limits
    k = log2_scale
    return (math.log2(lim.smallest_subnormal) - 1 - k, math.log2(lim.smallest_normal) - k,
            math.log2(lim.largest + lim.eps * 2 ** (math.log2(lim.largest) // 1) / 2) - k)


def plot_gradient_histogram(cast: GradientCast, log2_scale: int = 0, ax: Axes | None = None) -> Axes:
    """The histogram of log2|g| over the nonzero gradient entries, with the ranges where 𝒮·g (𝒮 = 2^log2_scale)
    becomes 0, a subnormal, or inf in the format shaded."""
    ax = axes_or_new(ax)
    lg = cast.log2_abs.numpy()
    lo, hi = math.floor(lg.min()) - 2, math.ceil(lg.max()) + 2
    k = log2_scale
    zero, normal, inf = _window(cast, k)
    left, right = min(lo, max(zero - 3, lo - 12)), max(hi, min(inf + 3, hi + 12))
    i = cast.exponents.index(k)
    share = {"0": cast.underflow[i], "sub": cast.subnormal[i], "inf": cast.overflow[i]}
    pct = {key: f"{100 * float(v):.3g}%" for key, v in share.items()}
    ax.hist(lg, bins=np.arange(lo, hi + 1), color=PALETTE[0], alpha=0.9, zorder=3, label="gradient entries")
    ax.axvspan(left, zero, color=LOST, alpha=0.2, label=f"rounds to 0: {pct['0']}")
    ax.axvspan(zero, normal, color=SUBNORMAL, alpha=0.2, label=f"subnormal (fewer bits): {pct['sub']}")
    ax.axvspan(inf, right, color=OVERFLOW, alpha=0.2, label=f"inf (overflow): {pct['inf']}")
    for x, style in ((zero, ":"), (normal, "--"), (inf, "-.")):
        if left <= x <= right:
            ax.axvline(x, color="0.25", linestyle=style, linewidth=1.2, zorder=4)
    off = [f"{what} {x:.0f}" for what, x in (("0 below", zero), ("inf from", inf)) if not left <= x <= right]
    ax.set(xlim=(left, right), xlabel="log2 |g| (float32 gradient entry)", ylabel="entries",
           title=f"{cast.limits.name}, loss scale {_S} $= 2^{{{k}}}$")
    ax.legend(fontsize=8, loc="best", title=f"off the axis: {', '.join(off)}" if off else None,
              title_fontsize=8)
    return ax


def plot_cast_fractions(cast: GradientCast, log2_scale: int | None = None, ax: Axes | None = None,
                        measured: TrainedGradients | None = None) -> Axes:
    """The fractions of the nonzero entries that 𝒮·g cast to the format turns into 0, a subnormal or inf, against
    log2 𝒮 (log scale; 0 not drawn), the chosen ``log2_scale`` dotted; with ``measured`` (float16 only), the
    fractions that a float16 autocast backward of 𝒮·𝓛 turns into 0 and inf, as dots."""
    ax = axes_or_new(ax)
    ks = np.array(cast.exponents)
    if measured is not None and cast.limits.name == "float16" and measured.autocast_underflow is not None:
        mk = np.array(measured.exponents)
        for values, colour, label in ((measured.autocast_underflow, LOST, "0 in a float16 autocast backward"),
                                      (measured.autocast_overflow, OVERFLOW, "inf/NaN in a float16 autocast backward")):
            v = values.numpy()
            ax.plot(mk, np.where(v > 0, v, np.nan), "o", color=colour, markersize=7, markerfacecolor="none",
                    markeredgewidth=1.4, linestyle="none", label=label)
    for i, (label, values, colour) in enumerate((("rounds to 0", cast.underflow, LOST),
                                                 ("subnormal", cast.subnormal, SUBNORMAL),
                                                 ("inf (step skipped)", cast.overflow, OVERFLOW))):
        style = series_style(i)
        ax.plot(ks, np.where(values.numpy() > 0, values.numpy(), np.nan), color=colour, linestyle=style["linestyle"],
                marker=style["marker"], markersize=4, linewidth=1.8, label=f"{label} (cast of the float32 g)")
    if log2_scale is not None:
        ax.axvline(log2_scale, color="0.3", linestyle=":", linewidth=1.4)
    if not (cast.underflow.any() or cast.subnormal.any() or cast.overflow.any()):
        ax.annotate(f"at every k from {ks[0]} to {ks[-1]}, every entry\nstays a normal {cast.limits.name} number",
                    (0.5, 0.6), xycoords="axes fraction", ha="center", fontsize=10, color="0.2")
    ax.set(yscale="log", ylim=(FLOOR, 1.5), xlim=(ks[0] - 0.5, ks[-1] + 0.5), xlabel=f"log2 {_S} (the loss scale)",
           ylabel="fraction of nonzero entries (0: not drawn)",
           title=f"cast to {cast.limits.name}, then divided by {_S}")
    ax.legend(fontsize=7, loc="lower left")
    return ax


def plot_layer_underflow(cast: GradientCast, log2_scale: int = 0, ax: Axes | None = None) -> Axes:
    """The fraction of each layer's nonzero gradient entries that round to 0 at 𝒮 = 2^log2_scale (layer 1: input)."""
    ax = axes_or_new(ax)
    k = log2_scale
    i = cast.exponents.index(k)
    per = cast.layer_underflow[i].numpy()
    layers = np.arange(1, len(per) + 1)
    ax.bar(layers, per, color=LOST, alpha=0.85)
    ax.set(ylim=(0, 1.05), xlabel="layer l (1: input, D: output)", ylabel="fraction that rounds to 0",
           title=f"per layer, {_S} $= 2^{{{k}}}$")
    ax.set_xticks(layers)
    return ax


def plot_scale(run: ScalerRun, ax: Axes | None = None) -> Axes:
    """log2 𝒮 against the step, the ceiling 65504 / max|g| above which float16 overflows, and the skipped steps."""
    ax = axes_or_new(ax)
    steps = np.arange(len(run.scale))
    ax.step(steps, np.log2(run.scale.numpy()), where="post", color=PALETTE[0], linewidth=2.0,
            label=f"GradScaler's {_S}")
    ax.plot(steps, np.log2(run.rule_scale.numpy()), color=PALETTE[2], linestyle=":", linewidth=1.4,
            label="the update rule, from scratch")
    top = run.grad_max.numpy()
    good = top > 0
    ax.plot(steps[good], np.log2(65504.0 / top[good]), color="0.6", linewidth=0.8, alpha=0.8,
            label="65504 / max|g|: above it float16 overflows")
    skipped = run.skipped.numpy()
    if skipped.any():
        ax.plot(steps[skipped], np.log2(run.scale.numpy()[skipped]), "x", color=LOST, markersize=9,
                markeredgewidth=2, linestyle="none", label=f"inf or NaN found: step skipped, {_S} halved")
    c = run.config
    ax.set(xlabel="step k", ylabel=f"log2 {_S}",
           title=f"growth ×{c.growth_factor:g} after {c.growth_interval} clean steps, backoff ×{c.backoff_factor:g}")
    ax.title.set_fontsize(11)
    ax.legend(fontsize=8, loc="lower right")
    return ax


def plot_scaler_loss(run: ScalerRun, ax: Axes | None = None) -> Axes:
    """The mini-batch loss of the scaled run, with the skipped steps marked."""
    ax = axes_or_new(ax)
    steps = np.arange(len(run.loss))
    loss = run.loss.numpy()
    ax.plot(steps, loss, color=PALETTE[3], linewidth=1.0, label="mini-batch loss")
    skipped = run.skipped.numpy()
    if skipped.any():
        ax.plot(steps[skipped], loss[skipped], "x", color=LOST, markersize=9, markeredgewidth=2, linestyle="none",
                label=f"{int(skipped.sum())} skipped steps")
    ax.set(yscale="log", xlabel="step k", ylabel=r"cross-entropy loss $\mathcal{L}$", title="training goes on")
    ax.legend(fontsize=9, loc="upper right")
    return ax


def _num(x: float) -> str:
    """Three decimals, without the sign of a rounded −0.000."""
    return f"{round(x, 3) + 0.0:.3f}"


def _density(curves: ActivationCurves) -> tuple[np.ndarray, np.ndarray]:
    x = curves.x.numpy()
    var = curves.stats.variance
    return x, np.exp(-x * x / (2 * var)) / math.sqrt(2 * math.pi * var)


def plot_activation(curves: ActivationCurves, ax: Axes | None = None) -> Axes:
    """φ(x), with the density of z ~ N(0, σ²) shaded underneath."""
    ax = axes_or_new(ax)
    s = curves.stats
    x, dens = _density(curves)
    phi = curves.phi.numpy()
    span = max(float(phi.max() - phi.min()), 1e-9)
    ax.fill_between(x, phi.min(), phi.min() + dens / dens.max() * 0.3 * span, color=PALETTE[6], alpha=0.25,
                    label=f"density of z ~ N(0, {s.variance:g})")
    ax.plot(x, phi, color=PALETTE[0], linewidth=2.4, label=f"φ = {LABELS[s.name]}")
    if s.phi_min_at is not None:
        ax.plot([s.phi_min_at], [s.phi_min], "o", color=LOST,
                label=f"minimum {_num(s.phi_min)} at z = {_num(s.phi_min_at)}")
    ax.axhline(0, color="0.5", linewidth=0.8)
    ax.set(xlabel="pre-activation z", ylabel="φ(z)", title=LABELS[s.name] + (f", ω = {s.omega:g}"
                                                                          if s.name == "leaky_relu" else ""))
    ax.legend(fontsize=9, loc="upper left")
    return ax


def plot_derivative(curves: ActivationCurves, ax: Axes | None = None) -> Axes:
    """φ′(x) with its maximum marked and the reference levels 1 and 0.25 (sigmoid's maximum) dotted."""
    ax = axes_or_new(ax)
    s = curves.stats
    x = curves.x.numpy()
    ax.plot(x, curves.d.numpy(), color=PALETTE[4], linewidth=2.4, label="φ′ (autograd)")
    for level, text in ((1.0, "1"), (0.25, "0.25")):
        ax.axhline(level, color="0.5", linestyle=":", linewidth=1.0)
        ax.annotate(text, (x[0], level), xytext=(2, 2), textcoords="offset points", fontsize=9, color="0.4")
    ax.axhline(0, color="0.5", linewidth=0.8)
    where = f" at z = {_num(s.d_max_at)}" if s.d_max_at is not None else " (for every z > 0)"
    if s.d_max_at is not None:
        ax.plot([s.d_max_at], [s.d_max], "o", color=PALETTE[2])
    ax.set(xlabel="pre-activation z", ylabel="φ′(z)", title=f"max φ′ = {s.d_max:.4g}{where}")
    ax.title.set_fontsize(11)
    ax.legend(fontsize=9, loc="center left")
    return ax


def plot_derivative_histogram(curves: ActivationCurves, ax: Axes | None = None) -> Axes:
    """The histogram of φ′(z) for z ~ N(0, σ²), with E[φ′(z)] and √E[φ′(z)²] marked."""
    ax = axes_or_new(ax)
    s = curves.stats
    d = curves.samples.numpy()
    lo, hi = float(d.min()), float(d.max())
    if hi - lo < 1e-6:  # a constant derivative (ReLU on one side only): one visible bar
        lo, hi = lo - 0.05, hi + 0.05
    ax.hist(d, bins=np.linspace(lo, hi, 41), color=PALETTE[6], alpha=0.85, weights=np.full(len(d), 1 / len(d)))
    ax.axvline(s.mean_d, color=PALETTE[2], linewidth=2.0, label=f"E[φ′(z)] = {s.mean_d:.4f}")
    ax.axvline(math.sqrt(s.mean_d_sq), color=PALETTE[4], linestyle="--", linewidth=2.0,
               label=f"√E[φ′(z)²] = {math.sqrt(s.mean_d_sq):.4f}")
    ax.set(xlabel="φ′(z)", ylabel="fraction of the samples", title=f"φ′(z) for z ~ N(0, {s.variance:g})")
    ax.legend(fontsize=9, loc="best")
    return ax
