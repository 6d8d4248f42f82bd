"""Plots of Chapter 5's recurrent networks and clipping: gradients through time, the per-step factor against ρ,
the long-range task, what clipping does to a gradient, and the cliff of a one-unit recurrent network."""
from __future__ import annotations

import numpy as np
from matplotlib.axes import Axes
from matplotlib.colors import LogNorm
from matplotlib.ticker import LogLocator, MaxNLocator

from ..gradients.cliff import Cliff
from ..gradients.clipping import Directions
from ..gradients.long_range import LongRange
from ..gradients.recurrent import FactorSweep, ThroughTime
from ..style import PALETTE, series_style
from . import axes_or_new

__all__ = ["NAMES", "run_label", "plot_state_gradients", "plot_input_gradients", "plot_factor_sweep", "plot_long_range_accuracy",
           "plot_long_range_reach", "plot_long_range_norms", "plot_clip_cosine", "plot_clip_coordinates",
           "plot_cliff_surface", "plot_cliff_descent"]

TINY = 1e-300  # an underflowed 0 is drawn at the bottom of the log axis
FLOOR = 1e-4  # the cliff's colour scale starts here
NAMES = {"rnn": "RNN (tanh)", "lstm": "LSTM", "gru": "GRU", "transformer": "Transformer encoder"}


def _positive(y) -> np.ndarray:
    y = np.asarray(y, dtype=float)
    return np.where(np.isfinite(y), np.clip(y, TINY, None), np.nan)


def run_label(r: ThroughTime) -> str:
    """The legend name of a run: its kind and the setting that matters for it (ρ, b_f)."""
    c = r.config
    if c.kind == "rnn":
        return f"RNN, ρ = {r.rho:.3g}"
    if c.kind == "lstm":
        return "LSTM, b_f " + ("PyTorch's" if c.forget is None else f"= {c.forget:g}")
    return NAMES[c.kind]


def plot_state_gradients(runs: list[ThroughTime], ax: Axes | None = None) -> Axes:
    """‖∂𝓛/∂h_τ‖ against τ for the recurrent runs, log scale; the RNN's predicted slope, ρ·√E[(1 − h²)²] per
    step back from τ = T_seq, dotted."""
    ax = axes_or_new(ax)
    for i, r in enumerate(x for x in runs if x.config.kind != "transformer"):
        style = series_style(i)
        tau = np.arange(1, r.config.seq_len + 1)
        ax.plot(tau, _positive(r.grad_h.numpy()), color=style["color"], linestyle=style["linestyle"],
                linewidth=2.0, label=f"{run_label(r)}: ×{r.factor:.3g} per step")
        if r.config.kind == "rnn" and np.isfinite(r.predicted):
            end = float(r.grad_h[-2])
            ax.plot(tau[:-1], _positive(end * r.predicted ** (tau[-2] - tau[:-1])), color=style["color"],
                    linestyle=":", linewidth=1.4, label=f"predicted ×{r.predicted:.3g} per step")
    ax.set(yscale="log", xlabel="position τ (loss at τ = T_seq)", ylabel=r"‖∂$\mathcal{L}$/∂h_τ‖ (mean per sequence)",
           title="back through time, at initialization")
    ax.title.set_fontsize(11)
    ax.legend(fontsize=9, loc="lower right")
    return ax


def plot_input_gradients(runs: list[ThroughTime], ax: Axes | None = None) -> Axes:
    """‖∂𝓛/∂x_τ‖ against τ for every run: the recurrent ones decay with the distance, the Transformer's is flat."""
    ax = axes_or_new(ax)
    for i, r in enumerate(runs):
        style = series_style(i)
        tau = np.arange(1, r.config.seq_len + 1)
        ax.plot(tau, _positive(r.grad_x.numpy()), color=style["color"], linestyle=style["linestyle"], linewidth=2.0,
                label=run_label(r))
    ax.set(yscale="log", xlabel="position τ of the input", ylabel=r"‖∂$\mathcal{L}$/∂x_τ‖ (mean per sequence)",
           title="how much the last position's loss sees of each input")
    ax.title.set_fontsize(11)
    ax.legend(fontsize=9, loc="lower right")
    return ax


