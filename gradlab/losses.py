"""Cross-entropy against squared error at the logits, and cross-entropy computed stably (Chapter 2).

Everything here is a function of logits ``z``: the binary case takes one logit per example and a
0/1 target, the multi-class case a row of ``C`` logits and a class index. The squared error of a
classifier is taken on its predicted probabilities, summed over the classes and averaged over the
batch: ``sum_k (yhat_k - y_k)^2`` (the Brier score).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

__all__ = ["logsumexp", "stable_cross_entropy", "naive_cross_entropy", "squared_error", "binary_squared_error",
           "LogitCurves", "logit_curves", "WrongPrediction", "confidently_wrong", "OverflowRow", "overflow_table",
           "largest_finite_margin", "probabilities_or_logits", "squared_error_peak"]


def logsumexp(z: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """log(sum(exp(z))) along ``dim`` without overflow: the largest entry is taken out first."""
    m = z.detach().amax(dim, keepdim=True)
    m = torch.where(torch.isfinite(m), m, torch.zeros_like(m))  # a row of -inf stays -inf, not nan
    return (m + (z - m).exp().sum(dim, keepdim=True).log()).squeeze(dim)


def stable_cross_entropy(z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy of logits z (N, C) and labels y (N,): log-sum-exp minus the true logit."""
    return (logsumexp(z, 1) - z.gather(1, y[:, None]).squeeze(1)).mean()


