"""Chapter 3's widgets: the optimizer race, momentum's rate against theory, rotation, inside Adam, weight decay,
the race on the digits, Adam's failure against AMSGrad, optimizer state and sparse gradients."""
from __future__ import annotations

import functools
import math
from types import SimpleNamespace

import torch

from ..adam import InsideAdamConfig, first_step_factor, inside_adam
from ..amsgrad import AMSGradConfig, adam_vs_amsgrad, cycle_drift
from ..batched_mlp import MLPConfig
from ..digits_race import DigitsRaceConfig, digits_race, lr_sweep
from ..optimizer_state import SparseConfig, sparse_vs_dense, state_table, time_sparse_vs_dense
from ..weight_decay import DecayGridConfig, SparsityConfig, decay_grid, l1_vs_l2
from ..interact import Experiment, choice, compact, int_slider, log_slider, slider
from ..modes import pick
from ..momentum import MomentumRateConfig, heavy_ball_max_lr, momentum_rates, rate_map
from ..plots import optimizers as P
from ..race import TRACKS, RaceConfig, Racer, RotationConfig, race, rotation_sweep, track
from . import register

# Every run here is a 2-D problem on the CPU: a few numbers per step, where a GPU would only add launches.
SWEEP_ANGLES = tuple(range(0, 91, 5))  # degrees


def _not_within(steps: int | None, budget: int) -> str:
    return f"{steps}" if steps is not None else f"not within {budget}"


@register("ch03.race")
def optimizer_race() -> Experiment:
    """GD, momentum, Nesterov, Adagrad, RMSprop and Adam (all torch.optim) from one start on a 2-D surface."""

    def compute(v, progress):
        surface, start = track(v["track"])
        lr, lr_adaptive, beta = float(v["lr"]), float(v["lr_adaptive"]), float(v["beta"])
        racers = (Racer("GD", lr), Racer("momentum", lr, beta), Racer("Nesterov", lr, beta),
                  Racer("Adagrad", lr_adaptive), Racer("RMSprop", lr_adaptive), Racer("Adam", lr_adaptive, beta))
        return race(RaceConfig(surface, start, racers, steps=int(v["steps"])))

    def plot(result, fig):
        left, right = fig.subplots(1, 2, gridspec_kw={"width_ratios": [1.1, 1.0]})
        P.plot_race_paths(result, left)
        left.set_title(result.config.surface.name)
        P.plot_race_gaps(result, right)
        right.set_title("loss gap, log scale")

    def describe(result) -> str:
        steps = ", ".join(f"{k} {_not_within(s, result.config.steps)}"
                          for k, s in zip(result.labels, result.steps_to_tol))
        return f"Steps to f − f* ≤ {compact(result.config.tol)}: {steps}."

    return Experiment(
        "The optimizer race",
        [choice("track", "surface", [(name, name) for name in TRACKS]),
         log_slider("lr", "η for GD, momentum, Nesterov", 0.1, 1e-4, 1.0, grid=(1e-3, 0.1)),
         log_slider("lr_adaptive", "η for Adagrad, RMSprop, Adam", 0.1, 1e-3, 1.0, grid=(0.01, 0.1)),
         slider("beta", "β (momentum, Nesterov; Adam's β1)", 0.9, 0.0, 0.99, 0.01, grid=(0.5, 0.9)),
         int_slider("steps", "steps", pick(300, 100), 10, 1000, 10)],
        compute=compute, plot=plot, trains=False, figsize=(11.0, 4.8), describe=describe,
        alt=("Two panels. Left: contour lines of the chosen surface with the paths of six optimizers (gradient "
             "descent, momentum, Nesterov, Adagrad, RMSprop, Adam) from one white circle. Right: each one's loss "
             "gap f − f* against the step on a log scale, with the tolerance as a dotted line; a line that stops "
             "early with a cross diverged."),
    )


