"""Chapter 4's widgets: the noise floor, schedules on the digits, warmup, and search."""
from __future__ import annotations

import functools
import math
from types import SimpleNamespace

from ..interact import Experiment, choice, compact, int_slider, log_slider, slider
from ..modes import pick
from ..plots import lr_schedules as P
from ..batched_mlp import MLPConfig
from ..scheduling.digits import (SCHEDULES, PeakSweepConfig, ScheduleRaceConfig, WarmupConfig, peak_sweep,
                                 schedule_race, warmup_sweep)
from ..scheduling.floor import DECAYS, FloorConfig, floor_runs
from ..plateau import Plateau
from ..scheduling.plateau_noise import PlateauNoiseConfig, plateau_noise
from ..scheduling.range_test import RULES, RangeTestConfig, range_test
from ..scheduling.restarts import RestartsConfig, restarts
from ..scheduling.scaling import ScalingConfig, scaling
from ..scheduling.search import LandscapeConfig, landscape, search_odds
from . import register

# Every run here is a small least-squares problem or a small MLP: on the CPU, a GPU would only add launches.


@functools.lru_cache(maxsize=8)
def _floor_sweep(batch_size: int, steps: int):
    """The floor against η does not depend on the chosen η or decay: trained once per (B, steps)."""
    lrs = pick((0.01, 0.02, 0.04, 0.08, 0.16, 0.32), (0.02, 0.08, 0.32))
    return floor_runs(FloorConfig(lrs=lrs, batch_size=batch_size, steps=steps, seeds=pick(8, 2)))


@register("ch04.noise_floor")
def noise_floor() -> Experiment:
    """Constant η against a decaying η on noisy least squares, and the floor measured against its formula."""

    def compute(v, progress):
        b, steps = int(v["batch_size"]), int(v["steps"])
        sweep = _floor_sweep(b, steps)
        progress(0.5)
        pair = floor_runs(FloorConfig(lrs=(float(v["lr"]),), batch_size=b, steps=steps, decay=v["decay"],
                                      seeds=pick(8, 2)), progress=lambda f: progress(0.5 + 0.5 * f))
        return SimpleNamespace(pair=pair, sweep=sweep, lr=float(v["lr"]), diverged_at=pair.diverged_at,
                               diverged_run=pair.diverged_run)

    def plot(result, fig):
        left, middle, right = fig.subplots(1, 3)
        P.plot_floor_curves(result.pair, left)
        left.set_title("training")
        P.plot_floor_val(result.pair, middle)
        middle.set_title("validation")
        P.plot_floor_sweep(result.sweep, right, mark=result.lr)

    def describe(result) -> str:
        p = result.pair
        const, decayed = float(p.excess[0, -1]), float(p.excess[1, -1])
        if not (math.isfinite(const) and math.isfinite(decayed)):
            return f"η = {compact(result.lr)} is above the edge of stability 2/λ_max = {2 / p.task.lam_max:.3g}."
        return (f"Final f − f*: constant η {compact(const)} (floor predicted {compact(float(p.predicted[0]))}, "
                f"measured {compact(float(p.measured[0]))}); {p.config.decay} decay {compact(decayed)}. "
                f"Final validation loss: {float(p.val_loss[0, -1]):.4f} against {float(p.val_loss[1, -1]):.4f}.")

    return Experiment(
        "The noise floor: constant against decaying η",
        [log_slider("lr", "η (constant run; peak of the decaying run)", 0.16, 0.01, 1.0, grid=(0.04, 0.16)),
         int_slider("batch_size", "batch size B", 4, 1, 64, grid=(4, 16)),
         choice("decay", "decaying run", [(d, d) for d in DECAYS]),
         int_slider("steps", "steps", pick(3000, 300), 100, pick(6000, 600), 100)],
        compute=compute, plot=plot, trains=True, figsize=(15.0, 4.6), describe=describe,
        alt=("Three panels on noisy least squares. Left: the training loss above its minimum against the step, on "
             "a log scale, for SGD with the chosen constant learning rate, which levels off at a floor drawn "
             "dotted, and for a decaying learning rate from the same peak, which keeps falling below it. Middle: "
             "the validation loss of the same two runs, with the validation loss of the training minimum dotted. "
             "Right: the floor measured for six learning rates against the learning rate on log-log axes, on the "
             "formula's curve, a dashed straight line of slope one for small learning rates, the edge 2/λ_max "
             "dotted and the chosen learning rate as a star."),
    )


