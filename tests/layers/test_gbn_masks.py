"""Masks with ghost batches: each ghost's statistics over its unmasked values.

Checked against the independent NumPy loop of `reference.py` (both paths,
static and dynamic batch, with and without XLA), against
`keras.layers.BatchNormalization` when the ghost size is at least the batch
(outputs, moving statistics and gradients, training and inference), and
through `model.fit` behind a masking `Embedding` and a `Masking` layer.
"""

import numpy as np
import pytest
import tensorflow as tf
import keras

from tfgap import GhostBatchNormalization
from tests.layers.reference import ghost_bn_reference
from tests.layers.fixtures import EPSILON, MOMENTUM, make_layer
from tests.layers.fixtures import ghost_inputs as _inputs
from tests.layers.fixtures import layer_state as _state

GHOST = 4

_layer = make_layer


def _mask(shape, seed, empty_ghost=None):
    """A random mask of `shape` (the inputs' without the last axis), every
    example keeping at least one position; ghost `empty_ghost` fully masked."""
    rng = np.random.default_rng(100 + seed)
    mask = rng.uniform(size=shape) < 0.6
    mask.reshape(shape[0], -1)[:, 0] = True
    if empty_ghost is not None:
        mask[empty_ghost * GHOST:(empty_ghost + 1) * GHOST] = False
    return mask


# Sequences (batch, time, channels) masked over time; images masked over
# pixels; channels-first sequences, whose mask (batch, channels) is broadcast
# along time, as in BatchNormalization.
LAYOUTS = [pytest.param((5, 3), -1, id="sequence"),
           pytest.param((3, 3, 2), -1, id="image"),
           pytest.param((3, 5), 1, id="channels_first")]
# 12 = three ghosts (reshape path), 10 = 4 + 4 + 2 (segment path).
BATCHES = [pytest.param(12, id="divisible"), pytest.param(10, id="ragged")]


def _call(layer, shape, dynamic, jit):
    batch = None if dynamic else shape[0]
    specs = [tf.TensorSpec((batch,) + shape[1:], tf.float32),
             tf.TensorSpec((batch,) + shape[1:-1], tf.bool)]
    return tf.function(lambda t, m: layer(t, training=True, mask=m), input_signature=specs,
                       jit_compile=jit)


