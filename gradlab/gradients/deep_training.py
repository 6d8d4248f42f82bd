"""Deep networks that do and do not train (Chapter 5, Experiment 3): a plain or residual MLP on the digits at
depth 5, 20 or 50, sigmoid with PyTorch's default initialization against ReLU with He's, with or without
normalization, trained by ``torch.optim`` for a fixed budget; loss curves and the ratio of the first layer's
gradient norm to the last layer's at every step."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from ..batched_mlp import DigitsSplit, digits_split
from .nets import NetConfig, build

__all__ = ["VARIANTS", "DeepConfig", "DeepRuns", "train_deep"]

# (label, activation, initialization, residual)
VARIANTS = (("sigmoid, plain", "sigmoid", "pytorch", False),
            ("sigmoid, residual", "sigmoid", "pytorch", True),
            ("ReLU + He, plain", "relu", "he", False),
            ("ReLU + He, residual", "relu", "he", True))
OPTIMIZERS = ("momentum", "Adam")


@dataclass(frozen=True)
class DeepConfig:
    """Every variant at one depth and normalization, ``seeds`` runs each, ``epochs`` epochs of mini-batches."""

    depth: int = 20
    width: int = 64
    norm: str = "none"
    optimizer: str = "momentum"  # SGD with β = 0.9, or Adam
    lr: float = 0.05
    epochs: int = 10
    batch_size: int = 128
    seeds: int = 1
    variants: tuple[str, ...] = tuple(v[0] for v in VARIANTS)  # which of VARIANTS to train, by label

    def __post_init__(self):
        unknown = set(self.variants) - {v[0] for v in VARIANTS}
        if unknown or not self.variants:
            raise ValueError(f"variants are labels of VARIANTS ({[v[0] for v in VARIANTS]}), got {self.variants}")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer is one of {OPTIMIZERS}, not {self.optimizer!r}")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise ValueError(f"the learning rate must be a positive number, got {self.lr}")
        if self.epochs < 1 or self.batch_size < 1 or self.seeds < 1:
            raise ValueError("epochs, batch size and seeds must be at least 1")
        self.net(VARIANTS[0])

    def net(self, variant: tuple) -> NetConfig:
        _, activation, init, residual = variant
        return NetConfig(d_in=64, width=self.width, d_out=10, depth=self.depth, activation=activation, init=init,
                         norm=self.norm, residual=residual)


@dataclass(frozen=True, eq=False)
class DeepRuns:
    """Per variant and seed: the mini-batch loss and the first/last gradient ratio at every step, and the
    validation loss and accuracy after every epoch (index 0: before training). NaN after a run diverged."""

    config: DeepConfig
    labels: tuple[str, ...]
    train_loss: Tensor  # (variants, seeds, steps)
    grad_ratio: Tensor  # (variants, seeds, steps)
    val_loss: Tensor  # (variants, seeds, epochs + 1)
    val_acc: Tensor
    diverged: tuple  # per variant: the first step at which a seed's loss was not finite, or None
    diverged_at: int | None = None
    diverged_run: str | None = None

    def final(self, label: str) -> float:
        """Mean final validation loss of one variant (NaN if a seed diverged)."""
        return float(self.val_loss[self.labels.index(label), :, -1].mean())

    def ratio_at_start(self, label: str) -> float:
        """The first layer's gradient norm over the last layer's at the first step (first seed)."""
        return float(self.grad_ratio[self.labels.index(label), 0, 0])

    @property
    def steps_per_epoch(self) -> int:
        return self.train_loss.shape[-1] // self.config.epochs


def _evaluate(model, x: Tensor, y: Tensor) -> tuple[float, float]:
    model.eval()
    with torch.no_grad():
        logits = model(x)
        loss = float(F.cross_entropy(logits, y))
        acc = float((logits.argmax(1) == y).double().mean())
    model.train()
    return loss, acc


def _one_run(config: DeepConfig, variant: tuple, seed: int, split: DigitsSplit, device) -> tuple[list, ...]:
    model = build(config.net(variant), seed=seed, device=device)
    first, last = model.linears()[0].weight, model.linears()[-1].weight
    params = list(model.parameters())
    opt = (torch.optim.SGD(params, lr=config.lr, momentum=0.9) if config.optimizer == "momentum"
           else torch.optim.Adam(params, lr=config.lr))
    g = torch.Generator().manual_seed(1000 + seed)
    n = split.x_train.shape[0]
    losses, ratios, val = [], [], [_evaluate(model, split.x_val, split.y_val)]
    broken = None
    for _ in range(config.epochs):
        order = torch.randperm(n, generator=g)
        for i in range(0, n - config.batch_size + 1, config.batch_size):  # full batches: BatchNorm needs > 1
            idx = order[i:i + config.batch_size]
            if broken is not None:
                losses.append(math.nan)
                ratios.append(math.nan)
                continue
            loss = F.cross_entropy(model(split.x_train[idx]), split.y_train[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            top = float(last.grad.norm())
            ratios.append(float(first.grad.norm()) / top if top > 0 else math.nan)
            losses.append(float(loss.detach()))
            if not math.isfinite(losses[-1]):
                broken = len(losses) - 1
                continue
            opt.step()
        val.append((math.nan, math.nan) if broken is not None else _evaluate(model, split.x_val, split.y_val))
    return losses, ratios, val, broken


def train_deep(config: DeepConfig = DeepConfig(), split: DigitsSplit | None = None,
               progress: Callable[[float], None] | None = None, device: torch.device | str = "cpu") -> DeepRuns:
    """Train every variant of :data:`VARIANTS` for every seed (one ordinary training loop per run)."""
    split = split if split is not None else digits_split(0, device=device)
    chosen = [v for v in VARIANTS if v[0] in config.variants]
    runs = [(v, s) for v in chosen for s in range(config.seeds)]
    out, diverged = [], []
    for j, (variant, seed) in enumerate(runs):
        out.append(_one_run(config, variant, seed, split, device))
        if progress is not None:
            progress((j + 1) / len(runs))
    shape = (len(chosen), config.seeds, -1)
    loss = torch.tensor([o[0] for o in out], dtype=torch.float64).reshape(shape)
    ratio = torch.tensor([o[1] for o in out], dtype=torch.float64).reshape(shape)
    vl = torch.tensor([[p[0] for p in o[2]] for o in out], dtype=torch.float64).reshape(shape)
    va = torch.tensor([[p[1] for p in o[2]] for o in out], dtype=torch.float64).reshape(shape)
    for i in range(len(chosen)):
        steps = [out[i * config.seeds + s][3] for s in range(config.seeds)]
        steps = [k for k in steps if k is not None]
        diverged.append(min(steps) if steps else None)
    first = min(((k, chosen[i][0]) for i, k in enumerate(diverged) if k is not None), default=(None, None))
    return DeepRuns(config, tuple(v[0] for v in chosen), loss, ratio, vl, va, tuple(diverged), first[0], first[1])
