"""Chapter 2: forward versus reverse mode, counted FLOPs of backward, and Jacobian products over depth."""
import pytest
import torch
from torch import nn
from torch.func import jacfwd, jacrev

from gradlab.autodiff import (DepthConfig, MapConfig, ModesConfig, backward_cost_table, backward_flop_ratio,
                              count_flops, jacobian_chain, mlp_of_flat_params, seeded_mlp, time_modes, time_modes_io)
from gradlab.seeding import generator


def _rand(*shape, grad=False, seed=0):
    return torch.randn(*shape, generator=generator(seed)).requires_grad_(grad)


# FlopCounterMode counts matrix products and convolutions (2 FLOPs per multiply-add), not bias
# additions or activations. For z = x Wᵀ + b with x (N, I), W (O, I), upstream G = dL/dz (N, O):
#   forward   z    = x Wᵀ : N·O outputs, each an I-long dot product  -> 2·N·I·O
#   backward  dL/dW = Gᵀ x : O·I outputs, each an N-long dot product  -> 2·N·I·O
#             dL/dx = G W  : N·I outputs, each an O-long dot product  -> 2·N·I·O (only if x needs a gradient)
#             dL/db = column sums of G: not a matmul, not counted.
@pytest.mark.parametrize("n, i, o", [(32, 64, 128), (5, 7, 3)])
def test_linear_flops_match_the_formula(n, i, o):
    lin = nn.Linear(i, o)
    fwd, bwd = count_flops(lambda: lin(_rand(n, i)))
    assert fwd == 2 * n * i * o and bwd == 2 * n * i * o  # first layer: no input gradient
    fwd, bwd = count_flops(lambda: lin(_rand(n, i, grad=True)))
    assert fwd == 2 * n * i * o and bwd == 4 * n * i * o  # later layers: weight and input gradients


def test_conv_flops_match_the_formula():
    # per output pixel and channel a Cin·k·k dot product; backward repeats it for weight and (if needed) input
    n, cin, cout, h, k = 2, 3, 5, 8, 3
    conv = nn.Conv2d(cin, cout, k, padding=1)
    per_pass = 2 * n * cout * h * h * cin * k * k
    assert count_flops(lambda: conv(_rand(n, cin, h, h))) == (per_pass, per_pass)
    assert count_flops(lambda: conv(_rand(n, cin, h, h, grad=True))) == (per_pass, 2 * per_pass)


def test_matmul_chain_and_mlp_flops():
    n, d = 6, 4
    a, b, c = _rand(n, d, grad=True), _rand(d, d, grad=True, seed=1), _rand(d, d, grad=True, seed=2)
    # forward (AB)C: two n·d·d products; backward: two products per matmul (one per operand)
    assert count_flops(lambda: a @ b @ c) == (4 * n * d * d, 8 * n * d * d)
    # an MLP whose input needs no gradient: backward = 2 × forward minus the first layer's input gradient
    sizes, batch = [8, 16, 16, 3], 10
    mlp = seeded_mlp(sizes)
    fwd, bwd = count_flops(lambda: mlp(_rand(batch, 8)))
    layer = [2 * batch * p * q for p, q in zip(sizes[:-1], sizes[1:])]
    assert fwd == sum(layer) and bwd == 2 * sum(layer) - layer[0]


def test_backward_cost_table_ratios():
    rows = {r.name: r for r in backward_cost_table(repeats=1)}
    assert rows["Linear, input needs no grad"].ratio == 1.0
    assert rows["Linear, input needs grad"].ratio == 2.0
    assert rows["Conv2d, input needs no grad"].ratio == 1.0 and rows["Conv2d, input needs grad"].ratio == 2.0
    assert rows["matmul chain A·B·C"].ratio == 2.0
    assert 1.0 < rows["MLP, 3 linear layers"].ratio < 2.0
    assert all(r.forward_s > 0 and r.backward_s >= 0 for r in rows.values())


def test_forward_and_reverse_mode_give_the_same_jacobian():
    f, theta = mlp_of_flat_params(width=6, n_out=3)
    assert torch.allclose(jacfwd(f)(theta), jacrev(f)(theta), atol=1e-5)
    loss, theta1 = mlp_of_flat_params(width=6, n_out=1)
    grad = torch.func.grad(lambda t: loss(t).sum())(theta1)  # reverse mode: one VJP for a scalar
    assert torch.allclose(jacfwd(loss)(theta1)[0], grad, atol=1e-6)


