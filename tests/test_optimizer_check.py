"""The exercise checkers of Chapter 3: the reader's update rules against torch.optim, iterates on one tensor
(each against a value derived by hand), and the stability bound of heavy ball found by running it."""
import pytest
import torch

from gradlab import optimizers as ours
from gradlab.optimizer_check import UpdateCheck, check_update, iterates, largest_stable_lr, side_by_side

LR, BETA, B1, B2, EPS, RHO = 0.05, 0.9, 0.8, 0.99, 1e-8, 0.9

# Each optimizer as two one-line rules, in PyTorch's form; non-default constants, so a rule that ignored one
# would show. PyTorch starts the momentum buffer at the first gradient: from v = 0, v ← βv + g gives the same.
RIGHT = {
    "SGD": (lambda g: (), lambda g, k: LR * g, lambda p: torch.optim.SGD(p, lr=LR)),
    "heavy ball": (lambda g, v: (BETA * v + g,), lambda g, v, k: LR * v,
                   lambda p: torch.optim.SGD(p, lr=LR, momentum=BETA)),
    "Nesterov": (lambda g, v: (BETA * v + g,), lambda g, v, k: LR * (g + BETA * v),
                 lambda p: torch.optim.SGD(p, lr=LR, momentum=BETA, nesterov=True)),
    "RMSprop": (lambda g, s: (RHO * s + (1 - RHO) * g * g,), lambda g, s, k: 0.01 * g / (s.sqrt() + EPS),
                lambda p: torch.optim.RMSprop(p, lr=0.01, alpha=RHO, eps=EPS)),
    "Adam": (lambda g, v, s: (B1 * v + (1 - B1) * g, B2 * s + (1 - B2) * g * g),  # the book's v, s: exp_avg(_sq)
             lambda g, v, s, k: 0.01 * (v / (1 - B1**k)) / ((s / (1 - B2**k)).sqrt() + EPS),
             lambda p: torch.optim.Adam(p, lr=0.01, betas=(B1, B2), eps=EPS)),
}
ADAM = RIGHT["Adam"]


@pytest.mark.parametrize("name", sorted(RIGHT))
def test_a_right_rule_matches_torch_optim(name):
    state_rule, step_rule, reference = RIGHT[name]
    result = check_update(state_rule, step_rule, reference)
    assert result.ok and result.step is None, result.message
    assert result.max_error < 1e-12  # float64 rounding over 50 steps
    assert repr(result) == result.message and result.message.startswith("✓")
    assert f"torch.optim.{reference([torch.zeros(1)]).__class__.__name__} for 50 steps" in result.message
    # the match means something only if the parameters moved: the network really trained
    assert side_by_side(reference, reference, steps=50).distance > 0.05


@pytest.mark.parametrize("case, step", [
    # k = 1: torch moves by 0.01·ĝ/|ĝ|, about 0.01 per entry; uncorrected, 0.01·(1 − β1)/√(1 − β2) = 0.02
    ("Adam without bias correction", 1),
    # k = 1: PyTorch's Nesterov moves by η(g + βv) = η(1 + β)g, heavy ball by ηg
    ("Nesterov written as heavy ball", 1),
    ("a wrong sign", 1),
    # the correction frozen at k = 1 is right at k = 1 by construction; at k = 2 it divides by 1 − β1,
    # not 1 − β1²
    ("bias correction frozen at step 1", 2),
    # right until step 9 by construction, 1% too long from step 10
    ("1% off from step 10", 10),
])
def test_a_wrong_rule_is_caught_at_its_first_differing_step(case, step):
    adam_state, _, adam = ADAM
    cases = {
        "Adam without bias correction": (adam_state, lambda g, v, s, k: 0.01 * v / (s.sqrt() + EPS), adam),
        "Nesterov written as heavy ball": (RIGHT["Nesterov"][0], RIGHT["heavy ball"][1], RIGHT["Nesterov"][2]),
        "a wrong sign": (lambda g: (), lambda g, k: -LR * g, RIGHT["SGD"][2]),
        "bias correction frozen at step 1": (
            adam_state, lambda g, v, s, k: 0.01 * (v / (1 - B1)) / ((s / (1 - B2)).sqrt() + EPS), adam),
        "1% off from step 10": (RIGHT["heavy ball"][0], lambda g, v, k: LR * v * (1.01 if k >= 10 else 1.0),
                                RIGHT["heavy ball"][2]),
    }
    result = check_update(*cases[case])
    assert not result.ok and result.step == step, result.message
    assert result.message.startswith(f"✗ step {step}: your parameters differ from torch.optim.")
    assert result.max_error > 1e-6


