"""Chapter 2: the hand-written backward pass of the two-layer network, piece by piece, against autograd."""
from dataclasses import replace

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from gradlab.backprop import (AccumulationConfig, HandTwoLayer, TwoLayerConfig, backward, check_backward,
                              divergence_threshold, forward, init_two_layer, linear_backward, make_batch,
                              regression_smoothness, relu_backward, softmax_xent_backward, tied_layer_grads,
                              train_accumulating)
from gradlab.seeding import generator

TIGHT = dict(rtol=1e-12, atol=1e-12)


def _leaf(t):
    return t.detach().clone().requires_grad_(True)


def test_softmax_cross_entropy_gradient_is_prediction_minus_target_over_n():
    g = generator(0)
    z, y = _leaf(torch.randn(7, 4, generator=g, dtype=torch.float64)), torch.randint(4, (7,), generator=g)
    F.cross_entropy(z, y).backward()
    assert torch.allclose(z.grad, softmax_xent_backward(z.detach(), y), **TIGHT)
    z.grad = None
    F.cross_entropy(z, y, reduction="sum").backward()  # per example: exactly softmax − onehot, no 1/N
    assert torch.allclose(z.grad, torch.softmax(z.detach(), 1) - F.one_hot(y, 4).double(), **TIGHT)


def test_linear_backward_matches_autograd_in_nn_linear_layout():
    g = generator(1)
    x, W, b = (_leaf(torch.randn(*s, generator=g, dtype=torch.float64)) for s in [(5, 3), (4, 3), (4,)])
    up = torch.randn(5, 4, generator=g, dtype=torch.float64)
    (x @ W.T + b).backward(up)
    dx, dW, db = linear_backward(up, x.detach(), W.detach())
    assert dW.shape == W.shape and dx.shape == x.shape and db.shape == b.shape
    for got, want in [(dx, x.grad), (dW, W.grad), (db, b.grad)]:
        assert torch.allclose(got, want, **TIGHT)
    assert torch.allclose(db, up.sum(0), **TIGHT)  # the bias gradient sums over the batch


def test_relu_backward_matches_autograd_including_exact_zeros():
    z = _leaf(torch.tensor([-2.0, -0.0, 0.0, 1e-300, 3.0], dtype=torch.float64))
    up = torch.arange(1.0, 6.0, dtype=torch.float64)
    torch.relu(z).backward(up)
    assert torch.equal(relu_backward(up, z.detach()), z.grad)
    assert z.grad[1] == 0 and z.grad[2] == 0  # PyTorch passes no gradient at exactly zero


def test_two_layer_backward_matches_autograd_for_every_tensor():
    cfg = TwoLayerConfig(n_in=5, n_hidden=7, n_classes=4, batch=9)
    p = {k: _leaf(v) for k, v in init_two_layer(cfg, seed=3).items()}
    x, y = make_batch(cfg, seed=4)
    x = _leaf(x)
    loss, cache = forward(p, x, y)
    loss.backward()
    mine = backward({k: v.detach() for k, v in p.items()}, {k: v.detach() for k, v in cache.items()})
    for k in p:
        assert mine[k].shape == p[k].shape
        assert torch.allclose(mine[k], p[k].grad, **TIGHT), k
    assert torch.allclose(mine["x"], x.grad, **TIGHT)


def test_forward_is_the_same_network_as_torch_nn():
    cfg = TwoLayerConfig()
    p = init_two_layer(cfg, seed=0)
    x, y = make_batch(cfg, seed=1)
    net = torch.nn.Sequential(torch.nn.Linear(cfg.n_in, cfg.n_hidden), torch.nn.ReLU(),
                              torch.nn.Linear(cfg.n_hidden, cfg.n_classes)).double()
    with torch.no_grad():
        for (w, b), (kw, kb) in zip([(net[0].weight, net[0].bias), (net[2].weight, net[2].bias)],
                                    [("W1", "b1"), ("W2", "b2")]):
            w.copy_(p[kw]), b.copy_(p[kb])
    assert torch.allclose(forward(p, x, y)[0], F.cross_entropy(net(x), y), **TIGHT)


def test_hand_backward_passes_gradcheck_against_finite_differences():
    cfg = TwoLayerConfig(n_in=3, n_hidden=5, n_classes=3, batch=4)
    p = init_two_layer(cfg, seed=5)
    x, y = make_batch(cfg, seed=6)
    args = (_leaf(x), *(_leaf(p[k]) for k in ("W1", "b1", "W2", "b2")), y)
    assert torch.autograd.gradcheck(HandTwoLayer.apply, args, eps=1e-6, atol=1e-7)


def test_a_weight_used_twice_gets_the_sum_of_both_paths():
    g = generator(7)
    W = _leaf(torch.randn(4, 4, generator=g, dtype=torch.float64) / 2)
    x = torch.randn(3, 4, generator=g, dtype=torch.float64)
    torch.tanh(torch.tanh(x @ W.T) @ W.T).sum().backward()
    first, second = tied_layer_grads(W.detach(), x)
    assert torch.allclose(first + second, W.grad, **TIGHT)
    assert not torch.allclose(first, W.grad) and not torch.allclose(second, W.grad)


