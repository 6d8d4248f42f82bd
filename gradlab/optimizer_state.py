"""What optimizers keep, and sparse gradients (Chapter 3): state bytes per parameter, SparseAdam against Adam.

The state is read from each ``torch.optim`` optimizer's ``state_dict()`` after one step
(:func:`gradlab.optimizers.state_size`). For an embedding, a step that looks up a few rows gives a gradient
that is zero on every other row. ``SparseAdam`` (with ``nn.Embedding(sparse=True)``) updates those rows and
their moments only; the moments of the other rows are left as they were, not decayed. Dense ``Adam`` updates
every entry: a row looked up once has a nonzero m, so it keeps moving, by m̂/(√v̂ + ε), at every later step,
and each step costs work in proportion to the whole table.
"""
from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from typing import Callable

import torch
from torch import Tensor, nn

from .device import sync
from .optimizers import StateSize, state_size
from .seeding import generator

__all__ = ["STATE_OPTIMIZERS", "state_table", "SparseConfig", "SparseSteps", "sparse_vs_dense", "SparseTiming",
           "time_sparse_vs_dense"]

STATE_OPTIMIZERS: dict[str, Callable[[list[Tensor]], torch.optim.Optimizer]] = {
    "SGD": lambda p: torch.optim.SGD(p, lr=0.1),
    "momentum": lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9),
    "Adagrad": lambda p: torch.optim.Adagrad(p),
    "RMSprop": lambda p: torch.optim.RMSprop(p),
    "Adam": lambda p: torch.optim.Adam(p),
    "AdamW": lambda p: torch.optim.AdamW(p),
    "AMSGrad": lambda p: torch.optim.Adam(p, amsgrad=True),
}


def _mlp(seed: int) -> nn.Module:
    torch_seed = generator(seed)
    net = nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))
    with torch.no_grad():  # from our generator, not the global one
        for p in net.parameters():
            p.copy_(torch.rand(p.shape, generator=torch_seed) - 0.5)
    return net


def state_table(model: nn.Module | None = None, kinds: tuple[str, ...] = tuple(STATE_OPTIMIZERS),
                seed: int = 0) -> dict[str, StateSize]:
    """Each optimizer's state after one step on ``model`` (default: the chapter's 64–32–10 MLP, float32)."""
    out = {}
    for kind in kinds:
        net = model if model is not None else _mlp(seed)
        params = [p for p in net.parameters()]
        opt = STATE_OPTIMIZERS[kind](params)
        x = torch.randn(8, params[0].shape[1], generator=generator(seed)).to(params[0])
        net(x).square().mean().backward()
        opt.step()
        out[kind] = state_size(opt)
        opt.zero_grad()
    return out


@dataclass(frozen=True)
class SparseConfig:
    """An embedding of ``rows`` × ``dim``, ``lookups`` distinct rows per step, ``steps`` steps of Adam at η."""

    rows: int = 24
    dim: int = 8
    lookups: int = 3
    steps: int = 6
    lr: float = 0.01
    seed: int = 0


@dataclass
class SparseSteps:
    """Per optimizer (SparseAdam, Adam) and step: which rows were looked up, changed, and have nonzero moments."""

    config: SparseConfig
    labels: tuple[str, ...]  # ("SparseAdam", "Adam")
    looked_up: Tensor  # (steps, rows) bool
    changed: Tensor  # (2, steps, rows) bool: the row's weights differ from before the step
    m_nonzero: Tensor  # (2, steps, rows) bool: some entry of the row's exp_avg is nonzero after the step
    v_nonzero: Tensor  # (2, steps, rows) bool: the same for exp_avg_sq
    m_decayed: Tensor  # (2, steps, rows) bool: the row's exp_avg changed in the step
    state: dict[str, StateSize]
    diverged_at: int | None = None
    diverged_run: str | None = None


def _lookups(config: SparseConfig) -> list[Tensor]:
    g = generator(config.seed)
    return [torch.randperm(config.rows, generator=g)[:config.lookups] for _ in range(config.steps)]


def sparse_vs_dense(config: SparseConfig = SparseConfig()) -> SparseSteps:
    """Train one embedding with SparseAdam (sparse gradients) and a copy with Adam, the same rows each step."""
    if not 1 <= config.lookups <= config.rows:
        raise ValueError("the rows looked up per step must be between 1 and the number of rows")
    g = generator(config.seed + 1)
    init = torch.randn(config.rows, config.dim, generator=g)
    target = torch.randn(config.rows, config.dim, generator=g)
    embs = [nn.Embedding(config.rows, config.dim, sparse=sparse) for sparse in (True, False)]
    with torch.no_grad():
        for emb in embs:
            emb.weight.copy_(init)
    opts = [torch.optim.SparseAdam(list(embs[0].parameters()), lr=config.lr),
            torch.optim.Adam(embs[1].parameters(), lr=config.lr)]
    looked, per_step = [], []
    for idx in _lookups(config):
        mask = torch.zeros(config.rows, dtype=torch.bool)
        mask[idx] = True
        looked.append(mask)
        row = []
        for emb, opt in zip(embs, opts):
            before = emb.weight.detach().clone()
            state = opt.state.get(emb.weight, {})
            m_before = state["exp_avg"].clone() if "exp_avg" in state else torch.zeros_like(before)
            opt.zero_grad()
            ((emb(idx) - target[idx]) ** 2).sum().backward()
            opt.step()
            state = opt.state[emb.weight]
            row.append(torch.stack([(emb.weight.detach() != before).any(1), (state["exp_avg"] != 0).any(1),
                                    (state["exp_avg_sq"] != 0).any(1), (state["exp_avg"] != m_before).any(1)]))
        per_step.append(torch.stack(row))  # (2 optimizers, 4 facts, rows)
    facts = torch.stack(per_step, 2)  # (2, 4, steps, rows)
    sizes = {"SparseAdam": state_size(opts[0]), "Adam": state_size(opts[1])}
    return SparseSteps(config, ("SparseAdam", "Adam"), torch.stack(looked), *facts.unbind(1), state=sizes)


@dataclass(frozen=True)
class SparseTiming:
    """Median seconds per training step (lookup, backward, optimizer step) for a large embedding."""

    rows: int
    dim: int
    lookups: int
    sparse_s: float
    dense_s: float

    @property
    def ratio(self) -> float:
        """dense / sparse: how many times longer Adam's step takes."""
        return self.dense_s / self.sparse_s


def time_sparse_vs_dense(rows: int = 100_000, dim: int = 64, lookups: int = 256, repeats: int = 10,
                         seed: int = 0, device: torch.device | str = "cpu") -> SparseTiming:
    """Time a step of SparseAdam (sparse gradient) against Adam (dense gradient) on an embedding of rows × dim."""
    g = generator(seed)
    times = []
    for sparse in (True, False):
        emb = nn.Embedding(rows, dim, sparse=sparse).to(device)
        opt = (torch.optim.SparseAdam if sparse else torch.optim.Adam)(list(emb.parameters()), lr=1e-3)
        per = []
        for k in range(repeats + 1):
            idx = torch.randint(rows, (lookups,), generator=g).to(device)
            sync(device)
            t0 = time.perf_counter()
            opt.zero_grad()
            emb(idx).square().sum().backward()
            opt.step()
            sync(device)
            if k:  # the first step allocates the state: not counted
                per.append(time.perf_counter() - t0)
        times.append(statistics.median(per))
    return SparseTiming(rows, dim, lookups, *times)
