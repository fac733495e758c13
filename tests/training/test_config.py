"""TrainConfig validation, the step plan and strategy selection (no training)."""

import json

import pytest
import tensorflow as tf

from tfgap.training import ConfigError, TrainConfig, plan_steps, resolve_strategy_name
from tfgap.training import strategy as strategy_lib


def make(**changes):
    base = dict(dataset="cifar10", model="resnet44", model_dir="/tmp/x", epochs=164,
                batch_size=4096, lr_boundaries=(81, 122), lr_values=(0.1, 0.01, 0.001))
    base.update(changes)
    return TrainConfig(**base)


def test_round_trip_through_json():
    config = make(regime_adaptation=4.0, model_options={"mlp_width": 8}, ghost_batch_size=128)
    again = TrainConfig.from_dict(json.loads(json.dumps(config.to_dict())))
    assert again == config
    assert again.lr_boundaries == (81.0, 122.0)


@pytest.mark.parametrize(
    "changes, received",
    [
        (dict(ghost_batch_size=3000), "ghost_batch_size=3000"),
        (dict(ghost_batch_size=96), "ghost_batch_size=96"),
        (dict(lr_values=(0.1,)), "lr_values=[0.1]"),
        (dict(lr_boundaries=(122, 81)), "lr_boundaries=[122.0, 81.0]"),
        (dict(lr_scaling="cube"), "lr_scaling='cube'"),
        (dict(regime_adaptation=0.5), "regime_adaptation=0.5"),
        (dict(dataset="svhn"), "dataset='svhn'"),
        (dict(strategy="tpu"), "tpu=None"),
        (dict(mock_data=True, synthetic=True), "synthetic=True"),
        (dict(batch_size=0), "batch_size=0"),
        (dict(epochs=-1), "epochs=-1"),
        (dict(steps_per_execution=-1), "steps_per_execution=-1"),
        (dict(checkpoint_every_seconds=-5), "checkpoint_every_seconds=-5"),
        (dict(checkpoint_every_seconds=float("inf")), "checkpoint_every_seconds=inf"),
    ],
)
def test_bad_values_name_what_was_received(changes, received):
    with pytest.raises(ConfigError, match="Expected") as info:
        make(**changes)
    assert received in str(info.value)
    assert isinstance(info.value, ValueError)


def test_ghost_must_divide_the_per_replica_batch():
    config = make(batch_size=512, ghost_batch_size=128)
    assert config.per_replica_batch_size(4) == 128
    with pytest.raises(ConfigError, match="per-replica batch of 64"):
        config.per_replica_batch_size(8)
    with pytest.raises(ConfigError, match="divisible by the 3 replicas"):
        config.per_replica_batch_size(3)


def test_plan_steps_by_hand():
    # 50000 // 4096 = 12 steps per epoch; regime adaptation stretches by 4096 / 128 = 32.
    plan = plan_steps(make(regime_adaptation=True), num_train_examples=50000)
    assert (plan.steps_per_epoch, plan.stretch, plan.total_steps) == (12, 32.0, 164 * 32 * 12)
    plan = plan_steps(make(regime_adaptation=2.5, epochs=3), num_train_examples=50000)
    assert plan.total_steps == 90 and plan.num_epochs == 8  # 3 * 2.5 * 12 = 90 = 7.5 epochs
    assert plan.steps_in_epoch(7) == 6 and plan.epoch_of(90) == (7, 6)
    plan = plan_steps(make(), num_train_examples=50000)
    assert plan.total_steps == 164 * 12
    with pytest.raises(ConfigError, match="batch_size=4096"):
        plan_steps(make(), num_train_examples=100)


