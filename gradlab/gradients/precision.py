"""Mixed precision and loss scaling (Chapter 5, Experiment 8): what float16 and bfloat16 can hold, what casting a
real network's gradients to them loses, how a loss scale 𝒮 (a power of 2) moves the gradients into float16's
range (:mod:`.loss_scaling` has ``torch.amp.GradScaler``, which adapts 𝒮 when a step overflows).

float16 has 5 exponent and 10 mantissa bits: normal numbers from 2^−14 to (2 − 2^−10)·2^15 = 65504, subnormals
down to 2^−24 with fewer significant bits. bfloat16 keeps float32's 8 exponent bits (range to ≈ 3.4e38) and only
7 mantissa bits, so it rounds 8 times more coarsely but almost never underflows: it needs no loss scaling.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import torch
import torch.nn.functional as F

from ..batched_mlp import DigitsSplit, digits_split
from ..seeding import generator
from .nets import DeepMLP, NetConfig, build

__all__ = ["FORMATS", "DTYPES", "FormatLimits", "format_limits", "CastRow", "cast_table", "GradientsConfig",
           "TrainedGradients", "trained_gradients", "minibatch_loss", "GradientCast", "cast_gradients"]

FORMATS = ("float16", "bfloat16", "float32")
DTYPES = {"float16": torch.float16, "bfloat16": torch.bfloat16, "float32": torch.float32}


def _dtype(name: str) -> torch.dtype:
    if name not in DTYPES:
        raise ValueError(f"format is one of {FORMATS}, not {name!r}")
    return DTYPES[name]


@dataclass(frozen=True)
class FormatLimits:
    """A floating-point format's bits and limits, read from ``torch.finfo``; u = eps/2 is its unit roundoff."""

    name: str
    bits: int
    exponent_bits: int
    mantissa_bits: int  # stored fraction bits; a normal number has one more significant bit
    smallest_subnormal: float
    smallest_normal: float  # finfo.tiny (also finfo.smallest_normal)
    largest: float
    eps: float  # the gap between 1 and the next number, 2^−mantissa_bits
    unit_roundoff: float  # the largest relative error of rounding a normal number to nearest: eps/2


def format_limits(name: str) -> FormatLimits:
    """The limits of ``name`` ("float16", "bfloat16" or "float32")."""
    f = torch.finfo(_dtype(name))
    mantissa = round(-math.log2(f.eps))
    return FormatLimits(name, f.bits, f.bits - 1 - mantissa, mantissa, f.tiny * f.eps, f.tiny, f.max, f.eps,
                        f.eps / 2)


@dataclass(frozen=True)
class CastRow:
    """One float32 value, what it becomes in a format, and how: "zero", "subnormal", "normal" or "inf"."""

    value: float
    stored: float
    kind: str
    significant_bits: int  # 0 for zero and inf
    relative_error: float  # |stored − value| / |value|; inf where it overflowed


def _kind(stored: torch.Tensor, limits: FormatLimits) -> list[str]:
    a = stored.abs().double()
    return ["inf" if math.isinf(x) else "zero" if x == 0 else "subnormal" if x < limits.smallest_normal else "normal"
            for x in a.tolist()]


def cast_table(values: Sequence[float], name: str = "float16") -> tuple[CastRow, ...]:
    """What each of ``values`` (float32) becomes when cast to ``name``: below half the smallest subnormal it
    rounds to 0, between it is a subnormal with fewer significant bits, from max + ulp/2 up it is inf."""
    limits = format_limits(name)
    x = torch.tensor(list(values), dtype=torch.float32)
    stored = x.to(_dtype(name)).double()
    rows = []
    for v, s, kind in zip(x.double().tolist(), stored.tolist(), _kind(stored, limits)):
        if kind == "normal":
            bits = limits.mantissa_bits + 1
        elif kind == "subnormal":  # counted from the smallest subnormal, the last bit there is
            bits = math.floor(math.log2(abs(s) / limits.smallest_subnormal)) + 1
        else:
            bits = 0
        err = math.inf if kind == "inf" else (abs(s - v) / abs(v) if v != 0 else 0.0)
        rows.append(CastRow(v, s, kind, bits, err))
    return tuple(rows)


