"""Kernel-free figures for the website: an experiment run over a grid of its controls' values
at build time, shown as an image that the page's own controls swap (no kernel, no network).

Frames are lossless WebP images of a 128-colour palette (about a fifth smaller than palette PNGs),
and a frame that two settings share (a control that does not matter for the other controls'
values, such as κ on Rosenbrock's valley) is stored once. Every frame has a text alternative:
what the figure shows (the experiment's ``alt``), the settings, and the status line.
"""
from __future__ import annotations

import base64
import hashlib
import html
import io
import itertools
import json
from importlib import resources
from typing import TYPE_CHECKING

from matplotlib.figure import Figure

from .livefigure import KeptFigure, canvas_image

if TYPE_CHECKING:
    from .interact import Experiment

__all__ = ["grid_points", "render", "frame_alt", "encode_frame"]

FRAME_COLOURS = 128
# The warning colour of a diverged or failed run, readable (contrast above 4.5:1) in both site themes.
STYLE = (".gradlab-kf .gl-alert{color:#B34700}"
         "html[data-theme=dark] .gradlab-kf .gl-alert{color:#FFA366}")


def grid_points(experiment: "Experiment") -> list[dict]:
    """Every combination of the gridded controls (row-major, first control slowest), others at default."""
    swept = [c for c in experiment.controls if c.grid]
    base = experiment.defaults()
    return [{**base, **{c.name: v for c, v in zip(swept, combo)}}
            for combo in itertools.product(*(c.grid for c in swept))]


def encode_frame(fig: Figure) -> bytes:
    """A drawn figure as a lossless WebP of its 128-colour palette image."""
    from PIL import Image

    small = canvas_image(fig).quantize(colors=FRAME_COLOURS, method=Image.Quantize.FASTOCTREE)
    out = io.BytesIO()
    small.save(out, format="WEBP", lossless=True, method=2, quality=50)
    return out.getvalue()


def frame_alt(experiment: "Experiment", values: dict, message: str) -> str:
    """The text alternative of one frame: what the figure shows, at which settings, and its status."""
    settings = ", ".join(f"{c.label} = {c.describe(values[c.name])}" for c in experiment.controls)
    what = (experiment.alt or experiment.title).strip()
    parts = [what if what.endswith((".", "!", "?")) else what + ".", f"Settings: {settings}.", message]
    return " ".join(p.strip() for p in parts if p and p.strip())


def _control_html(axis: int, control, start: int, uid: str) -> str:
    label = html.escape(control.label)
    ident = f"gl-{uid}-{axis}"
    if control.kind == "choice":
        opts = "".join(f'<option value="{i}"{" selected" if i == start else ""}>{html.escape(control.describe(v))}</option>'
                       for i, v in enumerate(control.grid))
        return (f'<label class="gl-control" for="{ident}">{label} '
                f'<select id="{ident}" data-gl-axis="{axis}">{opts}</select></label>')
    values = "|".join(html.escape(control.describe(v)) for v in control.grid)
    return (f'<label class="gl-control" for="{ident}">{label} '
            f'<input id="{ident}" type="range" min="0" max="{len(control.grid) - 1}" step="1" value="{start}" '
            f'data-gl-axis="{axis}" aria-valuetext="{html.escape(control.describe(control.grid[start]))}" '
            f'data-gl-values="{values}">'
            f' <output for="{ident}" data-gl-for="{axis}">{html.escape(control.describe(control.grid[start]))}</output>'
            f'</label>')


def _nearest(grid: tuple, value) -> int:
    try:
        return min(range(len(grid)), key=lambda i: abs(float(grid[i]) - float(value)))
    except (TypeError, ValueError):
        return grid.index(value) if value in grid else 0


def render(experiment: "Experiment", dpi: int = 90) -> str:
    """The HTML of the kernel-free figure, every distinct frame inlined once."""
    swept = [c for c in experiment.controls if c.grid]
    frames: list[str] = []
    seen: dict[str, int] = {}
    index, messages, alerts, alts = [], [], [], []
    canvas = KeptFigure(experiment.figsize, dpi=dpi)  # recycled axes: the same pictures, drawn faster
    for values in grid_points(experiment):
        outcome = experiment.run(values, canvas=canvas)
        if outcome.figure is not None:
            canvas.settle()
            fig = outcome.figure
        else:  # even a failed setting gets a frame that says why
            fig = Figure(figsize=experiment.figsize, dpi=dpi)
            fig.text(0.5, 0.5, outcome.message, ha="center", va="center", wrap=True)
            fig.canvas.draw()
        encoded = base64.b64encode(encode_frame(fig)).decode("ascii")
        index.append(seen.setdefault(encoded, len(seen)))
        if index[-1] == len(frames):
            frames.append(encoded)
        messages.append(outcome.message)
        alerts.append(outcome.alert)
        alts.append(frame_alt(experiment, values, outcome.message))
    starts = [_nearest(c.grid, c.default) for c in swept]
    data = {"shape": [len(c.grid) for c in swept], "labels": [[c.describe(v) for v in c.grid] for c in swept],
            "frames": frames, "index": index, "messages": messages, "alerts": alerts, "alts": alts}
    payload = json.dumps(data).replace("<", "\\u003c")
    held = [c for c in experiment.controls if not c.grid]
    note = ("Precomputed when the book was built: " + f"{len(index)} settings. "
            + (("Held fixed here: " + ", ".join(f"{html.escape(c.label)} = {html.escape(c.describe(c.default))}"
                                               for c in held) + ". ") if held else "")
            + "Open the notebook (Colab or Jupyter) to set every control freely.")
    uid = hashlib.sha1(json.dumps([experiment.title, data["labels"]]).encode()).hexdigest()[:8]
    controls = "".join(_control_html(i, c, s, uid) for i, (c, s) in enumerate(zip(swept, starts)))
    script = resources.files("gradlab").joinpath("kernelfree.js").read_text()
    first = 0
    for axis, s in enumerate(starts):
        first = first * data["shape"][axis] + s
    return (
        f'<div class="gradlab-kf" data-gl-frames="{len(index)}" role="group" aria-labelledby="gl-{uid}-title">'
        f"<style>{STYLE}</style>"
        f'<div class="gl-title" id="gl-{uid}-title"><b>{html.escape(experiment.title)}</b></div>'
        f'<div class="gl-controls" style="display:flex;flex-wrap:wrap;gap:0.4em 1.5em;margin:0.4em 0">{controls}</div>'
        f'<div class="gl-status{" gl-alert" if alerts[first] else ""}" role="status" aria-live="polite" '
        f'style="min-height:1.3em">{html.escape(messages[first])}</div>'
        f'<img class="gl-frame" alt="{html.escape(alts[first])}" style="max-width:100%" '
        f'src="data:image/webp;base64,{frames[index[first]]}">'
        f'<div class="gl-note" style="font-size:0.85em">{note}</div>'
        f'<script type="application/json" class="gl-data">{payload}</script>'
        f"<script>{script}</script></div>"
    )
