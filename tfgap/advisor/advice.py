"""From measured noise scales to candidate batch sizes, rates, costs and one recommendation.

The recommendation rule: the candidate closest to the critical batch `B_crit`
itself (in `|log(B / B_crit)|`; a tie goes to the smaller batch). McCandlish
et al. 2018 (arXiv 1812.06162, eqs. 2.11-2.12) give, at batch `B = r B_crit`,

```
S / S_min = 1 + 1 / r        E / E_min = 1 + r
```

so `r = 1` costs twice the fewest steps and twice the fewest examples, and
the candidate closest to `B_crit` in log distance is the one with the least
worse of the two overheads, `max(S / S_min, E / E_min)`: a smaller batch pays
in steps (time), a larger one in examples (compute) by the same factors.
`B_crit` is `B_simple`, the training-time noise scale. `B_noise`
(`tfgap.advisor.measure_noise_scales`) is reported beside it, not used: in
`benchmarks/advisor_validation.py` (four workloads, batches 16-1024, three
held-out seeds) `B_simple` came within 0.48-1.76x of the measured critical
batch and `B_noise` within 0.10-0.48x (docs/advisor.md).
"""

import dataclasses
import json
import math
import numbers

import numpy as np

from tfgap import _validation, schedules
from tfgap.adaptive.gain import adascale_gain
from tfgap.advisor import tradeoff
from tfgap.advisor.gradient_statistics import eps_opt
from tfgap.advisor.noise import NoiseScaleError, NoiseScaleEstimate, _json_float

SCALINGS = ("sqrt", "linear")
# The rules the recommended rate may follow; "gain" and "eps_opt" set the rate itself
# (a multiplier on the trusted regime, lr_scaling="none"), the SCALINGS rescale it.
RATE_RULES = ("gain", "eps_opt", *SCALINGS)
MULTIPLIER_RULES = ("gain", "eps_opt")
REMEDIES = ("LR", "warmup", "GBN", "RA")
# A relative standard error of B_simple above this is reported as a warning.
UNCERTAIN_RELATIVE_ERROR = 0.5


