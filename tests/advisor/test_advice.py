"""advise(): candidates, rates, ghosts, remedies and the recommendation, worked by hand."""

import dataclasses
import json
import math

import pytest

from tfgap.advisor import (
    Advice,
    NoiseScaleError,
    NoiseScales,
    advise,
    candidate_batch_sizes,
    combine_chunks,
    ghost_batch_size_for,
)

# B_simple 400 at B_small 50, a 10-epoch regime over 3600 examples (72 steps per epoch):
# S_small = 720, S_min = 720 / (1 + 400 / 50) = 80.
BASE = dict(small_batch_size=50, epochs=10, num_train_examples=3600, learning_rate=0.02,
            max_batch_size=1600, lr_boundaries=(7,))


def by_batch(advice):
    return {c.batch_size: c for c in advice.candidates}


def test_candidates_worked_by_hand():
    a = advise(400.0, b_simple_stderr=40.0, **BASE)
    assert (a.small_steps, a.s_min, a.e_min) == (720, pytest.approx(80.0), pytest.approx(32000.0))
    c = by_batch(a)
    assert sorted(c) == [50, 100, 200, 400, 800, 1600]

    small = c[50]
    assert small.predicted_steps == pytest.approx(720.0)
    assert small.learning_rate_sqrt == small.learning_rate_linear == pytest.approx(0.02)
    assert small.warmup_epochs == 0 and small.ghost_batch_size == 0 and small.remedies == ()
    assert small.regime_adaptation == 1.0 and small.relative_wall_time == 1.0

    b400 = c[400]  # 9 steps per epoch
    assert b400.predicted_steps == pytest.approx(80.0 * (1 + 400 / 400))
    assert b400.predicted_examples == pytest.approx(160.0 * 400)
    assert b400.predicted_epochs == pytest.approx(160.0 * 400 / 3600)
    assert b400.learning_rate_sqrt == pytest.approx(0.02 * math.sqrt(8))
    assert b400.learning_rate_linear == pytest.approx(0.16)
    assert b400.warmup_epochs == pytest.approx(8 / 9)  # 5% of 160 steps, 9 steps per epoch
    assert b400.regime_adapted_steps == 720  # 10 epochs x 8 x 9 steps
    assert b400.regime_adaptation == pytest.approx(160 / 90)  # 10 epochs = 90 steps at 400
    assert b400.ghost_batch_size == 50
    assert b400.remedies == ("LR", "warmup", "GBN", "RA")
    assert b400.relative_wall_time == pytest.approx(160 / 720)
    assert not b400.beyond_critical and c[800].beyond_critical

    b1600 = c[1600]  # 2 steps per epoch
    assert b1600.predicted_steps == pytest.approx(100.0)
    assert b1600.regime_adaptation == pytest.approx(5.0)
    assert b1600.warmup_epochs == pytest.approx(2.5)
    assert b1600.regime_adapted_steps == 640

    # AdaScale's gain (1 + 400 / 50) / (1 + 400 / B) times 0.02: 1, 1.8, 3, 4.5, 6, 7.2.
    gains = [1.0, 9 / 5, 9 / 3, 9 / 2, 9 / 1.5, 9 / 1.25]
    assert [c[b].learning_rate_gain for b in sorted(c)] == pytest.approx(
        [0.02 * g for g in gains])
    assert small.learning_rate_gain == 0.02  # exactly the trusted rate at the small batch

    # The candidate closest to B_crit = B_simple = 400.
    assert a.recommended == b400 and a.b_crit == 400.0 and a.b_crit_source == "b_simple"
    assert a.learning_rate_rule == "gain" and a.learning_rate_of() == pytest.approx(0.09)
    assert a.flags() == {"batch_size": 400, "base_batch_size": 50, "lr_scaling": "none",
                         "warmup_epochs": 0.8888, "ghost_batch_size": 50,
                         "regime_adaptation": 1.7778, "lr_multiplier": 4.5,
                         "warmup_start": "zero"}
    sqrt = advise(400.0, b_simple_stderr=40.0, scaling="sqrt", **BASE)
    assert sqrt.flags() == {"batch_size": 400, "base_batch_size": 50, "lr_scaling": "sqrt",
                            "warmup_epochs": 0.8888, "ghost_batch_size": 50,
                            "regime_adaptation": 1.7778}
    assert a.warnings == ()
    assert "Recommended: batch 400" in a.recommendation()
    table = a.format_table().splitlines()
    assert len(table) == 7 and table[4].startswith("*") and "LR,warmup,GBN,RA" in table[4]


