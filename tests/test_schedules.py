"""Chapter 4's learning-rate schedules against torch.optim.lr_scheduler, step for step: the closed formulas of
gradlab.schedules and the plateau decisions of gradlab.plateau. Learning rates are Python floats (float64) on
both sides."""
import math

import pytest
import torch

from gradlab.plateau import Plateau, plateau_decisions
from gradlab import schedules
from gradlab.schedules import (Cosine, Exponential, MultiStep, OneCycle, Step, Warmup, WarmRestarts, WarmupCosine, lr_at,
                               momentum_at)

# A scheduler stepped before its optimizer warns; as an error, that mistake cannot hide in these tests.
pytestmark = pytest.mark.filterwarnings("error")

BASE_LR = 0.1
# PyTorch steps these by multiplying the previous η, the closed form takes a power or a cosine afresh: rounding
# accumulates, about one unit in the last place per step, and subtracting η_min at every step costs a little more.
# Measured: below 2e-13 relative for 3000 steps of T_max = 1000 (8e-12 only for T_max = 10000 with η_min > 0).
CHAINED = 1e-12


def optimizer() -> torch.optim.Optimizer:
    return torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=BASE_LR, momentum=0.9)


def torch_trace(schedule, steps: int, kind: str = "sgd"):
    """The learning rates and momenta of steps 0 to ``steps`` under PyTorch's scheduler, stepped once per step."""
    return schedules.torch_trace(schedule, steps, BASE_LR, kind)


def ours(schedule, steps: int, shift: int = 0) -> list[float]:
    return [lr_at(schedule, k + shift, BASE_LR) for k in range(steps + 1)]


def worst(mine: list[float], theirs: list[float]) -> float:
    """The largest relative difference (against PyTorch's value; an exact 0 compares absolutely)."""
    return max(abs(a - b) / abs(b) if b else abs(a) for a, b in zip(mine, theirs, strict=True))


CHAINED_CASES = {  # name: (schedule, steps)
    "step": (Step(3, 0.5), 30),
    "step-every-step": (Step(1, 0.9), 60),
    "step-growing": (Step(7, gamma=2.0), 40),
    "multistep-unsorted": (MultiStep((9, 2, 5), 0.5), 20),
    "multistep-repeated": (MultiStep([4, 4, 10], 0.3), 15),  # η γ² at step 4: PyTorch counts the milestone twice
    "multistep-at-0": (MultiStep((0, 3)), 6),
    "exponential": (Exponential(0.97), 300),
    "warmup": (Warmup(50, 0.01), 120),
    "warmup-default-start": (Warmup(7), 20),
    "exponential-growing": (Exponential(1.1), 100),
    "cosine": (Cosine(50), 160),  # past T_max: down, up again to η at 100, down again by 150
    "cosine-eta-min": (Cosine(37, eta_min=1e-3), 150),
    "cosine-T_max-1": (Cosine(1, eta_min=0.01), 6),
    "cosine-long": (Cosine(1000, eta_min=1e-3), 3000),
    "warmup-cosine": (WarmupCosine(60, 10, start_factor=0.1, eta_min=1e-3), 130),
    "warmup-0": (WarmupCosine(40, 0), 90),
    "warmup-1": (WarmupCosine(40, 1, start_factor=0.5), 90),
    "warmup-all-but-one": (WarmupCosine(12, 11), 30),
    "warmup-defaults": (WarmupCosine(100, 25), 100),
}
# computed afresh at every step by the very same expression, so equal to the last bit
EXACT_CASES = {
    "restarts": (WarmRestarts(10), 45),
    "restarts-T_mult-2": (WarmRestarts(5, T_mult=2, eta_min=1e-3), 160),  # periods 5, 10, 20, 40, 80
    "restarts-T_mult-3": (WarmRestarts(2, T_mult=3, eta_min=0.02), 100),
    "restarts-T_0-1": (WarmRestarts(1), 5),
}
ONE_CYCLE = {
    "defaults": OneCycle(100),
    "linear": OneCycle(100, anneal_strategy="linear"),
    "three-phase": OneCycle(60, three_phase=True),
    "three-phase-linear": OneCycle(61, pct_start=0.25, anneal_strategy="linear", base_momentum=0.8,
                                   max_momentum=0.99, div_factor=10.0, final_div_factor=100.0, three_phase=True),
    "short": OneCycle(10),  # the peak at a float step, 0.3 · 10 − 1 = 2.0000000000000004
    "shortest": OneCycle(3, pct_start=0.5),
    "late-peak": OneCycle(50, pct_start=0.9, div_factor=5.0),
}


