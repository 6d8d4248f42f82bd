"""Chapter 6's widgets on small batches and on training against evaluation mode (Experiments 4 and 5)."""
from __future__ import annotations

from ..interact import Experiment, choice, int_slider, slider
from ..modes import pick
from ..normalization.batch_size import BatchSizeConfig, batch_size_run
from ..normalization.train_eval import CouplingConfig, EvalModeConfig, coupling, eval_mode_study
from ..plots import normalization_batches as P
from . import register

PSIS = (0.001, 0.01, 0.1, 1.0)
TESTS = (("1", "1"), ("8", "8"), ("64", "64"), ("one digit per batch", "class"))
COUPLED = (("batch", "batch"), ("group (4 groups)", "group"), ("layer", "layer"), ("instance", "instance"),
           ("none", "none"))


@register("ch06.batch_size")
def batch_size_widget() -> Experiment:
    """Train the CNN with batch, group or layer norm at one batch size; both evaluation modes per epoch."""

    def compute(v, progress):
        # a subset of the digits keeps B = 2 (250 steps an epoch) within a few seconds
        c = BatchSizeConfig(norm=v["norm"], batch_size=int(v["batch"]), arch=v["net"], epochs=pick(3, 1),
                            train_examples=pick(400, 128), channels=pick(16, 4))
        return batch_size_run(c, progress=progress)

    def plot(result, fig):
        left, right = fig.subplots(1, 2)
        P.plot_batch_curves(result, left)
        P.plot_batch_accuracy(result, right)

    def describe(result) -> str:
        c = result.config
        return (f"{c.arch.upper()}, {c.norm} norm, B = {c.batch_size}: final validation accuracy "
                f"{100 * float(result.val_acc_eval[-1]):.1f}% in eval mode, {100 * float(result.val_acc_train[-1]):.1f}% "
                f"in train mode on batches of {c.batch_size}; validation loss gap (train − eval mode) {result.gap:+.3f}.")

    return Experiment(
        "Small batches: batch, group and layer normalization",
        [choice("norm", "normalization", [("batch", "batch"), ("group (4 groups)", "group"), ("layer", "layer"),
                                          ("none", "none")], default="batch", grid=("batch", "group", "layer")),
         choice("batch", "batch size B", [2, 4, 8, 32, 128], default=8, grid=(2, 8, 32)),
         choice("net", "network", [("CNN (statistics over B × 8 × 8 values)", "cnn"),
                                   ("MLP (statistics over B values)", "mlp")], default="cnn")],
        compute=compute, plot=plot, trains=True, figsize=(12.5, 4.6), describe=describe,
        alt=("Two panels for a small CNN or an MLP trained on 400 digits with one normalization at one batch size B. "
             "Left: cross-entropy loss per epoch on a log scale, the validation loss in eval mode (solid), in train "
             "mode on batches of B (dashed) and the training loss (dotted); for group and layer norm the two "
             "validation lines coincide; for batch norm in the MLP at B = 2 the dashed line lies well above the "
             "solid one, while in the CNN, whose statistics pool 64 positions per example, they nearly coincide. "
             "Right: validation accuracy per epoch in both modes."),
    )


@register("ch06.eval_mode")
def eval_mode_widget() -> Experiment:
    """A batch-norm CNN trained with weight ψ on its running statistics, evaluated with or without model.eval()."""

    def compute(v, progress):
        c = EvalModeConfig(momentum=float(v["psi"]), epochs=pick(4, 1), channels=pick(16, 4), test_batches=(1, 8, 64))
        result = eval_mode_study(c, progress=progress)
        return result, v["mode"], v["test"]

    def plot(out, fig):
        result, mode, test = out
        left, right = fig.subplots(1, 2)
        P.plot_class_accuracy(result, mode, test, left)
        P.plot_running_mean(result, right)

    def describe(out) -> str:
        r, mode, test = out
        by = dict(zip((str(b) for b in r.config.test_batches), r.train_acc.tolist()))
        return (f"Validation accuracy: {100 * r.eval_acc:.1f}% in eval mode; in train mode (a forgotten "
                f"model.eval()) {', '.join(f'{100 * a:.1f}% in batches of {b}' for b, a in by.items())}, "
                f"{100 * r.single_class_acc:.1f}% with one digit per batch; {100 * r.recalibrated_acc:.1f}% after "
                f"recalibration. One pass over the validation set in train mode moved the last batch norm's running "
                f"mean by {100 * r.drift:.1f}% of its length.")

    return Experiment(
        "Training mode against evaluation mode",
        [choice("psi", "running statistics' weight ψ (momentum)", [(f"{p:g}", p) for p in PSIS], default=0.1),
         choice("test", "test batch (train mode)", TESTS, default="8", grid=("1", "8", "class")),
         choice("mode", "evaluate in", [("eval mode", "eval"), ("train mode (forgot model.eval())", "train"),
                                        ("eval mode after recalibration", "recalibrated")], default="train",
                grid=("eval", "train"))],
        compute=compute, plot=plot, trains=True, figsize=(12.5, 4.6), describe=describe,
        alt=("Two panels for a batch-norm CNN trained on the digits. Left: validation accuracy per digit, outlined bars "
             "in eval mode and hatched bars in the chosen mode; in train mode on batches of one digit each, some "
             "digits lose many points. Right: for each channel of the last batch norm, the mean of its input over "
             "the training set, its running mean and the running mean after recalibration; with ψ = 0.001 the "
             "running mean lags far behind, with larger ψ the three lines nearly coincide."),
    )


@register("ch06.coupling")
def coupling_widget() -> Experiment:
    """Change one example of a batch and see which normalizations move the other examples' outputs."""

    def compute(v, progress):
        return coupling(CouplingConfig(norm=v["norm"], changed=int(v["changed"]), size=float(v["size"]), batch=8,
                                       channels=pick(16, 4)))

    def plot(result, fig):
        P.plot_coupling(result, fig.subplots())

    def describe(result) -> str:
        c = result.config
        return (f"{c.norm}: the largest change of another example's logits is {float(result.others('train').max()):.3g} "
                f"in train mode and {float(result.others('eval').max()):.3g} in eval mode (the changed example "
                f"itself: {float(result.train_change[c.changed]):.3g}).")

    return Experiment(
        "Batch coupling: one example changes, who else moves?",
        [choice("norm", "normalization", COUPLED, default="batch"),
         int_slider("changed", "changed example", 0, 0, 7),
         slider("size", "size of the change (noise standard deviation σ)", 1.0, 0.0, 5.0, grid=(0.5, 3.0))],
        compute=compute, plot=plot, trains=False, figsize=(9.5, 4.4), describe=describe,
        alt=("Bars for each of 8 examples in a batch of digits going through an untrained CNN, after noise is added to "
             "one of them: the largest change of its logits in train mode (solid) and eval mode (hatched). With batch "
             "norm in train mode every other example moves too; with group, layer or instance norm, without "
             "normalization, and in eval mode only the changed example moves."),
    )
