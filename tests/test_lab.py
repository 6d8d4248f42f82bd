"""Every chapter in a real JupyterLab, in headless Chromium, offline: run all cells, then move every
control of every live widget the way a reader does (a key on the slider handle, another option of
a dropdown) and push each to both ends; of a training widget, press Run at the defaults, after every
option of each dropdown and with each slider at its high end (its other extremes run in the kernel, in
tests/test_widgets.py); and check that the figure changes,
that nothing shows a traceback or logs a console error, and that a diverging learning rate says
"diverged at step k".

The redraw latencies are printed (``-s`` shows them), never asserted: benchmarks/lab.py measures
them (see benchmarks/README.md)."""
from __future__ import annotations

import re
import time

import pytest

from labdriver import (NOTEBOOKS, ChapterPage, LabServer, Move, chapters, median,
                       next_option, shown_experiments, step_key)

pytestmark = [pytest.mark.browser, pytest.mark.xdist_group("lab")]

DIVERGED = re.compile(r"diverged at step \d+")
REDRAW_TIMEOUT_S = 120  # one move; a fast-mode redraw takes well under a second


@pytest.fixture(scope="module")
def lab():
    try:
        import jupyterlab  # noqa: F401
    except ImportError:
        pytest.fail("JupyterLab is missing from .venv: `.venv/bin/pip install -r requirements.txt` (or `make test`).")
    with LabServer(NOTEBOOKS, fast=True) as server:
        yield server


@pytest.fixture
def open_chapter(browser, lab):
    opened: list[ChapterPage] = []

    def open_(notebook: str) -> ChapterPage:
        page = ChapterPage(browser, lab, notebook)
        opened.append(page)
        return page

    yield open_
    for page in opened:
        page.close()
    lab.shutdown_kernels()


class Checker:
    """Runs the moves of one chapter and collects every failure with its context."""

    def __init__(self, page: ChapterPage):
        self.page = page
        self.moves: list[Move] = []
        self.restores: list[Move] = []
        self.checks_s = 0.0
        self.failures: list[str] = []

    def act(self, widget: int, control: int | None, action: str, *, expect_redraw: bool = True) -> Move:
        m = self.page.act(widget, control, action, timeout=REDRAW_TIMEOUT_S)
        self.moves.append(m)
        where = f"{m.widget!r}, {m.control} {action} ({m.before!r} → {m.after!r})"
        if m.timed_out:
            self.failures.append(f"{where}: no redraw within {REDRAW_TIMEOUT_S} s (status {m.status!r})")
        elif m.changed and expect_redraw and not m.redrawn:
            self.failures.append(f"{where}: the figure did not change (status {m.status!r})")
        elif m.changed and not expect_redraw and m.redrawn:
            self.failures.append(f"{where}: a training widget redrew before Run was pressed")
        if "Could not run" in m.status:
            self.failures.append(f"{where}: {m.status}")
        if control is None and m.status.startswith("Running"):
            self.failures.append(f"{where}: the run never finished (status {m.status!r})")
        problems = self.page.new_problems()
        if problems:
            self.failures.append(f"{where}: {problems}")
        return m

    def restore(self, widget: int) -> None:
        m = self.page.restore_defaults(widget, timeout=REDRAW_TIMEOUT_S)
        self.restores.append(m)
        if m.timed_out:
            self.failures.append(f"{m.widget!r}: back to the defaults: no redraw within {REDRAW_TIMEOUT_S} s")
        problems = self.page.new_problems()
        if problems:
            self.failures.append(f"{m.widget!r}, back to the defaults: {problems}")

    def check_divergence(self, m: Move, exp, control, value) -> None:
        """A learning rate at an end: where the run diverges, the status must say so."""
        if control.name != "lr":
            return
        t0 = time.perf_counter()
        expected = exp.run({control.name: value})
        self.checks_s += time.perf_counter() - t0
        diverged = getattr(expected.result, "diverged_at", None)
        if diverged is not None and not DIVERGED.search(m.status):
            self.failures.append(f"{m.widget!r}: {control.label} = {value:g} diverges (step {diverged}), "
                                 f"but the status says {m.status!r}")