@register("ch04.designer")
def schedule_designer() -> Experiment:
    """One schedule against a constant η at the same peak, on the digits MLP, within a fixed budget of epochs."""

    def compute(v, progress):
        names = ("constant", v["schedule"]) if v["schedule"] != "constant" else ("constant",)
        mlp = MLPConfig(hidden=pick(32, 16), epochs=int(v["epochs"]), batch_size=64)
        cfg = ScheduleRaceConfig(names=names, kind=v["optimizer"], lr=float(v["lr"]), seeds=pick(3, 2), mlp=mlp)
        return schedule_race(cfg, progress=progress)

    def plot(race, fig):
        left, middle, right = fig.subplots(1, 3, gridspec_kw={"width_ratios": [1.1, 1.1, 0.7]})
        P.plot_schedule_lrs(race, left)
        P.plot_schedule_curves(race, middle)
        P.plot_schedule_final(race, right)

    def describe(race) -> str:
        loss, _ = race.final("val_loss")
        acc, _ = race.final("val_acc")
        parts = [f"{n}: {float(l):.3f} ({100 * float(a):.1f}%)" for n, l, a in zip(race.config.names, loss, acc)]
        return f"Final validation loss (accuracy), mean of {race.config.seeds} seeds: " + "; ".join(parts) + "."

    return Experiment(
        "Schedule designer",
        [choice("schedule", "schedule", [(n, n) for n in SCHEDULES if n != "constant"]),
         choice("optimizer", "optimizer", [("SGD + momentum", "momentum"), ("Adam", "Adam")], grid=False),
         log_slider("lr", "peak learning rate η_max", 0.3, 1e-3, 3.0, grid=(0.1, 0.3)),
         int_slider("epochs", "budget (epochs)", pick(15, 3), 1, pick(40, 4))],
        compute=compute, plot=plot, trains=True, figsize=(15.0, 4.6), describe=describe,
        alt=("Three panels for a small network on the digits. Left: the learning rate against the update for a "
             "constant rate and the chosen schedule at the same peak. Middle: the training (dashed) and "
             "validation (solid) loss per epoch for both, on a log scale. Right: each seed's final validation "
             "loss as a dot and their mean as a bar, for both."),
    )


@register("ch04.warmup")
def warmup() -> Experiment:
    """Adam (or SGD) at a large η on a deeper MLP: failures and the early loss spike against the warmup length."""

    def compute(v, progress):
        mlp = MLPConfig(hidden=pick(48, 16), epochs=pick(5, 2), batch_size=32, depth=int(v["depth"]))
        warmups = pick((0, 10, 50, 150), (0, 10, 40))
        cfg = WarmupConfig(warmups=warmups, lr=float(v["lr"]), seeds=pick(8, 2), kind=v["optimizer"], mlp=mlp)
        return warmup_sweep(cfg, progress=progress)

    def plot(sweep, fig):
        left, right = fig.subplots(1, 2)
        P.plot_warmup_fraction(sweep, left)
        P.plot_warmup_steps(sweep, right)

    def describe(sweep) -> str:
        parts = [f"T_w = {tw}: {int(f.sum())}/{sweep.config.seeds} failed, early peak loss "
                 f"{compact(float(p.median()))}" for tw, f, p in zip(sweep.config.warmups, sweep.failed,
                                                                      sweep.early_peak)]
        return "; ".join(parts) + "."

    return Experiment(
        "Warmup: failures and the first steps",
        [choice("optimizer", "optimizer", [("Adam", "Adam"), ("SGD + momentum", "momentum")], grid=False),
         log_slider("lr", "learning rate η (after warmup)", 0.04, 1e-3, 1.0, grid=(0.01, 0.04, 0.1)),
         int_slider("depth", "hidden layers", 6, 1, pick(10, 6), grid=(2, 6))],
        compute=compute, plot=plot, trains=True, figsize=(12.0, 4.6), describe=describe,
        alt=("Two panels for a deeper network on the digits trained at one large learning rate, with linear warmup "
             "of several lengths. Left: bars of the fraction of seeds that failed (diverged or ended no better "
             "than chance) for each warmup length, with error bars, and above each bar the median of the largest "
             "loss in the first updates. Right: the median mini-batch loss of the first updates for each warmup "
             "length, with the loss of guessing, ln 10, dotted."),
    )


