"""Chapter 6, Experiment 4: batch, group and layer normalization (and none) at small and large batch sizes.

The CNN of :mod:`gradlab.normalization.convnet` is trained on the digits for the same number of epochs at
every batch size B, so every run sees the same examples the same number of times. The optimizer is Adam, its
learning rate scaled from η at B = 32 by the square root, η·√(B/32) (the square-root rule for adaptive methods,
Malladi et al. 2022); ``optimizer="sgd"`` (momentum 0.9) with ``lr_rule="linear"``, η·B/32, is the setup of Wu &
He 2018 (after Goyal et al. 2017). Without a scaling, small batches would take many more steps of the same size
and large batches would barely move.

After each epoch the validation set is evaluated twice: in eval mode (batch norm uses its running statistics)
and in train mode on consecutive batches of B (batch norm uses each batch's c_𝓑 and σ²_𝓑, as it did in
training). The two agree exactly for group and layer norm and without normalization; for batch norm their gap
measures how far the noisy statistics of a batch of B are from the running ones. Also here: the two facts about
a batch of one (:func:`batch_of_one`).

``arch="mlp"`` trains instead the book's MLP (:mod:`gradlab.gradients.nets`: batch, layer or group norm, or none;
instance norm needs positions), where batch norm's statistics of a feature come from the B examples alone, not
from B × 64 positions as in the CNN.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

from ..batched_mlp import DigitsSplit, digits_split
from ..seeding import generator
from ..gradients.nets import NORMS, NetConfig, build
from .convnet import ConvNetConfig, build_convnet, evaluate, images, train_epoch

__all__ = ["LR_RULES", "BatchSizeConfig", "BatchSizeRun", "batch_size_run", "BatchSizeSweep", "batch_size_sweep",
           "BatchOfOne", "batch_of_one", "REFERENCE_BATCH", "ARCHS"]

ARCHS = ("cnn", "mlp")
LR_RULES = ("linear", "sqrt")
OPTIMIZERS = ("adam", "sgd")  # sgd: with momentum 0.9
REFERENCE_BATCH = 32


@dataclass(frozen=True)
class BatchSizeConfig:
    """One training run: normalization, B, epochs, η at B = 32 and how it scales, the network, the data used."""

    norm: str = "batch"
    batch_size: int = 32
    epochs: int = 6
    lr: float = 0.01  # η at B = 32
    lr_rule: str = "sqrt"
    optimizer: str = "adam"
    channels: int = 16
    blocks: int = 3
    groups: int = 4
    train_examples: int | None = None  # the first n training digits (None: all 1258)
    arch: str = "cnn"  # "mlp": nets.build's MLP, depth 4 and width 64
    seed: int = 0

    def __post_init__(self):
        if self.batch_size < 2:
            raise ValueError(f"B must be at least 2 for training (batch norm cannot train on one example), "
                             f"got {self.batch_size}")
        if self.epochs < 1:
            raise ValueError(f"epochs must be at least 1, got {self.epochs}")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise ValueError(f"the learning rate η must be a positive number, got {self.lr}")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer is one of {OPTIMIZERS}, not {self.optimizer!r}")
        if self.lr_rule not in LR_RULES:
            raise ValueError(f"lr_rule is one of {LR_RULES}, not {self.lr_rule!r}")
        if self.train_examples is not None and self.train_examples < self.batch_size:
            raise ValueError(f"train_examples ({self.train_examples}) must be at least B ({self.batch_size})")
        if self.arch not in ARCHS:
            raise ValueError(f"arch is one of {ARCHS}, not {self.arch!r}")
        if self.arch == "mlp" and self.norm not in NORMS:
            raise ValueError(f"the book's MLP (gradlab.gradients.nets) has no {self.norm} norm: choose one of "
                             f"{NORMS}, or the CNN")
        self.net()  # validates norm and groups

    def net(self) -> ConvNetConfig:
        return ConvNetConfig(channels=self.channels, blocks=self.blocks, norm=self.norm, groups=self.groups)

    def scaled_lr(self) -> float:
        """η at this B: η·B/32 (linear) or η·√(B/32)."""
        ratio = self.batch_size / REFERENCE_BATCH
        return self.lr * (ratio if self.lr_rule == "linear" else math.sqrt(ratio))


@dataclass(frozen=True, eq=False)
class BatchSizeRun:
    """Per epoch (epochs + 1 points, the first at initialization): training loss, validation loss and accuracy
    in eval mode and in train mode on batches of B."""

    config: BatchSizeConfig
    train_loss: torch.Tensor
    val_loss_eval: torch.Tensor
    val_loss_train: torch.Tensor
    val_acc_eval: torch.Tensor
    val_acc_train: torch.Tensor
    diverged_at: int | None = None

    @property
    def gap(self) -> float:
        """Final validation loss in train mode minus in eval mode."""
        return float(self.val_loss_train[-1] - self.val_loss_eval[-1])


def batch_size_run(config: BatchSizeConfig = BatchSizeConfig(), device: torch.device | str = "cpu",
                   split: DigitsSplit | None = None, progress: Callable[[float], None] | None = None) -> BatchSizeRun:
    """Train the CNN at one (normalization, B) and record both evaluation modes per epoch. Chapter 6."""
    c = config
    split = split if split is not None else digits_split(0, device=device)
    if c.train_examples is not None:
        split = DigitsSplit(split.x_train[:c.train_examples], split.y_train[:c.train_examples], split.x_val,
                            split.y_val)
    report = progress or (lambda f: None)
    if c.arch == "mlp":  # flattened first, so that the training loop's (B, 1, 8, 8) images fit
        model = nn.Sequential(nn.Flatten(), build(NetConfig(depth=4, width=64, norm=c.norm, groups=c.groups), c.seed,
                                                          device))
    else:
        model = build_convnet(c.net(), c.seed, device)
    opt = (torch.optim.Adam(model.parameters(), lr=c.scaled_lr()) if c.optimizer == "adam"
           else torch.optim.SGD(model.parameters(), lr=c.scaled_lr(), momentum=0.9))
    g = generator(c.seed)
    xt, xv = images(split.x_train), images(split.x_val)
    rows, diverged = [], None
    steps = split.x_train.shape[0] // c.batch_size
    for e in range(c.epochs + 1):
        if e > 0 and diverged is None:
            bad = train_epoch(model, opt, split, c.batch_size, g)
            if bad is not None:
                diverged = (e - 1) * steps + bad
        if diverged is not None:
            rows.append((math.nan,) * 5)
            continue
        lv, av = evaluate(model, xv, split.y_val)
        lt, at = evaluate(model, xv, split.y_val, train_mode=True, batch_size=c.batch_size)
        rows.append((evaluate(model, xt, split.y_train)[0], lv, lt, av, at))
        report(e / c.epochs)
    t = torch.tensor(rows, dtype=torch.float64).T
    return BatchSizeRun(config=c, train_loss=t[0], val_loss_eval=t[1], val_loss_train=t[2], val_acc_eval=t[3],
                        val_acc_train=t[4], diverged_at=diverged)


@dataclass(frozen=True, eq=False)
class BatchSizeSweep:
    """Final validation accuracy and loss gap (train mode − eval mode), indexed (norm, B, seed)."""

    norms: tuple[str, ...]
    batch_sizes: tuple[int, ...]
    seeds: tuple[int, ...]
    acc_eval: torch.Tensor
    acc_train: torch.Tensor
    gap: torch.Tensor


def batch_size_sweep(norms: tuple[str, ...] = ("batch", "group", "layer", "none"),
                     batch_sizes: tuple[int, ...] = (2, 4, 8, 16, 32, 64, 128), seeds: tuple[int, ...] = (0,),
                     base: BatchSizeConfig = BatchSizeConfig(), device: torch.device | str = "cpu",
                     split: DigitsSplit | None = None) -> BatchSizeSweep:
    """:func:`batch_size_run` for every (norm, B, seed), the rest of ``base`` held. Chapter 6."""
    split = split if split is not None else digits_split(0, device=device)
    shape = (len(norms), len(batch_sizes), len(seeds))
    acc, acc_t, gap = torch.empty(shape, dtype=torch.float64), torch.empty(shape, dtype=torch.float64), \
        torch.empty(shape, dtype=torch.float64)
    for i, norm in enumerate(norms):
        for j, b in enumerate(batch_sizes):
            for k, s in enumerate(seeds):
                r = batch_size_run(BatchSizeConfig(**{**base.__dict__, "norm": norm, "batch_size": b, "seed": s}),
                                   device, split)
                acc[i, j, k], acc_t[i, j, k], gap[i, j, k] = r.val_acc_eval[-1], r.val_acc_train[-1], r.gap
    return BatchSizeSweep(norms=tuple(norms), batch_sizes=tuple(batch_sizes), seeds=tuple(seeds), acc_eval=acc,
                          acc_train=acc_t, gap=gap)


@dataclass(frozen=True, eq=False)
class BatchOfOne:
    """A batch of one in train mode: ``nn.BatchNorm1d``'s error message, and the largest difference between
    ``nn.BatchNorm2d`` on one image and ``nn.InstanceNorm2d`` on it."""

    bn1d_error: str
    bn2d_vs_instance: float


def batch_of_one(channels: int = 16, seed: int = 0) -> BatchOfOne:
    """What batch norm does with a batch of one example in training mode. Chapter 6."""
    g = generator(seed)
    try:
        nn.BatchNorm1d(channels).train()(torch.randn(1, channels, generator=g))
        message = ""
    except ValueError as exc:
        message = str(exc)
    x = torch.randn(1, channels, 8, 8, generator=g) * 3 + 1
    with torch.no_grad():
        diff = (nn.BatchNorm2d(channels).train()(x) - nn.InstanceNorm2d(channels)(x)).abs().max()
    return BatchOfOne(bn1d_error=message, bn2d_vs_instance=float(diff))