def test_check_backward_accepts_a_right_answer_and_explains_wrong_ones():
    x = torch.linspace(-3, 3, 11, dtype=torch.float64)
    silu = lambda t: t * torch.sigmoid(t)  # noqa: E731
    right = lambda g, t: g * (torch.sigmoid(t) * (1 + t * (1 - torch.sigmoid(t))))  # noqa: E731
    assert check_backward(silu, right, x).ok
    wrong = check_backward(silu, lambda g, t: g * torch.sigmoid(t), x)
    assert not wrong.ok and "differs from autograd" in wrong.message and "index" in wrong.message
    shape = check_backward(lambda a, b: a @ b, lambda g, a, b: (g @ b.T, (a.T @ g).T),
                           torch.ones(2, 3), torch.ones(3, 4))
    assert not shape.ok and "shape (4, 3)" in shape.message and "(3, 4)" in shape.message
    crash = check_backward(lambda a, b: a @ b, lambda g, a, b: (g @ b, a @ g), torch.ones(2, 3), torch.ones(3, 4))
    assert not crash.ok and "raised RuntimeError" in crash.message
    count = check_backward(lambda a, b: a * b, lambda g, a, b: g * b, torch.ones(3), torch.ones(3))
    assert not count.ok and "expected 2 gradient" in count.message
    assert repr(check_backward(silu, right, x)).startswith("✓")


def test_backward_twice_without_zero_grad_doubles_the_gradient():
    w = torch.tensor([1.5, -2.0], requires_grad=True)
    for k in range(1, 4):
        (w**2).sum().backward()
        assert torch.equal(w.grad, k * 2 * w.detach())


def test_forgotten_zero_grad_accumulates_linearly_and_spoils_training():
    frozen = train_accumulating(AccumulationConfig(steps=6, lr=0.0, zero_grad=False))
    g0 = frozen.grad_norms[0]
    assert frozen.grad_norms == pytest.approx([(k + 1) * g0 for k in range(6)], rel=1e-5)
    good = train_accumulating(AccumulationConfig())
    bad = train_accumulating(AccumulationConfig(zero_grad=False))
    assert all(a > b for a, b in zip(good.losses, good.losses[1:]))  # GD on a quadratic: loss falls every step
    assert bad.losses[-1] > 10 * good.losses[-1]
    assert max(bad.grad_norms) > 2 * bad.grad_norms[0]
    # at lr = 1 plain GD is past its stability limit and diverges; the forgotten run (momentum with β = 1,
    # stable up to twice that limit) keeps swinging instead: the notebook's "what to notice" says so
    big = AccumulationConfig(lr=1.0)
    assert train_accumulating(big).diverged_at is not None
    assert train_accumulating(replace(big, zero_grad=False)).diverged_at is None


def test_accumulation_is_deterministic():
    a, b = train_accumulating(AccumulationConfig(steps=10)), train_accumulating(AccumulationConfig(steps=10))
    assert a.losses == b.losses and a.grad_norms == b.grad_norms


def test_regression_smoothness_is_the_top_eigenvalue_of_the_losss_hessian():
    cfg = AccumulationConfig()
    g = generator(0)
    x = torch.randn(cfg.n, cfg.dim, generator=g).double()
    y = (x @ torch.randn(cfg.dim, 1, generator=g).double()).squeeze(1)  # the targets do not change the Hessian

    def loss(wb):
        return F.mse_loss(x @ wb[:-1] + wb[-1], y)

    H = torch.func.hessian(loss)(torch.zeros(cfg.dim + 1, dtype=torch.float64))
    assert regression_smoothness(cfg) == pytest.approx(float(torch.linalg.eigvalsh(H)[-1]), rel=1e-6)


def test_a_forgotten_zero_grad_doubles_the_largest_stable_learning_rate():
    # Exercise 2.7. With .grad summing every gradient, e_{k+1} - 2 e_k + e_{k-1} = -ηλ e_k along each eigenvector:
    # the companion matrix [[2 - ηλ, -1], [1, 0]] has spectral radius 1 up to ηλ = 4 and above 1 beyond.
    radius = lambda a: max(abs(v) for v in np.linalg.eigvals(np.array([[2 - a, -1.0], [1.0, 0.0]])))  # noqa: E731
    assert radius(3.99) == pytest.approx(1.0) and radius(4.05) > 1.2 and radius(1.0) == pytest.approx(1.0)
    cfg = AccumulationConfig()
    assert divergence_threshold(cfg) == pytest.approx(1.0, rel=0.02)  # plain GD: 2/L (Chapter 1)
    assert divergence_threshold(replace(cfg, zero_grad=False)) == pytest.approx(2.0, rel=0.02)  # 4/L
