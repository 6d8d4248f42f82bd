"""Chapter 5's residual connections: a block's Jacobian is I + the branch's (checked against autograd and the
formula), the trunk's variance grows as the chapter derives, the backward product multiplies out into paths
that add up to autograd's gradient, and the claims the chapter makes about training, lesions and highway gates
hold at its own settings."""
import itertools
import math

import pytest
import torch

from gradlab.gradients.highway import HighwayConfig, HighwayLayer, build_highway, parameter_count
from gradlab.gradients.residual_training import (DepthTrainingConfig, LesionConfig, TrainConfig, depth_training,
                                                 forward_without, lesion, train)
from gradlab.gradients.nets import NetConfig, build
from gradlab.gradients.residual import (NETWORKS, BlockJacobianConfig, DepthProfileConfig, block_jacobian,
                                        block_jacobians, branch, depth_profile, path_counts,
                                        path_gradients, zero_branches)
from gradlab.batched_mlp import digits_split


# --- The Jacobian of one block ---

@pytest.mark.parametrize("norm", ["none", "layer"])
def test_a_residual_blocks_jacobian_is_the_identity_plus_its_branchs(norm):
    """∂h_l/∂h_(l−1) by torch.func.jacrev equals I + J_F, with J_F from torch.autograd.functional.jacobian."""
    cfg = BlockJacobianConfig(width=16, norm=norm, points=3)
    out = block_jacobian(cfg, seed=1)
    block = build(cfg.net(True), seed=1).blocks[0].eval()
    h = torch.randn(3, 16, generator=torch.Generator().manual_seed(1))
    for i in range(3):
        jf = torch.autograd.functional.jacobian(branch(block), h[i])
        torch.testing.assert_close(out.jacobian[i], torch.eye(16) + jf)
        torch.testing.assert_close(out.branch_jacobian[i], jf)


def test_the_jacobians_match_the_formulas_for_relu():
    """Without normalization, J_F = W diag(φ'(h)) and the plain block's Jacobian is diag(φ'(W h + b)) W."""
    cfg = BlockJacobianConfig(width=12, points=2)
    out = block_jacobian(cfg, seed=3)
    res, plain = build(cfg.net(True), seed=3).blocks[0], build(cfg.net(False), seed=3).blocks[0]
    w = res.linear.weight.detach()
    torch.testing.assert_close(w, plain.linear.weight.detach())  # one seed, one W: the comparison is fair
    h = torch.randn(2, 12, generator=torch.Generator().manual_seed(3))
    for i in range(2):
        jf = w * (h[i] > 0).float()  # W diag(φ'(h)): column j kept where h_j > 0
        torch.testing.assert_close(out.branch_jacobian[i], jf)
        jp = (plain.linear(h[i]) > 0).float()[:, None] * w
        torch.testing.assert_close(torch.linalg.svdvals(jp), out.plain[i])


def test_a_small_branch_clusters_the_singular_values_near_one():
    """Weyl's inequality: every singular value of I + J_F lies within ‖J_F‖ ≤ ‖W‖ of 1. At branch scale 0.1
    (He init, width 64) ‖W‖ < 0.3, so all lie in [0.7, 1.3], while the plain block with the same W has half
    of its singular values near 0 (ReLU switches off about half the units) and none above 0.3."""
    out = block_jacobian(BlockJacobianConfig(branch_scale=0.1))
    w = build(out.config.net(True)).blocks[0].linear.weight.detach()
    spread = torch.linalg.matrix_norm(w, ord=2).item()
    assert spread < 0.3
    assert out.residual.min() >= 1 - spread - 1e-5 and out.residual.max() <= 1 + spread + 1e-5
    assert out.plain.max() < 0.3 and (out.plain.median(1).values < 0.1).all()


def test_at_full_scale_the_residual_blocks_singular_values_straddle_one():
    """The chapter's default (He, branch scale 1): the residual block's median singular value is near 1, the
    plain block's far below it."""
    out = block_jacobian(BlockJacobianConfig())
    assert 0.8 < out.residual.median(1).values.mean() < 1.25
    assert out.plain.median(1).values.mean() < 0.5


