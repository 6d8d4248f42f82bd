"""Second derivatives by backpropagating twice: Hessian-vector products, sharpness, and 2/λ_max (Chapter 2).

A Hessian-vector product H u costs a small multiple of one gradient and never forms H: differentiate the
gradient's inner product with u (double backward), or push u forward through the gradient
function (``torch.func.jvp`` of ``torch.func.grad``). Power iteration on it finds the largest
eigenvalue λ_max of the Hessian, the *sharpness*; near a minimum the loss is close to a quadratic
with Hessian H, and gradient descent stays there only if η < 2/λ_max (Chapter 1's 2/L).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import torch
import torch.nn.functional as F
from torch.func import grad, jvp

from .data import breast_cancer
from .seeding import generator

__all__ = ["hvp", "hvp_forward_over_reverse", "power_iteration", "sharpness", "SmallNet", "small_net",
           "SharpnessConfig", "GDRun", "SharpnessResult", "sharpness_near_minimum"]

LossFn = Callable[[torch.Tensor], torch.Tensor]


def hvp(loss_fn: LossFn, w: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """H(w) u by double backward: the gradient of <∇f(w), u> with respect to w."""
    w = w.detach().requires_grad_(True)
    (g,) = torch.autograd.grad(loss_fn(w), w, create_graph=True)  # keep the graph of the gradient itself
    (hu,) = torch.autograd.grad(g @ u, w)
    return hu


def hvp_forward_over_reverse(loss_fn: LossFn, w: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """H(w) u as the directional derivative of the gradient along u: ``jvp(grad(f), (w,), (u,))``."""
    return jvp(grad(loss_fn), (w.detach(),), (u,))[1]


def power_iteration(loss_fn: LossFn, w: torch.Tensor, iters: int = 20,
                    seed: int = 0) -> tuple[list[float], torch.Tensor]:
    """Estimates of the Hessian's eigenvalue of largest size after each HVP, and the last unit vector."""
    u = torch.randn(w.shape, generator=generator(seed), dtype=w.dtype).to(w.device)
    u = u / u.norm()
    estimates = []
    for _ in range(iters):
        hu = hvp(loss_fn, w, u)
        estimates.append(float(u @ hu))  # the Rayleigh quotient of the current unit vector
        u = hu / hu.norm()
    return estimates, u


def sharpness(loss_fn: LossFn, w: torch.Tensor, iters: int = 50, seed: int = 0) -> float:
    """λ_max of the Hessian of ``loss_fn`` at ``w`` by power iteration (at a minimum: the largest eigenvalue)."""
    return power_iteration(loss_fn, w, iters, seed)[0][-1]


@dataclass(frozen=True, eq=False)
class SmallNet:
    """A one-hidden-layer tanh network on the breast-cancer data, as a function of one flat parameter vector.

    The loss is the mean logistic loss plus (l2/2)‖w‖², so that a minimum exists (the classes can be
    separated, and without the penalty the loss would keep falling as the weights grow).
    """

    x: torch.Tensor
    y: torch.Tensor
    hidden: int
    l2: float

    @property
    def n_params(self) -> int:
        return (self.x.shape[1] + 2) * self.hidden + 1

    def logits(self, w: torch.Tensor) -> torch.Tensor:
        d, h = self.x.shape[1], self.hidden
        W1, b1 = w[:h * d].view(h, d), w[h * d:h * d + h]
        W2, b2 = w[h * d + h:h * d + 2 * h], w[-1]
        return torch.tanh(self.x @ W1.T + b1) @ W2 + b2

    def loss(self, w: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
        """Logistic loss of the data (mean, or sum as ``reduction="sum"`` gives) plus the L2 penalty."""
        data = F.binary_cross_entropy_with_logits(self.logits(w), self.y, reduction=reduction)
        return data + 0.5 * self.l2 * (w * w).sum()

    def init(self, seed: int = 0) -> torch.Tensor:
        """Weights drawn N(0, 1/fan_in), biases zero."""
        g, d, h = generator(seed), self.x.shape[1], self.hidden
        w = torch.zeros(self.n_params, dtype=torch.float64)
        w[:h * d] = torch.randn(h * d, generator=g, dtype=torch.float64) / d ** 0.5
        w[h * d + h:h * d + 2 * h] = torch.randn(h, generator=g, dtype=torch.float64) / h ** 0.5
        return w.to(device=self.x.device, dtype=self.x.dtype)


def small_net(hidden: int = 8, l2: float = 1e-2, device: torch.device | str = "cpu") -> SmallNet:
    """The chapter's small network: 30 inputs, ``hidden`` tanh units, one logit (p = 32·hidden + 1)."""
    x, y = breast_cancer(device)
    return SmallNet(x, y, hidden, l2)


@dataclass(frozen=True)
class SharpnessConfig:
    """Gradient descent started a little off the minimum along the sharpest direction, at factors of 2/λ_max."""

    hidden: int = 8
    l2: float = 1e-2
    power_iters: int = 20
    factors: tuple[float, ...] = (0.9, 1.1)
    steps: int = 300
    kick: float = 1e-4  # how far off the minimum each run starts


@dataclass
class GDRun:
    """One gradient-descent run: its learning rate, and per step the signed offset from w* along the top eigenvector."""

    lr: float
    factor: float
    top_component: list[float] = field(default_factory=list)
    excess_loss: list[float] = field(default_factory=list)  # f(w_k) - f(w*)
    final_grad_norm: float = float("nan")


@dataclass
class SharpnessResult:
    """The minimum w*, the power-iteration estimates of λ_max, and the gradient-descent runs near w*."""

    config: SharpnessConfig
    net: SmallNet
    w_star: torch.Tensor
    loss_star: float
    grad_norm_star: float
    estimates: list[float]
    top_vector: torch.Tensor
    runs: list[GDRun]

    @property
    def sharpness(self) -> float:
        return self.estimates[-1]


def _minimize(net: SmallNet, w0: torch.Tensor) -> torch.Tensor:
    w = w0.clone().requires_grad_(True)
    opt = torch.optim.LBFGS([w], lr=1.0, max_iter=300, tolerance_grad=1e-10, tolerance_change=0.0, history_size=20,
                            line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = net.loss(w)
        loss.backward()
        return loss

    opt.step(closure)
    return w.detach()


def sharpness_near_minimum(cfg: SharpnessConfig, seed: int = 0, device: torch.device | str = "cpu",
                           progress: Callable[[float], None] | None = None) -> SharpnessResult:
    """Train to a minimum (L-BFGS), measure λ_max by power iteration, then run GD from w* + kick·v at each factor."""
    net = small_net(cfg.hidden, cfg.l2, device)
    w_star = _minimize(net, net.init(seed))
    f_star = float(net.loss(w_star))
    gradient = grad(net.loss)
    estimates, v = power_iteration(net.loss, w_star, cfg.power_iters, seed)
    lam = estimates[-1]
    runs = []
    for i, factor in enumerate(cfg.factors):
        run = GDRun(factor * 2 / lam, factor)
        w = w_star + cfg.kick * v
        for _ in range(cfg.steps):
            w = w - run.lr * gradient(w)
            run.top_component.append(float((w - w_star) @ v))
            run.excess_loss.append(float(net.loss(w)) - f_star)
        run.final_grad_norm = float(gradient(w).norm())
        runs.append(run)
        if progress is not None:
            progress((i + 1) / len(cfg.factors))
    return SharpnessResult(cfg, net, w_star, f_star, float(gradient(w_star).norm()), estimates, v, runs)

