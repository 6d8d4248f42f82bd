"""Chapter 1's data, logistic task and mini-batches: per-example gradients, the variance formulas
(within a tolerance set by the number of draws), training bookkeeping, parity and determinism."""
import math

import pytest
import torch
from torch.func import hessian

from gradlab.data import _standardized_breast_cancer, breast_cancer, feature_conditioning, logistic_task, minimize
from gradlab.stochastic import (MinibatchConfig, NoiseConfig, error_ratio, gradient_noise, noise_formula,
                                train_minibatch)

Z = 4.0  # standard errors: a correct formula fails this by chance about once in 16,000 comparisons


@pytest.fixture(scope="module")
def task():
    return logistic_task()


@pytest.fixture(scope="module")
def noise(task):
    return gradient_noise(task, task.zeros(), NoiseConfig(batch_sizes=(1, 4, 16, 64, 128, 256, 512, 569), draws=2000))


def test_data_is_standardized_cached_and_read_only():
    x, y = breast_cancer()
    assert x.shape == (569, 30) and set(y.unique().tolist()) == {0.0, 1.0}
    torch.testing.assert_close(x.mean(0), torch.zeros(30, dtype=x.dtype), atol=1e-12, rtol=0)
    torch.testing.assert_close(x.std(0, unbiased=False), torch.ones(30, dtype=x.dtype))
    assert _standardized_breast_cancer() is _standardized_breast_cancer()
    with pytest.raises(ValueError):
        _standardized_breast_cancer()[0][0, 0] = 1.0


def test_per_example_gradients_average_to_the_full_gradient(task):
    w = torch.linspace(-0.3, 0.3, task.dim, dtype=torch.float64)
    rows = task.per_example_grads(w)
    w_ = w.clone().requires_grad_(True)
    full, = torch.autograd.grad(task.loss(w_), w_)
    torch.testing.assert_close(rows.mean(0), full)
    one, = torch.autograd.grad(task.loss(w_, torch.tensor([17])), w_)
    torch.testing.assert_close(rows[17], one)


def test_smoothness_bounds_every_curvature(task):
    g = torch.Generator().manual_seed(0)
    for _ in range(3):
        w = torch.randn(task.dim, generator=g, dtype=torch.float64) * 0.2
        top = torch.linalg.eigvalsh(hessian(task.loss)(w))[-1]
        assert float(top) <= task.smoothness() + 1e-12
    # at w = 0 every sigmoid slope is exactly ¼, so the bound is attained
    top0 = torch.linalg.eigvalsh(hessian(task.loss)(task.zeros()))[-1]
    assert float(top0) == pytest.approx(task.smoothness(), rel=1e-12)


def test_minimize_finds_a_stationary_point():
    t = logistic_task(l2=1e-2)
    w, f = minimize(t)
    w = w.requires_grad_(True)
    g, = torch.autograd.grad(t.loss(w), w)
    assert float(g.norm()) < 1e-8 and f == pytest.approx(float(t.loss(w.detach())))


@pytest.mark.parametrize("key,replace", [("with", True), ("without", False)])
def test_minibatch_gradient_error_matches_its_formula(noise, key, replace):
    measured, se, predicted = noise.measured[key], noise.stderr[key], noise.predicted(replace)
    ok = (measured - predicted).abs() <= Z * se + 1e-20
    assert bool(ok.all()), list(zip(noise.batch_sizes.tolist(), measured.tolist(), predicted.tolist(), se.tolist()))


def test_without_replacement_is_not_sigma2_over_b(noise):
    # for large batches the finite-population factor (N − B)/(N − 1) is far outside the sampling error
    big = noise.batch_sizes >= 128
    wrong = noise.predicted(replace=True)[big]
    assert bool(((noise.measured["without"][big] - wrong).abs() > 10 * noise.stderr["without"][big]).all())
    assert float(noise.measured["without"][-1]) < 1e-25  # B = N: every batch is the whole data set


def test_with_replacement_falls_exactly_as_one_over_b(noise):
    b = noise.batch_sizes.double()
    slope = torch.linalg.lstsq(torch.stack([b.log(), torch.ones_like(b)], 1),
                               noise.measured["with"].log()[:, None]).solution[0, 0]
    assert float(slope) == pytest.approx(-1.0, abs=0.03)
    assert float(noise_formula(2.0, 10, 4, replace=False)) == pytest.approx(2.0 / 4 * 6 / 9)


def test_noise_measurement_is_deterministic(task):
    cfg = NoiseConfig(batch_sizes=(8,), draws=50, seed=5)
    a, b = gradient_noise(task, task.zeros(), cfg), gradient_noise(task, task.zeros(), cfg)
    assert torch.equal(a.measured["without"], b.measured["without"])


