"""Regime arithmetic: learning-rate multipliers and regime adaptation.

Hoffer et al. 2017 ("Train longer, generalize better", arXiv 1705.08741)
adapt a small-batch regime, trusted at batch `B_S`, to a batch `B_L`:

```
k          = B_L / B_S
multiplier = sqrt(k)   ("sqrt", Hoffer et al.)
           = k         ("linear", Goyal et al. 2017)
           = 1         ("none")
stretch    = k         (regime_adaptation=True: as many weight updates as B_S)
           = 1         (regime_adaptation=False)
           = r         (regime_adaptation=r >= 1: partial adaptation)
epochs to train = E * stretch
steps to train  = round(E * stretch * steps_per_epoch)      (halves round up)
```

These helpers are the single place where a regime is stretched, so recipes
never recompute it by hand; they never mutate their inputs.
"""

import math

from tfgap import _validation as checks

SCALING_RULES = ("sqrt", "linear", "none")


def learning_rate_multiplier(base_batch_size, batch_size, scaling="sqrt"):
    """Factor by which a large batch multiplies the small-batch learning rates.

    With `k = batch_size / base_batch_size`: `sqrt(k)` for `scaling="sqrt"`
    (Hoffer et al. 2017: keeps the covariance of the weight update constant),
    `k` for `"linear"` (Goyal et al. 2017), `1` for `"none"`.

    Args:
        base_batch_size: Positive int, the batch size of the small-batch regime.
        batch_size: Positive int, the batch size actually trained with.
        scaling: One of `"sqrt"`, `"linear"`, `"none"`.

    Returns:
        A Python float.

    Example:

    >>> learning_rate_multiplier(128, 4096, "sqrt")
    5.656854249492381
    >>> learning_rate_multiplier(128, 4096, "linear")
    32.0
    """
    base_batch_size = checks.positive_int("base_batch_size", base_batch_size)
    batch_size = checks.positive_int("batch_size", batch_size)
    checks.choice("scaling", scaling, SCALING_RULES)
    k = batch_size / base_batch_size
    return {"sqrt": math.sqrt(k), "linear": k, "none": 1.0}[scaling]


def stretch_factor(base_batch_size, batch_size, regime_adaptation=True):
    """Factor by which regime adaptation stretches epochs and breakpoints.

    `batch_size / base_batch_size` for `regime_adaptation=True` (the number of
    weight updates then equals small-batch training), `1.0` for `False`, and
    the number itself for a number >= 1 (partial adaptation).

    Args:
        base_batch_size: Positive int, the batch size of the small-batch regime.
        batch_size: Positive int, the batch size actually trained with.
        regime_adaptation: `True` (default: these helpers compute the adapted
            regime; `LargeBatchSchedule` and `TrainConfig` default to `False`),
            `False`, or a float >= 1.

    Returns:
        A Python float.

    Example:

    >>> stretch_factor(128, 4096)
    32.0
    >>> stretch_factor(128, 4096, regime_adaptation=False)
    1.0
    >>> stretch_factor(128, 4096, regime_adaptation=4)
    4.0
    """
    base_batch_size = checks.positive_int("base_batch_size", base_batch_size)
    batch_size = checks.positive_int("batch_size", batch_size)
    regime_adaptation = checks.stretch("regime_adaptation", regime_adaptation)
    if regime_adaptation is True:
        return batch_size / base_batch_size
    if regime_adaptation is False:
        return 1.0
    return regime_adaptation


def adapted_epochs(epochs, base_batch_size, batch_size, regime_adaptation=True):
    """Epochs to train at `batch_size` for a small-batch regime of `epochs`.

    `epochs * stretch_factor(base_batch_size, batch_size, regime_adaptation)`,
    as a float: the exact length, which may end inside an epoch. For
    `model.fit`, pass `LargeBatchSchedule(..., epochs=epochs).fit_epochs`
    instead: the int number of whole epochs that takes every planned step.

    Args:
        epochs: Non-negative number, the length of the small-batch regime.
        base_batch_size, batch_size, regime_adaptation: as in `stretch_factor`
            (here too, `regime_adaptation` defaults to `True`).

    Returns:
        A Python float: the epochs to train.

    Example:

    >>> adapted_epochs(164, 128, 4096)
    5248.0
    """
    epochs = checks.number("epochs", epochs, minimum=0.0)
    return epochs * stretch_factor(base_batch_size, batch_size, regime_adaptation)


def adapted_steps(epochs, base_batch_size, batch_size, steps_per_epoch, regime_adaptation=True):
    """Optimizer steps to train at `batch_size` for a small-batch regime.

    `round(epochs * stretch * steps_per_epoch)` (halves round up), the same
    rounding `LargeBatchSchedule` uses for its breakpoints, so training for
    `adapted_steps(b, ...)` steps ends exactly at the breakpoint of boundary `b`.

    Args:
        epochs, base_batch_size, batch_size, regime_adaptation: as in
            `adapted_epochs`.
        steps_per_epoch: Positive int, optimizer steps per epoch at `batch_size`
            (`num_train_examples // batch_size` when only full batches train).

    Returns:
        A Python int.

    Example:

    >>> # CIFAR-10 at batch 4096: 50000 // 4096 = 12 steps per epoch (full batches).
    >>> adapted_steps(164, 128, 4096, steps_per_epoch=12)
    62976
    """
    steps_per_epoch = checks.positive_int("steps_per_epoch", steps_per_epoch)
    return checks.round_half_up(
        adapted_epochs(epochs, base_batch_size, batch_size, regime_adaptation) * steps_per_epoch
    )
