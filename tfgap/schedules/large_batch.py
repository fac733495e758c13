"""`LargeBatchSchedule`: a small-batch regime adapted to a large batch."""

import keras
from keras import ops

from tfgap import backend
from tfgap import _validation as checks
from tfgap.schedules import regime


@keras.saving.register_keras_serializable(package="tfgap")
class LargeBatchSchedule(keras.optimizers.schedules.LearningRateSchedule):
    """A piecewise-constant small-batch regime, adapted to a large batch.

    State the regime you trust at `base_batch_size` (e.g. lr 0.1 at batch 128,
    divided by 10 at epochs 81 and 122) and train it at `batch_size`. With
    `k = batch_size / base_batch_size` every rate is multiplied by

    ```
    multiplier = sqrt(k)  (scaling="sqrt", Hoffer et al. 2017)
               = k        (scaling="linear", Goyal et al. 2017)
               = 1        (scaling="none")
    ```

    and every breakpoint is stretched by `stretch` (regime adaptation: `k` for
    `True`, `1` for `False`, the number itself for a number >= 1), so that the
    large batch makes as many weight updates as the small one:

    ```
    breakpoint_i = round(boundaries[i] * stretch * steps_per_epoch)  (halves up)
    W            = round(warmup_epochs * steps_per_epoch)
    rate(step)   = values[0] + (values[0] * multiplier - values[0]) * step / W
                                                          if step < W
                 = values[j] * multiplier                 otherwise, where j is
                   the number of breakpoints <= step
    ```

    The warm-up (Goyal et al. 2017) rises linearly from the unscaled rate
    `values[0]` and is not stretched; it must end no later than the first
    breakpoint. Train for `adapted_epochs` / `adapted_steps` of the regime's
    length. Unlike `keras.optimizers.schedules.PiecewiseConstantDecay`,
    unsorted boundaries are an error rather than silently wrong rates.

    Paper: Hoffer, Hubara & Soudry 2017, "Train longer, generalize better:
    closing the generalization gap in large batch training of neural networks"
    (arXiv 1705.08741), remedies "+LR" and "+RA".

    Args:
        boundaries: Increasing list of epochs (of the small-batch regime) at
            which the rate changes. May be empty.
        values: List of non-negative rates, one more than `boundaries`:
            `values[0]` before `boundaries[0]`, `values[i + 1]` from
            `boundaries[i]` on, all at `base_batch_size`.
        base_batch_size: Positive int, the batch size of the regime.
        batch_size: Positive int, the (global) batch size trained with.
        steps_per_epoch: Positive int, optimizer steps per epoch at
            `batch_size`.
        scaling: `"sqrt"` (default), `"linear"` or `"none"`.
        regime_adaptation: `False` (default: the regime's own epochs, as in
            `tfgap.training.TrainConfig`), `True` (stretch by `k`), or a float
            >= 1 (stretch by it).
        warmup_epochs: Non-negative number of epochs (at `batch_size`) of
            linear warm-up. Defaults to 0.
        name: Optional name of the operation.

    Call arguments:
        step: Scalar integer tensor, the optimizer's iteration count.

    Returns:
        A scalar float32 tensor, the learning rate at `step`.

    Example:

    >>> # CIFAR-10 at batch 512: 50000 // 512 = 97 steps per epoch (full batches).
    >>> schedule = LargeBatchSchedule(
    ...     boundaries=[81, 122], values=[0.1, 0.01, 0.001],
    ...     base_batch_size=128, batch_size=512, steps_per_epoch=97,
    ...     regime_adaptation=True)
    >>> schedule.breakpoint_steps        # round(81 * 4 * 97), round(122 * 4 * 97)
    [31428, 47336]
    >>> [round(float(schedule(step)), 6) for step in (0, 31427, 31428, 47336)]
    [0.2, 0.2, 0.02, 0.002]
    >>> optimizer = keras.optimizers.SGD(learning_rate=schedule, momentum=0.9)
    """

    def __init__(
        self,
        boundaries,
        values,
        base_batch_size,
        batch_size,
        steps_per_epoch,
        scaling="sqrt",
        regime_adaptation=False,
        warmup_epochs=0,
        name=None,
    ):
        super().__init__()
        boundaries = list(checks.number_list("boundaries", boundaries, minimum=0.0))
        values = list(checks.number_list("values", values, minimum=0.0))
        checks.one_value_per_phase(boundaries, values)
        checks.strictly_increasing("boundaries", boundaries)
        self.boundaries = boundaries
        self.values = values
        self.base_batch_size = checks.positive_int("base_batch_size", base_batch_size)
        self.batch_size = checks.positive_int("batch_size", batch_size)
        self.steps_per_epoch = checks.positive_int("steps_per_epoch", steps_per_epoch)
        self.multiplier = regime.learning_rate_multiplier(
            self.base_batch_size, self.batch_size, scaling
        )
        self.scaling = scaling
        self.regime_adaptation = checks.stretch("regime_adaptation", regime_adaptation)
        self.stretch = regime.stretch_factor(
            self.base_batch_size, self.batch_size, self.regime_adaptation
        )
        self.warmup_epochs = checks.number("warmup_epochs", warmup_epochs, minimum=0.0)
        self.name = name

        self.breakpoint_steps = [
            checks.round_half_up(b * self.stretch * self.steps_per_epoch) for b in boundaries
        ]
        self.warmup_steps = checks.round_half_up(self.warmup_epochs * self.steps_per_epoch)
        if self.breakpoint_steps and self.warmup_steps > self.breakpoint_steps[0]:
            raise ValueError(
                "Expected the warm-up to end no later than the first breakpoint. Received: "
                f"warmup_epochs={warmup_epochs!r} ({self.warmup_steps} steps) and a first "
                f"breakpoint at step {self.breakpoint_steps[0]} (boundaries[0]={boundaries[0]} "
                f"epochs stretched by {self.stretch})."
            )
        self.scaled_values = [v * self.multiplier for v in values]

    def __call__(self, step):
        with keras.name_scope(self.name or "LargeBatchSchedule"):
            # Integer comparison: exact at any step count (float32 is not past 2**24).
            int_step = ops.convert_to_tensor(step)
            if "int" not in keras.backend.standardize_dtype(int_step.dtype):
                # int64 where the backend has it (JAX only with jax_enable_x64).
                int_step = ops.cast(int_step, "int64" if backend.supports_x64() else "int32")
            rate = ops.convert_to_tensor(self.scaled_values[0], dtype="float32")
            for breakpoint_step, value in zip(self.breakpoint_steps, self.scaled_values[1:]):
                rate = ops.where(
                    ops.greater_equal(int_step, breakpoint_step),
                    ops.convert_to_tensor(value, dtype="float32"),
                    rate,
                )
            if self.warmup_steps > 0:
                v0 = self.values[0]
                fraction = ops.cast(int_step, "float32") / float(self.warmup_steps)
                warm = ops.convert_to_tensor(v0, "float32") + ops.convert_to_tensor(
                    v0 * self.multiplier - v0, "float32"
                ) * fraction
                rate = ops.where(ops.less(int_step, self.warmup_steps), warm, rate)
            return rate

    def get_config(self):
        return {
            "boundaries": list(self.boundaries),
            "values": list(self.values),
            "base_batch_size": self.base_batch_size,
            "batch_size": self.batch_size,
            "steps_per_epoch": self.steps_per_epoch,
            "scaling": self.scaling,
            "regime_adaptation": self.regime_adaptation,
            "warmup_epochs": self.warmup_epochs,
            "name": self.name,
        }