@pytest.mark.parametrize("name", sorted(CHAINED_CASES))
def test_closed_form_matches_torch_chained_scheduler(name):
    schedule, steps = CHAINED_CASES[name]
    theirs, _ = torch_trace(schedule, steps)
    assert len(set(theirs)) > 1, "the schedule must change η for the match to mean anything"
    assert worst(ours(schedule, steps), theirs) <= CHAINED


@pytest.mark.parametrize("name", sorted(EXACT_CASES))
def test_warm_restarts_match_torch_exactly(name):
    schedule, steps = EXACT_CASES[name]
    theirs, _ = torch_trace(schedule, steps)
    assert ours(schedule, steps) == theirs


@pytest.mark.parametrize("kind", ["sgd", "adam"])
@pytest.mark.parametrize("name", sorted(ONE_CYCLE))
def test_one_cycle_matches_torch_exactly_with_momentum(name, kind):
    """Learning rate and momentum (SGD's momentum, Adam's β₁) at k = 0 … total_steps, the extra step included."""
    schedule = ONE_CYCLE[name]
    lrs, momenta = torch_trace(schedule, schedule.total_steps, kind)
    assert ours(schedule, schedule.total_steps) == lrs
    assert [momentum_at(schedule, k) for k in range(schedule.total_steps + 1)] == momenta
    # the extra step extrapolates momentum too: 0.85 + 0.1 · 71/70 ≈ 0.9514 > max_momentum for "linear"
    assert len(set(momenta)) > 1 and max(momenta[:-1]) == schedule.max_momentum


@pytest.mark.parametrize("kind", ["sgd", "adam"])
def test_one_cycle_without_momentum_cycling_leaves_momentum_alone(kind):
    schedule = OneCycle(50, cycle_momentum=False)
    lrs, momenta = torch_trace(schedule, 50, kind)
    assert ours(schedule, 50) == lrs
    assert set(momenta) == {0.9}  # what torch_trace built both optimizers with
    with pytest.raises(ValueError, match="cycle_momentum"):
        momentum_at(schedule, 0)


@pytest.mark.parametrize("name", ["step", "multistep-unsorted", "exponential", "cosine", "warmup-cosine",
                                  "warmup-0", "restarts-T_mult-2", "one-cycle"])
def test_an_off_by_one_step_is_detected(name):
    """A negative control: η_{k+1} where η_k is due fails the comparison by far more than the tolerance."""
    schedule, steps = {**CHAINED_CASES, **EXACT_CASES, "one-cycle": (ONE_CYCLE["defaults"], 99)}[name]
    theirs, _ = torch_trace(schedule, steps)
    assert worst(ours(schedule, steps, shift=1), theirs) > 1e-3


@pytest.mark.parametrize("name, below", [("cosine-eta-min", 1e-13), ("exponential", 1e-13), ("cosine-long", 2e-13)])
def test_the_chained_form_differs_in_the_last_bits_only(name, below):
    """Why the chained cases have a tolerance: not equal bit for bit, yet far inside it (the module's 2e-13)."""
    schedule, steps = CHAINED_CASES[name]
    theirs, _ = torch_trace(schedule, steps)
    assert 0 < worst(ours(schedule, steps), theirs) < below


