"""What Adam's second moment is, and is not (Chapter 3, Q42): it is not the Hessian's diagonal.

Adam divides by √ŝ, where ŝ averages the squared gradient, g². On L2-regularized logistic regression
the Hessian diagonal is known in closed form, so the two can be set side by side at the same point.
Adam is started at the minimizer w*, so that ŝ (bias-corrected, unbiased from the first step) holds only
what the gradient does there. With full-batch gradients the gradient is zero at w*; ŝ keeps only the
tiny gradients of Adam's first steps away from w* (about 1e-5 in √ŝ), while the curvature is not small.
With mini-batches ŝ settles at the gradient noise, E[g_B²] = Var(g_i)/B at the minimum: it falls with the
batch size, which the curvature does not. For this model the per-example gradient variance is close to the
Hessian of the data term, H_ii − α (the Fisher information of a well-fitted logistic model; the penalty adds
curvature α but no noise), so √ŝ ∝ √((H_ii − α)/B): the square root of the data's curvature, not the
curvature. Both scale like the loss, which is why Adam's step does not change when the loss is multiplied
by a constant.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from .data import LogisticTask, logistic_task, minimize
from .modes import pick

__all__ = ["SecondMomentConfig", "SecondMoment", "hessian_diagonal", "adam_second_moment", "second_moment_vs_hessian"]


@dataclass(frozen=True)
class SecondMomentConfig:
    """Adam on L2-regularized logistic regression (breast cancer), full batch and mini-batches of ``batch``."""

    lr: float = 1e-3
    steps: int | None = None  # None: 1000, or 300 in fast mode, read when the experiment runs
    batches: tuple[int, ...] = (16, 128)
    l2: float = 0.01
    loss_scale: float = 1.0  # the loss multiplied by this constant


@dataclass
class SecondMoment:
    """√ŝ after training (full batch and mini-batches) beside the Hessian diagonal, per weight."""

    config: SecondMomentConfig
    hessian_diag: Tensor  # (d,) at the minimizer w*
    sqrt_v_full: Tensor  # (d,) √v̂ of full-batch Adam after ``steps``
    sqrt_v_batch: dict[int, Tensor]  # batch size -> (d,) √v̂ of mini-batch Adam after ``steps``
    noise_rms: dict[int, Tensor]  # batch size -> (d,) √(Var(g_i)/B) at w*, the gradient noise of a batch
    grad_norm_full: float  # ‖∇f‖ where full-batch Adam ended

    @property
    def data_curvature(self) -> Tensor:
        """H_ii − α: the diagonal of the data term's Hessian alone (the penalty's curvature makes no noise)."""
        return self.hessian_diag - self.config.l2 * self.config.loss_scale

    def slope(self, v: Tensor) -> float:
        """The least-squares slope of log √ŝ against log(H_ii − α) across weights: 1 if ∝ the curvature, ½ if ∝ its root."""
        a, b = torch.log(v), torch.log(self.data_curvature)
        a, b = a - a.mean(), b - b.mean()
        return float((a * b).sum() / (b * b).sum())

    def correlation(self, v: Tensor) -> float:
        """Pearson correlation, across weights, of log √ŝ with log(H_ii − α)."""
        a, b = torch.log(v), torch.log(self.data_curvature)
        a, b = a - a.mean(), b - b.mean()
        return float((a * b).sum() / (a.norm() * b.norm()))


def hessian_diagonal(task: LogisticTask, w: Tensor, scale: float = 1.0) -> Tensor:
    """diag ∇²f(w) = scale · (Σ_i p_i(1 − p_i) x_i² / N + l2), in closed form."""
    p = torch.sigmoid(task.features @ w)
    return scale * ((p * (1 - p)) @ task.features ** 2 / task.n + task.l2)


def adam_second_moment(opt: torch.optim.Adam, param: Tensor) -> Tensor:
    """v̂ = v / (1 − β2^k): the bias-corrected second moment Adam divides by, read from its state."""
    state = opt.state[param]
    beta2 = opt.param_groups[0]["betas"][1]
    return state["exp_avg_sq"] / (1 - beta2 ** float(state["step"]))


def _train(task: LogisticTask, w0: Tensor, cfg: SecondMomentConfig, batch: int | None,
           gen: torch.Generator) -> tuple[Tensor, Tensor]:
    w = w0.clone().requires_grad_(True)
    opt = torch.optim.Adam([w], lr=cfg.lr)
    for _ in range(cfg.steps if cfg.steps is not None else pick(1000, 300)):
        idx = None if batch is None else torch.randint(task.n, (batch,), generator=gen)
        opt.zero_grad()
        (cfg.loss_scale * task.loss(w, idx)).backward()
        opt.step()
    return w.detach(), adam_second_moment(opt, w)


def second_moment_vs_hessian(cfg: SecondMomentConfig, seed: int = 0) -> SecondMoment:
    """Run Adam from the minimizer w*, full-batch and with mini-batches; compare √v̂ with the Hessian diagonal."""
    task = logistic_task(l2=cfg.l2)
    task = LogisticTask(task.features.double(), task.labels.double(), cfg.l2)
    gen = torch.Generator().manual_seed(seed)
    w_star, _ = minimize(task)
    w_full, v_full = _train(task, w_star, cfg, None, gen)
    v_batch = {b: _train(task, w_star, cfg, b, gen)[1].sqrt() for b in cfg.batches}
    per_example = cfg.loss_scale * task.per_example_grads(w_star)
    # with replacement, E[g_B²] = (E g)² + Var(g_i)/B per coordinate; E g = 0 at w*
    noise = {b: (per_example.var(dim=0, correction=0) / b).sqrt() for b in cfg.batches}
    w = w_full.clone().requires_grad_(True)
    (cfg.loss_scale * task.loss(w)).backward()
    return SecondMoment(cfg, hessian_diagonal(task, w_star, cfg.loss_scale), v_full.sqrt(), v_batch, noise,
                        float(w.grad.norm()))
