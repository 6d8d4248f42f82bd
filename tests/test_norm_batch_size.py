"""Chapter 6, Experiment 4 (gradlab.normalization.batch_size): normalizations at small and large batch sizes, and
batch norm with a batch of one."""
import math

import pytest
import torch
from torch import nn

from gradlab.normalization.batch_size import (BatchSizeConfig, batch_of_one, batch_size_run, batch_size_sweep)
from gradlab.normalization.convnet import ConvNet, ConvNetConfig, build_convnet, images
from gradlab.batched_mlp import digits_split

SMALL = dict(channels=4, groups=2, epochs=1, train_examples=128)


def test_config_rejects_nonsense():
    for kw, text in ((dict(batch_size=1), "at least 2"), (dict(epochs=0), "epochs"), (dict(lr=0.0), "learning rate"),
                     (dict(lr=math.inf), "learning rate"), (dict(lr_rule="cubic"), "lr_rule"),
                     (dict(optimizer="lbfgs"), "optimizer"), (dict(train_examples=8, batch_size=16), "at least B"),
                     (dict(norm="group", groups=5), "groups must divide"), (dict(norm="weight"), "norm"),
                     (dict(arch="rnn"), "arch"), (dict(arch="mlp", norm="instance"), "no instance norm")):
        with pytest.raises(ValueError, match=text):
            BatchSizeConfig(**kw)


def test_learning_rate_scales_with_the_batch_size_from_b_32():
    assert BatchSizeConfig(batch_size=128, lr=0.01, lr_rule="linear").scaled_lr() == pytest.approx(0.04)
    assert BatchSizeConfig(batch_size=128, lr=0.01, lr_rule="sqrt").scaled_lr() == pytest.approx(0.02)
    assert BatchSizeConfig(batch_size=2, lr=0.01, lr_rule="sqrt").scaled_lr() == pytest.approx(0.0025)


def test_batch_norm_1d_refuses_a_batch_of_one_and_2d_becomes_instance_norm():
    r = batch_of_one()
    assert "Expected more than 1 value per channel when training" in r.bn1d_error
    assert r.bn2d_vs_instance < 1e-5


def test_a_trained_batch_norm_network_on_one_image_in_train_mode_is_the_instance_norm_network():
    """Same weights, batch norm in train mode on a batch of one = instance norm (scale and shift kept)."""
    bn_net = build_convnet(ConvNetConfig(norm="batch"), seed=3)
    with torch.no_grad():
        for p in bn_net.parameters():
            p.add_(0.1 * torch.randn(p.shape, generator=torch.Generator().manual_seed(p.numel())))
    in_net = ConvNet(ConvNetConfig(norm="instance"))
    in_net.load_state_dict({k: v for k, v in bn_net.state_dict().items()
                            if "running" not in k and "num_batches" not in k})
    x = images(digits_split(0).x_val[:1])
    with torch.no_grad():
        torch.testing.assert_close(bn_net.train()(x), in_net.eval()(x), atol=1e-5, rtol=1e-5)
        assert float((bn_net.eval()(x) - in_net(x)).abs().max()) > 1e-3  # with running statistics it is not


def test_without_batch_norm_both_evaluation_modes_agree_exactly():
    for norm in ("group", "layer", "none"):
        r = batch_size_run(BatchSizeConfig(norm=norm, batch_size=4, **SMALL))
        torch.testing.assert_close(r.val_loss_eval, r.val_loss_train, atol=1e-6, rtol=1e-6)
        assert r.diverged_at is None


def test_batch_norm_evaluated_on_batches_of_two_differs_from_eval_mode():
    r = batch_size_run(BatchSizeConfig(norm="batch", batch_size=2, **SMALL))
    assert abs(r.gap) > 1e-3
    assert r.train_loss[-1] < r.train_loss[0]


def test_a_huge_learning_rate_is_reported_as_diverged():
    r = batch_size_run(BatchSizeConfig(norm="none", batch_size=16, lr=1e12, optimizer="sgd", **SMALL))
    assert r.diverged_at is not None
    assert math.isnan(float(r.val_acc_eval[-1]))


def test_sweep_has_one_entry_per_norm_batch_and_seed():
    s = batch_size_sweep(norms=("batch", "none"), batch_sizes=(4, 16), seeds=(0,),
                         base=BatchSizeConfig(**SMALL))
    assert s.acc_eval.shape == (2, 2, 1)
    assert torch.all((s.acc_eval >= 0) & (s.acc_eval <= 1))
    assert float(s.gap[1].abs().max()) < 1e-5


def test_in_the_mlp_batch_norm_at_b_2_falls_far_behind_layer_norm_and_its_modes_disagree():
    """Batch norm 1d's statistics at B = 2 come from two values per feature (the CNN's from 2 × 64)."""
    kw = dict(arch="mlp", batch_size=2, train_examples=200, epochs=2)
    bn, ln = (batch_size_run(BatchSizeConfig(norm=n, **kw)) for n in ("batch", "layer"))
    assert float(bn.val_acc_eval[-1]) < float(ln.val_acc_eval[-1]) - 0.2  # 43% against 84%
    assert bn.gap > 0.05 and float(bn.val_acc_train[-1]) < float(bn.val_acc_eval[-1]) - 0.05  # 26% in train mode
