"""Durations in steps: the one place where epochs and examples become steps.

Every duration of a run (its length, the evaluation period, the learning-rate
breakpoints through `LargeBatchSchedule`) is counted in optimizer steps here.
Regime adaptation (Hoffer et al. 2017) is one multiplication, done by
`tfgap.schedules.adapted_steps`, the same rounding the schedule uses for its
breakpoints, so training ends exactly on a breakpoint when it should.
"""

import dataclasses
import math

from tfgap import schedules
from tfgap.training.config import ConfigError


@dataclasses.dataclass(frozen=True)
class StepPlan:
    """How many steps a run takes, derived from its config and data size.

        steps_per_epoch = floor(num_train_examples / batch_size)   (full batches only)
        total_steps     = round(epochs * stretch * steps_per_epoch)
        stretch         = batch_size / base_batch_size  if regime_adaptation is True
                          the factor                    if it is a number
                          1                             if it is False

    With `adaptive="lr"` (AdaScale) the regime is the base batch's, in steps
    of `base_batch_size` examples, and the run ends when the progress (the sum
    of the gains, each >= 1) reaches its length:

        base_steps_per_epoch = floor(num_train_examples / base_batch_size)
        base_steps           = round(epochs * base_steps_per_epoch)    (T0)
        total_steps          = base_steps     (at most: every step advances >= 1)
        stretch              = batch_size / base_batch_size  (the most it can stretch)

    With `adaptive="batch"` the same, with `steps_per_epoch` the first
    epoch's (at `batch_size`; each later epoch's batch is chosen as it starts,
    `tfgap.training.batch_control`) and `num_epochs` the most epochs the run
    can start, `ceil(base_steps / floor(num_train_examples / max_batch))`
    (every epoch has at least that many steps, each advancing the progress
    by at least 1).

    `base_steps` is the plan of `batch_size=base_batch_size` (the same
    arithmetic); it equals regime adaptation's `round(epochs * stretch *
    steps_per_epoch)` when `base_batch_size` and `batch_size` divide the
    split, and is the exact bound when they do not.

    Attributes:
        num_train_examples: examples in one pass over the training split.
        steps_per_epoch: optimizer steps in one epoch (incomplete batch dropped).
        total_steps: optimizer steps of the whole run.
        stretch: the regime-adaptation factor (adaptive: the largest batch over the base).
        epochs: epochs actually trained, `total_steps / steps_per_epoch`.
        num_epochs: epochs started (the last may be partial).
        base_steps: with `adaptive="lr"` or `"batch"`, the base regime's length `T0` in
            steps of `base_batch_size` (where the progress ends the run);
            `None` otherwise.
        base_steps_per_epoch: with `adaptive="lr"` or `"batch"`, the base regime's steps
            per epoch (its schedule's); `None` otherwise.
    """

    num_train_examples: int
    steps_per_epoch: int
    total_steps: int
    stretch: float
    epochs: float
    num_epochs: int
    base_steps: int | None = None
    base_steps_per_epoch: int | None = None

    def epoch_of(self, step):
        """`(epoch index, step within that epoch)` of a global step count."""
        return divmod(int(step), self.steps_per_epoch)

    def steps_in_epoch(self, epoch):
        """Steps of epoch `epoch` (the last one may be shorter)."""
        return min(self.steps_per_epoch, self.total_steps - epoch * self.steps_per_epoch)

    def first_step(self, epoch):
        """The global step at which epoch `epoch` starts."""
        return int(epoch) * self.steps_per_epoch

    def epochs_completed(self, step):
        """Epochs trained after `step` steps (fractional)."""
        return step / self.steps_per_epoch


def plan_steps(config, *, num_train_examples):
    """The `StepPlan` of `config` for a data set of the given sizes.

    Args:
        config: a `TrainConfig`.
        num_train_examples: size of the training split (as read).

    Returns:
        A `StepPlan`.

    Raises:
        ConfigError: when the global batch exceeds the training split.

    Example:

    >>> from tfgap.training import TrainConfig
    >>> config = TrainConfig(dataset="cifar10", model="resnet44", model_dir="/tmp/r",
    ...                      epochs=164, batch_size=4096, regime_adaptation=True)
    >>> plan = plan_steps(config, num_train_examples=50000)
    >>> plan.steps_per_epoch, plan.stretch, plan.total_steps
    (12, 32.0, 62976)
    >>> adascale = config.replace(adaptive="lr", lr_scaling="none", regime_adaptation=False)
    >>> plan = plan_steps(adascale, num_train_examples=50000)
    >>> plan.base_steps_per_epoch, plan.base_steps, plan.total_steps, plan.num_epochs
    (390, 63960, 63960, 5330)
    """
    if config.adaptive != "off":
        # The base regime's plan (batch base_batch_size, no adaptation): its length T0 is the
        # run's end in progress, and the most steps it can take at batch_size (gain >= 1).
        base = plan_steps(config.replace(adaptive="off", batch_size=config.base_batch_size,
                                         ghost_batch_size=0, max_batch_size=0,
                                         batch_decision_steps=0),
                          num_train_examples=num_train_examples)
        steps_per_epoch = _steps_per_epoch(config, num_train_examples)
        fewest = _steps_per_epoch(config, num_train_examples, config.largest_batch_size)
        return StepPlan(
            num_train_examples=int(num_train_examples),
            steps_per_epoch=steps_per_epoch,
            total_steps=base.total_steps,
            stretch=config.largest_batch_size / config.base_batch_size,
            epochs=base.total_steps / steps_per_epoch,
            num_epochs=math.ceil(base.total_steps / fewest),
            base_steps=base.total_steps,
            base_steps_per_epoch=base.steps_per_epoch,
        )
    steps_per_epoch = _steps_per_epoch(config, num_train_examples)
    stretch = schedules.stretch_factor(
        config.base_batch_size, config.batch_size, config.regime_adaptation
    )
    total_steps = schedules.adapted_steps(
        config.epochs,
        config.base_batch_size,
        config.batch_size,
        steps_per_epoch,
        config.regime_adaptation,
    )
    total_steps = max(int(total_steps), 1)
    return StepPlan(
        num_train_examples=int(num_train_examples),
        steps_per_epoch=steps_per_epoch,
        total_steps=total_steps,
        stretch=float(stretch),
        epochs=total_steps / steps_per_epoch,
        num_epochs=math.ceil(total_steps / steps_per_epoch),
    )


def _steps_per_epoch(config, num_train_examples, batch_size=None):
    name = "batch_size" if batch_size is None else "max_batch_size"
    batch_size = config.batch_size if batch_size is None else batch_size
    steps_per_epoch = int(num_train_examples) // batch_size
    if steps_per_epoch < 1:
        raise ConfigError(
            f"Expected {name} <= the {num_train_examples} training examples of "
            f"{config.dataset!r}. Received: {name}={batch_size}"
        )
    return steps_per_epoch