def test_measured_step_times_fill_the_wall_time_column_but_do_not_move_the_recommendation():
    times = {50: 1.0, 100: 1.0, 200: 1.0, 400: 3.0}
    a = advise(400.0, step_times=times, **dict(BASE, max_batch_size=400))
    c = by_batch(a)
    # Steps 720, 400, 240, 160; wall = steps x time: 720, 400, 240, 480.
    assert [c[b].relative_wall_time for b in (100, 200, 400)] == pytest.approx(
        [400 / 720, 240 / 720, 480 / 720])
    # The rule is the trade-off's (closest to B_crit = 400), not the least wall time (200).
    assert a.recommended.batch_size == 400
    with pytest.raises(ValueError, match="missing"):
        advise(400.0, step_times={50: 1.0}, **BASE)


def test_warmup_ends_by_the_first_stretched_boundary():
    c = by_batch(advise(400.0, **dict(BASE, lr_boundaries=(0.2,))))
    assert c[400].warmup_epochs == pytest.approx(0.2 * 160 / 90)


def test_small_batch_already_past_critical():
    a = advise(20.0, **BASE)
    assert a.recommended.batch_size == 50  # the closest candidate to 20
    assert all(c.beyond_critical for c in a.candidates)
    assert any("below the small batch" in w for w in a.warnings)


def test_replicas_and_no_batch_norm():
    assert candidate_batch_sizes(50, 1600, num_replicas=4) == [100, 200, 400, 800, 1600]
    a = advise(400.0, num_replicas=4, **BASE)
    c = by_batch(a)
    assert min(c) == 100 and c[100].per_replica_batch_size == 25
    assert c[100].ghost_batch_size == 0 and c[400].ghost_batch_size == 50
    assert any("do not split over 4 replicas" in w for w in a.warnings)
    plain = advise(400.0, batch_norm=False, **BASE)
    assert all(c.ghost_batch_size == 0 and "GBN" not in c.remedies for c in plain.candidates)
    assert ghost_batch_size_for(96, 64) == 48  # the largest divisor <= the small batch


def test_uncertain_noise_scale_is_a_warning():
    a = advise(400.0, b_simple_stderr=300.0, **BASE)
    assert any("uncertain" in w and "more examples" in w for w in a.warnings)


@pytest.mark.parametrize("bad", [-12.0, 0.0, float("nan"), float("inf"), None])
def test_unusable_noise_scale_is_refused(bad):
    with pytest.raises(NoiseScaleError, match="more examples"):
        advise(bad, **BASE)


def test_max_batch_below_the_small_batch_is_refused():
    with pytest.raises(ValueError, match="max_batch_size` >= the small batch size 50.*"
                                         "Raise `max_batch_size`"):
        advise(400.0, **dict(BASE, max_batch_size=32))


def test_batches_beyond_the_training_set_are_left_out():
    a = advise(400.0, **dict(BASE, max_batch_size=10_000))
    assert max(c.batch_size for c in a.candidates) == 3200
    assert any("above the 3600 training examples" in w for w in a.warnings)


