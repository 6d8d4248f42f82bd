"""Chapter 6, Experiment 3 (gradlab.normalization.smoothness): Santurkar et al.'s (2018) evidence, reproduced small.
The claims are tested at the chapter's settings (SmoothnessConfig's defaults: depth 8, width 64, plain SGD at
η = 0.5, batches of 64, 10 epochs, noise n = 0.5, seed 0); the measures' definitions against direct computations."""
import copy
import functools
import math

import pytest
import torch
import torch.nn.functional as F

from gradlab.batched_mlp import digits_split
from gradlab.normalization.smoothness import (BatchNoise, SmoothnessConfig, _probe, build_network, smoothness)
from gradlab.seeding import generator

SMALL = dict(depth=4, width=16, epochs=1, probe_layer=2, ics_layer=2)


@functools.lru_cache(maxsize=None)
def run(network: str, **kw):
    return smoothness(SmoothnessConfig(network=network, **kw))


def test_config_rejects_nonsense():
    for kw, text in ((dict(network="layer"), "network"), (dict(lr=0.0), "learning rate"),
                     (dict(lr=float("nan")), "learning rate"), (dict(depth=2), "depth"),
                     (dict(batch_size=1), "batch size"), (dict(noise=0.0), "noise"),
                     (dict(probe_layer=0), "probe_layer"), (dict(ics_layer=8), "ics_layer"),
                     (dict(multipliers=()), "multipliers"), (dict(multipliers=(0.1, -1.0)), "multipliers"),
                     (dict(units_shown=0), "units_shown")):
        with pytest.raises(ValueError, match=text):
            SmoothnessConfig(**kw)


def test_noise_has_the_documented_distribution_and_is_off_in_evaluation():
    noise = BatchNoise(0.5, generator(0))
    x = torch.zeros(20000, 8)
    b = noise(x)  # a·0 + b: per unit, mean m_b ∈ [−n, n] and spread s_b ∈ [0, n]
    assert b.mean(0).abs().max() <= 0.5 + 0.02 and b.std(0).max() <= 0.5 + 0.02
    a = noise(torch.ones(20000, 8)) - noise.last[1]  # a·1: mean m_a ∈ [1/(1 + n), 1 + n], spread ≤ n/2
    assert a.mean(0).min() >= 1 / 1.5 - 0.02 and a.mean(0).max() <= 1.5 + 0.02 and a.std(0).max() <= 0.25 + 0.02
    assert not torch.allclose(noise(x), b)  # a fresh draw every step
    noise.hold = True
    assert torch.equal(noise(x), noise(x))
    noise.eval()
    assert torch.equal(noise(torch.ones(3, 8)), torch.ones(3, 8))


def test_the_noisy_network_has_noise_after_every_batch_norm_layer():
    model = build_network(SmoothnessConfig(network="noisy", depth=6), generator(1))
    names = [type(m).__name__ for m in model.modules() if type(m).__name__ in ("BatchNorm1d", "BatchNoise")]
    assert names == ["BatchNorm1d", "BatchNoise"] * 5


@pytest.mark.parametrize("network", ["batch", "noisy"])
def test_probes_do_not_disturb_the_training(network):
    """The probes' passes change neither the weights, nor the running statistics, nor the noise's stream."""
    often = run(network, probe_every=1, **SMALL)
    rarely = run(network, probe_every=1000, **SMALL)
    assert torch.equal(often.val_loss, rarely.val_loss) and torch.equal(often.unit_mean, rarely.unit_mean)


