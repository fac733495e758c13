"""Runs tfgap's backend-neutral API on the Keras backend of this process.

Usage (from the repository root; Keras reads the backend at import time):

    KERAS_BACKEND=jax python -m tests.backends.run_checks results.json

Writes a JSON of the numbers that `test_backends.py` compares with NumPy
references and across backends: the schedules (values, and through
`model.fit`), LARS (direct steps and through `model.fit`), the
`WeightDistance` and `GradientNoiseScale` callbacks, every diagnostic,
`GhostBatchNormalization` (directly, behind a masking `Embedding` in
`model.fit`, through `ghostify`, and on JAX under
`keras.distribution.DataParallel` when the process has two devices),
`tfgap.models`, and the docstring examples of those modules.
`model.fit` runs with `jit_compile=True` where Keras compiles (TensorFlow,
JAX); PyTorch runs eagerly.
"""

import doctest
import importlib
import json
import sys
import time

import numpy as np

_start = time.perf_counter()
import tfgap  # noqa: E402  (first: the import hygiene is measured on it)

TENSORFLOW_IMPORTED = "tensorflow" in sys.modules
IMPORT_SECONDS = time.perf_counter() - _start

import keras  # noqa: E402
from keras import ops  # noqa: E402

from tests.backends import problems as P  # noqa: E402
from tfgap import diagnostics, schedules  # noqa: E402
from tfgap.optimizers import LARS  # noqa: E402

BACKEND = keras.backend.backend()
JIT = BACKEND in ("tensorflow", "jax")


def as_list(a):
    return np.asarray(keras.ops.convert_to_numpy(a), np.float64).tolist()


def linear_model(p, kernel, units=1, bias=None, loss="mse", regularizer=None):
    model = keras.Sequential([
        keras.Input((p,)),
        keras.layers.Dense(units, use_bias=bias is not None, kernel_regularizer=regularizer),
    ])
    model.set_weights([kernel] + ([] if bias is None else [bias]))
    if loss is not None:
        model.compile(loss=loss)
    return model


class IterationsPerEpoch(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.values = []

    def on_epoch_end(self, epoch, logs=None):
        self.values.append(int(ops.convert_to_numpy(self.model.optimizer.iterations)))


def check_schedule():
    schedule = schedules.LargeBatchSchedule(**P.SCHEDULE)
    rates = [float(ops.convert_to_numpy(schedule(step))) for step in P.SCHEDULE_STEPS]
    x, y, w0 = P.fit_data()
    model = linear_model(P.FIT_P, w0, loss=None)
    model.compile(optimizer=keras.optimizers.SGD(schedules.LargeBatchSchedule(**P.SCHEDULE)),
                  loss="mse", jit_compile=JIT)
    wd = diagnostics.WeightDistance()
    history = model.fit(x, y, shuffle=False, verbose=0, callbacks=[wd], **P.SCHEDULE_FIT)
    return {
        "rates": rates,
        "fit_kernel": as_list(model.get_weights()[0]),
        "wd_steps": wd.steps,
        "wd_distances": wd.distances,
        "wd_epoch_logs": history.history["weight_distance"],
        "iterations": int(ops.convert_to_numpy(model.optimizer.iterations)),
    }


def check_batch_size_phases():
    phases = schedules.batch_size_phases(**P.PHASES)
    x, y, w0 = P.fit_data()
    model = linear_model(P.FIT_P, w0, loss=None)
    model.compile(optimizer=keras.optimizers.SGD(0.05, momentum=P.PHASE_MOMENTUM),
                  loss="mse", jit_compile=JIT)
    iterations = IterationsPerEpoch()
    history = schedules.fit_batch_size_schedule(
        model, (x, y), phases, shuffle=False, verbose=0, callbacks=[iterations])
    return {
        "phases": [[p.batch_size, p.learning_rate] for p in phases],
        "kernel": as_list(model.get_weights()[0]),
        "history_batch_size": history.history["batch_size"],
        "epochs": history.epoch,
        "iterations": iterations.values,
    }


def check_lars():
    initial, grads = P.lars_variables_and_gradients()
    out = {}
    for nesterov in (False, True):
        variables = [keras.Variable(v, name=n) for v, n in zip(initial, P.LARS_SHAPES)]
        optimizer = LARS(nesterov=nesterov, **P.LARS_ARGS)
        for step in grads:
            optimizer.apply(step, variables)
        out[f"nesterov_{nesterov}"] = [as_list(v) for v in variables]
    x, y, kernel, bias = P.lars_fit_data()
    model = linear_model(P.FIT_P, kernel, units=2, bias=bias, loss=None)
    model.compile(optimizer=LARS(**P.LARS_FIT_ARGS), loss="mse", jit_compile=JIT)
    model.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0)
    out["fit_weights"] = [as_list(w) for w in model.get_weights()]
    return out


