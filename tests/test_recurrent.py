"""Chapter 5, Experiment 6: gradients through time in RNN, LSTM, GRU and a Transformer; the long-range task."""
import math
from dataclasses import replace

import pytest
import torch
from torch import nn

from gradlab.gradients.long_range import LongRangeConfig, long_range, marked_batch
from gradlab.gradients.recurrent import (RECURRENT, ThroughTimeConfig, as_cell, build_recurrent, build_transformer,
                                         fit_factor, forget_bias, spectral_radius, through_time)
from gradlab.modes import pick

# The chapter's settings for Experiment 6 (the widget's, in full mode).
CHAPTER = ThroughTimeConfig(seq_len=100, hidden=64, d_in=32, batch=32)


def _lstm_by_hand(lstm: nn.LSTM, x: torch.Tensor) -> torch.Tensor:
    """h_τ of a one-layer LSTM written out with PyTorch's documented gate order i, f, g, o."""
    h = torch.zeros(x.shape[0], lstm.hidden_size, dtype=x.dtype)
    c = torch.zeros_like(h)
    out = []
    for tau in range(x.shape[1]):
        z = x[:, tau] @ lstm.weight_ih_l0.T + lstm.bias_ih_l0 + h @ lstm.weight_hh_l0.T + lstm.bias_hh_l0
        i, f, g, o = z.chunk(4, dim=1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        h = torch.sigmoid(o) * torch.tanh(c)
        out.append(h)
    return torch.stack(out, 1)


def test_lstm_gate_order_is_input_forget_cell_output():
    lstm = build_recurrent("lstm", 3, 5, seed=2, forget=1.5)
    x = torch.randn(4, 6, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(_lstm_by_hand(lstm, x), lstm(x)[0], atol=1e-12, rtol=0)
    # the forget rows (5 … 10) are the ones set, and only they
    assert torch.equal(forget_bias(lstm), torch.full((5,), 1.5, dtype=torch.float64))
    assert torch.equal(lstm.bias_hh_l0[5:10], torch.zeros(5, dtype=torch.float64))
    other = build_recurrent("lstm", 3, 5, seed=2)
    for rows in (slice(0, 5), slice(10, 20)):
        assert torch.equal(lstm.bias_ih_l0[rows], other.bias_ih_l0[rows])
    # swapping the forget and input rows changes the output: the order matters and the test would see it
    with torch.no_grad():
        swapped = build_recurrent("lstm", 3, 5, seed=2, forget=1.5)
        for b in (swapped.bias_ih_l0, swapped.bias_hh_l0):
            b[:] = torch.cat([b[5:10], b[0:5], b[10:]])
    assert not torch.allclose(_lstm_by_hand(lstm, x), swapped(x)[0], atol=1e-6)


@pytest.mark.parametrize("kind", RECURRENT)
def test_cells_step_the_module_and_share_its_parameters(kind):
    module = build_recurrent(kind, 4, 6, seed=1, rho=0.9)
    cell = as_cell(module)
    assert cell.weight_hh is module.weight_hh_l0
    x = torch.randn(3, 7, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    h = torch.zeros(3, 6, dtype=torch.float64)
    state = (h, h) if kind == "lstm" else h
    hs = []
    for tau in range(7):
        state = cell(x[:, tau], state)
        hs.append(state[0] if kind == "lstm" else state)
    assert torch.allclose(torch.stack(hs, 1), module(x)[0], atol=1e-12, rtol=0)


def test_pytorch_init_is_reproduced_from_the_seed_without_global_state():
    a, b = build_recurrent("gru", 4, 8, seed=5), build_recurrent("gru", 4, 8, seed=5)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    bound = 1 / math.sqrt(8)
    assert all(float(p.detach().abs().max()) <= bound for p in a.parameters())
    flat = torch.cat([p.detach().reshape(-1) for p in a.parameters()])
    assert float(flat.var()) == pytest.approx(bound ** 2 / 3, rel=0.15)  # U(±1/√d_h)


def test_rnn_rescaled_to_the_spectral_radius():
    for rho in (0.5, 1.0, 2.0):
        assert spectral_radius(build_recurrent("rnn", 4, 32, seed=0, rho=rho).weight_hh_l0) == pytest.approx(rho)
    # PyTorch's own U(±1/√d_h): spectral radius near 1/√3 (circular law) at d_h = 64
    assert spectral_radius(build_recurrent("rnn", 4, 64, seed=0).weight_hh_l0) == pytest.approx(3 ** -0.5, rel=0.1)


@pytest.mark.parametrize("kind", RECURRENT)
def test_retained_state_gradients_are_the_total_derivative(kind):
    """∂𝓛/∂h_τ from the stepped cells equals the gradient with respect to the initial state of the module run
    on the rest of the sequence from h_τ: the whole future dependence of the loss on h_τ."""
    cfg = ThroughTimeConfig(kind=kind, seq_len=12, hidden=6, d_in=4, batch=3, classes=3)
    r = through_time(cfg, seed=3)
    g = torch.Generator().manual_seed(4)  # rebuild the same inputs, labels and head
    x = torch.randn(3, 12, 4, generator=g, dtype=torch.float64)
    y = torch.randint(0, 3, (3,), generator=g)
    head = nn.Linear(6, 3, dtype=torch.float64)
    with torch.no_grad():
        for p in head.parameters():
            p.uniform_(-6 ** -0.5, 6 ** -0.5, generator=g)
    module = build_recurrent(kind, 4, 6, seed=3, rho=cfg.rho)
    for tau in (2, 7):
        with torch.no_grad():
            _, state = module(x[:, :tau])
        h0 = (state[0].clone().requires_grad_(True), state[1].clone()) if kind == "lstm" else state.clone().requires_grad_(True)
        out, _ = module(x[:, tau:], h0)
        loss = nn.functional.cross_entropy(head(out[:, -1]), y, reduction="sum")
        grad, = torch.autograd.grad(loss, h0[0] if kind == "lstm" else h0)
        assert float(grad[0].norm(dim=1).mean()) == pytest.approx(float(r.grad_h[tau - 1]), rel=1e-9)


def test_fit_factor_recovers_a_geometric_decay():
    tau = torch.arange(1, 51, dtype=torch.float64)
    assert fit_factor(3.0 * 0.8 ** (50 - tau)) == pytest.approx(0.8, rel=1e-12)
    assert math.isnan(fit_factor(torch.zeros(5)))


@pytest.fixture(scope="module")
def rnn_runs():
    return {rho: through_time(replace(CHAPTER, kind="rnn", rho=rho)) for rho in (0.5, 1.0, 1.5, 2.0)}


def test_rnn_factor_matches_its_prediction(rnn_runs):
    """The chapter: the fitted per-step factor is within 5% of ρ·√E[(1 − h²)²] for ρ from 0.5 to 2, a little
    below it, and below ρ itself (tanh's slope is below 1)."""
    for rho, r in rnn_runs.items():
        assert r.rho == pytest.approx(rho)
        assert 0.95 * r.predicted < r.factor < r.predicted
        assert r.factor < rho
    assert rnn_runs[1.0].factor < 0.8 and rnn_runs[2.0].factor > 1.05  # vanishing at ρ = 1, exploding at 2


def test_rnn_gradient_at_the_first_position(rnn_runs):
    """The chapter: at T_seq = 100, ‖∂𝓛/∂h_1‖ / ‖∂𝓛/∂h_T‖ is below 1e-10 at ρ = 1 and below 1e-30 at ρ = 0.5."""
    ratio = {rho: float(r.grad_h[0] / r.grad_h[-1]) for rho, r in rnn_runs.items()}
    assert ratio[1.0] < 1e-10 and ratio[0.5] < 1e-30 and ratio[2.0] > 1.0


def test_lstm_forget_bias_sets_how_fast_it_forgets():
    """The chapter: at PyTorch's init the LSTM's gradient falls faster per step (×0.61) than the RNN's at ρ = 1
    (×0.77); b_f = 1 gives about ×0.82 and b_f = 2 about ×0.95, so ∂𝓛/∂h_1 grows by orders of magnitude."""
    runs = {b: through_time(replace(CHAPTER, kind="lstm", forget=b)) for b in (None, 1.0, 2.0)}
    assert runs[None].factor < 0.65 < 0.78 < runs[1.0].factor < 0.86 < 0.92 < runs[2.0].factor < 0.98
    assert float(runs[2.0].grad_h[0]) > 1e15 * float(runs[None].grad_h[0])
    gru = through_time(replace(CHAPTER, kind="gru"))
    assert gru.factor < 0.65


def test_transformer_paths_are_flat_the_rnn_decays():
    """Q71: the last position's loss sees every input through one attention hop per layer: ‖∂𝓛/∂x_τ‖ is flat
    in τ (within a factor 1.5 over τ < T_seq; the last input has its own residual path and is larger)."""
    tf = through_time(replace(CHAPTER, kind="transformer"))
    rnn = through_time(replace(CHAPTER, kind="rnn", rho=1.0))
    body = tf.grad_x[:-1]
    assert float(body.max() / body.min()) < 1.5
    assert float(tf.grad_x[-1]) > 10 * float(body.max())
    assert float(tf.grad_x[0] / tf.grad_x[-1]) > 1e-3 > 1e-10 > float(rnn.grad_x[0] / rnn.grad_x[-1])


def test_transformer_layers_are_initialized_apart_from_the_seed():
    a, b = build_transformer(8, heads=2, layers=2, ff=16, seed=1), build_transformer(8, heads=2, layers=2, ff=16, seed=1)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    w0, w1 = (layer.linear1.weight for layer in a.layers)
    assert not torch.equal(w0, w1)  # nn.TransformerEncoder's deep copies would start identical
    assert float(a.layers[0].self_attn.out_proj.bias.detach().abs().max()) == 0.0


def test_marked_batch():
    cfg = LongRangeConfig(seq_len=9, classes=3, distractors=2)
    x, y, delay = marked_batch(cfg, 50, torch.Generator().manual_seed(0))
    assert x.shape == (50, 9, 5) and torch.equal(x.sum(2), torch.ones(50, 9))
    tokens = x.argmax(2)
    assert ((tokens < 3).sum(1) == 1).all()  # exactly one class token per sequence
    mark = (tokens < 3).float().argmax(1)
    assert torch.equal(tokens[torch.arange(50), mark], y) and torch.equal(delay, 8 - mark)
    _, _, first = marked_batch(replace(cfg, position="first"), 10, torch.Generator().manual_seed(0))
    assert (first == 8).all()


def test_long_range_runs_and_records():
    cfg = LongRangeConfig(kind="gru", seq_len=8, steps=pick(40, 12), eval_every=5, eval_size=64, hidden=8, clip=1.0)
    r = long_range(cfg, seed=0)
    assert r.accuracy.shape == (len(r.eval_steps), cfg.bins) and r.eval_steps[-1] == cfg.steps
    assert torch.isfinite(r.loss).all() and (r.grad_first > 0).all() and r.diverged_at is None
    assert ((r.accuracy >= 0) & (r.accuracy <= 1)).all()


@pytest.mark.parametrize("kind, seq_len, learns", [("rnn", 50, False), ("gru", 50, True), ("lstm", 100, True)])
def test_long_range_claim_at_the_chapters_settings(kind, seq_len, learns):
    """The chapter (seed 0, 300 Adam steps, class token at a random position): the plain RNN stays near chance
    on the longest delays at T_seq = 50; the GRU (T_seq = 50) and the LSTM (T_seq = 100) learn them."""
    r = long_range(LongRangeConfig(kind=kind, seq_len=seq_len), seed=0)
    if learns:
        assert r.final_long() > 0.95 and r.final_short() > 0.95
    else:
        assert r.final_long() < 0.65


@pytest.mark.parametrize("make, words", [
    (lambda: ThroughTimeConfig(kind="elman"), "kind"),
    (lambda: ThroughTimeConfig(seq_len=1), "T_seq"),
    (lambda: ThroughTimeConfig(rho=-1.0), "spectral radius"),
    (lambda: ThroughTimeConfig(forget=math.inf), "forget-gate bias"),
    (lambda: ThroughTimeConfig(kind="transformer", d_in=30, heads=4), "divisible"),
    (lambda: LongRangeConfig(kind="transformer"), "kind"),
    (lambda: LongRangeConfig(position="last"), "position"),
    (lambda: LongRangeConfig(classes=1), "2 classes"),
    (lambda: LongRangeConfig(lr=0.0), "learning rate"),
    (lambda: LongRangeConfig(clip=-1.0), "threshold"),
    (lambda: build_recurrent("lstm2", 1, 1), "kind"),
])
def test_configs_reject_nonsense(make, words):
    with pytest.raises(ValueError, match=words):
        make()
