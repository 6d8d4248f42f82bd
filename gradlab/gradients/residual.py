"""Residual connections at initialization (Chapter 5, Experiment 5): the Jacobian of one block, plain against
residual stacks of any depth, and the expansion of the backward product into paths.

A residual block of :mod:`gradlab.gradients.nets` is h_l = h_{l−1} + F_l(h_{l−1}) with the branch
F_l(h) = W_l φ(N(h)); its Jacobian is ∂h_l/∂h_{l−1} = I + J_{F_l}. The backward product over the D − 2 blocks,
Π_l (I + J_{F_l}), multiplies out into a sum over the 2^(D−2) subsets of blocks a gradient passes through
(Veit, Wilber & Belongie 2016): the paths, whose lengths (the number of branches on them) are
Binomial(D − 2, 1/2) distributed when every subset is counted once.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from ..batched_mlp import digits_split
from ..seeding import generator
from .nets import Block, DeepMLP, NetConfig, build

__all__ = ["NETWORKS", "branch", "block_jacobians", "BlockJacobianConfig", "BlockJacobian", "block_jacobian",
           "zero_branches", "DepthProfileConfig", "DepthProfile", "depth_profile",
           "path_counts", "PathGradients", "path_gradients"]

# The three networks compared at initialization: plain; residual; residual with every branch's last linear layer
# zero, so that each block starts as the identity (SkipInit, De & Smith 2020; Fixup, Zhang et al. 2019).
NETWORKS = ("plain", "residual", "residual, zero-init branch")


def branch(block: Block):
    """The residual branch F_l(h) = W_l φ(N(h)) of a residual :class:`Block`, as a function of h."""
    return lambda h: block.linear(block.act(block.norm(h)))


def block_jacobians(fn, h: Tensor) -> Tensor:
    """Jacobians ∂fn(h)/∂h at every row of ``h`` (points × d), by ``torch.func.jacrev``: points × d × d.
    ``fn`` sees a batch of one row, as batch normalization (in evaluation mode) requires."""
    return torch.func.vmap(torch.func.jacrev(lambda v: fn(v.unsqueeze(0)).squeeze(0)))(h)


@dataclass(frozen=True)
class BlockJacobianConfig:
    """One hidden block of width d_l = ``width`` and the points h_{l−1} ~ N(0, I) where its Jacobian is taken;
    ``branch_scale`` is the gain of the weights, so a small value makes the branch F_l small."""

    width: int = 64
    activation: str = "relu"
    init: str = "he"
    norm: str = "none"
    branch_scale: float = 1.0
    points: int = 8

    def __post_init__(self):
        if self.norm == "batch":
            raise ValueError("batch normalization mixes the examples of a batch, so one example's Jacobian is not "
                             "a property of the block alone: use norm 'none' or 'layer'")
        if self.points < 1:
            raise ValueError(f"points counts where the Jacobian is taken: at least 1, got {self.points}")
        self.net(True)  # NetConfig checks the rest

    def net(self, residual: bool) -> NetConfig:
        """A three-layer net whose one hidden block is the block studied."""
        return NetConfig(d_in=self.width, width=self.width, d_out=self.width, depth=3, activation=self.activation,
                         init=self.init, gain=self.branch_scale, norm=self.norm, residual=residual)


@dataclass(frozen=True, eq=False)
class BlockJacobian:
    """Singular values (points × d, largest first) of the residual block's Jacobian I + J_F, of the branch's J_F,
    and of the plain block φ(N(W_l h)) with the same W_l; and the Jacobians themselves."""

    config: BlockJacobianConfig
    residual: Tensor
    branch: Tensor
    plain: Tensor
    jacobian: Tensor  # points × d × d: ∂h_l/∂h_{l−1} of the residual block
    branch_jacobian: Tensor  # points × d × d: J_F


def block_jacobian(config: BlockJacobianConfig = BlockJacobianConfig(), seed: int = 0,
                   device: torch.device | str = "cpu") -> BlockJacobian:
    """The Jacobians of a residual block, its branch and the plain block at ``config.points`` random points."""
    res, plain = (build(config.net(r), seed, device).blocks[0].eval() for r in (True, False))
    h = torch.randn(config.points, config.width, generator=generator(seed)).to(device)
    j, jf, jp = block_jacobians(res, h), block_jacobians(branch(res), h), block_jacobians(plain, h)
    sv = [torch.linalg.svdvals(m.detach()) for m in (j, jf, jp)]
    return BlockJacobian(config, *sv, jacobian=j.detach(), branch_jacobian=jf.detach())


def zero_branches(model: DeepMLP) -> DeepMLP:
    """Set the last linear layer of every residual branch (here its only one, weight and bias) to zero, in
    place: each block is then the identity at initialization, and the trunk carries h_1 unchanged to the head."""
    if not model.config.residual:
        raise ValueError("only a residual network has branches to zero")
    with torch.no_grad():
        for block in model.blocks:
            block.linear.weight.zero_()
            block.linear.bias.zero_()
    return model


@dataclass(frozen=True)
class DepthProfileConfig:
    """Plain and residual MLPs of depth D on a batch of the digits' training examples, at initialization."""

    depth: int = 50
    width: int = 64
    activation: str = "relu"
    init: str = "he"
    norm: str = "none"
    examples: int = 512

    def __post_init__(self):
        if self.examples < 2:
            raise ValueError(f"a standard deviation over examples needs at least 2 of them, got {self.examples}")
        self.net("plain")

    def net(self, network: str) -> NetConfig:
        """The :class:`NetConfig` of one of :data:`NETWORKS`."""
        if network not in NETWORKS:
            raise ValueError(f"network is one of {NETWORKS}, not {network!r}")
        return NetConfig(width=self.width, depth=self.depth, activation=self.activation, init=self.init,
                         norm=self.norm, residual=network != "plain")


