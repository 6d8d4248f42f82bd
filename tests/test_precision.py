"""Chapter 5, Experiment 8: float16 and bfloat16 limits, gradients cast to them, loss scaling, GradScaler."""
import math

import pytest
import torch

from gradlab.gradients.nets import NetConfig
from gradlab.gradients.precision import GradientsConfig, cast_gradients, cast_table, format_limits, trained_gradients
from gradlab.gradients.loss_scaling import ScalerConfig, autocast_dtypes, scaler_run, update_scale


# --- the formats, against their definitions ---

def test_float16_limits_are_the_definitions():
    f = format_limits("float16")
    assert (f.exponent_bits, f.mantissa_bits, f.bits) == (5, 10, 16)
    assert f.smallest_subnormal == 2.0 ** -24
    fi = torch.finfo(torch.float16)
    assert f.smallest_normal == 2.0 ** -14 == fi.tiny == fi.smallest_normal
    assert f.largest == (2 - 2.0 ** -10) * 2.0 ** 15 == 65504
    assert f.eps == 2.0 ** -10 and f.unit_roundoff == 2.0 ** -11
    # the smallest subnormal is the next float16 after 0, found without finfo
    zero = torch.zeros((), dtype=torch.float16)
    assert float(torch.nextafter(zero, torch.ones((), dtype=torch.float16))) == f.smallest_subnormal


def test_bfloat16_has_float32s_range_and_8_bits():
    b, s = format_limits("bfloat16"), format_limits("float32")
    assert (b.exponent_bits, b.mantissa_bits) == (8, 7) and (s.exponent_bits, s.mantissa_bits) == (8, 23)
    assert b.smallest_normal == s.smallest_normal == 2.0 ** -126
    assert b.largest == (2 - 2.0 ** -7) * 2.0 ** 127 and 3.38e38 < b.largest < 3.40e38
    assert b.eps == 2.0 ** -7 and s.eps == 2.0 ** -23
    assert b.smallest_subnormal == 2.0 ** -133


def test_cast_below_between_and_above_the_float16_range():
    rows = cast_table([2.0 ** -26, 2.0 ** -25, 3e-7, 1 / 3, 65519.0, 65520.0, 7e4], "float16")
    kinds = [r.kind for r in rows]
    assert kinds == ["zero", "zero", "subnormal", "normal", "normal", "inf", "inf"]
    # 2^-25 is halfway between 0 and 2^-24: round to nearest even gives 0
    sub = rows[2]
    assert sub.stored == 5 * 2.0 ** -24 and sub.significant_bits == 3  # 3e-7 ≈ 5.03 · 2^-24: 101 in binary
    assert rows[3].significant_bits == 11 and rows[3].relative_error <= 2.0 ** -11
    assert rows[4].stored == 65504  # below max + ulp/2 = 65520 it rounds down to max


# --- synthetic gradients whose fate is known ---

def test_cast_gradients_counts_what_each_scale_loses():
    g = [torch.tensor([2.0 ** -30, 2.0 ** -20, 2.0 ** -10, 1.0, 2.0 ** 10, 0.0])]
    c = cast_gradients(g, "float16", exponents=(0, 6))
    assert c.exact_zeros == 1 and c.log2_abs.tolist() == [-30, -20, -10, 0, 10]
    assert c.underflow.tolist() == [0.2, 0.0] and c.subnormal.tolist() == [0.2, 0.2]  # 2^-24 at k = 6: subnormal
    assert c.overflow.tolist() == [0.0, 0.2]  # 2^10 · 2^6 = 65536 > 65504
    assert c.lost_norm[0] == pytest.approx(2.0 ** -30 / math.sqrt(1 + 2.0 ** -60 + 2.0 ** -40 + 2.0 ** -20 + 2.0 ** 20))
    b = cast_gradients(g, "bfloat16", exponents=(0, 6))
    assert b.underflow.sum() == 0 and b.subnormal.sum() == 0 and b.overflow.sum() == 0


