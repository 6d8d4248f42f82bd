"""Chapter 3's optimizers from scratch, each update a few lines, each checked against ``torch.optim``.

Every class takes a list of tensors and, on ``step()``, moves each by its ``.grad`` exactly as the
``torch.optim`` class of the same name does with the same arguments (``tests/test_optimizers.py``
runs both side by side on a small network). Weight decay α is what PyTorch does: an L2 term α·x added
to the gradient, except in :class:`AdamW`, which shrinks x by (1 − ηα) before Adam's step.
:func:`state_size` measures what a ``torch.optim`` optimizer keeps per parameter.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

import torch
from torch import Tensor

__all__ = ["Optimizer", "SGD", "HeavyBall", "Adagrad", "RMSprop", "Adam", "AdamW", "StateSize", "state_size"]


class Optimizer:
    """What the optimizers below share: the parameters, a state dict per parameter, ``zero_grad`` and ``step``."""

    def __init__(self, params: Iterable[Tensor], lr: float):
        self.params = list(params)
        self.lr = lr  # an attribute, so a schedule can change it between steps
        self.state: list[dict] = [{} for _ in self.params]

    def zero_grad(self) -> None:
        """Forget the gradients (as ``torch.optim`` does by default: set them to None)."""
        for p in self.params:
            p.grad = None

    @torch.no_grad()
    def step(self) -> None:
        """Move every parameter that has a gradient by one update."""
        for p, state in zip(self.params, self.state):
            if p.grad is not None:
                self.update(p, p.grad, state)

    def update(self, x: Tensor, g: Tensor, state: dict) -> None:
        """Move ``x`` in place, given its gradient ``g`` and its own ``state``: what each optimizer defines."""
        raise NotImplementedError


class SGD(Optimizer):
    """SGD with heavy-ball momentum in PyTorch's form, v ← βv + (1 − dampening)g, x ← x − ηv; Nesterov optional."""

    def __init__(self, params: Iterable[Tensor], lr: float, momentum: float = 0.0, dampening: float = 0.0,
                 nesterov: bool = False, weight_decay: float = 0.0):
        super().__init__(params, lr)
        self.momentum, self.dampening, self.nesterov, self.weight_decay = momentum, dampening, nesterov, weight_decay

    def update(self, x: Tensor, g: Tensor, state: dict) -> None:
        if self.weight_decay:
            g = g + self.weight_decay * x
        if self.momentum:
            v = state.get("v")
            # PyTorch starts the buffer at the first gradient itself, undampened
            v = g.clone() if v is None else self.momentum * v + (1 - self.dampening) * g
            state["v"] = v
            # Nesterov: x ← x − η(g + βv); the look-ahead form in disguise (see gradlab.momentum)
            g = g + self.momentum * v if self.nesterov else v
        x -= self.lr * g


class HeavyBall(Optimizer):
    """Heavy-ball momentum as textbooks write it: v ← βv − ηg, x ← x + v (Polyak 1964)."""

    def __init__(self, params: Iterable[Tensor], lr: float, momentum: float = 0.9):
        super().__init__(params, lr)
        self.momentum = momentum

    def update(self, x: Tensor, g: Tensor, state: dict) -> None:
        # η multiplies each gradient as it enters v: a change of η reaches only new gradients
        v = self.momentum * state.get("v", torch.zeros_like(x)) - self.lr * g
        state["v"] = v
        x += v


class Adagrad(Optimizer):
    """Adagrad: s ← s + g², x ← x − η g / (√s + ε), per coordinate (Duchi et al. 2011)."""

    def __init__(self, params: Iterable[Tensor], lr: float = 0.01, eps: float = 1e-10, weight_decay: float = 0.0):
        super().__init__(params, lr)
        self.eps, self.weight_decay = eps, weight_decay

    def update(self, x: Tensor, g: Tensor, state: dict) -> None:
        if self.weight_decay:
            g = g + self.weight_decay * x
        s = state.get("s", torch.zeros_like(x)) + g * g
        state["s"] = s
        x -= self.lr * (g / (s.sqrt() + self.eps))


