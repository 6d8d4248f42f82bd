"""Chapter 4's schedules on the digits MLP: every copy follows its schedule's formula, failures are counted from
the runs themselves, and at a large peak η a constant rate ends worse than every decaying schedule."""
import math

import pytest
import torch

from gradlab.batched_mlp import MLPConfig
from gradlab.schedules import Warmup, lr_at
from gradlab.scheduling.digits import (SCHEDULES, ScheduleRaceConfig, WarmupConfig, make_schedule, peak_sweep,
                                       schedule_race, warmup_sweep)

SMALL = MLPConfig(hidden=12, epochs=2, batch_size=128)


def test_every_copy_follows_its_schedule_as_the_formula_gives_it():
    race = schedule_race(ScheduleRaceConfig(lr=0.05, seeds=2, mlp=SMALL))
    total = race.curves.step_lr.shape[1]
    for i, name in enumerate(race.config.names):
        schedule = make_schedule(name, total)
        want = [0.05 if schedule is None else lr_at(schedule, k, 0.05) for k in range(total)]
        for seed in range(2):
            torch.testing.assert_close(race.curves.step_lr[2 * i + seed], torch.tensor(want, dtype=torch.float64),
                                       rtol=1e-12, atol=0)
    mean, sd = race.final("val_loss")
    assert mean.shape == sd.shape == (len(SCHEDULES),) and torch.isfinite(mean).all()
    again = schedule_race(ScheduleRaceConfig(lr=0.05, seeds=2, mlp=SMALL))
    torch.testing.assert_close(race.curves.val_loss, again.curves.val_loss)  # the seeds fix everything


def test_at_a_large_peak_a_constant_rate_ends_worse_than_every_decaying_schedule():
    """The designer's claim (its defaults): momentum SGD at η_max = 0.3 for 15 epochs on the digits."""
    race = schedule_race(ScheduleRaceConfig(lr=0.3))
    loss, _ = race.final("val_loss")
    assert race.config.names[0] == "constant"
    assert float(loss[0]) > 2 * float(loss[1:].max()), loss


def test_schedules_fall_about_two_orders_of_magnitude_and_bad_names_are_refused():
    total = 300
    for name in SCHEDULES[1:]:
        s = make_schedule(name, total)
        end = lr_at(s, total - 1, 1.0)
        assert end < 0.05, (name, end)
    with pytest.raises(ValueError, match="schedule is one of"):
        make_schedule("linear", total)


def test_failures_are_the_runs_that_diverged_or_ended_at_chance():
    cfg = WarmupConfig(warmups=(0, 5), lr=1.0, seeds=2, mlp=MLPConfig(hidden=12, epochs=1, batch_size=128, depth=3))
    sweep = warmup_sweep(cfg)
    final = sweep.curves.val_loss[:, -1]
    diverged = torch.tensor([d is not None for d in sweep.curves.diverged])
    expect = (diverged | ~torch.isfinite(final) | (final >= math.log(10))).reshape(2, 2)
    assert torch.equal(sweep.failed, expect)
    early = torch.nan_to_num(sweep.curves.step_loss[:, :cfg.early], nan=math.inf).max(1).values.reshape(2, 2)
    torch.testing.assert_close(sweep.early_peak, early)
    # T_w = 5: LinearLR from η/100, reaching η at update 5 and staying there
    want = [lr_at(Warmup(5, 0.01), k, 1.0) for k in range(sweep.curves.step_lr.shape[1])]
    assert sweep.curves.step_lr[2].tolist() == pytest.approx(want, rel=1e-12)
    assert sweep.curves.step_lr[0].tolist() == [1.0] * len(want)


def test_warmup_calms_the_first_updates_but_does_not_save_a_rate_too_large_for_the_network():
    """The widget's two claims at η = 0.2 (Adam, 6 hidden layers): the early loss spike shrinks with every longer
    warmup, from far above chance to near it, yet most seeds still fail at every warmup length: on this network
    the peak rate, not the first steps, decides."""
    sweep = warmup_sweep(WarmupConfig(lr=0.2))
    peaks = sweep.early_peak.median(1).values.tolist()
    assert peaks == sorted(peaks, reverse=True), peaks
    assert peaks[0] > 10 * math.log(10) and peaks[-1] < 1.5 * math.log(10)
    assert (sweep.fraction >= 0.5).all(), sweep.fraction


def test_a_warmup_as_long_as_the_run_is_refused():
    with pytest.raises(ValueError, match="warmups must lie"):
        warmup_sweep(WarmupConfig(warmups=(0, 10_000), mlp=SMALL))


def test_adam_at_its_best_peak_barely_needs_a_schedule_but_above_it_the_schedule_rescues():
    """The Adam widget's claims (defaults, 15 epochs on the digits): at the best peak, constant η and warmup +
    cosine end within 20% of each other; at the two largest peaks the schedule ends lower; at the smallest the
    constant does (the schedule's average η is smaller)."""
    sweep = peak_sweep()
    mean = sweep.final().mean(2)  # (peaks, [constant, warmup + cosine])
    best_constant, best_schedule = float(mean[:, 0].min()), float(mean[:, 1].min())
    assert abs(best_constant - best_schedule) < 0.2 * min(best_constant, best_schedule)
    assert (mean[-2:, 1] < mean[-2:, 0]).all()
    assert mean[0, 0] < mean[0, 1]
    c = sweep.config
    lr = sweep.curves.step_lr.reshape(len(c.peaks), len(c.names), c.seeds, -1)
    assert set(lr[2, 0, 0].tolist()) == {c.peaks[2]} and lr[2, 1, 0].max() == pytest.approx(c.peaks[2])


def test_the_warmup_widgets_claim_at_its_middle_rate():
    """What to notice, at the widget's grid value η = 0.1 (Adam): the early spike rises above ln 10 without
    warmup and shrinks with every longer warmup, while half or more of the seeds fail at every warmup length."""
    sweep = warmup_sweep(WarmupConfig(lr=0.1))
    peaks = sweep.early_peak.median(1).values.tolist()
    assert peaks[0] > 2 * math.log(10) and peaks == sorted(peaks, reverse=True), peaks
    assert (sweep.fraction >= 0.5).all(), sweep.fraction


def test_at_a_moderate_peak_the_constant_rate_is_competitive():
    """The designer's other claim (What to notice): at η_max = 0.1 a constant rate ends within 10% of the best
    decaying schedule's validation loss."""
    loss, _ = schedule_race(ScheduleRaceConfig(lr=0.1)).final("val_loss")
    assert float(loss[0]) < 1.1 * float(loss[1:].min()), loss
