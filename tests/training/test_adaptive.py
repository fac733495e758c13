"""`adaptive="lr"`: AdaScale's gain in the trainer (Johnson et al. 2020, arXiv 2007.05105).

The runs are `test_noise_statistics.tiny`'s (an MLP on 64 mock MNIST examples, ghost
batches of 8, statistics decay 0.5). Kill -9 and multi-worker runs are in
tests/recipes/test_distributed.py.
"""

import glob
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from tests.training.test_noise_statistics import tiny
from tests.training.test_trainer import _weights
from tfgap.adaptive import AdaScaleLearningRate, adascale_gain
from tfgap.recipes import recipe_flags
from tfgap.training import ConfigError, plan_steps, step_functions, train

# 64 training examples; the regime's drop at epoch 1 and a warm-up of half an epoch from 0.
REGIME = dict(lr_scaling="none", lr_boundaries=(1,), lr_values=(0.05, 0.005), warmup_epochs=0.5,
              warmup_start="zero")


def adascale(tmp_path, **changes):
    """`tiny` with AdaScale on (its noise statistics implied) and `REGIME`."""
    return tiny(tmp_path, **{**REGIME, "adaptive": "lr", "noise_statistics": False, **changes})


class StepLogs(keras.callbacks.Callback):
    """Every step's logs."""

    def __init__(self):
        super().__init__()
        self.logs = []

    def on_train_batch_end(self, batch, logs=None):
        self.logs.append(dict(logs))


def base_schedule(progress, base_steps_per_epoch):
    """`REGIME`'s rate at the progress `progress`, in float32 as `LargeBatchSchedule` makes it.

    The progress is truncated to a step: 0.05 * step / warm-up steps during the warm-up
    (half an epoch), 0.05 until epoch 1, 0.005 after.
    """
    step = int(progress)
    warmup = round(0.5 * base_steps_per_epoch)
    if step < warmup:
        return np.float32(0.0) + np.float32(0.05) * (np.float32(step) / np.float32(warmup))
    return np.float32(0.05 if step < base_steps_per_epoch else 0.005)


def without_seconds(entry):
    return {k: v for k, v in entry.items() if k != "seconds"}


def test_at_the_base_batch_the_gain_is_one_and_the_run_is_the_measured_run_bit_for_bit(tmp_path):
    # B = b0 = 16: the gain is exactly 1 and the progress counts the steps, so the rate is the
    # schedule's at the step. The reference measures the noise statistics too: on one replica
    # they split each batch into two halves whose gradients are summed, which equals the plain
    # step's gradient only up to rounding (test_noise_statistics.test_off_is_the_plain_step_
    # bit_for_bit), so bitwise equality holds against that run, not the plain one.
    measured = train(tiny(tmp_path / "measured", epochs=2, **REGIME))
    scaled = train(adascale(tmp_path / "adascale", epochs=2))
    assert scaled["global_step"] == measured["global_step"] == scaled["total_steps"] == 8
    for plain, entry in zip(measured["history"], scaled["history"], strict=True):
        assert set(entry) - set(plain) == {"gain", "progress"}
        assert without_seconds(plain) == {k: entry[k] for k in without_seconds(plain)}
        assert entry["gain"] == 1.0 and entry["progress"] == entry["step"]
    assert scaled["distance_record"] == measured["distance_record"]
    a, b = _weights(tmp_path / "measured" / "run"), _weights(tmp_path / "adascale" / "run")
    assert a.keys() == b.keys() and a
    for name in a:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)
    assert scaled["adascale"] == {"steps": 8, "progress": 8.0, "base_steps": 8, "gain": 1.0}
    assert "adascale" not in measured.to_dict()