@pytest.mark.parametrize("moving_update", ["sequential", "averaged", "full_batch"])
@pytest.mark.parametrize("dynamic", [False, True], ids=["static", "dynamic"])
@pytest.mark.parametrize("batch", BATCHES)
@pytest.mark.parametrize("features,axis", LAYOUTS)
def test_masked_ghosts_match_numpy_reference(features, axis, batch, dynamic, moving_update):
    shape = (batch,) + features
    layer = _layer(shape, axis, GHOST, moving_update)
    call = _call(layer, shape, dynamic, jit=False)
    for step, empty in enumerate([None, 1]):  # the second step has an all-masked ghost
        x, mask = _inputs(shape, seed=step), _mask(shape[:-1], step, empty_ghost=empty)
        expected, mm, mv = ghost_bn_reference(
            x, GHOST, axis=axis, momentum=MOMENTUM, epsilon=EPSILON,
            moving_update=moving_update, mask=mask, **_state(layer))
        np.testing.assert_allclose(call(x, mask), expected, rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(layer.moving_mean.numpy(), mm, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(layer.moving_variance.numpy(), mv, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("batch", BATCHES)
@pytest.mark.parametrize("features,axis", LAYOUTS[:2])
def test_masked_ghosts_under_xla(features, axis, batch):
    shape = (batch,) + features
    layer = _layer(shape, axis, GHOST, "sequential")
    x, mask = _inputs(shape, seed=3), _mask(shape[:-1], 3, empty_ghost=0)
    expected, mm, mv = ghost_bn_reference(
        x, GHOST, axis=axis, momentum=MOMENTUM, epsilon=EPSILON, moving_update="sequential",
        mask=mask, **_state(layer))
    np.testing.assert_allclose(_call(layer, shape, False, jit=True)(x, mask), expected,
                               rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(layer.moving_mean.numpy(), mm, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(layer.moving_variance.numpy(), mv, rtol=1e-5, atol=1e-5)


def test_mask_weights_the_statistics_and_the_reference_is_not_blind():
    # The masked values are far off: counting them would move the statistics.
    shape = (8, 5, 2)
    x = _inputs(shape, seed=4)
    mask = _mask(shape[:-1], 4)
    x[~mask] = 50.0
    layer = _layer(shape, -1, GHOST, "sequential")
    y = layer(x, training=True, mask=mask).numpy()
    first = x[:GHOST][mask[:GHOST]]  # the unmasked (position, channel) rows of ghost 0
    mu, var = first.mean(axis=0), first.var(axis=0)
    state = _state(_layer(shape, -1, GHOST, "sequential"))  # the same weights
    assert not np.allclose(layer(x, training=True).numpy(), y, atol=1e-2)
    expected = state["gamma"] * (x[:GHOST] - mu) / np.sqrt(var + EPSILON) + state["beta"]
    np.testing.assert_allclose(y[:GHOST], expected, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("batch", BATCHES)
def test_all_masked_ghost_gives_no_nan_and_is_skipped(batch):
    shape = (batch, 5, 3)
    layer = _layer(shape, -1, GHOST, "sequential")
    state = _state(layer)
    x = tf.constant(_inputs(shape, seed=5))
    mask = _mask(shape[:-1], 5, empty_ghost=1)
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = layer(x, training=True, mask=mask)
        loss = tf.reduce_sum(y * tf.cast(mask[..., None], tf.float32) * x)
    grads = tape.gradient(loss, [x, layer.gamma, layer.beta])
    assert np.isfinite(y.numpy()).all()
    assert all(np.isfinite(g.numpy()).all() for g in grads)
    # The empty ghost: statistics 0 and 0.
    empty = slice(GHOST, 2 * GHOST)
    np.testing.assert_allclose(
        y.numpy()[empty],
        state["gamma"] * x.numpy()[empty] / np.sqrt(EPSILON) + state["beta"], rtol=1e-5)
    # The moving statistics take one step per non-empty ghost, in order.
    mm = state["moving_mean"].astype(np.float64)
    for start in range(0, batch, GHOST):
        if start == GHOST:
            continue
        chunk = x.numpy()[start:start + GHOST][mask[start:start + GHOST]]
        mm = MOMENTUM * mm + (1 - MOMENTUM) * chunk.mean(axis=0)
    np.testing.assert_allclose(layer.moving_mean.numpy(), mm, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("moving_update", ["sequential", "averaged", "full_batch"])
def test_all_masked_batch_leaves_moving_statistics_unchanged(moving_update):
    shape = (8, 5, 3)
    layer = _layer(shape, -1, GHOST, moving_update)
    before = _state(layer)
    y = layer(_inputs(shape, seed=6), training=True, mask=np.zeros(shape[:-1], bool))
    assert np.isfinite(y.numpy()).all()
    np.testing.assert_array_equal(layer.moving_mean.numpy(), before["moving_mean"])
    np.testing.assert_array_equal(layer.moving_variance.numpy(), before["moving_variance"])


# --- A drop-in BatchNormalization when the ghost size is at least the batch ---

@pytest.mark.parametrize("masked", [False, True], ids=["no_mask", "mask"])
@pytest.mark.parametrize("virtual_batch_size", [8, 64])
@pytest.mark.parametrize("features,axis", LAYOUTS)
def test_equals_batch_normalization_when_ghost_covers_the_batch(features, axis,
                                                                virtual_batch_size, masked):
    shape = (8,) + features
    ghost = _layer(shape, axis, virtual_batch_size, "sequential")
    plain = keras.layers.BatchNormalization(axis=axis, momentum=MOMENTUM, epsilon=EPSILON)
    plain.build(shape)
    plain.set_weights(ghost.get_weights())
    x = tf.constant(_inputs(shape, seed=7))
    mask = tf.constant(_mask(shape[:-1], 7)) if masked else None
    weights = tf.constant(np.random.default_rng(8).normal(size=shape).astype("float32"))
    for step in range(2):
        with tf.GradientTape(persistent=True) as tape:
            tape.watch(x)
            y_ghost = ghost(x, training=True, mask=mask)
            y_plain = plain(x, training=True, mask=mask)
            loss_ghost = tf.reduce_sum(y_ghost * weights)
            loss_plain = tf.reduce_sum(y_plain * weights)
        np.testing.assert_allclose(y_ghost, y_plain, rtol=1e-5, atol=1e-5)
        for a, b in zip(ghost.get_weights(), plain.get_weights()):
            np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)
        for a, b in zip(tape.gradient(loss_ghost, [x, ghost.gamma, ghost.beta]),
                        tape.gradient(loss_plain, [x, plain.gamma, plain.beta])):
            np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)
        # Inference: the moving statistics, the mask only checked.
        np.testing.assert_allclose(ghost(x, mask=mask), plain(x, mask=mask), rtol=1e-5,
                                   atol=1e-5)


def test_masked_gradients_match_parent_applied_ghost_by_ghost():
    shape = (10, 5, 3)
    x = tf.constant(_inputs(shape, seed=9))
    mask = _mask(shape[:-1], 9)
    weights = tf.constant(np.random.default_rng(10).normal(size=shape).astype("float32"))
    ghost = _layer(shape, -1, GHOST, "sequential")
    plain = keras.layers.BatchNormalization(momentum=MOMENTUM, epsilon=EPSILON)
    plain.build(shape)
    plain.set_weights(ghost.get_weights())
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(x)
        loss_ghost = tf.reduce_sum(ghost(x, training=True, mask=mask) * weights)
        chunks = [plain(x[i:i + GHOST], training=True, mask=mask[i:i + GHOST])
                  for i in range(0, 10, GHOST)]
        loss_plain = tf.reduce_sum(tf.concat(chunks, axis=0) * weights)
    for a, b in [(x, x), (ghost.gamma, plain.gamma), (ghost.beta, plain.beta)]:
        np.testing.assert_allclose(tape.gradient(loss_ghost, a), tape.gradient(loss_plain, b),
                                   rtol=1e-4, atol=1e-4)


# --- Masks from upstream layers, through model.fit ----------------------------

@pytest.mark.filterwarnings("ignore:Layer 'flatten")  # Flatten drops the mask, on purpose
def test_masking_embedding_model_fit_follows_algorithm_1():
    # A frozen embedding: the GBN inputs do not change during training, so
    # the moving statistics can be replayed in NumPy.
    vocabulary, length, width, batch = 7, 5, 3, 8
    rng = np.random.default_rng(11)
    tokens = rng.integers(1, vocabulary, size=(20, length))
    tokens[:, 3:] *= rng.uniform(size=(20, 1)) < 0.5  # padding at the end of half the rows
    tokens[4:8] = 0  # an all-padding ghost in the first batch
    labels = rng.integers(0, 2, size=20)
    table = rng.normal(size=(vocabulary, width)).astype("float32")
    embedding = keras.layers.Embedding(vocabulary, width, mask_zero=True, trainable=False)
    model = keras.Sequential([
        keras.Input((length,), dtype="int32"),
        embedding,
        GhostBatchNormalization(virtual_batch_size=GHOST, momentum=MOMENTUM, epsilon=EPSILON),
        keras.layers.Flatten(),  # masked mean pooling would divide by zero on row 4
        keras.layers.Dense(2),
    ])
    embedding.set_weights([table])
    model.compile(optimizer="sgd", jit_compile=True,
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    history = model.fit(tokens, labels, batch_size=batch, epochs=1, shuffle=False, verbose=0)
    assert np.isfinite(history.history["loss"]).all()
    mm, mv = np.zeros(width), np.ones(width)
    for start in range(0, 20, batch):  # batches of 8, 8 and 4
        part = tokens[start:start + batch]
        _, mm, mv = ghost_bn_reference(
            table[part], GHOST, axis=-1, gamma=np.ones(width), beta=np.zeros(width),
            moving_mean=mm, moving_variance=mv, momentum=MOMENTUM, epsilon=EPSILON,
            moving_update="sequential", mask=part != 0)
    gbn = model.layers[1]
    np.testing.assert_allclose(gbn.moving_mean.numpy(), mm, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(gbn.moving_variance.numpy(), mv, rtol=1e-5, atol=1e-5)


def test_masking_layer_upstream_and_mask_passed_on():
    x = _inputs((12, 5, 3), seed=12)
    x[:, 3:] = 0.0  # Masking(0) masks the last two time steps of every example
    gbn = GhostBatchNormalization(virtual_batch_size=GHOST, momentum=MOMENTUM, epsilon=EPSILON)
    inputs = keras.Input((5, 3))
    model = keras.Model(inputs, keras.layers.LSTM(2)(gbn(keras.layers.Masking(0.0)(inputs))))
    model.compile(optimizer="sgd", loss="mse")
    model.fit(x, np.zeros((12, 2)), batch_size=12, epochs=1, shuffle=False, verbose=0)
    _, mm, _ = ghost_bn_reference(
        x, GHOST, axis=-1, gamma=np.ones(3), beta=np.zeros(3), moving_mean=np.zeros(3),
        moving_variance=np.ones(3), momentum=MOMENTUM, epsilon=EPSILON,
        moving_update="sequential", mask=np.arange(5)[None, :].repeat(12, 0) < 3)
    np.testing.assert_allclose(gbn.moving_mean.numpy(), mm, rtol=1e-5, atol=1e-5)


def test_mask_of_wrong_rank_raises():
    layer = GhostBatchNormalization(virtual_batch_size=2)
    with pytest.raises(ValueError, match="one dimension less") as info:
        layer(np.ones((4, 3, 2), "float32"), training=True, mask=np.ones((4,), bool))
    assert "Received" in str(info.value)
