"""Tests for `LargeBatchSchedule(decay="polynomial")`, `warmup_start` and `check_decay`.

Every expected rate comes from `_closed_form` below, the formula of the issue
written out in plain Python, with the warm-up length `W`, the decay's end `T`,
the peak, end and start rates worked out by hand in each case's comment (never
read from the schedule). A few rates are also written as literals, so that a
mistake shared by the closed form and the schedule would still show.
"""

import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from tests.schedules.test_large_batch import _ones_data, _ones_model, _sgd_trajectory
from tfgap.schedules import LargeBatchSchedule
from tfgap.schedules.large_batch import check_decay

FAR = 10**9  # far past the end (and past float32's exact integers)

# A polynomial regime at base batch 32: 0.1 decaying to 0.001 over 4 epochs;
# trained at batch 128 (k = 4) with 5 steps per epoch and 1 epoch (5 steps) of warm-up.
POLY = dict(boundaries=[], values=[0.1], base_batch_size=32, batch_size=128, steps_per_epoch=5,
            warmup_epochs=1, decay="polynomial", decay_epochs=4, end_value=0.001)


def _closed_form(step, *, start, peak, end, W, T, power):
    """The rate of the issue's formula: linear warm-up, then the polynomial decay."""
    if step < W:
        return start + (peak - start) * step / W
    if step >= T:
        return end
    return end + (peak - end) * (1.0 - (step - W) / (T - W)) ** power


# (overrides of POLY, the closed form's parameters)
CASES = {
    # sqrt(4) = 2, stretch 4: T = 4 * 4 * 5 = 80; peak 0.2, end 0.002, from 0.1.
    "sqrt_ra_p2_base": (dict(scaling="sqrt", regime_adaptation=True),
                        dict(start=0.1, peak=0.2, end=0.002, W=5, T=80, power=2.0)),
    # stretch 1: T = 4 * 5 = 20.
    "sqrt_no_ra_p2_base": (dict(scaling="sqrt", regime_adaptation=False),
                           dict(start=0.1, peak=0.2, end=0.002, W=5, T=20, power=2.0)),
    "sqrt_ra_p1_zero": (dict(scaling="sqrt", regime_adaptation=True, decay_power=1.0,
                             warmup_start="zero"),
                        dict(start=0.0, peak=0.2, end=0.002, W=5, T=80, power=1.0)),
    "sqrt_no_ra_p1_base": (dict(scaling="sqrt", regime_adaptation=False, decay_power=1),
                           dict(start=0.1, peak=0.2, end=0.002, W=5, T=20, power=1.0)),
    "sqrt_no_ra_p2_zero": (dict(scaling="sqrt", regime_adaptation=False, warmup_start="zero"),
                           dict(start=0.0, peak=0.2, end=0.002, W=5, T=20, power=2.0)),
    # multiplier 1: peak 0.1, end 0.001; the "base" warm-up is flat at 0.1.
    "none_ra_p2_zero": (dict(scaling="none", regime_adaptation=True, warmup_start="zero"),
                        dict(start=0.0, peak=0.1, end=0.001, W=5, T=80, power=2.0)),
    "none_ra_p2_base": (dict(scaling="none", regime_adaptation=True),
                        dict(start=0.1, peak=0.1, end=0.001, W=5, T=80, power=2.0)),
    "none_no_ra_p1_zero": (dict(scaling="none", regime_adaptation=False, decay_power=1.0,
                                warmup_start="zero"),
                           dict(start=0.0, peak=0.1, end=0.001, W=5, T=20, power=1.0)),
    # multiplier 4, stretch 2: T = 4 * 2 * 5 = 40; peak 0.4, end 0.004.
    "linear_partial_ra_p2_zero": (dict(scaling="linear", regime_adaptation=2.0,
                                       warmup_start="zero"),
                                  dict(start=0.0, peak=0.4, end=0.004, W=5, T=40, power=2.0)),
    # No warm-up: the decay starts at step 0 from the peak.
    "sqrt_ra_p2_no_warmup": (dict(scaling="sqrt", regime_adaptation=True, warmup_epochs=0),
                             dict(start=0.1, peak=0.2, end=0.002, W=0, T=80, power=2.0)),
    # end_value defaults to 0; power 0.5.
    "sqrt_no_ra_p_half_to_zero": (dict(scaling="sqrt", decay_power=0.5, end_value=0.0),
                                  dict(start=0.1, peak=0.2, end=0.0, W=5, T=20, power=0.5)),
    # k = 96 / 32 = 3: warm-up 0.5 epoch = 2.5 -> 3 steps, T = 1.5 * 3 * 5 = 22.5 -> 23
    # (halves round up); peak 0.1 * sqrt(3), end 0.001 * sqrt(3).
    "sqrt_ra_fractional": (dict(batch_size=96, regime_adaptation=True, warmup_epochs=0.5,
                                decay_epochs=1.5),
                           dict(start=0.1, peak=0.1 * 3**0.5, end=0.001 * 3**0.5, W=3, T=23,
                                power=2.0)),
}


