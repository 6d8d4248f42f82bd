"""Chapter 6, Experiment 5 (gradlab.normalization.train_eval): training mode against evaluation mode in batch norm."""
import functools

import pytest
import torch
from torch import nn

from gradlab.batched_mlp import digits_split
from gradlab.normalization.convnet import CONV_NORMS, ConvNetConfig, batch_norms, build_convnet, images
from gradlab.normalization.train_eval import (CouplingConfig, EvalModeConfig, coupling, eval_mode_study,
                                              momentum_sweep, recalibrate, running_update)
from gradlab.seeding import generator

SMALL = dict(channels=4, epochs=1)


@functools.lru_cache(maxsize=None)
def study(**kw):
    return eval_mode_study(EvalModeConfig(**{**SMALL, **kw}))


def test_configs_reject_nonsense():
    for kw, text in ((dict(momentum=0.0), "ψ"), (dict(momentum=2.0), "ψ"), (dict(batch_size=1), "at least 2"),
                     (dict(epochs=0), "epochs"), (dict(lr=-1.0), "learning rate"), (dict(test_batches=(0,)), "≥ 1")):
        with pytest.raises(ValueError, match=text):
            EvalModeConfig(**kw)
    for kw, text in ((dict(batch=1), "at least 2"), (dict(changed=8), "changed"), (dict(size=-1.0), "≥ 0"),
                     (dict(norm="weight"), "norm")):
        with pytest.raises(ValueError, match=text):
            CouplingConfig(**kw)


@pytest.mark.parametrize("psi", [0.1, 0.5, 1.0])
def test_running_statistics_update_with_the_unbiased_variance_normalization_with_the_biased(psi):
    """running ← (1 − ψ)·running + ψ·batch from 0 and 1; the variance there is n/(n − 1) times the biased one."""
    x = torch.randn(4, 3, 8, 8, generator=generator(2)) * 2 + 1
    u = running_update(x, momentum=psi)
    assert u.n == 4 * 64
    torch.testing.assert_close(u.running_mean, psi * u.mean)
    torch.testing.assert_close(u.running_var, (1 - psi) + psi * u.var_unbiased)
    torch.testing.assert_close(u.var_unbiased, u.var_biased * u.n / (u.n - 1))
    assert float((u.running_var - ((1 - psi) + psi * u.var_biased)).abs().min()) > 1e-4
    assert u.out_error_biased < 1e-5 < u.out_error_unbiased


def test_momentum_none_is_the_plain_average_of_the_batches():
    bn = nn.BatchNorm2d(3, momentum=None).train()
    batches = [torch.randn(2, 3, 4, 4, generator=generator(k)) + k for k in range(5)]
    for b in batches:
        bn(b)
    torch.testing.assert_close(bn.running_mean, torch.stack([b.mean(dim=(0, 2, 3)) for b in batches]).mean(0))
    torch.testing.assert_close(bn.running_var, torch.stack([b.var(dim=(0, 2, 3)) for b in batches]).mean(0))


def test_recalibration_on_one_batch_sets_the_first_layer_to_its_exact_statistics():
    model = build_convnet(ConvNetConfig(momentum=0.01))
    x = images(digits_split(0).x_train)
    recalibrate(model, x, batch_size=len(x))
    first = batch_norms(model)[0]
    with torch.no_grad():
        h = model.features[0](x)
    torch.testing.assert_close(first.running_mean, h.mean(dim=(0, 2, 3)), atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(first.running_var, h.var(dim=(0, 2, 3)), atol=1e-5, rtol=1e-4)
    assert first.momentum == 0.01 and not model.training


def test_evaluating_in_train_mode_moves_the_running_statistics():
    assert study().drift > 1e-3


def test_forgotten_eval_results_are_accuracies_and_one_digit_batches_hurt():
    r = study()
    assert r.train_acc.shape == (len(r.config.test_batches),)
    assert torch.all((r.train_per_class >= 0) & (r.train_per_class <= 1))
    assert r.single_class_acc < r.eval_acc  # batch statistics of one class describe that class only


def test_psi_changes_only_the_running_statistics_not_the_training():
    s = momentum_sweep((0.001, 0.1, 1.0), EvalModeConfig(batch_size=16, **SMALL))
    assert torch.equal(s.train_mode_acc, s.train_mode_acc[:1].expand(3))  # the same weights for every ψ
    assert torch.equal(s.recalibrated_acc, s.recalibrated_acc[:1].expand(3))
    assert float(s.eval_acc[0]) < float(s.eval_acc[1]) - 0.05  # ψ = 0.001: the running statistics lag


@pytest.mark.parametrize("norm", CONV_NORMS)
def test_only_batch_norm_in_train_mode_couples_the_examples_of_a_batch(norm):
    r = coupling(CouplingConfig(norm=norm, changed=3, size=1.0))
    assert float(r.train_change[3]) > 1e-3 and float(r.eval_change[3]) > 1e-3  # the changed one moves
    assert float(r.others("eval").max()) < 1e-6
    if norm == "batch":
        assert float(r.others("train").min()) > 1e-4
    else:
        assert float(r.others("train").max()) < 1e-6


def test_no_change_moves_nothing():
    r = coupling(CouplingConfig(norm="batch", size=0.0))
    assert float(r.train_change.max()) == 0.0 and float(r.eval_change.max()) == 0.0


def test_chapter_claims_a_forgotten_eval_at_the_chapters_settings():
    """EvalModeConfig(): ψ = 0.1, B = 32, 4 epochs of Adam at η = 0.01, seed 0 (measured 97.6% in eval mode, 94.1%
    in train mode one image at a time, 93.5% one digit per batch, the 8s at 72%; 98.0% recalibrated)."""
    r = eval_mode_study(EvalModeConfig())
    one = r.config.test_batches.index(1)
    assert r.eval_acc > 0.96
    assert float(r.train_acc[one]) < r.eval_acc - 0.02
    assert r.single_class_acc < r.eval_acc - 0.02
    assert float(r.single_class_per_class[8]) < float(r.eval_per_class[8]) - 0.15
    assert r.recalibrated_acc > r.eval_acc - 0.005


def test_chapter_claims_a_tiny_psi_lags_and_recalibration_repairs_it():
    """momentum_sweep() at EvalModeConfig()'s training (the widget's): ψ = 0.001 measured 87.6% against 97.6% at
    ψ = 0.1; recalibrated 98.0% for every ψ."""
    s = momentum_sweep()
    i, j = s.psis.index(0.001), s.psis.index(0.1)
    assert float(s.eval_acc[i]) < float(s.eval_acc[j]) - 0.08
    assert float(s.recalibrated_acc[i]) > float(s.eval_acc[i]) + 0.08
