"""Online batch-size control by goodput: throughput times statistical efficiency.

At each decision point the trainer picks the global batch `B` among
candidates (multiples of a small batch `b`) that maximizes

```
goodput(B) = throughput(B) * E(B),     E(B) = (B_noise + b) / (B_noise + B),
```

as in Pollux (Qiao et al. 2021, "Pollux: Co-adaptive Cluster Scheduling for
Goodput-Optimized Deep Learning", OSDI, arXiv 2008.12260).
`throughput(B)` is in examples per second, measured by the trainer;
`E(B)` is the statistical efficiency per example of `B` relative to `b`
from McCandlish et al. 2018 ("An Empirical Model of Large-Batch Training",
arXiv 1812.06162, eqs. 2.11-2.12): reaching a given loss takes
`E_min (1 + B / B_noise)` examples at batch `B`, so one example at `B` is
worth `E(B)` examples at `b`, and `goodput(B)` counts small-batch-equivalent
examples per second. The ghost batch stays `b`, so batch normalization
sees the same batches whatever `B` is.

- `statistical_efficiency(batch, small_batch, b_noise)`: `E(B)`.
- `candidate_batches(small_batch, max_batch, spacing)`: the candidate set.
- `ThroughputModel`: seconds per step per batch, measured (median of the
  last timings) and fitted (`alpha + beta B`) for the unmeasured batches.
- `choose_batch(candidates, small_batch, b_noise, throughput_model)`: the
  goodput argmax and a record of every candidate's numbers.
- `BatchSizeController`: the decisions along a run, with exploration of
  unmeasured batches, a log, and a plain JSON-able state.

Everything here is NumPy and plain Python (no TensorFlow, no Keras), and
every decision is a deterministic function of the recorded timings and the
noise scales given.
"""

import copy
import math
import numbers
import statistics

import numpy as np

from tfgap import _validation

SPACINGS = ("multiples", "powers_of_two")
TIE_TOLERANCE = 1e-9
REASONS = ("goodput", "explore", "no_timings")


# -- statistical efficiency ------------------------------------------------------------------


def statistical_efficiency(batch, small_batch, b_noise):
    """The statistical efficiency per example of batch `batch` relative to `small_batch`.

    ```
    E(B) = (B_noise + b) / (B_noise + B)
    ```

    the ratio of the examples needed at `b` to those needed at `B` for the
    same progress (McCandlish et al. 2018, arXiv 1812.06162, eqs. 2.11-2.12; the
    efficiency of Pollux, Qiao et al. 2021, arXiv 2008.12260). It is 1 at
    `B = b`, below 1 above it, and tends to 1 for every `B` as `B_noise`
    grows (a noisy gradient: larger batches are nearly free).

    **Not measured yet.** A `b_noise` that is not a positive finite number
    (`None`, `nan`, `inf`, zero or a negative estimate) is taken as 0, the
    conservative end: `E(B) = b / B`, larger batches make no more progress
    per step than the small one. Goodput is then `b / time(B)`, so a
    controller stays at the small batch until the noise scale is measured
    (unless a larger batch is measured to take less time per step).

    Args:
        batch: `B`, examples per step (> 0; a number or an array).
        small_batch: `b` (> 0).
        b_noise: `B_noise`, the gradient noise scale (`B_simple` where
            `B_noise` is not measured); a number, `None`, or an array that
            broadcasts with `batch`.

    Returns:
        A float, or an array of them for array inputs.

    Raises:
        ValueError: `batch` or `small_batch` not positive and finite.

    Example:

    >>> statistical_efficiency(32, small_batch=32, b_noise=100.0)
    1.0
    >>> statistical_efficiency([64, 128], small_batch=32, b_noise=64.0).tolist()
    [0.75, 0.5]
    >>> statistical_efficiency(128, small_batch=32, b_noise=None)   # not measured: b / B
    0.25
    """
    small_batch = _validation.number("small_batch", small_batch, above=0)
    batch_array = np.asarray(batch, np.float64)
    if batch_array.size == 0 or not np.all(np.isfinite(batch_array)) or not np.all(
            batch_array > 0):
        raise ValueError(f"Expected `batch` > 0 and finite. Received: batch={batch!r}")
    if b_noise is not None and not isinstance(b_noise, np.ndarray) and np.ndim(b_noise) == 0:
        measured_b_noise(b_noise)  # a number or None, or a ValueError
    noise = np.asarray(np.nan if b_noise is None else b_noise, np.float64)
    with np.errstate(invalid="ignore"):
        noise = np.where(np.isfinite(noise) & (noise > 0), noise, 0.0)
    efficiency = (noise + small_batch) / (noise + batch_array)
    return float(efficiency) if efficiency.ndim == 0 else efficiency


