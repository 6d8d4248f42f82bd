"""Chapter 5's widgets on numerics: gradients in float16 and loss scaling, GradScaler's dynamic scale, and the
activations' derivatives."""
from __future__ import annotations

import functools
import math
from types import SimpleNamespace

from ..gradients.activations import LABELS, NAMES, activation_curves
from ..gradients.nets import NetConfig
from ..gradients.precision import GradientsConfig, cast_gradients, trained_gradients
from ..gradients.loss_scaling import ScalerConfig, scaler_run
from ..interact import Experiment, choice, compact, int_slider, log_slider, slider
from ..modes import fast_mode, pick
from ..plots import gradients_numerics as P
from . import register

# Small MLPs on the digits: on the CPU, where a GPU would only add launches. torch.autocast takes float16 on the
# CPU too (slower than bfloat16 there, but the same arithmetic a GPU would do).
NETWORKS = {
    "sigmoid": ("sigmoid, D = 10, PyTorch's init", NetConfig(depth=10, activation="sigmoid"), 0.05),
    "relu": ("ReLU, D = 10, He init", NetConfig(depth=10, activation="relu", init="he"), 0.01),
    "tanh": ("tanh, D = 10, PyTorch's init", NetConfig(depth=10, activation="tanh"), 0.05),
}
EXPONENTS = tuple(range(0, 33))


def gradients_config(network: str) -> GradientsConfig:
    """The run behind the precision widget's network ``network`` (a key of NETWORKS)."""
    _, net, lr = NETWORKS[network]
    return GradientsConfig(net=net, steps=pick(300, 30), lr=lr)


@functools.lru_cache(maxsize=4)
def _trained(network: str, fast: bool):
    """Training the network is the slow part: once per network (and mode), for both formats and every 𝒮."""
    return trained_gradients(gradients_config(network), exponents=EXPONENTS)


@functools.lru_cache(maxsize=8)
def _cast(network: str, fmt: str, fast: bool):
    grads = _trained(network, fast)
    return grads, cast_gradients(grads.grads, fmt, EXPONENTS)


@register("ch05.precision")
def precision() -> Experiment:
    """A trained network's float32 gradients cast to float16 or bfloat16, with a loss scale 𝒮, a power of 2."""

    def compute(v, progress):
        grads, cast = _cast(v["network"], v["format"], fast_mode())
        progress(1.0)  # one call: the training behind it is done once per network and then reused
        return SimpleNamespace(grads=grads, cast=cast, log2_scale=int(v["log2_scale"]), network=v["network"],
                               diverged_at=grads.diverged_at)

    def plot(result, fig):
        left, middle, right = fig.subplots(1, 3, gridspec_kw={"width_ratios": [1.3, 1.0, 0.8]})
        P.plot_gradient_histogram(result.cast, result.log2_scale, left)
        P.plot_cast_fractions(result.cast, result.log2_scale, middle, measured=result.grads)
        P.plot_layer_underflow(result.cast, result.log2_scale, right)

    def describe(result) -> str:
        c, g, e = result.cast, result.grads, result.log2_scale
        i = c.exponents.index(e)
        free = [x for x, o in zip(c.exponents, c.overflow.tolist()) if o == 0]
        if len(free) == len(c.exponents):
            top = f"; no 𝒮 up to 2^{c.exponents[-1]} overflows"
        else:
            top = f"; the largest 𝒮 without overflow here is 2^{max(free)}" if free else ""
        real = ""
        if c.limits.name == "float16" and e in g.exponents:
            j = g.exponents.index(e)
            real = (f" A float16 autocast backward of 𝒮·𝓛 at this 𝒮: "
                    f"{100 * float(g.autocast_underflow[j]):.3g}% round to 0, "
                    f"{100 * float(g.autocast_overflow[j]):.3g}% inf or NaN.")
        return (f"{NETWORKS[result.network][0]}, validation loss {g.val_loss:.3f}. In {c.limits.name} at "
                f"𝒮 = 2^{e}: {100 * float(c.underflow[i]):.3g}% of the nonzero entries round to 0 (they "
                f"carry {compact(float(c.lost_norm[i]))} of ‖g‖), "
                f"{100 * float(c.subnormal[i]):.3g}% are subnormal, "
                f"{100 * float(c.overflow[i]):.3g}% overflow; normal entries are off by at most "
                f"{compact(float(c.error_max[i]))} (median {compact(float(c.error_median[i]))}){top}." + real)

    return Experiment(
        "Gradients in float16: underflow and the loss scale",
        [choice("network", "network", [(label, key) for key, (label, _, _) in NETWORKS.items()], grid=("sigmoid", "relu")),
         choice("format", "format", [("float16", "float16"), ("bfloat16", "bfloat16")]),
         int_slider("log2_scale", "log2 𝒮 (the loss scale 𝒮 is a power of 2)", 0, 0, 32, grid=(0, 16, 24))],
        compute=compute, plot=plot, trains=True, figsize=(15.0, 4.6), describe=describe,
        alt=("Three panels for the float32 gradient of a 10-layer network trained on the digits. Left: a histogram "
             "of log2 of the absolute value of its entries, spanning many powers of two, with the ranges where the "
             "scaled gradient would round to zero, become subnormal, or overflow to infinity in the chosen format "
             "shaded; the loss scale slides these ranges left. Middle: the fraction of entries that round to zero, "
             "become subnormal or overflow against log2 of the loss scale, on a log axis, with the "
             "chosen one dotted; for float16, open circles show the same fractions measured in a real float16 "
             "autocast backward. Right: per layer, from input to output, the fraction of entries that round to zero."),
    )


