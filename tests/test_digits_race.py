"""The race on the digits: each racer's η is the sweep's argmin, the reported spread is over seeds, and a tuned η
scaled until it diverges is reported by name."""
import torch

from gradlab.batched_mlp import MLPConfig
from gradlab.digits_race import DigitsRaceConfig, digits_race, lr_sweep

CFG = DigitsRaceConfig(kinds=("SGD", "momentum", "Adam"), lrs=(1e-3, 1e-1, 1e3),
                       mlp=MLPConfig(hidden=12, epochs=2, batch_size=256), seeds=(1, 2, 3))


def test_the_tuned_eta_is_the_smallest_finite_validation_loss():
    sweep = lr_sweep(CFG)
    assert sweep.val_loss.shape == (3, 3)
    assert bool(torch.isnan(sweep.val_loss[:2, 2]).all())  # η = 1000 diverges for SGD and momentum
    for row, best in zip(sweep.val_loss, sweep.best_lrs):
        finite = [(float(v), lr) for v, lr in zip(row, CFG.lrs) if torch.isfinite(v)]
        assert best == min(finite)[1]


def test_means_and_spreads_are_over_seeds_and_the_winner_has_the_best_mean():
    race = digits_race(CFG)
    acc = race.curves.val_acc[:, -1].reshape(3, 3)
    mean, sd = race.final("val_acc")
    torch.testing.assert_close(mean, acc.mean(1))
    torch.testing.assert_close(sd, acc.std(1))
    assert race.winner() == CFG.kinds[int(acc.mean(1).argmax())]
    assert race.curves.runs[4].seed == 2 and race.curves.runs[4].kind == "momentum"
    assert race.diverged_at is None


def test_a_scaled_eta_that_diverges_is_named():
    sweep = lr_sweep(CFG)
    race = digits_race(DigitsRaceConfig(**{**CFG.__dict__, "lr_scale": 1e4}), sweep=sweep)
    assert race.diverged_at is not None and race.diverged_run.split(" ")[0] in CFG.kinds


def test_the_widget_says_which_optimizer_diverged_without_a_traceback():
    from gradlab.widgets import get

    out = get("ch03.real_race").run({"scale": 30.0, "epochs": 2, "seeds": 1})
    assert out.ok and out.result.diverged_at is not None
    assert f"The run {out.result.diverged_run} diverged at step {out.result.diverged_at}" in out.message
