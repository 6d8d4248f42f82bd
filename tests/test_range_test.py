"""Chapter 4's range test on the digits: the suggestions are the finder's, η_max their median, one-cycle runs at
it, the reader's random generator is untouched, and every sweep leaves its model where it started."""
import math
import statistics

import pytest
import torch

from gradlab.batched_mlp import MLPConfig
from gradlab.schedules import OneCycle, lr_at
from gradlab.scheduling.range_test import RangeTestConfig, range_test

CFG = RangeTestConfig(seeds=3, steps=60, train_seeds=1, mlp=MLPConfig(hidden=12, epochs=2, batch_size=64))


@pytest.fixture(scope="module")
def test_run():
    torch.manual_seed(1234)
    before = torch.rand(3)
    torch.manual_seed(1234)
    out = range_test(CFG)
    return out, before, torch.rand(3)


def test_suggestions_are_the_finders_and_eta_max_their_median(test_run):
    out, _, _ = test_run
    assert out.suggestions == tuple(float(s.steepest) for s in out.sweeps)
    assert out.peak == statistics.median(out.suggestions)
    assert out.spread == pytest.approx(max(out.suggestions) / min(out.suggestions))
    # every sweep blew up and stopped, above its suggestion
    assert all(s.stopped_early and s.lrs[-1] > p for s, p in zip(out.sweeps, out.suggestions))


def test_one_cycle_runs_at_the_median_suggestion_and_the_constants_at_it_and_a_tenth(test_run):
    out, _, _ = test_run
    lr = out.curves.step_lr
    total = lr.shape[1]
    assert lr[0].tolist() == pytest.approx([lr_at(OneCycle(total), k, out.peak) for k in range(total)], rel=1e-12)
    assert set(lr[1].tolist()) == {out.peak} and lr[2].tolist() == pytest.approx([out.peak / 10] * total)
    assert out.final().shape == (3,) and torch.isfinite(out.final()).all()


def test_the_readers_global_generator_is_left_as_it_was(test_run):
    _, before, after = test_run
    assert torch.equal(before, after)


def test_the_other_rule_and_bad_settings(test_run):
    out, _, _ = test_run
    other = range_test(RangeTestConfig(seeds=2, steps=60, rule="min_over_10", train_seeds=1, mlp=CFG.mlp))
    assert other.suggestions == tuple(s.min_over_10 for s in other.sweeps)
    assert other.sweeps[0].losses == out.sweeps[0].losses  # seed 0 sweeps the same way whatever the rule
    with pytest.raises(ValueError, match="rule is one of"):
        RangeTestConfig(rule="valley")
    with pytest.raises(ValueError, match="at least one seed"):
        RangeTestConfig(seeds=0)
    assert math.isfinite(other.peak)


def test_the_chapters_claims_at_its_settings():
    """Chapter 4, Experiment 3 (full settings): the suggestion moves by a factor of a few between seeds; one-cycle
    at η_max ends about level with a constant rate at it (within 20%), and both beat a constant η_max/10."""
    out = range_test()
    assert 2 < out.spread < 6
    one_cycle, constant, tenth = out.final().tolist()
    assert abs(one_cycle - constant) < 0.2 * min(one_cycle, constant)
    assert tenth > 1.3 * max(one_cycle, constant)
