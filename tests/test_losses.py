"""Chapter 2: cross-entropy against squared error at the logits, the stable cross-entropy, and the digit classifier."""
import math

import pytest
import torch
import torch.nn.functional as F

from gradlab.classifier import ClassifierConfig, compare_losses, digits, train_classifier
from gradlab.losses import (confidently_wrong, logit_curves, logsumexp, naive_cross_entropy, overflow_table,
                            probabilities_or_logits, squared_error, stable_cross_entropy)
from gradlab.seeding import generator


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("scale", [1.0, 30.0, 1e4])
def test_stable_cross_entropy_matches_pytorch_in_value_and_gradient(dtype, scale):
    g = generator(0)
    z = (scale * torch.randn(16, 7, generator=g, dtype=dtype)).requires_grad_(True)
    y = torch.randint(7, (16,), generator=g)
    ours = stable_cross_entropy(z, y)
    (g_ours,) = torch.autograd.grad(ours, z)
    theirs = F.cross_entropy(z, y)
    (g_theirs,) = torch.autograd.grad(theirs, z)
    tol = dict(rtol=1e-5, atol=1e-5) if dtype == torch.float32 else dict(rtol=1e-12, atol=1e-12)
    assert torch.isfinite(ours) and torch.allclose(ours, theirs, **tol)
    assert torch.allclose(g_ours, g_theirs, **tol)
    # and both are (softmax − one-hot) / N, the chapter's G_2
    expected = (torch.softmax(z.detach(), 1) - F.one_hot(y, 7).to(dtype)) / 16
    assert torch.allclose(g_ours, expected, **tol)


def test_logsumexp_matches_pytorch_and_survives_extremes():
    z = torch.tensor([[1000.0, 0.0, -1000.0], [-1e4, -1e4, -1e4], [0.1, 0.2, 0.3]])
    assert torch.allclose(logsumexp(z, 1), torch.logsumexp(z, 1))
    assert torch.isneginf(logsumexp(torch.full((1, 3), -math.inf), 1)).all()  # not nan


def test_naive_formula_overflows_where_log_sum_exp_does_not():
    rows = {r.logits: r for r in overflow_table(dtype=torch.float32)}
    ok = rows[(0.0, 10.0)]
    assert ok.naive == pytest.approx(10 + math.log1p(math.exp(-10)), rel=1e-6) and ok.naive_grad_finite
    for pair in [(0.0, 100.0), (-200.0, 0.0), (1000.0, 0.0)]:
        r = rows[pair]
        assert not math.isfinite(r.naive) and not r.naive_grad_finite, pair
        exact = max(pair) - pair[0] + math.log1p(math.exp(-abs(pair[0] - pair[1])))  # log-sum-exp by hand
        assert r.stable == pytest.approx(exact, abs=1e-4) and r.torch == pytest.approx(exact, abs=1e-4)
        assert r.stable_grad_finite
    assert math.isnan(rows[(1000.0, 0.0)].naive)  # ∞/∞, although the prediction is right


def test_binary_cross_entropy_on_probabilities_clamps_and_stalls():
    # PyTorch documents that BCELoss clamps its log outputs at -100; with_logits computes log(1 + e^200) exactly
    out = probabilities_or_logits(-200.0)
    assert out["from probabilities"] == (100.0, 0.0)
    loss, g = out["from the logit"]
    assert loss == pytest.approx(200.0) and g == pytest.approx(-1.0)


def test_gradients_at_the_logit_follow_the_closed_forms():
    z = torch.linspace(-12, 12, 241, dtype=torch.float64)
    c = logit_curves(z)
    s = torch.sigmoid(z)
    assert torch.allclose(c.grad["cross-entropy"], s - 1, atol=1e-12)
    assert torch.allclose(c.grad["squared error"], 2 * (s - 1) * s * (1 - s), atol=1e-12)
    assert torch.allclose(c.second["cross-entropy"], s * (1 - s), atol=1e-12)
    assert torch.allclose(c.second["squared error"], -2 * s * (1 - s) ** 2 * (1 - 3 * s), atol=1e-12)
    # the claims of the convexity paragraph: CE convex; SE concave at z = -3 yet decreasing everywhere (no minimum)
    assert (c.second["cross-entropy"] > 0).all()
    i = int((z + 3).abs().argmin())
    assert c.second["squared error"][i] < 0 < c.second["squared error"][-1]
    assert (c.grad["squared error"] < 0).all()


