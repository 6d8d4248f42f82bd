"""Chapter 3's race and rotation: the batched runs are torch.optim's own runs, divergence is reported with the
optimizer's name, and rotation changes the adaptive methods' runs but not gradient descent's or momentum's."""
import math

import pytest
import torch

from gradlab.landscapes import Quadratic, Rosenbrock, Saddle
from gradlab.race import KINDS, TRACKS, RaceConfig, Racer, RotationConfig, race, rotation_sweep
from gradlab.widgets import get

ONE_EACH = (Racer("GD", 0.02), Racer("momentum", 0.02, 0.8), Racer("Nesterov", 0.02, 0.9), Racer("Adagrad", 0.3),
            Racer("RMSprop", 0.01), Racer("Adam", 0.05, 0.85))


def alone(racer: Racer, surface, start, steps: int) -> torch.Tensor:
    """The same racer run the plain way: its own torch.optim optimizer, gradients by autograd."""
    cls, settings = racer.group()
    p = torch.tensor(start, dtype=torch.float64, requires_grad=True)
    opt = cls([p], lr=racer.lr, **{k: v for k, v in settings.items()})
    out = [p.detach().clone()]
    for _ in range(steps):
        opt.zero_grad()
        surface.loss(p).backward()
        opt.step()
        out.append(p.detach().clone())
    return torch.stack(out)


@pytest.mark.parametrize("surface", [Quadratic(kappa=10.0, angle=0.4), Saddle(), Rosenbrock()], ids=repr)
def test_each_racer_runs_exactly_as_its_torch_optimizer_alone(surface):
    start = (-1.2, 0.8)
    racers = ONE_EACH if not isinstance(surface, Rosenbrock) else tuple(
        Racer(r.kind, r.lr / 20 if r.kind in ("GD", "momentum", "Nesterov") else r.lr, r.beta) for r in ONE_EACH)
    result = race(RaceConfig(surface, start, racers, steps=200))
    assert result.labels == KINDS and result.diverged_at is None
    for racer, path in zip(racers, result.paths):
        torch.testing.assert_close(path, alone(racer, surface, start, 200), rtol=1e-11, atol=1e-13)


def test_steps_to_tolerance_of_gd_on_a_quadratic_is_the_closed_forms():
    """x_k = ((1 − η)^k x0, (1 − ηκ)^k y0), so f_k = ½((1 − η)^{2k} x0² + κ(1 − ηκ)^{2k} y0²)."""
    kappa, lr, (x0, y0), tol = 10.0, 0.15, (-1.5, 0.5), 1e-6
    f = [0.5 * ((1 - lr) ** (2 * k) * x0**2 + kappa * (1 - lr * kappa) ** (2 * k) * y0**2) for k in range(400)]
    expected = next(k for k, v in enumerate(f) if v <= tol)
    result = race(RaceConfig(Quadratic(kappa=kappa), (x0, y0), (Racer("GD", lr),), steps=300, tol=tol))
    assert result.steps_to_tol == (expected,)
    assert race(RaceConfig(Quadratic(kappa=kappa), (x0, y0), (Racer("GD", lr),), steps=expected - 1,
                           tol=tol)).steps_to_tol == (None,)


def test_divergence_names_the_racer_and_its_analytic_step():
    """From (0, y0) GD keeps x = 0 and y_k = (1 − ηκ)^k y0: |y_k| first passes R = 1e6 at ⌊ln(R/y0)/ln|1 − ηκ|⌋ + 1."""
    kappa, lr, y0 = 10.0, 0.25, 0.7
    expected = math.floor(math.log(1e6 / y0) / math.log(abs(1 - lr * kappa))) + 1
    racers = (Racer("Adam", 0.1), Racer("GD", lr), Racer("momentum", 0.01))
    result = race(RaceConfig(Quadratic(kappa=kappa), (0.0, y0), racers, steps=200))
    assert (result.diverged_at, result.diverged_run) == (expected, "GD")
    assert result.diverged == (None, expected, None)
    assert len(result.paths[1]) == expected and bool(torch.isfinite(result.gaps[1]).all())
    assert len(result.paths[0]) == 201


def test_the_race_widget_says_which_run_diverged():
    exp = get("ch03.race")
    out = exp.run({"track": "Rosenbrock", "lr": 0.1})
    assert out.ok and out.result.diverged_run in ("GD", "momentum", "Nesterov")
    assert f"The run {out.result.diverged_run} diverged at step {out.result.diverged_at}" in out.message
    fine = exp.run({"track": "Rosenbrock", "lr": 1e-3})
    assert fine.ok and fine.result.diverged_at is None and "diverged" not in fine.message


def test_every_track_starts_inside_its_box():
    for surface, (x, y) in TRACKS.values():
        x0, x1, y0, y1 = surface.box
        assert x0 < x < x1 and y0 < y < y1


SWEEP = RotationConfig(kappa=30.0, angles=tuple(math.radians(d) for d in (0, 15, 30, 45, 60, 90)), max_steps=2000)


def test_rotation_leaves_gd_and_momentum_unchanged():
    """Both are rotation-equivariant (x ← x − ηv, v ← βv + Hx commute with x ↦ Rx), and the start turns with
    the surface: the loss sequence is the same at every angle, up to rounding."""
    sweep = rotation_sweep(SWEEP)
    for i, kind in enumerate(sweep.labels[:2]):
        assert kind in ("GD", "momentum")
        losses = sweep.losses[:, i]
        torch.testing.assert_close(losses, losses[:, :1].expand_as(losses), rtol=1e-9, atol=1e-300)
        assert bool((sweep.steps[i] == sweep.steps[i, 0]).all())
    # and the paths themselves are the angle-0 path turned: x_k(θ) = R(θ) x_k(0)
    c, s = math.cos(SWEEP.angles[3]), math.sin(SWEEP.angles[3])
    rot = torch.tensor([[c, -s], [s, c]], dtype=torch.float64)
    torch.testing.assert_close(sweep.points[:, 0, 3], sweep.points[:, 0, 0] @ rot.T, rtol=1e-9, atol=1e-12)


def test_diagonal_methods_lose_their_advantage_when_rotated():
    sweep = rotation_sweep(SWEEP)
    for i, kind in enumerate(sweep.labels):
        if kind in ("Adagrad", "RMSprop", "Adam"):
            aligned, diagonal = float(sweep.steps[i, 0]), float(sweep.steps[i, 3])
            assert aligned < diagonal / 2, f"{kind}: {aligned} steps at 0°, {diagonal} at 45°"
            assert float(sweep.steps[i, 5]) == aligned  # 90°: axis-aligned again (u and v swap places)...
    # ...because at 0° a diagonal method's iterates do not depend on κ at all: every update divides the
    # coordinate's gradient λ_i x_i by a root of an average of (λ_i x_i)², so λ_i cancels (ε aside).
    for kappa in (3.0, 300.0):
        other = rotation_sweep(RotationConfig(kappa=kappa, angles=(0.0, math.pi / 4), max_steps=300, tol=0.0))
        ref = rotation_sweep(RotationConfig(kappa=SWEEP.kappa, angles=(0.0, math.pi / 4), max_steps=300, tol=0.0))
        for i, kind in enumerate(ref.labels):
            if kind in ("Adagrad", "RMSprop", "Adam"):
                torch.testing.assert_close(other.points[:, i, 0], ref.points[:, i, 0], rtol=1e-6, atol=1e-8)
                assert not torch.allclose(other.points[:, i, 1], ref.points[:, i, 1], rtol=1e-3, atol=1e-3)
