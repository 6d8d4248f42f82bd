"""Many copies of one small MLP trained at once on the digits (Chapter 3's sweeps on real data).

A copy is one run: an optimizer of ``torch.optim``, its learning rate η, its penalty α, an optional schedule
of η (Chapter 4; stepped by ``torch.optim.lr_scheduler`` after every update), and a seed for its initial weights
and the order of its mini-batches. The weights of K copies are stacked along a leading
dimension, so one ``torch.bmm`` forward and one backward serve all of them; each copy's slices are the
parameters of its own parameter group, so every copy is stepped by ``torch.optim`` with its own settings.
Copies never mix: copy i's loss depends on copy i's slices only (``tests/test_batched_mlp.py`` checks the
batched runs against the same runs one at a time, and one of them against ``nn.Linear`` layers).
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from .schedules import Schedule
from .seeding import generator

__all__ = ["KINDS", "Run", "DigitsSplit", "digits_split", "MLPConfig", "Curves", "forward", "train_runs",
           "SweepTiming", "time_sweep"]

KINDS = ("SGD", "momentum", "Adagrad", "RMSprop", "Adam", "AdamW", "AMSGrad")
MOMENTUM = 0.9  # SGD's β in every run of the chapter


@dataclass(frozen=True)
class Run:
    """One training run: the optimizer kind, η, α (``weight_decay``), an L1 weight and the seed."""

    kind: str
    lr: float
    weight_decay: float = 0.0  # α as torch.optim takes it: L2 in the gradient, decoupled in AdamW
    l1: float = 0.0  # α of a penalty α Σ|w| on every parameter
    prox: bool = False  # the L1 penalty as a soft-threshold after each step (exact zeros), not in the loss
    seed: int = 0  # the initial weights and the order of the mini-batches
    schedule: Schedule | None = None  # η_k from gradlab.schedules, stepped once per update; None: constant η

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"unknown optimizer {self.kind!r}; choose one of {KINDS}")
        if self.schedule is not None and not hasattr(self.schedule, "to_torch"):
            raise TypeError(f"schedule must be one of gradlab.schedules' schedules or None, got {self.schedule!r}")

    def group(self) -> tuple[type, dict]:
        """The ``torch.optim`` class and the parameter-group settings of this run."""
        cls, extra = {"SGD": (torch.optim.SGD, {}), "momentum": (torch.optim.SGD, {"momentum": MOMENTUM}),
                      "Adagrad": (torch.optim.Adagrad, {}), "RMSprop": (torch.optim.RMSprop, {}),
                      "Adam": (torch.optim.Adam, {}), "AdamW": (torch.optim.AdamW, {}),
                      "AMSGrad": (torch.optim.Adam, {"amsgrad": True})}[self.kind]
        return cls, {"lr": self.lr, "weight_decay": self.weight_decay, **extra}


@dataclass(frozen=True, eq=False)
class DigitsSplit:
    """The digits, split into training and validation sets and standardized with the training statistics."""

    x_train: Tensor
    y_train: Tensor
    x_val: Tensor
    y_val: Tensor


@lru_cache(maxsize=4)
def _split(seed: int, val_fraction: float) -> tuple[np.ndarray, ...]:
    from sklearn.datasets import load_digits

    data = load_digits()
    x, y = data.data.astype(np.float32), data.target.astype(np.int64)
    order = torch.randperm(len(x), generator=generator(seed)).numpy()
    n_val = int(round(val_fraction * len(x)))
    val, train = order[:n_val], order[n_val:]
    mean, std = x[train].mean(0), x[train].std(0)
    std[std == 0] = 1.0  # some border pixels are 0 in every training image: leave them at 0
    out = ((x[train] - mean) / std, y[train], (x[val] - mean) / std, y[val])
    for a in out:
        a.setflags(write=False)  # the cached arrays are shared by every caller
    return out


def digits_split(seed: int = 0, val_fraction: float = 0.3, device: torch.device | str = "cpu") -> DigitsSplit:
    """scikit-learn's digits (1797 images of 8 × 8 pixels, 10 classes, no download), split by ``seed``, float32."""
    return DigitsSplit(*(torch.tensor(a, device=device) for a in _split(seed, val_fraction)))


@dataclass(frozen=True)
class MLPConfig:
    """The network (64 → hidden → … → 10, ReLU, ``depth`` hidden layers) and its training: epochs, batch size."""

    hidden: int = 32
    epochs: int = 20
    batch_size: int = 128
    depth: int = 1

    def __post_init__(self):
        for name in ("hidden", "epochs", "batch_size", "depth"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"MLPConfig.{name} must be a whole number ≥ 1, got {value!r}")


