"""Chapter 4's linear scaling rule: each rule gives the right η per batch size, the runs are the ones asked
for, and on the digits the linear and square-root rules keep large batches far better than a fixed η does."""
import math

import pytest
import torch

from gradlab.batched_mlp import digits_split
from gradlab.scheduling.scaling import RULES, ScalingConfig, scaled_lr, scaling


def test_each_rule_scales_eta_as_it_says():
    assert scaled_lr("linear", 0.05, 32, 512) == pytest.approx(0.8)
    assert scaled_lr("sqrt", 0.05, 32, 512) == pytest.approx(0.2)
    assert scaled_lr("none", 0.05, 32, 512) == 0.05
    assert all(scaled_lr(r, 0.05, 32, 32) == 0.05 for r in RULES)
    with pytest.raises(ValueError, match="rule is one of"):
        scaled_lr("cubic", 0.05, 32, 64)


def test_the_grid_of_runs_and_the_updates_per_budget():
    out = scaling(ScalingConfig(batch_sizes=(32, 256), epochs=1, seeds=1, hidden=8))
    n = digits_split(0).x_train.shape[0]
    assert out.updates == (math.ceil(n / 32), math.ceil(n / 256))
    torch.testing.assert_close(out.lrs[:, 0], torch.full((3,), 0.05))
    torch.testing.assert_close(out.lrs[:, 1], torch.tensor([0.4, 0.05 * math.sqrt(8), 0.05]))
    assert torch.allclose(out.val_loss[:, 0], out.val_loss[0, 0].expand(3))  # at B₀ the rules coincide


def test_at_a_fixed_number_of_epochs_scaling_eta_keeps_large_batches_useful():
    """The widget's claim (defaults, SGD with momentum): at B = 512 a fixed η ends at over three times the
    validation loss of either scaled rule, and every rule is worse at B = 512 than at B₀ (too few updates)."""
    out = scaling(ScalingConfig())
    j = out.config.batch_sizes.index(512)
    base = out.config.batch_sizes.index(32)
    linear, sqrt, none = out.val_loss[:, j].tolist()
    assert none > 3 * max(linear, sqrt)
    assert (out.val_loss[:, j] > out.val_loss[:, base]).all()


def test_a_warmup_longer_than_the_run_is_refused():
    with pytest.raises(ValueError, match="fraction of the run"):
        ScalingConfig(warmup=1.0)


@pytest.mark.parametrize("kind", ["momentum", "Adam"])
def test_at_twice_the_base_rate_the_linear_rule_breaks_first(kind):
    """The widget's second η₀ (What to notice): from η₀ = 0.1 at B₀ = 32 (Adam: 0.1/16, as the widget divides
    it), the linear rule's run at B = 512 (η₀·16) ends above the square-root rule's (η₀·4), for both optimizers."""
    base = 0.1 / (16 if kind == "Adam" else 1)
    out = scaling(ScalingConfig(base_lr=base, kind=kind))
    j = out.config.batch_sizes.index(512)
    linear, sqrt, _ = out.val_loss[:, j].tolist()
    assert out.lrs[0, j] == pytest.approx(16 * base)
    assert linear > 1.2 * sqrt, (linear, sqrt)
