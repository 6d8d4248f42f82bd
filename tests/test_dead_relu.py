"""Chapter 5, Experiment 4 (gradlab.gradients.dead_relu): the claims the chapter makes about dead ReLUs, each at
the chapter's settings (DeadReluConfig's defaults: depth 5, width 64, plain SGD at η = 0.05, batches of 64,
seed 0; the large step after 10 epochs and 10 more; the bias at initialization and 20 epochs)."""
import functools

import pytest
import torch
from torch import nn

from gradlab.gradients.dead_relu import DeadReluConfig, dead_relu


@functools.lru_cache(maxsize=None)
def run(**kw):
    return dead_relu(DeadReluConfig(**kw))


def bias(c: float, slope: float = 0.0):
    return run(cause="negative_bias", size=c, negative_slope=slope, warm_epochs=0, recovery_epochs=20)


def test_pytorch_leaky_relu_slope_is_not_the_cards_value():
    """Cards 5ERfgvck, maJHIKwH and ksWQY5x9 give Leaky ReLU's slope as 0.2; PyTorch's default ω is 0.01."""
    assert nn.LeakyReLU().negative_slope == 0.01
    assert float(nn.LeakyReLU()(torch.tensor(-1.0))) == pytest.approx(-0.01)


def test_config_rejects_nonsense():
    for kw, text in ((dict(cause="dropout"), "cause"), (dict(size=0.0), "size"), (dict(size=float("inf")), "size"),
                     (dict(negative_slope=1.0), "slope"), (dict(negative_slope=-0.1), "slope"),
                     (dict(depth=1), "depth"), (dict(lr=0.0), "learning rate"), (dict(recovery_epochs=0), "recovery")):
        with pytest.raises(ValueError, match=text):
            DeadReluConfig(**kw)


def test_one_step_at_100_eta_hurts_accuracy_but_kills_almost_nothing():
    r = run()
    k = r.shock_index
    assert float(r.val_acc[0, k - 1] - r.val_acc[0, k]) > 0.2  # 94% → 60%
    assert float(r.dead[1].max()) <= 0.1  # at most 6% of a layer dead after it
    assert r.recovered_in is not None and r.recovered_in <= 2
    assert r.dead_grad == 0.0  # a dead ReLU's incoming weights get exactly zero gradient


def test_one_step_at_1000_eta_kills_units_and_many_come_back():
    """004 Q13's "once dead, stays dead permanently" fails past the first layer: the layers below keep moving a
    dead unit's inputs. In the first hidden layer the inputs are the fixed data, so none can come back."""
    r = run(size=1000.0)
    assert float(r.dead[1, -1]) > 0.25  # 39% of the last hidden layer
    assert sum(r.revived) >= 10 and r.revived[0] == 0
    assert r.dead_grad == 0.0
    assert float(r.val_acc[0, -1]) < float(r.val_acc[1, -1]) - 0.03  # 88% against the control's 95%


def test_leaky_relu_recovers_from_the_same_large_step():
    """ω = 0.2 after the same 1000× step: back within a point of the control in at most 6 epochs (ReLU: never)."""
    r = run(size=1000.0, negative_slope=0.2)
    assert r.recovered_in is not None and r.recovered_in <= 6 and run(size=1000.0).recovered_in is None
    assert r.dead_grad > 0  # units negative on every example still get ω times the gradient


def test_a_bias_of_minus_10_kills_every_unit_past_the_first_layer_for_good():
    r = bias(10.0)
    assert float(r.dead[1, 0]) > 0.5 and bool((r.dead[1, 1:] == 1.0).all()) and bool((r.dead[2, 1:] == 1.0).all())
    assert sum(r.revived) == 0 and float(r.val_acc[0, -1]) < 0.2


def test_negative_bias_stalls_relu_training_with_few_units_dead():
    r = bias(1.0)
    assert float(r.dead[1].max()) < 0.5  # at most 23% of a layer dead on the whole training set
    assert float(r.zero_fraction[1, -1]) > 0.95  # but the last hidden layer is zero on almost every example
    assert float(r.val_acc[0, -1]) < 0.2 and float(r.val_acc[1, -1]) > 0.9
    assert r.revived[0] == 0 and r.dead_grad == 0.0


def test_leaky_relu_slope_decides_whether_the_network_recovers():
    """The same bias b = −1: ω = 0.01 (PyTorch's default) stays at chance like ReLU, 0.2 (the cards') gets most
    of the way back, 0.3 nearly all of it, within 20 epochs; a unit in the negative regime still gets gradient."""
    small, cards, large = bias(1.0, 0.01), bias(1.0, 0.2), bias(1.0, 0.3)
    assert float(small.val_acc[0, -1]) < 0.2
    assert 0.5 < float(cards.val_acc[0, -1]) < float(large.val_acc[0, -1])
    assert float(large.val_acc[0, -1]) > 0.85
    assert small.dead_grad > 0 and cards.dead_grad > 0


def test_result_shapes_and_progress():
    seen = []
    r = dead_relu(DeadReluConfig(depth=3, width=8, warm_epochs=1, recovery_epochs=2), progress=seen.append)
    assert r.dead.shape == r.zero_fraction.shape == (3, 2) and r.layers == ("first.2", "blocks.0.act")
    assert r.train_loss.shape == r.val_loss.shape == r.val_acc.shape == (2, len(r.epochs)) == (2, 1 + 1 + 1 + 2)
    assert r.epochs.tolist() == [0.0, 1.0, 1.0, 2.0, 3.0]
    assert seen[-1] == pytest.approx(1.0) and all(a <= b for a, b in zip(seen, seen[1:]))
    assert torch.equal(r.val_acc[0, :2], r.val_acc[1, :2])  # the control shares the run up to the shock
