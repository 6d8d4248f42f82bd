"""Checks for Chapter 3's exercises: the reader's update rule against ``torch.optim``, an optimizer's iterates
on a one-tensor problem, and heavy ball's stability bound found by running it."""
from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Callable, Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from .landscapes import Quadratic
from .momentum import measured_rates
from .seeding import generator

__all__ = ["SideBySide", "side_by_side", "UpdateCheck", "check_update", "iterates", "largest_stable_lr"]

Make = Callable[[list[Tensor]], object]  # params -> anything with .step(): torch.optim or gradlab.optimizers
Pair = tuple[int, list[Tensor], list[Tensor]]
_POSITIONAL = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)


def _lockstep(make_a: Make, make_b: Make, steps: int, seed: int,
              offset: float = 0.0) -> tuple[list[object], Iterator[Pair]]:
    """Two optimizers on a 6-16-3 tanh network (cross-entropy, 64 random examples, float64) from the same
    weights (b's moved by ``offset`` in every entry): the optimizers, and an iterator of (k, parameters of a,
    parameters of b) for k = 0 to ``steps``."""
    g = generator(seed)
    start = [torch.randn(s, generator=g, dtype=torch.float64) / s[-1] ** 0.5 for s in ((16, 6), (16,), (3, 16), (3,))]
    x, y = torch.randn(64, 6, generator=g, dtype=torch.float64), torch.randint(3, (64,), generator=g)
    params = [[(w + shift).requires_grad_(True) for w in start] for shift in (0.0, offset)]
    opts = [make_a(params[0]), make_b(params[1])]

    def walk() -> Iterator[Pair]:
        for k in range(steps + 1):
            for (w1, b1, w2, b2), opt in zip(params, opts):
                if k:  # k = 0 is the start
                    w1.grad = b1.grad = w2.grad = b2.grad = None
                    F.cross_entropy(torch.tanh(x @ w1.T + b1) @ w2.T + b2, y).backward()
                    opt.step()
            yield k, *([p.detach().clone() for p in ps] for ps in params)

    return opts, walk()


@dataclass(frozen=True)
class SideBySide:
    """Two optimizers on the same network: their largest parameter difference and how far the second travelled."""

    max_difference: float  # over all steps and all entries
    distance: float  # ‖θ_steps − θ_0‖ of the second (reference) run


def side_by_side(make_ours: Make, make_theirs: Make, steps: int = 250, seed: int = 0,
                 offset: float = 0.0) -> SideBySide:
    """Run both optimizer factories from the same weights on the same data (Chapter 3's from-scratch check);
    ``offset`` starts the second run that far away in every entry, to see how the method amplifies a difference."""
    worst, start = 0.0, None
    for k, ours, theirs in _lockstep(make_ours, make_theirs, steps, seed, offset)[1]:
        worst = max([worst] + [float((a - b).abs().max()) for a, b in zip(ours, theirs)])
        start = theirs if k == 0 else start
    return SideBySide(worst, float(torch.cat([(b - a).flatten() for a, b in zip(start, theirs)]).norm()))


@dataclass(frozen=True)
class UpdateCheck:
    """The verdict of :func:`check_update`: ``ok``, the first step that differs, the largest error, a sentence."""

    ok: bool
    step: int | None
    max_error: float
    message: str

    def __repr__(self) -> str:
        return self.message


class _RuleError(Exception):
    """The reader's rule broke; its args are the step (or None) and a sentence that says how."""


def _state_count(state_rule: Callable, step_rule: Callable) -> int:
    """How many state tensors the rules keep, read off their signatures: state_rule's arguments after g."""
    try:  # *args counts as nothing: the number of state tensors cannot be read off it
        n, n_step = (sum(p.kind in _POSITIONAL for p in inspect.signature(f).parameters.values())
                     for f in (state_rule, step_rule))
    except (TypeError, ValueError):
        raise _RuleError(None, "✗ state_rule and step_rule must be functions (lambdas).") from None
    if n == 0:
        raise _RuleError(None, "✗ state_rule takes g first, then one argument per state tensor, e.g. "
                               "lambda g, v: (beta * v + g,).")
    if n_step != n + 1:
        raise _RuleError(None, f"✗ step_rule takes g, {n - 1} state tensor(s) and k: {n + 1} arguments, "
                               f"but yours takes {n_step}.")
    return n - 1


