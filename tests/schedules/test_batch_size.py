"""Tests for the batch-size schedule (Smith et al. 2018).

Expected phases are worked out by hand in the comments; fits are checked
against a NumPy reference of SGD with momentum on a problem whose gradient
does not depend on the batch.
"""

import numpy as np
import pytest
import tensorflow as tf
import keras

from tfgap.layers import GhostBatchNormalization
from tfgap.schedules import (
    BatchSizePhase,
    LargeBatchSchedule,
    batch_size_phases,
    fit_batch_size_schedule,
)


def test_phases_of_the_mnist_f1_regime():
    # lr 0.1 at batch 128, / 10 at epochs 10, 20, 30; 40 epochs; batch <= 4096.
    # 10 -> 20: batch 128 * 10 = 1280 (fits), rate stays 0.1.
    # 20 -> 30: batch 128 * 100 = 12800 > 4096: batch 4096 (x 3.2 of 10 absorbed),
    #           rate 0.001 * 4096 / 128 = 0.032.
    # 30 -> 40: batch 4096, rate 0.0001 * 32 = 0.0032.
    phases = batch_size_phases([10, 20, 30], [0.1, 0.01, 0.001, 0.0001],
                               base_batch_size=128, max_batch_size=4096, epochs=40)
    expected = [(0, 10, 128, 0.1), (10, 20, 1280, 0.1), (20, 30, 4096, 0.032),
                (30, 40, 4096, 0.0032)]
    assert len(phases) == len(expected)
    for phase, (start, end, batch, lr) in zip(phases, expected):
        assert (phase.start_epoch, phase.end_epoch, phase.batch_size) == (start, end, batch)
        assert phase.learning_rate == pytest.approx(lr, rel=1e-12)
        assert phase.epochs == end - start


def test_phases_of_the_wrn_regime_with_ghost_multiple():
    # lr 0.1, 0.02 @60, 0.004 @120, 1e-4 @140 (factors 5, 5, 40); 160 epochs;
    # batch <= 2048, multiples of 128. 128 * 5 = 640; 128 * 25 = 3200 > 2048:
    # 2048 with rate 0.004 * 16 = 0.064; then 1e-4 * 16 = 0.0016.
    phases = batch_size_phases([60, 120, 140], [0.1, 0.02, 0.004, 1e-4], base_batch_size=128,
                               max_batch_size=2048, epochs=160, batch_multiple=128)
    assert [p.batch_size for p in phases] == [128, 640, 2048, 2048]
    np.testing.assert_allclose([p.learning_rate for p in phases], [0.1, 0.1, 0.064, 0.0016],
                               rtol=1e-12)
    assert [(p.start_epoch, p.end_epoch) for p in phases] == [(0, 60), (60, 120), (120, 140),
                                                              (140, 160)]


def test_phases_round_to_batch_multiple_and_keep_noise_scale():
    # Decay 0.3 -> 0.12 is a factor 2.5: batch 250, rounded to a multiple of 100
    # (2.5 units round up to 3): 300, so the rate becomes 0.12 * 300 / 100 = 0.36.
    phases = batch_size_phases([2], [0.3, 0.12], base_batch_size=100, max_batch_size=1000,
                               epochs=4, batch_multiple=100)
    assert [p.batch_size for p in phases] == [100, 300]
    assert phases[1].learning_rate == pytest.approx(0.36, rel=1e-12)


def test_constant_regime_is_one_phase():
    assert batch_size_phases([], [0.05], 64, 64, 3) == [BatchSizePhase(0, 3, 64, 0.05)]