@dataclasses.dataclass(frozen=True)
class Candidate:
    """One candidate batch size: predicted cost, learning rates, ghost size, remedies.

    Attributes:
        batch_size: the global batch `B`.
        per_replica_batch_size: `B / num_replicas`.
        predicted_steps: `S(B) = S_min (1 + B_crit / B)`.
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
        beyond_critical: `B > B_crit`: more than twice the fewest examples.
        learning_rate_eps_opt: `eps_opt(B) = (1 - momentum) eps_max /
            (1 + B_noise / B)` (McCandlish et al. 2018, section 2.2), `None`
            when `B_noise` and `eps_max` were not measured.
        learning_rate_gain: the small-batch rate times AdaScale's gain
            `(1 + B_simple / B_small) / (1 + B_simple / B)` (Johnson et al.
            2020; `tfgap.adaptive.adascale_gain`); `None` in files written
            before it.
        relative_steps, relative_examples: `S / S_min = 1 + B_crit / B` and
            `E / E_min = 1 + B / B_crit`.
        relative_steps_interval, relative_examples_interval: their 68%
            intervals, the images of `B_crit +- stderr` (`tradeoff.relative_cost`).
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
    learning_rate_eps_opt: float | None = None
    relative_steps: float | None = None
    relative_steps_interval: tuple | None = None
    relative_examples: float | None = None
    relative_examples_interval: tuple | None = None
    learning_rate_gain: float | None = None

    def to_dict(self):
        out = dataclasses.asdict(self)
        out["remedies"] = list(self.remedies)
        for key in ("relative_steps_interval", "relative_examples_interval"):
            if out[key] is not None:
                out[key] = [_json_float(v) for v in out[key]]
        return out

    @classmethod
    def from_dict(cls, values):
        """The inverse of `to_dict`; files written before the cost fields still load."""
        values = dict(values)
        values["remedies"] = tuple(values["remedies"])
        for key in ("relative_steps_interval", "relative_examples_interval"):
            if values.get(key) is not None:
                values[key] = tuple(float(v) for v in values[key])
        return cls(**values)


@dataclasses.dataclass(frozen=True)
class Advice:
    """The advisor's output: the noise scale, the candidates and the recommendation.

    Attributes:
        b_simple: the simple gradient noise scale `tr(Sigma) / |G|^2`.
        b_simple_stderr: its standard error.
        small_batch_size: `B_small`, the batch of the trusted regime.
        epochs: the trusted regime's length in epochs at `B_small`.
        num_train_examples: the training examples per epoch.
        small_steps: `S_small`, the trusted regime's length in steps.
        learning_rate: the small-batch learning rate that the rules scale.
        scaling: the rate rule asked for (one of `RATE_RULES`; the table
            shows every rule).
        s_min: `S_small / (1 + B_crit / B_small)`.
        e_min: `S_min * B_crit`.
        num_replicas: replicas the global batch is split over.
        max_batch_size: the largest batch considered.
        candidates: the `Candidate`s, by increasing batch size.
        recommended: one of `candidates`.
        warnings: what the user should know (uncertain or extreme values).
        measurements: the `NoiseScaleEstimate`s of the measurement run.
        settings: free-form JSON-ready facts (dataset, model, recipe, ...).
        b_crit: the critical batch the candidates use: `b_simple` (files
            written when it was `b_noise` load as they were written).
        b_crit_stderr: its standard error.
        b_crit_source: `"b_simple"` (`"b_noise"` in older files).
        b_noise, b_noise_stderr, ratio, ratio_stderr, eps_max,
            eps_max_stderr: `tfgap.advisor.NoiseScales`' values (`None`
            when not measured); `ratio = b_noise / b_simple` of that
            measurement.
        momentum: the SGD momentum `eps_opt` is corrected for.
        learning_rate_rule: the recommended rate's rule: `scaling`, or
            `"sqrt"` when the optimizer is not SGD and `scaling` is `"gain"`.
        learning_rate_reason: why, in one sentence.
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
    b_crit: float | None = None
    b_crit_stderr: float | None = None
    b_crit_source: str = "b_simple"
    b_noise: float | None = None
    b_noise_stderr: float | None = None
    ratio: float | None = None
    ratio_stderr: float | None = None
    eps_max: float | None = None
    eps_max_stderr: float | None = None
    momentum: float = 0.0
    learning_rate_rule: str | None = None
    learning_rate_reason: str = ""

    # -- serialization ------------------------------------------------------
    def to_dict(self):
        """A JSON-ready dict (`from_dict` inverts it exactly)."""
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        out["candidates"] = [c.to_dict() for c in self.candidates]
        out["recommended"] = self.recommended.to_dict()
        out["warnings"] = list(self.warnings)
        out["measurements"] = [m.to_dict() for m in self.measurements]
        out["settings"] = dict(self.settings)
        for key in ("b_noise_stderr", "ratio_stderr", "eps_max_stderr", "b_crit_stderr"):
            out[key] = _json_float(out[key])
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
        for key in ("b_noise_stderr", "ratio_stderr", "eps_max_stderr", "b_crit_stderr"):
            if isinstance(values.get(key), str):
                values[key] = float(values[key])
        # Files written before B_noise: the critical batch was B_simple, the rate `scaling`.
        values.setdefault("b_crit", values["b_simple"])
        values.setdefault("b_crit_stderr", values.get("b_simple_stderr", 0.0))
        values.setdefault("learning_rate_rule", values.get("scaling", "sqrt"))
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
    def learning_rate_of(self, candidate=None, rule=None):
        """The rate of `candidate` (default: the recommendation) by `rule` (default: the advice's).

        `rule` is one of `RATE_RULES`; `None` for a rule the advice has no
        column of (`eps_opt` without `B_noise`).
        """
        c = self.recommended if candidate is None else candidate
        if rule is not None and rule not in RATE_RULES:
            raise ValueError(f"Expected rule in {RATE_RULES} or None; received {rule!r}.")
        rule = rule or self.learning_rate_rule or self.scaling
        return {"gain": c.learning_rate_gain, "eps_opt": c.learning_rate_eps_opt,
                "sqrt": c.learning_rate_sqrt, "linear": c.learning_rate_linear}[rule]

    def flags(self, candidate=None, *, lr_multiplier=1.0):
        """The training flags that run `candidate` (default: the recommendation).

        Returns an ordered dict of `TrainConfig` field -> value: `batch_size`,
        `base_batch_size`, `lr_scaling`, `warmup_epochs`, `ghost_batch_size`,
        `regime_adaptation`. The regime itself (rates, boundaries, epochs) is
        the trusted one and stays as it is.

        With the `gain` or `eps_opt` rule also `lr_multiplier` and
        `warmup_start`: the trainer's first rate is `lr_values[0] *
        lr_multiplier`, and the trusted regime's is `learning_rate =
        lr_values[0] * m` with `m` its own `lr_multiplier` (pass it; default
        1), so the flags set

        ```
        lr_multiplier = m * lr(B) / learning_rate      (lr_scaling="none")
        ```

        which makes the first rate the rule's `lr(B)` and every later one the
        trusted regime's times the same factor; the warm-up rises from 0
        (`warmup_start="zero"`: from the unscaled rate it would be no
        warm-up).

        Example:

        >>> a = advise(400.0, small_batch_size=50, epochs=10, num_train_examples=4000,
        ...            learning_rate=0.02, max_batch_size=1600, momentum=0.9)
        >>> a.recommended.batch_size, a.learning_rate_rule  # gain (1 + 8) / (1 + 1) = 4.5
        (400, 'gain')
        >>> round(a.recommended.learning_rate_gain, 12)
        0.09
        >>> f = a.flags(lr_multiplier=0.5)    # lr_values[0] = 0.02 / 0.5 = 0.04
        >>> f["lr_multiplier"], f["lr_scaling"], f["warmup_start"]   # 0.09 / 0.04
        (2.25, 'none', 'zero')
        """
        c = self.recommended if candidate is None else candidate
        rule = self.learning_rate_rule or self.scaling
        if isinstance(lr_multiplier, bool) or not isinstance(lr_multiplier, numbers.Real) \
                or not (math.isfinite(lr_multiplier) and lr_multiplier > 0):
            raise ValueError(f"Expected lr_multiplier (the trusted regime's) to be a positive "
                             f"finite number. Received: lr_multiplier={lr_multiplier!r}")
        flags = {
            "batch_size": c.batch_size,
            "base_batch_size": self.small_batch_size,
            "lr_scaling": (rule if c.batch_size != self.small_batch_size
                           and rule not in MULTIPLIER_RULES else "none"),
            # Rounded down: the warm-up must still end by the first breakpoint.
            "warmup_epochs": math.floor(c.warmup_epochs * 1e4) / 1e4,
            "ghost_batch_size": c.ghost_batch_size,
            "regime_adaptation": (round(c.regime_adaptation, 4) if c.regime_adaptation > 1
                                  else False),
        }
        if rule in MULTIPLIER_RULES:
            flags["lr_multiplier"] = float(np.format_float_positional(
                lr_multiplier * self.learning_rate_of(c) / self.learning_rate, precision=6,
                fractional=False))
            flags["warmup_start"] = "zero"
        return flags

    def schedule(self, candidate=None, *, boundaries=(), values=None):
        """The `tfgap.LargeBatchSchedule` that trains `candidate` in `model.fit`.

        The trusted regime (`values` at `boundaries`, default: the constant
        `learning_rate`, over `epochs`) at the candidate's batch, stretched by
        its regime-adaptation factor (so it plans `predicted_steps` steps),
        with its warm-up. Rules `gain` and `eps_opt`: every rate times
        `lr(B) / values[0]`, no further scaling, the warm-up rising from
        0; rule `sqrt` / `linear`: `LargeBatchSchedule`'s scaling, the warm-up
        rising from the unscaled rate. Pass `epochs=schedule.fit_epochs` to
        `model.fit`.
        """
        from tfgap.schedules import LargeBatchSchedule  # noqa: PLC0415

        c = self.recommended if candidate is None else candidate
        rule = self.learning_rate_rule or self.scaling
        values = [float(v) for v in (values if values is not None else [self.learning_rate])]
        scaling, start = rule, "base"
        if rule in MULTIPLIER_RULES:
            factor = self.learning_rate_of(c) / values[0]
            values, scaling, start = [v * factor for v in values], "none", "zero"
        return LargeBatchSchedule(
            boundaries=list(boundaries), values=values, base_batch_size=self.small_batch_size,
            batch_size=c.batch_size, steps_per_epoch=self.num_train_examples // c.batch_size,
            scaling=scaling, regime_adaptation=(c.regime_adaptation if c.regime_adaptation > 1
                                                else False),
            warmup_epochs=math.floor(c.warmup_epochs * 1e4) / 1e4, warmup_start=start,
            epochs=self.epochs)

    def fit_arguments(self, candidate=None, **schedule_arguments):
        """`{"batch_size", "epochs", "learning_rate"}`: what `model.fit` and the optimizer need.

        `learning_rate` is `schedule(candidate, **schedule_arguments)` (give
        it to the optimizer), `epochs` its `fit_epochs`.
        """
        c = self.recommended if candidate is None else candidate
        schedule = self.schedule(c, **schedule_arguments)
        return {"batch_size": c.batch_size, "epochs": schedule.fit_epochs,
                "learning_rate": schedule}

    def explanation(self):
        """The measured scales, the critical batch used, and both rules with their reasons."""
        crit = self.b_crit if self.b_crit is not None else self.b_simple
        crit_err = self.b_crit_stderr if self.b_crit_stderr is not None else self.b_simple_stderr
        lines = [f"B_simple = {self.b_simple:.4g} +- {self.b_simple_stderr:.2g}"]
        if self.b_noise is not None:
            lines[0] += (f"; B_noise = {self.b_noise:.4g} +- {self.b_noise_stderr:.2g}; "
                         f"B_noise / B_simple = {self.ratio:.3g} +- {self.ratio_stderr:.2g}; "
                         f"eps_max = {self.eps_max:.4g} +- {self.eps_max_stderr:.2g}")
        source = ("B_noise (an older advice file)" if self.b_crit_source == "b_noise" else
                  "B_simple, the training-time noise scale (in tfgap's validation benchmark "
                  "it came within 0.5-1.8x of the measured critical batch, B_noise within "
                  "0.1-0.5x: docs/advisor.md)")
        lines.append(f"B_crit = {crit:.4g} +- {crit_err:.2g}, from {source}.")
        lines.append(
            "Rule: recommend the candidate closest to B_crit (in log2(B / B_crit)): at "
            "B = r B_crit, S/S_min = 1 + 1/r and E/E_min = 1 + r, so the closest candidate "
            "has the least worse overhead max(S/S_min, E/E_min) (both 2x at B_crit). "
            "Intervals: B_crit +- one standard error mapped through these formulas.")
        lines.append(f"Learning rate: {self.learning_rate_rule or self.scaling} rule. "
                     f"{self.learning_rate_reason}".rstrip())
        return lines

    def recommendation(self):
        """The recommendation in one line."""
        c = self.recommended
        rule = self.learning_rate_rule or self.scaling
        rate = self.learning_rate_of(c)
        parts = [f"batch {c.batch_size}", f"lr {rate:.4g} ({rule} rule"
                 + (f", {c.warmup_epochs:.3g} warm-up epochs)" if c.warmup_epochs else ")")]
        if c.ghost_batch_size:
            parts.append(f"ghost batch {c.ghost_batch_size}")
        if c.regime_adaptation > 1:
            parts.append(f"regime adaptation x{c.regime_adaptation:.3g}")
        crit = self.b_crit if self.b_crit is not None else self.b_simple
        crit_err = self.b_crit_stderr if self.b_crit_stderr is not None else self.b_simple_stderr
        name = "B_noise" if self.b_crit_source == "b_noise" else "B_simple"
        cost = ""
        if c.relative_steps is not None:
            cost = (f", {_with_interval(c.relative_steps, c.relative_steps_interval)}x the "
                    f"fewest steps and {_with_interval(c.relative_examples, c.relative_examples_interval)}"
                    "x the fewest examples")
        return (f"Recommended: {', '.join(parts)}: {c.predicted_steps:.0f} steps "
                f"({c.predicted_epochs:.3g} epochs){cost}, {c.relative_wall_time:.3g}x the wall "
                f"time of batch {self.candidates[0].batch_size} (the candidate closest to "
                f"B_crit = {name} = {crit:.4g} +- {crit_err:.2g}).")

    def format_table(self):
        """The candidates as a fixed-width text table (`*`: recommended)."""
        gain = any(c.learning_rate_gain is not None for c in self.candidates)
        eps = any(c.learning_rate_eps_opt is not None for c in self.candidates)
        cost = any(c.relative_steps is not None for c in self.candidates)
        header = ("", "batch", "per rep", "steps", "epochs", "examples",
                  *(("S/S_min", "E/E_min") if cost else ()), "rel wall",
                  *(("lr gain",) if gain else ()), *(("lr eps_opt",) if eps else ()),
                  "lr sqrt", "lr linear", "warm-up",
                  "RA steps", "RA x", "ghost", "remedies")
        rows = [header]
        for c in self.candidates:
            rows.append((
                "*" if c == self.recommended else "",
                str(c.batch_size), str(c.per_replica_batch_size), f"{c.predicted_steps:.0f}",
                f"{c.predicted_epochs:.3g}", f"{c.predicted_examples:,.0f}",
                *((_with_interval(c.relative_steps, c.relative_steps_interval),
                   _with_interval(c.relative_examples, c.relative_examples_interval))
                  if cost else ()),
                f"{c.relative_wall_time:.3g}",
                *((f"{c.learning_rate_gain:.4g}",) if gain else ()),
                *((f"{c.learning_rate_eps_opt:.4g}",) if eps else ()),
                f"{c.learning_rate_sqrt:.4g}",
                f"{c.learning_rate_linear:.4g}", f"{c.warmup_epochs:.3g}",
                str(c.regime_adapted_steps), f"{c.regime_adaptation:.3g}",
                str(c.ghost_batch_size) if c.ghost_batch_size else "-",
                ",".join(c.remedies) or "-",
            ))
        widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
        lines = ["  ".join(v.rjust(w) for v, w in zip(r, widths)).rstrip() for r in rows]
        return "\n".join(lines)


