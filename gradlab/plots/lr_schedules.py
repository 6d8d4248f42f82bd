"""Plots of Chapter 4 (learning-rate schedules): the noise floor, schedules on the digits, warmup, search."""
from __future__ import annotations

import math

import numpy as np
from matplotlib.axes import Axes
from matplotlib.ticker import NullLocator

from ..scheduling.digits import PeakSweep, ScheduleRace, WarmupSweep
from ..scheduling.floor import FloorRuns
from ..scheduling.plateau_noise import PlateauNoise
from ..scheduling.range_test import RangeTest
from ..scheduling.restarts import Restarts
from ..scheduling.scaling import RULES as SCALING_RULES
from ..scheduling.scaling import Scaling
from ..scheduling.search import Landscape, SearchOdds, top_level
from ..style import PALETTE, series_style
from . import axes_or_new

__all__ = ["plot_floor_curves", "plot_floor_val", "plot_floor_sweep", "plot_schedule_lrs", "plot_schedule_curves",
           "plot_schedule_final", "plot_warmup_fraction", "plot_warmup_steps", "plot_range_sweeps",
           "plot_range_training", "plot_search_landscape", "plot_search_odds", "plot_restarts_curves",
           "plot_restarts_scores", "plot_scaling", "plot_scaling_lrs", "plot_plateau_curves", "plot_plateau_lrs",
           "plot_peak_sweep", "plot_peak_curves"]

TINY = 1e-12  # an excess loss is positive; a floor for the log axis


def plot_floor_curves(runs: FloorRuns, ax: Axes | None = None) -> Axes:
    """f − f* against the step, mean over seeds, each constant run beside its predicted floor (dotted)."""
    ax = axes_or_new(ax)
    steps = runs.steps.numpy()
    n = len(runs.config.lrs)
    for i, label in enumerate(runs.labels):
        style = series_style(i) if i < n else {"color": "black", "linestyle": "-"}
        y = np.clip(runs.excess[i].numpy(), TINY, None)
        ax.plot(steps, y, color=style["color"], linestyle=style["linestyle"], linewidth=2.2 if i == n else 1.6,
                label=label)
        if i < n and math.isfinite(float(runs.predicted[i])):
            ax.axhline(float(runs.predicted[i]), color=style["color"], linestyle=":", linewidth=1.2)
    ax.set(yscale="log", xlabel="step k", ylabel="training loss above its minimum, f − f*", xlim=(0, steps[-1]))
    finite = runs.excess[np.isfinite(runs.excess.numpy())]
    if finite.numel():
        ax.set_ylim(max(float(finite.min()) / 2, TINY), min(float(finite.max()) * 2, 1e6))
    ax.legend(fontsize=9, loc="upper right", title="dotted: predicted floor", title_fontsize=9)
    return ax


def plot_floor_val(runs: FloorRuns, ax: Axes | None = None) -> Axes:
    """The validation loss along the same runs, with the validation loss of the training minimum w* dotted."""
    ax = axes_or_new(ax)
    steps = runs.steps.numpy()
    n = len(runs.config.lrs)
    for i, label in enumerate(runs.labels):
        style = series_style(i) if i < n else {"color": "black", "linestyle": "-"}
        ax.plot(steps, runs.val_loss[i].numpy(), color=style["color"], linestyle=style["linestyle"],
                linewidth=2.2 if i == n else 1.6, label=label)
    ax.axhline(runs.val_star, color="0.4", linestyle=":", linewidth=1.4, label="at the training minimum w*")
    finite = runs.val_loss[np.isfinite(runs.val_loss.numpy())]
    top = float(finite.quantile(0.9)) if finite.numel() else 2 * runs.val_star
    ax.set(xlabel="step k", ylabel="validation loss", xlim=(0, steps[-1]),
           ylim=(runs.val_star * 0.98, max(top, runs.val_star * 1.2)))
    ax.legend(fontsize=9, loc="upper right")
    return ax


