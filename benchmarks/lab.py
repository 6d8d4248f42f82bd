"""Redraw latency of every live widget in a real JupyterLab, as a reader sees it.

Usage: python benchmarks/lab.py [--modes fast,full] [--repeats N] [--train-repeats N]
                                [--chapters 01_gradient_descent,...] [--out FILE]

For each mode (fast: GRADLAB_FAST=1; full: unset, what a reader gets) it starts JupyterLab from
this environment over a temporary copy of notebooks/, opens each chapter in headless Chromium
(Debian's, offline), runs all cells, then for every live widget (no Run button) moves each
control --repeats times the way a reader does: a slider with the arrow keys on its handle, one
step at a time away from its default (turning back at an end), a dropdown to its next option.
Each move is timed in the page from the key press (or the dropdown's change) until the widget's
figure <img> has a new picture, decoded. Training widgets are timed separately: --train-repeats
presses of Run at the default settings, from the click to the new figure.

Prints a markdown table per mode with the targets (median of all live moves < 100 ms; the median
of each live widget < 150 ms) and writes the numbers as JSON (benchmarks/results/lab-*.json).
The driver is tests/labdriver.py, shared with tests/test_lab.py.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT))

from labdriver import (CHROMIUM, NOTEBOOKS, ChapterPage, LabServer, chapters, launch_browser,  # noqa: E402
                       next_option, shown_experiments)

MEDIAN_TARGET_MS = 100.0  # median over every move of every live widget
WIDGET_TARGET_MS = 150.0  # the median of each live widget
MODES = {"fast": True, "full": False}


def _pct(xs: list[float], q: float) -> float | None:
    xs = sorted(xs)
    if not xs:
        return None
    k = min(len(xs) - 1, max(0, round(q * (len(xs) - 1))))
    return xs[k]


def _stats(xs: list[float]) -> dict:
    xs = [x for x in xs if x is not None]
    if not xs:
        return {"n": 0, "median_ms": None, "p90_ms": None, "max_ms": None, "min_ms": None}
    return {"n": len(xs), "median_ms": statistics.median(xs), "p90_ms": _pct(xs, 0.9), "max_ms": max(xs),
            "min_ms": min(xs)}


def move_control(page: ChapterPage, wi: int, ci: int, repeats: int, log) -> list:
    """``repeats`` one-step moves of one control; then the widget is put back to its defaults."""
    state = page.value(wi, ci)
    moves = []
    direction = "ArrowLeft" if state.get("atMax") else "ArrowRight"
    for _ in range(repeats):
        if state["kind"] == "dropdown":
            action = f"select {next_option(state)}"
        else:
            if direction == "ArrowRight" and state.get("atMax"):
                direction = "ArrowLeft"
            elif direction == "ArrowLeft" and state.get("atMin"):
                direction = "ArrowRight"
            action = direction
        m = page.act(wi, ci, action)
        moves.append(m)
        log(m)
        state = page.value(wi, ci)
    page.restore_defaults(wi)
    return moves


def run_done_ms(m) -> float | None:
    """A Run: from the click until the kernel is done and its last picture (if any) is decoded."""
    xs = [x for x in (m.idle_ms, m.final_ms) if x is not None]
    return max(xs) if xs else None


def bench_chapter(browser, lab: LabServer, notebook: str, repeats: int, train_repeats: int, verbose: bool) -> dict:
    from gradlab.widgets import get

    experiments = [get(name) for name in shown_experiments(NOTEBOOKS / notebook)]
    page = ChapterPage(browser, lab, notebook, load_timeout=300)
    out: dict = {"notebook": notebook, "widgets": [], "problems": []}

    def log(m) -> None:
        if verbose:
            lat = "—" if m.latency_ms is None else f"{m.latency_ms:.0f} ms"
            print(f"    {m.widget[:40]:40s} {m.control[:28]:28s} {m.action:12s} {m.after[:12]:12s} {lat}"
                  + (" TIMEOUT" if m.timed_out else "") + ("" if m.redrawn or not m.changed else " (no new figure)"),
                  file=sys.stderr)

    try:
        out["load_s"] = page.load_s
        run = page.run_all(timeout=3600)
        out["run_all_s"] = run["seconds"]
        if not run.get("ok") or run.get("not_executed"):
            out["problems"].append(f"Run All did not finish: {run}")
        print(f"  {notebook}: opened in {page.load_s:.1f} s, ran all cells in {run['seconds']:.1f} s", file=sys.stderr)
        widgets = page.wait_for_widgets(len(experiments), timeout=300)
        for wi, (info, exp) in enumerate(zip(widgets, experiments)):
            row = {"title": info["title"], "trains": bool(info["run"]), "controls": []}
            if info["run"]:
                runs = [page.act(wi, None, "click", timeout=1800) for _ in range(train_repeats)]
                for m in runs:
                    log(m)
                # A second Run at the same settings may draw the very same picture (no new src):
                # timed until the kernel is done.
                row["runs"] = [{"done_ms": run_done_ms(m), "latency_ms": m.latency_ms, "new_figure": m.redrawn}
                               for m in runs]
                row["run"] = _stats([run_done_ms(m) for m in runs if not m.timed_out])
                row["failed"] = sum(1 for m in runs if m.timed_out)
            else:
                everything = []
                for ci, state in enumerate(info["controls"]):
                    moves = move_control(page, wi, ci, repeats, log)
                    lat = [m.latency_ms for m in moves if m.redrawn]
                    everything += moves
                    row["controls"].append({
                        "label": state["label"], "kind": state["kind"], "latency_ms": lat,
                        "src_ms": [m.src_ms for m in moves if m.redrawn],
                        "painted_ms": [m.painted_ms for m in moves if m.redrawn],
                        "final_ms": [m.final_ms for m in moves if m.redrawn],
                        "pictures": [m.pictures for m in moves if m.redrawn],
                        "failed": sum(1 for m in moves if m.changed and (m.timed_out or not m.redrawn)),
                        **_stats(lat)})
                redrawn = [m for m in everything if m.redrawn]
                row["live"] = _stats([m.latency_ms for m in redrawn])
                row["src"] = _stats([m.src_ms for m in redrawn])
                row["painted"] = _stats([m.painted_ms for m in redrawn])
                row["final"] = _stats([m.final_ms for m in redrawn])
                row["latency_ms"] = [m.latency_ms for m in redrawn]
                row["failed"] = sum(1 for m in everything if m.changed and (m.timed_out or not m.redrawn))
            out["widgets"].append(row)
        out["problems"] += page.problems()
    finally:
        page.close()
        try:
            lab.shutdown_kernels()
        except Exception:
            pass
    return out


def bench_mode(mode: str, notebooks: list[str], repeats: int, train_repeats: int, verbose: bool) -> dict:
    from playwright.sync_api import sync_playwright

    print(f"[{mode} mode] starting JupyterLab", file=sys.stderr)
    result = {"mode": mode, "chapters": []}
    with LabServer(NOTEBOOKS, fast=MODES[mode]) as lab, sync_playwright() as p:
        browser = launch_browser(p)
        try:
            for nb in notebooks:
                result["chapters"].append(bench_chapter(browser, lab, nb, repeats, train_repeats, verbose))
        finally:
            browser.close()
    live = [x for ch in result["chapters"] for w in ch["widgets"] if not w["trains"] for x in w["latency_ms"]]
    result["live"] = _stats(live)
    medians = [w["live"]["median_ms"] for ch in result["chapters"] for w in ch["widgets"] if not w["trains"]]
    result["verdict"] = {
        "median": None if not live else statistics.median(live) < MEDIAN_TARGET_MS,
        "every_widget": None if not medians else all(m is not None and m < WIDGET_TARGET_MS for m in medians),
    }
    return result


def _ms(x: float | None) -> str:
    return "—" if x is None else f"{x:.0f} ms"


def _ok(ok: bool | None) -> str:
    return "n/a" if ok is None else ("PASS" if ok else "MISS")


def markdown(report: dict) -> str:
    lines = [f"JupyterLab {report['jupyterlab']} · ipywidgets {report['ipywidgets']} · {report['browser']} · "
             f"device {report['device']} · {report['cpus']} CPU cores · load average at start "
             f"{report['load_at_start']} · {report['when']}", "",
             f"Latency: from the reader's input event (key press on a slider handle, dropdown change, click on Run) "
             f"to the new figure decoded in the page; {report['repeats']} moves per control; "
             f"prefetch of neighbouring settings {report.get('prefetch', 'on')}.", ""]
    for res in report["modes"]:
        lines += [f"### {res['mode']} mode", "",
                  "| chapter | widget | moves | median | p90 | max | median until new src | median until last picture "
                  f"| slowest control (median) | verdict (median < {WIDGET_TARGET_MS:g} ms) |",
                  "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
        for ch in res["chapters"]:
            for w in ch["widgets"]:
                if w["trains"]:
                    continue
                s = w["live"]
                slow = max((c for c in w["controls"] if c["median_ms"] is not None), key=lambda c: c["median_ms"],
                           default=None)
                slow_txt = "—" if slow is None else f"{slow['label']} ({_ms(slow['median_ms'])})"
                ok = None if s["median_ms"] is None else s["median_ms"] < WIDGET_TARGET_MS
                failed = f" ({w['failed']} moves without a new figure)" if w["failed"] else ""
                lines.append(f"| {ch['notebook'].removesuffix('.ipynb')} | {w['title']} | {s['n']}{failed} | "
                             f"{_ms(s['median_ms'])} | {_ms(s['p90_ms'])} | {_ms(s['max_ms'])} | "
                             f"{_ms(w['src']['median_ms'])} | {_ms(w['final']['median_ms'])} | {slow_txt} | {_ok(ok)} |")
        s = res["live"]
        lines += ["", f"All live widgets: {s['n']} moves, median **{_ms(s['median_ms'])}** "
                  f"(target < {MEDIAN_TARGET_MS:g} ms: {_ok(res['verdict']['median'])}), p90 {_ms(s['p90_ms'])}, "
                  f"max {_ms(s['max_ms'])}; every widget's median < {WIDGET_TARGET_MS:g} ms: "
                  f"{_ok(res['verdict']['every_widget'])}.", ""]
        trains = [(ch, w) for ch in res["chapters"] for w in ch["widgets"] if w["trains"]]
        if trains:
            lines += ["| chapter | training widget | runs | Run → done (median) | max | runs with a new figure |",
                      "| --- | --- | --- | --- | --- | --- |"]
            for ch, w in trains:
                new = sum(1 for r in w["runs"] if r["new_figure"])
                lines.append(f"| {ch['notebook'].removesuffix('.ipynb')} | {w['title']} | {w['run']['n']} | "
                             f"{_ms(w['run']['median_ms'])} | {_ms(w['run']['max_ms'])} | {new} |")
            lines.append("")
        lines.append("| chapter | JupyterLab opened | Run All Cells |")
        lines.append("| --- | --- | --- |")
        for ch in res["chapters"]:
            lines.append(f"| {ch['notebook'].removesuffix('.ipynb')} | {ch.get('load_s', 0):.1f} s | "
                         f"{ch.get('run_all_s', float('nan')):.1f} s |")
        problems = [f"{ch['notebook']}: {p}" for ch in res["chapters"] for p in ch["problems"]]
        if problems:
            lines += ["", "Problems seen (tests/test_lab.py fails on these):", *[f"- {p[:300]}" for p in problems]]
        lines.append("")
    return "\n".join(lines)


def _versions() -> dict:
    from importlib.metadata import version

    try:
        browser = subprocess.run([str(CHROMIUM), "--version"], capture_output=True, text=True, timeout=30).stdout.strip()
    except Exception:
        browser = "Chromium"
    return {"jupyterlab": version("jupyterlab"), "ipywidgets": version("ipywidgets"),
            "browser": browser or "Chromium"}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--modes", default="fast,full", help="fast, full or both (comma-separated)")
    parser.add_argument("--repeats", type=int, default=10, help="moves per control of a live widget (default 10)")
    parser.add_argument("--train-repeats", type=int, default=3, help="presses of Run per training widget (default 3)")
    parser.add_argument("--chapters", default="", help="notebook names (without .ipynb), comma-separated; default all")
    parser.add_argument("--out", type=Path, help="JSON file to write (default: benchmarks/results/lab-<time>.json)")
    parser.add_argument("--prefetch", choices=["on", "off"], default="on",
                        help="live widgets draw the settings one key press away while idle (default on, as a "
                             "reader gets); off measures every move as a cold redraw")
    parser.add_argument("-v", "--verbose", action="store_true", help="print every move")
    args = parser.parse_args(argv)
    modes = [m for m in args.modes.split(",") if m]
    unknown = set(modes) - set(MODES)
    if unknown or not modes:
        parser.error(f"unknown modes {sorted(unknown)}; choose from {sorted(MODES)}")
    if args.repeats < 1 or args.train_repeats < 0:
        parser.error("--repeats must be at least 1 and --train-repeats at least 0")
    notebooks = chapters()
    if args.chapters:
        wanted = {c.removesuffix(".ipynb") for c in args.chapters.split(",") if c}
        notebooks = [n for n in notebooks if n.removesuffix(".ipynb") in wanted]
        if not notebooks:
            parser.error(f"no chapter matches {sorted(wanted)}")

    os.environ.pop("GRADLAB_STATIC", None)
    os.environ["GRADLAB_PREFETCH"] = "1" if args.prefetch == "on" else "0"  # the kernels inherit it
    os.environ.setdefault("GRADLAB_FAST", "1")  # only for listing the widgets here; the kernels get the mode's
    import gradlab  # noqa: F401
    from gradlab.device import device_name, pick_device

    report = {"device": device_name(pick_device()), "cpus": os.cpu_count(), "python": platform.python_version(),
              "load_at_start": " ".join(f"{x:.1f}" for x in os.getloadavg()),
              "when": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
              "targets": {"median_ms": MEDIAN_TARGET_MS, "widget_median_ms": WIDGET_TARGET_MS},
              "repeats": args.repeats, "prefetch": args.prefetch, "train_repeats": args.train_repeats, **_versions(), "modes": []}
    t0 = time.perf_counter()
    for mode in modes:
        report["modes"].append(bench_mode(mode, notebooks, args.repeats, args.train_repeats, args.verbose))
    report["seconds"] = time.perf_counter() - t0
    table = markdown(report)
    print(table)
    out = args.out or ROOT / "benchmarks" / "results" / f"lab-{datetime.now().strftime('%Y%m%d-%H%M%S')}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    out.with_suffix(".md").write_text(table + "\n")
    print(f"\nwrote {out} (and {out.with_suffix('.md').name}) in {report['seconds']:.0f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
