"""The advisor's B_simple and its error bar against a closed form (Gaussian linear regression)."""

import math

import keras
import numpy as np
import pytest

from tfgap.advisor import (
    NoiseScaleError,
    NoiseScaleTracker,
    combine_chunks,
    measure_noise_scale,
    pool_estimates,
)

D = 6
SIGMA = 1.5  # label noise standard deviation


def problem():
    """x ~ N(0, C), y = x.w* + N(0, SIGMA^2); the model sits at w* + delta."""
    rng = np.random.default_rng(123)
    a = rng.normal(size=(D, D))
    cov = a @ a.T / D + 0.5 * np.eye(D)
    w_star = rng.normal(size=D)
    delta = 0.3 * rng.normal(size=D)
    return cov, w_star, delta


def analytic_b_simple(cov, delta, sigma):
    """tr(Sigma) / |G|^2 for the per-example gradient of (x.w - y)^2, derived in NumPy.

    g = 2 (x.delta - eps) x, x ~ N(0, C), eps ~ N(0, sigma^2) independent.
    G = E[g] = 2 C delta.  By Isserlis' theorem
    E[(x.delta)^2 x x^T] = (delta^T C delta) C + 2 C delta delta^T C, so
    E[g g^T] = 4 ((delta^T C delta + sigma^2) C + 2 C delta delta^T C) and
    Sigma = E[g g^T] - G G^T = 4 ((delta^T C delta + sigma^2) C + C delta delta^T C).
    """
    c_delta = cov @ delta
    gradient = 2.0 * c_delta
    second_moment = 4.0 * ((delta @ c_delta + sigma**2) * cov + 2.0 * np.outer(c_delta, c_delta))
    covariance = second_moment - np.outer(gradient, gradient)
    return float(np.trace(covariance) / (gradient @ gradient))


def sample(cov, w_star, n, seed):
    rng = np.random.default_rng(seed)
    x = rng.multivariate_normal(np.zeros(D), cov, size=n)
    y = x @ w_star + SIGMA * rng.normal(size=n)
    return x.astype("float32"), y.reshape(-1, 1).astype("float32")


def model_at(w):
    model = keras.Sequential([keras.Input((D,)), keras.layers.Dense(1, use_bias=False)])
    model.set_weights([np.asarray(w, "float32").reshape(D, 1)])
    model.compile(loss="mse")
    return model


def test_analytic_formula_matches_monte_carlo_per_example_gradients():
    # The closed form itself, checked on a million NumPy per-example gradients.
    cov, w_star, delta = problem()
    x, y = sample(cov, w_star, 1_000_000, seed=7)
    residual = x.astype(np.float64) @ (w_star + delta) - y[:, 0]
    g = 2.0 * residual[:, None] * x
    mc = g.var(axis=0).sum() / np.sum(g.mean(axis=0) ** 2)
    assert mc == pytest.approx(analytic_b_simple(cov, delta, SIGMA), rel=0.03)


def test_b_simple_within_its_stated_uncertainty_of_the_analytic_value():
    cov, w_star, delta = problem()
    want = analytic_b_simple(cov, delta, SIGMA)
    model = model_at(w_star + delta)
    x, y = sample(cov, w_star, 16384, seed=1)
    got = measure_noise_scale(model, x, y, batch_size=8, num_chunks=8, seed=0)
    assert got.num_chunks == 8 and got.num_examples == 16384 and got.batch_size == 8
    assert got.usable
    assert abs(got.b_simple - want) <= 3.0 * got.b_simple_stderr, (got, want)
    # Tight enough that a wrong formula (e.g. a factor 2) could not pass.
    assert got.b_simple_stderr < 0.15 * want


def test_stated_uncertainty_is_calibrated_over_independent_data():
    cov, w_star, delta = problem()
    want = analytic_b_simple(cov, delta, SIGMA)
    model = model_at(w_star + delta)
    z = []
    for seed in range(8):
        x, y = sample(cov, w_star, 4096, seed=100 + seed)
        e = measure_noise_scale(model, x, y, batch_size=8, num_chunks=8, seed=seed)
        z.append((e.b_simple - want) / e.b_simple_stderr)
    z = np.array(z)
    # Standardized errors: no systematic bias and about unit spread.
    assert abs(z.mean()) < 3.0 / math.sqrt(len(z)) + 0.5, z
    assert 0.3 < z.std(ddof=1) < 2.5, z


