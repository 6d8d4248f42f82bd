"""Why anneal (Chapter 4): SGD with a constant η stalls at a noise floor that grows with η; a decaying η does not.

Least squares, f(w) = ½·mean((x·w − y)²) over N training examples with noisy targets, trained by
``torch.optim.SGD`` on mini-batches of B examples drawn with replacement. Near the minimum w*, a step is
e ← (I − ηH)e − ηξ with H = XᵀX/N and ξ the mini-batch noise, of covariance Σ/B, where
Σ = mean_i r_i² x_i x_iᵀ and r_i the residuals at w*. In H's eigenbasis (λ_i, and Σ_ii the diagonal of Σ
there) the stationary variance of coordinate i is η Σ_ii / (B λ_i (2 − ηλ_i)), so the expected excess loss is

    E[f − f*] = (η / 2B) Σ_i Σ_ii / (2 − ηλ_i)  ≈  η tr(Σ) / 4B  for small η,

proportional to η and to 1/B: the floor (Mandt et al. 2017 derive the same stationary picture). The
formula ignores the part of the noise that grows with the distance from w*, which matters as ηλ_max → 2.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch
from torch import Tensor

from ..seeding import generator

__all__ = ["DECAYS", "FloorTask", "floor_task", "predicted_floor", "FloorConfig", "FloorRuns", "floor_runs"]

DECAYS = ("cosine", "step", "1/k")
BLOWN_UP = 1e10  # a mini-batch loss this large (it starts near 5) has diverged, long before it overflows


@dataclass(frozen=True, eq=False)
class FloorTask:
    """Training and validation data, the minimum w*, and what the floor's formula needs (all float64)."""

    x: Tensor
    y: Tensor
    x_val: Tensor
    y_val: Tensor
    w_star: Tensor
    f_star: float
    eigenvalues: Tensor  # of H = XᵀX/N, ascending
    noise_diag: Tensor  # Σ_ii: the per-example gradient covariance at w*, in H's eigenbasis

    @property
    def lam_max(self) -> float:
        return float(self.eigenvalues[-1])


def floor_task(n: int = 512, d: int = 8, noise: float = 1.0, seed: int = 0) -> FloorTask:
    """Mildly correlated standardized inputs (the eigenvalues of H spread over a decade), targets with noise σ."""
    if n < 2 * d or d < 1 or noise < 0:
        raise ValueError(f"need n ≥ 2d, d ≥ 1 and noise ≥ 0, got n = {n}, d = {d}, noise = {noise}")
    g = generator(seed)
    mix = 0.4 * torch.randn(d, d, generator=g, dtype=torch.float64) / math.sqrt(d) + torch.eye(d, dtype=torch.float64)
    w_true = torch.randn(d, generator=g, dtype=torch.float64)

    def sample(m: int) -> tuple[Tensor, Tensor]:
        x = torch.randn(m, d, generator=g, dtype=torch.float64) @ mix
        return x, x @ w_true + noise * torch.randn(m, generator=g, dtype=torch.float64)

    x, y = sample(n)
    scale = x.std(0)
    x_val, y_val = sample(n)
    x, x_val = x / scale, x_val / scale
    w_star = torch.linalg.lstsq(x, y.unsqueeze(1)).solution.squeeze(1)
    r = x @ w_star - y
    lam, u = torch.linalg.eigh(x.T @ x / n)
    per_example = (x @ u) * r.unsqueeze(1)  # each example's gradient at w*, in the eigenbasis
    return FloorTask(x, y, x_val, y_val, w_star, float(0.5 * (r**2).mean()), lam,
                     (per_example**2).mean(0))


def predicted_floor(task: FloorTask, lr: float, batch_size: int) -> float:
    """E[f − f*] at stationarity for a constant η: (η/2B) Σ_i Σ_ii/(2 − ηλ_i); inf where ηλ_max ≥ 2."""
    if lr * task.lam_max >= 2:
        return math.inf
    return float(lr / (2 * batch_size) * (task.noise_diag / (2 - lr * task.eigenvalues)).sum())


