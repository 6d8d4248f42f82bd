"""Every registered experiment of the book: built, fired, pushed to every extreme, rendered kernel-free."""
import itertools

import pytest

from gradlab.kernelfree import grid_points
from gradlab.widgets import all_experiments

FACTORIES = all_experiments()


def test_the_book_has_experiments():
    assert len(FACTORIES) >= 1


@pytest.mark.parametrize("name", sorted(FACTORIES))
def test_widget_builds_and_its_callback_fires(name):
    exp = FACTORIES[name]()
    view = exp.widget()
    if exp.trains:
        view.button.click()
    else:
        first = exp.controls[0]
        view.controls[first.name].value = first.extremes()[-1]
    assert view.last is not None and view.last.ok, view.last and view.last.message
    assert view.last.figure is not None


@pytest.mark.parametrize("name", sorted(FACTORIES))
def test_every_control_at_its_extremes_gives_no_exception(name):
    exp = FACTORIES[name]()
    for control in exp.controls:
        for value in control.extremes():
            out = exp.run({control.name: value})
            assert out.ok, f"{name}: {control.name}={value!r}: {out.message}"
            assert out.figure is not None


@pytest.mark.parametrize("name", sorted(FACTORIES))
def test_all_controls_at_their_extremes_together(name):
    exp = FACTORIES[name]()
    numeric = [c for c in exp.controls if c.kind != "choice"]
    for combo in itertools.product(*(c.extremes() for c in numeric)):
        if len(numeric) > 4:  # corners only, to keep the suite fast
            break
        out = exp.run(dict(zip((c.name for c in numeric), combo)))
        assert out.ok, f"{name}: {combo}: {out.message}"


def two_per_control(exp):
    """The experiment with each swept control cut to the two ends of its grid: the figure's structure, at a
    fraction of the cost. The book build computes every grid in full, and tests/test_book.py checks that
    every one of those settings ran."""
    from dataclasses import replace

    return replace(exp, controls=[replace(c, grid=(c.grid[0], c.grid[-1])) if len(c.grid) > 2 else c
                                  for c in exp.controls])


@pytest.mark.parametrize("name", sorted(FACTORIES))
def test_kernel_free_html_contains_every_frame(name):
    exp = FACTORIES[name]()
    assert len(grid_points(exp)) >= 2, "the website figure must have a control that changes something"
    exp = two_per_control(exp)
    points = grid_points(exp)
    html = exp.static_html()
    assert html.count('src="data:image/webp;base64,') == 1  # only the first frame is an <img>; the rest are data
    import json
    import re

    payload = json.loads(re.search(r'class="gl-data">(.*?)</script>', html).group(1))
    assert len(payload["index"]) == len(points) == len(payload["alts"]) == len(payload["messages"])
    assert sorted(set(payload["index"])) == list(range(len(payload["frames"]))), "every stored frame is used"
    assert all(len(f) > 100 for f in payload["frames"])
    assert len(html) < 2_500_000, "one figure must stay well under the 5 MB page budget"


@pytest.mark.parametrize("name", sorted(FACTORIES))
def test_every_figure_says_in_words_what_it_shows(name):
    """The text alternative of every frame on the website: the experiment's alt, then the settings."""
    exp = FACTORIES[name]()
    assert len(exp.alt) >= 60 and exp.alt != exp.title, f"{name}: give the Experiment an alt that describes the figure"
    from gradlab.kernelfree import frame_alt

    values = exp.defaults()
    text = frame_alt(exp, values, "a status")
    assert text.startswith(exp.alt) and text.endswith("a status")
    assert all(f"{c.label} = {c.describe(values[c.name])}" in text for c in exp.controls)