def test_confidently_wrong_prediction_gets_almost_no_squared_error_gradient():
    w = confidently_wrong(10.0, 10)
    p = 1 / (1 + math.exp(10))
    assert w.true_probability == pytest.approx(p)
    assert w.binary["cross-entropy"] == pytest.approx(p - 1)
    assert w.binary["squared error"] == pytest.approx(2 * (p - 1) * p * (1 - p))
    assert abs(w.binary["cross-entropy"] / w.binary["squared error"]) > 1e4  # "about ten thousand times less"
    # ten classes: CE's gradient is yhat - y; SE's passes through the softmax Jacobian diag(yhat) - yhat yhatᵀ
    z = torch.zeros(10, dtype=torch.float64)
    z[1] = 10.0
    yhat, y = torch.softmax(z, 0), F.one_hot(torch.tensor(0), 10).double()
    jac = torch.diag(yhat) - torch.outer(yhat, yhat)
    assert w.multi_true_probability == pytest.approx(float(yhat[0]))
    assert w.multi["cross-entropy"] == pytest.approx(float((yhat - y).norm()))
    assert w.multi["squared error"] == pytest.approx(float((jac @ (2 * (yhat - y))).norm()))


def test_squared_error_is_the_sum_over_classes_of_the_squared_probability_errors():
    g = generator(3)
    z, y = torch.randn(5, 4, generator=g), torch.randint(4, (5,), generator=g)
    per_example = ((torch.softmax(z, 1) - F.one_hot(y, 4)) ** 2).sum(1)
    assert torch.allclose(squared_error(z, y), per_example.mean())
    assert torch.allclose(naive_cross_entropy(z, y), F.cross_entropy(z, y), atol=1e-6)


def test_digits_are_standardized_and_complete():
    x, y = digits()
    assert x.shape == (1797, 64) and y.shape == (1797,) and set(y.tolist()) == set(range(10))
    std = x.std(0)
    assert torch.allclose(x.mean(0), torch.zeros(64), atol=1e-5)
    assert torch.allclose(std[std > 0.5], torch.ones(int((std > 0.5).sum())), atol=1e-3)


def test_both_losses_start_from_the_same_weights_and_run_deterministically():
    runs = compare_losses(ClassifierConfig(epochs=2))
    assert runs[0].train_accuracy[0] == runs[1].train_accuracy[0]  # the same initial network
    assert runs[0].confidently_wrong[0] == runs[1].confidently_wrong[0]
    again = train_classifier(ClassifierConfig(epochs=2))
    assert again.train_accuracy == runs[0].train_accuracy


def test_from_a_confident_start_squared_error_leaves_examples_stuck_and_cross_entropy_does_not():
    # the chapter's figure: logit scale 10 makes most first predictions confidently wrong
    ce, se = compare_losses(ClassifierConfig(epochs=6, logit_scale=10.0))
    assert ce.confidently_wrong[0] > 0.5 * 1297
    assert ce.confidently_wrong[1] < 0.05 * ce.confidently_wrong[0]  # "nearly all in the first epoch"
    assert ce.confidently_wrong[-1] <= 5 and ce.train_accuracy[-1] > 0.97
    assert se.confidently_wrong[-1] > 100 and se.train_accuracy[-1] < 0.9
    with pytest.raises(ValueError, match="loss"):
        train_classifier(ClassifierConfig(loss="hinge"))


def test_float32_exponentials_quoted_in_the_chapter():
    assert torch.isinf(torch.exp(torch.tensor(100.0))) and torch.exp(torch.tensor(-200.0)) == 0
