"""The widget helper itself, on a toy experiment whose behaviour is known exactly."""
import pytest
import math
import re
from types import SimpleNamespace


from gradlab.interact import Experiment, choice, int_slider, log_slider
from gradlab.kernelfree import grid_points


def _toy():
    def compute(v, progress):
        x, xs = 1.0, [1.0]
        for k in range(1, v["steps"] + 1):
            x *= 1 - v["lr"] * v["L"]
            if not math.isfinite(x) or abs(x) > 1e12:
                return SimpleNamespace(xs=xs, diverged_at=k)
            xs.append(x)
            progress(k / v["steps"])
        return SimpleNamespace(xs=xs, diverged_at=None)

    def plot(r, fig):
        fig.add_subplot().plot(r.xs)

    return Experiment("toy", [log_slider("lr", "lr", 0.1, 1e-3, 10.0, grid=[0.01, 0.5, 3.0]),
                              choice("L", "L", [1.0, 2.0]), int_slider("steps", "steps", 40, 1, 200)],
                      compute, plot, trains=True)


def test_divergence_is_reported_with_its_step():
    # x_k = (1 - lr*L)^k = (-29)^k passes 1e12 at k = 9 (29^8 = 5.0e11, 29^9 = 1.45e13)
    out = _toy().run({"lr": 10.0, "L": 3.0})
    assert out.ok and out.result.diverged_at == 9
    assert "diverged at step 9" in out.message


def test_errors_become_messages_not_tracebacks():
    exp = _toy()
    exp.compute = lambda v, p: (_ for _ in ()).throw(ValueError("batch size must be positive"))
    out = exp.run()
    assert not out.ok and out.figure is None
    assert out.message == "Could not run with these settings: batch size must be positive"


def test_live_view_runs_on_button_and_reports_progress():
    view = _toy().widget()
    assert view.last is None  # a training widget waits for Run
    view.controls["lr"].value = 10.0
    view.button.click()
    assert view.last.result.diverged_at is not None
    assert "diverged at step" in view.status.value
    view.controls["lr"].value = 0.01
    view.button.click()
    assert view.last.result.diverged_at is None and view.progress.value == 1.0


def test_static_html_holds_every_grid_frame_in_order():
    exp = _toy()
    assert len(grid_points(exp)) == 3 * 2
    html = exp.static_html()
    data = re.search(r'<script type="application/json" class="gl-data">(.*?)</script>', html).group(1)
    import json

    payload = json.loads(data)
    assert payload["shape"] == [3, 2] and len(payload["index"]) == 6
    # lr=3, L=2 (last frame) diverges; lr=0.01, L=1 (first frame) does not
    assert "diverged at step" in payload["messages"][-1] and payload["messages"][0] == ""
    assert payload["alerts"][-1] is True and payload["alerts"][0] is False
    assert len(set(payload["frames"])) == 6 and payload["index"] == list(range(6))  # six different pictures
    assert 'data-gl-axis="0"' in html and 'data-gl-axis="1"' in html
    assert payload["alts"][0].startswith("toy. Settings: lr = 0.01, L = 1.0, steps = 40.")
    assert 'for="gl-' in html and 'aria-valuetext="0.01"' in html  # every control is labelled


def test_identical_frames_are_stored_once():
    """A control that changes nothing at some setting (here: L when lr = 0) adds no frame."""
    exp = _toy()
    exp.controls = [log_slider("lr", "lr", 0.1, 1e-3, 10.0, grid=[0.0, 0.5]), choice("L", "L", [1.0, 2.0]),
                    int_slider("steps", "steps", 40, 1, 200)]
    import json

    payload = json.loads(re.search(r'class="gl-data">(.*?)</script>', exp.static_html()).group(1))
    assert len(payload["index"]) == 4 and len(payload["frames"]) == 3
    assert payload["index"][0] == payload["index"][1]  # lr = 0: L does not matter


def test_the_status_names_the_run_that_diverged():
    exp = _toy()
    inner = exp.compute
    exp.compute = lambda v, p: SimpleNamespace(**vars(inner(v, p)), diverged_run="with momentum")
    out = exp.run({"lr": 10.0, "L": 3.0})
    assert out.message.startswith("The run with momentum diverged at step 9")


def test_log_readouts_fit_their_numbers():
    from gradlab.interact import compact

    assert [compact(x) for x in (1e-6, 0.18, 3e-4, 1000.0, 2.5e-12)] == ["1e-6", "0.18", "0.0003", "1000", "2.5e-12"]


def test_show_picks_static_html_when_building_the_book(monkeypatch, capsys):
    monkeypatch.setenv("GRADLAB_STATIC", "1")
    assert _toy().show() is None  # static: no live view is created
    monkeypatch.setenv("GRADLAB_STATIC", "0")
    assert _toy().show() is not None
    assert "gl-data" not in capsys.readouterr().out.split("<IPython")[-1]


# --- Prefetching: a live widget draws the settings one key press away while the kernel is idle.

def _decoded(png: bytes):
    import io

    import matplotlib.image as mpimg

    return mpimg.imread(io.BytesIO(png))


def _fresh_png(exp, values) -> bytes:
    from gradlab.interact import LIVE_DPI
    from gradlab.livefigure import KeptFigure, png_bytes

    kept = KeptFigure(exp.figsize, dpi=LIVE_DPI)
    out = exp.run(values, canvas=kept)
    kept.settle()
    return png_bytes(out.figure)


