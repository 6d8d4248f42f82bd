"""Chapter 6: a small CNN on the 8 × 8 digits with a choice of normalization, and the loop that trains it.

Each block is a 3 × 3 convolution (padding 1, so the maps stay 8 × 8), the normalization, then ReLU; after
``blocks`` of them, average pooling to ``pool`` × ``pool`` maps (default 4 × 4, i.e. 2 × 2 windows), flattened, and a
linear head to the C = 10 classes. Global average pooling (``pool=1``) throws away where on the 8 × 8 grid a stroke
is, which for the digits is most of what there is to know: after 3 epochs at B = 32 with Adam (η from 0.003 to
0.03) the network with global pooling reached 75–77% validation accuracy with batch norm and 20–69% with group norm;
with 4 × 4 pooling (η = 0.01), 97–99% with batch, group or layer norm and 95% without. The normalizations are
PyTorch's, each with a learnable per-channel scale and shift:

- "batch": ``nn.BatchNorm2d(channels)``, statistics c_𝓑, σ²_𝓑 per channel over the batch and the 8 × 8 positions;
- "group": ``nn.GroupNorm(groups, channels)``, per example over each group of channels and the positions;
- "layer": ``nn.GroupNorm(1, channels)``, per example over all channels and positions. It normalizes exactly as
  ``nn.LayerNorm([channels, 8, 8])`` does (a test checks), but keeps one scale and shift per channel, as every
  other choice here does, instead of one per channel *and position* (64 times as many), and does not tie the
  network to 8 × 8 inputs; this is layer norm for CNNs as Wu & He (2018) define it;
- "instance": ``nn.InstanceNorm2d(channels, affine=True)``, per example and channel over the positions;
- "none": nothing (the convolutions then keep their bias).

With a normalization the convolution has no bias: the shift that follows would cancel or duplicate it.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
import torch
import torch.nn.functional as F
from torch import nn

from ..batched_mlp import DigitsSplit
from ..batchnorm_stats import batch_norm_layers

__all__ = ["CONV_NORMS", "ConvNetConfig", "ConvNet", "build_convnet", "images", "train_epoch", "evaluate",
           "batch_norms"]

CONV_NORMS = ("batch", "group", "layer", "instance", "none")
SIDE = 8  # the digits are 8 × 8 images


@dataclass(frozen=True)
class ConvNetConfig:
    """The CNN: channels per block, number of blocks, normalization, groups (group norm), ψ and ε (batch norm)."""

    channels: int = 16
    blocks: int = 3
    norm: str = "batch"
    groups: int = 4  # group norm's number of groups (PyTorch's num_groups)
    momentum: float | None = 0.1  # ψ, PyTorch's BN momentum; None: the cumulative average
    eps: float = 1e-5  # ε
    pool: int = 4  # side of the pooled maps fed to the head; 1: global average pooling

    def __post_init__(self):
        if self.norm not in CONV_NORMS:
            raise ValueError(f"norm is one of {CONV_NORMS}, not {self.norm!r}")
        if self.channels < 1 or self.blocks < 1:
            raise ValueError(f"channels and blocks must be at least 1, got {self.channels} and {self.blocks}")
        if self.norm == "group" and (self.groups < 1 or self.channels % self.groups != 0):
            raise ValueError(f"groups must divide channels: {self.groups} groups cannot split {self.channels} "
                             f"channels evenly (try one of {[g for g in range(1, self.channels + 1) if self.channels % g == 0]})")
        if self.momentum is not None and not 0 < self.momentum <= 1:
            raise ValueError(f"the running statistics' weight ψ is in (0, 1] (or None: cumulative), got {self.momentum}")
        if self.pool not in (1, 2, 4, 8):
            raise ValueError(f"pool is the side of the pooled maps, one of 1, 2, 4, 8 (divisors of 8), got {self.pool}")
        if not (self.eps > 0 and math.isfinite(self.eps)):
            raise ValueError(f"ε must be a positive number, got {self.eps}")


def _norm(config: ConvNetConfig) -> nn.Module:
    c, ch = config, config.channels
    if c.norm == "batch":
        return nn.BatchNorm2d(ch, eps=c.eps, momentum=c.momentum)
    if c.norm == "group":
        return nn.GroupNorm(c.groups, ch, eps=c.eps)
    if c.norm == "layer":
        return nn.GroupNorm(1, ch, eps=c.eps)
    if c.norm == "instance":
        return nn.InstanceNorm2d(ch, eps=c.eps, affine=True)
    return nn.Identity()


class ConvNet(nn.Module):
    """``features`` (blocks of conv → norm → ReLU), average pooling to pool × pool, ``head`` (linear, 10 classes)."""

    def __init__(self, config: ConvNetConfig, classes: int = 10):
        super().__init__()
        self.config = config
        ch, bias = config.channels, config.norm == "none"
        layers: list[nn.Module] = []
        for b in range(config.blocks):
            layers += [nn.Conv2d(1 if b == 0 else ch, ch, 3, padding=1, bias=bias), _norm(config), nn.ReLU()]
        self.features = nn.Sequential(*layers)
        self.pool = nn.AvgPool2d(SIDE // config.pool)
        self.head = nn.Linear(ch * config.pool ** 2, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.pool(self.features(x)).flatten(1))


def build_convnet(config: ConvNetConfig = ConvNetConfig(), seed: int = 0, device: torch.device | str = "cpu",
                  dtype: torch.dtype = torch.float32) -> ConvNet:
    """A :class:`ConvNet` with PyTorch's default initialization drawn from its own generator (no global RNG)."""
    g = torch.Generator().manual_seed(int(seed))
    with torch.device("meta"):  # the layers' constructors would draw from the global generator
        model = ConvNet(config)
    model = model.to_empty(device="cpu")
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                # nn.Conv2d's and nn.Linear's own reset_parameters: weights and biases U(±1/√fan_in)
                nn.init.kaiming_uniform_(m.weight, a=math.sqrt(5), generator=g)
                if m.bias is not None:
                    bound = 1 / math.sqrt(m.weight[0].numel())
                    nn.init.uniform_(m.bias, -bound, bound, generator=g)
            elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm, nn.InstanceNorm2d)):
                m.reset_parameters()  # scale 1, shift 0, running statistics 0 and 1
    return model.to(device=device, dtype=dtype)


