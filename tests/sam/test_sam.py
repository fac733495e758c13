"""SAM: the perturbation and the two-pass step against closed forms in NumPy."""

import doctest

import keras
import numpy as np
import pytest
import tensorflow as tf

import tfgap
from tfgap import sam as sam_module
from tfgap.sam import SAM, sam_perturbation
from tests.layers.reference import ghost_bn_reference


def _numpy_perturbation(grads, weights, rho, adaptive):
    grads = [np.asarray(g, np.float64) for g in grads]
    weights = [np.asarray(w, np.float64) for w in weights]
    terms = [w * g for w, g in zip(weights, grads)] if adaptive else grads
    norm = np.sqrt(sum((t ** 2).sum() for t in terms))
    return [rho * (w ** 2 if adaptive else 1.0) * g / norm for w, g in zip(weights, grads)]


# ---------------------------------------------------------------- sam_perturbation


@pytest.mark.parametrize("adaptive", [False, True])
def test_perturbation_matches_numpy_over_all_weights(adaptive):
    rng = np.random.default_rng(0)
    shapes = [(3, 4), (4,), (2, 2, 3)]
    weights = [rng.normal(size=s).astype("float32") for s in shapes]
    grads = [rng.normal(size=s).astype("float32") for s in shapes]
    e = sam_perturbation(grads, [keras.Variable(w) for w in weights], rho=0.3,
                         adaptive=adaptive)
    expected = _numpy_perturbation(grads, weights, 0.3, adaptive)
    for a, b in zip(e, expected):
        np.testing.assert_allclose(keras.ops.convert_to_numpy(a), b, rtol=1e-5, atol=1e-7)
    # The norm is global: the perturbation as a whole has norm rho (SAM), or
    # ||e / w|| = rho (ASAM's scale-invariant neighbourhood).
    flat = [np.asarray(x, np.float64) for x in expected]
    if adaptive:
        flat = [x / w for x, w in zip(flat, weights)]
    np.testing.assert_allclose(np.sqrt(sum((x ** 2).sum() for x in flat)), 0.3, rtol=1e-6)


def test_perturbation_none_zero_and_non_finite_gradients():
    weights = [np.ones((2, 2), "float32"), np.ones((3,), "float32")]
    e = sam_perturbation([None, np.array([0.0, 3.0, 4.0], "float32")], weights, rho=1.0)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(e[0]), np.zeros((2, 2)))
    np.testing.assert_allclose(keras.ops.convert_to_numpy(e[1]), [0.0, 0.6, 0.8], rtol=1e-6)
    for grads in ([np.zeros((2, 2), "float32"), np.zeros((3,), "float32")],
                  [np.full((2, 2), np.nan, "float32"), np.ones((3,), "float32")],
                  [np.full((2, 2), np.inf, "float32"), np.ones((3,), "float32")]):
        for adaptive in (False, True):
            e = sam_perturbation(grads, weights, rho=0.5, adaptive=adaptive)
            for t, w in zip(e, weights):
                np.testing.assert_array_equal(keras.ops.convert_to_numpy(t), np.zeros_like(w))


@pytest.mark.parametrize("rho", [-0.1, float("nan"), float("inf"), "0.05", True, None])
def test_invalid_rho(rho):
    with pytest.raises(ValueError, match=r"`rho` to be a finite number >= 0.*rho="):
        sam_perturbation([np.ones(2)], [np.ones(2)], rho=rho)
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    with pytest.raises(ValueError, match=r"`rho`.*rho="):
        SAM(model, rho=rho)


def test_invalid_arguments():
    with pytest.raises(ValueError, match="one gradient per weight.*len\\(gradients\\)=1"):
        sam_perturbation([np.ones(2)], [np.ones(2), np.ones(2)], rho=0.1)
    with pytest.raises(ValueError, match="`model` to be a keras.Model.*model='dense'"):
        SAM("dense")
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    with pytest.raises(ValueError, match="`adaptive`.*adaptive=1"):
        SAM(model, adaptive=1)


# ---------------------------------------------------------------- the SAM step


