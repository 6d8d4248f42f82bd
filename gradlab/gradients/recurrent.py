"""Gradients through time (Chapter 5, Experiment 6): ‖∂𝓛/∂h_τ‖ against the position τ at initialization for
``nn.RNN`` (tanh), ``nn.LSTM`` and ``nn.GRU``, and ‖∂𝓛/∂x_τ‖ for them and a small ``nn.TransformerEncoder``.

The loss sits on the last position only, 𝓛 = Σ_b cross-entropy(head(h_T), y_b) with random labels, so any
gradient at an earlier τ has travelled back through time; each curve is the mean over the batch of one
example's ‖∂ℓ_b/∂h_τ‖. The full-sequence modules compute every h_τ inside one fused call, and the ``output``
they return is not on the path from h_τ to h_{τ+1}: a gradient on ``output[:, τ]`` would only be the direct
one. So the states are stepped one position at a time by the matching ``nn.RNNCell``/``LSTMCell``/``GRUCell``
sharing the module's own parameters (``tests/test_recurrent.py`` checks the states equal the module's), and
``retain_grad`` on each h_τ gives the total derivative ∂𝓛/∂h_τ (for the LSTM, with its cell state c_τ held
fixed; ∂𝓛/∂c_τ is recorded too).

Linearized, ∂𝓛/∂h_{τ−1} = W_hhᵀ diag(1 − h_τ²) ∂𝓛/∂h_τ: for W_hh with independent entries of spectral radius ρ
(PyTorch's U(±1/√d_h), rescaled), one step multiplies the norm by about ρ·√E[(1 − h²)²], which
:func:`through_time` reports beside the factor fitted to log‖∂𝓛/∂h_τ‖.

PyTorch's gate order in ``bias_ih_l0``/``bias_hh_l0`` (its docs: b_ii|b_if|b_ig|b_io; the GRU's b_ir|b_iz|b_in)
puts the LSTM's forget gate in rows d_h … 2d_h; the gate sees the sum of the two biases, so a forget bias
b_f sets ``bias_ih`` there to b_f and ``bias_hh`` there to 0.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..seeding import generator

__all__ = ["KINDS", "RECURRENT", "build_recurrent", "build_transformer", "as_cell", "spectral_radius",
           "forget_bias", "fit_factor", "ThroughTimeConfig", "ThroughTime", "through_time", "FactorSweep",
           "factor_sweep"]

RECURRENT = ("rnn", "lstm", "gru")
KINDS = RECURRENT + ("transformer",)
_MODULES = {"rnn": (nn.RNN, nn.RNNCell), "lstm": (nn.LSTM, nn.LSTMCell), "gru": (nn.GRU, nn.GRUCell)}


def spectral_radius(w: Tensor) -> float:
    """ρ(W) = max |eigenvalue| of a square matrix."""
    return float(torch.linalg.eigvals(w.detach().double().cpu()).abs().max())


def build_recurrent(kind: str, d_in: int, hidden: int, seed: int = 0, rho: float | None = None,
                    forget: float | None = None, device: torch.device | str = "cpu",
                    dtype: torch.dtype = torch.float64) -> nn.RNNBase:
    """A one-layer ``nn.RNN`` (tanh), ``nn.LSTM`` or ``nn.GRU`` (batch first), every weight and bias drawn
    U(±1/√d_h) as PyTorch does but from ``seed``'s generator; then the RNN's W_hh rescaled to spectral radius
    ``rho`` and the LSTM's forget-gate bias set to ``forget`` (None: leave PyTorch's)."""
    if kind not in RECURRENT:
        raise ValueError(f"kind is one of {RECURRENT}, not {kind!r}")
    g = generator(seed)
    with torch.device("meta"):  # the constructor would draw from the global generator
        module = _MODULES[kind][0](d_in, hidden, batch_first=True)
    module = module.to_empty(device="cpu")
    bound = 1 / math.sqrt(hidden)
    with torch.no_grad():
        for p in module.parameters():
            nn.init.uniform_(p, -bound, bound, generator=g)
        if rho is not None and kind == "rnn":
            module.weight_hh_l0.mul_(rho / spectral_radius(module.weight_hh_l0))
        if forget is not None and kind == "lstm":
            module.bias_ih_l0[hidden:2 * hidden] = forget
            module.bias_hh_l0[hidden:2 * hidden] = 0.0
    return module.to(device=device, dtype=dtype)


def forget_bias(lstm: nn.LSTM) -> Tensor:
    """The forget gate's bias b_f = b_if + b_hf of each unit (rows d_h … 2d_h of PyTorch's gate order)."""
    h = lstm.hidden_size
    return (lstm.bias_ih_l0[h:2 * h] + lstm.bias_hh_l0[h:2 * h]).detach()


def as_cell(module: nn.RNNBase) -> nn.RNNCellBase:
    """The ``nn.*Cell`` that steps ``module`` one position at a time, sharing its parameters (not copies)."""
    kind = {nn.RNN: "rnn", nn.LSTM: "lstm", nn.GRU: "gru"}[type(module)]
    with torch.device("meta"):
        cell = _MODULES[kind][1](module.input_size, module.hidden_size)
    for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
        setattr(cell, name, getattr(module, f"{name}_l0"))
    return cell


def build_transformer(d_model: int, heads: int = 4, layers: int = 2, ff: int = 128, seed: int = 0,
                      norm_first: bool = False, device: torch.device | str = "cpu",
                      dtype: torch.dtype = torch.float64) -> nn.TransformerEncoder:
    """An ``nn.TransformerEncoder`` (no dropout, batch first) initialized as PyTorch does, from ``seed``:
    attention's input projection Xavier-uniform with zero biases, every linear layer U(±1/√fan_in) (the output
    projection's bias zero), LayerNorm γ = 1, β = 0. Unlike the module's own deep copies, each layer differs."""
    g = generator(seed)
    with torch.device("meta"):
        layer = nn.TransformerEncoderLayer(d_model, heads, ff, dropout=0.0, batch_first=True, norm_first=norm_first)
        model = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
    model = model.to_empty(device="cpu")
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.MultiheadAttention):
                nn.init.xavier_uniform_(m.in_proj_weight, generator=g)
                nn.init.zeros_(m.in_proj_bias)
            elif isinstance(m, nn.Linear):
                bound = 1 / math.sqrt(m.in_features)
                nn.init.uniform_(m.weight, -bound, bound, generator=g)
                nn.init.uniform_(m.bias, -bound, bound, generator=g)
            elif isinstance(m, nn.LayerNorm):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        for m in model.modules():
            if isinstance(m, nn.MultiheadAttention):
                nn.init.zeros_(m.out_proj.bias)
    return model.to(device=device, dtype=dtype)


def fit_factor(norms: Tensor) -> float:
    """The per-step factor r of a gradient that shrinks like r^(T−τ): exp(−slope) of the least-squares line
    through log‖∂𝓛/∂h_τ‖ against τ (zeros and non-finite values left out); NaN with fewer than two points."""
    y = norms.double().log()
    tau = torch.arange(1, len(y) + 1, dtype=torch.float64)
    ok = torch.isfinite(y)
    if int(ok.sum()) < 2:
        return math.nan
    t, y = tau[ok], y[ok]
    slope = ((t - t.mean()) * (y - y.mean())).sum() / ((t - t.mean()) ** 2).sum()
    return math.exp(-float(slope))


@dataclass(frozen=True)
class ThroughTimeConfig:
    """One network at initialization on a batch of random sequences x_τ ~ N(0, I) of length T_seq."""

    kind: str = "rnn"
    seq_len: int = 100  # T_seq
    rho: float | None = 1.0  # the RNN's spectral radius of W_hh; None: PyTorch's (about 1/√3)
    forget: float | None = None  # the LSTM's forget-gate bias b_f; None: PyTorch's U(±1/√d_h) per bias
    d_in: int = 32  # input size; the Transformer's d_model
    hidden: int = 64  # d_h
    batch: int = 32
    classes: int = 10
    heads: int = 4
    layers: int = 2
    ff: int = 128

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"kind is one of {KINDS}, not {self.kind!r}")
        if not 2 <= self.seq_len <= 1000:
            raise ValueError(f"T_seq must be between 2 and 1000 positions, got {self.seq_len}")
        if self.rho is not None and not (0 < self.rho < 100):
            raise ValueError(f"the spectral radius ρ must be positive (and below 100), got {self.rho}")
        if self.forget is not None and not math.isfinite(self.forget):
            raise ValueError(f"the forget-gate bias must be a finite number, got {self.forget}")
        if min(self.d_in, self.hidden, self.batch, self.classes, self.layers) < 1 or self.classes < 2:
            raise ValueError("sizes must be positive, with at least two classes")
        if self.d_in % self.heads:
            raise ValueError(f"d_model = {self.d_in} must be divisible by the {self.heads} attention heads")


@dataclass(frozen=True, eq=False)
class ThroughTime:
    """Mean per-example ‖∂𝓛/∂h_τ‖, ‖∂𝓛/∂c_τ‖ (LSTM) and ‖∂𝓛/∂x_τ‖ for τ = 1 … T_seq (NaN where a kind has no
    such state); the fitted per-step factor of ‖∂𝓛/∂h_τ‖ and, for the RNN, its prediction ρ·√E[(1 − h²)²]."""

    config: ThroughTimeConfig
    grad_h: Tensor
    grad_c: Tensor
    grad_x: Tensor
    factor: float
    predicted: float
    rho: float  # the spectral radius of W_hh used (NaN unless RNN)
    slope_rms: float  # √E[(1 − h²)²], the RMS tanh derivative (NaN unless RNN)


def through_time(config: ThroughTimeConfig = ThroughTimeConfig(), seed: int = 0,
                 device: torch.device | str = "cpu") -> ThroughTime:
    """Backpropagate the last position's loss through T_seq steps at initialization, in float64."""
    c = config
    g = generator(seed + 1)
    x = torch.randn(c.batch, c.seq_len, c.d_in, generator=g, dtype=torch.float64).to(device).requires_grad_(True)
    y = torch.randint(0, c.classes, (c.batch,), generator=g).to(device)
    width = c.d_in if c.kind == "transformer" else c.hidden
    head = nn.Linear(width, c.classes, dtype=torch.float64)
    bound = 1 / math.sqrt(width)
    with torch.no_grad():
        for p in head.parameters():
            p.uniform_(-bound, bound, generator=g)
    head = head.to(device)
    nan = torch.full((c.seq_len,), math.nan, dtype=torch.float64)
    if c.kind == "transformer":
        out = build_transformer(c.d_in, c.heads, c.layers, c.ff, seed, device=device)(x)
        F.cross_entropy(head(out[:, -1]), y, reduction="sum").backward()
        return ThroughTime(c, nan, nan, x.grad.norm(dim=2).mean(0).cpu(), math.nan, math.nan, math.nan, math.nan)
    module = build_recurrent(c.kind, c.d_in, c.hidden, seed, c.rho, c.forget, device)
    cell = as_cell(module)
    h = torch.zeros(c.batch, c.hidden, dtype=torch.float64, device=device)
    state = (h, h) if c.kind == "lstm" else h
    hs, cs = [], []
    for tau in range(c.seq_len):
        state = cell(x[:, tau], state)
        for s, keep in zip(state if c.kind == "lstm" else (state,), (hs, cs)):
            s.retain_grad()
            keep.append(s)
    F.cross_entropy(head(hs[-1]), y, reduction="sum").backward()
    grad_h = torch.stack([s.grad.norm(dim=1).mean() for s in hs]).cpu()
    grad_c = torch.stack([s.grad.norm(dim=1).mean() for s in cs]).cpu() if cs else nan
    rho = slope = predicted = math.nan
    if c.kind == "rnn":
        rho = spectral_radius(module.weight_hh_l0)
        slope = float(((1 - torch.stack(hs).detach() ** 2) ** 2).mean().sqrt())
        predicted = rho * slope
    return ThroughTime(c, grad_h, grad_c, x.grad.norm(dim=2).mean(0).cpu(), fit_factor(grad_h[:-1]), predicted,
                       rho, slope)


@dataclass(frozen=True, eq=False)
class FactorSweep:
    """The RNN's per-step factor against ρ: fitted to ‖∂𝓛/∂h_τ‖, and predicted ρ·√E[(1 − h²)²]."""

    rhos: Tensor
    measured: Tensor
    predicted: Tensor


def factor_sweep(rhos: tuple[float, ...] = (0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.1, 1.2, 1.35, 1.5),
                 config: ThroughTimeConfig = ThroughTimeConfig(), seed: int = 0,
                 device: torch.device | str = "cpu") -> FactorSweep:
    """:func:`through_time` for the RNN at each ρ (the rest of ``config`` kept)."""
    runs = [through_time(replace(config, kind="rnn", rho=float(r)), seed, device) for r in rhos]
    return FactorSweep(torch.tensor(rhos, dtype=torch.float64), torch.tensor([r.factor for r in runs]),
                       torch.tensor([r.predicted for r in runs]))
