"""Training the plain and residual MLPs of Chapter 5, Experiment 5 on the digits: a plain training loop that
stops at the first non-finite loss, plain against residual at depths 20, 50 and 100, and the lesion study of
Veit, Wilber & Belongie (2016), which deletes blocks of a trained network at test time."""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field, replace
from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..batched_mlp import DigitsSplit, digits_split
from ..seeding import generator
from .nets import NetConfig, build
from .residual import NETWORKS, zero_branches

__all__ = ["OPTIMIZERS", "TrainConfig", "TrainingCurves", "forward_without", "evaluate", "train",
           "DepthTrainingConfig", "DepthTraining", "depth_training", "LesionConfig", "Lesion", "lesion"]

OPTIMIZERS = ("Adam", "momentum")  # torch.optim.Adam; torch.optim.SGD with β = 0.9
Progress = Callable[[float], None]


@dataclass(frozen=True)
class TrainConfig:
    """Mini-batch training on the digits: epochs, batch size B (the last partial batch is dropped), η, optimizer."""

    epochs: int = 8
    batch_size: int = 64
    lr: float = 1e-3
    optimizer: str = "Adam"

    def __post_init__(self):
        if not (isinstance(self.epochs, int) and self.epochs >= 1):
            raise ValueError(f"epochs must be a whole number ≥ 1, got {self.epochs!r}")
        if not (isinstance(self.batch_size, int) and self.batch_size >= 2):
            raise ValueError(f"batch_size must be a whole number ≥ 2 (batch normalization needs two examples), "
                             f"got {self.batch_size!r}")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise ValueError(f"the learning rate η must be a positive number, got {self.lr}")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer is one of {OPTIMIZERS}, not {self.optimizer!r}")


@dataclass(frozen=True, eq=False)
class TrainingCurves:
    """Per epoch (entry 0: at initialization): training loss (the epoch's mean mini-batch loss; entry 0 on the
    whole training set), validation loss and accuracy; each update's mini-batch loss. NaN after a divergence."""

    train_loss: Tensor
    val_loss: Tensor
    val_acc: Tensor
    step_loss: Tensor
    diverged_at: int | None = None


def forward_without(model: nn.Module, x: Tensor, skip: frozenset[int] = frozenset()) -> Tensor:
    """The output of a :class:`DeepMLP` (or :class:`HighwayMLP`) with the hidden blocks numbered in ``skip``
    (0 … D − 3) deleted: their input is passed on unchanged, h_l = h_{l−1}."""
    h = model.first(x)
    for i, block in enumerate(model.blocks):
        if i not in skip:
            h = block(h)
    return model.head(h)


def evaluate(model: nn.Module, x: Tensor, y: Tensor, skip: frozenset[int] = frozenset(),
             batch_statistics: bool = False) -> tuple[float, float]:
    """Cross-entropy and accuracy on (x, y) with the blocks in ``skip`` deleted, in evaluation mode, or with
    batch normalization using the statistics of (x, y) (on a copy: the model's running statistics are kept)."""
    was = model.training
    probe = copy.deepcopy(model).train() if batch_statistics else model.eval()
    with torch.no_grad():
        out = forward_without(probe, x, skip)
        loss, acc = F.cross_entropy(out, y).item(), (out.argmax(1) == y).float().mean().item()
    model.train(was)
    return loss, acc


