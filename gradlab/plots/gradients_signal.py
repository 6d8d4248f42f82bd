"""Plots of Chapter 5's Experiments 1 and 2: the backward pass as a product of per-layer factors, and the size of
activations and gradients through a deep network at initialization against the variance recursions."""
from __future__ import annotations

import numpy as np
import torch
from matplotlib.axes import Axes

from ..gradients.jacobians import Factors
from ..gradients.signal import Signal
from ..style import PALETTE, series_style
from . import axes_or_new

__all__ = ["plot_factor_norms", "plot_factor_split", "plot_signal_activations", "plot_signal_gradients",
           "plot_deep_curves", "plot_deep_ratio"]

FLOOR = 1e-45  # below float32's smallest subnormal: where an underflowed (exactly zero) value is drawn


def _positive(y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Values for a log axis, and a mask of those that are exactly zero (underflowed)."""
    zero = y == 0
    return np.where(zero, np.nan, y), zero


def plot_factor_norms(result: Factors, ax: Axes | None = None) -> Axes:
    """‖∇_{W_l} 𝓛‖ per layer, measured, against the activation-only story (max φ' per layer below the top)."""
    ax = axes_or_new(ax)
    layers = np.arange(1, result.config.depth + 1)
    measured, zero = _positive(result.weight_grad_norm.numpy())
    story = result.activation_only().numpy()
    s0, s1 = series_style(0), series_style(1)
    ax.plot(layers, measured, color=s0["color"], marker=s0["marker"], label="measured")
    ax.plot(layers, story, color=s1["color"], linestyle="--", label=f"activation only: × {result.max_slope:g} per layer")
    if zero.any():
        ax.plot(layers[zero], np.full(zero.sum(), np.nanmin(np.r_[measured[~zero], story]) / 10), "x",
                color=s0["color"], markersize=9, label="exactly 0 (underflow)")
    ax.set(yscale="log", xlabel="layer l (1 = input side)", ylabel=r"gradient norm $\Vert\nabla_{W_l}\mathcal{L}\Vert$")
    ax.legend(fontsize=10, loc="lower right")
    return ax


def plot_factor_split(result: Factors, ax: Axes | None = None) -> Axes:
    """The factor by which each layer shrinks or grows the backward signal, split into φ' and W_lᵀ."""
    ax = axes_or_new(ax)
    layers = np.arange(2, result.config.depth)  # the factors of layers 2 … D − 1
    a = result.activation_factor.numpy()[1:]
    w = result.weight_factor.numpy()[1:]
    width = 0.4
    ax.bar(layers - width / 2, a, width, color=PALETTE[0], label="activation: ‖φ′(z) ⊙ h̄‖ / ‖h̄‖")
    ax.bar(layers + width / 2, w, width, color=PALETTE[1], hatch="//", edgecolor="white",
           label="weights: ‖Wᵀz̄‖ / ‖z̄‖")
    ax.plot(layers, a * w, color=PALETTE[2], marker="o", linewidth=1.6, label="their product")
    ax.axhline(1.0, color="0.4", linestyle=":", linewidth=1.2)
    ax.axhline(result.max_slope, color=PALETTE[0], linestyle="--", linewidth=1.2)
    ax.set(yscale="log", xlabel="layer l", ylabel="factor per layer (1: unchanged)")
    values = np.r_[a, w, a * w, 1.0, result.max_slope]
    values = values[np.isfinite(values) & (values > 0)]
    if values.size:
        ax.set_ylim(values.min() / 1.5, values.max() * 12)  # room above the bars for the legend
    ax.legend(fontsize=9, loc="upper left", ncol=2, title=f"dashed: max φ′ = {result.max_slope:g}", title_fontsize=9)
    return ax


def _per_layer(result: Signal, measured, predicted, ylabel: str, xlabel: str, ax: Axes | None) -> Axes:
    ax = axes_or_new(ax)
    layers = result.layers
    y, zero = _positive(measured.numpy())
    s0, s1 = series_style(0), series_style(1)
    ax.plot(layers, y, color=s0["color"], label="measured (one network)")
    ax.plot(layers, predicted.numpy(), color=s1["color"], linestyle="--", label="variance recursion")
    _mark_end(ax, result, layers, y, zero)
    ax.set(yscale="log", xlabel=xlabel, ylabel=ylabel)
    ax.legend(fontsize=10, loc="best")
    return ax


def plot_signal_activations(result: Signal, ax: Axes | None = None) -> Axes:
    """The standard deviation of the activations h_l per layer, measured and from the variance recursion."""
    return _per_layer(result, result.act_std, result.predicted_act_std, "std of the activations h_l", "layer l", ax)


def plot_signal_gradients(result: Signal, ax: Axes | None = None) -> Axes:
    """The root mean square of ∂𝓛/∂h_l per layer, measured and from the recursion; zeros marked as underflow."""
    return _per_layer(result, result.grad_rms, result.predicted_grad_rms,
                      r"size of the gradient $\partial\mathcal{L}/\partial h_l$", "layer l (the loss is above the last)", ax)


def _mark_end(ax: Axes, result: Signal, layers: np.ndarray, y: np.ndarray, zero: np.ndarray) -> None:
    finite = np.isfinite(y)
    if zero.any():
        low = np.nanmin(np.where(finite, y, np.nan)) if finite.any() else 1.0
        ax.plot(layers[zero], np.full(zero.sum(), low / 10), "x", color=PALETTE[4], markersize=8,
                label="exactly 0 in float32")
    first = result.overflow_layer or result.grad_overflow_layer
    if first is not None:
        ax.axvline(first, color=PALETTE[4], linestyle=":", linewidth=1.6, label=f"overflow (not finite) at layer {first}")


def plot_deep_curves(result, ax: Axes | None = None) -> Axes:
    """Validation loss after every epoch (solid) and the epoch's mean mini-batch loss (dashed), per variant."""
    ax = axes_or_new(ax)
    c = result.config
    per = result.steps_per_epoch
    epochs = np.arange(0, c.epochs + 1)
    for i, label in enumerate(result.labels):
        s = series_style(i)
        val = torch.nanmean(result.val_loss[i], dim=0).numpy()  # NaN where every seed diverged, without a warning
        train = result.train_loss[i].numpy()[:, :per * c.epochs].reshape(c.seeds, c.epochs, per).mean(axis=(0, 2))
        tag = "" if result.diverged[i] is None else f" (diverged at step {result.diverged[i]})"
        ax.plot(epochs, val, color=s["color"], marker=s["marker"], label=label + tag)
        ax.plot(epochs[1:], train, color=s["color"], linestyle="--", linewidth=1.2)
    ax.axhline(np.log(10), color="0.5", linestyle=":", linewidth=1.2)
    ax.annotate("chance: ln 10", (0.02, np.log(10)), xycoords=("axes fraction", "data"), va="bottom", fontsize=9,
                color="0.35")
    ax.set(yscale="log", xlabel="epoch", ylabel="loss (solid: validation, dashed: training)",
           ylim=(0.05, 10.0))
    ax.legend(fontsize=9, loc="lower left", title=f"depth {c.depth}, normalization: {c.norm}", title_fontsize=9)
    return ax


def plot_deep_ratio(result, ax: Axes | None = None) -> Axes:
    """The first layer's gradient norm over the last layer's at every step, per variant (first seed)."""
    ax = axes_or_new(ax)
    steps = np.arange(result.grad_ratio.shape[-1])
    for i, label in enumerate(result.labels):
        s = series_style(i)
        y = result.grad_ratio[i, 0].numpy()
        zeros = int((y == 0).sum())
        tag = f" ({zeros} steps exactly 0: underflow)" if zeros else ""
        ax.plot(steps, np.where(y > 0, y, np.nan), color=s["color"], linestyle=s["linestyle"], linewidth=1.6,
                label=label + tag)
    ax.axhline(1.0, color="0.4", linestyle=":", linewidth=1.2)
    ax.axhline(1e-3, color=PALETTE[4], linestyle="--", linewidth=1.0)
    ax.annotate("10⁻³: a common alarm level", (0.98, 1e-3), xycoords=("axes fraction", "data"), ha="right",
                va="bottom", fontsize=9, color=PALETTE[4])
    ax.set(yscale="log", xlabel="step", ylabel="‖∇ first layer‖ / ‖∇ last layer‖")
    if any(int((result.grad_ratio[i, 0] == 0).sum()) for i in range(len(result.labels))):
        ax.legend(fontsize=8, loc="lower left")
    return ax