@pytest.mark.parametrize("state_rule, step_rule, words", [
    (lambda g, v: (BETA * v + g,), lambda g, v, k: 1 / 0, "your step_rule raised ZeroDivisionError"),
    (lambda g, v: (v[0, 0] + g,), lambda g, v, k: LR * v, "your state_rule raised IndexError"),  # biases are 1-D
    (lambda g, v: (BETA * v + g,), lambda g, v, k: LR * v.sum(), "returned shape ()"),
    (lambda g, v: (BETA * v + g, v), lambda g, v, k: LR * v, "returned 2 state tensor(s); it takes 1"),
    (lambda g, v: None, lambda g, v, k: LR * v, "returned NoneType, not a tuple of tensors"),
    (lambda g, v: (BETA * v + g,), lambda g, v, k: (v - v) / (v - v), "NaN"),  # 0/0
    (lambda g, v: (BETA * v + g,), lambda g, v: LR * v, "step_rule takes g, 1 state tensor(s) and k: 3 arguments"),
    (lambda: (), lambda k: 0.0, "state_rule takes g first"),
    ("v", lambda g, k: g, "must be functions"),
])
def test_a_broken_rule_gives_a_sentence_not_a_traceback(state_rule, step_rule, words):
    result = check_update(state_rule, step_rule, RIGHT["heavy ball"][2], steps=5)
    assert isinstance(result, UpdateCheck) and not result.ok
    assert result.message.startswith("✗") and words in result.message, result.message


def test_a_bare_tensor_from_a_one_state_rule_is_accepted():
    assert check_update(lambda g, v: BETA * v + g, RIGHT["heavy ball"][1], RIGHT["heavy ball"][2]).ok


def test_side_by_side_tells_a_match_from_a_near_miss():
    same = side_by_side(lambda p: ours.Adam(p, lr=0.01, weight_decay=0.01),
                        lambda p: torch.optim.Adam(p, lr=0.01, weight_decay=0.01), steps=100)
    assert same.max_difference < 1e-12 and same.distance > 0.1
    # L2 in Adam is not AdamW's decoupled decay: a difference far above rounding
    other = side_by_side(lambda p: ours.Adam(p, lr=0.01, weight_decay=0.1),
                         lambda p: torch.optim.AdamW(p, lr=0.01, weight_decay=0.1), steps=100)
    assert other.max_difference > 1e-4


def test_nesterov_on_half_x_squared_by_hand():
    # g = x. v1 = 1, x1 = 1 − 0.1(1 + 0.9·1) = 0.81; v2 = 0.9·1 + 0.81 = 1.71, x2 = 0.81 − 0.1(0.81 + 0.9·1.71)
    xs = iterates(lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9, nesterov=True), lambda x: x, 1.0, 2)
    torch.testing.assert_close(xs, torch.tensor([1.0, 0.81, 0.5751], dtype=torch.float64), rtol=1e-14, atol=0)
    # gradlab's from-scratch SGD takes the same steps, and a tensor start is left as it was
    x0 = torch.tensor([1.0], dtype=torch.float64)
    mine = iterates(lambda p: ours.SGD(p, lr=0.1, momentum=0.9, nesterov=True), lambda x: x, x0, 2)
    torch.testing.assert_close(mine[:, 0], xs, rtol=1e-14, atol=0)
    assert mine.shape == (3, 1) and float(x0) == 1.0


def test_adagrad_step_under_a_constant_gradient():
    # after k steps s = k g², so step k is η g/(√k |g| + ε): η/10 at k = 100, whatever g's size
    lr, g = 0.01, 3.0
    xs = iterates(lambda p: torch.optim.Adagrad(p, lr=lr), lambda x: torch.full_like(x, g), [0.0, 5.0], 100)
    steps = -xs.diff(dim=0)
    torch.testing.assert_close(steps[-1], torch.full((2,), lr / 10, dtype=torch.float64), rtol=1e-9, atol=0)
    torch.testing.assert_close(steps[0], torch.full((2,), lr, dtype=torch.float64), rtol=1e-9, atol=0)


def test_rmsprop_first_step_is_ten_learning_rates():
    # PyTorch's RMSprop has no bias correction: s1 = (1 − 0.99)g², step η g/(0.1|g| + ε) = 10η
    lr = 0.01
    xs = iterates(lambda p: torch.optim.RMSprop(p, lr=lr, alpha=0.99), lambda x: torch.full_like(x, 2.0), [0.0], 1)
    assert float(xs[0, 0] - xs[1, 0]) == pytest.approx(10 * lr, rel=1e-7)


