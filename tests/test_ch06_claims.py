"""Claims Chapter 6's prose makes that the experiment modules' own tests do not already pin, each at the chapter's
settings."""
import pytest
import torch
from torch import nn

from gradlab.normalization.smoothness import SmoothnessConfig, smoothness
from gradlab.normalization.stability import StabilityConfig, train_run


def trains_on_every_seed(norm: str, lr: float, depth: int) -> bool:
    return all(train_run(StabilityConfig(norm=norm, lr=lr, depth=depth, seed=s)).trains for s in (0, 1, 2))


@pytest.mark.parametrize("depth,plain_edge,bn_edge", [(12, (0.1, 0.3), (3.0, 10.0)), (6, (0.3, 1.0), (3.0, 10.0))])
def test_the_largest_learning_rate_that_trains_on_every_seed(depth, plain_edge, bn_edge):
    """Experiment 2's sweep (η on a grid of 1, 3, 10 per decade): the plain network's edge is 0.1 at depth 12 and 0.3
    at depth 6, batch normalization's 3 at both, so the ratio is 30 and 10 (the note: "a factor of 10 at depth 6")."""
    for norm, (ok, beyond) in (("none", plain_edge), ("batch", bn_edge)):
        assert trains_on_every_seed(norm, ok, depth), (norm, ok)
        assert not trains_on_every_seed(norm, beyond, depth), (norm, beyond)


def test_effective_smoothness_differs_far_less_than_the_loss_variation():
    """Experiment 3: at η = 0.5 the medians of the effective L differ by less than a factor of 1.5, those of the loss
    variation by more than 4 (Santurkar et al.'s smoothness shows along −g, not as a smaller L)."""
    std, bn = (smoothness(SmoothnessConfig(network=n, lr=0.5)) for n in ("standard", "batch"))
    big, small = sorted([float(std.effective_L.nanmedian()), float(bn.effective_L.nanmedian())])
    assert big / small < 1.5
    assert float(std.loss_variation.nanmedian()) > 4 * float(bn.loss_variation.nanmedian())


def test_layer_norm_over_the_features_keeps_a_per_feature_bias():
    """Experiment 6: batch normalization cancels a bias before it; layer normalization over the features does not."""
    g = torch.Generator().manual_seed(0)
    z = torch.randn(16, 8, generator=g, dtype=torch.float64)
    b = torch.randn(8, generator=g, dtype=torch.float64)
    ln = nn.LayerNorm(8, elementwise_affine=False).double()
    bn = nn.BatchNorm1d(8, affine=False).double().train()
    assert float((ln(z + b) - ln(z)).abs().max()) > 0.1
    assert float((bn(z + b) - bn(z)).abs().max()) < 1e-12
    # a bias equal in every feature is what layer normalization does cancel
    assert float((ln(z + 3.0) - ln(z)).abs().max()) < 1e-12
