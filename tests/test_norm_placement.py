"""Chapter 6, Experiment 6: batch norm before/after the ReLU, the redundant bias before BN, and the original
against the pre-activation residual block (gradlab.normalization.placement)."""
import math

import pytest
import torch
import torch.nn.functional as F

from gradlab.gradients.residual_training import TrainConfig
from gradlab.normalization.placement import (OriginalBlock, PlacementConfig, PreActBlock, ResidualOrderConfig,
                                             bias_check, init_profile, placement, placement_net, residual_net,
                                             residual_order)


def test_bias_before_batch_norm_cancels_in_train_mode_and_is_absorbed_in_eval_mode():
    r = bias_check(seed=0)
    # BN subtracts the batch mean c_𝓑, which contains b: y(b + Δ) = y(b) up to float32 rounding of O(1) outputs.
    assert r.train_output_change < 1e-4
    assert r.bias_grad < 1e-6 < 1e-3 < r.weight_grad  # ∂𝓛/∂b = 0 up to rounding, while W's gradient is not
    # Eval mode uses the running mean; fresh (0) it does not remove Δ, whose largest entry is > shift / 2 here.
    assert r.eval_change_fresh > r.shift / 2
    # After 200 passes with ψ = 0.1 the running mean holds b + Δ up to 0.9^200 · Δ: the change is gone.
    assert r.eval_change_caught_up < 1e-3


def test_placement_nets_share_weights_and_put_bn_where_named():
    x = torch.randn(32, 64, generator=torch.Generator().manual_seed(1))
    before, after, none = (placement_net(p, depth=4, seed=3) for p in ("before", "after", "none"))
    for a, b in zip(before.linears(), after.linears()):
        assert torch.equal(a.weight, b.weight)
    for a, b in zip(before.linears(), none.linears()):
        assert torch.equal(a.weight, b.weight)
    lin = after.linears()
    h = x
    for layer in lin[:-1]:  # Linear → ReLU → BN, with fresh BN (scale 1, shift 0): batch statistics
        z = F.relu(layer(h))
        h = (z - z.mean(0)) / torch.sqrt(z.var(0, unbiased=False) + 1e-5)
    torch.testing.assert_close(after.train()(x), lin[-1](h), atol=1e-4, rtol=1e-4)
    out = before.first(x)  # Linear → BN → ReLU: non-negative, and each unit's pre-activation was centred
    assert out.min() >= 0 and float((out > 0).float().mean()) == pytest.approx(0.5, abs=0.1)


def test_block_formulas():
    g = torch.Generator().manual_seed(0)
    h = torch.randn(64, 16, generator=g)
    orig, pre = residual_net("original", 1, 16, seed=0).blocks[0], residual_net("preact", 1, 16, seed=0).blocks[0]
    assert isinstance(orig, OriginalBlock) and isinstance(pre, PreActBlock)

    def bn(z):
        return (z - z.mean(0)) / torch.sqrt(z.var(0, unbiased=False) + 1e-5)

    expect_orig = F.relu(h + bn(orig.w2(F.relu(bn(orig.w1(h))))))
    expect_pre = h + pre.w2(F.relu(bn(pre.w1(F.relu(bn(h))))))
    torch.testing.assert_close(orig(h), expect_orig, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(pre(h), expect_pre, atol=1e-5, rtol=1e-5)
    assert orig(h).min() >= 0 and pre(h).min() < 0  # ReLU after the addition, or nothing after it
    assert all(m.bias is None for m in (orig.w1, orig.w2, pre.w1, pre.w2))  # no bias before a BN


@pytest.mark.parametrize("seed", [0, 1])
def test_gradient_grows_more_through_original_blocks_at_initialization(seed):
    p = init_profile(blocks=30, seed=seed)
    growth = p.grad_norm[:, 0] / p.grad_norm[:, -1]  # original, preact: first block's ‖∂𝓛/∂h‖ over the last's
    assert growth[0] > 2 * growth[1] > 2  # measured ≈ 50× against ≈ 14× at seed 0
    # Each block adds a branch of about unit variance to the trunk, in both arrangements: the scale grows.
    assert (p.act_std[:, -1] > 2 * p.act_std[:, 0]).all()
    assert ((p.act_std[:, 1:] - p.act_std[:, :-1]) > 0).float().mean() > 0.9


def test_original_trunk_starts_far_above_ln_c_unless_the_read_out_is_zero():
    x, y = torch.randn(256, 64, generator=torch.Generator().manual_seed(0)), torch.arange(256) % 10
    with torch.no_grad():
        loss = {(a, z): float(F.cross_entropy(residual_net(a, 10, seed=0, zero_head=z).train()(x), y))
                for a in ("original", "preact") for z in (False, True)}
    assert loss["original", False] > 2 * math.log(10)  # unnormalized trunk of std ≈ 2 into a He read-out
    assert loss["preact", False] < 1.6 * math.log(10)  # its head normalizes the trunk (BN → ReLU → Linear)
    assert loss["original", True] == pytest.approx(math.log(10), abs=1e-5)
    assert loss["preact", True] == pytest.approx(math.log(10), abs=1e-5)


def test_with_a_he_read_out_preactivation_is_ahead_after_three_epochs_at_ten_blocks():
    r = residual_order(ResidualOrderConfig(blocks=(10,), seeds=1, train=TrainConfig(epochs=3, lr=1e-3)))
    assert r.diverged_at is None
    assert float(r.val_loss[1, 0, 0, -1]) < 0.8 * float(r.val_loss[0, 0, 0, -1])


def test_bn_before_relu_beats_after_at_small_learning_rate():
    # The chapter's setting (D = 10, width 64, Adam, 8 epochs), η = 1e-3, two seeds: val loss ≈ 0.46 against 0.64.
    r = placement(PlacementConfig(positions=("before", "after"), lrs=(1e-3,), seeds=2))
    final = r.final("val_loss").mean(-1)[:, 0]
    assert float(final[0]) < float(final[1]) - 0.05


@pytest.mark.parametrize("make, match", [
    (lambda: PlacementConfig(positions=("middle",)), "position"),
    (lambda: PlacementConfig(lrs=(-1.0,)), "learning rate"),
    (lambda: PlacementConfig(depth=1), "depth"),
    (lambda: PlacementConfig(seeds=0), "seed"),
    (lambda: ResidualOrderConfig(blocks=(0,)), "blocks"),
    (lambda: ResidualOrderConfig(arrangements=("post",)), "arrangement"),
    (lambda: placement_net("middle"), "position"),
    (lambda: residual_net("post", 3), "arrangement"),
    (lambda: init_profile(blocks=0), "block"),
])
def test_configs_reject_nonsense(make, match):
    with pytest.raises(ValueError, match=match):
        make()
