"""Divergence detection shared by every experiment: a run stops at the first NaN or infinite loss."""
from __future__ import annotations

import math
from typing import Iterable

import torch

__all__ = ["first_nonfinite", "is_finite", "diverged_message"]


def is_finite(x: float | torch.Tensor) -> bool:
    """True when ``x`` (a number or a tensor) holds only finite values."""
    if isinstance(x, torch.Tensor):
        return bool(torch.isfinite(x).all())
    return math.isfinite(x)


def first_nonfinite(values: Iterable[float]) -> int | None:
    """Index of the first NaN or infinite entry, or None when all are finite."""
    for i, v in enumerate(values):
        if not math.isfinite(float(v)):
            return i
    return None


def diverged_message(step: int, run: str | None = None) -> str:
    """The sentence every widget shows when a run blows up; ``run`` names it when the figure shows several."""
    who = f"The run {run} " if run else ""
    return (f"{who}diverged at step {step}: it blew up (its loss or its parameters became huge, infinite "
            "or NaN). "
            "The figure shows the run up to that step; try a smaller learning rate.")
