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
