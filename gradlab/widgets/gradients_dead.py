"""Chapter 5's dead-ReLU widget (Experiment 4): kill units by one large step or a negative bias, then train on."""
from __future__ import annotations

from ..gradients.dead_relu import DeadReluConfig, dead_relu
from ..interact import Experiment, choice, int_slider, log_slider
from ..modes import pick
from ..plots import diagnostics as P
from . import register

SLOPES = (0.0, 0.01, 0.1, 0.2, 0.3)  # 0.01 is nn.LeakyReLU's default; 0.2 the source cards' value


def _config(v: dict) -> DeadReluConfig:
    big = v["cause"] == "big_step"
    # The large step comes after the network has learned (10 epochs); the bias is set at initialization,
    # so that run gets the same budget of epochs for training afterwards.
    return DeadReluConfig(cause=v["cause"], size=float(v["size"]), negative_slope=float(v["slope"]),
                          depth=int(v["depth"]), width=pick(64, 16), warm_epochs=pick(10, 1) if big else 0,
                          recovery_epochs=pick(10, 1) if big else pick(20, 2))


def _counts(row) -> str:
    return ", ".join(f"{round(float(f) * 100)}%" if f == f else "n/a" for f in row)


@register("ch05.dead_relu")
def dead_relu_widget() -> Experiment:
    """Dead units per hidden layer before and after a shock and after further training, beside the losses."""

    def compute(v, progress):
        return dead_relu(_config(v), progress=progress)

    def plot(result, fig):
        left, right = fig.subplots(1, 2, gridspec_kw={"width_ratios": [1.15, 1.0]})
        P.plot_dead_phases(result, left)
        P.plot_dead_losses(result, right)

    def describe(result) -> str:
        c = result.config
        what = "negative on every training example" if c.negative_slope > 0 else "dead on the training set"
        shock = (f"one step at {c.size:g} η" if c.cause == "big_step" else f"every hidden bias set to −{c.size:g}")
        acc = result.val_acc
        k = result.shock_index
        back = (f"back within 1 point of the control after {result.recovered_in} epoch"
                f"{'s' if result.recovered_in != 1 else ''}" if result.recovered_in is not None
                else "not back within 1 point of the control in the budget")
        text = (f"Shock: {shock}. Units {what}, hidden layers 1 to {len(result.layers)}: before "
                f"{_counts(result.dead[0])}; just after {_counts(result.dead[1])}. Outputs ≤ 0 in the last hidden "
                f"layer just after: {100 * float(result.zero_fraction[1, -1]):.0f}% of examples × units. ")
        if result.diverged_at is not None:
            return text + (f"Validation accuracy {100 * float(acc[0, k - 1]):.0f}% before, "
                           f"{100 * float(acc[0, k]):.0f}% just after; the training after the shock diverged.")
        return text + (f"After training on: {_counts(result.dead[2])}; revived (dead after the shock, alive at the "
                       f"end): {', '.join(map(str, result.revived))} of {result.units} per layer. Validation accuracy "
                       f"{100 * float(acc[0, k - 1]):.0f}% before, {100 * float(acc[0, k]):.0f}% just after, "
                       f"{100 * float(acc[0, -1]):.0f}% at the end (control {100 * float(acc[1, -1]):.0f}%); {back}.")

    return Experiment(
        "Dead ReLUs: a large step or a negative bias",
        [choice("cause", "cause", [("one large step", "big_step"), ("negative bias b = −c", "negative_bias")]),
         log_slider("size", "size: η multiple (large step) or c (bias)", 100.0, 0.1, 1000.0,
                    grid=(10.0, 100.0, 1000.0)),
         choice("slope", "Leaky ReLU slope ω (0: ReLU)", [(f"{s:g}", s) for s in SLOPES], default=0.0,
                grid=(0.0, 0.01, 0.2)),
         int_slider("depth", "depth D (layers with weights)", 5, 2, 8)],
        compute=compute, plot=plot, trains=True, figsize=(13.0, 4.8), describe=describe,
        alt=("Two panels for a ReLU network on the digits, shocked by one large learning-rate step after ten epochs "
             "or by a negative bias in every hidden layer at initialization. Left: for each hidden layer, grouped "
             "bars of the fraction of its units dead on the whole training set (for Leaky ReLU: negative on every "
             "example) before the shock, just after it, and after further training. Right: the training (dashed) "
             "and validation (solid) loss per epoch of the shocked network and of an unshocked control trained on "
             "the same mini-batches, with the shock dotted."),
    )