@dataclass(frozen=True, eq=False)
class DepthProfile:
    """Per network of :data:`NETWORKS`: the standard deviation of h_l (l = 1 … D − 1, over examples and units),
    ‖∂𝓛/∂W_l‖ (l = 1 … D), the RMS over examples of ‖∂ℓ_i/∂x_i‖ at the input, and the initial loss 𝓛."""

    config: DepthProfileConfig
    act_std: Tensor  # networks × (D − 1)
    grad_norm: Tensor  # networks × D
    input_grad: Tensor  # networks
    loss: Tensor  # networks
    diverged_at: int | None = None
    diverged_run: str | None = None


def _measure(model: DeepMLP, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    acts: list[Tensor] = []
    hooks = [m.register_forward_hook(lambda _m, _i, out: acts.append(out.detach()))
             for m in (model.first, *model.blocks)]
    x = x.clone().requires_grad_(True)
    try:
        loss = F.cross_entropy(model(x), y)
        loss.backward()
    finally:
        for hook in hooks:
            hook.remove()
    std = torch.stack([a.std() for a in acts])
    grads = torch.stack([layer.weight.grad.norm() for layer in model.linears()])
    # 𝓛 is a mean over N examples, so ∂ℓ_i/∂x_i = N ∂𝓛/∂x_i and the RMS over i is √N ‖∂𝓛/∂X‖
    return std, grads, x.grad.norm() * math.sqrt(x.shape[0]), loss.detach()


def depth_profile(config: DepthProfileConfig = DepthProfileConfig(), seed: int = 0,
                  device: torch.device | str = "cpu") -> DepthProfile:
    """Forward and backward once through each network of :data:`NETWORKS` at initialization (batch
    normalization, if any, in training mode, as in the first step of training)."""
    split = digits_split(0, device=device)
    n = min(config.examples, split.x_train.shape[0])
    x, y = split.x_train[:n], split.y_train[:n]
    rows, bad = [], None
    for network in NETWORKS:
        if network == NETWORKS[2]:  # the residual network just measured, its branches zeroed: one build fewer
            model.zero_grad(set_to_none=True)
            zero_branches(model)
        else:
            model = build(config.net(network), seed, device)
        rows.append(_measure(model, x, y))
        if bad is None and not all(torch.isfinite(t).all() for t in rows[-1]):
            bad = network
    std, grads, inp, loss = (torch.stack([r[i] for r in rows]).cpu() for i in range(4))
    return DepthProfile(config, std, grads, inp, loss, diverged_at=None if bad is None else 0, diverged_run=bad)


def path_counts(blocks: int) -> Tensor:
    """The number of paths through ``blocks`` residual blocks that pass through 0, 1, … ``blocks`` branches:
    the binomial coefficients (they sum to 2^blocks)."""
    return torch.tensor([math.comb(blocks, k) for k in range(blocks + 1)], dtype=torch.float64)


@dataclass(frozen=True, eq=False)
class PathGradients:
    """The gradient ∂ℓ/∂h_1 split by path length (index: the number of branches a path passes through), mean over
    examples: ``total[m]`` is ‖the sum over all paths of length m‖; ``per_path[m]`` the mean norm of one sampled
    path's term (NaN where none was sampled); ``full`` ‖∂ℓ/∂h_1‖ by autograd, and ``counts`` :func:`path_counts`."""

    counts: Tensor
    total: Tensor
    per_path: Tensor
    full: float
    by_length: Tensor  # (D − 1) × examples × d: the summed terms themselves; they add up to ∂ℓ_i/∂h_1


def path_gradients(model: DeepMLP, x: Tensor, y: Tensor, samples: int = 4, seed: int = 0) -> PathGradients:
    """Multiply out Π_l (I + J_{F_l}) for each example of ``x`` (the model in evaluation mode) and group the
    2^(D−2) terms of ∂ℓ_i/∂h_1 by path length; ``samples`` random paths of each length give the per-path norm.
    With batch normalization, pass a trained model: before training its running statistics are 0 and 1."""
    if not model.config.residual:
        raise ValueError("paths are defined for a residual network: pass a model built with residual=True")
    model.eval()
    with torch.no_grad():
        trunk = [model.first(x)]
        for block in model.blocks:
            trunk.append(block(trunk[-1]))
    top = trunk[-1].clone().requires_grad_(True)
    F.cross_entropy(model.head(top), y, reduction="sum").backward()  # a sum: row i is ∂ℓ_i/∂h_{D−1}
    jac = [block_jacobians(branch(b), h).detach() for b, h in zip(model.blocks, trunk)]
    n = len(jac)
    terms = torch.zeros(n + 1, *top.shape, dtype=top.dtype, device=top.device)
    terms[0] = top.grad
    for j in reversed(jac):  # backward: a row vector meets the last block first
        terms[1:] = terms[1:] + torch.einsum("mni,nij->mnj", terms[:-1], j)
    h1 = trunk[0].clone().requires_grad_(True)
    h = h1
    for block in model.blocks:
        h = block(h)
    F.cross_entropy(model.head(h), y, reduction="sum").backward()
    g = generator(seed)
    per_path = torch.full((n + 1,), math.nan, dtype=torch.float64)
    for m in range(n + 1):
        norms = []
        for _ in range(samples if 0 < m < n else 1):
            chosen = torch.randperm(n, generator=g)[:m].sort(descending=True).values
            v = top.grad
            for i in chosen.tolist():
                v = torch.einsum("ni,nij->nj", v, jac[i])
            norms.append(v.norm(dim=1).mean())
        per_path[m] = torch.stack(norms).mean()
    return PathGradients(path_counts(n), terms.norm(dim=2).mean(1).double(), per_path,
                         float(h1.grad.norm(dim=1).mean()), terms)
