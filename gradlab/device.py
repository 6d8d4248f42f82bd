"""The one place that picks where experiments run: CUDA, then Apple's MPS, then the CPU."""
from __future__ import annotations

import os
from functools import lru_cache

import torch

__all__ = ["pick_device", "device_name", "real_dtype", "sync"]


@lru_cache(maxsize=None)
def pick_device() -> torch.device:
    """Return the best available device; ``GRADLAB_DEVICE=cpu`` (or ``cuda``, ``mps``) overrides."""
    forced = os.environ.get("GRADLAB_DEVICE", "").strip().lower()
    if forced:
        return torch.device(forced)
    if torch.cuda.is_available():
        return torch.device("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def device_name(device: torch.device | None = None) -> str:
    """A human-readable name of the device, for the setup cell's printout."""
    device = device or pick_device()
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    return device.type


def real_dtype(device: torch.device | str) -> torch.dtype:
    """float64 for exact comparisons, except on Apple's MPS, which has no float64."""
    return torch.float32 if torch.device(device).type == "mps" else torch.float64


def sync(device: torch.device | str) -> None:
    """Wait for queued GPU work, so a wall-clock timing covers the work and not just its launch."""
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)
