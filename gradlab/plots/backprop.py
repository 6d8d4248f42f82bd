"""Chapter 2's figures: the computational graph, cross-entropy against squared error, forward versus reverse mode,
backward cost, memory, accumulation, depth, and sharpness."""
from __future__ import annotations

import textwrap
from typing import Sequence

from matplotlib.axes import Axes
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

from ..graph import OPS, GraphStep
from ..style import PALETTE, series_style
from . import axes_or_new

__all__ = ["plot_graph_step", "plot_logit_gradients", "plot_train_accuracy", "plot_confidently_wrong", "plot_modes",
           "plot_flop_ratios", "plot_memory_sweep", "plot_checkpointing", "plot_saved_by_layer", "plot_memory_totals",
           "plot_accumulation", "plot_grad_norms", "plot_jacobian_chain", "plot_layer_factors", "plot_sharpness_runs"]

BLUE, RED, GREEN, GREY = PALETTE[0], PALETTE[1], PALETTE[2], "#999999"


_HALF = (0.42, 0.33)  # half width and height of a node's box, padding included


def _clip(a: tuple[float, float], b: tuple[float, float]) -> tuple[tuple[float, float], tuple[float, float]]:
    """The segment from box a to box b, cut where it leaves a and enters b."""
    dx, dy = b[0] - a[0], b[1] - a[1]
    t = min(_HALF[0] / abs(dx) if dx else float("inf"), _HALF[1] / abs(dy) if dy else float("inf"))
    return (a[0] + t * dx, a[1] + t * dy), (b[0] - t * dx, b[1] - t * dy)


def plot_graph_step(step: GraphStep, ax: Axes | None = None) -> Axes:
    """The expression graph after one step: values above nodes (blue), gradients below and on edges (red)."""
    ax = axes_or_new(ax)
    pos = {n.name: n.pos for n in step.nodes}
    for n in step.nodes:  # forward edges first, underneath everything
        for i in n.inputs:
            ax.add_patch(FancyArrowPatch(*_clip(pos[i], pos[n.name]), arrowstyle="-|>", mutation_scale=16,
                                         color=GREY, lw=1.5, shrinkA=1, shrinkB=1, zorder=1))
    for (src, dst), g in step.edges.items():  # what the backward pass sent along each edge
        ax.add_patch(FancyArrowPatch(*_clip(pos[dst], pos[src]), arrowstyle="-|>", mutation_scale=16, color=RED,
                                     lw=1.8, ls="--", shrinkA=1, shrinkB=1, connectionstyle="arc3,rad=0.25",
                                     zorder=2))
        (x0, y0), (x1, y1) = pos[dst], pos[src]
        mx, my = (x0 + x1) / 2 + 0.125 * (y1 - y0), (y0 + y1) / 2 - 0.125 * (x1 - x0)  # the arc's midpoint
        ax.text(mx, my, f"{g:.3f}", color=RED, fontsize=12, ha="center", va="center", zorder=4,
                bbox=dict(boxstyle="round,pad=0.15", fc="white", ec="none", alpha=0.9))
    for n in step.nodes:
        x, y = pos[n.name]
        active = n.name == step.active
        edge = RED if active and step.phase == "backward" else (BLUE if active else "#444444")
        ax.add_patch(FancyBboxPatch((x - 0.36, y - 0.27), 0.72, 0.54, boxstyle="round,pad=0.05,rounding_size=0.2",
                                    fc="#F2F2F2" if n.op == "input" else "white", ec=edge, lw=3 if active else 1.5,
                                    zorder=3))
        label = n.name if n.op == "input" else f"{n.name}\n{OPS[n.op][2]}"
        ax.text(x, y, label, ha="center", va="center", fontsize=14, zorder=4, linespacing=0.95)
        if n.name in step.values:
            ax.text(x, y + 0.4, f"{step.values[n.name]:.3f}", color=BLUE, ha="center", va="bottom", fontsize=13)
        if n.name in step.grads:
            ax.text(x, y - 0.4, f"∂f/∂{n.name} = {step.grads[n.name]:.3f}", color=RED, ha="center", va="top",
                    fontsize=12)
    xs = [p[0] for p in pos.values()]
    ys = [p[1] for p in pos.values()]
    ax.set_xlim(min(xs) - 0.75, max(xs) + 0.85)
    ax.set_ylim(min(ys) - 0.75, max(ys) + 0.75)
    ax.set_aspect("equal")
    ax.axis("off")
    ax.set_title("\n".join(textwrap.wrap(step.caption, 80)), fontsize=13, loc="left")
    return ax


