"""The gradient diagnostics tool (gradlab.diagnostics, gradlab.diagnosis): parity with quantities computed by
hand, hooks that leave no trace, the pathologies it names on networks known to have them, no false alarm on
healthy ones, and the source cards' thresholds measured on the chapter's networks."""
import copy
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from gradlab.batched_mlp import digits_split
from gradlab.diagnostics import GradientMonitor, unit_census
from gradlab.gradients.nets import NetConfig, build

SPLIT = digits_split(0)
X, Y = SPLIT.x_train, SPLIT.y_train


def at_init(config: NetConfig, seed: int = 0) -> "object":
    """One full-batch backward pass at initialization, recorded without an optimizer."""
    model = build(config, seed)
    with GradientMonitor(model) as monitor:
        F.cross_entropy(model(X), Y).backward()
        monitor.record()
    return monitor.result()


def train(model: nn.Module, lr: float, steps: int, batch: int | None = 64, seed: int = 0, **kw):
    """``steps`` SGD steps on mini-batches of the digits with a monitor on the optimizer."""
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    g = torch.Generator().manual_seed(seed)
    with GradientMonitor(model, opt, **kw) as monitor:
        for _ in range(steps):
            idx = torch.randperm(len(X), generator=g)[:batch] if batch else slice(None)
            loss = F.cross_entropy(model(X[idx]), Y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    return monitor.result()


def kinds(d) -> set[str]:
    return {f.kind for f in d.findings()}


# --- parity with hand computations ---

def test_gradient_norms_equal_the_norms_of_the_gradients_by_hand():
    model = build(NetConfig(depth=4, norm="batch"), seed=1)
    with GradientMonitor(model) as monitor:
        F.cross_entropy(model(X[:100]), Y[:100]).backward()
        monitor.record()
    d = monitor.result()
    by_hand = []
    for module in model.modules():
        own = [p for p in module.parameters(recurse=False)]
        if own:
            by_hand.append(math.sqrt(sum(float(p.grad.double().norm()) ** 2 for p in own)))
    assert len(d.layers) == len(by_hand) == 2 * 4 - 1  # 4 linear layers, 3 batch norms
    assert d.layers[0] == "first.0" and d.layers[-1] == "head"
    torch.testing.assert_close(d.grad_norm[:, 0], torch.tensor(by_hand, dtype=torch.float64), rtol=1e-6, atol=0)
    assert d.weight_rows == (True, False, True, False, True, False, True)
    assert float(d.first_to_last()[0]) == pytest.approx(by_hand[0] / by_hand[-1], rel=1e-6)


def test_per_parameter_rows():
    model = nn.Sequential(nn.Linear(64, 8), nn.ReLU(), nn.Linear(8, 10))
    with GradientMonitor(model, per="parameter") as monitor:
        F.cross_entropy(model(X[:50]), Y[:50]).backward()
        monitor.record()
    d = monitor.result()
    assert d.layers == ("0.weight", "0.bias", "2.weight", "2.bias")
    want = [float(p.grad.double().norm()) for p in model.parameters()]
    torch.testing.assert_close(d.grad_norm[:, 0], torch.tensor(want, dtype=torch.float64), rtol=1e-6, atol=0)


def test_update_ratio_is_the_change_of_the_weights_over_their_norm():
    model = build(NetConfig(depth=3), seed=2)
    before = [p.detach().clone() for p in model.parameters()]
    d = train(model, lr=0.3, steps=1, batch=None)
    after = [p.detach() for p in model.parameters()]
    rows = [(0, 1), (2, 3), (4, 5)]  # (weight, bias) of the three linear layers
    for r, (i, j) in enumerate(rows):
        delta = math.sqrt(sum(float((after[k] - before[k]).double().norm()) ** 2 for k in (i, j)))
        norm = math.sqrt(sum(float(before[k].double().norm()) ** 2 for k in (i, j)))
        assert float(d.update_ratio[r, 0]) == pytest.approx(delta / norm, rel=1e-5)
        assert float(d.weight_norm[r, 0]) == pytest.approx(norm, rel=1e-6)


def test_activation_statistics_equal_direct_counts():
    torch.manual_seed(0)  # test-local randomness only; the package never seeds globally
    model = nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 32), nn.Sigmoid(), nn.Linear(32, 32),
                          nn.Tanh(), nn.Linear(32, 10))
    with torch.no_grad():
        model[0].bias[:5] = -50.0  # five units of the ReLU dead on any batch
        model[2].weight.mul_(8.0)  # push the sigmoid into saturation
    xb = X[:200]
    with GradientMonitor(model) as monitor:
        F.cross_entropy(model(xb), Y[:200]).backward()
        monitor.record()
    d = monitor.result()
    assert d.activations == ("1", "3", "5") and d.act_kinds == ("relu", "sigmoid", "tanh")
    with torch.no_grad():
        h1 = model[1](model[0](xb))
        h3 = model[3](model[2](h1))
        h5 = model[5](model[4](h3))
    assert float(d.dead[0, 0]) == pytest.approx(float((h1 <= 0).all(0).float().mean()), abs=1e-12)
    assert float(d.dead[0, 0]) >= 5 / 32
    assert float(d.zero_fraction[0, 0]) == pytest.approx(float((h1 == 0).float().mean()), abs=1e-7)
    assert float(d.saturated[1, 0]) == pytest.approx(float((h3 * (1 - h3) < 0.05 * 0.25).float().mean()), abs=1e-7)
    assert float(d.saturated[2, 0]) == pytest.approx(float((1 - h5 ** 2 < 0.05).float().mean()), abs=1e-7)
    assert float(d.act_mean[2, 0]) == pytest.approx(float(h5.mean()), abs=1e-6)
    assert float(d.act_std[2, 0]) == pytest.approx(float(h5.std()), rel=1e-5)
    assert math.isnan(float(d.saturated[0, 0])) and math.isnan(float(d.dead[1, 0]))