def _schedule(**overrides):
    return LargeBatchSchedule(**{**POLY, **overrides})


def _steps(W, T):
    """First step, mid warm-up, W - 1, W, mid-decay, T - 1, T, beyond T."""
    return sorted({0, W // 2, max(W - 1, 0), W, W + 1, (W + T) // 2, T - 1, T, T + 1, FAR})


@pytest.mark.parametrize("case", sorted(CASES))
def test_rate_matches_the_closed_form(case):
    overrides, form = CASES[case]
    schedule = _schedule(**overrides)
    assert (schedule.warmup_steps, schedule.decay_steps) == (form["W"], form["T"])
    for step in _steps(form["W"], form["T"]):
        np.testing.assert_allclose(float(schedule(step)), _closed_form(step, **form),
                                   rtol=1e-6, atol=1e-9, err_msg=f"{case} at step {step}")


# Literals by hand, independent of `_closed_form`.
LITERALS = [
    # W = 5, T = 20: step 10 is 5 of 15 decay steps: 0.002 + 0.198 * (2 / 3) ** 2 = 0.09.
    ("sqrt_no_ra_p2_base", [(0, 0.1), (3, 0.16), (5, 0.2), (10, 0.09), (20, 0.002)]),
    # W = 5, T = 80: step 65 is 60 of 75: 0.002 + 0.198 * 0.2 = 0.0416; warm-up 0.2 * t / 5.
    ("sqrt_ra_p1_zero", [(0, 0.0), (1, 0.04), (4, 0.16), (5, 0.2), (65, 0.0416),
                         (79, 0.002 + 0.198 / 75), (80, 0.002), (FAR, 0.002)]),
    # W = 5, T = 40: step 30 is 25 of 35: 0.004 + 0.396 * (10 / 35) ** 2.
    # Step 39 is 34 of 35: 0.004 + 0.396 / 35 ** 2. Warm-up 0.4 * t / 5.
    ("linear_partial_ra_p2_zero", [(2, 0.16), (30, 0.004 + 0.396 * 4 / 49),
                                   (39, 0.004 + 0.396 / 35**2)]),
    # W = 5, T = 20: step 15 is 10 of 15: 0.2 * (1 / 3) ** 0.5.
    ("sqrt_no_ra_p_half_to_zero", [(15, 0.2 / math.sqrt(3)), (20, 0.0), (FAR, 0.0)]),
]


@pytest.mark.parametrize("case,table", LITERALS, ids=[c for c, _ in LITERALS])
def test_rate_literals(case, table):
    schedule = _schedule(**CASES[case][0])
    for step, expected in table:
        np.testing.assert_allclose(float(schedule(step)), expected, rtol=1e-6, atol=1e-9,
                                   err_msg=f"{case} at step {step}")


@pytest.mark.parametrize("case", ["sqrt_ra_p1_zero", "sqrt_ra_fractional"])
@pytest.mark.parametrize("dtype", [tf.int64, tf.int32, tf.float32])
def test_rate_in_jit_compiled_tf_function(case, dtype):
    overrides, form = CASES[case]
    schedule = _schedule(**overrides)
    rate = tf.function(lambda step: schedule(step), jit_compile=True)
    steps = _steps(form["W"], form["T"])
    if dtype == tf.float32:
        steps.remove(FAR)  # float32 step counts are exact only up to 2**24
    for step in steps:
        out = rate(tf.constant(step, dtype))
        assert out.dtype == tf.float32
        np.testing.assert_allclose(float(out), _closed_form(step, **form), rtol=1e-6,
                                   atol=1e-9, err_msg=f"{case} at step {step} ({dtype})")


# The piecewise regime of test_large_batch (0.1, / 10 at epochs 2 and 3, base 32,
# batch 128, 5 steps per epoch) with a warm-up from 0.
PIECEWISE = dict(boundaries=[2, 3], values=[0.1, 0.01, 0.001], base_batch_size=32,
                 batch_size=128, steps_per_epoch=5, warmup_start="zero")
PIECEWISE_CASES = {
    # linear 4, stretch 4: breakpoints 40 and 60; warm-up 5 steps from 0 to 0.4.
    "linear_ra": (dict(scaling="linear", regime_adaptation=True, warmup_epochs=1),
                  [(0, 0.0), (1, 0.08), (4, 0.32), (5, 0.4), (39, 0.4), (40, 0.04),
                   (59, 0.04), (60, 0.004), (FAR, 0.004)]),
    # sqrt 2, stretch 1: breakpoints 10 and 15; warm-up 0.5 epoch = 2.5 -> 3 steps, 0 to 0.2.
    "sqrt_no_ra_half_epoch": (dict(scaling="sqrt", warmup_epochs=0.5),
                              [(0, 0.0), (1, 0.2 / 3), (2, 0.4 / 3), (3, 0.2), (9, 0.2),
                               (10, 0.02), (15, 0.002)]),
    # multiplier 1: 0 to 0.1 in 10 steps, ending at the first breakpoint.
    "none_to_first_breakpoint": (dict(scaling="none", warmup_epochs=2),
                                 [(0, 0.0), (5, 0.05), (9, 0.09), (10, 0.01), (15, 0.001)]),
}


@pytest.mark.parametrize("case", sorted(PIECEWISE_CASES))
def test_piecewise_warmup_from_zero(case):
    overrides, table = PIECEWISE_CASES[case]
    schedule = LargeBatchSchedule(**{**PIECEWISE, **overrides})
    assert schedule.decay_steps is None
    for step, expected in table:
        np.testing.assert_allclose(float(schedule(step)), expected, rtol=1e-6, atol=1e-9,
                                   err_msg=f"{case} at step {step}")


def test_fit_follows_the_polynomial_rate_each_step():
    # Batch 8 at base 2 (k = 4), "none" scaling, no adaptation, 5 steps per epoch:
    # W = 5 (from 0 to 0.1), T = round(2 * 5) = 10, end 0.01, power 2.
    schedule = LargeBatchSchedule(boundaries=[], values=[0.1], base_batch_size=2, batch_size=8,
                                  steps_per_epoch=5, scaling="none", warmup_epochs=1,
                                  warmup_start="zero", decay="polynomial", decay_epochs=2,
                                  end_value=0.01)
    rates = [_closed_form(t, start=0.0, peak=0.1, end=0.01, W=5, T=10, power=2.0)
             for t in range(15)]
    model = _ones_model()
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=schedule, momentum=0.9),
                  loss="mse", jit_compile=True)
    model.fit(*_ones_data(40), batch_size=8, epochs=3, shuffle=False, verbose=0)  # 15 steps
    # The rate of the next step, 15 >= T: the end rate.
    assert int(model.optimizer.iterations.numpy()) == 15
    np.testing.assert_allclose(float(model.optimizer.learning_rate), 0.01, rtol=1e-6)
    np.testing.assert_allclose(model.layers[0].kernel.numpy()[0, 0],
                               _sgd_trajectory(rates, momentum=0.9), rtol=1e-5)