def measured_b_noise(b_noise):
    """`b_noise` as a float when it counts as measured (positive, finite), else `None`.

    Raises:
        ValueError: `b_noise` neither `None` nor a number.

    Example:

    >>> measured_b_noise(12), measured_b_noise(float("nan")), measured_b_noise(-3.0)
    (12.0, None, None)
    """
    if b_noise is None:
        return None
    if isinstance(b_noise, bool) or not isinstance(b_noise, numbers.Real):
        raise ValueError(  # noqa: TRY004
            f"Expected `b_noise` to be a number or None (not measured). "
            f"Received: b_noise={b_noise!r}")
    if not math.isfinite(b_noise) or b_noise <= 0:
        return None
    return float(b_noise)


# -- the candidate set -----------------------------------------------------------------------


def candidate_batches(small_batch, max_batch, spacing="multiples"):
    """The candidate global batches: multiples of `small_batch` up to `max_batch`.

    Args:
        small_batch: `b` (an integer >= 1).
        max_batch: the largest candidate, a multiple of `b` (for
            `"powers_of_two"`, `b` times a power of two).
        spacing: `"multiples"` (`b, 2b, 3b, ..., max_batch`) or
            `"powers_of_two"` (`b, 2b, 4b, ..., max_batch`).

    Returns:
        A tuple of ints, increasing.

    Raises:
        ValueError: `max_batch` not in the set, or a bad argument.

    Example:

    >>> candidate_batches(32, 128)
    (32, 64, 96, 128)
    >>> candidate_batches(32, 256, spacing="powers_of_two")
    (32, 64, 128, 256)
    """
    small_batch = _validation.integer("small_batch", small_batch, minimum=1)
    max_batch = _validation.integer("max_batch", max_batch, minimum=small_batch)
    _validation.choice("spacing", spacing, SPACINGS)
    if max_batch % small_batch:
        raise ValueError(f"Expected `max_batch` to be a multiple of small_batch={small_batch}. "
                         f"Received: max_batch={max_batch}")
    ratio = max_batch // small_batch
    if spacing == "multiples":
        return tuple(small_batch * k for k in range(1, ratio + 1))
    if ratio & (ratio - 1):
        raise ValueError(
            f"Expected `max_batch` to be small_batch={small_batch} times a power of two "
            f"(spacing='powers_of_two'). Received: max_batch={max_batch}")
    return tuple(small_batch << k for k in range(ratio.bit_length()))


def check_candidates(candidates, small_batch):
    """`candidates` as an increasing tuple of distinct ints, each a multiple of `small_batch`.

    Raises:
        ValueError: an empty list, or an entry that is not a positive
            multiple of `small_batch` (the message names it).

    Example:

    >>> check_candidates([64, 32, 64], small_batch=32)
    (32, 64)
    """
    small_batch = _validation.integer("small_batch", small_batch, minimum=1)
    if isinstance(candidates, (str, bytes)) or not hasattr(candidates, "__iter__"):
        raise ValueError(
            f"Expected `candidates` to be a list of batch sizes. Received: "
            f"candidates={candidates!r}")
    values = list(candidates)
    if not values:
        raise ValueError("Expected at least one candidate batch. Received: candidates=[]")
    out = []
    for value in values:
        if (isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1
                or value % small_batch):
            raise ValueError(
                f"Expected every entry of `candidates` to be a positive multiple of "
                f"small_batch={small_batch}. Received: candidates={values!r}")
        out.append(int(value))
    return tuple(sorted(set(out)))