@dataclass(frozen=True)
class GradientsConfig:
    """A network from :mod:`.nets` trained on the digits (SGD with momentum) for ``steps`` mini-batches, whose
    float32 gradient on one more mini-batch is then cast; ``steps = 0`` takes the gradient at initialization."""

    net: NetConfig = NetConfig(depth=10, activation="sigmoid")
    steps: int = 300
    lr: float = 0.05
    momentum: float = 0.9
    batch_size: int = 64
    seed: int = 0

    def __post_init__(self):
        if self.steps < 0 or self.batch_size < 1:
            raise ValueError(f"steps must be ≥ 0 and batch_size ≥ 1, got {self.steps} and {self.batch_size}")
        if not (self.lr > 0 and 0 <= self.momentum < 1):
            raise ValueError(f"need a learning rate η > 0 and a momentum in [0, 1), got {self.lr} and {self.momentum}")
        if self.net.norm == "batch":
            raise ValueError("use norm 'none' or 'layer' here: one mini-batch's gradient under batch normalization "
                             "depends on the batch statistics as well")


@dataclass(frozen=True, eq=False)
class TrainedGradients:
    """The float32 gradient of each of the D linear layers (weight and bias entries, flattened), input first; and,
    for each 𝒮 whose log2 is in ``exponents``, the fraction of its nonzero entries that come out 0
    (``autocast_underflow``) and of all entries that come out inf or NaN (``autocast_overflow``) when the same
    mini-batch's gradient of 𝒮·𝓛 is taken under ``torch.autocast(dtype=torch.float16)`` and divided by 𝒮: a real
    float16 backward, which also rounds the gradients ∂𝓛/∂h_l on the way, where casting the float32 gradient
    rounds only the result."""

    config: GradientsConfig
    grads: tuple[torch.Tensor, ...]
    train_loss: float  # on the mini-batch the gradient was taken on
    val_loss: float
    exponents: tuple[int, ...] = ()
    autocast_underflow: torch.Tensor | None = None
    autocast_overflow: torch.Tensor | None = None
    diverged_at: int | None = None


def _batch(split: DigitsSplit, g: torch.Generator, batch: int) -> tuple[torch.Tensor, torch.Tensor]:
    idx = torch.randint(split.x_train.shape[0], (batch,), generator=g).to(split.x_train.device)
    return split.x_train[idx], split.y_train[idx]


def minibatch_loss(model: DeepMLP, split: DigitsSplit, g: torch.Generator, batch: int) -> torch.Tensor:
    """The mean cross-entropy of ``model`` on the next random mini-batch of ``batch`` training digits drawn by ``g``."""
    x, y = _batch(split, g, batch)
    return F.cross_entropy(model(x), y)


def _flat_grads(model: DeepMLP, loss: torch.Tensor) -> torch.Tensor:
    params = [p for m in model.linears() for p in (m.weight, m.bias)]
    return torch.cat([t.flatten().float() for t in torch.autograd.grad(loss, params)])


def trained_gradients(config: GradientsConfig = GradientsConfig(), device: torch.device | str = "cpu",
                      split: DigitsSplit | None = None, exponents: Sequence[int] = tuple(range(0, 33))
                      ) -> TrainedGradients:
    """Train ``config.net`` in float32 and return its gradients, layer by layer, and what a float16 autocast
    backward of 𝒮·𝓛 loses at each 𝒮 = 2^exponent (on the CPU too: autocast takes float16 there as well)."""
    device = torch.device(device)
    split = split if split is not None else digits_split(0, device=device)
    model = build(config.net, config.seed, device)
    g = generator(config.seed)
    opt = torch.optim.SGD(model.parameters(), lr=config.lr, momentum=config.momentum)
    for k in range(config.steps):
        x, y = _batch(split, g, config.batch_size)
        loss = F.cross_entropy(model(x), y)
        if not torch.isfinite(loss):
            return TrainedGradients(config, (), math.nan, math.nan, diverged_at=k)
        opt.zero_grad()
        loss.backward()
        opt.step()
    x, y = _batch(split, g, config.batch_size)
    loss = F.cross_entropy(model(x), y)
    flat = _flat_grads(model, loss)
    sizes = [m.weight.numel() + m.bias.numel() for m in model.linears()]
    grads = tuple(t.detach().cpu() for t in flat.split(sizes))
    nonzero = flat != 0
    under, over = [], []
    for k in exponents:
        with torch.autocast(device.type, dtype=torch.float16):
            half = F.cross_entropy(model(x), y)  # cross-entropy itself runs in float32 under autocast
        got = _flat_grads(model, half * 2.0 ** k) / 2.0 ** k
        under.append(float(((got == 0) & nonzero).sum() / nonzero.sum().clamp(min=1)))
        over.append(float((~torch.isfinite(got)).double().mean()))
    with torch.no_grad():
        val = float(F.cross_entropy(model(split.x_val), split.y_val))
    return TrainedGradients(config, grads, float(loss.detach()), val, tuple(int(k) for k in exponents),
                            torch.tensor(under, dtype=torch.float64), torch.tensor(over, dtype=torch.float64))