def test_batch_norm_is_refused_for_one_examples_jacobian():
    with pytest.raises(ValueError, match="mixes the examples"):
        BlockJacobianConfig(norm="batch")
    with pytest.raises(ValueError, match="points"):
        BlockJacobianConfig(points=0)


# --- Plain against residual stacks at initialization ---

def _growth(std: torch.Tensor) -> float:
    """The geometric mean of std(h_l)/std(h_(l−1)) over the blocks."""
    return math.exp((std[-1].log() - std[0].log()).item() / (len(std) - 1))


def test_the_layers_come_in_order_from_input_to_output():
    model = build(NetConfig(d_in=64, width=32, d_out=10, depth=5, residual=True))
    shapes = [tuple(layer.weight.shape) for layer in model.linears()]
    assert shapes == [(32, 64), (32, 32), (32, 32), (32, 32), (10, 32)]


def test_without_normalization_the_residual_trunk_grows_exponentially():
    """Var(h_l) = Var(h_(l−1)) (1 + c), c = the branch's variance gain: He init gives c = 2 · 1/2 = 1 (std × √2
    per block), PyTorch's default U(±1/√d) gives c = d · 1/(3d) · 1/2 = 1/6 (std × √(7/6) = 1.080). At D = 100,
    the std of h_99 is above 1e12 and the initial loss above 1e10 under He: the forward pass explodes."""
    he = depth_profile(DepthProfileConfig(depth=100, init="he"))
    assert 1.3 < _growth(he.act_std[1]) < 1.5
    assert he.act_std[1, -1] > 1e12 and he.loss[1] > 1e10
    default = depth_profile(DepthProfileConfig(depth=100, init="pytorch"))
    assert 1.05 < _growth(default.act_std[1]) < 1.11


@pytest.mark.parametrize("norm", ["batch", "layer"])
def test_normalization_in_the_branch_makes_the_growth_linear(norm):
    """With N(h) normalized, each branch adds a variance of about 2 · E[relu(N)²] = 1 whatever the trunk's size:
    Var(h_l) ≈ Var(h_1) + (l − 1), so at D = 100 the std of h_99 is about √(1.35² + 98) ≈ 10 (within 25%)."""
    out = depth_profile(DepthProfileConfig(depth=100, init="he", norm=norm))
    var = out.act_std[1].double() ** 2
    slope = (var[-1] - var[0]).item() / (len(var) - 1)
    assert 0.75 < slope < 1.25
    assert 7.5 < out.act_std[1, -1] < 12.5


def test_zero_initialized_branches_make_every_block_the_identity():
    out = depth_profile(DepthProfileConfig(depth=50, init="he"))
    std = out.act_std[2]
    torch.testing.assert_close(std, std[0].expand_as(std))
    model = zero_branches(build(NetConfig(depth=6, residual=True)))
    x = digits_split(0).x_train[:8]
    torch.testing.assert_close(forward_without(model, x), forward_without(model, x, frozenset(range(4))))
    with pytest.raises(ValueError, match="only a residual network"):
        zero_branches(build(NetConfig(depth=4)))


def test_the_plain_stacks_gradient_vanishes_under_the_default_init_and_explodes_with_batch_norm():
    """Plain, PyTorch's default init: each layer scales the backward signal by about √(1/6) ≈ 0.41, so at
    D = 20 the input gradient is below 1e-6 (0.41^19 ≈ 4e-8); the residual one stays above 0.1. Plain with batch
    norm and He init: the input gradient grows with depth (above 1e5 at D = 100), the residual one stays below 10."""
    vanish = depth_profile(DepthProfileConfig(depth=20, init="pytorch"))
    assert vanish.input_grad[0] < 1e-6 and vanish.input_grad[1] > 0.1
    explode = [depth_profile(DepthProfileConfig(depth=d, init="he", norm="batch")).input_grad for d in (20, 100)]
    assert explode[1][0] > 1e5 and explode[1][0] > 100 * explode[0][0]
    assert explode[1][1] < 10