@register("ch04.range_test")
def range_test_widget() -> Experiment:
    """The range test on the digits MLP for several seeds; one-cycle at the median suggestion against constant η."""

    def compute(v, progress):
        mlp = MLPConfig(hidden=pick(32, 16), epochs=pick(10, 2), batch_size=64)
        cfg = RangeTestConfig(seeds=int(v["seeds"]), steps=int(v["steps"]), smoothing=float(v["smoothing"]),
                              rule=v["rule"], train_seeds=pick(3, 1), mlp=mlp)
        return range_test(cfg, progress=progress)

    def plot(test, fig):
        left, right = fig.subplots(1, 2)
        P.plot_range_sweeps(test, left)
        P.plot_range_training(test, right)

    def describe(test) -> str:
        picks = ", ".join(f"{s:.3g}" if math.isfinite(s) else "none" for s in test.suggestions)
        finals = "; ".join(f"{label} {float(v):.3f}" for label, v in zip(test.labels, test.final()))
        return (f"Suggestions per seed: {picks} (spread ×{test.spread:.2g}); η_max = {test.peak:.3g}. "
                f"Final validation loss: {finals}.")

    return Experiment(
        "The learning-rate range test, then one-cycle",
        [choice("rule", "suggestion rule", [(r, r) for r in RULES]),
         int_slider("seeds", "seeds", pick(5, 2), 1, pick(8, 3)),
         int_slider("steps", "sweep steps", 100, 20, pick(300, 120)),
         slider("smoothing", "smoothing", 0.98, 0.0, 0.995, 0.005, grid=(0.9, 0.98))],
        compute=compute, plot=plot, trains=True, figsize=(13.0, 4.8), describe=describe,
        alt=("Two panels for a small network on the digits. Left: for each seed, the raw (faint) and smoothed "
             "loss against a learning rate that grows every mini-batch, on a log axis: flat, then falling, then "
             "blowing up; each seed's suggested rate is a dot and their median a dashed vertical line. Right: "
             "the training (dashed) and validation (solid) loss per epoch of one-cycle at the median suggestion, "
             "a constant rate at it, and a constant rate ten times smaller."),
    )


def _landscape():
    return landscape(LandscapeConfig(n_lr=pick(24, 12), n_decay=pick(8, 4),
                                     mlp=MLPConfig(hidden=pick(32, 12), epochs=pick(8, 1), batch_size=64)))


@register("ch04.search")
def search() -> Experiment:
    """Grid against random search for η and a weight decay, on a measured landscape of the digits MLP."""

    def compute(v, progress):
        land = _landscape()
        fraction = float(v["fraction"])
        odds = search_odds(land, fraction, draws=pick(1000, 200))
        other = search_odds(land, fraction, draws=pick(1000, 200), lr_sampling="linear") \
            if v["uniform"] == "shown" else None
        return SimpleNamespace(land=land, odds=odds, other=other, n=int(v["n"]), fraction=fraction)

    def plot(result, fig):
        left, right = fig.subplots(1, 2)
        P.plot_search_landscape(result.land, left, n=result.n, fraction=result.fraction)
        P.plot_search_odds(result.odds, right, other=result.other)

    def describe(result) -> str:
        o = result.odds
        i = list(o.ns).index(result.n)
        return (f"With n = {result.n} trials: grid {o.grid[i]:.2f}, random {o.random[i]:.2f} (formula "
                f"{o.formula[i]:.2f}) chance of a trial in the best {100 * o.fraction:g}%; the grid tests "
                f"{o.distinct_lrs[i]} values of η, random search {result.n}.")

    return Experiment(
        "Grid against random search",
        [log_slider("fraction", "top fraction p", 0.05, 0.01, 0.3, grid=(0.02, 0.05, 0.1)),
         choice("n", "trials n in the example", [(str(n), n) for n in (4, 9, 16, 25, 36, 49, 64)], default=16,
                grid=(9, 25)),
         choice("uniform", "random search with uniform η", [("hidden", "hidden"), ("shown", "shown")])],
        compute=compute, plot=plot, trains=False, figsize=(13.0, 4.8), describe=describe,
        alt=("Two panels. Left: a heat map of a small network's validation loss on the digits over the log of "
             "the learning rate (horizontal) and of the weight decay (vertical), the best fraction of it "
             "outlined in white: a band that is narrow in the learning rate and wide in the weight decay; over "
             "it, the points of one grid search (squares) and one random search (circles) with the same number "
             "of trials. Right: the chance that the best of n trials lands in the outlined region against n, "
             "for grid search, for random search with log-uniform learning rates, on its formula, and optionally "
             "for random search with uniform learning rates."),
    )


