"""Chapter 1's surfaces: closed-form gradients agree with autograd, minima and saddles are where they say."""
import math

import pytest
import torch
from torch.func import hessian

from gradlab.landscapes import Quadratic, Rosenbrock, Saddle, make_surface

SURFACES = [Quadratic(kappa=10.0), Quadratic(kappa=250.0, angle=0.7), Rosenbrock(), Rosenbrock(a=0.5, b=20.0),
            Saddle(), Saddle(c=3.0)]


@pytest.mark.parametrize("surface", SURFACES, ids=repr)
def test_closed_form_gradient_equals_autograd(surface):
    g = torch.Generator().manual_seed(1)
    p = (3 * torch.rand(64, 2, generator=g, dtype=torch.float64) - 1.5).requires_grad_(True)
    auto, = torch.autograd.grad(surface.loss(p).sum(), p)
    torch.testing.assert_close(surface.grad(p.detach()), auto, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("surface", SURFACES, ids=repr)
def test_minimizers_are_stationary_and_at_the_minimum_value(surface):
    for m in surface.minimizers():
        p = torch.tensor(m, dtype=torch.float64)
        assert surface.grad(p).abs().max() < 1e-12
        assert float(surface.loss(p)) == pytest.approx(surface.minimum_value(), abs=1e-12)
        assert float(surface.distance_to_minimum(p)) == 0.0
    g = torch.Generator().manual_seed(2)
    p = 4 * torch.rand(256, 2, generator=g, dtype=torch.float64) - 2
    assert bool((surface.loss(p) >= surface.minimum_value() - 1e-12).all())


def test_quadratic_curvatures_are_one_and_kappa_whatever_the_rotation():
    for angle in (0.0, 0.3, math.pi / 4):
        q = Quadratic(kappa=37.0, angle=angle)
        h = hessian(lambda p: q.loss(p))(torch.zeros(2, dtype=torch.float64))
        torch.testing.assert_close(h, q.hessian(), rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(torch.linalg.eigvalsh(h), torch.tensor([1.0, 37.0], dtype=torch.float64))
    assert Quadratic(kappa=37.0).smoothness == 37.0


def test_saddle_has_curvatures_one_and_minus_c_at_the_origin():
    s = Saddle(c=2.5)
    origin = torch.zeros(2, dtype=torch.float64)
    assert float(s.grad(origin).abs().max()) == 0.0
    h = hessian(lambda p: s.loss(p))(origin)
    torch.testing.assert_close(h, torch.diag(torch.tensor([1.0, -2.5], dtype=torch.float64)))
    assert s.negative_curvature == -2.5
    # on the x-axis the gradient has no y-component: the axis is the saddle's stable manifold
    on_axis = torch.tensor([[0.7, 0.0], [-1.3, 0.0]], dtype=torch.float64)
    assert bool((s.grad(on_axis)[:, 1] == 0).all())


def test_make_surface():
    assert make_surface("quadratic", kappa=42.0) == Quadratic(kappa=42.0)
    assert isinstance(make_surface("rosenbrock"), Rosenbrock) and isinstance(make_surface("saddle"), Saddle)
    with pytest.raises(ValueError, match="unknown surface"):
        make_surface("himmelblau")


def test_rosenbrock_hessian_equals_autograd():
    for surface in (Rosenbrock(), Rosenbrock(a=0.5, b=20.0)):
        g = torch.Generator().manual_seed(3)
        pts = 3 * torch.rand(5, 2, generator=g, dtype=torch.float64) - 1.5
        for p in pts:
            torch.testing.assert_close(surface.hessian(p), hessian(lambda q: surface.loss(q))(p), rtol=1e-12, atol=1e-12)
        assert surface.hessian(pts).shape == (5, 2, 2)
    # at the minimum (1, 1) of the standard valley: [[802, −400], [−400, 200]]
    h = Rosenbrock().hessian(torch.tensor([1.0, 1.0], dtype=torch.float64))
    torch.testing.assert_close(h, torch.tensor([[802.0, -400.0], [-400.0, 200.0]], dtype=torch.float64))