def test_properties_are_plain_numbers():
    schedule = _schedule(scaling="sqrt", regime_adaptation=True, decay_epochs=3.5,
                         decay_power=1)
    assert schedule.breakpoint_steps == []
    assert schedule.warmup_steps == 5
    assert schedule.decay_steps == 70 and type(schedule.decay_steps) is int  # 3.5 * 4 * 5
    assert schedule.decay_epochs == 3.5 and type(schedule.decay_power) is float
    assert LargeBatchSchedule(**PIECEWISE).decay_steps is None


POLY_CONFIG = {
    "boundaries": [], "values": [0.1], "base_batch_size": 32, "batch_size": 128,
    "steps_per_epoch": 5, "scaling": "linear", "regime_adaptation": 2.5, "warmup_epochs": 1.0,
    "decay": "polynomial", "decay_epochs": 4.0, "decay_power": 1.5, "end_value": 0.001,
    "warmup_start": "zero", "epochs": None, "name": "poly",
}


def test_get_config_returns_constructor_arguments():
    schedule = _schedule(scaling="linear", regime_adaptation=2.5, decay_power=1.5,
                         warmup_start="zero", name="poly")
    assert schedule.get_config() == POLY_CONFIG


@pytest.mark.parametrize("regime_adaptation", [True, False, 2.5])
@pytest.mark.parametrize("warmup_start", ["base", "zero"])
def test_serialization_round_trip(regime_adaptation, warmup_start):
    schedule = _schedule(scaling="sqrt", regime_adaptation=regime_adaptation,
                         warmup_start=warmup_start, decay_power=3.0)
    serialized = keras.saving.serialize_keras_object(schedule)
    assert serialized["registered_name"] == "tfgap>LargeBatchSchedule"
    restored = keras.saving.deserialize_keras_object(serialized)
    via_config = LargeBatchSchedule.from_config(schedule.get_config())
    for other in (restored, via_config):
        assert type(other) is LargeBatchSchedule
        assert other.get_config() == schedule.get_config()
        assert other.decay_steps == schedule.decay_steps
    for step in (0, 2, 5, 6, 19, 20, 45, 79, 80, FAR):
        assert float(restored(step)) == float(schedule(step)) == float(via_config(step))


