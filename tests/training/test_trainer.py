"""End-to-end `train()` runs on tiny mock data, in this process."""

import json
import math
import os
import time

import numpy as np
import pytest
import tensorflow as tf

from tfgap.data import DatasetNotPreparedError
from tfgap.training import ConfigError, NonFiniteLossError, TrainConfig, build, plan_steps, train


def tiny(tmp_path, **changes):
    fields = dict(
        dataset="mnist", model="mlp", model_options={"mlp_width": 16, "mlp_depth": 2},
        model_dir=str(tmp_path / "run"), epochs=2, batch_size=16, base_batch_size=16,
        lr_boundaries=(1,), lr_values=(0.1, 0.01), mock_data=True, mock_examples=80,
        validation_examples=16,  # 64 examples trained on: 4 steps per epoch at batch 16
        strategy="one_device", verbose=2, preemption=False,
    )
    fields.update(changes)
    return TrainConfig(**fields)


def test_one_device_run_writes_result_and_history(tmp_path, capsys):
    # k = 16 / 8 = 2: sqrt scaling and regime adaptation by 2; 64 // 16 = 4 steps per epoch
    # (80 mock training examples, 16 of them held out for validation).
    config = tiny(tmp_path, base_batch_size=8, regime_adaptation=True, epochs=1.5,
                  lr_boundaries=(0.5,), weight_decay=1e-4)
    result = train(config)
    assert result["global_step"] == 12  # 1.5 epochs * 2 * 4 steps
    assert result["epochs_completed"] == 3.0 and result["resumed_from_step"] == 0
    with open(os.path.join(config.model_dir, "result.json")) as f:
        on_disk = json.load(f)
    assert on_disk["global_step"] == 12 and on_disk["config"] == config.to_dict()
    history = on_disk["history"]
    assert [h["epoch"] for h in history] == [1, 2, 3]
    # Breakpoint 0.5 epoch * stretch 2 * 4 = step 4: after it, 0.01 * sqrt(2).
    assert math.isclose(history[0]["learning_rate"], 0.01 * math.sqrt(2), rel_tol=1e-6)
    assert all(0.0 <= h["test_accuracy"] <= 1.0 for h in history)
    assert all(0.0 <= h["val_accuracy"] <= 1.0 for h in history)
    assert (on_disk["num_train_examples"], on_disk["num_validation_examples"],
            on_disk["num_test_examples"]) == (64, 16, 80)
    assert on_disk["validation"]["accuracy"] == history[-1]["val_accuracy"]
    assert on_disk["test"]["accuracy"] == history[-1]["test_accuracy"]
    distances = [h["weight_distance"] for h in history]
    assert distances[0] > 0
    steps = [s for s, _ in on_disk["distance_record"]]
    assert steps == [0, 1, 2, 3, 4, 6, 7, 8, 10]
    assert on_disk["throughput"] > 0 and on_disk["train"]["accuracy"] is not None
    assert os.path.isdir(os.path.join(config.model_dir, "logs", "train"))
    out = capsys.readouterr().out
    assert "Epoch 1/3" in out and "Epoch 3/3" in out and "test_accuracy" in out
    assert "val_accuracy" in out
    with open(os.path.join(config.model_dir, "history.json")) as f:
        assert json.load(f)["history"] == history


