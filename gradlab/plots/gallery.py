"""Chapter 4's gallery: every step-based learning-rate schedule over one run, as PyTorch's schedulers set it."""
from __future__ import annotations

from matplotlib.axes import Axes
from matplotlib.figure import Figure

from .. import schedules as S
from ..style import PALETTE

__all__ = ["gallery_cases", "plot_gallery"]


def gallery_cases(total_steps: int) -> dict:
    """The schedules of Chapter 4's gallery, each over a run of ``total_steps`` steps."""
    t = total_steps
    return {"step decay": S.Step(step_size=max(1, t // 3), gamma=0.3),
            "multi-step": S.MultiStep(milestones=(t // 2, 3 * t // 4), gamma=0.1),
            "exponential": S.Exponential(gamma=0.01 ** (1 / t)),
            "cosine": S.Cosine(T_max=t, eta_min=0.0),
            "warmup, then cosine": S.WarmupCosine(total_steps=t, warmup_steps=max(1, t // 10)),
            "one-cycle": S.OneCycle(total_steps=t),
            "warm restarts (T_mult = 2)": S.WarmRestarts(T_0=max(1, t // 7), T_mult=2)}


def plot_gallery(fig: Figure, total_steps: int = 1000, peak: float = 0.1) -> list[Axes]:
    """Every step-based schedule over one run, η_k as PyTorch's scheduler sets it (one-cycle with its momentum)."""
    cases = gallery_cases(total_steps)
    axes = fig.subplots(2, 4, sharex=True).ravel()
    for i, (ax, (name, schedule)) in enumerate(zip(axes, cases.items())):
        lrs, momenta = S.torch_trace(schedule, total_steps, peak)
        ax.plot(range(total_steps + 1), lrs, color=PALETTE[0], linewidth=1.8)
        ax.set_title(name)
        ax.set_ylim(0, peak * 1.08)
        if name == "one-cycle":
            twin = ax.twinx()
            twin.plot(range(total_steps + 1), momenta, color=PALETTE[1], linestyle="--", linewidth=1.4)
            twin.set_ylim(0.8, 1.0)
            twin.set_ylabel(r"momentum $\beta$ (dashed)", color=PALETTE[1])
        if i % 4 == 0:
            ax.set_ylabel(r"$\eta_k$")
        if i >= 3:
            ax.set_xlabel("step k")
    axes[-1].set_axis_off()
    return list(axes[:-1])
