"""Adam's second moment against the Hessian diagonal (Chapter 3, Q42), each fact derived, then measured."""
import math

import pytest
import torch

from gradlab.data import LogisticTask, logistic_task, minimize
from gradlab.second_moment import SecondMomentConfig, hessian_diagonal, second_moment_vs_hessian

CFG = SecondMomentConfig(steps=300, batches=(16, 128))


@pytest.fixture(scope="module")
def result():
    return second_moment_vs_hessian(CFG)


def test_hessian_diagonal_formula_matches_autograd():
    task = logistic_task(l2=0.01)
    task = LogisticTask(task.features.double(), task.labels.double(), 0.01)
    w, _ = minimize(task)
    full = torch.autograd.functional.hessian(task.loss, w)
    torch.testing.assert_close(hessian_diagonal(task, w), torch.diagonal(full), rtol=1e-10, atol=1e-12)


def test_full_batch_second_moment_vanishes_where_curvature_does_not(result):
    # at w* the full gradient is zero, so the squared-gradient average is too; the curvature is ≥ l2
    assert float(result.hessian_diag.min()) >= CFG.l2
    assert float(result.sqrt_v_full.max()) < 1e-2 * float(result.hessian_diag.min())


@pytest.mark.parametrize("batch", CFG.batches)
def test_minibatch_second_moment_is_the_gradient_noise(result, batch):
    # at w*, E[g_B²] = Var(g_i)/B per coordinate (with replacement); v̂ averages ~1/(1 − β2) of them
    ratio = result.sqrt_v_batch[batch] / result.noise_rms[batch]
    assert abs(float(ratio.median()) - 1) < 0.15


def test_second_moment_shrinks_with_the_batch_curvature_does_not(result):
    ratio = float((result.sqrt_v_batch[16] / result.sqrt_v_batch[128]).median())
    assert ratio == pytest.approx(math.sqrt(128 / 16), rel=0.25)


def test_both_scale_with_the_loss():
    a = second_moment_vs_hessian(SecondMomentConfig(steps=50, batches=(32,)))
    b = second_moment_vs_hessian(SecondMomentConfig(steps=50, batches=(32,), loss_scale=10.0))
    torch.testing.assert_close(b.hessian_diag, 10 * a.hessian_diag)
    # same batches, and Adam's steps do not depend on the loss's scale (up to ε), so √v̂ scales by 10
    torch.testing.assert_close(b.sqrt_v_batch[32], 10 * a.sqrt_v_batch[32], rtol=1e-3, atol=0)
