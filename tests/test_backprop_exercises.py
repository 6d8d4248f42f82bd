"""Chapter 2's exercises: every number a solution states, derived by hand here and compared with the measurement
the exercise's check runs. (Exercises 2.5 to 2.8 are checked beside their modules: test_autodiff, test_memory,
test_backprop and test_curvature.)"""
import math

import pytest
import torch

from gradlab.backprop import check_backward
from gradlab.exercises import judge
from gradlab.losses import largest_finite_margin, squared_error_peak


def test_2_1_silu_derivative_at_two():
    s = 1 / (1 + math.exp(-2))
    by_hand = s * (1 + 2 * (1 - s))
    measured = torch.func.grad(lambda x: x * torch.sigmoid(x))(torch.tensor(2.0)).item()
    assert by_hand == pytest.approx(measured, rel=1e-6) and round(by_hand, 3) == 1.091
    solution = lambda g, x: g * torch.sigmoid(x) * (1 + x * (1 - torch.sigmoid(x)))  # noqa: E731
    assert check_backward(lambda x: x * torch.sigmoid(x), solution, torch.linspace(-4, 4, 9)).ok


def test_2_2_softmax_vector_jacobian_product():
    z0 = torch.tensor([0.0, 0.0, math.log(2.0)], dtype=torch.float64)
    softmax = lambda z: torch.softmax(z, dim=0)  # noqa: E731
    yhat = softmax(z0)
    assert yhat.tolist() == pytest.approx([0.25, 0.25, 0.5])
    (vjp,) = torch.func.vjp(softmax, z0)[1](torch.tensor([1.0, 0.0, 0.0], dtype=torch.float64))
    assert vjp.tolist() == pytest.approx([3 / 16, -1 / 16, -1 / 8]) and float(vjp.sum()) == pytest.approx(0, abs=1e-15)
    assert judge({"z_1": 0.19, "z_2": -0.06, "z_3": -0.125},
                 lambda: dict(zip(("z_1", "z_2", "z_3"), vjp.tolist())), abs_tol=0.005).right
    solution = lambda g, z: softmax(z) * (g - (g * softmax(z)).sum())  # noqa: E731
    assert check_backward(softmax, solution, torch.randn(5)).ok
    # followed by cross-entropy (upstream -y / yhat) it collapses to yhat - y
    y = torch.tensor([0.0, 1.0, 0.0], dtype=torch.float64)
    assert torch.allclose(solution(-y / yhat, z0), yhat - y, atol=1e-15)


def test_2_3_where_squared_error_pushes_hardest():
    peak = squared_error_peak()
    assert peak["z"] == pytest.approx(-math.log(2), abs=1e-3) and round(-math.log(2), 3) == -0.693
    assert peak["largest |dℓ/dz|"] == pytest.approx(8 / 27, rel=1e-6) and round(8 / 27, 3) == 0.296
    assert 1 - 1 / 3 == pytest.approx(2 / 3)  # cross-entropy's |ŷ - y| at ŷ = 1/3


@pytest.mark.parametrize("dtype, mantissa, exponent, margin", [(torch.float32, 3.4, 38, 88.72),
                                                              (torch.float64, 1.8, 308, 709.78),
                                                              (torch.float16, 6.5504, 4, 11.09)])
def test_2_4_where_the_naive_softmax_overflows(dtype, mantissa, exponent, margin):
    assert torch.finfo(dtype).max / 10.0 ** exponent == pytest.approx(mantissa, rel=0.01)
    assert math.log(torch.finfo(dtype).max) == pytest.approx(margin, abs=0.005)
    assert largest_finite_margin(dtype) == pytest.approx(margin, abs=0.01)
