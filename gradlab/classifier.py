"""A small digit classifier trained with cross-entropy or with squared error (Chapter 2).

The data are scikit-learn's 8×8 handwritten digits (1,797 images, 10 classes), which ship inside
scikit-learn: no download. The network is Linear(64, hidden), ReLU, Linear(hidden, 10); both losses
start from the same weights and see the same mini-batches, so the loss is the only difference.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from functools import lru_cache
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from .losses import squared_error
from .seeding import generator

__all__ = ["digits", "ClassifierConfig", "ClassifierRun", "train_classifier", "compare_losses", "lr_sweep"]

LOSSES: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "cross-entropy": F.cross_entropy, "squared error": squared_error}


@lru_cache(maxsize=None)
def _standardized_digits() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    data = load_digits()
    x = data.data.astype(np.float32)
    std = x.std(axis=0)
    x = (x - x.mean(axis=0)) / np.where(std > 0, std, 1.0)  # border pixels that are always 0 stay 0
    x.setflags(write=False)
    y = data.target.astype(np.int64)
    y.setflags(write=False)
    return x, y


def digits(device: torch.device | str = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
    """Standardized pixels (1797, 64) as float32 and labels (1797,), loaded once per session."""
    x, y = _standardized_digits()
    return torch.tensor(x, device=device), torch.tensor(y, device=device)


@dataclass(frozen=True)
class ClassifierConfig:
    """The training run: loss, SGD learning rate, epochs, batch size, hidden units and the initial logit scale.

    ``logit_scale`` multiplies the output layer's initial weights: at 1 the first predictions are
    near uniform; at 10 they are confident, and for about nine examples in ten confidently wrong.
    """

    loss: str = "cross-entropy"  # "cross-entropy" | "squared error"
    lr: float = 0.3
    epochs: int = 20
    batch: int = 64
    hidden: int = 64
    logit_scale: float = 1.0
    n_train: int = 1297  # the other 500 images are held out


@dataclass
class ClassifierRun:
    """Per epoch (index 0 = before training): training accuracy and the examples confidently wrong."""

    config: ClassifierConfig
    train_accuracy: list[float] = field(default_factory=list)
    confidently_wrong: list[int] = field(default_factory=list)  # training examples given under 1% on their class
    test_accuracy: float = float("nan")
    diverged_at: int | None = None


def _init(cfg: ClassifierConfig, seed: int, device: torch.device | str) -> list[torch.Tensor]:
    g = generator(seed)
    w1 = torch.randn(cfg.hidden, 64, generator=g) * math.sqrt(2 / 64)  # He initialization for the ReLU
    w2 = torch.randn(10, cfg.hidden, generator=g) * cfg.logit_scale / math.sqrt(cfg.hidden)
    return [t.to(device).requires_grad_(True) for t in (w1, torch.zeros(cfg.hidden), w2, torch.zeros(10))]


def _logits(p: list[torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    return torch.relu(x @ p[0].T + p[1]) @ p[2].T + p[3]


def _evaluate(p: list[torch.Tensor], x: torch.Tensor, y: torch.Tensor) -> tuple[float, int]:
    with torch.no_grad():
        z = _logits(p, x)
        right = (z.argmax(1) == y).float().mean()
        wrong = (torch.softmax(z, 1).gather(1, y[:, None]) < 0.01).sum()
    return float(right), int(wrong)


def train_classifier(cfg: ClassifierConfig, seed: int = 0, device: torch.device | str = "cpu",
                     progress: Callable[[float], None] | None = None) -> ClassifierRun:
    """Mini-batch SGD on the digits; the split, the initial weights and the batch order depend on ``seed`` only."""
    if cfg.loss not in LOSSES:
        raise ValueError(f"loss must be one of {sorted(LOSSES)}")
    x, y = digits(device)
    order = torch.randperm(len(y), generator=generator(seed + 1)).to(device)
    train, test = order[:cfg.n_train], order[cfg.n_train:]
    p = _init(cfg, seed, device)
    opt = torch.optim.SGD(p, lr=cfg.lr)
    shuffle = generator(seed + 2)
    run = ClassifierRun(cfg)
    acc, wrong = _evaluate(p, x[train], y[train])
    run.train_accuracy.append(acc)
    run.confidently_wrong.append(wrong)
    for epoch in range(cfg.epochs):
        batches = train[torch.randperm(len(train), generator=shuffle).to(device)].split(cfg.batch)
        for idx in batches:
            loss = LOSSES[cfg.loss](_logits(p, x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
        if not all(bool(torch.isfinite(t).all()) for t in p):
            run.diverged_at = epoch + 1
            break
        acc, wrong = _evaluate(p, x[train], y[train])
        run.train_accuracy.append(acc)
        run.confidently_wrong.append(wrong)
        if progress is not None:
            progress((epoch + 1) / cfg.epochs)
    if run.diverged_at is None:
        run.test_accuracy = _evaluate(p, x[test], y[test])[0]
    return run


def compare_losses(cfg: ClassifierConfig, seed: int = 0, device: torch.device | str = "cpu") -> list[ClassifierRun]:
    """The same run with each loss: same split, same initial weights, same mini-batches."""
    return [train_classifier(replace(cfg, loss=name), seed, device) for name in LOSSES]


def lr_sweep(cfg: ClassifierConfig, lrs: tuple[float, ...], seed: int = 0,
             device: torch.device | str = "cpu") -> dict[tuple[str, float], ClassifierRun]:
    """``compare_losses`` at each learning rate: (loss, lr) -> run."""
    return {(r.config.loss, lr): r for lr in lrs for r in compare_losses(replace(cfg, lr=lr), seed, device)}