def test_json_round_trip(tmp_path):
    points = (combine_chunks([3.0, 5.0], [0.01, 0.012], batch_size=50, num_examples=800,
                             step=100),
              combine_chunks([4.0, 6.0], [0.01, 0.011], batch_size=50, num_examples=800,
                             step=200))
    a = advise(400.0, b_simple_stderr=40.0, measurements=points,
               settings={"dataset": "mnist1d", "model": "mlp"}, **BASE)
    text = a.to_json()
    data = json.loads(text)
    # The keys the issue promises.
    assert data["b_simple"] == 400.0 and data["b_simple_stderr"] == 40.0
    keys = {"batch_size", "predicted_steps", "predicted_examples", "learning_rate_sqrt",
            "learning_rate_linear", "ghost_batch_size"}
    assert all(keys <= set(c) for c in data["candidates"])
    assert data["recommended"] in data["candidates"]
    back = Advice.from_json(text)
    assert back == a and back.to_json() == text
    path = tmp_path / "advice.json"
    a.save(path)
    assert Advice.load(path) == a


def test_non_finite_measurements_serialize_as_valid_json():
    bad = combine_chunks([1.0, 1.0], [0.0, 0.0], batch_size=8, num_examples=64, step=5)
    a = advise(400.0, measurements=(bad,), **BASE)
    text = json.dumps(a.to_dict(), allow_nan=False)  # strict JSON: no NaN/Infinity tokens
    back = Advice.from_json(text)
    assert math.isinf(back.measurements[0].b_simple)
    with pytest.raises(ValueError, match="unknown keys"):
        Advice.from_dict(dict(a.to_dict(), extra=1))


def test_the_small_batch_row_is_the_trusted_regime_itself():
    # 3200 examples, batch 50: 64 steps per epoch, 640 steps; S(50) = 640 up to round-off.
    a = advise(434.1, **dict(BASE, num_train_examples=3200))
    small = a.candidates[0]
    assert small.batch_size == 50 and small.regime_adaptation == 1.0 and small.remedies == ()
    assert small.predicted_steps == pytest.approx(640.0)


def test_the_recommendation_is_the_candidate_closest_to_b_crit_in_log_distance():
    # 560 / 400 = 1.40 < 800 / 560 = 1.43: 400. 580 / 400 = 1.45 > 800 / 580 = 1.38: 800
    # (the largest doubling below B_crit would still say 400).
    assert advise(560.0, **BASE).recommended.batch_size == 400
    assert advise(580.0, **BASE).recommended.batch_size == 800
    # The geometric midpoint 400 sqrt(2) is a tie: the smaller batch.
    assert advise(400 * math.sqrt(2), **BASE).recommended.batch_size == 400
    beyond = advise(10_000.0, **BASE)
    assert beyond.recommended.batch_size == 1600
    assert any("above twice the largest candidate 1600" in w for w in beyond.warnings)


def test_each_candidate_states_its_cost_relative_to_the_minimum():
    a = advise(400.0, b_simple_stderr=40.0, **BASE)
    c = by_batch(a)
    # B = 200: S/S_min = 1 + 400/200 = 3 in (1 + 360/200, 1 + 440/200) = (2.8, 3.2);
    # E/E_min = 1 + 200/400 = 1.5 in (1 + 200/440, 1 + 200/360).
    assert c[200].relative_steps == pytest.approx(3.0)
    assert c[200].relative_steps_interval == pytest.approx((2.8, 3.2))
    assert c[200].relative_examples == pytest.approx(1.5)
    assert c[200].relative_examples_interval == pytest.approx((1 + 200 / 440, 1 + 200 / 360))
    # The steps and examples columns agree with the relative ones.
    for b, cand in c.items():
        assert cand.predicted_steps == pytest.approx(a.s_min * cand.relative_steps)
        assert cand.predicted_examples == pytest.approx(a.e_min * cand.relative_examples)
    assert c[400].relative_steps == c[400].relative_examples == pytest.approx(2.0)
    # A standard error as large as B_crit: the examples' interval is unbounded above.
    wide = by_batch(advise(400.0, b_simple_stderr=400.0, **BASE))
    assert wide[200].relative_examples_interval[1] == math.inf
    assert wide[200].relative_steps_interval[0] == pytest.approx(1.0)
    text = a.format_table()
    assert "S/S_min" in text and "3 (2.8-3.2)" in text and "lr eps_opt" not in text
    assert "2x the fewest steps" in a.recommendation() or "2 (1.9-2.1)x" in a.recommendation()


