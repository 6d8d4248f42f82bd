"""Loss scaling at work (Chapter 5, Experiment 8): ``torch.amp.GradScaler`` on the digits, its rule for the loss
scale 𝒮 written from scratch beside it (back off on an overflow and skip the step, grow after a run of clean
steps), and which operations ``torch.autocast`` runs in the low-precision format.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F

from ..batched_mlp import DigitsSplit, digits_split
from ..seeding import generator
from .nets import NetConfig, build
from .precision import minibatch_loss

__all__ = ["GRADIENTS", "update_scale", "ScalerConfig", "ScalerRun", "scaler_run", "AutocastDtypes", "autocast_dtypes"]


GRADIENTS = ("autocast", "rounded", "float32")


def update_scale(scale: float, tracker: int, found_inf: bool, growth_factor: float = 2.0,
                 backoff_factor: float = 0.5, growth_interval: int = 2000) -> tuple[float, int]:
    """GradScaler's rule, from scratch: on an inf/NaN gradient the step is skipped and 𝒮 ← backoff·𝒮; after
    ``growth_interval`` clean steps in a row, 𝒮 ← growth·𝒮. Returns (𝒮, clean steps counted since)."""
    if found_inf:
        return scale * backoff_factor, 0
    tracker += 1
    if tracker == growth_interval:
        return scale * growth_factor, 0
    return scale, tracker


@dataclass(frozen=True)
class ScalerConfig:
    """A run of ``torch.amp.GradScaler`` on the digits. ``gradients``: "autocast", forward and backward under
    ``torch.autocast(dtype=torch.float16)`` (the real thing; on a GPU fast, on the CPU about 4 times slower);
    "rounded", a float32 backward whose 𝒮·g is then rounded to float16 (0 below 2^−25, inf from 65520: the same
    overflow at the end of the backward, none on the way); "float32", no rounding. ``overflow_steps``: steps whose
    gradient is set to inf, as a bad batch would."""

    net: NetConfig = NetConfig(depth=5, activation="relu")
    steps: int = 600
    lr: float = 0.05
    batch_size: int = 64
    init_scale: float = 2.0 ** 16
    growth_factor: float = 2.0
    backoff_factor: float = 0.5
    growth_interval: int = 2000
    overflow_steps: tuple[int, ...] = (200,)
    gradients: str = "rounded"
    seed: int = 0

    def __post_init__(self):
        if self.steps < 1 or self.growth_interval < 1:
            raise ValueError(f"steps and growth_interval must be ≥ 1, got {self.steps} and {self.growth_interval}")
        if not (self.growth_factor > 1 and 0 < self.backoff_factor < 1 and self.init_scale > 0):
            raise ValueError("GradScaler needs growth_factor > 1, 0 < backoff_factor < 1 and init_scale > 0")
        if any(not 0 <= k < self.steps for k in self.overflow_steps):
            raise ValueError(f"overflow steps must lie in 0 … {self.steps - 1}, got {self.overflow_steps}")
        if self.gradients not in GRADIENTS:
            raise ValueError(f"gradients is one of {GRADIENTS}, not {self.gradients!r}")
        if self.lr <= 0 or self.batch_size < 1 or self.net.norm == "batch":
            raise ValueError("need η > 0, batch_size ≥ 1, and norm 'none' or 'layer'")


@dataclass(frozen=True, eq=False)
class ScalerRun:
    """Per step k: 𝒮 used (GradScaler's, and the from-scratch rule's), whether the step was skipped, the
    mini-batch loss and how far the parameters moved (0 on a skipped step)."""

    config: ScalerConfig
    scale: torch.Tensor
    rule_scale: torch.Tensor
    skipped: torch.Tensor
    loss: torch.Tensor
    moved: torch.Tensor
    grad_max: torch.Tensor  # max |g| (finite entries, unscaled): 𝒮 overflows float16 above 65504 / max |g|
    device: str
    diverged_at: int | None = None


def scaler_run(config: ScalerConfig = ScalerConfig(), device: torch.device | str = "cpu",
               split: DigitsSplit | None = None, progress: Callable[[float], None] | None = None) -> ScalerRun:
    """Train with ``torch.amp.GradScaler`` (``device``'s type: "cpu" or "cuda") and record its scale."""
    device = torch.device(device)
    split = split if split is not None else digits_split(0, device=device)
    model = build(config.net, config.seed, device)
    params = list(model.parameters())
    opt = torch.optim.SGD(params, lr=config.lr)
    scaler = torch.amp.GradScaler(device.type, init_scale=config.init_scale, growth_factor=config.growth_factor,
                                  backoff_factor=config.backoff_factor, growth_interval=config.growth_interval)
    g, bad = generator(config.seed), set(config.overflow_steps)
    rule, tracker = config.init_scale, 0
    rows = []
    for k in range(config.steps):
        used = scaler.get_scale()
        with torch.autocast(device.type, dtype=torch.float16, enabled=config.gradients == "autocast"):
            loss = minibatch_loss(model, split, g, config.batch_size)
        if not torch.isfinite(loss):
            return _scaler_result(config, rows, str(device), diverged_at=k)
        opt.zero_grad()
        scaler.scale(loss).backward()
        top = max(float(p.grad.abs().nan_to_num(0.0, 0.0, 0.0).max()) for p in params) / used
        if config.gradients == "rounded":
            for p in params:
                p.grad = p.grad.half().float()  # a float16 gradient: 0 below 2^−24, inf above 65504
        if k in bad:
            params[0].grad.view(-1)[0] = math.inf
        scaler.unscale_(opt)
        found = not all(bool(torch.isfinite(p.grad).all()) for p in params)
        before = [p.detach().clone() for p in params]
        scaler.step(opt)
        scaler.update()
        moved = math.sqrt(sum(float((p.detach() - b).pow(2).sum()) for p, b in zip(params, before)))
        rows.append((used, rule, found, float(loss.detach()), moved, top))
        rule, tracker = update_scale(rule, tracker, found, config.growth_factor, config.backoff_factor,
                                     config.growth_interval)
        if progress is not None and k % 50 == 0:
            progress(k / config.steps)
    return _scaler_result(config, rows, str(device))


def _scaler_result(config: ScalerConfig, rows: list, device: str, diverged_at: int | None = None) -> ScalerRun:
    cols = list(zip(*rows)) if rows else [()] * 6
    f64 = [torch.tensor(c, dtype=torch.float64) for c in cols]
    return ScalerRun(config, f64[0], f64[1], torch.tensor(cols[2], dtype=torch.bool), f64[3], f64[4], f64[5],
                     device, diverged_at)


@dataclass(frozen=True)
class AutocastDtypes:
    """The dtype of each stage of a forward and backward pass under ``torch.autocast`` on ``device``."""

    device: str
    low: torch.dtype  # the autocast dtype: float16 on CUDA, bfloat16 on the CPU
    stages: tuple[tuple[str, torch.dtype], ...]


def autocast_dtypes(net: NetConfig = NetConfig(depth=4, activation="relu"), device: torch.device | str = "cpu",
                    seed: int = 0) -> AutocastDtypes:
    """Run one mini-batch of the digits through ``net`` under autocast and record each stage's dtype."""
    device = torch.device(device)
    low = torch.float16 if device.type == "cuda" else torch.bfloat16
    split = digits_split(0, device=device)
    model = build(net, seed, device)
    seen: dict[str, torch.dtype] = {}
    first_linear = model.linears()[0]
    acts = [m for m in model.modules() if type(m).__module__ == "torch.nn.modules.activation"]

    def record(label: str):
        def hook(module, inputs, output) -> None:  # a hook that returned something would replace the output
            seen.setdefault(label, output.dtype)
        return hook

    hooks = [first_linear.register_forward_hook(record("first linear layer's output"))]
    hooks += [a.register_forward_hook(record(f"activation ({type(a).__name__})")) for a in acts[:1]]
    x, y = split.x_train[:64], split.y_train[:64]
    with torch.autocast(device.type, dtype=low):
        logits = model(x)
        soft, log_soft = F.softmax(logits, -1), F.log_softmax(logits, -1)
        loss = F.cross_entropy(logits, y)
    for h in hooks:
        h.remove()
    loss.backward()
    stages = [("input", x.dtype), ("weights (kept)", first_linear.weight.dtype), *seen.items(),
              ("logits", logits.dtype), ("softmax", soft.dtype), ("log_softmax", log_soft.dtype),
              ("cross-entropy loss", loss.dtype), ("weight gradient", first_linear.weight.grad.dtype)]
    return AutocastDtypes(str(device), low, tuple(stages))
