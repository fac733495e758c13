"""Tests of Keskar's sharpness against the exact box maximum of a quadratic."""

import itertools

import keras
import numpy as np
import pytest
import tensorflow as tf

from tests.diagnostics import least_squares as ls
from tfgap.diagnostics import _evaluation, sharpness


def exact_box_sharpness(x, y, w0, epsilon):
    """phi by enumerating the vertices (a convex function peaks at a vertex)."""
    w0 = np.asarray(w0, np.float64).ravel()
    f0 = ls.loss(x, y, w0)
    bound = epsilon * (np.abs(w0) + 1.0)
    best = max(
        ls.loss(x, y, w0 + np.asarray(signs) * bound)
        for signs in itertools.product([-1.0, 1.0], repeat=len(w0))
    )
    return 100.0 * (best - f0) / (1.0 + f0)


@pytest.mark.parametrize("offset", [0.0, 0.3])
def test_between_half_and_exact_box_maximum(offset):
    # offset 0: an exact minimum (zero gradient); 0.3: a non-stationary point.
    x, y = ls.make_problem(p=5)
    w0 = (ls.minimizer(x, y).ravel() + offset).astype("float32")
    model = ls.make_model(5, w0)
    exact = exact_box_sharpness(x, y, w0, 1e-2)
    value = sharpness(model, x, y, epsilon=1e-2)
    assert exact > 0
    assert value <= exact * (1 + 1e-4) + 1e-9
    assert value >= 0.5 * exact


def test_sharper_data_gives_larger_value():
    x, y = ls.make_problem()
    values = []
    for scale in (1.0, 3.0):
        xs, ys = scale * x, scale * y  # same minimizer, Hessian times scale**2
        model = ls.make_model(4, ls.minimizer(xs, ys))
        values.append(sharpness(model, xs, ys, epsilon=1e-2))
    assert values[1] > 2.0 * values[0] > 0


def test_weights_restored_bit_for_bit():
    x, y = ls.make_problem()
    model = keras.Sequential(
        [
            keras.Input((4,)),
            keras.layers.Dense(8),
            keras.layers.BatchNormalization(),
            keras.layers.Dropout(0.5),
            keras.layers.Dense(1),
        ]
    )
    model.compile(loss="mse")
    before = [w.numpy().copy() for w in model.weights]
    first = sharpness(model, x, y, epsilon=1e-3)
    for w, b in zip(model.weights, before):
        assert np.array_equal(w.numpy(), b)
    # Inference mode (BN moving statistics, no dropout): deterministic.
    assert sharpness(model, x, y, epsilon=1e-3) == first
    sub = sharpness(model, x, y, epsilon=1e-3, subspace_dim=3, seed=1)
    assert np.isfinite(sub) and sub >= 0
    for w, b in zip(model.weights, before):
        assert np.array_equal(w.numpy(), b)


def test_weights_restored_when_it_raises(monkeypatch):
    x, y = ls.make_problem()
    w0 = ls.minimizer(x, y)
    model = ls.make_model(4, w0)
    before = model.get_weights()[0].copy()
    calls = []

    def broken(self):
        calls.append(1)
        raise RuntimeError("boom")

    original = _evaluation.LossEvaluator.set_flat

    def set_then_break(self, flat):
        original(self, flat)  # the weights really are perturbed...
        broken(self)  # ...when the exception interrupts

    monkeypatch.setattr(_evaluation.LossEvaluator, "set_flat", set_then_break)
    with pytest.raises(RuntimeError, match="boom"):
        sharpness(model, x, y, epsilon=1e-1)
    assert calls
    assert np.array_equal(model.get_weights()[0], before)


def test_one_dimensional_subspace_matches_closed_form():
    # The documented draw: the normalized N(0, 1) vector from default_rng(seed)
    # (its sign does not matter: the box is symmetric).
    x, y = ls.make_problem(p=6)
    w0 = ls.minimizer(x, y).ravel().astype("float32")
    model = ls.make_model(6, w0)
    a = np.random.default_rng(3).standard_normal((6, 1))
    a /= np.linalg.norm(a)
    coord = a.T @ w0.astype(np.float64)
    bound = 1e-2 * (np.abs(coord) + 1.0)
    f0 = ls.loss(x, y, w0)
    best = max(ls.loss(x, y, w0 + (a @ (s * bound)).ravel()) for s in (-1.0, 1.0))
    exact = 100.0 * (best - f0) / (1.0 + f0)
    value = sharpness(model, x, y, epsilon=1e-2, subspace_dim=1, seed=3)
    assert value == pytest.approx(exact, rel=1e-3)


def test_dataset_input_and_loss_argument():
    x, y = ls.make_problem()
    w0 = ls.minimizer(x, y)
    from_arrays = sharpness(ls.make_model(4, w0), x, y, epsilon=1e-2, batch_size=16)
    dataset = tf.data.Dataset.from_tensor_slices((x, y)).batch(10)
    uncompiled = ls.make_model(4, w0, loss=None)
    from_dataset = sharpness(uncompiled, dataset, epsilon=1e-2, loss="mse")
    assert from_dataset == pytest.approx(from_arrays, rel=1e-4)


def test_bad_input():
    x, y = ls.make_problem()
    model = ls.make_model(4, np.zeros(4))
    for eps in (0.0, -1e-3, float("nan")):
        with pytest.raises(ValueError, match="epsilon"):
            sharpness(model, x, y, epsilon=eps)
    for dim in (0, 5, 2.5):
        with pytest.raises(ValueError, match="subspace_dim"):
            sharpness(model, x, y, subspace_dim=dim)
    with pytest.raises(ValueError, match="loss"):
        sharpness(ls.make_model(4, loss=None), x, y)
    with pytest.raises(ValueError, match="y"):
        sharpness(model, x)


def test_model_built_under_a_strategy(two_cpus):
    x, y = ls.make_problem()
    w0 = ls.minimizer(x, y)
    with two_cpus.scope():
        model = ls.make_model(4, w0)
    before = model.get_weights()[0].copy()
    value = sharpness(model, x, y, epsilon=1e-2)
    assert value == pytest.approx(sharpness(ls.make_model(4, w0), x, y, epsilon=1e-2), rel=1e-6)
    assert np.array_equal(model.get_weights()[0], before)
