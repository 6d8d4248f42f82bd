"""Chapter 1's online learning: the constant rate's error level against its derivation (and the expected
error step by step against the exact recursion), the decaying rate winning on a fixed optimum and
losing on a drifting one."""
import math

import pytest
import torch

from gradlab.online import StreamConfig, steady_error, track


def recursion(config: StreamConfig, steps: int) -> list[float]:
    """E‖w_k − w*_k‖² for a constant η, iterated from E‖w_0 − w*_0‖² = d (w_0 = 0, w*_0 ~ N(0, I))."""
    eta, d = config.lr, config.dim
    a = 1 - 2 * eta + (d + 2) * eta**2
    out = [float(d)]
    for _ in range(steps):
        out.append(a * out[-1] + eta**2 * config.noise**2 * d + config.drift**2 * d)
    return out


@pytest.mark.parametrize("drift", [0.0, 0.01])
def test_constant_rate_follows_the_exact_recursion_and_settles_at_its_level(drift):
    cfg = StreamConfig(drift=drift, steps=600, streams=2000, seed=1)
    run = track(cfg)
    expected = recursion(cfg, cfg.steps)
    for k in (5, 20, 60, 200, 600):
        # each stream's squared error has a relative spread of about √(2/d); over 2000 streams, ≈1.4% standard error
        assert float(run.errors[0, k]) == pytest.approx(expected[k], rel=0.08), k
    assert expected[-1] == pytest.approx(steady_error(cfg), rel=1e-9)
    assert float(run.late_error(0.5)[0]) == pytest.approx(steady_error(cfg), rel=0.03)


def test_steady_error_formula_and_its_limit():
    cfg = StreamConfig(dim=5, noise=0.5, drift=0.01, lr=0.05)
    assert steady_error(cfg) == pytest.approx((0.05**2 * 0.25 * 5 + 1e-4 * 5) / (0.1 - 7 * 0.05**2))
    with pytest.raises(ValueError, match="2/"):
        steady_error(StreamConfig(dim=5, lr=2 / 7))


def test_decaying_rate_wins_on_a_fixed_optimum_and_loses_on_a_drifting_one():
    fixed = track(StreamConfig(steps=5000))
    drifting = track(StreamConfig(steps=5000, drift=0.01))
    const, decay = fixed.late_error()
    assert float(decay) < float(const) / 30
    # η_k = η/(1 + ηk) ≈ 1/k: the error of a running mean, about σ²d/k at the end
    assert float(fixed.errors[1, -1]) == pytest.approx(0.5**2 * 5 / 5000, rel=0.5)
    const, decay = drifting.late_error()
    assert float(decay) > 10 * float(const)
    assert float(drifting.errors[1, -1]) > float(drifting.errors[1, 1000])  # it stops tracking: the error grows
    assert float(const) == pytest.approx(steady_error(drifting.config), rel=0.15)


def test_the_stream_is_reproducible_and_both_schedules_see_the_same_examples():
    a, b = track(StreamConfig(steps=50, seed=3)), track(StreamConfig(steps=50, seed=3))
    assert torch.equal(a.errors, b.errors) and torch.equal(a.weights, b.weights)
    c = track(StreamConfig(steps=50, seed=4))
    assert not torch.equal(a.errors, c.errors)
    # the first step uses η for both schedules, on the same example: identical after one step
    assert float(a.weights[0, 1]) == float(a.weights[1, 1]) and float(a.weights[0, 2]) != float(a.weights[1, 2])
    assert math.isclose(float(a.errors[0, 0]), float(a.errors[1, 0]))