def test_probe_measures_match_their_definitions():
    c = SmoothnessConfig(network="batch", lr=0.5, multipliers=(0.5, 2.0), **SMALL)
    model = build_network(c, generator(2))
    split = digits_split(0)
    x, y = split.x_train[:64], split.y_train[:64]

    def loss_grads(m):
        m.zero_grad()
        loss = F.cross_entropy(m(x), y)
        loss.backward()
        return float(loss.detach()), [p.grad.clone() for p in m.parameters()]

    _, g = loss_grads(copy.deepcopy(model))
    losses, changes = [], []
    for s in c.multipliers:
        moved = copy.deepcopy(model)
        with torch.no_grad():
            for p, gp in zip(moved.parameters(), g):
                p.sub_(s * c.lr * gp)
        loss, g2 = loss_grads(moved)
        losses.append(loss)
        changes.append(math.sqrt(sum(float(((a - b) ** 2).sum()) for a, b in zip(g2, g))))
    g_norm = math.sqrt(sum(float((a ** 2).sum()) for a in g))
    effective_l = max(ch / (s * c.lr * g_norm) for ch, s in zip(changes, c.multipliers))
    # ICS: the step on every parameter registered before the target weight (the layers below it), then G′
    target = model.linears()[c.ics_layer].weight
    after = copy.deepcopy(model)
    names = [n for n, _ in model.named_parameters()]
    cut = names.index(next(n for n, p in model.named_parameters() if p is target))
    with torch.no_grad():
        for i, (p, gp) in enumerate(zip(after.parameters(), g)):
            if i < cut:
                p.sub_(c.lr * gp)
    _, g_after = loss_grads(after)
    G, G2 = g[cut].flatten(), g_after[cut].flatten()
    variation, change, b, distance, cosine = _probe(model, c, x, y)
    assert variation == pytest.approx(max(losses) - min(losses), rel=1e-4)
    assert change == pytest.approx(max(changes), rel=1e-4)
    assert b == pytest.approx(effective_l, rel=1e-4)
    assert distance == pytest.approx(float((G - G2).norm()), rel=1e-4)
    assert cosine == pytest.approx(float(F.cosine_similarity(G, G2, dim=0)), abs=1e-5)


def test_noisy_batch_norm_shifts_as_much_as_the_standard_net_and_trains_like_batch_norm():
    """Santurkar et al. §2.1: far more distribution shift than batch norm, about the same training."""
    std, bn, noisy = run("standard"), run("batch"), run("noisy")
    assert noisy.shift > 3 * bn.shift  # 0.55 against 0.11
    assert noisy.shift > 0.8 * std.shift  # 0.55 against 0.54
    assert float(noisy.val_loss[-1]) < float(bn.val_loss[-1]) + 0.1  # 0.18 against 0.14
    assert float(noisy.val_loss[-1]) < float(std.val_loss[-1]) - 0.3  # the standard net: 0.69


def test_batch_norm_smooths_the_loss_along_the_gradient():
    """Santurkar et al. §3.1: along −g, batch norm's loss varies less and its gradient stays more predictive."""
    std, bn = run("standard"), run("batch")
    assert float(bn.loss_variation.median()) < float(std.loss_variation.median()) / 4  # 0.089 against 1.17
    assert float(bn.grad_change.median()) < float(std.grad_change.median()) / 2  # 1.5 against 5.9


def test_batch_norm_does_not_remove_santurkars_internal_covariate_shift():
    """Definition 2.1: layer 5's gradient changes direction when the layers below take the step, with batch norm too."""
    assert float(run("batch").ics_cosine.median()) < 0.6  # 0.34 (standard 0.32)


def test_a_diverging_run_reports_its_step():
    r = smoothness(SmoothnessConfig(network="standard", lr=1e4, **SMALL))
    assert r.diverged_at is not None and r.diverged_at < 20
    assert math.isnan(float(r.val_loss[-1]))


def test_at_a_learning_rate_where_both_train_batch_norm_leaves_the_ics_as_it_is():
    """η = 0.1 (both nets train): the cosine between G and G′ is about the same with and without batch norm."""
    std, bn = run("standard", lr=0.1), run("batch", lr=0.1)
    assert abs(float(bn.ics_cosine.median()) - float(std.ics_cosine.median())) < 0.15  # 0.74 against 0.73
