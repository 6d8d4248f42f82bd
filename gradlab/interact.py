"""The one way every widget in the book is built.

An :class:`Experiment` ties controls to a compute function and a plot function.
The same object gives a live ipywidgets view (Jupyter, Colab) and, when the book
is built, a kernel-free figure whose controls swap results precomputed over a
grid of their values (:mod:`gradlab.kernelfree`). :meth:`Experiment.show` picks.

Behaviour shared by every widget:
- a log-scale slider for anything that spans decades (learning rates);
- a Run button and a progress bar when the experiment trains, redraw on change otherwise;
- a run whose loss turns NaN or infinite is drawn up to that step and reported
  as "diverged at step k"; any other failure becomes a one-line message, never a traceback.
"""
from __future__ import annotations

import asyncio
import math
import time
import warnings
from collections import OrderedDict
from dataclasses import dataclass, replace
from typing import Any, Callable, Sequence

from matplotlib.figure import Figure

from .divergence import diverged_message
from .livefigure import KeptFigure, png_bytes
from .modes import prefetch_enabled
from .style import use_book_style

__all__ = ["Control", "log_slider", "slider", "int_slider", "choice", "Experiment", "Outcome", "LiveView"]

Progress = Callable[[float], None]
ALERT_COLOUR = "#B34700"  # a diverged or failed run; 5.5:1 contrast on white
LIVE_DPI = 80  # the live widget's figure: sharp on a laptop, small enough to send at once
KEPT_FRAMES = 48  # pictures a live widget keeps for settings it has drawn (about 50 kB each)


@dataclass(frozen=True)
class Control:
    """One control: its kind, range, default and the values precomputed for the website (``grid``)."""

    name: str
    label: str
    kind: str  # "log" | "float" | "int" | "choice"
    default: Any
    low: float | None = None
    high: float | None = None
    step: float | None = None
    options: tuple = ()  # for "choice": (label, value) pairs
    grid: tuple = ()  # values swept at build time; empty: held at the default on the website

    def __post_init__(self):
        # A website control with one value moves nothing: the reader would press it and see no change.
        if len(self.grid) == 1:
            raise ValueError(f"control {self.name!r}: a grid of one value ({self.grid[0]!r}) is not a control; "
                             "give it two or more values, or none to hold it at its default on the website")

    def extremes(self) -> list:
        """The values a test pushes the control to: both ends, or every option."""
        if self.kind == "choice":
            return [v for _, v in self.options]
        return [self.low, self.high]

    def describe(self, value: Any) -> str:
        """How a value is printed next to the control."""
        if self.kind == "choice":
            return next((lab for lab, v in self.options if v == value), str(value))
        if self.kind == "int":
            return str(int(value))
        return compact(value)

    def key_step(self) -> float:
        """How far one arrow key moves the slider (in decades for a log slider)."""
        if self.kind == "log":
            return self.step or (math.log10(self.high) - math.log10(self.low)) / 60
        if self.kind == "int":
            return self.step or 1
        return self.step or (self.high - self.low) / 100

    def neighbours(self, value: Any) -> list:
        """The values one key press away from ``value``, as the front end computes them."""
        if self.kind == "choice":
            values = [v for _, v in self.options]
            i = next((k for k, v in enumerate(values) if v == value), None)
            return [] if i is None else [values[k] for k in (i + 1, i - 1) if 0 <= k < len(values)]
        # The front end's slider sits on the grid low + k * step and a key moves to the next grid
        # point up or down (from a value between grid points, to the nearest one on that side).
        step = self.key_step()
        lo, hi = (math.log10(self.low), math.log10(self.high)) if self.kind == "log" else (self.low, self.high)
        x = math.log10(value) if self.kind == "log" else value
        k = (x - lo) / step
        up, down = lo + (math.floor(k + 1e-9) + 1) * step, lo + (math.ceil(k - 1e-9) - 1) * step
        out = [p for p in (up, down) if lo - 1e-9 * step <= p <= hi + 1e-9 * step]
        if self.kind == "log":
            return [10.0 ** p for p in out]
        if self.kind == "int":
            return [int(round(p)) for p in out]
        return out

    def make_widget(self, continuous: bool):
        """The ipywidgets control (works with ipywidgets 7.7+ and 8)."""
        import ipywidgets as W

        common = dict(description=self.label, style={"description_width": "initial"},
                      layout=W.Layout(width="440px"))
        if self.kind == "choice":
            return W.Dropdown(options=list(self.options), value=self.default, **common)
        if self.kind == "log":
            # The front end's own readout formats with JavaScript's toPrecision, which writes 1e-6 as
            # 0.00000100 and overflows its box; LiveView shows describe() beside it instead.
            lo, hi = math.log10(self.low), math.log10(self.high)
            return W.FloatLogSlider(value=self.default, base=10, min=lo, max=hi, step=self.key_step(),
                                    readout=False, continuous_update=continuous, **common)
        if self.kind == "int":
            return W.IntSlider(value=self.default, min=self.low, max=self.high, step=self.key_step(),
                               continuous_update=continuous, **common)
        return W.FloatSlider(value=self.default, min=self.low, max=self.high,
                             step=self.key_step(), readout_format=".3g",
                             continuous_update=continuous, **common)


