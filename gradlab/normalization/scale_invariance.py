"""Chapter 6, Experiment 8: a layer followed by batch norm does not see the scale of its weights, and what weight
decay then does (van Laarhoven 2017; Hoffer et al. 2018; Zhang et al. 2019; Arora, Li & Lyu 2019).

For z = W h followed by batch norm, the output at ρW (ρ > 0) is ρ(z − c_𝓑)/√(ρ²σ²_𝓑 + ε) = (z − c_𝓑)/√(σ²_𝓑 + ε/ρ²):
the same as at W while ε/ρ² ≪ σ²_𝓑. Then 𝓛(ρW) = 𝓛(W), so ∇𝓛(ρW) = ∇𝓛(W)/ρ and ⟨∇_W 𝓛, W⟩ = 0 (differentiate in ρ
at 1). :func:`invariance` measures all three on one layer.

So a plain SGD step W ← (1 − ηα)W − η g (PyTorch's ``weight_decay`` α) adds an orthogonal η g: without weight decay
‖W_{k+1}‖² = ‖W_k‖² + η²‖g_k‖², the norm grows and the effective learning rate η/‖W‖² falls; with α it settles
where (2ηα − η²α²)‖W‖² = η²E‖g‖². Since ‖g‖·‖W‖ does not depend on ‖W‖ (the gradient at unit norm), ‖W‖⁴ ≈
η E[‖g‖²‖W‖²]/(2α), the effective rate ≈ √(2ηα / E[‖g‖²‖W‖²]) and the root-mean-square angle W turns per step
≈ √(2ηα): a function of the product ηα only.
:func:`train_scale` trains a batch-norm MLP on the digits and tracks one normalized layer.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..batched_mlp import DigitsSplit, digits_split
from ..gradients.nets import NetConfig, build
from ..seeding import generator

__all__ = ["InvarianceConfig", "Invariance", "invariance", "break_rho", "ScaleConfig", "ScaleRun", "train_scale",
           "equilibrium_angle"]


@dataclass(frozen=True)
class InvarianceConfig:
    """One ``d_in → d_out`` linear layer, batch norm (ε = ``eps``) and a fixed random classifier on a batch of B."""

    d_in: int = 64
    d_out: int = 32
    batch: int = 64  # B
    eps: float = 1e-5  # ε, nn.BatchNorm1d's default
    seed: int = 0

    def __post_init__(self):
        if min(self.d_in, self.d_out) < 1 or self.batch < 2:
            raise ValueError("d_in and d_out must be at least 1 and batch norm needs a batch B of at least 2")
        if not (self.eps > 0 and math.isfinite(self.eps)):  # PyTorch's batch norm refuses ε = 0 in train mode
            raise ValueError(f"ε must be a positive finite number, got {self.eps}")


@dataclass(frozen=True, eq=False)
class Invariance:
    """Per ρ: the largest relative output change, its prediction from ε/ρ², ‖∇𝓛(ρW)‖·ρ/‖∇𝓛(W)‖ (1 if ∇ scales
    as 1/ρ) and cos∠(∇𝓛(ρW), W) (0: orthogonal). ``variances``: σ²_𝓑 per unit at ρ = 1."""

    config: InvarianceConfig
    rhos: torch.Tensor
    output_change: torch.Tensor
    predicted_change: torch.Tensor
    grad_ratio: torch.Tensor
    cosine: torch.Tensor
    variances: torch.Tensor


def _layer(c: InvarianceConfig, dtype: torch.dtype):
    g = generator(c.seed)
    x = torch.randn(c.batch, c.d_in, generator=g, dtype=dtype)
    bound = 1 / math.sqrt(c.d_in)  # nn.Linear's default U(±1/√d_in)
    w = (torch.rand(c.d_out, c.d_in, generator=g, dtype=dtype) * 2 - 1) * bound
    b = (torch.rand(c.d_out, generator=g, dtype=dtype) * 2 - 1) * bound
    head = torch.randn(10, c.d_out, generator=g, dtype=dtype) / math.sqrt(c.d_out)
    y = torch.randint(0, 10, (c.batch,), generator=g)
    return x, w, b, head, y


def invariance(rhos: Sequence[float], config: InvarianceConfig = InvarianceConfig(),
               dtype: torch.dtype = torch.float64) -> Invariance:
    """Scale a layer's weights by each ρ in ``rhos`` (train-mode batch norm after it): output, gradient, angle."""
    c = config
    if any(not (r > 0 and math.isfinite(r)) for r in rhos) or not len(rhos):
        raise ValueError("every ρ must be a positive finite number (and give at least one)")
    x, w0, b, head, y = _layer(c, dtype)
    bn = nn.BatchNorm1d(c.d_out, eps=c.eps, dtype=dtype)  # train mode: batch statistics

    def run(rho: float):
        w = (rho * w0).requires_grad_(True)
        out = bn(F.linear(x, w, b))
        loss = F.cross_entropy(out @ head.T, y)
        (grad,) = torch.autograd.grad(loss, w)
        return out.detach(), grad

    ref, g_ref = run(1.0)
    var = (x @ w0.T).var(0, unbiased=False)
    rows = []
    for rho in rhos:
        out, grad = run(float(rho))
        change = float(((out - ref).abs() / ref.abs().clamp_min(1e-3)).max())
        predicted = float((torch.sqrt((var + c.eps) / (var + c.eps / rho ** 2)) - 1).abs().max())
        ratio = float(grad.norm() * rho / g_ref.norm())
        cosine = float((grad * w0).sum() / (grad.norm() * w0.norm()))
        rows.append((change, predicted, ratio, cosine))
    t = torch.tensor(rows, dtype=torch.float64)
    return Invariance(config=c, rhos=torch.tensor([float(r) for r in rhos], dtype=torch.float64),
                      output_change=t[:, 0], predicted_change=t[:, 1], grad_ratio=t[:, 2], cosine=t[:, 3],
                      variances=var.double())