def plot_floor_sweep(runs: FloorRuns, ax: Axes | None = None, mark: float | None = None) -> Axes:
    """The measured floor against η on log–log axes, the formula, and its small-η line η tr(Σ)/4B."""
    ax = axes_or_new(ax)
    lrs = np.array(runs.config.lrs)
    measured = runs.measured.numpy()
    ok = np.isfinite(measured)
    ax.plot(lrs[ok], measured[ok], "o", color=PALETTE[0], markersize=8, label="measured (second half of the run)")
    grid = np.geomspace(lrs.min() / 1.5, min(lrs.max() * 1.5, 1.99 / runs.task.lam_max), 200)
    from ..scheduling.floor import predicted_floor

    ax.plot(grid, [predicted_floor(runs.task, float(g), runs.config.batch_size) for g in grid], color=PALETTE[1],
            linewidth=1.8, label="formula (η/2B) Σ Σᵢᵢ/(2 − ηλᵢ)")
    small = float(runs.task.noise_diag.sum()) / (4 * runs.config.batch_size)
    ax.plot(grid, small * grid, color="0.4", linestyle="--", linewidth=1.2, label="small η: η tr(Σ)/4B")
    ax.axvline(2 / runs.task.lam_max, color="0.3", linestyle=":", linewidth=1.2)
    ax.annotate("2/λ_max", (2 / runs.task.lam_max, 0.02), xycoords=("data", "axes fraction"), rotation=90,
                ha="right", va="bottom", fontsize=9, color="0.3")
    if mark is not None and mark < 2 / runs.task.lam_max:
        ax.plot([mark], [predicted_floor(runs.task, mark, runs.config.batch_size)], "*", color="black",
                markersize=14, label=f"chosen η = {mark:g}")
    ax.set(xscale="log", yscale="log", xlabel="learning rate η", ylabel="floor: mean f − f*",
           title=f"B = {runs.config.batch_size}")
    ax.legend(fontsize=9, loc="upper left")
    return ax


def plot_schedule_lrs(race: ScheduleRace, ax: Axes | None = None, momentum: bool = True) -> Axes:
    """η_k of each schedule of a race, as PyTorch's scheduler set it during training (first seed's copy)."""
    ax = axes_or_new(ax)
    steps = np.arange(race.curves.step_lr.shape[1])
    for i, name in enumerate(race.config.names):
        style = series_style(i)
        ax.plot(steps, race.curves.step_lr[i * race.config.seeds].numpy(), color=style["color"],
                linestyle=style["linestyle"], linewidth=1.8, label=name)
    ax.set(xlabel="update k", ylabel=r"learning rate $\eta_k$", xlim=(0, steps[-1]))
    ax.set_ylim(0, race.config.lr * 1.08)
    ax.legend(fontsize=9, loc="upper right")
    return ax


def plot_schedule_curves(race: ScheduleRace, ax: Axes | None = None) -> Axes:
    """Training (dashed) and validation (solid) loss per epoch, mean over seeds, for each schedule."""
    ax = axes_or_new(ax)
    epochs = np.arange(race.curves.val_loss.shape[1])
    for i, name in enumerate(race.config.names):
        style = series_style(i)
        for split, dash in (("val_loss", "-"), ("train_loss", "--")):
            mean = race.per_schedule(getattr(race.curves, split)).mean(1)[i].numpy()
            ax.plot(epochs, np.clip(mean, 1e-4, None), color=style["color"], linestyle=dash, linewidth=1.6,
                    label=name if split == "val_loss" else None)
    ax.set(yscale="log", xlabel="epoch", ylabel="cross-entropy loss", xlim=(0, epochs[-1]), ylim=(1e-3, 5.0))
    ax.legend(fontsize=9, loc="lower left", title="solid: validation, dashed: training", title_fontsize=9)
    return ax


def plot_schedule_final(race: ScheduleRace, ax: Axes | None = None) -> Axes:
    """Final validation loss of every seed (dots) and the mean (bar) per schedule, within the same budget."""
    ax = axes_or_new(ax)
    per = race.per_schedule(race.curves.val_loss[:, -1]).numpy()
    for i, name in enumerate(race.config.names):
        style = series_style(i)
        vals = np.where(np.isfinite(per[i]), per[i], np.nan)
        if np.isfinite(vals).any():
            ax.bar([i], [np.nanmean(vals)], color=style["color"], alpha=0.35)
        ax.plot(np.full(len(vals), i), vals, "o", color=style["color"], markersize=6)
        if not np.isfinite(per[i]).all():
            ax.annotate("diverged", (i, 0.02), xycoords=("data", "axes fraction"), ha="center", fontsize=9,
                        rotation=90)
    ax.set_xticks(range(len(race.config.names)), race.config.names, rotation=30, ha="right")
    ax.set(ylabel="final validation loss", yscale="log")
    return ax


