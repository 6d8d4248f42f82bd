"""Seeding: notebooks seed once at the top; library code takes an explicit generator or seed."""
from __future__ import annotations

import random

import numpy as np
import torch

__all__ = ["seed_everything", "generator"]


def seed_everything(seed: int = 0) -> None:
    """Seed Python, NumPy and PyTorch (all devices). Called by a notebook's setup cell, never by the library."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def generator(seed: int, device: torch.device | str = "cpu") -> torch.Generator:
    """A fresh ``torch.Generator`` seeded with ``seed``: compute functions draw all randomness from one."""
    g = torch.Generator(device=device)
    g.manual_seed(int(seed))
    return g
