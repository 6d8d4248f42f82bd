"""Chapter 5, Experiment 1: the backward pass written out by hand equals autograd's, each layer's factor splits
into what φ' and what the weights do, and the chapter's claims about the sigmoid's 0.25 hold at its settings."""
import pytest
import torch
import torch.nn.functional as F

from gradlab.gradients.jacobians import FactorsConfig, adjoints_by_hand, layer_factors, slope
from gradlab.gradients.nets import NetConfig, build


@pytest.mark.parametrize("activation", ["sigmoid", "tanh", "relu", "linear"])
def test_the_backward_pass_by_hand_equals_autograds(activation):
    model = build(NetConfig(depth=6, activation=activation, init="xavier"), seed=2, dtype=torch.float64)
    x = torch.randn(16, 64, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    y = torch.randint(0, 10, (16,), generator=torch.Generator().manual_seed(1))
    linears = model.linears()
    hand = adjoints_by_hand([m.weight.detach() for m in linears], [m.bias.detach() for m in linears], activation, x, y)
    hs, h = [], x
    for lin in linears[:-1]:
        h = model.first[2](lin(h))
        h.retain_grad()
        hs.append(h)
    F.cross_entropy(linears[-1](h), y).backward()
    assert len(hand) == len(hs) == 5
    for mine, theirs in zip(hand, hs):
        torch.testing.assert_close(mine, theirs.grad, rtol=1e-12, atol=1e-15)


def test_the_closed_form_slopes_are_autograds():
    z = torch.linspace(-6, 6, 1001, dtype=torch.float64, requires_grad=True)
    for name, fn in (("sigmoid", torch.sigmoid), ("tanh", torch.tanh), ("relu", torch.relu)):
        (d,) = torch.autograd.grad(fn(z).sum(), z)
        torch.testing.assert_close(slope(name, z.detach()), d, rtol=0, atol=1e-15)
    with pytest.raises(ValueError, match="no closed-form slope"):
        slope("gelu", z)


def test_the_two_factors_multiply_to_the_layer_s_factor_and_the_sigmoid_keeps_at_most_a_quarter():
    f = layer_factors(FactorsConfig(depth=10, activation="sigmoid", init="xavier"))
    per_layer = f.adjoint_norm[:-1] / f.adjoint_norm[1:]  # ‖h̄_{l−1}‖ / ‖h̄_l‖ for l = 2 … D − 1
    torch.testing.assert_close(f.activation_factor[1:] * f.weight_factor[1:], per_layer, rtol=1e-6, atol=0)
    assert bool((f.activation_factor[1:] <= 0.25).all())


def test_pytorchs_default_weights_shrink_the_signal_further_than_the_sigmoid_alone():
    """The chapter's numbers at D = 10: the activation-only story predicts a ratio of 0.25⁸ ≈ 1.5e-5 between layer
    1's and layer 9's gradient; PyTorch's default (σ_w² = 1/(3 d)) makes it at least 10 times smaller, because its
    weights shrink the backward signal by about √(1/3) ≈ 0.58 per layer."""
    f = layer_factors(FactorsConfig(depth=10, activation="sigmoid", init="pytorch"))
    measured = float(f.weight_grad_norm[0] / f.weight_grad_norm[-2])
    story = float(f.activation_only()[0] / f.weight_grad_norm[-2])
    assert story == pytest.approx(0.25 ** 8)
    assert measured < story / 10
    assert float(f.weight_factor[1:].mean()) == pytest.approx((1 / 3) ** 0.5, rel=0.05)


def test_large_weights_beat_the_quarter_per_layer():
    """Card TIFMEjLf's 0.25¹⁰ is not a best case: with U(±2) weights the sigmoid's derivative keeps only about a
    tenth, but the weights multiply by about 9, and layer 1's gradient is over 1000 times what 0.25 per layer says."""
    f = layer_factors(FactorsConfig(depth=10, activation="sigmoid", init="large"))
    measured = float(f.weight_grad_norm[0] / f.weight_grad_norm[-2])
    story = float(f.activation_only()[0] / f.weight_grad_norm[-2])
    assert measured > 1000 * story
    assert float(f.weight_factor[1:].mean()) > 5


def test_relu_with_pytorchs_default_vanishes_and_with_he_it_does_not():
    """004 Q4 recommends nn.Linear's default for ReLU: at depth 20 it leaves layer 1 a gradient below 1e-4 of the
    top layer's, while He's initialization keeps the two within a factor of 10."""
    default = layer_factors(FactorsConfig(depth=20, activation="relu", init="pytorch"))
    he = layer_factors(FactorsConfig(depth=20, activation="relu", init="he"))
    assert float(default.weight_grad_norm[0] / default.weight_grad_norm[-2]) < 1e-4
    assert 0.1 < float(he.weight_grad_norm[0] / he.weight_grad_norm[-2]) < 10


def test_an_activation_without_a_stated_maximum_slope_is_refused():
    with pytest.raises(ValueError, match="activation is one of"):
        FactorsConfig(activation="gelu")
