"""Chapter 5, Experiment 7: clipping from scratch against torch.nn.utils, its effect on the direction, the cliff."""
import math

import pytest
import torch
from torch import nn

from gradlab.gradients.cliff import CliffConfig, cliff, cliff_grad, cliff_loss
from gradlab.gradients.clipping import (EPS, DirectionConfig, NormSurveyConfig,
                                        clip_by_norm_, clip_by_value_, clip_directions, norm_survey)
from gradlab.gradients.nets import NetConfig, build
from gradlab.modes import pick


def _models():
    """Three models with float64 gradients: the chapter's MLP, an LSTM with a head, one bare tensor."""
    g = torch.Generator().manual_seed(3)
    mlp = build(NetConfig(depth=4, width=16), seed=1, dtype=torch.float64)
    mlp(torch.randn(8, 64, generator=g, dtype=torch.float64)).pow(2).sum().backward()
    lstm = nn.LSTM(3, 5, batch_first=True).double()
    out, _ = lstm(torch.randn(4, 7, 3, generator=g, dtype=torch.float64))
    out.sum().backward()
    bare = torch.randn(20, dtype=torch.float64, generator=g, requires_grad=True)
    (bare ** 3).sum().backward()
    return {"mlp": list(mlp.parameters()), "lstm": list(lstm.parameters()), "tensor": [bare]}


def _pair(params):
    twin = [p.detach().clone().requires_grad_(True) for p in params]
    for t, p in zip(twin, params):
        t.grad = p.grad.clone()
    return twin


@pytest.mark.parametrize("model", ["mlp", "lstm", "tensor"])
@pytest.mark.parametrize("norm_type", [2.0, math.inf, 1.0])
@pytest.mark.parametrize("fraction", [0.1, 0.9, 10.0])  # ν as a fraction of ‖g‖: clips, clips a little, does not
def test_clip_by_norm_matches_pytorch(model, norm_type, fraction):
    ours = _models()[model]
    theirs = _pair(ours)
    before = [p.grad.clone() for p in ours]
    full = torch.linalg.vector_norm(torch.cat([g.reshape(-1) for g in before]), norm_type)
    nu = float(fraction * full)
    total_ours = clip_by_norm_(ours, nu, norm_type)
    total_theirs = torch.nn.utils.clip_grad_norm_(theirs, nu, norm_type)
    assert torch.allclose(total_ours, total_theirs, rtol=1e-12, atol=0)
    assert torch.allclose(total_ours, full, rtol=1e-12, atol=0)  # the norm of everything concatenated
    for a, b in zip(ours, theirs):
        assert torch.allclose(a.grad, b.grad, rtol=1e-12, atol=1e-300)
    after = torch.linalg.vector_norm(torch.cat([p.grad.reshape(-1) for p in ours]), norm_type)
    if fraction < 1:
        assert float(after) == pytest.approx(nu * float(full) / (float(full) + EPS), rel=1e-12)
    else:  # ‖g‖ ≤ ν: multiplied by exactly 1, unchanged bit for bit
        assert all(torch.equal(p.grad, g) for p, g in zip(ours, before))


def test_clip_by_norm_with_a_nonfinite_gradient():
    for bad in (math.inf, math.nan):
        ours = _models()["mlp"]
        ours[0].grad[0, 0] = bad
        theirs = _pair(ours)
        with pytest.raises(RuntimeError):
            clip_by_norm_(ours, 1.0, error_if_nonfinite=True)
        with pytest.raises(RuntimeError):
            torch.nn.utils.clip_grad_norm_(theirs, 1.0, error_if_nonfinite=True)
        a, b = clip_by_norm_(ours, 1.0), torch.nn.utils.clip_grad_norm_(theirs, 1.0)
        assert torch.equal(a.isnan(), b.isnan()) and (a.isnan() or a == b)
        for p, q in zip(ours, theirs):  # the same NaNs and zeros where PyTorch puts them
            assert torch.equal(torch.nan_to_num(p.grad, nan=7.0), torch.nan_to_num(q.grad, nan=7.0))


def test_clip_by_norm_of_nothing_and_zero():
    assert float(clip_by_norm_([], 1.0)) == 0.0
    p = torch.zeros(3, dtype=torch.float64, requires_grad=True)
    p.grad = torch.zeros(3, dtype=torch.float64)
    assert float(clip_by_norm_(p, 1.0)) == 0.0 and torch.equal(p.grad, torch.zeros(3, dtype=torch.float64))


@pytest.mark.parametrize("model", ["mlp", "lstm", "tensor"])
def test_clip_by_value_matches_pytorch(model):
    ours = _models()[model]
    theirs = _pair(ours)
    nu = float(0.3 * max(p.grad.abs().max() for p in ours))
    clip_by_value_(ours, nu)
    torch.nn.utils.clip_grad_value_(theirs, nu)
    assert all(torch.equal(a.grad, b.grad) for a, b in zip(ours, theirs))
    assert max(float(p.grad.abs().max()) for p in ours) == pytest.approx(nu)


@pytest.fixture(scope="module")
def directions():
    return clip_directions(DirectionConfig())  # the chapter's (and the widget's) setting: cheap in any mode


