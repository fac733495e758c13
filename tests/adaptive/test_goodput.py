"""Goodput batch-size control: efficiency, throughput fit, choice, controller and its state.

The expected numbers are written out independently here in NumPy (closed
forms, `np.polyfit`, `np.argmax` over hand-computed goodputs), not taken
from the module under test.
"""

import doctest
import json

import numpy as np
import pytest

from tfgap.adaptive import goodput as gp


def test_docstring_examples():
    result = doctest.testmod(gp, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0
    assert result.failed == 0


# -- statistical efficiency ------------------------------------------------------------------


def test_efficiency_matches_the_closed_form():
    rng = np.random.default_rng(0)
    b = 32
    batches = b * rng.integers(1, 65, size=200)
    noise = rng.uniform(0.5, 5000.0, size=200)
    expected = (noise + b) / (noise + batches)
    got = gp.statistical_efficiency(batches, b, noise)
    np.testing.assert_allclose(got, expected, rtol=1e-15)
    for batch, n, e in zip(batches[:20], noise[:20], expected[:20]):
        assert gp.statistical_efficiency(int(batch), b, float(n)) == pytest.approx(e, rel=1e-15)


def test_efficiency_is_one_at_the_small_batch_and_decreasing_above():
    for noise in (0.1, 10.0, 1e6, None):
        assert gp.statistical_efficiency(16, 16, noise) == 1.0
        values = gp.statistical_efficiency(16 * np.arange(1, 10), 16, noise)
        assert np.all(np.diff(values) < 0)


@pytest.mark.parametrize("b_noise", [None, float("nan"), float("inf"), 0.0, -25.0])
def test_unmeasured_noise_scale_gives_no_gain_from_larger_batches(b_noise):
    batches = np.array([8, 16, 24, 64])
    np.testing.assert_array_equal(gp.statistical_efficiency(batches, 8, b_noise), 8 / batches)


def test_efficiency_broadcasts_an_array_of_noise_scales_with_unmeasured_entries():
    got = gp.statistical_efficiency(64, 32, np.array([32.0, np.nan, -1.0]))
    np.testing.assert_allclose(got, [64 / 96, 0.5, 0.5])


@pytest.mark.parametrize("kwargs, fragment", [
    ({"batch": 0, "small_batch": 8, "b_noise": 1.0}, "batch=0"),
    ({"batch": [8, -8], "small_batch": 8, "b_noise": 1.0}, "batch=[8, -8]"),
    ({"batch": 8, "small_batch": 0, "b_noise": 1.0}, "small_batch=0"),
    ({"batch": 8, "small_batch": 8, "b_noise": "big"}, "b_noise='big'"),
])
def test_efficiency_rejects_bad_arguments_naming_them(kwargs, fragment):
    with pytest.raises(ValueError, match="Expected") as info:
        gp.statistical_efficiency(**kwargs)
    assert fragment in str(info.value)


# -- candidates ------------------------------------------------------------------------------


def test_candidate_sets():
    assert gp.candidate_batches(8, 40) == (8, 16, 24, 32, 40)
    assert gp.candidate_batches(8, 8) == (8,)
    assert gp.candidate_batches(8, 64, "powers_of_two") == (8, 16, 32, 64)


@pytest.mark.parametrize("args, fragment", [
    ((8, 36), "max_batch=36"),
    ((8, 48, "powers_of_two"), "max_batch=48"),
    ((8, 4), "max_batch=4"),
    ((0, 8), "small_batch=0"),
    ((8, 16, "linear"), "spacing='linear'"),
])
def test_candidate_sets_reject_bad_arguments(args, fragment):
    with pytest.raises(ValueError, match="Expected") as info:
        gp.candidate_batches(*args)
    assert fragment in str(info.value)


@pytest.mark.parametrize("candidates", [[8, 12], [0, 8], [], [8.0], "8", [True]])
def test_candidates_must_be_positive_multiples_of_the_small_batch(candidates):
    with pytest.raises(ValueError, match="Expected") as info:
        gp.check_candidates(candidates, 8)
    assert "Received" in str(info.value)


def test_candidate_not_a_multiple_names_what_was_expected_and_received():
    with pytest.raises(ValueError) as info:
        gp.check_candidates([16, 20], 8)
    assert "positive multiple of small_batch=8" in str(info.value)
    assert "candidates=[16, 20]" in str(info.value)


# -- the throughput model --------------------------------------------------------------------


def _model(timings, **kwargs):
    kwargs = {"window": 5, "min_timings": 1, "skip_after_switch": 0, **kwargs}
    model = gp.ThroughputModel(**kwargs)
    for batch, seconds in timings:
        model.record(batch, seconds)
    return model


def test_fit_recovers_exact_linear_timings():
    alpha, beta = 0.031, 0.00042
    batches = [32, 64, 128, 256]
    model = _model([(b, alpha + beta * b) for b in batches])
    got_alpha, got_beta = model.fit()
    assert got_alpha == pytest.approx(alpha, rel=1e-12)
    assert got_beta == pytest.approx(beta, rel=1e-12)
    assert model.step_time(512) == pytest.approx(alpha + beta * 512, rel=1e-12)
    assert model.throughput(96) == pytest.approx(96 / (alpha + beta * 96), rel=1e-12)


def test_fit_is_least_squares_on_noisy_timings():
    rng = np.random.default_rng(3)
    batches = np.array([16, 32, 48, 64, 96])
    times = 0.02 + 0.001 * batches + rng.normal(0, 0.002, size=batches.size)
    model = _model(zip(batches.tolist(), times.tolist()))
    slope, intercept = np.polyfit(batches, times, 1)
    assert model.fit() == pytest.approx((intercept, slope), rel=1e-10)


def test_fit_keeps_both_coefficients_non_negative():
    # Times falling with the batch: unconstrained beta < 0; the best feasible fit is flat.
    model = _model([(16, 0.30), (32, 0.20), (64, 0.10)])
    alpha, beta = model.fit()
    assert (alpha, beta) == pytest.approx((0.2, 0.0))
    # Times through a negative intercept: alpha < 0; the feasible fit goes through 0.
    x, y = np.array([16.0, 32.0, 64.0]), np.array([0.01, 0.05, 0.13])
    model = _model(zip(x.astype(int).tolist(), y.tolist()))
    assert model.fit() == pytest.approx((0.0, float(x @ y / (x @ x))))


def test_one_measured_batch_assumes_no_speed_up():
    model = _model([(32, 0.1)])
    assert model.fit() == (0.0, 0.1 / 32)
    for batch in (64, 96, 320):
        assert model.throughput(batch) == pytest.approx(320.0)


def test_nothing_measured_predicts_nothing():
    model = gp.ThroughputModel(min_timings=2)
    assert model.fit() is None and model.step_time(32) is None
    model.record(32, 0.1)
    model.record(32, 0.1)  # the first was the warm-up; one kept, two needed
    assert model.measured() == {} and model.throughput(32) is None


def test_measured_batches_use_the_median_of_the_last_window():
    model = gp.ThroughputModel(window=3, min_timings=3, skip_after_switch=1)
    kept = [model.record(16, s) for s in (7.0, 0.1, 5.0, 0.3, 0.2, 0.4)]
    assert kept == [False, True, True, True, True, True]
    assert model.timings(16) == (0.3, 0.2, 0.4)
    assert model.measured_step_time(16) == 0.3
    assert model.step_time(16) == 0.3  # measured: not the fit


def test_the_first_timings_after_a_switch_are_skipped():
    model = gp.ThroughputModel(window=10, min_timings=1, skip_after_switch=2)
    kept = [model.record(b, 0.1) for b in (8, 8, 8, 16, 16, 16, 8, 8, 8)]
    assert kept == [False, False, True, False, False, True, False, False, True]
    model.restart()
    assert model.record(8, 0.1) is False


@pytest.mark.parametrize("args, fragment", [
    ((0, 0.1), "batch=0"), ((8, 0.0), "seconds=0"), ((8, float("nan")), "seconds=nan"),
])
def test_record_rejects_bad_timings(args, fragment):
    with pytest.raises(ValueError, match="Expected") as info:
        gp.ThroughputModel().record(*args)
    assert fragment in str(info.value)


def test_throughput_state_round_trips_through_json():
    model = _model([(8, 0.1 + i / 3) for i in range(7)] + [(24, 1 / 7)], window=4,
                   skip_after_switch=1)
    state = json.loads(json.dumps(model.state()))
    assert state == model.state()
    restored = gp.ThroughputModel.from_state(state)
    assert restored.state() == model.state()
    for batch in (8, 16, 24, 40):
        assert restored.step_time(batch) == model.step_time(batch)
    with pytest.raises(ValueError, match="window=4"):
        gp.ThroughputModel(window=5).load_state(state)


# -- one decision ----------------------------------------------------------------------------


def _hand_goodput(candidates, b, b_noise, alpha, beta):
    candidates = np.asarray(candidates, np.float64)
    throughput = candidates / (alpha + beta * candidates)
    efficiency = (b_noise + b) / (b_noise + candidates)
    return throughput * efficiency


def test_choose_batch_is_the_argmax_of_hand_computed_goodput():
    rng = np.random.default_rng(7)
    b = 16
    candidates = [b * k for k in range(1, 33)]
    for _ in range(200):
        alpha, beta = rng.uniform(0.001, 0.1), rng.uniform(1e-6, 1e-3)
        b_noise = float(np.exp(rng.uniform(0, 10)))
        # Two timed batches, exactly linear: every candidate's time is alpha + beta B.
        model = _model([(b, alpha + beta * b), (candidates[-1], alpha + beta * candidates[-1])])
        expected = _hand_goodput(candidates, b, b_noise, alpha, beta)
        batch, record = gp.choose_batch(candidates, b, b_noise, model)
        assert batch == candidates[int(np.argmax(expected))]
        got = np.array([row["goodput"] for row in record["candidates"]])
        np.testing.assert_allclose(got, expected, rtol=1e-9)
        assert record["batch"] == batch and record["b_noise"] == b_noise
        assert [row["batch"] for row in record["candidates"]] == candidates
        assert [row["measured"] for row in record["candidates"]] == (
            [True] + [False] * 30 + [True])


def test_choose_batch_breaks_ties_towards_the_smaller_batch():
    # The same step time at every batch and efficiency b / B: every goodput is b / t.
    model = _model([(8, 0.1), (16, 0.1), (24, 0.1), (32, 0.1)])
    batch, record = gp.choose_batch([8, 16, 24, 32], 8, None, model)
    assert batch == 8
    goodputs = [row["goodput"] for row in record["candidates"]]
    assert max(goodputs) - min(goodputs) < 1e-12 * max(goodputs)
    # goodput(8) = 8 / 0.3; goodput(16) = 16 / 0.4 * E(16) with E(16) = (8 + 8) / (8 + 16) = 2/3:
    # equal (up to rounding), so the smaller batch; a slightly faster 16 wins.
    assert gp.choose_batch([8, 16], 8, 8.0, _model([(8, 0.3), (16, 0.4)]))[0] == 8
    assert gp.choose_batch([8, 16], 8, 8.0, _model([(8, 0.3), (16, 0.399)]))[0] == 16
    assert gp.choose_batch([8, 16], 8, 8.0, _model([(8, 0.3), (16, 0.401)]))[0] == 8


def test_choose_batch_without_timings_takes_the_smallest_candidate():
    batch, record = gp.choose_batch([64, 32, 128], 32, 1000.0, gp.ThroughputModel())
    assert batch == 32
    assert all(row["goodput"] is None for row in record["candidates"])


def test_choose_batch_record_is_json():
    model = _model([(8, 0.1), (16, 0.15)])
    record = gp.choose_batch([8, 16, 24], 8, 30.0, model)[1]
    assert json.loads(json.dumps(record)) == record


# -- the controller --------------------------------------------------------------------------


def _timing(batch):
    """A deterministic step time: 20 ms + 0.5 ms per example."""
    return 0.02 + 0.0005 * batch


def _drive(controller, decisions, steps_per_decision, noise_of, start=0):
    """Steps and decisions as a trainer makes them; returns the decided batches."""
    chosen = []
    for d in range(start, decisions):
        for s in range(steps_per_decision):
            controller.record(controller.batch, _timing(controller.batch) * (1 + 0.01 * (s % 3)))
        chosen.append(controller.decide((d + 1) * steps_per_decision, noise_of(d)))
    return chosen


def test_controller_stays_at_the_small_batch_until_the_noise_scale_is_measured():
    controller = gp.BatchSizeController(16, gp.candidate_batches(16, 128),
                                        throughput_model=gp.ThroughputModel(min_timings=2))
    chosen = _drive(controller, 4, 5, lambda d: None)
    assert chosen == [16] * 4
    assert [entry["reason"] for entry in controller.log] == ["goodput"] * 4


def test_controller_explores_once_then_follows_goodput():
    controller = gp.BatchSizeController(16, gp.candidate_batches(16, 256, "powers_of_two"),
                                        throughput_model=gp.ThroughputModel(min_timings=2))
    assert controller.decide(0, 500.0) == 16 and controller.log[0]["reason"] == "no_timings"
    chosen = _drive(controller, 6, 5, lambda d: 500.0)
    reasons = [entry["reason"] for entry in controller.log[1:]]
    # 16 timed; 32 explored; then the fit (exact for these linear timings) decides.
    assert chosen[0] == 32 and reasons[0] == "explore"
    expected = _hand_goodput([16, 32, 64, 128, 256], 16, 500.0, 0.02, 0.0005)
    best = [16, 32, 64, 128, 256][int(np.argmax(expected))]
    assert best not in (16, 32)  # the fit moves on beyond the two timed batches
    assert chosen[1] == best and reasons[1] == "goodput"
    # From the measured 128, 256 could win at 128's step time: explored once, found slower
    # (as the hand goodput says), and the controller comes back to 128 for good.
    assert chosen[2:] == [256, best, best, best]
    assert reasons[2:] == ["explore", "goodput", "goodput", "goodput"]
    explored = [entry["batch"] for entry in controller.log if entry["reason"] == "explore"]
    assert explored == [32, 256]


def test_controller_does_not_explore_a_batch_that_cannot_win():
    # Tiny noise scale: even with perfect scaling 32 would not beat 16.
    controller = gp.BatchSizeController(16, [16, 32], throughput_model=gp.ThroughputModel(
        min_timings=1, skip_after_switch=0))
    controller.record(16, 0.1)
    assert controller.decide(1, 1e-9) == 16
    assert controller.log[-1]["reason"] == "goodput"
    controller.explore = False
    assert controller.decide(2, 1000.0) == 16


def test_controller_state_round_trips_through_json_and_resumes_identically():
    def noise_of(d):
        return None if d < 2 else 40.0 * (d + 1) + 1 / 3

    def fresh():
        return gp.BatchSizeController(8, gp.candidate_batches(8, 96),
                                      throughput_model=gp.ThroughputModel(window=4,
                                                                          min_timings=2))

    uninterrupted = fresh()
    expected = _drive(uninterrupted, 12, 4, noise_of)
    assert len(set(expected)) > 2  # the run does change its batch

    first = fresh()
    chosen = _drive(first, 5, 4, noise_of)
    text = json.dumps(first.state())
    state = json.loads(text)
    assert state == first.state()
    resumed = gp.BatchSizeController.from_state(state)
    assert resumed.state() == first.state()
    chosen += _drive(resumed, 12, 4, noise_of, start=5)
    assert chosen == expected
    assert resumed.log == uninterrupted.log
    assert resumed.state() == uninterrupted.state()
    # load_state into a controller built with the same settings works the same.
    other = fresh()
    other.load_state(state)
    assert other.state() == state


def test_controller_rejects_a_state_of_other_settings():
    state = gp.BatchSizeController(8, [8, 16]).state()
    with pytest.raises(ValueError, match=r"candidates=\[8, 16, 24\]"):
        gp.BatchSizeController(8, [8, 16, 24]).load_state(state)
    with pytest.raises(ValueError, match="without"):
        gp.BatchSizeController(8, [8, 16]).load_state({"batch": 8})


@pytest.mark.parametrize("kwargs, fragment", [
    ({"small_batch": 8, "candidates": [8, 16], "initial_batch": 24}, "initial_batch=24"),
    ({"small_batch": 8, "candidates": [8, 12]}, "candidates=[8, 12]"),
    ({"small_batch": 0, "candidates": [8]}, "small_batch=0"),
    ({"small_batch": 8, "candidates": [8], "explore": 1}, "explore=1"),
])
def test_controller_rejects_bad_arguments(kwargs, fragment):
    with pytest.raises(ValueError, match="Expected") as info:
        gp.BatchSizeController(**kwargs)
    assert fragment in str(info.value)


def test_decide_rejects_a_negative_step():
    with pytest.raises(ValueError, match="step=-1"):
        gp.BatchSizeController(8, [8]).decide(-1, None)
