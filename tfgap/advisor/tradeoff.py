"""McCandlish et al.'s steps/examples trade-off: prediction and fit.

Training to a fixed target with batch `B` takes `S(B)` optimizer steps and
`E(B) = B S(B)` examples. McCandlish et al. 2018 (their eq. 2.11-2.12) find

```
(S / S_min - 1) (E / E_min - 1) = 1
S(B) = S_min (1 + B_noise / B)        E(B) = E_min (1 + B / B_noise)
B_crit = E_min / S_min  (= B_noise)
```

with `S_min` the fewest steps (any batch) and `E_min` the fewest examples
(any batch). At `B = B_crit` training takes `2 S_min` steps and `2 E_min`
examples. The model predicts `B_crit ~ B_simple`, the gradient noise scale.

Paper: McCandlish, Kaplan, Amodei & OpenAI Dota Team, "An Empirical Model of
Large-Batch Training", 2018 (arXiv 1812.06162), section 2.
"""

import dataclasses
import math

import numpy as np


def _positive(name, value):
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"Expected {name} to be a positive number; received {value!r}.") from None
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"Expected {name} to be a positive, finite number; received {value!r}.")
    return value


def predicted_steps(batch_size, *, b_noise, s_min):
    """`S(B) = S_min (1 + B_noise / B)`: steps to the target at batch `B`.

    Example:

    >>> predicted_steps(100, b_noise=100, s_min=500)
    1000.0
    """
    b = _positive("batch_size", batch_size)
    return _positive("s_min", s_min) * (1.0 + _positive("b_noise", b_noise) / b)


def predicted_examples(batch_size, *, b_noise, s_min):
    """`E(B) = B S(B) = E_min (1 + B / B_noise)`, with `E_min = S_min B_noise`.

    Example:

    >>> predicted_examples(100, b_noise=100, s_min=500)
    100000.0
    """
    return float(batch_size) * predicted_steps(batch_size, b_noise=b_noise, s_min=s_min)


def min_steps(small_steps, small_batch_size, *, b_noise):
    """`S_min` from a run of `S_small` steps at `B_small` that reaches the target.

    Inverts `S(B_small) = S_min (1 + B_noise / B_small)`:
    `S_min = S_small / (1 + B_noise / B_small)`. This assumes the trusted
    small-batch run is as long as it needs to be, no longer: its length is
    the steps to the target at `B_small`.

    Example:

    >>> min_steps(800, 50, b_noise=150)
    200.0
    """
    return _positive("small_steps", small_steps) / (
        1.0 + _positive("b_noise", b_noise) / _positive("small_batch_size", small_batch_size))


@dataclasses.dataclass(frozen=True)
class TradeoffFit:
    """`S_min`, `E_min` fitted to measured steps; `b_crit = e_min / s_min`.

    Attributes:
        s_min: the fewest steps (the large-batch limit).
        e_min: the fewest examples (the small-batch limit).
        b_crit: `e_min / s_min`, the measured critical batch size.
        rms_relative_error: root mean square of `S_fit(B_i) / S_i - 1`.
    """

    s_min: float
    e_min: float
    b_crit: float
    rms_relative_error: float

    def steps(self, batch_size):
        """The fitted `S(B) = S_min + E_min / B`."""
        return self.s_min + self.e_min / float(batch_size)


def fit_tradeoff(batch_sizes, steps):
    """Fits `(S / S_min - 1) (E / E_min - 1) = 1` to measured steps to a target.

    The relation is `S(B) = S_min + E_min / B`, linear in `(S_min, E_min)`;
    they are fitted by non-negative least squares on the relative residuals
    `S_fit(B_i) / S_i - 1` (steps span orders of magnitude, so every batch
    size weighs the same).

    Args:
        batch_sizes: at least two distinct batch sizes.
        steps: the measured steps to the target at each (positive).

    Returns:
        A `TradeoffFit`.

    Example:

    >>> fit = fit_tradeoff([16, 64, 256, 1024], [1000 + 64000 / b for b in (16, 64, 256, 1024)])
    >>> round(fit.s_min, 6), round(fit.e_min, 3), round(fit.b_crit, 3)
    (1000.0, 64000.0, 64.0)
    """
    from scipy.optimize import nnls  # noqa: PLC0415

    b = np.asarray([_positive("batch_sizes", v) for v in batch_sizes], np.float64)
    s = np.asarray([_positive("steps", v) for v in steps], np.float64)
    if b.shape != s.shape or len(np.unique(b)) < 2:
        raise ValueError(
            "Expected as many steps as batch sizes, at two or more distinct batch sizes; "
            f"received batch_sizes={list(batch_sizes)} and steps={list(steps)}."
        )
    design = np.stack([1.0 / s, 1.0 / (b * s)], axis=1)
    (s_min, e_min), _ = nnls(design, np.ones_like(s))
    rms = float(np.sqrt(np.mean((design @ [s_min, e_min] - 1.0) ** 2)))
    b_crit = e_min / s_min if s_min > 0 else math.inf
    return TradeoffFit(s_min=float(s_min), e_min=float(e_min), b_crit=float(b_crit),
                       rms_relative_error=rms)


def relative_cost(batch_size, *, b_crit, b_crit_stderr=0.0):
    """Steps and examples at batch `B` relative to their minima, with 68% intervals.

    ```
    S / S_min = 1 + B_crit / B        E / E_min = 1 + B / B_crit
    ```

    Both are monotone in `B_crit`, so the interval of each is the image of
    the interval `B_crit +- stderr` (its endpoints mapped exactly, not the
    delta method's linearization; a lower end at or below 0 gives an
    unbounded `E / E_min`). At `B = B_crit` both are 2.

    Args:
        batch_size: `B` (> 0).
        b_crit: the critical batch (> 0).
        b_crit_stderr: its standard error (>= 0; `nan` counts as unknown: 0).

    Returns:
        `(steps, (steps_low, steps_high), examples, (examples_low, examples_high))`.

    Example:

    >>> relative_cost(100, b_crit=100, b_crit_stderr=20)
    (2.0, (1.8, 2.2), 2.0, (1.8333333333333335, 2.25))
    """
    b = _positive("batch_size", batch_size)
    crit = _positive("b_crit", b_crit)
    stderr = float(b_crit_stderr)
    stderr = 0.0 if not math.isfinite(stderr) else abs(stderr)
    low, high = crit - stderr, crit + stderr
    steps = 1.0 + crit / b
    examples = 1.0 + b / crit
    steps_interval = (1.0 + max(low, 0.0) / b, 1.0 + high / b)
    examples_interval = (1.0 + b / high, 1.0 + b / low if low > 0 else math.inf)
    return steps, steps_interval, examples, examples_interval
