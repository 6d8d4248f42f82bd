"""Chapter 6, Experiment 5: training mode against evaluation mode in batch normalization.

In training mode batch norm normalizes with the batch's own statistics c_𝓑 and σ²_𝓑 (the biased variance, over
the batch and the 8 × 8 positions) and updates its running statistics, running ← (1 − ψ)·running + ψ·batch
(for the variance, the unbiased batch variance, n/(n − 1) times the biased one; ψ is PyTorch's ``momentum``,
None: the cumulative average); in evaluation mode it normalizes with the running statistics. This module
measures what a forgotten ``model.eval()`` costs (:func:`eval_mode_study`), how ψ sets the eval accuracy after
a fixed training budget (:func:`momentum_sweep`), what re-estimating the running statistics gives back
(:func:`recalibrate`), the update rule itself (:func:`running_update`), and how, in training mode, batch norm
couples the examples of a batch (:func:`coupling`).
"""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

from .. import batchnorm_stats
from ..batched_mlp import DigitsSplit, digits_split
from ..seeding import generator
from .convnet import ConvNet, ConvNetConfig, batch_norms, build_convnet, evaluate, images, train_epoch

__all__ = ["EvalModeConfig", "EvalModeStudy", "eval_mode_study", "recalibrate", "momentum_sweep", "MomentumSweep",
           "RunningUpdate", "running_update", "CouplingConfig", "Coupling", "coupling", "TEST_BATCHES"]

TEST_BATCHES = (1, 2, 4, 8, 16, 64)
CLASSES = 10


@dataclass(frozen=True)
class EvalModeConfig:
    """A batch-norm CNN trained with ψ = ``momentum`` (Adam at η = ``lr``, batches of ``batch_size``), then
    evaluated on the validation set in both modes."""

    momentum: float | None = 0.1  # ψ; None: cumulative average
    batch_size: int = 32
    epochs: int = 4
    lr: float = 0.01
    channels: int = 16
    blocks: int = 3
    test_batches: tuple[int, ...] = TEST_BATCHES
    seed: int = 0

    def __post_init__(self):
        if self.momentum is not None and not 0 < self.momentum <= 1:
            raise ValueError(f"the running statistics' weight ψ is in (0, 1] (or None), got {self.momentum}")
        if self.batch_size < 2:
            raise ValueError(f"batch norm needs at least 2 examples per training batch, got B = {self.batch_size}")
        if self.epochs < 1 or not (self.lr > 0 and math.isfinite(self.lr)):
            raise ValueError(f"epochs ≥ 1 and a positive learning rate η are needed, got {self.epochs} and {self.lr}")
        if not self.test_batches or min(self.test_batches) < 1:
            raise ValueError(f"test batch sizes are whole numbers ≥ 1, got {self.test_batches}")

    def net(self) -> ConvNetConfig:
        return ConvNetConfig(channels=self.channels, blocks=self.blocks, norm="batch", momentum=self.momentum)


@dataclass(frozen=True, eq=False)
class EvalModeStudy:
    """Validation accuracies: eval mode, train mode per test batch size, train mode on single-class batches,
    eval mode after recalibration; per class (``*_per_class``, 10 entries) and overall. ``drift`` is the relative
    change of the last batch norm's running mean made by one pass over the validation set in train mode
    (batches of 8); ``running_mean``, ``true_mean`` and ``recalibrated_mean`` are that layer's running mean, the
    mean of its input over the training set under the final weights, and the running mean after recalibration."""

    config: EvalModeConfig
    eval_acc: float
    eval_per_class: torch.Tensor
    train_acc: torch.Tensor  # (len(test_batches),)
    train_per_class: torch.Tensor  # (len(test_batches), 10)
    single_class_acc: float
    single_class_per_class: torch.Tensor
    recalibrated_acc: float
    recal_per_class: torch.Tensor
    drift: float
    running_mean: torch.Tensor
    true_mean: torch.Tensor
    recalibrated_mean: torch.Tensor
    diverged_at: int | None = None


def _per_class(model: ConvNet, x: torch.Tensor, y: torch.Tensor, train_mode: bool, batch: int | None,
               by_class: bool = False) -> torch.Tensor:
    """Accuracy per class; ``by_class``: each class's examples form one batch of their own."""
    saved = {k: v.clone() for k, v in model.state_dict().items()}
    model.train(train_mode)
    right = torch.zeros(CLASSES)
    with torch.no_grad():
        if by_class:
            preds = torch.empty_like(y)
            for c in range(CLASSES):
                preds[y == c] = model(x[y == c]).argmax(1)
        else:
            size = batch or x.shape[0]
            preds = torch.cat([model(x[i:i + size]).argmax(1) for i in range(0, x.shape[0], size)])
    right.index_add_(0, y.cpu(), (preds == y).float().cpu())
    model.load_state_dict(saved)  # a pass in train mode moves the running statistics
    model.eval()
    return right / torch.bincount(y.cpu(), minlength=CLASSES).clamp(min=1)


