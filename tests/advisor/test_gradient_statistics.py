"""The two-batch estimators against closed forms: linear and softmax regression in NumPy.

The problems and their exact statistics are in `closed_forms` (shared with the
tests of `measure_noise_scales`): per-example gradients of a finite
population sampled with replacement, where `H` is far from a multiple of the
identity and `B_noise` differs from `B_simple` by a known factor.
"""

import math

import numpy as np
import pytest

from tests.advisor.closed_forms import (
    closed_forms,
    draws_of,
    linear_regression,
    softmax_regression,
    within,
)
from tfgap.advisor import gradient_statistics as gs


@pytest.mark.parametrize("problem", [linear_regression, softmax_regression])
def test_two_batch_estimates_are_unbiased(problem):
    grads, hessians = problem()[:2]
    exact = closed_forms(grads, hessians)
    rng = np.random.default_rng(1)
    k, b, count = 4, 8, 20000
    small = draws_of(grads, rng, num_draws=count, k=k, b=b)
    small_sq = np.mean(np.sum(small ** 2, axis=2), axis=1)
    big = small.mean(axis=1)
    norm_sq, trace = gs.two_batch_estimates(small_sq, np.sum(big ** 2, axis=1), b, k * b)
    within(norm_sq.mean(), norm_sq.std(), count, exact["norm_sq"])
    within(trace.mean(), trace.std(), count, exact["trace"])
    # The naive |G_b|^2 is biased by tr(Sigma) / b: the test can tell.
    assert abs(small_sq.mean() - exact["norm_sq"]) > 10 * norm_sq.std() / math.sqrt(count)


@pytest.mark.parametrize("problem", [linear_regression, softmax_regression])
def test_hessian_weighted_estimates_are_unbiased_and_b_noise_differs_by_the_known_factor(
        problem):
    grads, hessians = problem()[:2]
    exact = closed_forms(grads, hessians)
    b_simple = exact["trace"] / exact["norm_sq"]
    b_noise = exact["trace_curvature"] / exact["curvature"]
    factor = b_noise / b_simple
    assert factor > 1.4 or factor < 1 / 1.4, factor  # H is far from a multiple of I
    rng = np.random.default_rng(2)
    k, b, m, count = 4, 8, 16, 3000
    draws = []
    for gradients in draws_of(grads, rng, num_draws=count, k=k, b=b):
        # H from an independent batch of m examples: unbiased for H, independent of g.
        h = hessians[rng.integers(0, len(grads), size=m)].mean(axis=0)
        draws.append(gs.curvature_draw(gradients, lambda v, h=h: h @ v, small_batch=b))
    for key in ("norm_sq", "trace", "curvature", "trace_curvature"):
        values = np.array([getattr(d, key) for d in draws])
        within(values.mean(), values.std(), count, exact[key])
    scales = gs.noise_scales(draws)
    assert scales.product == "hessian" and scales.num_draws == count
    for name, expected in (("b_simple", b_simple), ("b_noise", b_noise), ("ratio", factor),
                           ("eps_max", exact["norm_sq"] / exact["curvature"])):
        value, stderr = getattr(scales, name), getattr(scales, f"{name}_stderr")
        # A ratio of means carries an O(1/K) bias, far below the error bar here.
        assert 0 < stderr < 0.2 * abs(expected), (name, stderr)
        assert abs(value - expected) <= 4 * stderr, (name, value, expected, stderr)


def test_the_standard_errors_match_the_spread_of_repeated_measurements():
    grads, hessians = linear_regression()[:2]
    rng = np.random.default_rng(3)
    results = []
    for _ in range(200):
        draws = [gs.curvature_draw(
            g, lambda v, h=hessians[rng.integers(0, len(grads), 64)].mean(axis=0): h @ v,
            small_batch=64) for g in draws_of(grads, rng, num_draws=100, k=4, b=64)]
        results.append(gs.noise_scales(draws))
    for name in ("b_simple", "b_noise", "ratio"):
        spread = np.std([getattr(r, name) for r in results], ddof=1)
        reported = np.mean([getattr(r, f"{name}_stderr") for r in results])
        assert 0.8 < reported / spread < 1.25, (name, reported, spread)


def test_eps_opt_is_the_best_step_of_the_quadratic():
    """For a quadratic loss the best step along a noisy gradient has a closed form.

    Linear regression's loss `L(w) = mean_i (x_i w - y_i)^2 / 2` is exactly
    quadratic with Hessian `H`, so for any step `w' = w - eps g`

        L(w') = L(w) - eps G^T g + eps^2 / 2 g^T H g           (no remainder).

    With `g` a batch-`B` gradient (`E g = G`, `E[g^T H g] = G^T H G + tr(H Sigma)/B`):

        E L(w') = L(w) - eps |G|^2 + eps^2 / 2 (G^T H G + tr(H Sigma) / B),

    a parabola in `eps` with its minimum at

        eps* = |G|^2 / (G^T H G + tr(H Sigma) / B) = eps_max / (1 + B_noise / B).

    The test computes `eps*` as the minimum of the sample mean of the exact
    parabolas over many sampled batches (independently of the formula), and
    compares it with `eps_opt` from the closed-form statistics and from the
    estimated ones.
    """
    grads, hessians = linear_regression()[:2]
    exact = closed_forms(grads, hessians)
    G, H = exact["G"], exact["H"]
    eps_max = exact["norm_sq"] / exact["curvature"]
    b_noise = exact["trace_curvature"] / exact["curvature"]
    rng = np.random.default_rng(4)
    for batch in (4, 32, 256):
        g = draws_of(grads, rng, num_draws=20000, k=1, b=batch)[:, 0]
        linear, quadratic = (g @ G).mean(), np.einsum("ni,ij,nj->n", g, H, g).mean()
        best = linear / quadratic  # argmin of L - eps * linear + eps^2 / 2 * quadratic
        assert math.isclose(gs.eps_opt(batch, eps_max, b_noise), best, rel_tol=0.03), batch
    # From the estimators (independent Hessian batches), within their error.
    draws = [gs.curvature_draw(gr, lambda v, h=hessians[rng.integers(0, 400, 16)].mean(0): h @ v,
                               small_batch=8)
             for gr in draws_of(grads, rng, num_draws=3000, k=4, b=8)]
    scales = gs.noise_scales(draws)
    assert math.isclose(scales.eps_opt(32), gs.eps_opt(32, eps_max, b_noise), rel_tol=0.1)
    assert math.isclose(scales.eps_opt(32, momentum=0.9), 0.1 * scales.eps_opt(32))
    np.testing.assert_allclose(gs.eps_opt(np.array([1.0, 1e9]), 2.0, 10.0), [2 / 11, 2.0],
                               rtol=1e-8)