async def _idle(view, timeout=60.0):
    import asyncio

    for _ in range(int(timeout / 0.01)):
        if not view._queue and view._timer is None:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("prefetching never finished")


@pytest.mark.parametrize("name", ["ch01.loss_surface", "ch02.graph"])
def test_prefetched_neighbour_is_served_and_looks_like_a_fresh_draw(name, monkeypatch):
    """While idle, the view draws the moved control's neighbours; a key press then swaps one in, and
    the picture is the one a fresh figure of that setting gives, pixel for pixel."""
    import asyncio

    import numpy as np

    from gradlab.interact import _key
    from gradlab.widgets import get

    monkeypatch.delenv("GRADLAB_PREFETCH", raising=False)
    exp = get(name)
    control = exp.controls[0] if name == "ch02.graph" else next(c for c in exp.controls if c.name == "lr")

    async def scenario():
        view = exp.widget()
        await asyncio.sleep(0.05)
        assert len(view._frames) == 1 and not view._queue  # nothing drawn ahead before the reader moves
        start = control.neighbours(control.default)[-1]  # the reader's first move: one step down
        view.controls[control.name].value = start
        assert view.hits == 0
        await _idle(view)
        here = {**exp.defaults(), control.name: start}
        settings = [exp.defaults(), here] + [{**here, control.name: v} for v in control.neighbours(start)]
        assert set(view._frames) == {_key(v) for v in settings}  # default, start and the moved control's neighbours
        target = control.neighbours(start)[-1]  # the next step down was drawn first
        view.controls[control.name].value = target
        assert view.hits == 1
        shown = view.figure.value
        assert np.array_equal(_decoded(shown), _decoded(_fresh_png(exp, {**exp.defaults(), control.name: target})))
        assert view.last.values[control.name] == target and view.last.ok
        await _idle(view)
        view.controls[control.name].value = start  # and back up: kept from before
        assert view.hits == 2

    asyncio.run(scenario())


def test_no_prefetch_without_an_event_loop_or_when_turned_off(monkeypatch):
    import asyncio

    from gradlab.widgets import get

    exp = get("ch02.graph")
    view = exp.widget()  # no running loop here: only the settings shown are kept
    view.controls["step"].value = 1
    assert len(view._frames) == 2 and view._timer is None
    monkeypatch.setenv("GRADLAB_PREFETCH", "0")

    async def scenario():
        v = exp.widget()
        v.controls["step"].value = 1
        await asyncio.sleep(0.05)
        assert len(v._frames) == 2 and v._timer is None and not v._queue

    asyncio.run(scenario())


def test_a_key_press_cancels_pending_prefetch(monkeypatch):
    """The reader comes first: a change drops the queue planned for the old setting."""
    import asyncio

    from gradlab.widgets import get

    monkeypatch.delenv("GRADLAB_PREFETCH", raising=False)
    exp = get("ch01.loss_surface")
    steps = next(c for c in exp.controls if c.name == "steps")

    async def scenario():
        view = exp.widget()
        first = steps.neighbours(steps.default)[0]
        view.controls["steps"].value = first
        assert view._queue and view.hits == 0  # planned, not yet drawn
        second = steps.neighbours(first)[0]
        view.controls["steps"].value = second
        assert view.hits == 0  # nothing was drawn ahead yet: a cold redraw
        assert view._queue and all(q["steps"] == second or q["steps"] in steps.neighbours(second)
                                   for q in view._queue)  # the old plan is gone
        await _idle(view)

    asyncio.run(scenario())


@pytest.mark.parametrize("kind, value, want", [
    (("int", 10, 2000, 10), 200, [210, 190]),
    (("int", 10, 2000, 10), 2000, [1990]),
    (("float", -2.0, 2.0, 0.04), 0.5, [0.52, 0.48]),  # 0.5 is off the grid -2 + 0.04k: the nearest points
    (("log", 1e-4, 1.0, None), 1e-2, [10 ** -1.95, 10 ** -2.05]),  # step 4/80 decades
])
def test_neighbours_follow_the_sliders_grid(kind, value, want):
    from gradlab.interact import Control

    k, lo, hi, step = kind
    c = Control("x", "x", k, value, lo, hi, step)
    if k == "log":
        c = Control("x", "x", k, value, lo, hi, 4 / 80)
    assert c.neighbours(value) == pytest.approx(want)


def test_a_dropdown_option_cannot_be_none():
    """ipywidgets shows a Dropdown whose value is None as an empty selection, and choosing that option in the
    browser changes nothing: found by the JupyterLab test on Chapter 3's AMSGrad widget."""
    from gradlab.interact import choice
    with pytest.raises(ValueError, match="cannot be None"):
        choice("beta2", "β2", [("the paper's", None), ("0.99", 0.99)])
    assert choice("beta2", "β2", [("the paper's", "paper"), ("0.99", 0.99)]).default == "paper"


def test_a_website_grid_of_one_value_is_refused():
    """A kernel-free control with a single precomputed value moves nothing when the reader presses it: the site
    test caught two (Chapter 4's scaling η₀ and restarts T_0). The control must be held (no grid) or swept."""
    from gradlab.interact import int_slider, log_slider
    with pytest.raises(ValueError, match="grid of one value"):
        log_slider("lr0", "η₀", 0.05, 0.005, 0.5, grid=(0.05,))
    assert int_slider("T_0", "T_0", 3, 1, 8).grid == ()
    assert log_slider("lr0", "η₀", 0.05, 0.005, 0.5, grid=(0.05, 0.1)).grid == (0.05, 0.1)
