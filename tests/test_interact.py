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