# -- throughput ------------------------------------------------------------------------------


class ThroughputModel:
    """Seconds per step at each batch size: measured where timed, fitted elsewhere.

    `record(batch, seconds)` keeps the last `window` timings of each batch.
    A batch with at least `min_timings` of them is *measured*: its step time
    is their median (robust to an occasional slow step: a checkpoint, a
    stall of the input pipeline). The first `skip_after_switch` timings
    after the batch changes (and at the start) are not kept: a new batch
    shape is traced and compiled in its first step.

    An unmeasured batch's step time comes from a linear model fitted to the
    measured medians, a simplification of Pollux's throughput model (Qiao et
    al. 2021, arXiv 2008.12260; without its communication and
    gradient-accumulation terms):

    ```
    time(B) = alpha + beta B,      alpha >= 0, beta >= 0
    ```

    by least squares over the measured batches (one point each); when the
    unconstrained solution has a negative coefficient the better of the two
    one-coefficient fits is used (both are feasible for positive times), so
    a larger batch never takes less time per step. With one measured batch
    `b0`, `time(B) = time(b0) B / b0`: no speed-up from larger batches, the
    conservative assumption until a second batch is timed. With none,
    nothing is predicted (`None`).

    All arithmetic is in plain Python floats (`math.fsum`,
    `statistics.median`), so the predictions are the same on every machine
    for the same recorded timings. The state is a plain JSON-able dict.

    Args:
        window: timings kept per batch (>= 1).
        min_timings: timings a batch needs to count as measured, in
            `[1, window]`.
        skip_after_switch: timings not kept after each change of batch (>= 0).

    Example:

    >>> model = ThroughputModel(window=3, min_timings=2, skip_after_switch=1)
    >>> for seconds in (9.0, 0.10, 0.12, 0.11):       # 9.0: the first step compiles
    ...     _ = model.record(32, seconds)
    >>> model.measured()
    {32: 0.11}
    >>> model.step_time(64), model.throughput(64)       # one batch timed: no speed-up
    (0.22, 290.9...)
    >>> for seconds in (5.0, 0.13, 0.13):
    ...     _ = model.record(64, seconds)
    >>> [round(v, 9) for v in model.fit()]              # time = 0.09 + 0.000625 B
    [0.09, 0.000625]
    >>> round(model.step_time(128), 6)
    0.17
    """

    def __init__(self, window=5, min_timings=3, skip_after_switch=1):
        self.window = _validation.integer("window", window, minimum=1)
        self.min_timings = _validation.integer("min_timings", min_timings, minimum=1,
                                               maximum=self.window)
        self.skip_after_switch = _validation.integer("skip_after_switch", skip_after_switch,
                                                     minimum=0)
        self._timings = {}
        self._last_batch = None
        self._skip_left = 0

    def settings(self):
        """The constructor's arguments, as a dict."""
        return {"window": self.window, "min_timings": self.min_timings,
                "skip_after_switch": self.skip_after_switch}

    def record(self, batch, seconds):
        """Records one step of `batch` examples that took `seconds`.

        Args:
            batch: the step's global batch (an integer >= 1).
            seconds: its wall time (> 0, finite).

        Returns:
            `True` when the timing was kept, `False` when skipped as the
            warm-up after a change of batch.

        Raises:
            ValueError: a bad batch or time.
        """
        batch = _validation.integer("batch", batch, minimum=1)
        seconds = _validation.number("seconds", seconds, above=0)
        if batch != self._last_batch:
            self._last_batch = batch
            self._skip_left = self.skip_after_switch
        if self._skip_left > 0:
            self._skip_left -= 1
            return False
        kept = self._timings.setdefault(batch, [])
        kept.append(seconds)
        del kept[:-self.window]
        return True

    def restart(self):
        """Treats the next timings as a warm-up, as after a change of batch.

        Call it when a resumed process starts stepping: its first step
        traces and compiles again.
        """
        self._last_batch = None
        self._skip_left = 0

    def timings(self, batch):
        """The kept timings of `batch`, oldest first (a tuple, maybe empty)."""
        return tuple(self._timings.get(int(batch), ()))

    def measured_step_time(self, batch):
        """The median kept timing of `batch`, or `None` below `min_timings` of them."""
        kept = self._timings.get(int(batch), ())
        if len(kept) < self.min_timings:
            return None
        return float(statistics.median(kept))

    def measured(self):
        """`{batch: median seconds per step}` of the measured batches, increasing."""
        out = {}
        for batch in sorted(self._timings):
            seconds = self.measured_step_time(batch)
            if seconds is not None:
                out[batch] = seconds
        return out

    def fit(self):
        """`(alpha, beta)` of `time(B) = alpha + beta B`, or `None` when nothing is measured."""
        points = self.measured()
        if not points:
            return None
        xs = [float(b) for b in points]
        ys = list(points.values())
        if len(xs) == 1:
            return 0.0, ys[0] / xs[0]
        n = len(xs)
        x_mean, y_mean = math.fsum(xs) / n, math.fsum(ys) / n
        sxx = math.fsum((x - x_mean) ** 2 for x in xs)
        sxy = math.fsum((x - x_mean) * (y - y_mean) for x, y in zip(xs, ys))
        beta = sxy / sxx
        alpha = y_mean - beta * x_mean
        if alpha >= 0 and beta >= 0:
            return alpha, beta
        # The constrained optimum lies on a face: through the origin or flat.
        through_origin = (0.0, math.fsum(x * y for x, y in zip(xs, ys))
                          / math.fsum(x * x for x in xs))
        flat = (y_mean, 0.0)

        def residual(params):
            a, b = params
            return math.fsum((a + b * x - y) ** 2 for x, y in zip(xs, ys))

        return min((through_origin, flat), key=residual)

    def step_time(self, batch):
        """Seconds per step at `batch`: measured median, else the fit, else `None`."""
        batch = _validation.integer("batch", batch, minimum=1)
        measured = self.measured_step_time(batch)
        if measured is not None:
            return measured
        params = self.fit()
        if params is None:
            return None
        alpha, beta = params
        return alpha + beta * batch

    def throughput(self, batch):
        """Examples per second at `batch`, `batch / step_time(batch)`, or `None`."""
        seconds = self.step_time(batch)
        return None if seconds is None else batch / seconds

    def state(self):
        """The whole state as a JSON-able dict (`from_state` inverts it exactly)."""
        return {**self.settings(),
                "timings": [[batch, list(kept)] for batch, kept in sorted(self._timings.items())],
                "last_batch": self._last_batch, "skip_left": self._skip_left}

    def load_state(self, state):
        """Sets the state from `state()` output (same settings, or a `ValueError`)."""
        _check_keys("ThroughputModel", state,
                    (*self.settings(), "timings", "last_batch", "skip_left"))
        _check_settings(self.settings(), state)
        self._timings = {int(batch): [float(t) for t in kept] for batch, kept in state["timings"]}
        last = state["last_batch"]
        self._last_batch = None if last is None else int(last)
        self._skip_left = int(state["skip_left"])

    @classmethod
    def from_state(cls, state):
        """A `ThroughputModel` with the state `state()` returned."""
        _check_keys("ThroughputModel", state, ("window", "min_timings", "skip_after_switch"))
        model = cls(state["window"], state["min_timings"], state["skip_after_switch"])
        model.load_state(state)
        return model

    def __repr__(self):
        return (f"ThroughputModel(window={self.window}, min_timings={self.min_timings}, "
                f"skip_after_switch={self.skip_after_switch}, measured={self.measured()})")