def test_at_four_times_the_base_batch_the_run_ends_when_the_progress_reaches_the_base_steps(
        tmp_path, capsys):
    # b0 = 8, B = 32: the base regime is 3 epochs of 64 // 8 = 8 steps, T0 = 24; the plan allows
    # 24 steps of 32 (gain 1 throughout), the gain (up to 4) ends the run sooner.
    config = adascale(tmp_path, batch_size=32, base_batch_size=8, summary_every_steps=1)
    plan = plan_steps(config, num_train_examples=64)
    assert (plan.base_steps, plan.total_steps, plan.steps_per_epoch, plan.num_epochs) == (
        24, 24, 2, 12)
    steps = StepLogs()
    result = train(config, callbacks=[steps])
    gains = [log["gain"] for log in steps.logs]
    assert all(1.0 <= g <= 4.0 for g in gains) and max(gains) > 1.5, gains
    # The progress is the sum of the gains before, in float64, as the graph adds them.
    progress, before = np.float64(0.0), []
    for log in steps.logs:
        before.append(float(progress))
        progress = progress + np.float64(log["gain"])
        assert log["progress"] == float(progress)
    # It ends at the first step that reaches T0: fewer steps than the plan's bound.
    assert before[-1] < 24 <= steps.logs[-1]["progress"]
    assert result["global_step"] == len(steps.logs) < result["total_steps"] == 24
    assert result["adascale"] == {"steps": len(steps.logs), "progress": steps.logs[-1]["progress"],
                                  "base_steps": 24, "gain": gains[-1]}
    # Each step's rate is its gain times the base schedule at the progress before it.
    expected = [np.float32(g * np.float64(base_schedule(t, 8))) for g, t in zip(gains, before)]
    np.testing.assert_allclose([log["learning_rate"] for log in steps.logs], expected, rtol=1e-6)
    # Per epoch: the last step's gain and progress; the rate at that gain and progress; the
    # next epoch's first gain comes from the noise scale logged at this epoch's end.
    by_step = {log["step"]: log for log in steps.logs}
    history = result["history"]
    assert history[-1]["step"] == len(steps.logs)
    for entry in history:
        last = by_step[entry["step"]]
        assert (entry["gain"], entry["progress"]) == (last["gain"], last["progress"])
        np.testing.assert_allclose(entry["learning_rate"], entry["gain"] * np.float64(
            base_schedule(entry["progress"], 8)), rtol=1e-6)
        if entry["step"] + 1 in by_step:
            assert by_step[entry["step"] + 1]["gain"] == adascale_gain(entry["b_simple"], 8, 32)
    # TensorBoard has them beside b_simple; the progress line has them too.
    tags = set()
    for path in glob.glob(os.path.join(config.model_dir, "logs", "train", "events*")):
        for event in tf.compat.v1.train.summary_iterator(path):
            tags.update(value.tag for value in event.summary.value)
    assert {"gain", "progress", "b_simple", "learning_rate"} <= tags
    out = capsys.readouterr().out
    assert f"gain: {history[-1]['gain']:.4f}" in out and "progress: " in out


def test_mirrored_gains_lie_between_one_and_the_batch_ratio(tmp_path, two_cpus):
    # Two replicas of 16: the statistics compare each replica's gradient with the all-reduced one.
    steps = StepLogs()
    result = train(adascale(tmp_path, batch_size=32, base_batch_size=8, strategy="mirrored"),
                   strategy=two_cpus, callbacks=[steps])
    assert result["num_replicas"] == 2
    gains = [log["gain"] for log in steps.logs]
    assert all(1.0 <= g <= 4.0 for g in gains) and max(gains) > 1.0, gains
    assert result["adascale"]["progress"] >= 24 > result["adascale"]["progress"] - gains[-1]
    assert result["global_step"] < 24


def test_a_resume_with_adaptive_changed_is_refused_naming_old_and_new(tmp_path, capsys):
    off = tiny(tmp_path, epochs=1, noise_statistics=False, lr_scaling="none")
    train(off)
    with pytest.raises(ConfigError, match=r"adaptive: 'off' -> 'lr'"):
        train(off.replace(epochs=2, adaptive="lr"))
    # On purpose: the progress starts at the examples seen (4 steps of b0 = B = 16).
    result = train(off.replace(epochs=2, adaptive="lr", resume_with_changes=True))
    assert "holds no AdaScale progress" in capsys.readouterr().out
    assert result["resumed_from_step"] == 4 and result["global_step"] == 8
    assert [h["progress"] for h in result["history"] if "progress" in h] == [8.0]