OVERFLOWS = {"none": 0, "one": 1, "three": 3}  # bad steps in a row, from a third into the run


def _bad_steps(kind: str, steps: int) -> tuple[int, ...]:
    return tuple(range(steps // 3, steps // 3 + OVERFLOWS[kind]))


@register("ch05.scaler")
def scaler() -> Experiment:
    """torch.amp.GradScaler's loss scale on the digits: backoff on an overflow, growth after clean steps."""

    def compute(v, progress):
        steps = pick(600, 60)
        cfg = ScalerConfig(steps=steps, growth_interval=int(v["growth_interval"]),
                           init_scale=2.0 ** int(v["log2_init"]), overflow_steps=_bad_steps(v["overflow"], steps),
                           gradients=v["gradients"])
        return scaler_run(cfg, progress=progress)

    def plot(run, fig):
        left, right = fig.subplots(1, 2, gridspec_kw={"width_ratios": [1.4, 1.0]})
        P.plot_scale(run, left)
        P.plot_scaler_loss(run, right)

    def describe(run) -> str:
        skipped = [int(k) for k in run.skipped.nonzero().flatten()]
        listed = ", ".join(map(str, skipped[:8])) + (" …" if len(skipped) > 8 else "")
        return (f"{len(skipped)} of {len(run.scale)} steps skipped" + (f" (steps {listed})" if skipped else "") +
                f"; 𝒮 went from 2^{math.log2(float(run.scale[0])):g} to 2^{math.log2(float(run.scale[-1])):g}, "
                f"between 2^{math.log2(float(run.scale.min())):g} and 2^{math.log2(float(run.scale.max())):g}; the "
                f"from-scratch rule agrees at every step: {bool((run.scale == run.rule_scale).all())}.")

    return Experiment(
        "GradScaler's dynamic loss scale",
        [int_slider("growth_interval", "growth interval (clean steps before 𝒮 doubles)", 100, 10, 2000, 10,
                    grid=(100, 2000)),
         choice("overflow", "injected bad steps (an inf in the gradient)",
                [("none", "none"), ("one, a third into the run", "one"), ("three in a row", "three")],
                grid=("none", "three")),
         choice("gradients", "gradients", [("float16: torch.autocast (the real thing)", "autocast"),
                                           ("float16: a float32 backward, 𝒮·g rounded", "rounded"),
                                           ("float32 (only the injected infs)", "float32")],
                default="rounded", grid=False),  # the same skips as autocast (tests/test_precision.py), faster
         int_slider("log2_init", "log2 of the initial scale (PyTorch: 16)", 16, 0, 24)],
        compute=compute, plot=plot, trains=True, figsize=(13.0, 4.8), describe=describe,
        alt=("Two panels for a 5-layer ReLU network trained on the digits with torch.amp.GradScaler. Left: log2 of "
             "the loss scale against the step, a staircase that doubles after each run of clean steps and halves "
             "at every step whose gradient holds an inf, marked with a cross (those steps are skipped); a dotted "
             "line, the same rule written from scratch, lies on it; a thin grey line is 65504 divided by the "
             "largest gradient entry, the scale above which float16 overflows. Right: the mini-batch loss against "
             "the step on a log scale, with the skipped steps marked."),
    )


@register("ch05.activations")
def activations() -> Experiment:
    """An activation φ, its derivative φ′ (autograd), and the spread of φ′(z) for z ~ N(0, σ²)."""

    def compute(v, progress):
        return activation_curves(v["activation"], float(v["omega"]), float(v["variance"]), samples=pick(20_000, 4_000))

    def plot(curves, fig):
        left, middle, right = fig.subplots(1, 3)
        P.plot_activation(curves, left)
        P.plot_derivative(curves, middle)
        P.plot_derivative_histogram(curves, right)

    def describe(curves) -> str:
        s = curves.stats
        top = f" at z = {round(s.d_max_at, 4) + 0.0:.4g}" if s.d_max_at is not None else ""
        low = f", min φ′ = {s.d_min:.4g} at z = {s.d_min_at:.4g}" if s.d_min_at is not None else ""
        return (f"{LABELS[s.name]}: max φ′ = {s.d_max:.4g}{top}{low}. For z ~ N(0, {compact(s.variance)}): E[φ′(z)] = "
                f"{s.mean_d:.4f}, E[φ′(z)²] = {s.mean_d_sq:.4f}. Ten layers of the largest φ′ multiply a gradient "
                f"by at most {compact(s.d_max ** 10)}, the weights' factors not counted.")

    return Experiment(
        "Activations and their derivatives",
        [choice("activation", "activation φ", [(LABELS[n], n) for n in NAMES], default="leaky_relu"),
         slider("omega", "Leaky ReLU's slope ω", 0.01, 0.0, 0.5, 0.01),
         log_slider("variance", "variance σ² of the pre-activation z", 1.0, 0.01, 100.0)],
        compute=compute, plot=plot, trains=False, figsize=(15.0, 4.6), describe=describe,
        alt=("Three panels for the chosen activation function. Left: the function against its input, with the "
             "bell-shaped density of a normal input of variance σ² shaded underneath. Middle: its derivative, "
             "computed by autograd, with its maximum marked and dotted levels at 1 and at 0.25, sigmoid's largest "
             "derivative. Right: a histogram of the derivative at normal inputs of variance σ², with its mean and "
             "the square root of its mean square as vertical lines."),
    )