def plot_factor_sweep(sweep: FactorSweep, ax: Axes | None = None, mark: ThroughTime | None = None) -> Axes:
    """The RNN's per-step factor against ρ: fitted (dots), predicted ρ·√E[(1 − h²)²] (line), and ρ itself, the
    factor without tanh's slope (dashed); 1 divides vanishing from exploding."""
    ax = axes_or_new(ax)
    rho = sweep.rhos.numpy()
    ax.plot(rho, rho, color="0.5", linestyle="--", linewidth=1.4, label="ρ (linear RNN)")
    ax.plot(rho, sweep.predicted.numpy(), color=PALETTE[0], linewidth=2.0, label="predicted ρ·√E[(1 − h²)²]")
    ax.plot(rho, sweep.measured.numpy(), "o", color=PALETTE[1], markersize=7, label=r"fitted to ‖∂$\mathcal{L}$/∂h_τ‖")
    if mark is not None and np.isfinite(mark.factor):
        ax.plot([mark.rho], [mark.factor], "*", color=PALETTE[4], markersize=16, label="this setting")
    ax.axhline(1.0, color="0.3", linestyle=":", linewidth=1.2)
    ax.set(xlabel="spectral radius ρ of W_hh", ylabel="gradient factor per step back",
           title="RNN: vanishing below 1, exploding above")
    ax.title.set_fontsize(11)
    ax.legend(fontsize=9, loc="upper left")
    return ax


def plot_long_range_accuracy(result: LongRange, ax: Axes | None = None) -> Axes:
    """Validation accuracy against the step, one line per range of delays T_seq − τ_mark; chance dotted."""
    ax = axes_or_new(ax)
    edges = result.bin_edges.numpy()
    for i in range(result.accuracy.shape[1]):
        style = series_style(i)
        lo, hi = int(np.ceil(edges[i])), int(np.ceil(edges[i + 1])) - 1
        ax.plot(result.eval_steps.numpy(), result.accuracy[:, i].numpy(), color=style["color"],
                linestyle=style["linestyle"], marker=style["marker"], markersize=4, linewidth=1.8,
                label=f"delay {lo}–{hi}")
    ax.axhline(result.chance, color="0.3", linestyle=":", linewidth=1.2, label="chance")
    c = result.config
    ax.set(xlabel="step k", ylabel="validation accuracy", ylim=(0, 1.05),
           title=f"{NAMES[c.kind]}, T_seq = {c.seq_len}, class token: {c.position} position")
    ax.title.set_fontsize(11)
    ax.legend(fontsize=9, loc="lower right")
    return ax


def plot_long_range_reach(result: LongRange, ax: Axes | None = None) -> Axes:
    """‖∂ℓ/∂x_1‖ / ‖∂ℓ/∂x_T‖ against the step, log scale: how far back the loss reaches while the network learns."""
    ax = axes_or_new(ax)
    k = np.arange(1, len(result.loss) + 1)
    ratio = _positive((result.grad_first / result.grad_last).numpy())
    ax.plot(k, ratio, color=PALETTE[0], linewidth=1.4)
    ax.set(yscale="log", xlabel="step k", ylabel="‖∂ℓ/∂x_1‖ / ‖∂ℓ/∂x_T‖ (mean per sequence)",
           title="the gradient reaching the first input, relative to the last")
    ax.title.set_fontsize(11)
    return ax


def plot_long_range_norms(result: LongRange, ax: Axes | None = None) -> Axes:
    """The total gradient norm ‖g‖₂ and the training loss against the step, log scale, with ν = 1 dotted."""
    ax = axes_or_new(ax)
    k = np.arange(1, len(result.loss) + 1)
    ax.plot(k, _positive(result.grad_norm.numpy()), color=PALETTE[1], linewidth=1.2, label="‖g‖₂ before clipping")
    ax.plot(k, _positive(result.loss.numpy()), color=PALETTE[2], linestyle="--", linewidth=1.4,
            label=r"training loss $\mathcal{L}$")
    ax.axhline(1.0, color="0.3", linestyle=":", linewidth=1.2, label="ν = 1")
    ax.set(yscale="log", xlabel="step k", ylabel="gradient norm, loss", title="gradient norm during training")
    ax.title.set_fontsize(11)
    ax.legend(fontsize=9, loc="lower left")
    return ax


