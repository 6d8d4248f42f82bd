"""Chapter 4's noise floor: SGD with a constant η stalls where the stationary formula says, in proportion to η
and to 1/B, and a decaying η goes below every floor."""
import math

import pytest
import torch

from gradlab.schedules import Cosine, lr_at
from gradlab.scheduling.floor import FloorConfig, floor_runs, floor_task, predicted_floor

TASK = floor_task()


def test_the_formula_is_the_stationary_solution_of_the_linearized_dynamics():
    """Iterate C ← (I − ηH)C(I − ηH) + η²Σ/B to its fixed point: ½ tr(HC) must be the closed form."""
    n = TASK.x.shape[0]
    h = TASK.x.T @ TASK.x / n
    r = TASK.x @ TASK.w_star - TASK.y
    sigma = (TASK.x * r.unsqueeze(1)).T @ (TASK.x * r.unsqueeze(1)) / n
    for lr, b in ((0.02, 4), (0.3, 16), (0.8, 1)):
        a = torch.eye(h.shape[0], dtype=h.dtype) - lr * h
        c = torch.zeros_like(h)
        for _ in range(20000):
            c = a @ c @ a + lr**2 * sigma / b
        assert predicted_floor(TASK, lr, b) == pytest.approx(0.5 * torch.trace(h @ c).item(), rel=1e-6)
    assert predicted_floor(TASK, 2.01 / TASK.lam_max, 4) == math.inf


def test_the_measured_floor_follows_the_formula_for_small_eta_and_scales_with_eta_over_b():
    lrs = (0.01, 0.02, 0.04)
    small, big = (floor_runs(FloorConfig(lrs=lrs, batch_size=b, steps=3000, seeds=16)) for b in (4, 16))
    # 16 seeds × 1500 correlated steps: the mean of the second half is within ~10% of its expectation
    for runs in (small, big):
        ratio = runs.measured / runs.predicted
        assert ((ratio > 0.85) & (ratio < 1.2)).all(), ratio
    # proportional to η (slope 1 on log-log axes) and to 1/B
    slope = torch.diff(small.measured.log()) / math.log(2)
    assert ((slope > 0.8) & (slope < 1.2)).all(), slope
    assert 3.2 < float(small.measured[1] / big.measured[1]) < 4.8


def test_a_decaying_eta_goes_below_every_constant_floor_and_follows_its_scheduler():
    runs = floor_runs(FloorConfig(lrs=(0.02, 0.08, 0.32), batch_size=4, steps=2000, seeds=8))
    assert float(runs.excess[-1, -1]) < 0.5 * float(runs.measured.min())
    assert float(runs.val_loss[-1, -1]) < float(runs.val_loss[:-1, -1].min())
    expected = torch.tensor([lr_at(Cosine(T_max=2000), int(k), 0.32) for k in runs.steps], dtype=torch.float64)
    torch.testing.assert_close(runs.decay_lr, expected, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("decay", ["step", "1/k"])
def test_the_other_decays_also_end_below_the_floor(decay):
    runs = floor_runs(FloorConfig(lrs=(0.32,), batch_size=4, steps=2000, seeds=8, decay=decay))
    assert float(runs.excess[1, -1]) < 0.5 * float(runs.measured[0])
    assert runs.decay_lr[-1] < 0.1 * runs.decay_lr[0]


def test_above_the_edge_of_stability_a_run_is_reported_diverged():
    runs = floor_runs(FloorConfig(lrs=(0.02, 2.5 / TASK.lam_max), steps=300, seeds=2, peak=0.1))
    assert runs.diverged_at is not None and runs.diverged_run.startswith("constant η = ")
    assert math.isfinite(float(runs.excess[0, -1])) and math.isfinite(float(runs.excess[-1, -1]))


@pytest.mark.parametrize("make, says", [
    (lambda: FloorConfig(decay="linear"), "decay is one of"),
    (lambda: FloorConfig(lrs=(0.1, -1.0)), "positive"),
    (lambda: FloorConfig(batch_size=0), "batch_size must be"),
    (lambda: floor_task(n=10, d=8), "n ≥ 2d"),
])
def test_bad_settings_are_a_clear_error(make, says):
    with pytest.raises(ValueError, match=says):
        make()
