"""Activations (Chapter 5, Experiment 9): why a network needs a nonlinearity, and what each activation's derivative
φ′ does to a gradient that passes through it.

A stack of linear layers is one linear layer: W_D(…(W_1 x + b_1)…) + b_D = W′x + b′ with W′ = W_D…W_1. The
activations are PyTorch's (``torch.nn.functional``); their derivatives come from autograd, and the closed forms
the chapter prints are here too, so that a test can hold one against the other. For z ~ N(0, σ²), E[φ′(z)] and
E[φ′(z)²] are the per-layer factors of the chapter's variance recursions.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from ..batched_mlp import DigitsSplit, digits_split
from ..seeding import generator
from .nets import DeepMLP, NetConfig, build

__all__ = ["NAMES", "LABELS", "activation", "derivative", "closed_form_derivative", "gaussian_mean",
           "ActivationStats", "activation_stats", "ActivationCurves", "activation_curves", "compose_linear",
           "CollapseConfig", "Collapse", "collapse",
           "DigitsComparisonConfig", "DigitsComparison", "compare_on_digits"]

NAMES = ("relu", "leaky_relu", "gelu", "gelu_tanh", "silu", "sigmoid", "tanh")
LABELS = {"relu": "ReLU", "leaky_relu": "Leaky ReLU", "gelu": "GELU", "gelu_tanh": "GELU (tanh approximation)",
          "silu": "SiLU (Swish)", "sigmoid": "sigmoid", "tanh": "tanh"}
GELU_TANH_C = math.sqrt(2 / math.pi)  # GELU's tanh approximation: x/2 (1 + tanh(√(2/π)(x + 0.044715 x³)))


def _check(name: str, omega: float) -> None:
    if name not in NAMES:
        raise ValueError(f"activation is one of {NAMES}, not {name!r}")
    if not 0 <= omega < 1:
        raise ValueError(f"Leaky ReLU's slope ω lies in [0, 1), got {omega}")


def activation(name: str, omega: float = 0.01) -> Callable[[torch.Tensor], torch.Tensor]:
    """φ as PyTorch computes it; ``omega`` is Leaky ReLU's negative slope ω."""
    _check(name, omega)
    table = {"relu": F.relu, "leaky_relu": lambda x: F.leaky_relu(x, omega), "gelu": F.gelu,
             "gelu_tanh": lambda x: F.gelu(x, approximate="tanh"), "silu": F.silu, "sigmoid": torch.sigmoid,
             "tanh": torch.tanh}
    return table[name]


def derivative(name: str, x: torch.Tensor, omega: float = 0.01) -> torch.Tensor:
    """φ′(x) by autograd (at ReLU's kink, PyTorch's choice: φ′(0) = 0 for ReLU, ω for Leaky ReLU)."""
    x = x.detach().clone().requires_grad_(True)
    (d,) = torch.autograd.grad(activation(name, omega)(x).sum(), x)
    return d


def closed_form_derivative(name: str, x: torch.Tensor, omega: float = 0.01) -> torch.Tensor:
    """φ′(x) from its formula: sigmoid′ = sigmoid(1 − sigmoid), tanh′ = 1 − tanh², GELU′ = Φ(x) + xΦ′(x) (Φ the
    standard normal distribution function, Φ′ its density), SiLU′ = sigmoid(x)(1 + x(1 − sigmoid(x))), and the
    tanh approximation's own derivative."""
    _check(name, omega)
    if name == "relu":
        return (x > 0).to(x.dtype)
    if name == "leaky_relu":
        return torch.where(x > 0, torch.ones_like(x), torch.full_like(x, omega))
    if name == "gelu":
        return torch.special.ndtr(x) + x * torch.exp(-x * x / 2) / math.sqrt(2 * math.pi)
    if name == "gelu_tanh":
        t = torch.tanh(GELU_TANH_C * (x + 0.044715 * x ** 3))
        return 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * GELU_TANH_C * (1 + 3 * 0.044715 * x * x)
    s = torch.sigmoid(x)
    if name == "silu":
        return s * (1 + x * (1 - s))
    if name == "sigmoid":
        return s * (1 - s)
    return 1 - torch.tanh(x) ** 2


def gaussian_mean(fn: Callable[[torch.Tensor], torch.Tensor], variance: float = 1.0, nodes: int = 200) -> float:
    """E[fn(z)] for z ~ N(0, σ²), by Gauss–Legendre quadrature on [−12σ, 0] and [0, 12σ] in float64: split at
    0 so that the kinks of ReLU and Leaky ReLU fall on an end, where the rule stays exact."""
    if not variance > 0:
        raise ValueError(f"the variance σ² must be positive, got {variance}")
    t, w = np.polynomial.legendre.leggauss(nodes)
    half = 12 * math.sqrt(variance)
    x = torch.tensor(np.concatenate([(t - 1) * half / 2, (t + 1) * half / 2]), dtype=torch.float64)
    weights = torch.tensor(np.concatenate([w, w]) * half / 2, dtype=torch.float64)
    density = torch.exp(-x * x / (2 * variance)) / math.sqrt(2 * math.pi * variance)
    return float((weights * density * fn(x)).sum())


