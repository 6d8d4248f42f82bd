"""The 2-D loss surfaces of Chapter 1: an ill-conditioned quadratic, Rosenbrock's valley and a saddle.

Each surface gives its loss and its gradient in closed form (tests check the gradients
against autograd), where its minima are, and a box that frames it in a contour plot.
Points are tensors of shape ``(..., 2)``; every function works on any leading shape.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor

__all__ = ["Surface", "Quadratic", "Rosenbrock", "Saddle", "SURFACES", "make_surface"]


@dataclass(frozen=True)
class Surface:
    """A differentiable function of two variables with known minima."""

    name: ClassVar[str] = "surface"
    box: ClassVar[tuple[float, float, float, float]] = (-2.0, 2.0, -2.0, 2.0)  # xmin, xmax, ymin, ymax

    def loss(self, p: Tensor) -> Tensor:
        raise NotImplementedError

    def grad(self, p: Tensor) -> Tensor:
        raise NotImplementedError

    def minimizers(self) -> list[tuple[float, float]]:
        raise NotImplementedError

    def minimum_value(self) -> float:
        raise NotImplementedError

    def distance_to_minimum(self, p: Tensor) -> Tensor:
        """Euclidean distance from each point to the nearest minimizer."""
        mins = torch.tensor(self.minimizers(), dtype=p.dtype, device=p.device)
        return (p.unsqueeze(-2) - mins).norm(dim=-1).amin(dim=-1)


@dataclass(frozen=True)
class Quadratic(Surface):
    """f = ½(u² + κ v²) in coordinates (u, v) rotated by ``angle`` from (x, y): curvatures 1 and κ."""

    kappa: float = 10.0
    angle: float = 0.0
    name: ClassVar[str] = "quadratic"
    box: ClassVar[tuple[float, float, float, float]] = (-2.0, 2.0, -1.5, 1.5)

    def hessian(self, dtype: torch.dtype = torch.float64, device: torch.device | str = "cpu") -> Tensor:
        """The constant Hessian H = R diag(1, κ) Rᵀ."""
        c, s = math.cos(self.angle), math.sin(self.angle)
        rot = torch.tensor([[c, -s], [s, c]], dtype=dtype, device=device)
        return rot @ torch.diag(torch.tensor([1.0, self.kappa], dtype=dtype, device=device)) @ rot.T

    def loss(self, p: Tensor) -> Tensor:
        return 0.5 * (p * self.grad(p)).sum(-1)

    def grad(self, p: Tensor) -> Tensor:
        return p @ self.hessian(p.dtype, p.device)  # H is symmetric

    def minimizers(self) -> list[tuple[float, float]]:
        return [(0.0, 0.0)]

    def minimum_value(self) -> float:
        return 0.0

    @property
    def smoothness(self) -> float:
        """L, the largest curvature."""
        return max(1.0, self.kappa)


@dataclass(frozen=True)
class Rosenbrock(Surface):
    """Rosenbrock's banana valley f = (a − x)² + b (y − x²)², minimum at (a, a²)."""

    a: float = 1.0
    b: float = 100.0
    name: ClassVar[str] = "rosenbrock"
    box: ClassVar[tuple[float, float, float, float]] = (-2.0, 2.0, -1.0, 3.0)

    def loss(self, p: Tensor) -> Tensor:
        x, y = p[..., 0], p[..., 1]
        return (self.a - x) ** 2 + self.b * (y - x**2) ** 2

    def grad(self, p: Tensor) -> Tensor:
        x, y = p[..., 0], p[..., 1]
        r = y - x**2
        return torch.stack([-2 * (self.a - x) - 4 * self.b * x * r, 2 * self.b * r], dim=-1)

    def hessian(self, p: Tensor) -> Tensor:
        """The Hessian at each point, shape (..., 2, 2): it changes from place to place, unlike a quadratic's."""
        x, y = p[..., 0], p[..., 1]
        xx = 2 - 4 * self.b * (y - x**2) + 8 * self.b * x**2
        xy = -4 * self.b * x
        return torch.stack([torch.stack([xx, xy], dim=-1), torch.stack([xy, torch.full_like(x, 2 * self.b)], dim=-1)],
                           dim=-2)

    def minimizers(self) -> list[tuple[float, float]]:
        return [(self.a, self.a**2)]

    def minimum_value(self) -> float:
        return 0.0


@dataclass(frozen=True)
class Saddle(Surface):
    """f = ½x² + c(¼y⁴ − ½y²): a saddle at 0 with curvatures 1 and −c, minima at (0, ±1).

    The x-axis (y = 0) is the saddle's stable manifold: gradient descent started on it
    converges to the saddle and never leaves.
    """

    c: float = 1.0
    name: ClassVar[str] = "saddle"
    box: ClassVar[tuple[float, float, float, float]] = (-1.6, 1.6, -1.5, 1.5)

    def loss(self, p: Tensor) -> Tensor:
        x, y = p[..., 0], p[..., 1]
        return 0.5 * x**2 + self.c * (0.25 * y**4 - 0.5 * y**2)

    def grad(self, p: Tensor) -> Tensor:
        x, y = p[..., 0], p[..., 1]
        return torch.stack([x, self.c * (y**3 - y)], dim=-1)

    def minimizers(self) -> list[tuple[float, float]]:
        return [(0.0, 1.0), (0.0, -1.0)]

    def minimum_value(self) -> float:
        return -0.25 * self.c

    @property
    def negative_curvature(self) -> float:
        """λ, the Hessian's negative eigenvalue at the saddle (−c)."""
        return -self.c


SURFACES = {"quadratic": Quadratic, "rosenbrock": Rosenbrock, "saddle": Saddle}


def make_surface(name: str, kappa: float = 10.0) -> Surface:
    """A surface by name; ``kappa`` sets the quadratic's condition number and is ignored by the others."""
    if name == "quadratic":
        return Quadratic(kappa=kappa)
    if name not in SURFACES:
        raise ValueError(f"unknown surface {name!r}; choose one of {sorted(SURFACES)}")
    return SURFACES[name]()
