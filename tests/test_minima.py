"""Chapter 1's small network and its minima: batched training is plain per-seed training (checked against
nn.Sequential and torch.optim.SGD), shuffling hidden units leaves the function alone, weight matching
undoes a shuffle, and the chapter's claims about narrow and wide networks hold at the notebook's fast size."""
from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F

from gradlab.data import digits
from gradlab.minima import (Interpolation, MinimaConfig, init_mlps, interpolate, loss_along_line, match_hidden,
                            mlp_forward, mlp_loss, permute_hidden, select, train_mlps)
from gradlab.modes import pick


def test_digits_are_scikit_learns_in_the_unit_interval():
    x, y = digits()
    assert x.shape == (1797, 64) and y.shape == (1797,)
    assert float(x.min()) == 0.0 and float(x.max()) == 1.0 and sorted(y.unique().tolist()) == list(range(10))


def test_a_seeds_network_does_not_depend_on_the_other_seeds():
    alone = init_mlps(8, (3,), 64, 10)
    together = init_mlps(8, (1, 3, 5), 64, 10)
    for a, b in zip(alone, together):
        torch.testing.assert_close(a[0], b[1], rtol=0, atol=0)
    w1 = together[0]
    assert float(w1.abs().max()) <= 1 / 64**0.5 and not torch.equal(w1[0], w1[1])


def test_batched_training_is_each_network_trained_alone_with_torch():
    """Two seeds trained together end where nn.Sequential + torch.optim.SGD takes each one alone."""
    cfg = MinimaConfig(hidden=6, seeds=(0, 1), steps=25, lr=0.3, momentum=0.9, alpha=1e-2)
    ours = train_mlps(cfg)
    x, y = digits()
    start = init_mlps(cfg.hidden, cfg.seeds, 64, 10)
    for s in range(2):
        net = torch.nn.Sequential(torch.nn.Linear(64, cfg.hidden), torch.nn.ReLU(), torch.nn.Linear(cfg.hidden, 10))
        net = net.double()
        with torch.no_grad():
            for p, q in zip(net.parameters(), start):
                p.copy_(q[s])
        opt = torch.optim.SGD(net.parameters(), lr=cfg.lr, momentum=cfg.momentum)
        for _ in range(cfg.steps):
            opt.zero_grad()
            loss = F.cross_entropy(net(x), y) + 0.5 * cfg.alpha * sum((p * p).sum() for p in net.parameters())
            loss.backward()
            opt.step()
        for p, q in zip(net.parameters(), ours.params):
            torch.testing.assert_close(p.detach(), q[s], rtol=1e-10, atol=1e-12)
        final = F.cross_entropy(net(x), y) + 0.5 * cfg.alpha * sum((p * p).sum() for p in net.parameters())
        assert float(ours.losses[s]) == pytest.approx(float(final.detach()), rel=1e-12)


def test_shuffling_hidden_units_keeps_the_function_and_matching_undoes_it():
    x, _ = digits()
    a = init_mlps(12, (0,), 64, 10)
    perm = torch.randperm(12, generator=torch.Generator().manual_seed(5))
    b = permute_hidden(a, perm)
    assert not torch.equal(a[0], b[0])
    torch.testing.assert_close(mlp_forward(a, x)[1], mlp_forward(b, x)[1])
    order = match_hidden(a, b)
    for p, q in zip(a, permute_hidden(b, order)):
        torch.testing.assert_close(p, q, rtol=0, atol=0)


def test_loss_along_a_line():
    x, y = digits()
    a, b = init_mlps(5, (0,), 64, 10), init_mlps(5, (1,), 64, 10)
    line = loss_along_line(a, b, torch.tensor([0.0, 0.5, 1.0], dtype=torch.float64), x, y, alpha=0.1)
    mid = tuple(0.5 * (p + q) for p, q in zip(a, b))
    expected = torch.cat([mlp_loss(a, x, y, 0.1), mlp_loss(mid, x, y, 0.1), mlp_loss(b, x, y, 0.1)])
    torch.testing.assert_close(line, expected)
    ts = torch.linspace(0, 1, 5, dtype=torch.float64)
    bump = Interpolation(ts, ts * 2 + torch.tensor([0, 0, 1.5, 0, 0], dtype=torch.float64), ts, ts)
    assert bump.barrier(bump.between) == pytest.approx(1.5) and bump.barrier(bump.permuted) == pytest.approx(0.0)


def test_a_dead_unit_gets_no_gradient_from_the_data():
    x, y = digits()
    w1, b1, w2, b2 = init_mlps(3, (0,), 64, 10)
    w1, b1 = w1.clone(), b1.clone()
    w1[0, 1], b1[0, 1] = -w1[0, 1].abs(), -1.0  # pixels are ≥ 0: unit 1 is negative on every image
    params = tuple(p.requires_grad_(True) for p in (w1, b1, w2, b2))
    hidden, _ = mlp_forward(params, x)
    assert float(hidden.detach()[0, :, 1].abs().max()) == 0.0
    grads = torch.autograd.grad(mlp_loss(params, x, y, alpha=0.0).sum(), params)
    assert float(grads[0][0, 1].abs().max()) == 0.0 and float(grads[1][0, 1]) == 0.0
    assert float(grads[0][0, 0].abs().max()) > 0


@pytest.fixture(scope="module")
def fast_chapter_run():
    """The chapter's experiment at its fast size (the full size only adds seeds and steps)."""
    cfg = MinimaConfig(seeds=tuple(range(pick(8, 4))), steps=pick(1000, 300))
    return train_mlps(replace(cfg, hidden=4)), train_mlps(cfg)


def test_wide_runs_end_at_nearly_one_loss_and_narrow_ones_do_not(fast_chapter_run):
    narrow, wide = fast_chapter_run
    assert float(wide.losses.max() / wide.losses.min()) < 1.1
    assert float(narrow.losses.max() / narrow.losses.min()) > 1.3
    assert float(narrow.losses.min()) > 2 * float(wide.losses.max())
    # the worst narrow run has lost a hidden unit, and every run that lost more units ended higher;
    # the wide ones have units to spare and all fit the data
    worst = int(narrow.losses.argmax())
    assert int(narrow.dead_units[worst]) >= 1
    for fewer in narrow.dead_units.unique().tolist():
        more = narrow.dead_units > fewer
        if more.any():
            assert float(narrow.losses[more].min()) > float(narrow.losses[narrow.dead_units == fewer].max())
    assert float(wide.accuracies.min()) > 0.99 and float(wide.grad_norms.max()) < 1e-2


def test_straight_lines_between_solutions_cross_a_barrier_that_alignment_removes(fast_chapter_run):
    _, wide = fast_chapter_run
    line = interpolate(wide)
    torch.testing.assert_close(line.between[[0, -1]], wide.losses[:2])
    torch.testing.assert_close(line.permuted[[0, -1]], wide.losses[[0, 0]])  # the same function at both ends
    between, permuted, aligned = (line.barrier(v) for v in (line.between, line.permuted, line.aligned))
    assert between > 2 * float(wide.losses.max()) and permuted > 2 * float(wide.losses.max())
    assert aligned < between / 4
