"""Chapter 2: the step-through expression graph computes the same numbers as autograd."""
import math

import pytest
import torch

from gradlab.graph import example_graph, evaluate, gradients, trace

POINTS = [{"x": 0.5, "y": -1.5, "z": 2.0}, {"x": -2.0, "y": 0.3, "z": -0.7}, {"x": 3.0, "y": 1.0, "z": 0.1}]


def _autograd(point):
    x, y, z = (torch.tensor(point[k], dtype=torch.float64, requires_grad=True) for k in "xyz")
    f = (x * y + torch.sin(x)) * z
    f.backward()
    return float(f.detach()), {"x": float(x.grad), "y": float(y.grad), "z": float(z.grad)}


@pytest.mark.parametrize("point", POINTS)
def test_graph_values_and_gradients_equal_autograd(point):
    nodes = example_graph()
    values = evaluate(nodes, point)
    f, want = _autograd(point)
    assert values["f"] == pytest.approx(f, abs=1e-12)
    grads, _ = gradients(nodes, values)
    for k in "xyz":
        assert grads[k] == pytest.approx(want[k], abs=1e-12)


@pytest.mark.parametrize("point", POINTS)
def test_the_shared_input_sums_its_two_paths(point):
    nodes = example_graph()
    grads, edges = gradients(nodes, evaluate(nodes, point))
    assert grads["x"] == pytest.approx(edges[("x", "a")] + edges[("x", "b")], abs=1e-15)
    assert edges[("x", "b")] == pytest.approx(point["z"] * math.cos(point["x"]))  # the sin path
    assert edges[("x", "a")] == pytest.approx(point["z"] * point["y"])  # the product path


def test_trace_steps_forward_then_backward_and_ends_at_the_full_gradient():
    nodes = example_graph()
    steps = trace(nodes, POINTS[0])
    assert [s.phase for s in steps] == ["inputs"] + ["forward"] * 4 + ["backward"] * 5
    assert len(steps[1].values) == 4 and len(steps[4].values) == 7  # one new value per forward step
    grads, edges = gradients(nodes, evaluate(nodes, POINTS[0]))
    assert steps[-1].grads == pytest.approx(grads) and steps[-1].edges == pytest.approx(edges)
    assert "add" in steps[-1].caption  # the step that completes x says the two paths add
    assert trace(nodes, POINTS[0])[-1].caption == steps[-1].caption  # deterministic