def test_weight_distance_and_callbacks(tmp_path):
    # A callback snapshots the weights itself; ||w_T - w_0|| is recomputed with NumPy.
    import keras

    class Snapshots(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.batches, self.epochs = [], []

        def on_train_begin(self, logs=None):
            self.w0 = [np.array(v.numpy(), np.float64) for v in self.model.trainable_variables]

        def on_train_batch_end(self, batch, logs=None):
            self.batches.append(logs["step"])

        def on_epoch_end(self, epoch, logs=None):
            self.epochs.append(epoch)

        def on_train_end(self, logs=None):
            self.w = [np.array(v.numpy(), np.float64) for v in self.model.trainable_variables]

    snapshots = Snapshots()
    result = train(tiny(tmp_path, epochs=2), callbacks=[snapshots])
    expected = math.sqrt(sum(np.sum((w - w0) ** 2) for w, w0 in zip(snapshots.w, snapshots.w0)))
    assert math.isclose(result["weight_distance"], expected, rel_tol=1e-6)
    assert snapshots.batches == list(range(1, 9)) and snapshots.epochs == [0, 1]


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path):
    config = tiny(tmp_path, lr_values=(1e30, 1e30), checkpoint_every_steps=1, epochs=3)
    with pytest.raises(NonFiniteLossError, match="not finite") as info:
        train(config)
    assert info.value.step is not None
    with open(os.path.join(config.model_dir, "result.json")) as f:
        record = json.load(f)
    assert record["status"] == "non_finite_loss"
    if info.value.checkpoint:  # every kept checkpoint holds finite weights
        reader = tf.train.load_checkpoint(info.value.checkpoint)
        for name in reader.get_variable_to_shape_map():
            if name.startswith("model/") and name.endswith("VARIABLE_VALUE"):
                assert np.all(np.isfinite(reader.get_tensor(name))), name


def test_missing_dataset_fails_fast_naming_dataset_and_data_dir(tmp_path):
    config = tiny(tmp_path, mock_data=False, data_dir=str(tmp_path / "nothing_here"))
    start = time.time()
    with pytest.raises(DatasetNotPreparedError) as info:
        train(config)
    assert time.time() - start < 30
    assert "mnist" in str(info.value) and str(tmp_path / "nothing_here") in str(info.value)


def test_ghost_size_that_does_not_fit_the_replicas(tmp_path, two_cpus):
    config = tiny(tmp_path, ghost_batch_size=16)  # fits 16, not the 8 per replica on 2 CPUs
    with pytest.raises(ConfigError,
                       match=r"per-replica batch of 8 \(batch_size=16 over 2 replicas\)"):
        train(config, strategy=two_cpus)


def test_mirrored_matches_one_device(tmp_path, two_cpus):
    # The loss is scaled by the global batch and weight decay divided by the replicas,
    # so two replicas take the same steps as one device (plain BN statistics differ per
    # replica, so use ghost batches of the per-replica size on both).
    changes = dict(epochs=1, weight_decay=1e-2, ghost_batch_size=8, deterministic=False)
    one = train(tiny(tmp_path / "one", **changes))
    two = train(tiny(tmp_path / "two", strategy="mirrored", **changes), strategy=two_cpus)
    assert two["num_replicas"] == 2 and one["num_replicas"] == 1
    assert math.isclose(one["weight_distance"], two["weight_distance"], rel_tol=1e-4)
    assert math.isclose(one["train"]["loss"], two["train"]["loss"], rel_tol=1e-4)


def _weights(model_dir):
    reader = tf.train.load_checkpoint(os.path.join(model_dir, "checkpoints"))
    names = sorted(n for n in reader.get_variable_to_shape_map()
                   if n.startswith("model/") and n.endswith("VARIABLE_VALUE"))
    return {n: reader.get_tensor(n) for n in names}


def test_steps_per_execution_does_not_change_the_numbers(tmp_path):
    # Grouping steps into one call only changes when the host looks: same weights,
    # same history and distance record as one step per call.
    runs = {}
    for n in (1, 3, 0):
        config = tiny(tmp_path / f"spe{n}", epochs=3, steps_per_execution=n, deterministic=True)
        runs[n] = (train(config), _weights(config.model_dir))
    (one, w1) = runs[1]
    for n in (3, 0):
        other, w = runs[n]
        assert other["global_step"] == one["global_step"] == 12
        assert other["distance_record"] == one["distance_record"]
        for a, b in zip(one["history"], other["history"]):
            for key in ("loss", "accuracy", "test_loss", "test_accuracy", "weight_distance"):
                assert math.isclose(a[key], b[key], rel_tol=1e-12), (n, key)
        assert w.keys() == w1.keys() and w
        for name in w:
            np.testing.assert_array_equal(w[name], w1[name], err_msg=name)


