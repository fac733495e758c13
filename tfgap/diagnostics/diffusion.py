"""The record of weight diffusion: log-spaced steps and the `a * log t + b` fit.

Hoffer et al. (2017) find that `||w_t - w_0||` grows like `a * log(t) + b`.
Recording it at log-spaced steps spreads the points evenly against `log t`,
and the slope `a` of the least-squares fit summarizes a run. Both live here,
for the `WeightDistance` callback, the trainer's loop and the study reports.
"""

import math
import numbers

import numpy as np


class LogSpacedSteps:
    """Log-spaced record steps: `ceil(10 ** (i / per_decade))`, i = 0, 1, ...

    With `per_decade=10` that is 1, 2, 3, 4, 6, 7, 8, 10, 13, 16, 20, 26, 32,
    40, 51, 64, 80, 100, ... (duplicates removed), so a quantity recorded at
    these steps has evenly spread points against `log t`. Calling the object
    with the current step says whether a record is due and advances past that
    step; steps must not decrease between calls.

    Args:
        per_decade: record steps per factor 10 (an integer >= 1).

    Example:

    >>> due = LogSpacedSteps()
    >>> [t for t in range(1, 30) if due(t)]
    [1, 2, 3, 4, 6, 7, 8, 10, 13, 16, 20, 26]
    >>> due.next_step, due.next_after(100)
    (32, 126)

    A step that jumps over several record steps is due once:

    >>> due = LogSpacedSteps(per_decade=1)
    >>> due(5), due(9), due(250), due.next_step
    (True, False, True, 1000)
    """

    def __init__(self, per_decade=10):
        if (
            isinstance(per_decade, bool)
            or not isinstance(per_decade, numbers.Real)
            or per_decade != int(per_decade)
            or per_decade < 1
        ):
            raise ValueError(f"Expected per_decade to be an integer >= 1; received {per_decade!r}.")
        self.per_decade = int(per_decade)
        self._index = 0

    def _at(self, index):
        # ceil(10 ** (index / r)) with a guard against 10 ** 1.0 = 10.000000000000002.
        return int(math.ceil(10.0 ** (index / self.per_decade) - 1e-9))

    @property
    def next_step(self):
        """The first step at which a call returns True (does not advance)."""
        return self._at(self._index)

    def next_after(self, step):
        """The first record step after `step` (does not advance)."""
        index = 0
        while self._at(index) <= step:
            index += 1
        return self._at(index)

    def __call__(self, step):
        """True if `step` reached the next record step; then advances past `step`."""
        if step < self._at(self._index):
            return False
        while self._at(self._index) <= step:
            self._index += 1
        return True

    def reset(self):
        """Starts over from step 1."""
        self._index = 0
        return self


def fit_diffusion_slope(steps, distances, min_step=1):
    """Least-squares fit of `distance = a * log(step) + b`.

    Only the records at steps `>= max(min_step, 1)` are fitted (the first
    updates move the weights almost linearly; the log law is asymptotic).

    Paper: Hoffer, Hubara & Soudry, "Train longer, generalize better: closing
    the generalization gap in large batch training of neural networks", NIPS
    2017 (arXiv 1705.08741), section 3 and Figure 1.

    Args:
        steps: the recorded steps (a sequence of numbers).
        distances: the distance `||w_t - w_0||` at each step.
        min_step: the first step fitted (a number; e.g. `0.1 * last_step` to
            fit the last decade of a run).

    Returns:
        The tuple `(a, b)` of floats; `a` is the diffusion slope.

    Raises:
        ValueError: when `steps` and `distances` differ in length, or fewer
            than two distinct steps are `>= min_step`.

    Example:

    >>> import math
    >>> steps = [1, 2, 5, 10, 20]
    >>> a, b = fit_diffusion_slope(steps, [2.0 * math.log(t) + 1.0 for t in steps])
    >>> round(a, 6), round(b, 6)
    (2.0, 1.0)
    """
    steps = np.asarray(steps, np.float64).ravel()
    distances = np.asarray(distances, np.float64).ravel()
    if steps.shape != distances.shape:
        raise ValueError(
            f"Expected as many distances as steps; received {steps.size} steps and "
            f"{distances.size} distances."
        )
    if isinstance(min_step, bool) or not isinstance(min_step, numbers.Real):
        raise ValueError(f"Expected min_step to be a number; received {min_step!r}.")
    keep = steps >= max(float(min_step), 1.0)
    if len(np.unique(steps[keep])) < 2:
        raise ValueError(
            "Expected records at two or more distinct steps >= min_step to fit "
            f"a * log(t) + b; received steps {steps.tolist()} with min_step={min_step}."
        )
    a, b = np.polyfit(np.log(steps[keep]), distances[keep], 1)
    return float(a), float(b)
