"""`measure_noise_scales` on Keras models against the closed forms of `closed_forms`."""

import math

import keras
import numpy as np
import pytest
import tensorflow as tf
from keras import ops

from tests.advisor.closed_forms import (
    closed_forms,
    linear_regression,
    output_hessians,
    softmax,
    softmax_regression,
)
from tfgap.advisor import NoiseScales, measure_noise_scales
from tfgap.advisor.curvature import _Products
from tfgap.diagnostics import _evaluation


def half_squared_error(y, y_pred):
    return 0.5 * ops.square(y - y_pred[:, 0])


def keras_model(problem, loss, l2=0.0):
    """The problem's bias-free linear model with the problem's weights."""
    units = 1 if problem.w.ndim == 1 else problem.w.shape[1]
    regularizer = keras.regularizers.L2(l2) if l2 else None
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(
        units, use_bias=False, kernel_regularizer=regularizer)])
    model.layers[0].kernel.assign(problem.w.reshape(4, units).astype(np.float32))
    model.compile(loss=loss)
    return model


# (problem, loss, small batch): batches near B_noise (190 linear, 43 softmax) keep the
# curvature estimates' spread well below their means.
CASES = {
    "linear": (linear_regression, half_squared_error, 64),
    "softmax": (softmax_regression,
                keras.losses.SparseCategoricalCrossentropy(from_logits=True), 16),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_estimates_match_the_closed_forms(name):
    problem_fn, loss, b = CASES[name]
    problem = problem_fn()
    exact = closed_forms(problem.grads, problem.hessians)
    model = keras_model(problem, loss)
    x, y = problem.x.astype(np.float32), problem.y.astype(
        np.float32 if name == "linear" else np.int32)
    s = measure_noise_scales(model, x, y, batch_size=b, num_draws=300, small_batches=4)
    assert isinstance(s, NoiseScales) and s.product == "hessian" and s.num_draws == 300
    assert (s.small_batch, s.big_batch) == (b, 4 * b)
    b_simple = exact["trace"] / exact["norm_sq"]
    b_noise = exact["trace_curvature"] / exact["curvature"]
    for field, expected in (("b_simple", b_simple), ("b_noise", b_noise),
                            ("ratio", b_noise / b_simple),
                            ("eps_max", exact["norm_sq"] / exact["curvature"])):
        value, stderr = getattr(s, field), getattr(s, f"{field}_stderr")
        assert 0 < stderr < 0.25 * abs(expected), (field, stderr, expected)
        assert abs(value - expected) <= 4 * stderr, (field, value, expected, stderr)
    # The factor the closed forms give (B_noise 4.3x B_simple for linear, 1.5x softmax).
    assert s.ratio > 1.3
    np.testing.assert_array_equal(model.layers[0].kernel.numpy(),
                                  problem.w.reshape(4, -1).astype(np.float32))


def test_gauss_newton_product_is_the_numpy_matrix_on_softmax_regression():
    """For softmax regression the Gauss-Newton matrix equals the Hessian exactly.

    `GN = mean_i (x_i x_i^T) kron (diag(p_i) - p_i p_i^T) + 2 l2 I` (the L2 penalty's
    Hessian), written out in NumPy and multiplied with random vectors.
    """
    problem = softmax_regression(n=40)
    l2 = 0.05
    model = keras_model(problem, keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                        l2=l2)
    p = softmax(problem.x @ problem.w)
    gn = np.einsum("ni,nj,nab->iajb", problem.x, problem.x, output_hessians(p)).reshape(
        12, 12) / len(p) + 2 * l2 * np.eye(12)
    products = _Products(model, _evaluation.resolve_loss(model, None))
    x = ops.convert_to_tensor(problem.x.astype(np.float32))
    y = ops.convert_to_tensor(problem.y.astype(np.int32))
    hvp, gauss_newton = products.curvature(x, y, seed=0)
    rng = np.random.default_rng(0)
    for v in rng.normal(size=(3, 12)):
        np.testing.assert_allclose(gauss_newton(v), gn @ v, rtol=1e-4, atol=1e-6)
        np.testing.assert_allclose(hvp(v), gn @ v, rtol=1e-4, atol=1e-6)


def test_gauss_newton_of_a_network_is_symmetric_positive_and_not_the_hessian():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(32, 4)).astype(np.float32)
    y = rng.integers(0, 3, size=32)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(6, activation="tanh"),
                              keras.layers.Dense(3)])
    model.compile(loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    products = _Products(model, _evaluation.resolve_loss(model, None))
    hvp, gauss_newton = products.curvature(ops.convert_to_tensor(x),
                                           ops.convert_to_tensor(y), seed=0)
    u, v = rng.normal(size=(2, 51))
    assert math.isclose(u @ gauss_newton(v), v @ gauss_newton(u), rel_tol=1e-4)
    assert all(w @ gauss_newton(w) > 0 for w in rng.normal(size=(4, 51)))
    assert not np.allclose(hvp(v), gauss_newton(v), rtol=1e-3)


def test_training_mode_dropout_masks_vary_and_the_model_is_unchanged():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(64, 4)).astype(np.float32)
    y = rng.integers(0, 3, size=64)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8),
                              keras.layers.Dropout(0.5), keras.layers.BatchNormalization(),
                              keras.layers.Dense(3)])
    model.compile(loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    before = [np.array(v.numpy()) for v in model.variables]
    products = _Products(model, _evaluation.resolve_loss(model, None))
    bx, by = ops.convert_to_tensor(x[:8]), ops.convert_to_tensor(y[:8])
    first, second = products.gradient(bx, by, 0), products.gradient(bx, by, 0)
    assert not np.allclose(first, second)  # two steps, two dropout masks
    s = measure_noise_scales(model, x, y, batch_size=8, num_draws=3)
    assert s.num_draws == 3
    for v, old in zip(model.variables, before):
        np.testing.assert_array_equal(v.numpy(), old)


def test_a_dataset_gives_its_batches_as_the_small_batches():
    problem = softmax_regression()
    exact = closed_forms(problem.grads, problem.hessians)
    model = keras_model(problem, keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    index = np.random.default_rng(3).integers(0, 300, size=8 * 5 * 120)
    dataset = tf.data.Dataset.from_tensor_slices(
        (problem.x[index].astype(np.float32), problem.y[index])).batch(8)
    s = measure_noise_scales(model, dataset, num_draws=120, small_batches=4)
    assert s.num_draws == 120 and s.small_batch == 8
    b_noise = exact["trace_curvature"] / exact["curvature"]
    assert abs(s.b_noise - b_noise) <= 4 * s.b_noise_stderr


def test_bad_input_names_what_was_received():
    problem = softmax_regression(n=64)
    model = keras_model(problem, keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    x, y = problem.x.astype(np.float32), problem.y
    batched = tf.data.Dataset.from_tensor_slices((x, y)).batch(8)
    cases = [
        (dict(x=x, y=None, batch_size=8), r"targets `y`.*y=None"),
        (dict(x=x, y=y, batch_size=0), r"batch_size.*>= 1.*batch_size=0"),
        (dict(x=x, y=y, batch_size=8.0), r"batch_size=8.0"),
        (dict(x=x, y=y[:10], batch_size=8), r"same number of examples.*64 and 10"),
        (dict(x=x, y=y, batch_size=8, num_draws=1), r"num_draws.*>= 2.*num_draws=1"),
        (dict(x=batched, y=y), r"y=None when x is a tf.data.Dataset"),
        (dict(x=batched, batch_size=8), r"batch_size=None with a tf.data.Dataset"),
        (dict(x=tf.data.Dataset.from_tensor_slices((x, y))),
         r"batched tf.data.Dataset \(call .batch"),
        (dict(x=tf.data.Dataset.from_tensor_slices(x).batch(8)), r"labelled batches"),
        (dict(x=batched.take(3)), r"at least 10 batches.*Received 3 batches of 8"),
    ]
    for kwargs, match in cases:
        with pytest.raises(ValueError, match=match):
            measure_noise_scales(model, **kwargs)
    with pytest.raises(ValueError, match="compiled model"):
        measure_noise_scales(keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)]), x, y,
                             batch_size=8)