def test_rounding_error_is_below_the_unit_roundoff():
    x = [torch.linspace(0.1, 10, 10_001)]
    for name, u in (("float16", 2.0 ** -11), ("bfloat16", 2.0 ** -8)):
        c = cast_gradients(x, name, exponents=(0,))
        assert u / 4 < float(c.error_median[0]) < u and float(c.error_max[0]) <= u


# --- the chapter's network: a sigmoid MLP of depth 10 after 300 steps ---

@pytest.fixture(scope="module")
def sigmoid10():
    return trained_gradients(GradientsConfig(net=NetConfig(depth=10, activation="sigmoid"), steps=300, lr=0.05))


def test_float16_loses_the_early_layers_of_a_deep_sigmoid_net(sigmoid10):
    c = cast_gradients(sigmoid10.grads, "float16")
    assert c.underflow[0] > 0.3 and c.subnormal[0] > 0.3  # measured 0.39 and 0.42
    assert c.layer_underflow[0, 0] > 0.99 and c.layer_underflow[0, -1] == 0  # the input layer's gradient is gone
    assert c.lost_norm[0] < 1e-4  # …though the lost entries carry a tiny part of ‖g‖
    assert c.underflow[16] < 1e-3  # GradScaler's default 𝒮 = 2^16 keeps almost all (measured 3.4e-4)


def test_overflow_starts_where_scale_times_max_reaches_65520(sigmoid10):
    c = cast_gradients(sigmoid10.grads, "float16")
    top = float(torch.cat(sigmoid10.grads).abs().max())
    first = next(k for k in c.exponents if c.overflow[k] > 0)
    assert first == next(k for k in c.exponents if 2.0 ** k * top >= 65520)
    assert (c.overflow[:first] == 0).all()


def test_bfloat16_needs_no_scale_but_rounds_8_times_coarser(sigmoid10):
    half, brain = cast_gradients(sigmoid10.grads, "float16"), cast_gradients(sigmoid10.grads, "bfloat16")
    assert brain.underflow.sum() == 0 and brain.subnormal.sum() == 0 and brain.overflow.sum() == 0
    assert float(brain.error_max.max()) <= 2.0 ** -8 and float(half.error_max.max()) <= 2.0 ** -11
    ratio = float(brain.error_median[0] / half.error_median[0])
    assert 5 < ratio < 12  # 2^3 = 8 in theory; measured 7.9


def test_a_real_float16_autocast_backward_loses_as_much_or_more(sigmoid10):
    c, g = cast_gradients(sigmoid10.grads, "float16"), sigmoid10
    assert g.exponents == c.exponents
    assert g.autocast_underflow[0] > 0.3 and g.autocast_underflow[16] < 1e-3  # measured 0.41 and 3.4e-4
    # it also rounds ∂𝓛/∂h_l on the way: at 𝒮 = 2^8 it lost 10.5% where the cast of the float32 g lost 4.6%
    assert g.autocast_underflow[8] > c.underflow[8]
    first = next(k for k in c.exponents if c.overflow[k] > 0)
    assert (g.autocast_overflow[:first] == 0).all()
    assert (g.autocast_overflow[first + 2:] == 1).all()  # an inf in a backward spreads: every entry inf or NaN


@pytest.mark.parametrize("activation, init, lr, low, high", [("tanh", "pytorch", 0.05, 0.0, 1e-3),
                                                             ("relu", "he", 0.01, 0.01, 0.1)])
def test_other_networks_of_the_widget_at_scale_one(activation, init, lr, low, high):
    """tanh (measured 0.005%) needs no loss scale; the trained ReLU net (3.7%: its loss is near 0, and so are
    its gradients) does."""
    g = trained_gradients(GradientsConfig(net=NetConfig(depth=10, activation=activation, init=init), lr=lr),
                          exponents=(0,))
    c = cast_gradients(g.grads, "float16", exponents=(0,))
    assert low <= float(c.underflow[0]) < high and low <= float(g.autocast_underflow[0]) < high