def plot_warmup_fraction(sweep: WarmupSweep, ax: Axes | None = None) -> Axes:
    """The fraction of seeds that failed against T_w, with a binomial standard error; the early spike above."""
    ax = axes_or_new(ax)
    tw = list(sweep.config.warmups)
    x = np.arange(len(tw))
    frac = sweep.fraction.numpy()
    se = np.sqrt(frac * (1 - frac) / sweep.config.seeds)
    ax.bar(x, frac, yerr=se, color=PALETTE[0], alpha=0.7, capsize=6, label="failed (diverged or at chance)")
    ax.set(xticks=x, xticklabels=[str(t) for t in tw], xlabel=r"warmup length $T_{\mathrm{w}}$ (updates)",
           ylabel="fraction of seeds that failed", ylim=(0, 1.25))
    # the early spike, written above each bar (a second y axis would not survive the live figure's reuse)
    for xi, p in zip(x, sweep.early_peak.median(1).values.tolist()):
        text = f"{p:.3g}" if math.isfinite(p) else "inf"
        ax.annotate(f"peak loss\n{text}", (xi, 1.08), ha="center", va="center", fontsize=9, color=PALETTE[1])
    ax.legend(fontsize=9, loc="lower left", framealpha=0.9)
    ax.set_title(f"median largest loss in the first {sweep.config.early} updates above each bar", fontsize=10)
    return ax


def plot_warmup_steps(sweep: WarmupSweep, ax: Axes | None = None) -> Axes:
    """The mini-batch loss of the first updates (median over seeds) for each warmup length."""
    ax = axes_or_new(ax)
    k = min(sweep.curves.step_loss.shape[1], 4 * sweep.config.early)
    for i, tw in enumerate(sweep.config.warmups):
        style = series_style(i)
        loss = sweep.curves.step_loss[i * sweep.config.seeds:(i + 1) * sweep.config.seeds, :k]
        med = np.clip(np.nan_to_num(loss.median(0).values.numpy(), nan=1e6, posinf=1e6), 1e-3, 1e6)
        ax.plot(np.arange(k), med, color=style["color"], linestyle=style["linestyle"], linewidth=1.6,
                label=f"T_w = {tw}")
    ax.axhline(math.log(10), color="0.4", linestyle=":", linewidth=1.2, label="chance, ln 10")
    ax.set(yscale="log", xlabel="update k", ylabel="mini-batch loss (median over seeds)", xlim=(0, k - 1))
    ax.legend(fontsize=9, loc="upper right")
    return ax


def plot_range_sweeps(test: RangeTest, ax: Axes | None = None) -> Axes:
    """Each seed's raw (faint) and smoothed loss against η on a log axis, its suggestion as a dot, η_max dashed."""
    ax = axes_or_new(ax)
    for i, (sweep, pick_) in enumerate(zip(test.sweeps, test.suggestions)):
        style = series_style(i)
        lrs = np.array(sweep.lrs)
        raw = np.clip(np.nan_to_num(np.array(sweep.losses), nan=1e3, posinf=1e3), 1e-3, 1e3)
        ax.plot(lrs, raw, color=style["color"], alpha=0.25, linewidth=1.0)
        ax.plot(lrs, sweep.smoothed, color=style["color"], linewidth=1.8, label=f"seed {i}")
        if math.isfinite(pick_):
            ax.plot([pick_], [np.interp(np.log(pick_), np.log(lrs), sweep.smoothed)], "o", color=style["color"],
                    markersize=9, markeredgecolor="black")
    ax.axvline(test.peak, color="black", linestyle="--", linewidth=1.4, label=f"median: η_max = {test.peak:.3g}")
    ax.set(xscale="log", xlabel="learning rate η (grows every mini-batch)", ylabel="loss", ylim=(0, 4.5),
           title=f"rule: {test.config.rule}, spread ×{test.spread:.2g} between seeds")
    ax.legend(fontsize=9, loc="upper left")
    return ax


def plot_range_training(test: RangeTest, ax: Axes | None = None) -> Axes:
    """Training (dashed) and validation (solid) loss per epoch of one-cycle and the two constant rates."""
    ax = axes_or_new(ax)
    n = test.config.train_seeds
    epochs = np.arange(test.curves.val_loss.shape[1])
    for i, label in enumerate(test.labels):
        style = series_style(i)
        for split, dash in (("val_loss", "-"), ("train_loss", "--")):
            mean = getattr(test.curves, split)[i * n:(i + 1) * n].mean(0).numpy()
            ax.plot(epochs, np.clip(mean, 1e-4, None), color=style["color"], linestyle=dash, linewidth=1.6,
                    label=label if split == "val_loss" else None)
    ax.set(yscale="log", xlabel="epoch", ylabel="cross-entropy loss", xlim=(0, epochs[-1]), ylim=(1e-3, 5.0))
    ax.legend(fontsize=9, loc="lower left", title="solid: validation, dashed: training", title_fontsize=9)
    return ax


