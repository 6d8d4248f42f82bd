"""Chapter 6, Experiment 8 (gradlab.normalization.scale_invariance): batch norm makes a layer blind to the scale
of its weights (output unchanged, gradient × 1/ρ, gradient ⟂ W), and what plain SGD with weight decay α then
does to ‖W‖, the effective learning rate η/‖W‖² and the angle per step (√(2ηα) at equilibrium)."""
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from gradlab.gradients.nets import NetConfig, build
from gradlab.normalization.scale_invariance import (InvarianceConfig, ScaleConfig, break_rho, equilibrium_angle,
                                                    invariance, train_scale)

@pytest.fixture(scope="module")
def split():
    from gradlab.batched_mlp import digits_split

    return digits_split(0)


RHOS = (1e-4, 1e-3, 3e-3, 1e-2, 0.1, 0.5, 2.0, 10.0, 100.0)


def test_configs_reject_nonsense():
    for kw, text in ((dict(lr=0.0), "learning rate"), (dict(lr=float("nan")), "learning rate"),
                     (dict(weight_decay=-1e-3), "weight decay"), (dict(layer=3), "followed by batch norm"),
                     (dict(depth=1), "followed by batch norm"), (dict(batch_size=1), "batch"),
                     (dict(steps=0), "steps")):
        with pytest.raises(ValueError, match=text):
            ScaleConfig(**kw)
    for kw, text in ((dict(eps=0.0), "ε"), (dict(batch=1), "batch"), (dict(d_out=0), "d_in")):
        with pytest.raises(ValueError, match=text):
            InvarianceConfig(**kw)
    with pytest.raises(ValueError, match="positive"):
        invariance([1.0, -2.0])
    with pytest.raises(ValueError, match="tolerance"):
        break_rho(1.0, tolerance=2.0)


def test_without_eps_the_output_is_invariant_the_gradient_scales_and_is_orthogonal():
    r = invariance(RHOS, InvarianceConfig(eps=1e-30))  # PyTorch refuses ε = 0; 1e-30 is 0 next to σ² ≈ 0.3
    assert float(r.output_change.max()) < 1e-9
    assert float((r.grad_ratio - 1).abs().max()) < 1e-9  # ‖∇𝓛(ρW)‖ = ‖∇𝓛(W)‖ / ρ
    assert float(r.cosine.abs().max()) < 1e-12  # ⟨∇𝓛, W⟩ = 0


def test_eps_breaks_the_invariance_as_predicted_for_small_rho():
    r = invariance(RHOS)  # ε = 1e-5, nn.BatchNorm1d's default
    meaningful = r.output_change > 1e-9
    rel = (r.output_change[meaningful] / r.predicted_change[meaningful] - 1).abs()
    assert float(rel.max()) < 0.02  # the ε/ρ² formula is the whole story
    ok = (r.rhos >= 0.1)
    assert float(r.output_change[ok].max()) < 5e-3 and float(r.output_change[r.rhos <= 1e-3].min()) > 0.5
    # where it breaks: the least-varying unit changes by 1% just below break_rho and less just above
    rho = break_rho(float(r.variances.min()))
    below, above = invariance([rho / 1.5, rho * 1.5]).output_change.tolist()
    assert below > 0.01 > above


def test_with_eps_the_gradient_is_only_nearly_orthogonal_and_the_error_falls_as_one_over_rho_squared():
    r = invariance((1.0, 10.0))
    cos1, cos10 = r.cosine.abs().tolist()
    assert cos1 < 1e-4
    assert cos10 == pytest.approx(cos1 / 100, rel=0.05)


def test_one_sgd_step_adds_an_orthogonal_part_so_the_norm_grows_by_pythagoras():
    model = build(NetConfig(width=32, depth=4, norm="batch"), seed=0)
    x = torch.randn(64, 64, generator=torch.Generator().manual_seed(0))
    y = torch.randint(0, 10, (64,), generator=torch.Generator().manual_seed(1))
    w = model.linears()[1].weight
    F.cross_entropy(model(x), y).backward()
    before, g, lr = w.detach().double().clone(), w.grad.double().clone(), 0.5
    with torch.no_grad():
        w.sub_(lr * w.grad)
    lhs = float(w.detach().double().norm() ** 2)
    rhs = float(before.norm() ** 2 + lr ** 2 * g.norm() ** 2)
    assert lhs == pytest.approx(rhs, rel=1e-6)
    assert lr ** 2 * float(g.norm() ** 2) > 1e-4 * float(before.norm() ** 2)  # the step is not negligible


