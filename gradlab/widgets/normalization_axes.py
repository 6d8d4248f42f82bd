"""Chapter 6's widgets on which numbers share statistics (Experiment 1) and on scale invariance with weight decay
(Experiment 8)."""
from __future__ import annotations

from ..interact import Experiment, choice, compact, int_slider, log_slider
from ..modes import pick
from ..normalization.axes import METHODS, AxesConfig, layout
from ..normalization.scale_invariance import ScaleConfig, equilibrium_angle, train_scale
from ..plots import normalization_axes as PA
from ..plots import normalization_scale as PS
from . import register

CHANNELS = 8  # channels drawn
GROUPS = (1, 2, 4, 8)
DECAYS = (0.0, 1e-4, 1e-3, 3e-3, 1e-2, 3e-2)


@register("ch06.axes")
def axes() -> Experiment:
    """The (B, channels, H·W) cube of one normalization with the numbers sharing one mean and variance filled."""

    def compute(v, progress):
        return layout(AxesConfig(method=v["method"], batch=int(v["batch"]), channels=CHANNELS,
                                 groups=int(v["groups"]), height=2, width=2))

    def plot(result, fig):
        PA.plot_norm_axes(result, fig.subplots())

    def describe(result) -> str:
        c = result.config
        how = {"batch": "one channel over the whole batch and every position (B·H·W)",
               "layer": "one example over every channel and position (channels·H·W)",
               "instance": "one example and one channel over its positions (H·W)",
               "group": f"one example and {c.channels // c.groups} channel(s) of a group over their positions "
                        "((channels/groups)·H·W)"}[c.method]
        return (f"{PA.NAMES[c.method]}: each mean and variance is over {result.count} numbers, {how}; "
                f"{result.sets} means per batch.")

    return Experiment(
        "Which numbers share one mean and variance",
        [choice("method", "normalization", [(PA.NAMES[m], m) for m in METHODS], default="group"),  # groups acts at once
         choice("groups", "groups (group norm)", [(str(g), g) for g in GROUPS], default=2, grid=(1, 2, 4)),
         int_slider("batch", "batch size B", 4, 1, 6, grid=(2, 4))],
        compute=compute, plot=plot, figsize=(7.0, 4.6), describe=describe,
        alt=("A tensor of a batch of B examples, 8 channels and 2×2 positions drawn as a box of small cells: "
             "channels across, positions down, examples into the page. The cells that share one mean and "
             "variance with the first example's first channel are filled dark blue; heavy lines bound every other "
             "set of cells that share statistics. Batch norm fills one channel through the whole batch, layer "
             "norm the whole front slab of one example, instance norm one channel of one example, group norm a "
             "block of adjacent channels of one example."),
    )


@register("ch06.scale")
def scale() -> Experiment:
    """‖W‖, effective learning rate η/‖W‖² and validation loss of a batch-norm MLP under SGD with weight decay α."""

    def compute(v, progress):
        return train_scale(ScaleConfig(lr=float(v["lr"]), weight_decay=float(v["decay"]),
                                       steps=pick(1500, 60), width=pick(64, 16), record_every=pick(10, 5)),
                           progress=progress)

    def plot(result, fig):
        a, b, c = fig.subplots(1, 3)
        PS.plot_weight_norm([result], a)
        PS.plot_effective_lr([result], b)
        PS.plot_scale_val_loss([result], c)

    def describe(result) -> str:
        r = result
        c = r.config
        if r.diverged_at is not None:
            return f"‖W‖ went from {compact(float(r.weight_norm[0]))} until the run diverged."
        if float(r.weight_norm[-1]) < 1e-3 * float(r.weight_norm[0]):
            return (f"‖W‖ collapsed from {compact(float(r.weight_norm[0]))} to {compact(float(r.weight_norm[-1]))}: "
                    "so small that batch norm's ε outweighs the variance σ²_𝓑 of W h, the scale invariance breaks and "
                    f"the layer passes almost nothing on (validation loss {r.val_loss[-1]:.3f}; ln 10 = 2.303 is "
                    "chance).")
        text = (f"‖W‖ of layer {c.layer + 1}: {compact(float(r.weight_norm[0]))} at the start, "
                f"{compact(float(r.weight_norm[-1]))} at the end; η/‖W‖² from {compact(float(r.effective_lr[0]))} to "
                f"{compact(float(r.effective_lr[-1]))}. Angle per step at the end: {compact(r.tail_angle())} rad")
        if c.weight_decay > 0:
            text += (f" (equilibrium √(2ηα) = {compact(equilibrium_angle(c.lr, c.weight_decay))}; ηα = "
                     f"{compact(c.lr * c.weight_decay)}, so equilibrium takes about 1/(4ηα) = "
                     f"{compact(round(1 / (4 * c.lr * c.weight_decay)))} steps)")
        return text + f". Validation loss at the end: {r.val_loss[-1]:.3f}."

    return Experiment(
        "Batch norm, weight decay and the effective learning rate",
        [choice("decay", "weight decay α", [(compact(a) if a else "0", a) for a in DECAYS], default=0.0,
                grid=(0.0, 1e-3, 1e-2)),
         log_slider("lr", "learning rate η", 0.4, 0.01, 3.0, grid=(0.1, 0.4))],
        compute=compute, plot=plot, trains=True, figsize=(15.0, 4.6), describe=describe,
        alt=("Three panels for a batch-norm network on the digits trained by plain SGD, against the step. Left: the "
             "norm of a hidden layer's weight matrix, which slowly grows without weight decay and shrinks towards a "
             "dotted equilibrium level with it. Middle: the effective learning rate, the learning rate divided by "
             "the squared norm, on a log scale, which weight decay raises. Right: the validation loss on a log "
             "scale."),
    )
