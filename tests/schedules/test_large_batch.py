"""Tests for `tfgap.schedules.LargeBatchSchedule`.

Every expected rate below is computed by hand from the formulas of issue 3 and
written as a literal (or a closed form such as `0.3 * 3 ** 0.5`), never by
calling the schedule.
"""

import numpy as np
import pytest
import tensorflow as tf
import keras

from tfgap.schedules import LargeBatchSchedule

# A regime at base batch 32: 0.1, / 10 at epoch 2, / 10 again at epoch 3;
# trained at batch 128 (k = 4, sqrt(k) = 2) with 5 steps per epoch.
BASE = dict(boundaries=[2, 3], values=[0.1, 0.01, 0.001], base_batch_size=32, batch_size=128,
            steps_per_epoch=5)
FAR = 10**9  # far past the end (and past float32's exact integers)

# (overrides of BASE, [(step, expected rate), ...])
CASES = {
    # stretch 4: breakpoints 2*4*5 = 40 and 3*4*5 = 60; multiplier 2.
    "sqrt_ra": (dict(scaling="sqrt", regime_adaptation=True),
                [(0, 0.2), (39, 0.2), (40, 0.02), (59, 0.02), (60, 0.002), (FAR, 0.002)]),
    # stretch 1: breakpoints 10 and 15.
    "sqrt_no_ra": (dict(scaling="sqrt", regime_adaptation=False),
                   [(0, 0.2), (9, 0.2), (10, 0.02), (14, 0.02), (15, 0.002), (FAR, 0.002)]),
    # multiplier 4.
    "linear_ra": (dict(scaling="linear", regime_adaptation=True),
                  [(0, 0.4), (39, 0.4), (40, 0.04), (59, 0.04), (60, 0.004), (FAR, 0.004)]),
    "linear_no_ra": (dict(scaling="linear", regime_adaptation=False),
                     [(0, 0.4), (9, 0.4), (10, 0.04), (14, 0.04), (15, 0.004), (FAR, 0.004)]),
    "none_ra": (dict(scaling="none", regime_adaptation=True),
                [(0, 0.1), (39, 0.1), (40, 0.01), (59, 0.01), (60, 0.001), (FAR, 0.001)]),
    "none_no_ra": (dict(scaling="none", regime_adaptation=False),
                   [(0, 0.1), (9, 0.1), (10, 0.01), (14, 0.01), (15, 0.001), (FAR, 0.001)]),
    # partial adaptation, stretch 2: breakpoints 2*2*5 = 20 and 3*2*5 = 30.
    "sqrt_partial_ra": (dict(scaling="sqrt", regime_adaptation=2.0),
                        [(0, 0.2), (19, 0.2), (20, 0.02), (29, 0.02), (30, 0.002), (FAR, 0.002)]),
    # warm-up of 1 epoch = 5 steps from 0.1 to 0.4: 0.1 + 0.3 * step / 5.
    "linear_ra_warmup": (dict(scaling="linear", regime_adaptation=True, warmup_epochs=1),
                         [(0, 0.1), (1, 0.16), (4, 0.34), (5, 0.4), (39, 0.4), (40, 0.04),
                          (59, 0.04), (60, 0.004), (FAR, 0.004)]),
    # warm-up of 0.5 epoch = 2.5 -> 3 steps (halves round up), 0.1 to 0.2.
    "sqrt_no_ra_half_epoch_warmup": (
        dict(scaling="sqrt", regime_adaptation=False, warmup_epochs=0.5),
        [(0, 0.1), (1, 0.1 + 0.1 / 3), (2, 0.1 + 0.2 / 3), (3, 0.2), (9, 0.2), (10, 0.02),
         (14, 0.02), (15, 0.002), (FAR, 0.002)]),
    # k = 96 / 32 = 3, one boundary at 1.5 epochs: 1.5 * 3 * 5 = 22.5 -> step 23
    # (halves round up; Python's round() would give 22).
    "sqrt_ra_fractional": (
        dict(boundaries=[1.5], values=[0.3, 0.03], batch_size=96, steps_per_epoch=5,
             regime_adaptation=True),
        [(0, 0.3 * 3**0.5), (22, 0.3 * 3**0.5), (23, 0.03 * 3**0.5), (FAR, 0.03 * 3**0.5)]),
    # The default is no regime adaptation (stretch 1): breakpoints 10 and 15.
    "sqrt_default": (dict(),
                     [(0, 0.2), (9, 0.2), (10, 0.02), (14, 0.02), (15, 0.002), (FAR, 0.002)]),
    # No boundaries: a constant scaled rate (linear, k = 4).
    "constant": (dict(boundaries=[], values=[0.05], scaling="linear"),
                 [(0, 0.2), (1000, 0.2), (FAR, 0.2)]),
    # Warm-up ending exactly at the first breakpoint (stretch 1: step 10).
    "warmup_to_first_breakpoint": (
        dict(scaling="linear", regime_adaptation=False, warmup_epochs=2),
        [(0, 0.1), (5, 0.25), (9, 0.37), (10, 0.04), (15, 0.004)]),
}


