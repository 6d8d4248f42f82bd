"""Chapter 6, Experiment 6: where batch normalization goes. Before or after the activation in a plain MLP on the
digits; why a linear layer's bias before batch normalization is redundant; and the two residual blocks of
He et al. (2016), built with two linear layers each (width 64), at initialization and in training.

- ``position="before"``: Linear → BN → ReLU (Ioffe & Szegedy 2015, §3.2, normalize the pre-activation z = W h + b);
  ``"after"``: Linear → ReLU → BN; ``"none"``: Linear → ReLU. "before" and "none" are :mod:`gradlab.gradients.nets`'
  plain MLP; "after" rearranges the same modules (the same seed gives the same weights in all three).
- original (post-activation) block, He, Zhang, Ren & Sun (2016), "Deep residual learning":
  h_l = ReLU(h_{l−1} + BN(W₂ ReLU(BN(W₁ h_{l−1})))).
- pre-activation block, He, Zhang, Ren & Sun (2016), "Identity mappings in deep residual networks", Fig. 1(b):
  h_l = h_{l−1} + W₂ ReLU(BN(W₁ ReLU(BN(h_{l−1})))); nothing follows the addition, so h_L = h_l + Σ F.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..batched_mlp import digits_split
from ..gradients.nets import NetConfig, build
from ..gradients.residual_training import TrainConfig, TrainingCurves, train
from ..seeding import generator

__all__ = ["POSITIONS", "ARRANGEMENTS", "placement_net", "PlacementConfig", "Placement", "placement",
           "BiasCheck", "bias_check", "OriginalBlock", "PreActBlock", "ResidualNet", "residual_net",
           "InitProfile", "init_profile", "ResidualOrderConfig", "ResidualOrder", "residual_order"]

POSITIONS = ("before", "after", "none")
ARRANGEMENTS = ("original", "preact")


class _AfterBlock(nn.Module):
    """Linear → ReLU → BN, from the modules of a nets.py block (its weights kept)."""

    def __init__(self, linear: nn.Module, norm: nn.Module, act: nn.Module):
        super().__init__()
        self.linear, self.act, self.norm = linear, act, norm

    def forward(self, h: Tensor) -> Tensor:
        return self.norm(self.act(self.linear(h)))


def placement_net(position: str, depth: int = 10, width: int = 64, seed: int = 0) -> nn.Module:
    """A He-initialized plain ReLU MLP of depth D with batch norm before or after each ReLU, or none (Chapter 6)."""
    if position not in POSITIONS:
        raise ValueError(f"the norm's position is one of {POSITIONS}, not {position!r}")
    model = build(NetConfig(width=width, depth=depth, init="he", norm="none" if position == "none" else "batch"), seed)
    if position == "after":
        lin, norm, act = model.first
        model.first = _AfterBlock(lin, norm, act)
        model.blocks = nn.ModuleList(_AfterBlock(b.linear, b.norm, b.act) for b in model.blocks)
    return model


@dataclass(frozen=True)
class PlacementConfig:
    """The positions compared, the depth D, the learning rates η, the seeds and the training (Adam by default)."""

    positions: tuple[str, ...] = POSITIONS
    depth: int = 10
    width: int = 64
    lrs: tuple[float, ...] = (1e-3, 1e-2)
    seeds: int = 3
    train: TrainConfig = field(default_factory=lambda: TrainConfig(epochs=8))

    def __post_init__(self):
        bad = [p for p in self.positions if p not in POSITIONS]
        if bad or not self.positions:
            raise ValueError(f"positions are some of {POSITIONS}, not {self.positions!r}")
        if self.depth < 2 or self.width < 1:
            raise ValueError(f"depth counts the layers with weights (at least 2), got {self.depth}; width ≥ 1")
        if not self.lrs or not all(lr > 0 and math.isfinite(lr) for lr in self.lrs):
            raise ValueError(f"the learning rates η must be positive numbers, got {self.lrs}")
        if self.seeds < 1:
            raise ValueError(f"at least one seed, got {self.seeds}")


@dataclass(frozen=True, eq=False)
class Placement:
    """Curves per (position, η, seed, epoch): ``val_loss``, ``val_acc``, ``train_loss`` (NaN after a divergence)."""

    config: PlacementConfig
    train_loss: Tensor
    val_loss: Tensor
    val_acc: Tensor
    diverged_at: int | None = None
    diverged_run: str | None = None

    def final(self, what: str = "val_acc") -> Tensor:
        """(positions, η, seeds) of the last epoch's value."""
        return getattr(self, what)[..., -1]