def test_config_without_the_new_fields_loads_as_piecewise_from_the_base_rate():
    """A config saved before `decay` and `warmup_start` existed still loads, unchanged."""
    old = {"boundaries": [2.0, 3.0], "values": [0.1, 0.01, 0.001], "base_batch_size": 32,
           "batch_size": 128, "steps_per_epoch": 5, "scaling": "linear",
           "regime_adaptation": True, "warmup_epochs": 1.0, "name": None}
    schedule = LargeBatchSchedule.from_config(old)
    assert schedule.decay == "piecewise" and schedule.warmup_start == "base"
    assert [round(float(schedule(t)), 6) for t in (0, 1, 5, 40, 60)] == [
        0.1, 0.16, 0.4, 0.04, 0.004]


def test_keras_save_and_load_of_compiled_model(tmp_path):
    model = _ones_model()
    schedule = LargeBatchSchedule.from_config(POLY_CONFIG)
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=schedule), loss="mse")
    x, y = _ones_data(16)
    model.fit(x, y, batch_size=8, epochs=1, verbose=0)  # 2 steps
    path = tmp_path / "model.keras"
    model.save(path)
    restored = keras.saving.load_model(path)
    assert restored.optimizer.get_config()["learning_rate"]["config"] == POLY_CONFIG
    # Step 2 of the warm-up from 0 to 0.4 (linear 4) over 5 steps.
    np.testing.assert_allclose(float(restored.optimizer.learning_rate), 0.16, rtol=1e-6)


# (base arguments, overrides, fragments of the message): what `check_decay` rejects,
# with no step count needed.
ARGUMENT_ERRORS = [
    (POLY, dict(decay="exponential"), ["decay='exponential'", "'piecewise', 'polynomial'"]),
    (POLY, dict(decay=None), ["decay=None", "'piecewise', 'polynomial'"]),
    (POLY, dict(warmup_start="one"), ["warmup_start='one'", "'base', 'zero'"]),
    (PIECEWISE, dict(warmup_start=0), ["warmup_start=0", "'base', 'zero'"]),
    (POLY, dict(boundaries=[2.0], values=[0.1, 0.01]),
     ["decay='polynomial'", "boundaries=[2.0]", "values=[0.1, 0.01]"]),
    (POLY, dict(values=[0.1, 0.01]), ["one value in `values`", "values=[0.1, 0.01]"]),
    (POLY, dict(values=[]), ["one value in `values`", "values=[]"]),
    (POLY, dict(decay_epochs=None), ["`decay_epochs`", "decay='polynomial'",
                                     "decay_epochs=None"]),
    (POLY, dict(decay_epochs=0), ["`decay_epochs` > 0", "decay_epochs=0"]),
    (POLY, dict(decay_epochs=-4), ["`decay_epochs` > 0", "decay_epochs=-4"]),
    (POLY, dict(decay_epochs=float("nan")), ["`decay_epochs` to be a finite number", "nan"]),
    (POLY, dict(decay_epochs="4"), ["`decay_epochs` to be a finite number", "'4'"]),
    (POLY, dict(decay_power=0), ["`decay_power` > 0", "decay_power=0"]),
    (POLY, dict(decay_power=-2), ["`decay_power` > 0", "decay_power=-2"]),
    (POLY, dict(decay_power=float("inf")), ["`decay_power` to be a finite number", "inf"]),
    (POLY, dict(decay_power=float("nan")), ["`decay_power` to be a finite number", "nan"]),
    (POLY, dict(end_value=-0.001), ["`end_value` >= 0", "end_value=-0.001"]),
    (POLY, dict(end_value=float("nan")), ["`end_value` to be a finite number", "nan"]),
    (POLY, dict(end_value=0.2), ["`end_value` <= values[0]", "end_value=0.2", "values[0]=0.1"]),
    # The piecewise decay would ignore the polynomial-only arguments.
    (PIECEWISE, dict(decay_epochs=4), ["`decay_epochs` only with decay='polynomial'",
                                       "decay_epochs=4"]),
    (PIECEWISE, dict(decay_power=1.0), ["`decay_power` only with decay='polynomial'",
                                        "decay_power=1.0"]),
    (PIECEWISE, dict(end_value=0.001), ["`end_value` only with decay='polynomial'",
                                        "end_value=0.001"]),
]
# What only the schedule can check: the decay ends after the warm-up (T > W).
STEP_ERRORS = [
    # T = round(0.25 * 5) = 1 step, before the end of the 5-step warm-up.
    (POLY, dict(decay_epochs=0.25), ["decay_epochs=0.25", "step 1", "(5 steps)"]),
    # T = 1 * 5 = W: no step of decay after the warm-up.
    (POLY, dict(decay_epochs=1), ["decay_epochs=1", "step 5", "(5 steps)"]),
    # Stretched: T = 0.25 * 4 * 5 = 5 = W.
    (POLY, dict(decay_epochs=0.25, regime_adaptation=True),
     ["step 5", "stretched by 4", "(5 steps)"]),
    # No warm-up: T = round(0.05 * 5) = round(0.25) = 0 steps.
    (POLY, dict(decay_epochs=0.05, warmup_epochs=0), ["step 0", "(0 steps)"]),
]