def plot_search_landscape(land: Landscape, ax: Axes | None = None, n: int = 16, fraction: float = 0.05,
                          seed: int = 0) -> Axes:
    """The validation loss over (log η, log α), its best ``fraction`` outlined, one grid and one random search."""
    ax = axes_or_new(ax)
    lo, hi = np.log10(land.config.lr_range)
    a_lo, a_hi = np.log10(land.config.decay_range)
    shown = np.log10(np.minimum(land.val_loss, 10.0)).T
    ax.imshow(shown, origin="lower", aspect="auto", extent=(lo, hi, a_lo, a_hi), cmap="viridis_r")
    level = top_level(land, fraction)
    ax.contour(np.log10(land.lrs), np.log10(land.decays), land.val_loss.T, levels=[level], colors="white",
               linewidths=2.0)
    m = math.isqrt(n)
    rng = np.random.default_rng(seed)
    ticks = (np.arange(m) + 0.5) / m
    gx, gy = np.meshgrid(ticks, ticks)
    ax.plot(lo + gx.ravel() * (hi - lo), a_lo + gy.ravel() * (a_hi - a_lo), "s", color="white",
            markeredgecolor="black", markersize=8, label=f"grid, {m} × {m}")
    rx, ry = rng.random(n), rng.random(n)
    ax.plot(lo + rx * (hi - lo), a_lo + ry * (a_hi - a_lo), "o", color=PALETTE[1], markeredgecolor="black",
            markersize=7, label=f"random, {n}")
    ax.set(xlabel="log10 learning rate η", ylabel="log10 weight decay α", xlim=(lo, hi), ylim=(a_lo, a_hi))
    ax.set_title("validation loss: yellow low, dark high", fontsize=10)  # no colorbar: the live figure is reused
    ax.legend(fontsize=9, loc="upper left", title=f"white line: best {100 * fraction:g}%", title_fontsize=9)
    return ax


def plot_search_odds(odds: SearchOdds, ax: Axes | None = None, other: SearchOdds | None = None) -> Axes:
    """The chance that the best of n trials is in the top fraction, grid against random, and the formula."""
    ax = axes_or_new(ax)
    ax.plot(odds.ns, odds.formula, color="0.4", linestyle="--", linewidth=1.4, label="formula 1 − (1 − p)ⁿ")
    ax.plot(odds.ns, odds.random, "o-", color=PALETTE[1], linewidth=1.8, label="random search (log-uniform η)")
    ax.plot(odds.ns, odds.grid, "s-", color=PALETTE[0], linewidth=1.8, label="grid search")
    if other is not None:
        ax.plot(other.ns, other.random, "^:", color=PALETTE[2], linewidth=1.6, label="random search (uniform η)")
    ax.set(xlabel="number of trials n", ylabel=f"P(best trial in the top {100 * odds.fraction:g}%)", ylim=(0, 1.02),
           xlim=(0, odds.ns[-1] + 1))
    ax.legend(fontsize=9, loc="lower right")
    return ax


def plot_restarts_curves(result: Restarts, ax: Axes | None = None) -> Axes:
    """Training (dashed) and validation (solid) loss per epoch of SGDR and one cosine; snapshots marked."""
    ax = axes_or_new(ax)
    n = result.config.seeds
    epochs = np.arange(result.curves.val_loss.shape[1])
    for i, label in enumerate(("SGDR (warm restarts)", "one cosine")):
        style = series_style(i)
        for split, dash in (("val_loss", "-"), ("train_loss", "--")):
            mean = getattr(result.curves, split)[i * n:(i + 1) * n].mean(0).numpy()
            ax.plot(epochs, np.clip(mean, 1e-4, None), color=style["color"], linestyle=dash, linewidth=1.6,
                    label=label if split == "val_loss" else None)
    for k, e in enumerate(result.snapshot_epochs):
        ax.axvline(e, color="0.5", linestyle=":", linewidth=1.2, label="snapshot (end of a cycle)" if k == 0 else None)
    ax.set(yscale="log", xlabel="epoch", ylabel="cross-entropy loss", xlim=(0, epochs[-1]), ylim=(1e-3, 5.0))
    ax.legend(fontsize=9, loc="lower left", title="solid: validation, dashed: training", title_fontsize=9)
    return ax


