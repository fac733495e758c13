"""`noise_statistics`: the step's squared norms against NumPy, the trainer's logs, resume, off."""

import json
import math
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfgap.advisor import gradient_statistics as gs
from tfgap.training import ConfigError, TrainConfig, step_functions, train
from tests.advisor.closed_forms import softmax_l2_gradient

L2 = 0.01


def softmax_regression(strategy):
    with strategy.scope():
        model = keras.Sequential([
            keras.Input((5,)),
            keras.layers.Dense(3, kernel_regularizer=keras.regularizers.L2(L2),
                               kernel_initializer=keras.initializers.RandomNormal(seed=1))])
        optimizer = keras.optimizers.SGD(0.5)
        optimizer.build(model.trainable_variables)
    return model, optimizer


def numpy_gradient(w, b, x, y):
    return softmax_l2_gradient(w, b, x, y, L2)


def batch(seed=0, n=8):
    rng = np.random.default_rng(seed)
    return (rng.normal(size=(n, 5)).astype(np.float32),
            rng.integers(0, 3, size=n).astype(np.int32))


def steps(strategy, model, optimizer, data, num_steps=1, **kwargs):
    with strategy.scope():
        step = tf.Variable(0, dtype=tf.int64)
    train_steps = step_functions.make_train_step(strategy, model, optimizer, step,
                                                 global_batch_size=len(data[1]), **kwargs)
    iterator = iter(strategy.experimental_distribute_dataset(
        tf.data.Dataset.from_tensors(data).repeat()))
    return train_steps(iterator, tf.constant(num_steps, tf.int32)).numpy()


@pytest.mark.parametrize("replicas", [1, 2])
def test_the_step_returns_the_two_squared_norms_numpy_computes(replicas, two_cpus):
    # One replica splits the batch of 8 into halves; two replicas take 4 examples each:
    # the same two small batches, so the same numbers. Regularization is in every gradient.
    strategy = two_cpus if replicas == 2 else tf.distribute.OneDeviceStrategy("/cpu:0")
    model, optimizer = softmax_regression(strategy)
    x, y = batch()
    w, b = (np.asarray(v.numpy(), np.float64) for v in model.trainable_variables)
    rows = steps(strategy, model, optimizer, (x, y), noise_statistics=True)
    assert rows.shape == (1, 7)
    x64 = x.astype(np.float64)
    small = [numpy_gradient(w, b, x64[s], y[s]) for s in (slice(0, 4), slice(4, 8))]
    big = numpy_gradient(w, b, x64, y)
    np.testing.assert_allclose(small[0] + small[1], 2 * big, rtol=1e-12)  # means of halves
    small_sq = np.mean([g @ g for g in small])
    np.testing.assert_allclose(rows[0, 5], small_sq, rtol=1e-5)
    np.testing.assert_allclose(rows[0, 6], big @ big, rtol=1e-5)
    # The step applied is the plain SGD step on the whole batch.
    got = np.concatenate([v.numpy().ravel() for v in model.trainable_variables])
    np.testing.assert_allclose(got, np.concatenate([w.ravel(), b]) - 0.5 * big, rtol=1e-5,
                               atol=1e-6)
    norm_sq, trace = gs.two_batch_estimates(rows[0, 5], rows[0, 6], 4, 8)
    assert np.isfinite(norm_sq) and trace > 0


@pytest.mark.parametrize("replicas", [1, 2])
def test_a_step_of_parts_trains_on_its_consecutive_batches_joined(replicas, two_cpus):
    # make_train_step(parts=2) over a pipeline of global batches of 4: each step trains on
    # 8 consecutive examples, as plain SGD on them in NumPy (adaptive="batch" with
    # batch_decision_steps reads a step at B as B / b0 base batches this way).
    strategy = two_cpus if replicas == 2 else tf.distribute.OneDeviceStrategy("/cpu:0")
    model, optimizer = softmax_regression(strategy)
    x, y = batch(n=16)
    w, b = (np.asarray(v.numpy(), np.float64) for v in model.trainable_variables)
    for k in range(2):
        rows = slice(8 * k, 8 * k + 8)
        g = numpy_gradient(w, b, x[rows].astype(np.float64), y[rows])
        w, b = w - 0.5 * g[:w.size].reshape(w.shape), b - 0.5 * g[w.size:]
    with strategy.scope():
        step = tf.Variable(0, dtype=tf.int64)
    train_steps = step_functions.make_train_step(strategy, model, optimizer, step,
                                                 global_batch_size=8, parts=2)
    iterator = iter(strategy.experimental_distribute_dataset(
        tf.data.Dataset.from_tensor_slices((x, y)).batch(4)))
    rows = train_steps(iterator, tf.constant(2, tf.int32)).numpy()
    assert rows[:, 2].tolist() == [8, 8]  # examples per step
    got = [v.numpy() for v in model.trainable_variables]
    np.testing.assert_allclose(got[0], w, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(got[1], b, rtol=1e-5, atol=1e-6)


def reference_steps(strategy, model, optimizer, data, num_steps):
    """The plain step written out: tape, loss sum CE / B + losses / R, apply_gradients."""
    replicas = strategy.num_replicas_in_sync

    def replica_step(x, y):
        with tf.GradientTape() as tape:
            logits = tf.cast(model(x, training=True), tf.float32)
            loss = tf.reduce_sum(keras.losses.sparse_categorical_crossentropy(
                y, logits, from_logits=True)) / float(len(data[1]))
            loss += tf.add_n(model.losses) / replicas
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))

    @tf.function
    def run(iterator):
        for _ in tf.range(num_steps):
            x, y = next(iterator)
            strategy.run(replica_step, args=(x, y))

    run(iter(strategy.experimental_distribute_dataset(
        tf.data.Dataset.from_tensors(data).repeat())))