class _Rules:
    """The reader's two rules as an optimizer: each parameter tensor has its own state, zeros at the start."""

    def __init__(self, params: list[Tensor], state_rule: Callable, step_rule: Callable, n_state: int):
        self.params, self.rules, self.k = params, (state_rule, step_rule), 0
        self.state = [tuple(torch.zeros_like(p) for _ in range(n_state)) for p in params]

    @torch.no_grad()
    def step(self) -> None:
        self.k += 1
        for i, p in enumerate(self.params):
            self.state[i] = self._call(0, p, p.grad.clone(), *self.state[i])
            p -= self._call(1, p, p.grad.clone(), *self.state[i], self.k)[0]

    def _call(self, which: int, p: Tensor, *args) -> tuple[Tensor, ...]:
        name, k, n = ("state_rule", "step_rule")[which], self.k, len(self.state[0])
        try:
            out = self.rules[which](*args)
        except Exception as exc:  # the reader's code: report it, never a traceback in the notebook
            raise _RuleError(k, f"✗ step {k}: your {name} raised {type(exc).__name__}: {exc}") from None
        try:  # a lone tensor from a one-state rule is forgiven: the missing comma of (v,) is a slip, not a bug
            out = tuple(torch.as_tensor(t, dtype=torch.float64)
                        for t in ((out,) if which or isinstance(out, Tensor) else out))
        except (TypeError, ValueError, RuntimeError):
            raise _RuleError(k, f"✗ step {k}: your {name} returned {type(out).__name__}, not "
                                + ("a tuple of tensors." if which == 0 else "a tensor.")) from None
        if which == 0 and len(out) != n:
            raise _RuleError(k, f"✗ your state_rule returned {len(out)} state tensor(s); it takes {n} after g, "
                                f"so it must return {n} (a tuple, in the same order).")
        for t in out:
            if t.shape != p.shape:
                raise _RuleError(k, f"✗ step {k}: your {name} returned shape {tuple(t.shape)} for a parameter "
                                    f"of shape {tuple(p.shape)}; work entry by entry, like g.")
            if not bool(torch.isfinite(t).all()):
                raise _RuleError(k, f"✗ step {k}: your {name} returned NaN or infinity (a division by zero, "
                                    "or the square root of a negative number?).")
        return out


def check_update(state_rule: Callable, step_rule: Callable, reference: Make, steps: int = 50, seed: int = 0,
                 tol: float = 1e-9) -> UpdateCheck:
    """Run the reader's ``state_rule(g, *state) -> new state`` and ``step_rule(g, *new state, k) -> Δ``
    (x ← x − Δ) beside ``reference(params)`` on a small network; report the first step where they differ."""
    worst = 0.0
    try:
        n = _state_count(state_rule, step_rule)
        (_, ref), run = _lockstep(lambda p: _Rules(p, state_rule, step_rule, n), reference, steps, seed)
        cls = type(ref)
        name = f"{'torch.optim' if cls.__module__.startswith('torch.optim') else cls.__module__}.{cls.__name__}"
        for k, ours, theirs in run:
            for i, (a, b) in enumerate(zip(ours, theirs)):
                diff = (a - b).abs()
                worst = max(worst, err := float(diff.max()))
                if not err <= tol * (1 + float(b.abs().max())):
                    where = tuple(int(j) for j in np.unravel_index(int(diff.argmax()), tuple(a.shape)))
                    hint = ("Look at the rule itself (a sign, a factor, a missing term)." if k == 1 else
                            f"The first {k - 1} step{'s' * (k > 2)} agreed: look at what builds up in the state "
                            "or changes with k.")
                    return UpdateCheck(False, k, err, f"✗ step {k}: your parameters differ from {name}'s by up to "
                                       f"{err:.3g} (parameter {i}, shape {tuple(a.shape)}, index {where}). {hint}")
    except _RuleError as exc:
        return UpdateCheck(False, exc.args[0], float("inf"), exc.args[1])
    return UpdateCheck(True, None, worst, f"✓ your update matches {name} for {steps} steps on every parameter "
                                          f"(largest difference {worst:.2g}).")


def iterates(make: Make, grad: Callable[[Tensor], Tensor], x0: float | Sequence[float] | Tensor,
             steps: int) -> Tensor:
    """x_0, …, x_steps of ``make([x])`` on one float64 tensor, with ``x.grad = grad(x)`` before each step."""
    x = torch.as_tensor(x0, dtype=torch.float64).detach().clone()
    opt, out = make([x]), [x.clone()]
    for _ in range(steps):
        # grad sees a copy: a grad that returns x itself must not change while the optimizer moves x
        x.grad = torch.as_tensor(grad(x.clone()), dtype=torch.float64)
        opt.step()
        out.append(x.detach().clone())
    return torch.stack(out)


def largest_stable_lr(kappa: float, beta: float, steps: int = 400, tol: float = 1e-4, nesterov: bool = False) -> float:
    """The largest η at which ``torch.optim.SGD(momentum=beta)`` does not diverge on Quadratic(κ), by bisection.

    Judged by running it, not by the formula 2(1 + β)/L: a run diverges when its envelope, the largest ‖x_k‖
    over a window, grows over the second half of the run. Not ‖x_steps‖ > ‖x_0‖: just below the bound the
    amplitude first climbs to (1 + β)/(1 − β) times the start (19 for β = 0.9) and only then decays, and at
    the bound it neither grows nor decays; the envelope grows exactly when a root is outside the unit circle.
    """
    if not 0 <= beta < 1:
        raise ValueError(f"the momentum β must be in [0, 1), not {beta:g}: at β ≥ 1 no learning rate converges")

    def diverges(lr: float) -> bool:
        return not float(measured_rates(kappa, [(lr, beta)], steps, nesterov=nesterov)[0]) <= 1.0  # NaN: diverged

    lo, hi = 0.0, 1.0 / Quadratic(kappa=kappa).smoothness
    while not diverges(hi):  # bracket without the formula: double until a run diverges
        lo, hi = hi, 2 * hi
    while hi - lo > tol * hi:
        mid = (lo + hi) / 2
        lo, hi = (lo, mid) if diverges(mid) else (mid, hi)
    return lo
