"""Chapter 6's design widgets: batch norm before or after the ReLU, the original against the pre-activation
residual block, and one token sequence's normalized output as its batch changes (Experiments 6 and 7)."""
from __future__ import annotations

from dataclasses import dataclass

from ..gradients.residual_training import TrainConfig
from ..interact import Experiment, choice, int_slider, log_slider
from ..modes import pick
from ..normalization.placement import (InitProfile, PlacementConfig, ResidualOrder, ResidualOrderConfig,
                                       init_profile, placement, residual_order)
from ..normalization.sequences import NORM_LABELS, SequenceStatsConfig, sequence_stats
from ..plots import normalization_design as P
from . import register


@dataclass(frozen=True, eq=False)
class _Residual:
    """The trained run and the profile at initialization; the widget layer reads the run's divergence."""

    trained: ResidualOrder
    profile: InitProfile

    @property
    def diverged_at(self) -> int | None:
        return self.trained.diverged_at

    @property
    def diverged_run(self) -> str | None:
        return self.trained.diverged_run


@register("ch06.placement")
def placement_widget() -> Experiment:
    """Train a plain ReLU MLP on the digits with batch norm before or after each ReLU, or none, three seeds."""

    def compute(v, progress):
        c = PlacementConfig(positions=(v["position"],), depth=int(v["depth"]), width=pick(64, 16),
                            lrs=(float(v["lr"]),), seeds=pick(3, 1), train=TrainConfig(epochs=pick(8, 1)))
        return placement(c, progress)

    def plot(result, fig):
        left, right = fig.subplots(1, 2)
        P.plot_placement_curves(result, left)
        P.plot_placement_curves(result, right, what="val_acc")

    def describe(result) -> str:
        acc = 100 * result.final("val_acc")[0, 0]
        ok = acc[acc == acc]
        if len(ok) == 0:
            return ""
        return (f"{P.POSITION_LABELS[result.config.positions[0]]}: final validation accuracy "
                f"{', '.join(f'{a:.1f}%' for a in ok.tolist())} over {len(ok)} seed(s).")

    return Experiment(
        "Batch normalization before or after the ReLU",
        [choice("position", "batch norm", [("before the ReLU (Linear → BN → ReLU)", "before"),
                                           ("after the ReLU (Linear → ReLU → BN)", "after"),
                                           ("none (Linear → ReLU)", "none")]),
         log_slider("lr", "learning rate η (Adam)", 1e-2, 1e-4, 1.0, grid=(1e-3, 1e-2)),
         int_slider("depth", "depth D (layers with weights)", 10, 2, 16)],
        compute=compute, plot=plot, trains=True, figsize=(13.0, 4.8), describe=describe,
        alt=("Two panels for a He-initialized ReLU network of depth D trained with Adam on the digits, with batch "
             "normalization before each ReLU, after it, or not at all: the validation loss (left, log scale) and the "
             "validation accuracy (right) per epoch, one line per seed."),
    )


@register("ch06.residual_order")
def residual_order_widget() -> Experiment:
    """Train an original or a pre-activation residual MLP on the digits; the gradient's growth at initialization."""

    def compute(v, progress):
        n = int(v["blocks"])
        c = ResidualOrderConfig(blocks=(n,), arrangements=(v["arrangement"],), width=pick(64, 16), seeds=1,
                                train=TrainConfig(epochs=pick(16, 1), batch_size=128), zero_head=bool(v["zero_head"]))
        return _Residual(residual_order(c, progress), init_profile(n, pick(64, 16), batch=pick(256, 64)))

    def plot(result, fig):
        trained, profile = result.trained, result.profile
        left, right = fig.subplots(1, 2)
        P.plot_residual_curves(trained, left)
        P.plot_init_profile(profile, right, what="grad_ratio")

    def describe(result) -> str:
        trained, profile = result.trained, result.profile
        growth = (profile.grad_norm[:, 0] / profile.grad_norm[:, -1]).tolist()
        loss = float(trained.val_loss[0, 0, 0, -1])
        return (f"Final validation loss {loss:.3f}. At initialization the gradient grows by {growth[0]:.1f}× "
                f"(original) and {growth[1]:.1f}× (pre-activation) from the last block back to the first.")

    return Experiment(
        "Residual blocks: original or pre-activation",
        [choice("arrangement", "block", [("original: ReLU after the addition", "original"),
                                         ("pre-activation: nothing after the addition", "preact")]),
         int_slider("blocks", "residual blocks (two linear layers each)", 10, 1, 30, grid=(5, 10, 20)),
         choice("zero_head", "read-out at initialization", [("He-initialized", 0), ("zero", 1)])],
        compute=compute, plot=plot, trains=True, figsize=(13.0, 4.8),
        describe=describe,
        alt=("Two panels for residual MLPs on the digits (width 64, batch norm in every block). Left: the validation "
             "loss per epoch of the chosen block arrangement. Right: at initialization, the norm of the loss "
             "gradient with respect to each block's output divided by its value at the last block, for the original "
             "and the pre-activation arrangement; a higher curve means the gradient grows more on its way back."),
    )


@register("ch06.sequences")
def sequences_widget() -> Experiment:
    """One padded sequence's normalized features as the padding and the other sequences in its batch change."""

    def compute(v, progress):
        return sequence_stats(SequenceStatsConfig(extra_pad=int(v["extra_pad"]), others=int(v["others"]))), v["norm"]

    def plot(result, fig):
        stats, norm = result
        left, right = fig.subplots(1, 2)
        P.plot_sequence_output(stats, left, norm)
        P.plot_sequence_changes(stats, right)

    def describe(result) -> str:
        stats, norm = result
        i = stats.norms.index(norm)
        return (f"{NORM_LABELS[norm]}: the sequence's output changes by at most {float(stats.change[i]):.3g} "
                f"(padding alone: {float(stats.pad_change[i]):.3g}; other sequences alone: "
                f"{float(stats.others_change[i]):.3g}; train vs eval mode: {float(stats.eval_change[i]):.3g}).")

    return Experiment(
        "Normalizing token sequences: per token or over the batch",
        [choice("norm", "normalization", [("LayerNorm (per token)", "layer"),
                                          ("BatchNorm over all tokens", "batch"),
                                          ("BatchNorm, padding masked", "batch_masked"),
                                          ("RMSNorm (per token)", "rms")]),
         int_slider("extra_pad", "extra padding positions", 8, 0, 32, grid=(0, 8, 32)),
         int_slider("others", "other sequences in the batch (draw; 0: the reference)", 1, 0, 5, grid=(0, 1))],
        compute=compute, plot=plot, figsize=(13.0, 4.8), describe=describe,
        alt=("Two panels for one token sequence in a batch of eight padded sequences. Left: two of its normalized "
             "features per token position, in the reference batch (solid) and in the batch with more padding or "
             "other companion sequences (dashed); under LayerNorm and RMSNorm the lines coincide, under batch norm "
             "they move. Right: for each normalization, the largest change of the sequence's output when the padding "
             "grows, when the other sequences change, and between train and eval mode, on a log scale, with exact "
             "zeros marked 0."),
    )