@pytest.mark.parametrize("changes, match", [
    (dict(lr_scaling="sqrt"), (r"lr_scaling='none' with adaptive='lr'.*adaptive='lr', "
                               r"lr_scaling='sqrt'")),
    (dict(regime_adaptation=True), r"adaptive='lr', regime_adaptation=True"),
    (dict(batch_size=8), r"adaptive='lr', batch_size=8, base_batch_size=16"),
    (dict(adaptive="both"), r"Expected `adaptive` in \['off', 'lr', 'batch'\]. Received: "
                            r"adaptive='both'"),
    (dict(max_batch_size=64), r"max_batch_size=0 unless adaptive='batch'.*adaptive='lr', "
                              r"max_batch_size=64"),
])
def test_contradictory_settings_are_refused_naming_both(tmp_path, changes, match):
    with pytest.raises(ConfigError, match=match):
        adascale(tmp_path, **changes)


def test_the_command_line_refuses_adaptive_with_sqrt_scaling_in_one_line():
    with pytest.raises(recipe_flags.UsageError) as info:
        recipe_flags.parse(["prog", "--adaptive=lr"], "mnist")
    message = str(info.value)
    assert "--adaptive='lr', --lr_scaling='sqrt'" in message and "\n" not in message
    config = recipe_flags.parse(["prog", "--adaptive=lr", "--lr_scaling=none"], "mnist")
    assert config.adaptive == "lr" and config.measures_noise and not config.noise_statistics
    assert "--adaptive=lr" in recipe_flags.config_flags(config, "mnist")


def test_the_plan_is_the_base_regimes_steps_where_the_splits_do_not_divide(tmp_path):
    # 100 examples: 6 steps of 16 per epoch, 1 of 64. Regime adaptation would plan
    # 3 * 4 * 1 = 12 steps of 64; T0 = 3 * 6 = 18 base steps, the bound at gain 1.
    config = adascale(tmp_path, batch_size=64, base_batch_size=16)
    plan = plan_steps(config, num_train_examples=100)
    assert (plan.base_steps_per_epoch, plan.base_steps, plan.total_steps) == (6, 18, 18)
    assert (plan.steps_per_epoch, plan.stretch, plan.num_epochs) == (1, 4.0, 18)
    ra = plan_steps(config.replace(adaptive="off", regime_adaptation=True),
                    num_train_examples=100)
    assert ra.total_steps == 12 and plan_steps(config.replace(
        adaptive="off"), num_train_examples=100).base_steps is None


def test_a_step_the_loss_scale_optimizer_skips_does_not_advance_the_progress():
    strategy = tf.distribute.OneDeviceStrategy("/cpu:0")
    with strategy.scope():
        model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
        rate = AdaScaleLearningRate(keras.optimizers.schedules.PiecewiseConstantDecay(
            [3], [0.5, 0.25]))
        optimizer = keras.optimizers.LossScaleOptimizer(keras.optimizers.SGD(rate))
        optimizer.build(model.trainable_variables)
        step = tf.Variable(0, dtype=tf.int64)
    train_steps = step_functions.make_train_step(strategy, model, optimizer, step,
                                                 global_batch_size=2, adascale=rate)
    good = (np.ones((2, 3), np.float32), np.zeros((2,), np.int32))
    bad = (np.full((2, 3), np.inf, np.float32), np.zeros((2,), np.int32))
    rates, progress = [], []
    rate.assign(gain=2.0)
    for batch in (good, bad, good):
        iterator = iter(strategy.experimental_distribute_dataset(
            tf.data.Dataset.from_tensors(batch)))
        rates.append(float(train_steps(iterator, tf.constant(1, tf.int32)).numpy()[0, 4]))
        progress.append(float(rate.progress.numpy()))
    assert progress == [2.0, 2.0, 4.0]  # the skipped step adds nothing
    np.testing.assert_allclose(rates, [1.0, 1.0, 1.0])  # 2 * 0.5 while progress < 3
    assert int(step.numpy()) == 3 and int(optimizer.iterations.numpy()) == 2
