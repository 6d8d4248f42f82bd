"""Chapter 5, Experiment 4: dead ReLUs on the digits, made by one large step or by a negative bias.

A ReLU unit is dead on a data set when its pre-activation is negative for every example: its output is 0,
its derivative is 0, and so is the gradient on its incoming weights and bias. The experiment shocks a plain
(non-residual) MLP built by :mod:`gradlab.gradients.nets`, He-initialized, trained by plain SGD (no momentum,
no weight decay, so nothing but the gradient moves a weight) on mini-batches of the digits:

- ``cause="big_step"``: after ``warm_epochs`` at η, one full-batch update with η · ``size``;
- ``cause="negative_bias"``: after ``warm_epochs`` (0: at initialization), every hidden layer's bias is set to
  b = −c with c = ``size``.

Then it trains ``recovery_epochs`` more at η. The units dead on the whole training set are counted by
:func:`gradlab.diagnostics.unit_census` (forward hooks) before the shock, just after it and after the
recovery training; a unit counts as revived when it was dead after the shock and is not at the end (for a
hidden layer past the first, its weights get no gradient, but the layers below it keep changing its inputs).
A control run, the same network and the same mini-batches without the shock, gives the accuracy to recover.
With Leaky ReLU (ω = ``negative_slope`` > 0) no unit is exactly dead: the counts are of units negative on
every example, which still receive ω times the gradient.
"""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F

from ..batched_mlp import DigitsSplit, digits_split
from ..diagnostics import UnitCensus, unit_census
from ..seeding import generator
from .nets import DeepMLP, NetConfig, build

__all__ = ["CAUSES", "DeadReluConfig", "DeadRelu", "dead_relu"]

CAUSES = ("big_step", "negative_bias")
PHASES = ("before the shock", "just after it", "after recovery training")


@dataclass(frozen=True)
class DeadReluConfig:
    """The shock (cause and size), Leaky ReLU's ω (0: ReLU), the network and its training."""

    cause: str = "big_step"
    size: float = 100.0  # big step: the shock's η is size · lr; negative bias: c in b = −c
    negative_slope: float = 0.0  # ω
    depth: int = 5  # D, layers with weights: D − 1 hidden ReLU layers
    width: int = 64
    lr: float = 0.05
    batch_size: int = 64
    warm_epochs: int = 10
    recovery_epochs: int = 10
    seed: int = 0

    def __post_init__(self):
        if self.cause not in CAUSES:
            raise ValueError(f"cause is one of {CAUSES}, not {self.cause!r}")
        if not (self.size > 0 and math.isfinite(self.size)):
            raise ValueError(f"the shock's size must be a positive number, got {self.size}")
        if not 0 <= self.negative_slope < 1:
            raise ValueError(f"Leaky ReLU's slope ω is in [0, 1) (0 is ReLU), got {self.negative_slope}")
        if self.depth < 2:
            raise ValueError(f"depth counts the layers with weights: at least 2 (one hidden layer), got {self.depth}")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise ValueError(f"the learning rate η must be a positive number, got {self.lr}")
        if self.warm_epochs < 0 or self.recovery_epochs < 1 or self.batch_size < 1 or self.width < 1:
            raise ValueError("warm_epochs ≥ 0, recovery_epochs ≥ 1, batch_size ≥ 1 and width ≥ 1 are needed")

    def net(self) -> NetConfig:
        act = "relu" if self.negative_slope == 0 else "leaky_relu"
        return NetConfig(width=self.width, depth=self.depth, activation=act, init="he",
                         negative_slope=self.negative_slope if self.negative_slope > 0 else 0.01)


@dataclass(frozen=True, eq=False)
class DeadRelu:
    """Dead units per hidden layer in each phase, and the losses of the shocked and the control run per epoch.

    ``dead`` and ``zero_fraction`` are (3 phases, hidden layers) fractions on the training set (NaN after a
    divergence); ``revived`` and ``killed`` count units per layer (dead after the shock and alive at the end,
    empty after a divergence; dead after the shock and not before). ``dead_grad`` is the largest |gradient|
    on the incoming weights and biases of the units dead after the shock, at the first recovery step (exactly
    0 for ReLU; NaN without dead units). ``epochs`` places each loss point, the shock's epoch twice (before,
    then after it); ``train_loss``, ``val_loss``, ``val_acc`` are (2, points): the shocked run, then the control.
    """

    config: DeadReluConfig
    layers: tuple[str, ...]
    dead: torch.Tensor
    zero_fraction: torch.Tensor
    revived: tuple[int, ...]
    killed: tuple[int, ...]
    units: int
    dead_grad: float
    epochs: torch.Tensor
    train_loss: torch.Tensor
    val_loss: torch.Tensor
    val_acc: torch.Tensor
    recovered_in: int | None  # recovery epochs until the shocked run's accuracy is within 1 point of the control's
    diverged_at: int | None = None

    @property
    def shock_index(self) -> int:
        """The index in ``epochs`` of the first point after the shock."""
        return self.config.warm_epochs + 1


def _evaluate(model: DeepMLP, split: DigitsSplit) -> tuple[float, float, float]:
    with torch.no_grad():
        train = float(F.cross_entropy(model(split.x_train), split.y_train))
        out = model(split.x_val)
        return train, float(F.cross_entropy(out, split.y_val)), float((out.argmax(1) == split.y_val).float().mean())