@dataclass
class Curves:
    """Loss and accuracy on both sets after every epoch (K, epochs + 1), and each copy's final weights."""

    runs: tuple[Run, ...]
    train_loss: Tensor
    val_loss: Tensor
    train_acc: Tensor
    val_acc: Tensor
    weights: Tensor  # (K, entries of the weight matrices), biases left out
    diverged: tuple[int | None, ...]  # per run: the first update whose mini-batch loss was not finite
    steps_per_epoch: int = 0
    diverged_at: int | None = None
    diverged_run: str | None = None
    step_loss: Tensor | None = None  # (K, updates): each update's mini-batch loss, before the update
    step_lr: Tensor | None = None  # (K, updates): the η each update used

    @property
    def weight_norm(self) -> Tensor:
        """‖w‖ of each copy's weight matrices (K,)."""
        return self.weights.norm(dim=1)


OnEpoch = Callable[[int, list[Tensor]], None]


def _init(runs: Sequence[Run], d_in: int, hidden: int, d_out: int, device, depth: int = 1) -> list[Tensor]:
    """nn.Linear's default initialization, U(−1/√fan_in, 1/√fan_in) for weights and biases, one seed per copy."""
    widths = [d_in] + [hidden] * depth + [d_out]
    shapes = [s for a, b in zip(widths, widths[1:]) for s in (((a, b), a), ((1, b), a))]
    out = [[] for _ in shapes]
    for run in runs:
        g = generator(run.seed)  # on the CPU, so a copy starts the same wherever it runs
        for i, (shape, fan_in) in enumerate(shapes):
            out[i].append((torch.rand(shape, generator=g) * 2 - 1) / math.sqrt(fan_in))
    return [torch.stack(t).to(device) for t in out]


def forward(params: Sequence[Tensor], x: Tensor) -> Tensor:
    """Logits (K, B, 10) of K copies on inputs (K, B, 64) or (B, 64); params are (weight, bias) pairs."""
    if x.dim() == 2:
        x = x.expand(params[0].shape[0], *x.shape)
    for i in range(0, len(params) - 2, 2):
        x = torch.relu(torch.baddbmm(params[i + 1], x, params[i]))
    return torch.baddbmm(params[-1], x, params[-2])


