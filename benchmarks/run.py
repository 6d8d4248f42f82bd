"""Time every experiment of the book and every chapter notebook on this machine's device.

Usage: python benchmarks/run.py [--quick] [--out FILE] [--fast]

For each registered experiment (gradlab.widgets.all_experiments()):
- a live redraw (trains=False): median compute time of the default settings over --repeats runs;
- a training widget (trains=True): time to the first progress callback and to the end of the
  default run, medians over --train-repeats runs;
- the plot: drawing the result and encoding the PNG the widget shows, median of 5.
Then Chapter 3's batched learning-rate sweep against a Python loop of the same runs, on the CPU, and
(unless --quick) each notebook executed top to bottom with nbclient in fast mode
(GRADLAB_FAST=1, as the tests run it), full mode (as a reader runs it) and full mode with
GRADLAB_STATIC=1 (as the website build runs it, kernel-free figures precomputed).
Prints a markdown table with the targets and writes the numbers as JSON (benchmarks/results/).
"""
from __future__ import annotations

import argparse
import io
import json
import os
import platform
import statistics
import sys
import time
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
REDRAW_TARGET_S = 0.050
FIRST_PROGRESS_TARGET_S = 0.5
FINISH_TARGET_S = 3.0
MODES = {  # notebook timing: the environment each run gets
    "fast": {"GRADLAB_FAST": "1"},
    "full": {},
    "static": {"GRADLAB_STATIC": "1"},
}


@contextmanager
def environment(**values: str):
    """Set GRADLAB_* variables for a block (kernels started inside inherit them), then restore."""
    keys = ("GRADLAB_FAST", "GRADLAB_STATIC", "MPLBACKEND", *values)
    saved = {k: os.environ.get(k) for k in keys}
    for k in ("GRADLAB_FAST", "GRADLAB_STATIC", "MPLBACKEND"):
        os.environ.pop(k, None)
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def time_compute(exp, device, repeats: int) -> dict:
    """Median compute time (and, for a training widget, time to the first progress callback)."""
    from gradlab.device import sync

    values = exp.defaults()
    exp.compute(values, lambda f: None)  # warm-up: imports, caches, kernels
    sync(device)
    totals, firsts = [], []
    for _ in range(repeats):
        first: list[float] = []
        t0 = time.perf_counter()

        def progress(fraction: float, first=first, t0=t0) -> None:
            if not first:
                first.append(time.perf_counter() - t0)

        result = exp.compute(values, progress)
        sync(device)
        totals.append(time.perf_counter() - t0)
        firsts.append(first[0] if first else None)
    out = {"runs": repeats, "median_s": statistics.median(totals), "min_s": min(totals), "result": result}
    if exp.trains:
        seen = [f for f in firsts if f is not None]
        out["first_progress_s"] = statistics.median(seen) if len(seen) == len(firsts) else None
    return out


def time_plot(exp, result, repeats: int = 5) -> float:
    """Median time to draw a result into a fresh figure and encode its PNG (a widget's first draw)."""
    from matplotlib.figure import Figure

    from gradlab.interact import LIVE_DPI
    from gradlab.style import use_book_style

    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        use_book_style()
        fig = Figure(figsize=exp.figsize, layout="constrained")
        exp.plot(result, fig)
        fig.savefig(io.BytesIO(), format="png", dpi=LIVE_DPI)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def time_redraw(exp, results: list, repeats: int = 10) -> float:
    """Median time of a live widget's redraw: the next result drawn into its kept figure and encoded,
    alternating between results so that limits and labels change as they do when a control moves."""
    from gradlab.interact import LIVE_DPI
    from gradlab.livefigure import KeptFigure, png_bytes
    from gradlab.style import use_book_style

    use_book_style()
    kept = KeptFigure(exp.figsize, dpi=LIVE_DPI)
    kept.draw(exp.plot, results[0])
    kept.settle()
    times = []
    for i in range(repeats):
        t0 = time.perf_counter()
        png_bytes(kept.draw(exp.plot, results[(i + 1) % len(results)]))
        times.append(time.perf_counter() - t0)
        kept.settle()  # after the frame is shown, as LiveView does
    return statistics.median(times)


def other_result(exp, device):
    """A result at another value of the first control, for redraws that change something."""
    control = exp.controls[0]
    values = [v for v in (control.grid or control.extremes()) if v != control.default]
    return exp.compute({**exp.defaults(), control.name: values[0]}, lambda f: None) if values else None


def verdict(ok: bool | None) -> str:
    return "n/a" if ok is None else ("PASS" if ok else "MISS")