def plot_restarts_scores(result: Restarts, ax: Axes | None = None) -> Axes:
    """Validation loss of each snapshot, of their ensemble, and of one cosine's final weights (dots: seeds)."""
    ax = axes_or_new(ax)
    columns = [(f"snapshot {k + 1}\n(epoch {e})", result.snapshot_loss[:, k]) for k, e in
               enumerate(result.snapshot_epochs)]
    columns += [("ensemble of\nsnapshots", result.ensemble_loss), ("one cosine", result.final_loss[1])]
    for i, (label, values) in enumerate(columns):
        color = PALETTE[0] if i < len(result.snapshot_epochs) else (PALETTE[2] if i == len(columns) - 2 else PALETTE[1])
        v = values.numpy()
        ok = np.isfinite(v)
        if ok.any():
            ax.bar([i], [v[ok].mean()], color=color, alpha=0.4)
        ax.plot(np.full(ok.sum(), i), v[ok], "o", color=color, markersize=6)
    ax.set_xticks(range(len(columns)), [c[0] for c in columns], fontsize=9)
    ax.set(ylabel="validation loss", yscale="log")
    return ax


def plot_scaling(result: Scaling, ax: Axes | None = None) -> Axes:
    """Final validation (solid) and training (dashed) loss against the batch size, for each scaling rule."""
    ax = axes_or_new(ax)
    b = np.array(result.config.batch_sizes)
    for i, rule in enumerate(SCALING_RULES):
        style = series_style(i)
        ax.plot(b, result.val_loss[i].numpy(), color=style["color"], marker=style["marker"], linewidth=1.8,
                markersize=7, label=f"η scaled: {rule}")
        ax.plot(b, result.train_loss[i].numpy(), color=style["color"], linestyle="--", linewidth=1.2)
        for bj, v in zip(b, result.val_loss[i].numpy()):
            if not np.isfinite(v):
                ax.annotate("×", (bj, 0.97), xycoords=("data", "axes fraction"), ha="center", color=style["color"],
                            fontsize=14)
    ax.axvline(result.config.base_batch, color="0.5", linestyle=":", linewidth=1.2)
    ax.set(xscale="log", yscale="log", xlabel=f"batch size B (η₀ set at B₀ = {result.config.base_batch})",
           ylabel="final loss (solid: validation, dashed: training)")
    ax.set_xticks(b, [str(x) for x in b])
    ax.xaxis.set_minor_locator(NullLocator())
    ax.legend(fontsize=9, loc="upper left", title=f"{result.config.epochs} epochs for every B; × diverged",
              title_fontsize=9)
    return ax


def plot_scaling_lrs(result: Scaling, ax: Axes | None = None) -> Axes:
    """The learning rate each rule gives each batch size, and the number of updates the budget allows."""
    ax = axes_or_new(ax)
    b = np.array(result.config.batch_sizes)
    for i, rule in enumerate(SCALING_RULES):
        style = series_style(i)
        ax.plot(b, result.lrs[i].numpy(), color=style["color"], marker=style["marker"], linewidth=1.8, label=rule)
    for bj, u in zip(b, result.updates):
        ax.annotate(f"{u}", (bj, 0.03), xycoords=("data", "axes fraction"), ha="center", fontsize=9, color="0.3")
    ax.set(xscale="log", yscale="log", xlabel="batch size B (numbers: updates in the run)", ylabel="learning rate η")
    ax.set_xticks(b, [str(x) for x in b])
    ax.xaxis.set_minor_locator(NullLocator())
    ax.legend(fontsize=9, loc="upper left")
    return ax


