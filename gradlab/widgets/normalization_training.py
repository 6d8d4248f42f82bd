"""Chapter 6's training widgets: batch norm and the learning rate (Experiment 2), and Santurkar et al.'s evidence
for why batch norm helps (Experiment 3)."""
from __future__ import annotations

from types import SimpleNamespace

from ..interact import Experiment, choice, int_slider, log_slider
from ..modes import pick
from ..normalization.smoothness import SmoothnessConfig, smoothness
from ..normalization.stability import StabilityConfig, train_run
from ..plots import normalization_training as P
from . import register

NORM_OPTIONS = [("none", "none"), ("batch norm", "batch")]
NETWORK_OPTIONS = [("standard (no norm)", "standard"), ("batch norm", "batch"), ("batch norm + noise", "noisy")]
MEASURE_OPTIONS = [("loss curves + distribution shift", "curves"), ("loss variation along the gradient",
                                                                    "loss_variation"),
                   ("gradient predictiveness", "grad_change")]


def _stability_config(v: dict, norm: str) -> StabilityConfig:
    depth = int(v["depth"])
    return StabilityConfig(norm=norm, lr=float(v["lr"]), depth=pick(depth, max(2, depth // 3)), width=pick(64, 16),
                           epochs=pick(20, 2), batch_size=128, seed=0)


def _verdict(r) -> str:
    if r.diverged_at is not None:
        return f"diverged at step {r.diverged_at}"
    return f"final validation loss {r.final_val:.2f} ({'trains' if r.trains else 'does not train'})"


@register("ch06.stability")
def stability_widget() -> Experiment:
    """One deep plain MLP trained by SGD at η, with or without batch norm, beside its twin on the same batches."""

    def compute(v, progress):
        other = "none" if v["norm"] == "batch" else "batch"
        chosen = train_run(_stability_config(v, v["norm"]), progress=lambda f: progress(f / 2))
        twin = train_run(_stability_config(v, other), progress=lambda f: progress(0.5 + f / 2))
        bad = chosen if chosen.diverged_at is not None else (twin if twin.diverged_at is not None else None)
        return SimpleNamespace(chosen=chosen, twin=twin, diverged_at=bad and bad.diverged_at,
                               diverged_run=bad and f"({P.NORM_LABELS[bad.config.norm]})")

    def plot(result, fig):
        ax = fig.subplots()
        P.plot_stability_curves([result.chosen, result.twin], ax, label="norm")
        c = result.chosen.config
        ax.set_title(f"depth D = {c.depth}, plain SGD at η = {c.lr:g}, {c.epochs} epochs")

    def describe(result) -> str:
        a, b = result.chosen, result.twin
        return (f"{P.NORM_LABELS[a.config.norm].capitalize()}: {_verdict(a)}; its twin with "
                f"{P.NORM_LABELS[b.config.norm]}: {_verdict(b)}. 'Trains': ends below ln(10)/2 ≈ 1.15.")

    return Experiment(
        "Batch norm and the learning rate",
        [choice("norm", "normalization", NORM_OPTIONS, default="none"),
         log_slider("lr", "learning rate η", 0.1, 0.001, 10.0, grid=(0.01, 0.1, 1.0, 3.0)),
         int_slider("depth", "depth D (layers with weights)", 12, 4, 16, grid=(6, 12))],
        compute=compute, plot=plot, trains=True, figsize=(9.0, 4.8), describe=describe,
        alt=("The training (dashed) and validation (solid) loss per epoch, on a log scale, of a deep ReLU network on "
             "the digits trained by plain SGD at the chosen learning rate, with and without batch normalization, on "
             "the same mini-batches; a cross marks a run that diverged, and a dotted line the chance loss ln 10."),
    )


def _smooth_config(v: dict) -> SmoothnessConfig:
    return SmoothnessConfig(network=v["network"], lr=float(v["lr"]), depth=pick(8, 4), width=pick(64, 16),
                            epochs=pick(10, 1), probe_every=pick(10, 5), probe_layer=pick(4, 2),
                            ics_layer=pick(4, 2), seed=0)


@register("ch06.smoothness")
def smoothness_widget() -> Experiment:
    """One network (standard, batch norm, batch norm + noise): its losses beside its shift or smoothness measure."""

    def compute(v, progress):
        r = smoothness(_smooth_config(v), progress=progress)
        return SimpleNamespace(run=r, measure=v["measure"], diverged_at=r.diverged_at,
                               diverged_run=f"({P.NETWORK_LABELS[r.config.network]})")

    def plot(result, fig):
        left, right = fig.subplots(1, 2)
        P.plot_smooth_losses([result.run], left)
        if result.measure == "curves":
            P.plot_shift(result.run, right)
        else:
            P.plot_smooth_measure([result.run], result.measure, right)

    def describe(result) -> str:
        r = result.run
        val = float(r.val_loss[-1])
        med = lambda t: float(t.median()) if len(t) else float("nan")  # noqa: E731
        return (f"{P.NETWORK_LABELS[r.config.network].capitalize()} at η = {r.config.lr:g}: final validation loss "
                f"{val:.2f}; distribution shift of layer {r.config.probe_layer + 1}'s input {r.shift:.2f} per step; "
                f"median over the probes: loss variation {med(r.loss_variation):.3g}, gradient change "
                f"{med(r.grad_change):.3g}.")

    return Experiment(
        "Why batch norm helps: shift or smoothness?",
        [choice("network", "network", NETWORK_OPTIONS, default="batch"),
         log_slider("lr", "learning rate η", 0.5, 0.05, 2.0, grid=(0.1, 0.5)),
         choice("measure", "shown on the right", MEASURE_OPTIONS, default="curves")],
        compute=compute, plot=plot, trains=True, figsize=(12.0, 4.8), describe=describe,
        alt=("Two panels for one ReLU network of depth 8 on the digits (standard, with batch norm, or with batch norm "
             "followed by random noise), trained by plain SGD. Left: training (dashed) and validation (solid) loss per "
             "epoch. Right, as chosen: the mean ± one standard deviation over each mini-batch of three units' inputs "
             "to a middle layer at every step (the distribution shift), or at probes during training the range of the "
             "loss along the gradient direction, or the largest change of the gradient along it."),
    )