def test_crash_and_resume_in_process_matches_an_uninterrupted_run(tmp_path):
    import keras

    class Crash(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            if logs["step"] == 7:
                raise KeyboardInterrupt  # a crash after step 7; the last checkpoint is step 6

    changes = dict(epochs=3, deterministic=True, checkpoint_every_steps=3,
                   checkpoint_every_seconds=1e6, steps_per_execution=4)
    crashed = tiny(tmp_path / "crashed", **changes)
    with pytest.raises(KeyboardInterrupt):
        train(crashed, callbacks=[Crash()])
    resumed = train(crashed)
    full = train(tiny(tmp_path / "full", **changes))
    assert resumed["resumed_from_step"] == 6 and resumed["global_step"] == full["global_step"] == 12
    assert [h["epoch"] for h in resumed["history"]] == [1, 2, 3]
    assert resumed["distance_record"] == full["distance_record"]
    a, b = _weights(crashed.model_dir), _weights(tmp_path / "full" / "run")
    for name in a:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)


def test_nan_inside_a_multi_step_call_names_its_step(tmp_path):
    # Epoch 1 is fine (rate 0.1); epoch 2 diverges (rate 1e30) inside a call of 4 steps.
    config = tiny(tmp_path, lr_values=(0.1, 1e30), epochs=3, steps_per_execution=4,
                  checkpoint_every_seconds=0)
    with pytest.raises(NonFiniteLossError) as info:
        train(config)
    assert info.value.step > 4
    with open(os.path.join(config.model_dir, "result.json")) as f:
        record = json.load(f)
    assert record["status"] == "non_finite_loss" and record["global_step"] == info.value.step
    assert f"at step {info.value.step}" in record["message"]
    assert info.value.checkpoint and info.value.checkpoint.endswith("ckpt-4")
    reader = tf.train.load_checkpoint(info.value.checkpoint)
    assert int(reader.get_tensor("step/.ATTRIBUTES/VARIABLE_VALUE")) == 4
    for name in reader.get_variable_to_shape_map():
        if name.startswith("model/") and name.endswith("VARIABLE_VALUE"):
            assert np.all(np.isfinite(reader.get_tensor(name))), name


def test_checkpoint_every_seconds(tmp_path):
    every_epoch = tiny(tmp_path / "a", epochs=3, checkpoint_every_seconds=0, keep_checkpoints=5)
    train(every_epoch)
    state = tf.train.get_checkpoint_state(os.path.join(every_epoch.model_dir, "checkpoints"))
    assert [p.rsplit("-", 1)[1] for p in state.all_model_checkpoint_paths] == ["4", "8", "12"]
    rarely = tiny(tmp_path / "b", epochs=3, checkpoint_every_seconds=1e6, keep_checkpoints=5)
    train(rarely)
    state = tf.train.get_checkpoint_state(os.path.join(rarely.model_dir, "checkpoints"))
    assert [p.rsplit("-", 1)[1] for p in state.all_model_checkpoint_paths] == ["12"]


def _example_keys(dataset):
    """One key per example: its raw bytes and label (examples are told apart by content)."""
    keys = []
    for x, y in dataset:
        x, y = np.asarray(x), np.asarray(y)
        keys += [xi.tobytes() + yi.tobytes() for xi, yi in zip(x, y)]
    return keys


@pytest.mark.parametrize("dataset, model, changes", [
    ("mnist", "mlp", dict(mock_examples=80, validation_examples=16)),
    ("mnist1d", "mlp", dict(mock_data=False, batch_size=512, validation_examples=None)),
])
def test_the_batches_fed_never_hold_a_validation_example(tmp_path, dataset, model, changes):
    from tfgap.training import inputs

    config = tiny(tmp_path, dataset=dataset, model=model, epochs=1, **changes)
    strategy = tf.distribute.OneDeviceStrategy("/cpu:0")
    splits = inputs.count_splits(config)
    plan = plan_steps(config, num_train_examples=splits.num_train)
    fed_input = inputs.TrainInput(config, strategy, plan, config.batch_size)
    iterator = fed_input.iterator(0, 0)
    fed = _example_keys(next(iterator) for _ in range(plan.steps_per_epoch))
    validation = _example_keys(inputs.eval_dataset(config, strategy, "validation",
                                                     splits.num_validation, False))
    expected_validation = 16 if dataset == "mnist" else 400  # MNIST-1D: 10% of 4,000
    assert splits.num_validation == len(validation) == expected_validation
    assert len(fed) == plan.steps_per_epoch * config.batch_size
    assert not set(fed) & set(validation)
    assert len(set(validation)) == len(validation)


