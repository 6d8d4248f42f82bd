"""Kernel-free figures for the website: an experiment run over a grid of its controls' values
at build time, shown as an image that the page's own controls swap (no kernel, no network)."""
from __future__ import annotations

import base64
import html
import itertools
import json
from importlib import resources
from typing import TYPE_CHECKING

from matplotlib.figure import Figure

if TYPE_CHECKING:
    from .interact import Experiment

__all__ = ["grid_points", "render"]


def grid_points(experiment: "Experiment") -> list[dict]:
    """Every combination of the gridded controls (row-major, first control slowest), others at default."""
    swept = [c for c in experiment.controls if c.grid]
    base = experiment.defaults()
    return [{**base, **{c.name: v for c, v in zip(swept, combo)}}
            for combo in itertools.product(*(c.grid for c in swept))]


def _control_html(axis: int, control, start: int) -> str:
    label = html.escape(control.label)
    if control.kind == "choice":
        opts = "".join(f'<option value="{i}"{" selected" if i == start else ""}>{html.escape(control.describe(v))}</option>'
                       for i, v in enumerate(control.grid))
        return f'<label class="gl-control">{label} <select data-gl-axis="{axis}">{opts}</select></label>'
    return (f'<label class="gl-control">{label} '
            f'<input type="range" min="0" max="{len(control.grid) - 1}" step="1" value="{start}" data-gl-axis="{axis}">'
            f' <output data-gl-for="{axis}">{html.escape(control.describe(control.grid[start]))}</output></label>')


def _nearest(grid: tuple, value) -> int:
    try:
        return min(range(len(grid)), key=lambda i: abs(float(grid[i]) - float(value)))
    except (TypeError, ValueError):
        return grid.index(value) if value in grid else 0


def render(experiment: "Experiment", dpi: int = 90) -> str:
    """The HTML of the kernel-free figure, all frames inlined as palette PNGs."""
    from .interact import figure_png

    swept = [c for c in experiment.controls if c.grid]
    frames, messages, alerts = [], [], []
    for values in grid_points(experiment):
        outcome = experiment.run(values)
        fig = outcome.figure
        if fig is None:  # even a failed setting gets a frame that says why
            fig = Figure(figsize=experiment.figsize)
            fig.text(0.5, 0.5, outcome.message, ha="center", va="center", wrap=True)
        frames.append(base64.b64encode(figure_png(fig, dpi=dpi, colors=128)).decode("ascii"))
        messages.append(outcome.message)
        alerts.append(not outcome.ok or getattr(outcome.result, "diverged_at", None) is not None)
    starts = [_nearest(c.grid, c.default) for c in swept]
    data = {"shape": [len(c.grid) for c in swept], "labels": [[c.describe(v) for v in c.grid] for c in swept],
            "frames": frames, "messages": messages, "alerts": alerts}
    payload = json.dumps(data).replace("<", "\\u003c")
    held = [c for c in experiment.controls if not c.grid]
    note = ("Precomputed when the book was built: " + f"{len(frames)} settings. "
            + (("Held fixed here: " + ", ".join(f"{html.escape(c.label)} = {html.escape(c.describe(c.default))}"
                                               for c in held) + ". ") if held else "")
            + "Open the notebook (Colab or Jupyter) to set every control freely.")
    controls = "".join(_control_html(i, c, s) for i, (c, s) in enumerate(zip(swept, starts)))
    script = resources.files("gradlab").joinpath("kernelfree.js").read_text()
    first = 0
    for axis, s in enumerate(starts):
        first = first * data["shape"][axis] + s
    return (
        f'<div class="gradlab-kf" data-gl-frames="{len(frames)}">'
        f'<div class="gl-title"><b>{html.escape(experiment.title)}</b></div>'
        f'<div class="gl-controls" style="display:flex;flex-wrap:wrap;gap:0.4em 1.5em;margin:0.4em 0">{controls}</div>'
        f'<div class="gl-status" style="min-height:1.3em{";color:#D55E00" if alerts[first] else ""}">'
        f'{html.escape(messages[first])}</div>'
        f'<img class="gl-frame" alt="{html.escape(experiment.title)}" style="max-width:100%" '
        f'src="data:image/png;base64,{frames[first]}">'
        f'<div class="gl-note" style="font-size:0.85em;opacity:0.8">{note}</div>'
        f'<script type="application/json" class="gl-data">{payload}</script>'
        f"<script>{script}</script></div>"
    )