def _schedule(**overrides):
    return LargeBatchSchedule(**{**BASE, **overrides})


@pytest.mark.parametrize("case", sorted(CASES))
def test_rate_table_eager(case):
    overrides, table = CASES[case]
    schedule = _schedule(**overrides)
    for step, expected in table:
        np.testing.assert_allclose(float(schedule(step)), expected, rtol=1e-6,
                                   err_msg=f"{case} at step {step}")


@pytest.mark.parametrize("case", ["linear_ra_warmup", "sqrt_ra_fractional", "sqrt_partial_ra"])
def test_rate_table_in_jit_compiled_tf_function(case):
    overrides, table = CASES[case]
    schedule = _schedule(**overrides)
    rate = tf.function(lambda step: schedule(step), jit_compile=True)
    for step, expected in table:
        out = rate(tf.constant(step, tf.int64))
        assert out.dtype == tf.float32
        np.testing.assert_allclose(float(out), expected, rtol=1e-6,
                                   err_msg=f"{case} at step {step}")


def test_properties_are_plain_numbers():
    schedule = _schedule(scaling="sqrt", regime_adaptation=True, warmup_epochs=1)
    assert schedule.breakpoint_steps == [40, 60]
    assert schedule.warmup_steps == 5
    assert schedule.multiplier == 2.0
    assert schedule.stretch == 4.0


def test_get_config_returns_constructor_arguments():
    schedule = _schedule(scaling="linear", regime_adaptation=2.5, warmup_epochs=0.5, epochs=4,
                         name="lb")
    assert schedule.get_config() == {
        "boundaries": [2.0, 3.0], "values": [0.1, 0.01, 0.001], "base_batch_size": 32,
        "batch_size": 128, "steps_per_epoch": 5, "scaling": "linear",
        "regime_adaptation": 2.5, "warmup_epochs": 0.5, "decay": "piecewise",
        "decay_epochs": None, "decay_power": 2.0, "end_value": 0.0, "warmup_start": "base",
        "epochs": 4.0, "name": "lb",
    }
    assert _schedule().get_config()["epochs"] is None


@pytest.mark.parametrize("regime_adaptation", [True, False, 2.5])
def test_serialization_round_trip(regime_adaptation):
    schedule = _schedule(scaling="linear", regime_adaptation=regime_adaptation, warmup_epochs=1,
                         epochs=3.5)
    serialized = keras.saving.serialize_keras_object(schedule)
    assert serialized["registered_name"] == "tfgap>LargeBatchSchedule"
    restored = keras.saving.deserialize_keras_object(serialized)
    assert type(restored) is LargeBatchSchedule
    assert restored.get_config() == schedule.get_config()
    assert restored.regime_adaptation is regime_adaptation or (
        restored.regime_adaptation == regime_adaptation
        and not isinstance(restored.regime_adaptation, bool)
    )
    via_config = LargeBatchSchedule.from_config(schedule.get_config())
    assert restored.fit_epochs == via_config.fit_epochs == schedule.fit_epochs
    for step in (0, 3, 10, 20, 40, 60):
        assert float(restored(step)) == float(schedule(step)) == float(via_config(step))


def _ones_model(seed_value=0.0):
    """y = w * x with w initialized to `seed_value`: on x = 1, y = 1 the MSE
    gradient is 2 (w - 1) for any batch, so the trajectory has a closed form."""
    model = keras.Sequential([
        keras.Input((1,)),
        keras.layers.Dense(1, use_bias=False,
                           kernel_initializer=keras.initializers.Constant(seed_value)),
    ])
    return model


def _ones_data(n):
    x = np.ones((n, 1), np.float32)
    return x, x.copy()


def _sgd_trajectory(rates, momentum=0.0, w=0.0):
    """NumPy reference of Keras SGD on the `_ones_model` problem."""
    v = 0.0
    for lr in rates:
        g = 2.0 * (w - 1.0)
        v = momentum * v - lr * g
        w = w + v
    return w


# Batch 8 at base 2: k = 4, linear multiplier 4; warm-up 1 epoch = 5 steps;
# stretch 4: the breakpoint at epoch 1 falls at step 1 * 4 * 5 = 20.
FIT_ARGS = dict(boundaries=[1], values=[0.1, 0.01], base_batch_size=2, batch_size=8,
                steps_per_epoch=5, scaling="linear", regime_adaptation=True, warmup_epochs=1)