def test_gauss_newton_fallback_where_the_curvature_along_g_is_not_positive():
    g = [np.array([[2.0, 1.0], [2.0, -1.0]])] * 3
    with pytest.raises(gs.GradientStatisticsError, match="not positive.*gauss_newton"):
        gs.estimate_noise_scales(g, lambda v: -v, small_batch=4)
    s = gs.estimate_noise_scales(g, lambda v: -v, small_batch=4, gauss_newton=lambda v: 2 * v)
    assert s.product == "gauss_newton" and s.curvature > 0
    assert math.isclose(s.b_noise, s.b_simple)
    plain = gs.estimate_noise_scales(g, lambda v: 2 * v, small_batch=4, gauss_newton=None)
    assert plain.product == "hessian"


def test_moving_averages_are_bias_corrected_and_resume_exactly():
    rng = np.random.default_rng(5)
    small = rng.uniform(2.0, 4.0, size=50)
    big = small * rng.uniform(0.3, 0.6, size=50)
    stats = gs.NoiseStatistics(small_batch=8, big_batch=32, decay=0.9)
    for s, b in zip(small[:20], big[:20]):
        stats.update(s, b)
    resumed = gs.NoiseStatistics.from_state(dict(stats.state()))
    for s, b in zip(small[20:], big[20:]):
        stats.update(s, b)
        resumed.update(s, b)
    assert resumed.state() == stats.state()  # bit for bit
    norm_sq, trace = gs.two_batch_estimates(small, big, 8, 32)
    weights = 0.1 * 0.9 ** np.arange(49, -1, -1)
    weights /= weights.sum()
    assert math.isclose(stats.norm_sq, weights @ norm_sq, rel_tol=1e-12)
    assert math.isclose(stats.trace, weights @ trace, rel_tol=1e-12)
    assert math.isclose(stats.b_simple, (weights @ trace) / (weights @ norm_sq), rel_tol=1e-12)
    stats.update(float("nan"), 1.0)  # a skipped step changes nothing
    assert stats.count == 50
    assert gs.NoiseStatistics(8, 32).values() == {
        "grad_norm_sq": None, "trace_sigma": None, "b_simple": None, "b_simple_stderr": None}


def test_the_moving_average_error_matches_the_spread_of_independent_runs():
    grads = linear_regression().grads
    exact = closed_forms(grads, np.zeros((1, 4, 4)))
    rng = np.random.default_rng(6)
    finals, errors = [], []
    for _ in range(150):
        stats = gs.NoiseStatistics(small_batch=32, big_batch=128, decay=0.95)
        small = draws_of(grads, rng, num_draws=200, k=4, b=32)
        for s, b in zip(np.mean(np.sum(small ** 2, axis=2), axis=1),
                        np.sum(small.mean(axis=1) ** 2, axis=1)):
            stats.update(s, b)
        finals.append(stats.b_simple)
        errors.append(stats.b_simple_stderr)
    spread = np.std(finals, ddof=1)
    assert 0.8 < np.mean(errors) / spread < 1.25, (np.mean(errors), spread)
    assert abs(np.mean(finals) - exact["trace"] / exact["norm_sq"]) < 4 * spread / math.sqrt(150)


@pytest.mark.parametrize("call, match", [
    (lambda: gs.two_batch_estimates(1.0, 1.0, 8, 8), r"big_batch > small_batch.*small_batch=8"),
    (lambda: gs.two_batch_estimates(1.0, 1.0, 0, 8), r"small_batch.*Received: small_batch=0"),
    (lambda: gs.NoiseStatistics(8, 16, decay=1.0), r"decay.*\[0, 1\).*decay=1.0"),
    (lambda: gs.curvature_draw(np.ones(3), lambda v: v, small_batch=2), r"\[k, n\].*\(3,\)"),
    (lambda: gs.curvature_draw(np.ones((2, 3)), lambda v: v[:2], small_batch=2),
     r"length 3.*\(2,\)"),
    (lambda: gs.eps_opt(0, 1.0, 1.0), r"batch_size.*batch_size=0"),
    (lambda: gs.eps_opt(8, -1.0, 1.0), r"eps_max.*eps_max=-1.0"),
    (lambda: gs.eps_opt(8, 1.0, 1.0, momentum=1.0), r"momentum.*momentum=1.0"),
    (lambda: gs.noise_scales([]), r"CurvatureDraw"),
    (lambda: gs.NoiseStatistics(8, 16).load_state({"decay": 0.99}), r"without \['big_batch'"),
    (lambda: gs.NoiseStatistics(8, 16).load_state(gs.NoiseStatistics(4, 16).state()),
     r"small_batch=8.0.*small_batch=4.0"),
])
def test_bad_input_names_what_was_received(call, match):
    with pytest.raises(gs.GradientStatisticsError, match=match):
        call()
