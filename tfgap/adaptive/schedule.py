"""`AdaScaleLearningRate`: a base-batch schedule read at the AdaScale progress, times the gain.

A Keras 3 optimizer reads its rate through `optimizer.learning_rate` each
time it applies gradients: a `LearningRateSchedule` is called with the
optimizer's step count, and a float is a variable. This schedule ignores
that count: it holds two float64 variables, the gain `r_t` and the progress
`tau_t` (see `tfgap.adaptive.gain`), and returns `r_t * schedule(tau_t)`, so
assigning them (in the graph or from the host) sets the rate the next
`apply` uses, under `tf.function` and `tf.distribute` alike.
"""

import keras
from keras import ops

_SCHEDULE = keras.optimizers.schedules.LearningRateSchedule


@keras.saving.register_keras_serializable(package="tfgap")
class AdaScaleLearningRate(_SCHEDULE):
    """`gain * schedule(progress)`: a regime written for a base batch, run at a bigger one.

    The optimizer's step count (the argument Keras passes) is not used: the
    base schedule is read at the `progress` variable, the AdaScale progress
    in base-batch steps, and multiplied by the `gain` variable (Johnson et
    al. 2020, "AdaScale SGD: A User-Friendly Algorithm for Distributed
    Training", arXiv 2007.05105, Algorithm 1). Both are non-trainable
    float64 variables (`aggregation="only_first_replica"`), created here
    unless given; the product is computed in float64 and cast to the
    schedule's dtype, so a gain of exactly 1 gives the schedule's own bits.

    The schedule receives the progress as a float64 scalar tensor, which is
    not an integer once a gain is fractional: `PiecewiseConstantDecay` drops
    once the progress is past a boundary, `ExponentialDecay` and
    `CosineDecay` read it as a float, `tfgap.LargeBatchSchedule` truncates
    it to an integer (its boundaries are integer steps, so it drops at the
    same point). Use the base run's schedule itself, without large-batch
    scaling or regime adaptation: the gain does both.

    Who advances what: the step that applies the rate calls `advance()`
    afterwards (`progress += gain`); `tfgap.adaptive.AdaScaleModel` does it
    in `model.fit`, and a trainer assigns the gain from the host before
    each call of its step function (`assign`, see `tfgap.adaptive.gain`).
    The variables are not the optimizer's: save them with the model (as
    `AdaScaleModel` does) or checkpoint a `tfgap.adaptive.Progress`. A
    deserialized `AdaScaleLearningRate` starts from gain 1 and progress 0.

    Any backend; under JAX the variables are float64 only with
    `jax_enable_x64` (otherwise JAX truncates them to float32).

    Args:
        schedule: the base-batch rate: a `LearningRateSchedule` or a float
            (> 0; then only the gain changes the rate).
        gain: a float64 variable for the gain (default: a new one, 1.0).
        progress: a float64 variable for the progress (default: a new one,
            0.0).
        name: the schedule's name.

    Example:

    >>> base = keras.optimizers.schedules.PiecewiseConstantDecay([100], [0.1, 0.01])
    >>> rate = AdaScaleLearningRate(base)
    >>> optimizer = keras.optimizers.SGD(learning_rate=rate, momentum=0.9)
    >>> rate.assign(gain=2.0, progress=99.0)
    >>> round(float(optimizer.learning_rate), 6)        # 2 * base(99)
    0.2
    >>> rate.advance()                                  # after the step: progress 101
    >>> round(float(optimizer.learning_rate), 6), float(rate.progress.numpy())
    (0.02, 101.0)
    """

    def __init__(self, schedule, gain=None, progress=None, name="AdaScaleLearningRate"):
        super().__init__()
        if isinstance(schedule, AdaScaleLearningRate):
            raise ValueError(
                "Expected `schedule` to be the base batch's schedule or rate. Received an "
                "AdaScaleLearningRate (its gain would apply twice): pass its `.schedule`.")
        if not isinstance(schedule, _SCHEDULE):
            if isinstance(schedule, bool) or not isinstance(schedule, (int, float)) or not (
                    float(schedule) > 0 and float(schedule) != float("inf")):
                raise ValueError(
                    "Expected `schedule` to be a keras.optimizers.schedules."
                    "LearningRateSchedule or a positive finite float. Received: "
                    f"schedule={schedule!r}")
            schedule = float(schedule)
        self.schedule = schedule
        self.name = name
        self.gain = _variable("gain", gain, 1.0)
        self.progress = _variable("progress", progress, 0.0)

    def __call__(self, step=None):
        """The rate `gain * schedule(progress)`; `step` (the optimizer's count) is ignored."""
        with keras.name_scope(self.name):
            if isinstance(self.schedule, _SCHEDULE):
                base = ops.convert_to_tensor(self.schedule(ops.convert_to_tensor(self.progress)))
            else:
                base = ops.convert_to_tensor(self.schedule, dtype="float32")
            gain = ops.cast(ops.convert_to_tensor(self.gain), "float64")
            return ops.cast(gain * ops.cast(base, "float64"), base.dtype)

    def advance(self):
        """`progress += gain` (after a step that applied the rate; works in the graph)."""
        self.progress.assign_add(ops.cast(ops.convert_to_tensor(self.gain), "float64"))

    def assign(self, gain=None, progress=None):
        """Sets the gain and/or the progress (numbers or tensors; `None` leaves one as is).

        A Python number is taken as float64 (not through float32 first), so
        the variable holds exactly the host's value.
        """
        if gain is not None:
            self.gain.assign(_float64(gain))
        if progress is not None:
            self.progress.assign(_float64(progress))

    def get_config(self):
        schedule = self.schedule
        if isinstance(schedule, _SCHEDULE):
            schedule = keras.optimizers.schedules.serialize(schedule)
        return {"schedule": schedule, "name": self.name}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        if isinstance(config["schedule"], dict):
            config["schedule"] = keras.optimizers.schedules.deserialize(config["schedule"])
        return cls(**config)


def _float64(value):
    if hasattr(value, "dtype"):  # a tensor, variable or NumPy value: its own precision
        return ops.cast(value, "float64")
    return ops.convert_to_tensor(value, dtype="float64")  # a Python number, exactly


def _variable(name, variable, initial):
    if variable is None:
        return keras.Variable(initial, dtype="float64", trainable=False, name=name,
                              aggregation="only_first_replica")
    dtype = getattr(variable, "dtype", None)
    if not hasattr(variable, "assign") or keras.backend.standardize_dtype(dtype) != "float64":
        raise ValueError(
            f"Expected `{name}` to be a float64 variable (or None for a new one). Received: "
            f"{name}={variable!r}")
    return variable
