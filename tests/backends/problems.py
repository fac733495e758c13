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


# Ghost Batch Normalization: momentum, epsilon and ghost size of every case.
GBN_MOMENTUM, GBN_EPSILON, GBN_GHOST = 0.8, 1e-3, 4
# name -> (input shape, axis, virtual_batch_size, moving_update, masked). The
# mask covers every axis but the last (as in BatchNormalization) and leaves
# ghost 1 fully masked.
GBN_CASES = {
    "masked_divisible": ((12, 5, 3), -1, GBN_GHOST, "sequential", True),  # reshape path
    "masked_ragged": ((10, 5, 3), -1, GBN_GHOST, "averaged", True),  # segment path
    "channels_first_ragged": ((10, 3, 2, 2), 1, GBN_GHOST, "full_batch", False),
    "covers_batch_masked": ((8, 5, 3), -1, 16, "sequential", True),  # = BatchNormalization
}


def gbn_case(name):
    """x, mask (or None), gamma, beta, moving mean, moving variance and the
    upstream gradient of one case of `GBN_CASES`."""
    shape, axis, _, _, masked = GBN_CASES[name]
    rng = np.random.default_rng(sorted(GBN_CASES).index(name))
    offsets = np.linspace(-3, 3, shape[0]).reshape((-1,) + (1,) * (len(shape) - 1))
    x = (rng.normal(size=shape) * 2.0 + offsets).astype("float32")
    mask = None
    if masked:
        mask = rng.uniform(size=shape[:-1]) < 0.6
        mask.reshape(shape[0], -1)[:, 0] = True
        if GBN_CASES[name][2] < shape[0]:
            mask[GBN_GHOST:2 * GBN_GHOST] = False
    channels = shape[axis]
    gamma = rng.uniform(0.5, 2.0, channels).astype("float32")
    beta = rng.normal(size=channels).astype("float32")
    moving_mean = rng.normal(size=channels).astype("float32")
    moving_variance = rng.uniform(0.5, 2.0, channels).astype("float32")
    upstream = rng.normal(size=shape).astype("float32")
    return x, mask, gamma, beta, moving_mean, moving_variance, upstream


# A frozen Embedding(mask_zero=True) -> GBN(ghost 3) -> Flatten -> Dense(2),
# fit on 16 sequences in two batches of 8 (ghosts of 3, 3 and 2).
EMB_N, EMB_LENGTH, EMB_VOCABULARY, EMB_WIDTH, EMB_BATCH, EMB_GHOST = 16, 5, 7, 3, 8, 3


def embedding_fit_data():
    """tokens (0 = padding; rows 3 to 5, a whole ghost, all padding), labels, the embedding
    table, and the Dense kernel and bias."""
    rng = np.random.default_rng(21)
    tokens = rng.integers(1, EMB_VOCABULARY, size=(EMB_N, EMB_LENGTH))
    tokens[:, 3:] *= rng.uniform(size=(EMB_N, 1)) < 0.5
    tokens[3:6] = 0
    labels = rng.integers(0, 2, size=EMB_N)
    table = rng.normal(size=(EMB_VOCABULARY, EMB_WIDTH)).astype("float32")
    kernel = (0.3 * rng.normal(size=(EMB_LENGTH * EMB_WIDTH, 2))).astype("float32")
    bias = np.zeros(2, "float32")
    return tokens.astype("int32"), labels.astype("int32"), table, kernel, bias


# ghostify: Dense(4) -> BatchNormalization -> Dense(2), ghost 4, one fit step
# on 12 examples (the norm layer's moving statistics come from the initial
# weights).
GHOSTIFY_N = 12


def ghostify_data():
    """x, y and the weights of the model (kernel, bias, gamma, beta, moving
    mean, moving variance, kernel, bias)."""
    rng = np.random.default_rng(22)
    x = rng.normal(size=(GHOSTIFY_N, 3)).astype("float32")
    y = rng.normal(size=(GHOSTIFY_N, 2)).astype("float32")
    weights = [
        rng.normal(size=(3, 4)), 0.1 * rng.normal(size=4), rng.uniform(0.5, 1.5, 4),
        0.1 * rng.normal(size=4), 0.1 * rng.normal(size=4), rng.uniform(0.5, 1.5, 4),
        rng.normal(size=(4, 2)), 0.1 * rng.normal(size=2),
    ]
    return x, y, [w.astype("float32") for w in weights]


# keras.distribution.DataParallel on JAX with two CPU devices: Dense after a
# GBN(ghost 4) fit on 2 batches of 2 x DP_PER_DEVICE examples, whose two halves
# (one per device) have very different statistics.
DP_DEVICES = 2
DP_CASES = {  # name -> (examples per device, moving_update)
    "reshape_sequential": (8, "sequential"),
    "segment_full_batch": (6, "full_batch"),  # ghosts 4 + 2 on each device
}


def data_parallel_data(per_device):
    rng = np.random.default_rng(23)
    batch = DP_DEVICES * per_device
    scale = np.repeat([1.0, 3.0, 0.5, 2.0], per_device)[:, None]
    shift = np.repeat([0.0, 5.0, -2.0, 1.0], per_device)[:, None]
    x = (rng.normal(size=(2 * batch, 3)) * scale + shift).astype("float32")
    mask = rng.uniform(size=batch) < 0.7  # examples kept in a direct call on x[:batch]
    return x, mask


def model_weights(shapes, seed=24):
    """Deterministic weights for a list of shapes (the same on every backend):
    kernels scaled by 1 / sqrt(fan-in), vectors (biases, norm parameters and
    statistics) in [0.5, 1.5]."""
    rng = np.random.default_rng(seed)
    return [(rng.normal(size=s) / np.sqrt(np.prod(s[:-1]))).astype("float32") if len(s) > 1
            else rng.uniform(0.5, 1.5, size=s).astype("float32") for s in shapes]