def train(model: nn.Module, split: DigitsSplit, config: TrainConfig, seed: int = 0,
          progress: Progress | None = None) -> TrainingCurves:
    """Train ``model`` in place; ``seed`` orders the mini-batches. Stops at the first non-finite mini-batch loss."""
    c, g = config, generator(seed)
    opt = (torch.optim.Adam(model.parameters(), lr=c.lr) if c.optimizer == "Adam"
           else torch.optim.SGD(model.parameters(), lr=c.lr, momentum=0.9))
    n = split.x_train.shape[0]
    per_epoch = n // c.batch_size
    if per_epoch < 1:
        raise ValueError(f"batch_size {c.batch_size} is larger than the {n} training examples")
    curves = {k: torch.full((c.epochs + 1,), math.nan) for k in ("train", "val", "acc")}
    steps = torch.full((c.epochs * per_epoch,), math.nan)
    # Before the first step batch normalization has no running statistics yet (evaluation mode would use 0 and 1
    # and hide what the network does): entry 0 is measured with batch statistics, as the first step sees them.
    curves["train"][0] = evaluate(model, split.x_train, split.y_train, batch_statistics=True)[0]
    curves["val"][0], curves["acc"][0] = evaluate(model, split.x_val, split.y_val, batch_statistics=True)
    diverged = None
    model.train()
    for e in range(c.epochs):
        order = torch.randperm(n, generator=g).to(split.x_train.device)
        for b in range(per_epoch):
            idx = order[b * c.batch_size:(b + 1) * c.batch_size]
            loss = F.cross_entropy(model(split.x_train[idx]), split.y_train[idx])
            k = e * per_epoch + b
            steps[k] = loss.item()
            if not math.isfinite(steps[k]):
                diverged = k
                break
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        if diverged is not None:
            break
        curves["train"][e + 1] = steps[e * per_epoch:(e + 1) * per_epoch].mean()
        curves["val"][e + 1], curves["acc"][e + 1] = evaluate(model, split.x_val, split.y_val)
        if progress is not None:
            progress((e + 1) / c.epochs)
    return TrainingCurves(curves["train"], curves["val"], curves["acc"], steps, diverged)


@dataclass(frozen=True)
class DepthTrainingConfig:
    """Networks of :data:`~gradlab.gradients.residual.NETWORKS` (``kinds``) at several depths, with an init and a
    norm, each kind trained with its own η (``lrs``, one per kind; ``train.lr`` is replaced), ``seeds`` seeds each."""

    kinds: tuple[str, ...] = NETWORKS[:2]
    lrs: tuple[float, ...] = (1e-3, 1e-3)
    depths: tuple[int, ...] = (20, 50, 100)
    width: int = 64
    init: str = "he"
    norm: str = "none"
    train: TrainConfig = field(default_factory=TrainConfig)
    seeds: int = 2

    def __post_init__(self):
        if self.seeds < 1 or not self.depths or not self.kinds:
            raise ValueError("give at least one kind of network, one depth and one seed")
        if len(self.lrs) != len(self.kinds):
            raise ValueError(f"give one learning rate per kind of network: {len(self.kinds)} kinds, "
                             f"{len(self.lrs)} rates")
        for kind in self.kinds:
            if kind not in NETWORKS:
                raise ValueError(f"a kind is one of {NETWORKS}, not {kind!r}")
            for d in self.depths:
                self.net(kind, d)
            self.train_config(kind)

    def net(self, kind: str, depth: int) -> NetConfig:
        return NetConfig(width=self.width, depth=depth, init=self.init, norm=self.norm, residual=kind != "plain")

    def train_config(self, kind: str) -> TrainConfig:
        return replace(self.train, lr=self.lrs[self.kinds.index(kind)])


@dataclass(frozen=True, eq=False)
class DepthTraining:
    """Curves of every (kind, depth, seed): tensors of shape kinds × depths × seeds × (epochs + 1) (or × updates)."""

    config: DepthTrainingConfig
    train_loss: Tensor
    val_loss: Tensor
    val_acc: Tensor
    step_loss: Tensor
    diverged: tuple  # kinds × depths × seeds: the update that diverged, or None
    diverged_at: int | None = None
    diverged_run: str | None = None