def images(x: torch.Tensor) -> torch.Tensor:
    """The digits' 64 standardized features as (B, 1, 8, 8) images."""
    return x.reshape(-1, 1, SIDE, SIDE)


batch_norms = batch_norm_layers  # the model's batch-norm layers, input to output


def train_epoch(model: nn.Module, opt: torch.optim.Optimizer, split: DigitsSplit, batch_size: int,
                g: torch.Generator, drop_last: bool = True) -> int | None:
    """One epoch of mini-batches in a random order from ``g``; the step whose loss was not finite, or None.

    ``drop_last``: the ragged last batch is skipped, so that every step uses exactly B examples (a batch of one
    would stop batch norm)."""
    model.train()
    x, y = images(split.x_train), split.y_train
    n = x.shape[0]
    order = torch.randperm(n, generator=g).to(x.device)
    stop = n - n % batch_size if drop_last and n >= batch_size else n
    for k, i in enumerate(range(0, stop, batch_size)):
        idx = order[i:i + batch_size]
        loss = F.cross_entropy(model(x[idx]), y[idx])
        if not math.isfinite(float(loss.detach())):
            return k
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return None


def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, train_mode: bool = False,
             batch_size: int | None = None, keep_running: bool = True) -> tuple[float, float]:
    """(loss, accuracy) on images ``x``: in eval mode (running statistics), or in train mode on consecutive
    batches of ``batch_size`` (batch statistics; a last batch of one is merged into the one before). With ``keep_running`` the running statistics are restored
    afterwards: evaluating in train mode would otherwise update them."""
    saved = {k: v.clone() for k, v in model.state_dict().items()} if (train_mode and keep_running) else None
    was_training = model.training
    model.train(train_mode)
    n = x.shape[0]
    size = batch_size or n
    loss, correct = 0.0, 0
    # a ragged last batch of one joins the batch before it: batch norm 1d cannot normalize one example
    bounds = list(range(0, n, size)) + [n]
    if len(bounds) > 2 and n - bounds[-2] == 1 and size > 1:
        bounds.pop(-2)
    with torch.no_grad():
        for i, j in zip(bounds[:-1], bounds[1:]):
            out = model(x[i:j])
            loss += float(F.cross_entropy(out, y[i:j], reduction="sum"))
            correct += int((out.argmax(1) == y[i:j]).sum())
    model.train(was_training)
    if saved is not None:
        model.load_state_dict(saved)
    return loss / n, correct / n
