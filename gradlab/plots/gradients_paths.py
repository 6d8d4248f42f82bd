"""Plots of Chapter 5's residual connections: a block's singular values, plain against residual stacks at
initialization, paths by length, training at depth, the lesion study and a highway network's gates."""
from __future__ import annotations

import numpy as np
from matplotlib.axes import Axes
from matplotlib.ticker import MaxNLocator

from ..gradients.highway import HighwayStudy
from ..gradients.residual_training import DepthTraining, Lesion
from ..gradients.residual import NETWORKS, BlockJacobian, DepthProfile, PathGradients
from ..style import series_style
from . import axes_or_new

__all__ = ["plot_block_singular_values", "plot_depth_std", "plot_depth_grads", "plot_path_lengths",
           "plot_path_magnitude", "plot_depth_curves", "plot_depth_final", "plot_lesion_single",
           "plot_lesion_multi", "plot_highway_gates", "plot_highway_curves"]

TINY = 1e-30  # an underflowed gradient is 0: drawn at this floor of the log axis
LABELS = {"plain": "plain", "residual": "residual", NETWORKS[2]: "residual, zero-init branches"}
INIT_NAMES = {"he": "He", "pytorch": "PyTorch's default", "xavier": "Xavier", "orthogonal": "orthogonal",
              "small": "small", "large": "large"}


def _positive(y: np.ndarray) -> np.ndarray:
    return np.where(np.isfinite(y), np.clip(y, TINY, None), np.nan)


def plot_block_singular_values(result: BlockJacobian, ax: Axes | None = None) -> Axes:
    """Singular values of one block's Jacobian, largest first (mean over the points): residual I + J_F,
    the branch J_F, and the plain block with the same weights."""
    ax = axes_or_new(ax)
    series = (("residual block I + J_F", result.residual), ("its branch J_F", result.branch),
              ("plain block φ(W h)", result.plain))
    for i, (label, sv) in enumerate(series):
        style = series_style(i)
        y = sv.mean(0).numpy()
        ax.plot(np.arange(1, len(y) + 1), y, color=style["color"], linestyle=style["linestyle"], linewidth=2.0,
                label=label)
    ax.axhline(1.0, color="0.5", linestyle=":", linewidth=1.2)
    ax.set(xlabel="rank of the singular value", ylabel="singular value of ∂h_l/∂h_(l−1)",
           title=f"branch scale {result.config.branch_scale:g}, {INIT_NAMES[result.config.init]} init, width "
                 f"{result.config.width}")
    ax.title.set_fontsize(11)
    ax.legend(fontsize=10, loc="upper right")
    return ax


def _per_layer(profile: DepthProfile, values, ax: Axes, start: int) -> None:
    for i, network in enumerate(NETWORKS):
        style = series_style(i)
        y = _positive(values[i].double().numpy())
        ax.plot(np.arange(start, start + len(y)), y, color=style["color"], linestyle=style["linestyle"],
                linewidth=2.0, label=LABELS[network])
    ax.set_yscale("log")
    ax.set_xlim(0, profile.config.depth + 1)


def plot_depth_std(profile: DepthProfile, ax: Axes | None = None) -> Axes:
    """The standard deviation of h_l against the layer l at initialization, for each network."""
    ax = axes_or_new(ax)
    _per_layer(profile, profile.act_std, ax, 1)
    c = profile.config
    ax.set(xlabel="layer l", ylabel="standard deviation of h_l",
           title=f"forward: D = {c.depth}, {INIT_NAMES[c.init]} init, norm: {c.norm}")
    ax.title.set_fontsize(11)
    ax.legend(fontsize=10, loc="upper left")
    return ax


def plot_depth_grads(profile: DepthProfile, ax: Axes | None = None) -> Axes:
    """‖∂𝓛/∂W_l‖ against the layer l at initialization, for each network (an underflowed 0 sits on the floor)."""
    ax = axes_or_new(ax)
    _per_layer(profile, profile.grad_norm, ax, 1)
    ax.set(xlabel="layer l (1: input, D: output)", title="backward, one batch",
           ylabel=r"gradient norm $\Vert\partial\mathcal{L}/\partial W_l\Vert$")
    ax.title.set_fontsize(11)
    ax.legend(fontsize=10, loc="lower right")
    return ax


