"""Chapter 6, Experiment 3: why batch normalization helps, the evidence of Santurkar et al. (2018).

Three plain ReLU MLPs from :mod:`gradlab.gradients.nets` (He init), trained alike by plain SGD on the digits:

- ``"standard"``: no normalization;
- ``"batch"``: batch norm after every hidden linear layer;
- ``"noisy"``: batch norm followed by injected noise (their §2.1). After every batch-norm layer, in training only,
  each activation x of each example becomes a·x + b, with a ~ N(m_a, s_a²) and b ~ N(m_b, s_b²) drawn i.i.d. per
  example and unit; the noise's own parameters are drawn afresh every step and per unit: m_a ~ U(1/(1 + n), 1 + n),
  s_a ~ U(0, n/2), m_b ~ U(−n, n), s_b ~ U(0, n) with n = ``noise``. So the distribution of every later layer's input
  moves (mean and spread) from one step to the next, by construction, at every step.

Measured during training:

- the **distribution shift** of one layer's input h (the input of linear layer ``probe_layer``): per step the
  per-unit mean c and standard deviation σ over the mini-batch; ``shift`` is the average over steps and units of
  (|c_k − c_{k−1}| + |σ_k − σ_{k−1}|) / σ̄, σ̄ the unit's σ averaged over training (so that the measure does not
  depend on the layer's scale, which differs between the networks);
- Santurkar's **internal covariate shift** (their Definition 2.1, §2.2) of linear layer ``ics_layer``: G, the gradient
  of its weight on the step's batch, and G′, the same after the layers below it (all their parameters) took the
  step: ‖G − G′‖ and cos(G, G′);
- the **landscape along the gradient** (their §3.1, Fig. 4): from the weights w with batch gradient g, the batch
  loss and gradient at w − s·η·g for the step multipliers s; ``loss_variation`` = max − min of the loss over s,
  ``grad_change`` = max_s ‖∇𝓛(w − sηg) − g‖ (gradient predictiveness: small is predictive) and ``effective_L`` =
  max_s ‖∇𝓛(w − sηg) − g‖ / ‖sηg‖ (their "effective β-smoothness": the book's smoothness constant L, measured
  along the step; β is the momentum coefficient in book/notation.md).

The probes use the step's batch in training mode (batch statistics, the noise held at the step's draw) and leave
the model, its running statistics and the generator's stream exactly as the training alone would.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from ..batched_mlp import DigitsSplit, digits_split
from ..gradients.nets import DeepMLP, NetConfig, build
from ..seeding import generator
from .stability import losses_and_accuracy

__all__ = ["NETWORKS", "MULTIPLIERS", "BatchNoise", "SmoothnessConfig", "Smoothness", "build_network", "smoothness"]

NETWORKS = ("standard", "batch", "noisy")
MULTIPLIERS = (0.05, 0.1, 0.2, 0.4, 0.8, 1.6, 3.2)  # s, steps of s·η along −g (Santurkar et al.'s range, in η)


class BatchNoise(nn.Module):
    """Santurkar et al.'s "noisy BN" perturbation a·x + b (see the module doc), training mode only, from ``generator``.
    With ``hold`` set it reuses its last draw (a probe of the same batch sees the same noise)."""

    def __init__(self, noise: float, generator: torch.Generator):
        super().__init__()
        self.noise, self.generator, self.hold = noise, generator, False
        self.last: tuple[torch.Tensor, torch.Tensor] | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return x
        if not (self.hold and self.last is not None and self.last[0].shape == x.shape):
            n, g, d = self.noise, self.generator, x.shape[1]
            u = torch.rand(4, d, generator=g).to(x)
            m_a = 1 / (1 + n) + u[0] * ((1 + n) - 1 / (1 + n))
            s_a, m_b, s_b = u[1] * n / 2, (2 * u[2] - 1) * n, u[3] * n
            z = torch.randn(2, *x.shape, generator=g).to(x)
            self.last = (m_a + s_a * z[0], m_b + s_b * z[1])
        a, b = self.last
        return a * x + b


@dataclass(frozen=True)
class SmoothnessConfig:
    """The network (standard / batch / noisy), plain SGD at η, the budget, and what is probed and how often."""

    network: str = "batch"
    lr: float = 0.5
    depth: int = 8
    width: int = 64
    epochs: int = 10
    batch_size: int = 64
    noise: float = 0.5  # n in the noise's distribution (module doc)
    probe_every: int = 10  # optimizer steps between probes of the landscape and of the ICS
    probe_layer: int = 4  # the linear layer (0 = input layer) whose input's distribution is tracked
    ics_layer: int = 4  # the linear layer whose gradient before/after the lower layers' update is compared
    multipliers: tuple[float, ...] = MULTIPLIERS
    units_shown: int = 3  # units whose input mean and std are kept per step, for the figure
    seed: int = 0

    def __post_init__(self):
        if self.network not in NETWORKS:
            raise ValueError(f"network is one of {NETWORKS}, not {self.network!r}")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise ValueError(f"the learning rate η must be a positive number, got {self.lr}")
        if self.depth < 3:
            raise ValueError(f"depth D needs at least 3 layers with weights (a layer below the probed one), got "
                             f"{self.depth}")
        if self.width < 1 or self.batch_size < 2 or self.epochs < 1 or self.probe_every < 1:
            raise ValueError("width ≥ 1, batch size ≥ 2 (batch norm needs two examples), epochs ≥ 1 and "
                             "probe_every ≥ 1 are needed")
        if not (self.noise > 0 and math.isfinite(self.noise)):
            raise ValueError(f"the noise strength n must be a positive number, got {self.noise}")
        for name in ("probe_layer", "ics_layer"):
            if not 1 <= getattr(self, name) <= self.depth - 1:
                raise ValueError(f"{name} is a linear layer above the input layer: 1 … D − 1 = {self.depth - 1}, "
                                 f"got {getattr(self, name)}")
        if not self.multipliers or any(not (s > 0 and math.isfinite(s)) for s in self.multipliers):
            raise ValueError(f"the step multipliers s must be positive numbers, got {self.multipliers}")
        if not 1 <= self.units_shown <= self.width:
            raise ValueError(f"units_shown is between 1 and the width {self.width}, got {self.units_shown}")

    def net(self) -> NetConfig:
        return NetConfig(width=self.width, depth=self.depth, activation="relu", init="he",
                         norm="none" if self.network == "standard" else "batch")


@dataclass(frozen=True, eq=False)
class Smoothness:
    """Per-epoch losses (epochs + 1, evaluation mode, NaN after a divergence); per step the tracked layer input's
    per-unit mean and std for ``units_shown`` units and the step's shift; per probe (at ``probe_steps``) the
    loss variation, gradient change, effective smoothness L and Santurkar's ICS (‖G − G′‖, cos)."""

    config: SmoothnessConfig
    train_loss: torch.Tensor
    val_loss: torch.Tensor
    unit_mean: torch.Tensor  # (steps, units_shown)
    unit_std: torch.Tensor
    step_shift: torch.Tensor  # (steps − 1,) mean over units of (|Δc| + |Δσ|) / σ̄
    probe_steps: torch.Tensor
    loss_variation: torch.Tensor
    grad_change: torch.Tensor
    effective_L: torch.Tensor
    ics_distance: torch.Tensor
    ics_cosine: torch.Tensor
    diverged_at: int | None = None

    @property
    def shift(self) -> float:
        """The average per-step shift of the tracked layer input's distribution, (|Δc| + |Δσ|) / σ̄ per unit."""
        return float(self.step_shift.mean())