def _overall(per_class: torch.Tensor, y: torch.Tensor) -> float:
    counts = torch.bincount(y.cpu(), minlength=CLASSES).float()
    return float((per_class * counts).sum() / counts.sum())


def recalibrate(model: nn.Module, x: torch.Tensor, batch_size: int = 256) -> nn.Module:
    """Re-estimate every batch norm's running statistics on images ``x`` with :func:`gradlab.batchnorm_stats.recalibrate`
    (reset, ψ = None: a plain average over the batches of ``batch_size``), then put the model in eval mode. Chapter 6."""
    batchnorm_stats.recalibrate(model, [x[i:i + batch_size] for i in range(0, x.shape[0], batch_size)])
    return model.eval()


def _bn_input_mean(model: ConvNet, bn: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The per-channel mean of ``bn``'s input over all of ``x`` as one batch in train mode: what its running mean
    estimates (the running statistics are left as they were)."""
    seen, saved = [], {k: v.clone() for k, v in model.state_dict().items()}
    handle = bn.register_forward_pre_hook(lambda m, args: seen.append(args[0].mean(dim=(0, 2, 3))))
    with torch.no_grad():
        model.train()(x)
    handle.remove()
    model.load_state_dict(saved)
    return seen[0]


def _train(config: EvalModeConfig, split: DigitsSplit, device, progress: Callable[[float], None]):
    model = build_convnet(config.net(), config.seed, device)
    opt = torch.optim.Adam(model.parameters(), lr=config.lr)
    g = generator(config.seed)
    for e in range(config.epochs):
        bad = train_epoch(model, opt, split, config.batch_size, g)
        if bad is not None:
            steps = split.x_train.shape[0] // config.batch_size
            return model.eval(), e * steps + bad
        progress((e + 1) / (config.epochs + 1))
    return model.eval(), None


def eval_mode_study(config: EvalModeConfig = EvalModeConfig(), device: torch.device | str = "cpu",
                    split: DigitsSplit | None = None, progress: Callable[[float], None] | None = None) -> EvalModeStudy:
    """Train a batch-norm CNN, then compare eval mode, a forgotten ``model.eval()`` and recalibration. Chapter 6."""
    c = config
    split = split if split is not None else digits_split(0, device=device)
    report = progress or (lambda f: None)
    model, diverged = _train(c, split, device, report)
    x, y = images(split.x_val), split.y_val
    eval_pc = _per_class(model, x, y, False, None)
    train_pc = torch.stack([_per_class(model, x, y, True, b) for b in c.test_batches])
    single_pc = _per_class(model, x, y, True, None, by_class=True)
    last = batch_norms(model)[-1]  # the first one's input has mean ≈ 0: standardized pixels, a conv without bias
    before = last.running_mean.clone()
    saved = {k: v.clone() for k, v in model.state_dict().items()}
    evaluate(model, x, y, train_mode=True, batch_size=8, keep_running=False)  # the forgotten eval() moves them
    drift = float((last.running_mean - before).norm() / before.norm().clamp(min=1e-12))
    model.load_state_dict(saved)
    true_mean = _bn_input_mean(model, last, images(split.x_train))
    recal = recalibrate(copy.deepcopy(model), images(split.x_train))
    recal_pc = _per_class(recal, x, y, False, None)
    report(1.0)
    return EvalModeStudy(
        config=c, eval_acc=_overall(eval_pc, y), eval_per_class=eval_pc,
        train_acc=torch.tensor([_overall(r, y) for r in train_pc]), train_per_class=train_pc,
        single_class_acc=_overall(single_pc, y), single_class_per_class=single_pc,
        recalibrated_acc=_overall(recal_pc, y), recal_per_class=recal_pc, drift=drift, running_mean=before.cpu(), true_mean=true_mean.cpu(),
        recalibrated_mean=batch_norms(recal)[-1].running_mean.clone().cpu(), diverged_at=diverged)


@dataclass(frozen=True, eq=False)
class MomentumSweep:
    """Validation accuracy in eval mode per ψ after the same training, before and after recalibration."""

    psis: tuple[float, ...]
    eval_acc: torch.Tensor
    recalibrated_acc: torch.Tensor
    train_mode_acc: torch.Tensor  # in train mode, batches of the training B: what the running statistics aim at


def momentum_sweep(psis: tuple[float, ...] = (0.001, 0.01, 0.1, 0.5, 1.0), config: EvalModeConfig = EvalModeConfig(),
                   device: torch.device | str = "cpu", split: DigitsSplit | None = None) -> MomentumSweep:
    """Train the same network (same seed, same batches) once per ψ; eval accuracy before and after
    recalibration. ψ touches only the running statistics, never the training: every ψ gives the same weights
    and the same train-mode accuracy. Chapter 6."""
    split = split if split is not None else digits_split(0, device=device)
    x, y = images(split.x_val), split.y_val
    rows = []
    for psi in psis:
        c = EvalModeConfig(**{**config.__dict__, "momentum": psi})
        model, _ = _train(c, split, device, lambda f: None)
        acc = evaluate(model, x, y)[1]
        tm = evaluate(model, x, y, train_mode=True, batch_size=c.batch_size)[1]
        rows.append((acc, evaluate(recalibrate(model, images(split.x_train)), x, y)[1], tm))
    t = torch.tensor(rows, dtype=torch.float64)
    return MomentumSweep(psis=tuple(psis), eval_acc=t[:, 0], recalibrated_acc=t[:, 1], train_mode_acc=t[:, 2])


@dataclass(frozen=True, eq=False)
class RunningUpdate:
    """One training-mode step of ``nn.BatchNorm2d`` from fresh running statistics (0 and 1), per channel: the
    batch's mean and its biased and unbiased variances, PyTorch's running statistics after the step, and the
    largest difference between PyTorch's output and a normalization with each variance."""

    n: int  # values per channel: B · 8 · 8
    mean: torch.Tensor
    var_biased: torch.Tensor
    var_unbiased: torch.Tensor
    running_mean: torch.Tensor
    running_var: torch.Tensor
    out_error_biased: float
    out_error_unbiased: float


def running_update(x: torch.Tensor, momentum: float | None = 0.1, eps: float = 1e-5) -> RunningUpdate:
    """Run ``nn.BatchNorm2d`` once in train mode on ``x`` (B, channels, H, W) and take its statistics apart. Chapter 6."""
    bn = nn.BatchNorm2d(x.shape[1], eps=eps, momentum=momentum).to(x.device, x.dtype).train()
    with torch.no_grad():
        out = bn(x)
    mean = x.mean(dim=(0, 2, 3))
    biased = x.var(dim=(0, 2, 3), unbiased=False)
    unbiased = x.var(dim=(0, 2, 3), unbiased=True)

    def norm(v):
        return (x - mean[None, :, None, None]) / torch.sqrt(v[None, :, None, None] + eps)

    return RunningUpdate(n=x.numel() // x.shape[1], mean=mean, var_biased=biased, var_unbiased=unbiased,
                         running_mean=bn.running_mean.clone(), running_var=bn.running_var.clone(),
                         out_error_biased=float((out - norm(biased)).abs().max()),
                         out_error_unbiased=float((out - norm(unbiased)).abs().max()))


@dataclass(frozen=True)
class CouplingConfig:
    """A batch of ``batch`` validation digits through an untrained CNN; example ``changed`` gets ``size`` times
    standard normal noise added."""

    norm: str = "batch"
    batch: int = 8
    changed: int = 0
    size: float = 1.0
    channels: int = 16
    blocks: int = 3
    seed: int = 0

    def __post_init__(self):
        if self.batch < 2:
            raise ValueError(f"coupling needs a batch of at least 2 examples, got {self.batch}")
        if not 0 <= self.changed < self.batch:
            raise ValueError(f"the changed example is one of 0 … {self.batch - 1}, got {self.changed}")
        if not (self.size >= 0 and math.isfinite(self.size)):
            raise ValueError(f"the change's size must be a number ≥ 0, got {self.size}")
        ConvNetConfig(channels=self.channels, blocks=self.blocks, norm=self.norm)  # validates norm


@dataclass(frozen=True, eq=False)
class Coupling:
    """Per example, the largest |change| of its 10 logits when example ``changed`` is changed, in train mode and
    in eval mode (``changed``'s own entry included: it moves in both)."""

    config: CouplingConfig
    train_change: torch.Tensor
    eval_change: torch.Tensor

    def others(self, mode: str = "train") -> torch.Tensor:
        """The changes of the examples that were not changed."""
        t = self.train_change if mode == "train" else self.eval_change
        return torch.cat([t[:self.config.changed], t[self.config.changed + 1:]])


def coupling(config: CouplingConfig = CouplingConfig(), device: torch.device | str = "cpu",
             split: DigitsSplit | None = None) -> Coupling:
    """How much the other examples' outputs move when one example of the batch changes. Chapter 6."""
    c = config
    split = split if split is not None else digits_split(0, device=device)
    model = build_convnet(ConvNetConfig(channels=c.channels, blocks=c.blocks, norm=c.norm), c.seed, device)
    x = images(split.x_val[:c.batch])
    if c.norm == "batch":  # running statistics of real data, not the initial 0 and 1
        recalibrate(model, images(split.x_train[:256]))
    noise = torch.randn(x[c.changed].shape, generator=generator(c.seed)).to(x.device)
    moved = x.clone()
    moved[c.changed] += c.size * noise
    changes = []
    with torch.no_grad():
        for train_mode in (False, True):  # eval first: a train-mode pass updates the running statistics
            model.train(train_mode)
            changes.append((model(moved) - model(x)).abs().amax(dim=1).cpu())
    return Coupling(config=c, train_change=changes[1], eval_change=changes[0])
