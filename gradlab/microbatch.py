"""Gradient accumulation over micro-batches, and when it is not the full-batch gradient (Chapter 2).

Split a batch of B examples into M micro-batches of sizes B_1, ..., B_M. Dividing each micro-batch's
mean loss by M gives every example of micro-batch j the weight 1/(M·B_j) instead of 1/B; the two
agree only when all micro-batches have the same size B/M. Weighting micro-batch j by B_j/B fixes
uneven splits. No weighting fixes a layer that couples the
examples of a batch, such as BatchNorm: each chunk is normalized with its own mean and variance.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .seeding import generator

__all__ = ["MicrobatchCase", "CASES", "build_net", "full_batch_gradient", "accumulated_gradient", "accumulation_table"]


@dataclass(frozen=True)
class MicrobatchCase:
    """How a batch is split (``chunks``: the sizes B_j), how each chunk's mean loss is weighted, and the norm layer."""

    name: str
    chunks: tuple[int, ...]
    weighting: str = "1/M"  # "1/M": divide by the number of chunks; "B_j/B": weight by the chunk's share of the batch
    norm: str = "none"  # "none" | "batchnorm" | "layernorm"


CASES = (
    MicrobatchCase("4 equal chunks, loss / 4", (8, 8, 8, 8)),
    MicrobatchCase("chunks 11, 11, 10, loss / 3", (11, 11, 10)),
    MicrobatchCase("chunks 11, 11, 10, loss × B_j / B", (11, 11, 10), weighting="B_j/B"),
    MicrobatchCase("BatchNorm, 4 equal chunks, loss / 4", (8, 8, 8, 8), norm="batchnorm"),
    MicrobatchCase("LayerNorm, 4 equal chunks, loss / 4", (8, 8, 8, 8), norm="layernorm"),
)


def build_net(norm: str = "none", d_in: int = 5, hidden: int = 16, seed: int = 0) -> nn.Sequential:
    """Linear, optional BatchNorm1d or LayerNorm, tanh, Linear; float64, weights drawn from ``seed``."""
    layers: list[nn.Module] = [nn.Linear(d_in, hidden)]
    layers += {"none": [], "batchnorm": [nn.BatchNorm1d(hidden)], "layernorm": [nn.LayerNorm(hidden)]}[norm]
    layers += [nn.Tanh(), nn.Linear(hidden, 1)]
    net = nn.Sequential(*layers).double()
    g = generator(seed)
    with torch.no_grad():
        for m in net:
            if isinstance(m, nn.Linear):
                m.weight.copy_(torch.randn(m.weight.shape, generator=g, dtype=torch.float64) / m.in_features ** 0.5)
                m.bias.copy_(0.1 * torch.randn(m.bias.shape, generator=g, dtype=torch.float64))
    return net


def _batch(n: int, d_in: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = generator(seed)
    x = torch.randn(n, d_in, generator=g, dtype=torch.float64)
    return x, x[:, :1] - 0.5 * x[:, 1:2] + 0.1 * torch.randn(n, 1, generator=g, dtype=torch.float64)


def _grads(net: nn.Module) -> torch.Tensor:
    return torch.cat([p.grad.flatten() for p in net.parameters()])


def full_batch_gradient(net: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The gradient of the mean squared error over the whole batch, in one backward pass."""
    net.zero_grad()
    F.mse_loss(net(x), y).backward()
    return _grads(net)


def accumulated_gradient(net: nn.Module, x: torch.Tensor, y: torch.Tensor, case: MicrobatchCase) -> torch.Tensor:
    """``.grad`` after one backward per chunk of ``case.chunks``, each chunk's mean loss weighted as ``case`` says."""
    if sum(case.chunks) != len(x):
        raise ValueError(f"the chunks {case.chunks} do not add up to the batch of {len(x)}")
    net.zero_grad()
    for xb, yb in zip(x.split(list(case.chunks)), y.split(list(case.chunks))):
        weight = 1 / len(case.chunks) if case.weighting == "1/M" else len(xb) / len(x)
        (F.mse_loss(net(xb), yb) * weight).backward()  # .grad adds the chunks up
    return _grads(net)


def accumulation_table(seed: int = 0) -> dict[str, float]:
    """For each case: the largest |accumulated - full batch| over the largest |full batch| entry."""
    out = {}
    for case in CASES:
        net = build_net(case.norm, seed=seed)
        x, y = _batch(sum(case.chunks), 5, seed + 1)
        full = full_batch_gradient(net, x, y)
        acc = accumulated_gradient(net, x, y, case)
        out[case.name] = float((acc - full).abs().max() / full.abs().max())
    return out
