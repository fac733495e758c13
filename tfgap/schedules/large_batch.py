"""`LargeBatchSchedule`: a small-batch regime adapted to a large batch."""

import keras
from keras import ops

from tfgap import backend
from tfgap import _validation as checks
from tfgap.schedules import regime

DECAYS = ("piecewise", "polynomial")
WARMUP_STARTS = ("base", "zero")


def check_decay(decay, boundaries, values, *, decay_epochs=None, decay_power=2.0,
                end_value=0.0, warmup_start="base", error=ValueError, names=None):
    """Checks the decay and warm-up-start arguments of `LargeBatchSchedule`.

    The checks that need no step count: `decay` and `warmup_start` are known
    choices; the polynomial decay has no `boundaries`, one value, a
    `decay_epochs` > 0, a finite `decay_power` > 0 and an `end_value` in
    `[0, values[0]]`; the piecewise decay takes none of the polynomial-only
    arguments (`decay_epochs`, a `decay_power` other than 2, an `end_value`
    other than 0), since it would ignore them. `LargeBatchSchedule` calls it,
    and so do the training settings (with `error=ConfigError`). That the decay
    outlasts the warm-up needs `steps_per_epoch`; the schedule checks it.

    Args:
        decay: `"piecewise"` or `"polynomial"`.
        boundaries: The (already checked) list of boundaries in epochs.
        values: The (already checked) list of non-negative rates.
        decay_epochs, decay_power, end_value, warmup_start: as in
            `LargeBatchSchedule`.
        error: the exception class raised.
        names: optional dict from these argument names to the caller's own
            (e.g. `{"end_value": "lr_end"}`), used in the error messages.

    Returns:
        `(decay_epochs, decay_power, end_value)` as plain Python: a float (or
        `None` for the piecewise decay), a float, a float.

    Example:

    >>> check_decay("polynomial", [], [10.0], decay_epochs=42, end_value=1e-4)
    (42.0, 2.0, 0.0001)
    >>> check_decay("piecewise", [81, 122], [0.1, 0.01, 0.001], end_value=1e-4)
    Traceback (most recent call last):
      ...
    ValueError: Expected `end_value` only with decay='polynomial' (decay='piecewise' would \
ignore it). Received: end_value=0.0001
    """
    names = _Names(names or {})
    checks.choice(names["decay"], decay, DECAYS, error=error)
    checks.choice(names["warmup_start"], warmup_start, WARMUP_STARTS, error=error)
    polynomial = f"{names['decay']}='polynomial'"
    if decay == "piecewise":
        for key, value, default in (("decay_epochs", decay_epochs, None),
                                    ("decay_power", decay_power, 2.0),
                                    ("end_value", end_value, 0.0)):
            if not (value is default or value == default):
                name = names[key]
                raise error(f"Expected `{name}` only with {polynomial} ({names['decay']}="
                            f"'piecewise' would ignore it). Received: {name}={value!r}")
        return None, 2.0, 0.0
    b, v, e = names["boundaries"], names["values"], names["end_value"]
    if len(boundaries) or len(values) != 1:
        raise error(
            f"Expected no `{b}` and one value in `{v}` with {polynomial} (the rate decays from "
            f"{v}[0] to {e}). Received: {b}={list(boundaries)}, {v}={list(values)}"
        )
    if decay_epochs is None:
        raise error(f"Expected `{names['decay_epochs']}` (the length of the regime in epochs at "
                    f"base_batch_size) with {polynomial}. Received: "
                    f"{names['decay_epochs']}=None")
    decay_epochs = checks.number(names["decay_epochs"], decay_epochs, above=0.0, error=error)
    decay_power = checks.number(names["decay_power"], decay_power, above=0.0, error=error)
    end_value = checks.number(e, end_value, minimum=0.0, error=error)
    if end_value > values[0]:
        raise error(f"Expected `{e}` <= {v}[0] (the rate decays to it). "
                    f"Received: {e}={end_value:g}, {v}[0]={values[0]:g}")
    return decay_epochs, decay_power, end_value


class _Names(dict):
    """An argument's name in the caller's words: the mapped name, else the argument's own."""

    def __missing__(self, key):
        return key