def bench_experiments(device, repeats: int, train_repeats: int) -> list[dict]:
    from gradlab.widgets import all_experiments

    rows = []
    for name, factory in all_experiments().items():
        exp = factory()
        timing = time_compute(exp, device, train_repeats if exp.trains else repeats)
        row = {"name": name, "trains": exp.trains, "runs": timing["runs"], "compute_median_s": timing["median_s"],
               "compute_min_s": timing["min_s"], "plot_median_s": time_plot(exp, timing["result"])}
        other = other_result(exp, device)
        row["redraw_median_s"] = time_redraw(exp, [timing["result"]] + ([other] if other is not None else []))
        if exp.trains:
            first = timing["first_progress_s"]
            row["first_progress_s"] = first
            row["first_progress_ok"] = first is not None and first < FIRST_PROGRESS_TARGET_S
            row["finish_ok"] = timing["median_s"] < FINISH_TARGET_S
            row["ok"] = row["first_progress_ok"] and row["finish_ok"]
        else:
            row["ok"] = timing["median_s"] < REDRAW_TARGET_S
        rows.append(row)
        print(f"  {name}: {timing['median_s'] * 1e3:.1f} ms compute ({timing['runs']} runs)", file=sys.stderr)
    return rows


def bench_notebooks(modes: list[str], timeout: int) -> list[dict]:
    import nbformat
    from nbclient import NotebookClient

    rows = []
    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        row = {"notebook": path.name}
        for mode in modes:
            nb = nbformat.read(path, as_version=4)
            with environment(**MODES[mode]):
                client = NotebookClient(nb, timeout=timeout, kernel_name="python3",
                                        resources={"metadata": {"path": str(path.parent)}})
                t0 = time.perf_counter()
                try:
                    client.execute()
                    row[f"{mode}_s"] = time.perf_counter() - t0
                except Exception as exc:  # a failing notebook is reported, the benchmark goes on
                    row[f"{mode}_s"] = None
                    row[f"{mode}_error"] = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
            print(f"  {path.name} [{mode}]: {row[f'{mode}_s']}", file=sys.stderr)
        rows.append(row)
    return rows


def bench_backward_cost(device, repeats: int) -> list[dict]:
    """Chapter 2's table: counted FLOPs of one forward and one backward pass, and their median wall times."""
    from dataclasses import asdict

    from gradlab.autodiff import backward_cost_table

    return [asdict(row) for row in backward_cost_table(scale=4, repeats=repeats, device=device)]


def bench_batched_sweep() -> dict:
    """Chapter 3's learning-rate sweep on the digits (every racer × every η, 3 epochs), batched in one stacked
    network against a Python loop over the same runs: both timed in this one run, on the CPU."""
    from dataclasses import asdict

    import torch

    from gradlab.batched_mlp import MLPConfig, Run, digits_split, time_sweep
    from gradlab.digits_race import RACERS, DigitsRaceConfig

    lrs = DigitsRaceConfig().lrs
    runs = [Run(k, lr) for k in RACERS for lr in lrs]
    timing = time_sweep(digits_split(0, device="cpu"), runs, MLPConfig(hidden=32, epochs=3, batch_size=128))
    return {**asdict(timing), "speedup": timing.speedup, "threads": torch.get_num_threads()}


def bench_diagnostics(device) -> dict:
    """Chapter 5's gradient monitor: its cost on a training step of a 20-layer MLP, as a ratio to the same step
    never watched (benchmarks/diagnostics_overhead.py, which also runs on its own)."""
    from diagnostics_overhead import measure

    return measure(device)


def _ms(seconds: float | None) -> str:
    return "—" if seconds is None else f"{seconds * 1e3:.3g} ms"


def _s(seconds: float | None) -> str:
    return "failed" if seconds is None else f"{seconds:.1f} s"


