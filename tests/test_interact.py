"""The widget helper itself, on a toy experiment whose behaviour is known exactly."""
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
    assert payload["shape"] == [3, 2] and len(payload["frames"]) == 6
    # lr=3, L=2 (last frame) diverges; lr=0.01, L=1 (first frame) does not
    assert "diverged at step" in payload["messages"][-1] and payload["messages"][0] == ""
    assert payload["alerts"][-1] is True and payload["alerts"][0] is False
    assert len(set(payload["frames"])) == 6  # six different pictures
    assert 'data-gl-axis="0"' in html and 'data-gl-axis="1"' in html


def test_show_picks_static_html_when_building_the_book(monkeypatch, capsys):
    monkeypatch.setenv("GRADLAB_STATIC", "1")
    assert _toy().show() is None  # static: no live view is created
    monkeypatch.setenv("GRADLAB_STATIC", "0")
    assert _toy().show() is not None
    assert "gl-data" not in capsys.readouterr().out.split("<IPython")[-1]