def _least_squares(n=16, d=3, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d)).astype("float32")
    y = (x @ rng.normal(size=(d, 1)) + 0.3 * rng.normal(size=(n, 1))).astype("float32")
    w = rng.normal(size=(d, 1)).astype("float32")
    b = np.array([0.7], "float32")
    return x, y, w, b


def _least_squares_gradient(x, y, w, b, l2):
    # L = mean((x w + b - y)^2) + l2 * ||w||^2   (Keras' MSE and L2 regularizer)
    x, y, w, b = (np.asarray(a, np.float64) for a in (x, y, w, b))
    r = x @ w + b - y
    return [2.0 * x.T @ r / len(x) + 2.0 * l2 * w, np.array([2.0 * r.mean()])]


@pytest.mark.parametrize("adaptive", [False, True])
@pytest.mark.parametrize("l2", [0.0, 0.2])
def test_sam_step_on_least_squares_matches_closed_form(adaptive, l2):
    x, y, w, b = _least_squares()
    rho, lr = 0.5, 0.1
    regularizer = keras.regularizers.L2(l2) if l2 else None
    inner = keras.Sequential([keras.Input((3,)),
                              keras.layers.Dense(1, kernel_regularizer=regularizer)])
    inner.set_weights([w, b])
    model = SAM(inner, rho=rho, adaptive=adaptive)
    model.compile(optimizer=keras.optimizers.SGD(lr), loss="mse")
    history = model.fit(x, y, batch_size=len(x), epochs=1, shuffle=False, verbose=0)

    g = _least_squares_gradient(x, y, w, b, l2)
    e = _numpy_perturbation(g, [w, b], rho, adaptive)
    g_star = _least_squares_gradient(x, y, w + e[0], b + e[1], l2)
    expected = [w - lr * g_star[0], b - lr * g_star[1]]
    for actual, wanted in zip(inner.get_weights(), expected):
        np.testing.assert_allclose(actual, wanted, rtol=1e-5, atol=1e-6)
    # The test is sensitive: a plain step lands clearly elsewhere.
    assert np.abs(expected[0] - (w - lr * g[0])).max() > 1e-3
    # The reported loss is the one at the unperturbed weights.
    r = x.astype(np.float64) @ w + b - y
    np.testing.assert_allclose(history.history["loss"][0],
                               np.mean(r ** 2) + l2 * np.sum(w.astype(np.float64) ** 2),
                               rtol=1e-5)


def _gbn_model(seed=0):
    keras.utils.set_random_seed(seed)
    return keras.Sequential([
        keras.Input((4,)),
        keras.layers.Dense(5),
        tfgap.GhostBatchNormalization(virtual_batch_size=4, momentum=0.8),
        keras.layers.Dense(1),
    ])


def _training_mode_gradient(model, x, y):
    with tf.GradientTape() as tape:
        loss = keras.ops.mean(keras.ops.square(model(x, training=True) - y))
    return [g.numpy() for g in tape.gradient(loss, model.trainable_variables)]


