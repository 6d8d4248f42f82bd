"""What autograd keeps for the backward pass, and gradient checkpointing's trade (Chapter 2).

Saved tensors are seen through ``torch.autograd.graph.saved_tensors_hooks`` and counted
once per storage (a ReLU's output that is also the next layer's input is kept once), so
the measurement is the same on every device. Parameters are saved too, but they exist
anyway; what grows with batch and depth is the activations, reported apart.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint_sequential

from .autodiff import seeded_mlp
from .seeding import generator
from .device import sync

__all__ = ["MemoryConfig", "MemoryRun", "build_mlp", "measure_memory", "sweep"]


@dataclass(frozen=True)
class MemoryConfig:
    """An MLP of ``depth`` linear+activation layers; ``segments`` > 0 turns on checkpoint_sequential."""

    depth: int = 8
    width: int = 128
    batch: int = 64
    segments: int = 0
    activation: str = "tanh"  # "tanh" | "relu"


@dataclass
class MemoryRun:
    """Saved activation bytes (total and per layer), layer evaluations in forward+backward, and seconds."""

    config: MemoryConfig
    activation_bytes: int
    parameter_bytes: int
    per_layer_bytes: list[int]
    layer_calls_forward: int
    layer_calls_total: int
    seconds: float


def build_mlp(cfg: MemoryConfig, seed: int = 0, device: torch.device | str = "cpu") -> nn.Sequential:
    """``depth`` blocks of Linear(width, width) followed by the activation."""
    act = {"tanh": nn.Tanh, "relu": nn.ReLU}[cfg.activation]
    net = seeded_mlp([cfg.width] * (cfg.depth + 1), seed, act, device)
    return nn.Sequential(*net, act().to(device))  # seeded_mlp ends on a Linear; close the last block too


def measure_memory(cfg: MemoryConfig, seed: int = 0, device: torch.device | str = "cpu") -> MemoryRun:
    """One forward and backward pass, counting saved tensors by storage and every Linear call."""
    if cfg.depth < 1 or cfg.batch < 1:
        raise ValueError("depth and batch size must be at least 1")
    if cfg.segments > cfg.depth:
        raise ValueError(f"at most {cfg.depth} segments for depth {cfg.depth}")
    net = build_mlp(cfg, seed, device)
    x = torch.randn(cfg.batch, cfg.width, generator=generator(seed + 1)).to(device)
    params = {p.untyped_storage().data_ptr() for p in net.parameters()}
    current = [0]  # index of the block running now, to attribute saved tensors to layers
    saved: dict[int, tuple[int, int]] = {}
    calls = [0]

    def pre_hook(block: int) -> Callable:
        def hook(_m, _inp):
            current[0] = block
            calls[0] += 1
        return hook

    handles = [m.register_forward_pre_hook(pre_hook(i // 2)) for i, m in enumerate(net) if isinstance(m, nn.Linear)]

    def pack(t: torch.Tensor) -> torch.Tensor:
        st = t.untyped_storage()
        saved.setdefault(st.data_ptr(), (st.nbytes(), current[0]))
        return t

    t0 = time.perf_counter()
    try:
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            out = (checkpoint_sequential(net, cfg.segments, x, use_reentrant=False)
                   if cfg.segments else net(x))
        forward_calls = calls[0]
        out.square().mean().backward()
    finally:
        for h in handles:
            h.remove()
    sync(device)
    seconds = time.perf_counter() - t0
    per_layer = [0] * cfg.depth
    acts = [(b, layer) for ptr, (b, layer) in saved.items() if ptr not in params]
    for b, layer in acts:
        per_layer[min(layer, cfg.depth - 1)] += b
    return MemoryRun(cfg, sum(b for b, _ in acts), sum(b for p, (b, _) in saved.items() if p in params),
                     per_layer, forward_calls, calls[0], seconds)


def sweep(base: MemoryConfig, field: str, values: list[int], seed: int = 0,
          device: torch.device | str = "cpu") -> list[MemoryRun]:
    """``measure_memory`` with one field of the config set to each value in turn."""
    from dataclasses import replace

    return [measure_memory(replace(base, **{field: v}), seed, device) for v in values]
