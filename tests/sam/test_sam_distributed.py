"""SAM (with SGD or LARS) under a real MirroredStrategy on two logical CPUs equals a
single-device fit on the same global batch."""

import keras
import numpy as np
import pytest

import tfgap
from tfgap.sam import SAM

GLOBAL_BATCH = 16


def _data(seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(4 * GLOBAL_BATCH, 5)).astype("float32")
    # The two halves of every batch (one per replica) have very different
    # gradients, so a per-replica norm would give a different step.
    x[:, 0] += np.tile(np.repeat([3.0, -1.0], GLOBAL_BATCH // 2), 4)
    y = np.tanh(x @ rng.normal(size=(5, 1))).astype("float32")
    return x, y


def _inner(ghost):
    keras.utils.set_random_seed(0)
    layers = [keras.Input((5,)), keras.layers.Dense(8, activation="tanh")]
    if ghost:
        # Ghost batches of 4 tile each replica's shard of 8 exactly; with the
        # "averaged" rule the replica mean of the moving statistics is the
        # single-device value.
        layers.append(tfgap.GhostBatchNormalization(virtual_batch_size=4,
                                                    moving_update="averaged"))
    layers.append(keras.layers.Dense(1))
    return keras.Sequential(layers)


def _optimizer(lars):
    if lars:
        return tfgap.LARS(0.2, momentum=0.5, eta=0.05, weight_decay=1e-3)
    return keras.optimizers.SGD(0.2, momentum=0.5)


def _fit(strategy, initial, ghost, adaptive, lars, rho=0.5):
    x, y = _data()
    with strategy.scope():
        model = SAM(_inner(ghost), rho=rho, adaptive=adaptive)
        model.set_weights(initial)
        model.compile(optimizer=_optimizer(lars), loss="mse")
    history = model.fit(x, y, batch_size=GLOBAL_BATCH, epochs=2, shuffle=False, verbose=0)
    return model.get_weights(), history.history["loss"]


@pytest.mark.parametrize("ghost,adaptive,lars", [
    (False, False, False), (False, True, False), (True, False, True)])
def test_mirrored_fit_equals_single_device_fit(two_cpus, ghost, adaptive, lars):
    import tensorflow as tf

    initial = _inner(ghost).get_weights()
    single, single_loss = _fit(tf.distribute.get_strategy(), initial, ghost, adaptive, lars)
    mirrored, mirrored_loss = _fit(two_cpus, initial, ghost, adaptive, lars)
    for a, b in zip(mirrored, single):
        np.testing.assert_allclose(a, b, rtol=2e-5, atol=2e-6)
    np.testing.assert_allclose(mirrored_loss, single_loss, rtol=1e-5)
    # Sensitivity: SAM's step is not a plain step here.
    plain, _ = _fit(tf.distribute.get_strategy(), initial, ghost, adaptive, lars, rho=0.0)
    assert max(np.abs(a - b).max() for a, b in zip(plain, single)) > 1e-3
