"""The numbers Chapter 6's exercise solutions state, each derived and then checked against the code the exercise
runs."""
import math

import pytest
import torch
from torch import nn

from gradlab.normalization.axes import stat_count, stat_sets
from gradlab.normalization.scale_invariance import invariance


def test_6_1_the_running_mean_after_three_steps():
    bn = nn.BatchNorm1d(1)
    for _ in range(3):
        bn(torch.tensor([[1.0], [3.0]]))
    assert float(bn.running_mean) == pytest.approx(2 * (1 - 0.9 ** 3), rel=1e-6)
    assert 2 * (1 - 0.9 ** 3) == pytest.approx(0.542)
    # "about 22 steps to get within 10%": the first k with 0.9^k below 0.1
    assert next(k for k in range(1, 100) if 0.9 ** k < 0.1) == 22
    assert 0.9 ** 22 == pytest.approx(0.098, abs=5e-4)


def test_6_2_what_a_batch_of_two_stores():
    bn = nn.BatchNorm1d(1, momentum=1.0)
    with torch.no_grad():
        out = bn(torch.tensor([[0.0], [2.0]]))
    assert float(out[0, 0]) == pytest.approx(-1 / math.sqrt(1 + 1e-5), rel=1e-6)
    assert -1 / math.sqrt(1 + 1e-5) == pytest.approx(-0.999995, abs=1e-6)
    assert float(bn.running_var) == pytest.approx(2.0)
    bn.eval()
    with torch.no_grad():
        assert float(bn(torch.tensor([[0.0]]))) == pytest.approx(-1 / math.sqrt(2 + 1e-5), rel=1e-6)
    assert -1 / math.sqrt(2) == pytest.approx(-0.71, abs=0.005)


def test_6_3_how_many_numbers_one_group_averages():
    assert stat_count("group", 8, 64, 32, 14, 14) == 392 == 2 * 196
    assert stat_sets("group", 8, 64, 32, 14, 14) == 256
    # the count is what PyTorch's GroupNorm averages: a change to one number moves exactly 392 outputs
    x = torch.randn(8, 64, 14, 14, dtype=torch.float64, requires_grad=True)
    y = nn.GroupNorm(32, 64).double()(x)
    (grad,) = torch.autograd.grad(y[0, 0, 0, 0], x)
    assert int((grad != 0).sum()) == 392


def test_6_4_the_gradient_of_a_scaled_layer():
    r = invariance((10.0,))
    assert float(r.grad_ratio[0]) / 10 == pytest.approx(0.1, rel=1e-3)
    assert float(r.output_change[0]) < 1e-3


def test_6_5_the_gradient_of_a_bias_before_batch_norm_is_zero_up_to_rounding():
    from gradlab.normalization.placement import bias_check

    r = bias_check()
    assert r.bias_grad < 1e-6 < 1e-2 < r.weight_grad  # "some 1e-8": float32 rounding, against a weight gradient of 0.06


def test_6_6_batch_norm_on_one_image_is_instance_norm_exactly():
    from gradlab.normalization.batch_size import batch_of_one

    assert batch_of_one().bn2d_vs_instance == 0.0
