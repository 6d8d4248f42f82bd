"""Plots of Chapter 3 (optimizers): the race, momentum's rate against theory, rotation, inside Adam."""
from __future__ import annotations

import math

import matplotlib as mpl
import numpy as np
from matplotlib.axes import Axes

from ..adam import InsideAdam, constant_gradient_factor
from ..amsgrad import OnlineRun
from ..digits_race import DigitsRace
from ..landscapes import Quadratic, Surface
from ..momentum import MomentumRates, RateMap, heavy_ball_max_lr, polyak_tuned
from ..optimizer_state import SparseSteps
from ..optimizers import StateSize
from ..race import KINDS, RaceResult, RotationSweep
from ..second_moment import SecondMoment
from ..style import PALETTE, series_style
from ..weight_decay import DecayGrid, Sparsity
from . import axes_or_new
from .descent import TINY, plot_surface

__all__ = ["plot_race_paths", "plot_race_gaps", "plot_rate_map", "plot_rate_runs", "plot_rotation",
           "plot_rotation_paths", "plot_adam_path", "plot_adam_steps", "plot_decay_grid", "plot_sparsity",
           "plot_lr_sweep", "plot_digits_curves", "plot_digits_final", "plot_online_paths", "plot_online_regret",
           "plot_sparse_rows", "plot_state_bytes", "plot_second_moment"]

RATE_LEVELS = (0.3, 0.5, 0.7, 0.8, 0.9, 0.95, 0.99)
FLOOR = 1e-300  # distances on a quadratic shrink exactly towards 0 and stay far above float64's smallest


def _style(kind: str) -> dict:
    """One colour, dash and marker per optimizer, the same in every figure of the chapter."""
    return series_style(KINDS.index(kind))


def _frame(surface: Surface, paths) -> tuple[float, float, float, float]:
    """The surface's box, widened to show the paths, at most to 3× its size."""
    x0, x1, y0, y1 = surface.box
    w, h = x1 - x0, y1 - y0
    for p in paths:
        if len(p):
            x0, x1 = max(min(x0, float(p[:, 0].min())), x0 - w), min(max(x1, float(p[:, 0].max())), x1 + w)
            y0, y1 = max(min(y0, float(p[:, 1].min())), y0 - h), min(max(y1, float(p[:, 1].max())), y1 + h)
    return x0, x1, y0, y1


def _paths(surface: Surface, paths, styles, labels, ax: Axes) -> Axes:
    box = _frame(surface, paths)
    plot_surface(surface, ax, box)
    for pts, style, label in zip(paths, styles, labels):
        pts = pts.detach().cpu().numpy()
        ax.plot(pts[:, 0], pts[:, 1], color=style["color"], linestyle=style["linestyle"], linewidth=1.6,
                marker=".", markersize=3, label=label)
    if len(paths) and len(paths[0]):
        start = paths[0][0].detach().cpu().numpy()
        ax.plot(*start, "o", color="black", markersize=9, markerfacecolor="white", linestyle="none")
    ax.set(xlim=box[:2], ylim=box[2:])
    return ax


def plot_race_paths(result: RaceResult, ax: Axes | None = None) -> Axes:
    """Every racer's path over the surface's contours, from the white circle."""
    ax = axes_or_new(ax)
    return _paths(result.config.surface, result.paths, [_style(k) for k in result.labels], result.labels, ax)


def plot_race_gaps(result: RaceResult, ax: Axes | None = None) -> Axes:
    """f(x_k) − f* against k per racer (log scale), the tolerance dotted; a × where a run diverged."""
    ax = axes_or_new(ax)
    for kind, gap, bad in zip(result.labels, result.gaps, result.diverged):
        style = _style(kind)
        g = gap.detach().cpu().numpy().clip(TINY)
        ax.semilogy(np.arange(len(g)), g, color=style["color"], linestyle=style["linestyle"],
                    label=kind + (f" (diverged at {bad})" if bad is not None else ""))
        if bad is not None and len(g):
            ax.plot([len(g) - 1], [g[-1]], "x", color=style["color"], markersize=12, markeredgewidth=3)
    ax.axhline(result.config.tol, color="gray", linestyle=":", linewidth=1.2)
    ax.set(xlabel="step $k$", ylabel="$f(x_k) - f^*$", xlim=(0, result.config.steps))
    ax.legend(fontsize=10, loc="lower left")
    return ax


