"""Chapter 6's plots of scale invariance under batch norm: a normalized layer's ‖W‖, its effective learning rate
η/‖W‖² and rotation per step during SGD with and without weight decay, and the validation loss."""
from __future__ import annotations

import math
from typing import Sequence

from matplotlib.axes import Axes

from ..normalization.scale_invariance import Invariance, ScaleRun, equilibrium_angle
from ..style import series_style
from . import axes_or_new

__all__ = ["run_label", "plot_weight_norm", "plot_effective_lr", "plot_rotation", "plot_scale_val_loss",
           "plot_invariance"]


def run_label(run: ScaleRun) -> str:
    """"η = 0.1, α = 0.001": the legend entry of a run."""
    c = run.config
    return f"η = {c.lr:g}, α = {c.weight_decay:g}"


def _lines(runs: Sequence[ScaleRun], ax: Axes, field: str, every: int = 10) -> None:
    for i, r in enumerate(runs):
        st = series_style(i)
        ax.plot(r.steps.numpy(), getattr(r, field).numpy(), label=run_label(r), markevery=max(len(r.steps) // every, 1),
                **st)


def plot_weight_norm(runs: Sequence[ScaleRun], ax: Axes | None = None, equilibrium: bool = True) -> Axes:
    """‖W‖ of the tracked layer against the step; dotted: each run's equilibrium (η E[‖g‖²‖W‖²]/(2α))^¼."""
    ax = axes_or_new(ax)
    _lines(runs, ax, "weight_norm")
    if equilibrium:
        for i, r in enumerate(runs):
            w = r.equilibrium_norm()
            if math.isfinite(w):
                ax.axhline(w, color=series_style(i)["color"], linestyle=":", linewidth=1.5)
    ax.set_xlabel("step k")
    ax.set_ylabel(f"‖W‖ of layer {runs[0].config.layer + 1}")
    ax.set_title("Weight norm (dotted: equilibrium)")
    ax.set_ylim(bottom=0)
    ax.legend()
    return ax


def plot_effective_lr(runs: Sequence[ScaleRun], ax: Axes | None = None) -> Axes:
    """The effective learning rate η/‖W‖² against the step, on a log scale."""
    ax = axes_or_new(ax)
    _lines(runs, ax, "effective_lr")
    ax.set_yscale("log")
    ax.set_xlabel("step k")
    ax.set_ylabel("η / ‖W‖²")
    ax.set_title("Effective learning rate")
    ax.legend()
    return ax


def plot_rotation(runs: Sequence[ScaleRun], ax: Axes | None = None) -> Axes:
    """The root-mean-square angle W turns per step against the step; dashed: √(2ηα), the equilibrium value."""
    ax = axes_or_new(ax)
    _lines(runs, ax, "angle")
    for i, r in enumerate(runs):
        a = equilibrium_angle(r.config.lr, r.config.weight_decay)
        if a > 0:
            ax.axhline(a, color=series_style(i)["color"], linestyle="--", linewidth=1.2)
    ax.set_yscale("log")
    ax.set_xlabel("step k")
    ax.set_ylabel("angle per step (radians)")
    ax.set_title("Rotation per step (dashed: √(2ηα))")
    ax.legend()
    return ax


def plot_scale_val_loss(runs: Sequence[ScaleRun], ax: Axes | None = None) -> Axes:
    """Validation cross-entropy against the step."""
    ax = axes_or_new(ax)
    _lines(runs, ax, "val_loss")
    ax.set_yscale("log")
    ax.set_xlabel("step k")
    ax.set_ylabel("validation cross-entropy")
    ax.set_title("Validation loss")
    ax.legend()
    return ax


def plot_invariance(result: Invariance, ax: Axes | None = None) -> Axes:
    """Relative output change after W → ρW against ρ (log-log), measured and predicted from ε/ρ²."""
    ax = axes_or_new(ax)
    rho = result.rhos.numpy()
    floor = 1e-17  # a change of exactly 0 (ρ = 1) cannot be drawn on a log scale
    ax.plot(rho, result.output_change.clamp_min(floor).numpy(), label="measured", **series_style(0))
    ax.plot(rho, result.predicted_change.clamp_min(floor).numpy(), label="predicted: √((σ²+ε)/(σ²+ε/ρ²)) − 1",
            **{**series_style(1), "marker": None})
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("scale ρ of the weights")
    ax.set_ylabel("largest relative output change")
    ax.set_title(f"Batch norm after W → ρW (ε = {result.config.eps:g})")
    ax.legend()
    return ax
