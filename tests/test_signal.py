"""Chapter 5, Experiment 2: the variance recursions, checked against closed forms and against measurement on wide
networks, and the claims the chapter makes about depth 100."""
import math

import pytest
import torch

from gradlab.gradients.signal import SignalConfig, gaussian_moments, predict, propagate


def test_the_gaussian_moments_match_closed_forms():
    mean, second, slope2 = gaussian_moments("relu", 2.0)
    assert mean == pytest.approx(math.sqrt(2.0 / (2 * math.pi)), rel=1e-10)  # E[relu(z)] = √(q/2π)
    assert second == pytest.approx(1.0, rel=1e-10)  # q/2
    assert slope2 == pytest.approx(0.5, rel=1e-10)  # P(z > 0)
    assert gaussian_moments("linear", 3.0)[1:] == pytest.approx((3.0, 1.0), rel=1e-10)
    assert gaussian_moments("sigmoid", 0.0) == pytest.approx((0.5, 0.25, 0.0625), rel=1e-10)  # sigmoid′(0) = 1/4
    _, _, tanh_slope = gaussian_moments("tanh", 1e-8)
    assert tanh_slope == pytest.approx(1.0, rel=1e-6)
    z = torch.randn(2_000_000, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * math.sqrt(0.7)
    assert gaussian_moments("tanh", 0.7)[1] == pytest.approx(float(torch.tanh(z).pow(2).mean()), rel=2e-3)


def test_he_keeps_relu_and_xavier_keeps_tanh_near_its_linear_regime():
    """The recursions' own fixed points: ReLU + He keeps the activation std and the gradient constant; tanh +
    Xavier (square layers: σ_w² = 1/d) shrinks the activations only slowly (tanh's slope is below 1 away from 0)."""
    act, grad = predict(SignalConfig(depth=50, activation="relu", init="he"))
    assert torch.allclose(act, act[0].expand_as(act)) and torch.allclose(grad, grad[0].expand_as(grad))
    act, _ = predict(SignalConfig(depth=50, activation="tanh", init="xavier"))
    assert bool((act[1:] < act[:-1]).all()) and float(act[-1]) > 0.05


@pytest.mark.parametrize("activation, init", [("tanh", "xavier"), ("sigmoid", "xavier"), ("tanh", "pytorch"),
                                              ("relu", "pytorch")])
def test_measurement_follows_the_recursion_on_a_wide_network(activation, init):
    """At width 512, 30 layers, the measured activation std and gradient size stay within 15% of the recursion
    at every layer (finite width and batch make them wander: the recursion is a mean-field average)."""
    s = propagate(SignalConfig(depth=30, width=512, batch=128, activation=activation, init=init))
    assert s.overflow_layer is None
    assert torch.allclose(s.act_std, s.predicted_act_std, rtol=0.15)
    assert torch.allclose(s.grad_rms, s.predicted_grad_rms, rtol=0.15)


def test_the_recursion_is_what_measurement_averages_to_for_relu_and_he():
    """ReLU + He: E‖h_l‖² is preserved exactly in expectation over the weights (E[relu(z)²] = E[z²]/2 and
    σ_w² = 2/d), but one network's value is a product of many random factors (Hanin & Rolnick 2018) and wanders:
    over 100 networks of depth 11 and width 256 the mean square activation is within 10% of the recursion's 1,
    while single networks range over more than a factor of 3."""
    from gradlab.gradients.nets import build

    squares = []
    for seed in range(100):
        cfg = SignalConfig(depth=11, width=256, batch=8, activation="relu", init="he", seed=seed)
        model = build(cfg.net(), seed=seed)
        h = model.first(torch.randn(8, 256, generator=torch.Generator().manual_seed(seed + 1)))
        with torch.no_grad():
            for block in model.blocks:
                h = block(h)
        squares.append(float(h.detach().pow(2).mean()))
    predicted = gaussian_moments("relu", 2.0)[1]  # q_1 = σ_w² d E[x²] = 2, then q_l = 2 for every l
    assert predicted == pytest.approx(1.0)
    assert sum(squares) / len(squares) == pytest.approx(predicted, rel=0.10)
    assert max(squares) / min(squares) > 3


def test_at_depth_100_a_sigmoid_network_s_first_gradient_underflows_float32():
    """The chapter's claim: with Xavier's initialization the recursion puts layer 1's gradient near 1e-62, below
    float32's smallest subnormal (1.4e-45), and the network computes exactly 0 there."""
    s = propagate(SignalConfig(depth=100, width=128, batch=64, activation="sigmoid", init="xavier"))
    assert float(s.predicted_grad_rms[0]) < 1e-55
    assert float(s.grad_rms[0]) == 0.0 and s.overflow_layer is None


def test_too_large_weights_overflow_and_the_result_says_where():
    """U(±2) with ReLU at width 128 multiplies the activations' std by about √(128 · 4/3 / 2) ≈ 9 per layer:
    float32's 3.4e38 is passed near layer 40, and propagate reports the layer instead of raising."""
    s = propagate(SignalConfig(depth=100, width=128, batch=32, activation="relu", init="large"))
    growth = math.sqrt(128 * (4 / 3) / 2)
    expected = math.log(3.4e38) / math.log(growth)
    assert s.overflow_layer is not None and abs(s.overflow_layer - expected) < 6, (s.overflow_layer, expected)


def test_a_batch_of_one_is_refused():
    with pytest.raises(ValueError, match="at least 2"):
        SignalConfig(batch=1)
