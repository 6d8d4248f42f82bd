"""Chapter 6's design figures: batch norm before or after the activation, the original and pre-activation
residual blocks (curves, the scale through depth at initialization, and a block diagram), and how a sequence's
normalized output depends on its batch (Experiments 6 and 7)."""
from __future__ import annotations

import math

import torch
from matplotlib.axes import Axes
from matplotlib.patches import Circle, FancyBboxPatch

from ..style import PALETTE, series_style
from . import axes_or_new

__all__ = ["POSITION_LABELS", "ARRANGEMENT_LABELS", "plot_placement_curves", "plot_placement_final",
           "plot_init_profile", "plot_residual_curves", "plot_residual_final", "draw_residual_blocks",
           "plot_sequence_output", "plot_sequence_changes"]

POSITION_LABELS = {"before": "Linear → BN → ReLU", "after": "Linear → ReLU → BN", "none": "Linear → ReLU (no BN)"}
ARRANGEMENT_LABELS = {"original": "original (post-activation)", "preact": "pre-activation"}
_ARR = tuple(ARRANGEMENT_LABELS)  # a fixed colour per arrangement, whichever are drawn
SHORT_LABELS = {"layer": "LayerNorm", "batch": "BatchNorm\n(all tokens)", "batch_masked": "BatchNorm\n(padding masked)",
                "rms": "RMSNorm", "none": "no norm"}
FLOOR = 1e-8  # where an exact zero is drawn on a log axis


def _line(i: int, **extra) -> dict:
    st = series_style(i)
    return {"color": st["color"], "linestyle": st["linestyle"], **extra}


def plot_placement_curves(result, ax: Axes | None = None, lr_index: int = 0, what: str = "val_loss") -> Axes:
    """Validation loss (or ``what="val_acc"``: accuracy, %) per epoch of each position at one η, a line per seed."""
    ax = axes_or_new(ax)
    c = result.config
    epochs = torch.arange(result.val_loss.shape[-1])
    for i, p in enumerate(c.positions):
        for s in range(c.seeds):
            y = result.val_loss[i, lr_index, s] if what == "val_loss" else 100 * result.val_acc[i, lr_index, s]
            ax.plot(epochs, y, marker=series_style(i)["marker"], markersize=4,
                    label=POSITION_LABELS[p] if s == 0 else None, **_line(i, alpha=0.85))
    loss = what == "val_loss"
    ax.set(xlabel="epoch", ylabel="validation loss (cross-entropy)" if loss else "validation accuracy (%)",
           yscale="log" if loss else "linear", title=f"D = {c.depth}, η = {c.lrs[lr_index]:g}, {c.seeds} seed(s) each")
    ax.legend()
    return ax


def plot_placement_final(result, ax: Axes | None = None) -> Axes:
    """Final validation accuracy of every (position, η, seed): one marker per seed, η on the x axis."""
    ax = axes_or_new(ax)
    c = result.config
    final = result.final("val_acc")
    for i, p in enumerate(c.positions):
        st = series_style(i)
        for j in range(len(c.lrs)):
            xs = [j + 0.15 * (i - 1) + 0.03 * (s - (c.seeds - 1) / 2) for s in range(c.seeds)]
            ax.scatter(xs, 100 * final[i, j], color=st["color"], marker=st["marker"], s=45,
                       label=POSITION_LABELS[p] if j == 0 else None)
    ax.set_xticks(range(len(c.lrs)), [f"η = {lr:g}" for lr in c.lrs])
    ax.set(ylabel="final validation accuracy (%)", title=f"after {c.train.epochs} epochs of {c.train.optimizer}")
    ax.legend()
    return ax


def plot_init_profile(profile, ax: Axes | None = None, what: str = "grad_norm") -> Axes:
    """At initialization, per block: the std of h_l (``act_std``), the norm of ∂𝓛/∂h_l (``grad_norm``) or that norm
    relative to the last block's (``grad_ratio``: how much the gradient grows on its way back to the input)."""
    ax = axes_or_new(ax)
    if what not in ("act_std", "grad_norm", "grad_ratio"):
        raise ValueError(f"what is act_std, grad_norm or grad_ratio, not {what!r}")
    data = profile.grad_norm / profile.grad_norm[:, -1:] if what == "grad_ratio" else getattr(profile, what)
    for i, arr in enumerate(profile.arrangements):
        ax.plot(range(data.shape[1]), data[i], label=ARRANGEMENT_LABELS[arr], **_line(i))
    grad = r"$\|\partial\mathcal{L}/\partial h_l\|$"
    ylabel = {"act_std": r"std of $h_l$ over batch and units", "grad_norm": grad + " (one batch)",
              "grad_ratio": grad + " / its value at the last block"}[what]
    ax.set(xlabel=r"block $l$ (0: the stem's output)", ylabel=ylabel, yscale="log",
           title=f"at initialization, {profile.blocks} blocks")
    ax.legend()
    return ax