def _with_interval(value, interval):
    if value is None:
        return "-"
    if interval is None:
        return f"{value:.3g}"
    low, high = interval
    return f"{value:.3g} ({low:.3g}-{high:.3g})"


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
    small = _validation.positive_int("small_batch_size", small_batch_size)
    largest = _validation.positive_int("max_batch_size", max_batch_size)
    replicas = _validation.positive_int("num_replicas", num_replicas)
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
    per_replica = _validation.positive_int("batch_size", batch_size) // _validation.positive_int(
        "num_replicas", num_replicas)
    small = _validation.positive_int("small_batch_size", small_batch_size)
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
    scaling="gain",
    warmup_fraction=0.05,
    step_times=None,
    measurements=(),
    settings=None,
    noise_scales=None,
    momentum=0.0,
):
    """Advises batch sizes from the noise scales (McCandlish et al. 2018).

    The critical batch `B_crit` is `b_simple`, the training-time noise scale
    `tr(Sigma) / |G|^2`. `noise_scales` (a `tfgap.advisor.NoiseScales`, e.g.
    from `measure_noise_scales`) adds `B_noise`, `eps_max` and the `eps_opt`
    column to the advice, for reference: in `benchmarks/advisor_validation.py`
    `B_noise` was 0.10-0.48x the measured critical batch on four workloads,
    `B_simple` 0.48-1.76x (docs/advisor.md). With the trusted
    small-batch regime (`epochs` at `B_small`, i.e. `S_small = round(epochs *
    floor(N / B_small))` steps, assumed to be the steps it takes to reach the
    target), every candidate batch `B` (doublings of `B_small` up to
    `max_batch_size`) gets:

    ```
    S_min      = S_small / (1 + B_crit / B_small)
    steps      = S_min (1 + B_crit / B)                   examples = B * steps
    S / S_min  = 1 + B_crit / B,   E / E_min = 1 + B / B_crit   (68% intervals from
                 B_crit +- stderr, mapped exactly: `tradeoff.relative_cost`)
    rel. wall  = steps * t(B) / (steps_0 * t(B_0))        (t: time per step)
    lr gain    = lr_small * (1 + B_simple / B_small) / (1 + B_simple / B)
    lr         = lr_small * sqrt(B / B_small)  or  lr_small * B / B_small
    lr eps_opt = (1 - momentum) eps_max / (1 + B_noise / B)   (when measured)
    warm-up    = warmup_fraction * steps (none at B_small), in epochs at B
    RA factor  = steps / (epochs * floor(N / B))  (>= 1: trains `steps` steps)
    ghost      = B_small, dividing the per-replica batch (0 without BN)
    ```

    **The recommendation** is the candidate closest to `B_crit` in
    `|log(B / B_crit)|` (a tie: the smaller). At `B = r B_crit` training
    takes `S / S_min = 1 + 1 / r` and `E / E_min = 1 + r`: a batch `r` times
    too small costs as many extra steps as one `r` times too large costs
    extra examples, so the closest candidate minimizes the worse overhead,
    `max(S / S_min, E / E_min)`, which is 2 at `B_crit` itself. Step times
    only fill the wall-time column; they do not move the recommendation.

    **The learning rate** recommended follows `scaling`, by default
    `"gain"`: the trusted small-batch rate times AdaScale's gain (Johnson et
    al. 2020, arXiv 2007.05105) from the same `B_simple`, which scales the
    rate linearly while `B << B_simple` and stops raising it past
    `B_simple`. In the validation benchmark it came within one sqrt(2) step
    of the tuned rate about as often as the linear rule and far more often
    than the sqrt rule or `eps_opt` (which was 2-20x too small). For an
    optimizer other than SGD (`momentum=None`) the gain is not justified and
    the rule falls back to `"sqrt"`; the advice says why.

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
        scaling: the rule of the recommended rate, one of `RATE_RULES`:
            `"gain"` (default), `"eps_opt"` (needs `noise_scales`), `"sqrt"`
            or `"linear"`.
        warmup_fraction: warm-up length as a fraction of the predicted steps.
        step_times: optional `{per-replica batch: seconds per step}` for
            every candidate's per-replica batch.
        measurements: `NoiseScaleEstimate`s to record in the advice.
        settings: JSON-ready facts to record (dataset, model, ...).
        noise_scales: an optional `tfgap.advisor.NoiseScales`: `B_noise`,
            `eps_max` and the `eps_opt` rate, reported beside the advice.
        momentum: the SGD momentum of the training run (`eps_opt` is
            `(1 - momentum)` times the plain SGD step); `None`: the optimizer
            is not SGD, and the `gain` and `eps_opt` rules fall back to
            `"sqrt"`.

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
    >>> a.recommended.relative_steps, a.recommended.relative_steps_interval
    (2.0, (1.9, 2.1))
    >>> a.learning_rate_rule, round(a.learning_rate_of(), 4)   # 0.02 (1 + 8) / (1 + 1)
    ('gain', 0.09)
    >>> round(a.recommended.learning_rate_sqrt, 4), a.recommended.learning_rate_linear
    (0.0566, 0.16)
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
    small = _validation.positive_int("small_batch_size", small_batch_size)
    n = _validation.positive_int("num_train_examples", num_train_examples)
    replicas = _validation.positive_int("num_replicas", num_replicas)
    if scaling not in RATE_RULES:
        raise ValueError(f"Expected scaling in {RATE_RULES}; received {scaling!r}.")
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
    sgd = momentum is not None
    momentum = float(momentum) if sgd else 0.0
    if not 0.0 <= momentum < 1.0:
        raise ValueError(f"Expected momentum in [0, 1) or None; received {momentum!r}.")
    scales = _scales_fields(noise_scales)
    measured = scales is not None and _usable(scales["b_noise"]) and _usable(scales["eps_max"])
    if scaling == "eps_opt" and not measured:
        raise ValueError(
            "Expected noise_scales with positive, finite B_noise and eps_max for "
            "scaling='eps_opt'; received " + ("none" if scales is None else
                                               f"B_noise={scales['b_noise']!r}, "
                                               f"eps_max={scales['eps_max']!r}") + ".")
    crit, crit_err, source = b_simple, stderr, "b_simple"
    rule = scaling if sgd or scaling in SCALINGS else "sqrt"
    reason = _RATE_REASONS[rule] if rule == scaling else (
        f"The optimizer is not SGD: the {scaling} rule is a step of plain or momentum SGD and "
        "an adaptive optimizer rescales the gradient, so the sqrt rule scales the trusted "
        "small-batch rate.")
    if scales is not None and not measured:
        warnings.append(f"B_noise = {scales['b_noise']!r}, eps_max = {scales['eps_max']!r} are "
                        "not positive and finite: the eps_opt column is left out.")
    name = "B_simple"
    if math.isfinite(crit_err) and crit_err > UNCERTAIN_RELATIVE_ERROR * crit:
        warnings.append(
            f"{name} = {crit:.4g} +- {crit_err:.2g} is uncertain (relative error "
            f"{crit_err / crit:.0%}): measure on more examples before trusting the table.")
    if crit < small:
        warnings.append(
            f"B_crit = {name} = {crit:.4g} is below the small batch {small}: the small batch is "
            "already past the critical batch size, larger batches mostly spend more examples.")
    if crit > 2 * sizes[-1]:
        warnings.append(
            f"B_crit = {name} = {crit:.4g} is above twice the largest candidate {sizes[-1]}: "
            "raise max_batch_size to train closer to it.")

    small_steps = _round_half_up(epochs * (n // small))
    if small_steps < 1:
        raise ValueError(f"Expected a regime of at least one step; received epochs={epochs}.")
    s_min = tradeoff.min_steps(small_steps, small, b_noise=crit)
    if step_times is not None:
        missing = sorted({b // replicas for b in sizes} - {int(k) for k in step_times})
        if missing:
            raise ValueError(f"Expected step_times for every per-replica batch; missing "
                             f"{missing}.")
        step_times = {int(k): tradeoff._positive("step time", v) for k, v in step_times.items()}

    candidates = []
    base_cost = None
    for b in sizes:
        steps = tradeoff.predicted_steps(b, b_noise=crit, s_min=s_min)
        rel_steps, steps_interval, rel_examples, examples_interval = tradeoff.relative_cost(
            b, b_crit=crit, b_crit_stderr=crit_err)
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
            beyond_critical=b > crit,
            learning_rate_eps_opt=(eps_opt(b, scales["eps_max"], scales["b_noise"],
                                           momentum=momentum) if measured else None),
            learning_rate_gain=learning_rate * adascale_gain(b_simple, small, b),
            relative_steps=rel_steps, relative_steps_interval=steps_interval,
            relative_examples=rel_examples, relative_examples_interval=examples_interval,
        ))
    # Rounded so that a geometric midpoint is a tie (the smaller batch) despite round-off.
    recommended = min(candidates, key=lambda c: (round(abs(math.log(c.batch_size / crit)), 9),
                                                 c.batch_size))
    scales = scales or {}
    return Advice(
        b_simple=b_simple, b_simple_stderr=stderr, small_batch_size=small, epochs=epochs,
        num_train_examples=n, small_steps=small_steps, learning_rate=learning_rate,
        scaling=scaling, s_min=s_min, e_min=s_min * crit, num_replicas=replicas,
        max_batch_size=int(max_batch_size), candidates=tuple(candidates),
        recommended=recommended, warnings=tuple(warnings),
        measurements=tuple(measurements), settings=dict(settings or {}),
        b_crit=crit, b_crit_stderr=crit_err, b_crit_source=source,
        momentum=momentum, learning_rate_rule=rule, learning_rate_reason=reason,
        **{key: scales.get(key) for key in _SCALES_FIELDS},
    )


_RATE_REASONS = {
    "gain": ("lr(B) = lr_small (1 + B_simple / B_small) / (1 + B_simple / B), AdaScale's gain "
             "(Johnson et al. 2020) from the measured B_simple: linear scaling while "
             "B << B_simple, no further increase past it; of the four rules it came closest "
             "to the tuned rates in tfgap's validation benchmark (docs/advisor.md)."),
    "eps_opt": ("eps_opt(B) = (1 - momentum) eps_max / (1 + B_noise / B), the best step of "
                "the local quadratic (McCandlish et al. 2018), as asked; in tfgap's validation "
                "benchmark it was 2-20x below the tuned rates (docs/advisor.md)."),
    "sqrt": "The sqrt rule (Hoffer et al. 2017) scales the trusted small-batch rate, as asked.",
    "linear": "The linear rule (Goyal et al. 2017) scales the trusted small-batch rate, as asked.",
}

_SCALES_FIELDS = ("b_noise", "b_noise_stderr", "ratio", "ratio_stderr", "eps_max",
                  "eps_max_stderr")


def _scales_fields(noise_scales):
    """The `NoiseScales` values the advice records (floats), or `None`."""
    if noise_scales is None:
        return None
    missing = [k for k in _SCALES_FIELDS if not hasattr(noise_scales, k)]
    if missing:
        raise ValueError(
            "Expected `noise_scales` to be a tfgap.advisor.NoiseScales (from "
            f"measure_noise_scales). Received {type(noise_scales).__name__} without {missing}.")
    return {k: float(getattr(noise_scales, k)) for k in _SCALES_FIELDS}


def _usable(value):
    return math.isfinite(value) and value > 0



def _round_half_up(x):
    return int(math.floor(x + 0.5))