@register("ch04.restarts")
def warm_restarts() -> Experiment:
    """SGDR's cycles and the ensemble of the snapshots taken before each restart, against one cosine."""

    def compute(v, progress):
        t0, mult = int(v["T_0"]), int(v["T_mult"])
        epochs = pick(21, 3) if (t0, mult) == (3, 2) else pick(t0 * (1 + mult + mult**2), 3 * t0)
        cfg = RestartsConfig(T_0=t0, T_mult=mult, epochs=min(epochs, pick(42, 6)), lr=float(v["lr"]),
                             seeds=pick(3, 1), hidden=pick(32, 12))
        return restarts(cfg, progress=progress)

    def plot(result, fig):
        left, right = fig.subplots(1, 2, gridspec_kw={"width_ratios": [1.2, 1.0]})
        P.plot_restarts_curves(result, left)
        P.plot_restarts_scores(result, right)

    def describe(result) -> str:
        snaps = ", ".join(f"{float(x):.3f}" for x in result.snapshot_loss.mean(0))
        return (f"Validation loss: snapshots {snaps}; their ensemble {float(result.ensemble_loss.mean()):.3f}; "
                f"one cosine {float(result.final_loss[1].mean()):.3f} (accuracy: ensemble "
                f"{100 * float(result.ensemble_acc.mean()):.1f}%, cosine {100 * float(result.final_acc[1].mean()):.1f}%).")

    return Experiment(
        "Warm restarts and snapshot ensembles",
        [log_slider("lr", "peak learning rate η_max", 0.2, 0.01, 1.0, grid=(0.1, 0.4)),
         int_slider("T_0", "first period T_0 (epochs)", 3, 1, pick(8, 3)),
         int_slider("T_mult", "period growth T_mult", 2, 1, 3, grid=(1, 2))],
        compute=compute, plot=plot, trains=True, figsize=(13.0, 4.8), describe=describe,
        alt=("Two panels for a small network on the digits. Left: training (dashed) and validation (solid) loss "
             "per epoch for warm restarts, whose loss jumps up at each restart, and for one cosine over the same "
             "budget, with the end of each cycle, where a snapshot is taken, dotted. Right: bars of the validation "
             "loss of each snapshot, of the ensemble that averages their predictions, and of the single cosine "
             "run, with one dot per seed."),
    )


ADAM_SHARE = 16  # Adam's η₀ is the slider's η₀ divided by this: 0.05 / 16 ≈ 0.003, near Adam's best at B₀ = 32


@register("ch04.scaling")
def linear_scaling() -> Experiment:
    """Batch size against η scaled linearly, by the square root or not at all, at a fixed number of epochs."""

    def compute(v, progress):
        adam = v["optimizer"] == "Adam"
        cfg = ScalingConfig(batch_sizes=pick((16, 32, 64, 128, 256, 512), (32, 128, 512)),
                            base_lr=float(v["lr0"]) / (ADAM_SHARE if adam else 1), kind=v["optimizer"],
                            warmup=float(v["warmup"]), epochs=pick(6, 1), seeds=pick(2, 1), hidden=pick(32, 12))
        return scaling(cfg, progress=progress)

    def plot(result, fig):
        left, right = fig.subplots(1, 2, gridspec_kw={"width_ratios": [1.3, 1.0]})
        P.plot_scaling(result, left)
        P.plot_scaling_lrs(result, right)

    def describe(result) -> str:
        b = result.config.batch_sizes
        rows = "; ".join(f"{rule}: " + ", ".join(compact(v) if math.isfinite(v) else "diverged"
                                                  for v in result.val_loss[i].tolist())
                         for i, rule in enumerate(("linear", "sqrt", "none")))
        return f"Final validation loss at B = {', '.join(map(str, b))}: {rows}."

    return Experiment(
        "The linear scaling rule",
        [choice("optimizer", "optimizer", [("SGD + momentum", "momentum"), ("Adam", "Adam")]),
         log_slider("lr0", "η₀ at B₀ = 32 (Adam: η₀/16)", 0.05, 0.005, 0.5, grid=(0.05, 0.1)),
         choice("warmup", "warmup", [("none", 0.0), ("first 20% of the updates", 0.2)])],
        compute=compute, plot=plot, trains=True, figsize=(13.0, 4.8), describe=describe,
        alt=("Two panels for a small network on the digits trained for the same number of epochs at batch sizes "
             "from 16 to 512. Left: the final validation (solid) and training (dashed) loss against the batch "
             "size on log axes, for the learning rate scaled linearly with the batch size, by its square root, "
             "or kept, from a rate set at batch size 32 (dotted); a cross marks a diverged run. Right: the "
             "learning rate each rule gives each batch size, with the number of updates the budget allows."),
    )