def plot_path_lengths(paths: PathGradients, ax: Axes | None = None) -> Axes:
    """Against the path length: the share of the 2^(D−2) paths, and the share of the gradient ∂ℓ/∂h_1's norm
    that the paths of each length carry together."""
    ax = axes_or_new(ax)
    m = np.arange(len(paths.counts))
    counts = paths.counts.numpy()
    total = paths.total.numpy()
    for i, (label, y) in enumerate((("share of the paths (binomial)", counts / counts.sum()),
                                    ("share of the gradient norm", total / total.sum()))):
        style = series_style(i)
        ax.plot(m, y, color=style["color"], linestyle=style["linestyle"], marker=style["marker"], markersize=4,
                linewidth=1.8, label=label)
    ax.set(xlabel="path length (branches passed through)", ylabel="fraction")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.legend(fontsize=10, loc="upper right")
    return ax


def plot_path_magnitude(paths: PathGradients, ax: Axes | None = None) -> Axes:
    """The mean norm of one path's term of ∂ℓ/∂h_1 against its length (sampled paths), on a log axis."""
    ax = axes_or_new(ax)
    m = np.arange(len(paths.per_path))
    style = series_style(0)
    ax.plot(m, _positive(paths.per_path.numpy()), color=style["color"], marker="o", markersize=4, linewidth=1.8,
            label="one path (mean over samples)")
    ax.axhline(paths.full, color="0.4", linestyle="--", linewidth=1.2, label="the whole gradient ‖∂ℓ/∂h_1‖")
    ax.set(yscale="log", xlabel="path length (branches passed through)", ylabel="gradient norm at h_1")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.legend(fontsize=10, loc="lower left")
    return ax


def plot_depth_curves(result: DepthTraining, ax: Axes | None = None, metric: str = "val_loss") -> Axes:
    """A metric (``val_loss``, ``train_loss`` or ``val_acc``) against the epoch, mean over seeds: one colour per
    depth, one line style per kind (dashed plain, solid residual, dotted zero-init residual)."""
    ax = axes_or_new(ax)
    values = getattr(result, metric).numpy()
    epochs = np.arange(values.shape[-1])
    dashes = {"plain": "--", "residual": "-", NETWORKS[2]: ":"}
    for b, depth in enumerate(result.config.depths):
        color = series_style(b)["color"]
        for a, kind in enumerate(result.config.kinds):
            runs = values[a, b]
            y = np.nanmean(runs, axis=0) if np.isfinite(runs).any() else runs[0]
            ax.plot(epochs, y, color=color, linestyle=dashes[kind], linewidth=2.0)
    # The legend names the colours (depths) and the line styles (kinds) once each, not every pair.
    for b, depth in enumerate(result.config.depths):
        ax.plot([], [], color=series_style(b)["color"], linewidth=6, label=f"D = {depth}")
    for kind in result.config.kinds:
        ax.plot([], [], color="0.2", linestyle=dashes[kind], linewidth=2.0, label=LABELS[kind])
    ylabel = {"val_loss": "validation loss", "train_loss": "training loss", "val_acc": "validation accuracy"}[metric]
    ax.set(xlabel="epoch", ylabel=ylabel, yscale="linear" if metric == "val_acc" else "log")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.legend(fontsize=9, loc="lower right" if metric == "val_acc" else "upper right",
              title=f"mean of {values.shape[2]} seeds, norm: {result.config.norm}", title_fontsize=9)
    return ax


def plot_depth_final(result: DepthTraining, ax: Axes | None = None) -> Axes:
    """Final validation accuracy against the depth D for each kind: a dot per seed, a line through the means."""
    ax = axes_or_new(ax)
    acc = result.val_acc[..., -1].numpy()
    depths = np.array(result.config.depths)
    for a, kind in enumerate(result.config.kinds):
        style = series_style(a)
        ax.plot(depths, np.nanmean(acc[a], axis=1), color=style["color"], linestyle=style["linestyle"],
                marker=style["marker"], linewidth=1.8, label=LABELS[kind])
        for b, d in enumerate(depths):
            ax.plot(np.full(acc.shape[2], d), acc[a, b], "o", color=style["color"], alpha=0.4, markersize=4)
    ax.set(xlabel="depth D", ylabel="final validation accuracy", ylim=(0, 1.02), xticks=depths)
    ax.legend(fontsize=10, loc="lower left", title=f"{result.config.train.epochs} epochs, norm: {result.config.norm}",
              title_fontsize=9)
    return ax


