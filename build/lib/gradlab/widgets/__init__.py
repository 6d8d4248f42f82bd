"""Every experiment of the book, by name. Each chapter's module registers its experiments here;
tests and benchmarks walk :func:`all_experiments` so no widget escapes them."""
from __future__ import annotations

import importlib
import pkgutil
from typing import Callable

from ..interact import Experiment

__all__ = ["register", "all_experiments", "get"]

_FACTORIES: dict[str, Callable[[], Experiment]] = {}


def register(name: str):
    """Decorator: ``@register("ch01.loss_surface")`` on a function that returns an :class:`Experiment`."""

    def deco(factory: Callable[[], Experiment]):
        if name in _FACTORIES and _FACTORIES[name] is not factory:
            raise ValueError(f"experiment {name!r} registered twice")
        _FACTORIES[name] = factory
        return factory

    return deco


def _load_all() -> None:
    for mod in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{mod.name}")


def all_experiments() -> dict[str, Callable[[], Experiment]]:
    """Name → factory of every registered experiment, in name order."""
    _load_all()
    return dict(sorted(_FACTORIES.items()))


def get(name: str) -> Experiment:
    """Build one experiment by name."""
    return all_experiments()[name]()
