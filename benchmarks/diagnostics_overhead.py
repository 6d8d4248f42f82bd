"""The gradient monitor's cost on a training step (Chapter 5's diagnostics tool, gradlab.diagnostics).

Usage: python benchmarks/diagnostics_overhead.py [--steps 50] [--repeats 7] [--batch 128] [--depth 20]
                                                [--width 64] [--cpu]

A 20-layer ReLU MLP (He initialization, width 64 unless --width says otherwise) trains on mini-batches of the
digits with SGD. Four copies of the same network take the same steps: one never watched, one with a monitor
attached that records every step, one recording every 10th step, and one whose monitor was attached and then
detached. The conditions take turns within each repeat, so the machine's load falls on all of them alike; the
median time per step of each over the repeats is divided by the unwatched one's. ``measure()`` returns the
numbers for benchmarks/run.py.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def measure(device=None, steps: int = 50, repeats: int = 7, batch: int = 128, depth: int = 20,
            width: int = 64) -> dict:
    """Median seconds per training step under each condition, and each one's ratio to the unwatched network."""
    sys.path.insert(0, str(ROOT))
    import torch
    import torch.nn.functional as F

    from gradlab.batched_mlp import digits_split
    from gradlab.device import pick_device
    from gradlab.diagnostics import GradientMonitor
    from gradlab.gradients.nets import NetConfig, build

    device = torch.device(device) if device is not None else pick_device()
    split = digits_split(0, device=device)
    x, y = split.x_train, split.y_train
    g = torch.Generator().manual_seed(0)
    batches = [torch.randperm(len(x), generator=g)[:batch].to(device) for _ in range(steps)]
    config = NetConfig(depth=depth, width=width, init="he")
    conditions = {}
    for name in ("never attached", "recording every step", "recording every 10th step", "attached, then detached"):
        model = build(config, seed=0, device=device)
        opt = torch.optim.SGD(model.parameters(), lr=0.01)
        monitor = None
        if name.startswith("recording"):
            monitor = GradientMonitor(model, opt, every=1 if "every step" in name else 10).attach()
        elif name.startswith("attached"):
            GradientMonitor(model, opt).attach().detach()
        conditions[name] = (model, opt, monitor)

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    def steps_of(model, opt) -> float:
        sync()
        t0 = time.perf_counter()
        for idx in batches:
            loss = F.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
        sync()
        return (time.perf_counter() - t0) / steps

    for model, opt, _ in conditions.values():  # warm-up: first calls, allocator, the monitor's first records
        steps_of(model, opt)
    times = {name: [] for name in conditions}
    for _ in range(repeats):
        for name, (model, opt, _) in conditions.items():
            times[name].append(steps_of(model, opt))
    base = statistics.median(times["never attached"])
    out = {"device": str(device), "depth": depth, "width": width, "batch": batch, "steps": steps, "repeats": repeats,
           "threads": torch.get_num_threads(), "conditions": {}}
    for name, ts in times.items():
        med = statistics.median(ts)
        out["conditions"][name] = {"seconds_per_step": med, "ratio": med / base}
    for _, _, monitor in conditions.values():
        if monitor is not None:
            monitor.detach()
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=50, help="training steps per timing (default 50)")
    parser.add_argument("--repeats", type=int, default=7, help="timings per condition; the median is kept (default 7)")
    parser.add_argument("--batch", type=int, default=128, help="examples per step (default 128)")
    parser.add_argument("--depth", type=int, default=20, help="layers with weights (default 20)")
    parser.add_argument("--width", type=int, default=64, help="units per hidden layer (default 64)")
    parser.add_argument("--cpu", action="store_true", help="time on the CPU even where a GPU is present")
    args = parser.parse_args(argv)
    report = measure("cpu" if args.cpu else None, args.steps, args.repeats, args.batch, args.depth, args.width)
    r = report
    print(f"Gradient monitor overhead: {r['depth']}-layer MLP of width {r['width']}, batch {r['batch']}, on "
          f"{r['device']} ({r['threads']} threads), median of {r['repeats']} × {r['steps']} steps")
    print("| condition | ms per step | ratio to never attached |")
    print("| --- | --- | --- |")
    for name, row in report["conditions"].items():
        print(f"| {name} | {row['seconds_per_step'] * 1e3:.3g} | {row['ratio']:.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
