"""Chapter 5's network builder: the layers are the ones the docstring names, each initialization has the variance
the chapter states (checked against torch.nn.init's own draws), and building touches no global random state."""
import math

import pytest
import torch
from torch import nn

from gradlab.gradients.nets import ACTIVATIONS, INITS, NORMS, NetConfig, build, weight_std


def test_depth_counts_the_layers_with_weights_and_they_run_input_to_output():
    m = build(NetConfig(d_in=64, width=32, d_out=10, depth=7))
    shapes = [tuple(lin.weight.shape) for lin in m.linears()]
    assert shapes == [(32, 64)] + [(32, 32)] * 5 + [(10, 32)]


def test_the_residual_block_is_the_pre_activation_form():
    cfg = NetConfig(depth=4, activation="tanh", norm="layer", residual=True)
    m = build(cfg, seed=3, dtype=torch.float64)
    block, h = m.blocks[0], torch.randn(5, 64, dtype=torch.float64)
    want = h + block.linear(torch.tanh(block.norm(h)))
    torch.testing.assert_close(block(h), want, rtol=0, atol=0)
    plain = build(NetConfig(depth=4, activation="tanh"), seed=3, dtype=torch.float64).blocks[0]
    torch.testing.assert_close(plain(h), torch.tanh(plain.linear(h)), rtol=0, atol=0)


def test_building_is_reproducible_and_leaves_the_global_generator_alone():
    state = torch.random.get_rng_state()
    a = build(NetConfig(depth=5, norm="batch", residual=True), seed=7)
    assert torch.equal(state, torch.random.get_rng_state())
    b = build(NetConfig(depth=5, norm="batch", residual=True), seed=7)
    c = build(NetConfig(depth=5, norm="batch", residual=True), seed=8)
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
    assert not torch.equal(a.linears()[1].weight, c.linears()[1].weight)
    bn = a.blocks[0].norm
    assert torch.equal(bn.running_mean, torch.zeros(64)) and torch.equal(bn.running_var, torch.ones(64))


@pytest.mark.parametrize("init", [i for i in INITS if i != "orthogonal"])
@pytest.mark.parametrize("activation", ["tanh", "relu", "leaky_relu"])
def test_each_initialization_has_the_stated_weight_std(init, activation):
    """The std weight_std states is the one the layers get, within sampling error of 256 × 512 draws."""
    cfg = NetConfig(d_in=512, width=256, depth=3, activation=activation, init=init, gain=1.5, negative_slope=0.2)
    w = build(cfg, seed=1).linears()[0].weight  # 256 × 512
    assert float(w.detach().std()) == pytest.approx(weight_std(cfg, 512, 256), rel=0.01)


def test_the_stated_stds_are_torch_nn_inits_formulas():
    """PyTorch's own default, Xavier and He, written with their variances: 1/(3 d_in), 2/(d_in + d_out) and
    2/((1 + ω²) d_in); and nn.Linear's default really is the first (a layer built by nn.Linear itself)."""
    d_in, d_out = 300, 200
    assert weight_std(NetConfig(init="pytorch"), d_in, d_out) == pytest.approx(math.sqrt(1 / (3 * d_in)))
    assert weight_std(NetConfig(init="xavier"), d_in, d_out) == pytest.approx(math.sqrt(2 / (d_in + d_out)))
    assert weight_std(NetConfig(init="he", activation="relu"), d_in, d_out) == pytest.approx(math.sqrt(2 / d_in))
    assert weight_std(NetConfig(init="he", activation="leaky_relu", negative_slope=0.2), d_in, d_out) == \
        pytest.approx(math.sqrt(2 / ((1 + 0.2 ** 2) * d_in)))
    torch.manual_seed(0)
    layer = nn.Linear(d_in, 4000)
    assert float(layer.weight.detach().std()) == pytest.approx(math.sqrt(1 / (3 * d_in)), rel=0.01)
    assert float(layer.weight.detach().abs().max()) <= 1 / math.sqrt(d_in)


def test_orthogonal_layers_are_orthogonal_times_the_gain():
    w = build(NetConfig(init="orthogonal", gain=2.0, depth=3), seed=0, dtype=torch.float64).linears()[1].weight
    torch.testing.assert_close(w @ w.T, 4.0 * torch.eye(64, dtype=torch.float64), rtol=0, atol=1e-5)  # float32 draws


@pytest.mark.parametrize("bad, message", [
    (dict(depth=1), "at least 2"), (dict(activation="softplus"), "activation is one of"),
    (dict(init="lecun"), "init is one of"), (dict(norm="instance"), "norm is one of"),
    (dict(norm="group", groups=5), "must divide the width"),
    (dict(gain=0.0), "gain must be"), (dict(width=0), "at least one unit")])
def test_a_bad_config_says_what_is_wrong(bad, message):
    with pytest.raises(ValueError, match=message):
        NetConfig(**bad)


def test_every_combination_builds_and_runs():
    x = torch.randn(4, 64)
    for act in ACTIVATIONS:
        for norm in NORMS:
            for residual in (False, True):
                out = build(NetConfig(depth=3, activation=act, norm=norm, residual=residual))(x)
                assert out.shape == (4, 10) and bool(torch.isfinite(out).all())


def test_group_norm_in_the_mlp_is_torch_group_norm_over_each_examples_features():
    """norm="group" (Chapter 6): each hidden layer's features split into ``groups`` groups, each standardized per
    example; one group is layer normalization over the features."""
    import torch
    from torch import nn

    from gradlab.gradients.nets import NetConfig, build

    net = build(NetConfig(depth=3, width=8, norm="group", groups=2), seed=0)
    norms = [m for m in net.modules() if isinstance(m, nn.GroupNorm)]
    assert len(norms) == 2 and all(m.num_groups == 2 for m in norms)
    z = torch.randn(5, 8, generator=torch.Generator().manual_seed(0))
    one = nn.GroupNorm(1, 8)(z)
    torch.testing.assert_close(one, nn.LayerNorm(8)(z), rtol=1e-5, atol=1e-5)
