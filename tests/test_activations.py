"""Chapter 5, Experiment 9: the linear collapse, and the activations' derivatives against their closed forms."""
import math

import pytest
import torch

from gradlab.gradients.activations import (NAMES, CollapseConfig, DigitsComparisonConfig, activation,
                                           activation_curves, activation_stats, closed_form_derivative, collapse,
                                           compare_on_digits, compose_linear, derivative, gaussian_mean)
from gradlab.gradients.nets import NetConfig, build
from gradlab.seeding import generator


def _root(f, lo: float, hi: float) -> float:
    """Bisection in float64, independent of the module's grid search."""
    flo = f(lo)
    for _ in range(200):
        mid = (lo + hi) / 2
        if (f(mid) > 0) == (flo > 0):
            lo, flo = mid, f(mid)
        else:
            hi = mid
    return (lo + hi) / 2


def _normal_pdf(x: float) -> float:
    return math.exp(-x * x / 2) / math.sqrt(2 * math.pi)


def _normal_cdf(x: float) -> float:
    return 0.5 * (1 + math.erf(x / math.sqrt(2)))


def _sig(x: float) -> float:
    return 1 / (1 + math.exp(-x))


# --- a stack of linear layers is one linear layer ---

@pytest.mark.parametrize("residual", [False, True])
def test_linear_network_is_one_linear_layer_to_float64_precision(residual):
    c = collapse(CollapseConfig(NetConfig(depth=6, activation="linear", residual=residual)))
    assert c.composed_gap < 1e-13 and c.affine_gap < 1e-12  # measured 4e-16–7e-16 and 3e-15–5e-15
    assert c.weight.shape == (10, 64) and c.bias.shape == (10,)


def test_with_relu_no_linear_layer_reproduces_the_network():
    c = collapse(CollapseConfig(NetConfig(depth=6, activation="relu")))
    assert c.composed_gap > 1.0  # measured 3.0: the product of the weights is far off
    assert c.affine_gap > 0.3  # measured 0.55: even the best affine map misses half the output's spread


def test_compose_linear_refuses_a_normalized_network():
    with pytest.raises(ValueError, match="normalization"):
        compose_linear(build(NetConfig(depth=3, activation="linear", norm="layer")))


# --- derivatives: autograd against the closed forms ---

@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("omega", [0.01, 0.2])
def test_autograd_derivative_matches_closed_form(name, omega):
    x = torch.linspace(-8, 8, 4001, dtype=torch.float64)
    x = x[x != 0]  # ReLU's kink, where PyTorch picks a subgradient
    assert torch.allclose(derivative(name, x, omega), closed_form_derivative(name, x, omega), rtol=0, atol=1e-13)


def test_pytorch_gelu_tanh_is_the_approximation_of_the_paper():
    x = torch.linspace(-6, 6, 1001, dtype=torch.float64)
    formula = 0.5 * x * (1 + torch.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3)))
    assert torch.allclose(activation("gelu_tanh")(x), formula, atol=1e-14)
    assert (activation("gelu_tanh")(x) - activation("gelu")(x)).abs().max() < 1e-3  # close to exact GELU


def test_sigmoid_and_tanh_derivatives_peak_at_zero():
    s, t = activation_stats("sigmoid"), activation_stats("tanh")
    assert s.d_max == pytest.approx(0.25, abs=1e-12) and abs(s.d_max_at) < 1e-6
    assert t.d_max == pytest.approx(1.0, abs=1e-12) and abs(t.d_max_at) < 1e-6
    assert 0.25 ** 10 == pytest.approx(9.5367e-7, rel=1e-4)
    # 0.25 is the best case of one factor; a typical pre-activation z ~ N(0, 1) gives less
    assert s.mean_d ** 10 < 0.25 ** 10 / 5  # measured 0.2066^10 = 1.42e-7, 6.7 times less


def test_gelu_extremes_are_where_the_calculus_puts_them():
    g = activation_stats("gelu")
    x_min = _root(lambda x: _normal_cdf(x) + x * _normal_pdf(x), -2.0, -0.1)  # GELU′ = 0
    assert g.phi_min_at == pytest.approx(x_min, abs=1e-5) and g.phi_min == pytest.approx(x_min * _normal_cdf(x_min),
                                                                                          abs=1e-9)
    assert -0.171 < g.phi_min < -0.169 and -0.76 < g.phi_min_at < -0.74  # the brief's "≈ −0.17 at ≈ −0.75"
    # GELU″ = φ(x)(2 − x²): the derivative peaks at √2
    assert g.d_max_at == pytest.approx(math.sqrt(2), abs=1e-5)
    assert g.d_max == pytest.approx(_normal_cdf(math.sqrt(2)) + math.sqrt(2) * _normal_pdf(math.sqrt(2)), abs=1e-9)
    assert 1.0 < g.d_max < 1.15 and g.d_min == pytest.approx(1 - g.d_max, abs=1e-9)  # φ′(x) + φ′(−x) = 1


