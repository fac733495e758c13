"""The fixed problems of the multi-backend checks, in NumPy only.

Every backend's run (`run_checks.py`) and the NumPy references
(`test_backends.py`) build their data and initial weights from here, so the
same numbers go in everywhere.
"""

import numpy as np

# Least squares for the fits: 16 examples, 3 features, Dense(1, use_bias=False).
FIT_N, FIT_P = 16, 3

# LargeBatchSchedule(**SCHEDULE): multiplier sqrt(4 / 1) = 2, stretch 4,
# breakpoints round(1 * 4 * 2) = 8 and 16, warm-up round(1.0 * 2) = 2 steps.
SCHEDULE = dict(boundaries=[1, 2], values=[0.05, 0.02, 0.01], base_batch_size=1,
                batch_size=4, steps_per_epoch=2, scaling="sqrt", regime_adaptation=True,
                warmup_epochs=1.0)
SCHEDULE_STEPS = list(range(0, 21))
# By hand from the formulas of the docstring: 0.05 + (0.1 - 0.05) * t / 2 while
# t < 2, then 0.05 * 2 until step 8, 0.02 * 2 until step 16, 0.01 * 2 after.
SCHEDULE_RATES = [0.05, 0.075] + [0.1] * 6 + [0.04] * 8 + [0.02] * 5
SCHEDULE_FIT = dict(batch_size=4, epochs=3)  # 12 steps

# batch_size_phases(**PHASES): batch 4 at 0.05, batch 8 at 0.05, then batch 8
# (16 would pass the maximum) at 0.0125 * 8 / 4 = 0.025.
PHASES = dict(boundaries=[1, 2], values=[0.05, 0.025, 0.0125], base_batch_size=4,
              max_batch_size=8, epochs=3)
PHASE_BATCHES = [4, 8, 8]
PHASE_RATES = [0.05, 0.05, 0.025]
PHASE_MOMENTUM = 0.9

# LARS: the variables of tests/optimizers (two adapted, two 1-D excluded).
LARS_SHAPES = {"kernel": (3, 4), "conv_kernel": (2, 2, 3), "bias": (4,), "gamma": (4,)}
LARS_ARGS = dict(learning_rate=0.5, momentum=0.9, eta=0.02, weight_decay=5e-2)
LARS_STEPS = 4
# LARS in fit: Dense(2) with bias on 16 x 3 inputs, batch 8, 2 epochs.
LARS_FIT_ARGS = dict(learning_rate=0.1, momentum=0.9, eta=0.02, weight_decay=1e-2)

# The diagnostics' least squares (as tests/diagnostics/least_squares.py).
DIAG_N, DIAG_P = 64, 5
NOISE_N = 32
# The classifier of the interpolation: Dense(6) -> BatchNormalization -> Dense(3).
CLS_N, CLS_IN, CLS_HIDDEN, CLS_OUT = 40, 5, 6, 3
BN_EPSILON = 1e-3
ALPHAS = [-1.0, 0.0, 0.5, 1.0, 2.0]


def fit_data():
    rng = np.random.default_rng(10)
    x = rng.normal(size=(FIT_N, FIT_P)).astype("float32")
    y = (x @ np.array([[1.0], [-2.0], [0.5]]) + 0.1 * rng.normal(size=(FIT_N, 1)))
    w0 = (0.1 * rng.normal(size=(FIT_P, 1))).astype("float32")
    return x, y.astype("float32"), w0


def lars_fit_data():
    rng = np.random.default_rng(11)
    x = rng.normal(size=(FIT_N, FIT_P)).astype("float32")
    y = rng.normal(size=(FIT_N, 2)).astype("float32")
    kernel = rng.normal(size=(FIT_P, 2)).astype("float32")
    bias = (0.1 * rng.normal(size=(2,))).astype("float32")
    return x, y, kernel, bias


def lars_variables_and_gradients():
    rng = np.random.default_rng(0)
    initial = [rng.normal(size=s).astype("float32") for s in LARS_SHAPES.values()]
    rng = np.random.default_rng(1)
    grads = [[(rng.normal(size=s) * 0.5).astype("float32") for s in LARS_SHAPES.values()]
             for _ in range(LARS_STEPS)]
    return initial, grads


def diag_data(n=DIAG_N, p=DIAG_P, noise=0.1, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, p)) * np.linspace(0.5, 2.0, p)
    w_true = rng.normal(size=(p, 1))
    y = x @ w_true + noise * rng.normal(size=(n, 1))
    return x.astype("float32"), y.astype("float32")


def diagonal_hessian_data():
    q = np.linalg.qr(np.random.default_rng(1).normal(size=(32, 4)))[0]
    return (q * np.array([1.0, 2.0, 3.0, 4.0])).astype("float32"), np.zeros((32, 1), "float32")


def classifier_data_and_weights():
    """x, labels and two weight lists in `model.weights` order:
    kernel, bias, gamma, beta, moving_mean, moving_variance, kernel, bias."""
    rng = np.random.default_rng(5)
    x = rng.normal(size=(CLS_N, CLS_IN)).astype("float32")
    labels = rng.integers(0, CLS_OUT, size=CLS_N)

    def weights():
        return [
            rng.normal(size=(CLS_IN, CLS_HIDDEN)).astype("float32") * 0.7,
            rng.normal(size=(CLS_HIDDEN,)).astype("float32") * 0.1,
            rng.uniform(0.5, 1.5, size=(CLS_HIDDEN,)).astype("float32"),
            rng.normal(size=(CLS_HIDDEN,)).astype("float32") * 0.1,
            rng.normal(size=(CLS_HIDDEN,)).astype("float32"),
            rng.uniform(0.5, 2.0, size=(CLS_HIDDEN,)).astype("float32"),
            rng.normal(size=(CLS_HIDDEN, CLS_OUT)).astype("float32") * 0.7,
            rng.normal(size=(CLS_OUT,)).astype("float32") * 0.1,
        ]

    return x, labels, weights(), weights()


CLS_TRAINABLE = [True, True, True, True, False, False, True, True]
