"""Chapter 3's momentum: its two forms, Nesterov as a look-ahead, and its rate against Polyak's formulas."""
import math

import pytest
import torch

from gradlab.landscapes import Quadratic, Rosenbrock
from gradlab.momentum import (MomentumRateConfig, gd_best, heavy_ball_max_lr, iteration_matrices, measured_rates,
                              momentum_forms, momentum_rates, nesterov_lookahead, polyak_tuned, rate_map,
                              spectral_radius)

X0 = torch.tensor([-1.2, 1.0], dtype=torch.float64)


def test_the_two_forms_are_one_run_while_the_learning_rate_is_constant():
    """By induction u_k = −η v_k: u_k = β(−η v_{k−1}) − η g_k = −η(β v_{k−1} + g_k)."""
    lr, beta = 1e-3, 0.9
    forms = momentum_forms(Rosenbrock().grad, X0, [lr] * 300, beta)
    torch.testing.assert_close(forms.textbook_points, forms.torch_points, rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(forms.textbook_velocity, -lr * forms.torch_velocity, rtol=1e-12, atol=1e-14)
    assert float((forms.torch_points[-1] - X0).norm()) > 0.1


def test_a_learning_rate_change_splits_them_by_beta_times_the_change_times_v():
    """At the first step with η2, both start from the same x_k and gradient g_k; PyTorch's form steps
    −η2(βv + g_k), the textbook's βu − η2 g_k = −βη1 v − η2 g_k: they part by β(η1 − η2)v."""
    lr1, lr2, beta, k = 2e-3, 5e-4, 0.9, 120
    forms = momentum_forms(Rosenbrock().grad, X0, [lr1] * k + [lr2] * 100, beta)
    torch.testing.assert_close(forms.textbook_points[:k + 1], forms.torch_points[:k + 1], rtol=1e-12, atol=1e-14)
    split = forms.torch_points[k + 1] - forms.textbook_points[k + 1]
    torch.testing.assert_close(split, beta * (lr1 - lr2) * forms.torch_velocity[k - 1], rtol=1e-9, atol=1e-15)
    assert float(split.norm()) > 1e-4
    assert float((forms.torch_points[-1] - forms.textbook_points[-1]).norm()) > 1e-4  # and they stay apart


@pytest.mark.parametrize("surface", [Rosenbrock(), Quadratic(kappa=30.0, angle=0.3)], ids=repr)
def test_torch_nesterov_keeps_the_look_ahead_point_as_its_parameter(surface):
    lr, beta, steps = (1e-3 if isinstance(surface, Rosenbrock) else 0.03), 0.9, 250
    xs, ys = nesterov_lookahead(surface.grad, X0, lr, beta, steps)
    p = X0.clone().requires_grad_(True)
    opt = torch.optim.SGD([p], lr=lr, momentum=beta, nesterov=True)
    params = [p.detach().clone()]
    for _ in range(steps):
        opt.zero_grad()
        surface.loss(p).backward()
        opt.step()
        params.append(p.detach().clone())
    torch.testing.assert_close(torch.stack(params), ys, rtol=1e-10, atol=1e-12)
    assert float((xs - ys).abs().max()) > 1e-3  # the iterate itself is elsewhere


@pytest.mark.parametrize("kappa", [4.0, 25.0, 1000.0])
def test_polyaks_choice_makes_both_ends_double_roots(kappa):
    """At Polyak's (η, β) the characteristic polynomial z² − (1 + β − ηλ)z + β has a double root at λ = μ and
    at λ = L (its discriminant vanishes), so both rates are √β; gradient descent's best η balances |1 − ηλ|."""
    lr, beta, rate = polyak_tuned(kappa, 1.0)
    for lam in (1.0, kappa):
        assert (1 + beta - lr * lam) ** 2 - 4 * beta == pytest.approx(0.0, abs=1e-12)
    assert rate == pytest.approx(math.sqrt(beta)) == pytest.approx((math.sqrt(kappa) - 1) / (math.sqrt(kappa) + 1))
    gd_lr, gd_rate = gd_best(kappa, 1.0)
    assert abs(1 - gd_lr) == pytest.approx(abs(1 - gd_lr * kappa)) == pytest.approx(gd_rate)
    assert gd_rate == pytest.approx((kappa - 1) / (kappa + 1))


def test_spectral_radius_is_the_largest_eigenvalue_of_the_iteration_matrices():
    """Against LAPACK's general eigenvalue solver, on pairs with real roots, complex roots and ρ > 1."""
    g = torch.Generator().manual_seed(0)
    lrs = 0.6 * torch.rand(400, generator=g, dtype=torch.float64)
    betas = torch.rand(400, generator=g, dtype=torch.float64)
    lams = torch.tensor([1.0, 7.0], dtype=torch.float64)
    m = iteration_matrices(lrs, betas, lams)
    assert m.shape == (400, 2, 2, 2)
    want = torch.linalg.eigvals(m).abs().amax(dim=(-1, -2))
    # near a double root LAPACK's eigenvalues are only accurate to about √(machine ε) ≈ 1e-8
    torch.testing.assert_close(spectral_radius(lrs, betas, lams), want, rtol=1e-7, atol=0.0)
    assert float(want.min()) < 0.7 and float(want.max()) > 1.5
    # one step of the matrix is one step of PyTorch's heavy ball: v ← βv + λx, x ← x − ηv
    x, v = 0.7, -0.2
    lr, beta, lam = float(lrs[3]), float(betas[3]), 7.0
    v_new = beta * v + lam * x
    torch.testing.assert_close(m[3, 1] @ torch.tensor([x, v], dtype=torch.float64),
                               torch.tensor([x - lr * v_new, v_new], dtype=torch.float64))


@pytest.mark.parametrize("beta", [0.0, 0.5, 0.9, 0.99])
def test_stability_bound_two_times_one_plus_beta_over_l(beta):
    """A root of z² − (1 + β − ηL)z + β passes −1 when 1 + (1 + β − ηL) + β = 0, i.e. at η = 2(1 + β)/L."""
    kappa = 40.0
    edge = heavy_ball_max_lr(beta, kappa)
    eig = torch.tensor([1.0, kappa], dtype=torch.float64)
    rho = spectral_radius(torch.tensor([0.99 * edge, 1.01 * edge], dtype=torch.float64),
                          torch.tensor([beta, beta], dtype=torch.float64), eig)
    assert float(rho[0]) < 1 < float(rho[1])


@pytest.mark.parametrize("kappa", [10.0, 100.0])
def test_measured_rates_follow_the_formulas(kappa):
    res = momentum_rates(MomentumRateConfig(kappa=kappa, steps=300))
    gd, hb = (kappa - 1) / (kappa + 1), (math.sqrt(kappa) - 1) / (math.sqrt(kappa) + 1)
    # GD at 2/(L + μ): both coordinates shrink by exactly (κ − 1)/(κ + 1) per step, so only rounding remains
    assert float(res.measured[0]) == pytest.approx(gd, rel=1e-9)
    # Polyak's double roots make ‖x_k‖ ∝ k·r^k (a Jordan block). The estimator compares the largest ‖x_k‖ of
    # the windows [T/2, 3T/4) and [3T/4, T], both at their first step, 75 steps apart: the factor k adds
    # at most (3/2)^(1/75) ≈ 1.0054 to the measured rate.
    assert hb <= float(res.measured[1]) <= hb * 1.5 ** (1 / 75) * (1 + 1e-4)
    torch.testing.assert_close(res.predicted[:2], torch.tensor([gd, hb], dtype=torch.float64))
    assert res.diverged_at is None
    assert float(res.measured[1]) < float(res.measured[0])


def test_the_rate_map_is_what_running_measures():
    """Pairs across the map, run with torch.optim.SGD for 600 steps. The envelope estimator takes the largest
    ‖x_k‖ of two windows 150 steps apart; complex roots make ‖x_k‖ oscillate under the envelope, and as long as
    each window's maximum is within a factor 2 of the envelope the rate is off by at most 2^(1/150) − 1 < 0.5 %."""
    kappa = 20.0
    rmap = rate_map(kappa, torch.linspace(0.02, 4.0, 12) / kappa, torch.linspace(0.0, 0.95, 8))
    b, e = torch.meshgrid(rmap.betas, rmap.lrs, indexing="ij")
    pick = (rmap.rates > 0.6) & (rmap.rates < 0.995)  # slow enough not to reach float64's floor in 600 steps
    pairs = list(zip(e[pick].tolist(), b[pick].tolist()))
    assert len(pairs) >= 30
    measured = measured_rates(kappa, pairs, steps=600)
    torch.testing.assert_close(measured, rmap.rates[pick], rtol=5e-3, atol=0.0)
    bad = rmap.rates > 1.01
    unstable = list(zip(e[bad].tolist(), b[bad].tolist()))[:5]
    assert len(unstable) == 5 and bool((measured_rates(kappa, unstable, steps=40) > 1).all())


def test_a_run_past_the_bound_is_reported_as_diverged():
    kappa, beta = 50.0, 0.5
    edge = heavy_ball_max_lr(beta, kappa)
    res = momentum_rates(MomentumRateConfig(kappa=kappa, lr=1.05 * edge, beta=beta, steps=600))
    assert res.diverged_run == res.labels[2] and res.diverged_at is not None
    assert bool(torch.isnan(res.distances[res.diverged_at:, 2]).all())
    assert bool(torch.isfinite(res.distances[:res.diverged_at, 2]).all())
    assert float(res.distances[res.diverged_at - 1, 2]) <= 1e6 < float(res.predicted[2]) ** res.diverged_at * 10
    fine = momentum_rates(MomentumRateConfig(kappa=kappa, lr=0.95 * edge, beta=beta, steps=600))
    assert fine.diverged_at is None and float(fine.measured[2]) < 1