@register("ch04.plateau")
def plateau() -> Experiment:
    """ReduceLROnPlateau's decisions on a noisy validation curve, and how many of its cuts noise alone caused."""

    def compute(v, progress):
        rule = Plateau(factor=float(v["factor"]), patience=int(v["patience"]), threshold=float(v["threshold"]))
        cfg = PlateauNoiseConfig(epochs=pick(40, 6), seeds=pick(4, 2), monitor=int(v["monitor"]), plateau=rule,
                                 mlp_hidden=pick(32, 12))
        return plateau_noise(cfg, progress=progress)

    def plot(result, fig):
        left, right = fig.subplots(1, 2, gridspec_kw={"width_ratios": [1.3, 1.0]})
        P.plot_plateau_curves(result, left)
        P.plot_plateau_lrs(result, right)

    def describe(result) -> str:
        total, noise = result.counts
        return (f"{total} reductions over {len(result.lrs)} seeds, {noise} of them while the whole validation set "
                f"was still improving by more than the threshold.")

    return Experiment(
        "ReduceLROnPlateau on a noisy curve",
        [int_slider("patience", "patience (epochs)", 3, 0, 10, grid=(2, 5)),
         slider("factor", "factor γ", 0.5, 0.1, 0.9, 0.1),
         log_slider("threshold", "threshold (relative)", 0.01, 1e-4, 0.3, grid=(0.01, 0.1)),
         int_slider("monitor", "validation examples per check", 100, 10, 540, 10, grid=(30, 100, 540))],
        compute=compute, plot=plot, trains=True, figsize=(13.0, 4.8), describe=describe,
        alt=("Two panels for a small network on the digits trained at a constant learning rate. Left: for one "
             "seed, the validation loss measured each epoch on a small random sample (dots) and on the whole "
             "validation set (solid line), the training loss dashed, and a vertical line after each epoch at "
             "which ReduceLROnPlateau, watching the dots, cut the learning rate: red where the whole-set curve "
             "was still improving, grey dotted where it was not. Right: the learning rate after each epoch for "
             "every seed, with the number of cuts and of noise-triggered cuts in the title."),
    )


@register("ch04.adam_schedule")
def adam_schedule() -> Experiment:
    """Adam with a constant η against a schedule at the same peak, over a range of peaks (does Adam need one?)."""

    def compute(v, progress):
        mlp = MLPConfig(hidden=pick(32, 12), epochs=int(v["epochs"]), batch_size=64)
        cfg = PeakSweepConfig(peaks=pick((1e-3, 3e-3, 1e-2, 3e-2, 1e-1), (1e-3, 3e-2)),
                              names=("constant", v["schedule"]), seeds=pick(3, 1), mlp=mlp)
        return peak_sweep(cfg, progress=progress)

    def plot(sweep, fig):
        left, right = fig.subplots(1, 2)
        P.plot_peak_sweep(sweep, left)
        P.plot_peak_curves(sweep, right, peak_index=int(sweep.final().mean(2)[:, 0].argmin()))

    def describe(sweep) -> str:
        mean = sweep.final().mean(2)
        best = [(float(mean[:, j].min()), sweep.config.peaks[int(mean[:, j].argmin())])
                for j in range(len(sweep.config.names))]
        return "Best final validation loss: " + "; ".join(
            f"{n} {v:.3f} at η_max = {p:g}" for n, (v, p) in zip(sweep.config.names, best)) + "."

    return Experiment(
        "Does Adam need a schedule?",
        [choice("schedule", "schedule against constant η", [(n, n) for n in SCHEDULES if n != "constant"],
                default="warmup + cosine", grid=("warmup + cosine", "cosine")),
         int_slider("epochs", "budget (epochs)", pick(15, 2), 1, pick(40, 3), grid=(5, 15))],
        compute=compute, plot=plot, trains=True, figsize=(13.0, 4.8), describe=describe,
        alt=("Two panels for Adam training a small network on the digits. Left: the final validation loss against "
             "the peak learning rate on log axes, for a constant learning rate and for the chosen schedule with the "
             "same peak, a dot per seed and a line through the means. Right: the training (dashed) and validation "
             "(solid) loss per epoch of both at the peak where the constant rate does best."),
    )