def check_diagnostics():
    out = {}
    x, y = P.diag_data()
    model = linear_model(P.DIAG_P, np.ones((P.DIAG_P, 1), "float32"))
    out["eigenvalue"] = diagnostics.hessian_top_eigenvalue(
        model, x, y, tolerance=1e-7, max_iterations=500)
    out["trace_seeded"] = diagnostics.hessian_trace(model, x, y, num_samples=20, seed=3)
    penalized = linear_model(P.DIAG_P, np.ones((P.DIAG_P, 1), "float32"),
                             regularizer=keras.regularizers.L2(0.05))
    out["eigenvalue_l2"] = diagnostics.hessian_top_eigenvalue(
        penalized, x, y, tolerance=1e-8, max_iterations=500)
    xd, yd = P.diagonal_hessian_data()
    out["trace_diagonal"] = diagnostics.hessian_trace(
        linear_model(4, np.zeros((4, 1), "float32")), xd, yd, num_samples=3)

    w_min = np.linalg.lstsq(x.astype(np.float64), y.astype(np.float64), rcond=None)[0]
    at_min = linear_model(P.DIAG_P, w_min.astype("float32"))
    before = at_min.get_weights()[0].copy()
    out["sharpness"] = diagnostics.sharpness(at_min, x, y, epsilon=1e-2)
    out["sharpness_subspace"] = diagnostics.sharpness(
        at_min, x, y, epsilon=1e-2, subspace_dim=2, seed=1)
    out["sharpness_restored"] = bool(np.array_equal(at_min.get_weights()[0], before))

    xn, yn = P.diag_data(n=P.NOISE_N, p=4, noise=1.0)
    w_noise = np.full((4, 1), 0.5, "float32")
    result = diagnostics.gradient_noise_scale(linear_model(4, w_noise), xn, yn, batch_size=1)
    out["noise"] = [result.trace_covariance, result.gradient_norm_sq, result.b_simple]

    w_lb = np.array([[1.0], [-2.0], [0.5], [3.0], [0.0]], "float32")
    interpolation = diagnostics.interpolate(
        at_min, linear_model(P.DIAG_P, w_lb), x, y, alphas=P.ALPHAS)
    out["interpolation_loss"] = interpolation.loss.tolist()

    xc, labels, sb, lb = P.classifier_data_and_weights()
    models = []
    for weights in (sb, lb):
        classifier = keras.Sequential([
            keras.Input((P.CLS_IN,)),
            keras.layers.Dense(P.CLS_HIDDEN),
            keras.layers.BatchNormalization(epsilon=P.BN_EPSILON),
            keras.layers.Dense(P.CLS_OUT),
        ])
        classifier.set_weights(weights)
        classifier.compile(loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        models.append(classifier)
    result = diagnostics.interpolate(*models, xc, labels, alphas=P.ALPHAS, batch_size=16)
    out["classifier_loss"] = result.loss.tolist()
    out["classifier_accuracy"] = result.accuracy.tolist()
    out["classifier_restored"] = all(
        np.array_equal(a, b) for a, b in zip(models[0].get_weights(), sb))
    return out


def check_dataset_input():
    """A tf.data.Dataset feeds the diagnostics on every backend (TF imported here)."""
    import tensorflow as tf

    xn, yn = P.diag_data(n=P.NOISE_N, p=4, noise=1.0)
    dataset = tf.data.Dataset.from_tensor_slices((xn, yn)).batch(1)
    model = linear_model(4, np.full((4, 1), 0.5, "float32"))
    return {"noise_b_simple": diagnostics.gradient_noise_scale(model, dataset).b_simple}


def check_noise_callback():
    xn, yn = P.diag_data(n=P.NOISE_N, p=4, noise=1.0)
    model = linear_model(4, np.full((4, 1), 0.5, "float32"), loss=None)
    model.compile(optimizer=keras.optimizers.SGD(0.01), loss="mse", jit_compile=JIT)
    callback = diagnostics.GradientNoiseScale(xn, yn, batch_size=1)
    history = model.fit(xn, yn, batch_size=8, epochs=1, shuffle=False, verbose=0,
                        callbacks=[callback])
    return {
        "logged": history.history["gradient_noise_scale"],
        "kernel": as_list(model.get_weights()[0]),
    }


# -- tfgap.layers ---------------------------------------------------------------

def gbn_layer(case, cls=None):
    """The layer of one `P.GBN_CASES` case, built, with the case's weights."""
    from tfgap.layers import GhostBatchNormalization

    shape, axis, virtual_batch_size, moving_update, _ = P.GBN_CASES[case]
    kwargs = dict(axis=axis, momentum=P.GBN_MOMENTUM, epsilon=P.GBN_EPSILON)
    if cls is None:
        layer = GhostBatchNormalization(virtual_batch_size=virtual_batch_size,
                                        moving_update=moving_update, **kwargs)
    else:
        layer = cls(**kwargs)
    layer.build(shape)
    _, _, gamma, beta, moving_mean, moving_variance, _ = P.gbn_case(case)
    layer.set_weights([gamma, beta, moving_mean, moving_variance])
    return layer


def run_gbn_case(case, cls=None):
    """Training outputs, moving statistics, inference outputs and gradients,
    from two compiled functions (`tfgap.backend`) of `stateless_call`."""
    x, mask, gamma, beta, moving_mean, moving_variance, upstream = P.gbn_case(case)
    layer = gbn_layer(case, cls)
    x, gamma, beta, moving_mean, moving_variance, upstream = (
        ops.convert_to_tensor(a)
        for a in (x, gamma, beta, moving_mean, moving_variance, upstream))
    mask = None if mask is None else ops.convert_to_tensor(mask)

    def train_then_infer(x, mask):
        outputs, state = layer.stateless_call(
            [gamma, beta], [moving_mean, moving_variance], x, training=True, mask=mask)
        inference, _ = layer.stateless_call([gamma, beta], state, x, mask=mask)
        return outputs, state, inference

    outputs, state, inference = tfgap.backend.function(train_then_infer)(x, mask)
    out = {"outputs": as_list(outputs), "moving_mean": as_list(state[0]),
           "moving_variance": as_list(state[1]), "inference": as_list(inference)}

    def loss(params, mask, upstream):
        inputs, gamma, beta = params
        y, _ = layer.stateless_call([gamma, beta], [moving_mean, moving_variance], inputs,
                                    training=True, mask=mask)
        return ops.sum(y * upstream)

    _, grads = tfgap.backend.value_and_gradient(loss)([x, gamma, beta], mask, upstream)
    out["grad_x"], out["grad_gamma"], out["grad_beta"] = (as_list(g) for g in grads)
    return out


def check_gbn():
    """GhostBatchNormalization called directly: every case of `P.GBN_CASES`,
    and `keras.layers.BatchNormalization` on the case the ghost covers."""
    out = {case: run_gbn_case(case) for case in P.GBN_CASES}
    out["keras_batch_normalization"] = run_gbn_case(
        "covers_batch_masked", keras.layers.BatchNormalization)
    return out


def check_gbn_fit():
    """GBN behind a masking Embedding, and a ghostified model, in `model.fit`."""
    from tfgap.layers import GhostBatchNormalization, ghostify

    tokens, labels, table, kernel, bias = P.embedding_fit_data()
    model = keras.Sequential([
        keras.Input((P.EMB_LENGTH,), dtype="int32"),
        keras.layers.Embedding(P.EMB_VOCABULARY, P.EMB_WIDTH, mask_zero=True,
                               trainable=False),
        GhostBatchNormalization(virtual_batch_size=P.EMB_GHOST, momentum=P.GBN_MOMENTUM,
                                epsilon=P.GBN_EPSILON),
        keras.layers.Flatten(),  # drops the mask (a masked mean would divide by zero)
        keras.layers.Dense(2),
    ])
    model.set_weights([table, np.ones(P.EMB_WIDTH), np.zeros(P.EMB_WIDTH),
                       np.zeros(P.EMB_WIDTH), np.ones(P.EMB_WIDTH), kernel, bias])
    model.compile(optimizer=keras.optimizers.SGD(0.1), jit_compile=JIT,
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    history = model.fit(tokens, labels, batch_size=P.EMB_BATCH, epochs=1, shuffle=False,
                        verbose=0)
    gbn = model.layers[1]
    out = {"embedding_moving_mean": as_list(gbn.moving_mean),
           "embedding_moving_variance": as_list(gbn.moving_variance),
           "embedding_loss": history.history["loss"],
           "embedding_dense": [as_list(w) for w in model.layers[-1].weights]}

    x, y, weights = P.ghostify_data()
    base = keras.Sequential([keras.Input((3,)), keras.layers.Dense(4),
                             keras.layers.BatchNormalization(), keras.layers.Dense(2)])
    base.set_weights(weights)
    ghosted = ghostify(base, virtual_batch_size=P.GBN_GHOST)
    out["ghostify_type"] = type(ghosted.layers[1]).__name__
    out["ghostify_base_outputs"] = as_list(base(x))
    out["ghostify_outputs"] = as_list(ghosted(x))
    ghosted.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse", jit_compile=JIT)
    ghosted.fit(x, y, batch_size=P.GHOSTIFY_N, epochs=1, shuffle=False, verbose=0)
    out["ghostify_moving_mean"] = as_list(ghosted.layers[1].moving_mean)
    out["ghostify_moving_variance"] = as_list(ghosted.layers[1].moving_variance)
    return out


def check_data_parallel():
    """GBN under keras.distribution.DataParallel over two CPU devices (JAX only)."""
    if BACKEND != "jax":
        return "not applicable: keras.distribution.DataParallel is tested on JAX"
    from tfgap.layers import GhostBatchNormalization

    devices = keras.distribution.list_devices()
    out = {"devices": len(devices)}
    if len(devices) < P.DP_DEVICES:
        return out
    distribution = keras.distribution.DataParallel(devices=devices[:P.DP_DEVICES])

    def layer(moving_update):
        return GhostBatchNormalization(virtual_batch_size=P.GBN_GHOST, momentum=P.GBN_MOMENTUM,
                                       epsilon=P.GBN_EPSILON, moving_update=moving_update)

    for name, (per_device, moving_update) in P.DP_CASES.items():
        x, mask = P.data_parallel_data(per_device)
        batch = P.DP_DEVICES * per_device
        with distribution.scope():
            model = keras.Sequential([keras.Input((3,)), layer(moving_update),
                                      keras.layers.Dense(1)])
            model.compile(optimizer=keras.optimizers.SGD(0.01), loss="mse", jit_compile=True)
            model.fit(x, np.zeros((len(x), 1), "float32"), batch_size=batch, epochs=1,
                      shuffle=False, verbose=0)
            gbn = model.layers[0]
            result = {"fit_moving_mean": as_list(gbn.moving_mean),
                      "fit_moving_variance": as_list(gbn.moving_variance)}
            # A direct, masked training call on a batch sharded over the devices.
            direct = layer(moving_update)
            direct.build((batch, 3))
            sharded = keras.distribution.distribute_tensor(
                x[:batch], distribution.get_data_layout((batch, 3)))
            result["shards"] = len(sharded.addressable_shards)
            result["outputs"] = as_list(direct(sharded, training=True, mask=mask))
            result["moving_mean"] = as_list(direct.moving_mean)
            result["moving_variance"] = as_list(direct.moving_variance)
        out[name] = result
    return out


def check_jax_hlo():
    """Which slow ops XLA keeps in a JAX-compiled GBN training step (JAX only)."""
    if BACKEND != "jax":
        return "not applicable: inspects jax.jit's compiled HLO"
    import jax
    from tfgap.layers import GhostBatchNormalization

    out = {}
    for batch in (16, 14):  # divisible by the ghost size 4 (reshape path), and ragged
        layer = GhostBatchNormalization(virtual_batch_size=P.GBN_GHOST)
        layer.build((batch, 4, 4, 3))

        def loss(trainable, x):
            y, _ = layer.stateless_call(trainable, layer.non_trainable_variables, x,
                                        training=True)
            return ops.sum(y * y)

        x = np.ones((batch, 4, 4, 3), "float32")
        hlo = jax.jit(jax.grad(loss)).lower(
            [v.value for v in layer.trainable_variables], x).compile().as_text()
        out[f"batch_{batch}"] = {op: f"{op}(" in hlo for op in ("gather", "scatter")}
    return out


def check_models():
    """tfgap.models with GBN: inference and one training step from fixed weights."""
    import tfgap.models

    out = {}
    rng = np.random.default_rng(25)
    y = rng.integers(0, 3, size=8).astype("int32")
    for name, input_shape, options, train in [
            ("mlp", (6,), dict(mlp_width=8, mlp_depth=2), True),
            ("cnn1d", (16, 1), {}, False)]:  # inference only: compiling its step is slow
        model = tfgap.models.build_model(name, num_classes=3, input_shape=input_shape,
                                         ghost_batch_size=P.GBN_GHOST, seed=0, **options)
        model.set_weights(P.model_weights([tuple(w.shape) for w in model.weights]))
        x = rng.normal(size=(8,) + input_shape).astype("float32")
        model.compile(optimizer=keras.optimizers.SGD(0.01), jit_compile=JIT,
                      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        out[name] = {"inference": as_list(model.predict(x, verbose=0))}
        if train:
            out[name]["train_loss"] = float(model.train_on_batch(x, y))
    return out

def check_imports():
    """What `tfgap`'s lazy and TensorFlow-only attributes give on this backend."""
    try:
        sam = tfgap.SAM.__name__
    except ImportError as error:
        sam = f"ImportError: {error}"
    try:
        tfgap.backend.require_tensorflow("tfgap.training")
        require = "passed"
    except ImportError as error:
        require = f"ImportError: {error}"
    return {"sam": sam, "require_tensorflow": require,
            "layer": tfgap.GhostBatchNormalization.__name__,
            "ghostify": tfgap.ghostify.__name__, "models": tfgap.models.__name__}


DOCTEST_MODULES = [
    "tfgap.backend",
    "tfgap.diagnostics.diffusion",
    "tfgap.diagnostics.hessian",
    "tfgap.diagnostics.interpolation",
    "tfgap.diagnostics.noise_scale",
    "tfgap.diagnostics.sharpness",
    "tfgap.diagnostics.weight_distance",
    "tfgap.layers.ghost_batch_normalization",
    "tfgap.layers.ghostify",
    "tfgap.optimizers.lars",
    "tfgap.schedules.batch_size",
    "tfgap.schedules.large_batch",
    "tfgap.schedules.regime",
]


def check_docstrings():
    """The docstring examples, run on this backend: (attempted, failed) per module."""
    out = {}
    for name in DOCTEST_MODULES:
        result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
        out[name] = [result.attempted, result.failed]
    return out


def main(path):
    results = {
        "backend": BACKEND,
        "jit_compile": JIT,
        "tensorflow_imported_by_tfgap": TENSORFLOW_IMPORTED,
        "import_seconds": IMPORT_SECONDS,
        "seconds": {},
        "cpu_seconds": {},
    }
    for name, check in [
        ("schedule", check_schedule),
        ("batch_size_phases", check_batch_size_phases),
        ("lars", check_lars),
        ("diagnostics", check_diagnostics),
        ("noise_callback", check_noise_callback),
        ("gbn", check_gbn),
        ("gbn_fit", check_gbn_fit),
        ("data_parallel", check_data_parallel),
        ("jax_hlo", check_jax_hlo),
        ("models", check_models),
        ("docstrings", check_docstrings),
        ("dataset_input", check_dataset_input),  # it imports TensorFlow
        ("imports", check_imports),
    ]:
        start, cpu = time.perf_counter(), time.process_time()
        results[name] = check()
        results["seconds"][name] = round(time.perf_counter() - start, 2)
        results["cpu_seconds"][name] = round(time.process_time() - cpu, 2)
    with open(path, "w") as f:
        json.dump(results, f, indent=1)


if __name__ == "__main__":
    main(sys.argv[1])
