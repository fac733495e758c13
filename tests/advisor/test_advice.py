"""advise(): candidates, rates, ghosts, remedies and the recommendation, worked by hand."""

import json
import math

import pytest

from tfgap.advisor import (
    Advice,
    NoiseScaleError,
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

    # Constant step times: the largest batch <= B_simple.
    assert a.recommended == b400
    assert a.flags() == {"batch_size": 400, "base_batch_size": 50, "lr_scaling": "sqrt",
                         "warmup_epochs": 0.8888, "ghost_batch_size": 50,
                         "regime_adaptation": 1.7778}
    assert a.warnings == ()
    assert "Recommended: batch 400" in a.recommendation()
    table = a.format_table().splitlines()
    assert len(table) == 7 and table[4].startswith("*") and "LR,warmup,GBN,RA" in table[4]


def test_measured_step_times_move_the_recommendation():
    times = {50: 1.0, 100: 1.0, 200: 1.0, 400: 3.0}
    a = advise(400.0, step_times=times, **dict(BASE, max_batch_size=400))
    c = by_batch(a)
    # Steps 720, 400, 240, 160; wall = steps x time: 720, 400, 240, 480.
    assert [c[b].relative_wall_time for b in (100, 200, 400)] == pytest.approx(
        [400 / 720, 240 / 720, 480 / 720])
    assert a.recommended.batch_size == 200
    with pytest.raises(ValueError, match="missing"):
        advise(400.0, step_times={50: 1.0}, **BASE)


def test_warmup_ends_by_the_first_stretched_boundary():
    c = by_batch(advise(400.0, **dict(BASE, lr_boundaries=(0.2,))))
    assert c[400].warmup_epochs == pytest.approx(0.2 * 160 / 90)


def test_small_batch_already_past_critical():
    a = advise(20.0, **BASE)
    assert a.recommended.batch_size == 50
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
