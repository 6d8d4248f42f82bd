"""Reverse versus forward mode, and what a backward pass costs in FLOPs and time (Chapter 2).

Forward mode (``torch.func.jacfwd``) pushes one tangent per input direction, so a full
Jacobian costs as many Jacobian-vector products as there are parameters. Reverse mode
(``torch.func.jacrev``) pulls one cotangent per output, so a scalar loss needs one
vector-Jacobian product however many parameters there are.
"""
from __future__ import annotations

import statistics
import time
from dataclasses import dataclass, field
from typing import Callable

import torch
from torch import nn
from torch.func import functional_call, jacfwd, jacrev
from torch.utils.flop_counter import FlopCounterMode

from .seeding import generator
from .device import sync

__all__ = ["seeded_mlp", "ModesConfig", "MapConfig", "ModesResult", "mlp_of_flat_params", "time_modes",
           "time_modes_io", "median_seconds",
           "FlopRow", "count_flops", "backward_flop_ratio", "backward_cost_table",
           "DepthConfig", "JacobianChain", "jacobian_chain"]


def median_seconds(fn: Callable[[], object], repeats: int = 5, device: torch.device | str = "cpu",
                   warmup: bool = True) -> float:
    """Median wall time of ``fn()`` over ``repeats`` runs, after one warm-up run unless ``warmup`` is False."""
    if warmup:
        fn()
    times = []
    for _ in range(repeats):
        sync(device)
        t0 = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def seeded_mlp(sizes: list[int], seed: int = 0, act: type[nn.Module] = nn.Tanh,
               device: torch.device | str = "cpu") -> nn.Sequential:
    """Linear layers of the given sizes with ``act`` between them, initialised from ``seed`` as nn.Linear would be."""
    g = generator(seed)
    with torch.random.fork_rng(devices=[]):  # nn.Linear's own init draws globally; ours replaces it below
        layers: list[nn.Module] = []
        for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
            layers += [nn.Linear(a, b)] + ([act()] if i < len(sizes) - 2 else [])
    net = nn.Sequential(*layers)
    with torch.no_grad():
        for m in net:
            if isinstance(m, nn.Linear):  # PyTorch's default: U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for weight and bias
                bound = m.in_features ** -0.5
                for p in (m.weight, m.bias):
                    p.copy_((torch.rand(p.shape, generator=g) * 2 - 1) * bound)
    return net.to(device)


def mlp_of_flat_params(width: int, n_out: int, n_in: int = 8, batch: int = 8, seed: int = 0,
                       device: torch.device | str = "cpu") -> tuple[Callable[[torch.Tensor], torch.Tensor], torch.Tensor]:
    """A tanh MLP (two hidden layers of ``width``) as a function of one flat parameter vector θ: f(θ) ∈ R^n_out."""
    net = seeded_mlp([n_in, width, width, n_out], seed, device=device)
    names = [n for n, _ in net.named_parameters()]
    shapes = [p.shape for p in net.parameters()]
    theta = torch.cat([p.detach().flatten() for p in net.parameters()])
    x = torch.randn(batch, n_in, generator=generator(seed + 1)).to(device)

    def f(th: torch.Tensor) -> torch.Tensor:
        params, i = {}, 0
        for name, shape in zip(names, shapes):
            params[name] = th[i:i + shape.numel()].view(shape)
            i += shape.numel()
        return functional_call(net, params, (x,)).mean(dim=0)  # mean over the batch: R^P -> R^n_out

    return f, theta


@dataclass(frozen=True)
class ModesConfig:
    """The MLP's widths (its parameter count P grows about as width²) and timing repeats."""

    widths: tuple[int, ...] = (4, 8, 16, 32, 64, 96)
    repeats: int = 5


@dataclass(frozen=True)
class MapConfig:
    """f(v) = B·tanh(A·v) from R^n to R^m with ``hidden`` units: the input sizes n swept, the output size m."""

    n_in: tuple[int, ...] = (16, 64, 256, 1024, 4096)
    n_out: int = 1
    hidden: int = 64
    repeats: int = 5


@dataclass
class ModesResult:
    """Input sizes, median seconds and counted matmul FLOPs for the full Jacobian by forward and by reverse mode."""

    n_in: list[int]
    forward_s: list[float]
    reverse_s: list[float]
    n_out: int
    x_label: str = "number of parameters p"
    forward_flops: list[int] = field(default_factory=list)
    reverse_flops: list[int] = field(default_factory=list)


