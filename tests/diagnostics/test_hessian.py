"""Tests of the Hessian eigenvalue and trace against NumPy's 2 X^T X / n."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tests.diagnostics import least_squares as ls
from tfgap.diagnostics import hessian_top_eigenvalue, hessian_trace


def test_top_eigenvalue_matches_numpy():
    x, y = ls.make_problem(p=5)
    model = ls.make_model(5, np.ones(5))
    expected = np.linalg.eigvalsh(ls.hessian(x)).max()
    value = hessian_top_eigenvalue(model, x, y, tolerance=1e-7, max_iterations=500)
    assert value == pytest.approx(expected, rel=1e-4)


def test_top_eigenvalue_includes_weight_penalty():
    # L2(0.05) adds 0.05 * |w|^2 to the objective, i.e. 0.1 * I to the Hessian.
    x, y = ls.make_problem(p=3)
    model = keras.Sequential(
        [
            keras.Input((3,)),
            keras.layers.Dense(1, use_bias=False, kernel_regularizer=keras.regularizers.L2(0.05)),
        ]
    )
    model.compile(loss="mse")
    expected = np.linalg.eigvalsh(ls.hessian(x) + 0.1 * np.eye(3)).max()
    value = hessian_top_eigenvalue(model, x, y, tolerance=1e-8, max_iterations=500)
    assert value == pytest.approx(expected, rel=1e-4)


def test_trace_exact_for_diagonal_hessian():
    # Orthogonal columns: the Hessian is diagonal and v^T H v = tr(H) for every
    # Rademacher v, so the estimate is exact.
    q = np.linalg.qr(np.random.default_rng(1).normal(size=(32, 4)))[0]
    x = (q * np.array([1.0, 2.0, 3.0, 4.0])).astype("float32")
    y = np.zeros((32, 1), "float32")
    model = ls.make_model(4, np.zeros(4))
    value = hessian_trace(model, x, y, num_samples=3)
    assert value == pytest.approx(np.trace(ls.hessian(x)), rel=1e-5)


def test_trace_within_its_standard_error():
    x, y = ls.make_problem(p=5)
    h = ls.hessian(x)
    m = 100
    std = np.sqrt(2.0 * (np.sum(h**2) - np.sum(np.diag(h) ** 2)) / m)
    model = ls.make_model(5, np.zeros(5), loss=None)
    dataset = tf.data.Dataset.from_tensor_slices((x, y)).batch(32)
    value = hessian_trace(model, dataset, num_samples=m, loss="mse")
    assert abs(value - np.trace(h)) <= 4.0 * std
    assert std < 0.1 * np.trace(h)  # the check is tight enough to mean something


def test_weights_unchanged_and_bad_input():
    x, y = ls.make_problem()
    model = ls.make_model(4, np.arange(4.0))
    before = model.get_weights()[0].copy()
    hessian_top_eigenvalue(model, x, y, max_iterations=3)
    hessian_trace(model, x, y, num_samples=2)
    assert np.array_equal(model.get_weights()[0], before)
    with pytest.raises(ValueError, match="loss"):
        hessian_top_eigenvalue(ls.make_model(4, loss=None), x, y)
    with pytest.raises(ValueError, match="max_iterations"):
        hessian_top_eigenvalue(model, x, y, max_iterations=0)
    with pytest.raises(ValueError, match="num_samples"):
        hessian_trace(model, x, y, num_samples=0)
