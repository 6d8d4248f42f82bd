"""Chapter 3's exercises: the measurement each exercise cell runs gives the number its solution states,
and every from-scratch rule the solutions give passes the chapter's check."""
import math

import pytest
import torch

from gradlab.adam import InsideAdamConfig, inside_adam
from gradlab.amsgrad import AMSGradConfig, adam_vs_amsgrad
from gradlab.momentum import MomentumRateConfig, momentum_rates
from gradlab.optimizer_check import check_update, iterates, largest_stable_lr
from gradlab.optimizer_state import state_table


def test_3_1_adams_first_step_is_eta_whatever_the_gradients_scale():
    step = iterates(lambda p: torch.optim.Adam(p, lr=0.01), lambda x: torch.tensor([1e-3, 1e3], dtype=x.dtype),
                    [0.0, 0.0], steps=1)[1]
    # −η g/(|g| + ε): ε = 1e-8 against |g| = 1e-3 changes the first entry by 1e-5 of itself
    torch.testing.assert_close(step, torch.tensor([-0.01, -0.01], dtype=step.dtype), rtol=2e-5, atol=0)


def test_3_1_the_solutions_rules_are_adam_and_the_cells_are_not():
    lr, b1, b2, eps = 0.01, 0.9, 0.999, 1e-8
    adam = lambda p: torch.optim.Adam(p, lr=lr, betas=(b1, b2), eps=eps)
    solution = check_update(lambda g, v, s: (b1 * v + (1 - b1) * g, b2 * s + (1 - b2) * g * g),
                            lambda g, v, s, k: lr * (v / (1 - b1**k)) / ((s / (1 - b2**k)).sqrt() + eps), adam)
    assert solution.ok, solution.message
    as_given = check_update(lambda g, v, s: (b1 * v + (1 - b1) * g, s),
                            lambda g, v, s, k: lr * v / (s.sqrt() + eps), adam)
    assert not as_given.ok and as_given.step == 1
    inside_root = check_update(lambda g, v, s: (b1 * v + (1 - b1) * g, b2 * s + (1 - b2) * g * g),
                               lambda g, v, s, k: lr * (v / (1 - b1**k)) / (s / (1 - b2**k) + eps).sqrt(), adam)
    assert not inside_root.ok, "the solution says ε inside the root is caught"


def test_3_2_nesterov_two_steps_by_hand():
    xs = iterates(lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9, nesterov=True), lambda x: x, [1.0], steps=2)
    assert xs[1:, 0].tolist() == pytest.approx([0.81, 0.5751], rel=1e-12)
    heavy = iterates(lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9), lambda x: x, [1.0], steps=1)
    assert heavy[1, 0].item() == pytest.approx(0.9)


def test_3_2_the_solutions_rule_is_nesterov_and_the_cells_is_not():
    lr, beta = 0.1, 0.9
    ref = lambda p: torch.optim.SGD(p, lr=lr, momentum=beta, nesterov=True)
    assert check_update(lambda g, v: (beta * v + g,), lambda g, v, k: lr * (g + beta * v), ref).ok
    assert not check_update(lambda g, v: (beta * v + g,), lambda g, v, k: lr * v, ref).ok


def test_3_3_rates_at_kappa_400_and_the_sqrt_kappa_speedup():
    r = momentum_rates(MomentumRateConfig(kappa=400.0, steps=4000)).measured.tolist()
    assert r[0] == pytest.approx(399 / 401, rel=1e-3)
    assert r[1] == pytest.approx(19 / 21, rel=5e-3)  # a double root: k·ρ^k reads a little above ρ
    assert math.log(r[1]) / math.log(r[0]) == pytest.approx(20.0, rel=0.02)  # √κ


def test_experiment_2_seventy_steps_against_seven_hundred():
    gd, hb = 99 / 101, 9 / 11
    assert math.log(1e-6) / math.log(hb) == pytest.approx(70, rel=0.02)
    assert math.log(1e-6) / math.log(gd) == pytest.approx(700, rel=0.02)


def test_3_4_nesterovs_bound_is_2_1_plus_beta_over_1_plus_2_beta():
    assert largest_stable_lr(10.0, 0.9, nesterov=True) * 10.0 == pytest.approx(3.8 / 2.8, rel=0.01)


def test_3_5_steps_under_a_constant_gradient():
    ones = lambda x: torch.ones_like(x)
    rms = -iterates(lambda p: torch.optim.RMSprop(p, lr=0.01), ones, [0.0], 1).diff(dim=0)[0, 0].item() / 0.01
    ada = -iterates(lambda p: torch.optim.Adagrad(p, lr=0.01), ones, [0.0], 100).diff(dim=0)[-1, 0].item() / 0.01
    adam = inside_adam(InsideAdamConfig(beta2=0.9999, bias_correction=False, steps=1)).step_factors[0].item()
    assert rms == pytest.approx(10.0, rel=1e-6)  # 1/√(1 − 0.99)
    assert ada == pytest.approx(0.1, rel=1e-6)  # 1/√100
    assert adam == pytest.approx(10.0, rel=1e-6)  # 0.1/√0.0001


def test_3_6_decay_without_a_gradient():
    zero = lambda x: torch.zeros_like(x)
    moved = lambda make: 1 - iterates(make, zero, [1.0], 100)[-1, 0].item()
    l2 = [moved(lambda p, a=a: torch.optim.Adam(p, lr=1e-3, weight_decay=a)) for a in (0.1, 1e-3)]
    decoupled = [moved(lambda p, a=a: torch.optim.AdamW(p, lr=1e-3, weight_decay=a)) for a in (0.1, 1e-3)]
    for m in l2:  # about η per step, a little less as the gradient αx shrinks: "about 0.1" within the cell's 10%
        assert 0.09 < m <= 0.1
    assert l2[0] == pytest.approx(l2[1], rel=1e-3), "Adam + L2 moves an unused weight at a rate that ignores α"
    assert decoupled[0] == pytest.approx(1 - (1 - 1e-4) ** 100, rel=1e-9)
    assert decoupled[1] == pytest.approx(1 - (1 - 1e-6) ** 100, rel=1e-9)


def test_3_7_the_state_of_one_layer():
    s = state_table(model=torch.nn.Linear(1000, 1000), kinds=("Adam",))["Adam"]
    assert s.full_bytes + s.scalar_bytes == 2 * 4 * 1_001_000 + 2 * 4


def test_3_8_with_the_default_beta2_adam_finds_the_best_point():
    assert adam_vs_amsgrad(AMSGradConfig(c=3.0, beta2=0.999)).x[0, -1] < -0.9
    assert adam_vs_amsgrad(AMSGradConfig(c=3.0)).x[0, -1] > 0.99  # the paper's β2 = 1/(1 + C²): the worst point