def _time_both(f: Callable, v: torch.Tensor, repeats: int, device: torch.device | str) -> tuple[float, float]:
    return (median_seconds(lambda: jacfwd(f)(v), repeats, device),
            median_seconds(lambda: jacrev(f)(v), repeats, device))


def _flops(fn: Callable[[], object]) -> int:
    with FlopCounterMode(display=False) as fc:
        fn()
    return fc.get_total_flops()


def time_modes(cfg: ModesConfig, seed: int = 0, device: torch.device | str = "cpu",
               progress: Callable[[float], None] | None = None) -> ModesResult:
    """The gradient of a scalar loss of an MLP: jacfwd (one JVP per parameter) against jacrev (one VJP).

    Besides the median times, the matmul FLOPs of each are counted: jacfwd's p JVPs run as one
    batched (vmapped) computation, so its count grows with p times a pass while its time need not.
    """
    res = ModesResult([], [], [], 1)
    for k, w in enumerate(cfg.widths):
        f, theta = mlp_of_flat_params(w, 1, seed=seed, device=device)
        res.n_in.append(theta.numel())
        fwd, rev = _time_both(f, theta, cfg.repeats, device)
        res.forward_s.append(fwd)
        res.reverse_s.append(rev)
        res.forward_flops.append(_flops(lambda: jacfwd(f)(theta)))
        res.reverse_flops.append(_flops(lambda: jacrev(f)(theta)))
        if progress is not None:
            progress((k + 1) / len(cfg.widths))
    return res


def time_modes_io(cfg: MapConfig, seed: int = 0, device: torch.device | str = "cpu",
                  progress: Callable[[float], None] | None = None) -> ModesResult:
    """The Jacobian of f: R^n → R^m: forward mode costs n JVPs, reverse mode m VJPs."""
    res = ModesResult([], [], [], cfg.n_out, "inputs n")
    g = generator(seed)
    B = (torch.randn(cfg.n_out, cfg.hidden, generator=g) / cfg.hidden**0.5).to(device)
    for k, n in enumerate(cfg.n_in):
        A = (torch.randn(cfg.hidden, n, generator=g) / n**0.5).to(device)
        v = torch.randn(n, generator=g).to(device)
        fwd, rev = _time_both(lambda u, A=A: B @ torch.tanh(A @ u), v, cfg.repeats, device)
        res.n_in.append(n)
        res.forward_s.append(fwd)
        res.reverse_s.append(rev)
        if progress is not None:
            progress((k + 1) / len(cfg.n_in))
    return res


@dataclass(frozen=True)
class FlopRow:
    """Matmul/convolution FLOPs of one forward and one backward pass, and their median wall times."""

    name: str
    forward: int
    backward: int
    forward_s: float = float("nan")
    backward_s: float = float("nan")

    @property
    def ratio(self) -> float:
        """Backward FLOPs over forward FLOPs."""
        return self.backward / self.forward


def count_flops(make_output: Callable[[], torch.Tensor]) -> tuple[int, int]:
    """FLOPs FlopCounterMode counts (matmuls and convolutions only) in the forward and in ``output.sum().backward()``."""
    with FlopCounterMode(display=False) as fc:
        out = make_output()
    fwd = fc.get_total_flops()
    loss = out.sum()
    with FlopCounterMode(display=False) as fc:
        loss.backward()
    return fwd, fc.get_total_flops()


def backward_flop_ratio(sizes: list[int], batch: int = 32, seed: int = 0) -> float:
    """Backward over forward matmul FLOPs of ``seeded_mlp(sizes)`` on a batch that needs no gradient."""
    mlp = seeded_mlp(sizes, seed)
    fwd, bwd = count_flops(lambda: mlp(torch.randn(batch, sizes[0], generator=generator(seed + 1))))
    return bwd / fwd


