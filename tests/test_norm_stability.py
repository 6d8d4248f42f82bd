"""Chapter 6, Experiment 2 (gradlab.normalization.stability): batch norm and the learning rate. The claims are
tested at the chapter's settings (StabilityConfig's defaults: a plain ReLU MLP of depth 12, width 64, He init,
plain SGD, batches of 128, 20 epochs, seed 0); the sweep's bookkeeping on a small grid."""
import functools
import math

import pytest
import torch

from gradlab.normalization.stability import (TRAINS_BELOW, StabilityConfig, SweepConfig, lr_sweep, train_run)


@functools.lru_cache(maxsize=None)
def run(**kw):
    return train_run(StabilityConfig(**kw))


def test_configs_reject_nonsense():
    for kw, text in ((dict(norm="layer"), "norm"), (dict(lr=0.0), "learning rate"), (dict(lr=math.inf), "learning rate"),
                     (dict(depth=1), "depth"), (dict(batch_size=1), "batch size"), (dict(epochs=0), "epoch")):
        with pytest.raises(ValueError, match=text):
            StabilityConfig(**kw)
    for kw, text in ((dict(lrs=(0.1,)), "increasing"), (dict(lrs=(1.0, 0.1)), "increasing"),
                     (dict(lrs=(-1.0, 0.1)), "learning rate"), (dict(seeds=()), "seed"), (dict(width=0), "width")):
        with pytest.raises(ValueError, match=text):
            SweepConfig(**kw)


def test_the_trains_threshold_is_half_of_chance():
    assert TRAINS_BELOW == pytest.approx(math.log(10) / 2)


def test_batch_norm_trains_at_a_learning_rate_where_the_plain_net_diverges():
    """η = 3: the plain depth-12 net blows up within its first epoch (10 steps); with batch norm it trains."""
    plain, bn = run(norm="none", lr=3.0), run(norm="batch", lr=3.0)
    assert plain.diverged_at is not None and plain.diverged_at < 10 and not plain.trains
    assert bn.diverged_at is None and bn.trains and bn.final_val < TRAINS_BELOW / 2  # 0.13


def test_at_eta_1_the_plain_net_does_not_diverge_but_does_not_train_either():
    """Why "trains" is not just "did not diverge": at η = 1 the plain net stays finite but sits at chance."""
    plain = run(norm="none", lr=1.0)
    assert plain.diverged_at is None and abs(plain.final_val - math.log(10)) < 0.05  # 2.304


def test_at_a_small_learning_rate_batch_norm_does_not_help():
    """Bjorck et al. (2018): batch norm's benefit is the larger η it allows. At η = 0.01 it is slower than without."""
    plain, bn = run(norm="none", lr=0.01), run(norm="batch", lr=0.01)
    assert bn.final_val > 1.1 * plain.final_val  # 1.55 against 1.32


def test_a_diverged_run_is_nan_from_the_step_on_and_never_trains():
    r = train_run(StabilityConfig(norm="none", lr=10.0, depth=8, width=16, epochs=2))
    assert r.diverged_at is not None and r.diverged_at < 10
    assert math.isnan(r.final_val) and not r.trains and math.isfinite(float(r.val_loss[0]))


def test_runs_are_reproducible_without_global_seeding():
    c = StabilityConfig(norm="batch", lr=0.1, depth=4, width=16, epochs=1, seed=3)
    torch.manual_seed(123)  # the run draws from its own generators only
    a = train_run(c)
    torch.manual_seed(456)
    assert torch.equal(a.val_loss, train_run(c).val_loss)


def test_the_sweep_finds_the_largest_learning_rate_that_trains_on_every_seed():
    s = lr_sweep(SweepConfig(lrs=(0.3, 10.0), seeds=(0, 1), depth=8, width=16, epochs=3))
    assert s.final_val.shape == (2, 2, 2)
    assert bool(s.diverged[0, :, 1].all())  # η = 10 blows the plain net up on both seeds
    assert torch.isnan(s.final_val[s.diverged]).all()
    for a in range(2):
        ok = [lr for k, lr in enumerate(s.config.lrs) if bool((s.final_val[a, :, k] < TRAINS_BELOW).all())]
        assert s.largest_stable[a] == (max(ok) if ok else None)
    assert s.largest_stable[0] != 10.0


def test_batch_norms_gain_comes_from_the_larger_learning_rate():
    """Bjorck et al. (2018), at seed 0: at the plain net's best η (0.1) batch norm is only a little better (0.25
    against 0.33); at the η only batch norm survives (3) it is much better (0.13)."""
    plain, bn_same, bn_large = run(norm="none", lr=0.1), run(norm="batch", lr=0.1), run(norm="batch", lr=3.0)
    assert plain.trains and bn_same.final_val < plain.final_val  # it does help a little at the same η
    assert bn_large.final_val < bn_same.final_val - 0.05
