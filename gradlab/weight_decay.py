"""Adam + L2 against AdamW, and L1 against L2, on the digits (Chapter 3).

Adam + L2 adds αx to the gradient, so the decay passes through Adam's division by √v̂: a weight whose
gradients are large is decayed by about ηαx/√v̂, far less than ηαx, and with no data gradient at all the
step is η·sign(x) whatever α is. AdamW multiplies x by (1 − ηα) before Adam's step: the same decay for
every weight, whatever its gradients (Loshchilov and Hutter 2019). The grid trains both over (η, α).
An L1 penalty α Σ|w| added to the loss gives the subgradient α·sign(w), which makes weights hop around 0
but rarely land on it; the proximal step w ← sign(w)·max(|w| − ηα, 0) sets them exactly to 0.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from torch import Tensor

from .batched_mlp import DigitsSplit, MLPConfig, Run, digits_split, train_runs

__all__ = ["DecayGridConfig", "DecayGrid", "decay_grid", "SparsityConfig", "Sparsity", "l1_vs_l2"]

OPTIMIZERS = ("Adam", "AdamW")  # Adam's weight_decay is the L2 penalty; AdamW's is decoupled


@dataclass(frozen=True)
class DecayGridConfig:
    """The learning rates η and penalties α of the grid, the network and its training, and the seeds."""

    lrs: tuple[float, ...] = (3e-4, 1e-3, 3e-3, 1e-2, 3e-2)
    decays: tuple[float, ...] = (0.0, 1e-3, 1e-2, 1e-1, 1.0)
    mlp: MLPConfig = MLPConfig(hidden=32, epochs=15, batch_size=128)
    seed: int = 0  # initial weights and batch order, the same for every cell
    split_seed: int = 0


@dataclass
class DecayGrid:
    """Final validation accuracy and loss, and ‖w‖, per optimizer × η × α: (2, len(lrs), len(decays))."""

    config: DecayGridConfig
    labels: tuple[str, ...]  # ("Adam + L2", "AdamW")
    val_acc: Tensor
    val_loss: Tensor
    weight_norm: Tensor
    diverged_at: int | None = None
    diverged_run: str | None = None

    def best(self, i: int) -> tuple[float, float, float]:
        """(η, α, accuracy) of optimizer i's best cell."""
        acc = torch.nan_to_num(self.val_acc[i], nan=-1.0)
        k = int(acc.argmax())
        r, c = divmod(k, acc.shape[1])
        return self.config.lrs[r], self.config.decays[c], float(acc[r, c])

    def best_decay_per_lr(self, i: int) -> tuple[float, ...]:
        """For optimizer i, the α of the best validation accuracy in each row η."""
        acc = torch.nan_to_num(self.val_acc[i], nan=-1.0)
        return tuple(self.config.decays[int(j)] for j in acc.argmax(1))


def decay_grid(config: DecayGridConfig = DecayGridConfig(), split: DigitsSplit | None = None,
               progress: Callable[[float], None] | None = None) -> DecayGrid:
    """Train Adam with weight_decay α (L2) and AdamW with α at every η, all cells in one batched run."""
    split = split or digits_split(config.split_seed)
    runs = [Run(kind, lr, wd, seed=config.seed) for kind in OPTIMIZERS for lr in config.lrs for wd in config.decays]
    curves = train_runs(split, runs, config.mlp, progress)
    shape = (len(OPTIMIZERS), len(config.lrs), len(config.decays))
    labels = ("Adam + L2", "AdamW")
    run = None
    if curves.diverged_at is not None:
        i = curves.diverged.index(curves.diverged_at)
        r = runs[i]
        run = f"{labels[OPTIMIZERS.index(r.kind)]} (η = {r.lr:.3g}, α = {r.weight_decay:.3g})"
    return DecayGrid(config, labels, curves.val_acc[:, -1].reshape(shape), curves.val_loss[:, -1].reshape(shape),
                     curves.weight_norm.reshape(shape), curves.diverged_at, run)


@dataclass(frozen=True)
class SparsityConfig:
    """SGD with momentum at η, with an L2 penalty α (weight_decay), an L1 penalty α in the loss, or L1's prox."""

    alpha: float = 1e-3
    lr: float = 0.05
    threshold: float = 1e-3  # a weight below this in size counts as (near) zero
    mlp: MLPConfig = MLPConfig(hidden=32, epochs=15, batch_size=128)
    seed: int = 0
    split_seed: int = 0


@dataclass
class Sparsity:
    """Per penalty: the weights' sizes, the fraction below the threshold, the fraction exactly 0, accuracy."""

    config: SparsityConfig
    labels: tuple[str, ...]  # ("L2", "L1 subgradient", "L1 proximal")
    weights: Tensor  # (3, entries): the weight matrices at the end
    near_zero: Tensor  # (3,) fraction with |w| < threshold
    exact_zero: Tensor  # (3,) fraction with w == 0
    val_acc: Tensor  # (3,)
    diverged_at: int | None = None
    diverged_run: str | None = None


def l1_vs_l2(config: SparsityConfig = SparsityConfig(), split: DigitsSplit | None = None,
             progress: Callable[[float], None] | None = None) -> Sparsity:
    """Train the same network three ways (L2, L1 by subgradient, L1 by its proximal step) and measure sparsity."""
    split = split or digits_split(config.split_seed)
    a, lr, s = config.alpha, config.lr, config.seed
    runs = [Run("momentum", lr, weight_decay=a, seed=s), Run("momentum", lr, l1=a, seed=s),
            Run("momentum", lr, l1=a, prox=True, seed=s)]
    curves = train_runs(split, runs, config.mlp, progress)
    labels = ("L2", "L1 subgradient", "L1 proximal")
    w = curves.weights
    run = None if curves.diverged_at is None else labels[curves.diverged.index(curves.diverged_at)]
    return Sparsity(config, labels, w, (w.abs() < config.threshold).double().mean(1), (w == 0).double().mean(1),
                    curves.val_acc[:, -1], curves.diverged_at, run)
