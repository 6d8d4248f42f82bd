"""Chapter 6's from-scratch normalizations (gradlab.normalization.scratch) against torch.nn: forward and
backward, training and evaluation mode, running statistics included. In float64 both sides compute the
same sums in a slightly different order, so they agree to rounding (1e-10 is a million times looser)."""
import pytest
import torch
from torch import nn

from gradlab.normalization.scratch import (RunningStats, batch_norm, batch_norm_backward, group_norm,
                                           instance_norm, layer_norm)

TOL = dict(rtol=1e-10, atol=1e-10)
DT = torch.float64


def data(*shape, seed=0):
    g = torch.Generator().manual_seed(seed)
    # a non-zero mean and non-unit spread per channel, so that normalizing changes something
    z = torch.randn(*shape, generator=g, dtype=DT) * 3.0 + 2.0
    return z.requires_grad_(True)


def affine(channels, seed=1):
    g = torch.Generator().manual_seed(seed)
    scale = (1 + 0.5 * torch.randn(channels, generator=g, dtype=DT)).requires_grad_(True)
    shift = (0.5 * torch.randn(channels, generator=g, dtype=DT)).requires_grad_(True)
    return scale, shift


def load(module, scale, shift):
    with torch.no_grad():
        module.weight.copy_(scale.reshape(module.weight.shape))
        module.bias.copy_(shift.reshape(module.bias.shape))
    return module


def backward_both(ours, theirs, inputs_ours, inputs_theirs, seed=2):
    """The gradients of the same random linear function of both outputs, with respect to each input."""
    g = torch.Generator().manual_seed(seed)
    probe = torch.randn(ours.shape, generator=g, dtype=DT)
    go = torch.autograd.grad((ours * probe).sum(), inputs_ours)
    gt = torch.autograd.grad((theirs * probe).sum(), inputs_theirs)
    return go, gt


@pytest.mark.parametrize("shape", [(16, 5), (8, 4, 3, 3)], ids=["BatchNorm1d", "BatchNorm2d"])
@pytest.mark.parametrize("momentum", [0.1, 0.5, None])
def test_batch_norm_matches_torch_over_several_steps_then_in_eval_mode(shape, momentum):
    channels = shape[1]
    torch_bn = (nn.BatchNorm1d if len(shape) == 2 else nn.BatchNorm2d)(channels, momentum=momentum).to(DT)
    scale, shift = affine(channels)
    load(torch_bn, scale, shift)
    stats = RunningStats.fresh(channels, DT)
    for step in range(4):
        z = data(*shape, seed=10 + step)
        z_t = z.detach().clone().requires_grad_(True)
        y, stats = batch_norm(z, scale, shift, stats, training=True, momentum=momentum)
        y_t = torch_bn.train()(z_t)
        torch.testing.assert_close(y, y_t, **TOL)
        torch.testing.assert_close(stats.mean, torch_bn.running_mean, **TOL)
        torch.testing.assert_close(stats.var, torch_bn.running_var, **TOL)
        go, gt = backward_both(y, y_t, (z, scale, shift), (z_t, torch_bn.weight, torch_bn.bias), seed=step)
        for a, b in zip(go, gt):
            torch.testing.assert_close(a, b, **TOL)
    assert stats.batches == int(torch_bn.num_batches_tracked) == 4
    z = data(*shape, seed=99)
    z_t = z.detach().clone().requires_grad_(True)
    y, after = batch_norm(z, scale, shift, stats, training=False)
    y_t = torch_bn.eval()(z_t)
    torch.testing.assert_close(y, y_t, **TOL)
    assert after is stats  # evaluation leaves the running statistics alone
    go, gt = backward_both(y, y_t, (z, scale, shift), (z_t, torch_bn.weight, torch_bn.bias))
    for a, b in zip(go, gt):
        torch.testing.assert_close(a, b, **TOL)


def test_the_running_variance_is_unbiased_and_the_normalizing_one_is_not():
    """PyTorch normalizes with the batch variance divided by n but keeps n/(n − 1) times it as running_var."""
    z = data(4, 3)
    n = z.shape[0]
    _, stats = batch_norm(z, None, None, RunningStats.fresh(3, DT), training=True, momentum=1.0)
    biased = z.detach().var(dim=0, unbiased=False)
    torch.testing.assert_close(stats.var, biased * n / (n - 1), **TOL)
    y, _ = batch_norm(z, None, None, RunningStats.fresh(3, DT), training=True)
    torch.testing.assert_close(y.detach().var(dim=0, unbiased=False), biased / (biased + 1e-5), **TOL)


def test_the_closed_form_backward_pass_matches_autograd():
    z = data(32, 6)
    scale, shift = affine(6)
    y, _ = batch_norm(z, scale, shift, RunningStats.fresh(6, DT), training=True)
    grad_y = torch.randn(y.shape, generator=torch.Generator().manual_seed(3), dtype=DT)
    auto = torch.autograd.grad(y, (z, scale, shift), grad_y)
    zd = z.detach()
    var = zd.var(dim=0, unbiased=False)
    inv_std = 1 / torch.sqrt(var + 1e-5)
    ours = batch_norm_backward(grad_y, (zd - zd.mean(dim=0)) * inv_std, inv_std, scale.detach())
    for a, b in zip(ours, auto):
        torch.testing.assert_close(a, b, **TOL)
    # the two correction terms matter: the naive scale · ∂𝓛/∂y / √(σ² + ε) is far off
    naive = grad_y * scale.detach() * inv_std
    assert float((naive - auto[0]).abs().max()) > 0.1


