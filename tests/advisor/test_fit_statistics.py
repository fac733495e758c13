"""`GradientStatisticsModel` in a real `model.fit`, against NumPy softmax regression."""

import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfgap.advisor import GradientStatisticsModel, gradient_statistics as gs
from tests.advisor.closed_forms import softmax_l2_gradient

L2 = 0.01


def numpy_gradient(w, b, x, y):
    return softmax_l2_gradient(w, b, x, y, L2)


def compiled(decay=0.5):
    inner = keras.Sequential([
        keras.Input((5,)),
        keras.layers.Dense(3, kernel_regularizer=keras.regularizers.L2(L2),
                           kernel_initializer=keras.initializers.RandomNormal(seed=1))])
    model = GradientStatisticsModel(inner, decay=decay)
    model.compile(optimizer=keras.optimizers.SGD(0.5),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model


@pytest.mark.parametrize("replicas", [1, 2])
def test_fit_measures_what_numpy_computes_at_step_one(replicas, two_cpus):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(8, 5)).astype(np.float32)
    y = rng.integers(0, 3, size=8).astype(np.int32)
    strategy = two_cpus if replicas == 2 else tf.distribute.get_strategy()
    with strategy.scope():
        model = compiled()
    w, b = (np.asarray(v.numpy(), np.float64) for v in model.trainable_variables)
    history = model.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0)
    x64 = x.astype(np.float64)
    small = [numpy_gradient(w, b, x64[s], y[s]) for s in (slice(0, 4), slice(4, 8))]
    big = numpy_gradient(w, b, x64, y)
    norm_sq, trace = gs.two_batch_estimates(np.mean([g @ g for g in small]), big @ big, 4, 8)
    stats = model.noise_statistics()
    assert (stats.count, stats.small_batch, stats.big_batch) == (1, 4, 8)
    assert math.isclose(stats.norm_sq, norm_sq, rel_tol=1e-4, abs_tol=1e-6)
    assert math.isclose(stats.trace, trace, rel_tol=1e-4)
    assert math.isclose(history.history["trace_sigma"][0], trace, rel_tol=1e-4)
    # The update is the plain full-batch SGD step.
    got = np.concatenate([v.numpy().ravel() for v in model.trainable_variables])
    np.testing.assert_allclose(got, np.concatenate([w.ravel(), b]) - 0.5 * big, rtol=1e-5,
                               atol=1e-6)
    assert math.isclose(history.history["loss"][0], _loss(w, b, x64, y), rel_tol=1e-5)


def _loss(w, b, x, y):
    logits = x @ w + b
    log_p = logits - logits.max(axis=1, keepdims=True)
    log_p -= np.log(np.exp(log_p).sum(axis=1, keepdims=True))
    return -log_p[np.arange(len(y)), y].mean() + L2 * np.sum(w * w)


def test_odd_last_batches_train_but_are_not_measured_and_the_model_saves(tmp_path):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(41, 5)).astype(np.float32)  # batches of 8: the last one has 1
    y = rng.integers(0, 3, size=41).astype(np.int32)
    model = compiled(decay=0.9)
    model.fit(x, y, batch_size=8, epochs=2, verbose=0)
    assert model.noise_statistics().count == 10  # 5 whole batches per epoch
    path = str(tmp_path / "model.keras")
    model.save(path)
    loaded = keras.models.load_model(path)
    assert isinstance(loaded, GradientStatisticsModel) and loaded.decay == 0.9
    assert loaded.noise_statistics().state() == model.noise_statistics().state()


def test_bad_arguments_name_what_was_received():
    with pytest.raises(ValueError, match="Expected `model` to be a keras.Model.*model=3"):
        GradientStatisticsModel(3)
    with pytest.raises(gs.GradientStatisticsError, match="decay=1.5"):
        GradientStatisticsModel(keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)]),
                                decay=1.5)