@dataclass(frozen=True)
class ActivationStats:
    """φ′'s largest and smallest value and where (None where it is reached on a whole half-line), φ's minimum
    where it has one inside (GELU, SiLU), and E[φ′(z)], E[φ′(z)²], E[φ(z)²] for z ~ N(0, σ²)."""

    name: str
    omega: float
    variance: float
    d_max: float
    d_max_at: float | None
    d_min: float
    d_min_at: float | None
    phi_min: float | None
    phi_min_at: float | None
    mean_d: float
    mean_d_sq: float
    mean_phi_sq: float


def _extremum(x: torch.Tensor, y: torch.Tensor, largest: bool) -> tuple[float, float | None]:
    """The extreme value of y on the grid x, refined by a parabola through the grid point and its neighbours;
    the place is None unless both neighbours are strictly worse (a plateau, or an end of the grid: the value is
    then the grid's extreme, not an extremum)."""
    i = int(y.argmax() if largest else y.argmin())
    if i in (0, len(y) - 1):
        return float(y[i]), None
    a, b, c = float(y[i - 1]), float(y[i]), float(y[i + 1])
    if (largest and not (a < b > c)) or (not largest and not (a > b < c)):
        return b, None
    shift = 0.5 * (a - c) / (a - 2 * b + c)
    return b - 0.25 * (a - c) * shift, float(x[i]) + shift * float(x[1] - x[0])


def activation_stats(name: str, omega: float = 0.01, variance: float = 1.0, points: int = 40_001) -> ActivationStats:
    """The numbers of one activation the chapter quotes, measured on a grid over [−10, 10] and by quadrature."""
    x = torch.linspace(-10, 10, points, dtype=torch.float64)
    d = derivative(name, x, omega)
    phi = activation(name, omega)(x)
    d_max, d_max_at = _extremum(x, d, True)
    d_min, d_min_at = _extremum(x, d, False)
    phi_min, phi_min_at = _extremum(x, phi, False)
    if phi_min_at is None:
        phi_min = None
    return ActivationStats(name, omega, variance, d_max, d_max_at, d_min, d_min_at, phi_min, phi_min_at,
                           gaussian_mean(lambda z: derivative(name, z, omega), variance),
                           gaussian_mean(lambda z: derivative(name, z, omega) ** 2, variance),
                           gaussian_mean(lambda z: activation(name, omega)(z) ** 2, variance))


@dataclass(frozen=True, eq=False)
class ActivationCurves:
    """φ and φ′ on [−5, 5], the numbers of :class:`ActivationStats`, and φ′(z) at samples z ~ N(0, σ²)."""

    stats: ActivationStats
    x: torch.Tensor
    phi: torch.Tensor
    d: torch.Tensor
    samples: torch.Tensor  # φ′(z)


def activation_curves(name: str, omega: float = 0.01, variance: float = 1.0, samples: int = 20_000,
                      seed: int = 0) -> ActivationCurves:
    """What the chapter's activation widget draws (Chapter 5)."""
    stats = activation_stats(name, omega, variance)
    x = torch.linspace(-5, 5, 1001, dtype=torch.float64)
    z = torch.randn(samples, generator=generator(seed), dtype=torch.float64) * math.sqrt(variance)
    return ActivationCurves(stats, x, activation(name, omega)(x), derivative(name, x, omega),
                            derivative(name, z, omega))


def compose_linear(model: DeepMLP) -> tuple[torch.Tensor, torch.Tensor]:
    """W′ and b′ of a network without activation or normalization: plain layers compose as W_l h + b_l, residual
    ones as (I + W_l) h + b_l; returns (W′, b′) in the model's dtype."""
    c = model.config
    if c.norm != "none":
        raise ValueError("a normalization layer divides by statistics of the batch: compose a network without one")
    layers = model.linears()
    w, b = layers[0].weight.detach(), layers[0].bias.detach()
    for i, layer in enumerate(layers[1:], start=1):
        lw, lb = layer.weight.detach(), layer.bias.detach()
        if c.residual and i < len(layers) - 1:
            lw = lw + torch.eye(lw.shape[0], dtype=lw.dtype, device=lw.device)
        w, b = lw @ w, lw @ b + lb
    return w, b