def _grid(jobs, runner, progress):
    runs, first = [], None
    for i, (job, name) in enumerate(jobs):
        sub = None if progress is None else (lambda f, i=i: progress((i + f) / len(jobs)))
        runs.append(runner(job, sub))
        if runs[-1].diverged_at is not None and first is None:
            first = (runs[-1].diverged_at, name)
    return runs, first


def placement(config: PlacementConfig = PlacementConfig(), progress=None,
              device: torch.device | str = "cpu") -> Placement:
    """Train every (position, η, seed) on the digits; seed s builds the network and orders its mini-batches."""
    c, split = config, digits_split(0, device=device)
    jobs = [((p, lr, s), f"{p}, η = {lr:g}, seed {s}") for p in c.positions for lr in c.lrs for s in range(c.seeds)]

    def runner(job, sub) -> TrainingCurves:
        p, lr, s = job
        tc = TrainConfig(epochs=c.train.epochs, batch_size=c.train.batch_size, lr=lr, optimizer=c.train.optimizer)
        return train(placement_net(p, c.depth, c.width, s).to(device), split, tc, s, sub)

    runs, first = _grid(jobs, runner, progress)
    shape = (len(c.positions), len(c.lrs), c.seeds, -1)
    return Placement(c, *(torch.stack([getattr(r, k) for r in runs]).reshape(shape)
                          for k in ("train_loss", "val_loss", "val_acc")),
                     diverged_at=first and first[0], diverged_run=first and first[1])


@dataclass(frozen=True)
class BiasCheck:
    """Linear (with bias b) → BatchNorm1d: the largest changes when b is replaced by b + Δ (Chapter 6)."""

    train_output_change: float  # train mode: max |y(b + Δ) − y(b)|, float rounding only
    bias_grad: float  # max |∂𝓛/∂b| in train mode
    weight_grad: float  # max |∂𝓛/∂W|, for scale
    eval_change_fresh: float  # eval mode with fresh running statistics: Δ passes through (divided by √(1 + ε))
    eval_change_caught_up: float  # eval mode after ``passes`` train-mode passes on the same batch
    passes: int
    shift: float  # the size of Δ


def bias_check(seed: int = 0, shift: float = 3.0, passes: int = 200, batch: int = 256) -> BiasCheck:
    """Show that BN cancels the bias of the linear layer before it, and in eval mode absorbs it in the running mean."""
    g = generator(seed)
    x = digits_split(0).x_train[:batch]
    lin, bn = nn.Linear(64, 32), nn.BatchNorm1d(32)
    with torch.no_grad():
        nn.init.kaiming_normal_(lin.weight, generator=g)
        nn.init.uniform_(lin.bias, -1.0, 1.0, generator=g)
    y_target = torch.randint(0, 32, (batch,), generator=g)
    delta = shift * torch.randn(32, generator=g)

    def run(b_shift: float) -> tuple[Tensor, Tensor, Tensor]:
        l2, n2 = nn.Linear(64, 32), nn.BatchNorm1d(32)
        l2.load_state_dict(lin.state_dict())
        n2.load_state_dict(bn.state_dict())
        with torch.no_grad():
            l2.bias.add_(b_shift * delta)
        out = n2(l2(x))
        F.cross_entropy(out, y_target).backward()
        with torch.no_grad():
            fresh = n2.eval()(l2(x))
            n2.train()
            for _ in range(passes):  # each pass: running ← (1 − ψ)·running + ψ·batch, ψ = 0.1
                n2(l2(x))
            caught = n2.eval()(l2(x))
        return out.detach(), l2, (fresh, caught)

    y0, l0, (f0, c0) = run(0.0)
    y1, l1, (f1, c1) = run(1.0)
    return BiasCheck(float((y1 - y0).abs().max()), float(l1.bias.grad.abs().max()),
                     float(l1.weight.grad.abs().max()), float((f1 - f0).abs().max()),
                     float((c1 - c0).abs().max()), passes, shift)


