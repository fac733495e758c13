"""From a measured noise scale to candidate batch sizes, rates, ghosts and one recommendation."""

import dataclasses
import json
import math
import numbers

from tfgap import schedules
from tfgap.advisor import tradeoff
from tfgap.advisor.noise import NoiseScaleError, NoiseScaleEstimate

SCALINGS = ("sqrt", "linear")
REMEDIES = ("LR", "warmup", "GBN", "RA")
# A relative standard error of B_simple above this is reported as a warning.
UNCERTAIN_RELATIVE_ERROR = 0.5


@dataclasses.dataclass(frozen=True)
class Candidate:
    """One candidate batch size: predicted cost, learning rates, ghost size, remedies.

    Attributes:
        batch_size: the global batch `B`.
        per_replica_batch_size: `B / num_replicas`.
        predicted_steps: `S(B) = S_min (1 + B_simple / B)`.
        predicted_examples: `E(B) = B S(B)`.
        predicted_epochs: `E(B) / num_train_examples`.
        relative_wall_time: `S(B) t(B) / (S(B_0) t(B_0))`, `t` the time of one
            step (measured, or constant), `B_0` the smallest candidate.
        learning_rate_sqrt: the small-batch rate times `sqrt(B / B_small)`.
        learning_rate_linear: the small-batch rate times `B / B_small`.
        warmup_epochs: linear warm-up (epochs at `B`) before the scaled rate.
        regime_adapted_steps: steps under full regime adaptation (Hoffer et
            al.: as many updates as the small-batch regime).
        regime_adaptation: the partial regime-adaptation factor (>= 1) under
            which the regime trains `predicted_steps` steps at `B`.
        ghost_batch_size: the ghost batch (dividing the per-replica batch); 0
            for plain normalization.
        remedies: which of `"LR"`, `"warmup"`, `"GBN"`, `"RA"` to apply.
        beyond_critical: `B > B_simple`: more than twice the fewest examples.
    """

    batch_size: int
    per_replica_batch_size: int
    predicted_steps: float
    predicted_examples: float
    predicted_epochs: float
    relative_wall_time: float
    learning_rate_sqrt: float
    learning_rate_linear: float
    warmup_epochs: float
    regime_adapted_steps: int
    regime_adaptation: float
    ghost_batch_size: int
    remedies: tuple
    beyond_critical: bool

    def to_dict(self):
        out = dataclasses.asdict(self)
        out["remedies"] = list(self.remedies)
        return out

    @classmethod
    def from_dict(cls, values):
        values = dict(values)
        values["remedies"] = tuple(values["remedies"])
        return cls(**values)