@dataclass(frozen=True)
class CollapseConfig:
    """A network from :mod:`.nets`, built in float64 from ``seed``, run on the digits' training inputs."""

    net: NetConfig = NetConfig(depth=6, activation="linear")
    seed: int = 0

    def __post_init__(self):
        if self.net.norm != "none":
            raise ValueError("the collapse is about activations: use norm 'none'")


@dataclass(frozen=True, eq=False)
class Collapse:
    """``composed_gap``: max |f(x) − (W′x + b′)| over the inputs, relative to max |f(x)|, with W′ the product of
    the network's own weights; ``affine_gap``: ‖f(X) − best affine fit‖ / ‖f(X) − mean‖, by least squares
    (what no single linear layer, however chosen, can reproduce)."""

    config: CollapseConfig
    weight: torch.Tensor
    bias: torch.Tensor
    composed_gap: float
    affine_gap: float


def collapse(config: CollapseConfig = CollapseConfig(), split: DigitsSplit | None = None) -> Collapse:
    """Compare the network with the single layer its weights multiply into, and with the best single layer."""
    split = split if split is not None else digits_split(0)
    model = build(config.net, config.seed, dtype=torch.float64)
    x = split.x_train.double()
    with torch.no_grad():
        y = model(x)
    w, b = compose_linear(model)
    composed = float((y - (x @ w.T + b)).abs().max() / y.abs().max())
    design = torch.cat([x, torch.ones(x.shape[0], 1, dtype=x.dtype)], 1)
    fit = design @ torch.linalg.lstsq(design, y, driver="gelsd").solution  # 4 pixels are constant: rank 61
    affine = float((y - fit).norm() / (y - y.mean(0)).norm())
    return Collapse(config, w, b, composed, affine)


@dataclass(frozen=True)
class DigitsComparisonConfig:
    """Each activation in a D-layer MLP with He initialization, trained by Adam on the digits, ``seeds`` times."""

    activations: tuple[str, ...] = ("relu", "leaky_relu", "gelu", "silu", "tanh", "sigmoid")
    depth: int = 10
    width: int = 64
    init: str = "he"
    epochs: int = 10
    batch_size: int = 64
    lr: float = 1e-3
    seeds: int = 3

    def __post_init__(self):
        bad = [a for a in self.activations if a not in ("relu", "leaky_relu", "gelu", "silu", "tanh", "sigmoid")]
        if bad or not self.activations:
            raise ValueError(f"activations must be names that gradlab.gradients.nets builds, not {bad}")
        if min(self.epochs, self.batch_size, self.seeds) < 1 or self.lr <= 0:
            raise ValueError("epochs, batch_size and seeds must be ≥ 1 and the learning rate positive")
        NetConfig(depth=self.depth, width=self.width, init=self.init)  # its own checks


@dataclass(frozen=True, eq=False)
class DigitsComparison:
    """Final validation loss and accuracy, (activations, seeds); NaN where a run diverged."""

    config: DigitsComparisonConfig
    val_loss: torch.Tensor
    val_acc: torch.Tensor
    diverged_at: int | None = None
    diverged_run: str | None = None


def compare_on_digits(config: DigitsComparisonConfig = DigitsComparisonConfig(), device: torch.device | str = "cpu",
                      split: DigitsSplit | None = None,
                      progress: Callable[[float], None] | None = None) -> DigitsComparison:
    """Train every (activation, seed) pair; each seed draws the same mini-batches for every activation."""
    split = split if split is not None else digits_split(0, device=device)
    c = config
    shape = (len(c.activations), c.seeds)
    loss, acc = torch.full(shape, math.nan), torch.full(shape, math.nan)
    first = None
    n = split.x_train.shape[0]
    for i, name in enumerate(c.activations):
        for s in range(c.seeds):
            model = build(NetConfig(depth=c.depth, width=c.width, activation=name, init=c.init), s, device)
            opt = torch.optim.Adam(model.parameters(), lr=c.lr)
            g, k, ok = generator(s), 0, True
            for _ in range(c.epochs):
                for idx in torch.randperm(n, generator=g).split(c.batch_size):
                    batch_loss = F.cross_entropy(model(split.x_train[idx]), split.y_train[idx])
                    if not torch.isfinite(batch_loss):
                        ok = False
                        first = first or (k, f"{name}, seed {s}")
                        break
                    opt.zero_grad()
                    batch_loss.backward()
                    opt.step()
                    k += 1
                if not ok:
                    break
            if ok:
                with torch.no_grad():
                    out = model(split.x_val)
                loss[i, s] = float(F.cross_entropy(out, split.y_val))
                acc[i, s] = float((out.argmax(1) == split.y_val).float().mean())
            if progress is not None:
                progress((i * c.seeds + s + 1) / (len(c.activations) * c.seeds))
    return DigitsComparison(c, loss, acc, diverged_at=first and first[0], diverged_run=first and first[1])
