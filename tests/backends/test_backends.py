"""tfgap on the TensorFlow, JAX and PyTorch backends of Keras, against NumPy.

Keras picks its backend when it is imported, so each backend runs
`tests/backends/run_checks.py` in its own process (the three in parallel);
this module compares what each wrote with float64 NumPy references computed
here, independently of tfgap, and the backends with each other.

Tolerances (float32 models): 1e-5 relative for the schedules, optimizer
steps, fits and weight distances against NumPy (a few float32 roundings per
step); 1e-4 for the Hessian eigenvalue (power iteration stops at a 1e-7
relative change) and the classifier's loss; Ghost Batch Normalization's
moving statistics 1e-5 (1e-6 absolute), its outputs 1e-4 (1e-5 absolute)
and its gradients 1e-4 against the NumPy loop of `tests/layers/reference.py`
and the closed-form backward pass; across backends 1e-5, except sharpness
(an L-BFGS-B maximization whose float32 gradients differ in the last bits:
1e-4), with 1e-5 absolute for normalized values and their gradients (near
zero they come from cancelling sums, summed in a different order on each
backend).

The JAX process gets two CPU devices (`XLA_FLAGS`) for the
`keras.distribution.DataParallel` checks.

A backend whose package is not installed is skipped with the reason, except
on CI (`CI` set), where every backend must run.
"""

import importlib.util
import itertools
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from tests.backends import problems as P
from tests.layers.reference import ghost_bn_reference
from tests.optimizers.reference import lars_reference