@dataclasses.dataclass(frozen=True)
class Advice:
    """The advisor's output: the noise scale, the candidates and the recommendation.

    Attributes:
        b_simple: the gradient noise scale the advice uses (`B_crit ~ B_simple`).
        b_simple_stderr: its standard error.
        small_batch_size: `B_small`, the batch of the trusted regime.
        epochs: the trusted regime's length in epochs at `B_small`.
        num_train_examples: the training examples per epoch.
        small_steps: `S_small`, the trusted regime's length in steps.
        learning_rate: the small-batch learning rate that the rules scale.
        scaling: the rule of the recommendation, `"sqrt"` or `"linear"`.
        s_min: `S_small / (1 + B_simple / B_small)`.
        e_min: `S_min * B_simple`.
        num_replicas: replicas the global batch is split over.
        max_batch_size: the largest batch considered.
        candidates: the `Candidate`s, by increasing batch size.
        recommended: one of `candidates`.
        warnings: what the user should know (uncertain or extreme values).
        measurements: the `NoiseScaleEstimate`s of the measurement run.
        settings: free-form JSON-ready facts (dataset, model, recipe, ...).
    """

    b_simple: float
    b_simple_stderr: float
    small_batch_size: int
    epochs: float
    num_train_examples: int
    small_steps: int
    learning_rate: float
    scaling: str
    s_min: float
    e_min: float
    num_replicas: int
    max_batch_size: int
    candidates: tuple
    recommended: Candidate
    warnings: tuple = ()
    measurements: tuple = ()
    settings: dict = dataclasses.field(default_factory=dict)

    # -- serialization ------------------------------------------------------
    def to_dict(self):
        """A JSON-ready dict (`from_dict` inverts it exactly)."""
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        out["candidates"] = [c.to_dict() for c in self.candidates]
        out["recommended"] = self.recommended.to_dict()
        out["warnings"] = list(self.warnings)
        out["measurements"] = [m.to_dict() for m in self.measurements]
        out["settings"] = dict(self.settings)
        return out

    @classmethod
    def from_dict(cls, values):
        """Rebuilds an `Advice` from `to_dict()` output."""
        values = dict(values)
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - names)
        if unknown:
            raise ValueError(f"Expected only Advice fields; received unknown keys {unknown}.")
        values["candidates"] = tuple(Candidate.from_dict(c) for c in values["candidates"])
        values["recommended"] = Candidate.from_dict(values["recommended"])
        values["warnings"] = tuple(values.get("warnings", ()))
        values["measurements"] = tuple(
            NoiseScaleEstimate.from_dict(m) for m in values.get("measurements", ()))
        return cls(**values)

    def to_json(self):
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text):
        return cls.from_dict(json.loads(text))

    def save(self, path):
        """Writes `to_json()` to `path`."""
        with open(path, "w") as f:
            f.write(self.to_json() + "\n")

    @classmethod
    def load(cls, path):
        with open(path) as f:
            return cls.from_json(f.read())

    # -- presentation -------------------------------------------------------
    def flags(self, candidate=None):
        """The training flags that run `candidate` (default: the recommendation).

        Returns an ordered dict of `TrainConfig` field -> value: `batch_size`,
        `base_batch_size`, `lr_scaling`, `warmup_epochs`, `ghost_batch_size`,
        `regime_adaptation`. The regime itself (rates, boundaries, epochs) is
        the trusted one and stays as it is.
        """
        c = self.recommended if candidate is None else candidate
        return {
            "batch_size": c.batch_size,
            "base_batch_size": self.small_batch_size,
            "lr_scaling": self.scaling if c.batch_size != self.small_batch_size else "none",
            # Rounded down: the warm-up must still end by the first breakpoint.
            "warmup_epochs": math.floor(c.warmup_epochs * 1e4) / 1e4,
            "ghost_batch_size": c.ghost_batch_size,
            "regime_adaptation": (round(c.regime_adaptation, 4) if c.regime_adaptation > 1
                                  else False),
        }

    def recommendation(self):
        """The recommendation in one line."""
        c = self.recommended
        rate = c.learning_rate_sqrt if self.scaling == "sqrt" else c.learning_rate_linear
        parts = [f"batch {c.batch_size}", f"lr {rate:.4g} ({self.scaling} rule"
                 + (f", {c.warmup_epochs:.3g} warm-up epochs)" if c.warmup_epochs else ")")]
        if c.ghost_batch_size:
            parts.append(f"ghost batch {c.ghost_batch_size}")
        if c.regime_adaptation > 1:
            parts.append(f"regime adaptation x{c.regime_adaptation:.3g}")
        return (f"Recommended: {', '.join(parts)}: {c.predicted_steps:.0f} steps "
                f"({c.predicted_epochs:.3g} epochs), {c.relative_wall_time:.3g}x the wall time "
                f"of batch {self.candidates[0].batch_size} (B_simple = {self.b_simple:.4g} "
                f"+- {self.b_simple_stderr:.2g}).")

    def format_table(self):
        """The candidates as a fixed-width text table (`*`: recommended)."""
        header = ("", "batch", "per rep", "steps", "epochs", "examples", "rel wall",
                  "lr sqrt", "lr linear", "warm-up", "RA steps", "RA x", "ghost", "remedies")
        rows = [header]
        for c in self.candidates:
            rows.append((
                "*" if c == self.recommended else "",
                str(c.batch_size), str(c.per_replica_batch_size), f"{c.predicted_steps:.0f}",
                f"{c.predicted_epochs:.3g}", f"{c.predicted_examples:,.0f}",
                f"{c.relative_wall_time:.3g}", f"{c.learning_rate_sqrt:.4g}",
                f"{c.learning_rate_linear:.4g}", f"{c.warmup_epochs:.3g}",
                str(c.regime_adapted_steps), f"{c.regime_adaptation:.3g}",
                str(c.ghost_batch_size) if c.ghost_batch_size else "-",
                ",".join(c.remedies) or "-",
            ))
        widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
        lines = ["  ".join(v.rjust(w) for v, w in zip(r, widths)).rstrip() for r in rows]
        return "\n".join(lines)


