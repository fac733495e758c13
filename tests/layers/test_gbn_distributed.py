"""GhostBatchNormalization under a real MirroredStrategy on two logical CPUs."""

import numpy as np
import pytest
import tensorflow as tf
import keras

from tfgap import GhostBatchNormalization
from tests.layers.reference import ghost_bn_reference

MOMENTUM = 0.8


def _shards(seed):
    rng = np.random.default_rng(seed)
    # The replicas see very different data, so per-replica statistics differ.
    return [(rng.normal(size=(6, 3)) * (r + 1) + 3 * r).astype("float32") for r in range(2)]


def _run_training_step(strategy, layer, shards):
    values = strategy.experimental_distribute_values_from_function(
        lambda ctx: tf.constant(shards[ctx.replica_id_in_sync_group]))

    @tf.function
    def step(x):
        return strategy.run(lambda t: layer(t, training=True), args=(x,))

    return step(values)


@pytest.mark.parametrize("virtual_batch_size,moving_update", [
    (4, "sequential"), (4, "averaged"), (4, "full_batch"), (None, "sequential")])
def test_moving_statistics_are_the_mean_over_replicas(two_cpus, tmp_path, virtual_batch_size,
                                                      moving_update):
    with two_cpus.scope():
        model = keras.Sequential([
            keras.Input((3,)),
            GhostBatchNormalization(virtual_batch_size=virtual_batch_size,
                                    moving_update=moving_update, momentum=MOMENTUM),
        ])
    layer = model.layers[0]
    mm, mv = np.zeros(3), np.ones(3)
    for seed in range(2):  # two consecutive steps
        shards = _shards(seed)
        outputs = _run_training_step(two_cpus, layer, shards)
        per_replica = [
            ghost_bn_reference(s, virtual_batch_size, axis=-1, gamma=np.ones(3),
                               beta=np.zeros(3), moving_mean=mm, moving_variance=mv,
                               momentum=MOMENTUM, epsilon=1e-3, moving_update=moving_update)
            for s in shards]
        # Each replica normalizes its own shard with its own ghost batches.
        for out, (expected, _, _) in zip(two_cpus.experimental_local_results(outputs),
                                         per_replica):
            np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-4)
        mm = np.mean([p[1] for p in per_replica], axis=0)
        mv = np.mean([p[2] for p in per_replica], axis=0)
        # Every replica holds the same value: the mean of the replica updates.
        for variable, expected in [(layer.moving_mean, mm), (layer.moving_variance, mv)]:
            copies = [v.numpy() for v in variable.value.values] if hasattr(
                variable.value, "values") else [variable.numpy()]
            assert len(copies) == 2, "expected a mirrored variable with two copies"
            for copy in copies:
                np.testing.assert_allclose(copy, expected, rtol=1e-5, atol=1e-5)
            np.testing.assert_allclose(variable.numpy(), expected, rtol=1e-5, atol=1e-5)

    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    np.testing.assert_allclose(loaded.layers[0].moving_mean.numpy(), mm, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(loaded.layers[0].moving_variance.numpy(), mv, rtol=1e-5,
                               atol=1e-5)
    x = _shards(5)[0]
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0),
                               rtol=1e-5, atol=1e-5)


def test_fit_under_mirrored_strategy(two_cpus):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 4, 4, 2)).astype("float32")
    y = (x.mean(axis=(1, 2, 3)) > 0).astype("int32")
    with two_cpus.scope():
        model = keras.Sequential([
            keras.Input((4, 4, 2)),
            keras.layers.Conv2D(4, 3, padding="same"),
            GhostBatchNormalization(virtual_batch_size=5),
            keras.layers.ReLU(),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(2),
        ])
        model.compile(optimizer=keras.optimizers.SGD(0.1),
                      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    history = model.fit(x, y, batch_size=16, epochs=3, verbose=0)
    assert np.isfinite(history.history["loss"]).all()
    layer = model.layers[1]
    copies = [v.numpy() for v in layer.moving_mean.value.values]
    np.testing.assert_array_equal(copies[0], copies[1])
