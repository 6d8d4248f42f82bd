"""Reddi et al.'s online problem: torch.optim.Adam drifts to the worst point at the rate derived from its
periodic v, and with amsgrad=True to the best point at the rate derived from its largest v."""
import pytest
import torch

from gradlab.amsgrad import AMSGradConfig, adam_vs_amsgrad, cycle_drift, gradient


def test_the_gradients_come_in_cycles_of_c_minus_one_minus_one_summing_to_c_minus_two():
    assert [gradient(t, 3.0) for t in range(1, 7)] == [3.0, -1.0, -1.0, 3.0, -1.0, -1.0]


@pytest.mark.parametrize("c", [3.0, 5.0])
def test_each_cycle_moves_x_by_the_derived_drift(c):
    """A constant small η keeps x inside (−1, 1) for the whole run; v is periodic after a few cycles."""
    cfg = AMSGradConfig(c=c, lr=1e-4, schedule="constant", steps=300, eps=0.0)
    run = adam_vs_amsgrad(cfg)
    for i, ams in enumerate((False, True)):
        measured = float(run.x[i, 300] - run.x[i, 150]) / 50
        assert measured == pytest.approx(cycle_drift(c, cfg.b2, cfg.lr, ams), rel=1e-6)
    assert cycle_drift(c, cfg.b2, 1.0) > 0 > cycle_drift(c, cfg.b2, 1.0, amsgrad=True)


def test_with_the_papers_settings_adam_goes_to_the_worst_point_and_amsgrad_to_the_best():
    run = adam_vs_amsgrad(AMSGradConfig(steps=3000))
    adam, ams = run.x[:, -300:].mean(1).tolist()
    assert adam > 0.99 and ams < -0.9
    assert float(run.avg_regret[0, -1]) > 0.5 > 0.2 > float(run.avg_regret[1, -1])


def test_regret_is_the_sum_of_the_linear_losses_against_minus_one():
    run = adam_vs_amsgrad(AMSGradConfig(steps=30))
    g = torch.tensor([gradient(t, 3.0) for t in range(1, 31)], dtype=torch.float64)
    manual = sum(float(g[t] * run.x[1, t]) - float(g[t] * -1.0) for t in range(30)) / 30
    assert float(run.avg_regret[1, -1]) == pytest.approx(manual, rel=1e-12)


def test_c_at_most_two_is_refused():
    with pytest.raises(ValueError, match="exceed 2"):
        adam_vs_amsgrad(AMSGradConfig(c=2.0))