BAD_PHASE_ARGUMENTS = [
    (dict(values=[0.1, 0.01]), ["len(values) == len(boundaries) + 1",
                                 "boundaries=[1.0, 2.0], values=[0.1, 0.01]"]),
    (dict(boundaries=[2, 1]), ["strictly increasing"]),
    (dict(boundaries=[1.5, 2]), ["whole epochs", "1.5"]),
    (dict(boundaries=[1, 4]), ["(0, epochs=4)", "[1.0, 4.0]"]),
    (dict(boundaries=[0, 2]), ["(0, epochs=4)"]),
    (dict(values=[0.1, 0.2, 0.01]), ["non-increasing", "0.2"]),
    (dict(values=[0.1, 0.0, 0.0]), ["positive", "0.0"]),
    (dict(base_batch_size=0), ["base_batch_size=0"]),
    (dict(max_batch_size=4), ["max_batch_size=4", ">= base_batch_size=8"]),
    (dict(batch_multiple=16), ["base_batch_size=8", "batch_multiple=16"]),
    (dict(max_batch_size=60, batch_multiple=8), ["max_batch_size=60", "batch_multiple=8"]),
    (dict(epochs=0), ["epochs=0"]),
]


@pytest.mark.parametrize("overrides,fragments", BAD_PHASE_ARGUMENTS,
                         ids=[repr(o) for o, _ in BAD_PHASE_ARGUMENTS])
def test_bad_phase_arguments(overrides, fragments):
    args = dict(boundaries=[1, 2], values=[0.1, 0.05, 0.01], base_batch_size=8,
                max_batch_size=64, epochs=4)
    with pytest.raises(ValueError) as info:
        batch_size_phases(**{**args, **overrides})
    for fragment in fragments:
        assert fragment in str(info.value), (fragment, str(info.value))


# Regime: 0.1, / 2 at epoch 1, / 4 at epoch 2; base batch 4, max 8, 3 epochs.
# Phase 0: batch 4, rate 0.1. Phase 1: batch 8 (x 2), rate 0.1.
# Phase 2: batch 16 > 8: batch 8, rate 0.025 * 8 / 4 = 0.05.
PHASE_ARGS = dict(boundaries=[1, 2], values=[0.1, 0.05, 0.025], base_batch_size=4,
                  max_batch_size=8, epochs=3)
N = 24  # examples: 6 steps at batch 4, 3 steps at batch 8
STEP_RATES = [0.1] * 6 + [0.1] * 3 + [0.05] * 3


def _sgd_momentum_trajectory(rates, momentum=0.9, w=0.0):
    """Keras SGD on y = w * x, x = y = 1, MSE: gradient 2 (w - 1) at any batch.
    One velocity carried through all steps (the state must continue)."""
    v = 0.0
    for lr in rates:
        v = momentum * v - lr * 2.0 * (w - 1.0)
        w = w + v
    return w


def _linear_model():
    return keras.Sequential([
        keras.Input((1,)),
        keras.layers.Dense(1, use_bias=False, kernel_initializer="zeros"),
    ])


def _examples():
    ones = np.ones((N, 1), np.float32)
    return tf.data.Dataset.from_tensor_slices((ones, ones))