def test_ghost_batch_normalization_updates_once_from_the_unperturbed_pass():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(12, 4)).astype("float32")  # three ghost batches of 4
    y = rng.normal(size=(12, 1)).astype("float32")
    inner = _gbn_model()
    initial = inner.get_weights()
    rho, lr = 0.5, 0.1
    model = SAM(inner, rho=rho)
    model.compile(optimizer=keras.optimizers.SGD(lr), loss="mse")
    model.fit(x, y, batch_size=12, epochs=1, shuffle=False, verbose=0)
    gbn = inner.layers[1]

    # NumPy: one training-mode forward pass at the initial weights.
    kernel, bias = initial[0], initial[1]
    h = x.astype(np.float64) @ kernel + bias
    _, mm, mv = ghost_bn_reference(h, 4, axis=-1, gamma=np.ones(5), beta=np.zeros(5),
                                   moving_mean=np.zeros(5), moving_variance=np.ones(5),
                                   momentum=0.8, epsilon=1e-3, moving_update="sequential")
    np.testing.assert_allclose(gbn.moving_mean.numpy(), mm, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(gbn.moving_variance.numpy(), mv, rtol=1e-5, atol=1e-6)
    # A copy that ran one plain training-mode forward pass agrees.
    copy = _gbn_model(seed=5)
    copy.set_weights(initial)
    copy(x, training=True)
    np.testing.assert_allclose(gbn.moving_mean.numpy(), copy.layers[1].moving_mean.numpy(),
                               rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(gbn.moving_variance.numpy(),
                               copy.layers[1].moving_variance.numpy(), rtol=1e-6, atol=1e-7)

    # The weights: g* is the training-mode (ghost-batch) gradient at w + e.
    probe = _gbn_model(seed=6)
    probe.set_weights(initial)
    g = _training_mode_gradient(probe, x, y)
    trainable = [v.numpy() for v in probe.trainable_variables]
    e = _numpy_perturbation(g, trainable, rho, adaptive=False)
    for v, w, ei in zip(probe.trainable_variables, trainable, e):
        v.assign((w + ei).astype("float32"))
    g_star = _training_mode_gradient(probe, x, y)
    for v, w, gs in zip(inner.trainable_variables, trainable, g_star):
        np.testing.assert_allclose(v.numpy(), w - lr * gs, rtol=1e-4, atol=1e-5)


def test_dropout_and_metrics_in_fit():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(64, 6)).astype("float32")
    y = (x[:, 0] > 0).astype("int32")
    keras.utils.set_random_seed(0)
    inner = keras.Sequential([keras.Input((6,)), keras.layers.Dense(16, activation="relu"),
                              keras.layers.Dropout(0.2), keras.layers.Dense(2)])
    model = SAM(inner, rho=0.05, adaptive=True)
    model.compile(optimizer=keras.optimizers.SGD(0.1, momentum=0.9),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    history = model.fit(x, y, batch_size=16, epochs=4, verbose=0)
    assert set(history.history) == {"loss", "accuracy"}
    assert history.history["loss"][-1] < history.history["loss"][0]
    assert int(model.optimizer.iterations) == 16
    loss, accuracy = model.evaluate(x, y, verbose=0)
    assert np.isfinite(loss) and accuracy > 0.7


def _fit_small(x, y, *, sam, jit_compile=False, optimizer=None):
    keras.utils.set_random_seed(0)
    inner = keras.Sequential([
        keras.Input((4,)), keras.layers.Dense(5),
        tfgap.GhostBatchNormalization(virtual_batch_size=4),
        keras.layers.Dense(1, dtype="float32"),
    ])
    model = SAM(inner, rho=0.3, adaptive=True) if sam else inner
    model.compile(optimizer=optimizer or keras.optimizers.SGD(0.1), loss="mse",
                  jit_compile=jit_compile)
    history = model.fit(x, y, batch_size=12, epochs=2, shuffle=False, verbose=0)
    return model, history.history["loss"]


def test_xla_step_equals_eager_step():
    rng = np.random.default_rng(4)
    x = rng.normal(size=(24, 4)).astype("float32")
    y = rng.normal(size=(24, 1)).astype("float32")
    eager, _ = _fit_small(x, y, sam=True, optimizer=tfgap.LARS(0.1, eta=0.01))
    xla, _ = _fit_small(x, y, sam=True, jit_compile=True, optimizer=tfgap.LARS(0.1, eta=0.01))
    for a, b in zip(xla.get_weights(), eager.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_mixed_precision_with_loss_scaling():
    rng = np.random.default_rng(4)
    x = rng.normal(size=(12, 4)).astype("float32")
    y = rng.normal(size=(12, 1)).astype("float32")

    def two_steps(policy, loss_scale):
        keras.config.set_dtype_policy(policy)
        try:
            keras.utils.set_random_seed(0)
            inner = keras.Sequential([
                keras.Input((4,)), keras.layers.Dense(5),
                tfgap.GhostBatchNormalization(virtual_batch_size=4),
                keras.layers.Dense(1, dtype="float32"),
            ])
            optimizer = keras.optimizers.SGD(0.1)
            if loss_scale:
                optimizer = keras.optimizers.LossScaleOptimizer(optimizer,
                                                                initial_scale=loss_scale)
            model = SAM(inner, rho=0.3, adaptive=True)
            model.compile(optimizer=optimizer, loss="mse")
            initial = [v.numpy() for v in model.trainable_variables]
            for _ in range(2):
                model.train_on_batch(x, y)
        finally:
            keras.config.set_dtype_policy("float32")
        return model, initial

    reference, _ = two_steps("float32", None)
    # e is invariant to the loss scale: float16 steps track the float32 ones.
    mixed, _ = two_steps("mixed_float16", 1024.0)
    assert int(mixed.optimizer.iterations) == 2
    for a, b in zip(mixed.get_weights(), reference.get_weights()):
        np.testing.assert_allclose(a, b, rtol=0, atol=5e-3)
    # A scale that overflows float16: e is zero (not NaN), the loss-scale
    # optimizer skips the steps, the weights stay finite and unchanged.
    overflow, initial = two_steps("mixed_float16", 2.0 ** 40)
    assert int(overflow.optimizer.iterations) == 0
    for v, w in zip(overflow.trainable_variables, initial):
        np.testing.assert_array_equal(v.numpy(), w)
    assert all(np.isfinite(w).all() for w in overflow.get_weights())


# ---------------------------------------------------------------- serialization


def test_get_config_round_trip():
    model = SAM(_gbn_model(), rho=0.2, adaptive=True, name="sam_wrapper")
    config = model.get_config()
    assert config["rho"] == 0.2 and config["adaptive"] is True
    restored = SAM.from_config(config)
    assert restored.get_config() == config
    assert restored.name == "sam_wrapper" and restored.inner_model is not model.inner_model
    assert restored.inner_model.layers[1].virtual_batch_size == 4
    by_name = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(model))
    assert isinstance(by_name, SAM) and by_name.get_config() == config


def test_save_and_load_round_trip(tmp_path):
    rng = np.random.default_rng(3)
    x = rng.normal(size=(24, 4)).astype("float32")
    y = rng.normal(size=(24, 1)).astype("float32")
    model = SAM(_gbn_model(), rho=0.1)
    model.compile(optimizer=keras.optimizers.SGD(0.05, momentum=0.9), loss="mse")
    model.fit(x, y, batch_size=12, epochs=1, shuffle=False, verbose=0)

    path = tmp_path / "sam.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    assert isinstance(loaded, SAM) and loaded.rho == 0.1 and loaded.adaptive is False
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0),
                               rtol=1e-6, atol=1e-6)
    # Training resumes identically (optimizer state restored).
    model.fit(x, y, batch_size=12, epochs=1, shuffle=False, verbose=0)
    loaded.fit(x, y, batch_size=12, epochs=1, shuffle=False, verbose=0)
    for a, b in zip(loaded.get_weights(), model.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)

    # The inner model saves on its own, without SAM.
    inner_path = tmp_path / "inner.keras"
    model.inner_model.save(inner_path)
    inner = keras.models.load_model(inner_path)
    assert not isinstance(inner, SAM)
    np.testing.assert_allclose(inner.predict(x, verbose=0), model.predict(x, verbose=0),
                               rtol=1e-6, atol=1e-6)


def test_docstring_examples():
    result = doctest.testmod(sam_module, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0
    assert result.failed == 0


def test_a_wrapper_saves_and_reloads_its_inner_model(tmp_path):
    from tfgap import _wrapped_model

    result = doctest.testmod(_wrapped_model, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0
    inner = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    model = tfgap.SAM(inner, rho=0.07, adaptive=True)
    model.compile(optimizer="sgd", loss="mse")
    path = str(tmp_path / "sam.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert (loaded.rho, loaded.adaptive) == (0.07, True)
    x = np.arange(6, dtype="float32").reshape(2, 3)
    np.testing.assert_array_equal(loaded(x), model(x))