class OriginalBlock(nn.Module):
    """He et al. (2016a)'s block as an MLP: h ↦ ReLU(h + BN(W₂ ReLU(BN(W₁ h)))); no bias before a BN."""

    def __init__(self, d: int):
        super().__init__()
        self.w1, self.bn1 = nn.Linear(d, d, bias=False), nn.BatchNorm1d(d)
        self.w2, self.bn2 = nn.Linear(d, d, bias=False), nn.BatchNorm1d(d)

    def forward(self, h: Tensor) -> Tensor:
        return F.relu(h + self.bn2(self.w2(F.relu(self.bn1(self.w1(h))))))


class PreActBlock(nn.Module):
    """He et al. (2016b)'s full pre-activation block: h ↦ h + W₂ ReLU(BN(W₁ ReLU(BN(h))))."""

    def __init__(self, d: int):
        super().__init__()
        self.bn1, self.w1 = nn.BatchNorm1d(d), nn.Linear(d, d, bias=False)
        self.bn2, self.w2 = nn.BatchNorm1d(d), nn.Linear(d, d, bias=False)

    def forward(self, h: Tensor) -> Tensor:
        return h + self.w2(F.relu(self.bn2(self.w1(F.relu(self.bn1(h))))))


class ResidualNet(nn.Module):
    """``first`` (64 → width), ``blocks``, ``head`` (→ 10). As in the papers, the original net's stem is
    Linear → BN → ReLU and its head a linear layer; the pre-activation net's stem is linear and its head
    BN → ReLU → Linear (the activation after the last addition)."""

    def __init__(self, arrangement: str, blocks: int, width: int = 64, d_in: int = 64, d_out: int = 10):
        super().__init__()
        if arrangement not in ARRANGEMENTS:
            raise ValueError(f"the arrangement is one of {ARRANGEMENTS}, not {arrangement!r}")
        pre = arrangement == "preact"
        self.first = (nn.Linear(d_in, width) if pre else
                      nn.Sequential(nn.Linear(d_in, width, bias=False), nn.BatchNorm1d(width), nn.ReLU()))
        block = PreActBlock if pre else OriginalBlock
        self.blocks = nn.ModuleList(block(width) for _ in range(blocks))
        self.head = (nn.Sequential(nn.BatchNorm1d(width), nn.ReLU(), nn.Linear(width, d_out)) if pre
                     else nn.Linear(width, d_out))

    def forward(self, x: Tensor) -> Tensor:
        h = self.first(x)
        for b in self.blocks:
            h = b(h)
        return self.head(h)


def residual_net(arrangement: str, blocks: int, width: int = 64, seed: int = 0, zero_head: bool = False) -> ResidualNet:
    """A :class:`ResidualNet` with He-normal weights (fan in, ReLU gain) drawn from ``seed``, zero biases; with
    ``zero_head`` the read-out's weights are 0 too, so that both arrangements start at 𝓛 = ln C."""
    g = generator(seed)
    with torch.device("meta"):  # nn.Linear would draw its default weights from the global generator
        model = ResidualNet(arrangement, blocks, width)
    model = model.to_empty(device="cpu")
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.Linear):
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu", generator=g)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm1d):
                m.reset_parameters()  # scale 1, shift 0, running statistics 0 and 1
        if zero_head:
            # The original trunk is not normalized before the read-out and its scale grows with depth, so He
            # read-out weights start it at a loss far above ln C; a zero read-out removes that head start.
            [m for m in model.head.modules() if isinstance(m, nn.Linear)][-1].weight.zero_()
    return model


