"""Chapter 5's widgets on recurrent networks and clipping: gradients through time, the long-range task, what
clipping does to a gradient, and the cliff of a one-unit recurrent network."""
from __future__ import annotations

import functools
import math
from dataclasses import replace
from types import SimpleNamespace

import torch

from ..gradients.cliff import CliffConfig, cliff
from ..gradients.clipping import DirectionConfig, clip_directions
from ..gradients.long_range import LongRangeConfig, long_range
from ..gradients.nets import NetConfig
from ..gradients.recurrent import RECURRENT, ThroughTimeConfig, factor_sweep, through_time
from ..interact import Experiment, choice, compact, int_slider, log_slider
from ..modes import pick
from ..plots import gradients_time as P
from . import register

# Small recurrent networks stepped one position at a time: on the CPU, a GPU would only add kernel launches.
# Each network at initialization is cached, so moving ρ recomputes only the RNN and b_f only the LSTM.
_through_time = functools.lru_cache(maxsize=64)(through_time)
_factor_sweep = functools.lru_cache(maxsize=8)(factor_sweep)
FORGET = [("PyTorch's U(±1/√d_h)", "pytorch"), ("0", 0.0), ("1 (Gers et al.)", 1.0), ("2", 2.0), ("4", 4.0)]


def _base(seq_len: int) -> ThroughTimeConfig:
    return ThroughTimeConfig(seq_len=seq_len, hidden=pick(64, 16), d_in=pick(32, 8), batch=pick(32, 4),
                             ff=pick(128, 16))


@register("ch05.through_time")
def through_time_widget() -> Experiment:
    """∂𝓛/∂h_τ and ∂𝓛/∂x_τ against τ for an RNN at spectral radius ρ, an LSTM at forget bias b_f, a GRU and a
    Transformer, at initialization; the RNN's per-step factor against ρ, measured and predicted."""

    def compute(v, progress):
        base = _base(int(v["seq_len"]))
        forget = None if v["forget"] == "pytorch" else float(v["forget"])
        runs = [_through_time(replace(base, kind="rnn", rho=float(v["rho"]))),
                _through_time(replace(base, kind="lstm", forget=forget)),
                _through_time(replace(base, kind="gru")),
                _through_time(replace(base, kind="transformer"))]
        rhos = pick((0.5, 0.7, 0.85, 1.0, 1.2, 1.5, 2.0, 3.0), (0.5, 1.0, 2.0))
        return SimpleNamespace(runs=runs, sweep=_factor_sweep(rhos, replace(base, kind="rnn")))

    def plot(result, fig):
        left, middle, right = fig.subplots(1, 3)
        P.plot_state_gradients(result.runs[:3], left)
        P.plot_input_gradients(result.runs, middle)
        P.plot_factor_sweep(result.sweep, right, mark=result.runs[0])

    def describe(result) -> str:
        parts = [f"{P.run_label(r)} {compact(float(r.grad_x[0] / r.grad_x[-1]))}" for r in result.runs]
        rnn = result.runs[0]
        return (f"‖∂𝓛/∂x_1‖ / ‖∂𝓛/∂x_T‖: {'; '.join(parts)}. RNN per-step factor: fitted {rnn.factor:.3f}, "
                f"predicted ρ·√E[(1 − h²)²] = {rnn.predicted:.3f}.")

    return Experiment(
        "Gradients through time: RNN, LSTM, GRU, Transformer",
        [log_slider("rho", "RNN: spectral radius ρ of W_hh", 1.0, 0.3, 3.0, grid=(0.8, 1.0, 1.5)),
         choice("forget", "LSTM: forget-gate bias b_f", FORGET, default="pytorch", grid=("pytorch", 1.0, 4.0)),
         int_slider("seq_len", "sequence length T_seq", pick(100, 20), 5, pick(200, 40), 5)],
        compute=compute, plot=plot, trains=False, figsize=(16.0, 4.8), describe=describe,
        alt=("Three panels for freshly initialized sequence models, with a loss on the last position only. Left: "
             "the gradient norm with respect to the hidden state at each position, on a log axis, for a tanh RNN "
             "at the chosen spectral radius (with its predicted straight-line decay dotted), an LSTM at the chosen "
             "forget-gate bias and a GRU: straight lines falling towards the first position. Middle: the gradient "
             "norm with respect to each input for the same three and a Transformer encoder, whose line is flat "
             "except for a jump at the last position. Right: the RNN's gradient factor per step against the "
             "spectral radius, fitted as dots and predicted as a line, crossing 1 near a radius of 1.5."),
    )


