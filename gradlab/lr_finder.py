"""The learning-rate range test (Chapter 4): sweep η upwards for a hundred or so steps, watch the loss.

:func:`find_lr` trains the reader's own model for ``steps`` mini-batches while η_k grows geometrically
from ``start_lr`` to ``end_lr``, records the loss at every step, and stops once the loss blows up. The
model and the optimizer are put back exactly as they were, so the test can be run before training.
Its two suggestions are heuristics, not theorems: a starting point for a search, to be checked by a run
(Smith 2017, "Cyclical learning rates for training neural networks", arXiv:1506.01186; Smith 2018,
"A disciplined approach to neural network hyper-parameters", arXiv:1803.09820).
"""
from __future__ import annotations

import copy
import math
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator

import numpy as np
import torch
from torch import Tensor, nn

__all__ = ["LRFinderResult", "find_lr"]


@dataclass(frozen=True)
class LRFinderResult:
    """One range test: η, the raw and smoothed loss at every step taken, why it stopped, and two suggestions.

    ``lrs[-1]`` is the η of the last step taken; after a divergence its loss may be infinite or NaN.
    ``steepest`` is the η where the smoothed loss falls fastest against log η, before its minimum
    (None when the minimum comes too early to tell); ``min_over_10`` is the η of the minimum divided by 10
    (the fastai rule). Both are heuristics (Smith 2017, 2018). When the sweep ends without stopping early,
    the minimum may just be the last η: sweep to a larger ``end_lr`` before trusting either.
    """

    lrs: tuple[float, ...]
    losses: tuple[float, ...]
    smoothed: tuple[float, ...]
    stopped_early: bool
    stop_reason: str | None
    steepest: float | None
    min_over_10: float


def find_lr(model: nn.Module, loss_fn: Callable[[Any, Any], Tensor], loader: Iterable,
            optimizer: torch.optim.Optimizer | None = None, *, start_lr: float = 1e-7, end_lr: float = 10.0,
            steps: int = 100, smoothing: float = 0.98, diverge_factor: float = 4.0,
            device: torch.device | str | None = None) -> LRFinderResult:
    """Run the learning-rate range test on ``model`` and put the model and ``optimizer`` back afterwards.

    ``loader`` yields ``(inputs, targets)`` pairs and is started again when it has fewer than ``steps``
    batches; ``loss_fn(model(inputs), targets)`` must be a scalar. One optimizer step per batch, at
    η_k = start_lr·(end_lr/start_lr)^(k/(steps−1)), set in every parameter group. The loss is smoothed by an
    exponential moving average with factor ``smoothing``, bias-corrected as in Adam; the sweep stops when
    the loss is not finite or the smoothed loss exceeds ``diverge_factor`` times its lowest value so far.
    Without an ``optimizer``, SGD with momentum 0.9. Batches go to ``device``, by default that of the
    model's first parameter. Parameters, buffers, gradients, train/eval modes and the optimizer's state
    are restored even when the loss function raises. Randomness (dropout, shuffling) comes from the
    global generators, as in ordinary training.
    """
    params = list(model.parameters())
    _check(params, start_lr, end_lr, steps, smoothing, diverge_factor)
    if optimizer is None:
        optimizer = torch.optim.SGD(params, lr=start_lr, momentum=0.9)
    device = torch.device(device) if device is not None else params[0].device
    lrs = [start_lr * (end_lr / start_lr) ** (k / (steps - 1)) for k in range(steps)]
    with _restored(model, optimizer):
        model.train()
        losses, smoothed, reason = _sweep(model, loss_fn, _pairs(loader, steps), optimizer, lrs, device,
                                          smoothing, diverge_factor)
    if not math.isfinite(losses[0]):
        raise ValueError(f"The loss was {losses[0]} at the first step, before η could matter: check the model, "
                         "the loss function and the data (the model has been restored).")
    lrs = lrs[:len(losses)]
    steepest, min_over_10 = _suggestions(lrs, smoothed)
    return LRFinderResult(tuple(lrs), tuple(losses), tuple(smoothed), reason is not None, reason, steepest,
                          min_over_10)


def _check(params: list[nn.Parameter], start_lr: float, end_lr: float, steps: int, smoothing: float,
           diverge_factor: float) -> None:
    if not any(p.requires_grad for p in params):
        raise ValueError("find_lr needs a model with trainable parameters; this one has none "
                         "(are they all frozen with requires_grad=False?).")
    if steps < 2:
        raise ValueError(f"find_lr needs steps >= 2 to sweep from start_lr to end_lr; got steps={steps}.")
    if not 0 < start_lr < end_lr:
        raise ValueError(f"find_lr sweeps η upwards, so it needs 0 < start_lr < end_lr; got start_lr={start_lr}, "
                         f"end_lr={end_lr}.")
    if not 0 <= smoothing < 1:
        raise ValueError(f"smoothing is the decay factor of a moving average, in [0, 1); got {smoothing}.")
    if not diverge_factor > 1:
        raise ValueError(f"diverge_factor must exceed 1 (the loss must grow to count as diverging); "
                         f"got {diverge_factor}.")


