"""The AdaScale gain and the progress it accumulates, in NumPy only.

AdaScale (Johnson, Agrawal, Gu & Guestrin 2020, "AdaScale SGD: A
User-Friendly Algorithm for Distributed Training", arXiv 2007.05105) runs a
learning-rate regime written for a batch `b0` at a batch `B = S b0`. Each
step's rate is the base rate times the gain

```
r_t = (sigma^2 + mu^2) / (sigma^2 / S + mu^2)
    = (1 + B_simple / b0) / (1 + B_simple / B)          in [1, S],
```

with `mu^2 = |G|^2`, `sigma^2 = tr(Sigma) / b0` (the variance of a
`b0`-example gradient) and `B_simple = tr(Sigma) / |G|^2` the per-example
noise scale (McCandlish et al. 2018, arXiv 1812.06162) that
`tfgap.advisor.NoiseStatistics` measures. Where the noise dominates
(`B_simple >> B`) the gain is `S`, the linear scaling rule (Goyal et al.
2017, arXiv 1706.02677); where the gradient is nearly exact
(`B_simple << b0`) it is 1: a bigger batch gives the same gradient, so the
step stays the base step.

The schedule is read at the *progress* `tau_t = r_0 + ... + r_{t-1}`,
counted in `b0`-steps, instead of at the step `t`, and the step uses
`lr_t = r_t * schedule(tau_t)`. A regime written for `b0` (drops at epochs
81 and 122 of batch 128, say) so runs unchanged at any batch, and the run
ends when the progress reaches the `b0` run's number of steps.

- `adascale_gain(b_simple, base_batch, batch)`: the gain (vectorized).
- `Progress`: the host's float64 `tau`, advanced by each step's gain, with
  a state of plain floats for checkpoints.

With a trainer that runs `k` steps per call of its step function, the host
side is, per call (the statistics of the steps before it; see
`tfgap.adaptive.AdaScaleLearningRate` for the graph side):

```
gain = adascale_gain(stats.b_simple, base_batch, batch)  # None before any step: 1
rate.assign(gain=gain, progress=progress.value)          # the graph's variables
<run k steps; each calls rate.advance() after applying>  # tau += gain in float64
progress.advance(gain, steps=k)                          # the same k additions
```

The graph's variable and `Progress` add the same float64 numbers in the same
order, so they agree bit for bit, and `Progress.state()` is what to
checkpoint.
"""

import numbers

import numpy as np

from tfgap import _validation


def adascale_gain(b_simple, base_batch, batch):
    """The AdaScale learning-rate gain of a step at batch `batch` for a regime of `base_batch`.

    ```
    r = (1 + B_simple / base_batch) / (1 + B_simple / batch),
    ```

    clipped to `[1, batch / base_batch]` (where it lies exactly, up to
    rounding). It is exactly `1.0` (bit for bit) when `batch == base_batch`,
    whatever `b_simple` is, so a run at the base batch is the base run.

    A `b_simple` that is not measured yet (`None` before any step, `nan`
    while the `|G|^2` average is not positive, as
    `tfgap.advisor.NoiseStatistics.b_simple` returns them) or that is `<= 0`
    (a noiseless gradient, or a negative estimate) gives gain 1: the base
    schedule, as without AdaScale. `b_simple = inf` (pure noise) gives the
    limit `batch / base_batch`.

    Paper: Johnson et al. 2020, "AdaScale SGD: A User-Friendly Algorithm for
    Distributed Training" (arXiv 2007.05105), section 3, with `sigma^2 =
    tr(Sigma) / base_batch` and `mu^2 = |G|^2`.

    Args:
        b_simple: `tr(Sigma) / |G|^2`, the per-example noise scale (a number,
            `None`, or an array of them).
        base_batch: `b0 > 0`, the batch the learning-rate regime was written
            for.
        batch: `B >= base_batch`, the batch of the step (a number or an
            array; broadcast against `b_simple`).

    Returns:
        The gain: a float for scalar inputs, else a float64 array.

    Raises:
        ValueError: `base_batch` or `batch` not a positive finite number, or
            `batch < base_batch`; the message names the value received.

    Example:

    >>> adascale_gain(128.0, base_batch=128, batch=512)  # (1 + 1) / (1 + 1/4)
    1.6
    >>> adascale_gain(None, base_batch=128, batch=512), adascale_gain(1e9, 128, 128)
    (1.0, 1.0)
    >>> adascale_gain([0.0, 128.0, float("inf")], base_batch=128, batch=512)
    array([1. , 1.6, 4. ])
    """
    base = _validation.number("base_batch", base_batch, above=0)
    batch_array = np.asarray(batch, dtype=np.float64) if _numeric(batch) else None
    if batch_array is None or not np.all(np.isfinite(batch_array)):
        raise ValueError("Expected `batch` to be a finite number (or an array of them). "
                         f"Received: batch={batch!r}")
    if not np.all(batch_array >= base):
        raise ValueError(
            f"Expected `batch` >= base_batch={base:g} (AdaScale scales a regime up from its "
            f"batch, never down). Received: batch={batch!r}")
    if not (b_simple is None or _numeric(b_simple, allow_none=True)):
        raise ValueError("Expected `b_simple` to be a number, None, or an array of them. "
                         f"Received: b_simple={b_simple!r}")
    b_array = np.asarray(b_simple, dtype=np.float64)  # None -> nan: not measured
    gain = gain_formula(b_array, base, batch_array, np)
    return float(gain) if np.ndim(gain) == 0 else np.asarray(gain, np.float64)


