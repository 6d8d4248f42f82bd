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

import math
import time
import warnings
from dataclasses import dataclass
from typing import Any, Callable, Sequence

from matplotlib.figure import Figure

from .divergence import diverged_message
from .livefigure import KeptFigure, png_bytes
from .style import use_book_style

__all__ = ["Control", "log_slider", "slider", "int_slider", "choice", "Experiment", "Outcome", "LiveView"]

Progress = Callable[[float], None]
ALERT_COLOUR = "#B34700"  # a diverged or failed run; 5.5:1 contrast on white
LIVE_DPI = 80  # the live widget's figure: sharp on a laptop, small enough to send at once


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
            return W.FloatLogSlider(value=self.default, base=10, min=lo, max=hi, step=self.step or (hi - lo) / 60,
                                    readout=False, continuous_update=continuous, **common)
        if self.kind == "int":
            return W.IntSlider(value=self.default, min=self.low, max=self.high, step=self.step or 1,
                               continuous_update=continuous, **common)
        return W.FloatSlider(value=self.default, min=self.low, max=self.high,
                             step=self.step or (self.high - self.low) / 100, readout_format=".3g",
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


class LiveView:
    """The ipywidgets face of an :class:`Experiment`; ``last`` holds the latest :class:`Outcome`."""

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
            for w in self.controls.values():
                w.observe(lambda _change: self.refresh(), names="value")
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

    def refresh(self) -> Outcome:
        """Run with the controls' current values and redraw. Never raises."""
        if self.button is not None:
            self.button.disabled = True
            self.status.value = "Running…"
        self._progress(0.0)
        outcome = self.experiment.run(self.values(), progress=self._progress, canvas=self.canvas)
        try:
            if outcome.figure is not None:
                self.figure.value = png_bytes(outcome.figure)
                # Shown at once with the last layout; then the margins are fitted to the new tick
                # labels and titles, and only if that moved anything is the figure sent again.
                if self.canvas.settle():
                    self.figure.value = png_bytes(outcome.figure)
        except Exception as exc:  # drawing must not take the widget down either
            outcome.error = outcome.error or f"{type(exc).__name__}: {exc}"
        self._progress(1.0)
        msg = outcome.message or f"Done in {outcome.seconds:.2f} s."
        colour = ALERT_COLOUR if outcome.alert else "inherit"
        self.status.value = f'<span style="color:{colour}">{msg}</span>'
        if self.button is not None:
            self.button.disabled = False
        self.last = outcome
        return outcome

    def _ipython_display_(self):
        from IPython.display import display

        display(self.box)