def test_norm_clipping_keeps_the_direction_value_clipping_turns_it(directions):
    d = directions
    assert torch.allclose(d.cos_norm, torch.ones_like(d.cos_norm), atol=1e-12, rtol=0)
    nus = torch.tensor(d.config.nus, dtype=torch.float64)
    clipped = d.clipped_fraction > 0
    assert clipped.any() and (~clipped).any()
    assert (d.cos_value[~clipped] == 1).all() or torch.allclose(d.cos_value[~clipped], torch.ones(1, dtype=torch.float64), atol=1e-12)
    assert (d.cos_value[clipped] < 1 - 1e-6).all()
    # the chapter's sentence: once ν is below a tenth of the largest coordinate, the cosine is below 0.9
    small = nus < 0.1 * d.gradient.abs().max()
    assert (d.cos_value[small] < 0.9).all()
    expected = torch.clamp(nus / (d.norm + EPS), max=1.0) * d.norm
    assert torch.allclose(d.norm_after_norm, expected, rtol=1e-12)
    assert (d.norm_after_value <= d.norm * (1 + 1e-12)).all()


def test_a_few_clamped_coordinates_turn_the_direction(directions):
    """The chapter (the widget's default ν = 0.01): value clipping clamps under 0.2% of the coordinates of the
    digits MLP's gradient and the cosine falls below 0.9; norm clipping at any ν keeps it at 1. On the
    U(±2) network ν = 1 clamps most coordinates and the cosine is below 0.5."""
    d = directions
    i = min(range(len(d.config.nus)), key=lambda j: abs(math.log(d.config.nus[j] / 0.01)))
    assert float(d.clipped_fraction[i]) < 0.002 and float(d.cos_value[i]) < 0.9
    big = clip_directions(DirectionConfig(net=NetConfig(init="large"), nus=(1.0,)))
    assert big.norm > 1000 and float(big.clipped_fraction[0]) > 0.5 and float(big.cos_value[0]) < 0.5


def test_cliff_gradient_matches_autograd():
    for w0, b0 in [(5.0, -3.5), (5.0, -2.612), (3.0, 1.0), (8.0, -4.48), (-2.0, 0.5)]:
        w = torch.tensor(w0, dtype=torch.float64, requires_grad=True)
        b = torch.tensor(b0, dtype=torch.float64, requires_grad=True)
        loss = cliff_loss(w, b)
        loss.backward()
        ours = cliff_grad(w0, b0)
        assert ours[0] == pytest.approx(float(loss.detach()), rel=1e-12, abs=1e-300)
        assert ours[1] == pytest.approx(float(w.grad), rel=1e-9, abs=1e-300)
        assert ours[2] == pytest.approx(float(b.grad), rel=1e-9, abs=1e-300)


def test_the_cliff_throws_plain_descent_and_clipping_stays():
    """At the chapter's settings (start (5, −3.5), η = 1, ν = 0.5, 100 steps): the plain run meets the wall,
    one step carries it more than 5 units off onto the far plateau, where it stays (𝓛 ≈ 0.09, the loss of
    sigmoid(x_T) = 1); the clipped run never moves more than η·ν per step and ends near the minimum."""
    r = cliff(CliffConfig(grid=pick(161, 11)))
    step, distance = r.jump
    assert distance > 5.0 and r.grad_norms[0, step] > 10 * r.config.max_norm
    assert float(r.losses[0, -1]) == pytest.approx((1 - 0.7) ** 2, abs=0.005)
    moves = (r.paths[1, 1:] - r.paths[1, :-1]).norm(dim=1)
    assert float(moves.max()) <= r.config.lr * r.config.max_norm * (1 + 1e-9)
    assert float(r.losses[1, -1]) < 1e-3 < float(r.losses[0, -1])
    assert r.diverged_at is None


def test_a_large_step_can_miss_the_wall():
    """At η = 3 (the widget's grid) plain descent jumps over the thin wall without landing on it: its gradient
    never exceeds 1 and it ends low; clipping matters only for a run that meets the wall."""
    r = cliff(CliffConfig(lr=3.0, grid=2))
    assert float(r.grad_norms[0].max()) < 1.0 and float(r.losses[0, -1]) < 1e-2


def test_the_surface_has_a_wall():
    r = cliff(CliffConfig(grid=201, window=(5.0, 5.0 + 1e-9, -3.0, -2.2)))
    along_b = r.surface[0]
    jumps = along_b[1:] - along_b[:-1]
    assert float(jumps.abs().max()) > 0.3  # 𝓛 drops from about 0.35 to about 0.01 between two grid points


def test_norm_survey_runs_and_counts():
    s = norm_survey(NormSurveyConfig(nets=(("small", NetConfig(depth=3, width=16)),), steps=pick(20, 5)))
    assert s.norms.shape == (1, s.config.steps) and torch.isfinite(s.norms).all()
    assert 0 <= float(s.fraction_above(1.0)[0]) <= 1 and float(s.fraction_above(0.0)[0]) == 1.0


@pytest.mark.parametrize("make, words", [
    (lambda: DirectionConfig(batch_size=0), "batch_size"),
    (lambda: DirectionConfig(nus=(0.1, -1.0)), "positive"),
    (lambda: NormSurveyConfig(lr=0.0), "learning rate"),
    (lambda: NormSurveyConfig(nets=()), "at least one"),
    (lambda: CliffConfig(max_norm=0.0), "positive"),
    (lambda: CliffConfig(window=(2.0, 1.0, 0.0, 1.0)), "increasing"),
    (lambda: CliffConfig(steps=0), "at least"),
])
def test_configs_reject_nonsense(make, words):
    with pytest.raises(ValueError, match=words):
        make()