def build_network(config: SmoothnessConfig, g: torch.Generator, device: torch.device | str = "cpu") -> DeepMLP:
    """The config's network; for ``"noisy"``, a :class:`BatchNoise` right after every batch-norm layer."""
    model = build(config.net(), seed=config.seed, device=device)
    if config.network == "noisy":
        for parent in list(model.modules()):
            for name, child in list(parent.named_children()):
                if isinstance(child, nn.BatchNorm1d):
                    setattr(parent, name, nn.Sequential(child, BatchNoise(config.noise, g)))
    return model


def _grads(model, params: dict, x, y) -> tuple[float, dict]:
    # cloned buffers: the probe's training-mode passes update copies of the running statistics, not the model's
    buffers = {k: b.clone() for k, b in model.named_buffers()}
    loss = F.cross_entropy(functional_call(model, {**params, **buffers}, (x,)), y)
    grads = torch.autograd.grad(loss, list(params.values()))
    return float(loss.detach()), dict(zip(params, grads))


def _norm(tensors) -> float:
    return float(torch.sqrt(sum((t.double() ** 2).sum() for t in tensors)))


def _probe(model: DeepMLP, config: SmoothnessConfig, x, y) -> tuple[float, ...]:
    """Loss variation, gradient change, effective L and ICS at the current weights on batch (x, y); the model
    is left unchanged."""
    c = config
    noises = [m for m in model.modules() if isinstance(m, BatchNoise)]
    for m in noises:
        m.hold = True
    params = {k: p.detach().requires_grad_(True) for k, p in model.named_parameters()}
    _, g = _grads(model, params, x, y)
    losses, changes, ratios = [], [], []
    g_norm = _norm(g.values())
    for s in c.multipliers:
        moved = {k: (p - s * c.lr * g[k]).detach().requires_grad_(True) for k, p in params.items()}
        loss, g2 = _grads(model, moved, x, y)
        change = _norm(g2[k] - g[k] for k in g)
        change = change if math.isfinite(change) else math.inf  # an overflowing step: infinitely unpredictive
        losses.append(loss)
        changes.append(change)
        ratios.append(change / (s * c.lr * g_norm) if 0 < g_norm < math.inf else math.nan)
    weight = dict(model.named_parameters())
    target = next(k for k, p in weight.items() if p is model.linears()[c.ics_layer].weight)
    names = list(params)
    below = {k: (p - c.lr * g[k]).detach().requires_grad_(True) if names.index(k) < names.index(target)
             else p for k, p in params.items()}
    _, g_after = _grads(model, below, x, y)
    G, G2 = g[target].flatten().double(), g_after[target].flatten().double()
    distance, cosine = float((G - G2).norm()), float(F.cosine_similarity(G, G2, dim=0))
    for m in noises:
        m.hold = False
    finite = [v for v in losses if math.isfinite(v)]
    variation = max(finite) - min(finite) if len(finite) == len(losses) else math.inf
    return variation, max(changes), max(ratios), distance, cosine


