"""A figure kept between the redraws of a live widget, so a redraw costs milliseconds.

Drawing a fresh matplotlib figure is slow mostly because of what does not change from one
redraw to the next: new axes, their tick objects, their text layout, a new constrained layout.
:class:`KeptFigure` keeps one figure and hands the plot function the *same* axes again,
emptied of what the last plot put there but keeping their tick machinery. The plot function
is unchanged: it calls ``fig.subplots(...)`` or ``fig.add_subplot(...)`` as usual, and gets
back the axes an identical earlier call created. Anything it cannot recycle (a colorbar, an
inset) makes it fall back to a fresh figure, the old behaviour.

``tests/test_livefigure.py`` checks, for every experiment of the book, that a recycled figure
is pixel for pixel the figure a fresh one gives.
"""
from __future__ import annotations

import contextlib
import io
import math
from collections import Counter
from typing import Any, Callable, Iterator

import matplotlib as mpl
import numpy as np
from matplotlib.axes import Axes
from matplotlib.axis import Axis
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.gridspec import GridSpecBase, SubplotSpec
from matplotlib.text import Text
from matplotlib.transforms import Bbox

__all__ = ["KeptFigure", "canvas_image", "png_bytes"]

# Figure methods that make axes: a plot's calls to them are answered from the kept axes.
_AXES_MAKERS = ("subplots", "add_subplot", "add_axes", "subplot_mosaic")
# Figure methods whose result cannot be recycled cheaply: the figure is then drawn fresh every time.
_UNRECYCLABLE = ("colorbar", "subfigures", "add_subfigure")


class _NotRecyclable(Exception):
    pass


def _key(value: Any, axes: list) -> Any:
    """A comparable stand-in for an argument of an axes-making call."""
    if isinstance(value, Axes):
        return ("axes", next((i for i, a in enumerate(axes) if a is value), -1))
    if isinstance(value, SubplotSpec):
        gs = value.get_gridspec()
        return ("spec", _key(gs, axes), value.rowspan.start, value.rowspan.stop,
                value.colspan.start, value.colspan.stop)
    if isinstance(value, GridSpecBase):
        return ("grid", value.get_geometry(), tuple(value.get_width_ratios() or ()),
                tuple(value.get_height_ratios() or ()))
    if isinstance(value, dict):
        return tuple(sorted((k, _key(v, axes)) for k, v in value.items()))
    if isinstance(value, (list, tuple, np.ndarray)):
        return tuple(_key(v, axes) for v in value)
    return repr(value)


def _flat_axes(result: Any) -> list[Axes]:
    if isinstance(result, Axes):
        return [result]
    if isinstance(result, dict):
        return [a for v in result.values() for a in _flat_axes(v)]
    if isinstance(result, (list, tuple, np.ndarray)):
        return [a for v in np.asarray(result, dtype=object).ravel() for a in _flat_axes(v)]
    return []


def _empty(ax: Axes) -> None:
    """What ``ax.clear()`` does, except rebuilding the axis objects and their ticks (the slow part)."""
    for artist in list(ax._children):
        if artist in ax._children:  # removing a contour set also removes its labels (clabel)
            artist.remove()
    if ax.legend_ is not None:
        ax.legend_.remove()
    ax.containers.clear()
    for title in (ax.title, ax._left_title, ax._right_title):
        title.set_text("")
    ax.set_xscale("linear")  # also restores the default locators and formatters
    ax.set_yscale("linear")
    for axis in (ax.xaxis, ax.yaxis):
        axis.set_label_text("")
        axis.set_inverted(False)
        axis.set_visible(True)
    ax.set_prop_cycle(None)  # colours and line styles start again from the first
    ax.set_axis_on()
    ax.patch.set_visible(True)
    ax.set_aspect("auto")
    ax.set_box_aspect(None)
    for name, spine in ax.spines.items():
        spine.set_visible(mpl.rcParams.get(f"axes.spines.{name}", True))
    ax.grid(False)
    ax.grid(mpl.rcParams["axes.grid"], which=mpl.rcParams["axes.grid.which"], axis=mpl.rcParams["axes.grid.axis"])
    ax._xmargin, ax._ymargin = mpl.rcParams["axes.xmargin"], mpl.rcParams["axes.ymargin"]
    ax._tight, ax._use_sticky_edges = None, True
    spec = ax.get_subplotspec()
    if spec is not None:  # where a fresh axes stands while the plot runs (a plot may measure its axes)
        ax._set_position(spec.get_position(ax.figure))
    ax._viewLim.set_points(Bbox.unit().get_points())
    ax.dataLim = Bbox.null()
    ax.ignore_existing_data_limits = True
    ax.set_autoscale_on(True)
    ax._request_autoscale_view()