def test_combine_chunks_matches_numpy_delta_method():
    rng = np.random.default_rng(0)
    t = rng.uniform(1.0, 2.0, size=5)
    g = rng.uniform(0.01, 0.02, size=5)
    e = combine_chunks(t, g, batch_size=4, num_examples=200, step=3)
    ratio = t.mean() / g.mean()
    # Reference: first-order variance of a ratio of means, written out.
    var = (np.var(t, ddof=1) - 2 * ratio * np.cov(t, g)[0, 1] + ratio**2 * np.var(g, ddof=1)) / (
        len(t) * g.mean() ** 2)
    assert e.b_simple == pytest.approx(ratio, rel=1e-12)
    assert e.b_simple_stderr == pytest.approx(math.sqrt(var), rel=1e-9)
    assert (e.step, e.num_chunks, e.num_examples) == (3, 5, 200)


def test_negative_or_non_finite_estimates_are_refused_with_advice():
    negative = combine_chunks([1.0, 1.2], [-0.01, 0.005], batch_size=8, num_examples=64, step=9)
    assert negative.b_simple < 0 and not negative.usable
    with pytest.raises(NoiseScaleError, match="step 9.*more examples"):
        negative.check()
    zero = combine_chunks([1.0, 1.2], [0.0, 0.0], batch_size=8, num_examples=64)
    assert not zero.usable
    with pytest.raises(NoiseScaleError, match="more examples"):
        pool_estimates([negative, zero])


def test_too_few_examples_is_a_clear_error():
    model = model_at(np.ones(D))
    x, y = sample(*problem()[:2], 100, seed=0)
    with pytest.raises(ValueError, match="at least 256 examples"):
        measure_noise_scale(model, x, y, batch_size=16, num_chunks=8)
    with pytest.raises(ValueError, match="num_chunks >= 2"):
        measure_noise_scale(model, x, y, batch_size=4, num_chunks=1)


def test_pool_uses_late_usable_points_and_reports_skipped():
    good = [combine_chunks([a, a + 1.0], [0.01, 0.01], batch_size=8, num_examples=64, step=s)
            for s, a in ((10, 1.0), (20, 2.0), (40, 4.0))]
    bad = combine_chunks([1.0, 1.0], [-0.01, -0.01], batch_size=8, num_examples=64, step=30)
    pooled = pool_estimates(good + [bad], min_step=20)
    assert pooled.steps == (20, 40) and pooled.skipped == (30,)
    assert pooled.b_simple == pytest.approx((250.0 + 450.0) / 2)
    spread = np.std([250.0, 450.0], ddof=1) / math.sqrt(2)
    own = math.sqrt(good[1].b_simple_stderr ** 2 + good[2].b_simple_stderr ** 2) / 2
    assert pooled.b_simple_stderr == pytest.approx(max(spread, own))


def test_tracker_measures_at_the_listed_steps_of_fit():
    cov, w_star, delta = problem()
    x, y = sample(cov, w_star, 512, seed=3)
    model = model_at(w_star + delta)
    model.compile(optimizer=keras.optimizers.SGD(0.01), loss="mse")
    tracker = NoiseScaleTracker(x, y, batch_size=8, at_steps=[0, 3, 20], num_chunks=4)
    model.fit(x, y, batch_size=32, epochs=2, shuffle=False, verbose=0, callbacks=[tracker])
    assert [e.step for e in tracker.estimates] == [0, 3, 20]
    # The step-0 point is the initial weights: the same as a direct measurement.
    fresh = measure_noise_scale(model_at(w_star + delta), x, y, batch_size=8, num_chunks=4)
    assert tracker.estimates[0].b_simple == pytest.approx(fresh.b_simple, rel=1e-6)