@dataclass(frozen=True, eq=False)
class InitProfile:
    """At initialization, on one batch in train mode: per block input (index 0: the stem's output, then after each
    block) the standard deviation of h_l and the norm of ∂𝓛/∂h_l, for each arrangement (rows)."""

    arrangements: tuple[str, ...]
    blocks: int
    act_std: Tensor
    grad_norm: Tensor


def init_profile(blocks: int = 50, width: int = 64, seed: int = 0, batch: int = 256) -> InitProfile:
    """Activation scale and loss-gradient norm through the depth of both arrangements at initialization."""
    if blocks < 1:
        raise ValueError(f"at least one residual block, got {blocks}")
    split = digits_split(0)
    x, y = split.x_train[:batch], split.y_train[:batch]
    stds, grads = [], []
    for arr in ARRANGEMENTS:
        model = residual_net(arr, blocks, width, seed).train()
        hs = [model.first(x)]
        for b in model.blocks:
            hs.append(b(hs[-1]))
        for h in hs:
            h.retain_grad()
        F.cross_entropy(model.head(hs[-1]), y).backward()
        stds.append(torch.stack([h.detach().std() for h in hs]))
        grads.append(torch.stack([h.grad.norm() for h in hs]))
    return InitProfile(ARRANGEMENTS, blocks, torch.stack(stds), torch.stack(grads))


@dataclass(frozen=True)
class ResidualOrderConfig:
    """Both arrangements at ``blocks`` (each block: two linear layers), ``seeds`` seeds, the same training."""

    blocks: tuple[int, ...] = (10, 30, 50)
    arrangements: tuple[str, ...] = ARRANGEMENTS
    width: int = 64
    seeds: int = 2
    train: TrainConfig = field(default_factory=lambda: TrainConfig(epochs=8, lr=1e-3))
    zero_head: bool = False  # see residual_net

    def __post_init__(self):
        if not self.blocks or min(self.blocks) < 1:
            raise ValueError(f"give one or more numbers of residual blocks, each at least 1, got {self.blocks}")
        if not self.arrangements or any(a not in ARRANGEMENTS for a in self.arrangements):
            raise ValueError(f"arrangements are some of {ARRANGEMENTS}, not {self.arrangements!r}")
        if self.seeds < 1 or self.width < 1:
            raise ValueError("at least one seed and a width of at least 1 are needed")


@dataclass(frozen=True, eq=False)
class ResidualOrder:
    """Curves per (arrangement, blocks, seed, epoch), and each update's mini-batch loss (…, updates)."""

    config: ResidualOrderConfig
    train_loss: Tensor
    val_loss: Tensor
    val_acc: Tensor
    step_loss: Tensor
    diverged_at: int | None = None
    diverged_run: str | None = None


def residual_order(config: ResidualOrderConfig = ResidualOrderConfig(), progress=None,
                   device: torch.device | str = "cpu") -> ResidualOrder:
    """Train original and pre-activation residual MLPs on the digits at each depth and seed."""
    c, split = config, digits_split(0, device=device)
    jobs = [((a, n, s), f"{a}, {n} blocks, seed {s}") for a in c.arrangements for n in c.blocks for s in range(c.seeds)]
    runs, first = _grid(jobs, lambda job, sub: train(residual_net(job[0], job[1], c.width, job[2], c.zero_head)
                                                     .to(device), split, c.train, job[2], sub), progress)
    shape = (len(c.arrangements), len(c.blocks), c.seeds, -1)
    return ResidualOrder(c, *(torch.stack([getattr(r, k) for r in runs]).reshape(shape)
                              for k in ("train_loss", "val_loss", "val_acc", "step_loss")),
                         diverged_at=first and first[0], diverged_run=first and first[1])