SCALES = NoiseScales(
    b_simple=400.0, b_noise=800.0, ratio=2.0, eps_max=0.5, b_simple_stderr=40.0,
    b_noise_stderr=80.0, ratio_stderr=0.2, eps_max_stderr=0.05, norm_sq=1.0, trace=400.0,
    curvature=2.0, trace_curvature=1600.0, product="hessian", num_draws=16, small_batch=50,
    big_batch=200)


def test_measured_b_noise_is_reported_beside_b_simple_which_sets_b_crit():
    a = advise(400.0, b_simple_stderr=40.0, noise_scales=SCALES, momentum=0.9, **BASE)
    c = by_batch(a)
    assert (a.b_crit, a.b_crit_stderr, a.b_crit_source) == (400.0, 40.0, "b_simple")
    assert (a.b_noise, a.ratio, a.eps_max, a.momentum) == (800.0, 2.0, 0.5, 0.9)
    assert a.s_min == pytest.approx(80.0) and a.recommended.batch_size == 400
    # eps_opt(B) = (1 - 0.9) * 0.5 / (1 + 800 / B): 0.025 at 800, 0.05 / 17 at 50: a column.
    assert c[800].learning_rate_eps_opt == pytest.approx(0.025)
    assert c[50].learning_rate_eps_opt == pytest.approx(0.05 / 17)
    assert a.learning_rate_rule == "gain" and a.learning_rate_of() == pytest.approx(0.09)
    assert "lr 0.09 (gain rule" in a.recommendation()
    assert "B_crit = B_simple = 400" in a.recommendation()
    text = "\n".join(a.explanation())
    assert "B_noise = 800 +- 80" in text and "B_noise / B_simple = 2 +- 0.2" in text
    assert "closest to B_crit" in text and "AdaScale" in text
    table = a.format_table()
    assert "lr gain" in table and "lr eps_opt" in table


def test_the_eps_opt_rule_when_asked_for():
    a = advise(400.0, b_simple_stderr=40.0, noise_scales=SCALES, momentum=0.9,
               scaling="eps_opt", **BASE)
    c = by_batch(a)
    assert a.learning_rate_rule == "eps_opt" and a.b_crit == 400.0
    assert a.learning_rate_of(c[800]) == pytest.approx(0.025)
    assert a.flags(c[800])["lr_scaling"] == "none"
    assert a.flags(c[800])["lr_multiplier"] == pytest.approx(0.025 / 0.02)
    assert "2-20x below the tuned rates" in a.learning_rate_reason
    # What model.fit needs at 800: 3600 // 800 = 4 steps per epoch, regime adaptation
    # S(800) / (10 epochs x 4) = 80 (1 + 400 / 800) / 40 = 3, so it plans S(800) = 120 steps.
    fit = a.fit_arguments(c[800])
    schedule = fit["learning_rate"]
    assert fit["batch_size"] == 800 and schedule.steps_per_epoch == 4
    assert schedule.total_steps == 120 and fit["epochs"] == 30
    assert float(schedule(119)) == pytest.approx(0.025)
    with pytest.raises(ValueError, match="scaling='eps_opt'; received none"):
        advise(400.0, scaling="eps_opt", **BASE)
    with pytest.raises(ValueError, match="Expected scaling in"):
        advise(400.0, scaling="cubic", **BASE)
    assert a.learning_rate_of(c[800], "linear") == pytest.approx(0.02 * 16)
    with pytest.raises(ValueError, match="Expected rule in"):
        a.learning_rate_of(c[800], "cubic")