@register("ch03.momentum_rate")
def momentum_rate() -> Experiment:
    """Heavy ball's rate over (η, β) on a quadratic of condition number κ, and three runs measured against theory."""
    size = pick(161, 81)

    def compute(v, progress):
        kappa = float(v["kappa"])
        big_l = max(1.0, kappa)
        cfg = MomentumRateConfig(kappa=kappa, lr=float(v["lrl"]) / big_l, beta=float(v["beta"]), steps=int(v["steps"]))
        lrs = torch.linspace(0.01, 4.2, size, dtype=torch.float64) / big_l
        betas = torch.linspace(0.0, 0.995, size, dtype=torch.float64)
        rates = momentum_rates(cfg)
        return SimpleNamespace(rates=rates, rmap=rate_map(kappa, lrs, betas), diverged_at=rates.diverged_at,
                               diverged_run=rates.diverged_run)

    def plot(result, fig):
        left, right = fig.subplots(1, 2)
        c = result.rates.config
        P.plot_rate_map(result.rmap, left, chosen=(c.lr, c.beta))
        P.plot_rate_runs(result.rates, right)
        right.set_title("distance to the minimum")

    def describe(result) -> str:
        r = result.rates
        c = r.config
        bound = heavy_ball_max_lr(c.beta, max(1.0, c.kappa)) * max(1.0, c.kappa)
        pairs = "; ".join(f"{label}: {m:.4g} (theory {p:.4g})" if math.isfinite(m) else f"{label}: diverged "
                          f"(theory {p:.4g})" for label, m, p
                          in zip(("GD", "Polyak", "chosen"), r.measured.tolist(), r.predicted.tolist()))
        return f"Rates per step, measured on the second half of the run: {pairs}. Stable for ηL < {bound:.3g}."

    return Experiment(
        "Momentum: measured rate against theory",
        [log_slider("kappa", "condition number κ", 100.0, 2.0, 1000.0, grid=(10.0, 100.0)),
         slider("lrl", "learning rate ηL (η in units of 1/L)", 1.0, 0.05, 4.2, 0.05, grid=(0.5, 2.0, 3.5)),
         slider("beta", "momentum β", 0.9, 0.0, 0.99, 0.01, grid=(0.0, 0.5, 0.9)),
         int_slider("steps", "steps", pick(300, 150), 50, 1000, 10)],
        compute=compute, plot=plot, trains=False, figsize=(11.0, 4.8), describe=describe,
        alt=("Two panels. Left: a shaded map of heavy ball's convergence rate per step over the learning rate ηL "
             "and the momentum β, with labelled contour lines, a grey region where it does not converge, the "
             "stability bound ηL = 2(1 + β) dashed, Polyak's tuned point as a star and the chosen point as a "
             "circle. Right: the distance to the minimum against the step on a log scale for gradient descent at "
             "its best step, Polyak's heavy ball and the chosen setting, each beside a dotted line of its "
             "predicted rate."),
    )


@functools.lru_cache(maxsize=8)
def _sweep(kappa: float, angles: tuple[float, ...], max_steps: int):
    """The sweep is the same for every angle whose paths are shown: computed once per κ."""
    return rotation_sweep(RotationConfig(kappa=kappa, angles=angles, max_steps=max_steps))