def markdown(report: dict) -> str:
    lines = [f"Device: **{report['device']}** · {report['mode']} mode · torch {report['torch']} · "
             f"{report['cpus']} CPU cores · {report['when']}", ""]
    lines += ["| experiment | kind | runs | compute (median) | first progress | first draw + PNG | "
              "redraw + PNG (kept figure) | target | verdict |",
              "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in report["experiments"]:
        if r["trains"]:
            target = f"first progress < {FIRST_PROGRESS_TARGET_S:g} s, finish < {FINISH_TARGET_S:g} s"
            kind, first = "training", _ms(r["first_progress_s"]) if r["first_progress_s"] is not None else "never"
        else:
            target, kind, first = f"redraw < {REDRAW_TARGET_S * 1e3:g} ms", "live redraw", "—"
        lines.append(f"| {r['name']} | {kind} | {r['runs']} | {_ms(r['compute_median_s'])} | {first} | "
                     f"{_ms(r['plot_median_s'])} | {_ms(r['redraw_median_s'])} | {target} | {verdict(r['ok'])} |")
    if report.get("backward_cost"):
        lines += ["", "| backward vs forward (Chapter 2) | forward FLOPs | backward FLOPs | ratio, counted | "
                  "forward (median) | backward (median) | ratio, wall time |", "| --- | --- | --- | --- | --- | --- | --- |"]
        for r in report["backward_cost"]:
            wall = r["backward_s"] / r["forward_s"] if r["forward_s"] > 0 else float("nan")
            lines.append(f"| {r['name']} | {r['forward']:,} | {r['backward']:,} | {r['backward'] / r['forward']:.2f} | "
                         f"{_ms(r['forward_s'])} | {_ms(r['backward_s'])} | {wall:.2f} |")
    if report.get("batched_sweep"):
        b = report["batched_sweep"]
        lines += ["", "| learning-rate sweep (Chapter 3), CPU | copies | batched | Python loop | "
                  "loop / batched |",
                  "| --- | --- | --- | --- | --- |",
                  f"| {b['copies']} MLPs on the digits, 3 epochs, {b['threads']} threads | {b['copies']} | "
                  f"{_ms(b['batched_s'])} | {_ms(b['looped_s'])} | {b['speedup']:.1f} |"]
    if report.get("diagnostics"):
        d = report["diagnostics"]
        lines += ["", f"| gradient monitor (Chapter 5): {d['depth']}-layer MLP, width {d['width']}, batch {d['batch']}, "
                  f"{d['device']}, {d['threads']} threads | ms per step | ratio to never attached |", "| --- | --- | --- |"]
        for name, row in d["conditions"].items():
            lines.append(f"| {name} | {row['seconds_per_step'] * 1e3:.3g} | {row['ratio']:.2f} |")
    if report.get("notebooks"):
        modes = report["notebook_modes"]
        lines += ["", "| notebook | " + " | ".join(f"{m} mode" for m in modes) + " |",
                  "| --- | " + " | ".join("---" for _ in modes) + " |"]
        for r in report["notebooks"]:
            lines.append(f"| {r['notebook']} | " + " | ".join(_s(r.get(f'{m}_s')) for m in modes) + " |")
        lines += ["", "fast = GRADLAB_FAST=1 (the test suite; target well under 60 s); full = as a reader runs it; "
                  "static = full mode with GRADLAB_STATIC=1, the website build's cost (target under ~3 min)."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="skip the notebook timings")
    parser.add_argument("--fast", action="store_true", help="time the experiments in fast mode (GRADLAB_FAST=1)")
    parser.add_argument("--out", type=Path, help="JSON file to write (default: benchmarks/results/<time>.json)")
    parser.add_argument("--repeats", type=int, default=20, help="runs per live redraw (at least 20)")
    parser.add_argument("--train-repeats", type=int, default=5, help="runs per training widget (default 5)")
    parser.add_argument("--modes", default="fast,full,static", help="notebook modes to time, comma-separated")
    parser.add_argument("--timeout", type=int, default=900, help="seconds a notebook cell may take")
    args = parser.parse_args(argv)
    if args.repeats < 20:
        parser.error("--repeats must be at least 20")
    modes = [m for m in args.modes.split(",") if m]
    unknown = set(modes) - set(MODES)
    if unknown:
        parser.error(f"unknown modes {sorted(unknown)}; choose from {sorted(MODES)}")

    sys.path.insert(0, str(ROOT))
    import torch

    import gradlab
    from gradlab.device import device_name, pick_device

    device = pick_device()
    report = {"device": device_name(device), "mode": "fast" if args.fast else "full", "torch": torch.__version__,
              "python": platform.python_version(), "cpus": os.cpu_count(),
              "when": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
              "targets": {"redraw_s": REDRAW_TARGET_S, "first_progress_s": FIRST_PROGRESS_TARGET_S,
                          "finish_s": FINISH_TARGET_S},
              "repeats": args.repeats, "train_repeats": args.train_repeats}
    print(f"Benchmarking on {report['device']} ({report['mode']} mode)", file=sys.stderr)
    with environment(**({"GRADLAB_FAST": "1"} if args.fast else {})):
        gradlab.seed_everything(0)
        gradlab.use_book_style()
        report["experiments"] = bench_experiments(device, args.repeats, args.train_repeats)
        report["backward_cost"] = bench_backward_cost(device, args.repeats)
        report["batched_sweep"] = bench_batched_sweep()
        report["diagnostics"] = bench_diagnostics(device)
    if not args.quick:
        report["notebook_modes"] = modes
        report["notebooks"] = bench_notebooks(modes, args.timeout)
    table = markdown(report)
    print(table)
    out = args.out or ROOT / "benchmarks" / "results" / f"{datetime.now().strftime('%Y%m%d-%H%M%S')}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    print(f"\nwrote {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