def test_silu_extremes_are_where_the_calculus_puts_them():
    s = activation_stats("silu")
    x_min = _root(lambda x: 1 + x * (1 - _sig(x)), -3.0, -0.1)  # SiLU′ = 0
    assert s.phi_min_at == pytest.approx(x_min, abs=1e-5) and s.phi_min == pytest.approx(x_min * _sig(x_min), abs=1e-9)
    assert -0.279 < s.phi_min < -0.278 and -1.29 < s.phi_min_at < -1.27  # the brief's "≈ −0.28 at ≈ −1.28"
    x_top = _root(lambda x: x * math.tanh(x / 2) - 2, 1.0, 4.0)  # SiLU″ = 0
    assert s.d_max_at == pytest.approx(x_top, abs=1e-5)
    assert s.d_max == pytest.approx(_sig(x_top) * (1 + x_top * (1 - _sig(x_top))), abs=1e-9)
    assert 1.0 < s.d_max < 1.15


# --- E[φ′(z)], E[φ′(z)²] for z ~ N(0, σ²) ---

@pytest.mark.parametrize("var", [1.0, 4.0])
def test_gaussian_means_in_closed_form(var):
    omega = 0.2
    relu, leaky = activation_stats("relu", variance=var), activation_stats("leaky_relu", omega, variance=var)
    assert relu.mean_d == pytest.approx(0.5, abs=1e-12) and relu.mean_d_sq == pytest.approx(0.5, abs=1e-12)
    assert relu.mean_phi_sq == pytest.approx(var / 2, rel=1e-12)
    assert leaky.mean_d == pytest.approx((1 + omega) / 2, abs=1e-12)
    assert leaky.mean_d_sq == pytest.approx((1 + omega ** 2) / 2, abs=1e-12)
    for name in ("gelu", "gelu_tanh", "silu"):  # φ = x·g(x) with g(x) + g(−x) = 1 gives φ′(x) + φ′(−x) = 1
        assert activation_stats(name, variance=var).mean_d == pytest.approx(0.5, abs=1e-12)
    assert gaussian_mean(lambda z: z * z, var) == pytest.approx(var, rel=1e-12)


@pytest.mark.parametrize("name", ["sigmoid", "tanh", "gelu", "silu"])
def test_gaussian_means_match_monte_carlo(name):
    s = activation_stats(name)
    z = torch.randn(400_000, generator=generator(1), dtype=torch.float64)
    d = derivative(name, z)
    for exact, samples in ((s.mean_d, d), (s.mean_d_sq, d * d)):
        se = float(samples.std()) / math.sqrt(len(samples))
        assert abs(float(samples.mean()) - exact) < 4 * se


def test_a_wider_pre_activation_saturates_sigmoid_further():
    means = [activation_stats("sigmoid", variance=v).mean_d for v in (0.25, 1.0, 4.0)]
    assert 0.25 > means[0] > means[1] > means[2]  # measured 0.236, 0.207, 0.151
    assert means[1] == pytest.approx(0.2066, abs=1e-4)


def test_widget_curves_hold_the_stats_and_samples():
    c = activation_curves("tanh", variance=0.25, samples=1000)
    assert c.samples.shape == (1000,) and (c.samples <= 1).all() and (c.samples > 0).all()
    assert c.stats.mean_d > activation_stats("tanh").mean_d  # a narrower z stays nearer tanh′'s peak


# --- the small measurement on the digits ---

def test_digits_depth_10_sigmoid_fails_where_relu_learns():
    r = compare_on_digits(DigitsComparisonConfig(activations=("relu", "sigmoid"), seeds=1))
    relu, sigmoid = r.val_loss[:, 0].tolist()
    assert relu < 0.7 and sigmoid > 1.5  # measured 0.37 and 2.06 (ln 10 = 2.30 is guessing)
    assert r.diverged_at is None


@pytest.mark.parametrize("make", [
    lambda: activation("swish"),
    lambda: activation("leaky_relu", -0.1),
    lambda: gaussian_mean(lambda z: z, variance=0.0),
    lambda: CollapseConfig(NetConfig(norm="batch")),
    lambda: DigitsComparisonConfig(activations=("gelu_tanh",)),
    lambda: DigitsComparisonConfig(seeds=0),
])
def test_bad_inputs_are_refused_with_a_sentence(make):
    with pytest.raises(ValueError, match=r"\w+ \w+"):
        make()