@register("ch03.rotation")
def rotation() -> Experiment:
    """Steps to a tolerance against the rotation of an ill-conditioned quadratic, and the paths at one angle."""

    def compute(v, progress):
        shown = float(v["angle"])
        degrees = tuple(sorted(set(SWEEP_ANGLES) | {shown}))
        sweep = _sweep(float(v["kappa"]), tuple(math.radians(d) for d in degrees), pick(2000, 300))
        return SimpleNamespace(sweep=sweep, index=degrees.index(shown))

    def plot(result, fig):
        left, right = fig.subplots(1, 2, gridspec_kw={"width_ratios": [1.1, 1.0]})
        P.plot_rotation(result.sweep, left, angle=float(result.sweep.angles[result.index]))
        P.plot_rotation_paths(result.sweep, result.index, right)

    def describe(result) -> str:
        s, i = result.sweep, result.index
        budget = s.config.max_steps
        at = ", ".join(f"{k} {_not_within(None if math.isnan(n) else int(n), budget)}"
                       for k, n in zip(s.labels, s.steps[:, i].tolist()))
        return f"At {math.degrees(float(s.angles[i])):.0f}°, steps to f − f* ≤ {compact(s.config.tol)}: {at}."

    return Experiment(
        "Rotating the valley",
        [log_slider("kappa", "condition number κ", 50.0, 2.0, 300.0, grid=(10.0, 100.0)),
         slider("angle", "rotation shown (degrees)", 45.0, 0.0, 90.0, 1.0, grid=(0.0, 20.0, 45.0))],
        compute=compute, plot=plot, trains=False, figsize=(11.0, 4.8), describe=describe,
        alt=("Two panels. Left: the number of steps each optimizer (gradient descent, momentum, Adagrad, RMSprop, "
             "Adam) needs to reach the tolerance on an ill-conditioned quadratic, against the angle by which the "
             "quadratic is rotated, on a log scale; flat lines do not care about rotation. Right: the paths of "
             "the five optimizers on the quadratic rotated by the chosen angle."),
    )


@register("ch03.inside_adam")
def adam_inside() -> Experiment:
    """Adam with its β1, β2, ε and bias correction exposed: the path and the size of every step."""

    def compute(v, progress):
        return inside_adam(InsideAdamConfig(lr=float(v["lr"]), beta1=float(v["beta1"]), beta2=float(v["beta2"]),
                                            eps=float(v["eps"]), bias_correction=bool(v["bias"]),
                                            steps=int(v["steps"])))

    def plot(result, fig):
        left, right = fig.subplots(1, 2, gridspec_kw={"width_ratios": [1.1, 1.0]})
        P.plot_adam_path(result, left)
        left.set_title(f"Adam, ε = {result.config.eps:.3g}")
        P.plot_adam_steps(result, right)

    def describe(result) -> str:
        c = result.config
        first = first_step_factor(c.beta1, c.beta2, c.bias_correction)
        limit = ("" if result.limit_path is not None
                 else f" Momentum SGD with lr η/ε = {result.limit_lr:.3g} would diverge here, so it is not drawn.")
        return (f"First step: {float(result.step_factors[0]):.4g} η measured, {result.first_predicted:.4g} η "
                f"predicted ({first:.4g} η as ε → 0); f − f* = {float(result.gaps[-1]):.3g} after {c.steps} steps."
                f"{limit}")

    return Experiment(
        "Inside Adam",
        [log_slider("lr", "learning rate η", 0.1, 1e-3, 1.0),
         slider("beta1", "β1 (average of g)", 0.9, 0.0, 0.99, 0.01, grid=(0.0, 0.9)),
         choice("beta2", "β2 (average of g²)", [0.9, 0.99, 0.999, 0.9999], default=0.999),
         log_slider("eps", "ε", 1e-8, 1e-8, 1e3, grid=(1e-8, 100.0)),
         choice("bias", "bias correction", [("on", True), ("off", False)]),
         int_slider("steps", "steps", 150, 10, 1000, 10)],
        compute=compute, plot=plot, trains=False, figsize=(11.0, 4.8), describe=describe,
        alt=("Two panels. Left: contour lines of an ill-conditioned quadratic with Adam's path from a white circle "
             "and, when ε is large enough for it to be stable, the path of momentum SGD with learning rate η/ε. "
             "Right: the size of each of Adam's steps divided by η against the step on log-log axes, beside the "
             "same for a constant gradient (dashed) and the predicted size of the first step (a diamond)."),
    )


# Experiments 5-8: weight decay and L1 on the digits, the race on a real network, Adam's failure, optimizer state.
# Every network here is a small MLP on the CPU: the batched copies are a few thousand weights each.

def _mlp(epochs: int) -> MLPConfig:
    return MLPConfig(hidden=pick(32, 16), epochs=epochs, batch_size=128)


_TRAINED: dict[tuple, object] = {}  # sweeps that several settings of a widget share, trained once per session


def _once(key: tuple, train):
    """``train()``'s result, kept under ``key`` (with the mode: fast and full runs differ)."""
    key = (pick("full", "fast"), *key)
    if key not in _TRAINED:
        _TRAINED[key] = train()
    return _TRAINED[key]