def compact(value: float) -> str:
    """Three significant digits, exponents without padding: 1e-06 reads 1e-6; whole numbers in full."""
    if float(value).is_integer() and abs(value) < 1e6:
        return str(int(value))
    text = f"{value:.3g}"
    if "e" in text:
        mantissa, exponent = text.split("e")
        text = f"{mantissa}e{int(exponent)}"
    return text


def log_slider(name: str, label: str, default: float, low: float, high: float, grid: Sequence[float] = ()) -> Control:
    """A slider over decades (learning rates, condition numbers)."""
    return Control(name, label, "log", float(default), float(low), float(high), grid=tuple(grid))


def slider(name: str, label: str, default: float, low: float, high: float, step: float | None = None,
           grid: Sequence[float] = ()) -> Control:
    """A linear slider over real values."""
    return Control(name, label, "float", float(default), float(low), float(high), step, grid=tuple(grid))


def int_slider(name: str, label: str, default: int, low: int, high: int, step: int = 1,
               grid: Sequence[int] = ()) -> Control:
    """A slider over integers (steps, depth, batch size exponents)."""
    return Control(name, label, "int", int(default), int(low), int(high), step, grid=tuple(grid))


def choice(name: str, label: str, options: Sequence, default: Any = None, grid: Sequence | bool = True) -> Control:
    """A dropdown. ``options`` are values or (label, value) pairs; by default every option is precomputed."""
    pairs = tuple(o if isinstance(o, tuple) else (str(o), o) for o in options)
    if any(v is None for _, v in pairs):  # ipywidgets reads a value of None as "nothing selected"
        raise ValueError(f"dropdown {name!r}: an option's value cannot be None (the browser would show an empty "
                         "selection); give it a string or a number and translate it in the experiment")
    default = pairs[0][1] if default is None else default
    values = tuple(v for _, v in pairs)
    g = values if grid is True else (() if grid is False else tuple(grid))
    return Control(name, label, "choice", default, options=pairs, grid=g)


@dataclass
class Outcome:
    """What one run of an experiment produced: the result, its figure and a one-line message."""

    values: dict
    result: Any = None
    figure: Figure | None = None
    message: str = ""
    error: str | None = None
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def alert(self) -> bool:
        """True for a failed or diverged run: its status is shown in the warning colour."""
        return not self.ok or getattr(self.result, "diverged_at", None) is not None


@dataclass
class Experiment:
    """Controls → compute → plot, shown live in a kernel or precomputed on the website.

    ``compute(values, progress)`` gets a dict of control values and a progress callback
    (fraction in [0, 1]) and returns a result; ``plot(result, fig)`` draws into a figure.
    A result with a ``diverged_at`` step that is not None is reported as diverged; when the
    figure shows several runs, its ``diverged_run`` names the one that diverged.
    ``alt`` says in words what the figure shows (its text alternative on the website).
    """

    title: str
    controls: Sequence[Control]
    compute: Callable[[dict, Progress], Any]
    plot: Callable[[Any, Figure], Any]
    trains: bool = False
    figsize: tuple = (10.0, 4.2)
    caption: str = ""
    describe: Callable[[Any], str] | None = None  # extra status text for a finished run
    alt: str = ""  # what the figure shows, for readers who cannot see it
    repeatable: bool = True  # the same settings always give the same figure, so a drawn one may be reused

    def defaults(self) -> dict:
        """Every control at its default value."""
        return {c.name: c.default for c in self.controls}

    def run(self, values: dict | None = None, progress: Progress | None = None,
            canvas: KeptFigure | None = None) -> Outcome:
        """Compute and draw once. Never raises: failures come back as ``Outcome.error``.

        With a ``canvas`` the result is drawn into that kept figure (a live widget's fast redraw);
        without, into a new one.
        """
        v = {**self.defaults(), **(values or {})}
        out = Outcome(values=v)
        t0 = time.perf_counter()
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # overflow warnings of a diverging run are expected
                out.result = self.compute(v, progress or (lambda f: None))
                use_book_style()
                out.figure = (canvas or KeptFigure(self.figsize, dpi=LIVE_DPI)).draw(self.plot, out.result)
            k = getattr(out.result, "diverged_at", None)
            parts = [diverged_message(k, getattr(out.result, "diverged_run", None))] if k is not None else []
            if self.describe is not None:
                parts.append(self.describe(out.result))
            out.message = " ".join(p for p in parts if p)
        except Exception as exc:  # a widget shows a sentence, never a traceback
            out.error = f"{exc}" if isinstance(exc, ValueError) else f"{type(exc).__name__}: {exc}"
            out.message = f"Could not run with these settings: {out.error}"
        out.seconds = time.perf_counter() - t0
        return out

    def widget(self) -> "LiveView":
        """The live ipywidgets view."""
        return LiveView(self)

    def static_html(self, dpi: int = 90) -> str:
        """The kernel-free figure: every grid combination computed now, swapped by the page's controls."""
        from .kernelfree import render

        return render(self, dpi=dpi)

    def show(self):
        """Display the experiment: kernel-free HTML when the book is built, a live widget otherwise."""
        from IPython.display import HTML, display

        from .modes import static_mode

        if static_mode():
            display(HTML(self.static_html()))
            return None
        view = self.widget()
        display(view)
        return view