# Rates of steps 0..4 (warm-up 0.1 + 0.3 * t / 5), then 0.4 until step 19.
FIT_RATES = [0.1, 0.16, 0.22, 0.28, 0.34] + [0.4] * 15


@pytest.mark.parametrize("jit_compile", [False, True])
def test_fit_uses_the_expected_rate_each_step(jit_compile):
    model = _ones_model()
    optimizer = keras.optimizers.SGD(learning_rate=LargeBatchSchedule(**FIT_ARGS))
    model.compile(optimizer=optimizer, loss="mse", jit_compile=jit_compile)
    x, y = _ones_data(40)
    model.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0)  # 5 steps
    assert int(optimizer.iterations.numpy()) == 5
    np.testing.assert_allclose(float(optimizer.learning_rate), 0.4, rtol=1e-6)
    np.testing.assert_allclose(model.layers[0].kernel.numpy()[0, 0],
                               _sgd_trajectory(FIT_RATES[:5]), rtol=1e-5)
    model.fit(x, y, batch_size=8, initial_epoch=1, epochs=4, shuffle=False, verbose=0)  # 20
    assert int(optimizer.iterations.numpy()) == 20
    np.testing.assert_allclose(float(optimizer.learning_rate), 0.04, rtol=1e-6)


def test_fit_with_momentum_under_mirrored_strategy(two_cpus):
    with two_cpus.scope():
        model = _ones_model()
        optimizer = keras.optimizers.SGD(learning_rate=LargeBatchSchedule(**FIT_ARGS),
                                         momentum=0.9)
        model.compile(optimizer=optimizer, loss="mse")
    x, y = _ones_data(40)
    model.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0)
    assert int(optimizer.iterations.numpy()) == 5
    np.testing.assert_allclose(float(optimizer.learning_rate), 0.4, rtol=1e-6)
    np.testing.assert_allclose(model.layers[0].kernel.numpy()[0, 0],
                               _sgd_trajectory(FIT_RATES[:5], momentum=0.9), rtol=1e-5)


def test_keras_save_and_load_of_compiled_model(tmp_path):
    model = _ones_model()
    schedule = LargeBatchSchedule(**FIT_ARGS)
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=schedule, momentum=0.9),
                  loss="mse")
    x, y = _ones_data(16)
    model.fit(x, y, batch_size=8, epochs=1, verbose=0)  # 2 steps
    path = tmp_path / "model.keras"
    model.save(path)
    restored = keras.saving.load_model(path)
    config = restored.optimizer.get_config()["learning_rate"]
    assert config["registered_name"] == "tfgap>LargeBatchSchedule"
    assert config["config"] == schedule.get_config()
    assert int(restored.optimizer.iterations.numpy()) == 2
    # Step 2 of the warm-up: 0.1 + 0.3 * 2 / 5.
    np.testing.assert_allclose(float(restored.optimizer.learning_rate), 0.22, rtol=1e-6)


BAD_ARGUMENTS = [
    (dict(values=[0.1, 0.01]), ["len(values) == len(boundaries) + 1", "values=[0.1, 0.01]"]),
    (dict(boundaries=[3, 2]), ["strictly increasing", "[3.0, 2.0]"]),
    (dict(boundaries=[2, 2]), ["strictly increasing", "[2.0, 2.0]"]),
    (dict(boundaries=[-1, 2]), ["boundaries", "-1"]),
    (dict(boundaries="2,3"), ["`boundaries` to be a list of numbers", "'2,3'"]),
    (dict(values=[0.1, -0.01, 0.001]), ["values", "-0.01"]),
    (dict(values=[0.1, float("nan"), 0.001]), ["every entry of `values` to be a finite",
                                                  "nan"]),
    (dict(base_batch_size=0), ["Expected `base_batch_size` >= 1", "base_batch_size=0"]),
    (dict(base_batch_size=-32), ["base_batch_size", "-32"]),
    (dict(base_batch_size=32.5), ["`base_batch_size` to be an integer", "32.5"]),
    (dict(batch_size=0), ["batch_size=0", ">= 1"]),
    (dict(batch_size=-128), ["batch_size=-128"]),
    (dict(steps_per_epoch=0), ["steps_per_epoch=0", ">= 1"]),
    (dict(steps_per_epoch=2.5), ["steps_per_epoch=2.5"]),
    (dict(steps_per_epoch=True), ["steps_per_epoch=True"]),
    (dict(scaling="square"), ["scaling='square'", "'sqrt', 'linear', 'none'"]),
    (dict(scaling=None), ["scaling=None", "'sqrt'"]),
    (dict(regime_adaptation=0.5), ["regime_adaptation=0.5", ">= 1"]),
    (dict(regime_adaptation=0), ["regime_adaptation=0", ">= 1"]),
    (dict(regime_adaptation="yes"), ["regime_adaptation='yes'", "true, false or a factor"]),
    (dict(warmup_epochs=-1), ["warmup_epochs=-1", ">= 0"]),
    # Warm-up of 3 epochs = 15 steps past the first breakpoint at step 10.
    (dict(regime_adaptation=False, warmup_epochs=3), ["warmup_epochs=3", "15 steps", "step 10"]),
    # The regime's length: > 0, after the last boundary (3 * 5 = step 15; 3 epochs = 15 steps:
    # the last rate would start at the step after the run), after the warm-up.
    (dict(epochs=0), ["Expected `epochs` > 0", "epochs=0"]),
    (dict(epochs=float("inf")), ["`epochs` to be a finite number", "epochs=inf"]),
    (dict(epochs=3), ["every boundary before the end of the regime", "boundaries=[2.0, 3.0]",
                      "step 15", "epochs=3 (15 steps"]),
    (dict(boundaries=[], values=[0.1], warmup_epochs=2, epochs=2),
     ["warm-up to end before the end of the regime", "(10 steps)", "epochs=2 (10 steps"]),
]


