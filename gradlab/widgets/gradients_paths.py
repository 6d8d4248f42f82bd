"""Chapter 5's widgets on residual connections: plain against residual stacks at initialization, a highway
network's gates, and the lesion study."""
from __future__ import annotations

import math

from ..gradients.highway import HighwayConfig, highway_study
from ..gradients.residual_training import LesionConfig, TrainConfig, lesion
from ..gradients.nets import NetConfig
from ..gradients.residual import NETWORKS, DepthProfileConfig, depth_profile
from ..interact import Experiment, choice, compact, int_slider, slider
from ..modes import pick
from ..plots import gradients_paths as P
from . import register

# Small MLPs on the digits: on the CPU, a GPU would only add kernel launches.
# Adam's η per (kind, norm): of 1e-4 … 3e-2 (half decades), the lowest validation loss after 10 epochs at D = 20,
# seed 0 (gradlab.gradients.residual_training.depth_training; the chapter's sweep).
LR = {("plain", "none"): 3e-3, ("residual", "none"): 1e-2, (NETWORKS[2], "none"): 3e-4,
      ("plain", "batch"): 1e-2, ("residual", "batch"): 3e-3, (NETWORKS[2], "batch"): 3e-3}
HIGHWAY_LR = 1e-3  # the same sweep for the highway network (gate bias −2, D = 20): 1e-3 of 3e-4 … 1e-2
NORMS = [("none", "none"), ("batch norm", "batch"), ("layer norm", "layer")]


def depth_config(v: dict) -> DepthProfileConfig:
    """ch05.residual_depth's config for control values ``v`` (the tests pin its claims through it)."""
    return DepthProfileConfig(depth=int(v["depth"]), width=pick(64, 32), init=v["init"], norm=v["norm"],
                              examples=pick(256, 64))


def highway_config(v: dict) -> tuple[HighwayConfig, TrainConfig]:
    """ch05.highway's highway network and training for control values ``v``."""
    net = NetConfig(width=pick(64, 16), depth=int(v["depth"]), init="he")
    return HighwayConfig(net, gate_bias=float(v["gate_bias"])), TrainConfig(epochs=pick(8, 1), lr=HIGHWAY_LR)


def lesion_config(v: dict) -> LesionConfig:
    """ch05.lesion's config for control values ``v``."""
    kind, norm = v["network"], v["norm"]
    return LesionConfig(kind=kind, depth=int(v["depth"]), width=pick(64, 16), norm=norm,
                        train=TrainConfig(epochs=pick(10, 1), lr=LR[kind, norm]), draws=pick(5, 2))


@register("ch05.residual_depth")
def residual_depth() -> Experiment:
    """Plain, residual and zero-initialized residual MLPs at initialization: activation std and gradient per layer."""

    def compute(v, progress):
        return depth_profile(depth_config(v))

    def plot(result, fig):
        left, right = fig.subplots(1, 2)
        P.plot_depth_std(result, left)
        P.plot_depth_grads(result, right)

    def describe(result) -> str:
        rms = ", ".join(f"{P.LABELS[n]} {compact(float(g))}" for n, g in zip(NETWORKS, result.input_grad))
        last = ", ".join(f"{P.LABELS[n]} {compact(float(s))}" for n, s in zip(NETWORKS, result.act_std[:, -1]))
        return f"RMS gradient ‖∂ℓ/∂x‖ at the input: {rms}. Standard deviation of h_(D−1): {last}."

    return Experiment(
        "Plain against residual stacks at initialization",
        [choice("depth", "depth D", [("20", 20), ("50", 50), ("100", 100)], default=50),
         choice("init", "initialization", [("He (kaiming_normal_)", "he"), ("PyTorch's default U(±1/√d)", "pytorch")]),
         choice("norm", "normalization", NORMS, grid=("none", "batch"))],
        compute=compute, plot=plot, trains=False, figsize=(12.0, 4.6), describe=describe,
        alt=("Two panels for three freshly initialized ReLU networks of the same depth on a batch of the digits: "
             "plain, residual, and residual with every branch's last layer set to zero. Left: the standard "
             "deviation of each layer's activations against the layer, on a log axis. Right: the norm of the "
             "loss gradient with respect to each layer's weights against the layer, on a log axis."),
    )


@register("ch05.highway")
def highway() -> Experiment:
    """A highway MLP trained on the digits: its learned transform gates, against a zero-initialized residual MLP."""

    def compute(v, progress):
        net, training = highway_config(v)
        return highway_study(net, training, seed=0, baseline_lr=LR[NETWORKS[2], "none"], progress=progress)

    def plot(result, fig):
        left, right = fig.subplots(1, 2)
        P.plot_highway_gates(result, left)
        P.plot_highway_curves(result, right)

    def describe(result) -> str:
        acc = [float(c.val_acc[-1]) for c in (result.highway, result.residual)]
        text = ", ".join("diverged" if not math.isfinite(a) else f"{a:.3f}" for a in acc)
        return (f"Validation accuracy, highway and residual: {text}. Mean gate after training "
                f"{float(result.gate_mean.mean()):.3f} (at initialization {float(result.gate_init.mean()):.3f}); "
                f"parameters {result.params[0]:,} against {result.params[1]:,}.")

    return Experiment(
        "A highway network's gates",
        [int_slider("depth", "depth D", 20, 5, 40, 5, grid=(10, 30)),
         slider("gate_bias", "gate bias at initialization", -2.0, -4.0, 1.0, 0.5, grid=(-3.0, -1.0, 0.0))],
        compute=compute, plot=plot, trains=True, figsize=(12.0, 4.6), describe=describe,
        alt=("Two panels for a highway network trained on the digits. Left: against the layer, the mean value of "
             "its transform gates (0 carries the input, 1 transforms it) at initialization and after training, and "
             "the fraction of gate values above one half. Right: the validation loss against the epoch for the "
             "highway network and for a residual network of the same depth whose branches start at zero, with "
             "each one's parameter count and final accuracy."),
    )


@register("ch05.lesion")
def lesion_study() -> Experiment:
    """Delete hidden layers of a trained plain or residual MLP at test time (Veit et al. 2016's lesion study)."""

    def compute(v, progress):
        return lesion(lesion_config(v), progress=progress)

    def plot(result, fig):
        left, right = fig.subplots(1, 2)
        P.plot_lesion_single([result], left)
        P.plot_lesion_multi([result], right)

    def describe(result) -> str:
        s = result.single
        return (f"Validation accuracy intact {result.base:.3f}; with one layer deleted: mean {float(s.mean()):.3f}, "
                f"worst {float(s.min()):.3f} (layer {int(s.argmin()) + 2}).")

    return Experiment(
        "Deleting layers of a trained network",
        [choice("network", "network", [(P.LABELS[k], k) for k in NETWORKS], default="residual"),
         choice("norm", "normalization", NORMS[:2], default="batch"),
         int_slider("depth", "depth D", 20, 5, 50, 5, grid=(20, 50))],
        compute=compute, plot=plot, trains=True, figsize=(12.0, 4.6), describe=describe,
        alt=("Two panels for a network trained on the digits, then tested with some of its hidden layers deleted "
             "(each such layer passes its input on unchanged). Left: the validation accuracy with one layer deleted, "
             "against which layer, beside the intact network's accuracy as a dotted line. Right: the validation "
             "accuracy against the number of layers deleted at random, the mean and the range over random draws, "
             "with chance (one in ten) dotted."),
    )
