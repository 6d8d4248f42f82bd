"""The live widgets' kept figure: a redraw into recycled axes must look exactly like a fresh figure.

A live widget keeps one matplotlib figure and hands the plot function the same axes again
(gradlab.livefigure). If emptying those axes forgot any state (a log scale, an inverted axis, a
colour cycle half used, a legend, a title), the next picture would differ from the one a fresh
figure gives. So for every experiment of the book, each control is walked through its values
and every recycled picture is compared, pixel for pixel, with a fresh figure of the same result.
"""
from __future__ import annotations

import numpy as np
import pytest
from matplotlib.figure import Figure

from gradlab.livefigure import KeptFigure, png_bytes
from gradlab.style import use_book_style
from gradlab.widgets import all_experiments

FACTORIES = all_experiments()


def pixels(fig) -> np.ndarray:
    return np.asarray(fig.canvas.buffer_rgba()).copy()


def fresh_pixels(exp, result) -> np.ndarray:
    return pixels(KeptFigure(exp.figsize).draw(exp.plot, result))


def walk(exp) -> list[dict]:
    """Each control through its website values (or its extremes), one at a time, then all back. A training
    widget's numeric controls go to the two ends of their grid only: each value is a training run, and the
    figure's structure changes with the options of a dropdown, not along a slider."""
    base = exp.defaults()
    steps = []
    for c in exp.controls:
        values = list(c.grid or c.extremes())
        if exp.trains and c.kind != "choice":
            values = values[:1] + values[-1:] if len(values) > 1 else values
        for v in values:
            steps.append({**base, c.name: v})
    return steps + [base]


@pytest.mark.parametrize("name", sorted(FACTORIES))
def test_recycled_figure_equals_a_fresh_one(name):
    use_book_style()
    exp = FACTORIES[name]()
    kept = KeptFigure(exp.figsize)
    compared = 0
    for values in walk(exp):
        result = exp.compute(values, lambda f: None)
        fig = kept.draw(exp.plot, result)
        kept.settle()
        want = fresh_pixels(exp, result)
        got = pixels(fig)
        assert got.shape == want.shape, f"{name} {values}: size {got.shape} != {want.shape}"
        differ = np.any(got != want, axis=-1)
        assert not differ.any(), (f"{name} at {values}: {int(differ.sum())} pixels differ from a fresh figure "
                                  f"(first at row, col {np.argwhere(differ)[0].tolist()})")
        compared += 1
    assert kept.recyclable and kept.recycled == compared - 1, "the kept figure was not reused"


def _two_panels(n: int, fig: Figure) -> None:
    left, right = fig.subplots(1, 2)
    for i in range(n):
        left.plot([0, 1], [i, i + 1], label=f"line {i}")
    left.legend()
    left.set_yscale("log" if n % 2 else "linear")
    right.invert_xaxis() if n > 2 else None
    right.set_title(f"{n} lines")
    right.bar(range(n), range(1, n + 1))


def test_a_plot_that_changes_its_own_state_is_reset_between_draws():
    """Scale, inversion, colour cycle, legend and title all follow the new call, not the last one."""
    use_book_style()
    kept = KeptFigure((8, 3))
    for n in (3, 1, 4, 2):
        got = pixels(kept.draw(_two_panels, n))
        kept.settle()
        got = pixels(kept.figure)
        assert np.array_equal(got, pixels(KeptFigure((8, 3)).draw(_two_panels, n))), f"n = {n}"


def test_labelled_contours_are_recycled():
    """clabel's texts go when their contour set is removed: emptying the axes must not remove them twice."""
    def contours(level, fig):
        ax = fig.add_subplot()
        x, y = np.meshgrid(np.linspace(-1, 1, 40), np.linspace(-1, 1, 40))
        ax.clabel(ax.contour(x, y, x ** 2 + level * y ** 2, levels=4), fontsize=8)

    use_book_style()
    kept = KeptFigure((4, 3))
    for level in (1.0, 3.0, 2.0):
        kept.draw(contours, level)
        kept.settle()
        assert np.array_equal(pixels(kept.figure), pixels(KeptFigure((4, 3)).draw(contours, level))), level
    assert kept.recycled == 2


def test_a_colorbar_falls_back_to_fresh_figures():
    def with_colorbar(k, fig):
        ax = fig.add_subplot()
        fig.colorbar(ax.imshow(np.arange(k * k).reshape(k, k)), ax=ax)

    kept = KeptFigure((4, 3))
    first = kept.draw(with_colorbar, 3)
    second = kept.draw(with_colorbar, 4)
    assert not kept.recyclable and second is not first and kept.recycled == 0
    assert len(second.axes) == 2


def test_axes_a_plot_no_longer_asks_for_are_removed():
    def panels(n, fig):
        for i, ax in enumerate(np.atleast_1d(fig.subplots(1, n))):
            ax.plot([0, 1], [0, i])

    kept = KeptFigure((6, 3))
    assert len(kept.draw(panels, 3).axes) == 3
    assert len(kept.draw(panels, 1).axes) == 1
    assert kept.recycled == 1


def test_png_bytes_is_the_drawn_canvas():
    from io import BytesIO

    from PIL import Image

    fig = KeptFigure((3, 2), dpi=50).draw(lambda r, f: f.add_subplot().plot(r), [0, 1, 0])
    image = Image.open(BytesIO(png_bytes(fig)))
    assert image.size == (150, 100) and image.mode == "RGB"
    assert np.array_equal(np.asarray(image), pixels(fig)[..., :3])


def test_a_plot_that_measures_its_axes_sees_a_fresh_axes():
    """A diverged run's marker is placed from the axes' limits while plotting; after a converged run
    in the same axes (lr 0.01, then 0.6 on the explorer) it must land where a fresh figure puts it."""
    use_book_style()
    exp = FACTORIES["ch01.loss_surface"]()
    kept = KeptFigure(exp.figsize)
    for lr in (0.01, 0.6, 0.1, 0.6):
        result = exp.compute({**exp.defaults(), "lr": lr}, lambda f: None)
        kept.draw(exp.plot, result)
        kept.settle()
        assert np.array_equal(pixels(kept.figure), fresh_pixels(exp, result)), f"lr = {lr}"
