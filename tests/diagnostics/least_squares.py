"""The least-squares reference problem of the diagnostics tests.

`f(w) = mean((X w - y)^2)` for `Dense(1, use_bias=False)` with MSE: gradient
`2 X^T (X w - y) / n`, Hessian `2 X^T X / n`; all computed here in float64
NumPy, independently of tfgap.
"""

import keras
import numpy as np


def make_problem(n=64, p=4, scale=1.0, noise=0.1, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, p)) * np.linspace(0.5, 2.0, p)
    w_true = rng.normal(size=(p, 1))
    y = x @ w_true + noise * rng.normal(size=(n, 1))
    return (scale * x).astype("float32"), (scale * y).astype("float32")


def make_model(p, weights=None, loss="mse"):
    model = keras.Sequential([keras.Input((p,)), keras.layers.Dense(1, use_bias=False)])
    if weights is not None:
        model.set_weights([np.asarray(weights, "float32").reshape(p, 1)])
    if loss is not None:
        model.compile(loss=loss)
    return model


def loss(x, y, w):
    x, y, w = (np.asarray(a, np.float64) for a in (x, y, w))
    r = x @ w.reshape(-1, 1) - y
    return float(np.mean(r**2))


def hessian(x):
    x = np.asarray(x, np.float64)
    return 2.0 * x.T @ x / len(x)


def minimizer(x, y):
    return np.linalg.lstsq(np.asarray(x, np.float64), np.asarray(y, np.float64), rcond=None)[0]


def per_example_gradients(x, y, w):
    x, y, w = (np.asarray(a, np.float64) for a in (x, y, w))
    r = x @ w.reshape(-1, 1) - y  # (n, 1)
    return 2.0 * r * x  # (n, p): gradient of (x_i w - y_i)^2
