"""Recalibrating batch normalization's running statistics, for any model (Chapter 6, Experiment 5).

The running mean and variance that batch normalization uses in evaluation mode are averages taken while the
weights were still changing, with a weight ψ (``momentum``) per batch. After training, after changing the weights
(pruning, quantization, averaging checkpoints) or when the data has shifted, they can be stale. Recalibrating
resets them and recomputes them with the final weights, by forward passes over data without gradients, with the
batch normalization layers in training mode and ``momentum=None`` (PyTorch's plain average over the batches seen)
and every other module in evaluation mode (dropout off, as when the statistics are used). Nothing else in the model
changes: its weights, every other module's state, each batch normalization's ``momentum`` and each module's
training flag are as they were.
"""
from __future__ import annotations

from typing import Iterable

import torch
from torch import nn

__all__ = ["batch_norm_layers", "recalibrate"]


def batch_norm_layers(model: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    """Every batch normalization layer of ``model`` that keeps running statistics (1d, 2d, 3d, lazy or synced)."""
    return [m for m in model.modules()
            if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]


def _inputs(batch):
    """The model's input in a batch from a loader: the batch itself, or the first item of a tuple or list."""
    if isinstance(batch, (tuple, list)) and batch:
        batch = batch[0]
    if not isinstance(batch, torch.Tensor):
        raise TypeError(f"recalibrate needs batches that are tensors, or tuples or lists whose first item is the "
                        f"input tensor (as a DataLoader over a TensorDataset gives); got {type(batch).__name__}")
    return batch


def recalibrate(model: nn.Module, loader: Iterable, max_batches: int | None = None,
                device: torch.device | str | None = None) -> int:
    """Recompute the running statistics of every batch normalization layer of ``model`` from ``loader``'s batches
    (at most ``max_batches``), as plain averages over the batches; returns how many batches were used.
    ``device``: where to send each input (default: where the model's first parameter or buffer is)."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"recalibrate needs a torch.nn.Module, got {type(model).__name__}")
    layers = batch_norm_layers(model)
    if not layers:
        raise ValueError("the model has no batch normalization layer with running statistics: nothing to "
                         "recalibrate (layer, group and instance normalization keep none)")
    if max_batches is not None and max_batches < 1:
        raise ValueError(f"max_batches must be at least 1 (or None for the whole loader), got {max_batches}")
    if device is None:
        first = next(iter(model.parameters()), None)
        first = first if first is not None else next(iter(model.buffers()), None)
        device = first.device if first is not None else "cpu"
    training = {m: m.training for m in model.modules()}
    momenta = [bn.momentum for bn in layers]
    saved = [(bn.running_mean.clone(), bn.running_var.clone(), bn.num_batches_tracked.clone()) for bn in layers]
    used = 0
    try:
        for bn in layers:
            bn.reset_running_stats()
            bn.momentum = None
        model.eval()  # dropout and the like off, as at evaluation: the statistics describe what evaluation feeds them
        for bn in layers:
            bn.train()
        with torch.no_grad():
            for batch in loader:
                if max_batches is not None and used >= max_batches:
                    break
                model(_inputs(batch).to(device))
                used += 1
        if used == 0:
            raise ValueError("the loader gave no batch: the running statistics cannot be recomputed from nothing")
    except BaseException:
        for bn, (mean, var, count) in zip(layers, saved):  # leave the model as it was
            bn.running_mean.copy_(mean)
            bn.running_var.copy_(var)
            bn.num_batches_tracked.copy_(count)
        raise
    finally:
        for bn, psi in zip(layers, momenta):
            bn.momentum = psi
        for m, flag in training.items():
            m.training = flag
    return used