def test_unit_census_counts_dead_units_on_the_whole_set_and_leaves_the_model_alone():
    model = build(NetConfig(depth=4, norm="batch", init="he"), seed=0)
    with torch.no_grad():
        model.blocks[0].linear.bias.fill_(-30.0)
    model.train()
    stats = copy.deepcopy(model.state_dict())
    census = unit_census(model, X, batch_size=500)
    assert model.training and all(torch.equal(stats[k], v) for k, v in model.state_dict().items())
    assert census.layers == ("first.2", "blocks.0.act", "blocks.1.act")
    model.eval()
    with torch.no_grad():
        h = model.first(X)
        z = model.blocks[0].act(model.blocks[0].norm(model.blocks[0].linear(h)))
    assert torch.equal(census.dead[0], (h <= 0).all(0)) and torch.equal(census.dead[1], (z <= 0).all(0))
    assert float(census.zero_fraction[0]) == pytest.approx(float((h <= 0).double().mean()), abs=1e-6)
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in model.modules())


# --- hooks that leave no trace ---

def _hooks(model: nn.Module, opt) -> int:
    n = sum(len(m._forward_hooks) + len(m._forward_pre_hooks) + len(m._backward_hooks) + len(m._backward_pre_hooks)
            for m in model.modules())
    return n + len(opt._optimizer_step_pre_hooks) + len(opt._optimizer_step_post_hooks)


def test_detach_removes_every_hook_and_the_model_computes_as_before():
    model = build(NetConfig(depth=6, norm="layer"), seed=3)
    twin = copy.deepcopy(model)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    monitor = GradientMonitor(model, opt).attach()
    assert monitor.attached and _hooks(model, opt) > 0
    monitor.detach()
    assert not monitor.attached and _hooks(model, opt) == 0
    for net in (model, twin):
        F.cross_entropy(net(X[:64]), Y[:64]).backward()
    assert torch.equal(model(X[:64]), twin(X[:64]))
    assert all(torch.equal(a.grad, b.grad) for a, b in zip(model.parameters(), twin.parameters()))