def plot_lesion_single(lesions: list[Lesion], ax: Axes | None = None) -> Axes:
    """Validation accuracy with one hidden block deleted, against which block, beside the intact network."""
    ax = axes_or_new(ax)
    for i, les in enumerate(lesions):
        style = series_style(i)
        label = LABELS[les.config.kind]
        blocks = np.arange(2, len(les.single) + 2)  # block i is layer l = i + 2
        ax.plot(blocks, les.single.numpy(), color=style["color"], linestyle=style["linestyle"],
                marker=style["marker"], markersize=4, linewidth=1.6, label=f"{label}: one layer deleted")
        ax.axhline(les.base, color=style["color"], linestyle=":", linewidth=1.2, label=f"{label}: intact")
    ax.set(xlabel="hidden layer l deleted (h_l = h_(l−1))", ylabel="validation accuracy", ylim=(0, 1.02))
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.legend(fontsize=9, loc="lower left")
    return ax


def plot_lesion_multi(lesions: list[Lesion], ax: Axes | None = None) -> Axes:
    """Validation accuracy against the number of hidden blocks deleted at random: mean and range over draws."""
    ax = axes_or_new(ax)
    for i, les in enumerate(lesions):
        style = series_style(i)
        k = np.array((0, *les.counts))
        multi = les.multi.numpy()
        mean = np.concatenate([[les.base], multi.mean(1)])
        ax.fill_between(k, np.concatenate([[les.base], multi.min(1)]), np.concatenate([[les.base], multi.max(1)]),
                        color=style["color"], alpha=0.15, linewidth=0)
        ax.plot(k, mean, color=style["color"], linestyle=style["linestyle"], marker=style["marker"], markersize=5,
                linewidth=1.8, label=LABELS[les.config.kind])
    ax.axhline(0.1, color="0.5", linestyle=":", linewidth=1.0)
    ax.annotate("chance", (0.99, 0.1), xycoords=("axes fraction", "data"), ha="right", va="bottom", fontsize=9,
                color="0.4")
    ax.set(xlabel="hidden layers deleted at random", ylabel="validation accuracy", ylim=(0, 1.02))
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.legend(fontsize=10, loc="upper right", title=f"{lesions[0].config.draws} random draws each", title_fontsize=9)
    return ax


def plot_highway_gates(study: HighwayStudy, ax: Axes | None = None) -> Axes:
    """The highway network's mean transform gate per layer, at initialization and after training, and the
    fraction of gate values above 1/2 after training."""
    ax = axes_or_new(ax)
    layers = np.arange(2, len(study.gate_mean) + 2)
    for i, (label, y) in enumerate((("mean gate, after training", study.gate_mean),
                                    ("mean gate, at initialization", study.gate_init),
                                    ("fraction of gates > 1/2, after training", study.gate_open))):
        style = series_style(i)
        ax.plot(layers, y.numpy(), color=style["color"], linestyle=style["linestyle"], marker=style["marker"],
                markersize=4, linewidth=1.8, label=label)
    ax.set(xlabel="highway layer l", ylabel="transform gate (0: carry x, 1: transform)", ylim=(0, 1.02),
           title=f"gate bias at initialization b = {study.config.gate_bias:g}")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.title.set_fontsize(11)
    ax.legend(fontsize=9, loc="upper right")
    return ax


def plot_highway_curves(study: HighwayStudy, ax: Axes | None = None) -> Axes:
    """Validation loss against the epoch for the highway and the residual network of the same depth."""
    ax = axes_or_new(ax)
    for i, (name, curves, p) in enumerate((("highway", study.highway, study.params[0]),
                                           (LABELS[study.baseline], study.residual, study.params[1]))):
        style = series_style(i)
        y = curves.val_loss.numpy()
        ax.plot(np.arange(len(y)), y, color=style["color"], linestyle=style["linestyle"], linewidth=2.0,
                label=f"{name} ({p:,} parameters): accuracy {curves.val_acc[-1]:.3f}")
    ax.set(xlabel="epoch", ylabel="validation loss", yscale="log", title=f"D = {study.config.net.depth}")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.title.set_fontsize(11)
    ax.legend(fontsize=9, loc="upper right")
    return ax
