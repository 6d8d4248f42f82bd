"""Chapter 2, Experiment 5: accumulated micro-batch gradients equal the full-batch gradient only when chunks are
equal (or weighted by size) and no layer couples the examples of a batch."""
import pytest
import torch
import torch.nn.functional as F

from gradlab.microbatch import CASES, MicrobatchCase, accumulated_gradient, accumulation_table, build_net, \
    full_batch_gradient
from gradlab.seeding import generator


def _batch(n, seed=1):
    g = generator(seed)
    return torch.randn(n, 5, generator=g, dtype=torch.float64), torch.randn(n, 1, generator=g, dtype=torch.float64)


def test_the_table_separates_exact_cases_from_the_two_failures():
    table = accumulation_table()
    assert set(table) == {c.name for c in CASES}
    exact = [c.name for c in CASES if c.norm != "batchnorm" and (len(set(c.chunks)) == 1 or c.weighting == "B_j/B")]
    assert len(exact) == 3
    for name, err in table.items():
        assert (err < 1e-13) == (name in exact), (name, err)
        if name not in exact:
            assert err > 1e-3, (name, err)


def test_dividing_by_the_number_of_chunks_weights_each_example_by_one_over_m_b_j():
    # the explanation in the chapter: with chunks B_j, "loss / M" is the full-batch gradient of Σ_i ℓ_i / (M·B_j(i))
    case = MicrobatchCase("uneven", (11, 11, 10))
    net = build_net()
    x, y = _batch(32)
    acc = accumulated_gradient(net, x, y, case)
    weights = torch.cat([torch.full((n, 1), 1 / (3 * n), dtype=torch.float64) for n in case.chunks])
    net.zero_grad()
    (weights * F.mse_loss(net(x), y, reduction="none")).sum().backward()
    reweighted = torch.cat([p.grad.flatten() for p in net.parameters()])
    assert torch.allclose(acc, reweighted, rtol=1e-12, atol=1e-14)
    assert not torch.allclose(acc, full_batch_gradient(net, x, y), rtol=1e-6)


def test_batchnorm_couples_the_examples_layernorm_does_not():
    x, y = _batch(32)
    for norm, equal in [("batchnorm", False), ("layernorm", True), ("none", True)]:
        net = build_net(norm)
        full = full_batch_gradient(net, x, y)
        acc = accumulated_gradient(net, x, y, MicrobatchCase(norm, (8, 8, 8, 8), norm=norm))
        assert torch.allclose(acc, full, rtol=1e-10, atol=1e-13) == equal, norm


def test_chunks_must_cover_the_batch():
    x, y = _batch(10)
    with pytest.raises(ValueError, match="add up"):
        accumulated_gradient(build_net(), x, y, MicrobatchCase("bad", (4, 4)))