def plot_clip_cosine(d: Directions, nu: float, ax: Axes | None = None) -> Axes:
    """Cosine between clipped and original gradient against ν, by norm and by value; the share of coordinates
    that value clipping changes (dashed); ν chosen (dotted) and ‖g‖₂ (grey)."""
    ax = axes_or_new(ax)
    nus = np.array(d.config.nus)
    ax.plot(nus, d.cos_norm.numpy(), color=PALETTE[0], linewidth=2.4, label="by norm: cosine")
    ax.plot(nus, d.cos_value.numpy(), color=PALETTE[1], linestyle="-.", linewidth=2.2, label="by value: cosine")
    ax.plot(nus, d.clipped_fraction.numpy(), color=PALETTE[3], linestyle="--", linewidth=1.6,
            label="by value: share of coordinates clipped")
    ax.axvline(nu, color="0.2", linestyle=":", linewidth=1.4)
    ax.axvline(d.norm, color="0.6", linewidth=1.2)
    ax.annotate("‖g‖₂", (d.norm, 0.02), xytext=(3, 0), textcoords="offset points", fontsize=9, color="0.4")
    ax.set(xscale="log", xlabel="threshold ν", ylabel="cosine with the original gradient, share", ylim=(0, 1.05),
           title="direction after clipping")
    ax.title.set_fontsize(11)
    ax.legend(fontsize=9, loc="center right")
    return ax


def plot_clip_coordinates(d: Directions, nu: float, ax: Axes | None = None) -> Axes:
    """Each coordinate of the clipped gradient against the original, at ν: a straight line through 0 by norm,
    a clamp at ±ν by value."""
    ax = axes_or_new(ax)
    g = d.gradient.numpy()
    g = g[np.argsort(np.abs(g))][-3000:]  # the largest coordinates, where the two differ
    scale = min(1.0, nu / (d.norm + 1e-6))
    ax.plot(g, g * scale, "o", color=PALETTE[0], markersize=3, alpha=0.6, label=f"by norm: ×{scale:.3g}")
    ax.plot(g, np.clip(g, -nu, nu), "s", color=PALETTE[1], markersize=3, alpha=0.6, label="by value: clamp to ±ν")
    ax.axline((0, 0), slope=1, color="0.6", linestyle=":", linewidth=1.2)
    ax.set(xlabel="coordinate of the original gradient g", ylabel="coordinate after clipping",
           title=f"ν = {nu:.3g}, ‖g‖₂ = {d.norm:.3g}, largest |g_i| = {np.abs(g).max():.3g}")
    ax.title.set_fontsize(11)
    ax.legend(fontsize=9, loc="upper left", markerscale=2)
    return ax