def plot_plateau_curves(result: PlateauNoise, ax: Axes | None = None, seed: int = 0) -> Axes:
    """One seed's monitored (dots) and reference (solid) validation loss, its training loss (dashed), and the
    epochs after which ReduceLROnPlateau cut η: red where the reference was still improving (noise)."""
    ax = axes_or_new(ax)
    epochs = np.arange(1, result.monitored.shape[1] + 1)
    ax.plot(epochs, result.monitored[seed].numpy(), "o", color=PALETTE[0], markersize=4, alpha=0.7,
            label=f"monitored: {result.config.monitor} random validation examples")
    ax.plot(epochs, result.reference[seed].numpy(), color=PALETTE[0], linewidth=2.0, label="whole validation set")
    ax.plot(np.arange(result.curves.train_loss.shape[1]), result.curves.train_loss[seed].numpy(), color="0.4",
            linestyle="--", linewidth=1.4, label="training loss")
    false = set(result.false[seed])
    for k, e in enumerate(result.reductions[seed]):
        noise = e in false
        ax.axvline(e + 1, color="#c0392b" if noise else "0.3", linestyle="-" if noise else ":", linewidth=1.4)
    ax.set(yscale="log", xlabel="epoch", ylabel="cross-entropy loss", xlim=(0, epochs[-1] + 0.5),
           title=f"seed {seed}: η cut after the lines (red: the whole set was still improving)")
    ax.title.set_fontsize(10)
    ax.legend(fontsize=9, loc="upper right")
    return ax


def plot_plateau_lrs(result: PlateauNoise, ax: Axes | None = None) -> Axes:
    """η after each epoch for every seed, as ReduceLROnPlateau decides on the monitored curve."""
    ax = axes_or_new(ax)
    for s, trace in enumerate(result.lrs):
        style = series_style(s)
        ax.step(np.arange(1, len(trace) + 1), trace, where="post", color=style["color"],
                linestyle=style["linestyle"], linewidth=1.6, label=f"seed {s}")
    total, noise = result.counts
    rule = result.config.plateau
    ax.annotate(f"patience {rule.patience}, factor γ = {rule.factor:g}, threshold {100 * rule.threshold:g}%,\n"
                f"{result.config.monitor} examples per check", (0.98, 0.97), xycoords="axes fraction", ha="right",
                va="top", fontsize=9, color="0.3")
    ax.set(yscale="log", xlabel="epoch", ylabel="learning rate η",
           title=f"{total} cuts over {len(result.lrs)} seeds, {noise} by noise (replayed on a constant-η run)")
    ax.title.set_fontsize(10)
    ax.legend(fontsize=9, loc="lower left")
    return ax


def plot_peak_sweep(sweep: PeakSweep, ax: Axes | None = None) -> Axes:
    """Final validation loss against the peak η for each schedule: dots per seed, a line through the means."""
    ax = axes_or_new(ax)
    final = sweep.final().numpy()
    peaks = np.array(sweep.config.peaks)
    for j, name in enumerate(sweep.config.names):
        style = series_style(j)
        vals = np.where(np.isfinite(final[:, j]), final[:, j], np.nan)
        ax.plot(peaks, np.nanmean(vals, 1), color=style["color"], linestyle=style["linestyle"], marker=style["marker"],
                linewidth=1.8, markersize=8, label=name)
        for i, p in enumerate(peaks):
            ax.plot(np.full(vals.shape[1], p), vals[i], ".", color=style["color"], alpha=0.6)
    ax.set(xscale="log", yscale="log", xlabel=r"peak learning rate $\eta_{\max}$",
           ylabel="final validation loss", title=f"{sweep.config.kind}, {sweep.config.mlp.epochs} epochs")
    ax.legend(fontsize=9, loc="upper center")
    return ax


def plot_peak_curves(sweep: PeakSweep, ax: Axes | None = None, peak_index: int = -1) -> Axes:
    """Training (dashed) and validation (solid) loss per epoch at one peak, for each schedule (mean of seeds)."""
    ax = axes_or_new(ax)
    c = sweep.config
    i = peak_index % len(c.peaks)
    epochs = np.arange(sweep.curves.val_loss.shape[1])
    for j, name in enumerate(c.names):
        style = series_style(j)
        start = (i * len(c.names) + j) * c.seeds
        for split, dash in (("val_loss", "-"), ("train_loss", "--")):
            mean = getattr(sweep.curves, split)[start:start + c.seeds].mean(0).numpy()
            ax.plot(epochs, np.clip(mean, 1e-4, None), color=style["color"], linestyle=dash, linewidth=1.6,
                    label=name if split == "val_loss" else None)
    ax.set(yscale="log", xlabel="epoch", ylabel="cross-entropy loss", xlim=(0, epochs[-1]), ylim=(1e-3, 5.0),
           title=f"at η_max = {c.peaks[i]:g}")
    ax.legend(fontsize=9, loc="lower left", title="solid: validation, dashed: training", title_fontsize=9)
    return ax