def _decay_grid(epochs: int, progress):
    """The grid does not depend on the L1/L2 panel's α or on the metric shown: trained once per epoch count."""
    cfg = DecayGridConfig(lrs=pick((3e-4, 1e-3, 3e-3, 1e-2, 3e-2), (1e-3, 1e-2, 3e-2)),
                          decays=pick((0.0, 1e-3, 1e-2, 1e-1, 1.0), (0.0, 1e-2, 1.0)), mlp=_mlp(epochs))
    return _once(("decay", epochs), lambda: decay_grid(cfg, progress=progress))


@register("ch03.weight_decay")
def weight_decay_grid() -> Experiment:
    """Adam + L2 against AdamW over (η, α) on the digits, and the weights that L1 and L2 leave."""

    def compute(v, progress):
        epochs = int(v["epochs"])
        grid = _decay_grid(epochs, lambda f: progress(0.85 * f))
        progress(0.85)
        sp = l1_vs_l2(SparsityConfig(alpha=float(v["alpha"]), mlp=_mlp(epochs)))
        bad = grid.diverged_at if grid.diverged_at is not None else sp.diverged_at
        run = grid.diverged_run if grid.diverged_at is not None else sp.diverged_run
        return SimpleNamespace(grid=grid, sparsity=sp, metric=v["metric"], diverged_at=bad, diverged_run=run)

    def plot(result, fig):
        axes = fig.subplots(1, 3, gridspec_kw={"width_ratios": [1.0, 1.0, 1.15]})
        for i in range(2):
            P.plot_decay_grid(result.grid, i, axes[i], metric=result.metric)
        P.plot_sparsity(result.sparsity, axes[2])

    def describe(result) -> str:
        g, s = result.grid, result.sparsity
        best = "; ".join(f"{g.labels[i]} best {100 * acc:.1f}% at η = {lr:g}, α = {a:g}"
                         for i, (lr, a, acc) in enumerate(g.best(i) for i in range(2)))
        zeros = ", ".join(f"{lab} {100 * float(z):.1f}% below {s.config.threshold:g} ({100 * float(e):.1f}% exactly 0)"
                          for lab, z, e in zip(s.labels, s.near_zero, s.exact_zero))
        return f"Validation accuracy: {best}. Weights: {zeros}."

    return Experiment(
        "Adam + L2 against AdamW, and L1 against L2",
        [choice("metric", "shown in the grids",
                [("validation accuracy", "val_acc"), ("weight norm ‖w‖", "weight_norm")]),
         log_slider("alpha", "α of the L1 and L2 penalties (right panel)", 1e-2, 1e-4, 0.1, grid=(1e-3, 1e-2)),
         int_slider("epochs", "epochs", pick(15, 3), 1, pick(40, 5))],
        compute=compute, plot=plot, trains=True, figsize=(14.0, 4.6), describe=describe,
        alt=("Three panels. Left and middle: the final validation accuracy (or the weight norm) of a small network "
             "on the digits over a grid of learning rates η (rows) and weight decays α (columns), for Adam with an "
             "L2 penalty and for AdamW, each cell labelled with its value. Right: histograms of log10 of the "
             "weights' sizes after training with an L2 penalty, an L1 penalty by subgradient, and an L1 penalty "
             "by a soft-threshold step, exact zeros at the left end and the threshold dotted."),
    )


def _race_config(v: dict) -> DigitsRaceConfig:
    return DigitsRaceConfig(lrs=pick((1e-3, 3e-3, 1e-2, 3e-2, 0.1, 0.3, 1.0, 3.0), (1e-3, 1e-2, 0.1, 1.0)),
                            mlp=_mlp(int(v["epochs"])), seeds=tuple(range(1, int(v["seeds"]) + 1)),
                            lr_scale=float(v["scale"]))


