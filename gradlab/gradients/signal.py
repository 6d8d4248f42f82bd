"""Signal propagation at initialization (Chapter 5, Experiment 2): how the size of the activations and of the
gradients changes from layer to layer of a deep plain MLP, measured and against the variance recursions.

For a layer z_l = W_l h_{l−1} + b_l, h_l = φ(z_l), with independent weights of variance σ_w² and biases of
variance σ_b², and a wide layer (each z_l close to Gaussian, the mean-field approximation; Poole et al. 2016,
Schoenholz et al. 2017), the second moment q_l = E[z_l²] of a pre-activation obeys

    q_l = σ_w² d_{l−1} E[φ(z_{l−1})²] + σ_b²,      z_{l−1} ~ N(0, q_{l−1}),

and, with the gradient-independence assumption, the adjoint h̄ = ∂𝓛/∂h of the layer below obeys

    E[h̄_{l−1}²] = σ_w² d_l E[φ'(z_l)²] E[h̄_l²].

For ReLU, E[φ(z)²] = q/2 and E[φ'(z)²] = 1/2: σ_w² = 2/d keeps both constant (He et al. 2015). For an activation
that is the identity near 0 (tanh), σ_w² = 1/d does; Glorot & Bengio (2010) compromise between the forward
(1/d_{l−1}) and the backward (1/d_l) condition with σ_w² = 2/(d_{l−1} + d_l).
The network has d_0 = d_l = width everywhere, a unit-Gaussian input, and backpropagates 𝓛 = Σ r·ŷ / B for a
fixed unit-Gaussian r at the output, so that every layer's adjoint starts at the same scale.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from ..batched_mlp import digits_split
from .nets import NetConfig, build, make_activation, weight_std

__all__ = ["SignalConfig", "Signal", "gaussian_moments", "predict", "propagate", "input_similarity"]

# E[f(ξ)] for ξ ~ N(0, 1) as Gauss–Legendre sums on [−12, 0] and [0, 12] separately: the ReLU family has a kink
# (its derivative a jump) at 0, which a rule across 0 (Gauss–Hermite) integrates badly (E[relu'(ξ)²] came out
# 0.438, not 1/2); on each side the integrands are smooth.
_t, _w = np.polynomial.legendre.leggauss(160)
_half = 6.0 * (_t + 1.0)
_NODES = np.concatenate([-_half[::-1], _half])
_WEIGHTS = np.concatenate([_w[::-1], _w]) * 6.0 * np.exp(-_NODES ** 2 / 2) / math.sqrt(2 * math.pi)


@dataclass(frozen=True)
class SignalConfig:
    """A plain MLP of ``depth`` layers, all ``width`` wide, at initialization; a batch of ``batch`` inputs."""

    depth: int = 50
    width: int = 256
    activation: str = "tanh"
    init: str = "xavier"
    gain: float = 1.0
    batch: int = 256
    negative_slope: float = 0.01
    seed: int = 0

    def __post_init__(self):
        if self.batch < 2:
            raise ValueError("a batch of at least 2 examples is needed to measure a standard deviation")
        self.net()  # validates depth, width, activation and init with NetConfig's own messages

    def net(self) -> NetConfig:
        return NetConfig(d_in=self.width, width=self.width, d_out=self.width, depth=self.depth,
                         activation=self.activation, init=self.init, gain=self.gain,
                         negative_slope=self.negative_slope)


@dataclass(frozen=True, eq=False)
class Signal:
    """Per hidden layer l = 1 … D − 1: measured and predicted activation std and gradient size.

    ``act_std[l−1]`` is the standard deviation of h_l over the batch and the units; ``grad_rms[l−1]`` the root mean
    square of ∂𝓛/∂h_l (times B, so that it does not depend on the batch size); ``predicted_*`` the same from the
    recursions (NaN where the initialization has no entry-wise variance). ``overflow_layer`` is the first layer
    whose activations are not finite in float32 (everything above it, and every gradient, is then lost), else
    None; ``grad_overflow_layer`` the top-most layer whose gradient is not finite when the forward pass was.
    """

    config: SignalConfig
    act_std: Tensor
    grad_rms: Tensor
    predicted_act_std: Tensor
    predicted_grad_rms: Tensor
    overflow_layer: int | None
    grad_overflow_layer: int | None = None

    @property
    def layers(self) -> np.ndarray:
        return np.arange(1, self.config.depth)


def gaussian_moments(activation: str, q: float, negative_slope: float = 0.01) -> tuple[float, float, float]:
    """E[φ(z)], E[φ(z)²] and E[φ'(z)²] for z ~ N(0, q), by Gauss–Legendre quadrature on each side of 0, float64."""
    z = torch.tensor(_NODES * math.sqrt(max(q, 0.0)), dtype=torch.float64, requires_grad=True)
    y = make_activation(activation, negative_slope)(z)
    (dy,) = torch.autograd.grad(y.sum(), z)
    w, y = torch.from_numpy(_WEIGHTS), y.detach()
    return float((w * y).sum()), float((w * y * y).sum()), float((w * dy * dy).sum())


def predict(config: SignalConfig) -> tuple[Tensor, Tensor]:
    """The recursions' activation std and gradient RMS per hidden layer (NaN for the orthogonal init)."""
    c, d, n = config, config.width, config.depth - 1
    std = weight_std(c.net(), d, d)
    if std is None:
        nan = torch.full((n,), math.nan, dtype=torch.float64)
        return nan, nan.clone()
    var_w = std ** 2
    var_b = 1 / (3 * d) if c.init == "pytorch" else 0.0  # nn.Linear's bias, U(±1/√d_in); zero otherwise
    q, second, act, slopes = 1.0, 1.0, [], []  # the input: unit Gaussian, E[x²] = 1
    for _ in range(n):
        q = var_w * d * second + var_b
        mean, second, slope = gaussian_moments(c.activation, q, c.negative_slope)
        act.append(math.sqrt(max(second - mean ** 2, 0.0)))
        slopes.append(slope)
    grad = [math.sqrt(var_w * d)]  # h̄_{D−1} = W_Dᵀ r: E[h̄²] = σ_w² d E[r²]
    for slope in reversed(slopes[1:]):  # h̄_{l−1} from h̄_l through layer l's φ' and W_l
        grad.append(grad[-1] * math.sqrt(var_w * d * slope))
    return torch.tensor(act, dtype=torch.float64), torch.tensor(grad[::-1], dtype=torch.float64)


def propagate(config: SignalConfig = SignalConfig(), device: torch.device | str = "cpu") -> Signal:
    """Build the network, push one batch forward and 𝓛 back, and measure every hidden layer."""
    c = config
    model = build(c.net(), seed=c.seed, device=device)
    g = torch.Generator(device="cpu").manual_seed(c.seed + 1)
    x = torch.randn(c.batch, c.width, generator=g).to(device)
    r = torch.randn(c.batch, c.width, generator=g).to(device)
    hs = [model.first(x)]
    for block in model.blocks:
        hs.append(block(hs[-1]))
    for h in hs:
        h.retain_grad()
    out = model.head(hs[-1])
    ((out * r).sum() / c.batch).backward()
    act = torch.stack([h.detach().double().std() for h in hs]).cpu()
    grad = torch.stack([(h.grad.double() * c.batch).pow(2).mean().sqrt() for h in hs]).cpu()
    forward_bad = [not bool(torch.isfinite(h).all()) for h in hs]
    overflow = forward_bad.index(True) + 1 if any(forward_bad) else None
    backward_bad = [not bool(torch.isfinite(h.grad).all()) for h in hs]
    grad_overflow = (len(hs) - backward_bad[::-1].index(True)) if overflow is None and any(backward_bad) else None
    p_act, p_grad = predict(c)
    return Signal(c, act, grad, p_act, p_grad, overflow, grad_overflow)


def input_similarity(config: NetConfig, examples: int = 256, seed: int = 0) -> float:
    """The mean cosine between the last hidden layer's activations of two different digits, at initialization:
    near 1 when depth has squeezed out the differences between inputs (Chapter 5, Experiment 3)."""
    if examples < 2:
        raise ValueError("comparing inputs needs at least 2 examples")
    model = build(config, seed=seed)
    x = digits_split(0).x_train[:examples]
    with torch.no_grad():
        h = model.first(x)
        for block in model.blocks:
            h = block(h)
        unit = torch.nn.functional.normalize(h.double(), dim=1)
        cos = unit @ unit.T
    off = ~torch.eye(len(x), dtype=torch.bool)
    return float(cos[off].mean())