def break_rho(variance: float, eps: float = 1e-5, tolerance: float = 0.01) -> float:
    """The ρ below which a unit with batch variance σ²_𝓑 (at ρ = 1) changes its output by more than ``tolerance``:
    solves √((σ² + ε)/(σ² + ε/ρ²)) = 1 − tolerance."""
    if not (variance > 0 and eps > 0 and 0 < tolerance < 1):
        raise ValueError("need σ²_𝓑 > 0, ε > 0 and a tolerance in (0, 1)")
    r2 = (1 - tolerance) ** 2
    return math.sqrt(eps / ((variance + eps) / r2 - variance))


def equilibrium_angle(lr: float, weight_decay: float) -> float:
    """The angle (radians) a scale-invariant W turns per plain-SGD step at equilibrium, ≈ √(2ηα) (Chapter 6)."""
    return math.sqrt(max(2 * lr * weight_decay - (lr * weight_decay) ** 2, 0.0))


@dataclass(frozen=True)
class ScaleConfig:
    """Plain SGD (η, weight decay α on every weight matrix) on a batch-norm MLP; ``layer`` is the tracked one."""

    lr: float = 0.1  # η
    weight_decay: float = 0.0  # α: PyTorch's coupled weight decay, g + αW
    steps: int = 1500
    batch_size: int = 64
    depth: int = 4  # D
    width: int = 64
    layer: int = 1  # index among the linear layers (0: input layer); the head (D − 1) is not normalized
    record_every: int = 10
    seed: int = 0

    def __post_init__(self):
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise ValueError(f"the learning rate η must be a positive number, got {self.lr}")
        if not (self.weight_decay >= 0 and math.isfinite(self.weight_decay)):
            raise ValueError(f"the weight decay α must be a number ≥ 0, got {self.weight_decay}")
        if self.depth < 2 or not 0 <= self.layer < self.depth - 1:
            raise ValueError(f"the tracked layer must be followed by batch norm: 0 ≤ layer ≤ D − 2 = {self.depth - 2} "
                             f"(depth D = {self.depth} ≥ 2), got layer {self.layer}")
        if min(self.steps, self.batch_size, self.width, self.record_every) < 1 or self.batch_size < 2:
            raise ValueError("steps, width and record_every must be at least 1, and the batch B at least 2")