def test_the_default_rate_is_the_adascale_gain_and_sqrt_for_other_optimizers():
    a = advise(400.0, **BASE)
    assert a.learning_rate_rule == "gain" and a.b_noise is None
    assert all(c.learning_rate_eps_opt is None for c in a.candidates)
    assert "Learning rate: gain rule. lr(B) = lr_small (1 + B_simple / B_small)" in "\n".join(
        a.explanation())
    schedule = a.schedule()
    # Gain 4.5 at 400: 0.09, planned over S(400) = 160 steps (9 per epoch).
    assert float(schedule(159)) == pytest.approx(0.09, rel=1e-6)
    assert schedule.total_steps == 160
    sqrt = advise(400.0, scaling="sqrt", **BASE)
    assert "lr_multiplier" not in sqrt.flags()
    assert float(sqrt.schedule()(159)) == pytest.approx(0.02 * math.sqrt(8), rel=1e-6)
    adam = advise(400.0, momentum=None, **BASE)
    assert adam.learning_rate_rule == "sqrt" and "not SGD" in adam.learning_rate_reason
    assert adam.learning_rate_of() == pytest.approx(0.02 * math.sqrt(8))


def test_unusable_b_noise_leaves_out_the_eps_opt_column_with_a_warning():
    bad = dataclasses.replace(SCALES, b_noise=float("nan"))
    a = advise(400.0, noise_scales=bad, **BASE)
    assert a.b_crit_source == "b_simple" and a.learning_rate_rule == "gain"
    assert all(c.learning_rate_eps_opt is None for c in a.candidates)
    assert any("eps_opt column is left out" in w for w in a.warnings)
    with pytest.raises(ValueError, match="scaling='eps_opt'; received B_noise=nan"):
        advise(400.0, noise_scales=bad, scaling="eps_opt", **BASE)
    with pytest.raises(ValueError, match="NoiseScales.*Received dict"):
        advise(400.0, noise_scales={"b_noise": 3}, **BASE)


def test_advice_files_without_the_new_fields_still_load():
    a = advise(400.0, b_simple_stderr=40.0, noise_scales=SCALES, **BASE)
    new = {"b_crit", "b_crit_stderr", "b_crit_source", "b_noise", "b_noise_stderr", "ratio",
           "ratio_stderr", "eps_max", "eps_max_stderr", "momentum", "learning_rate_rule",
           "learning_rate_reason"}
    new_candidate = {"learning_rate_eps_opt", "learning_rate_gain", "relative_steps", "relative_steps_interval",
                     "relative_examples", "relative_examples_interval"}
    old = {k: v for k, v in advise(400.0, b_simple_stderr=40.0, **BASE).to_dict().items()
           if k not in new}
    for key in ("candidates",):
        old[key] = [{k: v for k, v in c.items() if k not in new_candidate} for c in old[key]]
    old["recommended"] = {k: v for k, v in old["recommended"].items() if k not in new_candidate}
    old["scaling"] = "sqrt"  # the default of files written then
    back = Advice.from_json(json.dumps(old))
    assert back.b_crit == 400.0 and back.b_crit_stderr == 40.0
    assert back.learning_rate_rule == "sqrt" and back.recommended.relative_steps is None
    assert back.flags()["batch_size"] == 400 and "Recommended: batch 400" in back.recommendation()
    assert "S/S_min" not in back.format_table()
    # The new file round-trips, strict JSON even with a non-finite error.
    odd = advise(400.0, noise_scales=dataclasses.replace(SCALES, b_noise_stderr=float("nan")),
                 **dict(BASE, max_batch_size=3200))
    text = json.dumps(odd.to_dict(), allow_nan=False)
    back = Advice.from_json(text)
    assert math.isnan(back.b_noise_stderr) and back.recommended == odd.recommended
    assert Advice.from_json(a.to_json()) == a