# --- GradScaler against the rule written from scratch ---

def test_update_rule_matches_gradscaler_step_by_step():
    p = torch.nn.Parameter(torch.ones(3))
    opt = torch.optim.SGD([p], lr=0.1)
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0 ** 10, growth_interval=3)
    scale, tracker = 2.0 ** 10, 0
    pattern = [False, True, False, False, False, False, True, True, False, False, False, False]
    for bad in pattern:
        assert scaler.get_scale() == scale
        opt.zero_grad()
        scaler.scale((p * p).sum()).backward()
        if bad:
            p.grad[1] = math.inf
        before = p.detach().clone()
        scaler.step(opt)
        scaler.update()
        assert torch.equal(p.detach(), before) == bad  # a step with an inf is skipped
        scale, tracker = update_scale(scale, tracker, bad, growth_interval=3)
    # log2 𝒮: 10 → 9 → 10 (after 3 clean steps) → 9 → 8 → 9 (after 3 clean steps)
    assert scaler.get_scale() == scale == 2.0 ** 9
    assert update_scale(2.0, 1999, False) == (4.0, 0) and update_scale(2.0, 5, True) == (1.0, 0)


def test_scaler_run_halves_on_injected_infs_and_grows_back():
    run = scaler_run(ScalerConfig(steps=40, growth_interval=10, overflow_steps=(5, 6), gradients="float32"))
    expected = [16] * 6 + [15] + [14] * 10 + [15] * 10 + [16] * 10 + [17] * 3
    assert torch.log2(run.scale).tolist() == expected
    assert torch.equal(run.scale, run.rule_scale)
    assert run.skipped.nonzero().flatten().tolist() == [5, 6]
    assert (run.moved[run.skipped] == 0).all() and (run.moved[~run.skipped] > 0).all()


def test_float16_gradients_overflow_exactly_when_scale_times_max_passes_65520():
    run = scaler_run(ScalerConfig(steps=200, growth_interval=20, overflow_steps=(), gradients="rounded"))
    product = run.scale * run.grad_max
    assert run.skipped.sum() >= 2  # measured 6: the scale grows into the ceiling, backs off, grows again
    assert (product[run.skipped] >= 65520).all() and (product[~run.skipped] < 65520).all()
    assert torch.equal(run.scale, run.rule_scale)


def test_rounding_the_final_gradient_predicts_the_skips_of_a_real_autocast_run():
    runs = [scaler_run(ScalerConfig(steps=200, growth_interval=20, overflow_steps=(), gradients=mode))
            for mode in ("autocast", "rounded")]
    assert runs[0].skipped.sum() >= 2  # measured 6
    assert torch.equal(runs[0].skipped, runs[1].skipped) and torch.equal(runs[0].scale, runs[0].rule_scale)


def test_cpu_autocast_runs_matmuls_in_bfloat16_and_the_loss_in_float32():
    d = dict(autocast_dtypes(NetConfig(depth=4, activation="relu"), "cpu").stages)
    assert d["first linear layer's output"] == torch.bfloat16 and d["logits"] == torch.bfloat16
    assert d["cross-entropy loss"] == torch.float32
    assert d["weights (kept)"] == d["weight gradient"] == torch.float32  # float32 master weights


# --- nonsense is refused ---

@pytest.mark.parametrize("make", [
    lambda: format_limits("float8"),
    lambda: cast_gradients([], "float16"),
    lambda: GradientsConfig(steps=-1),
    lambda: GradientsConfig(lr=0.0),
    lambda: GradientsConfig(net=NetConfig(norm="batch")),
    lambda: ScalerConfig(growth_interval=0),
    lambda: ScalerConfig(backoff_factor=1.5),
    lambda: ScalerConfig(steps=10, overflow_steps=(10,)),
    lambda: ScalerConfig(gradients="float8"),
])
def test_bad_configs_are_refused_with_a_sentence(make):
    with pytest.raises(ValueError, match=r"\w+ \w+"):
        make()