@dataclass(frozen=True, eq=False)
class ScaleRun:
    """At each recorded step: ‖W‖ of the tracked layer, η/‖W‖², the root-mean-square angle per step (radians)
    since the last record (√(2ηα) at equilibrium), the mean ‖g‖²‖W‖² over those steps, the mean training-batch
    loss and the validation loss."""

    config: ScaleConfig
    steps: torch.Tensor
    weight_norm: torch.Tensor
    effective_lr: torch.Tensor
    angle: torch.Tensor
    unit_grad_sq: torch.Tensor
    train_loss: torch.Tensor
    val_loss: torch.Tensor
    diverged_at: int | None = None

    def equilibrium_norm(self) -> float:
        """‖W‖ where weight decay balances the gradient's growth, (η E[‖g‖²‖W‖²]/(2α − ηα²))^¼ at the end state (inf
        without weight decay)."""
        c = self.config
        if c.weight_decay == 0:
            return math.inf
        return (c.lr * self.tail(self.unit_grad_sq) / (2 * c.weight_decay - c.lr * c.weight_decay ** 2)) ** 0.25

    def tail_angle(self, fraction: float = 0.2) -> float:
        """The root-mean-square angle per step over the last ``fraction`` of the records (compare √(2ηα))."""
        return math.sqrt(self.tail(self.angle ** 2, fraction))

    def tail(self, values: torch.Tensor, fraction: float = 0.2) -> float:
        """The mean of ``values`` over the last ``fraction`` of the records (the end state)."""
        k = max(1, int(round(len(values) * fraction)))
        return float(values[-k:].nanmean())


def train_scale(config: ScaleConfig = ScaleConfig(), device: torch.device | str = "cpu",
                split: DigitsSplit | None = None, progress: Callable[[float], None] | None = None) -> ScaleRun:
    """Train with plain SGD and track the tracked layer's norm, effective rate and rotation per step."""
    c = config
    split = split if split is not None else digits_split(0, device=device)
    model = build(NetConfig(width=c.width, depth=c.depth, norm="batch"), seed=c.seed, device=device)
    w = model.linears()[c.layer].weight
    matrices = [m.weight for m in model.linears()]
    others = [p for p in model.parameters() if all(p is not m for m in matrices)]
    opt = torch.optim.SGD([{"params": matrices, "weight_decay": c.weight_decay},
                           {"params": others, "weight_decay": 0.0}], lr=c.lr)
    g = generator(c.seed)
    n = split.x_train.shape[0]
    report = progress or (lambda f: None)
    rows, order, pos, diverged = [], torch.empty(0, dtype=torch.long), n, None
    acc = [0.0, 0.0, 0.0, 0]  # squared angle, ‖g‖²‖W‖², loss sums and count since the last record

    def record(step: int) -> None:
        model.eval()
        with torch.no_grad():
            val = float(F.cross_entropy(model(split.x_val), split.y_val))
        model.train()
        k = max(acc[3], 1)
        norm = float(w.detach().norm())
        rate = c.lr / norm ** 2 if norm > 0 else math.inf  # a collapsed W (see the widget's corner η = 3, α = 0.03)
        rows.append((step, norm, rate, math.sqrt(acc[0] / k) if acc[3] else math.nan,
                     acc[1] / k if acc[3] else math.nan, acc[2] / k if acc[3] else math.nan, val))
        acc[:] = [0.0, 0.0, 0.0, 0]

    record(0)
    for step in range(1, c.steps + 1):
        if pos + c.batch_size > n:  # a new epoch: reshuffle, drop the last partial batch (batch norm needs B ≥ 2)
            order, pos = torch.randperm(n, generator=g).to(split.x_train.device), 0
        idx = order[pos:pos + c.batch_size]
        pos += c.batch_size
        loss = F.cross_entropy(model(split.x_train[idx]), split.y_train[idx])
        if not math.isfinite(float(loss.detach())):
            diverged = step
            break
        opt.zero_grad()
        loss.backward()
        before = w.detach().double().flatten()
        acc[1] += float(w.grad.double().norm() ** 2 * before.norm() ** 2)
        opt.step()
        with torch.no_grad():  # the angle from the parts along and across W: acos(cos) loses small angles
            after = w.detach().double().flatten()
            unit = before / before.norm()
            along = float(after @ unit)
            acc[0] += math.atan2(float((after - along * unit).norm()), along) ** 2
            acc[2] += float(loss.detach())
            acc[3] += 1
        if step % c.record_every == 0 or step == c.steps:
            record(step)
            report(step / c.steps)
    t = torch.tensor(rows, dtype=torch.float64)
    if diverged is not None:
        pad = torch.full((1, t.shape[1]), math.nan, dtype=torch.float64)
        pad[0, 0] = diverged
        t = torch.cat([t, pad])
    return ScaleRun(config=c, steps=t[:, 0], weight_norm=t[:, 1], effective_lr=t[:, 2], angle=t[:, 3],
                    unit_grad_sq=t[:, 4], train_loss=t[:, 5], val_loss=t[:, 6], diverged_at=diverged)