def test_the_profile_config_refuses_nonsense():
    with pytest.raises(ValueError, match="at least 2"):
        DepthProfileConfig(examples=1)
    with pytest.raises(ValueError, match="depth"):
        DepthProfileConfig(depth=1)
    with pytest.raises(ValueError, match="network is one of"):
        DepthProfileConfig().net("dense")


# --- Paths ---

def test_path_counts_are_binomial_and_add_up_to_two_to_the_blocks():
    c = path_counts(10)
    assert c.sum() == 2 ** 10 and c[5] == math.comb(10, 5) and c[0] == c[10] == 1


def test_the_paths_add_up_to_autograds_gradient():
    """Σ over path lengths of the summed terms is ∂ℓ_i/∂h_1, as autograd computes it through the whole network."""
    model = build(NetConfig(depth=8, width=16, init="he", norm="layer", residual=True), seed=2)
    split = digits_split(0)
    out = path_gradients(model, split.x_val[:5], split.y_val[:5])
    h1 = model.first(split.x_val[:5]).detach().requires_grad_(True)
    h = h1
    for block in model.blocks:
        h = block(h)
    torch.nn.functional.cross_entropy(model.head(h), split.y_val[:5], reduction="sum").backward()
    torch.testing.assert_close(out.by_length.sum(0), h1.grad, rtol=1e-4, atol=1e-6)
    assert out.full == pytest.approx(h1.grad.norm(dim=1).mean().item(), rel=1e-5)
    assert math.isfinite(out.per_path[3]) and out.counts.sum() == 2 ** 6


def test_grouping_by_length_matches_enumerating_every_path():
    """For three blocks, the 2³ subsets enumerated one by one give the same length-m sums."""
    model = build(NetConfig(depth=5, width=8, init="he", residual=True), seed=4)
    split = digits_split(0)
    x, y = split.x_val[:2], split.y_val[:2]
    out = path_gradients(model, x, y)
    trunk = [model.first(x).detach()]
    for block in model.blocks:
        trunk.append(block(trunk[-1]).detach())
    top = trunk[-1].clone().requires_grad_(True)
    torch.nn.functional.cross_entropy(model.head(top), y, reduction="sum").backward()
    jac = [block_jacobians(branch(b), h) for b, h in zip(model.blocks, trunk)]
    for m in range(4):
        want = torch.zeros_like(top)
        for subset in itertools.combinations(range(3), m):
            v = top.grad
            for i in sorted(subset, reverse=True):
                v = torch.einsum("ni,nij->nj", v, jac[i])
            want = want + v
        torch.testing.assert_close(out.by_length[m], want, rtol=1e-5, atol=1e-7)
    with pytest.raises(ValueError, match="residual network"):
        path_gradients(build(NetConfig(depth=4)), x, y)


# --- Training, lesions, highway ---

def test_training_is_repeatable_and_a_blow_up_is_caught():
    split = digits_split(0)
    cfg = NetConfig(depth=6, width=16, init="he")
    a, b = (train(build(cfg, seed=5), split, TrainConfig(epochs=2), seed=5) for _ in range(2))
    torch.testing.assert_close(a.val_loss, b.val_loss)
    assert a.val_loss[-1] < a.val_loss[0] and a.diverged_at is None
    wild = train(build(NetConfig(depth=10, width=16, init="large"), seed=0), split,
                 TrainConfig(epochs=2, lr=1e6, optimizer="momentum"), seed=0)
    assert wild.diverged_at is not None and math.isnan(wild.val_loss[-1])


def test_the_training_configs_refuse_nonsense():
    with pytest.raises(ValueError, match="learning rate"):
        TrainConfig(lr=0.0)
    with pytest.raises(ValueError, match="optimizer is one of"):
        TrainConfig(optimizer="LBFGS")
    with pytest.raises(ValueError, match="batch_size"):
        TrainConfig(batch_size=1)
    with pytest.raises(ValueError, match="one learning rate per kind"):
        DepthTrainingConfig(lrs=(1e-3,))
    with pytest.raises(ValueError, match="kind is one of"):
        LesionConfig(kind="dense")
    with pytest.raises(ValueError, match="depth ≥ 3"):
        LesionConfig(depth=2)
    with pytest.raises(ValueError, match="residual=False"):
        HighwayConfig(net=NetConfig(residual=True))
    with pytest.raises(ValueError, match="finite"):
        HighwayConfig(gate_bias=math.inf)
    with pytest.raises(ValueError, match="larger than"):
        train(build(NetConfig(depth=3, width=4)), digits_split(0), TrainConfig(batch_size=5000))


