"""Chapter 5, Experiment 3: which deep networks train on the digits, at the chapter's own settings (DeepConfig's
defaults: width 64, 10 epochs of batches of 128, SGD with momentum 0.9 at η = 0.05, seed 0)."""
import math

import pytest

from gradlab.gradients.deep_training import DeepConfig, train_deep

CHANCE = math.log(10)


def test_at_depth_20_the_plain_sigmoid_network_never_leaves_chance_and_its_residual_twin_learns():
    r = train_deep(DeepConfig(depth=20))
    assert r.ratio_at_start("sigmoid, plain") < 1e-12  # the first layer's gradient, relative to the last's
    assert r.final("sigmoid, plain") > CHANCE - 0.1
    assert r.final("sigmoid, residual") < 0.5
    assert r.final("ReLU + He, plain") > 2 * r.final("sigmoid, residual")  # trainable, but slow at this η
    assert all(0.1 < r.ratio_at_start(v) < 10 for v in r.labels[1:])
    # ReLU + He residual without normalization: the trunk's variance doubles per block, the first steps are
    # enormous and the network ends no better than chance (or diverges)
    assert not (r.final("ReLU + He, residual") < CHANCE - 0.2)


def test_at_depth_50_without_normalization():
    """The sigmoid's first gradient is exactly 0 in float32 and it stays at chance; its residual twin learns; the
    ReLU residual net diverges; the plain ReLU net starts with gradients of healthy size and still learns nothing."""
    r = train_deep(DeepConfig(depth=50))
    assert r.ratio_at_start("sigmoid, plain") == 0.0 and r.final("sigmoid, plain") > CHANCE - 0.1
    assert r.final("sigmoid, residual") < 0.5
    assert r.diverged[r.labels.index("ReLU + He, residual")] is not None
    assert 0.1 < r.ratio_at_start("ReLU + He, plain") < 10  # no vanishing gradient at the start ...
    assert r.final("ReLU + He, plain") > CHANCE - 0.1  # ... and still no learning


def test_at_depth_50_batch_normalization_saves_some_networks_and_explodes_a_gradient():
    """With BatchNorm the plain sigmoid net learns partly (ratio near 1), the residual ReLU net is the best of the
    four, and the plain ReLU net starts with a first-layer gradient over 1000 times its last layer's (batch
    normalization's gradient explosion, Yang et al. 2019) and stays far behind."""
    r = train_deep(DeepConfig(depth=50, norm="batch"))
    assert 0.1 < r.ratio_at_start("sigmoid, plain") < 10 and r.final("sigmoid, plain") < CHANCE - 0.5
    best = min(r.labels, key=r.final)
    assert best == "ReLU + He, residual" and r.final(best) < 0.3
    assert r.ratio_at_start("ReLU + He, plain") > 1000
    assert r.final("ReLU + He, plain") > 1.0


def test_depth_makes_a_plain_relu_network_map_every_digit_to_nearly_one_direction():
    """The cosine between two digits' last hidden activations at initialization (Experiment 3): above 0.95 for a
    plain ReLU + He network of depth 50, lower at depth 5, and lower again with a residual trunk at depth 20."""
    from gradlab.gradients.nets import NetConfig
    from gradlab.gradients.signal import input_similarity

    cos = {(d, r): input_similarity(NetConfig(depth=d, activation="relu", init="he", residual=r))
           for d in (5, 20, 50) for r in (False, True)}
    assert cos[(50, False)] > 0.95
    assert cos[(5, False)] < cos[(20, False)] < cos[(50, False)]
    assert cos[(20, True)] < cos[(20, False)]
    with pytest.raises(ValueError, match="at least 2"):
        input_similarity(NetConfig(), examples=1)


@pytest.mark.parametrize("bad, message", [(dict(optimizer="lbfgs"), "optimizer is one of"),
                                          (dict(lr=-1.0), "positive number"), (dict(epochs=0), "at least 1"),
                                          (dict(variants=("tanh, plain",)), "labels of VARIANTS")])
def test_a_bad_config_says_what_is_wrong(bad, message):
    with pytest.raises(ValueError, match=message):
        DeepConfig(**bad)