def test_attached_monitor_does_not_change_training():
    a, b = build(NetConfig(depth=5), seed=4), build(NetConfig(depth=5), seed=4)
    train(a, lr=0.1, steps=5)
    opt = torch.optim.SGD(b.parameters(), lr=0.1)
    g = torch.Generator().manual_seed(0)
    for _ in range(5):
        idx = torch.randperm(len(X), generator=g)[:64]
        loss = F.cross_entropy(b(X[idx]), Y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))


def test_every_records_every_kth_step_and_evaluation_passes_are_ignored():
    model = build(NetConfig(depth=3), seed=0)
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    with GradientMonitor(model, opt, every=3) as monitor:
        for _ in range(7):
            loss = F.cross_entropy(model(X[:64]), Y[:64])
            opt.zero_grad()
            loss.backward()
            with torch.no_grad():
                model(X[:64] * 0 - 100)  # an evaluation pass that would kill every unit: not recorded
            opt.step()
    d = monitor.result()
    assert d.steps.tolist() == [0, 3, 6]
    assert float(d.dead.max()) < 0.5


# --- works with other models ---

class Custom(nn.Module):
    """One activation module called after every layer: each call is its own activation row."""

    def __init__(self):
        super().__init__()
        self.a, self.b, self.out = nn.Linear(64, 16), nn.Linear(16, 16), nn.Linear(16, 10)
        self.act = nn.Tanh()

    def forward(self, x):
        return self.out(self.act(self.b(self.act(self.a(x)))))


def test_custom_module_cnn_and_lstm():
    model = Custom()
    with GradientMonitor(model) as m:
        F.cross_entropy(model(X[:32]), Y[:32]).backward()
        m.record()
    d = m.result()
    assert d.layers == ("a", "b", "out") and d.activations == ("act", "act (call 2)")

    cnn = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 4, 3), nn.ReLU(), nn.Flatten(),
                        nn.Linear(4 * 6 * 6, 10))
    with GradientMonitor(cnn) as m:
        F.cross_entropy(cnn(X[:32].reshape(-1, 1, 8, 8)), Y[:32]).backward()
        m.record()
    d = m.result()
    assert d.layers == ("0", "2", "5") and d.act_kinds == ("relu", "relu")
    assert bool(torch.isfinite(d.grad_norm).all())

    class Seq(nn.Module):
        def __init__(self):
            super().__init__()
            self.lstm, self.fc = nn.LSTM(8, 12, num_layers=2, batch_first=True), nn.Linear(12, 10)

        def forward(self, x):
            out, _ = self.lstm(x)
            return self.fc(out[:, -1])

    seq = Seq()
    opt = torch.optim.Adam(seq.parameters(), lr=1e-3)
    with GradientMonitor(seq, opt) as m:
        loss = F.cross_entropy(seq(X[:32].reshape(-1, 8, 8)), Y[:32])
        loss.backward()
        opt.step()
    d = m.result()
    want = math.sqrt(sum(float(p.grad.double().norm()) ** 2 for p in seq.lstm.parameters()))
    assert d.layers == ("lstm", "fc") and float(d.grad_norm[0, 0]) == pytest.approx(want, rel=1e-6)
    assert bool(torch.isfinite(d.update_ratio).all())


