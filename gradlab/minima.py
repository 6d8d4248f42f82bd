"""The minima of a small network (Chapter 1, on local minima in deep networks): one hidden layer of d_1
ReLUs trained on scikit-learn's digits from several seeds, the losses the runs end at, and the loss
along straight lines between their solutions.

Every run minimizes f(θ) = mean cross-entropy + (α/2)‖θ‖² with full-batch heavy-ball gradient descent
(``torch.optim.SGD``). The penalty makes a minimizer exist: without it, a network that classifies every
example correctly lowers its loss forever by growing its weights, as Chapter 1 shows for logistic
regression. The seeds train at once: their parameters are stacked along a first axis and their losses
summed, and since no parameter enters two seeds' losses, each gets exactly its own gradient.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from .data import digits
from .device import real_dtype
from .seeding import generator

__all__ = ["MinimaConfig", "Params", "init_mlps", "mlp_forward", "mlp_loss", "TrainedNets", "train_mlps", "select",
           "permute_hidden", "match_hidden", "loss_along_line", "Interpolation", "interpolate"]

Params = tuple[Tensor, Tensor, Tensor, Tensor]  # W1 (S, d1, d0), b1 (S, d1), W2 (S, C, d1), b2 (S, C): S seeds


@dataclass(frozen=True)
class MinimaConfig:
    """The network's width d_1 (hidden units), the seeds of its initial weights, and the full-batch training run."""

    hidden: int = 32
    seeds: tuple[int, ...] = (0, 1, 2, 3, 4, 5, 6, 7)
    steps: int = 1000
    lr: float = 0.2
    momentum: float = 0.9
    alpha: float = 1e-3  # weight of the L2 penalty (α/2)‖θ‖² on every parameter


def init_mlps(hidden: int, seeds: tuple[int, ...], d_in: int, classes: int, dtype: torch.dtype = torch.float64,
              device: torch.device | str = "cpu") -> Params:
    """One network per seed, drawn as ``nn.Linear`` draws its defaults: every entry U(−1/√fan_in, 1/√fan_in)."""
    def layer(g: torch.Generator, fan_out: int, fan_in: int) -> tuple[Tensor, Tensor]:
        bound = 1.0 / math.sqrt(fan_in)  # drawn in float32, as nn.Linear draws them, then cast
        w = (2 * torch.rand(fan_out, fan_in, generator=g) - 1) * bound
        b = (2 * torch.rand(fan_out, generator=g) - 1) * bound
        return w, b

    nets = []
    for seed in seeds:  # one generator per seed: a seed's network does not depend on the other seeds
        g = generator(seed)
        nets.append((*layer(g, hidden, d_in), *layer(g, classes, hidden)))
    return tuple(torch.stack(parts).to(device=device, dtype=dtype) for parts in zip(*nets))


def mlp_forward(params: Params, x: Tensor) -> tuple[Tensor, Tensor]:
    """The hidden activations (S, N, d1) and the logits (S, N, C) of every stacked network on the inputs x (N, d0)."""
    w1, b1, w2, b2 = params
    hidden = torch.relu(x @ w1.transpose(1, 2) + b1[:, None, :])
    return hidden, hidden @ w2.transpose(1, 2) + b2[:, None, :]


def mlp_loss(params: Params, x: Tensor, y: Tensor, alpha: float) -> Tensor:
    """f(θ) of each stacked network, shape (S,): mean cross-entropy on (x, y) plus (α/2)‖θ‖²."""
    _, logits = mlp_forward(params, x)
    s, n, c = logits.shape
    xent = F.cross_entropy(logits.reshape(s * n, c), y.repeat(s), reduction="none").reshape(s, n).mean(dim=1)
    return xent + 0.5 * alpha * sum((p * p).flatten(1).sum(dim=1) for p in params)


@dataclass
class TrainedNets:
    """Where each seed's run ended: its parameters, f(θ), the gradient's norm, the training accuracy and dead units."""

    config: MinimaConfig
    params: Params
    losses: Tensor  # (S,)
    grad_norms: Tensor  # (S,): small at a minimum
    accuracies: Tensor  # (S,)
    dead_units: Tensor  # (S,): hidden units that output 0 on every example, so no gradient reaches their weights


