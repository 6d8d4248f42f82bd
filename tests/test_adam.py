"""Inside Adam: the first step's size with and without bias correction, the constant-gradient factor, and
Adam turning into momentum SGD with learning rate η/ε when ε is large."""
import math

import pytest
import torch

from gradlab.adam import InsideAdamConfig, constant_gradient_factor, first_step_factor, inside_adam
from gradlab.landscapes import Quadratic, Rosenbrock
from gradlab.optimizers import Adam


def first_step(opt_factory, g: torch.Tensor) -> torch.Tensor:
    x = torch.zeros_like(g, requires_grad=True)
    opt = opt_factory([x])
    x.grad = g.clone()
    opt.step()
    return x.detach()


@pytest.mark.parametrize("scale", [1e-6, 1.0, 1e6])
def test_torchs_first_step_is_eta_sign_g_whatever_the_gradients_scale(scale):
    """m̂_1 = g and v̂_1 = g², so the step is −η g/(|g| + ε)."""
    g = scale * torch.tensor([3.0, -0.2, 1e-3, -40.0], dtype=torch.float64)
    lr, eps = 0.01, 1e-18
    step = first_step(lambda p: torch.optim.Adam(p, lr=lr, eps=eps), g)
    torch.testing.assert_close(step, -lr * g / (g.abs() + eps), rtol=1e-12, atol=0.0)
    torch.testing.assert_close(step.abs(), torch.full_like(g, lr), rtol=1e-8, atol=0.0)  # ε/|g| ≤ 1e-9 here


@pytest.mark.parametrize("beta1, beta2", [(0.9, 0.999), (0.0, 0.99), (0.5, 0.9)])
def test_without_correction_the_first_step_is_one_minus_beta1_over_root_one_minus_beta2_times_larger(beta1, beta2):
    """m_1 = (1 − β1)g, v_1 = (1 − β2)g²: the step is −η(1 − β1)g/(√(1 − β2)|g| + ε)."""
    g = torch.tensor([2.0, -0.5, 7.0], dtype=torch.float64)
    lr, eps = 0.01, 1e-12
    step = first_step(lambda p: Adam(p, lr=lr, betas=(beta1, beta2), eps=eps, bias_correction=False), g)
    torch.testing.assert_close(step, -lr * (1 - beta1) * g / (math.sqrt(1 - beta2) * g.abs() + eps), rtol=1e-12,
                               atol=0.0)
    factor = (1 - beta1) / math.sqrt(1 - beta2)
    torch.testing.assert_close(step.abs() / lr, torch.full_like(g, factor), rtol=1e-9, atol=0.0)
    assert first_step_factor(beta1, beta2, bias_correction=False) == pytest.approx(factor)
    assert first_step_factor(beta1, beta2) == 1.0


def test_the_default_betas_make_the_uncorrected_first_step_about_3_16_eta():
    assert first_step_factor(0.9, 0.999, bias_correction=False) == pytest.approx(0.1 / math.sqrt(0.001))
    assert 3.162 < first_step_factor(0.9, 0.999, bias_correction=False) < 3.1623  # = √1000 / 10 = 3.16228


@pytest.mark.parametrize("bias_correction", [True, False])
def test_under_a_constant_gradient_the_step_factor_follows_the_formula(bias_correction):
    """f = cᵀx has the gradient c at every x: m_k = (1 − β1^k)c, v_k = (1 − β2^k)c²."""
    beta1, beta2, lr = 0.9, 0.999, 0.1
    c = torch.tensor([0.3, -2.0], dtype=torch.float64)
    x = torch.zeros(2, dtype=torch.float64, requires_grad=True)
    opt = (torch.optim.Adam([x], lr=lr, betas=(beta1, beta2), eps=0.0) if bias_correction
           else Adam([x], lr=lr, betas=(beta1, beta2), eps=0.0, bias_correction=False))
    steps = []
    for _ in range(300):
        before = x.detach().clone()
        x.grad = c.clone()
        opt.step()
        steps.append((x.detach() - before).abs() / lr)
    k = torch.arange(1, 301)
    want = constant_gradient_factor(k, beta1, beta2, bias_correction)
    torch.testing.assert_close(torch.stack(steps), want[:, None].expand(300, 2), rtol=1e-10, atol=0.0)
    if not bias_correction:
        assert float(want.max()) > 2 * float(want[0])  # it grows to twice its first value before it falls