def candidate_batch_sizes(small_batch_size, max_batch_size, *, num_replicas=1,
                          num_train_examples=None):
    """The batch sizes to consider: `B_small * 2**k` up to `max_batch_size`.

    Doublings of the small batch, so that the small batch (the ghost size)
    divides each of them; those not divisible by `num_replicas` or larger
    than the training set are left out.

    Raises:
        ValueError: `max_batch_size < small_batch_size`, or nothing is left.

    Example:

    >>> candidate_batch_sizes(50, 1000)
    [50, 100, 200, 400, 800]
    >>> candidate_batch_sizes(32, 256, num_replicas=4)
    [32, 64, 128, 256]
    """
    small = _positive_int("small_batch_size", small_batch_size)
    largest = _positive_int("max_batch_size", max_batch_size)
    replicas = _positive_int("num_replicas", num_replicas)
    if largest < small:
        raise ValueError(
            f"Expected `max_batch_size` >= the small batch size {small}; received "
            f"max_batch_size={largest}. Raise `max_batch_size` or measure at a smaller batch."
        )
    sizes, b = [], small
    while b <= largest:
        if b % replicas == 0 and (num_train_examples is None or b <= num_train_examples):
            sizes.append(b)
        b *= 2
    if not sizes:
        raise ValueError(
            f"Expected a doubling of the small batch {small} up to max_batch_size={largest} "
            f"that splits over {replicas} replicas"
            + ("" if num_train_examples is None else
               f" and fits the {num_train_examples} training examples")
            + "; found none."
        )
    return sizes


def ghost_batch_size_for(batch_size, small_batch_size, *, num_replicas=1, batch_norm=True):
    """The ghost batch for a global batch: the small batch, dividing the per-replica batch.

    0 (plain normalization) when the model has no batch normalization or the
    per-replica batch is no larger than the small batch; otherwise the
    largest divisor of the per-replica batch that is at most `B_small`.

    Example:

    >>> ghost_batch_size_for(800, 50), ghost_batch_size_for(1200, 64, num_replicas=2)
    (50, 60)
    >>> ghost_batch_size_for(50, 50), ghost_batch_size_for(800, 50, batch_norm=False)
    (0, 0)
    """
    per_replica = _positive_int("batch_size", batch_size) // _positive_int(
        "num_replicas", num_replicas)
    small = _positive_int("small_batch_size", small_batch_size)
    if not batch_norm or per_replica <= small:
        return 0
    return max(d for d in range(1, small + 1) if per_replica % d == 0)


