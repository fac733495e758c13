"""Tests of the 1-D interpolation between two models."""

import sys

import keras
import numpy as np
import pytest

from tests.diagnostics import least_squares as ls
from tfgap.diagnostics import InterpolationResult, interpolate, plot_interpolation


def test_endpoints_and_midpoint_reproduce_numpy_losses():
    x, y = ls.make_problem()
    w_sb, w_lb = ls.minimizer(x, y).ravel(), np.array([1.0, -2.0, 0.5, 3.0])
    model_sb, model_lb = ls.make_model(4, w_sb), ls.make_model(4, w_lb)
    sb32, lb32 = model_sb.get_weights()[0].ravel(), model_lb.get_weights()[0].ravel()
    before = model_sb.get_weights()[0].copy()
    result = interpolate(model_sb, model_lb, x, y, alphas=[-1.0, 0.0, 0.5, 1.0, 2.0])
    expected = [ls.loss(x, y, a * lb32 + (1 - a) * sb32) for a in result.alphas]
    np.testing.assert_allclose(result.loss, expected, rtol=1e-5)
    assert result.loss[1] == pytest.approx(ls.loss(x, y, sb32), rel=1e-6)
    assert result.loss[3] == pytest.approx(ls.loss(x, y, lb32), rel=1e-6)
    assert np.all(np.isnan(result.accuracy))  # single-unit output: no accuracy
    assert np.array_equal(model_sb.get_weights()[0], before)


def test_classifier_accuracy_and_batchnorm_state():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 5)).astype("float32")
    labels = rng.integers(0, 3, size=40)

    def make(seed):
        keras.utils.set_random_seed(seed)
        model = keras.Sequential(
            [
                keras.Input((5,)),
                keras.layers.Dense(6),
                keras.layers.BatchNormalization(),
                keras.layers.Dense(3),
            ]
        )
        model.compile(loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        # Distinct moving statistics in both models.
        bn = model.layers[1]
        bn.moving_mean.assign(rng.normal(size=6).astype("float32"))
        bn.moving_variance.assign(rng.uniform(0.5, 2.0, size=6).astype("float32"))
        return model

    model_sb, model_lb = make(1), make(2)
    before = [w.numpy().copy() for w in model_sb.weights]
    result = interpolate(model_sb, model_lb, x, labels, alphas=[-1.0, 0.0, 1.0, 2.0], batch_size=16)
    for i, model in ((1, model_sb), (2, model_lb)):
        logits = model.predict(x, verbose=0).astype(np.float64)
        log_softmax = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
        assert result.loss[i] == pytest.approx(-log_softmax[np.arange(40), labels].mean(), 1e-5)
        assert result.accuracy[i] == np.mean(logits.argmax(axis=1) == labels)
    # Outside [0, 1] the moving variance is not extrapolated: finite values.
    assert np.all(np.isfinite(result.loss))
    for w, b in zip(model_sb.weights, before):
        assert np.array_equal(w.numpy(), b)
    # One-hot labels give the same accuracy.
    onehot = interpolate(
        model_sb, model_lb, x, np.eye(3, dtype="float32")[labels], alphas=[0.0, 1.0],
        loss=keras.losses.CategoricalCrossentropy(from_logits=True),
    )
    np.testing.assert_array_equal(onehot.accuracy, result.accuracy[1:3])


def test_mismatched_models_and_bad_input():
    x, y = ls.make_problem()
    with pytest.raises(ValueError, match="same weights"):
        interpolate(ls.make_model(4), ls.make_model(3), x, y)
    with pytest.raises(ValueError, match="loss"):
        interpolate(ls.make_model(4, loss=None), ls.make_model(4), x, y)
    with pytest.raises(ValueError, match="alphas"):
        interpolate(ls.make_model(4), ls.make_model(4), x, y, alphas=[])


def test_plot_does_not_touch_the_global_backend(tmp_path):
    import matplotlib

    backend = matplotlib.rcParams._get("backend")
    had_pyplot = "matplotlib.pyplot" in sys.modules
    r = InterpolationResult(np.linspace(-1, 2, 4), np.array([1.0, 0.1, 0.2, 2.0]), np.full(4, 0.5))
    fig = plot_interpolation({"train": r, "test": r}, title="SB vs LB")
    fig.savefig(tmp_path / "interpolation.png")
    assert (tmp_path / "interpolation.png").stat().st_size > 0
    assert len(fig.axes[0].lines) >= 2 and len(fig.axes[1].lines) == 2
    assert matplotlib.rcParams._get("backend") == backend
    assert ("matplotlib.pyplot" in sys.modules) == had_pyplot
    with pytest.raises(ValueError, match="labels"):
        plot_interpolation([r], labels=["a", "b"])
