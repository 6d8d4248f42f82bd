"""Chapter 4's widgets: the noise floor, schedules on the digits, warmup, and search."""
from __future__ import annotations

import functools
import math
from types import SimpleNamespace

from ..interact import Experiment, choice, compact, int_slider, log_slider
from ..modes import pick
from ..plots import lr_schedules as P
from ..scheduling.floor import DECAYS, FloorConfig, floor_runs
from . import register

# Every run here is a small least-squares problem or a small MLP: on the CPU, a GPU would only add launches.


@functools.lru_cache(maxsize=8)
def _floor_sweep(batch_size: int, steps: int):
    """The floor against η does not depend on the chosen η or decay: trained once per (B, steps)."""
    lrs = pick((0.01, 0.02, 0.04, 0.08, 0.16, 0.32), (0.02, 0.08, 0.32))
    return floor_runs(FloorConfig(lrs=lrs, batch_size=batch_size, steps=steps, seeds=pick(8, 2)))


@register("ch04.noise_floor")
def noise_floor() -> Experiment:
    """Constant η against a decaying η on noisy least squares, and the floor measured against its formula."""

    def compute(v, progress):
        b, steps = int(v["batch_size"]), int(v["steps"])
        sweep = _floor_sweep(b, steps)
        progress(0.5)
        pair = floor_runs(FloorConfig(lrs=(float(v["lr"]),), batch_size=b, steps=steps, decay=v["decay"],
                                      seeds=pick(8, 2)), progress=lambda f: progress(0.5 + 0.5 * f))
        return SimpleNamespace(pair=pair, sweep=sweep, lr=float(v["lr"]), diverged_at=pair.diverged_at,
                               diverged_run=pair.diverged_run)

    def plot(result, fig):
        left, middle, right = fig.subplots(1, 3)
        P.plot_floor_curves(result.pair, left)
        left.set_title("training")
        P.plot_floor_val(result.pair, middle)
        middle.set_title("validation")
        P.plot_floor_sweep(result.sweep, right, mark=result.lr)

    def describe(result) -> str:
        p = result.pair
        const, decayed = float(p.excess[0, -1]), float(p.excess[1, -1])
        if not (math.isfinite(const) and math.isfinite(decayed)):
            return f"η = {compact(result.lr)} is above the edge of stability 2/λ_max = {2 / p.task.lam_max:.3g}."
        return (f"Final f − f*: constant η {compact(const)} (floor predicted {compact(float(p.predicted[0]))}, "
                f"measured {compact(float(p.measured[0]))}); {p.config.decay} decay {compact(decayed)}. "
                f"Final validation loss: {float(p.val_loss[0, -1]):.4f} against {float(p.val_loss[1, -1]):.4f}.")

    return Experiment(
        "The noise floor: constant against decaying η",
        [log_slider("lr", "η (constant run; peak of the decaying run)", 0.16, 0.01, 1.0, grid=(0.04, 0.16)),
         int_slider("batch_size", "batch size B", 4, 1, 64, grid=(4, 16)),
         choice("decay", "decaying run", [(d, d) for d in DECAYS]),
         int_slider("steps", "steps", pick(3000, 300), 100, pick(6000, 600), 100)],
        compute=compute, plot=plot, trains=True, figsize=(15.0, 4.6), describe=describe,
        alt=("Three panels on noisy least squares. Left: the training loss above its minimum against the step, on "
             "a log scale, for SGD with the chosen constant learning rate, which levels off at a floor drawn "
             "dotted, and for a decaying learning rate from the same peak, which keeps falling below it. Middle: "
             "the validation loss of the same two runs, with the validation loss of the training minimum dotted. "
             "Right: the floor measured for six learning rates against the learning rate on log-log axes, on the "
             "formula's curve, a dashed straight line of slope one for small learning rates, the edge 2/λ_max "
             "dotted and the chosen learning rate as a star."),
    )
