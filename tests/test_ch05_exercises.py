"""Every number a solution of Chapter 5's exercises states, checked against an independent derivation."""
import math

import pytest
import torch

from gradlab.gradients.jacobians import FactorsConfig, layer_factors


def test_5_1_ten_sigmoid_layers_with_xavier():
    """About 0.24⁸ ≈ 1e-5, a little below 0.25⁸ ≈ 1.5e-5."""
    r = layer_factors(FactorsConfig(depth=10, activation="sigmoid", init="xavier"))
    ratio = float(r.adjoint_norm[0] / r.adjoint_norm[-1])
    assert 0.25 ** 8 == pytest.approx(1.5e-5, rel=0.02)
    assert 0.8e-5 < ratio < 1.25e-5 and ratio < 0.25 ** 8
    assert float(r.activation_factor[1:].mean()) == pytest.approx(0.24, abs=0.01)


def test_5_2_the_default_shrinks_relu_by_the_root_of_a_sixth():
    r = layer_factors(FactorsConfig(depth=20, activation="relu", init="pytorch"))
    assert float((r.activation_factor[1:] * r.weight_factor[1:]).mean()) == pytest.approx(math.sqrt(1 / 6), rel=0.05)
    assert 6.0 ** -9 == pytest.approx(1e-7, rel=0.01)
    assert 5e-8 < float(r.adjoint_norm[0] / r.adjoint_norm[-1]) < 2e-7  # about 9e-8


def test_5_3_a_tiny_gradient_in_float16():
    from gradlab.gradients.precision import cast_table

    assert 1e-8 < 2.0 ** -25 < 1e-7
    (zero,) = cast_table([1e-8])
    assert zero.stored == 0.0
    (sub,) = cast_table([1e-8 * 2 ** 10])
    assert sub.kind == "subnormal" and sub.stored == 172 * 2.0 ** -24 == pytest.approx(1.0252e-5, rel=1e-4)
    assert sub.stored / 2 ** 10 == pytest.approx(1.0012e-8, rel=1e-4)


def test_5_4_the_cosine_after_clipping_by_value():
    g = torch.tensor([3.0, 4.0, 0.1], dtype=torch.float64)
    clipped = g.clamp(-1, 1)
    cos = float(g @ clipped / (g.norm() * clipped.norm()))
    assert cos == pytest.approx(7.01 / (math.sqrt(25.01) * math.sqrt(2.01)))
    assert cos == pytest.approx(0.989, abs=5e-4) and math.degrees(math.acos(cos)) == pytest.approx(8.6, abs=0.1)


def test_5_5_the_residual_trunk_with_the_default_initialization():
    """√(7/6) ≈ 1.080 per block, 1.080⁹⁸ ≈ 1.9e3; from about 0.55 that is about 1e3; measured about 1.2e3."""
    from gradlab.gradients.residual import DepthProfileConfig, depth_profile

    assert math.sqrt(7 / 6) == pytest.approx(1.080, abs=5e-4)
    assert (7 / 6) ** 49 == pytest.approx(1.9e3, rel=0.05)
    p = depth_profile(DepthProfileConfig(depth=100, init="pytorch"))
    assert float(p.act_std[1, 0]) == pytest.approx(0.55, abs=0.03)
    assert 1.0e3 < float(p.act_std[1, -1]) < 1.4e3


def test_5_6_no_first_layer_unit_revives():
    from gradlab.gradients.dead_relu import DeadReluConfig, dead_relu

    r = dead_relu(DeadReluConfig(cause="big_step", size=1000.0))
    assert r.revived[0] == 0 and sum(r.revived[1:]) > 0


def test_5_7_the_scale_at_which_float16_overflows():
    """max|g| ≈ 0.06; 65520/0.06 ≈ 1.1e6 lies between 2^20 and 2^21, so log2 𝒮 = 21."""
    from gradlab.gradients.precision import GradientsConfig, cast_gradients, trained_gradients

    sig = trained_gradients(GradientsConfig())
    largest = float(torch.cat([g.abs().flatten() for g in sig.grads]).max())
    assert largest == pytest.approx(0.06, abs=0.005)
    assert 2 ** 20 < 65520 / largest < 2 ** 21
    cast = cast_gradients(sig.grads, "float16")
    assert next(k for k, over in zip(cast.exponents, cast.overflow.tolist()) if over > 0) == 21
