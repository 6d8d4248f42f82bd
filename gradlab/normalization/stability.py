"""Chapter 6, Experiment 2: batch normalization lets a deep plain MLP train at larger learning rates.

A plain (non-residual) ReLU MLP of depth D from :mod:`gradlab.gradients.nets`, He-initialized (the init that
keeps a ReLU network's forward signal at scale at initialization, so that the un-normalized network starts
healthy and the comparison is about the step size, not a broken start), with or without batch normalization
after every hidden linear layer, is trained by plain SGD (no momentum, no weight decay: the learning rate η is
the only knob) for a fixed budget of epochs on mini-batches of the digits. Losses are measured on the whole
training and validation sets in evaluation mode (batch norm then uses its running statistics).

A run *diverged* when a mini-batch loss was not finite (NaN or inf); it *trains* when it did not diverge and its
final validation loss is below ``TRAINS_BELOW`` = ln(10) / 2, half the loss of a uniform guess over the C = 10
classes. :func:`lr_sweep` runs a grid of η for both networks and several seeds and reports the largest η that
trains on every seed, per network.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F

from ..batched_mlp import DigitsSplit, digits_split
from ..gradients.nets import NetConfig, build
from ..seeding import generator

__all__ = ["STABILITY_NORMS", "TRAINS_BELOW", "StabilityConfig", "StabilityRun", "train_run",
           "SweepConfig", "Sweep", "lr_sweep", "losses_and_accuracy"]

STABILITY_NORMS = ("none", "batch")
TRAINS_BELOW = math.log(10) / 2  # half of chance, ln C / 2 with C = 10 classes


def _check_common(depth: int, width: int, epochs: int, batch_size: int) -> None:
    if depth < 2:
        raise ValueError(f"depth D counts the layers with weights: at least 2 (one hidden layer), got {depth}")
    if width < 1 or batch_size < 2:
        raise ValueError(f"width ≥ 1 and batch size ≥ 2 are needed (batch norm needs two examples), "
                         f"got width {width} and batch size {batch_size}")
    if epochs < 1:
        raise ValueError(f"the budget is at least one epoch, got {epochs}")


def _check_lr(lr: float) -> None:
    if not (lr > 0 and math.isfinite(lr)):
        raise ValueError(f"the learning rate η must be a positive number, got {lr}")


@dataclass(frozen=True)
class StabilityConfig:
    """One run: the network (norm, depth D, width), plain SGD at η, the budget of epochs, batch size B, seed."""

    norm: str = "none"
    lr: float = 0.1
    depth: int = 12
    width: int = 64
    epochs: int = 20
    batch_size: int = 128
    seed: int = 0

    def __post_init__(self):
        if self.norm not in STABILITY_NORMS:
            raise ValueError(f"norm is one of {STABILITY_NORMS}, not {self.norm!r}")
        _check_lr(self.lr)
        _check_common(self.depth, self.width, self.epochs, self.batch_size)

    def net(self) -> NetConfig:
        return NetConfig(width=self.width, depth=self.depth, activation="relu", init="he", norm=self.norm)


@dataclass(frozen=True, eq=False)
class StabilityRun:
    """Losses on the whole training and validation sets after each epoch (epochs + 1 points, NaN after a
    divergence), the final validation accuracy, and the optimizer step k at which a batch loss was not finite."""

    config: StabilityConfig
    train_loss: torch.Tensor
    val_loss: torch.Tensor
    val_acc: float
    diverged_at: int | None = None

    @property
    def final_val(self) -> float:
        return float(self.val_loss[-1])

    @property
    def trains(self) -> bool:
        """Did not diverge and ends below ``TRAINS_BELOW`` (ln 10 / 2) in validation loss."""
        return self.diverged_at is None and self.final_val < TRAINS_BELOW


def losses_and_accuracy(model, split: DigitsSplit) -> tuple[float, float, float]:
    """Training loss, validation loss and accuracy on the whole split in evaluation mode (NaN if not finite)."""
    model.eval()
    with torch.no_grad():
        train = float(F.cross_entropy(model(split.x_train), split.y_train))
        out = model(split.x_val)
        val = float(F.cross_entropy(out, split.y_val))
        acc = float((out.argmax(1) == split.y_val).float().mean())
    model.train()
    bad = not (math.isfinite(train) and math.isfinite(val))
    return (math.nan, math.nan, math.nan) if bad else (train, val, acc)


def train_run(config: StabilityConfig = StabilityConfig(), device: torch.device | str = "cpu",
              split: DigitsSplit | None = None, progress: Callable[[float], None] | None = None) -> StabilityRun:
    """Train one network by plain SGD for the budget; stop at the first non-finite mini-batch loss."""
    c = config
    split = split if split is not None else digits_split(0, device=device)
    model = build(c.net(), seed=c.seed, device=device)
    g = generator(c.seed)  # the mini-batch order: the same for both networks at a seed
    opt = torch.optim.SGD(model.parameters(), lr=c.lr)
    n = split.x_train.shape[0]
    rows = [losses_and_accuracy(model, split)]
    diverged, step = None, 0
    for e in range(c.epochs):
        if diverged is None:
            order = torch.randperm(n, generator=g).to(split.x_train.device)
            for i in range(0, n - 1, c.batch_size):  # n - 1: never a batch of one (batch norm needs two)
                idx = order[i:i + c.batch_size]
                if idx.numel() < 2:
                    continue
                loss = F.cross_entropy(model(split.x_train[idx]), split.y_train[idx])
                if not math.isfinite(float(loss.detach())):
                    diverged = step
                    break
                opt.zero_grad()
                loss.backward()
                opt.step()
                step += 1
        row = (math.nan,) * 3 if diverged is not None else losses_and_accuracy(model, split)
        if diverged is None and math.isnan(row[0]):
            diverged = step  # the weights overflowed on the last step although its batch loss was finite
        rows.append(row)
        if progress is not None:
            progress((e + 1) / c.epochs)
    return StabilityRun(config=c, train_loss=torch.tensor([r[0] for r in rows], dtype=torch.float64),
                        val_loss=torch.tensor([r[1] for r in rows], dtype=torch.float64),
                        val_acc=rows[-1][2], diverged_at=diverged)


@dataclass(frozen=True)
class SweepConfig:
    """A log grid of η, both networks, several seeds; the rest as :class:`StabilityConfig`."""

    lrs: tuple[float, ...] = (0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0)
    seeds: tuple[int, ...] = (0, 1, 2)
    depth: int = 12
    width: int = 64
    epochs: int = 20
    batch_size: int = 128

    def __post_init__(self):
        if len(self.lrs) < 2 or any(b <= a for a, b in zip(self.lrs, self.lrs[1:])):
            raise ValueError(f"lrs is an increasing grid of at least two learning rates, got {self.lrs}")
        for lr in self.lrs:
            _check_lr(lr)
        if not self.seeds:
            raise ValueError("at least one seed is needed")
        _check_common(self.depth, self.width, self.epochs, self.batch_size)

    def run_config(self, norm: str, lr: float, seed: int) -> StabilityConfig:
        return StabilityConfig(norm=norm, lr=lr, depth=self.depth, width=self.width, epochs=self.epochs,
                               batch_size=self.batch_size, seed=seed)


@dataclass(frozen=True, eq=False)
class Sweep:
    """Final losses (norms, seeds, lrs) (NaN where diverged), divergence flags, and per network the largest η that
    trains on every seed (None: none does) and the η of the lowest seed-mean final validation loss."""

    config: SweepConfig
    final_train: torch.Tensor
    final_val: torch.Tensor
    diverged: torch.Tensor  # bool
    largest_stable: tuple[float | None, ...]
    best_lr: tuple[float | None, ...]

    @property
    def ratio(self) -> float | None:
        """Largest η that trains with batch norm over the one without (None when either is None)."""
        a, b = self.largest_stable
        return None if a is None or b is None else b / a

    def val_at(self, norm: str, lr: float) -> torch.Tensor:
        """Final validation loss per seed of one network at one η of the grid."""
        return self.final_val[STABILITY_NORMS.index(norm), :, self.config.lrs.index(lr)]


def lr_sweep(config: SweepConfig = SweepConfig(), device: torch.device | str = "cpu",
             progress: Callable[[float], None] | None = None) -> Sweep:
    """Every (network, seed, η) of the grid trained once; the data split is the digits' seed-0 split."""
    c = config
    split = digits_split(0, device=device)
    shape = (len(STABILITY_NORMS), len(c.seeds), len(c.lrs))
    final_train, final_val = torch.full(shape, math.nan, dtype=torch.float64), torch.full(shape, math.nan,
                                                                                          dtype=torch.float64)
    diverged, trains = torch.zeros(shape, dtype=torch.bool), torch.zeros(shape, dtype=torch.bool)
    total, done = math.prod(shape), 0
    for a, norm in enumerate(STABILITY_NORMS):
        for s, seed in enumerate(c.seeds):
            for k, lr in enumerate(c.lrs):
                r = train_run(c.run_config(norm, lr, seed), device=device, split=split)
                final_train[a, s, k], final_val[a, s, k] = float(r.train_loss[-1]), r.final_val
                diverged[a, s, k], trains[a, s, k] = r.diverged_at is not None, r.trains
                done += 1
                if progress is not None:
                    progress(done / total)
    largest, best = [], []
    for a in range(len(STABILITY_NORMS)):
        ok = [k for k in range(len(c.lrs)) if bool(trains[a, :, k].all())]
        largest.append(c.lrs[max(ok)] if ok else None)
        mean = final_val[a].mean(0)  # NaN where any seed diverged
        finite = [k for k in range(len(c.lrs)) if math.isfinite(float(mean[k]))]
        best.append(c.lrs[min(finite, key=lambda k: float(mean[k]))] if finite else None)
    return Sweep(config=c, final_train=final_train, final_val=final_val, diverged=diverged,
                 largest_stable=tuple(largest), best_lr=tuple(best))