def test_validation_split_that_leaves_no_batch_is_a_config_error(tmp_path):
    config = tiny(tmp_path, validation_examples=70)  # 80 - 70 = 10 < batch 16
    with pytest.raises(ConfigError, match=r"at most 64 can be held out.*validation_examples=70"):
        train(config)
    assert not os.path.exists(config.model_dir)


def test_no_validation_split(tmp_path):
    result = train(tiny(tmp_path, validation_examples=0, mock_examples=64, epochs=1))
    assert result["num_validation_examples"] == 0 and result["num_train_examples"] == 64
    assert result["validation"] == {"loss": None, "accuracy": None}
    assert result["test"]["accuracy"] is not None


def test_resume_with_another_validation_split_is_refused_and_overwrites_nothing(tmp_path):
    config = tiny(tmp_path, epochs=1)
    train(config)
    ckpt_dir = os.path.join(config.model_dir, "checkpoints")
    before = {name: os.path.getmtime(os.path.join(ckpt_dir, name)) for name in os.listdir(ckpt_dir)}
    with open(os.path.join(config.model_dir, "config.json")) as f:
        saved_config = f.read()
    other = tiny(tmp_path, epochs=2, validation_examples=8)
    with pytest.raises(ConfigError, match=r"validation_examples: 16 -> 8"):
        train(other)
    after = {name: os.path.getmtime(os.path.join(ckpt_dir, name)) for name in os.listdir(ckpt_dir)}
    assert after == before
    with open(os.path.join(config.model_dir, "config.json")) as f:
        assert f.read() == saved_config


def test_learning_rate_follows_the_optimizer_iterations_through_skipped_steps():
    # A LossScaleOptimizer skips a step whose gradients are not finite, and its iteration
    # count stays; the rate reported for each step is the schedule at that count.
    import keras

    from tfgap.training import step_functions
    from tfgap.training.build import current_learning_rate

    strategy = tf.distribute.OneDeviceStrategy("/cpu:0")
    with strategy.scope():
        model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
        schedule = keras.optimizers.schedules.PiecewiseConstantDecay([0, 1], [0.5, 0.25, 0.125])
        optimizer = keras.optimizers.LossScaleOptimizer(keras.optimizers.SGD(schedule))
        optimizer.build(model.trainable_variables)
        step = tf.Variable(0, dtype=tf.int64)
    train_steps = step_functions.make_train_step(strategy, model, optimizer, step, global_batch_size=2)
    good = (np.ones((2, 3), np.float32), np.zeros((2,), np.int32))
    bad = (np.full((2, 3), np.inf, np.float32), np.zeros((2,), np.int32))
    rates = []
    for batch in (good, bad, good, good):
        iterator = iter(strategy.experimental_distribute_dataset(
            tf.data.Dataset.from_tensors(batch)))
        rows = train_steps(iterator, tf.constant(1, tf.int32)).numpy()
        rates.append(float(rows[0, 4]))
    # Schedule values at iterations 0, 1, 1 (the bad step was skipped), 2.
    np.testing.assert_allclose(rates, [0.5, 0.25, 0.25, 0.125])
    assert int(step.numpy()) == 4 and int(optimizer.iterations.numpy()) == 3
    assert current_learning_rate(optimizer) == 0.125


