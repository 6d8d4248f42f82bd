"""Chapter 5's widgets on the backward product, signal propagation at initialization and deep networks that do
and do not train."""
from __future__ import annotations

import math

from ..gradients.deep_training import DeepConfig, train_deep
from ..gradients.jacobians import MAX_SLOPE, FactorsConfig, layer_factors
from ..gradients.nets import INITS
from ..gradients.signal import SignalConfig, propagate
from ..interact import Experiment, choice, compact, int_slider, log_slider
from ..modes import pick
from ..plots import gradients_signal as P
from . import register

SIGNAL_ACTIVATIONS = ("sigmoid", "tanh", "relu", "leaky_relu", "gelu", "silu")
INIT_LABELS = {"pytorch": "PyTorch's default", "small": "too small: U(±0.01)", "large": "too large: U(±2)",
               "xavier": "Xavier/Glorot", "he": "He/Kaiming", "orthogonal": "orthogonal"}


@register("ch05.factors")
def factors() -> Experiment:
    """Each layer's factor on the backward signal, split into what φ' and what the weights contribute."""

    def compute(v, progress):
        return layer_factors(FactorsConfig(depth=int(v["depth"]), activation=v["activation"], init=v["init"],
                                           gain=float(v["gain"]), width=pick(64, 32), batch=pick(256, 64)))

    def plot(result, fig):
        left, right = fig.subplots(1, 2)
        P.plot_factor_norms(result, left)
        P.plot_factor_split(result, right)

    def describe(result) -> str:
        g = result.weight_grad_norm
        story = result.activation_only()
        ratio = float(g[0] / g[-2]) if float(g[-2]) > 0 else float("nan")
        return (f"Layer 1's gradient is {compact(ratio)} times layer {result.config.depth - 1}'s; counting only "
                f"φ′ ≤ {result.max_slope:g} predicts {compact(float(story[0] / story[-2]))}.")

    return Experiment(
        "The backward pass as a product of per-layer factors",
        [choice("activation", "activation φ", [(a, a) for a in MAX_SLOPE if a not in ("linear", "leaky_relu")]),
         choice("init", "initialization", [(INIT_LABELS[i], i) for i in ("pytorch", "xavier", "he", "large")],
                grid=("pytorch", "xavier", "large")),
         int_slider("depth", "depth D", 10, 3, 30, grid=(10, 20)),
         log_slider("gain", "gain (× the initialization's std)", 1.0, 0.25, 4.0)],
        compute=compute, plot=plot, figsize=(12.0, 4.6), describe=describe,
        alt=("Two panels for a plain network at initialization on a batch of the digits. Left: the norm of each "
             "layer's weight gradient against the layer, on a log scale, measured (solid, with markers) and as "
             "the story that counts only the activation's largest derivative predicts (dashed). Right: for each "
             "layer, a bar for what the activation's derivative keeps of the backward signal, a hatched bar for "
             "what the transposed weights do to it, and a line for their product; dotted at 1, dashed at the "
             "derivative's maximum."),
    )