def _evaluate(params: Sequence[Tensor], x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
    with torch.no_grad():
        logits = forward(params, x)
        loss = F.cross_entropy(logits.transpose(1, 2), y.expand(logits.shape[0], -1), reduction="none").mean(1)
        acc = (logits.argmax(-1) == y).double().mean(1)
    return loss.double(), acc


def _train(split: DigitsSplit, runs: Sequence[Run], config: MLPConfig,
           progress: Callable[[float], None] | None, on_epoch: OnEpoch | None = None) -> Curves:
    device = split.x_train.device
    n, d_in = split.x_train.shape
    stacked = [p.requires_grad_(True) for p in _init(runs, d_in, config.hidden, 10, device, config.depth)]
    # copy i's parameters are views of the stacked tensors' slices: torch.optim steps them in place
    own = [[p.detach()[i] for p in stacked] for i in range(len(runs))]
    # one optimizer per (class, schedule): a scheduler sets η of every group of its optimizer
    groups: dict[tuple, list[dict]] = {}
    for run, params in zip(runs, own):
        cls, settings = run.group()
        groups.setdefault((cls, run.schedule), []).append({"params": params, **settings})
    optimizers = [cls(g) for (cls, _), g in groups.items()]
    schedulers = [sched.to_torch(opt) for ((_, sched), opt) in zip(groups, optimizers) if sched is not None]
    slot = {id(p): (o, j) for o, opt in enumerate(optimizers) for j, g in enumerate(opt.param_groups)
            for p in g["params"][:1]}
    where = [slot[id(params[0])] for params in own]  # each copy's (optimizer, group), to read its η
    l1 = torch.tensor([0.0 if r.prox else r.l1 for r in runs], device=device)
    prox = [(i, r.lr * r.l1) for i, r in enumerate(runs) if r.prox and r.l1 > 0]
    gens = [generator(r.seed + 1) for r in runs]  # the batch order: one stream per copy, as a lone run has
    b = min(config.batch_size, n)
    per_epoch = math.ceil(n / b)
    total = per_epoch * config.epochs
    for run in runs:
        limit = getattr(run.schedule, "total_steps", None)
        if limit is not None and limit < total:
            raise ValueError(f"{type(run.schedule).__name__}(total_steps={limit}) is shorter than the run: "
                             f"{config.epochs} epochs × {per_epoch} updates = {total} updates")
    bad = torch.full((len(runs),), -1, dtype=torch.long)
    evals = [(_evaluate(stacked, split.x_train, split.y_train), _evaluate(stacked, split.x_val, split.y_val))]
    step_loss = torch.empty(len(runs), total, dtype=torch.float64)
    step_lr = torch.empty(len(runs), total, dtype=torch.float64)
    step = 0
    for _ in range(config.epochs):
        orders = torch.stack([torch.randperm(n, generator=g) for g in gens]).to(device)
        for start in range(0, n, b):
            idx = orders[:, start:start + b]
            logits = forward(stacked, split.x_train[idx])
            losses = F.cross_entropy(logits.transpose(1, 2), split.y_train[idx], reduction="none").mean(1)
            if l1.any():
                losses = losses + l1 * sum(p.abs().flatten(1).sum(1) for p in stacked)
            # each copy's loss depends on its own slices only, so the sum's gradient is each copy's own
            grads = torch.autograd.grad(losses.sum(), stacked)
            for i, params in enumerate(own):
                for p, g in zip(params, grads):
                    p.grad = g[i]
            step_lr[:, step] = torch.tensor([optimizers[o].param_groups[j]["lr"] for o, j in where],
                                            dtype=torch.float64)
            step_loss[:, step] = losses.detach().double().cpu()
            for opt in optimizers:
                opt.step()
            for sched in schedulers:
                sched.step()
            with torch.no_grad():
                for i, t in prox:  # the proximal step of ηα Σ|w|: soft-thresholding
                    for p in own[i]:
                        p.copy_(p.sign() * (p.abs() - t).clamp_min(0))
            step += 1
            finite = torch.isfinite(losses.detach()).cpu()
            bad = torch.where((bad < 0) & ~finite, torch.full_like(bad, step), bad)
            if progress is not None:
                progress(step / total)
        evals.append((_evaluate(stacked, split.x_train, split.y_train), _evaluate(stacked, split.x_val, split.y_val)))
        if on_epoch is not None:
            on_epoch(len(evals) - 1, [p.detach().clone() for p in stacked])
    (tl, ta), (vl, va) = [[torch.stack(t, 1).cpu() for t in zip(*pairs)] for pairs in zip(*evals)]
    diverged = tuple(None if k < 0 else int(k) for k in bad.tolist())
    first = min(((k, i) for i, k in enumerate(diverged) if k is not None), default=None)
    weights = torch.cat([w.detach().flatten(1) for w in stacked[::2]], 1).cpu()
    return Curves(tuple(runs), tl, vl, ta, va, weights, diverged, per_epoch,
                  diverged_at=first and first[0], diverged_run=first and _label(runs[first[1]]),
                  step_loss=step_loss, step_lr=step_lr)


def _label(run: Run) -> str:
    return f"{run.kind} (η = {run.lr:.3g})"


def train_runs(split: DigitsSplit, runs: Sequence[Run], config: MLPConfig = MLPConfig(),
               progress: Callable[[float], None] | None = None, batched: bool = True,
               on_epoch: OnEpoch | None = None) -> Curves:
    """Train every run, all copies in one stacked network (``batched``) or one after another; same numbers.

    ``on_epoch(epoch, params)``, if given, receives a copy of the stacked parameters after each epoch (epoch 1, 2,
    …): (weight, bias) pairs with the copies along the first dimension, which :func:`forward` evaluates (Chapter
    4's snapshots). Batched runs only."""
    if on_epoch is not None and not batched:
        raise ValueError("on_epoch needs batched=True: the copies' parameters are stacked")
    if batched or len(runs) == 1:
        return _train(split, runs, config, progress, on_epoch)
    parts = []
    for i, run in enumerate(runs):
        sub = None if progress is None else (lambda f, i=i: progress((i + f) / len(runs)))
        parts.append(_train(split, [run], config, sub))
    diverged = tuple(c.diverged[0] for c in parts)
    first = min(((k, i) for i, k in enumerate(diverged) if k is not None), default=None)
    return Curves(tuple(runs), *(torch.cat([getattr(c, f) for c in parts]) for f in
                                 ("train_loss", "val_loss", "train_acc", "val_acc", "weights")),
                  diverged, parts[0].steps_per_epoch, diverged_at=first and first[0],
                  diverged_run=first and _label(runs[first[1]]),
                  step_loss=torch.cat([c.step_loss for c in parts]), step_lr=torch.cat([c.step_lr for c in parts]))


@dataclass(frozen=True)
class SweepTiming:
    """Seconds for the same runs batched and looped, measured one after the other in one process."""

    copies: int
    batched_s: float
    looped_s: float
    device: str = field(default="cpu")

    @property
    def speedup(self) -> float:
        """looped / batched: above 1, batching wins."""
        return self.looped_s / self.batched_s


def time_sweep(split: DigitsSplit, runs: Sequence[Run], config: MLPConfig = MLPConfig(),
               repeats: int = 1) -> SweepTiming:
    """Time ``train_runs`` batched against a Python loop over the runs (best of ``repeats`` each)."""
    from .device import sync

    def best(batched: bool) -> float:
        times = []
        for _ in range(repeats):
            sync(split.x_train.device)
            t0 = time.perf_counter()
            train_runs(split, runs, config, batched=batched)
            sync(split.x_train.device)
            times.append(time.perf_counter() - t0)
        return min(times)

    train_runs(split, runs[:1], MLPConfig(config.hidden, 1, config.batch_size))  # warm-up
    return SweepTiming(len(runs), best(True), best(False), str(split.x_train.device))
