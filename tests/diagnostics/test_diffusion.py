"""Tests of the log-spaced record steps and the diffusion-slope fit."""

import math

import numpy as np
import pytest

from tfgap.diagnostics import LogSpacedSteps, WeightDistance, fit_diffusion_slope

# ceil(10 ** (k / 10)), k = 0..20, written out (duplicates removed).
STEPS_TO_100 = [1, 2, 3, 4, 6, 7, 8, 10, 13, 16, 20, 26, 32, 40, 51, 64, 80, 100]


def test_steps_per_decade_ten():
    due = LogSpacedSteps()
    assert [t for t in range(1, 101) if due(t)] == STEPS_TO_100
    assert due.next_step == 126  # ceil(10 ** 2.1) = ceil(125.89)


@pytest.mark.parametrize("per_decade", [1, 2, 3, 7])
def test_steps_match_the_closed_form(per_decade):
    expected = sorted(
        {math.ceil(round(10 ** (k / per_decade), 9)) for k in range(3 * per_decade + 1)}
    )
    due = LogSpacedSteps(per_decade)
    assert [t for t in range(1, 1001) if due(t)] == expected


def test_jumps_next_after_and_reset():
    due = LogSpacedSteps(per_decade=1)
    assert due(5) and not due(9) and due(250)  # 5 reaches 1; 250 reaches 10 and 100
    assert due.next_step == 1000
    assert due.next_after(0) == 1 and due.next_after(1) == 10 and due.next_after(999) == 1000
    assert due.next_step == 1000  # next_after does not advance
    assert due.reset().next_step == 1 and due(1)


def test_fit_matches_normal_equations():
    rng = np.random.default_rng(0)
    steps = np.array(STEPS_TO_100, np.float64)
    distances = 0.3 * np.log(steps) + 2.0 + 0.01 * rng.normal(size=steps.size)
    keep = steps >= 5
    design = np.stack([np.log(steps[keep]), np.ones(keep.sum())], axis=1)
    want = np.linalg.solve(design.T @ design, design.T @ distances[keep])
    a, b = fit_diffusion_slope(steps, distances, min_step=5)
    assert (a, b) == (pytest.approx(want[0], rel=1e-10), pytest.approx(want[1], rel=1e-10))
    # A fractional min_step: 12.8 keeps 13, 16, ... (not 10).
    a_frac, _ = fit_diffusion_slope(steps, distances, min_step=12.8)
    a_int, _ = fit_diffusion_slope(steps[steps >= 13], distances[steps >= 13])
    assert a_frac == a_int


def test_weight_distance_uses_the_shared_fit():
    wd = WeightDistance(records_per_decade=2)
    wd.steps, wd.distances = [1, 4, 10, 32], [1.0, 1.5, 2.1, 2.4]
    assert wd.diffusion_slope(min_step=2) == fit_diffusion_slope([4, 10, 32], [1.5, 2.1, 2.4])


def test_bad_input():
    for bad in (0, 1.5, True, "10"):
        with pytest.raises(ValueError, match="per_decade"):
            LogSpacedSteps(bad)
    with pytest.raises(ValueError, match="two or more"):
        fit_diffusion_slope([1, 5, 5], [0.0, 1.0, 1.1], min_step=2)
    with pytest.raises(ValueError, match="3 steps and 2 distances"):
        fit_diffusion_slope([1, 2, 3], [0.0, 1.0])
    with pytest.raises(ValueError, match="min_step"):
        fit_diffusion_slope([1, 2], [0.0, 1.0], min_step="1")
