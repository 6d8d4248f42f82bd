"""Chapter 6, Experiment 1 (gradlab.normalization.axes): which numbers share one mean and variance, the count
table, and the equivalences group norm = layer norm (groups = 1) and = instance norm (groups = channels)."""
import pytest
import torch
from torch import nn

from gradlab.normalization.axes import METHODS, AxesConfig, count_table, equivalences, layout, stat_count, stat_sets


def test_configs_reject_nonsense():
    for kw, text in ((dict(method="weight"), "method"), (dict(channels=6, groups=4), "equal groups"),
                     (dict(batch=0), "at least 1"), (dict(groups=0), "at least 1"),
                     (dict(batch=64, channels=64), "4096")):
        with pytest.raises(ValueError, match=text):
            AxesConfig(**kw)
    with pytest.raises(ValueError, match="positions"):
        equivalences(height=1, width=1)
    with pytest.raises(ValueError, match="equal groups"):
        stat_count("group", 2, 6, 4, 2, 2)


def test_counts_are_the_chapter_formulas():
    b, ch, groups, h, w = 4, 8, 2, 3, 5
    assert dict((m, k) for m, k, _ in count_table(b, ch, groups, h, w)) == {
        "batch": b * h * w, "layer": ch * h * w, "instance": h * w, "group": ch // groups * h * w}
    # every number belongs to exactly one set: sets × count = all numbers, for every method
    for m, k, sets in count_table(b, ch, groups, h, w):
        assert k * sets == b * ch * h * w, m


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("groups", (1, 2, 4))
def test_highlight_and_sets_match_the_count_table(method, groups):
    c = AxesConfig(method=method, batch=3, channels=8, groups=groups, height=2, width=3)
    r = layout(c)
    assert int(r.highlight.sum()) == r.count == stat_count(method, 3, 8, groups, 2, 3)
    assert len(r.set_id.unique()) == r.sets == stat_sets(method, 3, 8, groups, 2, 3)
    assert torch.bincount(r.set_id.flatten()).unique().tolist() == [r.count]  # all sets the same size


def _members(module: nn.Module, x: torch.Tensor, i: tuple) -> torch.Tensor:
    """Which inputs change output ``i`` of a normalization when perturbed: the numbers it shares statistics with
    (the autograd Jacobian row's nonzero pattern)."""
    x = x.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(module(x)[i], x)
    return g.abs() > 1e-12


@pytest.mark.parametrize("method", METHODS)
def test_the_drawn_sets_are_the_sets_pytorch_normalizes_over(method):
    b, ch, groups, h, w = 3, 4, 2, 2, 2
    x = torch.randn(b, ch, h, w, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    module = {"batch": nn.BatchNorm2d(ch), "layer": nn.LayerNorm([ch, h, w]), "instance": nn.InstanceNorm2d(ch),
              "group": nn.GroupNorm(groups, ch)}[method].double()
    mask = _members(module, x, (0, 0, 0, 0)).view(b, ch, h * w)
    assert torch.equal(mask, layout(AxesConfig(method=method, batch=b, channels=ch, groups=groups, height=h,
                                               width=w)).highlight)


def test_group_norm_equals_layer_norm_and_instance_norm_in_float32_and_float64():
    r32 = equivalences(dtype=torch.float32)
    r64 = equivalences(dtype=torch.float64)
    for r, tol in ((r32, 2e-6), (r64, 1e-12)):
        assert r.group1_vs_layer < tol
        assert r.group_channels_vs_instance < tol
        assert r.group_vs_layer_on_groups < tol
    # and the comparison can fail: group norm with 2 groups is not layer norm over all channels
    x = torch.randn(4, 8, 3, 3, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert float((nn.GroupNorm(2, 8)(x) - nn.LayerNorm([8, 3, 3])(x)).abs().max()) > 0.01


def test_figure_renders_and_counts_in_its_title():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from gradlab.plots.normalization_axes import plot_norm_axes_panels

    fig, axs = plt.subplots(1, 4)
    rs = [layout(AxesConfig(method=m)) for m in METHODS]
    plot_norm_axes_panels(rs, axs)
    assert [f"over {r.count} numbers" in ax.get_title() for r, ax in zip(rs, axs)] == [True] * 4
    plt.close(fig)