@pytest.mark.parametrize("bias_correction", [True, False])
def test_the_experiment_measures_the_predicted_first_step(bias_correction):
    for beta1, beta2 in ((0.9, 0.999), (0.0, 0.9999)):
        res = inside_adam(InsideAdamConfig(beta1=beta1, beta2=beta2, bias_correction=bias_correction, steps=20))
        # the first gradient at (−1.5, 0.5) is (−1.5, 5); ε = 1e-8 against √(1 − β2)|g| ≥ 0.01 · 1.5 moves the
        # step from its ε → 0 value by less than 1e-6 of it
        assert float(res.step_factors[0]) == pytest.approx(first_step_factor(beta1, beta2, bias_correction), rel=1e-6)
        assert res.limit_path is None  # η/ε = 1e7: momentum SGD at that rate would diverge


def test_large_epsilon_turns_adam_into_momentum_sgd_with_learning_rate_eta_over_epsilon():
    """With ε ≫ √v̂ the step is (η/ε)·m̂_k = (η/ε)(1 − β1)/(1 − β1^k) · v_k, where v_k = β1 v + g is torch's momentum
    buffer: SGD(momentum=β1) with the learning rate (η/ε)(1 − β1)/(1 − β1^k), which tends to (1 − β1)η/ε (the
    averaging form v ← β1 v + (1 − β1)g at η/ε). What is left over is of relative size √v̂/ε ≤ max|g|/ε ≈ 1e-6."""
    surface, start, beta1, c, eps = Rosenbrock(), (-1.2, 1.0), 0.9, 2e-4, 1e8
    a = torch.tensor(start, dtype=torch.float64, requires_grad=True)
    b = torch.tensor(start, dtype=torch.float64, requires_grad=True)
    adam = torch.optim.Adam([a], lr=c * eps, betas=(beta1, 0.999), eps=eps)
    sgd = torch.optim.SGD([b], lr=c, momentum=beta1)
    for k in range(1, 301):
        sgd.param_groups[0]["lr"] = c * (1 - beta1) / (1 - beta1**k)
        for p, opt in ((a, adam), (b, sgd)):
            p.grad = surface.grad(p.detach())
            opt.step()
    assert float((a.detach() - torch.tensor(start, dtype=torch.float64)).norm()) > 0.05
    torch.testing.assert_close(a.detach(), b.detach(), rtol=1e-5, atol=0.0)
    # the same with ε = 1 is a different optimizer: √v̂ is no longer negligible
    small = torch.tensor(start, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.Adam([small], lr=c, betas=(beta1, 0.999), eps=1.0)
    for _ in range(300):
        small.grad = surface.grad(small.detach())
        opt.step()
    assert not torch.allclose(small.detach(), b.detach(), rtol=1e-2, atol=0.0)


def test_the_experiment_draws_the_large_epsilon_limit_only_when_it_is_stable():
    res = inside_adam(InsideAdamConfig(eps=100.0, lr=0.1, steps=400))
    assert res.limit_path is not None and res.limit_lr == pytest.approx(1e-3)
    # both converge, slowly: momentum at η/ε = 1e-3 on curvatures 1 and 10 (κ = 10 quadratic)
    q = Quadratic(kappa=10.0)
    assert float(q.loss(res.limit_path[-1])) < float(q.loss(res.limit_path[0]))
    assert float(res.gaps[-1]) == pytest.approx(float(q.loss(res.limit_path[-1])), rel=0.05)


@pytest.mark.parametrize("eps", [1e-8, 1.0, 100.0])
@pytest.mark.parametrize("bias_correction", [True, False])
def test_the_first_step_formula_holds_for_any_epsilon(eps, bias_correction):
    """Large ε shrinks the first step below its ε → 0 size: |g|/(|g| + ε), or (1 − β1)|g|/(√(1 − β2)|g| + ε)."""
    res = inside_adam(InsideAdamConfig(eps=eps, bias_correction=bias_correction, steps=5))
    g = Quadratic(kappa=10.0).grad(torch.tensor(res.config.start, dtype=torch.float64))
    c = res.config
    want = (g.abs() / (g.abs() + eps) if bias_correction
            else (1 - c.beta1) * g.abs() / (math.sqrt(1 - c.beta2) * g.abs() + eps))
    assert float(res.step_factors[0]) == pytest.approx(float(want.max()), rel=1e-12)
    assert res.first_predicted == pytest.approx(float(want.max()), rel=1e-12)