@pytest.mark.parametrize("overrides,fragments", BAD_ARGUMENTS,
                         ids=[repr(o) for o, _ in BAD_ARGUMENTS])
def test_bad_arguments_raise_value_error(overrides, fragments):
    with pytest.raises(ValueError) as info:
        _schedule(**overrides)
    for fragment in fragments:
        assert fragment in str(info.value), (fragment, str(info.value))


def test_regime_adaptation_defaults_to_false_as_in_train_config():
    from tfgap.training.config import settings

    schedule = _schedule()
    assert schedule.regime_adaptation is False and schedule.stretch == 1.0
    assert schedule.regime_adaptation == settings()["regime_adaptation"].default


# `fit_epochs`: a user's own `model.fit` under regime adaptation. Base batch 4, batch 32
# (k = 8, sqrt(8) multiplier), 96 examples = 3 steps per epoch; the regime: 0.1, / 10 at
# epochs 1 and 2, 3 epochs long.
REGIME = dict(boundaries=[1, 2], values=[0.1, 0.01, 0.001], base_batch_size=4, batch_size=32,
              steps_per_epoch=3, epochs=3)


@pytest.mark.parametrize("regime_adaptation,total_steps,fit_epochs,breakpoints", [
    # stretch 8: 3 * 8 * 3 = 72 steps = 24 whole epochs; drops at 1 * 8 * 3, 2 * 8 * 3.
    (True, 72, 24, [24, 48]),
    # stretch 2.5: 3 * 2.5 * 3 = 22.5 -> 23 steps (halves up), 7 epochs take 21: 8 epochs;
    # drops at 7.5 -> 8 and 15.
    (2.5, 23, 8, [8, 15]),
])
def test_fit_for_fit_epochs_reaches_the_last_rate(regime_adaptation, total_steps, fit_epochs,
                                                  breakpoints):
    schedule = LargeBatchSchedule(**REGIME, regime_adaptation=regime_adaptation)
    assert (schedule.total_steps, schedule.fit_epochs) == (total_steps, fit_epochs)
    assert type(schedule.fit_epochs) is int and schedule.breakpoint_steps == breakpoints
    model = _ones_model()
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=schedule), loss="mse")
    x, y = _ones_data(96)
    model.fit(x, y, batch_size=32, epochs=schedule.fit_epochs, shuffle=False, verbose=0)
    # Every planned step taken (the last epoch whole), so the last rate was reached.
    assert int(model.optimizer.iterations.numpy()) == fit_epochs * 3 >= total_steps
    np.testing.assert_allclose(float(model.optimizer.learning_rate), 0.001 * 8 ** 0.5, rtol=1e-6)


def test_fit_for_the_regimes_own_epochs_never_drops_the_rate():
    """The friction `fit_epochs` removes: the unstretched 3 epochs end before the first drop."""
    schedule = LargeBatchSchedule(**REGIME, regime_adaptation=True)
    model = _ones_model()
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=schedule), loss="mse")
    x, y = _ones_data(96)
    model.fit(x, y, batch_size=32, epochs=3, shuffle=False, verbose=0)
    assert int(model.optimizer.iterations.numpy()) == 9 < schedule.breakpoint_steps[0]
    np.testing.assert_allclose(float(model.optimizer.learning_rate), 0.1 * 8 ** 0.5, rtol=1e-6)


def test_fit_epochs_needs_the_regimes_length():
    schedule = _schedule(regime_adaptation=True)
    assert schedule.epochs is None and schedule.total_steps is None
    with pytest.raises(ValueError, match=r"Expected `epochs` .* Received: epochs=None"):
        schedule.fit_epochs  # noqa: B018
