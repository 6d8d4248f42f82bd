"""A small expression graph evaluated step by step, forward then backward (Chapter 2's first widget).

The default expression is f = (x·y + sin x)·z: the input x feeds two nodes, so its
gradient is the sum of what flows back along two paths.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

__all__ = ["Node", "GraphStep", "OPS", "example_graph", "evaluate", "gradients", "trace"]

# op -> (value of the node from its inputs, local derivatives d node / d input, one per input)
OPS: dict[str, tuple[Callable[..., float], Callable[..., tuple[float, ...]], str]] = {
    "mul": (lambda a, b: a * b, lambda a, b: (b, a), "×"),
    "add": (lambda a, b: a + b, lambda a, b: (1.0, 1.0), "+"),
    "sin": (math.sin, lambda a: (math.cos(a),), "sin"),
}


@dataclass(frozen=True)
class Node:
    """A node: an input (op "input") or an operation on earlier nodes; ``pos`` places it in the drawing."""

    name: str
    op: str
    inputs: tuple[str, ...] = ()
    pos: tuple[float, float] = (0.0, 0.0)


def example_graph() -> tuple[Node, ...]:
    """f = (x·y + sin x)·z in topological order, with positions for the drawing."""
    return (
        Node("y", "input", pos=(0.0, 3.2)), Node("x", "input", pos=(0.0, 1.5)), Node("z", "input", pos=(3.4, 0.0)),
        Node("a", "mul", ("x", "y"), pos=(1.7, 3.1)), Node("b", "sin", ("x",), pos=(1.7, 1.1)),
        Node("c", "add", ("a", "b"), pos=(3.4, 2.1)), Node("f", "mul", ("c", "z"), pos=(5.1, 1.05)),
    )


def evaluate(nodes: tuple[Node, ...], inputs: dict[str, float]) -> dict[str, float]:
    """The forward pass: every node's value, in topological order."""
    values = dict(inputs)
    for n in nodes:
        if n.op != "input":
            values[n.name] = OPS[n.op][0](*(values[i] for i in n.inputs))
    return values


def gradients(nodes: tuple[Node, ...], values: dict[str, float]) -> tuple[dict[str, float], dict[tuple[str, str], float]]:
    """The backward pass: d(output)/d(node) for every node, and what each edge carried back."""
    grads = {n.name: 0.0 for n in nodes}
    grads[nodes[-1].name] = 1.0
    edges: dict[tuple[str, str], float] = {}
    for n in reversed(nodes):
        if n.op == "input":
            continue
        local = OPS[n.op][1](*(values[i] for i in n.inputs))
        for i, d in zip(n.inputs, local):
            edges[(i, n.name)] = edges.get((i, n.name), 0.0) + grads[n.name] * d
            grads[i] += grads[n.name] * d  # several paths into one node: contributions add
    return grads, edges


@dataclass(frozen=True)
class GraphStep:
    """What is known after one step: values, gradients, edge messages, the node being worked on, a caption."""

    values: dict[str, float]
    grads: dict[str, float]
    edges: dict[tuple[str, str], float]
    active: str | None
    phase: str  # "inputs" | "forward" | "backward"
    caption: str
    nodes: tuple[Node, ...] = field(default=(), repr=False)


def _fmt(v: float) -> str:
    return f"{v:.3f}"


def _paren(v: float) -> str:
    return f"({_fmt(v)})" if v < 0 else _fmt(v)


def trace(nodes: tuple[Node, ...], inputs: dict[str, float]) -> list[GraphStep]:
    """Every step: the inputs, one step per operation forward, the seed df/df = 1, one step per operation backward."""
    values = evaluate(nodes, inputs)
    ops = [n for n in nodes if n.op != "input"]
    out = nodes[-1].name
    shown = dict(inputs)
    steps = [GraphStep(dict(shown), {}, {}, None, "inputs",
                       "Inputs: " + ", ".join(f"{k} = {_fmt(v)}" for k, v in inputs.items()), nodes)]
    for n in ops:
        shown[n.name] = values[n.name]
        args = f" {OPS[n.op][2]} ".join(n.inputs) if len(n.inputs) == 2 else f"{OPS[n.op][2]}({n.inputs[0]})"
        steps.append(GraphStep(dict(shown), {}, {}, n.name, "forward",
                               f"Forward: {n.name} = {args} = {_fmt(values[n.name])}", nodes))
    grads = {out: 1.0}
    steps.append(GraphStep(dict(values), dict(grads), {}, out, "backward",
                           f"Backward starts at the output: ∂{out}/∂{out} = 1", nodes))
    edges: dict[tuple[str, str], float] = {}
    for n in reversed(ops):
        local = OPS[n.op][1](*(values[i] for i in n.inputs))
        parts, added = [], []
        for i, d in zip(n.inputs, local):
            if i in grads:
                added.append(i)
            edges[(i, n.name)] = grads[n.name] * d
            grads[i] = grads.get(i, 0.0) + grads[n.name] * d  # several paths into one node: contributions add
            total = f" → {_fmt(grads[i])}" if i in added else ""
            parts.append(f"∂{out}/∂{i} {'+' if i in added else ''}= {_fmt(grads[n.name])}·{_paren(d)}{total}")
        note = "".join(f"  ({i} is reached along two paths: their contributions add)" for i in added)
        steps.append(GraphStep(dict(values), dict(grads), dict(edges), n.name, "backward",
                               f"Backward through {n.name}: " + ";  ".join(parts) + note, nodes))
    return steps