def plot_residual_curves(result, ax: Axes | None = None) -> Axes:
    """Validation loss per epoch of both arrangements at each depth, seeds averaged (Experiment 6)."""
    ax = axes_or_new(ax)
    c = result.config
    epochs = torch.arange(result.val_loss.shape[-1])
    for a, arr in enumerate(c.arrangements):
        for b, n in enumerate(c.blocks):
            st = series_style(_ARR.index(arr))
            ax.plot(epochs, result.val_loss[a, b].mean(0), color=st["color"], linestyle=st["linestyle"],
                    marker=series_style(b)["marker"], alpha=1.0 - 0.5 * b / max(1, len(c.blocks)),
                    label=f"{ARRANGEMENT_LABELS[arr]}, {n} blocks")
    ax.set(xlabel="epoch", ylabel="validation loss (cross-entropy)", yscale="log",
           title=f"mean of {c.seeds} seed{'s' if c.seeds > 1 else ''}")
    ax.legend(fontsize=9)
    return ax


def plot_residual_final(result, ax: Axes | None = None) -> Axes:
    """Final validation loss against the number of blocks, each seed a marker, the mean a line."""
    ax = axes_or_new(ax)
    c = result.config
    final = result.val_loss[..., -1]
    for a, arr in enumerate(c.arrangements):
        st = series_style(_ARR.index(arr))
        ax.plot(c.blocks, final[a].mean(-1), label=ARRANGEMENT_LABELS[arr],
                **_line(_ARR.index(arr), marker=st["marker"]))
        for s in range(c.seeds):
            ax.scatter(c.blocks, final[a, :, s], color=st["color"], marker=st["marker"], s=18, alpha=0.6)
    ax.set(xlabel="residual blocks (two linear layers each)", ylabel="final validation loss", yscale="log",
           title=f"after {c.train.epochs} epochs")
    ax.legend()
    return ax


_KIND_COLOUR = {"Linear": PALETTE[0], "BN": PALETTE[1], "ReLU": PALETTE[3]}


def _box(ax: Axes, x: float, y: float, text: str) -> None:
    kind = text.split()[0]
    ax.add_patch(FancyBboxPatch((x - 0.7, y - 0.17), 1.4, 0.34, boxstyle="round,pad=0.02",
                                facecolor=_KIND_COLOUR.get(kind, "white"), alpha=0.35, edgecolor="black"))
    ax.text(x, y, text, ha="center", va="center", fontsize=12)


def _arrow(ax: Axes, start: tuple, end: tuple, **kw) -> None:
    ax.annotate("", xy=end, xytext=start, arrowprops=dict(arrowstyle="-|>", color="black", lw=1.5, **kw))


