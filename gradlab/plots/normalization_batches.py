"""Chapter 6's plots of small batches and of training against evaluation mode (Experiments 4 and 5)."""
from __future__ import annotations

import numpy as np
from matplotlib.axes import Axes
from matplotlib.patches import Patch
from matplotlib.ticker import FuncFormatter, MaxNLocator

from ..normalization.batch_size import BatchSizeRun, BatchSizeSweep
from ..normalization.train_eval import Coupling, EvalModeStudy, MomentumSweep
from ..style import PALETTE, series_style
from . import axes_or_new

__all__ = ["plot_batch_curves", "plot_batch_accuracy", "plot_batch_size_sweep", "plot_class_accuracy",
           "plot_running_mean", "plot_momentum_sweep", "plot_coupling", "MODE_LABELS"]

MODE_LABELS = {"eval": "eval mode (running statistics)", "train": "train mode (batch statistics)",
               "recalibrated": "eval mode after recalibration"}


def plot_batch_curves(run: BatchSizeRun, ax: Axes | None = None) -> Axes:
    """Validation loss per epoch in eval mode (solid) and in train mode on batches of B (dashed), training loss dotted."""
    ax = axes_or_new(ax)
    x = np.arange(len(run.train_loss))
    for i, (name, y, dash) in enumerate((("validation, eval mode", run.val_loss_eval, "-"),
                                         (f"validation, train mode (batches of {run.config.batch_size})",
                                          run.val_loss_train, "--"),
                                         ("training set, eval mode", run.train_loss, ":"))):
        ax.plot(x, np.clip(y.numpy(), 1e-3, 1e3), color=PALETTE[i], linestyle=dash,
                marker=series_style(i)["marker"], label=name)
    ax.set(yscale="log", xlabel="epoch", ylabel="cross-entropy loss", xlim=(0, x[-1]))
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.yaxis.set_minor_formatter(FuncFormatter(lambda v, _: f"{v:g}" if f"{v:.0e}"[0] in "25" else ""))
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.legend(fontsize=9, loc="upper right")
    return ax


def plot_batch_accuracy(run: BatchSizeRun, ax: Axes | None = None) -> Axes:
    """Validation accuracy per epoch in eval mode and in train mode on batches of B."""
    ax = axes_or_new(ax)
    x = np.arange(len(run.train_loss))
    for i, (name, y) in enumerate((("eval mode", run.val_acc_eval), ("train mode", run.val_acc_train))):
        s = series_style(i)
        ax.plot(x, 100 * y.numpy(), color=s["color"], linestyle=s["linestyle"], marker=s["marker"], label=name)
    ax.set(xlabel="epoch", ylabel="validation accuracy (%)", ylim=(0, 100), xlim=(0, x[-1]))
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.legend(fontsize=9, loc="lower right", title=f"B = {run.config.batch_size}", title_fontsize=9)
    return ax


def plot_batch_size_sweep(sweep: BatchSizeSweep, ax: Axes | None = None, mode: str = "eval") -> Axes:
    """Final validation accuracy (seed mean) against the batch size B, one line per normalization."""
    ax = axes_or_new(ax)
    acc = (sweep.acc_eval if mode == "eval" else sweep.acc_train).mean(-1).numpy()
    for i, norm in enumerate(sweep.norms):
        s = series_style(i)
        ax.plot(sweep.batch_sizes, 100 * acc[i], color=s["color"], linestyle=s["linestyle"], marker=s["marker"],
                label=norm)
    ax.set(xscale="log", xlabel="batch size B", ylabel=f"validation accuracy (%), {mode} mode")
    ax.set_xticks(sweep.batch_sizes, [str(b) for b in sweep.batch_sizes])
    ax.legend(fontsize=10, title="normalization", title_fontsize=10)
    return ax