def exercise_live(ck: Checker, wi: int, info: dict, exp) -> None:
    controls = {c.label: c for c in exp.controls}
    for ci, state in enumerate(info["controls"]):
        control = controls[state["label"]]
        if state["kind"] == "dropdown":
            first = next_option(state)
            ck.act(wi, ci, f"select {first}")  # the reader's move
            for k in range(len(state["options"])):  # every other option ("extremes")
                if k not in (first, state["index"]):
                    ck.act(wi, ci, f"select {k}")
        else:
            ck.act(wi, ci, step_key(state))  # the reader's move: one step
            for key, end in (("Home", "low"), ("End", "high")):
                m = ck.act(wi, ci, key)
                ck.check_divergence(m, exp, control, getattr(control, end))
        ck.restore(wi)  # the next control is moved from the defaults


def exercise_training(ck: Checker, wi: int, info: dict, exp) -> None:
    controls = {c.label: c for c in exp.controls}
    ck.act(wi, None, "click")  # Run at the defaults
    for ci, state in enumerate(info["controls"]):
        control = controls[state["label"]]
        if state["kind"] == "dropdown":  # every option: each must be selectable from the browser
            settings = [(f"select {k}", None) for k in range(len(state["options"])) if k != state["index"]]
        else:  # one end is enough for the plumbing; every extreme is run in the kernel by tests/test_widgets.py
            settings = [("End", "high")]
        for action, end in settings:
            if not ck.act(wi, ci, action, expect_redraw=False).changed:
                continue  # already there: the run at the defaults covered it
            m = ck.act(wi, None, "click")
            if end is not None:
                ck.check_divergence(m, exp, control, getattr(control, end))
        ck.restore(wi)


def latency_report(moves: list[Move]) -> str:
    rows = {}
    for m in moves:
        if m.redrawn and m.latency_ms is not None:
            rows.setdefault((m.widget, m.control == "Run"), []).append(m.latency_ms)
    lines = []
    for (widget, run), xs in rows.items():
        kind = "Run" if run else "live"
        lines.append(f"  {widget} [{kind}]: {len(xs)} redraws, median {median(xs):.0f} ms, max {max(xs):.0f} ms")
    return "\n".join(lines)


@pytest.mark.parametrize("notebook", chapters())
def test_widgets_work_in_jupyterlab(open_chapter, notebook):
    from gradlab.widgets import get

    experiments = [get(name) for name in shown_experiments(NOTEBOOKS / notebook)]
    assert experiments, f"{notebook} shows no widget"
    page = open_chapter(notebook)
    run = page.run_all()
    assert run.get("ok") and not run.get("not_executed"), f"{notebook}: Run All did not finish: {run}"
    assert not page.new_problems(), f"{notebook}, running all cells: {page.problems()}"
    widgets = page.wait_for_widgets(len(experiments))
    assert [w["title"] for w in widgets] == [e.title for e in experiments], "the widgets shown are not the chapter's"

    ck = Checker(page)
    for wi, (info, exp) in enumerate(zip(widgets, experiments)):
        assert info["hasImg"], f"{info['title']!r} has no figure"
        assert [c["label"] for c in info["controls"]] == [c.label for c in exp.controls], info["title"]
        assert info["run"] == exp.trains, f"{info['title']!r}: a Run button exactly when the experiment trains"
        (exercise_training if exp.trains else exercise_live)(ck, wi, info, exp)

    moves_s = sum(m.wall_s for m in ck.moves)
    restores_s = sum(m.wall_s for m in ck.restores)
    print(f"\n{notebook}: opened in {page.load_s:.1f} s, ran all cells in {run['seconds']:.1f} s, "
          f"{len(ck.moves)} moves in {moves_s:.1f} s, {len(ck.restores)} returns to the defaults in "
          f"{restores_s:.1f} s, divergence checks in {ck.checks_s:.1f} s; "
          f"latency from the input event to the new figure decoded:\n{latency_report(ck.moves)}")
    assert not ck.failures, "\n".join(ck.failures)
    assert not page.problems(), page.problems()
    assert not page.external, f"requests to other sites: {page.external}"