def test_cosine_climbs_back_after_T_max():
    """cos(π·15/10) = 0 and cos(2π) = 1: halfway back up at 1.5 T_max, at η again at 2 T_max; a clamp fails."""
    schedule = Cosine(10)
    theirs, _ = torch_trace(schedule, 20)
    for k, expected in ((10, 0.0), (15, BASE_LR / 2), (20, BASE_LR)):
        assert lr_at(schedule, k, BASE_LR) == pytest.approx(expected, rel=1e-15, abs=1e-18)
        assert theirs[k] == pytest.approx(expected, rel=CHAINED, abs=1e-18)
    clamped = [lr_at(schedule, min(k, 10), BASE_LR) for k in range(21)]  # the textbook "stay at η_min"
    assert worst(clamped[:11], theirs[:11]) <= CHAINED and worst(clamped, theirs) > 0.5


def test_warmup_reaches_the_base_rate_only_where_the_cosine_starts():
    """T_w = 4, s = 0.25: η_k = η(0.25 + 0.75 k/4) for k < 4, so 0.025 at k = 0 and 0.08125 at k = 3; η at k = 4."""
    schedule = WarmupCosine(20, 4, start_factor=0.25)
    theirs, _ = torch_trace(schedule, 5)
    for k, expected in ((0, 0.025), (3, 0.08125), (4, BASE_LR)):
        assert lr_at(schedule, k, BASE_LR) == pytest.approx(expected, rel=1e-15)
        assert theirs[k] == pytest.approx(expected, rel=CHAINED)


def test_multistep_milestone_at_zero_acts_before_the_first_step():
    theirs, _ = torch_trace(MultiStep((0, 0), gamma=0.5), 1)
    assert theirs[0] == lr_at(MultiStep((0, 0), gamma=0.5), 0, BASE_LR) == BASE_LR / 4


def test_one_cycle_start_and_its_extra_step():
    """The start is max + (initial − max), one rounding off initial. At k = total_steps the last phase
    extrapolates: pct = (100 − 29)/(99 − 29) = 71/70 (but for the float peak step), so "linear" goes to
    min − (max − min)/70 < 0."""
    assert lr_at(OneCycle(100), 0, BASE_LR) == BASE_LR + (BASE_LR / 25 - BASE_LR) != BASE_LR / 25
    lowest = BASE_LR / 25 / 1e4
    extra = lr_at(OneCycle(100, anneal_strategy="linear"), 100, BASE_LR)
    assert extra == pytest.approx(lowest - (BASE_LR - lowest) / 70, rel=1e-12) and extra < 0
    with pytest.raises(ValueError, match="past total_steps"):
        lr_at(OneCycle(100), 101, BASE_LR)


def test_warm_restarts_restart_where_the_periods_add_up():
    """T_0 = 5, T_mult = 2: periods 5, 10, 20, so η is back to the base rate at k = 5, 15 and 35."""
    schedule = WarmRestarts(5, T_mult=2, eta_min=1e-3)
    lrs = ours(schedule, 40)
    assert [k for k in range(1, 41) if lrs[k] > lrs[k - 1]] == [5, 15, 35]
    assert all(lrs[k] == pytest.approx(BASE_LR, rel=1e-15) for k in (0, 5, 15, 35))


def torch_plateau(plateau: Plateau, values) -> list[float]:
    """The learning rate after each value under PyTorch's ReduceLROnPlateau."""
    opt = optimizer()
    scheduler = plateau.to_torch(opt)
    lrs = []
    for value in values:
        opt.step()
        scheduler.step(value)
        lrs.append(opt.param_groups[0]["lr"])
    return lrs


