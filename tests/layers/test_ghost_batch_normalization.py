"""GhostBatchNormalization against an independent NumPy loop over ghost batches."""

import numpy as np
import pytest
import tensorflow as tf
import keras

from tfgap import GhostBatchNormalization
from tests.layers.reference import ghost_bn_reference
from tests.layers.fixtures import EPSILON, MOMENTUM, make_layer
from tests.layers.fixtures import ghost_inputs as _inputs
from tests.layers.fixtures import layer_state as _state

_make_layer = make_layer



LAYOUTS = [
    pytest.param((2,), -1, id="rank2"),
    pytest.param((3, 3, 4), -1, id="rank4-channels_last"),
    pytest.param((4, 3, 3), 1, id="rank4-channels_first"),
    pytest.param((2, 2, 2, 3), -1, id="rank5"),
]


@pytest.mark.parametrize("moving_update", ["sequential", "averaged", "full_batch"])
@pytest.mark.parametrize("batch", [12, 10], ids=["divisible", "ragged"])
@pytest.mark.parametrize("feature_shape,axis", LAYOUTS)
def test_matches_numpy_reference_over_two_training_calls(moving_update, batch, feature_shape,
                                                         axis):
    shape = (batch,) + feature_shape
    layer = _make_layer(shape, axis, 4, moving_update)
    for call in range(2):
        x = _inputs(shape, seed=call)
        state = _state(layer)
        expected, mm, mv = ghost_bn_reference(
            x, 4, axis=axis, momentum=MOMENTUM, epsilon=EPSILON,
            moving_update=moving_update, **state)
        y = layer(x, training=True)
        np.testing.assert_allclose(y, expected, rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(layer.moving_mean.numpy(), mm, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(layer.moving_variance.numpy(), mv, rtol=1e-5, atol=1e-5)


def test_sequential_differs_from_averaged_and_full_batch():
    # The three rules must be distinguishable, or the reference test is blind.
    x = _inputs((12, 3), seed=1)
    results = {}
    for rule in ["sequential", "averaged", "full_batch"]:
        layer = _make_layer((12, 3), -1, 4, rule)
        layer(x, training=True)
        results[rule] = layer.moving_variance.numpy()
    assert not np.allclose(results["sequential"], results["averaged"], atol=1e-4)
    assert not np.allclose(results["averaged"], results["full_batch"], atol=1e-4)


def test_ghost_batches_are_contiguous_not_strided():
    x = _inputs((8, 2), seed=3)
    layer = _make_layer((8, 2), -1, 4, "sequential")
    state = _state(layer)
    y = layer(x, training=True).numpy()
    first = (x[:4] - x[:4].mean(0)) / np.sqrt(x[:4].var(0) + EPSILON)
    np.testing.assert_allclose(y[:4], state["gamma"] * first + state["beta"], atol=1e-4)


@pytest.mark.parametrize("virtual_batch_size", [None, 16, 64])
def test_no_ghosting_equals_batch_normalization(virtual_batch_size):
    # None, or a ghost size >= the batch, is plain BatchNormalization.
    shape = (16, 3, 3, 4)
    x = _inputs(shape, seed=4)
    ghost = _make_layer(shape, -1, virtual_batch_size, "sequential")
    plain = keras.layers.BatchNormalization(momentum=MOMENTUM, epsilon=EPSILON)
    plain.build(shape)
    plain.set_weights(ghost.get_weights())
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(x_t := tf.constant(x))
        y_ghost = ghost(x_t, training=True)
        y_plain = plain(x_t, training=True)
    np.testing.assert_allclose(y_ghost, y_plain, rtol=1e-5, atol=1e-5)
    for a, b in zip(ghost.get_weights(), plain.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(tape.gradient(y_ghost, x_t), tape.gradient(y_plain, x_t),
                               rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(ghost(x), plain(x), rtol=1e-5, atol=1e-6)  # inference


@pytest.mark.parametrize("feature_shape,axis", LAYOUTS[:3])
def test_gradients_match_parent_applied_chunk_by_chunk(feature_shape, axis):
    shape = (10,) + feature_shape
    x = tf.constant(_inputs(shape, seed=5))
    weights = tf.constant(np.random.default_rng(6).normal(size=shape).astype("float32"))
    ghost = _make_layer(shape, axis, 4, "sequential")
    plain = keras.layers.BatchNormalization(axis=axis, momentum=MOMENTUM, epsilon=EPSILON)
    plain.build(shape)
    plain.set_weights(ghost.get_weights())

    with tf.GradientTape(persistent=True) as tape:
        tape.watch(x)
        loss_ghost = tf.reduce_sum(ghost(x, training=True) * weights)
        chunks = [plain(x[i:i + 4], training=True) for i in range(0, 10, 4)]
        loss_plain = tf.reduce_sum(tf.concat(chunks, axis=0) * weights)
    for a, b in [(x, x), (ghost.gamma, plain.gamma), (ghost.beta, plain.beta)]:
        np.testing.assert_allclose(tape.gradient(loss_ghost, a), tape.gradient(loss_plain, b),
                                   rtol=1e-4, atol=1e-4)


def test_inference_uses_moving_statistics_at_any_batch_size():
    layer = _make_layer((8, 3), -1, 4, "sequential")
    state = _state(layer)
    for batch in [1, 3, 8]:
        x = _inputs((batch, 3), seed=batch)
        expected = (state["gamma"] * (x - state["moving_mean"])
                    / np.sqrt(state["moving_variance"] + EPSILON) + state["beta"])
        for training in [None, False]:
            np.testing.assert_allclose(layer(x, training=training), expected, rtol=1e-5,
                                       atol=1e-5)
    np.testing.assert_allclose(layer.moving_mean.numpy(), state["moving_mean"])


def test_frozen_layer_runs_in_inference_mode():
    layer = _make_layer((8, 3), -1, 4, "sequential")
    layer.trainable = False
    state = _state(layer)
    x = _inputs((8, 3), seed=2)
    y = layer(x, training=True)
    expected = (state["gamma"] * (x - state["moving_mean"])
                / np.sqrt(state["moving_variance"] + EPSILON) + state["beta"])
    np.testing.assert_allclose(y, expected, rtol=1e-5, atol=1e-5)


def test_dynamic_batch_and_symbolic_training_flag_in_tf_function():
    layer = _make_layer((10, 3), -1, 4, "sequential")
    state = _state(layer)

    @tf.function(input_signature=[tf.TensorSpec([None, 3]), tf.TensorSpec([], tf.bool)])
    def step(x, training):
        return layer(x, training=training)

    x = _inputs((10, 3), seed=7)
    expected, mm, _ = ghost_bn_reference(x, 4, axis=-1, momentum=MOMENTUM, epsilon=EPSILON,
                                         moving_update="sequential", **state)
    np.testing.assert_allclose(step(x, tf.constant(True)), expected, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(layer.moving_mean.numpy(), mm, rtol=1e-5, atol=1e-5)
    # Inference through the same graph: moving statistics, no update.
    y = step(x[:3], tf.constant(False)).numpy()
    np.testing.assert_allclose(layer.moving_mean.numpy(), mm, rtol=1e-5, atol=1e-5)
    state = _state(layer)
    expected_inf = (state["gamma"] * (x[:3] - state["moving_mean"])
                    / np.sqrt(state["moving_variance"] + EPSILON) + state["beta"])
    np.testing.assert_allclose(y, expected_inf, rtol=1e-4, atol=1e-4)


def test_jit_compile_with_ragged_last_batch():
    layer = _make_layer((10, 2, 2, 3), -1, 4, "full_batch")
    state = _state(layer)
    step = tf.function(lambda t: layer(t, training=True), jit_compile=True)
    x = _inputs((10, 2, 2, 3), seed=8)
    expected, mm, mv = ghost_bn_reference(x, 4, axis=-1, momentum=MOMENTUM, epsilon=EPSILON,
                                          moving_update="full_batch", **state)
    np.testing.assert_allclose(step(x), expected, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(layer.moving_variance.numpy(), mv, rtol=1e-5, atol=1e-5)


def test_fit_with_jit_compile_and_ragged_batches_follows_algorithm_1():
    # GBN first, so its inputs (and moving statistics) do not depend on training.
    x = _inputs((10, 3), seed=9)
    y = np.arange(10) % 2
    model = keras.Sequential([
        keras.Input((3,)),
        GhostBatchNormalization(virtual_batch_size=3, momentum=MOMENTUM, epsilon=EPSILON),
        keras.layers.Dense(2),
    ])
    model.compile(optimizer="sgd", jit_compile=True,
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x, y, batch_size=4, epochs=1, shuffle=False, verbose=0)
    mm, mv = np.zeros(3), np.ones(3)
    for start in range(0, 10, 4):  # batches of 4, 4, 2; ghosts of 3 and 1, 3 and 1, 2
        for g in range(start, min(start + 4, 10), 3):
            chunk = x[g:min(g + 3, start + 4, 10)]
            mm = mm * MOMENTUM + chunk.mean(0) * (1 - MOMENTUM)
            mv = mv * MOMENTUM + chunk.var(0) * (1 - MOMENTUM)
    gbn = model.layers[0]
    np.testing.assert_allclose(gbn.moving_mean.numpy(), mm, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(gbn.moving_variance.numpy(), mv, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
def test_mixed_precision_keeps_statistics_in_float32(policy):
    shape = (10, 2, 2, 3)
    layer = _make_layer(shape, -1, 4, "sequential", dtype=policy)
    state = _state(layer)
    x = _inputs(shape, seed=10)
    compute = "float16" if policy == "mixed_float16" else "bfloat16"
    y = layer(tf.cast(x, compute), training=True)
    assert y.dtype == compute
    assert layer.moving_mean.dtype == "float32" and layer.gamma.dtype == "float32"
    x_rounded = tf.cast(tf.cast(x, compute), "float32").numpy()
    expected, mm, _ = ghost_bn_reference(x_rounded, 4, axis=-1, momentum=MOMENTUM,
                                         epsilon=EPSILON, moving_update="sequential", **state)
    tolerance = 2e-2 if compute == "float16" else 8e-2
    np.testing.assert_allclose(tf.cast(y, "float32"), expected, rtol=tolerance, atol=tolerance)
    np.testing.assert_allclose(layer.moving_mean.numpy(), mm, rtol=1e-5, atol=1e-5)


def test_config_round_trip_and_no_mutation():
    layer = GhostBatchNormalization(virtual_batch_size=32, moving_update="averaged", axis=1,
                                    momentum=0.9)
    before = layer.get_config()
    layer.build((64, 8, 4, 4))
    after = layer.get_config()
    assert before == after
    assert after["virtual_batch_size"] == 32 and after["moving_update"] == "averaged"
    assert after["axis"] == 1 and after["momentum"] == 0.9
    clone = GhostBatchNormalization.from_config(after)
    assert clone.get_config() == after


def test_keras_file_round_trip(tmp_path):
    model = keras.Sequential([
        keras.Input((4, 4, 3)),
        keras.layers.Conv2D(4, 3),
        GhostBatchNormalization(virtual_batch_size=3, moving_update="full_batch"),
    ])
    model(_inputs((7, 4, 4, 3), seed=11), training=True)
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    layer = loaded.layers[-1]
    assert isinstance(layer, GhostBatchNormalization)
    assert layer.virtual_batch_size == 3 and layer.moving_update == "full_batch"
    x = _inputs((5, 4, 4, 3), seed=12)
    np.testing.assert_allclose(loaded(x), model(x), rtol=1e-6)


@pytest.mark.parametrize("kwargs,message", [
    (dict(virtual_batch_size=0), "positive integer"),
    (dict(virtual_batch_size=-4), "positive integer"),
    (dict(virtual_batch_size=2.5), "positive integer"),
    (dict(virtual_batch_size="32"), "positive integer"),
    (dict(virtual_batch_size=True), "positive integer"),
    (dict(moving_update="mean"), "moving_update"),
    (dict(axis=0), "batch axis"),
    (dict(axis=[1, 2]), "single integer"),
    (dict(virtual_batch_size=8, renorm=True), "renorm"),
    (dict(virtual_batch_size=8, synchronized=True), "synchronized"),
])
def test_bad_arguments_raise_value_error(kwargs, message):
    with pytest.raises(ValueError, match=message) as info:
        GhostBatchNormalization(**kwargs)
    assert "Received" in str(info.value)


def test_axis_resolving_to_batch_axis_and_bad_rank_raise():
    with pytest.raises(ValueError, match="non-batch axis"):
        GhostBatchNormalization(virtual_batch_size=2, axis=-4).build((8, 3, 3, 2))
    with pytest.raises(ValueError, match="rank 2 to 5"):
        GhostBatchNormalization(virtual_batch_size=2).build((8,))
