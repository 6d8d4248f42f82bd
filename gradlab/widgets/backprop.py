"""Chapter 2's widgets: the graph stepper, forward vs reverse mode, memory, zero_grad, gradients over depth."""
from __future__ import annotations

from dataclasses import replace
from types import SimpleNamespace

from ..autodiff import DepthConfig, MapConfig, jacobian_chain, time_modes_io
from ..backprop import AccumulationConfig, train_accumulating
from ..device import pick_device
from ..graph import example_graph, trace
from ..interact import Experiment, choice, int_slider, log_slider, slider
from ..memory import MemoryConfig, measure_memory
from ..modes import pick
from ..plots import backprop as P
from . import register

GRAPH_INPUTS = {"x": 0.5, "y": -1.5, "z": 2.0}


@register("ch02.graph")
def graph_stepper() -> Experiment:
    """Step through f = (x·y + sin x)·z: forward values, then gradients flowing back."""
    steps = trace(example_graph(), GRAPH_INPUTS)
    last = len(steps) - 1
    return Experiment(
        "The chain rule on a computational graph",
        [int_slider("step", "step", 0, 0, last, grid=range(last + 1))],
        compute=lambda v, progress: steps[int(v["step"])],
        plot=lambda step, fig: P.plot_graph_step(step, fig.add_subplot()),
        figsize=(8.5, 6.2),
        alt=("The computational graph of f = (x·y + sin x)·z as boxes joined by arrows: inputs x, y and z, the "
             "operations, and the output. Values computed so far are written above the boxes in blue; during the "
             "backward pass the gradients are written below the boxes and on the edges in red. The box visited at "
             "this step has a thick outline."),
    )


@register("ch02.modes")
def modes() -> Experiment:
    """Forward versus reverse mode for f: R^n → R^m as n grows, for a chosen m."""
    device = pick_device()

    def compute(v, progress):
        cfg = MapConfig(n_in=pick((16, 64, 256, 1024, 4096), (16, 64, 256)), n_out=int(v["n_out"]),
                        repeats=pick(3, 1))
        return time_modes_io(cfg, device=device, progress=progress)

    return Experiment(
        "Forward mode versus reverse mode",
        [choice("n_out", "outputs m", [("1 (a loss)", 1), ("64", 64), ("1024", 1024)])],
        compute=compute, plot=lambda r, fig: P.plot_modes(r, fig.add_subplot()), trains=True, figsize=(9.0, 4.6),
        alt=("Time to compute the full Jacobian of a function with n inputs and m outputs, by forward mode and by "
             "reverse mode, against n on log axes; a dotted line marks n = m."),
    )


@register("ch02.memory")
def memory() -> Experiment:
    """Activations kept for backward as depth and batch grow, with and without gradient checkpointing."""
    device = pick_device()

    def compute(v, progress):
        depth, batch, seg = int(v["depth"]), int(v["batch"]), int(v["segments"])
        base = MemoryConfig(depth=depth, batch=batch, width=64)
        off = measure_memory(base, device=device)
        on = measure_memory(replace(base, segments=min(seg, depth)), device=device)
        return SimpleNamespace(off=off, on=on)

    def plot(r, fig):
        left, right = fig.subplots(1, 2, width_ratios=[2.2, 1])
        P.plot_saved_by_layer(r.off, r.on, left)
        P.plot_memory_totals(r.off, r.on, right)

    def describe(r) -> str:
        off, on, s = r.off.activation_bytes / 1e3, r.on.activation_bytes / 1e3, r.on.config.segments
        if s == 0:
            return f"Saved activations: {off:.0f} KB; Linear calls per step: {r.off.layer_calls_total}."
        return (f"Saved activations: {off:.0f} KB without checkpointing, {on:.0f} KB with {s} segments; "
                f"Linear calls per step: {r.off.layer_calls_total} → {r.on.layer_calls_total}.")

    return Experiment(
        "Activation memory and gradient checkpointing",
        [int_slider("depth", "depth", 8, 2, 32, grid=(4, 8, 16, 32)),
         int_slider("batch", "batch size", 64, 8, 512, step=8, grid=(32, 64, 256)),
         choice("segments", "checkpointing", [("off", 0), ("2 segments", 2), ("4 segments", 4), ("8 segments", 8)],
                default=4)],
        compute=compute, plot=plot, figsize=(10.5, 4.4), describe=describe,
        alt=("Two panels. Left: the bytes each block of the network keeps for the backward pass, without and with "
             "checkpointing. Right: total saved memory and Linear-layer calls per training step, without and with "
             "checkpointing."),
    )


@register("ch02.zero_grad")
def zero_grad() -> Experiment:
    """The same regression trained with zero_grad() every step and with it forgotten."""
    device = pick_device()

    def compute(v, progress):
        cfg = AccumulationConfig(steps=int(v["steps"]), lr=float(v["lr"]))
        good = train_accumulating(cfg, device=device)
        bad = train_accumulating(replace(cfg, zero_grad=False), device=device)
        failed = [(r.diverged_at, name) for r, name in ((good, "with zero_grad()"), (bad, "without zero_grad()"))
                  if r.diverged_at is not None]
        step, name = min(failed) if failed else (None, None)
        if len(failed) == 2:
            name = f"{name} (first; the other at step {max(failed)[0]})"
        return SimpleNamespace(runs=[good, bad], diverged_at=step, diverged_run=name)

    def plot(r, fig):
        left, right = fig.subplots(1, 2)
        P.plot_accumulation(r.runs, left)
        P.plot_grad_norms(r.runs, right)

    return Experiment(
        "Forgetting zero_grad()",
        [log_slider("lr", "learning rate", 0.05, 0.005, 1.0, grid=(0.01, 0.05, 0.25, 1.0)),
         int_slider("steps", "steps", 60, 5, 300)],
        compute=compute, plot=plot, figsize=(10.5, 4.2),
        alt=("Two panels. Left: the training loss of the same regression with zero_grad() every step and with it "
             "forgotten. Right: the norm of the gradient the optimizer sees at each step, for both runs."),
    )


@register("ch02.jacobians")
def jacobians() -> Experiment:
    """Gradient norm at every layer of a deep MLP: a product of per-layer Jacobians, set by init gain and activation."""
    device = pick_device()

    def compute(v, progress):
        cfg = DepthConfig(depth=int(v["depth"]), gain=float(v["gain"]), activation=v["activation"])
        return jacobian_chain(cfg, device=device)

    def plot(chain, fig):
        left, right = fig.subplots(1, 2)
        P.plot_jacobian_chain([chain], left)
        P.plot_layer_factors([chain], right)

    return Experiment(
        "Gradients through depth: a product of Jacobians",
        [slider("gain", "init gain", 1.0, 0.25, 4.0, step=0.05, grid=(0.5, 1.0, 1.5, 2.5)),
         choice("activation", "activation", ["tanh", "sigmoid", "relu"]),
         int_slider("depth", "depth", 30, 2, 60)],
        compute=compute, plot=plot, figsize=(10.5, 4.2),
        describe=lambda c: f"‖∂L/∂h_0‖ / ‖∂L/∂h_L‖ = {c.grad_norms[0] / c.grad_norms[-1]:.3g}",
        alt=("Two panels. Left: the norm of the gradient at each layer of a deep network, on a log scale, from the "
             "output back to the input. Right: each layer's factor, the ratio by which that layer's Jacobian "
             "scales the gradient."),
    )