HAND = Plateau(factor=0.5, patience=2, threshold=0.1, cooldown=1, min_lr=0.02)
HAND_LOSSES = [1.0, 0.95, 0.92, 0.91, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5]
# Improving means falling below best · (1 − 0.1). By hand, η = 0.1 at first:
#   1.0 is the first best. 0.95, 0.92, 0.91 are all above 0.9: bad values 1, 2, 3 > patience 2, so after 0.91
#   η = 0.05, and one value of cooldown. 0.5 (index 4) is a new best; the cooldown then eats it (bad stays 0).
#   0.5 at 5, 6, 7 is not below 0.45: bad 1, 2, 3, so after index 7 η = 0.025, and a cooldown again:
#   index 8 counts bad 1, which the cooldown sets back to 0; 9, 10, 11 are bad 1, 2, 3: after 11,
#   η = max(0.0125, min_lr 0.02) = 0.02. Index 12 is cooldown; 13, 14, 15 bad 1, 2, 3 would cut to
#   max(0.01, 0.02) = 0.02, a change of 0 < eps, so η stays 0.02. Halving 0.1 is exact in binary.
HAND_LRS = [0.1] * 3 + [0.05] * 4 + [0.025] * 4 + [0.02] * 5


def test_plateau_matches_a_sequence_derived_by_hand():
    assert plateau_decisions(HAND, HAND_LOSSES, BASE_LR) == HAND_LRS == torch_plateau(HAND, HAND_LOSSES)


def test_plateau_off_by_one_patience_is_detected():
    """A negative control: one more value of patience delays every cut."""
    slower = Plateau(factor=0.5, patience=3, threshold=0.1, cooldown=1, min_lr=0.02)
    assert plateau_decisions(slower, HAND_LOSSES, BASE_LR) != HAND_LRS


def noisy_losses(n: int = 300, seed: int = 0) -> list[float]:
    """A falling, flattening loss with noise, from a fixed generator."""
    g = torch.Generator().manual_seed(seed)
    k = torch.arange(n, dtype=torch.float64)
    return (1 / (1 + k / 20) + 0.05 * torch.randn(n, generator=g, dtype=torch.float64)).tolist()


@pytest.mark.parametrize("plateau, flip", [
    (Plateau(), False),
    (Plateau(factor=0.5, patience=5), False),
    (Plateau(factor=0.5, patience=2, threshold=0.05, cooldown=4, min_lr=1e-3), False),
    (Plateau(factor=0.3, patience=0, threshold=0.0, threshold_mode="abs"), False),
    (Plateau(mode="max", factor=0.3, patience=3, threshold=0.01, threshold_mode="abs", cooldown=2), True),
    (Plateau(mode="max", factor=0.5, patience=4), True),
])
def test_plateau_matches_torch_on_a_noisy_loss(plateau, flip):
    values = [1 - v for v in noisy_losses()] if flip else noisy_losses()  # "max": an accuracy-like rising curve
    theirs = torch_plateau(plateau, values)
    assert len(set(theirs)) >= 3, "at least two cuts, for the match to mean anything"
    assert plateau_decisions(plateau, values, BASE_LR) == theirs


def test_plateau_relative_threshold_with_negative_values():
    """PyTorch's "rel" test is value < best·(1 − threshold): with best = −1 the bar is −0.9, so a worse −0.95
    counts as an improvement, and rising values never cut η; "abs" (bar best − 0.1) cuts after the first."""
    rising = [-1.0, -0.95, -0.9, -0.85]
    rel, absolute = Plateau(patience=0, threshold=0.1), Plateau(patience=0, threshold=0.1, threshold_mode="abs")
    assert plateau_decisions(rel, rising, BASE_LR) == torch_plateau(rel, rising) == [BASE_LR] * 4
    assert plateau_decisions(absolute, rising, BASE_LR) == torch_plateau(absolute, rising)
    assert plateau_decisions(absolute, rising, BASE_LR)[1] == pytest.approx(BASE_LR / 10)


def test_plateau_counts_nan_as_no_improvement():
    values = [1.0, math.nan, math.nan]  # best 1.0, then bad 1, bad 2 > patience 1: cut after the third
    plateau = Plateau(patience=1)
    assert plateau_decisions(plateau, values, BASE_LR) == torch_plateau(plateau, values)
    assert plateau_decisions(plateau, values, BASE_LR)[1:] == [BASE_LR, pytest.approx(BASE_LR / 10)]