@register("ch05.signal")
def signal() -> Experiment:
    """Activation std and gradient size per layer at initialization, measured and from the variance recursions."""

    def compute(v, progress):
        return propagate(SignalConfig(depth=int(v["depth"]), width=int(v["width"]), activation=v["activation"],
                                      init=v["init"], gain=float(v["gain"]), batch=pick(128, 32)))

    def plot(result, fig):
        left, right = fig.subplots(1, 2)
        P.plot_signal_activations(result, left)
        P.plot_signal_gradients(result, right)

    def describe(result) -> str:
        c = result.config
        if result.overflow_layer is not None:
            return (f"The activations overflowed float32 at layer {result.overflow_layer} of {c.depth - 1}: they "
                    "grew past 3.4e38 and became infinite, and the loss with them. The dashed line is where the "
                    "recursion says they were heading.")
        if result.grad_overflow_layer is not None:
            return (f"The gradient overflowed float32 on its way down, at layer {result.grad_overflow_layer}: every "
                    "layer below it gets an infinite or NaN gradient.")
        first, last = float(result.grad_rms[0]), float(result.grad_rms[-1])
        tail = ("exactly 0: it underflowed float32" if first == 0 else f"{compact(first / last)} times that at the top")
        return (f"Activation std {compact(float(result.act_std[0]))} at layer 1, {compact(float(result.act_std[-1]))} "
                f"at layer {c.depth - 1}; the gradient at layer 1 is {tail}.")

    return Experiment(
        "Signal propagation at initialization",
        [choice("activation", "activation φ", [(a, a) for a in SIGNAL_ACTIVATIONS], grid=("sigmoid", "tanh", "relu")),
         choice("init", "initialization", [(INIT_LABELS[i], i) for i in INITS], grid=("pytorch", "large", "xavier", "he")),
         int_slider("depth", "depth D", 50, 2, 100, grid=(20, 100)),
         int_slider("width", "width d_l", pick(128, 32), 8, pick(512, 64), 8),
         log_slider("gain", "gain (× the initialization's std)", 1.0, 0.25, 4.0)],
        compute=compute, plot=plot, figsize=(12.0, 4.6), describe=describe,
        alt=("Two panels for a plain network at initialization, against the layer, on log scales. Left: the "
             "standard deviation of each layer's activations, measured on one network (solid) and from the "
             "variance recursion (dashed). Right: the size of the gradient of the loss with respect to each "
             "layer's activations, measured and from the recursion; crosses mark values that are exactly zero in "
             "float32, and a dotted vertical line the layer from which the values are no longer finite."),
    )


DEEP_LRS = {"momentum": 0.05, "Adam": 1e-3}


@register("ch05.deep")
def deep() -> Experiment:
    """Sigmoid against ReLU + He, plain against residual, at depth 5, 20 or 50, with or without BatchNorm."""

    def compute(v, progress):
        lr = DEEP_LRS[v["optimizer"]] * float(v["lr_scale"])
        return train_deep(DeepConfig(depth=int(v["depth"]), norm=v["norm"], optimizer=v["optimizer"], lr=lr,
                                     epochs=pick(10, 2), width=pick(64, 16)), progress=progress)

    def plot(result, fig):
        left, right = fig.subplots(1, 2)
        P.plot_deep_curves(result, left)
        P.plot_deep_ratio(result, right)

    def describe(result) -> str:
        final = result.val_loss[:, :, -1].mean(1).tolist()
        parts = [f"{label}: {'diverged' if not math.isfinite(v) else compact(v)}"
                 for label, v in zip(result.labels, final)]
        return "Final validation loss, " + "; ".join(parts) + "."

    return Experiment(
        "Deep networks that do and do not train",
        [int_slider("depth", "depth D", 20, 3, pick(50, 20), grid=(5, 20, pick(50, 20))),
         choice("norm", "normalization", [("none", "none"), ("BatchNorm", "batch")]),
         choice("optimizer", "optimizer", [("SGD + momentum (η = 0.05)", "momentum"), ("Adam (η = 0.001)", "Adam")],
                grid=False),
         log_slider("lr_scale", "η × (multiplies the optimizer's η)", 1.0, 0.1, 10.0)],
        compute=compute, plot=plot, trains=True, figsize=(12.0, 4.8), describe=describe,
        alt=("Two panels for four networks trained on the digits: sigmoid with PyTorch's default initialization "
             "and ReLU with He's, each plain and residual. Left: the validation loss after every epoch (solid, "
             "markers) and the training loss (dashed) on a log scale, with chance level (ln 10) dotted. Right: "
             "the ratio of the first layer's gradient norm to the last layer's at every step, on a log scale, "
             "with 1 dotted and the common alarm level of one in a thousand dashed."),
    )
