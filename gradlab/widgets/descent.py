"""Chapter 1's widgets: the loss-surface explorer, batch size and gradient noise, saddles and plateaus."""
from __future__ import annotations

from dataclasses import replace
from types import SimpleNamespace

from ..data import logistic_task
from ..descent import DescentConfig, descend
from ..saddles import saddle_run
from ..device import pick_device
from ..interact import Experiment, choice, int_slider, log_slider, slider
from ..landscapes import Saddle, make_surface
from ..modes import pick
from ..plots import descent as P
from ..seeding import generator
from ..stochastic import MinibatchConfig, train_minibatch
from . import register

# The 2-D surfaces run on the CPU whatever the device: with two numbers per step,
# a GPU would spend its time launching kernels, and a redraw must take milliseconds.
SURFACE_DEVICE = "cpu"
# On the website: brackets of 2/L for κ = 10 and 100, and Rosenbrock's small stable rates.
SURFACE_LRS = (1e-4, 3e-4, 1e-3, 2e-3, 0.01, 0.03, 0.1, 0.18, 0.3, 1.0)


@register("ch01.loss_surface")
def loss_surface() -> Experiment:
    """Gradient descent (optionally with momentum) on a quadratic of condition number κ, Rosenbrock, or a saddle."""

    def compute(v, progress):
        surface = make_surface(v["surface"], kappa=float(v["kappa"]))
        cfg = DescentConfig(lr=float(v["lr"]), steps=int(v["steps"]), momentum=float(v["momentum"]))
        return descend(surface, (float(v["x0"]), float(v["y0"])), cfg, device=SURFACE_DEVICE)

    def plot(path, fig):
        left, right = fig.subplots(1, 2, gridspec_kw={"width_ratios": [1.1, 1.0]})
        P.plot_path(path, left)
        left.set_title(f"{path.surface.name}, η = {path.config.lr:.3g}")
        P.plot_gaps(path, right)
        right.set_title("loss gap, log scale")

    def describe(path) -> str:
        return f"After {len(path.gaps) - 1} steps: f − f* = {float(path.gaps[-1]):.3g}."

    return Experiment(
        "Gradient descent on a loss surface",
        [choice("surface", "surface", [("ill-conditioned quadratic", "quadratic"), ("Rosenbrock valley", "rosenbrock"),
                                       ("saddle", "saddle")]),
         log_slider("lr", "learning rate η", 0.18, 1e-4, 1.0, grid=SURFACE_LRS),
         log_slider("kappa", "condition number κ (quadratic)", 10.0, 1.0, 1000.0, grid=(10.0, 100.0)),
         slider("x0", "start x", -1.5, -2.0, 2.0, 0.05),
         slider("y0", "start y", 0.5, -2.0, 2.0, 0.01),
         int_slider("steps", "steps", 200, 10, 2000, 10),
         slider("momentum", "momentum β", 0.0, 0.0, 0.99, 0.01, grid=(0.0, 0.9))],
        compute=compute, plot=plot, trains=False, figsize=(11.0, 4.6), describe=describe,
        alt=("Two panels. Left: contour lines of the chosen surface, its minima as black stars, and the path of "
             "gradient descent from a white circle, one dot per step. Right: the loss gap f − f* against the "
             "step, on a log scale; a falling line converges, a line that stops early diverged."),
    )


@register("ch01.batch_noise")
def batch_noise() -> Experiment:
    """Mini-batch SGD on logistic regression: the loss against epochs and against updates, next to full batch."""
    device = pick_device()

    def compute(v, progress):
        task = logistic_task(device=device)
        cfg = MinibatchConfig(batch_size=int(v["batch"]), lr=float(v["lr"]), epochs=int(v["epochs"]))
        full = train_minibatch(task, replace(cfg, batch_size=0))
        run = full if cfg.batch_size == 0 else train_minibatch(task, cfg, progress)
        runs = [full] if run is full else [run, full]
        failed = next((r for r in runs if r.diverged_at is not None), None)
        return SimpleNamespace(runs=runs, diverged_at=failed and failed.diverged_at,
                               diverged_run=failed and f"with B = {failed.batch_size}")

    def plot(result, fig):
        left, right = fig.subplots(1, 2, sharey=True)
        P.plot_training(result.runs, left, by="epoch")
        P.plot_training(result.runs, right, by="update")
        left.set_title("per epoch")
        right.set_title("per update")

    def describe(result) -> str:
        run = result.runs[0]
        return (f"B = {run.batch_size}: {run.updates_per_epoch} updates per epoch, "
                f"{int(run.updates[-1])} in all; final loss {float(run.losses[-1]):.3g}.")

    return Experiment(
        "Batch size: epochs versus updates",
        [choice("batch", "batch size B", [("1", 1), ("8", 8), ("32", 32), ("128", 128), ("full (569)", 0)],
                default=32),
         log_slider("lr", "learning rate η", 0.1, 1e-3, 10.0, grid=(0.01, 0.1, 1.0, 5.0)),
         int_slider("epochs", "epochs", pick(10, 1), 1, pick(30, 3))],
        compute=compute, plot=plot, trains=True, figsize=(11.0, 4.4), describe=describe,
        alt=("Two panels sharing a loss axis: the logistic loss on all 569 examples during training with the "
             "chosen batch size and with the full batch, against epochs (left) and against updates (right)."),
    )


@register("ch01.saddle")
def saddle() -> Experiment:
    """Plain gradient descent started at (1, y₀), y₀ away from a saddle's stable manifold, with or without gradient noise."""
    surface = Saddle()

    def compute(v, progress):
        cfg = DescentConfig(lr=float(v["lr"]), steps=int(v["steps"]), noise=float(v["noise"]))
        return saddle_run(surface, float(v["offset"]), cfg, generator=generator(0))

    def plot(run, fig):
        left, right = fig.subplots(1, 2)
        P.plot_saddle_loss(run, left)
        P.plot_manifold_distance(run, right)

    def describe(run) -> str:
        when = (f"escaped (|y| ≥ 0.5) at step {run.escaped_at}" if run.escaped_at is not None
                else f"still on the plateau after {len(run.path.gaps) - 1} steps")
        return f"{when}; the noise-free formula predicts step {run.predicted:.0f}."

    return Experiment(
        "Escaping a saddle",
        [choice("noise", "gradient noise σ", [("0 (plain GD)", 0.0), ("1e-4", 1e-4), ("1e-3", 1e-3), ("1e-2", 1e-2)]),
         log_slider("offset", "start y₀ (offset from the stable manifold)", 1e-6, 1e-8, 1e-1, grid=(1e-8, 1e-6, 1e-4, 1e-2)),
         log_slider("lr", "learning rate η", 0.1, 0.01, 0.5),
         int_slider("steps", "steps", 300, 50, 1000, 10)],
        compute=compute, plot=plot, trains=False, figsize=(11.0, 4.4), describe=describe,
        alt=("Two panels. Left: the loss gap during a run started near the saddle, with the saddle's height as a "
             "dashed line and the predicted escape step as a dotted line. Right: the distance from the stable "
             "manifold, |y|, on a log scale, measured and predicted; a straight line is exponential growth."),
    )