def _sweep(model: nn.Module, loss_fn: Callable[[Any, Any], Tensor], pairs: Iterator[tuple[Any, Any]],
           optimizer: torch.optim.Optimizer, lrs: list[float], device: torch.device, smoothing: float,
           diverge_factor: float) -> tuple[list[float], list[float], str | None]:
    """Train one step per pair at η = lrs[k]; return the raw and smoothed losses and why it stopped early."""
    losses, smoothed = [], []
    avg, best = 0.0, math.inf
    for k, (x, y) in enumerate(pairs):
        _set_lr(optimizer, lrs[k])
        optimizer.zero_grad()
        loss = _scalar(loss_fn(model(_to(x, device)), _to(y, device)))
        loss.backward()
        optimizer.step()
        value = loss.item()
        avg = smoothing * avg + (1 - smoothing) * value
        losses.append(value)
        smoothed.append(avg / (1 - smoothing ** (k + 1)))  # bias correction, as in Adam
        if not math.isfinite(value):
            return losses, smoothed, f"the loss became {value} at η = {lrs[k]:.3g} (step {k})"
        best = min(best, smoothed[-1])
        if smoothed[-1] > diverge_factor * best:
            return losses, smoothed, (f"the smoothed loss {smoothed[-1]:.3g} exceeded {diverge_factor:g} × its "
                                      f"minimum {best:.3g} at η = {lrs[k]:.3g} (step {k})")
    if len(losses) < len(lrs):
        return losses, smoothed, (f"the loader ran out after {len(losses)} batches; pass a loader that can be "
                                  "iterated again (a DataLoader or a list), not a one-shot iterator")
    return losses, smoothed, None


def _suggestions(lrs: list[float], smoothed: list[float]) -> tuple[float | None, float]:
    """Steepest descent of the smoothed loss against log η before its minimum, and the minimum's η / 10."""
    s = np.asarray(smoothed)
    # only the last loss can be infinite or NaN: the sweep stops there
    lowest = int(np.argmin(s if np.isfinite(s[-1]) else s[:-1]))
    if lowest < 2:
        return None, lrs[lowest] / 10
    # the first points average only a few losses and swing widely: skip the first tenth before the minimum
    skip = max(1, lowest // 10)
    slope = np.gradient(s[:lowest + 1], np.log(lrs[:lowest + 1]))
    return float(lrs[skip + int(np.argmin(slope[skip:]))]), lrs[lowest] / 10


def _pairs(loader: Iterable, steps: int) -> Iterator[tuple[Any, Any]]:
    """``steps`` (x, y) pairs from ``loader``, starting it again as often as needed."""
    taken = 0
    while taken < steps:
        before = taken
        for batch in loader:
            if not (isinstance(batch, (tuple, list)) and len(batch) == 2):
                size = f" of length {len(batch)}" if isinstance(batch, (tuple, list)) else ""
                raise TypeError(f"find_lr expects the loader to yield (inputs, targets) pairs; it yielded a "
                                f"{type(batch).__name__}{size}. "
                                "Wrap the loader so that each batch is a pair, e.g. a dict d as (d['x'], d['y']).")
            yield batch[0], batch[1]
            taken += 1
            if taken == steps:
                return
        if taken == before:
            if taken == 0:
                raise ValueError("find_lr got an empty loader: it yielded no batches. Pass a loader with at least "
                                 "one (inputs, targets) batch.")
            return  # a one-shot iterator, used up: find_lr says so in its stop reason


def _scalar(loss: Any) -> Tensor:
    if not isinstance(loss, Tensor):
        raise TypeError(f"loss_fn must return a tensor; it returned a {type(loss).__name__}.")
    if loss.dim() != 0:
        raise ValueError(f"loss_fn must return a scalar (0-dimensional) loss; it returned shape {tuple(loss.shape)}. "
                         "Average over the batch, e.g. reduction='mean'.")
    return loss


def _to(value: Any, device: torch.device) -> Any:
    return value.to(device) if isinstance(value, Tensor) else value


def _set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        if isinstance(group["lr"], Tensor):  # capturable / fused optimizers keep η in a tensor
            group["lr"].fill_(lr)
        else:
            group["lr"] = lr


@contextmanager
def _restored(model: nn.Module, optimizer: torch.optim.Optimizer) -> Iterator[None]:
    """Put back the model's parameters, buffers, gradients and modes and the optimizer's state on leaving."""
    saved = {n: t.detach().clone() for n, t in [*model.named_parameters(), *model.named_buffers()]}
    grads = [None if p.grad is None else p.grad.detach().clone() for p in model.parameters()]
    modes = [m.training for m in model.modules()]
    opt_state = copy.deepcopy(optimizer.state_dict())  # state_dict() holds references to the live tensors
    try:
        yield
    finally:
        with torch.no_grad():
            # by name, so a buffer that a forward pass replaced (rather than updated) is found too
            for n, t in [*model.named_parameters(), *model.named_buffers()]:
                t.copy_(saved[n])
        for p, g in zip(model.parameters(), grads):
            p.grad = g
        for m, mode in zip(model.modules(), modes):
            m.training = mode
        optimizer.load_state_dict(opt_state)