def test_synthetic_runs_evaluate_only_mock_examples(tmp_path):
    # Synthetic CIFAR-10 keeps the real training length, but a throughput run evaluates
    # only `mock_examples` of the test split (not 10,000) and holds out the mock default
    # (10% of mock_examples) for validation.
    from tfgap.training import inputs

    config = tiny(tmp_path, dataset="cifar10", mock_data=False, synthetic=True, mock_examples=24,
                  validation_examples=None, eval_batch_size=16, epochs=0.001)
    splits = inputs.count_splits(config)
    assert (splits.num_train, splits.num_validation, splits.num_test) == (49998, 2, 24)
    strategy = tf.distribute.OneDeviceStrategy("/cpu:0")
    evaluated = {
        split: sum(int(np.asarray(y).shape[0])
                   for _, y in inputs.eval_dataset(config, strategy, split, size, False))
        for split, size in (("validation", 2), ("test", 24))}
    assert evaluated == {"validation": 16, "test": 32}  # whole batches of 16
    result = train(config)
    assert result["global_step"] == 3 and result["test"]["accuracy"] is not None
    assert result["num_test_examples"] == 24


def _softmax_regression_step(w, b, x, y, lr, rho):
    """One SAM step of softmax regression with plain SGD, in NumPy (float64).

    loss = mean CE(softmax(x w + b), y); g at (w, b); e = rho g / ||g|| over both;
    g* at (w + e_w, b + e_b); the update applies g* at the unperturbed weights.
    """
    def grads(w, b):
        logits = x @ w + b
        p = np.exp(logits - logits.max(axis=1, keepdims=True))
        p /= p.sum(axis=1, keepdims=True)
        p[np.arange(len(y)), y] -= 1.0
        return x.T @ p / len(y), p.mean(axis=0)

    gw, gb = grads(w, b)
    norm = np.sqrt(np.sum(gw ** 2) + np.sum(gb ** 2))
    sw, sb = grads(w + rho * gw / norm, b + rho * gb / norm)
    return w - lr * sw, b - lr * sb


def _one_step(strategy, model, optimizer, batch, **kwargs):
    from tfgap.training import step_functions

    with strategy.scope():
        step = tf.Variable(0, dtype=tf.int64)
    train_steps = step_functions.make_train_step(strategy, model, optimizer, step,
                                       global_batch_size=len(batch[1]), **kwargs)
    iterator = iter(strategy.experimental_distribute_dataset(
        tf.data.Dataset.from_tensors(batch)))
    return train_steps(iterator, tf.constant(1, tf.int32)).numpy()


