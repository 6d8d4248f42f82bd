"""The two switches read from the environment, in one place.

``GRADLAB_FAST=1`` shrinks every experiment so the test suite runs quickly; the
published site is built without it (full mode).
``GRADLAB_STATIC=1`` is set by the book build: widgets then render as
kernel-free figures whose controls swap results precomputed over a grid.
``GRADLAB_PREFETCH=0`` turns off a live widget's drawing of the neighbouring settings while the
kernel is idle (on by default; the latency benchmark turns it off to measure cold redraws).
"""
from __future__ import annotations

import os
from typing import TypeVar

__all__ = ["fast_mode", "static_mode", "prefetch_enabled", "pick"]

T = TypeVar("T")
_TRUE = {"1", "true", "yes", "on"}


def fast_mode() -> bool:
    """True when ``GRADLAB_FAST`` is set: experiments run shrunk (tests, CI)."""
    return os.environ.get("GRADLAB_FAST", "").strip().lower() in _TRUE


def static_mode() -> bool:
    """True when ``GRADLAB_STATIC`` is set: the book build renders kernel-free figures."""
    return os.environ.get("GRADLAB_STATIC", "").strip().lower() in _TRUE


def prefetch_enabled() -> bool:
    """False when ``GRADLAB_PREFETCH`` is 0/false/no/off: live widgets then draw only what is asked."""
    return os.environ.get("GRADLAB_PREFETCH", "1").strip().lower() not in {"0", "false", "no", "off"}


def pick(full: T, fast: T) -> T:
    """``full`` normally, ``fast`` in fast mode: how every experiment size is chosen."""
    return fast if fast_mode() else full