def naive_cross_entropy(z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The same loss as the formula reads, -log(exp(z_y) / sum exp(z)): overflows for large logits."""
    e = z.exp()
    yhat = e / e.sum(1, keepdim=True)
    return -yhat.gather(1, y[:, None]).squeeze(1).log().mean()


def squared_error(z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean over the batch of sum_k (softmax(z)_k - onehot(y)_k)^2."""
    return (torch.softmax(z, 1) - F.one_hot(y, z.shape[1]).to(z.dtype)).square().sum(1).mean()


def binary_squared_error(z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean of (sigmoid(z) - y)^2 for one logit per example."""
    return (torch.sigmoid(z) - y).square().mean()


@dataclass
class LogitCurves:
    """Loss, gradient and second derivative with respect to the logit, for target 1, on a grid of logits."""

    z: torch.Tensor
    loss: dict[str, torch.Tensor]
    grad: dict[str, torch.Tensor]
    second: dict[str, torch.Tensor]


_BINARY = {"cross-entropy": lambda z, y: F.binary_cross_entropy_with_logits(z, y, reduction="none"),
           "squared error": lambda z, y: (torch.sigmoid(z) - y).square()}


def logit_curves(z: torch.Tensor) -> LogitCurves:
    """Both binary losses of each logit in ``z`` (target y = 1), with d/dz and d²/dz² by autograd."""
    z = z.detach().to(torch.float64).requires_grad_(True)
    y = torch.ones_like(z)
    loss, grad, second = {}, {}, {}
    for name, fn in _BINARY.items():
        per_logit = fn(z, y)
        # each loss depends on its own logit only, so the gradient of the sum holds every derivative
        (g,) = torch.autograd.grad(per_logit.sum(), z, create_graph=True)
        (h,) = torch.autograd.grad(g.sum(), z)
        loss[name], grad[name], second[name] = per_logit.detach(), g.detach(), h.detach()
    return LogitCurves(z.detach(), loss, grad, second)


@dataclass(frozen=True)
class WrongPrediction:
    """The gradient at the logits for one confidently wrong prediction, binary and multi-class."""

    margin: float
    true_probability: float  # the probability the model gives the right answer (binary case)
    binary: dict[str, float]  # dloss/dz for each loss
    classes: int
    multi_true_probability: float
    multi: dict[str, float]  # ‖dloss/dz‖ over the C logits, for each loss


def confidently_wrong(margin: float = 10.0, classes: int = 10) -> WrongPrediction:
    """Binary: logit -margin for target 1. Multi-class: one wrong class ``margin`` above the rest, target another."""
    z = torch.tensor([-margin], dtype=torch.float64, requires_grad=True)
    y = torch.ones(1, dtype=torch.float64)
    binary = {}
    for name, fn in (("cross-entropy", F.binary_cross_entropy_with_logits), ("squared error", binary_squared_error)):
        (g,) = torch.autograd.grad(fn(z, y), z)
        binary[name] = float(g)
    logits = torch.zeros(1, classes, dtype=torch.float64)
    logits[0, 1] = margin  # the model is sure of class 1; the answer is class 0
    logits.requires_grad_(True)
    label = torch.tensor([0])
    multi = {}
    for name, fn in (("cross-entropy", F.cross_entropy), ("squared error", squared_error)):
        (g,) = torch.autograd.grad(fn(logits, label), logits)
        multi[name] = float(g.norm())
    return WrongPrediction(margin, float(torch.sigmoid(z.detach())[0]), binary, classes,
                           float(torch.softmax(logits.detach(), 1)[0, 0]), multi)


@dataclass(frozen=True)
class OverflowRow:
    """One pair of logits (true class first) through the naive formula, our log-sum-exp and F.cross_entropy."""

    logits: tuple[float, float]
    naive: float
    naive_grad_finite: bool
    stable: float
    stable_grad_finite: bool
    torch: float


def overflow_table(pairs: tuple[tuple[float, float], ...] = ((0.0, 10.0), (0.0, 100.0), (-200.0, 0.0), (1000.0, 0.0)),
                   dtype: torch.dtype = torch.float32) -> list[OverflowRow]:
    """The cross-entropy of class 0 for each pair of logits, computed three ways in ``dtype``."""
    rows = []
    y = torch.tensor([0])
    for pair in pairs:
        out = {}
        for name, fn in (("naive", naive_cross_entropy), ("stable", stable_cross_entropy), ("torch", F.cross_entropy)):
            z = torch.tensor([pair], dtype=dtype, requires_grad=True)
            loss = fn(z, y)
            loss.backward()
            out[name] = (float(loss.detach()), bool(torch.isfinite(z.grad).all()))
        rows.append(OverflowRow(pair, out["naive"][0], out["naive"][1], out["stable"][0], out["stable"][1],
                                out["torch"][0]))
    return rows


def largest_finite_margin(dtype: torch.dtype = torch.float32, bits: int = 60) -> float:
    """The largest z for which the naive cross-entropy of logits (z, 0), class 0, is finite (bisection)."""
    finite = lambda m: math.isfinite(float(naive_cross_entropy(torch.tensor([[m, 0.0]], dtype=dtype),  # noqa: E731
                                                                    torch.tensor([0]))))
    lo, hi = 0.0, 1e4
    for _ in range(bits):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if finite(mid) else (lo, mid)
    return lo


def probabilities_or_logits(z: float = -200.0) -> dict[str, tuple[float, float]]:
    """Binary cross-entropy for target 1 from sigmoid(z) (``F.binary_cross_entropy``) and from z: (loss, dloss/dz)."""
    out = {}
    for name, fn in (("from probabilities", lambda t: F.binary_cross_entropy(torch.sigmoid(t), torch.ones_like(t))),
                     ("from the logit", lambda t: F.binary_cross_entropy_with_logits(t, torch.ones_like(t)))):
        t = torch.tensor([z], requires_grad=True)  # float32, the default dtype of a model
        loss = fn(t)
        (g,) = torch.autograd.grad(loss, t)
        out[name] = (float(loss.detach()), float(g))
    return out


def squared_error_peak(points: int = 100_001) -> dict[str, float]:
    """Where on z in [-5, 5] squared error's |dloss/dz| (target 1) is largest, and how large, by autograd on a grid."""
    curves = logit_curves(torch.linspace(-5.0, 5.0, points, dtype=torch.float64))
    size = curves.grad["squared error"].abs()
    return {"z": float(curves.z[size.argmax()]), "largest |dℓ/dz|": float(size.max())}