@keras.saving.register_keras_serializable(package="tfgap")
class LargeBatchSchedule(keras.optimizers.schedules.LearningRateSchedule):
    """A small-batch regime (piecewise constant or polynomial), adapted to a large batch.

    State the regime you trust at `base_batch_size` (e.g. lr 0.1 at batch 128,
    divided by 10 at epochs 81 and 122) and train it at `batch_size`. With
    `k = batch_size / base_batch_size` every rate is multiplied by

    ```
    multiplier = sqrt(k)  (scaling="sqrt", Hoffer et al. 2017)
               = k        (scaling="linear", Goyal et al. 2017)
               = 1        (scaling="none")
    ```

    and every breakpoint (and the polynomial decay's end) is stretched by
    `stretch` (regime adaptation: `k` for `True`, `1` for `False`, the number
    itself for a number >= 1), so that the large batch makes as many weight
    updates as the small one:

    ```
    W            = round(warmup_epochs * steps_per_epoch)         (halves up)
    peak         = values[0] * multiplier
    start        = values[0]  (warmup_start="base")  or  0  (warmup_start="zero")
    rate(step)   = start + (peak - start) * step / W              if step < W
    decay="piecewise":
    breakpoint_i = round(boundaries[i] * stretch * steps_per_epoch)
    rate(step)   = values[j] * multiplier                         otherwise, where j is
                   the number of breakpoints <= step
    decay="polynomial":
    T            = round(decay_epochs * stretch * steps_per_epoch)
    end          = end_value * multiplier
    rate(step)   = end + (peak - end) * (1 - (step - W) / (T - W)) ** decay_power
                                                                  if W <= step < T
                 = end                                            if step >= T
    ```

    The warm-up is not stretched. By default it rises linearly from the
    unscaled rate `values[0]` (Goyal et al. 2017); `warmup_start="zero"`
    rises from 0 instead (You et al. 2017, and the MLPerf ResNet-50 LARS
    reference). It must end no later than the first breakpoint, and before
    the end `T` of a polynomial decay. Unlike
    `keras.optimizers.schedules.PiecewiseConstantDecay`, unsorted boundaries
    are an error rather than silently wrong rates.

    How long to train: give the regime's length as `epochs` (in epochs at
    `base_batch_size`; for the polynomial decay it defaults to `decay_epochs`)
    and call `model.fit(..., epochs=schedule.fit_epochs)`, the whole epochs
    that take all `total_steps = round(epochs * stretch * steps_per_epoch)`
    steps the schedule plans. The schedule cannot see how long `fit` runs:
    `fit(epochs=164)` with `stretch=32` stops after 1/32 of the plan, and
    every drop of the rate after that point silently never happens.

    Papers: Hoffer, Hubara & Soudry 2017, "Train longer, generalize better:
    closing the generalization gap in large batch training of neural networks"
    (arXiv 1705.08741), remedies "+LR" and "+RA"; You, Gitman & Ginsburg 2017,
    "Large Batch Training of Convolutional Networks" (arXiv 1708.03888),
    warm-up then a polynomial decay of power 2.

    Args:
        boundaries: Increasing list of epochs (of the small-batch regime) at
            which the rate changes. May be empty; must be for
            `decay="polynomial"`.
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
        decay: `"piecewise"` (default: the rate steps down at `boundaries`)
            or `"polynomial"` (from `values[0]` to `end_value`).
        decay_epochs: `decay="polynomial"` only: the length of the regime
            in epochs at `base_batch_size`, stretched like the breakpoints.
        decay_power: `decay="polynomial"` only: finite float > 0. Defaults
            to 2.
        end_value: `decay="polynomial"` only: the final rate at
            `base_batch_size`, in `[0, values[0]]` (scaled by the multiplier
            like every rate). Defaults to 0.
        warmup_start: `"base"` (default: the warm-up rises from the unscaled
            `values[0]`) or `"zero"` (from 0).
        epochs: Optional number > 0, the length of the regime in epochs at
            `base_batch_size` (e.g. 164), stretched like the breakpoints; it
            sizes `total_steps` and `fit_epochs`. Every boundary must lie
            before it, and a polynomial decay must end by it. Defaults to
            `decay_epochs` for `decay="polynomial"`, else unknown (`None`).
        name: Optional name of the operation.

    Call arguments:
        step: Scalar integer tensor, the optimizer's iteration count.

    Returns:
        A scalar float32 tensor, the learning rate at `step`.

    Examples:

    >>> # CIFAR-10 at batch 512: 50000 // 512 = 97 steps per epoch (full batches);
    >>> # the regime: 164 epochs at batch 128, stretched by k = 4.
    >>> schedule = LargeBatchSchedule(
    ...     boundaries=[81, 122], values=[0.1, 0.01, 0.001],
    ...     base_batch_size=128, batch_size=512, steps_per_epoch=97,
    ...     regime_adaptation=True, epochs=164)
    >>> schedule.breakpoint_steps        # round(81 * 4 * 97), round(122 * 4 * 97)
    [31428, 47336]
    >>> [round(float(schedule(step)), 6) for step in (0, 31427, 31428, 47336)]
    [0.2, 0.2, 0.02, 0.002]
    >>> schedule.total_steps, schedule.fit_epochs   # 164 * 4 * 97 steps, 164 * 4 epochs
    (63632, 656)
    >>> optimizer = keras.optimizers.SGD(learning_rate=schedule, momentum=0.9)
    >>> # model.compile(optimizer=optimizer, ...)
    >>> # model.fit(train_data, epochs=schedule.fit_epochs)   # not epochs=164

    >>> # MLPerf-like LARS regime: ImageNet at batch 4096 (312 steps per epoch),
    >>> # 5 epochs of warm-up from 0 to 10, then a decay of power 2 to 1e-4 at epoch 42.
    >>> schedule = LargeBatchSchedule(
    ...     boundaries=[], values=[10.0], base_batch_size=4096, batch_size=4096,
    ...     steps_per_epoch=312, scaling="none", warmup_epochs=5, warmup_start="zero",
    ...     decay="polynomial", decay_epochs=42, end_value=1e-4)
    >>> schedule.warmup_steps, schedule.decay_steps   # 5 * 312, 42 * 312
    (1560, 13104)
    >>> # Mid-decay (step 7332): 1e-4 + (10 - 1e-4) * 0.5 ** 2 = 2.500075.
    >>> [round(float(schedule(step)), 6) for step in (0, 780, 1560, 7332, 13104)]
    [0.0, 5.0, 10.0, 2.500075, 0.0001]
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
        decay="piecewise",
        decay_epochs=None,
        decay_power=2.0,
        end_value=0.0,
        warmup_start="base",
        epochs=None,
        name=None,
    ):
        super().__init__()
        boundaries = list(checks.number_list("boundaries", boundaries, minimum=0.0))
        values = list(checks.number_list("values", values, minimum=0.0))
        # Before the shape checks: a polynomial decay names its own shape.
        decay_epochs, decay_power, end_value = check_decay(
            decay, boundaries, values, decay_epochs=decay_epochs, decay_power=decay_power,
            end_value=end_value, warmup_start=warmup_start)
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
        self.decay = decay
        self.decay_epochs = decay_epochs
        self.decay_power = decay_power
        self.end_value = end_value
        self.warmup_start = warmup_start
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
        self.decay_steps = None
        if decay == "polynomial":
            # The run's own length for the same regime (`adapted_steps`, as the trainer plans it).
            self.decay_steps = regime.adapted_steps(
                decay_epochs, self.base_batch_size, self.batch_size, self.steps_per_epoch,
                self.regime_adaptation)
            if self.decay_steps <= self.warmup_steps:
                raise ValueError(
                    "Expected the polynomial decay to end at least one step after the warm-up. "
                    f"Received: decay_epochs={decay_epochs:g} (step {self.decay_steps}, "
                    f"stretched by {self.stretch}) and warmup_epochs={self.warmup_epochs:g} "
                    f"({self.warmup_steps} steps)."
                )
        self.scaled_values = [v * self.multiplier for v in values]
        self.epochs, self.total_steps = self._check_length(epochs)
        self._epochs_argument = None if epochs is None else self.epochs  # for get_config

    def _check_length(self, epochs):
        """`(epochs, total_steps)`: the regime's length, checked against the breakpoints."""
        if epochs is None:
            if self.decay != "polynomial":
                return None, None
            return self.decay_epochs, self.decay_steps
        epochs = checks.number("epochs", epochs, above=0.0)
        total_steps = regime.adapted_steps(epochs, self.base_batch_size, self.batch_size,
                                           self.steps_per_epoch, self.regime_adaptation)
        if self.breakpoint_steps and self.breakpoint_steps[-1] >= total_steps:
            raise ValueError(
                "Expected every boundary before the end of the regime (a rate starting at "
                f"its last step or later never trains). Received: boundaries={self.boundaries} "
                f"(last breakpoint at step {self.breakpoint_steps[-1]}) and epochs={epochs:g} "
                f"({total_steps} steps, stretched by {self.stretch:g})."
            )
        if self.warmup_steps >= total_steps:  # (else the breakpoint checks imply it)
            raise ValueError(
                "Expected the warm-up to end before the end of the regime. Received: "
                f"warmup_epochs={self.warmup_epochs:g} ({self.warmup_steps} steps) and "
                f"epochs={epochs:g} ({total_steps} steps, stretched by {self.stretch:g})."
            )
        if self.decay_steps is not None and self.decay_steps > total_steps:
            raise ValueError(
                "Expected the polynomial decay to end by the end of the regime. Received: "
                f"decay_epochs={self.decay_epochs:g} (step {self.decay_steps}) and "
                f"epochs={epochs:g} ({total_steps} steps, stretched by {self.stretch:g})."
            )
        return epochs, total_steps

    @property
    def fit_epochs(self):
        """The `epochs` to pass `model.fit` so that it takes every step the schedule plans.

        `ceil(total_steps / steps_per_epoch)`, an int: the regime's `epochs`,
        stretched by regime adaptation, rounded up to whole epochs. When
        `total_steps` is not a multiple of `steps_per_epoch` the plan ends
        inside the last epoch; `fit` runs that epoch whole, so it takes up to
        `steps_per_epoch - 1` steps more than planned, all at the final rate
        (the last value, or the polynomial decay's end), and no step is lost.
        The schedule's `steps_per_epoch` must be the steps `fit` takes per
        epoch (`num_examples // batch_size` with `drop_remainder=True`, else
        the ceiling, or `fit(steps_per_epoch=...)` itself).

        Returns:
            A Python int.

        Raises:
            ValueError: the schedule was built without `epochs` (a piecewise
                decay does not know the regime's length).

        Example:

        >>> # 163 epochs at batch 128, partly adapted (x2.5) at batch 512, 97 steps per epoch:
        >>> schedule = LargeBatchSchedule(
        ...     boundaries=[81, 122], values=[0.1, 0.01, 0.001], base_batch_size=128,
        ...     batch_size=512, steps_per_epoch=97, regime_adaptation=2.5, epochs=163)
        >>> schedule.total_steps   # round(163 * 2.5 * 97) = round(39527.5), halves up
        39528
        >>> schedule.fit_epochs    # 407 epochs take 39479 steps: the 408th takes the rest
        408
        """
        if self.total_steps is None:
            raise ValueError(
                "Expected `epochs` (the length of the regime in epochs at base_batch_size) to "
                "size `fit_epochs`: pass LargeBatchSchedule(..., epochs=...). Received: "
                "epochs=None"
            )
        return -(-self.total_steps // self.steps_per_epoch)

    def _decayed(self, int_step):
        """The polynomial decay's rate at `int_step` (its part of the formula for any step)."""
        peak = self.scaled_values[0]
        end = self.end_value * self.multiplier
        # (1 - (step - W) / (T - W)) as (T - step) / (T - W): the integer difference
        # is exact, so the rate keeps float32 precision next to T.
        remaining = ops.cast(ops.subtract(self.decay_steps, int_step), "float32") / float(
            self.decay_steps - self.warmup_steps)
        remaining = ops.clip(remaining, 0.0, 1.0)
        return ops.convert_to_tensor(end, "float32") + ops.convert_to_tensor(
            peak - end, "float32") * ops.power(remaining, self.decay_power)

    def __call__(self, step):
        with keras.name_scope(self.name or "LargeBatchSchedule"):
            # Integer comparison: exact at any step count (float32 is not past 2**24).
            int_step = ops.convert_to_tensor(step)
            if "int" not in keras.backend.standardize_dtype(int_step.dtype):
                # int64 where the backend has it (JAX only with jax_enable_x64).
                int_step = ops.cast(int_step, "int64" if backend.supports_x64() else "int32")
            if self.decay == "polynomial":
                rate = self._decayed(int_step)
            else:
                rate = ops.convert_to_tensor(self.scaled_values[0], dtype="float32")
            for breakpoint_step, value in zip(self.breakpoint_steps, self.scaled_values[1:]):
                rate = ops.where(
                    ops.greater_equal(int_step, breakpoint_step),
                    ops.convert_to_tensor(value, dtype="float32"),
                    rate,
                )
            if self.warmup_steps > 0:
                start = self.values[0] if self.warmup_start == "base" else 0.0
                fraction = ops.cast(int_step, "float32") / float(self.warmup_steps)
                warm = ops.convert_to_tensor(start, "float32") + ops.convert_to_tensor(
                    self.values[0] * self.multiplier - start, "float32"
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
            "decay": self.decay,
            "decay_epochs": self.decay_epochs,
            "decay_power": self.decay_power,
            "end_value": self.end_value,
            "warmup_start": self.warmup_start,
            "epochs": self._epochs_argument,
            "name": self.name,
        }