@register("ch03.real_race")
def real_race() -> Experiment:
    """Every optimizer at its own tuned η on a small MLP on the digits, from several seeds."""

    def compute(v, progress):
        cfg = _race_config(v)
        sweep = _once(("sweep", cfg.mlp.epochs), lambda: lr_sweep(cfg, progress=lambda f: progress(0.6 * f)))
        progress(0.6)
        out = _once(("race", cfg), lambda: digits_race(cfg, progress=lambda f: progress(0.6 + 0.4 * f), sweep=sweep))
        return SimpleNamespace(race=out, metric=v["metric"], diverged_at=out.diverged_at,
                               diverged_run=out.diverged_run)

    def plot(result, fig):
        axes = fig.subplots(1, 3, gridspec_kw={"width_ratios": [1.0, 1.2, 0.9]})
        P.plot_lr_sweep(result.race, axes[0])
        P.plot_digits_curves(result.race, axes[1], metric=result.metric)
        P.plot_digits_final(result.race, axes[2])

    def describe(result) -> str:
        r = result.race
        mean, sd = r.final("val_acc")
        acc = {k: (m, s) for k, m, s in zip(r.config.kinds, mean.tolist(), sd.tolist())}
        tuned = ", ".join(f"{k} {lr * r.config.lr_scale:.3g}" for k, lr in zip(r.config.kinds, r.sweep.best_lrs))
        (mm, ms), (am, asd) = acc["momentum"], acc["Adam"]
        return (f"η used: {tuned}. Highest mean validation accuracy: {r.winner()}. Momentum "
                f"{100 * mm:.1f} ± {100 * ms:.1f}% against Adam {100 * am:.1f} ± {100 * asd:.1f}% "
                f"over {len(r.config.seeds)} seeds (mean ± sd).")

    return Experiment(
        "The race on a real network",
        [choice("metric", "curves of", [("loss", "loss"), ("accuracy", "accuracy")]),
         log_slider("scale", "every tuned η multiplied by", 1.0, 0.1, 30.0, grid=(1.0, 10.0)),
         int_slider("epochs", "epochs", pick(15, 3), 1, pick(40, 5)),
         int_slider("seeds", "seeds", pick(5, 2), 1, pick(8, 3))],
        compute=compute, plot=plot, trains=True, figsize=(15.0, 4.8), describe=describe,
        alt=("Three panels. Left: the final validation loss of a small network on the digits against the learning "
             "rate for SGD, momentum, Adagrad, RMSprop, Adam and AdamW, a star at each one's tuned rate. Middle: "
             "training (dashed) and validation (solid) loss or accuracy per epoch for each optimizer at its tuned "
             "rate, the mean over seeds with a shaded band of one standard deviation. Right: each optimizer's final "
             "validation accuracy for every seed and their mean with one standard deviation."),
    )


# A dropdown whose value is None shows no selection in the browser (ipywidgets reads None as "nothing
# chosen"), so the paper's β2 = 1/(1 + C²) is named by a string.
PAPER_BETA2 = "paper"


