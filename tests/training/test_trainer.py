"""End-to-end `train()` runs on tiny mock data, in this process."""

import json
import math
import os
import time

import numpy as np
import pytest
import tensorflow as tf

from tfgap.data import DatasetNotPreparedError
from tfgap.training import ConfigError, NonFiniteLossError, TrainConfig, train


def tiny(tmp_path, **changes):
    fields = dict(
        dataset="mnist", model="mlp", model_options={"mlp_width": 16, "mlp_depth": 2},
        model_dir=str(tmp_path / "run"), epochs=2, batch_size=16, base_batch_size=16,
        lr_boundaries=(1,), lr_values=(0.1, 0.01), mock_data=True, mock_examples=64,
        strategy="one_device", verbose=2, preemption=False,
    )
    fields.update(changes)
    return TrainConfig(**fields)


def test_one_device_run_writes_result_and_history(tmp_path, capsys):
    # k = 16 / 8 = 2: sqrt scaling and regime adaptation by 2; 64 // 16 = 4 steps per epoch.
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
    distances = [h["weight_distance"] for h in history]
    assert distances[0] > 0
    steps = [s for s, _ in on_disk["distance_record"]]
    assert steps == [0, 1, 2, 3, 4, 6, 7, 8, 10]
    assert on_disk["throughput"] > 0 and on_disk["train"]["accuracy"] is not None
    assert os.path.isdir(os.path.join(config.model_dir, "logs", "train"))
    out = capsys.readouterr().out
    assert "Epoch 1/3" in out and "Epoch 3/3" in out and "test_accuracy" in out


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
    with pytest.raises(ConfigError, match="per-replica batch of 8"):
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
