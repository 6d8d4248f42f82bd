"""What autograd keeps for the backward pass, and gradient checkpointing's trade (Chapter 2).

Saved tensors are seen through ``torch.autograd.graph.saved_tensors_hooks`` and counted
once per storage (a ReLU's output that is also the next layer's input is kept once), so
the measurement is the same on every device. Parameters are saved too, but they exist
anyway; what grows with batch and depth is the activations, reported apart.

The peak is what the step holds at its fullest moment: saved activations, temporaries and the
gradients, counted by a dispatch mode that sees every tensor an operation creates and notices when
its storage is freed. It is also the same on every device; it leaves out the parameters and
whatever the allocator keeps in reserve. Times are medians of repeats after a warm-up step.
"""
from __future__ import annotations

import math
import statistics
import weakref
from dataclasses import dataclass, replace
from typing import Callable, Iterator

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.checkpoint import checkpoint_sequential

from .autodiff import median_seconds, seeded_mlp
from .seeding import generator

__all__ = ["MemoryConfig", "MemoryRun", "PeakMemory", "build_mlp", "measure_memory", "sweep", "checkpoint_counts"]


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
    """Saved activation bytes (total and per layer), the step's peak, layer evaluations, and the median seconds."""

    config: MemoryConfig
    activation_bytes: int
    parameter_bytes: int
    per_layer_bytes: list[int]
    layer_calls_forward: int
    layer_calls_total: int
    peak_bytes: int = 0
    seconds: float = math.nan  # median of repeated steps after a warm-up; nan when not timed


def _tensors(obj: object) -> Iterator[torch.Tensor]:
    if isinstance(obj, torch.Tensor):
        yield obj
    elif isinstance(obj, (list, tuple)):
        for item in obj:
            yield from _tensors(item)
    elif isinstance(obj, dict):
        for item in obj.values():
            yield from _tensors(item)


class PeakMemory(TorchDispatchMode):
    """Bytes held by tensors created inside the ``with`` block: ``live`` now, ``peak`` at the fullest moment.

    Every operation's outputs are seen as they are made (in the backward pass too); a storage is
    counted once, views of existing storages are not new memory, and a storage stops counting
    when it is freed.
    """

    def __init__(self) -> None:
        super().__init__()
        self.live = 0
        self.peak = 0
        self._sizes: dict[int, int] = {}

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # noqa: D105
        out = func(*args, **(kwargs or {}))
        inputs = {t.untyped_storage().data_ptr() for t in _tensors((args, kwargs))}
        for t in _tensors(out):
            storage = t.untyped_storage()
            key, size = storage.data_ptr(), storage.nbytes()
            if size == 0 or key in inputs or key in self._sizes:
                continue  # a view or an in-place result: no new memory
            self._sizes[key] = size
            self.live += size
            self.peak = max(self.peak, self.live)
            weakref.finalize(storage, self._freed, key)  # storages keep their Python object while alive
        return out

    def _freed(self, key: int) -> None:
        self.live -= self._sizes.pop(key, 0)


def build_mlp(cfg: MemoryConfig, seed: int = 0, device: torch.device | str = "cpu") -> nn.Sequential:
    """``depth`` blocks of Linear(width, width) followed by the activation."""
    act = {"tanh": nn.Tanh, "relu": nn.ReLU}[cfg.activation]
    net = seeded_mlp([cfg.width] * (cfg.depth + 1), seed, act, device)
    return nn.Sequential(*net, act().to(device))  # seeded_mlp ends on a Linear; close the last block too


def _step(net: nn.Sequential, x: torch.Tensor, segments: int) -> None:
    out = checkpoint_sequential(net, segments, x, use_reentrant=False) if segments else net(x)
    out.square().mean().backward()


def _peak_bytes(cfg: MemoryConfig, seed: int, device: torch.device | str) -> int:
    net = build_mlp(cfg, seed, device)
    g = generator(seed + 1)
    with PeakMemory() as mem:  # the batch is made inside, so it counts, as it does in the saved bytes
        x = torch.randn(cfg.batch, cfg.width, generator=g).to(device)
        _step(net, x, cfg.segments)
        del x
    return mem.peak


def _timed_step(cfg: MemoryConfig, seed: int, device: torch.device | str) -> Callable[[], None]:
    net = build_mlp(cfg, seed, device)
    x = torch.randn(cfg.batch, cfg.width, generator=generator(seed + 1)).to(device)

    def step() -> None:
        net.zero_grad(set_to_none=True)
        _step(net, x, cfg.segments)

    return step


def measure_memory(cfg: MemoryConfig, seed: int = 0, device: torch.device | str = "cpu",
                   repeats: int = 0) -> MemoryRun:
    """One forward and backward pass, counting saved tensors by storage and every Linear call, and the peak;
    with ``repeats`` > 0 also the median time of a step (after a warm-up step)."""
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

    try:
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            out = (checkpoint_sequential(net, cfg.segments, x, use_reentrant=False)
                   if cfg.segments else net(x))
        forward_calls = calls[0]
        out.square().mean().backward()
    finally:
        for h in handles:
            h.remove()
    per_layer = [0] * cfg.depth
    acts = [(b, layer) for ptr, (b, layer) in saved.items() if ptr not in params]
    for b, layer in acts:
        per_layer[min(layer, cfg.depth - 1)] += b
    seconds = median_seconds(_timed_step(cfg, seed, device), repeats, device) if repeats > 0 else math.nan
    return MemoryRun(cfg, sum(b for b, _ in acts), sum(b for p, (b, _) in saved.items() if p in params),
                     per_layer, forward_calls, calls[0], _peak_bytes(cfg, seed, device), seconds)


def sweep(base: MemoryConfig, field: str, values: list[int], seed: int = 0,
          device: torch.device | str = "cpu", repeats: int = 0) -> list[MemoryRun]:
    """``measure_memory`` with one field of the config set to each value in turn.

    With ``repeats`` > 0 every setting is timed too: one warm-up step each, then ``repeats`` rounds
    that time one step of every setting in turn (so a slow moment of the machine hits all of them
    alike), and each setting's median.
    """
    runs = [measure_memory(replace(base, **{field: v}), seed, device) for v in values]
    if repeats > 0:
        steps = [_timed_step(r.config, seed, device) for r in runs]
        times: list[list[float]] = [[] for _ in runs]
        for step in steps:
            step()  # warm-up
        for _ in range(repeats):
            for i, step in enumerate(steps):
                times[i].append(median_seconds(step, 1, device, warmup=False))
        runs = [replace(r, seconds=statistics.median(t)) for r, t in zip(runs, times)]
    return runs


def checkpoint_counts(cfg: MemoryConfig, seed: int = 0) -> dict[str, float]:
    """Saved activations in batch × width matrices, and Linear calls per training step (Exercise 2.6)."""
    run = measure_memory(cfg, seed)
    return {"matrices kept": run.activation_bytes / (cfg.batch * cfg.width * 4), "Linear calls": run.layer_calls_total}
