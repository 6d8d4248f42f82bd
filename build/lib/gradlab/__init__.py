"""gradlab: the experiments, plots and widgets of Gradient Lab.

Importing it has no side effects: no seeding, no style change, no computation.
A chapter's setup cell calls :func:`setup`.
"""
from __future__ import annotations

from .device import device_name, pick_device
from .modes import fast_mode, pick, static_mode
from .seeding import generator, seed_everything
from .style import use_book_style

__version__ = "0.1.0"
__all__ = [
    "pick_device", "device_name", "fast_mode", "static_mode", "pick",
    "seed_everything", "generator", "use_book_style", "setup",
]


def setup(seed: int = 0):
    """What every chapter's first cell does: style, seed, device. Returns the device."""
    use_book_style()
    seed_everything(seed)
    device = pick_device()
    mode = "fast" if fast_mode() else "full"
    print(f"gradlab {__version__} | device: {device_name(device)} | {mode} mode | seed {seed}")
    return device