def test_deleting_blocks_passes_the_input_on():
    model = build(NetConfig(depth=6, width=16, residual=True), seed=1)
    x = digits_split(0).x_val[:4]
    torch.testing.assert_close(forward_without(model, x), model(x))
    torch.testing.assert_close(forward_without(model, x, frozenset(range(4))), model.head(model.first(x)))


def test_a_highway_layer_is_its_formula_and_its_limits():
    """y = H(x)·gate + x·(1 − gate); a gate bias of −50 makes it the identity, +50 makes it H."""
    for bias, want in ((-50.0, "x"), (50.0, "H")):
        model = build_highway(HighwayConfig(NetConfig(depth=4, width=8, init="he"), gate_bias=bias), seed=0)
        layer: HighwayLayer = model.blocks[0]
        x = torch.randn(3, 8, generator=torch.Generator().manual_seed(0))
        t = torch.sigmoid(layer.gate(x))
        torch.testing.assert_close(layer(x), layer.transform(x) * t + x * (1 - t))
        torch.testing.assert_close(layer(x), x if want == "x" else layer.transform(x))


def test_gates_double_the_weights():
    """A highway layer has H's d² + d parameters and its gate's d² + d: p = the residual net's + (D − 2)(d² + d)."""
    cfg = HighwayConfig(NetConfig(depth=20, width=64, init="he"))
    res = build(NetConfig(depth=20, width=64, init="he", residual=True))
    assert parameter_count(build_highway(cfg)) == parameter_count(res) + 18 * (64 * 64 + 64)


# --- The chapter's claims, at its settings (full mode) ---

@pytest.fixture
def full(monkeypatch):
    """The widgets' full-mode sizes, which the website shows and the chapter states."""
    monkeypatch.setenv("GRADLAB_FAST", "0")


def test_the_residual_depth_widget_shows_the_explosion_and_its_cures(full):
    """What to notice on ch05.residual_depth (He init): at D = 100 without normalization the residual trunk's std
    passes 1e12 while the zero-init one stays at std(h_1) and the plain one within [0.01, 10]; with batch norm the
    residual trunk ends near √99 ≈ 10 and its input gradient below 10, the plain one's above 1e5."""
    from gradlab.gradients.residual import depth_profile as profile
    from gradlab.widgets.gradients_paths import depth_config

    bare = profile(depth_config({"depth": 100, "init": "he", "norm": "none"}))
    assert bare.act_std[1, -1] > 1e12 and 0.01 < bare.act_std[0, -1] < 10
    torch.testing.assert_close(bare.act_std[2], bare.act_std[2, 0].expand(99))
    bn = profile(depth_config({"depth": 100, "init": "he", "norm": "batch"}))
    assert 7.5 < bn.act_std[1, -1] < 12.5 and bn.input_grad[1] < 10 and bn.input_grad[0] > 1e5


def test_with_batch_norm_the_residual_network_leads_from_the_first_epoch():
    """Against the cards' 'slower initial convergence, a warmup of 7–8 epochs' (C8eCl0aM, bftdpvaT, UUfdsLPv):
    with batch norm, at D = 20 the residual network's validation loss after one epoch is below half the plain
    one's (measured 0.63 against 4.14, seed 0); at D = 50, after three epochs it is below 0.3 (0.22; the card
    calls 0.67 normal at that point) while the plain one is above 1."""
    one = depth_training(DepthTrainingConfig(lrs=(1e-2, 3e-3), depths=(20,), norm="batch",
                                             train=TrainConfig(epochs=1), seeds=1))
    assert one.val_loss[1, 0, 0, 1] < 0.5 * one.val_loss[0, 0, 0, 1]
    three = depth_training(DepthTrainingConfig(lrs=(1e-2, 3e-3), depths=(50,), norm="batch",
                                               train=TrainConfig(epochs=3), seeds=1))
    assert three.val_loss[1, 0, 0, 3] < 0.3 and three.val_loss[0, 0, 0, 3] > 1


