"""Chapter 2, Experiment 7: Hessian-vector products against the explicit Hessian, power iteration, and 2/λ_max."""
import pytest
import torch
from torch.func import hessian

from gradlab.curvature import (SharpnessConfig, hvp, hvp_forward_over_reverse, power_iteration, sharpness,
                               sharpness_near_minimum, small_net)
from gradlab.seeding import generator


@pytest.fixture(scope="module")
def result():
    return sharpness_near_minimum(SharpnessConfig(steps=80))


def test_hessian_vector_products_equal_the_explicit_hessian_times_the_vector():
    net = small_net(hidden=3)  # p = 3·32 + 1 = 97: the explicit Hessian is cheap
    w = net.init(seed=4) + 0.3 * torch.randn(net.n_params, generator=generator(5), dtype=torch.float64)
    u = torch.randn(net.n_params, generator=generator(6), dtype=torch.float64)
    H = hessian(net.loss)(w)
    assert H.shape == (97, 97) and torch.allclose(H, H.T, atol=1e-12)
    assert torch.allclose(hvp(net.loss, w, u), H @ u, rtol=1e-10, atol=1e-12)
    assert torch.allclose(hvp_forward_over_reverse(net.loss, w, u), H @ u, rtol=1e-10, atol=1e-12)


def test_power_iteration_finds_the_largest_eigenvalue_of_a_known_matrix():
    A = torch.diag(torch.tensor([10.0, 9.0, 1.0, -2.0], dtype=torch.float64))
    estimates, u = power_iteration(lambda w: 0.5 * w @ A @ w, torch.zeros(4, dtype=torch.float64), iters=200)
    assert estimates[-1] == pytest.approx(10.0, rel=1e-6)
    assert abs(float(u[0])) == pytest.approx(1.0, rel=1e-5)


def test_sharpness_at_the_minimum_is_the_top_eigenvalue_of_the_full_hessian(result):
    assert result.net.n_params == 257 and result.net.x.shape[0] == 569  # the numbers the chapter states
    assert result.grad_norm_star < 1e-7
    eig = torch.linalg.eigvalsh(hessian(result.net.loss)(result.w_star))
    assert eig[0] > 0  # a minimum: every eigenvalue positive, so the largest in size is λ_max
    assert result.sharpness == pytest.approx(float(eig[-1]), rel=1e-8)
    assert result.estimates[7] == pytest.approx(float(eig[-1]), rel=1e-3)  # converged within a few HVPs


def test_gd_near_the_minimum_follows_1_minus_eta_lambda_until_the_quadratic_model_fails(result):
    lam = result.sharpness
    below, above = result.runs
    assert below.factor == 0.9 and above.factor == 1.1
    for run in (below, above):
        rate = abs(1 - run.lr * lam)
        ratios = [abs(b / a) for a, b in zip(run.top_component[:10], run.top_component[1:11])]
        assert ratios == pytest.approx([rate] * 10, rel=2e-2)
    assert abs(below.top_component[-1]) < 1e-8 and below.excess_loss[-1] < 1e-12
    # above 2/λ_max: thrown out, then a two-step bounce across w* (the sign alternates), no divergence
    tail = above.top_component[-6:]
    assert all(abs(c) > 1e-2 for c in tail) and all(a * b < 0 for a, b in zip(tail, tail[1:]))
    assert 1e-5 < above.excess_loss[-1] < 1e-1 and above.final_grad_norm > 1e-3


def test_a_summed_data_term_scales_the_sharpness_by_n_but_not_the_penalty(result):
    # Exercise 2.8: H_sum = N·H_data + αI and H_mean = H_data + αI share eigenvectors
    net, n, alpha = result.net, result.net.x.shape[0], result.net.l2
    summed = sharpness(lambda w: net.loss(w, reduction="sum"), result.w_star)
    eig = torch.linalg.eigvalsh(hessian(lambda w: net.loss(w, reduction="sum"))(result.w_star))
    assert summed == pytest.approx(float(eig[-1]), rel=1e-8)
    assert summed == pytest.approx(n * (result.sharpness - alpha) + alpha, rel=1e-8)
    assert summed == pytest.approx(336, rel=0.01) and 2 / summed == pytest.approx(0.006, rel=0.02)