@pytest.mark.parametrize("replicas", [1, 2])
def test_sam_step_matches_numpy_softmax_regression(replicas, two_cpus):
    import keras

    rng = np.random.default_rng(0)
    x = rng.normal(size=(8, 5)).astype(np.float32)
    y = rng.integers(0, 3, size=8).astype(np.int32)
    strategy = two_cpus if replicas == 2 else tf.distribute.OneDeviceStrategy("/cpu:0")
    with strategy.scope():
        model = keras.Sequential([keras.Input((5,)), keras.layers.Dense(3)])
        optimizer = keras.optimizers.SGD(0.5)
        optimizer.build(model.trainable_variables)
    w, b = (np.asarray(v.numpy(), np.float64) for v in model.trainable_variables)
    _one_step(strategy, model, optimizer, (x, y), sam_rho=0.3)
    expected_w, expected_b = _softmax_regression_step(w, b, x.astype(np.float64), y, 0.5, 0.3)
    got_w, got_b = (v.numpy() for v in model.trainable_variables)
    np.testing.assert_allclose(got_w, expected_w, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(got_b, expected_b, rtol=1e-5, atol=1e-6)
    # rho = 0 would be a plain step: the SAM step is not that one.
    plain_w, _ = _softmax_regression_step(w, b, x.astype(np.float64), y, 0.5, 0.0)
    assert not np.allclose(got_w, plain_w, atol=1e-4)


def test_sam_step_updates_the_moving_statistics_once_from_the_unperturbed_pass():
    import keras

    from tfgap.layers import GhostBatchNormalization

    x = np.random.default_rng(1).normal(2.0, 3.0, size=(8, 4)).astype(np.float32)
    y = np.arange(8, dtype=np.int32) % 2
    strategy = tf.distribute.OneDeviceStrategy("/cpu:0")
    with strategy.scope():
        model = keras.Sequential([keras.Input((4,)),
                                  GhostBatchNormalization(virtual_batch_size=4, momentum=0.9),
                                  keras.layers.Dense(2)])
        optimizer = keras.optimizers.SGD(0.1)
        optimizer.build(model.trainable_variables)
    _one_step(strategy, model, optimizer, (x, y), sam_rho=0.5)
    bn = model.layers[0]
    # The paper's sequential rule: one moving-average step per ghost batch, from the
    # input batch (the layer comes first, so the perturbation cannot change its input).
    mean, var = np.zeros(4), np.ones(4)
    for ghost in (x[:4], x[4:]):
        mean = 0.9 * mean + 0.1 * ghost.mean(axis=0)
        var = 0.9 * var + 0.1 * ghost.var(axis=0, ddof=0)
    np.testing.assert_allclose(bn.moving_mean.numpy(), mean, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(bn.moving_variance.numpy(), var, rtol=1e-4, atol=1e-5)


def test_lars_and_sam_through_the_trainer(tmp_path):
    from tfgap import optimizers
    from tfgap.training import inputs

    config = tiny(tmp_path / "lars", optimizer="lars", lars_eta=0.01, weight_decay=1e-3,
                  epochs=1)
    built = build.build_optimizer(config, plan_steps(config, num_train_examples=64), "float32")
    assert isinstance(built, optimizers.LARS) and built.eta == 0.01
    lars = train(config)
    sgd = train(tiny(tmp_path / "sgd", weight_decay=1e-3, epochs=1))
    sam = train(tiny(tmp_path / "sam", weight_decay=1e-3, epochs=1, sam_rho=0.05,
                     sam_adaptive=True))
    for record in (lars, sgd, sam):
        assert record["global_step"] == 4 and math.isfinite(record["train"]["loss"])
    assert lars["weight_distance"] != sgd["weight_distance"] != sam["weight_distance"]
    assert sam["config"]["sam_rho"] == 0.05 and lars["config"]["optimizer"] == "lars"


@pytest.mark.parametrize("changes, match", [
    (dict(optimizer="adam"), "optimizer"),
    (dict(lars_eta=0.0), "lars_eta"),
    (dict(sam_rho=-0.1), "sam_rho"),
    (dict(sam_rho=float("nan")), "sam_rho"),
])
def test_bad_optimizer_settings(tmp_path, changes, match):
    with pytest.raises(ConfigError, match=match):
        tiny(tmp_path, **changes)


def test_label_smoothing_step_matches_numpy_softmax_regression():
    import keras

    rng = np.random.default_rng(2)
    x = rng.normal(size=(8, 5)).astype(np.float32)
    y = rng.integers(0, 3, size=8).astype(np.int32)
    strategy = tf.distribute.OneDeviceStrategy("/cpu:0")
    with strategy.scope():
        model = keras.Sequential([keras.Input((5,)), keras.layers.Dense(3)])
        optimizer = keras.optimizers.SGD(0.5)
        optimizer.build(model.trainable_variables)
    w, b = (np.asarray(v.numpy(), np.float64) for v in model.trainable_variables)
    rows = _one_step(strategy, model, optimizer, (x, y), label_smoothing=0.2)
    # Target (1 - s) one_hot + s / C; loss mean of -sum target * log p; gradient p - target.
    logits = x.astype(np.float64) @ w + b
    log_p = logits - logits.max(axis=1, keepdims=True)
    log_p -= np.log(np.exp(log_p).sum(axis=1, keepdims=True))
    target = 0.8 * np.eye(3)[y] + 0.2 / 3
    np.testing.assert_allclose(rows[0, 0], -(target * log_p).sum(axis=1).mean(), rtol=1e-5)
    delta = (np.exp(log_p) - target) / len(y)
    got_w, got_b = (v.numpy() for v in model.trainable_variables)
    np.testing.assert_allclose(got_w, w - 0.5 * x.T @ delta, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(got_b, b - 0.5 * delta.sum(axis=0), rtol=1e-5, atol=1e-6)


def test_lars_applies_the_weight_decay_the_model_would_otherwise_carry(tmp_path):
    # One LARS step with the decay in the optimizer (the trainer's way) equals one with the
    # same decay as the model's L2 loss (gradient g + wd w) and a LARS without decay, under
    # the default denominator ||g + wd w||; under ||g|| + wd ||w|| it differs.
    from tfgap import optimizers
    from tfgap.training import inputs

    config = tiny(tmp_path, optimizer="lars", lars_eta=0.05, weight_decay=0.1)
    assert build.model_weight_decay(config) == 0.0 and not build.build_model(config).losses
    assert build.model_weight_decay(config.replace(optimizer="sgd")) == 0.1
    plan = plan_steps(config, num_train_examples=64)
    built = build.build_optimizer(config, plan, "float32")
    assert built.coupled_weight_decay == 0.1 and built.trust_denominator == "norm_of_sum"

    x = np.random.default_rng(3).normal(size=(16, 28, 28, 1)).astype(np.float32)
    y = np.arange(16, dtype=np.int32) % 10
    strategy = tf.distribute.OneDeviceStrategy("/cpu:0")

    def step(model_decay, make_optimizer):
        with strategy.scope():
            model = build.build_model(config.replace(optimizer="sgd",
                                                       weight_decay=model_decay))
            optimizer = make_optimizer()
            optimizer.build(model.trainable_variables)
        _one_step(strategy, model, optimizer, (x, y))
        return [v.numpy() for v in model.trainable_variables]

    ours = step(0.0, lambda: build.build_optimizer(config, plan, "float32"))
    coupled = step(0.1, lambda: optimizers.LARS(0.1, momentum=0.9, eta=0.05, weight_decay=0.0))
    for a, b in zip(ours, coupled):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    sums = step(0.0, lambda: build.build_optimizer(
        config.replace(lars_trust_denominator="sum_of_norms"), plan, "float32"))
    assert not all(np.allclose(a, b, atol=1e-7) for a, b in zip(ours, sums))


def test_polynomial_regime_through_the_trainer(tmp_path):
    # The run's length is the decay's: the rate rises from 0 to the peak over the warm-up
    # and falls to lr_end at the last step as the closed form says.
    config = tiny(tmp_path, epochs=3, lr_boundaries=(), lr_values=(0.4,), lr_decay="polynomial",
                  lr_end=0.01, warmup_epochs=1, warmup_start="zero", label_smoothing=0.1,
                  optimizer="lars", lars_trust_denominator="sum_of_norms", weight_decay=1e-3,
                  summary_every_steps=1)
    result = train(config)
    assert result["global_step"] == 12 and math.isfinite(result["train"]["loss"])
    from tfgap.training import inputs

    plan = plan_steps(config, num_train_examples=64)
    schedule = build.build_schedule(config, plan)
    assert schedule.decay_steps == plan.total_steps == 12
    expected = [0.4 * s / 4 if s < 4 else 0.01 + 0.39 * (1 - (s - 4) / 8) ** 2
                for s in range(13)]
    got = [float(schedule(s)) for s in range(13)]
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-7)
    # The run's own optimizer after each epoch (4 steps): 0.4, 0.1075, 0.01.
    np.testing.assert_allclose([e["learning_rate"] for e in result["history"]],
                               [expected[4], expected[8], expected[12]], rtol=1e-6)


@pytest.mark.parametrize("changes, match", [
    (dict(lr_decay="polynomial"), "boundaries"),  # tiny has lr_boundaries=(1,)
    (dict(lr_decay="polynomial", lr_boundaries=(), lr_values=(0.1,), lr_end=0.2), "end"),
    (dict(lr_decay="cosine"), "lr_decay"),
    (dict(warmup_start="one"), "warmup_start"),
    (dict(label_smoothing=1.0), "label_smoothing"),
    (dict(lars_trust_denominator="max"), "lars_trust_denominator"),
])
def test_bad_regime_settings(tmp_path, changes, match):
    with pytest.raises(ConfigError, match=match):
        tiny(tmp_path, **changes)


def test_a_warmup_that_outlasts_the_decay_is_refused_before_anything_is_written(tmp_path):
    config = tiny(tmp_path, epochs=1, lr_boundaries=(), lr_values=(0.1,),
                  lr_decay="polynomial", warmup_epochs=2)
    with pytest.raises(ConfigError, match="warm-up"):
        train(config)
    assert not os.path.exists(config.model_dir)
