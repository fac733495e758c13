"""Linear and softmax regression with exact per-example gradients, Hessians and covariance.

A finite population of `n` examples sampled with replacement makes every
statistic exact: the per-example gradients `g_i` give `G = mean g_i`,
`Sigma = mean (g_i - G)(g_i - G)^T` (the 1/n covariance: a batch of `b` draws
with replacement has covariance exactly `Sigma / b`) and the Hessian `H` the
mean per-example Hessian. The inputs have spread scales, so `H` is far from a
multiple of the identity and `B_noise = tr(H Sigma) / G^T H G` differs from
`B_simple = tr(Sigma) / |G|^2` by a factor the closed forms give.

Shared by the tests of the estimators (NumPy draws) and of
`tfgap.advisor.measure_noise_scales` (the same problems as Keras models: a
bias-free `Dense` layer whose kernel is `w`, flattened row-major).
"""

import math
from typing import NamedTuple

import numpy as np

SCALES = np.array([3.0, 1.0, 0.3, 0.1])


class Problem(NamedTuple):
    grads: np.ndarray      # [n, d] per-example gradients
    hessians: np.ndarray   # [n, d, d] per-example Hessians
    x: np.ndarray          # [n, 4] inputs
    y: np.ndarray          # [n] targets (floats) or labels (ints)
    w: np.ndarray          # the weights: [4] or [4, classes]


def linear_regression(seed=0, n=400):
    """Least squares, `loss_i = (x_i w - y_i)^2 / 2`, away from the optimum."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 4)) * SCALES
    y = x @ np.array([1.0, -2.0, 3.0, 0.5]) + rng.normal(size=n)
    # Away from the optimum along flat directions (G = H (w - w*) lies where H is small)
    # while the noise follows the sharp ones: B_noise = 4.3 B_simple.
    w = np.array([1.0, -2.0, 3.0, 0.5]) + np.array([0.0, 0.5, 0.0, 2.0])
    residual = x @ w - y
    return Problem(x * residual[:, None], x[:, :, None] * x[:, None, :], x, y, w)


def softmax_regression(seed=0, n=300, classes=3):
    """Softmax regression (mean cross-entropy of `x w`), weights `[4, classes]`."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 4)) * SCALES
    y = rng.integers(0, classes, size=n)
    w = rng.normal(size=(4, classes)) * 0.5
    p = softmax(x @ w)
    delta = p - np.eye(classes)[y]
    grads = (x[:, :, None] * delta[:, None, :]).reshape(n, -1)
    hessians = np.einsum("ni,nj,nab->niajb", x, x, output_hessians(p)).reshape(
        n, 4 * classes, 4 * classes)
    return Problem(grads, hessians, x, y, w)


def softmax(logits):
    p = np.exp(logits - logits.max(axis=1, keepdims=True))
    return p / p.sum(axis=1, keepdims=True)


def softmax_l2_gradient(w, b, x, y, l2):
    """Gradient of mean CE(softmax(x w + b), y) + l2 |w|^2, flattened (w then b)."""
    p = softmax(x @ w + b)
    p[np.arange(len(y)), y] -= 1.0
    return np.concatenate([(x.T @ p / len(y) + 2 * l2 * w).ravel(), p.mean(axis=0)])


def output_hessians(p):
    """`diag(p) - p p^T` per example: the cross-entropy's Hessian in the logits."""
    return p[:, :, None] * np.eye(p.shape[1]) - p[:, :, None] * p[:, None, :]


def closed_forms(grads, hessians):
    G = grads.mean(axis=0)
    centred = grads - G
    sigma = centred.T @ centred / len(grads)
    H = hessians.mean(axis=0)
    return dict(norm_sq=G @ G, trace=np.trace(sigma), curvature=G @ H @ G,
                trace_curvature=np.trace(H @ sigma), G=G, H=H, sigma=sigma)


def draws_of(grads, rng, *, num_draws, k, b):
    """`[num_draws, k, d]` small-batch mean gradients (draws with replacement)."""
    index = rng.integers(0, len(grads), size=(num_draws, k, b))
    return grads[index].mean(axis=2)


def within(mean, sd, count, expected, sigmas=4.0):
    stderr = sd / math.sqrt(count)
    assert abs(mean - expected) <= sigmas * stderr, (mean, expected, stderr)
