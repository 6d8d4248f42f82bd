"""Plot functions, one module per chapter: ``plot_x(result, ax=None) -> Axes``, no training, no ``plt.show()``."""
from __future__ import annotations

import matplotlib.pyplot as plt
from matplotlib.axes import Axes

__all__ = ["axes_or_new"]


def axes_or_new(ax: Axes | None) -> Axes:
    """``ax`` itself, or the axes of a new figure: a plot never draws onto some other current axes."""
    return ax if ax is not None else plt.figure().add_subplot()