@dataclass(frozen=True, eq=False)
class GradientCast:
    """Per exponent (𝒮 = 2^exponent): the fractions of the nonzero float32 gradient entries that 𝒮·g cast to the
    format turns into 0 (underflow), a subnormal, or inf (overflow); the fraction of ‖g‖ lost to underflow; the
    relative error of the entries stored as normal numbers (median, max); underflow per layer (K, D)."""

    limits: FormatLimits
    exponents: tuple[int, ...]
    log2_abs: torch.Tensor  # log2|g| of the nonzero entries, float64
    exact_zeros: int  # entries already 0 in float32 (ReLU units that were off for the whole mini-batch)
    underflow: torch.Tensor
    subnormal: torch.Tensor
    overflow: torch.Tensor
    lost_norm: torch.Tensor
    error_median: torch.Tensor
    error_max: torch.Tensor
    layer_underflow: torch.Tensor


def cast_gradients(grads: Sequence[torch.Tensor], name: str = "float16",
                   exponents: Sequence[int] = tuple(range(0, 33))) -> GradientCast:
    """Cast 𝒮·g to ``name`` for each 𝒮 = 2^exponent, exponent in ``exponents`` (as a float16 backward of 𝒮·𝓛
    would store them), then divide by 𝒮 in float32, and count what was lost."""
    limits, dtype = format_limits(name), _dtype(name)
    if not grads:
        raise ValueError("no gradients to cast (the training run diverged)")
    sizes = [int(t.numel()) for t in grads]
    flat = torch.cat([t.detach().flatten().float().cpu() for t in grads])
    layer = torch.repeat_interleave(torch.arange(len(sizes)), torch.tensor(sizes))
    keep = flat != 0
    g, layer = flat[keep], layer[keep]
    norm = float(g.double().norm())
    cols = {key: [] for key in ("under", "sub", "over", "lost", "med", "max", "layer")}
    for k in exponents:
        s = 2.0 ** k
        stored = (g * s).to(dtype)
        a = stored.abs().float()
        zero, inf = a == 0, torch.isinf(a)
        normal = (a >= limits.smallest_normal) & ~inf
        back = stored.float() / s
        err = ((back[normal].double() - g[normal].double()).abs() / g[normal].double().abs())
        cols["under"].append(zero.double().mean())
        cols["sub"].append((~zero & ~normal & ~inf).double().mean())
        cols["over"].append(inf.double().mean())
        cols["lost"].append(g[zero].double().norm() / norm)
        cols["med"].append(err.median() if err.numel() else torch.tensor(math.nan))
        cols["max"].append(err.max() if err.numel() else torch.tensor(math.nan))
        per = torch.zeros(len(sizes), dtype=torch.float64).index_add_(0, layer, zero.double())
        cols["layer"].append(per / torch.bincount(layer, minlength=len(sizes)).clamp(min=1))
    t = {key: torch.stack([torch.as_tensor(v, dtype=torch.float64) for v in vals]) for key, vals in cols.items()}
    return GradientCast(limits, tuple(int(k) for k in exponents), g.double().abs().log2(), int((~keep).sum()),
                        t["under"], t["sub"], t["over"], t["lost"], t["med"], t["max"], t["layer"])