def _cases(scale: int, seed: int, device: torch.device | str) -> dict[str, Callable[[], torch.Tensor]]:
    g = generator(seed)
    n, d = 32 * scale, 64 * scale

    def t(*shape: int, grad: bool = False) -> torch.Tensor:
        return torch.randn(*shape, generator=g).to(device).requires_grad_(grad)

    lin = seeded_mlp([d, 2 * d], seed, device=device)
    with torch.random.fork_rng(devices=[]):  # its own init draws globally; replaced from g below
        conv = nn.Conv2d(8, 16, 3, padding=1)
    with torch.no_grad():
        for p in conv.parameters():
            p.copy_(0.1 * torch.randn(p.shape, generator=g))
    conv = conv.to(device)
    mlp = seeded_mlp([d, 4 * d, 4 * d, 10], seed, nn.ReLU, device)
    x, xg, img, imgg = t(n, d), t(n, d, grad=True), t(n // 4, 8, 16, 16), t(n // 4, 8, 16, 16, grad=True)
    a, b, c = t(n, d, grad=True), t(d, d, grad=True), t(d, d, grad=True)
    return {
        "Linear, input needs no grad": lambda: lin(x),
        "Linear, input needs grad": lambda: lin(xg),
        "Conv2d, input needs no grad": lambda: conv(img),
        "Conv2d, input needs grad": lambda: conv(imgg),
        "matmul chain A·B·C": lambda: a @ b @ c,
        "MLP, 3 linear layers": lambda: mlp(x),
    }


def backward_cost_table(scale: int = 1, repeats: int = 5, seed: int = 0,
                        device: torch.device | str = "cpu") -> list[FlopRow]:
    """Counted FLOPs (forward, backward) and median wall times for each case of the chapter's table."""
    rows = []
    for name, make in _cases(scale, seed, device).items():
        fwd, bwd = count_flops(make)
        fwd_s = median_seconds(make, repeats, device)
        bwd_s = median_seconds(lambda: make().sum().backward(), repeats, device) - fwd_s
        rows.append(FlopRow(name, fwd, bwd, fwd_s, max(bwd_s, 0.0)))
    return rows


@dataclass(frozen=True)
class DepthConfig:
    """A deep MLP h_l = act(W_l h_(l-1)) with square layers, weights N(0, gain²/width)."""

    depth: int = 30
    width: int = 32
    gain: float = 1.0
    activation: str = "tanh"  # "tanh" | "sigmoid" | "relu"


@dataclass
class JacobianChain:
    """Per-layer Jacobians J_l = ∂h_l/∂h_(l-1) and the gradient ∂L/∂h_l they carry back to every layer."""

    jacobians: list[torch.Tensor]
    layer_factors: list[float]  # ‖∂L/∂h_(l-1)‖ / ‖∂L/∂h_l‖, l = 1..depth: their product is ‖∂L/∂h_0‖ / ‖∂L/∂h_depth‖
    product_norms: list[float]  # spectral norm of J_depth ⋯ J_(l+1), l = 0..depth
    grad_norms: list[float]  # ‖∂L/∂h_l‖, l = 0..depth
    grads: list[torch.Tensor]
    config: DepthConfig
    weights: list[torch.Tensor]
    h0: torch.Tensor
    target: torch.Tensor


_ACTS = {"tanh": torch.tanh, "sigmoid": torch.sigmoid, "relu": torch.relu}


def jacobian_chain(cfg: DepthConfig, seed: int = 0, device: torch.device | str = "cpu") -> JacobianChain:
    """Each layer's Jacobian by ``torch.func.jacrev``; the gradient at layer l is the upstream gradient times their product."""
    if cfg.activation not in _ACTS:
        raise ValueError(f"activation must be one of {sorted(_ACTS)}")
    g, act, w = generator(seed), _ACTS[cfg.activation], cfg.width
    weights = [(torch.randn(w, w, generator=g, dtype=torch.float64) * cfg.gain / w**0.5).to(device)
               for _ in range(cfg.depth)]
    h = h0 = torch.randn(w, generator=g, dtype=torch.float64).to(device)
    target = torch.randn(w, generator=g, dtype=torch.float64).to(device)
    jacobians = []
    for W in weights:
        layer = lambda v, W=W: act(W @ v)  # noqa: E731
        jacobians.append(jacrev(layer)(h))  # (width, width)
        h = layer(h)
    grads = [h - target]  # ∂L/∂h_depth for L = ½‖h_depth − target‖²
    product = torch.eye(w, dtype=torch.float64, device=device)
    product_norms = [1.0]
    for J in reversed(jacobians):
        grads.insert(0, grads[0] @ J)  # a vector-Jacobian product: what backprop computes at each layer
        product = product @ J
        product_norms.insert(0, float(torch.linalg.matrix_norm(product, ord=2)))
    norms = [float(v.norm()) for v in grads]
    factors = [a / b if b > 0 else float("nan") for a, b in zip(norms[:-1], norms[1:])]
    return JacobianChain(jacobians, factors, product_norms, norms, grads, cfg, weights, h0, target)