def train_mlps(config: MinimaConfig, device: torch.device | str = "cpu") -> TrainedNets:
    """Train one network per seed on all 1,797 digits with full-batch ``torch.optim.SGD`` (momentum β)."""
    x, y = digits(device)
    params = [p.requires_grad_(True) for p in
              init_mlps(config.hidden, config.seeds, x.shape[1], 10, real_dtype(device), device)]
    opt = torch.optim.SGD(params, lr=config.lr, momentum=config.momentum)
    for _ in range(config.steps):
        opt.zero_grad()
        mlp_loss(tuple(params), x, y, config.alpha).sum().backward()
        opt.step()
    losses = mlp_loss(tuple(params), x, y, config.alpha)
    grads = torch.autograd.grad(losses.sum(), params)
    norms = torch.stack([g.flatten(1).pow(2).sum(dim=1) for g in grads]).sum(dim=0).sqrt()
    done = tuple(p.detach() for p in params)
    with torch.no_grad():
        hidden, logits = mlp_forward(done, x)
    pred = logits.argmax(dim=-1)
    dead = (hidden.amax(dim=1) == 0).sum(dim=1)
    return TrainedNets(config, done, losses.detach(), norms, (pred == y).double().mean(dim=1), dead)


def select(params: Params, i: int) -> Params:
    """The network of the i-th seed alone, still with a seed axis of length 1."""
    return tuple(p[i:i + 1] for p in params)


def permute_hidden(params: Params, perm: Tensor) -> Params:
    """The same networks with their hidden units reordered by ``perm`` (d1,): each computes the same function."""
    w1, b1, w2, b2 = params
    return w1[:, perm], b1[:, perm], w2[:, :, perm], b2


def match_hidden(a: Params, b: Params) -> Tensor:
    """The order of b's hidden units that best lines them up with a's (one network each).

    Weight matching: maximize Σ_j ⟨unit j of a, unit π(j) of b⟩ over permutations π, where a unit is its
    incoming weights, its bias and its outgoing weights; a linear assignment problem (scipy solves it).
    """
    from scipy.optimize import linear_sum_assignment

    (wa, ba, va, _), (wb, bb, vb, _) = a, b
    sim = wa[0] @ wb[0].T + ba[0][:, None] * bb[0][None, :] + va[0].T @ vb[0]  # (d1, d1)
    _, cols = linear_sum_assignment(sim.cpu().numpy(), maximize=True)
    return torch.as_tensor(cols, device=wa.device)


def loss_along_line(a: Params, b: Params, ts: Tensor, x: Tensor, y: Tensor, alpha: float) -> Tensor:
    """f((1 − t)·a + t·b) for every t in ``ts``: the loss along the straight line from network a to network b."""
    t = ts.to(a[0].dtype).reshape(-1)
    line = tuple((1 - t.reshape(-1, *[1] * (p.dim() - 1))) * p + t.reshape(-1, *[1] * (q.dim() - 1)) * q
                 for p, q in zip(a, b))
    return mlp_loss(line, x, y, alpha)


@dataclass
class Interpolation:
    """The loss along three straight lines that start at the first seed's solution A."""

    ts: Tensor
    between: Tensor  # to the second seed's solution B
    permuted: Tensor  # to A with its hidden units shuffled: the same function, other weights
    aligned: Tensor  # to B with its hidden units put in the order that best matches A's

    def named(self) -> dict[str, Tensor]:
        """The three lines by name, θ_A being the first seed's solution and θ_B the second's."""
        return {"θ_A to θ_B": self.between, "θ_A to θ_A shuffled": self.permuted, "θ_A to θ_B aligned": self.aligned}

    def barrier(self, line: Tensor) -> float:
        """How far the loss rises above the straight line between the ends' losses."""
        chord = (1 - self.ts) * line[0] + self.ts * line[-1]
        return float((line - chord).max())


def interpolate(trained: TrainedNets, points: int = 21, seed: int = 0) -> Interpolation:
    """The loss along the lines from seed 0's network to seed 1's, to a shuffled copy of itself, and to seed 1's aligned."""
    params = trained.params
    x, y = digits(params[0].device)
    a, b = select(params, 0), select(params, 1)
    shuffle = torch.randperm(trained.config.hidden, generator=generator(seed)).to(params[0].device)
    ts = torch.linspace(0.0, 1.0, points, dtype=params[0].dtype).to(params[0].device)
    alpha = trained.config.alpha
    with torch.no_grad():
        return Interpolation(ts, loss_along_line(a, b, ts, x, y, alpha),
                             loss_along_line(a, permute_hidden(a, shuffle), ts, x, y, alpha),
                             loss_along_line(a, permute_hidden(b, match_hidden(a, b)), ts, x, y, alpha))
