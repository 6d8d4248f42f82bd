"""Gradient clipping (Chapter 5, Experiment 7): by norm and by value from scratch (``tests/test_clipping.py``
proves both match ``torch.nn.utils``), what each does to the direction of a real gradient, and how large the
chapter's gradients are against the usual ν = 1. The cliff where clipping matters: :mod:`.cliff`.

Clipping by norm rescales every gradient jointly, g ← g·min(1, ν/(‖g‖ + ε)) with ‖g‖ the p-norm of all of them
concatenated and ε = 1e-6 (PyTorch's, which keeps the division finite at ‖g‖ = 0): the direction is kept.
Clipping by value clamps each coordinate to [−ν, ν]: the direction turns wherever some coordinates exceed ν.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Iterable

import torch
import torch.nn.functional as F
from torch import Tensor

from ..batched_mlp import digits_split
from ..seeding import generator
from .nets import NetConfig, build

__all__ = ["EPS", "clip_by_norm_", "clip_by_value_", "DirectionConfig", "Directions", "clip_directions",
           "SURVEY_NETS", "NormSurveyConfig", "NormSurvey", "norm_survey"]

EPS = 1e-6  # torch.nn.utils.clip_grad_norm_'s ε in ν/(‖g‖ + ε)


def _grads(parameters: Tensor | Iterable[Tensor]) -> list[Tensor]:
    params = [parameters] if isinstance(parameters, Tensor) else list(parameters)
    return [p.grad for p in params if p.grad is not None]


def clip_by_norm_(parameters: Tensor | Iterable[Tensor], max_norm: float, norm_type: float = 2.0,
                  error_if_nonfinite: bool = False) -> Tensor:
    """Scale all gradients in place by min(1, ν/(‖g‖_p + 1e-6)), ‖g‖_p over all of them jointly; return ‖g‖_p
    (before clipping), as ``torch.nn.utils.clip_grad_norm_`` does. Chapter 5, Experiment 7."""
    grads = _grads(parameters)
    if not grads:
        return torch.tensor(0.0)
    p = float(norm_type)
    # the norm of the per-tensor norms is the norm of everything concatenated, for every p (max for p = ∞)
    total = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g, p) for g in grads]), p)
    if error_if_nonfinite and not bool(torch.isfinite(total)):
        raise RuntimeError(f"the total gradient norm (order {p}) is {float(total)}: it cannot be clipped")
    coef = torch.clamp(float(max_norm) / (total + EPS), max=1.0)  # ≥ 1 would enlarge a small gradient
    for g in grads:
        g.mul_(coef)
    return total


def clip_by_value_(parameters: Tensor | Iterable[Tensor], clip_value: float) -> None:
    """Clamp every gradient coordinate in place to [−ν, ν], as ``torch.nn.utils.clip_grad_value_``."""
    v = float(clip_value)
    for g in _grads(parameters):
        g.clamp_(min=-v, max=v)


def _mlp_gradient(net: NetConfig, batch_size: int, seed: int, device) -> Tensor:
    """The flattened gradient of the mean cross-entropy of a fresh MLP on ``batch_size`` digits (float64)."""
    split = digits_split(seed)
    g = generator(seed)
    idx = torch.randperm(split.x_train.shape[0], generator=g)[:batch_size]
    model = build(net, seed, device, dtype=torch.float64)
    x, y = split.x_train[idx].to(device, torch.float64), split.y_train[idx].to(device)
    F.cross_entropy(model(x), y).backward()
    return torch.cat([p.grad.reshape(-1) for p in model.parameters()])


@dataclass(frozen=True)
class DirectionConfig:
    """Clip one real gradient (of ``net`` on a mini-batch of the digits) at each threshold ν in ``nus``."""

    net: NetConfig = field(default_factory=NetConfig)
    batch_size: int = 128
    nus: tuple[float, ...] = tuple(10.0 ** (k / 8) for k in range(-40, 9))  # 1e-5 … 10

    def __post_init__(self):
        if not 1 <= self.batch_size <= 1257:
            raise ValueError(f"batch_size is between 1 and the 1257 training digits, got {self.batch_size}")
        if not self.nus or min(self.nus) <= 0 or not all(math.isfinite(v) for v in self.nus):
            raise ValueError("every threshold ν must be a positive number")


@dataclass(frozen=True, eq=False)
class Directions:
    """Per ν: cosine with the original gradient and norm after clipping, by norm and by value; the fraction
    of coordinates value clipping changed. ``gradient`` is the original, flattened."""

    config: DirectionConfig
    gradient: Tensor
    norm: float  # ‖g‖₂
    cos_norm: Tensor
    cos_value: Tensor
    norm_after_norm: Tensor
    norm_after_value: Tensor
    clipped_fraction: Tensor


def _clipped(g: Tensor, nu: float, clip) -> Tensor:
    holder = torch.zeros_like(g)
    holder.grad = g.clone()
    clip(holder, nu)
    return holder.grad


def clip_directions(config: DirectionConfig = DirectionConfig(), seed: int = 0,
                    device: torch.device | str = "cpu") -> Directions:
    """Clip the gradient by norm and by value at every ν (both with the functions above) and compare."""
    g = _mlp_gradient(config.net, config.batch_size, seed, device)
    rows = []
    for nu in config.nus:
        by_norm, by_value = _clipped(g, nu, clip_by_norm_), _clipped(g, nu, clip_by_value_)
        rows.append((F.cosine_similarity(by_norm, g, dim=0), F.cosine_similarity(by_value, g, dim=0),
                     by_norm.norm(), by_value.norm(), (g.abs() > nu).double().mean()))
    cols = [torch.stack(c).cpu() for c in zip(*rows)]
    return Directions(config, g.cpu(), float(g.norm()), *cols)


# Networks of the chapter whose gradient norm the survey reports against ν = 1 (the cards' max_norm = 1.0).
SURVEY_NETS = (("D = 5, ReLU, PyTorch init", NetConfig()),
               ("D = 10, ReLU, He init", NetConfig(depth=10, init="he")),
               ("D = 20, sigmoid, PyTorch init", NetConfig(depth=20, activation="sigmoid")),
               ("D = 10, tanh, U(±2)", NetConfig(depth=10, activation="tanh", init="large")),
               ("D = 20, ReLU, He, residual", NetConfig(depth=20, init="he", residual=True)))


@dataclass(frozen=True)
class NormSurveyConfig:
    """Train each of ``nets`` (label, NetConfig) with SGD + momentum 0.9 at η for ``steps`` mini-batches of the
    digits, recording the total gradient norm ‖g‖₂ before each update; with ``clip`` = ν, clipped by
    ``torch.nn.utils.clip_grad_norm_`` before the update (the norm recorded is still the one before clipping)."""

    nets: tuple = SURVEY_NETS
    steps: int = 200
    batch_size: int = 64
    lr: float = 0.01
    clip: float | None = None

    def __post_init__(self):
        if self.steps < 1 or self.batch_size < 1:
            raise ValueError("steps and batch_size must be at least 1")
        if not self.lr > 0:
            raise ValueError(f"the learning rate η must be positive, got {self.lr}")
        if not self.nets:
            raise ValueError("give at least one network to survey")
        if self.clip is not None and not self.clip > 0:
            raise ValueError(f"the clipping threshold ν must be positive, got {self.clip}")


@dataclass(frozen=True, eq=False)
class NormSurvey:
    """``norms`` (nets × steps): ‖g‖₂ at each step, NaN after a run diverged; per net, the mean mini-batch loss
    of the last tenth of the steps and the final validation accuracy (NaN for a run that diverged)."""

    config: NormSurveyConfig
    labels: tuple[str, ...]
    norms: Tensor
    final_loss: Tensor
    val_acc: Tensor
    diverged_at: int | None = None
    diverged_run: str | None = None

    def fraction_above(self, nu: float = 1.0) -> Tensor:
        """Per net, the fraction of its (finite) steps whose gradient norm exceeds ν: how often ν would clip."""
        ok = torch.isfinite(self.norms)
        return ((self.norms > nu) & ok).sum(1) / ok.sum(1).clamp(min=1)


def norm_survey(config: NormSurveyConfig = NormSurveyConfig(), seed: int = 0,
                device: torch.device | str = "cpu") -> NormSurvey:
    """The gradient norms of the chapter's networks during training (float32, as they are trained)."""
    c = config
    split = digits_split(seed, device=device)
    n = split.x_train.shape[0]
    norms = torch.full((len(c.nets), c.steps), math.nan)
    final, acc = torch.full((len(c.nets),), math.nan), torch.full((len(c.nets),), math.nan)
    first = None
    for i, (label, net) in enumerate(c.nets):
        g = generator(seed)
        model = build(net, seed, device)
        opt = torch.optim.SGD(model.parameters(), lr=c.lr, momentum=0.9)
        losses = []
        for k in range(c.steps):
            idx = torch.randint(0, n, (c.batch_size,), generator=g)
            loss = F.cross_entropy(model(split.x_train[idx]), split.y_train[idx])
            opt.zero_grad()
            loss.backward()
            total = torch.nn.utils.clip_grad_norm_(model.parameters(), c.clip if c.clip is not None else math.inf)
            if not (math.isfinite(loss.item()) and math.isfinite(total.item())):
                first = first or (k, label)
                break
            norms[i, k] = total.item()
            losses.append(loss.item())
            opt.step()
        else:
            final[i] = sum(losses[-max(1, c.steps // 10):]) / max(1, c.steps // 10)
            with torch.no_grad():
                model.eval()
                acc[i] = (model(split.x_val).argmax(1) == split.y_val).float().mean().item()
    return NormSurvey(c, tuple(lab for lab, _ in c.nets), norms, final, acc,
                      diverged_at=first and first[0], diverged_run=first and first[1])
