"""Chapter 1's real data, which ships inside scikit-learn (no download): the breast-cancer set
(569 tumours, 30 features) and the convex loss on it, logistic regression; and the handwritten digits
(1,797 images of 8 × 8 pixels) that the chapter's small network is trained on."""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from .device import real_dtype

__all__ = ["breast_cancer", "feature_conditioning", "digits", "LogisticTask", "logistic_task", "minimize"]


@lru_cache(maxsize=None)
def _standardized_breast_cancer() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_breast_cancer

    data = load_breast_cancer()
    x = data.data.astype(np.float64)
    x = (x - x.mean(axis=0)) / x.std(axis=0)  # features span five decades; unscaled, GD would crawl
    x.setflags(write=False)  # the cached copy is shared by every caller
    y = data.target.astype(np.float64)
    y.setflags(write=False)
    return x, y


def breast_cancer(device: torch.device | str = "cpu") -> tuple[Tensor, Tensor]:
    """Standardized features (569, 30) and 0/1 labels (569,), loaded once per session."""
    x, y = _standardized_breast_cancer()
    dtype = real_dtype(device)
    return torch.tensor(x, dtype=dtype, device=device), torch.tensor(y, dtype=dtype, device=device)


def feature_conditioning() -> dict[str, float]:
    """The condition number of XᵀX/N, the bias column included, for the raw breast-cancer features, centred only,
    scaled only (each divided by its standard deviation) and standardized (both): Chapter 1's preconditioning."""
    from sklearn.datasets import load_breast_cancer

    raw = torch.tensor(load_breast_cancer().data, dtype=torch.float64)
    mean, std = raw.mean(dim=0), raw.std(dim=0, unbiased=False)
    out = {}
    for name, x in (("raw", raw), ("centred", raw - mean), ("scaled", raw / std), ("standardized", (raw - mean) / std)):
        xb = torch.cat([x, torch.ones(len(x), 1, dtype=x.dtype)], dim=1)
        eig = torch.linalg.eigvalsh(xb.T @ xb / len(x))
        out[name] = float(eig[-1] / eig[0])
    return out


@lru_cache(maxsize=None)
def _digits() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    data = load_digits()
    x = data.data.astype(np.float64) / 16.0  # pixel intensities 0..16, to [0, 1]
    y = data.target.astype(np.int64)
    x.setflags(write=False)
    y.setflags(write=False)
    return x, y


def digits(device: torch.device | str = "cpu") -> tuple[Tensor, Tensor]:
    """Pixel intensities in [0, 1] (1797, 64) and class labels 0..9 (1797,), loaded once per session."""
    x, y = _digits()
    return (torch.tensor(x, dtype=real_dtype(device), device=device),
            torch.tensor(y, device=device))  # int64, as the labels are


@dataclass(frozen=True, eq=False)
class LogisticTask:
    """Mean logistic loss plus (l2/2)‖w‖² over a dataset; ``features`` end with a column of ones (the bias)."""

    features: Tensor  # (N, d+1)
    labels: Tensor  # (N,)
    l2: float = 0.0

    @property
    def n(self) -> int:
        return self.features.shape[0]

    @property
    def dim(self) -> int:
        return self.features.shape[1]

    def zeros(self) -> Tensor:
        """The starting point w = 0 (every prediction 50/50)."""
        return torch.zeros(self.dim, dtype=self.features.dtype, device=self.features.device)

    def loss(self, w: Tensor, idx: Tensor | None = None) -> Tensor:
        """The loss on the examples ``idx`` (all of them by default)."""
        x, y = (self.features, self.labels) if idx is None else (self.features[idx], self.labels[idx])
        return F.binary_cross_entropy_with_logits(x @ w, y) + 0.5 * self.l2 * (w * w).sum()

    def per_example_grads(self, w: Tensor) -> Tensor:
        """Row i is the gradient of example i's loss (N, d+1), via ``torch.func``; their mean is the full gradient."""
        from torch.func import grad, vmap

        def one(wi: Tensor, xi: Tensor, yi: Tensor) -> Tensor:
            return F.binary_cross_entropy_with_logits(xi @ wi, yi) + 0.5 * self.l2 * (wi * wi).sum()

        return vmap(grad(one), in_dims=(None, 0, 0))(w, self.features, self.labels)

    def smoothness(self) -> float:
        """L = λ_max(XᵀX)/(4N) + l2: the logistic function's slope is at most ¼, so no curvature exceeds this."""
        x = self.features
        return float(torch.linalg.eigvalsh(x.T @ x / self.n)[-1]) / 4.0 + self.l2

    def strong_convexity(self) -> float:
        """μ = l2: far from the data's boundary the logistic part is almost flat, so only the penalty is guaranteed."""
        return self.l2


def logistic_task(l2: float = 0.0, device: torch.device | str = "cpu") -> LogisticTask:
    """Logistic regression on the breast-cancer data (malignant vs benign) with an optional L2 penalty."""
    x, y = breast_cancer(device)
    return LogisticTask(torch.cat([x, torch.ones_like(x[:, :1])], dim=1), y, l2)


def minimize(task: LogisticTask, iterations: int = 200) -> tuple[Tensor, float]:
    """w* and f* = f(w*) to near machine precision, with ``torch.optim.LBFGS`` (the reference for suboptimality)."""
    w = task.zeros().requires_grad_(True)
    opt = torch.optim.LBFGS([w], lr=1.0, max_iter=iterations, tolerance_grad=1e-13, tolerance_change=0.0,
                            history_size=50, line_search_fn="strong_wolfe")

    def closure() -> Tensor:
        opt.zero_grad()
        loss = task.loss(w)
        loss.backward()
        return loss

    opt.step(closure)
    w = w.detach()
    return w, float(task.loss(w))
