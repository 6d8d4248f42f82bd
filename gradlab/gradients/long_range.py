"""A long-range dependency (Chapter 5, Experiment 6): remember the class of one marked token across T_seq steps.

Each sequence is T_seq one-hot tokens: distractors drawn from M symbols, and at one position τ_mark a class
token, one of K symbols of its own; the label is that token's class, read from the state after the last
position, so the dependency spans the delay T_seq − τ_mark. With τ_mark uniform over 1 … T_seq the delays
run from 0 to T_seq − 1 and the short ones give every network a signal to start from; with τ_mark = 1 (the
"first" position) every sequence needs the full span. Accuracy is measured per range of delays, chance is 1/K.

The networks are :func:`.recurrent.build_recurrent`'s ``nn.RNN``/``nn.LSTM``/``nn.GRU`` and a linear head on
h_T, trained by ``torch.optim.Adam`` on fresh batches (so there is nothing to overfit). Recorded at every
step: the loss, the total gradient norm (before clipping, ``torch.nn.utils.clip_grad_norm_`` at ν if set) and
the mean per-example ‖∂ℓ/∂x_1‖ and ‖∂ℓ/∂x_T‖, the gradients that reach the first and the last input (their
ratio says how far back the loss still reaches, whatever the size of the loss).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..seeding import generator
from .recurrent import RECURRENT, build_recurrent, spectral_radius

__all__ = ["POSITIONS", "LongRangeConfig", "LongRange", "marked_batch", "long_range"]

POSITIONS = ("random", "first")


@dataclass(frozen=True)
class LongRangeConfig:
    """The task (T_seq, K classes, M distractors, where the class token sits), the network and its training."""

    kind: str = "lstm"
    seq_len: int = 50  # T_seq
    classes: int = 2  # K
    distractors: int = 4  # M
    position: str = "random"
    hidden: int = 32
    forget: float | None = None  # the LSTM's forget-gate bias; None: PyTorch's
    batch: int = 32
    steps: int = 300
    lr: float = 0.01  # Adam's η
    clip: float | None = None  # ν of clip_grad_norm_; None: no clipping
    eval_every: int = 25
    eval_size: int = 512
    bins: int = 4  # ranges of the delay for the accuracy

    def __post_init__(self):
        if self.kind not in RECURRENT:
            raise ValueError(f"kind is one of {RECURRENT}, not {self.kind!r}")
        if self.position not in POSITIONS:
            raise ValueError(f"position is one of {POSITIONS}, not {self.position!r}")
        if not 1 <= self.seq_len <= 1000:
            raise ValueError(f"T_seq must be between 1 and 1000 positions, got {self.seq_len}")
        if self.classes < 2 or self.distractors < 1:
            raise ValueError("the task needs at least 2 classes and 1 distractor symbol")
        if min(self.hidden, self.batch, self.steps, self.eval_every, self.eval_size, self.bins) < 1:
            raise ValueError("hidden, batch, steps, eval_every, eval_size and bins must be at least 1")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise ValueError(f"the learning rate η must be a positive number, got {self.lr}")
        if self.clip is not None and not self.clip > 0:
            raise ValueError(f"the clipping threshold ν must be positive, got {self.clip}")


@dataclass(frozen=True, eq=False)
class LongRange:
    """``accuracy`` (evaluations × bins) at ``eval_steps`` per range of delays ``bin_edges``; per step: ``loss``,
    ``grad_norm``, ``grad_first`` and ``grad_last`` (mean ‖∂ℓ/∂x_1‖, ‖∂ℓ/∂x_T‖), NaN after a divergence."""

    config: LongRangeConfig
    eval_steps: Tensor
    accuracy: Tensor
    bin_edges: Tensor
    loss: Tensor
    grad_norm: Tensor
    grad_first: Tensor
    grad_last: Tensor
    rho: float = math.nan  # the RNN's spectral radius of W_hh after training (NaN for the gated ones)
    diverged_at: int | None = None

    @property
    def chance(self) -> float:
        return 1 / self.config.classes

    def final_long(self) -> float:
        """The final accuracy on the longest delays (the last bin; every sequence is there at position "first")."""
        return float(self.accuracy[-1, -1])

    def final_short(self) -> float:
        """The final accuracy on the shortest delays (the first bin; NaN at position "first", which has none)."""
        return float(self.accuracy[-1, 0])


def marked_batch(config: LongRangeConfig, n: int, g: torch.Generator) -> tuple[Tensor, Tensor, Tensor]:
    """``n`` sequences (n × T_seq × (K + M) one-hot), their labels and delays T_seq − τ_mark."""
    c = config
    label = torch.randint(0, c.classes, (n,), generator=g)
    tokens = torch.randint(c.classes, c.classes + c.distractors, (n, c.seq_len), generator=g)
    mark = torch.randint(0, c.seq_len, (n,), generator=g) if c.position == "random" else torch.zeros(n, dtype=torch.long)
    tokens[torch.arange(n), mark] = label
    return F.one_hot(tokens, c.classes + c.distractors).float(), label, c.seq_len - 1 - mark


def long_range(config: LongRangeConfig = LongRangeConfig(), seed: int = 0, device: torch.device | str = "cpu",
               progress: Callable[[float], None] | None = None) -> LongRange:
    """Train one network on the marked-token task and measure it on a fixed set of ``eval_size`` sequences."""
    c = config
    g = generator(seed + 1)
    x_val, y_val, d_val = (t.to(device) for t in marked_batch(c, c.eval_size, g))
    edges = torch.linspace(0, c.seq_len, c.bins + 1)
    which = torch.bucketize(d_val.float().cpu(), edges[1:-1], right=True).to(device)
    model = build_recurrent(c.kind, c.classes + c.distractors, c.hidden, seed, forget=c.forget, device=device,
                            dtype=torch.float32)
    head = nn.Linear(c.hidden, c.classes)
    bound = 1 / math.sqrt(c.hidden)
    with torch.no_grad():
        for p in head.parameters():
            p.uniform_(-bound, bound, generator=g)
    head = head.to(device)
    params = list(model.parameters()) + list(head.parameters())
    opt = torch.optim.Adam(params, lr=c.lr)
    loss_t, norm_t, first_t, last_t = (torch.full((c.steps,), math.nan) for _ in range(4))
    evals, accs, diverged = [], [], None

    def evaluate(k: int) -> None:
        with torch.no_grad():
            right = (head(model(x_val)[0][:, -1]).argmax(1) == y_val).float()
        acc = torch.stack([right[which == i].mean() if (which == i).any() else right.new_tensor(math.nan)
                           for i in range(c.bins)])
        evals.append(k)
        accs.append(acc.cpu())

    evaluate(0)
    for k in range(c.steps):
        x, y, _ = (t.to(device) for t in marked_batch(c, c.batch, g))
        x.requires_grad_(True)
        loss = F.cross_entropy(head(model(x)[0][:, -1]), y)
        opt.zero_grad()
        loss.backward()
        total = torch.nn.utils.clip_grad_norm_(params, c.clip if c.clip is not None else math.inf)
        if not (math.isfinite(loss.item()) and math.isfinite(total.item())):
            diverged = k
            break
        loss_t[k], norm_t[k] = loss.item(), total.item()
        per_example = x.grad.norm(dim=2) * c.batch  # ∂ℓ_b/∂x_τ = B · ∂𝓛/∂x_τ for the mean 𝓛
        first_t[k], last_t[k] = per_example[:, 0].mean().item(), per_example[:, -1].mean().item()
        opt.step()
        if (k + 1) % c.eval_every == 0 or k + 1 == c.steps:
            evaluate(k + 1)
        if progress is not None:
            progress((k + 1) / c.steps)
    rho = spectral_radius(model.weight_hh_l0) if c.kind == "rnn" else math.nan
    return LongRange(c, torch.tensor(evals), torch.stack(accs), edges, loss_t, norm_t, first_t, last_t, rho, diverged)
