"""Chapter 4's exercises: the measurement each exercise cell runs gives the number its solution states."""
import math

import pytest

from gradlab import schedules
from gradlab.lr_finder import find_lr
from gradlab.scheduling.known_range import half_mse, known_range


def test_4_1_cosine_past_its_end_climbs_back_to_the_peak():
    lrs, _ = schedules.torch_trace(schedules.Cosine(T_max=100), 200, 0.1)
    # ½ · 0.1 · (1 + cos 1.5π) = 0.05 and ½ · 0.1 · (1 + cos 2π) = 0.1
    assert lrs[150] == pytest.approx(0.05, rel=1e-12)
    assert lrs[200] == pytest.approx(0.1, rel=1e-12)
    assert min(lrs) == lrs[100] == pytest.approx(0.0, abs=1e-15)


def test_4_2_a_step_decay_stepped_per_batch_is_used_up_in_one_epoch():
    lrs, _ = schedules.torch_trace(schedules.Step(step_size=10, gamma=0.1), 50, 0.1)
    assert lrs[50] == pytest.approx(0.1 * 0.1 ** 5, rel=1e-12)  # ⌊50/10⌋ = 5 decays


def test_4_3_without_noise_the_range_test_stops_far_past_the_edge():
    ratios = []
    for seed in range(4):
        p = known_range(seed=seed, noisy=False)
        ratios.append(find_lr(p.model, half_mse, p.batches, p.optimizer).lrs[-1] / p.edge)
    # the solution says "about 12 times the edge on this problem (8 to 12 for other data seeds)"
    assert 11 < ratios[0] < 13
    assert all(8 <= r < 12.5 for r in ratios), ratios
    noisy = known_range(seed=0)
    r = find_lr(noisy.model, half_mse, noisy.batches, noisy.optimizer, steps=300)
    assert 1 < r.lrs[-1] / noisy.edge < 2.5  # with noise it follows the edge closely: the contrast asked for
    assert math.isfinite(r.steepest)


def test_4_4_four_times_the_batch_a_quarter_of_the_floor():
    from gradlab.scheduling.floor import FloorConfig, floor_runs

    ratio = float(floor_runs(FloorConfig(lrs=(0.02,), batch_size=16, seeds=16)).measured[0]
                  / floor_runs(FloorConfig(lrs=(0.02,), batch_size=4, seeds=16)).measured[0])
    assert ratio == pytest.approx(0.25, rel=0.25)  # the cell's tolerance: the solution's 1/4 must pass it


def test_4_5_fifty_nine_random_trials():
    n = math.ceil(math.log(0.05) / math.log(0.95))
    assert n == 59 and 1 - 0.95**59 >= 0.95 > 1 - 0.95**58


def test_4_6_scaled_rates():
    from gradlab.scheduling.scaling import scaled_lr

    assert scaled_lr("linear", 0.05, 32, 512) == pytest.approx(0.8)
    assert scaled_lr("sqrt", 0.05, 32, 512) == pytest.approx(0.2)


def test_4_7_adams_first_step_has_length_eta_root_p():
    import torch

    from gradlab.optimizer_check import iterates

    step = iterates(lambda p: torch.optim.Adam(p, lr=0.1), lambda x: torch.linspace(1e-3, 1e3, 10_000, dtype=x.dtype),
                    [0.0] * 10_000, steps=1)[1]
    assert float(step.norm()) == pytest.approx(0.1 * math.sqrt(10_000), rel=1e-4)