def test_adamw_shrinks_a_weight_without_gradient_geometrically():
    # Adam's moments stay 0 with a zero gradient, so only the decay acts: x_k = x_0 (1 − ηα)^k
    lr, alpha = 1e-3, 0.1
    xs = iterates(lambda p: torch.optim.AdamW(p, lr=lr, weight_decay=alpha), torch.zeros_like, [1.0, -2.0], 100)
    k = torch.arange(101, dtype=torch.float64)[:, None]
    torch.testing.assert_close(xs, torch.tensor([1.0, -2.0], dtype=torch.float64) * (1 - lr * alpha) ** k,
                               rtol=1e-12, atol=0)


def test_adam_l2_moves_a_weight_by_about_the_learning_rate_whatever_alpha():
    # the only gradient is αx; Adam divides it by √ŝ ≈ |αx|, so α cancels (up to ε/(α|x|) ≤ 1.2e-5 here)
    # and each step is about η. A little less: v̂ weighs the recent, smaller x more than ŝ does.
    lr, runs = 1e-3, []
    for alpha in (0.1, 1e-3):
        xs = iterates(lambda p: torch.optim.Adam(p, lr=lr, weight_decay=alpha), torch.zeros_like, [1.0], 100)
        steps = -xs.diff(dim=0)[:, 0]
        assert float(steps.min()) > 0.9 * lr and float(steps.max()) <= lr
        runs.append(xs)
    torch.testing.assert_close(runs[0], runs[1], rtol=1e-4, atol=0)
    # AdamW with the same α = 0.1 moves the weight by only 1 − (1 − ηα)^100 ≈ 0.01, ten times less
    decayed = iterates(lambda p: torch.optim.AdamW(p, lr=lr, weight_decay=0.1), torch.zeros_like, [1.0], 100)
    assert 1 - float(decayed[-1, 0]) == pytest.approx(1 - (1 - lr * 0.1) ** 100, rel=1e-9)


@pytest.mark.parametrize("kappa", [10.0, 100.0])
@pytest.mark.parametrize("beta", [0.0, 0.5, 0.9])
def test_largest_stable_lr_is_heavy_balls_bound(kappa, beta):
    # on curvature L = κ the root of z² − (1 + β − ηL)z + β = 0 reaches −1 at ηL = 2(1 + β)
    assert largest_stable_lr(kappa, beta) == pytest.approx(2 * (1 + beta) / kappa, rel=0.01)


@pytest.mark.parametrize("beta", [0.5, 0.9])
def test_largest_stable_lr_for_nesterov(beta):
    # PyTorch's Nesterov on curvature L, h = ηL: z² − (1 + β)(1 − h)z + β(1 − h) = 0, at z = −1 when
    # (1 − h)(1 + 2β) = −1, so h = 2(1 + β)/(1 + 2β): 1.357 for β = 0.9, below heavy ball's 3.8
    found = largest_stable_lr(10.0, beta, nesterov=True) * 10.0
    assert found == pytest.approx(2 * (1 + beta) / (1 + 2 * beta), rel=0.01)


def test_largest_stable_lr_refuses_a_momentum_of_one():
    with pytest.raises(ValueError, match="β must be in"):
        largest_stable_lr(10.0, 1.0)


def test_side_by_side_offset_starts_the_second_run_apart():
    sgd = lambda p: torch.optim.SGD(p, lr=0.1)
    assert side_by_side(sgd, sgd, steps=20).max_difference == 0.0  # the same arithmetic in the same order
    # SGD on a smooth network moves a 1e-15 difference by at most a factor (1 + ηL) per step: it stays tiny
    assert 0 < side_by_side(sgd, sgd, steps=20, offset=1e-15).max_difference < 1e-12


def test_rmsprop_amplifies_a_last_bit_difference_at_a_small_learning_rate():
    """What the chapter shows: at η = 1e-3 a weight whose gradient hovers near zero still takes steps of
    about η whose sign follows the last bits, so runs 1e-15 apart end far apart; η = 0.01 with decay does not."""
    rms = lambda p: torch.optim.RMSprop(p, lr=1e-3)
    assert side_by_side(rms, rms, offset=1e-15).max_difference > 1e-6
    stable = lambda p: torch.optim.RMSprop(p, lr=0.01, weight_decay=0.01)
    assert side_by_side(stable, stable, offset=1e-15).max_difference < 1e-10
