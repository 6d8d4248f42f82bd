"""Chapter 6's figure of which numbers share one mean and variance: a (B, channels, H·W) tensor drawn as a cube
(as in Wu & He 2018, Fig. 2), the numbers of one statistics set filled in a strong colour, the borders between
sets drawn heavy."""
from __future__ import annotations

from typing import Sequence

import numpy as np
from matplotlib.axes import Axes
from matplotlib.collections import LineCollection, PolyCollection

from ..normalization.axes import AxesLayout
from ..style import PALETTE
from . import axes_or_new

__all__ = ["NAMES", "plot_norm_axes", "plot_norm_axes_panels"]

NAMES = {"batch": "Batch norm", "layer": "Layer norm", "instance": "Instance norm", "group": "Group norm"}
STRONG, LIGHT = PALETTE[0], "#E8EEF4"
DEPTH = np.array([0.55, 0.42])  # one example further back in the batch moves the drawing this far (x, y)


def _face(ids: np.ndarray, hot: np.ndarray, corner, u, v):
    """Polygons and colours of a face of cells ``ids[i, j]`` (i along ``u``, j along ``v``), and heavy edges where
    the set changes or the face ends."""
    corner, u, v = (np.asarray(a, dtype=float) for a in (corner, u, v))
    polys, colours, heavy = [], [], []
    ni, nj = ids.shape
    for i in range(ni):
        for j in range(nj):
            p = corner + i * u + j * v
            polys.append([p, p + u, p + u + v, p + v])
            colours.append(STRONG if hot[i, j] else LIGHT)
            if i == 0 or ids[i - 1, j] != ids[i, j]:
                heavy.append([p, p + v])
            if i == ni - 1:
                heavy.append([p + u, p + u + v])
            if j == 0 or ids[i, j - 1] != ids[i, j]:
                heavy.append([p, p + u])
            if j == nj - 1:
                heavy.append([p + v, p + u + v])
    return polys, colours, heavy


def plot_norm_axes(result: AxesLayout, ax: Axes | None = None, title: bool = True) -> Axes:
    """One cube: channels across, positions H·W down, the batch B into the page; one statistics set filled."""
    ax = axes_or_new(ax)
    c = result.config
    ids, hot = result.set_id.numpy(), result.highlight.numpy()  # (B, channels, S)
    b, ch, s = ids.shape
    d = DEPTH
    # Position s = 0 is the top row; the front face is example 0, the top face position 0, the right face the
    # last channel: the three faces a reader sees.
    faces = [_face(ids[0, :, ::-1], hot[0, :, ::-1], (0, 0), (1, 0), (0, 1)),
             _face(ids[:, :, 0].T, hot[:, :, 0].T, (0, s), (1, 0), d),
             _face(ids[:, -1, ::-1], hot[:, -1, ::-1], (ch, 0), d, (0, 1))]
    for polys, colours, heavy in faces:
        ax.add_collection(PolyCollection(polys, facecolors=colours, edgecolors="#9AA5B1", linewidths=0.6))
        ax.add_collection(LineCollection(heavy, colors="#1A1A1A", linewidths=2.0))
    pad = 0.25
    ax.annotate("", xy=(ch, -0.45), xytext=(0, -0.45), arrowprops=dict(arrowstyle="->", lw=1.6))
    ax.text(ch / 2, -0.6, f"channels ({ch})", ha="center", va="top", fontsize=13)
    ax.annotate("", xy=(-0.45, 0), xytext=(-0.45, s), arrowprops=dict(arrowstyle="->", lw=1.6))
    ax.text(-0.6, s / 2, f"H·W ({c.height}×{c.width})", ha="right", va="center", rotation=90, fontsize=13)
    top = np.array([0.0, s]) + np.array([-0.3, 0.15])
    ax.annotate("", xy=tuple(top + b * d), xytext=tuple(top), arrowprops=dict(arrowstyle="->", lw=1.6))
    ax.text(*(top + b * d + np.array([0.1, 0.05])), f"batch B ({b})", ha="left", va="bottom", fontsize=13)
    ax.set_xlim(-1.3, ch + b * d[0] + pad)
    ax.set_ylim(-1.4, s + b * d[1] + 1.1)
    ax.set_aspect("equal")
    ax.axis("off")
    if title:
        extra = f" (groups = {c.groups})" if c.method == "group" else ""
        ax.set_title(f"{NAMES[c.method]}{extra}\neach mean over {result.count} numbers", fontsize=15)
    return ax


def plot_norm_axes_panels(results: Sequence[AxesLayout], axes: Sequence[Axes]) -> Sequence[Axes]:
    """The chapter's four-panel figure: one cube per method, side by side."""
    if len(results) != len(axes):
        raise ValueError(f"one axes per layout: got {len(results)} layouts and {len(axes)} axes")
    for r, ax in zip(results, axes):
        plot_norm_axes(r, ax)
    return axes
