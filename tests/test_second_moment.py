"""Adam's second moment against the Hessian diagonal (Chapter 3, Q42), each fact derived, then measured."""
import dataclasses
import math

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch

from gradlab.data import LogisticTask, logistic_task, minimize
from gradlab.plots.optimizers import plot_second_moment
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


def test_the_plot_draws_every_point_set_on_log_axes(result):
    ax = plot_second_moment(result)
    points = [line for line in ax.get_lines() if line.get_linestyle() == "None"]
    # full batch, then each batch size and its noise prediction: one point per weight in each set
    assert len(points) == 1 + 2 * len(CFG.batches)
    assert all(len(line.get_xdata()) == len(result.hessian_diag) for line in points)
    np.testing.assert_allclose(points[0].get_xdata(), (result.hessian_diag - CFG.l2).numpy())
    np.testing.assert_allclose(points[1].get_ydata(), result.sqrt_v_batch[CFG.batches[0]].numpy())
    np.testing.assert_allclose(points[2].get_ydata(), result.noise_rms[CFG.batches[0]].numpy())
    assert ax.get_xscale() == ax.get_yscale() == "log"
    (reference,) = [line for line in ax.get_lines() if line.get_linestyle() == "--"]
    x, y = reference.get_xydata().T
    assert np.polyfit(np.log(x), np.log(y), 1)[0] == pytest.approx(0.5)
    plt.close(ax.figure)


def test_the_plot_puts_a_vanishing_full_batch_on_a_floor_and_says_so(result):
    ax = plot_second_moment(dataclasses.replace(result, sqrt_v_full=torch.zeros_like(result.sqrt_v_full)))
    full = ax.get_lines()[0]
    y = np.asarray(full.get_ydata())
    assert (y > 0).all() and (y == y[0]).all() and "at the floor" in full.get_label()
    plt.close(ax.figure)
    # values a log axis can show are drawn as they are, and the legend does not mention a floor
    shown = dataclasses.replace(result, sqrt_v_full=result.sqrt_v_batch[CFG.batches[-1]] / 100)
    ax = plot_second_moment(shown)
    np.testing.assert_allclose(ax.get_lines()[0].get_ydata(), shown.sqrt_v_full.numpy())
    assert ax.get_lines()[0].get_label() == "full batch"
    plt.close(ax.figure)


def test_second_moment_follows_the_square_root_of_the_data_curvature(result):
    """Var(g_i) at w* is close to the data term's Hessian (the Fisher information of a fitted logistic model), so
    √ŝ = √(Var/B) grows like √(H_ii − α): slope ½ on log-log axes, not 1 as a curvature estimate would have."""
    for b in CFG.batches:
        assert 0.4 < result.slope(result.sqrt_v_batch[b]) < 0.65
        assert result.correlation(result.sqrt_v_batch[b]) > 0.9