def test_epochs_and_updates_are_counted_like_a_dataloader(task):
    run = train_minibatch(task, MinibatchConfig(batch_size=128, lr=0.1, epochs=3))
    assert run.updates_per_epoch == math.ceil(569 / 128) == 5
    assert int(run.updates[-1]) == 15 and float(run.epochs[-1]) == 3.0
    full = train_minibatch(task, MinibatchConfig(batch_size=0, lr=0.1, epochs=3))
    assert full.batch_size == 569 and full.updates.tolist() == [0, 1, 2, 3]


def test_full_batch_training_is_plain_gradient_descent(task):
    lr, epochs = 0.5, 6
    run = train_minibatch(task, MinibatchConfig(batch_size=0, lr=lr, epochs=epochs))
    w = task.zeros().requires_grad_(True)
    losses = [float(task.loss(w.detach()))]
    for _ in range(epochs):
        g, = torch.autograd.grad(task.loss(w), w)
        with torch.no_grad():
            w -= lr * g
        losses.append(float(task.loss(w.detach())))
    torch.testing.assert_close(run.losses, torch.tensor(losses, dtype=torch.float64), rtol=1e-12, atol=0)


def test_training_is_deterministic_given_the_seed(task):
    cfg = MinibatchConfig(batch_size=8, lr=0.1, epochs=1, seed=2)
    a, b = train_minibatch(task, cfg), train_minibatch(task, cfg)
    c = train_minibatch(task, MinibatchConfig(batch_size=8, lr=0.1, epochs=1, seed=3))
    assert torch.equal(a.losses, b.losses) and not torch.equal(a.losses, c.losses)


def test_progress_is_reported_per_update_and_reaches_one(task):
    """One call per update (so a one-epoch run still moves the bar), each the fraction of updates done."""
    seen = []
    train_minibatch(task, MinibatchConfig(batch_size=32, epochs=3), progress=seen.append)
    per_epoch = -(-task.n // 32)  # 569 examples: 18 updates, the last batch smaller
    assert seen == pytest.approx([k / (3 * per_epoch) for k in range(1, 3 * per_epoch + 1)])


def test_exercise_1_2_ratios(task):
    """From B = 128 to 512 the error falls by 4 with replacement and by 4·441/57 ≈ 30.9 without."""
    ratios = error_ratio(task, 128, 512, draws=10000)
    predicted = {"with": 4.0, "without": 4 * (569 - 128) / (569 - 512)}
    assert predicted["without"] == pytest.approx(30.9, abs=0.05)
    # each mean squared error is estimated within about 1% (10,000 draws): the ratio within a few percent
    for key in ratios:
        assert ratios[key] == pytest.approx(predicted[key], rel=0.05), (key, ratios)


def test_standardizing_is_a_diagonal_scaling_and_a_non_diagonal_centring():
    from sklearn.datasets import load_breast_cancer

    cond = feature_conditioning()
    raw = torch.tensor(load_breast_cancer().data, dtype=torch.float64)
    ones = torch.ones(len(raw), 1, dtype=torch.float64)
    xb = torch.cat([raw, ones], dim=1)
    h = xb.T @ xb / len(raw)
    std = raw.std(dim=0, unbiased=False)
    # scaling alone is the diagonal change of coordinates D = diag(1/s, 1) applied to XᵀX/N
    d = torch.cat([1 / std, torch.ones(1, dtype=torch.float64)])
    eig = torch.linalg.eigvalsh(d[:, None] * h * d[None, :])
    assert cond["scaled"] == pytest.approx(float(eig[-1] / eig[0]), rel=1e-6)
    # centring is the change of coordinates (w, b) ↦ (w, b − wᵀm): not diagonal, it mixes the bias into every weight
    m = torch.eye(31, dtype=torch.float64)
    m[30, :30] = -raw.mean(dim=0)
    torch.testing.assert_close(xb @ m, torch.cat([raw - raw.mean(dim=0), ones], dim=1))
    assert bool((m - torch.diag(torch.diagonal(m))).abs().max() > 0)
    # standardized features: XᵀX/N is the correlation matrix with a 1 added for the bias
    corr = torch.linalg.eigvalsh(torch.corrcoef(raw.T))
    assert cond["standardized"] == pytest.approx(float(corr[-1] / corr[0]), rel=1e-6)
    assert cond["raw"] > cond["centred"] > cond["scaled"] > cond["standardized"]
    assert cond["raw"] / cond["scaled"] > 1e5 and cond["scaled"] / cond["standardized"] > 10