@pytest.mark.parametrize("make, says", [
    (lambda: Step(0), "step_size"), (lambda: Step(2, gamma=0.0), "gamma"), (lambda: Step(2.5), "step_size"),
    (lambda: MultiStep((3, -1)), "milestone"), (lambda: MultiStep((2.5,)), "milestone"),
    (lambda: MultiStep((2,), gamma=-0.1), "gamma"), (lambda: Exponential(0.0), "gamma"),
    (lambda: Exponential(-0.5), "gamma"), (lambda: Cosine(0), "T_max"), (lambda: Cosine(10.0), "T_max"),
    (lambda: Cosine(10, eta_min=-1e-3), "eta_min"), (lambda: WarmupCosine(10, 10), "warmup"),
    (lambda: WarmupCosine(10, 11), "warmup"), (lambda: WarmupCosine(10, -1), "warmup_steps"),
    (lambda: WarmupCosine(10, 2, start_factor=0.0), "start_factor"),
    (lambda: WarmupCosine(10, 2, start_factor=1.5), "start_factor"), (lambda: OneCycle(1), "total_steps"),
    (lambda: OneCycle(10, pct_start=0.1), "phase"), (lambda: OneCycle(10, pct_start=1.0), "phase"),
    (lambda: OneCycle(10, pct_start=0.6, three_phase=True), "phase"),
    (lambda: OneCycle(10, anneal_strategy="exp"), "anneal_strategy"), (lambda: OneCycle(10, div_factor=0.0), "div"),
    (lambda: WarmRestarts(0), "T_0"), (lambda: WarmRestarts(5, T_mult=0), "T_mult"),
    (lambda: WarmRestarts(5, T_mult=1.5), "T_mult"), (lambda: Plateau(mode="mean"), "mode"),
    (lambda: Plateau(threshold_mode="relative"), "threshold_mode"), (lambda: Plateau(factor=1.0), "factor"),
    (lambda: Plateau(factor=0.0), "factor"), (lambda: Plateau(patience=-1), "patience"),
    (lambda: Plateau(cooldown=0.5), "cooldown"), (lambda: Plateau(min_lr=-1.0), "min_lr"),
    (lambda: lr_at(Cosine(10), -1, BASE_LR), "step k"), (lambda: lr_at(Cosine(10), 1.5, BASE_LR), "step k"),
    (lambda: lr_at(Cosine(10), 3, 0.0), "base_lr"),
])
def test_bad_input_is_a_clear_value_error(make, says):
    with pytest.raises(ValueError, match=says):
        make()


def test_plateau_is_not_a_schedule_of_the_step():
    with pytest.raises(TypeError, match="gradlab.plateau"):
        lr_at(Plateau(), 3, BASE_LR)


def test_torch_trace_says_what_it_cannot_drive():
    with pytest.raises(ValueError, match="'sgd' or 'adam'"):
        schedules.torch_trace(Cosine(10), 10, kind="lion")
    with pytest.raises(ValueError, match="steps must be a whole number"):
        schedules.torch_trace(Cosine(10), -1)


def test_the_gallery_draws_every_schedule_of_the_step_from_torchs_own_trace():
    import matplotlib.pyplot as plt

    from gradlab.plots.gallery import gallery_cases, plot_gallery

    cases = gallery_cases(200)
    assert {type(s) for s in cases.values()} == {Step, MultiStep, Exponential, Cosine, WarmupCosine, OneCycle,
                                                  WarmRestarts}
    fig = plt.figure()
    axes = plot_gallery(fig, total_steps=200, peak=0.1)
    assert [ax.get_title() for ax in axes] == list(cases)
    for ax, schedule in zip(axes, cases.values()):
        drawn = ax.get_lines()[0].get_ydata()
        assert list(drawn) == torch_trace(schedule, 200)[0]
    plt.close(fig)