def test_a_layer_without_gradient_is_not_mistaken_for_a_non_finite_one():
    class Partly(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b, self.unused = nn.Linear(64, 8), nn.Linear(8, 10), nn.Linear(3, 3)

        def forward(self, x):
            return self.b(torch.relu(self.a(x)))  # a functional ReLU: no activation row

    model = Partly()
    with GradientMonitor(model) as monitor:
        F.cross_entropy(model(X[:20]), Y[:20]).backward()
        monitor.record()
        model.zero_grad()
        F.cross_entropy(model(X[:20]), Y[:20]).backward()
        model.a.bias.grad[0] = math.nan
        monitor.record()
    d = monitor.result()
    assert d.activations == () and math.isnan(float(d.grad_norm[2, 0])) and d.nonfinite_backward == (1, "a.bias")
    assert math.isfinite(float(d.grad_norm[0, 0])) and math.isnan(float(d.grad_norm[0, 1]))


# --- bad input ---

def test_bad_input_is_rejected_with_a_sentence():
    model = build(NetConfig(depth=3))
    with pytest.raises(TypeError, match="torch.nn.Module"):
        GradientMonitor("a model")
    with pytest.raises(ValueError, match="no parameters"):
        GradientMonitor(nn.ReLU())
    frozen = nn.Linear(3, 3).requires_grad_(False)
    with pytest.raises(ValueError, match="no trainable parameter"):
        GradientMonitor(frozen)
    with pytest.raises(ValueError, match="not the model's"):
        GradientMonitor(model, torch.optim.SGD(nn.Linear(2, 2).parameters(), lr=0.1))
    with pytest.raises(TypeError, match="torch.optim.Optimizer"):
        GradientMonitor(model, optimizer="sgd")
    for kw, text in ((dict(per="layer"), "per is"), (dict(every=0), "every"), (dict(saturation=1.5), "saturation")):
        with pytest.raises(ValueError, match=text):
            GradientMonitor(model, **kw)
    monitor = GradientMonitor(model).attach()
    with pytest.raises(ValueError, match="no gradients yet"):
        monitor.record()
    with pytest.raises(ValueError, match="already attached"):
        monitor.attach()
    monitor.detach()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with GradientMonitor(model, opt) as monitor, pytest.raises(ValueError, match="by itself"):
        monitor.record()


# --- the pathologies, named ---

def test_deep_sigmoid_net_at_pytorch_init_vanishes_without_saturating():
    d = at_init(NetConfig(depth=20, activation="sigmoid"))
    ratio = float(d.first_to_last()[0])
    assert ratio < 1e-12  # measured 3e-16: far past the cards' 1e-3
    assert float(d.grad_norm[0, 0]) < 1e-12
    assert "vanishing" in kinds(d) and "saturated" not in kinds(d)
    assert float(d.saturated.max()) < 0.01  # not saturation: φ' ≤ 1/4 and small weights, layer after layer


def test_sigmoid_net_with_large_weights_saturates():
    d = at_init(NetConfig(depth=20, activation="sigmoid", init="large", gain=4.0))
    assert "saturated" in kinds(d)
    assert float(d.saturated.nanmedian()) > 0.8


def test_cards_vanishing_thresholds_on_sigmoid_nets_of_5_and_20_layers():
    """The cards' "first/last worse than 1000×": a 20-layer sigmoid net is far past it at initialization, a
    5-layer one sits just inside it (ratio 1.1e-3 to 2.2e-3 over five seeds), and its first-layer norm is
    far above the "below 1e-5" line."""
    for seed in range(3):
        deep = at_init(NetConfig(depth=20, activation="sigmoid"), seed)
        shallow = at_init(NetConfig(depth=5, activation="sigmoid"), seed)
        assert float(deep.first_to_last()[0]) < 1e-3 and float(deep.grad_norm[0, 0]) < 1e-5
        assert 1e-3 < float(shallow.first_to_last()[0]) < 5e-3
        assert float(shallow.grad_norm[0, 0]) > 1e-4
        assert "vanishing" not in kinds(shallow)


def test_deep_relu_net_at_pytorch_init_shows_the_cards_1e6_ratio():
    """Card fdvJHVTK's "ratio 1e-6": a 20-layer ReLU net with nn.Linear's default init (a third of He's variance)."""
    ratios = [float(at_init(NetConfig(depth=20), seed).first_to_last()[0]) for seed in range(3)]
    assert all(1e-7 < r < 1e-5 for r in ratios)
    he = float(at_init(NetConfig(depth=20, init="he")).first_to_last()[0])
    assert 0.05 < he < 5


def test_large_init_relu_net_explodes():
    d = at_init(NetConfig(depth=20, init="large"))
    assert "exploding" in kinds(d) and float(d.grad_norm.max()) > 1e10
    assert d.nonfinite_forward is None


def test_first_non_finite_layer_is_named():
    """Forward activations grow by about 6.5 g per layer (U(±2g) weights, ReLU, 64 wide), so with g = 30 they pass
    float32's largest number, 3.4e38, near layer log(3.4e38)/log(196) ≈ 17; the monitor names the first module
    whose output is not finite, and it is the one a pass by hand finds."""
    model = build(NetConfig(depth=20, init="large", gain=30.0), seed=0)
    with GradientMonitor(model) as monitor:
        F.cross_entropy(model(X[:64]), Y[:64]).backward()
        monitor.record()
    d = monitor.result()
    with torch.no_grad():
        h, first_bad = model.first(X[:64]), None
        for i, block in enumerate(model.blocks):
            z = block.linear(h)
            if first_bad is None and not torch.isfinite(z).all():
                first_bad = (i, f"blocks.{i}.linear")
            h = block.act(block.norm(z))
    assert first_bad is not None and 12 <= first_bad[0] + 2 <= 20  # layer l = block index + 2
    assert d.nonfinite_forward == (0, first_bad[1])
    assert d.nonfinite_backward is not None and d.diverged_at == 0
    assert "nonfinite" in kinds(d) and first_bad[1] in d.findings()[0].message


def test_one_layer_with_very_negative_biases_is_named_dead():
    model = build(NetConfig(depth=6, init="he"), seed=0)
    with torch.no_grad():
        model.blocks[1].linear.bias.fill_(-100.0)
    d = train(model, lr=0.05, steps=3)
    dead = next(f for f in d.findings() if f.kind == "dead")
    assert dead.layers[0] == "blocks.1.act" and dead.values[0] == 1.0
    assert "first.2" not in dead.layers and "blocks.0.act" not in dead.layers
    assert float(d.dead[d.activations.index("blocks.0.act")].max()) < 0.2


def test_learning_rate_of_10_gives_updates_too_large():
    d = train(build(NetConfig(depth=5, init="he"), seed=0), lr=10.0, steps=3)
    large = next(f for f in d.findings() if f.kind == "updates_large")
    assert min(large.values) > 1.0  # each step moves the weights by more than their own norm


@pytest.mark.parametrize("config", [NetConfig(depth=10, init="he", residual=True),
                                    NetConfig(depth=10, init="he", norm="batch")], ids=["residual", "batchnorm"])
def test_healthy_networks_raise_no_alarm(config):
    """10-layer ReLU + He, residual or batch-normalized, 100 SGD steps of 64 examples at η = 0.05 (the digits
    MLP's learning rate in Chapter 4): no finding; the largest median update ratio (0.0077 batch norm, 0.0061
    residual) stays below the 0.01 the heuristic flags."""
    d = train(build(config, seed=0), lr=0.05, steps=100)
    assert d.findings() == ()
    assert float(d.update_ratio.nanmedian(1).values.max()) < 0.009


def test_cards_zero_activation_threshold_sits_on_a_healthy_relu_net():
    """004 Q13's "> 50% zero activations": a healthy He-initialized ReLU layer outputs zero on about half of its
    entries, so that line falls in the middle of healthy layers; dead units are what the tool counts."""
    d = at_init(NetConfig(depth=20, init="he"))
    z = d.zero_fraction[:, 0]
    assert 0.35 < float(z.min()) < 0.5 < float(z.max()) < 0.7
    assert int((z > 0.5).sum()) >= 5
    assert "dead" not in kinds(d)


# --- plots ---

def test_plots_draw_and_label():
    import matplotlib

    matplotlib.use("Agg")
    from gradlab.plots import diagnostics as P

    d = train(build(NetConfig(depth=4, activation="sigmoid"), seed=0), lr=0.5, steps=4)
    ax = P.plot_grad_heatmap(d)
    assert ax.get_ylabel().startswith("layer (input layer at the top)") and len(ax.figure.axes) == 2
    assert ax.figure.axes[1].get_ylabel().startswith("gradient norm")
    ax = P.plot_layer_norms(d, step=2)
    assert ax.get_yscale() == "log" and "step 2" in [t.get_text() for t in ax.get_legend().get_texts()]
    assert P.plot_saturation(d).get_ylim()[1] > 1 and P.plot_update_ratio(d).get_yscale() == "log"
    assert P.plot_dead_fraction(d).get_ylabel().startswith("dead units")
    with pytest.raises(ValueError, match="step 99 was not recorded"):
        P.plot_layer_norms(d, step=99)