def plot_rate_map(rmap: RateMap, ax: Axes | None = None, chosen: tuple[float, float] | None = None) -> Axes:
    """Heavy ball's rate over (ηL, β): shaded, labelled contours, grey where it does not converge;
    the stability bound ηL = 2(1 + β) dashed, Polyak's choice a star, ``chosen`` (η, β) a circle."""
    ax = axes_or_new(ax)
    big_l = rmap.smoothness
    x, y = rmap.lrs.numpy() * big_l, rmap.betas.numpy()
    rho = rmap.rates.numpy()
    lo = float(rho.min())
    cmap = mpl.colormaps["viridis"].with_extremes(bad="0.85")
    ax.imshow(np.ma.masked_where(rho >= 1, rho), origin="lower", aspect="auto", cmap=cmap, vmin=lo, vmax=1.0,
              extent=(x[0], x[-1], y[0], y[-1]), interpolation="nearest")
    levels = [v for v in RATE_LEVELS if v > lo + 0.005]
    if levels:
        lines = ax.contour(x, y, rho, levels=levels, colors="white", linewidths=1.0)
        # labelled by hand: clabel's texts belong to the contour set, which a live widget's kept axes
        # cannot clear (gradlab.livefigure), and a colorbar would make it draw a fresh figure every time
        for level, path in zip(levels, lines.get_paths()):
            if len(path.vertices):
                px, py = path.vertices[len(path.vertices) // 2]
                ax.text(px, py, f"{level:.2g}", fontsize=10, ha="center", va="center",
                        bbox=dict(boxstyle="round,pad=0.15", facecolor="white", alpha=0.8, edgecolor="none"))
    ax.contour(x, y, rho, levels=[1.0], colors="black", linewidths=1.6)
    ax.plot(heavy_ball_max_lr(y, big_l) * big_l, y, color=PALETTE[1], linestyle="--", linewidth=1.8,
            label=r"$\eta L = 2(1+\beta)$")
    lr, beta, rate = polyak_tuned(big_l, 1.0)
    ax.plot([lr * big_l], [beta], "*", color=PALETTE[1], markersize=16, markeredgecolor="black", linestyle="none",
            label=f"Polyak: rate {rate:.3g}")
    if chosen is not None:
        ax.plot([chosen[0] * big_l], [chosen[1]], "o", color="white", markersize=10, markeredgecolor="black",
                linestyle="none", label="chosen η, β")
    ax.set(xlabel=r"learning rate $\eta L$", ylabel=r"momentum $\beta$", xlim=(x[0], x[-1]), ylim=(y[0], y[-1]))
    ax.grid(False)
    ax.legend(fontsize=10, loc="lower left", framealpha=0.9)
    ax.set_title(f"rate per step, κ = {rmap.kappa:g} (grey: no convergence)")
    return ax


def plot_rate_runs(rates: MomentumRates, ax: Axes | None = None) -> Axes:
    """‖x_k‖ of the three runs (log scale), each beside a dotted line of slope its predicted rate."""
    ax = axes_or_new(ax)
    d = rates.distances.numpy()
    t = d.shape[0] - 1
    k = np.arange(t + 1)
    for i, (label, measured, predicted) in enumerate(zip(rates.labels, rates.measured.tolist(),
                                                         rates.predicted.tolist())):
        style = series_style(i)
        ok = np.isfinite(d[:, i])
        ax.semilogy(k[ok], d[ok, i].clip(FLOOR), color=style["color"], linestyle=style["linestyle"],
                    label=f"{label}: {measured:.3g}" if math.isfinite(measured) else f"{label}: diverged")
        anchor = t // 2
        if ok[anchor] and predicted > 0:  # the prediction, drawn through the run's midpoint
            ax.semilogy(k, (d[anchor, i] * predicted ** (k - anchor)).clip(FLOOR, 1e12), color=style["color"],
                        linestyle=":", linewidth=1.3)
    ax.set(xlabel="step $k$", ylabel=r"$\|x_k - x^*\|$", ylim=(max(np.nanmin(d[np.isfinite(d)]), FLOOR) / 10, 1e3))
    ax.legend(title="measured rate (dotted: predicted)", fontsize=10, title_fontsize=10, loc="lower left")
    return ax


def plot_rotation(sweep: RotationSweep, ax: Axes | None = None, angle: float | None = None) -> Axes:
    """Steps to the tolerance against the rotation angle, per optimizer; ▲ at the top: not within the budget."""
    ax = axes_or_new(ax)
    deg = np.degrees(sweep.angles.numpy())
    cap = sweep.config.max_steps
    for kind, steps in zip(sweep.labels, sweep.steps.numpy()):
        style = _style(kind)
        ax.plot(deg, steps, color=style["color"], linestyle=style["linestyle"], marker=style["marker"],
                markersize=6, label=kind)
        miss = ~np.isfinite(steps)
        ax.plot(deg[miss], np.full(miss.sum(), cap), "^", color=style["color"], markersize=9, linestyle="none")
    if angle is not None:
        ax.axvline(math.degrees(angle), color="gray", linestyle=":", linewidth=1.2)
    tol = f"{sweep.config.tol:.0e}".replace("e-0", "e-")
    ax.set(xlabel="rotation angle (degrees)", ylabel=f"steps to $f - f^* \\leq$ {tol}",
           yscale="log", xlim=(deg.min(), deg.max()), ylim=(1, cap * 2))
    ax.set_xticks(np.arange(0, 91, 15))
    ax.legend(fontsize=10, loc="lower center", ncol=3)
    return ax


def plot_rotation_paths(sweep: RotationSweep, index: int, ax: Axes | None = None) -> Axes:
    """The paths at the sweep's ``index``-th angle over that rotated quadratic's contours."""
    ax = axes_or_new(ax)
    angle = float(sweep.angles[index])
    surface = Quadratic(kappa=sweep.config.kappa, angle=angle)
    paths = [sweep.points[:, i, index] for i in range(len(sweep.labels))]
    _paths(surface, paths, [_style(k) for k in sweep.labels], sweep.labels, ax)
    ax.set_title(f"κ = {sweep.config.kappa:g}, rotated by {math.degrees(angle):.0f}°")
    return ax


def plot_adam_path(result: InsideAdam, ax: Axes | None = None) -> Axes:
    """Adam's path over the quadratic's contours, and the path of momentum SGD with lr η/ε when it is stable."""
    ax = axes_or_new(ax)
    paths, styles, labels = [result.path], [_style("Adam")], ["Adam"]
    if result.limit_path is not None:
        paths.append(result.limit_path)
        styles.append(_style("momentum"))
        labels.append(f"momentum SGD, lr η/ε = {result.limit_lr:.3g}")
    _paths(result.surface, paths, styles, labels, ax)
    ax.legend(fontsize=10, loc="lower right")
    return ax


def plot_adam_steps(result: InsideAdam, ax: Axes | None = None) -> Axes:
    """|step k| / η (largest coordinate) against k, log-log; dashed: the same for a constant gradient, ε → 0."""
    ax = axes_or_new(ax)
    c = result.config
    k = np.arange(1, len(result.step_factors) + 1)
    style = _style("Adam")
    ax.plot(k, result.step_factors.numpy(), color=style["color"], linestyle="-", label="measured")
    ax.plot(k, constant_gradient_factor(k, c.beta1, c.beta2, c.bias_correction).numpy(), color="black",
            linestyle="--", linewidth=1.3, label="constant gradient, ε → 0")
    first = result.first_predicted
    ax.plot([1], [first], "D", color=PALETTE[1], markersize=10, markeredgecolor="black", linestyle="none",
            label=f"first step predicted: {first:.3g}")
    ax.set(xscale="log", yscale="log", xlabel="step $k$", ylabel=r"$\max_i |x_{k,i} - x_{k-1,i}| \,/\, \eta$")
    ax.legend(fontsize=10, loc="lower left")
    ax.set_title("bias correction " + ("on" if c.bias_correction else "off"))
    return ax


# Experiments 5-8: real data, Adam's failure, optimizer state.

def _kind_style(kind: str) -> dict:
    """The race's style for SGD (as GD) and the others; AdamW and AMSGrad get the next two."""
    extra = ("AdamW", "AMSGrad", "SparseAdam")
    name = "GD" if kind == "SGD" else kind
    return _style(name) if name in KINDS else series_style(len(KINDS) + extra.index(kind))


def plot_decay_grid(grid: DecayGrid, index: int, ax: Axes | None = None, metric: str = "val_acc") -> Axes:
    """One optimizer's final validation accuracy (or ‖w‖, ``metric="weight_norm"``) over the (η, α) grid."""
    ax = axes_or_new(ax)
    values = getattr(grid, metric)[index].numpy()
    acc = metric == "val_acc"
    lo, hi = (0.0, 1.0) if acc else (float(np.nanmin(getattr(grid, metric))), float(np.nanmax(getattr(grid, metric))))
    norm = None if acc else mpl.colors.LogNorm(vmin=max(lo, 1e-6), vmax=max(hi, 1e-5))
    cmap = mpl.colormaps["viridis"].with_extremes(bad="0.85")
    ax.imshow(np.ma.masked_invalid(values), origin="lower", aspect="auto", cmap=cmap, interpolation="nearest",
              **({"vmin": lo, "vmax": hi} if acc else {"norm": norm}))
    for (r, c), v in np.ndenumerate(values):
        text = "—" if not np.isfinite(v) else (f"{v:.2f}" if acc else f"{v:.2g}")
        ax.text(c, r, text, ha="center", va="center", fontsize=9,
                bbox=dict(boxstyle="round,pad=0.1", facecolor="white", alpha=0.75, edgecolor="none"))
    cfg = grid.config
    ax.set_xticks(range(len(cfg.decays)), [f"{a:g}" for a in cfg.decays])
    ax.set_yticks(range(len(cfg.lrs)), [f"{lr:g}" for lr in cfg.lrs])
    ax.set(xlabel=r"weight decay $\alpha$", ylabel=r"learning rate $\eta$")
    ax.grid(False)
    ax.set_title(f"{grid.labels[index]}: " + ("validation accuracy" if acc else r"$\|w\|$ at the end"))
    return ax


def plot_sparsity(result: Sparsity, ax: Axes | None = None) -> Axes:
    """The distribution of log10 |w| for each penalty, exact zeros in a bar at the left, the threshold dotted."""
    ax = axes_or_new(ax)
    floor = -8.0
    bins = np.linspace(floor - 0.5, 1.0, 48)
    for i, label in enumerate(result.labels):
        w = result.weights[i].abs().double().numpy()
        logs = np.where(w > 0, np.log10(np.maximum(w, 1e-300)), floor - 0.25).clip(floor - 0.25, None)
        style = series_style(i)
        ax.hist(logs, bins=bins, histtype="step", color=style["color"], linestyle=style["linestyle"], linewidth=1.8,
                label=f"{label}: {100 * float(result.near_zero[i]):.1f}% below, "
                      f"{100 * float(result.exact_zero[i]):.1f}% exactly 0")
    ax.axvline(math.log10(result.config.threshold), color="gray", linestyle=":", linewidth=1.2)
    ax.set(xlabel=r"$\log_{10} |w|$ (exact zeros at the left end)", ylabel="weights", yscale="log")
    ax.legend(fontsize=9, loc="upper left")
    ax.set_title(rf"L1 against L2, $\alpha$ = {result.config.alpha:.3g}")
    return ax


def plot_lr_sweep(race: DigitsRace, ax: Axes | None = None) -> Axes:
    """Final validation loss against η for each optimizer (log-log); a star at each one's tuned η."""
    ax = axes_or_new(ax)
    sw = race.sweep
    lrs = np.array(sw.lrs)
    for kind, row, best in zip(sw.kinds, sw.val_loss.numpy(), sw.best_lrs):
        style = _kind_style(kind)
        ax.plot(lrs, row, color=style["color"], linestyle=style["linestyle"], marker=style["marker"], markersize=5,
                label=kind)
        i = list(sw.lrs).index(best)
        ax.plot([best], [row[i]], "*", color=style["color"], markersize=15, markeredgecolor="black")
    ax.set(xscale="log", yscale="log", xlabel=r"learning rate $\eta$", ylabel="validation loss at the end",
           ylim=(0.05, 5.0))
    ax.legend(fontsize=9, loc="upper center", ncol=2)
    ax.set_title("the sweep (one seed); ★ tuned η")
    return ax


def plot_digits_curves(race: DigitsRace, ax: Axes | None = None, metric: str = "loss") -> Axes:
    """Mean over seeds of the training (dashed) and validation (solid) loss or accuracy per epoch, ± 1 sd shaded."""
    ax = axes_or_new(ax)
    epochs = np.arange(race.curves.train_loss.shape[1])
    for i, kind in enumerate(race.config.kinds):
        style = _kind_style(kind)
        for split, dash in (("val", "-"), ("train", "--")):
            mean, sd = (t[i].numpy() for t in race.curve(f"{split}_{'acc' if metric == 'accuracy' else 'loss'}"))
            ax.plot(epochs, mean, color=style["color"], linestyle=dash, linewidth=1.6,
                    label=kind if split == "val" else None)
            if split == "val":
                ax.fill_between(epochs, mean - sd, mean + sd, color=style["color"], alpha=0.15, linewidth=0)
    if metric == "accuracy":
        ax.set(ylim=(0.8, 1.0), ylabel="accuracy")
    else:
        ax.set(yscale="log", ylim=(3e-3, 3.0), ylabel="cross-entropy loss")
    ax.set(xlabel="epoch", xlim=(0, epochs[-1]))
    ax.legend(fontsize=9, loc="upper right" if metric != "accuracy" else "lower right", ncol=2,
              title="solid: validation, dashed: training", title_fontsize=9)
    return ax


def plot_digits_final(race: DigitsRace, ax: Axes | None = None) -> Axes:
    """Final validation accuracy of every seed (dots) and its mean ± 1 sd (bar) per optimizer."""
    ax = axes_or_new(ax)
    kinds = race.config.kinds
    per = race.curves.val_acc[:, -1].reshape(len(kinds), -1).numpy()
    mean, sd = (t.numpy() for t in race.final("val_acc"))
    for i, kind in enumerate(kinds):
        style = _kind_style(kind)
        ax.errorbar([i], [mean[i]], yerr=[sd[i]], fmt="o", color=style["color"], markersize=9, capsize=6,
                    markeredgecolor="black")
        ax.plot(np.full(per.shape[1], i + 0.2), per[i], ".", color=style["color"], markersize=6)
    ax.set_xticks(range(len(kinds)), kinds, rotation=30)
    finite = per[np.isfinite(per)]
    low = max(0.0, float(finite.min()) - 0.01) if finite.size else 0.0
    ax.set(ylabel="validation accuracy at the end", ylim=(min(low, 0.95), 1.0))
    ax.set_title(f"{per.shape[1]} seeds: mean ± sd, and each seed")
    return ax


def plot_online_paths(run: OnlineRun, ax: Axes | None = None) -> Axes:
    """x_t of Adam and AMSGrad on Reddi et al.'s problem; the best point x* = −1 dashed."""
    ax = axes_or_new(ax)
    t = np.arange(run.x.shape[1])
    for label, x in zip(run.labels, run.x.numpy()):
        style = _kind_style(label)
        ax.plot(t, x, color=style["color"], linestyle=style["linestyle"], linewidth=1.4, label=label)
    ax.axhline(-1.0, color="black", linestyle="--", linewidth=1.2, label="best point $x^* = -1$")
    ax.set(xlabel="step $t$", ylabel="$x_t$", ylim=(-1.1, 1.1), xlim=(0, t[-1]))
    ax.legend(fontsize=9, loc="center right")
    return ax


def plot_online_regret(run: OnlineRun, ax: Axes | None = None) -> Axes:
    """The average regret R_t/t of both: it goes to 0 when a method finds x* = −1."""
    ax = axes_or_new(ax)
    t = np.arange(1, run.avg_regret.shape[1] + 1)
    for label, r in zip(run.labels, run.avg_regret.numpy()):
        style = _kind_style(label)
        ax.plot(t, r, color=style["color"], linestyle=style["linestyle"], linewidth=1.6, label=label)
    ax.set(xscale="log", xlabel="step $t$", ylabel="average regret $R_t / t$", xlim=(1, t[-1]))
    ax.legend(fontsize=9, loc="upper right")
    return ax


def plot_sparse_rows(steps: SparseSteps, index: int, ax: Axes | None = None) -> Axes:
    """Rows (x) against steps (y) for one optimizer: looked up and moved, moved without a lookup, untouched."""
    ax = axes_or_new(ax)
    looked = steps.looked_up.numpy()
    moved = steps.changed[index].numpy()
    code = np.where(moved & looked, 2, np.where(moved, 1, 0))
    cmap = mpl.colors.ListedColormap(["white", PALETTE[1], PALETTE[0]])
    ax.imshow(code, origin="upper", aspect="auto", cmap=cmap, vmin=0, vmax=2, interpolation="nearest")
    ax.set_xticks(np.arange(-0.5, code.shape[1], 1), minor=True)
    ax.set_yticks(np.arange(-0.5, code.shape[0], 1), minor=True)
    ax.grid(which="minor", color="0.8", linewidth=0.5)
    ax.grid(which="major", visible=False)
    ax.tick_params(which="minor", length=0)
    ax.set(xlabel="embedding row", ylabel="step")
    ax.set_yticks(range(code.shape[0]), [str(k + 1) for k in range(code.shape[0])])
    moved_only = int((moved & ~looked).sum())
    ax.set_title(f"{steps.labels[index]}: {moved_only} row updates without a lookup")
    from matplotlib.patches import Patch

    handles = [Patch(facecolor=PALETTE[0], label="looked up, moved"),
               Patch(facecolor=PALETTE[1], label="not looked up, moved")]
    ax.legend(handles=handles, fontsize=9, loc="lower right", framealpha=0.9)
    return ax


def plot_state_bytes(table: dict[str, StateSize], ax: Axes | None = None) -> Axes:
    """Optimizer state in bytes per parameter (read from ``state_dict()``), one bar per optimizer."""
    ax = axes_or_new(ax)
    names = list(table)
    values = [table[n].bytes_per_parameter for n in names]
    for i, (n, v) in enumerate(zip(names, values)):
        ax.bar(i, v, color=_kind_style(n)["color"], edgecolor="black")
        ax.text(i, v + 0.2, f"{v:.3g}", ha="center", va="bottom", fontsize=9)
    ax.set_xticks(range(len(names)), names, rotation=30)
    ax.set(ylabel="state bytes per parameter", ylim=(0, max(values + [1.0]) * 1.2))
    return ax


def plot_second_moment(result: SecondMoment, ax: Axes | None = None) -> Axes:
    """√ŝ of Adam at the minimizer against the data term's curvature H_ii − α, one point per weight (log-log):
    full batch, each batch size with its noise prediction √(Var(g_i)/B) as rings, and a dashed line of slope ½."""
    ax = axes_or_new(ax)
    h = result.data_curvature.double().numpy()
    batches = {b: result.sqrt_v_batch[b].double().numpy() for b in result.config.batches}
    noise = {b: result.noise_rms[b].double().numpy() for b in result.config.batches}
    positive = np.concatenate([v[v > 0] for v in (*batches.values(), *noise.values())] or [np.array([1e-4])])
    # full batch sits at the minimum, where √ŝ is 0 up to Adam's own jitter: clamp what a log axis cannot show
    floor = 1e-4 * float(positive.min())
    full = result.sqrt_v_full.double().numpy()
    low = int((full <= floor).sum())
    label = "full batch" + (f" ({low} of {len(full)} ≤ {floor:.0e}, at the floor)" if low else "")
    style = series_style(0)
    ax.plot(h, np.maximum(full, floor), style["marker"], color=style["color"], markersize=6, label=label)
    if low:
        ax.axhline(floor, color="gray", linestyle=":", linewidth=1.2)
    for i, b in enumerate(batches, start=1):
        style = series_style(i)
        ax.plot(h, batches[b], style["marker"], color=style["color"], markersize=6, label=f"batch $B$ = {b}")
        ax.plot(h, noise[b], style["marker"], color=style["color"], markersize=11, markerfacecolor="none",
                markeredgewidth=1.2, label=rf"$\sqrt{{\mathrm{{Var}}(g_i)/{b}}}$ (predicted)")
    if batches:  # through the geometric mean of the smallest batch's points
        b = min(batches)
        x = np.geomspace(h.min(), h.max(), 20)
        y0, h0 = np.exp(np.log(batches[b]).mean()), np.exp(np.log(h).mean())
        ax.plot(x, y0 * np.sqrt(x / h0), color="gray", linestyle="--", linewidth=1.4,
                label=r"slope $\frac{1}{2}$: $\propto \sqrt{H_{ii} - \alpha}$")
    ax.set(xscale="log", yscale="log", xlabel=r"curvature of the data term, $H_{ii} - \alpha$",
           ylabel=r"$\sqrt{\hat s_i}$")
    ax.legend(fontsize=9, loc="center left", bbox_to_anchor=(1.0, 0.5))
    ax.set_title(r"Adam at the minimum: $\sqrt{\hat s}$ is gradient noise, not curvature")
    return ax