@pytest.mark.parametrize("shape,dims", [((6, 10), 1), ((4, 5, 7), 1), ((3, 4, 5, 5), 3)])
def test_layer_norm_matches_torch(shape, dims):
    z = data(*shape)
    norm_shape = shape[-dims:]
    g = torch.Generator().manual_seed(4)
    scale = (1 + torch.randn(norm_shape, generator=g, dtype=DT)).requires_grad_(True)
    shift = torch.randn(norm_shape, generator=g, dtype=DT).requires_grad_(True)
    ln = load(nn.LayerNorm(norm_shape).to(DT), scale, shift)
    z_t = z.detach().clone().requires_grad_(True)
    y, y_t = layer_norm(z, dims, scale, shift), ln(z_t)
    torch.testing.assert_close(y, y_t, **TOL)
    go, gt = backward_both(y, y_t, (z, scale, shift), (z_t, ln.weight, ln.bias))
    for a, b in zip(go, gt):
        torch.testing.assert_close(a, b, **TOL)


@pytest.mark.parametrize("groups", [1, 2, 4, 8])
@pytest.mark.parametrize("shape", [(5, 8), (3, 8, 4, 4)], ids=["features", "images"])
def test_group_norm_matches_torch(groups, shape):
    z = data(*shape)
    scale, shift = affine(8)
    gn = load(nn.GroupNorm(groups, 8).to(DT), scale, shift)
    z_t = z.detach().clone().requires_grad_(True)
    y, y_t = group_norm(z, groups, scale, shift), gn(z_t)
    torch.testing.assert_close(y, y_t, **TOL)
    go, gt = backward_both(y, y_t, (z, scale, shift), (z_t, gn.weight, gn.bias))
    for a, b in zip(go, gt):
        torch.testing.assert_close(a, b, **TOL)


def test_instance_norm_matches_torch_with_and_without_its_affine():
    z = data(3, 4, 5, 5)
    z_t = z.detach().clone().requires_grad_(True)
    torch.testing.assert_close(instance_norm(z), nn.InstanceNorm2d(4).to(DT)(z_t), **TOL)
    scale, shift = affine(4)
    inorm = load(nn.InstanceNorm2d(4, affine=True).to(DT), scale, shift)
    y, y_t = instance_norm(z, scale, shift), inorm(z_t)
    torch.testing.assert_close(y, y_t, **TOL)
    go, gt = backward_both(y, y_t, (z, scale, shift), (z_t, inorm.weight, inorm.bias))
    for a, b in zip(go, gt):
        torch.testing.assert_close(a, b, **TOL)


def test_one_group_is_layer_norm_and_one_channel_per_group_is_instance_norm():
    z = data(3, 6, 4, 4).detach()
    torch.testing.assert_close(group_norm(z, 1), layer_norm(z, 3), **TOL)
    torch.testing.assert_close(group_norm(z, 6), instance_norm(z), **TOL)


def test_batch_norm_of_one_image_in_training_mode_is_instance_norm():
    """One image still has positions to average over, so BatchNorm2d trains on it: as instance normalization."""
    z = data(1, 4, 5, 5).detach()
    y, _ = batch_norm(z, None, None, RunningStats.fresh(4, DT), training=True)
    torch.testing.assert_close(y, instance_norm(z), **TOL)


def test_epsilon_keeps_a_constant_channel_finite():
    """A channel that is constant over the batch has σ² = 0: ε turns 0/0 into 0 (PyTorch's too)."""
    z = torch.ones(8, 3, dtype=DT)
    y, _ = batch_norm(z, None, None, RunningStats.fresh(3, DT), training=True)
    assert torch.equal(y, torch.zeros_like(y))
    y0, _ = batch_norm(z, None, None, RunningStats.fresh(3, DT), training=True, eps=0.0)
    assert torch.isnan(y0).all()
    with pytest.raises(ValueError, match="eps must be positive"):  # PyTorch refuses ε = 0 in training
        nn.BatchNorm1d(3, eps=0.0).to(DT)(z)


def test_scale_and_shift_can_undo_the_normalization():
    """With scale = √(σ² + ε) and shift = c, batch normalization returns its input: normalizing costs the network
    nothing it could not learn back."""
    z = data(64, 5).detach()
    c, var = z.mean(dim=0), z.var(dim=0, unbiased=False)
    y, _ = batch_norm(z, torch.sqrt(var + 1e-5), c, RunningStats.fresh(5, DT), training=True)
    torch.testing.assert_close(y, z, **TOL)


def test_bad_input_gets_a_sentence():
    with pytest.raises(ValueError, match="more than one value per channel"):
        batch_norm(torch.ones(1, 3), None, None, RunningStats.fresh(3), training=True)
    with pytest.raises(ValueError, match="more than 1 value per channel"):  # as PyTorch refuses it
        nn.BatchNorm1d(3).train()(torch.ones(1, 3))
    with pytest.raises(ValueError, match="must divide"):
        group_norm(torch.ones(2, 6, 3), 4)
    with pytest.raises(ValueError, match="positions"):
        instance_norm(torch.ones(2, 6))
    with pytest.raises(ValueError, match="trailing dimensions"):
        layer_norm(torch.ones(2, 6), 3)
