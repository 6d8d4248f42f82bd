"""The deep networks of Chapter 5 (and 6, 7): an MLP of any depth, activation, initialization, normalization,
plain or residual, built from ``torch.nn`` layers so that hooks, ``torch.optim`` and the diagnostics see an
ordinary ``nn.Module``.

Depth D counts the layers with weights (book/notation.md): an input layer ``d_0 → width``, D − 2 hidden
layers ``width → width`` and an output layer ``width → d_out``.

- plain: h_1 = φ(N(W_1 x)), h_l = φ(N(W_l h_{l−1})) for l = 2 … D − 1, output W_D h_{D−1};
- residual (the pre-activation form of He et al. 2016, "Identity mappings in deep residual networks"): the
  first layer is linear, h_1 = W_1 x, each hidden layer adds a branch to the trunk, h_l = h_{l−1} + W_l φ(N(h_{l−1})),
  and the output is W_D φ(N(h_{D−1})).

N is batch, layer or group normalization (``groups`` groups of the width's features) or nothing. Every linear
layer has a bias.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

__all__ = ["ACTIVATIONS", "INITS", "NORMS", "NetConfig", "Block", "DeepMLP", "make_activation", "init_weights",
           "weight_std", "build"]

ACTIVATIONS = ("sigmoid", "tanh", "relu", "leaky_relu", "gelu", "silu", "linear")
# "pytorch": nn.Linear's own default (kaiming_uniform_ with a = √5: U(±1/√d_in), weight variance 1/(3 d_in));
# "small" and "large": U(±0.01) and U(±2), the cards' examples; the rest as torch.nn.init defines them.
INITS = ("pytorch", "small", "large", "xavier", "he", "orthogonal")
NORMS = ("none", "batch", "layer", "group")


def make_activation(name: str, negative_slope: float = 0.01) -> nn.Module:
    """The ``torch.nn`` module of an activation by name; ``negative_slope`` is Leaky ReLU's ω."""
    table = {"sigmoid": nn.Sigmoid, "tanh": nn.Tanh, "relu": nn.ReLU, "gelu": nn.GELU, "silu": nn.SiLU,
             "linear": nn.Identity}
    if name == "leaky_relu":
        return nn.LeakyReLU(negative_slope)
    if name not in table:
        raise ValueError(f"activation is one of {ACTIVATIONS}, not {name!r}")
    return table[name]()


@dataclass(frozen=True)
class NetConfig:
    """An MLP: sizes, depth D, activation φ, initialization and its gain, normalization, plain or residual."""

    d_in: int = 64
    width: int = 64
    d_out: int = 10
    depth: int = 5
    activation: str = "relu"
    init: str = "pytorch"
    gain: float = 1.0  # multiplies the initializer's standard deviation (the named schemes' own gain included)
    norm: str = "none"
    residual: bool = False
    negative_slope: float = 0.01  # Leaky ReLU's ω
    groups: int = 4  # group normalization's number of groups (norm="group"); it must divide the width

    def __post_init__(self):
        if self.depth < 2:
            raise ValueError(f"depth counts the layers with weights, input and output included: at least 2, "
                             f"got {self.depth}")
        if min(self.d_in, self.width, self.d_out) < 1:
            raise ValueError("every layer needs at least one unit")
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"activation is one of {ACTIVATIONS}, not {self.activation!r}")
        if self.init not in INITS:
            raise ValueError(f"init is one of {INITS}, not {self.init!r}")
        if self.norm not in NORMS:
            raise ValueError(f"norm is one of {NORMS}, not {self.norm!r}")
        if self.norm == "group" and (self.groups < 1 or self.width % self.groups):
            raise ValueError(f"group normalization's groups must divide the width {self.width}, got {self.groups}")
        if not (self.gain > 0 and math.isfinite(self.gain)):
            raise ValueError(f"gain must be a positive number, got {self.gain}")


class Block(nn.Module):
    """One hidden layer: ``linear``, then ``norm`` and ``act``; plain φ(N(W h)) or residual h + W φ(N(h))."""

    def __init__(self, d: int, config: NetConfig):
        super().__init__()
        self.residual = config.residual
        self.linear = nn.Linear(d, d)
        self.norm = _norm(config.norm, d, config.groups)
        self.act = make_activation(config.activation, config.negative_slope)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        if self.residual:
            return h + self.linear(self.act(self.norm(h)))
        return self.act(self.norm(self.linear(h)))


