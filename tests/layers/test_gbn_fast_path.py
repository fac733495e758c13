"""The reshape path (batch divisible by the ghost size) and the segment path.

Both are checked against the independent NumPy loop in `reference.py`, with
a static and a dynamic batch dimension, with and without XLA; the compiled
graphs are checked for what the reshape path promises: no gather or scatter,
and no work on full-size tensors beyond plain BN's.
"""

import collections

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


def _layer(shape, axis, moving_update, seed=0, **kwargs):
    return make_layer(shape, axis, GHOST, moving_update, seed, **kwargs)


def _training_call(layer, shape, dynamic, jit):
    spec = tf.TensorSpec((None,) + shape[1:] if dynamic else shape, tf.float32)
    return tf.function(lambda t: layer(t, training=True), input_signature=[spec],
                       jit_compile=jit)


# 12 = three ghosts of 4 (reshape path), 10 = 4 + 4 + 2 (segment path),
# 3 = one ghost smaller than the ghost size (reshape path).
BATCHES = [pytest.param(12, id="divisible"), pytest.param(10, id="ragged"),
           pytest.param(3, id="below_ghost")]
LAYOUTS = [pytest.param((3, 3, 4), -1, id="channels_last"),
           pytest.param((4, 3, 3), 1, id="channels_first"),
           pytest.param((5,), -1, id="rank2")]