def _check_keys(kind, state, keys):
    if not isinstance(state, dict):
        # tfgap raises ValueError for every bad argument, as tfgap._validation does.
        raise ValueError(  # noqa: TRY004
            f"Expected a {kind} state (a dict). Received: {state!r}"[:300])
    missing = sorted(set(keys) - set(state))
    if missing:
        raise ValueError(f"Expected a {kind} state with keys {sorted(keys)}. Received one "
                         f"without {missing}.")


def _check_settings(settings, state):
    for key, value in settings.items():
        if state[key] != value:
            raise ValueError(f"Expected a state with {key}={value!r} (this object's). "
                             f"Received: {key}={state[key]!r}")


# -- one decision ----------------------------------------------------------------------------


def choose_batch(candidates, small_batch, b_noise, throughput_model, *,
                 tie_tolerance=TIE_TOLERANCE):
    """The candidate batch of the highest goodput, and every candidate's numbers.

    ```
    goodput(B) = throughput(B) * E(B) = B / time(B) * (B_noise + b) / (B_noise + B)
    ```

    in small-batch-equivalent examples per second, `time(B)` from
    `throughput_model.step_time` and `E` from `statistical_efficiency`
    (which see for an unmeasured `b_noise`). Ties go to the smaller batch:
    the smallest candidate whose goodput is within a relative
    `tie_tolerance` of the best is chosen, so rounding never decides.
    When no batch has been timed (`step_time` is `None`), nothing can be
    compared and the smallest candidate is chosen.

    Args:
        candidates: batch sizes, each a positive multiple of `small_batch`
            (see `candidate_batches`).
        small_batch: `b`, the batch the efficiency is relative to.
        b_noise: the gradient noise scale, or `None` (not measured).
        throughput_model: a `ThroughputModel` (anything with
            `step_time(batch)` and `measured_step_time(batch)`).
        tie_tolerance: the relative margin within which goodputs tie (>= 0).

    Returns:
        `(batch, record)`: the chosen batch (an int) and a JSON-able dict
        `{"batch", "b_noise", "candidates"}`, where `"candidates"` lists per
        candidate `{"batch", "step_time", "throughput", "efficiency",
        "goodput", "measured"}` (`None` for what is not known).

    Raises:
        ValueError: a bad candidate list or argument.

    Example:

    >>> model = ThroughputModel(min_timings=1, skip_after_switch=0)
    >>> for batch, seconds in ((32, 0.10), (64, 0.12), (128, 0.16)):
    ...     _ = model.record(batch, seconds)
    >>> batch, record = choose_batch([32, 64, 128], 32, b_noise=200.0, throughput_model=model)
    >>> batch, [round(c["goodput"]) for c in record["candidates"]]
    (128, [320, 469, 566])
    >>> choose_batch([32, 64, 128], 32, b_noise=None, throughput_model=model)[0]
    32
    """
    candidates = check_candidates(candidates, small_batch)
    tie_tolerance = _validation.number("tie_tolerance", tie_tolerance, minimum=0)
    noise = measured_b_noise(b_noise)
    rows = []
    for batch in candidates:
        seconds = throughput_model.step_time(batch)
        efficiency = statistical_efficiency(batch, small_batch, noise)
        throughput = None if seconds is None else batch / seconds
        rows.append({"batch": batch, "step_time": seconds, "throughput": throughput,
                     "efficiency": efficiency,
                     "goodput": None if throughput is None else throughput * efficiency,
                     "measured": throughput_model.measured_step_time(batch) is not None})
    record = {"batch": None, "b_noise": noise, "candidates": rows}
    goodputs = [row["goodput"] for row in rows]
    if any(g is None for g in goodputs):
        chosen = candidates[0]
    else:
        best = max(goodputs)
        chosen = next(row["batch"] for row in rows
                      if row["goodput"] >= best - tie_tolerance * abs(best))
    record["batch"] = chosen
    return chosen, record


