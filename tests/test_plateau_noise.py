"""Chapter 4's ReduceLROnPlateau on a noisy curve: the decisions are PyTorch's, a noise-triggered cut is one the
whole validation set contradicts, and with a short patience noise causes many of the cuts."""
import pytest
import torch

from gradlab.plateau import Plateau
from gradlab.scheduling.plateau_noise import PlateauNoiseConfig, noise_triggered, plateau_noise


@pytest.fixture(scope="module")
def default():
    return plateau_noise()


def test_the_decisions_are_reduce_lr_on_plateaus(default):
    cfg = default.config
    for s in range(cfg.seeds):
        opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=cfg.lr)
        scheduler = cfg.plateau.to_torch(opt)
        theirs = []
        for value in default.monitored[s].tolist():
            opt.step()
            scheduler.step(value)
            theirs.append(opt.param_groups[0]["lr"])
        assert default.lrs[s] == theirs
        cuts = [e for e in range(len(theirs)) if theirs[e] < (theirs[e - 1] if e else cfg.lr)]
        assert default.reductions[s] == cuts


def test_a_cut_is_noise_when_the_reference_improved_by_more_than_the_threshold_in_its_window():
    rule = Plateau(patience=2, threshold=0.1)
    reference = [1.0, 0.9, 0.85, 0.8, 0.79, 0.78]
    # window ending at epoch 3: epochs 1-3, best 0.8 against 1.0 before: 20% better, more than 10%
    assert noise_triggered(rule, reference, 3)
    # window ending at epoch 5: epochs 3-5, best 0.78 against 0.85 before: 8%, not more than 10%
    assert not noise_triggered(rule, reference, 5)
    assert not noise_triggered(rule, reference, 1)  # nothing before the window yet


def test_with_a_short_patience_noise_triggers_many_cuts_and_a_long_one_fewer_cuts(default):
    """The widget's claims at its defaults (patience 3, threshold 1%, 100 examples per check)."""
    total, noise = default.counts
    assert total >= 12 and noise >= total / 3, default.counts
    patient = plateau_noise(PlateauNoiseConfig(plateau=Plateau(factor=0.5, patience=10, threshold=1e-2)))
    assert patient.counts[0] < total / 2


def test_a_config_without_a_monitoring_set_is_refused():
    with pytest.raises(ValueError, match="monitoring set"):
        PlateauNoiseConfig(monitor=0)


def test_the_widgets_claims_about_the_threshold():
    """What to notice: with patience 2 and a 1% threshold about half of the cuts are noise (40-60%); with a 10%
    threshold few are (under a fifth), for 30, 100 and 540 examples per check."""
    for monitor in (30, 100, 540):
        low = plateau_noise(PlateauNoiseConfig(monitor=monitor, plateau=Plateau(factor=0.5, patience=2,
                                                                                threshold=0.01)))
        high = plateau_noise(PlateauNoiseConfig(monitor=monitor, plateau=Plateau(factor=0.5, patience=2,
                                                                                 threshold=0.1)))
        total, noise = low.counts
        assert 0.4 <= noise / total <= 0.6, (monitor, low.counts)
        assert high.counts[1] < high.counts[0] / 5, (monitor, high.counts)