def _scale_invariant_step(w: torch.Tensor, lr: float, decay: float, x, b, head, y) -> torch.Tensor:
    w = w.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(F.cross_entropy(nn.functional.batch_norm(
        F.linear(x, w, b), None, None, training=True, eps=1e-30) @ head.T, y), w)
    return (1 - lr * decay) * w.detach() - lr * g


def test_eta_times_c_alpha_over_c_from_sqrt_c_w_is_the_same_run_scaled():
    """Why only ηα matters for a scale-invariant W: (η, α) from W and (cη, α/c) from √c·W give W_k and √c·W_k."""
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(32, 16, generator=g, dtype=torch.float64), torch.randint(0, 10, (32,), generator=g)
    w0, b = torch.randn(8, 16, generator=g, dtype=torch.float64), torch.randn(8, generator=g, dtype=torch.float64)
    head = torch.randn(10, 8, generator=g, dtype=torch.float64)
    c, lr, decay = 4.0, 0.1, 1e-2
    a, s = w0, math.sqrt(c) * w0
    for _ in range(20):
        a = _scale_invariant_step(a, lr, decay, x, b, head, y)
        s = _scale_invariant_step(s, c * lr, decay / c, x, b, head, y)
    assert float((s - math.sqrt(c) * a).abs().max()) < 1e-10
    assert float((a - w0).norm()) > 0.01 * float(w0.norm())  # the runs moved


def test_norm_grows_without_weight_decay_and_shrinks_with_it(split):
    kw = dict(lr=0.2, steps=80, width=16, record_every=10)
    plain = train_scale(ScaleConfig(**kw), split=split)
    decayed = train_scale(ScaleConfig(weight_decay=1e-2, **kw), split=split)
    assert float(plain.weight_norm.diff().min()) > -1e-4  # never falls (float32 rounding aside)
    assert float(plain.weight_norm[-1]) > float(plain.weight_norm[0])
    assert float(decayed.weight_norm[-1]) < 0.95 * float(decayed.weight_norm[0])
    assert float(decayed.effective_lr[-1]) > float(plain.effective_lr[-1])
    assert plain.diverged_at is None and decayed.diverged_at is None


def test_at_equilibrium_the_angle_per_step_is_sqrt_2_eta_alpha_and_the_norm_its_formula(split):
    # ηα = 4e-3: the norm relaxes in about 1/(4ηα) ≈ 60 steps, but ‖g‖²‖W‖² keeps changing as the net learns: at 600
    # steps ‖W‖ still lags 8% below its moving equilibrium; at 1200 it is within 2% (and the angle too)
    r = train_scale(ScaleConfig(lr=0.4, weight_decay=1e-2, steps=1200, width=32, record_every=20), split=split)
    assert r.tail_angle() == pytest.approx(equilibrium_angle(0.4, 1e-2), rel=0.15)
    assert r.tail(r.weight_norm) == pytest.approx(r.equilibrium_norm(), rel=0.15)


def test_too_much_weight_decay_collapses_the_weights_below_eps(split):
    """The widget's corner η = 3, α = 0.03 (ηα = 0.09): once a low swing of ‖W‖ makes ε ≫ ‖W‖²σ²_𝓑, the gradient
    stops growing as 1/‖W‖, the decay wins and W shrinks to 0; the network is then at chance (ln 10)."""
    r = train_scale(ScaleConfig(lr=3.0, weight_decay=3e-2, steps=1500, width=16, record_every=100), split=split)
    assert float(r.weight_norm[-1]) < 1e-6 * float(r.weight_norm[0])
    assert float(r.val_loss[-1]) == pytest.approx(math.log(10), abs=0.05)
    assert r.diverged_at is None  # nothing became NaN: the collapse is silent