def weights_after(strategy, step, num_steps=5):
    model, optimizer = softmax_regression(strategy)
    step(strategy, model, optimizer, batch(), num_steps)
    return [v.numpy() for v in model.trainable_variables]


@pytest.mark.parametrize("replicas", [1, 2])
def test_off_is_the_plain_step_bit_for_bit(replicas, two_cpus):
    strategy = two_cpus if replicas == 2 else tf.distribute.OneDeviceStrategy("/cpu:0")
    off = weights_after(strategy, lambda *a: steps(*a, noise_statistics=False))
    default = weights_after(strategy, steps)
    reference = weights_after(strategy, reference_steps)
    on = weights_after(strategy, lambda *a: steps(*a, noise_statistics=True))
    for a, b, c, d in zip(off, default, reference, on):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(a, c)
        if replicas == 2:  # the optimizer gets the same per-replica gradients: same update
            np.testing.assert_array_equal(a, d)
        else:  # the sum of two half-batch gradients: the same up to rounding
            np.testing.assert_allclose(a, d, rtol=1e-5, atol=1e-6)
    # Off, the step function is the plain one: five columns, no measured replica step.
    model, optimizer = softmax_regression(strategy)
    assert steps(strategy, model, optimizer, batch()).shape == (1, 5)


def tiny(tmp_path, **changes):
    fields = dict(
        dataset="mnist", model="mlp", model_options={"mlp_width": 16, "mlp_depth": 1},
        model_dir=str(tmp_path / "run"), epochs=3, batch_size=16, base_batch_size=16,
        lr_values=(0.05,), mock_data=True, mock_examples=80, validation_examples=16,
        strategy="one_device", verbose=2, preemption=False, noise_statistics=True,
        noise_statistics_decay=0.5, ghost_batch_size=8, deterministic=True,
    )
    fields.update(changes)
    return TrainConfig(**fields)


def test_the_trainer_logs_the_same_statistics_under_one_device_and_mirrored(tmp_path, two_cpus,
                                                                         capsys):
    # The same 16 examples per step: halves of the batch on one device, the replicas' 8 on
    # two; ghost batches of 8 normalize the same examples together in both.
    one = train(tiny(tmp_path / "one"))
    two = train(tiny(tmp_path / "two", strategy="mirrored"), strategy=two_cpus)
    for a, b in zip(one["history"], two["history"]):
        for key in ("grad_norm_sq", "trace_sigma"):
            assert math.isclose(a[key], b[key], rel_tol=1e-4, abs_tol=1e-6), key
    last = one["history"][-1]
    assert set(last) >= {"grad_norm_sq", "trace_sigma", "b_simple", "b_simple_stderr"}
    with open(os.path.join(tmp_path / "one" / "run", "history.json")) as f:
        assert json.load(f)["history"][-1]["trace_sigma"] == last["trace_sigma"]
    assert os.listdir(tmp_path / "one" / "run" / "logs" / "train")
    out = capsys.readouterr().out
    assert "grad_norm_sq" not in out and ("b_simple" in out) == (last["b_simple"] is not None)


def test_off_logs_no_statistics(tmp_path):
    result = train(tiny(tmp_path, noise_statistics=False, epochs=1))
    assert "b_simple" not in result["history"][0] and "trace_sigma" not in result["history"][0]


def test_resume_reproduces_the_moving_averages(tmp_path):
    class Crash(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            if logs["step"] == 7:
                raise KeyboardInterrupt  # the last checkpoint is step 6, mid-epoch 2

    changes = dict(epochs=3, checkpoint_every_steps=3, checkpoint_every_seconds=1e6,
                   steps_per_execution=2, noise_statistics_decay=0.9)
    crashed = tiny(tmp_path / "crashed", **changes)
    with pytest.raises(KeyboardInterrupt):
        train(crashed, callbacks=[Crash()])
    resumed = train(crashed)
    full = train(tiny(tmp_path / "full", **changes))
    assert resumed["resumed_from_step"] == 6
    keys = ("grad_norm_sq", "trace_sigma", "b_simple", "b_simple_stderr")
    assert [{k: h[k] for k in keys} for h in resumed["history"]] == [
        {k: h[k] for k in keys} for h in full["history"]]


@pytest.mark.parametrize("changes, match", [
    (dict(batch_size=15, base_batch_size=15, ghost_batch_size=0), r"even batch_size.*batch_size=15"),
    (dict(batch_size=16, ghost_batch_size=16), r"divide the half batch of 8.*ghost_batch_size=16"),
    (dict(noise_statistics_decay=1.0), r"noise_statistics_decay"),
])
def test_bad_settings_are_refused_naming_them(tmp_path, changes, match):
    with pytest.raises(ConfigError, match=match):
        train(tiny(tmp_path, **changes))
    assert not os.path.exists(tmp_path / "run" / "checkpoints")