@register("ch05.long_range")
def long_range_widget() -> Experiment:
    """One recurrent network trained to recall the class of a marked token across T_seq steps."""

    def compute(v, progress):
        cfg = LongRangeConfig(kind=v["kind"], seq_len=int(v["seq_len"]), position=v["position"],
                              steps=pick(300, 30), hidden=pick(32, 8), eval_size=pick(512, 64),
                              eval_every=pick(25, 10))
        return long_range(cfg, progress=progress)

    def plot(result, fig):
        left, middle, right = fig.subplots(1, 3)
        P.plot_long_range_accuracy(result, left)
        P.plot_long_range_reach(result, middle)
        P.plot_long_range_norms(result, right)

    def describe(result) -> str:
        short = result.final_short()
        parts = [] if math.isnan(short) else [f"shortest delays {100 * short:.0f}%"]
        parts.append(f"longest delays {100 * result.final_long():.0f}% (chance {100 * result.chance:.0f}%)")
        norms = result.grad_norm[torch.isfinite(result.grad_norm)]
        if norms.numel() == 0:
            return f"Final accuracy: {', '.join(parts)}."
        rho = "" if math.isnan(result.rho) else f" The RNN's ρ(W_hh) after training: {result.rho:.2f}."
        return (f"Final accuracy: {', '.join(parts)}. Gradient norm: median {compact(float(norms.median()))}, "
                f"largest {compact(float(norms.max()))}, above 1 on {100 * float((norms > 1).double().mean()):.0f}% "
                f"of the steps.{rho}")

    return Experiment(
        "A long-range dependency: recall a marked token",
        [choice("kind", "network", [(P.NAMES[k], k) for k in RECURRENT]),
         choice("seq_len", "sequence length T_seq", [("10", 10), ("50", 50), ("100", 100)], default=50, grid=(10, 50)),
         choice("position", "class token at", [("a random position", "random"), ("the first position", "first")],
                grid=False)],
        compute=compute, plot=plot, trains=True, figsize=(16.0, 4.6), describe=describe,
        alt=("Three panels for a recurrent network trained with Adam to name the class of the one marked token in "
             "a sequence of distractors. Left: validation accuracy against the step for four ranges of the "
             "distance between the token and the end, with chance dotted. Middle: the ratio of the gradient "
             "reaching the first input to the gradient reaching the last, on a log axis. Right: the total "
             "gradient norm and the training loss against the step, on a log axis, with a norm of 1 dotted."),
    )


@functools.lru_cache(maxsize=4)
def _directions(init: str):
    return clip_directions(DirectionConfig(net=NetConfig(init=init, width=pick(64, 16)), batch_size=pick(128, 32)))


