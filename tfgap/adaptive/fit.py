"""`AdaScaleModel`: AdaScale in `model.fit`, from the gradient statistics it measures.

The statistics are `tfgap.advisor.GradientStatisticsModel`'s (this model
subclasses it): each step measures `|G|^2` and `tr(Sigma)` from two small
gradients (the batch's halves, or the replicas') and folds them into
bias-corrected moving averages. AdaScale adds the gain, the progress and the
rate (`tfgap.adaptive.gain`, `tfgap.adaptive.AdaScaleLearningRate`).
TensorFlow backend only.
"""

import keras
from keras import ops

from tfgap import _validation, backend
from tfgap.adaptive.gain import gain_formula
from tfgap.adaptive.schedule import AdaScaleLearningRate
from tfgap.advisor.gradient_statistics import DEFAULT_DECAY

backend.require_tensorflow("tfgap.adaptive.AdaScaleModel")  # before TensorFlow: its name

import tensorflow as tf  # noqa: E402

from tfgap.advisor.fit_statistics import GradientStatisticsModel  # noqa: E402


@keras.saving.register_keras_serializable(package="tfgap")
class AdaScaleModel(GradientStatisticsModel):
    """Trains `model` with `model.fit` at any batch, on a regime written for `base_batch_size`.

    Compile it with the optimizer and learning-rate schedule of the base
    run (SGD, with or without momentum, its schedule in steps of
    `base_batch_size` examples) and fit it at a batch `B >= base_batch_size`:
    the rate of each step is `r_t * schedule(tau_t)` with the AdaScale gain

    ```
    r_t = (1 + B_simple / base_batch_size) / (1 + B_simple / B)    in [1, B / base_batch_size]
    ```

    and the progress `tau_t = r_0 + ... + r_{t-1}` (Johnson et al. 2020,
    "AdaScale SGD: A User-Friendly Algorithm for Distributed Training",
    arXiv 2007.05105). The base run's end is where `progress` reaches its
    number of steps: `history.history["progress"]` says when.

    Each `train_step`, in the graph:

    1. computes the gradients and the two squared norms (as
       `GradientStatisticsModel` does);
    2. computes the gain from the moving averages *before* this step's
       statistics are folded in (those of the steps before it: the step's
       own noisy gradient does not set its own rate; gain 1 before any
       measured step) and `B`, the step's global batch;
    3. folds this step's statistics into the averages;
    4. applies the gradients at `gain * schedule(progress)`;
    5. advances `progress += gain` (by `gain` times the optimizer's
       iterations advanced, so a step a `LossScaleOptimizer` skips does not
       count).

    At `B == base_batch_size` the gain is exactly 1 and the progress counts
    the steps, so the run is the base run (with the statistics' halves
    split of `GradientStatisticsModel`). A last batch smaller than
    `base_batch_size` gets the formula's gain in `[B / base_batch_size, 1]`.

    `compile` wraps the optimizer's learning rate (a schedule or a float)
    in an `AdaScaleLearningRate` over this model's two float64 variables,
    `gain` and `progress`, which are saved with its weights. The logs carry
    `gain` (the one the step used) and `progress` (after the step) beside
    `b_simple`, `grad_norm_sq` and `trace_sigma`.

    Args:
        model: the `keras.Model` to train; available as `inner_model`.
        base_batch_size: `b0`, the batch the learning-rate schedule was
            written for (an integer >= 1).
        decay: the statistics' moving-average decay in [0, 1) (default
            0.99; lower it for runs of a few hundred steps).
        **kwargs: `keras.Model` arguments such as `name`.

    Example:

    >>> import numpy as np
    >>> inner = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    >>> model = AdaScaleModel(inner, base_batch_size=8, decay=0.9)
    >>> base = keras.optimizers.schedules.PiecewiseConstantDecay([64], [0.1, 0.01])
    >>> model.compile(optimizer=keras.optimizers.SGD(base, momentum=0.9),
    ...               loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    >>> rng = np.random.default_rng(0)
    >>> x, y = rng.normal(size=(256, 4)).astype("float32"), rng.integers(0, 3, 256)
    >>> history = model.fit(x, y, batch_size=32, epochs=2, verbose=0)
    >>> gain = history.history["gain"][-1]
    >>> bool(1.0 <= gain <= 4.0), bool(16 <= history.history["progress"][-1] <= 64)
    (True, True)
    """

    def __init__(self, model, base_batch_size, decay=DEFAULT_DECAY, **kwargs):
        super().__init__(model, decay=decay, **kwargs)
        self.base_batch_size = _validation.positive_int("base_batch_size", base_batch_size)
        self.gain = self.add_weight(shape=(), dtype="float64", initializer="ones",
                                    trainable=False, name="gain",
                                    aggregation="only_first_replica")
        self.progress = self.add_weight(shape=(), dtype="float64", initializer="zeros",
                                        trainable=False, name="progress",
                                        aggregation="only_first_replica")

    def compile(self, optimizer="rmsprop", **kwargs):
        """`keras.Model.compile`, then the optimizer's rate becomes an `AdaScaleLearningRate`.

        The optimizer's rate (a schedule or a float) is the base batch's;
        one that is already an `AdaScaleLearningRate` (a reloaded model's)
        is rebuilt over this model's variables.
        """
        super().compile(optimizer=optimizer, **kwargs)
        target = getattr(self.optimizer, "inner_optimizer", self.optimizer)
        rate = target._learning_rate
        if isinstance(rate, AdaScaleLearningRate):
            rate = rate.schedule
        elif isinstance(rate, keras.Variable):
            rate = float(ops.convert_to_numpy(rate))
        elif not isinstance(rate, keras.optimizers.schedules.LearningRateSchedule):
            raise ValueError(
                "Expected the optimizer's learning rate to be a float or a keras.optimizers."
                f"schedules.LearningRateSchedule. Received: learning_rate={rate!r}")
        target.learning_rate = AdaScaleLearningRate(rate, gain=self.gain,
                                                     progress=self.progress)

    def compile_from_config(self, config):
        # keras.Model skips compiling a model whose `compile` is overridden: compile here.
        config = keras.saving.deserialize_keras_object(config)
        self.compile(**config)
        if hasattr(self, "optimizer") and self.built:
            self.optimizer.build(self.trainable_variables)

    def train_step(self, data):
        iterations = _read(self.optimizer.iterations)
        logs = super().train_step(data)  # calls _update (the gain), then applies
        applied = tf.cast(_read(self.optimizer.iterations) - iterations, tf.float64)
        gain = _read(self.gain)
        self.progress.assign_add(gain * applied)
        logs.update(gain=gain, progress=_read(self.progress))
        return logs

    def _update(self, small_sq, big_sq, small_batch, big_batch, measured):
        # GradientStatisticsModel.train_step calls this right before `optimizer.apply`, with
        # `big_batch` the step's global batch: the gain comes from the averages before the fold.
        b_simple = self._statistics()["b_simple"]
        self.gain.assign(gain_formula(b_simple, float(self.base_batch_size),
                                      tf.cast(big_batch, tf.float64), ops))
        super()._update(small_sq, big_sq, small_batch, big_batch, measured)

    def get_config(self):
        config = super().get_config()
        config["base_batch_size"] = self.base_batch_size
        return config


def _read(variable):
    """The variable's value now, as a tensor (`ops.convert_to_tensor` may keep the variable)."""
    return tf.identity(variable.value if isinstance(variable, keras.Variable) else variable)
