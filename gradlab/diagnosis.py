"""What :class:`gradlab.diagnostics.GradientMonitor` recorded, and the pathologies it shows, named in sentences
(Chapter 5; Chapters 6 and 7 reuse it).

Every threshold here is a **heuristic**, a rule of thumb with a keyword argument to change it, not a law:
- vanishing: the first weight layer's gradient norm below 1e-5, or the first-to-last ratio below 1e-3
  (a ratio "worse than 1000×"; flashcards hZMZoDI9 and fdvJHVTK of the source cards);
- exploding: a layer's gradient norm above 1000 (cards R5rol460, dMyti5Kp);
- dead units: more than 50% of a ReLU layer's units dead (card 004 Q13 says "> 50% zero activations", a
  fraction of entries; a healthy ReLU layer sits near 50% zero entries, so the tool counts dead units);
- updates: ‖Δw‖/‖w‖ per step around 1e-3 (Karpathy, "A Recipe for Training Neural Networks", 2019, and
  the CS231n notes); flagged when a weight layer's median is more than ``update_factor`` = 10 times off;
- saturation: more than half of a sigmoid or tanh layer's outputs saturated (this book's choice).
Quantities are medians over the recorded steps, except the largest gradient norm (exploding), the largest at
any step, and non-finite values, reported where and when they first appeared.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

__all__ = ["Diagnostics", "Finding", "find", "KINDS"]

KINDS = ("nonfinite", "exploding", "vanishing", "saturated", "dead", "inactive", "updates_large", "updates_small")


@dataclass(frozen=True)
class Finding:
    """One pathology: its ``kind`` (one of :data:`KINDS`), the layers involved, their values and a sentence."""

    kind: str
    layers: tuple[str, ...]
    values: tuple[float, ...]
    message: str
    step: int | None = None


@dataclass(frozen=True, eq=False)
class Diagnostics:
    """What a :class:`~gradlab.diagnostics.GradientMonitor` recorded: tensors (rows, recorded steps), float64, CPU.

    ``grad_norm``, ``weight_norm`` and ``update_ratio`` have one row per entry of ``layers``; the activation
    statistics one row per entry of ``activations`` (NaN where a statistic does not apply to the row's
    ``act_kinds``, or the row did not run in that step). ``weight_rows`` marks the rows with a weight matrix or
    kernel (a parameter of two or more dimensions): the first-to-last ratio compares the first and last of
    them, leaving norm layers out. ``nonfinite_forward`` is (step, module) of the first module in execution
    order whose output held a NaN or an infinity; ``nonfinite_backward`` is (step, parameter) of the first
    parameter, in backward order (output to input), whose gradient did.
    """

    layers: tuple[str, ...]
    weight_rows: tuple[bool, ...]
    steps: torch.Tensor  # the step k of each record
    grad_norm: torch.Tensor  # (layers, steps)
    weight_norm: torch.Tensor  # (layers, steps), before the step
    update_ratio: torch.Tensor  # (layers, steps) ‖Δw‖/‖w‖; NaN without an optimizer
    activations: tuple[str, ...]
    act_kinds: tuple[str, ...]
    act_mean: torch.Tensor  # (activation rows, steps)
    act_std: torch.Tensor
    saturated: torch.Tensor
    zero_fraction: torch.Tensor
    dead: torch.Tensor
    nonfinite_forward: tuple[int, str] | None = None
    nonfinite_backward: tuple[int, str] | None = None

    @property
    def diverged_at(self) -> int | None:
        """The first step with a non-finite value anywhere, or None."""
        found = [x[0] for x in (self.nonfinite_forward, self.nonfinite_backward) if x is not None]
        return min(found) if found else None

    def first_to_last(self) -> torch.Tensor:
        """Per recorded step, the first weight layer's gradient norm over the last one's."""
        idx = [i for i, w in enumerate(self.weight_rows) if w]
        if len(idx) < 2:
            return torch.full((len(self.steps),), math.nan, dtype=torch.float64)
        return self.grad_norm[idx[0]] / self.grad_norm[idx[-1]]

    def findings(self, **thresholds) -> tuple[Finding, ...]:
        """The pathologies found (keyword arguments: the heuristics of :func:`find`)."""
        return find(self, **thresholds)

    def diagnose(self, **thresholds) -> list[str]:
        """The findings as plain sentences; an empty list when the heuristics flag nothing."""
        return [f.message for f in find(self, **thresholds)]


def _median(x: torch.Tensor) -> torch.Tensor:
    """Median over steps (the last dimension) of the finite values; NaN for a row without any."""
    x = torch.where(torch.isfinite(x), x, torch.full_like(x, math.nan))
    return x.nanmedian(-1).values if x.shape[-1] else torch.full(x.shape[:-1], math.nan, dtype=x.dtype)


def _listing(names: list[str], values: list[float], fmt) -> str:
    shown = [f"{n} {fmt(v)}" for n, v in zip(names[:4], values[:4])]
    more = f" and {len(names) - 4} more" if len(names) > 4 else ""
    return ", ".join(shown) + more


def _pct(v: float) -> str:
    return f"{100 * v:.0f}%"


def _g(v: float) -> str:
    return f"{v:.2g}"


def find(d: Diagnostics, *, vanishing_below: float = 1e-5, ratio_below: float = 1e-3,
         exploding_above: float = 1e3, saturated_above: float = 0.5, dead_above: float = 0.5,
         update_target: float = 1e-3, update_factor: float = 10.0) -> tuple[Finding, ...]:
    """Name the pathologies in ``d``. Every threshold is a heuristic (see the module docstring for its source)."""
    out: list[Finding] = []
    s = len(d.steps)
    over = f"median over {s} recorded step{'s' if s != 1 else ''}"
    if d.nonfinite_forward or d.nonfinite_backward:
        parts = []
        if d.nonfinite_forward:
            parts.append(f"the forward pass first produced a NaN or an infinity in {d.nonfinite_forward[1]} at step "
                         f"{d.nonfinite_forward[0]}")
        if d.nonfinite_backward:
            parts.append(f"the first non-finite gradient, going backward from the output, was "
                         f"{d.nonfinite_backward[1]}'s at step {d.nonfinite_backward[0]}")
        where = tuple(x[1] for x in (d.nonfinite_forward, d.nonfinite_backward) if x)
        out.append(Finding("nonfinite", where, (), "Non-finite values: " + "; ".join(parts) + ".", d.diverged_at))
    if s == 0:
        return tuple(out)
    g = torch.where(torch.isfinite(d.grad_norm), d.grad_norm, torch.full_like(d.grad_norm, math.nan))
    if torch.isfinite(g).any():
        flat = int(torch.nan_to_num(g, nan=-1.0).argmax())
        i, j = divmod(flat, s)
        top = float(g[i, j])
        if top > exploding_above:
            out.append(Finding("exploding", (d.layers[i],), (top,),
                               f"Exploding gradients: the gradient norm of {d.layers[i]} reached {_g(top)} at step "
                               f"{int(d.steps[j])} (heuristic: above {_g(exploding_above)}).", int(d.steps[j])))
    weights = [i for i, w in enumerate(d.weight_rows) if w]
    if weights:
        first, last = weights[0], weights[-1]
        norm = float(_median(g[first]))
        ratio = float(_median(d.first_to_last())) if len(weights) > 1 else math.nan
        small, skewed = norm < vanishing_below, ratio < ratio_below
        if small or skewed:
            says = (f"the first layer's ({d.layers[first]}) gradient norm is {_g(norm)}" +
                    (f", {_g(ratio)} times the last layer's ({d.layers[last]})" if math.isfinite(ratio) else ""))
            out.append(Finding("vanishing", (d.layers[first], d.layers[last]), (norm, ratio),
                               f"Vanishing gradients: {says} ({over}; heuristics: a norm below "
                               f"{_g(vanishing_below)} or a ratio below {_g(ratio_below)})."))
    for kind, stat, limit, what in (
            ("saturated", d.saturated, saturated_above, "of their outputs saturated (φ' below a small fraction of "
                                                        "its largest value)"),
            ("dead", d.dead, dead_above, "of their units dead (output 0 for every example of the batch, so no "
                                         "gradient reaches their weights)"),
            ("inactive", d.dead, dead_above, "of their units negative on every example of the batch (not dead: "
                                             "Leaky ReLU and ELU still pass a fraction of the gradient)")):
        kinds = {"saturated": ("sigmoid", "tanh"), "dead": ("relu",), "inactive": ("leaky",)}[kind]
        med = _median(stat)
        rows = [i for i, k in enumerate(d.act_kinds) if k in kinds and float(med[i]) > limit]
        if rows:
            names, vals = [d.activations[i] for i in rows], [float(med[i]) for i in rows]
            title = {"saturated": "Saturated layers", "dead": "Dead units", "inactive": "Inactive units"}[kind]
            out.append(Finding(kind, tuple(names), tuple(vals),
                               f"{title}: {len(rows)} layer{'s' if len(rows) > 1 else ''} with "
                               f"{_listing(names, vals, _pct)} {what} ({over}; heuristic: above {_pct(limit)})."))
    ratio = _median(d.update_ratio)
    for kind, test, word in (("updates_large", lambda v: v > update_target * update_factor, "large"),
                             ("updates_small", lambda v: v < update_target / update_factor, "small")):
        rows = [i for i in weights if math.isfinite(float(ratio[i])) and test(float(ratio[i]))]
        if rows:
            names, vals = [d.layers[i] for i in rows], [float(ratio[i]) for i in rows]
            out.append(Finding(kind, tuple(names), tuple(vals),
                               f"Updates too {word} for the weights: ‖Δw‖/‖w‖ per step is "
                               f"{_listing(names, vals, _g)} ({over}; the rule of thumb is about {_g(update_target)}, "
                               f"flagged beyond "
                               f"{_g(update_factor)} times either way)."))
    return tuple(out)