@pytest.mark.parametrize(
    "args, expected",
    [
        (dict(name="auto"), "one_device"),
        (dict(name="auto", num_gpus=1), "one_device"),
        (dict(name="auto", num_gpus=4), "mirrored"),
        (dict(name="auto", num_cpus=2), "mirrored"),
        (dict(name="auto", tpu="local"), "tpu"),
        (dict(name="auto", tf_config={"cluster": {"worker": ["a:1", "b:2"]}}), "multi_worker"),
        (dict(name="auto", tf_config={"cluster": {"worker": ["a:1"]}}), "one_device"),
        (dict(name="mirrored"), "mirrored"),
    ],
)
def test_strategy_selection(args, expected):
    name = args.pop("name")
    assert resolve_strategy_name(name, **args) == expected


def test_tpu_path_with_a_stand_in(monkeypatch):
    calls = []

    class Resolver:
        def __init__(self, tpu):
            calls.append(("resolver", tpu))

    monkeypatch.setattr(tf.distribute.cluster_resolver, "TPUClusterResolver", Resolver)
    monkeypatch.setattr(tf.config, "experimental_connect_to_cluster",
                        lambda r: calls.append(("connect", type(r).__name__)))
    monkeypatch.setattr(tf.tpu.experimental, "initialize_tpu_system",
                        lambda r: calls.append(("initialize", type(r).__name__)))
    monkeypatch.setattr(tf.distribute, "TPUStrategy",
                        lambda r: calls.append(("strategy", type(r).__name__)) or "tpu-strategy")
    assert strategy_lib.make_strategy("auto", tpu="grpc://10.0.0.2:8470") == "tpu-strategy"
    assert calls == [("resolver", "grpc://10.0.0.2:8470"), ("connect", "Resolver"),
                     ("initialize", "Resolver"), ("strategy", "Resolver")]


def test_one_device_and_mirrored_strategies(two_cpus):
    assert strategy_lib.make_strategy("one_device").num_replicas_in_sync == 1
    assert strategy_lib.make_strategy("mirrored").num_replicas_in_sync == 2
    assert strategy_lib.task_info(two_cpus) == (None, None, True)


def test_each_field_is_validated_from_its_declaration():
    from tfgap.training.config import settings

    s = settings()
    assert s["momentum"].bounds_text() == "in [0, 1)" and s["epochs"].bounds_text() == "> 0"
    assert s["verbose"].describe() == "an integer in [0, 2]"
    assert s["lr_scaling"].describe() == "one of: sqrt, linear, none"
    for changes, message in [
        (dict(momentum=1.0), "Expected `momentum` in [0, 1). Received: momentum=1"),
        (dict(bn_momentum=-0.5), "Expected `bn_momentum` in [0, 1). Received: bn_momentum=-0.5"),
        (dict(verbose=3), "Expected `verbose` in [0, 2]. Received: verbose=3"),
        (dict(lr_multiplier=0), "Expected `lr_multiplier` > 0. Received: lr_multiplier=0"),
        (dict(moving_update="mean"), "Expected `moving_update` in ['sequential', 'averaged', "
                                     "'full_batch']. Received: moving_update='mean'"),
        (dict(model="resnet1000"), "Received: model='resnet1000'"),
        (dict(download=1), "Expected `download` to be a bool. Received: download=1"),
        (dict(model_dir=""), "Received: model_dir=''"),
        (dict(lr_boundaries=(0, 100)), "Expected every entry of `lr_boundaries` > 0. "
                                       "Received: lr_boundaries=[0.0, 100.0]"),
    ]:
        with pytest.raises(ConfigError) as info:
            make(**changes)
        assert message in str(info.value), str(info.value)
    # Normalized: ints to floats where floats are declared, lists to tuples, dicts sorted.
    config = make(momentum=0, lr_values=[1, 0.1, 0.01], model_options={"b": 1, "a": 2})
    assert config.momentum == 0.0 and isinstance(config.momentum, float)
    assert config.lr_values == (1.0, 0.1, 0.01) and list(config.model_options) == ["a", "b"]


def test_a_declaration_needs_a_known_group_and_kind():
    from tfgap.training.config import setting

    with pytest.raises(ValueError, match="group"):
        setting("Help.", "misc", "int", default=0)
    with pytest.raises(ValueError, match="kind"):
        setting("Help.", "data", "complex", default=0)