def gain_formula(b_simple, base_batch, batch, ops):
    """The gain in any array library, unchecked: `ops` is `numpy` or `keras.ops`.

    The one home of the arithmetic: `adascale_gain` (NumPy, checked inputs)
    and `tfgap.adaptive.AdaScaleModel` (in the graph, `keras.ops`) both call
    it. `b_simple` is a float64 array or tensor in which an unmeasured value
    is `nan`; `batch` and `base_batch` are positive. A `batch` below
    `base_batch` (a short last batch in `model.fit`) gives the formula's
    value clipped to `[batch / base_batch, 1]`: less than one base step.

    Example:

    >>> import numpy as np
    >>> float(gain_formula(np.float64(128.0), 128.0, np.float64(512.0), np))
    1.6
    """
    scale = batch / base_batch
    positive = ops.logical_and(ops.greater(b_simple, 0.0), ops.logical_not(ops.isnan(b_simple)))
    infinite = ops.logical_and(positive, ops.isinf(b_simple))
    finite_b = ops.where(ops.logical_and(positive, ops.logical_not(infinite)), b_simple, 0.0)
    ratio = (1.0 + finite_b / base_batch) / (1.0 + finite_b / batch)  # 1 when b = 0
    ratio = ops.where(infinite, scale, ratio)
    ratio = ops.minimum(ops.maximum(ratio, ops.minimum(scale, 1.0)), ops.maximum(scale, 1.0))
    return ops.where(ops.equal(batch, base_batch), ops.ones_like(ratio), ratio)


def _numeric(value, allow_none=False):
    """Whether `value` is a real number or a (nested) array of them (and `None`s if allowed)."""
    if isinstance(value, bool):
        return False
    if isinstance(value, numbers.Real) or (allow_none and value is None):
        return True
    if isinstance(value, np.ndarray) and value.dtype.kind in "iuf":
        return True
    if isinstance(value, (list, tuple, np.ndarray)):
        return all(_numeric(v, allow_none) for v in value)
    return False


STATE_KEYS = ("progress", "steps")


class Progress:
    """The AdaScale progress `tau` of a run, in base-batch steps, on the host (float64).

    `advance(gain)` adds one step's gain; `value` is then the point at which
    the base schedule is read for the next step. `steps` counts the steps
    themselves. Additions are made one step at a time in float64, in the
    same order as the graph's `tfgap.adaptive.AdaScaleLearningRate.advance`,
    so both give the same bits. The state is a dict of floats (`state()` /
    `from_state`) for checkpoints.

    Args:
        value: the progress to start from (>= 0).
        steps: the steps taken so far (>= 0).

    Example:

    >>> progress = Progress()
    >>> progress.advance(1.5)
    1.5
    >>> progress.advance(2.0, steps=3)          # three steps of gain 2
    7.5
    >>> progress.steps, progress.reached(7.5), progress.reached(8)
    (4.0, True, False)
    >>> Progress.from_state(progress.state()).value
    7.5
    """

    def __init__(self, value=0.0, steps=0.0):
        self.value = _validation.number("value", value, minimum=0)
        self.steps = _validation.number("steps", steps, minimum=0)

    def advance(self, gain, steps=1):
        """Adds `gain` once per step for `steps` steps; returns the new `value`.

        Args:
            gain: the steps' gain (a finite number > 0, normally in `[1, S]`).
            steps: how many steps took that gain (an integer >= 0).

        Raises:
            ValueError: a gain that is not a positive finite number, or a
                negative or fractional `steps`.
        """
        gain = _validation.number("gain", gain, above=0)
        steps = _validation.integer("steps", steps, minimum=0, whole_floats=True)
        value = np.float64(self.value)
        for _ in range(steps):
            value = value + np.float64(gain)
        self.value = float(value)
        self.steps += steps
        return self.value

    def reached(self, base_steps):
        """Whether the progress has reached `base_steps` (the base run's length): the end."""
        return self.value >= _validation.number("base_steps", base_steps, minimum=0)

    def state(self):
        """`{"progress": value, "steps": steps}` (floats; `from_state` inverts it exactly)."""
        return {"progress": self.value, "steps": self.steps}

    def load_state(self, state):
        """Sets the state from `state()` output."""
        missing = sorted(set(STATE_KEYS) - set(state))
        if missing:
            raise ValueError(f"Expected a Progress state with keys {list(STATE_KEYS)}. "
                             f"Received one without {missing}.")
        self.value = _validation.number("progress", state["progress"], minimum=0)
        self.steps = _validation.number("steps", state["steps"], minimum=0)

    @classmethod
    def from_state(cls, state):
        """A `Progress` with the state `state()` returned."""
        progress = cls()
        progress.load_state(state)
        return progress

    def __repr__(self):
        return f"Progress(value={self.value!r}, steps={int(self.steps)})"

