"""Chapter 4's grid against random search: random search hits the top fraction as often as 1 − (1 − p)ⁿ says,
a grid of the same size less often when one hyperparameter matters much more than the other, and η is better
sampled log-uniformly."""
import math

import numpy as np
import pytest

from gradlab.scheduling.search import landscape, search_odds, top_level

LAND = landscape()  # the chapter's: its claims are checked on it


def test_the_landscape_is_one_run_per_point_and_eta_matters_more_than_alpha():
    assert LAND.val_loss.shape == (24, 8)
    finite = np.where(np.isfinite(LAND.val_loss), LAND.val_loss, np.nan)
    spread_over_lr = np.nanmax(finite, 0) - np.nanmin(finite, 0)  # per α: best to worst η
    spread_over_decay = np.nanmax(finite, 1) - np.nanmin(finite, 1)  # per η: best to worst α
    assert np.nanmedian(spread_over_lr) > 5 * np.nanmedian(spread_over_decay)


def test_random_search_agrees_with_its_formula():
    odds = search_odds(LAND, 0.05, draws=4000)
    # 4000 draws: the standard error of each estimate is at most √(¼/4000) ≈ 0.008; allow 4 of them
    assert np.abs(odds.random - odds.formula).max() < 0.032
    assert odds.random[0] == pytest.approx(0.05, abs=0.03)  # one trial: the top fraction itself


def test_a_grid_finds_a_narrow_band_of_eta_less_often_than_random_search():
    odds = search_odds(LAND, 0.05, draws=4000)
    i = list(odds.ns).index(16)
    assert odds.grid[i] < odds.random[i] - 0.08, (odds.grid, odds.random)
    assert list(odds.distinct_lrs) == [math.isqrt(n) for n in odds.ns]


def test_sampling_eta_uniformly_wastes_trials_on_the_top_decade():
    log = search_odds(LAND, 0.05, draws=4000)
    linear = search_odds(LAND, 0.05, draws=4000, lr_sampling="linear")
    i = list(log.ns).index(16)
    assert linear.random[i] < log.random[i] - 0.05


def test_the_top_level_cuts_off_the_asked_fraction_of_the_grid_points_roughly():
    level = top_level(LAND, 0.1)
    inside = (LAND.val_loss <= level).mean()
    assert 0.03 < inside < 0.25  # grid points sample the interpolated surface coarsely


@pytest.mark.parametrize("kwargs, says", [({"fraction": 1.5}, "top fraction"), ({"ns": (5,)}, "n = m²"),
                                          ({"lr_sampling": "cubic"}, "lr_sampling")])
def test_bad_settings_are_a_clear_error(kwargs, says):
    with pytest.raises(ValueError, match=says):
        search_odds(LAND, **kwargs)


def test_the_chapters_numbers_at_sixteen_trials():
    """Experiment 8 and its review answer: at n = 16 and the best 5%, random search ≈ 0.56 and the 4 × 4 grid
    ≈ 0.42 (±0.04, the resampling's error), and past n = 4 the grid is below random search at every n."""
    odds = search_odds(LAND, 0.05)
    i = list(odds.ns).index(16)
    assert odds.random[i] == pytest.approx(0.56, abs=0.04) and odds.grid[i] == pytest.approx(0.42, abs=0.04)
    assert (odds.grid[odds.ns >= 9] < odds.random[odds.ns >= 9]).all()
