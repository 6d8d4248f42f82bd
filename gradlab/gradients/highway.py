"""A highway network's learned gates against the identity skip (Chapter 5, Experiment 5; Srivastava, Greff &
Schmidhuber 2015, "Training very deep networks").

A highway layer computes y = H(x)·gate(x) + x·(1 − gate(x)): H (the paper's letter; the book's H is the
Hessian) is a plain layer φ(N(W_H x)) (nets.py's plain :class:`~gradlab.gradients.nets.Block`), and the transform
gate gate(x) = sigmoid(W_g x + b_g) (the paper's T) is one number in (0, 1) per unit. A negative gate bias b_g
starts every layer close to carrying its input, scaled by 1 − gate(x).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace

import torch
from torch import Tensor, nn

from ..batched_mlp import digits_split
from ..seeding import generator
from .nets import DeepMLP, NetConfig, build
from .residual import NETWORKS, zero_branches
from .residual_training import Progress, TrainConfig, TrainingCurves, forward_without, train

__all__ = ["HighwayLayer", "HighwayMLP", "HighwayConfig", "build_highway", "parameter_count", "HighwayStudy",
           "highway_study"]

GATE_STREAM = 7919  # the gates draw from generator(seed + GATE_STREAM), apart from the stream nets.build uses


class HighwayLayer(nn.Module):
    """y = H(x)·gate(x) + x·(1 − gate(x)), gate(x) = sigmoid(W_g x + b_g): a highway layer of Srivastava et al."""

    def __init__(self, transform: nn.Module, gate: nn.Linear):
        super().__init__()
        self.transform, self.gate = transform, gate

    def gate_values(self, x: Tensor) -> Tensor:
        return torch.sigmoid(self.gate(x))

    def forward(self, x: Tensor) -> Tensor:
        t = self.gate_values(x)
        return self.transform(x) * t + x * (1 - t)


class HighwayMLP(nn.Module):
    """A plain :class:`DeepMLP` whose D − 2 hidden blocks each became the H of a :class:`HighwayLayer`."""

    def __init__(self, plain: DeepMLP, gates: list[nn.Linear]):
        super().__init__()
        self.config = plain.config
        self.first, self.head = plain.first, plain.head
        self.blocks = nn.ModuleList(HighwayLayer(b, g) for b, g in zip(plain.blocks, gates))

    def forward(self, x: Tensor) -> Tensor:
        return forward_without(self, x)

    def gate_values(self, x: Tensor) -> Tensor:
        """Every layer's gate values on ``x``: (D − 2) × examples × width, in evaluation mode."""
        was = self.training
        self.eval()
        with torch.no_grad():
            h, out = self.first(x), []
            for layer in self.blocks:
                out.append(layer.gate_values(h))
                h = layer(h)
        self.train(was)
        return torch.stack(out)


@dataclass(frozen=True)
class HighwayConfig:
    """A highway MLP: the plain ``net`` gives H, the input and the output layer; every gate bias starts at
    ``gate_bias`` and the gate weights at nn.Linear's default U(±1/√d_l)."""

    net: NetConfig = NetConfig(depth=20, init="he")
    gate_bias: float = -2.0

    def __post_init__(self):
        if self.net.residual:
            raise ValueError("a highway layer's H is a plain layer: give a NetConfig with residual=False")
        if not math.isfinite(self.gate_bias):
            raise ValueError(f"gate_bias must be a finite number, got {self.gate_bias}")


def build_highway(config: HighwayConfig = HighwayConfig(), seed: int = 0,
                  device: torch.device | str = "cpu") -> HighwayMLP:
    """A :class:`HighwayMLP`: nets.build's plain network from ``seed``, gates from their own generator."""
    plain = build(config.net, seed, "cpu")
    g, w = generator(seed + GATE_STREAM), config.net.width
    gates = []
    for _ in plain.blocks:
        with torch.device("meta"):  # keeps nn.Linear from drawing from the global generator
            gate = nn.Linear(w, w)
        gate = gate.to_empty(device="cpu")
        with torch.no_grad():
            nn.init.uniform_(gate.weight, -1 / math.sqrt(w), 1 / math.sqrt(w), generator=g)
            gate.bias.fill_(config.gate_bias)
        gates.append(gate)
    return HighwayMLP(plain, gates).to(device)


def parameter_count(model: nn.Module) -> int:
    """The number of trainable parameters p."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


@dataclass(frozen=True, eq=False)
class HighwayStudy:
    """A highway MLP and a residual MLP (``baseline``, a kind of NETWORKS) of the same depth, width, init and norm,
    trained alike: their curves, the highway's mean gate per layer at initialization and after training, the
    fraction of gate values above 1/2 after training, and both parameter counts p."""

    config: HighwayConfig
    train_config: TrainConfig
    baseline: str
    highway: TrainingCurves
    residual: TrainingCurves
    gate_init: Tensor
    gate_mean: Tensor
    gate_open: Tensor
    params: tuple[int, int]  # highway, residual
    diverged_at: int | None = None
    diverged_run: str | None = None


def highway_study(config: HighwayConfig = HighwayConfig(), train_config: TrainConfig = TrainConfig(),
                  seed: int = 0, baseline: str = NETWORKS[2], baseline_lr: float | None = None,
                  progress: Progress | None = None, device: torch.device | str = "cpu") -> HighwayStudy:
    """Train both networks from ``seed`` (the baseline at ``baseline_lr`` if given); the gates are read on the
    validation set."""
    if baseline not in NETWORKS[1:]:
        raise ValueError(f"the baseline is a residual kind, one of {NETWORKS[1:]}, not {baseline!r}")
    split = digits_split(0, device=device)
    hw = build_highway(config, seed, device)
    res = build(replace(config.net, residual=True), seed, device)
    if baseline == NETWORKS[2]:
        zero_branches(res)
    before = hw.gate_values(split.x_val).mean((1, 2))
    p = (lambda a, b: None) if progress is None else (lambda a, b: (lambda f: progress(a + b * f)))
    curves_hw = train(hw, split, train_config, seed, p(0.0, 0.5))
    res_config = train_config if baseline_lr is None else replace(train_config, lr=baseline_lr)
    curves_res = train(res, split, res_config, seed, p(0.5, 0.5))
    gates = hw.gate_values(split.x_val)
    bad = next(((c.diverged_at, name) for c, name in ((curves_hw, "highway"), (curves_res, "residual"))
                if c.diverged_at is not None), (None, None))
    return HighwayStudy(config, train_config, baseline, curves_hw, curves_res, before, gates.mean((1, 2)),
                        (gates > 0.5).float().mean((1, 2)), (parameter_count(hw), parameter_count(res)), *bad)
