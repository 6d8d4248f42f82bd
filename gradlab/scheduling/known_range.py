"""A problem whose good learning rates are known exactly, to test a learning-rate range test on (Chapter 4).

Linear least squares, loss ½·mean((Xw − y)²), trained by plain SGD from w = 0: its Hessian is XᵀX/N at
every w, so gradient descent is stable exactly for η < 2/λ_max. A range test that is any good must blow up
just above that edge and suggest learning rates below it.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

__all__ = ["KnownRange", "half_mse", "known_range"]


def half_mse(out: Tensor, y: Tensor) -> Tensor:
    """½·mean((Xw − y)²): its Hessian in w is exactly XᵀX/N."""
    return 0.5 * ((out.squeeze(-1) - y) ** 2).mean()


@dataclass(eq=False)
class KnownRange:
    """A bias-free linear model at w = 0, plain SGD (no momentum, so 2/λ_max is the exact edge), its batches."""

    model: nn.Linear
    optimizer: torch.optim.SGD
    batches: list[tuple[Tensor, Tensor]]
    lam_max: float  # the Hessian's largest eigenvalue

    @property
    def edge(self) -> float:
        """2/λ_max: gradient descent on this loss converges for η below it and diverges above it."""
        return 2 / self.lam_max


def known_range(seed: int = 0, n: int = 256, d: int = 6, noisy: bool = True, batches: int = 20) -> KnownRange:
    """Standardized, correlated inputs (so the Hessian's eigenvalues spread) and exact targets, in float64.

    Every batch is the whole data set, so every step's Hessian is exactly XᵀX/N. With ``noisy``, each batch's
    targets carry fresh unit noise, which keeps every eigen-direction of the error stirred up, as mini-batches
    do; without it, one full batch of exact targets.
    """
    if n < d or d < 1:
        raise ValueError(f"need n ≥ d ≥ 1 examples and features, got n = {n}, d = {d}")
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g, dtype=torch.float64) @ torch.randn(d, d, generator=g, dtype=torch.float64)
    x = (x - x.mean(0)) / x.std(0, unbiased=False)
    y = x @ torch.randn(d, generator=g, dtype=torch.float64)
    lam_max = torch.linalg.eigvalsh(x.T @ x / n)[-1].item()
    if noisy:
        data = [(x, y + torch.randn(n, generator=g, dtype=torch.float64)) for _ in range(batches)]
    else:
        data = [(x, y)]
    model = nn.Linear(d, 1, bias=False).double()
    nn.init.zeros_(model.weight)
    return KnownRange(model, torch.optim.SGD(model.parameters(), lr=1.0), data, lam_max)
