"""Predict-then-run exercises: the reader commits to a prediction, then the check runs and answers.

Every chapter's exercise cells call :func:`check`. The measurement is a callable that is only run
once a prediction is in, so a notebook executed with no prediction (the website, a first read in
Colab) never prints the answer: it asks for a prediction instead, and the folded solution below the
cell holds the explanation.
"""
from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

__all__ = ["Verdict", "judge", "check", "ASK"]

ASK = ("Write your prediction in the cell and run it again: the measured answer is shown only "
       "after you have predicted.")


@dataclass(frozen=True)
class Verdict:
    """The outcome of one check: ``right`` is None when no prediction was given or it was unusable."""

    right: bool | None
    message: str
    measured: Any = None


def _as_number(x: Any) -> float | None:
    if isinstance(x, bool) or not isinstance(x, numbers.Real):
        try:  # a 0-d tensor or numpy scalar
            if getattr(x, "ndim", None) == 0 or getattr(x, "shape", None) == ():
                return float(x)
        except (TypeError, ValueError):
            return None
        return None
    return float(x)


def _fmt(x: Any) -> str:
    v = _as_number(x)
    if v is None:
        return repr(x)
    if math.isfinite(v) and v == int(v) and abs(v) < 1e15:
        return str(int(v))
    return f"{v:.4g}"


def _close(pred: float, meas: float, rel_tol: float, abs_tol: float) -> bool:
    return math.isclose(pred, meas, rel_tol=rel_tol, abs_tol=abs_tol)


def _one(name: str, pred: Any, meas: Any, rel_tol: float, abs_tol: float,
         choices: Sequence[str] | None) -> tuple[bool | None, str]:
    label = f"{name}: " if name else ""
    if choices is not None:
        if not isinstance(pred, str) or pred.strip().lower() not in [c.lower() for c in choices]:
            return None, (f"{label}your prediction {pred!r} is not one of the choices "
                          f"{', '.join(repr(c) for c in choices)}. Pick one and run the cell again.")
        ok = pred.strip().lower() == str(meas).lower()
        return ok, f"{label}you predicted {pred!r}; the run says {meas!r}."
    p, m = _as_number(pred), _as_number(meas)
    if p is None or not math.isfinite(p):
        return None, (f"{label}your prediction {pred!r} is not a finite number. "
                      "Write a number (for example 40 or 1e-3) and run the cell again.")
    if m is None or not math.isfinite(m):
        ok = m is not None and p == m
        return ok, f"{label}you predicted {_fmt(pred)}; the run gives {_fmt(meas)}."
    ok = _close(p, m, rel_tol, abs_tol)
    return ok, f"{label}you predicted {_fmt(pred)}; the run gives {_fmt(meas)}."


def judge(prediction: Any, measure: Callable[[], Any], *, rel_tol: float = 0.1,
          abs_tol: float = 0.0, choices: Sequence[str] | None = None) -> Verdict:
    """Compare a prediction with ``measure()``; ``measure`` runs only if a prediction was given.

    ``prediction`` is a number, one of ``choices`` (case-insensitive), or a dict of them whose keys
    match the dict ``measure`` returns. Numbers count as right within ``rel_tol`` (relative) or
    ``abs_tol`` (absolute). ``None`` (or a dict holding one) means "not predicted yet".
    """
    if not callable(measure):
        raise TypeError("check() needs the measurement as a function, for example "
                        "check(your_value, lambda: run(...)), so that it runs only after you predict")
    if prediction is None or prediction is Ellipsis or (
            isinstance(prediction, Mapping) and any(v is None for v in prediction.values())):
        return Verdict(None, ASK)
    measured = measure()
    if isinstance(prediction, Mapping):
        if not isinstance(measured, Mapping) or set(measured) != set(prediction):
            want = ", ".join(map(repr, measured)) if isinstance(measured, Mapping) else "one value"
            return Verdict(None, f"This exercise asks for {want}; your prediction has "
                                 f"{', '.join(map(repr, prediction))}.")
        parts = [_one(str(k), prediction[k], measured[k], rel_tol, abs_tol, choices) for k in measured]
    else:
        if isinstance(measured, Mapping):
            return Verdict(None, "This exercise asks for one prediction per item: "
                                 f"{', '.join(map(repr, measured))}. Write them as a dict.")
        parts = [_one("", prediction, measured, rel_tol, abs_tol, choices)]
    oks = [ok for ok, _ in parts]
    lines = [text for _, text in parts]
    if any(ok is None for ok in oks):
        return Verdict(None, "\n".join(text for ok, text in parts if ok is None))
    right = all(oks)
    if choices is None and any(_as_number(v) is not None for v in
                               (measured.values() if isinstance(measured, Mapping) else [measured])):
        tol = f" (counted as right within {rel_tol:.0%})" if rel_tol and not abs_tol else (
            f" (counted as right within {abs_tol:g})" if abs_tol else "")
    else:
        tol = ""
    head = "Right" if right else "Not quite"
    tail = ("" if right else " Read the solution below the cell to see why.")
    return Verdict(right, f"{head}{tol}. " + " ".join(lines) + tail, measured)


def check(prediction: Any, measure: Callable[[], Any], **kwargs: Any) -> None:
    """Print whether ``prediction`` matches ``measure()`` (see :func:`judge`); the answer only after a prediction.

    Returns nothing, so that a cell ending in ``check(...)`` shows the sentence and nothing else.
    """
    print(judge(prediction, measure, **kwargs).message)
