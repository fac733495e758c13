"""The per-device arithmetic behind `keras.distribution` (DataParallel).

Under a `keras.distribution` the layer sees the global batch and splits it
into one contiguous shard per device of the batch axis itself. This checks
that arithmetic on the TensorFlow backend, where the layer only reads the
distribution's device mesh, against the NumPy reference that ghosts each
shard and averages the shards' moving statistics. The real thing, a
`DataParallel` `model.fit` on two JAX CPU devices, runs in `tests/backends`.
"""

import numpy as np
import pytest
import tensorflow as tf
import keras

from tfgap import GhostBatchNormalization
from tests.layers.reference import ghost_bn_reference

MOMENTUM = 0.8
EPSILON = 1e-3
GHOST = 4


@pytest.fixture(scope="module")
def two_devices():
    return keras.distribution.DataParallel(devices=["cpu:0", "cpu:1"])


def _data(per_device, seed=0):
    rng = np.random.default_rng(seed)
    # The two shards have very different statistics.
    scale = np.repeat([1.0, 3.0], per_device)[:, None, None]
    shift = np.repeat([0.0, 5.0], per_device)[:, None, None]
    x = (rng.normal(size=(2 * per_device, 5, 3)) * scale + shift).astype("float32")
    mask = rng.uniform(size=(2 * per_device, 5)) < 0.7
    mask[:GHOST] = False  # the first ghost of the first shard is empty
    return x, mask


def _layer(moving_update):
    layer = GhostBatchNormalization(virtual_batch_size=GHOST, moving_update=moving_update,
                                    momentum=MOMENTUM, epsilon=EPSILON)
    layer.build((None, 5, 3))
    rng = np.random.default_rng(1)
    layer.set_weights([rng.uniform(0.5, 2.0, 3), rng.normal(size=3), rng.normal(size=3),
                       rng.uniform(0.5, 2.0, 3)])
    return layer


def _state(layer):
    return dict(zip(["gamma", "beta", "moving_mean", "moving_variance"], layer.get_weights()))


@pytest.mark.parametrize("masked", [False, True], ids=["no_mask", "mask"])
@pytest.mark.parametrize("moving_update", ["sequential", "averaged", "full_batch"])
@pytest.mark.parametrize("per_device", [8, 6, 3], ids=["reshape", "segment", "below_ghost"])
def test_each_shard_ghosted_and_moving_statistics_averaged(two_devices, per_device,
                                                           moving_update, masked):
    x, mask = _data(per_device)
    mask = mask if masked else None
    layer = _layer(moving_update)
    state = _state(layer)
    with two_devices.scope():
        y = layer(x, training=True, mask=mask)
    expected, mm, mv = ghost_bn_reference(
        x, GHOST, axis=-1, momentum=MOMENTUM, epsilon=EPSILON, moving_update=moving_update,
        mask=mask, shards=2, **state)
    np.testing.assert_allclose(y, expected, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(layer.moving_mean.numpy(), mm, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(layer.moving_variance.numpy(), mv, rtol=1e-5, atol=1e-5)
    # Without the distribution the global batch is ghosted: other numbers,
    # so the check above can fail.
    _, _, global_mv = ghost_bn_reference(
        x, GHOST, axis=-1, momentum=MOMENTUM, epsilon=EPSILON, moving_update=moving_update,
        mask=mask, **state)
    if per_device % GHOST or moving_update != "averaged":
        assert not np.allclose(global_mv, mv, atol=1e-3)


def test_all_masked_shard_leaves_its_half_unchanged(two_devices):
    x, mask = _data(8)
    mask[:8] = False  # nothing on the first device
    layer = _layer("full_batch")
    state = _state(layer)
    with two_devices.scope():
        y = layer(x, training=True, mask=mask)
    assert np.isfinite(y.numpy()).all()
    _, mm, _ = ghost_bn_reference(x[8:], GHOST, axis=-1, momentum=MOMENTUM, epsilon=EPSILON,
                                  moving_update="full_batch", mask=mask[8:], **state)
    # The mean of "unchanged" (device 0) and device 1's update.
    np.testing.assert_allclose(layer.moving_mean.numpy(), (state["moving_mean"] + mm) / 2,
                               rtol=1e-5, atol=1e-5)


def test_batch_not_divisible_by_devices_or_dynamic_raises(two_devices):
    layer = _layer("sequential")
    with two_devices.scope():
        with pytest.raises(ValueError, match="divisible by 2") as info:
            layer(np.ones((7, 5, 3), "float32"), training=True)
        assert "Received: batch size 7" in str(info.value)
        step = tf.function(lambda t: layer(t, training=True),
                           input_signature=[tf.TensorSpec((None, 5, 3))])
        with pytest.raises(ValueError, match="static batch size"):
            step(np.ones((8, 5, 3), "float32"))