# -- the controller --------------------------------------------------------------------------


class BatchSizeController:
    """The global batch along a run: goodput decisions, exploration, a log, a state.

    The trainer calls `record(batch, seconds)` after each step (the step's
    wall time) and `decide(step, b_noise)` at each decision point (an epoch
    boundary, or every N steps), then trains at the returned batch until
    the next decision.

    **Decision.** `choose_batch` over the candidates with the timings so
    far (`ThroughputModel`). **Exploration.** A batch that has never been
    timed is predicted conservatively (with one timed batch, no speed-up
    at all), so goodput alone would rarely try it. When `explore` is on and
    the candidate just above the goodput choice is not measured yet, the
    controller takes it instead for this period (`"reason": "explore"`) if
    it could win even at best: if its goodput with the chosen batch's step
    time (perfect parallel scaling, the most a larger batch can gain) beats
    the chosen batch's goodput beyond the tie tolerance. Once timed it is
    measured and never explored again, so a run explores each candidate
    at most about once, never from a batch that is itself unmeasured (going
    there measures it), and never while `b_noise` is unmeasured (`E = b / B`
    makes that bound a tie). Nothing here is random: the decisions are a
    function of the recorded timings and the `b_noise` values given.

    **State.** `state()` is a plain dict of ints, floats, strings, bools,
    `None` and lists (the throughput model's timings, the current batch and
    the decision log); it survives `json.dumps` / `json.loads` exactly
    (Python writes floats with the shortest round-tripping repr), and a
    controller loaded from it decides as the uninterrupted one would.

    Args:
        small_batch: `b`, the small (and ghost) batch.
        candidates: the candidate batches, positive multiples of `b`
            (`candidate_batches(b, max_batch, spacing)`).
        initial_batch: the batch before the first decision (default the
            smallest candidate); one of the candidates.
        throughput_model: a `ThroughputModel` (default `ThroughputModel()`).
        explore: try the next larger unmeasured candidate when it could win.
        tie_tolerance: see `choose_batch`.

    Example:

    >>> controller = BatchSizeController(32, candidate_batches(32, 128, "powers_of_two"),
    ...                                  throughput_model=ThroughputModel(min_timings=1))
    >>> for _ in range(3):
    ...     _ = controller.record(controller.batch, 0.10)
    >>> controller.decide(step=3, b_noise=None)          # noise scale not measured: stay
    32
    >>> controller.decide(step=3, b_noise=100.0)         # 64 could win: time it
    64
    >>> controller.log[-1]["reason"]
    'explore'
    >>> for _ in range(3):
    ...     _ = controller.record(controller.batch, 0.11)
    >>> controller.decide(step=6, b_noise=100.0)         # the fit predicts 128 best
    128
    >>> restored = BatchSizeController.from_state(controller.state())
    >>> restored.batch, restored.log == controller.log
    (128, True)
    """

    def __init__(self, small_batch, candidates, *, initial_batch=None, throughput_model=None,
                 explore=True, tie_tolerance=TIE_TOLERANCE):
        self.small_batch = _validation.integer("small_batch", small_batch, minimum=1)
        self.candidates = check_candidates(candidates, self.small_batch)
        if initial_batch is None:
            initial_batch = self.candidates[0]
        if initial_batch not in self.candidates:
            raise ValueError(f"Expected `initial_batch` to be one of the candidates "
                             f"{list(self.candidates)}. Received: initial_batch={initial_batch!r}")
        self.batch = int(initial_batch)
        if throughput_model is None:
            throughput_model = ThroughputModel()
        if not isinstance(throughput_model, ThroughputModel):
            raise ValueError(  # noqa: TRY004
                f"Expected `throughput_model` to be a ThroughputModel. Received: "
                f"throughput_model={throughput_model!r}")
        self.throughput_model = throughput_model
        self.explore = _validation.boolean("explore", explore)
        self.tie_tolerance = _validation.number("tie_tolerance", tie_tolerance, minimum=0)
        self.log = []

    def settings(self):
        """The settings a state must share with this controller."""
        return {"small_batch": self.small_batch, "candidates": list(self.candidates),
                "explore": self.explore, "tie_tolerance": self.tie_tolerance}

    def record(self, batch, seconds):
        """Records one step's wall time (see `ThroughputModel.record`); returns whether kept.

        Record the steps at the decided batches; a batch of another size (a
        last batch shrunk by `tfgap.adaptive.rebatch`'s `remainder="shrink"`)
        is better left out: it would count as a change of batch.
        """
        return self.throughput_model.record(batch, seconds)

    def decide(self, step, b_noise, largest=None):
        """Chooses the batch to train at from now on, and logs why.

        Args:
            step: the global step of the decision (an integer >= 0; logged).
            b_noise: the gradient noise scale measured so far, or `None` /
                `nan` (not measured; see `statistical_efficiency`).
            largest: the largest batch allowed at this decision (e.g. the
                examples left in an epoch), or `None`: every candidate. The
                candidates above it are neither chosen nor explored; at
                least the smallest candidate must fit.

        Returns:
            The chosen batch (an int), also `self.batch`. `self.log[-1]` is
            the record of `choose_batch` with `"step"`, `"previous"` (the
            batch before), `"best"` (the goodput choice) and `"reason"`
            (`"goodput"`, `"explore"`, or `"no_timings"` when no batch has
            been timed yet) added.
        """
        step = _validation.integer("step", step, minimum=0)
        candidates = self.candidates
        if largest is not None:
            largest = _validation.integer("largest", largest, minimum=self.candidates[0])
            candidates = tuple(batch for batch in candidates if batch <= largest)
        best, record = choose_batch(candidates, self.small_batch, b_noise,
                                    self.throughput_model, tie_tolerance=self.tie_tolerance)
        rows = {row["batch"]: row for row in record["candidates"]}
        chosen, reason = best, "goodput"
        if rows[best]["goodput"] is None:
            reason = "no_timings"
        elif self.explore and rows[best]["measured"]:
            index = candidates.index(best)
            larger = candidates[index + 1] if index + 1 < len(candidates) else None
            if larger is not None and not rows[larger]["measured"]:
                # Its goodput at best's step time: the most a larger batch can gain.
                optimistic = larger / rows[best]["step_time"] * rows[larger]["efficiency"]
                goodput = rows[best]["goodput"]
                if optimistic > goodput + self.tie_tolerance * abs(goodput):
                    chosen, reason = larger, "explore"
        record.update(batch=chosen, step=step, previous=self.batch, best=best, reason=reason)
        self.batch = chosen
        self.log.append(record)
        return chosen

    def state(self):
        """The whole state as a JSON-able dict (`load_state` / `from_state` invert it)."""
        return {**self.settings(), "batch": self.batch,
                "throughput": self.throughput_model.state(), "log": copy.deepcopy(self.log)}

    def load_state(self, state):
        """Sets the state from `state()` output (same settings, or a `ValueError`)."""
        _check_keys("BatchSizeController", state,
                    (*self.settings(), "batch", "throughput", "log"))
        _check_settings(self.settings(), state)
        if state["batch"] not in self.candidates:
            raise ValueError(f"Expected a state whose batch is one of the candidates "
                             f"{list(self.candidates)}. Received: batch={state['batch']!r}")
        self.throughput_model.load_state(state["throughput"])
        self.batch = int(state["batch"])
        self.log = copy.deepcopy(list(state["log"]))

    @classmethod
    def from_state(cls, state):
        """A `BatchSizeController` with the state `state()` returned."""
        _check_keys("BatchSizeController", state,
                    ("small_batch", "candidates", "explore", "tie_tolerance", "throughput"))
        controller = cls(state["small_batch"], state["candidates"], explore=state["explore"],
                         tie_tolerance=state["tie_tolerance"],
                         throughput_model=ThroughputModel.from_state(state["throughput"]))
        controller.load_state(state)
        return controller

    def __repr__(self):
        return (f"BatchSizeController(small_batch={self.small_batch}, "
                f"candidates={list(self.candidates)}, batch={self.batch}, "
                f"decisions={len(self.log)})")