def plot_class_accuracy(study: EvalModeStudy, mode: str = "train", test_batch: str = "8",
                        ax: Axes | None = None) -> Axes:
    """Validation accuracy per digit in the chosen mode (bars) beside eval mode (outlined bars)."""
    ax = axes_or_new(ax)
    if mode == "eval":
        values, what = study.eval_per_class, MODE_LABELS["eval"]
    elif mode == "recalibrated":
        values, what = study.recal_per_class, MODE_LABELS["recalibrated"]
    elif test_batch == "class":
        values, what = study.single_class_per_class, "train mode, one batch per digit"
    else:
        i = study.config.test_batches.index(int(test_batch))
        values, what = study.train_per_class[i], f"train mode, test batches of {test_batch}"
    x = np.arange(10)
    ax.bar(x - 0.2, 100 * study.eval_per_class.numpy(), 0.4, color="white", edgecolor=PALETTE[0], linewidth=1.5,
           label=MODE_LABELS["eval"])
    ax.bar(x + 0.2, 100 * values.numpy(), 0.4, color=PALETTE[1], hatch="//", edgecolor="white", label=what)
    ax.set(xticks=x, xlabel="digit (class)", ylabel="validation accuracy (%)", ylim=(0, 118))
    ax.legend(fontsize=9, loc="upper left", ncols=1)
    return ax


def plot_running_mean(study: EvalModeStudy, ax: Axes | None = None) -> Axes:
    """Per channel of the last batch norm: running mean, the training set's mean, and the recalibrated mean."""
    ax = axes_or_new(ax)
    x = np.arange(len(study.running_mean))
    ax.plot(x, study.true_mean.numpy(), color=PALETTE[2], linestyle="-", marker="o",
            label="mean over the training set")
    ax.plot(x, study.running_mean.numpy(), color=PALETTE[0], linestyle="--", marker="s",
            label=f"running mean, ψ = {_psi(study.config.momentum)}")
    ax.plot(x, study.recalibrated_mean.numpy(), color=PALETTE[1], linestyle=":", marker="^",
            label="after recalibration")
    ax.set(xlabel="channel of the last batch norm", ylabel="mean of its input")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.legend(fontsize=9, loc="best")
    return ax


def plot_momentum_sweep(sweep: MomentumSweep, ax: Axes | None = None) -> Axes:
    """Eval-mode validation accuracy against ψ, before and after recalibration, and the train-mode accuracy."""
    ax = axes_or_new(ax)
    for i, (name, y) in enumerate((("eval mode", sweep.eval_acc), ("after recalibration", sweep.recalibrated_acc),
                                   ("train mode (batches of the training B)", sweep.train_mode_acc))):
        s = series_style(i)
        ax.plot(sweep.psis, 100 * y.numpy(), color=s["color"], linestyle=s["linestyle"], marker=s["marker"],
                label=name)
    ax.set(xscale="log", xlabel="running statistics' weight ψ (PyTorch momentum)", ylabel="validation accuracy (%)")
    ax.legend(fontsize=10)
    return ax


def plot_coupling(result: Coupling, ax: Axes | None = None) -> Axes:
    """Per example of the batch, the largest change of its logits when one example changes: train and eval mode."""
    ax = axes_or_new(ax)
    n = len(result.train_change)
    x = np.arange(n)
    changed = result.config.changed
    handles = []
    for j, (name, y) in enumerate((("train mode", result.train_change), ("eval mode", result.eval_change))):
        style = dict(facecolor=PALETTE[j], hatch=("", "//")[j], edgecolor="white")
        bars = ax.bar(x + (j - 0.5) * 0.4, y.numpy(), 0.4, **style)
        bars[changed].set_alpha(0.35)  # the changed example itself: faded, the others are the point
        handles.append(Patch(label=name, **style))
    top = float(max(result.train_change.max(), result.eval_change.max(), 1e-12))
    others = float(result.others("train").max())
    ax.annotate(f"largest change of another example (train mode): {others:.2g}", (0.02, 0.97),
                xycoords="axes fraction", va="top", fontsize=10)
    ax.set(xticks=x, xticklabels=[f"{i}\n(changed)" if i == changed else str(i) for i in x],
           xlabel="example in the batch", ylabel="largest |change| of its logits", ylim=(0, 1.25 * top))
    ax.legend(handles=handles, fontsize=10, loc="upper right", title="faded: the changed example", title_fontsize=9)
    return ax


def _psi(psi: float | None) -> str:
    return "None (cumulative)" if psi is None else f"{psi:g}"
