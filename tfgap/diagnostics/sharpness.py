"""Keskar et al.'s eps-sharpness of a minimizer (metric 2.1)."""

import math

import numpy as np
import scipy.optimize

from tfgap.diagnostics import _evaluation

# The L-BFGS-B start: a uniform random point in this fraction of the box. At an
# exact minimum the gradient vanishes, so a start at the centre y = 0 would be a
# stationary point and the "maximum" found would be f(x) itself.
_START_FRACTION = 0.1


def sharpness(
    model,
    x,
    y=None,
    *,
    epsilon=1e-3,
    subspace_dim=None,
    max_iterations=10,
    seed=0,
    batch_size=None,
    loss=None,
):
    """Keskar et al.'s sharpness of the model's current weights, in percent.

    Large-batch training tends to land in sharp minimizers, where a small
    perturbation of the weights raises the loss a lot (Keskar et al. 2017).
    The metric maximizes the loss over a small box around the weights `x`,
    whose sides scale with each coordinate's magnitude:

    ```
    C_eps = { z in R^p : |z_i| <= eps * (|(A+ x)_i| + 1) }
    phi(eps, A) = 100 * (max_{y in C_eps} f(x + A y) - f(x)) / (1 + f(x))
    ```

    with `A` the identity (full space, `p = n` weights) or an `n x p` random
    matrix (`subspace_dim=p`) and `A+` its pseudo-inverse. The maximum is
    found inexactly, as in the paper, by `max_iterations` iterations of
    L-BFGS-B (scipy) started at a small random point of the box (a start at the
    centre of an exact minimum has zero gradient and would return 0). The
    largest loss seen at any evaluated point of the box is used, so the value
    is a lower bound of the true box maximum and is never negative.

    What is measured: `f` is the mean of the loss over ALL the given data (one
    pass per L-BFGS-B evaluation, in batches, accumulated in float64 on the
    host) plus `model.losses`; BatchNormalization uses its moving statistics
    (inference mode) and dropout is off. Only trainable weights are perturbed.
    The model's weights are restored bit for bit on return, also when an
    exception interrupts the computation.

    Random subspace: `A` is a uniformly random orthonormal basis of a
    `p`-dimensional subspace, the Q factor (`numpy.linalg.qr`) of an `n x p`
    matrix of i.i.d. standard normal entries drawn with
    `numpy.random.default_rng(seed)`; so `A+ = A^T` and `A+ x` is the
    projection of the weights. (With raw Gaussian columns, of norm about
    `sqrt(n)`, the subspace box would allow perturbations `sqrt(n)` times
    larger than the full-space one; Keskar's Table 4 values, all below Table
    3's, fit unit-scale columns.) `A` is held in memory (`8 * n * p` bytes).

    Paper: Keskar, Mudigere, Nocedal, Smelyanskiy & Tang, "On Large-Batch
    Training for Deep Learning: Generalization Gap and Sharp Minima", ICLR 2017
    (arXiv 1609.04836), metric 2.1; Tables 3 (full space, eps = 1e-3) and 4
    (100-dim random subspace).

    Args:
        model: a built Keras model; compiled with a loss unless `loss` is given.
        x: inputs (arrays, tensors or a dict), or a batched `tf.data.Dataset`
            yielding `(x, y)`. Use a fixed subset of the training data.
        y: targets when `x` is an array; None for a dataset.
        epsilon: the box size `eps` (> 0); the paper uses 1e-3 and 5e-4.
        subspace_dim: None for the full space, or `p` (1 <= p <= number of
            trainable weights) for a random subspace; the paper uses 100.
        max_iterations: L-BFGS-B iterations (the paper uses 10).
        seed: seed of the random start and of the random matrix.
        batch_size: batch size for array inputs (default: up to 1024). Must be
            None for a dataset.
        loss: a loss (string, `keras.losses.Loss` or callable `(y_true,
            y_pred)`) to use instead of the compiled one.

    Returns:
        The sharpness `phi(eps, A)` as a Python float (percent).

    Example:

    >>> import numpy as np, keras
    >>> x = np.random.default_rng(0).normal(size=(64, 4)).astype("float32")
    >>> y = x @ np.ones((4, 1), "float32")
    >>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    >>> model.compile(loss="mse")
    >>> phi = sharpness(model, x, y, epsilon=1e-3)
    >>> phi >= 0.0
    True
    """
    loss_fn = _evaluation.resolve_loss(model, loss)
    epsilon = float(epsilon)
    if not (epsilon > 0.0 and math.isfinite(epsilon)):
        raise ValueError(f"Expected a finite epsilon > 0; received epsilon={epsilon!r}.")
    max_iterations = int(max_iterations)
    if max_iterations < 1:
        raise ValueError(f"Expected max_iterations >= 1; received {max_iterations}.")
    dataset = _evaluation.as_dataset(x, y, batch_size)
    evaluator = _evaluation.LossEvaluator(model, loss_fn, dataset)
    n = evaluator.size
    if subspace_dim is not None:
        if (
            isinstance(subspace_dim, bool)
            or not isinstance(subspace_dim, (int, np.integer))
            or not 1 <= subspace_dim <= n
        ):
            raise ValueError(
                f"Expected subspace_dim None or an integer in [1, {n}] (the number of "
                f"trainable weights); received subspace_dim={subspace_dim!r}."
            )
        subspace_dim = int(subspace_dim)

    rng = np.random.default_rng(seed)
    saved = _evaluation.snapshot(evaluator.variables)
    try:
        x0 = evaluator.get_flat()
        if subspace_dim is None:
            matrix = None
            coords = x0
        else:
            # Orthonormal columns: A+ = A^T, and the box sides are on the scale
            # of the full-space ones (a Gaussian A would inflate |A y| by sqrt(n)).
            matrix = np.linalg.qr(rng.standard_normal((n, subspace_dim)))[0]
            coords = matrix.T @ x0
        bound = epsilon * (np.abs(coords) + 1.0)
        f0 = evaluator.value()
        best = [f0]

        def negative(y_vec):
            step = y_vec if matrix is None else matrix @ y_vec
            evaluator.set_flat(x0 + step)
            value, grad = evaluator.value_and_gradient()
            if math.isfinite(value):
                best[0] = max(best[0], value)
            if matrix is not None:
                grad = matrix.T @ grad
            return -value, -grad

        start = rng.uniform(-1.0, 1.0, size=bound.shape) * bound * _START_FRACTION
        scipy.optimize.minimize(
            negative,
            start,
            jac=True,
            method="L-BFGS-B",
            bounds=scipy.optimize.Bounds(-bound, bound),
            options={"maxiter": max_iterations},
        )
    finally:
        _evaluation.restore(evaluator.variables, saved)
    return float(100.0 * (best[0] - f0) / (1.0 + f0))
