"""Tests of the gradient noise scale against per-example NumPy gradients."""

import numpy as np
import pytest
import tensorflow as tf

from tests.diagnostics import least_squares as ls
from tfgap.diagnostics import GradientNoiseScale, gradient_noise_scale

W = np.full(4, 0.5)  # away from the minimum, so that |G| > 0


def reference(x, y, w):
    """tr(Sigma) (sample covariance), unbiased |G|^2 and B_simple from per-example gradients."""
    g = ls.per_example_gradients(x, y, w)
    n = len(g)
    trace = float(g.var(axis=0, ddof=1).sum())
    mean = g.mean(axis=0)
    norm_sq = float(mean @ mean) - trace / n
    return trace, norm_sq, trace / norm_sq


def test_batch_one_is_the_exact_per_example_statistic():
    x, y = ls.make_problem(n=48, noise=1.0)
    model = ls.make_model(4, W)
    trace, norm_sq, b_simple = reference(x, y, W)
    result = gradient_noise_scale(model, x, y, batch_size=1)
    assert result.large_batch_size == 48 and result.num_groups == 1
    assert result.trace_covariance == pytest.approx(trace, rel=1e-5)
    assert result.gradient_norm_sq == pytest.approx(norm_sq, rel=1e-5)
    assert result.b_simple == pytest.approx(b_simple, rel=1e-5)


def test_larger_batches_are_unbiased_within_standard_error():
    x, y = ls.make_problem(n=128, noise=1.0)
    model = ls.make_model(4, W)
    trace, norm_sq, _ = reference(x, y, W)
    results = [
        gradient_noise_scale(model, x, y, batch_size=8, large_batch_size=32, seed=s)
        for s in range(12)
    ]
    for got, want in (
        ([r.trace_covariance for r in results], trace),
        ([r.gradient_norm_sq for r in results], norm_sq),
    ):
        standard_error = np.std(got, ddof=1) / np.sqrt(len(got))
        assert abs(np.mean(got) - want) <= 4.0 * standard_error + 1e-6 * abs(want)
        assert standard_error < 0.25 * abs(want)  # tight enough to catch a wrong formula


def test_dataset_batches_are_the_small_batches():
    x, y = ls.make_problem(n=40, noise=1.0)
    model = ls.make_model(4, W, loss=None)
    dataset = tf.data.Dataset.from_tensor_slices((x, y)).batch(1)
    result = gradient_noise_scale(model, dataset, loss="mse")
    assert result.batch_size == 1 and result.large_batch_size == 40
    assert result.b_simple == pytest.approx(reference(x, y, W)[2], rel=1e-5)


def test_callback_logs_noise_scale():
    x, y = ls.make_problem(n=64, noise=1.0)
    model = ls.make_model(4, W, loss=None)
    model.compile(optimizer="sgd", loss="mse")
    callback = GradientNoiseScale(x, y, batch_size=8, every_n_epochs=2)
    history = model.fit(x, y, batch_size=16, epochs=2, verbose=0, callbacks=[callback])
    assert [e for e, _ in callback.history] == [1]
    logged = history.history["gradient_noise_scale"]
    assert len(logged) == 1 and logged[0] == callback.history[0][1].b_simple
    assert np.isfinite(logged[0])


def test_bad_input():
    x, y = ls.make_problem(n=32)
    model = ls.make_model(4, W)
    with pytest.raises(ValueError, match="large_batch_size"):
        gradient_noise_scale(model, x, y, batch_size=8, large_batch_size=12)
    with pytest.raises(ValueError, match="large_batch_size"):
        gradient_noise_scale(model, x, y, batch_size=8, large_batch_size=8)
    with pytest.raises(ValueError, match="large_batch_size"):
        gradient_noise_scale(model, x, y, batch_size=8, large_batch_size=64)
    with pytest.raises(ValueError, match="batch_size"):
        gradient_noise_scale(model, x, y, batch_size=0)
    with pytest.raises(ValueError, match="loss"):
        gradient_noise_scale(ls.make_model(4, loss=None), x, y)
    with pytest.raises(ValueError, match="every_n_epochs"):
        GradientNoiseScale(x, y, every_n_epochs=0)