BACKENDS = ("tensorflow", "jax", "torch")
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TIMEOUT_S = 600


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """backend -> its results dict, or a string saying why there is none."""
    out_dir = tmp_path_factory.mktemp("backends")
    processes = {}
    outcome = {}
    for backend in BACKENDS:
        if importlib.util.find_spec(backend) is None:
            outcome[backend] = f"missing: the {backend!r} package is not installed"
            continue
        env = dict(os.environ, KERAS_BACKEND=backend, JAX_PLATFORMS="cpu",
                   TF_CPP_MIN_LOG_LEVEL="2")
        if backend == "jax":  # two CPU devices, for keras.distribution.DataParallel
            env["XLA_FLAGS"] = (env.get("XLA_FLAGS", "") + " "
                                + "--xla_force_host_platform_device_count=2").strip()
        path = out_dir / f"{backend}.json"
        log = open(out_dir / f"{backend}.log", "w+")
        processes[backend] = (subprocess.Popen(
            [sys.executable, "-m", "tests.backends.run_checks", str(path)],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT), path, log)
    for backend, (process, path, log) in processes.items():
        try:
            code = process.wait(timeout=TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            code = "timeout"
        log.seek(0)
        if code == 0:
            with open(path) as f:
                outcome[backend] = json.load(f)
        else:
            outcome[backend] = f"failed ({code}):\n{log.read()[-6000:]}"
        log.close()
    return outcome


def result(runs, backend):
    value = runs[backend]
    if isinstance(value, str):
        if value.startswith("missing") and not os.environ.get("CI"):
            pytest.skip(f"{value}; `pip install -e .[test]` installs it")
        pytest.fail(f"{backend}: {value}")
    return value


def close(actual, expected, rtol, atol=0.0):
    np.testing.assert_allclose(np.asarray(actual, np.float64), np.asarray(expected, np.float64),
                               rtol=rtol, atol=atol)


# -- NumPy references (float64, from the formulas) ----------------------------

def least_squares_gradient(x, y, w):
    """Gradient of mean((x w - y)^2) over all entries, w of shape (p, k)."""
    r = x @ w - y
    return 2.0 * x.T @ r / r.size, 2.0 * r.sum(axis=0) / r.size


def sgd_trajectory(x, y, w0, batches, rates, momentum=0.0):
    """Keras SGD (v = m v - lr g; w += v) over consecutive batches; all weights."""
    x, y = np.float64(x), np.float64(y)
    w, v = np.float64(w0), 0.0
    trajectory, start = [w.copy()], 0
    for size, lr in zip(batches, rates):
        if start >= len(x):
            start = 0  # next epoch, unshuffled
        xb, yb = x[start:start + size], y[start:start + size]
        start += size
        v = momentum * v - lr * least_squares_gradient(xb, yb, w)[0]
        w = w + v
        trajectory.append(w.copy())
    return trajectory


def lars_fit_reference():
    x, y, kernel, bias = (np.float64(a) for a in P.lars_fit_data())
    args = P.LARS_FIT_ARGS
    w, v = [kernel, bias], [np.zeros_like(kernel), np.zeros_like(bias)]
    for _epoch in range(2):
        for start in (0, 8):
            xb, yb = x[start:start + 8], y[start:start + 8]
            grads = least_squares_gradient(xb, yb - w[1], w[0])  # x W + b - y
            for i, (g, adapt) in enumerate(zip(grads, (True, False))):  # bias: rank 1
                trust = 1.0
                if adapt:
                    g = g + args["weight_decay"] * w[i]
                    trust = args["eta"] * np.linalg.norm(w[i]) / np.linalg.norm(g)
                v[i] = args["momentum"] * v[i] + args["learning_rate"] * trust * g
                w[i] = w[i] - v[i]
    return w


def noise_reference(x, y, w):
    x, y, w = np.float64(x), np.float64(y), np.float64(w)
    g = 2.0 * (x @ w - y) * x  # per-example gradients of (x_i w - y_i)^2
    trace = g.var(axis=0, ddof=1).sum()
    mean = g.mean(axis=0)
    norm_sq = mean @ mean - trace / len(g)
    return [trace, norm_sq, trace / norm_sq]


def mse(x, y, w):
    return float(np.mean((np.float64(x) @ np.float64(w).reshape(-1, 1) - y) ** 2))


def exact_box_sharpness(x, y, w0, epsilon):
    w0 = np.float64(w0).ravel()
    f0 = mse(x, y, w0)
    bound = epsilon * (np.abs(w0) + 1.0)
    best = max(mse(x, y, w0 + np.array(s) * bound)
               for s in itertools.product([-1.0, 1.0], repeat=len(w0)))
    return 100.0 * (best - f0) / (1.0 + f0)


def classifier_reference():
    x, labels, sb, lb = P.classifier_data_and_weights()
    losses, accuracies = [], []
    for alpha in P.ALPHAS:
        w = []
        for a, b, trainable in zip(sb, lb, P.CLS_TRAINABLE):
            t = alpha if trainable else min(max(alpha, 0.0), 1.0)
            w.append(t * np.float64(b) + (1.0 - t) * np.float64(a))
        k1, b1, gamma, beta, mean, var, k2, b2 = w
        h = x @ k1 + b1
        h = (h - mean) / np.sqrt(var + P.BN_EPSILON) * gamma + beta
        logits = h @ k2 + b2
        log_softmax = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
        losses.append(-log_softmax[np.arange(len(x)), labels].mean())
        accuracies.append(np.mean(logits.argmax(axis=1) == labels))
    return losses, accuracies


# -- per backend against NumPy -----------------------------------------------

@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_import_tfgap_does_not_import_tensorflow(runs, backend):
    assert result(runs, backend)["tensorflow_imported_by_tfgap"] is False


@pytest.mark.parametrize("backend", BACKENDS)
def test_lazy_and_tensorflow_only_attributes(runs, backend):
    r = result(runs, backend)["imports"]
    assert (r["layer"], r["ghostify"], r["models"]) == (
        "GhostBatchNormalization", "ghostify", "tfgap.models")
    if backend == "tensorflow":
        assert r["sam"] == "SAM" and r["require_tensorflow"] == "passed"
    else:
        for key, what in (("sam", "tfgap.SAM"), ("require_tensorflow", "tfgap.training")):
            assert r[key].startswith(f"ImportError: {what} needs the TensorFlow backend")
            assert f"KERAS_BACKEND is {backend!r}" in r[key]


@pytest.mark.parametrize("backend", BACKENDS)
def test_large_batch_schedule_and_weight_distance_through_fit(runs, backend):
    r = result(runs, backend)["schedule"]
    close(r["rates"], P.SCHEDULE_RATES, rtol=1e-6)
    x, y, w0 = P.fit_data()
    steps = P.FIT_N // P.SCHEDULE_FIT["batch_size"] * P.SCHEDULE_FIT["epochs"]
    trajectory = sgd_trajectory(x, y, w0, [P.SCHEDULE_FIT["batch_size"]] * steps,
                                P.SCHEDULE_RATES[:steps])
    assert r["iterations"] == steps
    close(r["fit_kernel"], trajectory[-1], rtol=1e-5)
    distance = [float(np.linalg.norm(w - trajectory[0])) for w in trajectory]
    assert r["wd_steps"] == [1, 2, 3, 4, 6, 7, 8, 10]
    close(r["wd_distances"], [distance[t] for t in r["wd_steps"]], rtol=1e-5, atol=1e-7)
    close(r["wd_epoch_logs"], [distance[4], distance[8], distance[12]], rtol=1e-5)


@pytest.mark.parametrize("backend", BACKENDS)
def test_batch_size_phases_through_fit(runs, backend):
    r = result(runs, backend)["batch_size_phases"]
    assert r["phases"] == [[b, pytest.approx(lr)] for b, lr in zip(P.PHASE_BATCHES,
                                                                      P.PHASE_RATES)]
    assert r["history_batch_size"] == P.PHASE_BATCHES and r["epochs"] == [0, 1, 2]
    batches, rates = [], []
    for size, lr in zip(P.PHASE_BATCHES, P.PHASE_RATES):
        batches += [size] * (P.FIT_N // size)
        rates += [lr] * (P.FIT_N // size)
    assert r["iterations"] == list(np.cumsum([P.FIT_N // b for b in P.PHASE_BATCHES]))
    x, y, w0 = P.fit_data()
    expected = sgd_trajectory(x, y, w0, batches, rates, momentum=P.PHASE_MOMENTUM)[-1]
    close(r["kernel"], expected, rtol=1e-5)


@pytest.mark.parametrize("backend", BACKENDS)
def test_lars_steps_and_fit(runs, backend):
    r = result(runs, backend)["lars"]
    initial, grads = P.lars_variables_and_gradients()
    mask = [True, True, False, False]  # exclude_1d: bias and gamma are rank 1
    args = P.LARS_ARGS
    for nesterov in (False, True):
        expected = lars_reference(initial, grads, [args["learning_rate"]] * P.LARS_STEPS,
                                  args["momentum"], args["eta"], args["weight_decay"],
                                  nesterov, decays=mask, adapts=mask)
        for actual, want in zip(r[f"nesterov_{nesterov}"], expected):
            close(actual, want, rtol=2e-5, atol=1e-6)
    for actual, want in zip(r["fit_weights"], lars_fit_reference()):
        close(actual, want, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("backend", BACKENDS)
def test_diagnostics(runs, backend):
    r = result(runs, backend)["diagnostics"]
    x, y = P.diag_data()
    hessian = 2.0 * np.float64(x).T @ np.float64(x) / len(x)
    assert r["eigenvalue"] == pytest.approx(np.linalg.eigvalsh(hessian).max(), rel=1e-4)
    penalized = hessian + 0.1 * np.eye(P.DIAG_P)  # L2(0.05): 0.05 |w|^2
    assert r["eigenvalue_l2"] == pytest.approx(np.linalg.eigvalsh(penalized).max(), rel=1e-4)
    # 20 Rademacher samples: within 4 standard deviations of the trace.
    std = np.sqrt(2.0 * (np.sum(hessian**2) - np.sum(np.diag(hessian) ** 2)) / 20)
    assert abs(r["trace_seeded"] - np.trace(hessian)) <= 4.0 * std
    xd, _ = P.diagonal_hessian_data()
    trace = np.trace(2.0 * np.float64(xd).T @ np.float64(xd) / len(xd))
    assert r["trace_diagonal"] == pytest.approx(trace, rel=1e-5)  # exact for a diagonal H

    w_min = np.linalg.lstsq(np.float64(x), np.float64(y), rcond=None)[0]
    exact = exact_box_sharpness(x, y, w_min.astype("float32"), 1e-2)
    assert 0.5 * exact <= r["sharpness"] <= exact * (1 + 1e-4)
    assert 0.0 <= r["sharpness_subspace"] <= exact * (1 + 1e-4)
    assert r["sharpness_restored"] and r["classifier_restored"]

    xn, yn = P.diag_data(n=P.NOISE_N, p=4, noise=1.0)
    noise = noise_reference(xn, yn, np.full((4, 1), 0.5))
    close(r["noise"], noise, rtol=1e-5)

    w_sb = w_min.astype("float32").ravel()
    w_lb = np.array([1.0, -2.0, 0.5, 3.0, 0.0], "float32")
    expected = [mse(x, y, a * np.float64(w_lb) + (1 - a) * np.float64(w_sb)) for a in P.ALPHAS]
    close(r["interpolation_loss"], expected, rtol=1e-5)
    losses, accuracies = classifier_reference()
    close(r["classifier_loss"], losses, rtol=1e-4)
    assert r["classifier_accuracy"] == accuracies


@pytest.mark.parametrize("backend", BACKENDS)
def test_noise_scale_callback_and_dataset_input(runs, backend):
    r = result(runs, backend)
    xn, yn = P.diag_data(n=P.NOISE_N, p=4, noise=1.0)
    w0 = np.full((4, 1), 0.5)
    kernel = sgd_trajectory(xn, yn, w0, [8] * 4, [0.01] * 4)[-1]
    close(r["noise_callback"]["kernel"], kernel, rtol=1e-5)
    # Logged at the end of the epoch: the exact per-example statistic there.
    close(r["noise_callback"]["logged"], [noise_reference(xn, yn, kernel)[2]], rtol=1e-4)
    close(r["dataset_input"]["noise_b_simple"], noise_reference(xn, yn, w0)[2], rtol=1e-5)


@pytest.mark.parametrize("backend", BACKENDS)
def test_docstring_examples(runs, backend):
    r = result(runs, backend)["docstrings"]
    failed = {name: counts for name, counts in r.items() if counts[0] == 0 or counts[1]}
    assert not failed, f"(attempted, failed) on {backend}: {failed}"


# -- tfgap.layers (GhostBatchNormalization, ghostify) and tfgap.models ----------

def gbn_gradient_reference(x, mask, axis, virtual_batch_size, gamma, epsilon, upstream):
    """d sum(upstream * GBN(x)) / d (x, gamma, beta), from the closed form.

    Per ghost and channel, with weights w (1 unmasked, 0 masked), n = sum w,
    x_hat = (x - mu) / sqrt(var + eps) over all values and g the upstream
    gradient: dx = gamma / sqrt(var + eps) * (g - w / n * (sum g + x_hat *
    sum g x_hat)), d gamma = sum g x_hat, d beta = sum g (sums over the ghost).
    """
    x, g = np.float64(x), np.float64(upstream)
    rank = x.ndim
    channel = axis % rank
    reduce = tuple(a for a in range(rank) if a != channel)
    shape = [1] * rank
    shape[channel] = -1
    w = (np.ones_like(x) if mask is None
         else np.broadcast_to(np.asarray(mask)[..., None], x.shape).astype(np.float64))
    dx = np.empty_like(x)
    dgamma = np.zeros(x.shape[channel])
    dbeta = np.zeros(x.shape[channel])
    for start in range(0, len(x), virtual_batch_size):
        part = slice(start, start + virtual_batch_size)
        xs, ws, gs = x[part], w[part], g[part]
        n = ws.sum(axis=reduce).reshape(shape)
        safe = np.maximum(n, 1.0)
        mu = (ws * xs).sum(axis=reduce).reshape(shape) / safe
        var = (ws * (xs - mu) ** 2).sum(axis=reduce).reshape(shape) / safe
        inv = 1.0 / np.sqrt(var + epsilon)
        x_hat = (xs - mu) * inv
        sum_g = gs.sum(axis=reduce).reshape(shape)
        sum_gx = (gs * x_hat).sum(axis=reduce).reshape(shape)
        dx[part] = np.reshape(gamma, shape) * inv * (gs - ws / safe * (sum_g + x_hat * sum_gx))
        dgamma += sum_gx.ravel()
        dbeta += sum_g.ravel()
    return dx, dgamma, dbeta


@pytest.mark.parametrize("case", sorted(P.GBN_CASES))
@pytest.mark.parametrize("backend", BACKENDS)
def test_ghost_batch_normalization(runs, backend, case):
    r = result(runs, backend)["gbn"][case]
    shape, axis, virtual_batch_size, moving_update, _ = P.GBN_CASES[case]
    x, mask, gamma, beta, mm, mv, upstream = P.gbn_case(case)
    expected, new_mm, new_mv = ghost_bn_reference(
        x, virtual_batch_size, axis=axis, gamma=gamma, beta=beta, moving_mean=mm,
        moving_variance=mv, momentum=P.GBN_MOMENTUM, epsilon=P.GBN_EPSILON,
        moving_update=moving_update, mask=mask)
    close(r["outputs"], expected, rtol=1e-4, atol=1e-5)
    close(r["moving_mean"], new_mm, rtol=1e-5, atol=1e-6)
    close(r["moving_variance"], new_mv, rtol=1e-5, atol=1e-6)
    stat_shape = [1] * len(shape)
    stat_shape[axis] = -1
    inference = (np.reshape(gamma, stat_shape) * (x - new_mm.reshape(stat_shape))
                 / np.sqrt(new_mv.reshape(stat_shape) + P.GBN_EPSILON)
                 + np.reshape(beta, stat_shape))
    close(r["inference"], inference, rtol=1e-4, atol=1e-5)
    size = min(virtual_batch_size, shape[0])
    for name, want in zip(("grad_x", "grad_gamma", "grad_beta"), gbn_gradient_reference(
            x, mask, axis, size, gamma, P.GBN_EPSILON, upstream)):
        close(r[name], want, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("backend", BACKENDS)
def test_ghost_size_covering_the_batch_is_batch_normalization(runs, backend):
    # Masked, on this backend: GBN and keras.layers.BatchNormalization agree
    # in training outputs, moving statistics, gradients and inference.
    r = result(runs, backend)["gbn"]
    for key, value in r["keras_batch_normalization"].items():
        close(r["covers_batch_masked"][key], value, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("backend", BACKENDS)
def test_gbn_behind_masking_embedding_through_fit(runs, backend):
    r = result(runs, backend)["gbn_fit"]
    tokens, _, table, _, _ = P.embedding_fit_data()
    mm, mv = np.zeros(P.EMB_WIDTH), np.ones(P.EMB_WIDTH)
    for start in range(0, P.EMB_N, P.EMB_BATCH):  # the frozen embedding: fixed GBN inputs
        part = tokens[start:start + P.EMB_BATCH]
        _, mm, mv = ghost_bn_reference(
            table[part], P.EMB_GHOST, axis=-1, gamma=np.ones(P.EMB_WIDTH),
            beta=np.zeros(P.EMB_WIDTH), moving_mean=mm, moving_variance=mv,
            momentum=P.GBN_MOMENTUM, epsilon=P.GBN_EPSILON, moving_update="sequential",
            mask=part != 0)
    close(r["embedding_moving_mean"], mm, rtol=1e-5, atol=1e-6)
    close(r["embedding_moving_variance"], mv, rtol=1e-5, atol=1e-6)
    assert np.isfinite(r["embedding_loss"]).all()


@pytest.mark.parametrize("backend", BACKENDS)
def test_ghostify(runs, backend):
    r = result(runs, backend)["gbn_fit"]
    assert r["ghostify_type"] == "GhostBatchNormalization"
    x, _, (k1, b1, gamma, beta, mean, var, k2, b2) = P.ghostify_data()
    h = np.float64(x) @ k1 + b1
    logits = (gamma * (h - mean) / np.sqrt(var + 1e-3) + beta) @ k2 + b2  # BN's epsilon
    close(r["ghostify_base_outputs"], logits, rtol=1e-5, atol=1e-6)
    close(r["ghostify_outputs"], logits, rtol=1e-5, atol=1e-6)
    _, new_mean, new_var = ghost_bn_reference(
        h, P.GBN_GHOST, axis=-1, gamma=gamma, beta=beta, moving_mean=mean, moving_variance=var,
        momentum=0.99, epsilon=1e-3, moving_update="sequential")  # BN's momentum
    close(r["ghostify_moving_mean"], new_mean, rtol=1e-5, atol=1e-6)
    close(r["ghostify_moving_variance"], new_var, rtol=1e-5, atol=1e-6)


def test_data_parallel_on_jax_each_device_ghosts_its_shard(runs):
    r = result(runs, "jax")["data_parallel"]
    assert r["devices"] >= P.DP_DEVICES, "XLA_FLAGS did not give JAX two CPU devices"
    for name, (per_device, moving_update) in P.DP_CASES.items():
        x, mask = P.data_parallel_data(per_device)
        batch = P.DP_DEVICES * per_device

        def reference(data, mm, mv, shards, mask=None):
            return ghost_bn_reference(
                data, P.GBN_GHOST, axis=-1, gamma=np.ones(3), beta=np.zeros(3),
                moving_mean=mm, moving_variance=mv, momentum=P.GBN_MOMENTUM,
                epsilon=P.GBN_EPSILON, moving_update=moving_update, mask=mask, shards=shards)

        stats = {}
        for shards in (P.DP_DEVICES, 1):
            mm, mv = np.zeros(3), np.ones(3)
            for start in range(0, len(x), batch):
                _, mm, mv = reference(x[start:start + batch], mm, mv, shards)
            stats[shards] = mm, mv
        close(r[name]["fit_moving_mean"], stats[P.DP_DEVICES][0], rtol=1e-5, atol=1e-6)
        close(r[name]["fit_moving_variance"], stats[P.DP_DEVICES][1], rtol=1e-5, atol=1e-6)
        # Ghosting the global batch would give other numbers: the check can fail.
        assert not np.allclose(stats[1][1], stats[P.DP_DEVICES][1], rtol=1e-3)

        assert r[name]["shards"] == P.DP_DEVICES
        outputs, mm, mv = reference(x[:batch], np.zeros(3), np.ones(3), P.DP_DEVICES, mask)
        close(r[name]["outputs"], outputs, rtol=1e-4, atol=1e-5)
        close(r[name]["moving_mean"], mm, rtol=1e-5, atol=1e-6)
        close(r[name]["moving_variance"], mv, rtol=1e-5, atol=1e-6)


def test_jax_compiled_step_has_no_gather_or_scatter_when_the_batch_divides(runs):
    # What keeps a JAX GBN step at plain BN's cost: the reshape path. A ragged
    # batch (segment sums) does scatter, so the check can fail.
    r = result(runs, "jax")["jax_hlo"]
    assert r["batch_16"] == {"gather": False, "scatter": False}
    assert r["batch_14"]["scatter"]


@pytest.mark.parametrize("backend", BACKENDS)
def test_models_with_gbn(runs, backend):
    r = result(runs, backend)["models"]
    assert sorted(r) == ["cnn1d", "mlp"]
    for name, values in r.items():
        assert np.isfinite(values["inference"]).all(), name
        assert np.isfinite(values.get("train_loss", 0.0)), name


# -- across backends -----------------------------------------------------------

_NOT_NUMBERS = {"backend", "jit_compile", "tensorflow_imported_by_tfgap", "import_seconds",
                "seconds", "cpu_seconds", "docstrings", "imports", "data_parallel", "jax_hlo"}
_LOOSER = {"diagnostics/sharpness": 1e-4, "diagnostics/sharpness_subspace": 1e-4}
# Normalized activations and their gradients are O(1) values computed from
# cancelling sums, in a different order on each backend: absolute tolerances.
_ATOL = {"gbn": 1e-5, "gbn_fit": 1e-6, "models": 1e-5}


def _numbers(tree, prefix=""):
    if isinstance(tree, dict):
        for key, value in tree.items():
            if key not in _NOT_NUMBERS:
                yield from _numbers(value, f"{prefix}{key}" if not prefix else f"{prefix}/{key}")
    elif isinstance(tree, list) and tree and isinstance(tree[0], list):
        try:
            np.asarray(tree, np.float64)
            yield prefix, tree
        except ValueError:  # arrays of different shapes (several variables)
            for i, value in enumerate(tree):
                yield from _numbers(value, f"{prefix}/{i}")
    else:
        yield prefix, tree


@pytest.mark.parametrize("pair", list(itertools.combinations(BACKENDS, 2)),
                         ids=lambda p: "-".join(p))
def test_backends_agree(runs, pair):
    first, second = (dict(_numbers(result(runs, b))) for b in pair)
    assert first.keys() == second.keys()
    for key in first:
        a, b = first[key], second[key]
        if isinstance(a, (str, bool)) or (isinstance(a, list) and a and isinstance(a[0], int)
                                   and not isinstance(a[0], bool)):
            assert a == b, key
            continue
        rtol = _LOOSER.get(key, 1e-5)
        atol = _ATOL.get(key.split("/")[0], 1e-7)
        np.testing.assert_allclose(np.asarray(a, np.float64), np.asarray(b, np.float64),
                                   rtol=rtol, atol=atol, err_msg=f"{key}: {pair}")
