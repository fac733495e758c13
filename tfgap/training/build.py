"""What a `TrainConfig` builds: the network, its dtype policy, the schedule and the optimizer.

The one home of "the model `config` trains": the trainer, the study, the
tuner and the advisor all call `build_model(config)`, so a setting that shapes
the network (`ghost_batch_size`, `bn_momentum`, `moving_update`,
`weight_decay`, `model_options`, ...) is read in one place.
"""

import keras
import tensorflow as tf

from tfgap import data, models, optimizers, schedules
from tfgap.adaptive import AdaScaleLearningRate
from tfgap.training.config import ConfigError


def policy_name(config):
    """The Keras dtype policy of `config`: `float32`, or mixed precision for the device."""
    if not config.mixed_precision:
        return "float32"
    return "mixed_float16" if tf.config.list_logical_devices("GPU") else "mixed_bfloat16"


def build_model(config, policy="float32"):
    """The network `config` trains: `tfgap.models.build_model` with its settings.

    The model for `config.dataset` (classes, input shape) with `config`'s
    normalization (`ghost_batch_size`, `moving_update`, `bn_momentum`),
    `weight_decay`, `seed` and `model_options`, built under the dtype policy
    `policy` (the global policy is restored afterwards).

    Raises:
        ConfigError: options the network does not take.

    Example:

    >>> from tfgap.training import TrainConfig
    >>> config = TrainConfig(dataset="mnist1d", model="mlp", model_dir="/tmp/run", epochs=1,
    ...                      batch_size=32, model_options={"mlp_width": 8, "mlp_depth": 1})
    >>> build_model(config).output_shape
    (None, 10)
    """
    spec = data.get_spec(config.dataset)
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(policy)
    try:
        return models.build_model(
            config.model,
            num_classes=spec.num_classes,
            input_shape=spec.input_shape,
            ghost_batch_size=config.ghost_batch_size,
            moving_update=config.moving_update,
            weight_decay=model_weight_decay(config),
            bn_momentum=config.bn_momentum,
            seed=config.seed,
            **config.model_options,
        )
    except ValueError as e:
        raise ConfigError(str(e)) from e
    finally:
        keras.config.set_dtype_policy(previous)


def model_weight_decay(config):
    """The L2 coefficient the network's own losses carry: none when LARS applies it.

    With `optimizer="lars"` the weight decay is LARS's (You et al. 2017): it
    enters the trust ratio (`lars_trust_denominator`), so the model's kernels
    carry no L2 loss. Either way every kernel, and nothing else, is decayed.
    """
    return 0.0 if config.optimizer == "lars" else config.weight_decay


def build_schedule(config, plan):
    """`config`'s learning-rate regime as a `LargeBatchSchedule` over `plan`'s steps.

    With `adaptive="lr"` or `"batch"` it is the base batch's regime, in steps of
    `base_batch_size` examples (`plan.base_steps_per_epoch` per epoch, no
    scaling, no regime adaptation): the one `build_optimizer` reads at the
    AdaScale progress.

    Raises:
        ConfigError: a regime that only the step plan shows to be impossible
            (a warm-up longer than the first breakpoint or than the decay).
    """
    adascale = config.adaptive != "off"
    try:
        return schedules.LargeBatchSchedule(
            boundaries=list(config.lr_boundaries),
            values=[v * config.lr_multiplier for v in config.lr_values],
            base_batch_size=config.base_batch_size,
            batch_size=config.base_batch_size if adascale else config.batch_size,
            steps_per_epoch=plan.base_steps_per_epoch if adascale else plan.steps_per_epoch,
            scaling=config.lr_scaling,
            regime_adaptation=config.regime_adaptation,
            warmup_epochs=config.warmup_epochs,
            decay=config.lr_decay,
            decay_epochs=config.decay_epochs,
            decay_power=config.lr_decay_power,
            end_value=config.lr_end * config.lr_multiplier,
            warmup_start=config.warmup_start,
        )
    except ValueError as e:
        raise ConfigError(str(e)) from e


def build_optimizer(config, plan, policy):
    """Momentum SGD or LARS over `build_schedule(config, plan)`, loss-scaled under float16.

    With `adaptive="lr"` or `"batch"` the schedule is wrapped in a
    `tfgap.adaptive.AdaScaleLearningRate` (`gain * schedule(progress)`, over
    two float64 variables created here: call it in the strategy's scope);
    `adascale_rate(optimizer)` returns it.
    """
    schedule = build_schedule(config, plan)
    if config.adaptive != "off":
        schedule = AdaScaleLearningRate(schedule)
    if config.optimizer == "lars":
        # LARS decays every kernel itself (rank <= 1 weights are excluded, as the
        # model's L2 excludes them); see `model_weight_decay`.
        optimizer = optimizers.LARS(learning_rate=schedule, momentum=config.momentum,
                                    eta=config.lars_eta, weight_decay=config.weight_decay,
                                    trust_denominator=config.lars_trust_denominator)
    else:
        optimizer = keras.optimizers.SGD(learning_rate=schedule, momentum=config.momentum,
                                         nesterov=False)
    if policy == "mixed_float16":
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
    return optimizer


def adascale_rate(optimizer):
    """The optimizer's `AdaScaleLearningRate` (the inner optimizer's under loss scaling), or `None`."""
    rate = getattr(optimizer, "inner_optimizer", optimizer)._learning_rate
    return rate if isinstance(rate, AdaScaleLearningRate) else None


def current_learning_rate(optimizer):
    """The rate `optimizer` applies next: its schedule at its own iteration count.

    Under a `LossScaleOptimizer` the count is the inner optimizer's, which
    does not advance on a skipped (non-finite) step.
    """
    return float(keras.ops.convert_to_numpy(optimizer.learning_rate))