@dataclass(frozen=True)
class FloorConfig:
    """Constant-η runs at ``lrs`` and one run whose η decays from ``peak`` (default: the largest of ``lrs``)."""

    lrs: tuple[float, ...] = (0.01, 0.02, 0.04, 0.08, 0.16, 0.32)
    batch_size: int = 4
    steps: int = 3000
    decay: str = "cosine"
    peak: float | None = None
    seeds: int = 16  # runs per setting, averaged
    record: int = 100  # points recorded along each curve

    def __post_init__(self):
        if self.decay not in DECAYS:
            raise ValueError(f"decay is one of {DECAYS}, not {self.decay!r}")
        if not self.lrs or min(self.lrs) <= 0:
            raise ValueError(f"learning rates must be positive, got {self.lrs}")
        for name in ("batch_size", "steps", "seeds", "record"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be ≥ 1, got {getattr(self, name)}")


@dataclass(frozen=True, eq=False)
class FloorRuns:
    """Excess training loss f − f* and validation loss along the runs (mean over seeds), and the floors."""

    config: FloorConfig
    task: FloorTask
    steps: Tensor  # (record,) the steps where the curves are recorded
    excess: Tensor  # (len(lrs) + 1, record): the constant runs, then the decaying one
    val_loss: Tensor  # (len(lrs) + 1, record)
    val_star: float  # the validation loss of w*
    measured: Tensor  # (len(lrs),) mean excess over the second half of each constant run
    predicted: Tensor  # (len(lrs),) the formula's floor
    decay_lr: Tensor  # (record,) the decaying run's η at the recorded steps
    diverged_at: int | None = None
    diverged_run: str | None = None

    @property
    def labels(self) -> list[str]:
        return [f"constant η = {lr:g}" for lr in self.config.lrs] + [f"{self.config.decay} from η = {self.peak:g}"]

    @property
    def peak(self) -> float:
        return self.config.peak if self.config.peak is not None else max(self.config.lrs)


def _scheduler(cfg: FloorConfig, optimizer: torch.optim.Optimizer):
    from torch.optim import lr_scheduler

    if cfg.decay == "cosine":
        return lr_scheduler.CosineAnnealingLR(optimizer, T_max=cfg.steps)
    if cfg.decay == "step":
        return lr_scheduler.StepLR(optimizer, step_size=max(1, cfg.steps // 4), gamma=0.3)
    k0 = max(1.0, cfg.steps / 20)  # η_k = η_max / (1 + k/k0): Σ η_k diverges, Σ η_k² converges
    return lr_scheduler.LambdaLR(optimizer, lambda k: 1 / (1 + k / k0))


def floor_runs(config: FloorConfig = FloorConfig(), task: FloorTask | None = None, seed: int = 0,
               progress: Callable[[float], None] | None = None) -> FloorRuns:
    """Train every constant-η run and the decaying run, ``seeds`` copies each, from w = 0 (one batched loop)."""
    task = task if task is not None else floor_task()
    cfg = config
    n, d = task.x.shape
    runs = len(cfg.lrs) + 1
    peak = cfg.peak if cfg.peak is not None else max(cfg.lrs)
    # one parameter per setting: each copy's loss depends only on its own row, so the summed loss's
    # gradient is every copy's own gradient
    params = [torch.zeros(cfg.seeds, d, dtype=torch.float64, requires_grad=True) for _ in range(runs)]
    constant = torch.optim.SGD([{"params": [p], "lr": lr} for p, lr in zip(params, cfg.lrs)])
    decaying = torch.optim.SGD([params[-1]], lr=peak)
    scheduler = _scheduler(cfg, decaying)
    g = generator(seed)
    every = max(1, cfg.steps // cfg.record)
    marks = list(range(0, cfg.steps + 1, every))[: cfg.record + 1]
    excess, val, lrs = [], [], []
    diverged = [None] * runs
    h = task.x.T @ task.x / n

    def record():
        with torch.no_grad():
            w = torch.stack([p.detach() for p in params])  # (runs, seeds, d)
            e = w - task.w_star
            ex = 0.5 * torch.einsum("rsi,ij,rsj->rs", e, h, e)
            vl = 0.5 * ((w @ task.x_val.T - task.y_val) ** 2).mean(-1)
        excess.append(ex.mean(1))
        val.append(vl.mean(1))
        lrs.append(decaying.param_groups[0]["lr"])

    record()
    for k in range(1, cfg.steps + 1):
        idx = torch.randint(0, n, (runs, cfg.seeds, cfg.batch_size), generator=g)
        xb, yb = task.x[idx], task.y[idx]
        w = torch.stack(params)
        losses = 0.5 * ((torch.einsum("rsbd,rsd->rsb", xb, w) - yb) ** 2).mean(-1)
        finite = (torch.isfinite(losses) & (losses < BLOWN_UP)).all(1).tolist()
        for r, ok in enumerate(finite):
            if not ok and diverged[r] is None:
                diverged[r] = k
        constant.zero_grad(), decaying.zero_grad()
        torch.nan_to_num(losses, nan=0.0, posinf=0.0).sum().backward()
        constant.step(), decaying.step()
        scheduler.step()
        with torch.no_grad():
            for r, p in enumerate(params):
                if diverged[r] is not None:
                    p.fill_(math.nan)
        if k in marks:
            record()
            if progress is not None:
                progress(k / cfg.steps)
    excess_t, val_t = torch.stack(excess, 1), torch.stack(val, 1)
    half = excess_t[: len(cfg.lrs), excess_t.shape[1] // 2:]
    measured = half.mean(1)
    predicted = torch.tensor([predicted_floor(task, lr, cfg.batch_size) for lr in cfg.lrs], dtype=torch.float64)
    first = min(((k, r) for r, k in enumerate(diverged) if k is not None), default=None)
    labels = [f"constant η = {lr:g}" for lr in cfg.lrs] + [f"{cfg.decay} from η = {peak:g}"]
    return FloorRuns(cfg, task, torch.tensor(marks[: excess_t.shape[1]]), excess_t, val_t,
                     float(0.5 * ((task.x_val @ task.w_star - task.y_val) ** 2).mean()), measured, predicted,
                     torch.tensor(lrs, dtype=torch.float64), diverged_at=first and first[0],
                     diverged_run=first and labels[first[1]])
