"""Chapter 6: batch, layer, group and instance normalization from scratch, a few lines each.

Every method computes a mean c and a variance σ² over some of a tensor's axes, normalizes,
ẑ = (z − c) / √(σ² + ε), and applies a learnable per-channel (or per-feature) scale and shift,
scale ⊙ ẑ + shift (PyTorch's ``weight`` and ``bias``; the papers' γ and β). They differ only in the axes:

- batch normalization: over the batch and every spatial position, per channel (Ioffe and Szegedy 2015);
- layer normalization: over the last dimensions of each example (Ba et al. 2016);
- group normalization: over a group of channels and every position, per example (Wu and He 2018);
- instance normalization: over the positions, per example and channel (Ulyanov et al. 2016).

A tensor is (B, channels) or (B, channels, *positions). The variance used to normalize is the biased one
(divided by the count n); batch normalization's running variance keeps the unbiased one (divided by n − 1), as
``torch.nn.BatchNorm`` does. ``tests/test_norm_scratch.py`` checks each function against ``torch.nn``, forward
and backward, in training and evaluation mode, running statistics included.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = ["RunningStats", "batch_norm", "batch_norm_backward", "layer_norm", "group_norm", "instance_norm",
           "normalize"]


def normalize(z: Tensor, dims: tuple[int, ...], eps: float) -> Tensor:
    """ẑ = (z − c) / √(σ² + ε), with the mean c and the biased variance σ² taken over ``dims``."""
    c = z.mean(dim=dims, keepdim=True)
    var = ((z - c) ** 2).mean(dim=dims, keepdim=True)
    return (z - c) / torch.sqrt(var + eps)


def _per_channel(v: Tensor | None, z: Tensor) -> Tensor | float:
    """A per-channel scale or shift, shaped to broadcast over (B, channels, *positions); None means none."""
    if v is None:
        return 1.0
    return v.reshape(1, -1, *([1] * (z.dim() - 2)))


@dataclass(frozen=True)
class RunningStats:
    """Batch normalization's running mean and (unbiased) variance per channel, and how many batches fed them."""

    mean: Tensor
    var: Tensor
    batches: int = 0

    @classmethod
    def fresh(cls, channels: int, dtype: torch.dtype = torch.float32, device: torch.device | str = "cpu"):
        """Mean 0 and variance 1, as ``nn.BatchNorm`` starts."""
        return cls(torch.zeros(channels, dtype=dtype, device=device), torch.ones(channels, dtype=dtype, device=device))


def batch_norm(z: Tensor, scale: Tensor | None, shift: Tensor | None, stats: RunningStats, training: bool,
               momentum: float | None = 0.1, eps: float = 1e-5) -> tuple[Tensor, RunningStats]:
    """Batch normalization of ``z`` (B, channels, *positions); returns the output and the new running statistics.

    Training: normalize with this batch's statistics, then update running ← (1 − ψ) running + ψ batch, where
    ψ is ``momentum`` (None: ψ = 1 / batches, a cumulative average). Evaluation: normalize with the running
    statistics, which stay as they are."""
    dims = (0, *range(2, z.dim()))
    if not training:
        c, var = stats.mean, stats.var
        z_hat = (z - _per_channel(c, z)) / torch.sqrt(_per_channel(var, z) + eps)
        return _per_channel(scale, z) * z_hat + (0.0 if shift is None else _per_channel(shift, z)), stats
    n = z.numel() // z.shape[1]
    if n < 2:
        raise ValueError(f"batch normalization in training mode needs more than one value per channel, got "
                         f"input of shape {tuple(z.shape)}: a batch of one example without positions")
    y = _per_channel(scale, z) * normalize(z, dims, eps) + (0.0 if shift is None else _per_channel(shift, z))
    with torch.no_grad():  # the running statistics are bookkeeping, outside the graph
        c, var = z.mean(dim=dims), z.var(dim=dims, unbiased=True)
        psi = 1.0 / (stats.batches + 1) if momentum is None else momentum
        new = RunningStats((1 - psi) * stats.mean + psi * c, (1 - psi) * stats.var + psi * var, stats.batches + 1)
    return y, new


def batch_norm_backward(grad_y: Tensor, z_hat: Tensor, inv_std: Tensor, scale: Tensor) -> tuple[Tensor, ...]:
    """Training-mode batch normalization's backward pass for (B, channels), in closed form: the gradients of the
    loss with respect to z, scale and shift, from ∂𝓛/∂y, ẑ, 1/√(σ² + ε) and scale.

    Because every example's c and σ² depend on every other example, ∂𝓛/∂z is not scale · ∂𝓛/∂y / √(σ² + ε)
    alone: two terms remove the parts of the gradient along the batch's mean and along ẑ."""
    g_shift = grad_y.sum(dim=0)
    g_scale = (grad_y * z_hat).sum(dim=0)
    g_hat = grad_y * scale
    g_z = inv_std * (g_hat - g_hat.mean(dim=0) - z_hat * (g_hat * z_hat).mean(dim=0))
    return g_z, g_scale, g_shift


def layer_norm(z: Tensor, normalized_dims: int, scale: Tensor | None = None, shift: Tensor | None = None,
               eps: float = 1e-5) -> Tensor:
    """Layer normalization over each example's last ``normalized_dims`` dimensions, with an elementwise scale and
    shift of that shape (``nn.LayerNorm(z.shape[-normalized_dims:])``)."""
    if not 1 <= normalized_dims <= z.dim():
        raise ValueError(f"layer normalization normalizes over 1 to {z.dim()} trailing dimensions of this input, "
                         f"not {normalized_dims}")
    y = normalize(z, tuple(range(z.dim() - normalized_dims, z.dim())), eps)
    return y * (1.0 if scale is None else scale) + (0.0 if shift is None else shift)


def group_norm(z: Tensor, groups: int, scale: Tensor | None = None, shift: Tensor | None = None,
               eps: float = 1e-5) -> Tensor:
    """Group normalization of (B, channels, *positions): the channels split into ``groups`` groups of
    consecutive channels, each example's group normalized over its channels and positions; then a per-channel
    scale and shift. One group is layer normalization over (channels, *positions); one channel per group is
    instance normalization."""
    b, channels = z.shape[:2]
    if groups < 1 or channels % groups:
        raise ValueError(f"the number of groups must divide the number of channels ({channels}), got {groups}")
    y = normalize(z.reshape(b, groups, -1), (2,), eps).reshape(z.shape)
    return _per_channel(scale, z) * y + (0.0 if shift is None else _per_channel(shift, z))


def instance_norm(z: Tensor, scale: Tensor | None = None, shift: Tensor | None = None, eps: float = 1e-5) -> Tensor:
    """Instance normalization of (B, channels, *positions): each example's each channel over its positions."""
    if z.dim() < 3:
        raise ValueError(f"instance normalization needs positions to average over: (B, channels, *positions), "
                         f"got shape {tuple(z.shape)}")
    y = normalize(z, tuple(range(2, z.dim())), eps)
    return _per_channel(scale, z) * y + (0.0 if shift is None else _per_channel(shift, z))