def depth_training(config: DepthTrainingConfig = DepthTrainingConfig(), progress: Progress | None = None,
                   device: torch.device | str = "cpu") -> DepthTraining:
    """Train every (kind, depth, seed); seed s builds the network and orders its mini-batches."""
    split = digits_split(0, device=device)
    c = config
    jobs = [(kind, d, s) for kind in c.kinds for d in c.depths for s in range(c.seeds)]
    runs, first = [], None
    for i, (kind, depth, s) in enumerate(jobs):
        model = build(c.net(kind, depth), s, device)
        if kind == NETWORKS[2]:
            zero_branches(model)
        sub = None if progress is None else (lambda f, i=i: progress((i + f) / len(jobs)))
        runs.append(train(model, split, c.train_config(kind), s, sub))
        if runs[-1].diverged_at is not None and first is None:
            first = (runs[-1].diverged_at, f"{kind}, D = {depth}, seed {s}")
    shape = (len(c.kinds), len(c.depths), c.seeds)
    stack = {k: torch.stack([getattr(r, k) for r in runs]).reshape(*shape, -1)
             for k in ("train_loss", "val_loss", "val_acc", "step_loss")}
    bad = [r.diverged_at for r in runs]
    nested = tuple(tuple(tuple(bad[(a * shape[1] + b) * shape[2] + s] for s in range(shape[2]))
                         for b in range(shape[1])) for a in range(shape[0]))
    return DepthTraining(c, **stack, diverged=nested, diverged_at=first and first[0],
                         diverged_run=first and first[1])


@dataclass(frozen=True)
class LesionConfig:
    """A network of ``kind`` (one of NETWORKS), trained, whose hidden blocks are then deleted at test time: each
    one alone, then ``draws`` random sets of each size in ``counts`` (default: about eight sizes, 1 to D − 2)."""

    kind: str = "residual"
    depth: int = 20
    width: int = 64
    init: str = "he"
    norm: str = "none"
    train: TrainConfig = field(default_factory=TrainConfig)
    seed: int = 0
    draws: int = 5
    counts: tuple[int, ...] = ()

    def __post_init__(self):
        if self.kind not in NETWORKS:
            raise ValueError(f"kind is one of {NETWORKS}, not {self.kind!r}")
        if self.depth < 3:
            raise ValueError(f"a lesion needs at least one hidden block to delete: depth ≥ 3, got {self.depth}")
        if self.draws < 1 or any(not 1 <= k <= self.depth - 2 for k in self.counts):
            raise ValueError(f"draws must be ≥ 1 and every number of deleted blocks in 1 … {self.depth - 2}")
        self.net()

    def net(self) -> NetConfig:
        return NetConfig(width=self.width, depth=self.depth, init=self.init, norm=self.norm,
                         residual=self.kind != "plain")

    def sizes(self) -> tuple[int, ...]:
        n = self.depth - 2
        return self.counts or tuple(sorted({max(1, round(n * q / 8)) for q in range(1, 9)}))


@dataclass(frozen=True, eq=False)
class Lesion:
    """Validation accuracy intact (``base``), with each hidden block deleted alone (``single``, D − 2 values), and
    with random sets of ``counts`` blocks deleted (``multi``: counts × draws)."""

    config: LesionConfig
    curves: TrainingCurves
    base: float
    single: Tensor
    counts: tuple[int, ...]
    multi: Tensor
    diverged_at: int | None = None


def lesion(config: LesionConfig = LesionConfig(), progress: Progress | None = None,
           device: torch.device | str = "cpu") -> Lesion:
    """Train, then delete blocks (the lesion study of Veit et al. 2016, on an MLP of nets.py)."""
    split = digits_split(0, device=device)
    model = build(config.net(), config.seed, device)
    if config.kind == NETWORKS[2]:
        zero_branches(model)
    curves = train(model, split, config.train, config.seed, progress)
    n = config.depth - 2
    acc = lambda skip: evaluate(model, split.x_val, split.y_val, frozenset(skip))[1]  # noqa: E731
    single = torch.tensor([acc({i}) for i in range(n)])
    g = generator(config.seed)
    multi = torch.tensor([[acc(torch.randperm(n, generator=g)[:k].tolist()) for _ in range(config.draws)]
                          for k in config.sizes()])
    return Lesion(config, curves, acc(()), single, config.sizes(), multi, curves.diverged_at)