@register("ch05.clipping")
def clipping_widget() -> Experiment:
    """One real gradient (the digits MLP) clipped by norm and by value at ν: its direction and its coordinates."""

    def compute(v, progress):
        return SimpleNamespace(d=_directions(v["init"]), nu=float(v["nu"]))

    def plot(result, fig):
        left, right = fig.subplots(1, 2)
        P.plot_clip_cosine(result.d, result.nu, left)
        P.plot_clip_coordinates(result.d, result.nu, right)

    def describe(result) -> str:
        d, nu = result.d, result.nu
        i = min(range(len(d.config.nus)), key=lambda j: abs(math.log(d.config.nus[j] / nu)))
        return (f"‖g‖₂ = {compact(d.norm)}: by norm the gradient keeps its direction (cosine 1) and its length "
                f"becomes {compact(min(d.norm, nu))}; by value (ν ≈ {compact(d.config.nus[i])}) "
                f"{100 * float(d.clipped_fraction[i]):.1f}% of the coordinates are clamped, cosine "
                f"{float(d.cos_value[i]):.3f}.")

    return Experiment(
        "Clipping by norm against clipping by value",
        [log_slider("nu", "threshold ν", 0.01, 1e-5, 10.0, grid=(1e-3, 0.01, 0.1, 1.0)),
         choice("init", "MLP's initialization (D = 5, ReLU)", [("PyTorch's default", "pytorch"), ("U(±2)", "large")])],
        compute=compute, plot=plot, trains=False, figsize=(13.0, 4.8), describe=describe,
        alt=("Two panels for one gradient of a five-layer ReLU network on a batch of the digits. Left: against the "
             "threshold on a log axis, the cosine between the clipped and the original gradient, which stays at 1 "
             "for clipping by norm and falls below 1 for clipping by value once the threshold is below the largest "
             "coordinates, and the share of coordinates value clipping changes. Right: each coordinate after "
             "clipping against the original: a straight line through zero by norm, a clamp at plus and minus the "
             "threshold by value."),
    )


@register("ch05.cliff")
def cliff_widget() -> Experiment:
    """Gradient descent on the cliff of x_τ = w·sigmoid(x_{τ−1}) + b, plain and clipped by norm."""

    def compute(v, progress):
        return cliff(CliffConfig(lr=float(v["lr"]), max_norm=float(v["nu"]), b0=float(v["b0"]),
                                 steps=int(v["steps"]), grid=pick(161, 21)))

    def plot(result, fig):
        left, right = fig.subplots(1, 2, gridspec_kw={"width_ratios": [1.3, 1.0]})
        P.plot_cliff_surface(result, left)
        P.plot_cliff_descent(result, right)

    def describe(result) -> str:
        k, dist = result.jump
        (wp, bp), (wc, bc) = result.paths[0, -1].tolist(), result.paths[1, -1].tolist()
        return (f"Largest gradient norm {compact(float(result.grad_norms[0].nan_to_num(nan=0.0).max()))}; the plain "
                f"run's longest step ({compact(dist)}) at k = {k}. Final loss: plain {compact(float(result.losses[0, -1]))} "
                f"at (w, b) = ({wp:.3g}, {bp:.3g}); clipped {compact(float(result.losses[1, -1]))} at "
                f"({wc:.3g}, {bc:.3g}).")

    return Experiment(
        "The cliff: a gradient step thrown off, and the same step clipped",
        [log_slider("lr", "learning rate η", 1.0, 0.01, 10.0, grid=(1.0, 3.0)),
         log_slider("nu", "clipping threshold ν", 0.5, 0.01, 10.0, grid=(0.5, 2.0)),
         choice("b0", "start: b (w = 5)", [("−3.5", -3.5), ("−4", -4.0), ("−4.5", -4.5)], grid=False),
         int_slider("steps", "steps", 100, 10, 300, 10)],
        compute=compute, plot=plot, trains=False, figsize=(14.0, 5.2), describe=describe,
        alt=("Two panels for a one-unit recurrent network unrolled for 50 steps. Left: its loss over the recurrent "
             "weight and the bias as colour: two flat plateaus separated by a sharp wall running diagonally, with "
             "the low-loss valley along it; the paths of plain gradient descent and of the same descent clipped by "
             "norm from one start, the plain one thrown far across the wall by one step (arrow). Right: the loss "
             "and the gradient norm of both runs against the step on a log axis, the threshold dotted."),
    )