def test_timing_results_have_one_entry_per_size():
    r = time_modes(ModesConfig(widths=(2, 4), repeats=1))
    assert len(r.n_in) == len(r.forward_s) == len(r.reverse_s) == 2 and r.n_in[0] < r.n_in[1]
    r = time_modes_io(MapConfig(n_in=(4, 8), n_out=3, hidden=5, repeats=1))
    assert r.n_in == [4, 8] and all(t > 0 for t in r.forward_s + r.reverse_s)


@pytest.mark.parametrize("activation", ["tanh", "sigmoid", "relu"])
def test_jacobian_product_gives_autograds_gradient_at_every_layer(activation):
    chain = jacobian_chain(DepthConfig(depth=6, width=5, gain=1.3, activation=activation))
    act = {"tanh": torch.tanh, "sigmoid": torch.sigmoid, "relu": torch.relu}[activation]
    hs = [chain.h0.clone().requires_grad_(True)]
    for W in chain.weights:
        hs.append(act(W @ hs[-1]))
        hs[-1].retain_grad()
    (0.5 * (hs[-1] - chain.target).square().sum()).backward()
    for h, g in zip(hs, chain.grads):
        assert torch.allclose(h.grad, g, rtol=1e-10, atol=1e-14)
    total = 1.0
    for f in chain.layer_factors:
        total *= f
    assert total == pytest.approx(chain.grad_norms[0] / chain.grad_norms[-1], rel=1e-9)


def test_init_scale_decides_whether_the_gradient_shrinks_or_grows():
    ratio = lambda **kw: (lambda c: c.grad_norms[0] / c.grad_norms[-1])(jacobian_chain(DepthConfig(**kw)))  # noqa
    assert ratio(activation="sigmoid", gain=1.0) < 1e-6  # sigmoid' ≤ 1/4 at every layer
    assert ratio(activation="tanh", gain=0.5) < 1e-3
    assert ratio(activation="relu", gain=2.5) > 1e3
    a = jacobian_chain(DepthConfig(depth=5))
    assert a.grad_norms == jacobian_chain(DepthConfig(depth=5)).grad_norms  # deterministic


def test_forward_mode_counts_p_tangent_passes_and_reverse_mode_one_backward():
    # the model: x (batch 8, 8 inputs) -> width -> width -> 1, tanh between; FlopCounterMode counts matmuls only.
    # Forward pass F = Σ 2·batch·in·out. A tangent through a layer needs dW·x and, except in the first layer
    # (x is data), W·dx: 2F - F_1 per tangent. jacfwd pushes p tangents (vmapped) next to the primal pass
    # (which it counts up to a pass once more); jacrev runs the forward and one backward, 2F - F_1 (Experiment 3).
    r = time_modes(ModesConfig(widths=(3, 6), repeats=1))
    for w, p, fwd, rev in zip((3, 6), r.n_in, r.forward_flops, r.reverse_flops):
        layers = [2 * 8 * a * b for a, b in ((8, w), (w, w), (w, 1))]
        F, F1 = sum(layers), layers[0]
        assert p == 8 * w + w + w * w + w + w + 1
        assert p * (2 * F - F1) < fwd <= p * (2 * F - F1) + 2 * F
        assert rev == F + (2 * F - F1)
        assert fwd / rev == pytest.approx(p * (2 * F - F1) / (3 * F - F1), rel=2 / p)  # about 2p/3 when F_1 ≪ F


def test_backward_flop_ratio_of_unequal_and_equal_layers():
    # Exercise 2.5: 784 -> 256 -> 256 -> 10 with no input gradient: 2 - F_1 / ΣF, about 1.25
    layers = [784 * 256, 256 * 256, 256 * 10]
    assert backward_flop_ratio([784, 256, 256, 10]) == pytest.approx(2 - layers[0] / sum(layers), rel=1e-12)
    assert backward_flop_ratio([784, 256, 256, 10]) == pytest.approx(1.25, abs=0.005)
    assert layers[0] / sum(layers) == pytest.approx(0.75, abs=0.005)  # "three quarters of the FLOPs"
    assert backward_flop_ratio([64] * 11) == pytest.approx(2 - 1 / 10, rel=1e-12)  # D equal layers: 2 - 1/D
