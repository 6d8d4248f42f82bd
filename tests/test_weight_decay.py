"""Adam + L2 against AdamW: the decay each applies, derived from their updates and checked on torch.optim;
the (η, α) grid; L1 by subgradient against L1 by its proximal step."""
import pytest
import torch

from gradlab.batched_mlp import MLPConfig
from gradlab.weight_decay import DecayGridConfig, SparsityConfig, decay_grid, l1_vs_l2


@pytest.mark.parametrize("lr, alpha", [(1e-3, 1e-2), (0.1, 0.5), (3e-2, 1.0)])
def test_adamw_with_no_gradient_shrinks_x_by_exactly_one_minus_eta_alpha_per_step(lr, alpha):
    """g = 0 keeps m = v = 0, so Adam's part of the step is 0/(0 + ε) = 0: only x ← x(1 − ηα) is left."""
    x0 = torch.tensor([1.5, -0.3, 2e-4], dtype=torch.float64)
    x = x0.clone().requires_grad_(True)
    opt = torch.optim.AdamW([x], lr=lr, weight_decay=alpha)
    for _ in range(25):
        x.grad = torch.zeros_like(x)
        opt.step()
    torch.testing.assert_close(x.detach(), x0 * (1 - lr * alpha) ** 25, rtol=1e-13, atol=0)


@pytest.mark.parametrize("alpha", [1e-4, 1e-2, 1.0])
def test_adam_l2_with_no_data_gradient_steps_eta_whatever_alpha(alpha):
    """g = αx, so the first step is ηαx/(α|x| + ε): η·sign(x) in size, whatever α (ε aside)."""
    lr, eps = 0.01, 1e-8
    x0 = torch.tensor([1.5, -0.3, 0.02], dtype=torch.float64)
    x = x0.clone().requires_grad_(True)
    opt = torch.optim.Adam([x], lr=lr, weight_decay=alpha, eps=eps)
    x.grad = torch.zeros_like(x)
    opt.step()
    torch.testing.assert_close(x.detach(), x0 - lr * alpha * x0 / (alpha * x0.abs() + eps), rtol=1e-12, atol=0)
    # |step| = η/(1 + ε/(α|x|)): within ε/(α|x|) of η
    bound = eps / (alpha * float(x0.abs().min()))
    torch.testing.assert_close((x0 - x.detach()).abs(), torch.full_like(x0, lr), rtol=1.01 * bound, atol=0)


def _decay_effect(cls, alpha: float, big: float, steps: int = 200) -> torch.Tensor:
    """x(with α) − x(without) after ``steps`` steps of two weights at 1: one with no data gradient, one whose
    data gradient alternates ±big (so its v̂ ≈ big²)."""
    out = []
    for a in (alpha, 0.0):
        x = torch.ones(2, dtype=torch.float64, requires_grad=True)
        opt = cls([x], lr=1e-3, weight_decay=a)
        for k in range(steps):
            x.grad = torch.tensor([0.0, big if k % 2 == 0 else -big], dtype=torch.float64)
            opt.step()
        out.append(x.detach().clone())
    return out[1] - out[0]


def test_adam_l2_decays_a_weight_with_large_gradients_less_and_adamw_does_not():
    """Adam + L2 divides the decay αx by √v̂: about η per step where the gradient is only αx, ηαx/big where
    v̂ ≈ big², a ratio of about α/big. AdamW's decay ηαx does not look at the gradients: a ratio of about 1."""
    alpha, big = 0.05, 1.0
    l2 = _decay_effect(torch.optim.Adam, alpha, big)
    w = _decay_effect(torch.optim.AdamW, alpha, big)
    assert l2[0] > 0 and w[0] > 0
    assert 0.3 * alpha / big < l2[1] / l2[0] < 3 * alpha / big
    assert 0.9 < w[1] / w[0] < 1.1


GRID = DecayGridConfig(lrs=(1e-3, 1e-2), decays=(0.0, 0.1, 3.0), mlp=MLPConfig(hidden=12, epochs=3, batch_size=256))


def test_the_grid_with_no_decay_is_the_same_for_both_and_large_l2_collapses_the_weights():
    g = decay_grid(GRID)
    assert g.val_acc.shape == (2, 2, 3) and g.labels == ("Adam + L2", "AdamW")
    torch.testing.assert_close(g.val_acc[0, :, 0], g.val_acc[1, :, 0], rtol=0, atol=0)  # α = 0: one algorithm
    torch.testing.assert_close(g.weight_norm[0, :, 0], g.weight_norm[1, :, 0], rtol=0, atol=0)
    # α = 3: Adam + L2's steps are about η·sign(w) once αw dominates the gradient, so the weights shrink
    # far more than AdamW's (1 − ηα)^k over these few steps
    assert bool((g.weight_norm[0, :, 2] < g.weight_norm[1, :, 2]).all())
    lr, a, acc = g.best(1)
    assert acc == float(g.val_acc[1].max()) and lr in GRID.lrs and a in GRID.decays


def test_the_proximal_step_gives_exact_zeros_and_the_subgradient_fewer():
    sp = l1_vs_l2(SparsityConfig(alpha=1e-2, mlp=MLPConfig(hidden=12, epochs=4, batch_size=128)))
    l2, sub, prox = range(3)
    assert sp.exact_zero[prox] > 0
    assert sp.exact_zero[sub] < sp.exact_zero[prox] and sp.exact_zero[l2] < sp.exact_zero[prox]
    assert float(sp.near_zero[prox]) >= float(sp.exact_zero[prox])
    torch.testing.assert_close(sp.exact_zero, (sp.weights == 0).double().mean(1))
