"""Chapter 1's gradient descent: closed forms, parity with torch.optim.SGD, divergence, thresholds,
saddle escape times, the convex convergence bounds, preconditioning, momentum's stability, autograd at a
kink, and the numbers the exercises' solutions state."""
import math

import pytest
import torch

from gradlab.data import logistic_task, minimize
from gradlab.descent import (DescentConfig, convex_convergence, descend, iterate, quadratic_closed_form,
                             stability_sweep, stability_threshold, steps_to_tolerance)
from gradlab.landscapes import Quadratic, Rosenbrock, Saddle
from gradlab.modes import pick
from gradlab.saddles import escape_sweep, predicted_escape_steps, saddle_run
from gradlab.seeding import generator


def test_iterates_on_a_quadratic_equal_the_closed_form():
    q = Quadratic(kappa=7.5, angle=0.4)
    start, lr = (1.3, -0.8), 0.11
    path = descend(q, start, DescentConfig(lr=lr, steps=60))
    for k in (0, 1, 2, 7, 30, 60):
        torch.testing.assert_close(path.points[k], quadratic_closed_form(q, start, lr, k), rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("momentum", [0.0, 0.9])
@pytest.mark.parametrize("surface", [Rosenbrock(), Quadratic(kappa=30.0, angle=0.5), Saddle()], ids=repr)
def test_from_scratch_descent_matches_torch_sgd_step_for_step(surface, momentum):
    start, cfg = (-1.2, 0.9), DescentConfig(lr=1e-3 if isinstance(surface, Rosenbrock) else 0.02,
                                            steps=150, momentum=momentum)
    ours = descend(surface, start, cfg).points
    p = torch.tensor(start, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.SGD([p], lr=cfg.lr, momentum=momentum)
    theirs = [p.detach().clone()]
    for _ in range(cfg.steps):
        opt.zero_grad()
        surface.loss(p).backward()
        opt.step()
        theirs.append(p.detach().clone())
    torch.testing.assert_close(ours, torch.stack(theirs), rtol=1e-10, atol=1e-12)
    assert not torch.equal(ours[-1], ours[0])  # it moved


def test_divergence_is_reported_at_the_analytic_step():
    # start (0, y0): x stays 0 and y_k = (1 − ηκ)^k y0, so |y_k| first exceeds R at k = ⌊ln(R/y0)/ln|1 − ηκ|⌋ + 1
    kappa, lr, y0, blowup = 10.0, 0.25, 0.7, 1e6
    factor = abs(1 - lr * kappa)
    assert factor > 1
    expected = math.floor(math.log(blowup / y0) / math.log(factor)) + 1
    path = descend(Quadratic(kappa=kappa), (0.0, y0), DescentConfig(lr=lr, steps=200, blowup=blowup))
    assert path.diverged_at == expected
    assert len(path.points) == expected and bool(torch.isfinite(path.losses).all())
    # just below 2/L the same run converges
    assert descend(Quadratic(kappa=kappa), (0.0, y0), DescentConfig(lr=0.199, steps=200)).diverged_at is None


def test_nan_counts_as_divergence():
    path = descend(Rosenbrock(), (-1.5, 2.0), DescentConfig(lr=0.5, steps=50, blowup=math.inf))
    assert path.diverged_at is not None and path.diverged_at < 50


@pytest.mark.parametrize("kappa", [1.0, 10.0, 100.0])
def test_measured_stability_threshold_is_two_over_L(kappa):
    q = Quadratic(kappa=kappa)
    two_over_l = 2.0 / q.smoothness
    found = stability_threshold(q, (1.0, 1.0), lo=0.1 * two_over_l, hi=4 * two_over_l)
    assert abs(found - two_over_l) / two_over_l < 0.01
    assert abs(found - 1.0 / q.smoothness) / two_over_l > 0.4  # not the 1/L folklore


def test_stability_sweep_brackets_and_refines_each_threshold():
    sweep = stability_sweep((1.0, 30.0), torch.logspace(-3, 0.6, 40), steps=300)
    assert torch.allclose(sweep.thresholds, sweep.predicted(), rtol=0.01)
    assert bool(torch.isinf(sweep.distances[1, -1])) and bool((sweep.distances[:, 0] < 1).all())


def test_escape_time_follows_the_formula():
    saddle = Saddle()
    offsets = torch.logspace(-10, -2, 9, dtype=torch.float64)
    for lr in (0.1, 0.03):
        sweep = escape_sweep(saddle, offsets, (lr,), steps=3000, noise=0.0, repeats=1)
        measured, predicted = sweep.measured[0], sweep.predicted[0]
        rate = math.log(1 + lr)
        # slope: each factor e closer to the manifold costs 1/ln(1 + η|λ|) more steps (±1 for rounding)
        gaps = measured[:-1] - measured[1:]
        expected_gaps = math.log(10) / rate
        assert bool(((gaps - expected_gaps).abs() <= 1.0).all()), (gaps, expected_gaps)
        # level: the linear formula, plus at most the cubic term's slowdown near |y| = 0.5,
        # ½ ln((1 − δ²)/(1 − 0.5²)) / ln(1 + η|λ|) steps, plus one for rounding up to a whole step
        extra = (measured - predicted)
        assert bool((extra >= 0).all()) and bool((extra <= 1 + 0.5 * math.log(4 / 3) / rate).all()), extra
    assert predicted_escape_steps(1e-6, 0.01, -1.0).item() == pytest.approx(math.log(0.5e6) / math.log(1.01))


def test_momentum_escape_formula_and_momentum_escapes_sooner():
    cfg = DescentConfig(lr=0.05, steps=2000, momentum=0.9)
    fast = saddle_run(Saddle(), 1e-8, cfg)
    slow = saddle_run(Saddle(), 1e-8, DescentConfig(lr=0.05, steps=2000))
    assert abs(fast.escaped_at - fast.predicted) <= 3
    assert fast.escaped_at < slow.escaped_at / 2


def test_noise_escapes_where_plain_descent_stays_forever():
    on_manifold = torch.zeros(1, dtype=torch.float64)
    plain = escape_sweep(Saddle(), on_manifold, (0.1,), steps=1000, noise=0.0, repeats=1)
    assert bool(torch.isnan(plain.measured).all())  # y stays exactly 0: converges to the saddle
    noisy = escape_sweep(Saddle(), on_manifold, (0.1,), steps=1000, noise=1e-3, repeats=5)
    assert bool(torch.isfinite(noisy.noisy).all()) and float(noisy.noisy[0]) < 200


def test_same_seed_same_numbers():
    cfg = DescentConfig(lr=0.1, steps=200, noise=0.01)
    a = descend(Saddle(), (1.0, 0.0), cfg, generator=generator(3)).points
    b = descend(Saddle(), (1.0, 0.0), cfg, generator=generator(3)).points
    c = descend(Saddle(), (1.0, 0.0), cfg, generator=generator(4)).points
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_convergence_bounds_hold_at_every_step():
    run = convex_convergence(logistic_task(l2=1e-2), steps=pick(1500, 300))
    assert run.strong_convexity == 1e-2 and run.smoothness > run.strong_convexity
    gaps = run.gaps
    assert bool((gaps >= -1e-12).all()), "f* must be the minimum"
    slack = 1e-12
    assert bool((gaps[1:] <= run.sublinear_bound[1:] + slack).all())
    assert bool((gaps <= run.linear_bound + slack).all())
    assert float(gaps[-1]) < 1e-3 * float(gaps[0])  # and it does converge


def test_preconditioning_counts():
    kappa, tol = 100.0, 1e-6
    q = Quadratic(kappa=kappa)
    plain = steps_to_tolerance(q, (1.0, 1.0), DescentConfig(lr=1 / kappa, steps=5000), tol)
    # with η = 1/κ the y-mode vanishes in one step and f_k = ½(1 − 1/κ)^{2k} afterwards
    assert plain == math.ceil(math.log(2 * tol) / (2 * math.log(1 - 1 / kappa)))
    newton = torch.linalg.inv(q.hessian())
    assert steps_to_tolerance(q, (1.0, 1.0), DescentConfig(lr=1.0, steps=10), tol, precondition=newton) == 1
    # the change of variables (x, √κ y) gives the same iterates as the preconditioner diag(1, 1/κ)
    round_path = descend(Quadratic(kappa=1.0), (1.0, math.sqrt(kappa)), DescentConfig(lr=0.5, steps=5)).points
    pre_path = descend(q, (1.0, 1.0), DescentConfig(lr=0.5, steps=5), precondition=newton).points
    torch.testing.assert_close(round_path * torch.tensor([1.0, 1 / math.sqrt(kappa)], dtype=torch.float64), pre_path)


def test_a_diagonal_preconditioner_cannot_fix_a_rotated_valley():
    q = Quadratic(kappa=100.0, angle=math.pi / 4)
    diag = torch.diag(1 / torch.diagonal(q.hessian()))
    assert torch.allclose(diag, diag[0, 0] * torch.eye(2, dtype=torch.float64))  # just a rescaled step
    lr = 1.0
    cfg = DescentConfig(lr=lr, steps=5000)
    with_diag = steps_to_tolerance(q, (1.0, 0.0), cfg, 1e-6, precondition=diag)
    plain = steps_to_tolerance(q, (1.0, 0.0), DescentConfig(lr=lr * float(diag[0, 0]), steps=5000), 1e-6)
    assert with_diag == plain and with_diag > 100


def test_iterate_runs_many_step_sizes_at_once():
    q = Quadratic(kappa=4.0)
    starts = torch.tensor([[1.0, 1.0]] * 3, dtype=torch.float64)
    pts = iterate(q, starts, torch.tensor([0.1, 0.2, 0.3]), DescentConfig(steps=5))
    for i, lr in enumerate((0.1, 0.2, 0.3)):
        torch.testing.assert_close(pts[5, i], quadratic_closed_form(q, (1.0, 1.0), lr, 5))


def test_warmup_delays_the_escape_from_a_plateau():
    # a linear ramp over W steps averages η/2, so it costs about W/2 steps of growth away from the saddle
    lr, w = 0.1, 100
    plain = saddle_run(Saddle(), 1e-6, DescentConfig(lr=lr, steps=1000))
    warm = saddle_run(Saddle(), 1e-6, DescentConfig(lr=lr, steps=1000, warmup=w))
    ramp = sum(math.log(1 + lr * min(1.0, (k + 1) / w)) for k in range(w)) / math.log(1 + lr)
    assert abs((warm.escaped_at - plain.escaped_at) - (w - ramp)) <= 1
    assert warm.escaped_at > plain.escaped_at + 0.4 * w


# --- the convex rate for any η ≤ 1/L, and which bound is the tighter one (Chapter 1, convexity section) ---------

def test_convex_bound_for_a_step_below_one_over_l():
    """For η ≤ 1/L the 1/k bound is ‖w_0 − w*‖²/(2ηk); L‖w_0 − w*‖²/(2k) holds only at η = 1/L."""
    task = logistic_task(l2=1e-2)
    lr = 0.3 / task.smoothness()
    run = convex_convergence(task, steps=pick(600, 200), lr=lr)
    w_star, _ = minimize(task)
    r0 = float((w_star**2).sum())
    k = torch.arange(1, len(run.gaps), dtype=torch.float64)
    torch.testing.assert_close(run.sublinear_bound[1:], r0 / (2 * lr * k))
    assert bool((run.gaps[1:] <= run.sublinear_bound[1:] + 1e-12).all())
    with pytest.raises(ValueError, match="1/L"):
        convex_convergence(task, steps=5, lr=1.5 / task.smoothness())
    # the L-form is false for small steps: f = (L/2)x² from x_0 = 1, η = 0.01/L, gap (L/2)(1 − 0.01)^{2k}
    big_l, c, steps = 4.0, 0.01, 100
    gap = 0.5 * big_l * (1 - c) ** (2 * steps)
    assert gap > big_l * 1.0 / (2 * steps)  # above L‖x_0 − x*‖²/(2k)
    assert gap <= 1.0 / (2 * (c / big_l) * steps)  # below ‖x_0 − x*‖²/(2ηk)
    path = descend(Quadratic(kappa=big_l), (0.0, 1.0), DescentConfig(lr=c / big_l, steps=steps))
    assert float(path.gaps[-1]) == pytest.approx(gap, rel=1e-12)


def test_which_bound_is_tighter_at_each_step():
    """The geometric bound starts lower (it begins at f(w_0) − f*); the 1/k bound overtakes it after a few steps."""
    task = logistic_task(l2=1e-2)
    steps = 300
    run = convex_convergence(task, steps=steps)
    # the same bounds from their definitions, with L, μ, w* and f* computed here
    big_l = float(torch.linalg.eigvalsh(task.features.T @ task.features / task.n)[-1]) / 4 + 1e-2
    w_star, f_star = minimize(task)
    r0, gap0 = float((w_star**2).sum()), float(task.loss(task.zeros())) - f_star
    sub = [big_l * r0 / (2 * k) for k in range(1, steps + 1)]
    geo = [(1 - 1e-2 / big_l) ** k * gap0 for k in range(1, steps + 1)]
    tighter = [s < g for s, g in zip(sub, geo)]
    assert not tighter[0] and tighter[-1]  # geometric at k = 1, the 1/k bound at k = 300
    switches = [k + 1 for k in range(1, steps) if tighter[k] != tighter[k - 1]]
    assert run.switches() == switches and len(switches) == 1 and 5 < switches[0] < 100
    # with κ = L/μ in the hundreds, the geometric bound wins again, but only after many steps
    k = steps
    while big_l * r0 / (2 * k) < (1 - 1e-2 / big_l) ** k * gap0:
        k += 1
    assert k > 1000


# --- Rosenbrock: the local stability limit changes along the path (Chapter 1, the loss-surface explorer) -------

def test_rosenbrock_learning_rates_against_the_local_limits():
    surface, start = Rosenbrock(), (-1.5, 0.5)
    top = lambda p: float(torch.linalg.eigvalsh(surface.hessian(torch.tensor(p, dtype=torch.float64)))[-1])  # noqa: E731
    assert 1e-3 > 2 / top(start)  # η = 0.001 is already above the limit where the run starts
    assert 1.9e-3 < 2 / top((1.0, 1.0)) < 3e-3  # η = 0.0019 is below the limit at the minimum, 0.003 above it
    assert descend(surface, start, DescentConfig(lr=3e-3, steps=3000)).diverged_at is not None
    # from many starts, η = 0.0019 ends at least five times lower than η = 0.001 after 3000 steps
    starts = torch.tensor([start, (-1.5, 2.0), (-1.0, 1.0), (-0.5, 0.25), (0.0, 0.0), (-1.2, 1.0), (1.5, 1.5),
                           (-1.5, 1.5)], dtype=torch.float64)
    ends = iterate(surface, starts.repeat(2, 1), torch.tensor([1e-3] * 8 + [1.9e-3] * 8), DescentConfig(steps=3000))[-1]
    slow, quick = surface.loss(ends).reshape(2, 8)
    assert bool(torch.isfinite(quick).all()) and bool((quick * 5 < slow).all()), (slow, quick)


# --- momentum (Chapter 1, "Momentum, briefly") ---------------------------------------------------------------------

def test_heavy_ball_is_stable_up_to_two_one_plus_beta_over_l():
    """Per eigenvalue λ, heavy ball is stable iff ηλ < 2(1 + β): momentum allows a larger step than 2/L."""
    q, beta = Quadratic(kappa=100.0), 0.9
    limit = 2 * (1 + beta) / q.smoothness
    below = descend(q, (1.0, 1.0), DescentConfig(lr=0.98 * limit, momentum=beta, steps=3000))
    above = descend(q, (1.0, 1.0), DescentConfig(lr=1.02 * limit, momentum=beta, steps=3000))
    assert below.diverged_at is None and float(below.gaps[-1]) < float(below.gaps[0])
    assert above.diverged_at is not None
    # the effective step along the floor, η/(1 − β) = 10/L, diverges as a plain step but not inside momentum
    assert descend(q, (-1.5, 1.0), DescentConfig(lr=10 / q.smoothness, steps=150)).diverged_at is not None
    heavy = descend(q, (-1.5, 1.0), DescentConfig(lr=1 / q.smoothness, momentum=beta, steps=150))
    plain = descend(q, (-1.5, 1.0), DescentConfig(lr=1 / q.smoothness, steps=150))
    assert float(heavy.gaps[-1]) < 1e-3 * float(plain.gaps[-1])
    assert bool((plain.losses[1:] <= plain.losses[:-1]).all()) and bool((heavy.losses[1:] > heavy.losses[:-1]).any())


# --- autograd at a kink (Chapter 1, the math) ------------------------------------------------------------------------

def test_autograd_at_a_kink_is_a_convention_not_a_subgradient():
    x = torch.tensor(0.0, dtype=torch.float64, requires_grad=True)
    (torch.relu(x) - torch.relu(-x)).backward()  # the identity function, slope 1 everywhere
    assert float(x.grad) == 0.0
    h = 1e-6
    assert (max(h, 0) - max(-h, 0) - (max(-h, 0) - max(h, 0))) / (2 * h) == pytest.approx(1.0)
    y = torch.tensor(0.0, dtype=torch.float64, requires_grad=True)
    torch.abs(y).backward()
    assert -1.0 <= float(y.grad) <= 1.0  # one kink alone: 0 is in |·|'s subdifferential [−1, 1]


# --- the numbers the exercises' solutions state ----------------------------------------------------------------------

def test_exercise_1_1_solution():
    k = math.floor(math.log(1e6 / 0.7) / math.log(1.5)) + 1
    assert k == 35 and math.log(1e6 / 0.7) / math.log(1.5) == pytest.approx(34.95, abs=0.005)
    assert descend(Quadratic(kappa=10.0), (0.0, 0.7), DescentConfig(lr=0.25, steps=200)).diverged_at == k


def test_exercise_1_3_solution():
    cfg = DescentConfig(lr=0.1, steps=1000)
    extra = saddle_run(Saddle(), 1e-8, cfg).escaped_at - saddle_run(Saddle(), 1e-6, cfg).escaped_at
    assert math.log(100) / math.log(1.1) == pytest.approx(48.3, abs=0.05)
    assert extra in (48, 49)


def test_exercise_1_4_solution():
    counts = {}
    for kappa in (100.0, 1000.0):
        # f_k = ½(1 − 1/κ)^{2k} once the steep coordinate is gone: the first k with (1 − 1/κ)^{2k} ≤ 2·10⁻⁶
        formula = math.ceil(math.log(2e-6) / (2 * math.log(1 - 1 / kappa)))
        cfg = DescentConfig(lr=1 / kappa, steps=20000)
        assert steps_to_tolerance(Quadratic(kappa=kappa), (1.0, 1.0), cfg, tol=1e-6) == formula
        assert formula == pytest.approx(kappa / 2 * math.log(5e5), rel=1e-2)
        counts[kappa] = formula
    assert counts == {100.0: 653, 1000.0: 6558}
    assert counts[1000.0] / counts[100.0] == pytest.approx(10, rel=0.01)