@contextlib.contextmanager
def _ticks_once(glyphs: dict | None = None) -> Iterator[None]:
    """Within one draw, work out each axis's ticks, their labels' extents and each text's layout once.

    Drawing an axes asks for the same ticks three or four times (to draw them, to place the
    axis label beside its neighbours' tick labels, to place the title), and each time formats
    and measures every tick label again. Nothing they depend on changes during a draw, so the
    first answer is kept, keyed by everything it depends on: the view interval, the scale and
    the axes' place on the canvas. ``tests/test_livefigure.py`` checks the pictures stay exact.
    """
    update, bboxes, layout = Axis._update_ticks, Axis._get_ticklabel_bboxes, Text._get_layout
    seen: dict = {}

    def key(axis: Axis) -> tuple:
        return (id(axis), tuple(axis.get_view_interval()), axis.get_scale(), tuple(axis.axes.bbox.bounds))

    def update_once(axis: Axis):
        k = ("ticks", *key(axis))
        if k not in seen:
            seen[k] = update(axis)
        return seen[k]

    def bboxes_once(axis: Axis, ticks, renderer):
        k = ("boxes", *key(axis), tuple(map(id, ticks)), id(renderer))
        if k not in seen:
            seen[k] = bboxes(axis, ticks, renderer)
        return seen[k]

    def layout_once(text: Text, renderer):
        if text.get_wrap() or text.get_usetex():
            return layout(text, renderer)
        k = ("layout", id(text), id(renderer), text.get_text(), hash(text.get_fontproperties()),
             text.get_rotation(), text.get_rotation_mode(), text.get_horizontalalignment(),
             text.get_verticalalignment(), text._linespacing, text.get_figure(root=True).dpi)
        if k not in seen:
            seen[k] = layout(text, renderer)
        return seen[k]

    Axis._update_ticks, Axis._get_ticklabel_bboxes, Text._get_layout = update_once, bboxes_once, layout_once
    try:
        with _glyphs_kept(glyphs if glyphs is not None else {}):
            yield
    finally:
        Axis._update_ticks, Axis._get_ticklabel_bboxes, Text._get_layout = update, bboxes, layout


@contextlib.contextmanager
def _glyphs_kept(cache: dict) -> Iterator[None]:
    """Rasterize each glyph once per size, angle and sub-pixel offset, and reuse the bitmap.

    Matplotlib 3.11's Agg renderer asks FreeType for every glyph of every label on every draw.
    A glyph moved by whole pixels rasterizes to the same bitmap, moved: so the bitmap is kept,
    keyed by the font, size, resolution, transform and the offset's fraction of a pixel. Other
    matplotlib versions draw text another way and are left alone.
    """
    from matplotlib.backends import backend_agg

    draw = getattr(backend_agg.RendererAgg, "_draw_text_glyphs_and_boxes", None)
    if draw is None or not hasattr(backend_agg, "RenderMode"):
        yield
        return

    def draw_cached(self, gc, x, y, angle, glyphs, boxes):
        cos, sin = math.cos(math.radians(angle)), math.sin(math.radians(angle))
        flags = backend_agg.get_hinting_flag()
        mode = backend_agg.RenderMode.NORMAL if gc.get_antialiased() else backend_agg.RenderMode.MONO
        kept = []
        for font, size, index, slant, extend, dx, dy in glyphs:
            matrix = (0x10000 * np.array([[cos, -sin], [sin, cos]]) @ [[extend, extend * slant], [0, 1]]).round().astype(int)
            whole_x, part_x = divmod(round(0x40 * (x + dx * cos - dy * sin)), 0x40)
            whole_y, part_y = divmod(round(0x40 * (self.height - y + dx * sin + dy * cos)), 0x40)
            key = (font.fname, size, self.dpi, index, matrix.tobytes(), part_x, part_y, mode, flags)
            if key not in cache:
                if len(cache) > 50_000:  # a long session: start again rather than grow without bound
                    cache.clear()
                font.set_size(size, self.dpi)
                font._set_transform(matrix, [part_x, part_y])
                bitmap = font._render_glyph(index, flags, mode)
                buffer = np.array(bitmap.buffer)
                if not gc.get_antialiased():
                    buffer *= 0xff
                cache[key] = (buffer, bitmap.left, bitmap.top)
            buffer, left, top = cache[key]
            kept.append((buffer, left + whole_x, top + whole_y))
        for buffer, left, top in kept:
            self._renderer.draw_text_image(buffer, left, int(self.height) - top + buffer.shape[0], 0, gc)
        if boxes:
            draw(self, gc, x, y, angle, (), boxes)

    backend_agg.RendererAgg._draw_text_glyphs_and_boxes = draw_cached
    try:
        yield
    finally:
        backend_agg.RendererAgg._draw_text_glyphs_and_boxes = draw