def _ids(cases):
    return [f"{'poly' if base is POLY else 'piecewise'}-{overrides!r}"
            for base, overrides, _ in cases]


def _assert_names(error, fragments):
    for fragment in fragments:
        assert fragment in str(error), (fragment, str(error))


@pytest.mark.parametrize("base,overrides,fragments", ARGUMENT_ERRORS + STEP_ERRORS,
                         ids=_ids(ARGUMENT_ERRORS + STEP_ERRORS))
def test_bad_arguments_raise_value_error(base, overrides, fragments):
    with pytest.raises(ValueError) as info:
        LargeBatchSchedule(**{**base, **overrides})
    _assert_names(info.value, fragments)


class _ConfigError(Exception):
    """Not a ValueError: `check_decay` must raise the class it is given."""


def _check_decay(arguments, error=ValueError):
    return check_decay(arguments.get("decay", "piecewise"), arguments["boundaries"],
                       arguments["values"], decay_epochs=arguments.get("decay_epochs"),
                       decay_power=arguments.get("decay_power", 2.0),
                       end_value=arguments.get("end_value", 0.0),
                       warmup_start=arguments.get("warmup_start", "base"), error=error)


@pytest.mark.parametrize("base,overrides,fragments", ARGUMENT_ERRORS, ids=_ids(ARGUMENT_ERRORS))
def test_check_decay_raises_the_error_it_is_given(base, overrides, fragments):
    with pytest.raises(_ConfigError) as info:
        _check_decay({**base, **overrides}, error=_ConfigError)
    _assert_names(info.value, fragments)


def test_check_decay_returns_plain_numbers():
    assert _check_decay(dict(POLY, decay_epochs=42, decay_power=1, end_value=0)) == (
        42.0, 1.0, 0.0)
    assert _check_decay(POLY) == (4.0, 2.0, 0.001)
    assert _check_decay(PIECEWISE) == (None, 2.0, 0.0)
    # The defaults written out are not "given": 2 == 2.0 and 0 == 0.0.
    assert _check_decay(dict(PIECEWISE, decay_power=2, end_value=0)) == (None, 2.0, 0.0)
    # end_value may equal values[0] (a constant rate after the warm-up).
    assert _check_decay(dict(POLY, end_value=0.1)) == (4.0, 2.0, 0.1)


def test_fit_epochs_defaults_to_the_decays_length():
    # decay_epochs 4 stretched by 4 at 5 steps per epoch: T = 80 steps = 16 epochs.
    schedule = _schedule(regime_adaptation=True)
    assert (schedule.epochs, schedule.total_steps, schedule.fit_epochs) == (4.0, 80, 16)
    # Stretched by 2.3: T = 46 steps; 9 epochs take 45, so 10.
    assert _schedule(regime_adaptation=2.3).fit_epochs == 10
    # A longer regime holds the end rate after the decay: 5 * 4 * 5 = 100 steps = 20 epochs.
    longer = _schedule(regime_adaptation=True, epochs=5)
    assert (longer.decay_steps, longer.total_steps, longer.fit_epochs) == (80, 100, 20)
    with pytest.raises(ValueError, match=r"decay to end by the end of the regime\. Received: "
                                         r"decay_epochs=4 \(step 80\) and epochs=3 \(60 steps"):
        _schedule(regime_adaptation=True, epochs=3)