class DeepMLP(nn.Module):
    """``first`` (input layer), ``blocks`` (D − 2 :class:`Block`), ``head`` (output layer); see the module doc."""

    def __init__(self, config: NetConfig):
        super().__init__()
        self.config = config
        c = config
        # registered in the order they run, so that modules(), hooks' records and linears() go input to output
        if c.residual:
            self.first = nn.Linear(c.d_in, c.width)
        else:
            self.first = nn.Sequential(nn.Linear(c.d_in, c.width), _norm(c.norm, c.width, c.groups),
                                       make_activation(c.activation, c.negative_slope))
        self.blocks = nn.ModuleList(Block(c.width, c) for _ in range(c.depth - 2))
        if c.residual:
            self.head = nn.Sequential(_norm(c.norm, c.width, c.groups), make_activation(c.activation, c.negative_slope),
                                      nn.Linear(c.width, c.d_out))
        else:
            self.head = nn.Linear(c.width, c.d_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.first(x)
        for block in self.blocks:
            h = block(h)
        return self.head(h)

    def linears(self) -> list[nn.Linear]:
        """The D linear layers, input to output."""
        return [m for m in self.modules() if isinstance(m, nn.Linear)]


def _norm(kind: str, d: int, groups: int = 4) -> nn.Module:
    if kind == "batch":
        return nn.BatchNorm1d(d)
    if kind == "layer":
        return nn.LayerNorm(d)
    if kind == "group":  # on (B, d) features: each example's features in groups of d / groups
        return nn.GroupNorm(groups, d)
    return nn.Identity()


def _nonlinearity(activation: str) -> tuple[str, float]:
    """The ``nonlinearity`` and ``a`` that torch.nn.init's He initialization takes for an activation.
    GELU and SiLU are treated as ReLU, as is common (neither has a gain of its own in torch.nn.init)."""
    if activation == "leaky_relu":
        return "leaky_relu", 0.01
    if activation in ("relu", "gelu", "silu"):
        return "relu", 0.0
    return "linear", 0.0  # sigmoid and tanh: He et al. derived the rule for rectifiers only; the gain is 1


def weight_std(config: NetConfig, d_in: int, d_out: int) -> float | None:
    """The standard deviation of a weight of a ``d_in → d_out`` layer under the config's initialization
    (None for "orthogonal", whose entries are not independent); the gain included."""
    c = config
    if c.init == "pytorch":
        std = 1 / math.sqrt(3 * d_in)  # U(±1/√d_in)
    elif c.init == "small":
        std = 0.01 / math.sqrt(3)
    elif c.init == "large":
        std = 2 / math.sqrt(3)
    elif c.init == "xavier":
        std = math.sqrt(2 / (d_in + d_out))
    elif c.init == "he":
        nonlinearity, a = _nonlinearity(c.activation)
        if nonlinearity == "leaky_relu":
            a = c.negative_slope
        std = torch.nn.init.calculate_gain(nonlinearity, a) / math.sqrt(d_in)
    else:
        return None
    return c.gain * std


def init_weights(model: DeepMLP, generator: torch.Generator) -> DeepMLP:
    """Initialize every linear layer of ``model`` in place by its config's scheme, drawing from ``generator``.
    Biases are zero, except under "pytorch", which keeps nn.Linear's own U(±1/√d_in) for them too."""
    c = model.config
    with torch.no_grad():
        for layer in model.linears():
            d_out, d_in = layer.weight.shape
            w, b = layer.weight, layer.bias
            if c.init == "pytorch":
                bound = 1 / math.sqrt(d_in)
                nn.init.uniform_(w, -bound * c.gain, bound * c.gain, generator=generator)
                nn.init.uniform_(b, -bound, bound, generator=generator)
                continue
            if c.init == "orthogonal":
                nn.init.orthogonal_(w, gain=c.gain, generator=generator)
            elif c.init in ("small", "large"):
                half = 0.01 if c.init == "small" else 2.0
                nn.init.uniform_(w, -half * c.gain, half * c.gain, generator=generator)
            elif c.init == "xavier":
                nn.init.xavier_normal_(w, gain=c.gain, generator=generator)
            else:
                nonlinearity, a = _nonlinearity(c.activation)
                if nonlinearity == "leaky_relu":
                    a = c.negative_slope
                nn.init.kaiming_normal_(w, a=a, nonlinearity=nonlinearity, generator=generator)
                w.mul_(c.gain)
            nn.init.zeros_(b)
    return model


def build(config: NetConfig, seed: int = 0, device: torch.device | str = "cpu",
          dtype: torch.dtype = torch.float32) -> DeepMLP:
    """A :class:`DeepMLP` initialized from ``seed`` (its own generator: no global seeding), on ``device``."""
    g = torch.Generator().manual_seed(int(seed))
    with torch.device("meta"):  # nn.Linear would draw its default weights from the global generator
        model = DeepMLP(config)
    model = model.to_empty(device="cpu")
    for m in model.modules():
        if isinstance(m, (nn.BatchNorm1d, nn.LayerNorm, nn.GroupNorm)):
            m.reset_parameters()  # scale 1, shift 0, running statistics 0 and 1
    init_weights(model, g)
    return model.to(device=device, dtype=dtype)