def smoothness(config: SmoothnessConfig = SmoothnessConfig(), device: torch.device | str = "cpu",
               split: DigitsSplit | None = None, progress: Callable[[float], None] | None = None) -> Smoothness:
    """Train one network, tracking its layer input's distribution every step and probing the landscape."""
    c = config
    split = split if split is not None else digits_split(0, device=device)
    g = generator(c.seed)  # the mini-batch order, the same for the three networks at a seed
    g_noise = generator(c.seed + 7919)  # the noise has its own stream, so the batches stay the same
    model = build_network(c, g_noise, device=device)
    opt = torch.optim.SGD(model.parameters(), lr=c.lr)
    stats: list[tuple[torch.Tensor, torch.Tensor]] = []
    record = [True]  # off during the probes: only the training forward passes are tracked
    hook = model.linears()[c.probe_layer].register_forward_pre_hook(
        lambda m, inp: stats.append((inp[0].detach().mean(0), inp[0].detach().std(0))) if record[0] else None)
    rows, probes, probe_steps = [losses_and_accuracy(model, split)[:2]], [], []
    n, step, diverged = split.x_train.shape[0], 0, None
    for e in range(c.epochs):
        order = torch.randperm(n, generator=g).to(split.x_train.device)
        for i in range(0, n, c.batch_size):
            idx = order[i:i + c.batch_size]
            if diverged is not None or idx.numel() < 2:
                continue
            x, y = split.x_train[idx], split.y_train[idx]
            loss = F.cross_entropy(model(x), y)  # draws this step's noise, which the probe then holds
            if not math.isfinite(float(loss.detach())):
                diverged = step
                stats.pop()
                continue
            if step % c.probe_every == 0:
                record[0] = False
                probes.append(_probe(model, c, x, y))
                probe_steps.append(step)
                record[0] = True
            opt.zero_grad()
            loss.backward()
            opt.step()
            step += 1
        rows.append((math.nan, math.nan) if diverged is not None else losses_and_accuracy(model, split)[:2])
        if diverged is None and math.isnan(rows[-1][0]):
            diverged = step
        if progress is not None:
            progress((e + 1) / c.epochs)
    hook.remove()
    if not stats:  # diverged on the first step
        stats = [(torch.full((c.width,), math.nan),) * 2]
    mean = torch.stack([s[0] for s in stats]).double().cpu()
    std = torch.stack([s[1] for s in stats]).double().cpu()
    scale = std.mean(0).clamp_min(1e-12)  # each unit's own typical spread: the measure is free of the layer's scale
    shift = (((mean[1:] - mean[:-1]).abs() + (std[1:] - std[:-1]).abs()) / scale).mean(1)
    p = torch.tensor(probes, dtype=torch.float64).reshape(-1, 5)
    return Smoothness(config=c, train_loss=torch.tensor([r[0] for r in rows], dtype=torch.float64),
                      val_loss=torch.tensor([r[1] for r in rows], dtype=torch.float64),
                      unit_mean=mean[:, :c.units_shown], unit_std=std[:, :c.units_shown], step_shift=shift,
                      probe_steps=torch.tensor(probe_steps), loss_variation=p[:, 0], grad_change=p[:, 1],
                      effective_L=p[:, 2], ics_distance=p[:, 3], ics_cosine=p[:, 4], diverged_at=diverged)
