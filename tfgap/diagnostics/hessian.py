"""Hessian curvature of the training loss: top eigenvalue and trace."""

import numpy as np

from tfgap.diagnostics import _evaluation


def hessian_top_eigenvalue(
    model,
    x,
    y=None,
    *,
    max_iterations=100,
    tolerance=1e-4,
    seed=0,
    batch_size=None,
    loss=None,
):
    """The largest-magnitude eigenvalue of the loss Hessian, by power iteration.

    For small `eps`, Keskar's eps-sharpness is governed by the curvature of the
    loss around the minimizer; the top eigenvalue of the Hessian `H` of the
    training loss with respect to the trainable weights is that curvature
    without a box or an optimizer. Power iteration needs only Hessian-vector
    products, computed exactly by double backpropagation (never forming `H`):

    ```
    v_0 ~ N(0, I) / ||.||,   v_{k+1} = H v_k / ||H v_k||,
    lambda_k = v_k . H v_k   (stop when |lambda_k - lambda_{k-1}| <= tol * |lambda_k|)
    ```

    Power iteration converges to the eigenvalue of largest magnitude; near a
    minimum that is the largest positive one. Same objective as `sharpness`:
    mean loss over all the given data in float64 plus `model.losses`,
    BatchNormalization in inference mode; the weights are not modified.

    Paper: the top Hessian eigenvalue as sharpness, e.g. Keskar et al. 2017
    (arXiv 1609.04836), section 2.1; Yao et al., "PyHessian", 2020.

    Args:
        model: a built Keras model; compiled with a loss unless `loss` is given.
        x: inputs, or a batched `tf.data.Dataset` yielding `(x, y)`.
        y: targets for array inputs; None for a dataset.
        max_iterations: the most power iterations (each one pass over the data).
        tolerance: relative change of the eigenvalue estimate that stops it.
        seed: seed of the random start vector.
        batch_size: batch size for array inputs (default: up to 1024).
        loss: a loss to use instead of the compiled one.

    Returns:
        The eigenvalue estimate as a Python float.

    Example:

    >>> import numpy as np, keras
    >>> x = np.diag([1.0, 2.0, 3.0]).astype("float32")
    >>> model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1, use_bias=False)])
    >>> model.compile(loss="mse")
    >>> round(hessian_top_eigenvalue(model, x, np.zeros((3, 1), "float32")), 3)  # 2*9/3
    6.0
    """
    max_iterations, tolerance = _check_positive(max_iterations, tolerance)
    evaluator = _evaluator(model, x, y, batch_size, loss)
    rng = np.random.default_rng(seed)
    v = rng.standard_normal(evaluator.size)
    v /= np.linalg.norm(v)
    eigenvalue = None
    for _ in range(max_iterations):
        hv = evaluator.hvp(v)
        new = float(v @ hv)
        norm = np.linalg.norm(hv)
        if norm == 0.0:
            return 0.0
        v = hv / norm
        if eigenvalue is not None and abs(new - eigenvalue) <= tolerance * abs(new):
            return new
        eigenvalue = new
    return eigenvalue


def hessian_trace(
    model,
    x,
    y=None,
    *,
    num_samples=100,
    seed=0,
    batch_size=None,
    loss=None,
):
    """Hutchinson's estimate of the trace of the loss Hessian.

    The trace is the sum of all curvatures (the Laplacian of the loss), a
    sharpness measure over every direction rather than the worst one.
    Hutchinson's estimator averages `v^T H v` over random Rademacher vectors
    (entries +1 or -1), whose expectation is exactly `tr(H)`:

    ```
    tr(H) ~= (1 / m) sum_{j=1..m} v_j^T H v_j,   v_j in {-1, +1}^n
    ```

    Its standard deviation is `sqrt(2 * sum_{i != k} H_ik^2 / m)` (zero for a
    diagonal Hessian). Same objective and conventions as
    `hessian_top_eigenvalue`; the weights are not modified.

    Paper: Hutchinson, "A stochastic estimator of the trace of the influence
    matrix for Laplacian smoothing splines", 1990; Yao et al., "PyHessian", 2020.

    Args:
        model: a built Keras model; compiled with a loss unless `loss` is given.
        x: inputs, or a batched `tf.data.Dataset` yielding `(x, y)`.
        y: targets for array inputs; None for a dataset.
        num_samples: the number `m` of random vectors (each one pass over the data).
        seed: seed of the random vectors.
        batch_size: batch size for array inputs (default: up to 1024).
        loss: a loss to use instead of the compiled one.

    Returns:
        The trace estimate as a Python float.

    Example:

    >>> import numpy as np, keras
    >>> x = np.diag([1.0, 2.0, 3.0]).astype("float32")
    >>> model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1, use_bias=False)])
    >>> model.compile(loss="mse")
    >>> round(hessian_trace(model, x, np.zeros((3, 1), "float32"), num_samples=4), 3)
    9.333
    """
    num_samples, _ = _check_positive(num_samples, 1.0, name="num_samples")
    evaluator = _evaluator(model, x, y, batch_size, loss)
    rng = np.random.default_rng(seed)
    total = 0.0
    for _ in range(num_samples):
        v = rng.choice([-1.0, 1.0], size=evaluator.size)
        total += float(v @ evaluator.hvp(v))
    return total / num_samples


def _evaluator(model, x, y, batch_size, loss):
    loss_fn = _evaluation.resolve_loss(model, loss)
    dataset = _evaluation.as_dataset(x, y, batch_size)
    return _evaluation.LossEvaluator(model, loss_fn, dataset)


def _check_positive(count, tolerance, name="max_iterations"):
    if int(count) != count or int(count) < 1:
        raise ValueError(f"Expected {name} to be an integer >= 1; received {count!r}.")
    if not float(tolerance) > 0.0:
        raise ValueError(f"Expected tolerance > 0; received {tolerance!r}.")
    return int(count), float(tolerance)