class _EpochRecorder(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.epochs, self.iterations, self.rates = [], [], []

    def on_epoch_begin(self, epoch, logs=None):
        self.epochs.append(epoch)

    def on_epoch_end(self, epoch, logs=None):
        self.iterations.append(int(self.model.optimizer.iterations.numpy()))
        self.rates.append(float(np.asarray(self.model.optimizer.learning_rate)))


def test_multi_phase_fit_continues_epochs_and_optimizer_state():
    phases = batch_size_phases(**PHASE_ARGS)
    assert [(p.batch_size, p.learning_rate) for p in phases] == [(4, 0.1), (8, 0.1), (8, 0.05)]
    model = _linear_model()
    model.compile(optimizer=keras.optimizers.SGD(0.1, momentum=0.9), loss="mse",
                  jit_compile=True)
    recorder = _EpochRecorder()
    history = fit_batch_size_schedule(model, _examples(), phases, callbacks=[recorder],
                                      verbose=0)
    assert recorder.epochs == [0, 1, 2]
    assert recorder.iterations == [6, 9, 12]
    np.testing.assert_allclose(recorder.rates, [0.1, 0.1, 0.05], rtol=1e-6)
    assert history.epoch == [0, 1, 2]
    assert history.history["batch_size"] == [4, 8, 8]
    assert len(history.history["loss"]) == 3
    # A reset of the momentum between phases would give another weight.
    np.testing.assert_allclose(model.layers[0].kernel.numpy()[0, 0],
                               _sgd_momentum_trajectory(STEP_RATES), rtol=1e-5)


def test_multi_phase_fit_under_mirrored_strategy_keeps_ghost_batch_size(two_cpus):
    # Global batches 8 and 16 over 2 replicas: 4 and 8 per replica, whole
    # ghost batches of 4 (batch_multiple = ghost 4 * 2 replicas). The decay by
    # 4 would need batch 32 > 16: batch 16, rate 0.025 * 16 / 8 = 0.05.
    phases = batch_size_phases([1], [0.1, 0.025], base_batch_size=8, max_batch_size=16,
                               epochs=2, batch_multiple=8)
    assert [(p.batch_size, p.learning_rate) for p in phases] == [(8, 0.1), (16, 0.05)]
    with two_cpus.scope():
        model = keras.Sequential([
            keras.Input((3,)),
            keras.layers.Dense(4),
            GhostBatchNormalization(virtual_batch_size=4),
            keras.layers.Dense(1),
        ])
        model.compile(optimizer=keras.optimizers.SGD(0.1, momentum=0.9), loss="mse")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(32, 3)).astype(np.float32)
    y = x.sum(axis=1, keepdims=True)

    def make_dataset(batch_size):  # the callable form, repeated: needs num_examples
        return tf.data.Dataset.from_tensor_slices((x, y)).repeat().batch(batch_size)

    recorder = _EpochRecorder()
    history = fit_batch_size_schedule(model, make_dataset, phases, num_examples=32,
                                      callbacks=[recorder], verbose=0)
    assert recorder.epochs == [0, 1]
    assert recorder.iterations == [4, 6]  # 32 / 8 steps, then 32 / 16 more
    np.testing.assert_allclose(recorder.rates, [0.1, 0.05], rtol=1e-6)
    assert history.history["batch_size"] == [8, 16]
    assert model.layers[1].virtual_batch_size == 4
    assert np.isfinite(history.history["loss"]).all()


def test_initial_epoch_resumes_inside_the_schedule():
    phases = batch_size_phases(**PHASE_ARGS)
    model = _linear_model()
    model.compile(optimizer=keras.optimizers.SGD(0.1, momentum=0.9), loss="mse")
    recorder = _EpochRecorder()
    history = fit_batch_size_schedule(model, _examples(), phases, initial_epoch=1,
                                      callbacks=[recorder], verbose=0)
    assert recorder.epochs == [1, 2]
    assert recorder.iterations == [3, 6]
    assert history.history["batch_size"] == [8, 8]


def test_fit_bad_arguments():
    phases = batch_size_phases(**PHASE_ARGS)
    model = _linear_model()
    with pytest.raises(ValueError, match="compiled model"):
        fit_batch_size_schedule(model, _examples(), phases)
    schedule = LargeBatchSchedule([], [0.1], 4, 4, 6)
    model.compile(optimizer=keras.optimizers.SGD(schedule), loss="mse")
    with pytest.raises(ValueError, match="float `learning_rate`"):
        fit_batch_size_schedule(model, _examples(), phases, verbose=0)
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    with pytest.raises(ValueError, match="Received: epochs=5"):
        fit_batch_size_schedule(model, _examples(), phases, epochs=5)
    with pytest.raises(ValueError, match="Received: phases=\\[\\]"):
        fit_batch_size_schedule(model, _examples(), [])
    with pytest.raises(ValueError, match="contiguous"):
        fit_batch_size_schedule(model, _examples(), [phases[0], phases[2]])
    with pytest.raises(ValueError, match=r"Received: phases\[0\]=\(0, 1, 4, 0.1\)"):
        fit_batch_size_schedule(model, _examples(), [(0, 1, 4, 0.1)])
    with pytest.raises(ValueError, match=r"in \[0, 3\)\. Received: initial_epoch=3"):
        fit_batch_size_schedule(model, _examples(), phases, initial_epoch=3)
    with pytest.raises(ValueError, match="Received: dataset=5"):
        fit_batch_size_schedule(model, 5, phases)
    with pytest.raises(ValueError, match="num_examples=0"):
        fit_batch_size_schedule(model, _examples(), phases, num_examples=0)
    assert int(model.optimizer.iterations.numpy()) == 0  # nothing trained