def plot_cliff_surface(result: Cliff, ax: Axes | None = None, scale: Axes | None = None) -> Axes:
    """The loss 𝓛(w, b) of the one-unit network (colour), with plain and norm-clipped descent from one start;
    the colour scale in ``scale`` if given (drawn as a plot, not a colorbar, so a live figure can be reused)."""
    ax = axes_or_new(ax)
    c = result.config
    # a log scale of colour shows both the valley next to the wall and the two plateaus (about 0.09 and 0.49)
    mesh = ax.pcolormesh(result.b.numpy(), result.w.numpy(), np.clip(result.surface.numpy(), FLOOR, None),
                         cmap="viridis", shading="auto", rasterized=True, norm=LogNorm(vmin=FLOOR, vmax=0.5))
    if scale is not None:
        levels = np.geomspace(FLOOR, 0.5, 101)
        scale.pcolormesh([0, 1], levels, levels[:-1, None], cmap="viridis", norm=mesh.norm, shading="flat")
        scale.set(yscale="log", xticks=[], ylim=(FLOOR, 0.5))
        scale.yaxis.tick_right()
        scale.yaxis.set_label_position("right")
        scale.set_ylabel(r"loss $\mathcal{L}$")
        scale.grid(False)
    k, dist = result.jump
    names = (f"plain descent (longest step {dist:.3g}, at k = {k})", f"clipped by norm, ν = {c.max_norm:.3g}")
    for i, (path, name) in enumerate(zip(result.paths.numpy(), names)):
        colour = ("white", PALETTE[1])[i]
        ax.plot(path[:, 1], path[:, 0], color=colour, linestyle=("-", "--")[i], marker=".", markersize=5,
                linewidth=1.6, label=name)
    p0, p1 = result.paths[0, k].numpy(), result.paths[0, k + 1].numpy()
    arrow = ax.annotate("", xy=(p1[1], p1[0]), xytext=(p0[1], p0[0]), annotation_clip=False,
                        arrowprops={"arrowstyle": "->", "color": "white", "linewidth": 1.6})
    arrow.set_in_layout(False)  # the jump may end outside the axes: the layout must not depend on where
    ax.plot([c.b0], [c.w0], "o", color="white", markeredgecolor="black", markersize=9)
    if scale is None:  # the colour scale in words (a scale axis beside it shifts by a pixel between layouts)
        ax.text(0.98, 0.98, f"colour: the loss, log scale,\n{FLOOR:g} (dark) to 0.5 (yellow)", transform=ax.transAxes,
                ha="right", va="top", fontsize=9, color="black", bbox={"facecolor": "white", "alpha": 0.8,
                                                                       "edgecolor": "none"})
    w_lo, w_hi, b_lo, b_hi = c.window
    # ticks that do not depend on the axes' size: a relaid-out figure then matches a fresh one pixel for pixel
    ax.xaxis.set_major_locator(MaxNLocator(nbins=8, integer=True))
    ax.yaxis.set_major_locator(MaxNLocator(nbins=8, integer=True))
    ax.set(xlim=(b_lo, b_hi), ylim=(w_lo, w_hi), xlabel="bias b", ylabel="recurrent weight w",
           title=f"x_τ = w·sigmoid(x_(τ−1)) + b, {c.seq_len} steps")  # a title wider than its axes moves the layout
    ax.title.set_fontsize(10)
    ax.grid(False)
    ax.legend(fontsize=9, loc="lower left", facecolor="0.85")
    return ax


def plot_cliff_descent(result: Cliff, ax: Axes | None = None) -> Axes:
    """The loss (lines) and the gradient norm before clipping (faint) of both runs against the step, log scale."""
    ax = axes_or_new(ax)
    names = ("plain", f"clipped, ν = {result.config.max_norm:.3g}")
    for i, name in enumerate(names):
        style = series_style(i)
        ax.plot(np.arange(result.losses.shape[1]), _positive(result.losses[i].numpy()), color=style["color"],
                linestyle=style["linestyle"], linewidth=2.0, label=rf"$\mathcal{{L}}$, {name}")
        ax.plot(np.arange(result.grad_norms.shape[1]), _positive(result.grad_norms[i].numpy()), color=style["color"],
                linestyle=style["linestyle"], linewidth=1.0, alpha=0.5, label=rf"‖∇$\mathcal{{L}}$‖, {name}")
    ax.axhline(result.config.max_norm, color="0.3", linestyle=":", linewidth=1.2, label="ν")
    ax.set(yscale="log", xlabel="step k", ylabel="loss, gradient norm", title="descent on the cliff")
    ax.xaxis.set_major_locator(MaxNLocator(nbins=6, integer=True))
    ax.yaxis.set_major_locator(LogLocator(base=100.0, numticks=8))
    ax.title.set_fontsize(11)
    ax.legend(fontsize=8, loc="lower left")
    return ax