@register("ch03.amsgrad")
def amsgrad() -> Experiment:
    """Adam and AMSGrad on Reddi et al.'s online problem: one goes to the worst point, the other to the best."""

    def compute(v, progress):
        beta2 = None if v["beta2"] == PAPER_BETA2 else float(v["beta2"])
        return adam_vs_amsgrad(AMSGradConfig(c=float(v["c"]), beta1=float(v["beta1"]), beta2=beta2,
                                             lr=float(v["lr"]), schedule=v["schedule"], steps=int(v["steps"])))

    def plot(result, fig):
        left, right = fig.subplots(1, 2)
        P.plot_online_paths(result, left)
        left.set_title(f"C = {result.config.c:g}, β1 = {result.config.beta1:g}, β2 = {result.config.b2:.3g}")
        P.plot_online_regret(result, right)

    def describe(result) -> str:
        c = result.config
        end = ", ".join(f"{k} x = {float(x):.3f}" for k, x in zip(result.labels, result.x[:, -1]))
        text = f"After {c.steps} steps: {end} (best point −1)."
        if c.beta1 == 0:
            drift = ", ".join(f"{k} {cycle_drift(c.c, c.b2, 1.0, ams):+.3f}η" for k, ams in
                              zip(result.labels, (False, True)))
            text += f" Predicted drift per cycle of three steps, away from the ends: {drift}."
        return text

    return Experiment(
        "When Adam fails: AMSGrad",
        [slider("c", "C (the large gradient, every third step)", 3.0, 2.1, 10.0, 0.1, grid=(3.0, 6.0)),
         choice("beta2", "β2", [("1/(1 + C²), as in the paper", PAPER_BETA2), ("0.99", 0.99), ("0.999", 0.999)]),
         choice("schedule", "learning rate", [("η/√t, as in the paper", "1/sqrt(t)"), ("constant η", "constant")]),
         slider("beta1", "β1", 0.0, 0.0, 0.9, 0.05),
         log_slider("lr", "learning rate η", 0.1, 1e-3, 1.0),
         int_slider("steps", "steps", pick(1500, 300), 30, pick(6000, 1200), 30)],
        compute=compute, plot=plot, trains=False, figsize=(11.0, 4.6), describe=describe,
        alt=("Two panels. Left: the iterate x against the step for Adam and AMSGrad on an online problem over the "
             "interval from −1 to 1 whose best point is −1, drawn dashed; with the paper's settings Adam climbs to "
             "+1 and AMSGrad goes down towards −1. Right: each one's average regret against the step on a log "
             "axis, which falls towards 0 only for a method that finds the best point."),
    )


@register("ch03.sparse")
def sparse() -> Experiment:
    """SparseAdam against Adam on an embedding: which rows each step moves; state bytes per parameter."""

    def compute(v, progress):
        steps = sparse_vs_dense(SparseConfig(rows=int(v["rows"]), lookups=min(int(v["lookups"]), int(v["rows"])),
                                             steps=int(v["steps"])))
        table = {**_once(("state",), state_table), "SparseAdam": steps.state["SparseAdam"]}
        size = pick((100_000, 64, 256), (10_000, 32, 64))
        timing = _once(("timing", size), lambda: time_sparse_vs_dense(*size, repeats=pick(10, 3)))
        return SimpleNamespace(steps=steps, table=table, timing=timing, diverged_at=None)

    def plot(result, fig):
        axes = fig.subplots(1, 3, gridspec_kw={"width_ratios": [1.0, 1.0, 0.9]})
        P.plot_sparse_rows(result.steps, 0, axes[0])
        P.plot_sparse_rows(result.steps, 1, axes[1])
        P.plot_state_bytes(result.table, axes[2])
        axes[2].set_title("optimizer state, from state_dict()")

    def describe(result) -> str:
        t = result.timing
        sparse_b, dense_b = (result.table[k].bytes_per_parameter for k in ("SparseAdam", "Adam"))
        return (f"One step on a {t.rows:,} × {t.dim} embedding, {t.lookups} rows looked up, measured on this "
                f"machine: SparseAdam {t.sparse_s * 1e3:.2f} ms, Adam {t.dense_s * 1e3:.2f} ms "
                f"({t.ratio:.1f} times as long). Both keep m and v for every row: "
                f"{sparse_b:g} and {dense_b:.3g} bytes of state per parameter.")

    return Experiment(
        "Sparse gradients: SparseAdam against Adam",
        [int_slider("lookups", "rows looked up per step", 3, 1, 8, grid=(1, 3)),
         int_slider("steps", "steps", 6, 1, 12),
         int_slider("rows", "rows of the embedding", 24, 8, 48)],
        compute=compute, plot=plot, trains=False, figsize=(14.0, 4.6), describe=describe,
        alt=("Three panels. Left and middle: for SparseAdam and for Adam, a grid of embedding rows against steps in "
             "which a blue cell is a row looked up and moved in that step and an orange cell a row that moved "
             "without being looked up: SparseAdam moves only the looked-up rows, Adam keeps moving every row it "
             "has seen. Right: the optimizer state in bytes per parameter for SGD, momentum, Adagrad, RMSprop, "
             "Adam, AdamW, AMSGrad and SparseAdam."),
    )
