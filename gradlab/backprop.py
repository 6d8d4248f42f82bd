"""Backpropagation by hand for a two-layer classifier (Chapter 2), plus a checker for the reader's own backward passes.

Layout follows ``nn.Linear``: a batch is a matrix with one example per row, a weight
matrix has shape (out, in), and a layer computes ``z = x @ W.T + b``. With a mean over
the batch, the upstream gradient of every example carries a factor 1/N.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from .seeding import generator

__all__ = [
    "TwoLayerConfig", "init_two_layer", "make_batch", "forward", "backward",
    "linear_backward", "relu_backward", "softmax_xent_backward", "HandTwoLayer",
    "tied_layer_grads", "BackwardCheck", "check_backward", "AccumulationConfig", "AccumulationRun",
    "train_accumulating", "regression_smoothness", "divergence_threshold",
]

Params = dict[str, torch.Tensor]


@dataclass(frozen=True)
class TwoLayerConfig:
    """Sizes of the two-layer classifier: inputs d_0, hidden units d_1, classes C, batch N."""

    n_in: int = 4
    n_hidden: int = 8
    n_classes: int = 3
    batch: int = 6


def init_two_layer(cfg: TwoLayerConfig, seed: int = 0, device: torch.device | str = "cpu",
                   dtype: torch.dtype = torch.float64) -> Params:
    """Random weights: W1 (d_1, d_0), b1 (d_1,), W2 (C, d_1), b2 (C,)."""
    g = generator(seed)
    shapes = {"W1": (cfg.n_hidden, cfg.n_in), "b1": (cfg.n_hidden,),
              "W2": (cfg.n_classes, cfg.n_hidden), "b2": (cfg.n_classes,)}
    return {k: (torch.randn(s, generator=g, dtype=dtype) / max(1, s[-1]) ** 0.5).to(device) for k, s in shapes.items()}


def make_batch(cfg: TwoLayerConfig, seed: int = 1, device: torch.device | str = "cpu",
               dtype: torch.dtype = torch.float64) -> tuple[torch.Tensor, torch.Tensor]:
    """A random batch: inputs X (N, d_0) and integer labels y (N,)."""
    g = generator(seed)
    x = torch.randn(cfg.batch, cfg.n_in, generator=g, dtype=dtype)
    y = torch.randint(cfg.n_classes, (cfg.batch,), generator=g)
    return x.to(device), y.to(device)


def forward(p: Params, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, dict]:
    """Mean cross-entropy of linear-ReLU-linear; also returns what backward needs (the cache)."""
    z1 = x @ p["W1"].T + p["b1"]  # (N, d_1)
    h1 = torch.relu(z1)  # (N, d_1)
    z2 = h1 @ p["W2"].T + p["b2"]  # (N, C), the logits
    loss = F.cross_entropy(z2, y)  # scalar, mean over the N rows
    return loss, {"x": x, "y": y, "z1": z1, "h1": h1, "z2": z2}


def softmax_xent_backward(z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """dL/dz for L = mean cross-entropy of logits z (N, C): (softmax(z) - onehot(y)) / N."""
    return (torch.softmax(z, dim=1) - F.one_hot(y, z.shape[1]).to(z.dtype)) / z.shape[0]


def linear_backward(g: torch.Tensor, x: torch.Tensor, W: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """For z = x @ W.T + b with upstream g = dL/dz (N, out): dL/dx (N, in), dL/dW (out, in), dL/db (out,)."""
    return g @ W, g.T @ x, g.sum(dim=0)


def relu_backward(g: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """For a = relu(z): dL/dz = g where z > 0, else 0 (PyTorch's choice at exactly 0 too)."""
    return g * (z > 0).to(g.dtype)


def backward(p: Params, cache: dict) -> Params:
    """Every gradient of the two-layer network by hand, each with the shape of its tensor."""
    g2 = softmax_xent_backward(cache["z2"], cache["y"])  # (N, C)
    dh1, dW2, db2 = linear_backward(g2, cache["h1"], p["W2"])  # (N, d_1), (C, d_1), (C,)
    g1 = relu_backward(dh1, cache["z1"])  # (N, d_1)
    dx, dW1, db1 = linear_backward(g1, cache["x"], p["W1"])  # (N, d_0), (d_1, d_0), (d_1,)
    return {"W1": dW1, "b1": db1, "W2": dW2, "b2": db2, "x": dx, "z1": g1, "z2": g2}


class HandTwoLayer(torch.autograd.Function):
    """The two-layer loss as an autograd Function whose backward is ours, so gradcheck can test it."""

    @staticmethod
    def forward(ctx, x, W1, b1, W2, b2, y):  # noqa: D102 (autograd's signature)
        p = {"W1": W1, "b1": b1, "W2": W2, "b2": b2}
        loss, cache = forward(p, x, y)
        ctx.save_for_backward(x, W1, b1, W2, b2, y)
        return loss

    @staticmethod
    def backward(ctx, upstream):  # noqa: D102
        x, W1, b1, W2, b2, y = ctx.saved_tensors
        p = {"W1": W1, "b1": b1, "W2": W2, "b2": b2}
        _, cache = forward(p, x, y)
        d = backward(p, cache)
        return tuple(upstream * d[k] for k in ("x", "W1", "b1", "W2", "b2")) + (None,)


def tied_layer_grads(W: torch.Tensor, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """For loss = sum(tanh(W tanh(W x))) (one W used twice), its gradient from each use; their sum is the gradient."""
    h = torch.tanh(x @ W.T)  # first use of W
    out = torch.tanh(h @ W.T)  # second use of W
    g_out = 1 - out**2  # dL/d(pre-activation of the second use)
    from_second = g_out.T @ h
    g_h = (g_out @ W) * (1 - h**2)
    from_first = g_h.T @ x
    return from_first, from_second


@dataclass(frozen=True)
class BackwardCheck:
    """The verdict of :func:`check_backward`: ``ok``, the largest error and a sentence."""

    ok: bool
    max_error: float
    message: str

    def __repr__(self) -> str:
        return self.message


def check_backward(fn: Callable[..., torch.Tensor], backward_fn: Callable[..., object], *inputs: torch.Tensor,
                   seed: int = 0, tol: float = 1e-8) -> BackwardCheck:
    """Compare the reader's ``backward_fn(upstream, *inputs)`` with autograd's gradients of ``fn(*inputs)``."""
    xs = [t.detach().to(torch.float64).requires_grad_(True) for t in inputs]
    out = fn(*xs)
    upstream = torch.randn(out.shape, generator=generator(seed), dtype=torch.float64).to(out.device)
    expected = torch.autograd.grad(out, xs, upstream, allow_unused=True)
    try:
        with torch.no_grad():
            got = backward_fn(upstream, *[x.detach() for x in xs])
    except Exception as exc:  # the reader's code: report, do not crash the notebook
        return BackwardCheck(False, float("inf"), f"✗ your backward raised {type(exc).__name__}: {exc}")
    got = got if isinstance(got, (tuple, list)) else (got,)
    if len(got) != len(xs):
        return BackwardCheck(False, float("inf"), f"✗ expected {len(xs)} gradient(s), one per input, got {len(got)}.")
    worst = 0.0
    for i, (a, e, x) in enumerate(zip(got, expected, xs)):
        e = torch.zeros_like(x) if e is None else e
        a = torch.as_tensor(a, dtype=torch.float64, device=x.device)
        if a.shape != x.shape:
            return BackwardCheck(False, float("inf"), f"✗ gradient {i} has shape {tuple(a.shape)}; a gradient has "
                                 f"the shape of its input, {tuple(x.shape)}.")
        err = float((a - e).abs().max()) if a.numel() else 0.0
        worst = max(worst, err)
        if not err <= tol * (1 + float(e.abs().max() if e.numel() else 0)):
            where = np.unravel_index(int(torch.nan_to_num((a - e).abs(), nan=np.inf).argmax()), tuple(x.shape))
            return BackwardCheck(False, err, f"✗ gradient {i} differs from autograd by up to {err:.3g} "
                                 f"(largest at index {tuple(int(j) for j in where)}).")
    return BackwardCheck(True, worst, f"✓ all {len(xs)} gradient(s) match autograd (largest difference {worst:.2g}).")


@dataclass(frozen=True)
class AccumulationConfig:
    """Full-batch linear regression trained with SGD, calling ``zero_grad()`` every step or never."""

    steps: int = 60
    lr: float = 0.05
    zero_grad: bool = True
    n: int = 64
    dim: int = 5


@dataclass
class AccumulationRun:
    """Loss and the norm of ``.grad`` seen by the optimizer at each step."""

    losses: list[float]
    grad_norms: list[float]
    zero_grad: bool
    diverged_at: int | None = None


def _regression(cfg: AccumulationConfig, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = generator(seed)
    x = torch.randn(cfg.n, cfg.dim, generator=g)
    return x, x @ torch.randn(cfg.dim, 1, generator=g) + 0.1 * torch.randn(cfg.n, 1, generator=g)


def regression_smoothness(cfg: AccumulationConfig, seed: int = 0) -> float:
    """L of the regression's mean squared error in (weight, bias): 2 λ_max(X̃ᵀX̃ / n), X̃ = [X, 1]."""
    x, _ = _regression(cfg, seed)
    xt = torch.cat([x, torch.ones(cfg.n, 1)], dim=1).double()
    return 2 * float(torch.linalg.eigvalsh(xt.T @ xt / cfg.n)[-1])


def divergence_threshold(cfg: AccumulationConfig, seed: int = 0, steps: int = 2000, bits: int = 10) -> float:
    """The learning rate above which :func:`train_accumulating` diverges within ``steps``, in units of 2/L.

    Found by bisection between 0.5 and 4 times 2/L; Exercise 2.7 compares the runs with and without ``zero_grad()``.
    """
    unit = 2 / regression_smoothness(cfg, seed)
    lo, hi = 0.5, 4.0
    for _ in range(bits):
        mid = (lo + hi) / 2
        run = train_accumulating(replace(cfg, lr=mid * unit, steps=steps), seed)
        lo, hi = (lo, mid) if run.diverged_at is not None else (mid, hi)
    return (lo + hi) / 2


def train_accumulating(cfg: AccumulationConfig, seed: int = 0, device: torch.device | str = "cpu",
                       progress: Callable[[float], None] | None = None) -> AccumulationRun:
    """Train with ``optimizer.zero_grad()`` called each step (``cfg.zero_grad``) or forgotten."""
    x, y = _regression(cfg, seed)
    x, y = x.to(device), y.to(device)
    model = torch.nn.Linear(cfg.dim, 1).to(device)
    for prm in model.parameters():  # start at zero: no global random state involved
        torch.nn.init.zeros_(prm)
    opt = torch.optim.SGD(model.parameters(), lr=cfg.lr)
    run = AccumulationRun([], [], cfg.zero_grad)
    for k in range(cfg.steps):
        if cfg.zero_grad:
            opt.zero_grad()
        loss = F.mse_loss(model(x), y)
        loss.backward()
        gnorm = torch.cat([prm.grad.flatten() for prm in model.parameters()]).norm()
        run.losses.append(float(loss.detach()))
        run.grad_norms.append(float(gnorm))
        if not (math.isfinite(run.losses[-1]) and math.isfinite(run.grad_norms[-1])) or run.losses[-1] > 1e12:
            run.diverged_at = k
            break
        opt.step()
        if progress is not None:
            progress((k + 1) / cfg.steps)
    return run
