"""Chapter 6 (gradlab.normalization.convnet): the small CNN on the 8 × 8 digits and its choice of normalization."""
import pytest
import torch
from torch import nn

from gradlab.batched_mlp import DigitsSplit, digits_split
from gradlab.normalization.convnet import (CONV_NORMS, ConvNetConfig, batch_norms, build_convnet, evaluate, images,
                                           train_epoch)
from gradlab.seeding import generator


def test_config_rejects_nonsense():
    for kw, text in ((dict(norm="weight"), "norm"), (dict(norm="group", groups=3), "groups must divide"),
                     (dict(norm="group", groups=0), "groups must divide"), (dict(channels=0), "at least 1"),
                     (dict(blocks=0), "at least 1"), (dict(momentum=0.0), "ψ"), (dict(momentum=1.5), "ψ"),
                     (dict(eps=0.0), "ε"), (dict(pool=3), "pool")):
        with pytest.raises(ValueError, match=text):
            ConvNetConfig(**kw)


def test_the_normalization_layers_are_pytorchs():
    expected = {"batch": nn.BatchNorm2d, "group": nn.GroupNorm, "layer": nn.GroupNorm, "instance": nn.InstanceNorm2d}
    for norm, kind in expected.items():
        model = build_convnet(ConvNetConfig(norm=norm))
        layers = [m for m in model.modules() if isinstance(m, kind)]
        assert len(layers) == 3
    assert [m.num_groups for m in build_convnet(ConvNetConfig(norm="layer")).modules()
            if isinstance(m, nn.GroupNorm)] == [1, 1, 1]
    inst = [m for m in build_convnet(ConvNetConfig(norm="instance")).modules() if isinstance(m, nn.InstanceNorm2d)]
    assert all(m.affine and not m.track_running_stats for m in inst)
    assert [m.momentum for m in batch_norms(build_convnet(ConvNetConfig(momentum=0.01)))] == [0.01] * 3


def test_a_few_thousand_parameters_and_the_convolutions_lose_their_bias_before_a_norm():
    for norm in CONV_NORMS:
        model = build_convnet(ConvNetConfig(norm=norm))
        assert 2_000 < sum(p.numel() for p in model.parameters()) < 10_000
        convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
        assert all((c.bias is None) == (norm != "none") for c in convs)


def test_layer_norm_as_group_norm_with_one_group_normalizes_as_nn_layernorm_does():
    x = torch.randn(5, 16, 8, 8, generator=generator(1)) * 2 + 3
    gn, ln = nn.GroupNorm(1, 16), nn.LayerNorm([16, 8, 8])
    torch.testing.assert_close(gn(x), ln(x), atol=1e-5, rtol=1e-5)


def test_build_is_seeded_by_its_own_generator_and_leaves_the_global_one_alone():
    state = torch.get_rng_state()
    a, b, c = (build_convnet(ConvNetConfig(), seed=s) for s in (0, 0, 1))
    assert torch.equal(torch.get_rng_state(), state)
    for pa, pb, pc in zip(a.parameters(), b.parameters(), c.parameters()):
        assert torch.equal(pa, pb)
    assert not all(torch.equal(pa, pc) for pa, pc in zip(a.parameters(), c.parameters()))


def test_initialization_is_pytorchs_default_range():
    """nn.Conv2d's and nn.Linear's default: weights and biases in U(±1/√fan_in); norms' scale 1 and shift 0."""
    model = build_convnet(ConvNetConfig(norm="none"))
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            bound = 1 / m.weight[0].numel() ** 0.5
            w = m.weight.detach().abs().max()
            assert 0.8 * bound < float(w) <= bound
            assert float(m.bias.detach().abs().max()) <= bound
    bn = batch_norms(build_convnet(ConvNetConfig()))[0]
    assert torch.equal(bn.weight, torch.ones(16)) and torch.equal(bn.running_var, torch.ones(16))


def test_only_batch_norm_differs_between_train_and_eval_mode():
    x = images(digits_split(0).x_val[:16])
    for norm in CONV_NORMS:
        model = build_convnet(ConvNetConfig(norm=norm))
        with torch.no_grad():
            diff = float((model.train()(x) - model.eval()(x)).abs().max())
        assert (diff > 1e-3) if norm == "batch" else (diff == 0.0), norm


def test_an_epoch_lowers_the_training_loss_for_every_normalization():
    split = digits_split(0)
    small = DigitsSplit(split.x_train[:256], split.y_train[:256], split.x_val, split.y_val)
    for norm in CONV_NORMS:
        model = build_convnet(ConvNetConfig(norm=norm, channels=8, groups=2))
        before = evaluate(model, images(small.x_train), small.y_train)[0]
        opt = torch.optim.Adam(model.parameters(), lr=0.01)
        assert train_epoch(model, opt, small, 16, generator(0)) is None
        assert evaluate(model, images(small.x_train), small.y_train)[0] < 0.8 * before, norm


def test_evaluating_in_train_mode_restores_the_running_statistics_unless_asked_not_to():
    split = digits_split(0)
    model = build_convnet(ConvNetConfig())
    x, y = images(split.x_val), split.y_val
    before = batch_norms(model)[0].running_var.clone()
    evaluate(model, x, y, train_mode=True, batch_size=8)
    assert torch.equal(batch_norms(model)[0].running_var, before)
    evaluate(model, x, y, train_mode=True, batch_size=8, keep_running=False)
    assert not torch.equal(batch_norms(model)[0].running_var, before)


def test_the_cards_32_groups_need_32_channels():
    """004 Q7 "typically use 32 groups" (Wu & He's default G = 32): with 16 channels it cannot be built."""
    with pytest.raises(ValueError, match="groups must divide"):
        ConvNetConfig(channels=16, norm="group", groups=32)
    with pytest.raises(ValueError):
        nn.GroupNorm(32, 16)
    assert ConvNetConfig(channels=32, norm="group", groups=32).groups == 32
