"""The backward pass as a product of per-layer factors (Chapter 5, Experiment 1), measured on the digits.

In a plain MLP, z_l = W_l h_{l−1} + b_l and h_l = φ(z_l), the adjoint of the layer below is

    h̄_{l−1} = W_lᵀ (φ'(z_l) ⊙ h̄_l),

so the gradient reaching an early layer is the gradient at the top multiplied, layer by layer, by two factors:
what the activation's derivative keeps, ‖φ'(z_l) ⊙ h̄_l‖ / ‖h̄_l‖ (at most max φ' = 0.25 for the sigmoid, 1 for
tanh and ReLU), and what the weights do to that vector, ‖W_lᵀ u_l‖ / ‖u_l‖ with u_l = φ'(z_l) ⊙ h̄_l (about
√(d_l σ_w²) for a random W_l, anything for a trained one). The story that counts only the activation's
derivative (0.25 per sigmoid layer) misses the second factor.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from ..batched_mlp import digits_split
from .nets import NetConfig, build

__all__ = ["FactorsConfig", "Factors", "MAX_SLOPE", "slope", "adjoints_by_hand", "layer_factors"]

MAX_SLOPE = {"sigmoid": 0.25, "tanh": 1.0, "relu": 1.0, "leaky_relu": 1.0, "linear": 1.0}


def slope(activation: str, z: Tensor) -> Tensor:
    """φ'(z) in closed form: sigmoid(z)(1 − sigmoid(z)), 1 − tanh²(z), and 1 where z > 0 (else 0) for ReLU."""
    if activation == "sigmoid":
        s = torch.sigmoid(z)
        return s * (1 - s)
    if activation == "tanh":
        return 1 - torch.tanh(z) ** 2
    if activation == "relu":
        return (z > 0).to(z.dtype)  # PyTorch's convention at the kink: slope 0 at z = 0
    if activation == "linear":
        return torch.ones_like(z)
    raise ValueError(f"no closed-form slope here for {activation!r}")


def adjoints_by_hand(weights: list[Tensor], biases: list[Tensor], activation: str, x: Tensor,
                     y: Tensor) -> list[Tensor]:
    """h̄_l = ∂𝓛/∂h_l for l = 1 … D − 1 of a plain MLP with mean cross-entropy, by the recursion
    h̄_{l−1} = W_lᵀ (φ'(z_l) ⊙ h̄_l): the backward pass written out, without autograd (rows are examples)."""
    zs, h = [], x
    for W, b in zip(weights[:-1], biases[:-1]):
        zs.append(h @ W.T + b)
        h = {"sigmoid": torch.sigmoid, "tanh": torch.tanh, "relu": torch.relu, "linear": lambda v: v}[activation](zs[-1])
    logits = h @ weights[-1].T + biases[-1]
    top = (torch.softmax(logits, 1) - torch.nn.functional.one_hot(y, logits.shape[1])) / len(y)  # ∂𝓛/∂logits
    adjoints = [top @ weights[-1]]  # h̄_{D−1}
    for W, z in zip(reversed(weights[1:-1]), reversed(zs[1:])):  # layers D − 1 … 2
        adjoints.append((slope(activation, z) * adjoints[-1]) @ W)
    return adjoints[::-1]


@dataclass(frozen=True)
class FactorsConfig:
    """A plain MLP on the digits (64 inputs, 10 classes) at initialization, and the batch it is measured on."""

    depth: int = 20
    width: int = 64
    activation: str = "sigmoid"
    init: str = "pytorch"
    gain: float = 1.0
    batch: int = 256
    seed: int = 0

    def __post_init__(self):
        if self.activation not in MAX_SLOPE:
            raise ValueError(f"activation is one of {tuple(MAX_SLOPE)} here, not {self.activation!r}")
        if self.batch < 1:
            raise ValueError("the batch needs at least one example")
        self.net()

    def net(self) -> NetConfig:
        return NetConfig(d_in=64, width=self.width, d_out=10, depth=self.depth, activation=self.activation,
                         init=self.init, gain=self.gain)


@dataclass(frozen=True, eq=False)
class Factors:
    """Per hidden layer l = 1 … D − 1 (index l − 1): the adjoint's norm ‖h̄_l‖, the two factors that carry it to
    h̄_{l−1} (NaN for l = 1, whose factors lead to the input), and each layer's weight gradient ‖∇_{W_l} 𝓛‖ for
    l = 1 … D. Norms are over the whole batch."""

    config: FactorsConfig
    adjoint_norm: Tensor
    activation_factor: Tensor
    weight_factor: Tensor
    weight_grad_norm: Tensor
    loss: float

    @property
    def max_slope(self) -> float:
        return MAX_SLOPE[self.config.activation]

    def activation_only(self) -> Tensor:
        """The weight-gradient norms the activation-only story predicts: the top layer's, times max φ' per layer."""
        D = self.config.depth
        top = self.weight_grad_norm[-2]  # ∇W_{D−1}: the last layer behind an activation
        powers = torch.arange(D - 2, -1, -1, dtype=torch.float64)  # layer l is D − 1 − l layers below
        return torch.cat([top * self.max_slope ** powers, self.weight_grad_norm[-1:]])


def layer_factors(config: FactorsConfig = FactorsConfig(), device: torch.device | str = "cpu") -> Factors:
    """Forward one batch of the digits, backpropagate the cross-entropy, and split each layer's factor in two."""
    c = config
    model = build(c.net(), seed=c.seed, device=device)
    split = digits_split(0)
    g = torch.Generator().manual_seed(c.seed + 1)
    idx = torch.randperm(split.x_train.shape[0], generator=g)[:c.batch]
    x, y = split.x_train[idx].to(device), split.y_train[idx].to(device)
    linears = model.linears()
    act = model.first[2]  # the plain network's activation module (nets.DeepMLP)
    zs, hs, h = [], [], x
    for lin in linears[:-1]:
        z = lin(h)
        h = act(z)
        z.retain_grad()
        h.retain_grad()
        zs.append(z)
        hs.append(h)
    loss = F.cross_entropy(linears[-1](h), y)
    loss.backward()
    adj = torch.stack([hl.grad.double().norm() for hl in hs])
    a_f = torch.full((c.depth - 1,), float("nan"), dtype=torch.float64)
    w_f = a_f.clone()
    for i in range(1, c.depth - 1):  # layer l = i + 1 carries h̄_l down to h̄_{l−1} = hs[i − 1].grad
        u = zs[i].grad.double()  # φ'(z_l) ⊙ h̄_l, as autograd computed it
        a_f[i] = u.norm() / adj[i]
        w_f[i] = hs[i - 1].grad.double().norm() / u.norm()
    wg = torch.stack([lin.weight.grad.double().norm() for lin in linears])
    return Factors(c, adj.cpu(), a_f, w_f, wg.cpu(), float(loss.detach()))
