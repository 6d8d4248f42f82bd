"""Chapter 6, Experiment 1: which numbers of a (B, channels, H, W) tensor share one mean c_𝓑 and variance σ²_𝓑.

Batch norm computes one (c_𝓑, σ²_𝓑) per channel over the batch and every position (B·H·W numbers); layer norm one
per example over its channels and positions (channels·H·W); instance norm one per example and channel (H·W);
group norm one per example and group of channels/groups channels ((channels/groups)·H·W). Hence group norm with
groups = 1 is layer norm over (channels, H, W) and with groups = channels it is instance norm:
:func:`equivalences` measures both with PyTorch's layers (Wu & He 2018, "Group normalization", Fig. 2).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..seeding import generator

__all__ = ["METHODS", "AxesConfig", "AxesLayout", "stat_count", "stat_sets", "count_table", "layout",
           "Equivalences", "equivalences"]

METHODS = ("batch", "layer", "instance", "group")


def _check(method: str, batch: int, channels: int, groups: int, height: int, width: int) -> None:
    if method not in METHODS:
        raise ValueError(f"method is one of {METHODS}, not {method!r}")
    if min(batch, channels, groups, height, width) < 1:
        raise ValueError("batch size B, channels, groups, height and width must all be at least 1")
    if channels % groups:
        raise ValueError(f"group norm splits the channels into equal groups: {channels} channels cannot be split "
                         f"into {groups} groups")


def stat_count(method: str, batch: int, channels: int, groups: int, height: int, width: int) -> int:
    """How many numbers each mean c_𝓑 (and variance σ²_𝓑) of ``method`` is computed from (Chapter 6)."""
    _check(method, batch, channels, groups, height, width)
    spatial = height * width
    return {"batch": batch * spatial, "layer": channels * spatial, "instance": spatial,
            "group": channels // groups * spatial}[method]


def stat_sets(method: str, batch: int, channels: int, groups: int, height: int, width: int) -> int:
    """How many separate (c_𝓑, σ²_𝓑) pairs ``method`` computes on one (B, channels, H, W) batch."""
    _check(method, batch, channels, groups, height, width)
    return {"batch": channels, "layer": batch, "instance": batch * channels, "group": batch * groups}[method]


def count_table(batch: int, channels: int, groups: int, height: int, width: int) -> tuple[tuple[str, int, int], ...]:
    """(method, numbers per mean, means per batch) for each of :data:`METHODS`."""
    return tuple((m, stat_count(m, batch, channels, groups, height, width),
                  stat_sets(m, batch, channels, groups, height, width)) for m in METHODS)


@dataclass(frozen=True)
class AxesConfig:
    """The tensor drawn (B, channels, H, W) and the normalization whose statistics are shown."""

    method: str = "batch"
    batch: int = 4  # B
    channels: int = 8
    groups: int = 2  # used by group norm only
    height: int = 2
    width: int = 2

    def __post_init__(self):
        _check(self.method, self.batch, self.channels, self.groups, self.height, self.width)
        if self.batch * self.channels * self.height * self.width > 4096:
            raise ValueError("the figure draws every number: keep B · channels · H · W at most 4096")


@dataclass(frozen=True, eq=False)
class AxesLayout:
    """``set_id`` (B, channels, H·W): which (c_𝓑, σ²_𝓑) each number shares; ``highlight``: the set drawn strong
    (the one holding example 0, channel 0); ``count`` numbers per set, ``sets`` sets."""

    config: AxesConfig
    set_id: torch.Tensor
    highlight: torch.Tensor
    count: int
    sets: int


def layout(config: AxesConfig = AxesConfig()) -> AxesLayout:
    """Label every number of the (B, channels, H·W) tensor with the statistics set it belongs to."""
    c = config
    n = torch.arange(c.batch).view(-1, 1, 1)
    ch = torch.arange(c.channels).view(1, -1, 1)
    shape = (c.batch, c.channels, c.height * c.width)
    per_group = c.channels // c.groups
    ids = {"batch": ch + 0 * n, "layer": n + 0 * ch, "instance": n * c.channels + ch,
           "group": n * c.groups + ch // per_group}[c.method].expand(shape).contiguous()
    return AxesLayout(config=c, set_id=ids, highlight=ids == ids[0, 0, 0],
                      count=stat_count(c.method, c.batch, c.channels, c.groups, c.height, c.width),
                      sets=stat_sets(c.method, c.batch, c.channels, c.groups, c.height, c.width))


@dataclass(frozen=True)
class Equivalences:
    """Largest |difference| between PyTorch's layers, each at initialization (scale 1, shift 0), in train mode."""

    group1_vs_layer: float  # nn.GroupNorm(1, channels) against nn.LayerNorm([channels, H, W])
    group_channels_vs_instance: float  # nn.GroupNorm(channels, channels) against nn.InstanceNorm2d(…, affine=True)
    group_vs_layer_on_groups: float  # nn.GroupNorm(groups, channels) against LayerNorm over each group's reshaped block
    dtype: str


def equivalences(batch: int = 8, channels: int = 8, groups: int = 4, height: int = 5, width: int = 5, seed: int = 0,
                 dtype: torch.dtype = torch.float32, device: torch.device | str = "cpu") -> Equivalences:
    """Measure group norm = layer norm (groups = 1), = instance norm (groups = channels), and per group in general."""
    _check("group", batch, channels, groups, height, width)
    if height * width < 2:
        raise ValueError("instance norm needs at least 2 positions (H · W ≥ 2) to compute a variance")
    g = generator(seed)
    x = (3.0 * torch.randn(batch, channels, height, width, generator=g, dtype=torch.float64) + 1.5)
    x = x.to(device=device, dtype=dtype)
    kw = dict(device=device, dtype=dtype)
    with torch.no_grad():
        gn1 = nn.GroupNorm(1, channels, **kw)(x)
        ln = nn.LayerNorm([channels, height, width], **kw)(x)
        gnc = nn.GroupNorm(channels, channels, **kw)(x)
        inn = nn.InstanceNorm2d(channels, affine=True, **kw)(x)
        gng = nn.GroupNorm(groups, channels, **kw)(x)
        per = channels // groups
        lng = nn.LayerNorm([per, height, width], elementwise_affine=False, **kw)(
            x.view(batch * groups, per, height, width)).view_as(x)
    return Equivalences(group1_vs_layer=float((gn1 - ln).abs().max()),
                        group_channels_vs_instance=float((gnc - inn).abs().max()),
                        group_vs_layer_on_groups=float((gng - lng).abs().max()), dtype=str(dtype).replace("torch.", ""))