@pytest.mark.parametrize("moving_update", ["sequential", "averaged", "full_batch"])
@pytest.mark.parametrize("dynamic", [False, True], ids=["static", "dynamic"])
@pytest.mark.parametrize("batch", BATCHES)
@pytest.mark.parametrize("features,axis", LAYOUTS)
def test_both_paths_match_numpy_reference(features, axis, batch, dynamic, moving_update):
    shape = (batch,) + features
    layer = _layer(shape, axis, moving_update)
    call = _training_call(layer, shape, dynamic, jit=False)
    for step in range(2):  # the second call starts from updated moving statistics
        x = _inputs(shape, seed=step)
        expected, mm, mv = ghost_bn_reference(
            x, GHOST, axis=axis, momentum=MOMENTUM, epsilon=EPSILON,
            moving_update=moving_update, **_state(layer))
        np.testing.assert_allclose(call(x), expected, rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(layer.moving_mean.numpy(), mm, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(layer.moving_variance.numpy(), mv, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("moving_update", ["sequential", "full_batch"])
@pytest.mark.parametrize("dynamic", [False, True], ids=["static", "dynamic"])
@pytest.mark.parametrize("batch", BATCHES)
@pytest.mark.parametrize("features,axis", LAYOUTS[:2])
def test_both_paths_match_numpy_reference_under_xla(features, axis, batch, dynamic,
                                                    moving_update):
    shape = (batch,) + features
    layer = _layer(shape, axis, moving_update)
    x = _inputs(shape, seed=3)
    expected, mm, mv = ghost_bn_reference(
        x, GHOST, axis=axis, momentum=MOMENTUM, epsilon=EPSILON,
        moving_update=moving_update, **_state(layer))
    np.testing.assert_allclose(_training_call(layer, shape, dynamic, jit=True)(x), expected,
                               rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(layer.moving_mean.numpy(), mm, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(layer.moving_variance.numpy(), mv, rtol=1e-5, atol=1e-5)


def test_one_dynamic_trace_serves_divisible_and_ragged_batches():
    shape = (12, 3, 3, 4)
    layer = _layer(shape, -1, "sequential")
    call = _training_call(layer, shape, dynamic=True, jit=False)
    for batch in [12, 10, 8, 3]:
        x = _inputs((batch,) + shape[1:], seed=batch)
        expected, mm, _ = ghost_bn_reference(
            x, GHOST, axis=-1, momentum=MOMENTUM, epsilon=EPSILON,
            moving_update="sequential", **_state(layer))
        np.testing.assert_allclose(call(x), expected, rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(layer.moving_mean.numpy(), mm, rtol=1e-5, atol=1e-5)
    assert len(call._list_all_concrete_functions()) == 1


@pytest.mark.parametrize("axis", [-1, 1], ids=["channels_last", "channels_first"])
def test_unknown_spatial_dimensions(axis):
    shape = (8, 3, 5, 3) if axis == -1 else (8, 3, 3, 5)
    layer = _layer(shape, axis, "averaged")
    spec = [8, None, None, 3] if axis == -1 else [8, 3, None, None]
    call = tf.function(lambda t: layer(t, training=True),
                       input_signature=[tf.TensorSpec(spec, tf.float32)])
    x = _inputs(shape, seed=4)
    expected, mm, mv = ghost_bn_reference(
        x, GHOST, axis=axis, momentum=MOMENTUM, epsilon=EPSILON,
        moving_update="averaged", **_state(layer))
    np.testing.assert_allclose(call(x), expected, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(layer.moving_variance.numpy(), mv, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("dynamic", [False, True], ids=["static", "dynamic"])
@pytest.mark.parametrize("features,axis", LAYOUTS[:2])
def test_reshape_path_gradients_match_parent_applied_ghost_by_ghost(features, axis, dynamic):
    shape = (12,) + features
    x = tf.constant(_inputs(shape, seed=5))
    weights = tf.constant(np.random.default_rng(6).normal(size=shape).astype("float32"))
    ghost = _layer(shape, axis, "sequential")
    plain = keras.layers.BatchNormalization(axis=axis, momentum=MOMENTUM, epsilon=EPSILON)
    plain.build(shape)
    plain.set_weights(ghost.get_weights())
    spec = tf.TensorSpec((None,) + features if dynamic else shape, tf.float32)

    @tf.function(input_signature=[spec])
    def ghost_grads(t):
        with tf.GradientTape() as tape:
            tape.watch(t)
            loss = tf.reduce_sum(ghost(t, training=True) * weights)
        return tape.gradient(loss, [t, ghost.gamma, ghost.beta])

    with tf.GradientTape() as tape:
        tape.watch(x)
        chunks = [plain(x[i:i + GHOST], training=True) for i in range(0, 12, GHOST)]
        loss = tf.reduce_sum(tf.concat(chunks, axis=0) * weights)
    expected = tape.gradient(loss, [x, plain.gamma, plain.beta])
    for got, want in zip(ghost_grads(x), expected):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
def test_reshape_path_mixed_precision(policy):
    shape = (12, 2, 2, 3)
    layer = _layer(shape, -1, "full_batch", dtype=policy)
    state = _state(layer)
    x = _inputs(shape, seed=10)
    compute = "float16" if policy == "mixed_float16" else "bfloat16"
    y = layer(tf.cast(x, compute), training=True)
    assert y.dtype == compute and layer.moving_mean.dtype == "float32"
    x_rounded = tf.cast(tf.cast(x, compute), "float32").numpy()
    expected, mm, mv = ghost_bn_reference(x_rounded, GHOST, axis=-1, momentum=MOMENTUM,
                                          epsilon=EPSILON, moving_update="full_batch", **state)
    tolerance = 2e-2 if compute == "float16" else 8e-2
    np.testing.assert_allclose(tf.cast(y, "float32"), expected, rtol=tolerance, atol=tolerance)
    # Statistics are float32 from the rounded inputs: exact to float32 precision.
    np.testing.assert_allclose(layer.moving_mean.numpy(), mm, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(layer.moving_variance.numpy(), mv, rtol=1e-5, atol=1e-5)


# --- What the compiled training step contains -------------------------------

SHAPE = (16, 6, 6, 3)  # a 3x3 valid convolution makes (16, 4, 4, 4) for the norm layer
NORM_ELEMENTS = 16 * 4 * 4 * 4
SLOW_OPS = ("Segment", "Gather", "Scatter")


def _train_step(virtual_batch_size, policy="float32", jit=False, dynamic=False, batch=SHAPE[0]):
    """A traced SGD step of Conv2D -> norm -> pooling -> Dense, and its input."""
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(policy)
    try:
        model = keras.Sequential([
            keras.Input(SHAPE[1:]),
            keras.layers.Conv2D(4, 3, use_bias=False),
            GhostBatchNormalization(virtual_batch_size=virtual_batch_size),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(2, dtype="float32"),
        ])
    finally:
        keras.mixed_precision.set_global_policy(previous)
    optimizer = keras.optimizers.SGD(0.1)
    optimizer.build(model.trainable_variables)
    spec = tf.TensorSpec((None if dynamic else batch,) + SHAPE[1:], tf.float32)

    @tf.function(input_signature=[spec], jit_compile=jit)
    def step(x):
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(tf.square(model(x, training=True)))
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply(grads, model.trainable_variables)
        return loss

    return step


def _op_types(virtual_batch_size, policy="float32", batch=SHAPE[0]):
    graph = _train_step(virtual_batch_size, policy, batch=batch).get_concrete_function().graph
    every = collections.Counter(op.type for op in graph.get_operations())
    # Ops that read or write a tensor as large as the normalized activations:
    # the ones whose cost grows with the batch.
    large = collections.Counter(
        op.type for op in graph.get_operations() for out in op.outputs
        if out.shape.is_fully_defined() and out.shape.num_elements() >= NORM_ELEMENTS)
    return every, large


@pytest.mark.parametrize("policy", ["float32", "mixed_float16", "mixed_bfloat16"])
def test_reshape_path_adds_no_large_op_and_no_cast_to_plain_bn(policy):
    bn_ops, bn_large = _op_types(None, policy)
    gbn_ops, gbn_large = _op_types(GHOST, policy)
    assert not [t for t in gbn_ops if any(s in t for s in SLOW_OPS)], gbn_ops
    assert "If" not in gbn_ops and "StatelessIf" not in gbn_ops
    # Reshapes of a contiguous tensor copy nothing; every other op on
    # full-size tensors is plain BN's, one for one.
    assert gbn_large["Reshape"] >= 2
    del gbn_large["Reshape"]
    assert gbn_large == bn_large
    assert gbn_ops["Cast"] == bn_ops["Cast"]
    if policy != "float32":
        assert bn_large["Cast"] >= 2  # the input up-cast and the output down-cast
    # The ghost bookkeeping is a few ops on (ghosts, channels) tensors.
    assert sum(gbn_ops.values()) - sum(bn_ops.values()) <= 40


def test_segment_path_is_the_one_with_gathers_and_scatters():
    # The check above can fail: a ragged batch does produce these ops.
    ragged_ops, _ = _op_types(GHOST, batch=14)
    assert ragged_ops["UnsortedSegmentSum"] > 0 and ragged_ops["GatherV2"] > 0


@pytest.mark.parametrize("dynamic", [False, True], ids=["static", "dynamic"])
def test_xla_step_has_no_scatter_or_gather_when_the_batch_divides(dynamic):
    def optimized_hlo(batch):
        step = _train_step(GHOST, jit=True, dynamic=dynamic, batch=batch)
        x = tf.zeros((batch,) + SHAPE[1:])
        return step.experimental_get_compiler_ir(x)(stage="optimized_hlo")

    hlo = optimized_hlo(16)
    for instruction in ("scatter(", "gather(", "conditional("):
        assert instruction not in hlo
    assert "scatter(" in optimized_hlo(14)  # the check can fail: ragged batches scatter