def test_at_depth_100_only_the_zero_init_residual_network_trains_without_normalization():
    """He init, no normalization, the chapter's η (plain 3e-3, zero-init residual 3e-4): after two epochs the
    zero-init residual network is above 0.85 validation accuracy (0.915), the plain one at chance (< 0.15)."""
    out = depth_training(DepthTrainingConfig(kinds=(NETWORKS[0], NETWORKS[2]), lrs=(3e-3, 3e-4), depths=(100,),
                                             train=TrainConfig(epochs=2), seeds=1))
    assert out.val_acc[1, 0, 0, -1] > 0.85 and out.val_acc[0, 0, 0, -1] < 0.15


def test_deleting_one_layer_breaks_a_plain_network_but_not_a_residual_one(full):
    """ch05.lesion at D = 20, no normalization: deleting any one hidden layer of the zero-init residual network
    costs at most 0.02 of its validation accuracy (0.959 intact); the plain network (0.92 intact) falls to a
    mean of 0.15 over the single deletions (below 0.3), and 0.32 at best (below 0.45). The widget's default,
    residual with batch norm: 0.970 intact, 0.958 on average with one layer deleted, 0.879 at worst (layer 2)."""
    from gradlab.widgets.gradients_paths import lesion_config

    res = lesion(lesion_config({"network": NETWORKS[2], "norm": "none", "depth": 20}))
    assert res.base > 0.9 and (res.single > res.base - 0.02).all()
    plain = lesion(lesion_config({"network": "plain", "norm": "none", "depth": 20}))
    assert plain.base > 0.85 and plain.single.mean() < 0.3 and plain.single.max() < 0.45
    assert res.multi[-1].mean() < 0.5  # all of them deleted: only the input and output layers remain
    bn = lesion(lesion_config({"network": "residual", "norm": "batch", "depth": 20}))  # the widget's default
    assert bn.base > 0.95 and bn.single.mean() > bn.base - 0.03 and bn.single.min() > 0.8  # 0.970, 0.958, 0.879


def test_a_deep_highway_network_needs_a_negative_gate_bias_and_its_gates_stay_mostly_closed(full):
    """ch05.highway at D = 30 (8 epochs, η = 1e-3): with the gate bias at −3 the network reaches 0.85 validation
    accuracy and every layer's mean gate stays below 0.25 after training (at 0.047 ≈ sigmoid(−3) at first);
    with the bias at 0 the carry (1 − gate ≈ 1/2) halves the signal each layer and it stays below 0.6."""
    from gradlab.widgets.gradients_paths import highway_config

    split = digits_split(0)
    accs = {}
    for bias in (-3.0, 0.0):
        cfg, training = highway_config({"depth": 30, "gate_bias": bias})
        model = build_highway(cfg, seed=0)
        accs[bias] = train(model, split, training, seed=0).val_acc[-1]
        if bias == -3.0:
            assert (model.gate_values(split.x_val).mean((1, 2)) < 0.25).all()
    assert accs[-3.0] > 0.85 and accs[0.0] < 0.6


def test_a_trained_residual_networks_gradient_comes_from_short_paths():
    """Veit et al.'s Figure 6 on the digits: a residual MLP with batch norm, D = 50, trained 3 epochs (η = 3e-3).
    Paths through at most 8 of the 48 branches are fewer than 1e-5 of the 2^48, yet carry over 90% of the summed
    norm of ∂ℓ/∂h_1 grouped by length (measured 97.7%); one path's term shrinks by over 100× from length 1 to 10."""
    split = digits_split(0)
    model = build(NetConfig(depth=50, init="he", norm="batch", residual=True), seed=0)
    train(model, split, TrainConfig(epochs=3, lr=3e-3), seed=0)
    out = path_gradients(model, split.x_val[:32], split.y_val[:32])
    share = out.total / out.total.sum()
    assert out.counts[:9].sum() / out.counts.sum() < 1e-5
    assert share[:9].sum() > 0.9
    assert out.per_path[10] < out.per_path[1] / 100
