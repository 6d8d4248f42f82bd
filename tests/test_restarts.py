"""Chapter 4's warm restarts: cycles end where the periods add up, the snapshots are the weights of those epochs,
and the ensemble averages their probabilities."""
import math

import pytest
import torch

from gradlab.schedules import WarmRestarts, lr_at
from gradlab.scheduling.restarts import RestartsConfig, cycle_ends, restarts

CFG = RestartsConfig(T_0=1, T_mult=2, epochs=3, seeds=2, hidden=12, batch_size=128)


@pytest.fixture(scope="module")
def run():
    return restarts(CFG)


def test_cycles_end_where_the_periods_add_up():
    assert cycle_ends(3, 2, 21) == (3, 9, 21)
    assert cycle_ends(3, 2, 20) == (3, 9)
    assert cycle_ends(2, 1, 7) == (2, 4, 6)


def test_the_snapshots_are_the_weights_at_the_end_of_each_cycle(run):
    assert run.snapshot_epochs == (1, 3)
    epochs = list(run.snapshot_epochs)
    torch.testing.assert_close(run.snapshot_loss, run.curves.val_loss[:2, epochs], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(run.final_loss[0], run.snapshot_loss[:, -1])


def test_the_sgdr_copies_follow_the_formula_and_restart_to_the_peak(run):
    per_epoch = run.curves.steps_per_epoch
    lrs = run.curves.step_lr[0].tolist()
    schedule = WarmRestarts(T_0=per_epoch, T_mult=2)
    assert lrs == pytest.approx([lr_at(schedule, k, CFG.lr) for k in range(len(lrs))], rel=1e-12)
    assert lrs[per_epoch] == pytest.approx(CFG.lr)  # back to the peak at the first restart


def test_an_ensemble_of_one_snapshot_is_that_snapshot():
    one = restarts(RestartsConfig(T_0=2, T_mult=2, epochs=3, seeds=1, hidden=12, batch_size=128))
    assert one.snapshot_epochs == (2,)
    torch.testing.assert_close(one.ensemble_loss, one.snapshot_loss[:, 0], rtol=1e-5, atol=1e-6)
    assert 0 <= float(one.ensemble_acc[0]) <= 1 and math.isfinite(float(one.ensemble_loss[0]))


def test_a_run_without_a_whole_cycle_is_refused():
    with pytest.raises(ValueError, match="at least one whole cycle"):
        RestartsConfig(T_0=5, epochs=3)


@pytest.mark.parametrize("lr, later_better", [(0.1, True), (0.4, False)])
def test_the_chapters_claims_about_the_snapshots(lr, later_better):
    """Chapter 4, Experiment 7 and its widget: at η_max = 0.1 the later snapshots are better; at 0.4 they get
    worse, and their ensemble beats each of them and the single cosine. At 0.2 (the chapter's cell) the
    ensemble is level with the last snapshot (within 5%) and one cosine ends higher."""
    r = restarts(RestartsConfig(lr=lr))
    snaps = r.snapshot_loss.mean(0)
    assert bool((snaps[1:] < snaps[:-1]).all()) == later_better
    if not later_better:
        assert float(r.ensemble_loss.mean()) < float(snaps.min())
        assert float(r.ensemble_loss.mean()) < float(r.final_loss[1].mean())


def test_at_the_chapters_peak_the_ensemble_is_level_with_the_last_snapshot():
    r = restarts(RestartsConfig(lr=0.2))
    last, ensemble = float(r.snapshot_loss.mean(0)[-1]), float(r.ensemble_loss.mean())
    assert abs(ensemble - last) < 0.05 * last
    assert float(r.final_loss[1].mean()) > 1.5 * last