def _key(values: dict) -> tuple:
    """A dictionary key for a setting: floats to 9 digits, so the front end's arithmetic and ours agree."""
    return tuple((k, f"{v:.9g}" if isinstance(v, float) else repr(v)) for k, v in sorted(values.items()))


class LiveView:
    """The ipywidgets face of an :class:`Experiment`; ``last`` holds the latest :class:`Outcome`.

    A live (Run-less) widget of a repeatable experiment keeps the pictures it has drawn, and while
    the kernel is idle it draws the two settings one key press away on the control the reader last
    moved, the next step in the same direction first. A key press then swaps in a picture that is
    already made. It starts with the reader's first move (a notebook run top to bottom, or a widget
    nobody touches, costs nothing), runs on the kernel's event loop between messages, one picture
    per turn, and is dropped as soon as the reader moves again; without a running loop (a script)
    it is off. ``GRADLAB_PREFETCH=0`` turns it off.
    """

    def __init__(self, experiment: Experiment):
        import ipywidgets as W

        self.experiment = experiment
        self.controls = {c.name: c.make_widget(continuous=False) for c in experiment.controls}
        self.status = W.HTML(value="")
        self.status.add_class("gradlab-status")
        # The figure is an Image widget whose bytes are replaced on each redraw: one message to the
        # front end, no output area cleared and rebuilt.
        self.figure = W.Image(format="png", layout=W.Layout(max_width="100%"))
        self.figure.add_class("gradlab-figure")
        self.last: Outcome | None = None
        self.canvas = KeptFigure(experiment.figsize, dpi=LIVE_DPI)
        self._progress_at = 0.0
        self._frames: OrderedDict = OrderedDict()  # setting -> (png, status html, outcome)
        self._queue: list[dict] = []
        self._spare: KeptFigure | None = None  # prefetching draws here, never into what is shown
        self._timer = None
        self.hits = 0  # key presses answered from kept pictures (the tests read it)
        self._keep = experiment.repeatable and not experiment.trains
        header = W.HTML(value=f"<b>{experiment.title}</b>")
        rows: list = [header]
        for control in experiment.controls:
            widget = self.controls[control.name]
            if control.kind == "log":
                readout = W.Label(value=control.describe(widget.value))
                widget.observe(lambda change, c=control, r=readout: setattr(r, "value", c.describe(change["new"])),
                               names="value")
                rows.append(W.HBox([widget, readout]))
            else:
                rows.append(widget)
        if experiment.trains:
            self.button = W.Button(description="Run", button_style="primary", icon="play")
            self.progress = W.FloatProgress(value=0.0, min=0.0, max=1.0, layout=W.Layout(width="300px"))
            self.button.on_click(lambda _b: self.refresh())
            rows.append(W.HBox([self.button, self.progress]))
            self.status.value = "Set the controls, then press <b>Run</b>."
        else:
            self.button = None
            self.progress = None
            for name, w in self.controls.items():
                w.observe(lambda change, n=name: self.refresh(moved=(n, change["old"], change["new"])),
                          names="value")
        rows += [self.status, self.figure]
        self.box = W.VBox(rows)
        self.box.add_class("gradlab-widget")
        if not experiment.trains:
            self.refresh()

    def values(self) -> dict:
        return {name: w.value for name, w in self.controls.items()}

    def _progress(self, fraction: float) -> None:
        """Move the bar; at most every 2 % or 50 ms, so a fast run still shows it moving without
        flooding the front end with messages."""
        if self.progress is None:
            return
        fraction = min(max(float(fraction), 0.0), 1.0)
        now = time.perf_counter()
        if fraction in (0.0, 1.0) or fraction - self.progress.value >= 0.02 or now - self._progress_at >= 0.05:
            self.progress.value = fraction
            self._progress_at = now

    @staticmethod
    def _status_html(outcome: Outcome) -> str:
        msg = outcome.message or f"Done in {outcome.seconds:.2f} s."
        colour = ALERT_COLOUR if outcome.alert else "inherit"
        return f'<span style="color:{colour}">{msg}</span>'

    def refresh(self, moved: tuple | None = None) -> Outcome:
        """Run with the controls' current values and redraw. Never raises.

        ``moved`` is (control name, old value, new value) when a control's change asked for it.
        """
        self._cancel_prefetch()
        values = self.values()
        kept = self._frames.get(_key(values)) if self._keep else None
        if kept is not None:
            png, html, outcome = kept
            self._frames.move_to_end(_key(values))
            self.figure.value = png
            self.status.value = html
            self.hits += 1
            self.last = outcome
            self._plan_prefetch(values, moved)
            return outcome
        if self.button is not None:
            self.button.disabled = True
            self.status.value = "Running…"
        self._progress(0.0)
        outcome = self.experiment.run(values, progress=self._progress, canvas=self.canvas)
        png = None
        try:
            if outcome.figure is not None:
                png = png_bytes(outcome.figure)
                self.figure.value = png
                # Shown at once with the last layout; then the margins are fitted to the new tick
                # labels and titles, and only if that moved anything is the figure sent again.
                if self.canvas.settle():
                    png = png_bytes(outcome.figure)
                    self.figure.value = png
        except Exception as exc:  # drawing must not take the widget down either
            outcome.error = outcome.error or f"{type(exc).__name__}: {exc}"
            png = None
        self._progress(1.0)
        self.status.value = self._status_html(outcome)
        if self.button is not None:
            self.button.disabled = False
        self.last = outcome
        if png is not None:
            self._store(values, png, outcome)
        self._plan_prefetch(values, moved)
        return outcome

    # Prefetching: the pictures one key press away, drawn while the kernel waits for the reader.

    def _store(self, values: dict, png: bytes, outcome: Outcome) -> None:
        if not self._keep:
            return
        self._frames[_key(values)] = (png, self._status_html(outcome), replace(outcome, figure=None))
        while len(self._frames) > KEPT_FRAMES:
            self._frames.popitem(last=False)

    def _plan_prefetch(self, values: dict, moved: tuple | None) -> None:
        if moved is None or not (self._keep and prefetch_enabled()):
            return  # nothing is drawn ahead before the reader moves a control
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # no event loop to wait on: nothing is idle time
        # Only the control the reader is moving: its next step in the same direction, then the step
        # back. Drawing every control's neighbours would keep the kernel busy, and the browser
        # waiting for a CPU, through the reader's next key press.
        control = next(c for c in self.experiment.controls if c.name == moved[0])
        near = control.neighbours(values[control.name])
        if _is_number(moved[1]) and _is_number(moved[2]) and moved[2] < moved[1]:
            near.reverse()
        plan = [{**values, control.name: v} for v in near]
        self._queue = [v for v in plan if _key(v) not in self._frames]
        if self._queue:
            self._timer = loop.call_later(0.005, self._prefetch_one)

    def _cancel_prefetch(self) -> None:
        self._queue = []
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _prefetch_one(self) -> None:
        """Draw the next queued setting into the spare figure and keep its picture; then yield."""
        self._timer = None
        if not self._queue:
            return
        values = self._queue.pop(0)
        try:
            if self._spare is None:
                self._spare = KeptFigure(self.experiment.figsize, dpi=LIVE_DPI)
            outcome = self.experiment.run(values, canvas=self._spare)
            if outcome.figure is not None:
                self._spare.settle()
                self._store(values, png_bytes(outcome.figure), outcome)
        except Exception:  # a picture drawn ahead is a nicety: any failure just stops it
            self._queue = []
            return
        if self._queue:
            # Back to the event loop before the next one, so a key press is never kept waiting
            # behind more than one picture.
            self._timer = asyncio.get_running_loop().call_later(0.005, self._prefetch_one)

    def _ipython_display_(self):
        from IPython.display import display

        display(self.box)


def _is_number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)