class KeptFigure:
    """One figure redrawn many times: ``draw(plot, result)`` returns it with ``plot(result, fig)`` drawn."""

    def __init__(self, figsize: tuple, dpi: float = 80):
        self.figsize, self.dpi = figsize, dpi
        self.figure: Figure | None = None
        self.recyclable = True
        self.recycled = 0  # redraws that reused the kept axes (for tests and benchmarks)
        self._made: dict[tuple, Any] = {}
        self._glyphs: dict = {}  # rasterized glyphs, reused from draw to draw

    def _fresh(self) -> Figure:
        fig = Figure(figsize=self.figsize, dpi=self.dpi, layout="constrained")
        FigureCanvasAgg(fig)
        self.figure, self._made = fig, {}
        return fig

    def _clear_figure_artists(self, fig: Figure) -> None:
        for artist in [*fig.texts, *fig.legends, *fig.lines, *fig.patches, *fig.images]:
            artist.remove()
        if fig._suptitle is not None:
            fig._suptitle.set_text("")

    def _plot_recycling(self, plot: Callable, result: Any, fig: Figure) -> None:
        calls: Counter = Counter()
        made: dict[tuple, Any] = {}

        def maker(name: str):
            original = getattr(fig, name)

            def make(*args, **kwargs):
                key = (name, _key(args, fig.axes), _key(kwargs, fig.axes))
                calls[key] += 1
                key = (*key, calls[key])
                if key in self._made:
                    out = self._made[key]
                    for ax in _flat_axes(out):
                        _empty(ax)
                else:
                    out = original(*args, **kwargs)
                made[key] = out
                return out

            return make

        def refuse(*_args, **_kwargs):
            raise _NotRecyclable

        for name in _AXES_MAKERS:
            setattr(fig, name, maker(name))
        for name in _UNRECYCLABLE:
            setattr(fig, name, refuse)
        laid_out = {id(ax): ax.get_position(original=True).frozen() for ax in fig.axes}
        try:
            self._clear_figure_artists(fig)
            plot(result, fig)
            for ax in fig.axes:  # back to the last layout, for the fast first frame
                if id(ax) in laid_out:
                    ax._set_position(laid_out[id(ax)])
        finally:
            for name in (*_AXES_MAKERS, *_UNRECYCLABLE):
                fig.__dict__.pop(name, None)
        kept = {id(a) for out in made.values() for a in _flat_axes(out)}
        for ax in list(fig.axes):
            if id(ax) not in kept:  # axes an earlier plot made and this one did not ask for
                ax.remove()
        self._made = made

    def draw(self, plot: Callable[[Any, Figure], Any], result: Any) -> Figure:
        """Draw ``result`` into the kept figure and render it, keeping the last layout (fast).

        A fresh figure (the first draw, or one that cannot be recycled) is laid out in full.
        Call :meth:`settle` afterwards to redo the layout for what the new plot shows.
        """
        if self.recyclable and self.figure is not None:
            try:
                self._plot_recycling(plot, result, self.figure)
                with _ticks_once(self._glyphs):
                    self.figure.canvas.draw()
                self.recycled += 1
                return self.figure
            except _NotRecyclable:
                self.recyclable = False
            except Exception:
                pass  # a plot that fails on recycled axes gets one try on a fresh figure below
        fig = self._fresh()
        if self.recyclable:
            try:
                self._plot_recycling(plot, result, fig)
            except _NotRecyclable:
                self.recyclable = False
                fig = self._fresh()
                plot(result, fig)
        else:
            plot(result, fig)
        fig.canvas.draw()  # with its constrained layout
        fig.set_layout_engine("none")  # later redraws keep these positions until settle()
        return fig

    def settle(self) -> bool:
        """Redo the constrained layout of the last draw; True (and redrawn) when any axes moved.

        Tick labels or titles of a new size need new margins. Doing this after the fast frame
        has been shown keeps the redraw quick, and the settled figure is exactly what a fresh
        figure would look like.
        """
        fig = self.figure
        if fig is None:
            return False
        before = [ax.get_position().frozen() for ax in fig.axes]
        for ax in fig.axes:  # start from where a fresh figure starts, so the result is the same
            spec = ax.get_subplotspec()
            if spec is not None:
                ax._set_position(spec.get_position(fig))
        fig.set_layout_engine("constrained")
        fig.get_layout_engine().execute(fig)
        fig.set_layout_engine("none")
        moved = any(b.bounds != ax.get_position().bounds for b, ax in zip(before, fig.axes))
        if moved:
            with _ticks_once(self._glyphs):
                fig.canvas.draw()
        return moved


def canvas_image(fig: Figure):
    """The pixels of a figure that has just been drawn, as an RGB PIL image (no second draw)."""
    from PIL import Image

    canvas = fig.canvas
    if not isinstance(canvas, FigureCanvasAgg):
        canvas = FigureCanvasAgg(fig)
        canvas.draw()
    width, height = canvas.get_width_height(physical=True)
    return Image.frombuffer("RGBA", (width, height), canvas.buffer_rgba(), "raw", "RGBA", 0, 1).convert("RGB")


def png_bytes(fig: Figure) -> bytes:
    """The PNG of a figure that has just been drawn, encoded for speed, not size (the live widgets)."""
    out = io.BytesIO()
    canvas_image(fig).save(out, format="png", compress_level=1)
    return out.getvalue()