def plot_logit_gradients(curves, ax: Axes | None = None) -> Axes:
    """|dloss/dz| against the logit z for target 1, one line per loss, on a log scale."""
    ax = axes_or_new(ax)
    for i, (name, g) in enumerate(curves.grad.items()):
        ax.semilogy(curves.z, g.abs(), label=name, **{**series_style(i), "markevery": max(1, len(g) // 12)})
    ax.axvline(0.0, color=GREY, ls=":", lw=1.5)
    ax.set_xlabel("logit z (target y = 1; left of 0 the prediction is wrong)")
    ax.set_ylabel(r"$|\partial \ell / \partial z|$")
    ax.legend(loc="lower left")
    return ax


def _loss_run_style(i: int, run) -> tuple[str, dict]:
    scale = run.config.logit_scale
    start = "default start" if scale == 1 else f"confident start (×{scale:g})"
    return f"{run.config.loss}, {start}", {**series_style(i), "markevery": max(1, len(run.train_accuracy) // 10)}


def plot_train_accuracy(runs: Sequence, ax: Axes | None = None) -> Axes:
    """Training accuracy after each epoch (0 = before training), one line per run."""
    ax = axes_or_new(ax)
    for i, run in enumerate(runs):
        label, style = _loss_run_style(i, run)
        ax.plot(range(len(run.train_accuracy)), run.train_accuracy, label=label, **style)
    ax.set_xlabel("epoch")
    ax.set_ylabel("training accuracy")
    ax.set_ylim(0, 1.02)
    ax.legend(loc="lower right", fontsize=10)
    return ax


def plot_confidently_wrong(runs: Sequence, ax: Axes | None = None) -> Axes:
    """Training examples given less than 1% on their true class, after each epoch."""
    ax = axes_or_new(ax)
    for i, run in enumerate(runs):
        label, style = _loss_run_style(i, run)
        ax.plot(range(len(run.confidently_wrong)), run.confidently_wrong, label=label, **style)
    ax.set_xlabel("epoch")
    ax.set_ylabel("examples confidently wrong")
    ax.set_ylim(bottom=0)
    return ax


def plot_modes(result, ax: Axes | None = None) -> Axes:
    """Seconds for the full Jacobian against the input size: forward mode versus reverse mode."""
    ax = axes_or_new(ax)
    ax.loglog(result.n_in, result.forward_s, label="forward mode (jacfwd): one JVP per input", **series_style(1))
    ax.loglog(result.n_in, result.reverse_s, label=f"reverse mode (jacrev): one VJP per output ({result.n_out})",
              **series_style(0))
    if result.n_out > 1 and min(result.n_in) <= result.n_out <= max(result.n_in):
        ax.axvline(result.n_out, color=GREY, ls=":", lw=1.5)
    ax.set_xlabel(result.x_label)
    ax.set_ylabel("seconds (median)")
    ax.set_title(f"Full Jacobian of a function with {result.n_out} output{'s' if result.n_out > 1 else ''}",
                 fontsize=12)
    ax.legend()
    return ax


def plot_flop_ratios(rows: Sequence, ax: Axes | None = None) -> Axes:
    """Backward over forward, by counted FLOPs and by wall time, for each case of the table."""
    ax = axes_or_new(ax)
    names = [r.name for r in rows][::-1]
    flops = [r.ratio for r in rows][::-1]
    times = [r.backward_s / r.forward_s if r.forward_s > 0 else float("nan") for r in rows][::-1]
    ys = range(len(rows))
    ax.barh([y + 0.2 for y in ys], flops, height=0.4, color=BLUE, label="counted FLOPs")
    ax.barh([y - 0.2 for y in ys], times, height=0.4, color=PALETTE[4], hatch="//", label="wall time")
    for y, f in zip(ys, flops):
        ax.text(f + 0.05, y + 0.2, f"{f:.2f}", va="center", fontsize=10)
    ax.axvline(2.0, color=GREY, ls=":", lw=1.5)
    ax.set_yticks(list(ys), names)
    ax.set_xlabel("backward ÷ forward")
    ax.legend(loc="lower right")
    return ax


def plot_memory_sweep(runs_by_label: dict, field: str, ax: Axes | None = None) -> Axes:
    """Saved activation memory (MB) against one config field, one line per label."""
    ax = axes_or_new(ax)
    for i, (label, runs) in enumerate(runs_by_label.items()):
        ax.plot([getattr(r.config, field) for r in runs], [r.activation_bytes / 1e6 for r in runs], label=label,
                **series_style(i))
    ax.set_xlabel({"depth": "depth (layers)", "batch": "batch size", "width": "width"}.get(field, field))
    ax.set_ylabel("activations saved for backward (MB)")
    ax.legend()
    return ax


def plot_checkpointing(runs: Sequence, ax: Axes | None = None) -> Axes:
    """Checkpoint segments against saved and peak memory (left axis) and Linear-layer evaluations (right axis)."""
    ax = axes_or_new(ax)
    seg = [r.config.segments for r in runs]
    ax.plot(seg, [r.activation_bytes / 1e6 for r in runs], label="saved activations (MB)", **series_style(0))
    ax.plot(seg, [r.peak_bytes / 1e6 for r in runs], label="peak during the step (MB)", **series_style(3))
    ax.set_xlabel("checkpoint segments (0 = no checkpointing)")
    ax.set_ylabel("memory (MB)")
    ax.set_ylim(0, max(r.peak_bytes for r in runs) / 1e6 * 1.45)
    right = ax.twinx()
    right.plot(seg, [r.layer_calls_total for r in runs], label="Linear evaluations, forward + backward",
               **series_style(1))
    right.set_ylabel("Linear evaluations per step", color=RED)
    right.set_ylim(0, max(r.layer_calls_total for r in runs) * 1.45)
    right.grid(False)
    right.spines["right"].set_visible(True)
    lines = ax.get_lines() + right.get_lines()
    ax.legend(lines, [line.get_label() for line in lines], loc="upper center", ncols=2, fontsize=10)
    return ax


def plot_saved_by_layer(off, on, ax: Axes | None = None) -> Axes:
    """Saved activation bytes attributed to each block, without and with checkpointing."""
    ax = axes_or_new(ax)
    blocks = range(len(off.per_layer_bytes))
    ax.bar([b - 0.2 for b in blocks], [v / 1e3 for v in off.per_layer_bytes], width=0.4, color=GREY,
           label="no checkpointing")
    ax.bar([b + 0.2 for b in blocks], [v / 1e3 for v in on.per_layer_bytes], width=0.4, color=BLUE, hatch="//",
           label=_segments_label(on))
    ax.set_xlabel("block (Linear + activation)")
    ax.set_ylabel("kept for backward (KB)")
    ax.legend()
    return ax


def _segments_label(run) -> str:
    s = run.config.segments
    return "no checkpointing" if s == 0 else f"checkpoint_sequential, {s} segment{'s' if s > 1 else ''}"


def plot_memory_totals(off, on, ax: Axes | None = None) -> Axes:
    """Two bars each: saved memory (relative to no checkpointing) and Linear evaluations per step."""
    ax = axes_or_new(ax)
    mem = [1.0, on.activation_bytes / off.activation_bytes]
    calls = [1.0, on.layer_calls_total / off.layer_calls_total]
    ax.bar([0, 1], mem, width=0.35, color=[GREY, BLUE], hatch=["", "//"])
    ax.bar([2.2, 3.2], calls, width=0.35, color=[GREY, BLUE], hatch=["", "//"])
    for x, v, raw in zip([0, 1, 2.2, 3.2], mem + calls, [off.activation_bytes / 1e3, on.activation_bytes / 1e3,
                                                         off.layer_calls_total, on.layer_calls_total]):
        ax.text(x, v + 0.03, f"{raw:.0f} KB" if x < 2 else f"{raw:.0f}", ha="center", va="bottom", fontsize=10)
    ax.set_xticks([0.5, 2.7], ["saved memory", "Linear calls"])
    ax.set_ylabel("relative to no checkpointing")
    ax.set_ylim(0, max(mem + calls) * 1.25)
    return ax


def _plot_zero_grad_runs(runs: Sequence, field: str, ylabel: str, log: bool, ax: Axes | None) -> Axes:
    ax = axes_or_new(ax)
    draw = ax.semilogy if log else ax.plot
    for i, r in enumerate(runs):
        draw(getattr(r, field), label="zero_grad() every step" if r.zero_grad else "zero_grad() forgotten",
             **{**series_style(i), "marker": None})
    ax.set_xlabel("step")
    ax.set_ylabel(ylabel)
    ax.legend()
    return ax


def plot_accumulation(runs: Sequence, ax: Axes | None = None) -> Axes:
    """Training loss per step, with and without ``zero_grad()``."""
    return _plot_zero_grad_runs(runs, "losses", "training loss (MSE)", True, ax)


def plot_grad_norms(runs: Sequence, ax: Axes | None = None) -> Axes:
    """The norm of ``.grad`` the optimizer sees at each step."""
    return _plot_zero_grad_runs(runs, "grad_norms", "‖.grad‖ used by the step", False, ax)


def _chain_label(chain) -> str:
    return f"{chain.config.activation}, gain {chain.config.gain:g}"


def plot_jacobian_chain(chains: Sequence, ax: Axes | None = None) -> Axes:
    """‖∂𝓛/∂h_l‖ at every layer l (input at the left), one line per network."""
    ax = axes_or_new(ax)
    for i, c in enumerate(chains):
        ax.semilogy(range(len(c.grad_norms)), c.grad_norms, label=_chain_label(c),
                    **{**series_style(i), "markevery": max(1, len(c.grad_norms) // 10)})
    ax.set_xlabel("layer l (0 = input)")
    ax.set_ylabel(r"$\|\partial\mathcal{L}/\partial h_l\|$")
    ax.legend()
    return ax


def plot_layer_factors(chains: Sequence, ax: Axes | None = None) -> Axes:
    """How much each layer scales the gradient on its way back: ‖∂𝓛/∂h_(l-1)‖ / ‖∂𝓛/∂h_l‖."""
    ax = axes_or_new(ax)
    for i, c in enumerate(chains):
        ax.semilogy(range(1, len(c.layer_factors) + 1), c.layer_factors, label=_chain_label(c),
                    **{**series_style(i), "markevery": max(1, len(c.layer_factors) // 10)})
    ax.axhline(1.0, color=GREY, ls=":", lw=1.5)
    ax.set_xlabel("layer l")
    ax.set_ylabel(r"$\|\partial\mathcal{L}/\partial h_{l-1}\| \,/\, \|\partial\mathcal{L}/\partial h_l\|$")
    ax.legend()
    return ax


def plot_sharpness_runs(result, ax: Axes | None = None) -> Axes:
    """Distance from the minimum along the sharpest direction, per step of GD, with |1 − ηλ_max|^k dashed."""
    ax = axes_or_new(ax)
    lam, kick = result.sharpness, result.config.kick
    for i, run in enumerate(result.runs):
        steps = range(1, len(run.top_component) + 1)
        style = {**series_style(i), "markevery": max(1, len(run.top_component) // 10)}
        ax.semilogy(steps, [abs(c) for c in run.top_component], label=f"η = {run.factor:g} × 2/λ_max", **style)
        rate = abs(1 - run.lr * lam)
        ax.semilogy(steps, [kick * rate ** k for k in steps], color=style["color"], ls=":", lw=1.5,
                    label=f"|1 − ηλ_max|^k = {rate:.2f}^k")
    sizes = [abs(c) for r in result.runs for c in r.top_component if c != 0]
    ax.set_ylim(min(sizes) / 3, max(sizes) * 1e4)  # room above the curves for the legend
    ax.set_xlabel("step k")
    ax.set_ylabel(r"$|\langle w_k - w^*, u_1 \rangle|$")
    ax.legend(loc="upper right", fontsize=10, ncols=2)
    return ax