def _epoch(model: DeepMLP, opt: torch.optim.Optimizer, split: DigitsSplit, batch: int, g: torch.Generator,
           first_step: Callable[[], None] | None = None) -> int | None:
    """One epoch of mini-batch SGD; the index of the step whose loss was not finite, or None."""
    n = split.x_train.shape[0]
    order = torch.randperm(n, generator=g).to(split.x_train.device)
    for k, i in enumerate(range(0, n, batch)):
        idx = order[i:i + batch]
        loss = F.cross_entropy(model(split.x_train[idx]), split.y_train[idx])
        if not math.isfinite(float(loss.detach())):
            return k
        opt.zero_grad()
        loss.backward()
        if k == 0 and first_step is not None:
            first_step()
        opt.step()
    return None


def _dead_grad(model: DeepMLP, census: UnitCensus) -> float:
    """The largest |gradient| on the weights and biases feeding the units ``census`` found dead."""
    worst = math.nan
    for layer, dead in zip(model.linears(), census.dead):  # hidden layer i is fed by linear layer i
        if dead.any() and layer.weight.grad is not None:
            g = torch.cat([layer.weight.grad[dead].flatten(), layer.bias.grad[dead]]).abs().max()
            worst = max(float(g), 0.0 if math.isnan(worst) else worst)
    return worst


def _shock(model: DeepMLP, config: DeadReluConfig, split: DigitsSplit) -> None:
    c = config
    if c.cause == "negative_bias":
        with torch.no_grad():
            for layer in model.linears()[:-1]:
                layer.bias.fill_(-c.size)
        return
    model.zero_grad()
    F.cross_entropy(model(split.x_train), split.y_train).backward()
    with torch.no_grad():
        for p in model.parameters():
            p.sub_(p.grad, alpha=c.size * c.lr)
    model.zero_grad()


def dead_relu(config: DeadReluConfig = DeadReluConfig(), device: torch.device | str = "cpu",
              split: DigitsSplit | None = None, progress: Callable[[float], None] | None = None) -> DeadRelu:
    """Train, shock, count the dead units, train on (beside an unshocked control run) and count again."""
    c = config
    split = split if split is not None else digits_split(0, device=device)
    model = build(c.net(), seed=c.seed, device=device)
    g = generator(c.seed)
    opt = torch.optim.SGD(model.parameters(), lr=c.lr)
    total = c.warm_epochs + 2 * c.recovery_epochs
    report = progress or (lambda f: None)
    history = [_evaluate(model, split)]
    steps_per_epoch = math.ceil(split.x_train.shape[0] / c.batch_size)
    diverged = None
    for e in range(c.warm_epochs):
        bad = _epoch(model, opt, split, c.batch_size, g)
        if bad is not None and diverged is None:
            diverged = e * steps_per_epoch + bad
        history.append(_evaluate(model, split))
        report((e + 1) / total)
    before = unit_census(model, split.x_train)
    control, g_control = copy.deepcopy(model), torch.Generator()
    g_control.set_state(g.get_state())  # the control sees the same mini-batches
    opt_control = torch.optim.SGD(control.parameters(), lr=c.lr)
    _shock(model, c, split)
    shocked = [*history, _evaluate(model, split)]
    controlled = [*history, history[-1]]
    after = unit_census(model, split.x_train)
    grads: list[float] = []
    runs = ((model, opt, g, shocked), (control, opt_control, g_control, controlled))
    for e in range(c.recovery_epochs):
        for r, (net, o, gen, rows) in enumerate(runs):
            hook = (lambda: grads.append(_dead_grad(model, after))) if (r == 0 and e == 0) else None
            bad = None if (r == 0 and diverged is not None) else _epoch(net, o, split, c.batch_size, gen, hook)
            if r == 0 and bad is not None and diverged is None:
                diverged = (c.warm_epochs + e) * steps_per_epoch + bad + 1  # + 1: the shock was a step too
            rows.append((math.nan,) * 3 if (r == 0 and diverged is not None) else _evaluate(net, split))
            report((c.warm_epochs + 2 * e + r + 1) / total)
    end = unit_census(model, split.x_train)
    censuses = (before, after, end)
    dead = torch.stack([x.dead_fraction() for x in censuses])
    zero = torch.stack([x.zero_fraction for x in censuses])
    if diverged is not None:  # a NaN output is not "≤ 0": a diverged network's census means nothing
        first_bad = 1 if diverged <= (c.warm_epochs * steps_per_epoch) else 2
        dead[first_bad:], zero[first_bad:] = math.nan, math.nan
    val = torch.tensor([[row[2] for row in rows] for rows in (shocked, controlled)])
    gap = (val[1, c.warm_epochs + 2:] - val[0, c.warm_epochs + 2:]).tolist()
    recovered_in = next((e + 1 for e, d in enumerate(gap) if d <= 0.01), None)
    x = list(range(c.warm_epochs + 1)) + [c.warm_epochs + e for e in range(c.recovery_epochs + 1)]
    return DeadRelu(
        config=c, layers=after.layers, dead=dead.double(), zero_fraction=zero.double(),
        revived=() if diverged is not None else tuple(int((a & ~b).sum()) for a, b in zip(after.dead, end.dead)),
        killed=tuple(int((a & ~b).sum()) for a, b in zip(after.dead, before.dead)), units=c.width,
        dead_grad=grads[0] if grads else math.nan, epochs=torch.tensor(x, dtype=torch.float64),
        train_loss=torch.tensor([[row[0] for row in rows] for rows in (shocked, controlled)], dtype=torch.float64),
        val_loss=torch.tensor([[row[1] for row in rows] for rows in (shocked, controlled)], dtype=torch.float64),
        val_acc=val.double(), recovered_in=recovered_in, diverged_at=diverged)