class RMSprop(Optimizer):
    """RMSprop: s ← ρs + (1 − ρ)g², x ← x − η g / (√s + ε) (Tieleman and Hinton 2012).

    ``alpha`` is PyTorch's name for ρ, the averaging coefficient (not the book's penalty weight α).
    As in PyTorch's default (``centered=False``), ε is added outside the square root.
    """

    def __init__(self, params: Iterable[Tensor], lr: float = 0.01, alpha: float = 0.99, eps: float = 1e-8,
                 weight_decay: float = 0.0):
        super().__init__(params, lr)
        self.alpha, self.eps, self.weight_decay = alpha, eps, weight_decay

    def update(self, x: Tensor, g: Tensor, state: dict) -> None:
        if self.weight_decay:
            g = g + self.weight_decay * x
        s = self.alpha * state.get("s", torch.zeros_like(x)) + (1 - self.alpha) * g * g
        state["s"] = s
        x -= self.lr * (g / (s.sqrt() + self.eps))


class Adam(Optimizer):
    """Adam (Kingma and Ba 2015): averages v of g and s of g², bias-corrected, x ← x − η v̂ / (√ŝ + ε).

    The names follow the book's notation; the paper calls v and s m and v, PyTorch ``exp_avg`` and
    ``exp_avg_sq``. ``amsgrad`` divides by the largest s so far instead (PyTorch's variant of Reddi et
    al. 2018: the maximum of the uncorrected s, then corrected like s). ``bias_correction=False`` drops
    the division by 1 − β^k, which PyTorch has no switch for: it exists to show what the correction does.
    """

    decoupled = False  # AdamW's difference, in one flag

    def __init__(self, params: Iterable[Tensor], lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0.0, amsgrad: bool = False, bias_correction: bool = True):
        super().__init__(params, lr)
        self.betas, self.eps, self.weight_decay = betas, eps, weight_decay
        self.amsgrad, self.bias_correction = amsgrad, bias_correction

    def update(self, x: Tensor, g: Tensor, state: dict) -> None:
        b1, b2 = self.betas
        if self.weight_decay and self.decoupled:
            x *= 1 - self.lr * self.weight_decay  # before the step, and the gradient is left alone
        elif self.weight_decay:
            g = g + self.weight_decay * x
        k = state["k"] = state.get("k", 0) + 1
        v = state["v"] = b1 * state.get("v", torch.zeros_like(x)) + (1 - b1) * g  # PyTorch's exp_avg
        s = state["s"] = b2 * state.get("s", torch.zeros_like(x)) + (1 - b2) * g * g  # exp_avg_sq
        if self.amsgrad:
            s = state["s_max"] = torch.maximum(state.get("s_max", s), s)
        if self.bias_correction:  # v and s start at 0: without this, the first averages are too small
            v, s = v / (1 - b1**k), s / (1 - b2**k)
        x -= self.lr * v / (s.sqrt() + self.eps)


class AdamW(Adam):
    """AdamW (Loshchilov and Hutter 2019): Adam with decoupled weight decay, x ← x(1 − ηα) before the Adam step."""

    decoupled = True

    def __init__(self, params: Iterable[Tensor], lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 1e-2, amsgrad: bool = False):
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad)


@dataclass(frozen=True)
class StateSize:
    """What an optimizer keeps between steps: bytes in tensors the size of a parameter, and in scalars."""

    parameters: int  # entries in all the parameters together
    parameter_bytes: int  # bytes of the parameters themselves
    full_bytes: int  # bytes of state tensors shaped like a parameter (momentum, moments)
    scalar_bytes: int  # bytes of one-entry state tensors (step counters)

    @property
    def copies(self) -> float:
        """How many parameter-sized tensors per parameter tensor: 0 for SGD, 1 with momentum, 2 for Adam."""
        return self.full_bytes / self.parameter_bytes

    @property
    def bytes_per_parameter(self) -> float:
        """All state bytes divided by the number of parameter entries."""
        return (self.full_bytes + self.scalar_bytes) / self.parameters


def state_size(optimizer: torch.optim.Optimizer) -> StateSize:
    """Measure a ``torch.optim`` optimizer's state from its ``state_dict()`` (after a step: state is made lazily).

    A state tensor shaped like its parameter counts as a copy; anything else (the 0-dim step counters) as a
    scalar, so parameters are assumed to have at least one dimension.
    """
    params = [p for group in optimizer.param_groups for p in group["params"]]
    full = scalar = 0
    for i, entries in optimizer.state_dict()["state"].items():  # keyed by the parameter's place in the groups
        for t in entries.values():
            if isinstance(t, Tensor):
                nbytes = t.numel() * t.element_size()
                if t.shape == params[i].shape:
                    full += nbytes
                else:
                    scalar += nbytes
    return StateSize(sum(p.numel() for p in params), sum(p.numel() * p.element_size() for p in params), full, scalar)