def advise(
    b_simple,
    *,
    small_batch_size,
    epochs,
    num_train_examples,
    learning_rate,
    max_batch_size,
    b_simple_stderr=0.0,
    num_replicas=1,
    batch_norm=True,
    lr_boundaries=(),
    scaling="sqrt",
    warmup_fraction=0.05,
    step_times=None,
    measurements=(),
    settings=None,
):
    """Advises batch sizes from the gradient noise scale (McCandlish et al. 2018).

    With `B_crit ~ B_simple` and the trusted small-batch regime (`epochs` at
    `B_small`, i.e. `S_small = round(epochs * floor(N / B_small))` steps,
    assumed to be the steps it takes to reach the target), every candidate
    batch `B` (doublings of `B_small` up to `max_batch_size`) gets:

    ```
    S_min      = S_small / (1 + B_simple / B_small)
    steps      = S_min (1 + B_simple / B)                 examples = B * steps
    rel. wall  = steps * t(B) / (steps_0 * t(B_0))        (t: time per step)
    lr         = lr_small * sqrt(B / B_small)  or  lr_small * B / B_small
    warm-up    = warmup_fraction * steps (none at B_small), in epochs at B
    RA factor  = steps / (epochs * floor(N / B))  (>= 1: trains `steps` steps)
    ghost      = B_small, dividing the per-replica batch (0 without BN)
    ```

    and the recommendation is the candidate of least predicted wall time
    among those with `B <= B_simple` (at most twice the fewest examples,
    `E_min`); with constant step times, the largest batch `<= B_simple`.
    Without per-step times every step costs the same (perfect data
    parallelism over enough devices).

    Paper: McCandlish, Kaplan, Amodei & OpenAI Dota Team, "An Empirical Model
    of Large-Batch Training", 2018 (arXiv 1812.06162); the rules, ghost batch
    and regime adaptation: Hoffer, Hubara & Soudry 2017 (arXiv 1705.08741) and
    Goyal et al. 2017 (arXiv 1706.02677).

    Args:
        b_simple: the gradient noise scale (positive, finite).
        small_batch_size: `B_small`, the batch of the trusted regime.
        epochs: that regime's length in epochs.
        num_train_examples: `N`, training examples per epoch.
        learning_rate: the regime's (first) learning rate at `B_small`.
        max_batch_size: the largest global batch to consider (>= `B_small`).
        b_simple_stderr: the standard error of `b_simple` (>= 0).
        num_replicas: devices the global batch is split over.
        batch_norm: whether the model has batch normalization (ghost batches).
        lr_boundaries: the regime's rate-drop epochs; the warm-up ends by the
            first one (stretched by the RA factor, as the trainer does).
        scaling: the rule of the recommended line, `"sqrt"` or `"linear"`.
        warmup_fraction: warm-up length as a fraction of the predicted steps.
        step_times: optional `{per-replica batch: seconds per step}` for
            every candidate's per-replica batch.
        measurements: `NoiseScaleEstimate`s to record in the advice.
        settings: JSON-ready facts to record (dataset, model, ...).

    Returns:
        An `Advice`.

    Raises:
        NoiseScaleError: `b_simple` is not a positive, finite number.
        ValueError: other bad input (e.g. `max_batch_size < small_batch_size`).

    Example:

    >>> a = advise(400.0, b_simple_stderr=40.0, small_batch_size=50, epochs=10,
    ...            num_train_examples=4000, learning_rate=0.02, max_batch_size=1600)
    >>> [c.batch_size for c in a.candidates], a.recommended.batch_size
    ([50, 100, 200, 400, 800, 1600], 400)
    >>> round(a.s_min, 3), round(a.recommended.predicted_steps, 3)
    (88.889, 177.778)
    """
    try:
        b_simple = float(b_simple)
    except (TypeError, ValueError):
        b_simple = math.nan
    if not (math.isfinite(b_simple) and b_simple > 0):
        raise NoiseScaleError(
            f"Expected a positive, finite gradient noise scale; received b_simple={b_simple!r}. "
            "A negative or non-finite B_simple means the measurement had too few examples "
            "to separate the gradient from its noise: measure on more examples or earlier "
            "in training."
        )
    stderr = float(b_simple_stderr)
    if not (math.isfinite(stderr) and stderr >= 0):
        raise ValueError(f"Expected b_simple_stderr >= 0 and finite; received {stderr!r}.")
    small = _positive_int("small_batch_size", small_batch_size)
    n = _positive_int("num_train_examples", num_train_examples)
    replicas = _positive_int("num_replicas", num_replicas)
    if scaling not in SCALINGS:
        raise ValueError(f"Expected scaling in {SCALINGS}; received {scaling!r}.")
    learning_rate = tradeoff._positive("learning_rate", learning_rate)
    epochs = tradeoff._positive("epochs", epochs)
    warmup_fraction = float(warmup_fraction)
    if not 0.0 <= warmup_fraction < 1.0:
        raise ValueError(f"Expected warmup_fraction in [0, 1); received {warmup_fraction!r}.")
    boundaries = [float(b) for b in lr_boundaries]
    if small > n:
        raise ValueError(
            f"Expected small_batch_size <= the {n} training examples; received {small}.")
    sizes = candidate_batch_sizes(small, max_batch_size, num_replicas=replicas,
                                  num_train_examples=n)
    warnings = []
    if int(max_batch_size) > n:
        warnings.append(f"Batches above the {n} training examples were left out.")
    if replicas > 1 and sizes[0] != small:
        warnings.append(f"Batches below {sizes[0]} do not split over {replicas} replicas "
                        "and were left out.")
    if stderr > UNCERTAIN_RELATIVE_ERROR * b_simple:
        warnings.append(
            f"B_simple = {b_simple:.4g} +- {stderr:.2g} is uncertain (relative error "
            f"{stderr / b_simple:.0%}): measure on more examples before trusting the table.")
    if b_simple < small:
        warnings.append(
            f"B_simple = {b_simple:.4g} is below the small batch {small}: the small batch is "
            "already past the critical batch size, larger batches mostly spend more examples.")

    small_steps = _round_half_up(epochs * (n // small))
    if small_steps < 1:
        raise ValueError(f"Expected a regime of at least one step; received epochs={epochs}.")
    s_min = tradeoff.min_steps(small_steps, small, b_noise=b_simple)
    if step_times is not None:
        missing = sorted({b // replicas for b in sizes} - {int(k) for k in step_times})
        if missing:
            raise ValueError(f"Expected step_times for every per-replica batch; missing "
                             f"{missing}.")
        step_times = {int(k): tradeoff._positive("step time", v) for k, v in step_times.items()}

    candidates = []
    base_cost = None
    for b in sizes:
        steps = tradeoff.predicted_steps(b, b_noise=b_simple, s_min=s_min)
        per_epoch = n // b
        stretch = steps / (epochs * per_epoch)
        stretch = 1.0 if stretch <= 1.0 + 1e-9 else stretch  # round-off at B_small
        warmup = 0.0
        if b > small and warmup_fraction:
            warmup = _round_half_up(warmup_fraction * steps) / per_epoch
            if boundaries:
                warmup = min(warmup, boundaries[0] * stretch)
        ghost = ghost_batch_size_for(b, small, num_replicas=replicas, batch_norm=batch_norm)
        cost = steps * (1.0 if step_times is None else step_times[b // replicas])
        base_cost = cost if base_cost is None else base_cost
        remedies = [name for name, on in (("LR", b > small), ("warmup", warmup > 0),
                                          ("GBN", ghost > 0), ("RA", stretch > 1.0)) if on]
        candidates.append(Candidate(
            batch_size=b,
            per_replica_batch_size=b // replicas,
            predicted_steps=steps,
            predicted_examples=steps * b,
            predicted_epochs=steps * b / n,
            relative_wall_time=cost / base_cost,
            learning_rate_sqrt=learning_rate * schedules.learning_rate_multiplier(
                small, b, "sqrt"),
            learning_rate_linear=learning_rate * schedules.learning_rate_multiplier(
                small, b, "linear"),
            warmup_epochs=warmup,
            regime_adapted_steps=schedules.adapted_steps(epochs, small, b, per_epoch),
            regime_adaptation=stretch,
            ghost_batch_size=ghost,
            remedies=tuple(remedies),
            beyond_critical=b > b_simple,
        ))
    within = [c for c in candidates if not c.beyond_critical]
    if within:
        recommended = min(within, key=lambda c: (c.relative_wall_time, -c.batch_size))
    else:
        recommended = candidates[0]
    return Advice(
        b_simple=b_simple, b_simple_stderr=stderr, small_batch_size=small, epochs=epochs,
        num_train_examples=n, small_steps=small_steps, learning_rate=learning_rate,
        scaling=scaling, s_min=s_min, e_min=s_min * b_simple, num_replicas=replicas,
        max_batch_size=int(max_batch_size), candidates=tuple(candidates),
        recommended=recommended, warnings=tuple(warnings),
        measurements=tuple(measurements), settings=dict(settings or {}),
    )


def _positive_int(name, value):
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or int(value) != value \
            or int(value) < 1:
        raise ValueError(f"Expected {name} to be an integer >= 1; received {value!r}.")
    return int(value)


def _round_half_up(x):
    return int(math.floor(x + 0.5))