def draw_residual_blocks(ax: Axes | None = None) -> Axes:
    """Block diagram: the original block (left) and the pre-activation block (right), top to bottom, with
    the addition ⊕ and where batch norm and ReLU sit (He et al. 2016a, 2016b, Fig. 1 and 4)."""
    ax = axes_or_new(ax)
    columns = ((0.0, "original\n(He et al. 2016a)", ["Linear W₁", "BN", "ReLU", "Linear W₂", "BN"], "ReLU"),
               (4.6, "pre-activation\n(He et al. 2016b)", ["BN", "ReLU", "Linear W₁", "BN", "ReLU", "Linear W₂"], None))
    for x, title, branch, after in columns:
        top, step = 6.4, 0.72
        ax.text(x + 0.35, top + 0.3, title, ha="center", va="bottom", fontsize=13, weight="bold")
        ax.text(x, top, r"$h_{l-1}$", ha="center", va="center", fontsize=12)
        ys = [top - step * (k + 1) for k in range(len(branch))]
        _arrow(ax, (x, top - 0.15), (x, ys[0] + 0.17))
        for k, (y, text) in enumerate(zip(ys, branch)):
            _box(ax, x, y, text)
            if k + 1 < len(branch):
                _arrow(ax, (x, y - 0.17), (x, ys[k + 1] + 0.17))
        y_add = ys[-1] - step
        ax.add_patch(Circle((x, y_add), 0.16, facecolor="white", edgecolor="black"))
        ax.text(x, y_add, "+", ha="center", va="center", fontsize=15)
        _arrow(ax, (x, ys[-1] - 0.17), (x, y_add + 0.16))
        # the identity path: down the right-hand side into the addition
        ax.plot([x, x + 1.2, x + 1.2], [top - 0.1, top - 0.1, y_add], color="black", linestyle="-", lw=1.5)
        _arrow(ax, (x + 1.2, y_add), (x + 0.16, y_add))
        ax.text(x + 1.28, (top + y_add) / 2, "identity", rotation=90, va="center", fontsize=11)
        y_end = y_add - step
        if after:
            _box(ax, x, y_end, after)
            _arrow(ax, (x, y_add - 0.16), (x, y_end + 0.17))
            y_out = y_end - step
            _arrow(ax, (x, y_end - 0.17), (x, y_out + 0.12))
        else:
            y_out = y_end
            _arrow(ax, (x, y_add - 0.16), (x, y_out + 0.12))
        ax.text(x, y_out, r"$h_l$", ha="center", va="center", fontsize=12)
        note = ("ReLU after the addition:\n" r"$h_l = \mathrm{ReLU}(h_{l-1} + F_l(h_{l-1}))$" if after
                else "nothing after the addition:\n" r"$h_l = h_{l-1} + F_l(h_{l-1})$")
        ax.text(x + 0.35, y_out - 0.55, note, ha="center", va="top", fontsize=11)
    ax.set(xlim=(-1.6, 6.6), ylim=(-0.9, 7.6), aspect="equal")
    ax.axis("off")
    return ax


def plot_sequence_output(stats, ax: Axes | None = None, norm: str = "batch", features: int = 2) -> Axes:
    """One sequence's normalized features per token: in the reference batch (solid) and the changed one (dashed)."""
    ax = axes_or_new(ax)
    i = stats.norms.index(norm)
    tokens = torch.arange(1, stats.reference.shape[1] + 1)
    for f in range(features):
        st = series_style(f)
        ax.plot(tokens, stats.reference[i, :, f], color=st["color"], marker=st["marker"], linestyle="-",
                label=f"feature {f + 1}, reference batch")
        ax.plot(tokens, stats.changed[i, :, f], color=st["color"], marker=st["marker"], linestyle="--",
                markerfacecolor="white", label=f"feature {f + 1}, changed batch")
    from ..normalization.sequences import NORM_LABELS

    ax.set(xlabel=r"token position $\tau$ of the sequence", ylabel=r"normalized value $\hat{z}$", title=NORM_LABELS[norm])
    ax.legend(fontsize=9)
    return ax


def plot_sequence_changes(stats, ax: Axes | None = None) -> Axes:
    """Per norm, the largest change of one sequence's output when the padding grows, when the other sequences
    change, and between train and eval mode; exact zeros drawn at the floor and labelled 0."""
    ax = axes_or_new(ax)
    groups = (("padding grows", stats.pad_change), ("other sequences change", stats.others_change),
              ("train vs eval mode", stats.eval_change))
    width = 0.8 / len(groups)
    for g, (label, values) in enumerate(groups):
        st = series_style(g)
        xs = [k + (g - 1) * width for k in range(len(stats.norms))]
        heights = [max(float(v), FLOOR) for v in values]
        ax.bar(xs, heights, width, color=st["color"], hatch=("", "//", "..")[g % 3], edgecolor="black", label=label)
        for x, v in zip(xs, values):
            if float(v) == 0:
                ax.text(x, FLOOR * 1.6, "0", ha="center", fontsize=10)
    ax.set_xticks(range(len(stats.norms)), [SHORT_LABELS[n] for n in stats.norms], fontsize=10)
    ax.set(yscale="log", ylim=(FLOOR, 10 ** math.ceil(math.log10(max(2.0, float(stats.change.max()))))),
           ylabel="largest change of the sequence's output")
    ax.legend(fontsize=9)
    return ax
