"""`AdaScaleLearningRate` as a Keras optimizer's rate, in a `tf.function` step."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfgap.adaptive import AdaScaleLearningRate, Progress

BOUNDARY, RATES = 10, (1.0, 0.1)  # a regime of the base batch: drop after step 10


def test_constant_gain_drops_the_rate_at_the_progress_boundary():
    gain = 2.5
    rate = AdaScaleLearningRate(keras.optimizers.schedules.PiecewiseConstantDecay(
        [BOUNDARY], list(RATES)))
    weight = keras.Variable(np.zeros(1, np.float32))
    optimizer = keras.optimizers.SGD(learning_rate=rate)

    @tf.function
    def step():
        rate.assign(gain=gain)
        optimizer.apply([tf.ones(1)], [weight])  # w -= lr: the weight records the rates
        rate.advance()

    applied = []
    for _ in range(8):
        before = float(weight.numpy()[0])
        step()
        applied.append(before - float(weight.numpy()[0]))
    # Keras' PiecewiseConstantDecay keeps its first rate while step <= boundary; the step
    # t is read at progress t * gain: 0, 2.5, 5, 7.5, 10 (the last at the first rate), 12.5.
    expected = [gain * (RATES[0] if t * gain <= BOUNDARY else RATES[1]) for t in range(8)]
    np.testing.assert_allclose(applied, expected, rtol=1e-6)
    assert applied[4] > 1.0 > applied[5]  # the drop: step 5, not step 10 as at the base batch
    assert float(rate.progress.numpy()) == 8 * gain


def test_gain_one_gives_the_schedules_own_bits():
    base = keras.optimizers.schedules.ExponentialDecay(0.3, decay_steps=3, decay_rate=0.7)
    rate = AdaScaleLearningRate(base)
    for step in range(6):
        rate.assign(gain=1.0, progress=float(step))
        assert rate(step).numpy() == base(step).numpy()


def test_graph_advance_matches_the_host_progress_bit_for_bit():
    rate = AdaScaleLearningRate(0.1)
    gains = [1.1, 1.1, 1.3, 3.7, 1.0000001]
    host = Progress()

    @tf.function
    def steps(gain, count):
        rate.assign(gain=gain)
        for _ in tf.range(count):
            rate.advance()

    steps(tf.constant(1.1, tf.float64), 2)
    host.advance(1.1, steps=2)
    for gain in gains[2:]:
        steps(tf.constant(gain, tf.float64), 1)
        host.advance(gain)
    expected = 0.0
    for gain in gains:
        expected += gain
    assert float(rate.progress.numpy()) == host.value == expected


def test_assigning_python_numbers_keeps_their_float64_bits():
    # As a trainer assigns the host's gain between calls: not rounded through float32.
    rate = AdaScaleLearningRate(0.1)
    gain, progress = 3.948282858103246, 1.0 / 3.0
    rate.assign(gain=gain, progress=progress)
    assert float(rate.gain.numpy()) == gain and float(rate.progress.numpy()) == progress
    rate.advance()
    assert float(rate.progress.numpy()) == progress + gain


def test_float_base_rate_and_serialization():
    rate = AdaScaleLearningRate(0.05, name="ada")
    rate.assign(gain=3.0, progress=7.0)
    assert float(rate(0)) == np.float32(0.15)
    config = keras.optimizers.schedules.serialize(rate)
    again = keras.optimizers.schedules.deserialize(config)
    assert isinstance(again, AdaScaleLearningRate) and again.schedule == 0.05
    assert (float(again.gain.numpy()), float(again.progress.numpy())) == (1.0, 0.0)
    piecewise = AdaScaleLearningRate(keras.optimizers.schedules.PiecewiseConstantDecay(
        [5], [0.1, 0.01]))
    again = AdaScaleLearningRate.from_config(piecewise.get_config())
    assert again.schedule.get_config() == piecewise.schedule.get_config()


def test_bad_arguments_name_what_was_received():
    with pytest.raises(ValueError, match=r"LearningRateSchedule or a positive finite float. "
                                         r"Received: schedule='fast'"):
        AdaScaleLearningRate("fast")
    with pytest.raises(ValueError, match=r"positive finite float. Received: schedule=0"):
        AdaScaleLearningRate(0)
    with pytest.raises(ValueError, match="Received an AdaScaleLearningRate"):
        AdaScaleLearningRate(AdaScaleLearningRate(0.1))
    with pytest.raises(ValueError, match=r"Expected `gain` to be a float64 variable.*gain=2.0"):
        AdaScaleLearningRate(0.1, gain=2.0)
    with pytest.raises(ValueError, match=r"Expected `progress` to be a float64 variable"):
        AdaScaleLearningRate(0.1, progress=keras.Variable(0.0, dtype="float32"))
