"""Paired statistics for the study's claims: intervals, Holm, TOST, three outcomes.

Every comparison is paired by seed (the same seed gives two rows the same
initial weights and data order), so a comparison of rows A and B is a test on
the per-seed differences `d_i = a_i - b_i`, `i = 1..n`:

    mean = sum(d_i) / n,   sd = sqrt(sum((d_i - mean)**2) / (n - 1)),   se = sd / sqrt(n)
    interval = mean -+ t_{(1 + confidence) / 2, n - 1} * se
    p = 2 * P(T_{n - 1} > |mean| / se)                         (two-sided paired t test)

A family of effect claims is corrected by Holm's step-down (Holm 1979,
Scandinavian Journal of Statistics 6:65-70); an equality claim is decided by
two one-sided tests (TOST; Schuirmann 1987, J. Pharmacokinetics and
Biopharmaceutics 15:657-680). A claim that needs several differences at once
("in every row") is one member of the family: its p-value is the largest of
its parts' (the intersection-union test, Berger 1982, Technometrics
24:295-300), and `conjunction` combines claims into a conclusion. Each claim
is `"held"`, `"not held"` or `"undecided"`; `judge` decides a family of
`Comparison`s. NumPy and SciPy only.
"""

import dataclasses
import math
from typing import Sequence

import numpy as np
from scipy import special

HELD, NOT_HELD, UNDECIDED = "held", "not held", "undecided"
OUTCOMES = (HELD, NOT_HELD, UNDECIDED)
EFFECT, EQUAL = "effect", "equal"

EFFECT_RULE = (
    "paired t test over seeds, Holm-corrected over the family's effect claims at alpha: held "
    "when Holm rejects 0 and the mean difference has the claimed sign; not held when Holm "
    "rejects 0 with the opposite sign, or (margin given) TOST at alpha shows |difference| < "
    "margin; otherwise undecided")
EQUAL_RULE = (
    "TOST at alpha: held when the (1 - 2 alpha) paired interval lies inside (-margin, margin); "
    "not held when it lies entirely outside [-margin, margin]; otherwise undecided")


def _quantile(p, df):  # scipy.stats.t.ppf(p, df), without its overhead
    return float(special.stdtrit(df, p))


def _sf(x, df):  # P(T_df > x) = scipy.stats.t.sf(x, df)
    return float(special.stdtr(df, -x))


@dataclasses.dataclass(frozen=True)
class Difference:
    """A paired difference over seeds; `(low, high)` is its interval at `confidence`."""

    mean: float
    sd: float
    n: int
    low: float
    high: float
    p_value: float
    confidence: float
    se: float
    df: float

    def interval(self, confidence):
        """`(low, high)` at `confidence`."""
        if math.isnan(self.se):  # n < 2
            return -math.inf, math.inf
        half = 0.0 if self.se == 0 else _quantile(0.5 + confidence / 2, self.df) * self.se
        return self.mean - half, self.mean + half

    def at(self, confidence):
        """The same difference with its interval at `confidence`."""
        low, high = self.interval(confidence)
        return dataclasses.replace(self, low=low, high=high, confidence=confidence)


def paired_difference(a, b, *, confidence=0.95, example_se=None):
    """The paired difference `a - b` over seeds, its t interval and two-sided p-value.

    `a[i]` and `b[i]` come from the same seed; pairs with a None or NaN are
    dropped (`n` counts the rest). `sd == 0`: a zero-width interval at `mean`,
    `p = 0` (nonzero mean) or 1 (zero mean). `n < 2`: `sd = se = nan`, the
    interval `(-inf, inf)`, `p = 1` (no evidence: every decision is undecided);
    `n == 0` also gives `mean = nan`.

    `example_se` (optional, units of `a` and `b`; see `example_se`) adds the
    noise of a test set shared by all seeds, which more seeds do not shrink:

        se = sqrt(sd**2 / n + example_se**2),   df = n - 1

    (not Satterthwaite's `df`: it grows with `example_se` and, with few seeds,
    would narrow the interval as noise is added.)

    Raises:
        ValueError: `a` and `b` differ in length.

    Example:

    >>> d = paired_difference([1.0, 2.0, 3.0], [0.0, 0.0, 0.0])
    >>> d.mean, d.sd, d.n, round(d.low, 4), round(d.high, 4), round(d.p_value, 4)
    (2.0, 1.0, 3, -0.4841, 4.4841, 0.0742)
    """
    a, b = list(a), list(b)
    if len(a) != len(b):
        raise ValueError(f"paired rows differ in length: len(a) = {len(a)}, len(b) = {len(b)}")
    d = np.array([float(x) - float(y) for x, y in zip(a, b)
                  if x is not None and y is not None], np.float64)
    d = d[~np.isnan(d)]
    n = int(d.size)
    mean = float(d.mean()) if n else math.nan
    if n < 2:
        return Difference(mean, math.nan, n, -math.inf, math.inf, 1.0, confidence, math.nan,
                          math.nan)
    sd = float(d.std(ddof=1))
    se = math.sqrt(sd**2 / n + (example_se or 0.0) ** 2)
    if se == 0:
        p = 0.0 if mean != 0 else 1.0
    else:
        p = min(1.0, 2.0 * _sf(abs(mean) / se, n - 1))
    return Difference(mean, sd, n, mean, mean, p, confidence, se, float(n - 1)).at(confidence)


def example_se(correct_a, correct_b):
    """The test-set standard error of the mean difference, from per-example correctness.

    `correct_a`, `correct_b`: 0/1 arrays of shape `(seeds, examples)` (or
    `(examples,)` for one seed), every seed scored on the same examples in the
    same order. With `D_j` the difference of the two rows' correctness on
    example `j`, averaged over seeds, and `N` examples:

        example_se = sd_j(D_j) / sqrt(N)

    Added to the seeds' `sd**2 / n` (`paired_difference(..., example_se=)`) it
    gives a conservative variance for the crossed seeds x examples design (the
    seed-example interaction is counted twice). Times 100 for points.

    Example:

    >>> round(example_se([[1, 1, 0, 1], [1, 0, 1, 1]], [[1, 0, 0, 1], [1, 0, 0, 1]]), 4)
    0.1443
    """
    a = np.atleast_2d(np.asarray(correct_a, np.float64))
    b = np.atleast_2d(np.asarray(correct_b, np.float64))
    if a.shape != b.shape:
        raise ValueError(f"correctness arrays differ in shape: {a.shape} and {b.shape}")
    per_example = (a - b).mean(axis=0)
    return float(per_example.std(ddof=1) / math.sqrt(per_example.size))


def holm(p_values):
    """Holm-adjusted p-values (Holm 1979), in the input order.

    With the `m` p-values sorted, `p_(1) <= ... <= p_(m)`:

        adjusted_(k) = min(1, max_{j <= k} (m - j + 1) * p_(j))

    Rejecting when `adjusted <= alpha` is Holm's step-down test at family-wise
    level `alpha`.

    Example:

    >>> [round(p, 4) for p in holm([0.01, 0.04, 0.03, 0.005])]
    [0.03, 0.06, 0.06, 0.02]
    """
    p = [float(v) for v in p_values]
    m, running, out = len(p), 0.0, [0.0] * len(p)
    for step, i in enumerate(sorted(range(m), key=lambda i: p[i])):
        running = max(running, min(1.0, (m - step) * p[i]))
        out[i] = running
    return out


def holm_confidence(rank, m, confidence=0.95):
    """The confidence level of Holm's step `rank` (1-based, by ascending p) of `m`.

        alpha = 1 - confidence,   level = 1 - alpha / (m - rank + 1)

    The comparison ranked `rank` is rejected at that step when its interval at
    this level excludes 0. `judge` reports each interval at the step where
    Holm's step-down stopped, if earlier (`min(rank, first rank not
    rejected)`), so the interval excludes 0 exactly when Holm rejects. Such
    intervals match Holm's decisions; they are not simultaneous intervals.

    Example:

    >>> round(holm_confidence(1, 4), 4), round(holm_confidence(4, 4), 4)
    (0.9875, 0.95)
    """
    if not 1 <= rank <= m:
        raise ValueError(f"rank must be in 1..{m}, got {rank}")
    return 1.0 - (1.0 - confidence) / (m - rank + 1)


@dataclasses.dataclass(frozen=True)
class Equivalence:
    """A TOST result: `equivalent`, its `p_value`, the `(1 - 2 alpha)` interval, `margin`."""

    equivalent: bool
    p_value: float
    low: float
    high: float
    margin: float


def equivalence(diff, margin, *, alpha=0.05):
    """Two one-sided tests (Schuirmann 1987) that `|true difference| < margin`.

        p_low  = P(T_df > (mean + margin) / se)     H0: difference <= -margin
        p_high = P(T_df > (margin - mean) / se)     H0: difference >= +margin
        p = max(p_low, p_high)

    Equivalent when the `(1 - 2 alpha)` interval lies inside `(-margin, margin)`
    (the same as `p < alpha`). With `se == 0` each one-sided p is 0 or 1; with
    `n < 2`, `p = 1` and the interval is infinite.

    Example:

    >>> e = equivalence(paired_difference([0.0, 0.5, 1.0], [0.0, 0.0, 0.0]), 1.5)
    >>> e.equivalent, round(e.p_value, 4), round(e.low, 4), round(e.high, 4)
    (True, 0.0371, -0.3429, 1.3429)
    """
    low, high = diff.interval(1.0 - 2.0 * alpha)
    if math.isnan(diff.se):
        p = 1.0
    elif diff.se == 0:
        p = 0.0 if -margin < diff.mean < margin else 1.0
    else:
        p = max(_sf((diff.mean + margin) / diff.se, diff.df),
                _sf((margin - diff.mean) / diff.se, diff.df))
    return Equivalence(bool(-margin < low and high < margin), p, low, high, float(margin))


def decide_effect(diff, *, direction, adjusted_p=None, alpha=0.05, margin=None):
    """The outcome of the claim "the difference has sign `direction`" (+1 or -1).

    `adjusted_p` is the Holm-adjusted p-value (default: `diff.p_value`, a
    family of one). In order:

    - held: `adjusted_p <= alpha` and `direction * mean > 0`;
    - not held: `adjusted_p <= alpha` and `direction * mean < 0`, or `margin`
      is given and `equivalence(diff, margin, alpha=alpha)` holds (no effect
      of practical size);
    - undecided: otherwise.

    A significant effect smaller than `margin` is held (existence, not size).
    The test is two-sided: a true-null claim is held with probability <= alpha/2.

    Example:

    >>> d = paired_difference([5.0, 6.0, 7.0], [1.0, 1.5, 2.5])
    >>> decide_effect(d, direction=+1), decide_effect(d, direction=-1)
    ('held', 'not held')
    """
    if direction not in (1, -1):
        raise ValueError(f"direction must be +1 or -1, got {direction}")
    p = diff.p_value if adjusted_p is None else adjusted_p
    if p <= alpha and direction * diff.mean > 0:
        return HELD
    if p <= alpha and direction * diff.mean < 0:
        return NOT_HELD
    if margin is not None and equivalence(diff, margin, alpha=alpha).equivalent:
        return NOT_HELD
    return UNDECIDED


def decide_equivalence(diff, *, margin, alpha=0.05):
    """The outcome of the claim "the difference is within `margin`" (closes the gap, matches).

    With `(low, high)` the `(1 - 2 alpha)` interval (TOST's):

    - held: `-margin < low` and `high < margin`;
    - not held: `low >= margin` or `high <= -margin` (one-sided test at `alpha`
      that the difference lies beyond the margin);
    - undecided: otherwise.

    Example:

    >>> d = paired_difference([0.0, 0.5, 1.0], [0.0, 0.0, 0.0])
    >>> [decide_equivalence(d, margin=m) for m in (1.5, 1.0)]
    ['held', 'undecided']
    >>> decide_equivalence(paired_difference([2.0, 3.0, 4.0], [0.0, 0.0, 0.0]), margin=0.5)
    'not held'
    """
    e = equivalence(diff, margin, alpha=alpha)
    if e.equivalent:
        return HELD
    if e.low >= margin or e.high <= -margin:
        return NOT_HELD
    return UNDECIDED


@dataclasses.dataclass(frozen=True)
class Comparison:
    """One claim of a family: rows `a` and `b` (per-seed, paired) and what is claimed.

    `kind` is `"effect"` (`direction` +1: a > b, -1: a < b; `margin`, if given,
    lets equivalence decide "not held") or `"equal"` (`margin` required).
    `scale` and `unit` only format the text (e.g. 100, " points").

    `parts` (effect claims only): `((label, a, b), ...)`, a claim that holds
    only if every part does ("the log law fits better in every row"); `a` and
    `b` are then ignored. `example_se` applies to single comparisons.
    """

    name: str
    a: Sequence = ()
    b: Sequence = ()
    kind: str = EFFECT
    direction: int = 1
    margin: float = None
    example_se: float = None
    scale: float = 1.0
    unit: str = ""
    parts: Sequence = ()


@dataclasses.dataclass(frozen=True)
class Verdict:
    """A claim's outcome with its numbers; `low`, `high` at `confidence` (see `judge`)."""

    name: str
    kind: str
    outcome: str
    mean: float
    low: float
    high: float
    confidence: float
    n: int
    p_value: float
    adjusted_p: float
    text: str
    part: str = None


def conjunction(outcomes):
    """The outcome of a conclusion that needs every one of `outcomes` to hold.

    Held when all are held, not held when any is not held, otherwise
    undecided. Each part keeps its own test (Holm or TOST), so a conclusion is
    falsely held no more often than its weakest part.

    Example:

    >>> conjunction(["held", "held"]), conjunction(["held", "undecided", "not held"])
    ('held', 'not held')
    >>> conjunction(["held", "undecided"])
    'undecided'
    """
    outcomes = list(outcomes)
    unknown = [o for o in outcomes if o not in OUTCOMES]
    if unknown or not outcomes:
        raise ValueError(f"Expected outcomes from {OUTCOMES}. Received: {outcomes}")
    if NOT_HELD in outcomes:
        return NOT_HELD
    return HELD if all(o == HELD for o in outcomes) else UNDECIDED


def _weakest(c):
    """`(index, differences)` of an all-parts claim: its part with the largest p-value."""
    diffs = [paired_difference(a, b) for _, a, b in c.parts]
    return max(range(len(diffs)), key=lambda i: (diffs[i].p_value, -i)), diffs


def _decide_parts(c, diffs, level, adjusted_p, alpha):
    """Held: Holm rejects the largest p and every part has the claimed sign; not held: a
    part's interval at `level` excludes 0 on the wrong side, or (margin) TOST shows a part
    smaller than the margin; otherwise undecided."""
    signs = [c.direction * d.mean > 0 for d in diffs]
    if adjusted_p <= alpha and all(signs):
        return HELD
    for d in diffs:
        low, high = d.interval(level)
        if (c.direction > 0 and high < 0) or (c.direction < 0 and low > 0):
            return NOT_HELD
    if c.margin is not None and any(equivalence(d, c.margin, alpha=alpha).equivalent
                                    for d in diffs):
        return NOT_HELD
    return UNDECIDED


def _p_text(p):
    return "p<0.001" if p < 0.001 else f"p={p:.3f}"


def judge(comparisons, *, alpha=0.05, digits=1):
    """Decides a family of claims: Holm over its effect claims, TOST for its equality claims.

    Effect claims: `decide_effect` with the Holm-adjusted p-value; the interval
    is reported at `holm_confidence(min(rank, stop), m, 1 - alpha)`, `stop`
    the first rank Holm does not reject, so it excludes 0 exactly when the
    claim is decided by the test. Equality claims: `decide_equivalence`, with
    the `(1 - 2 alpha)` interval and the TOST p-value (`adjusted_p` too).
    A claim with `parts` is one member of the family with the largest of its
    parts' p-values; its numbers and `part` are that weakest part's.

    `comparisons` are `Comparison`s or dicts of their fields; `alpha` is the
    family-wise level (effect claims) and the TOST level (equality claims).
    Returns a `Verdict` per comparison, in order.

    Example:

    >>> v = judge([
    ...     {"name": "+LR", "a": [91.0, 92.1, 90.5, 91.7], "b": [86.2, 87.0, 86.1, 86.4]},
    ...     {"name": "+GBN", "a": [91.9, 92.6, 90.9, 92.5], "b": [91.0, 92.1, 90.5, 91.7]},
    ...     {"name": "+RA", "a": [93.1, 93.4, 92.8, 93.3], "b": [93.4, 93.6, 92.9, 93.5],
    ...      "kind": "equal", "margin": 1.0}])
    >>> for verdict in v:
    ...     print(verdict.text)
    +4.9 [4.1, 5.7] (97.5%), Holm p<0.001: held
    +0.7 [0.3, 1.0] (95%), Holm p=0.012: held
    -0.2 [-0.3, -0.1] (90%), TOST p<0.001 within ±1.0: held
    """
    comps = [c if isinstance(c, Comparison) else Comparison(**c) for c in comparisons]
    diffs, parts = [], {}
    for i, c in enumerate(comps):
        if c.parts:
            if c.kind != EFFECT:
                raise ValueError(f"Claim {c.name!r}: only effect claims can have parts")
            weakest, part_diffs = _weakest(c)
            parts[i] = (weakest, part_diffs)
            diffs.append(part_diffs[weakest])
        else:
            diffs.append(paired_difference(c.a, c.b, example_se=c.example_se))
    effects = [i for i, c in enumerate(comps) if c.kind == EFFECT]
    adjusted = dict(zip(effects, holm([diffs[i].p_value for i in effects])))
    order = sorted(effects, key=lambda i: diffs[i].p_value)
    stop = next((r for r, i in enumerate(order, 1) if adjusted[i] > alpha), len(order) + 1)
    rank = {i: r for r, i in enumerate(order, 1)}
    verdicts = []
    for i, (c, d) in enumerate(zip(comps, diffs)):
        part = None
        if c.kind == EFFECT:
            level = holm_confidence(min(rank[i], stop), len(order), 1.0 - alpha)
            if i in parts:
                weakest, part_diffs = parts[i]
                part = c.parts[weakest][0]
                outcome = _decide_parts(c, part_diffs, level, adjusted[i], alpha)
            else:
                outcome = decide_effect(d, direction=c.direction, adjusted_p=adjusted[i],
                                        alpha=alpha, margin=c.margin)
            p, q, tail = d.p_value, adjusted[i], f"Holm {_p_text(adjusted[i])}"
        elif c.kind == EQUAL:
            if c.margin is None:
                raise ValueError(f"equality claim {c.name!r} needs a margin")
            level = 1.0 - 2.0 * alpha
            outcome = decide_equivalence(d, margin=c.margin, alpha=alpha)
            p = q = equivalence(d, c.margin, alpha=alpha).p_value
            tail = f"TOST {_p_text(p)} within ±{c.scale * c.margin:.{digits}f}"
        else:
            raise ValueError(f"kind must be {EFFECT!r} or {EQUAL!r}, got {c.kind!r}")
        low, high = d.interval(level)
        s, f = c.scale, f".{digits}f"
        text = (f"{s * d.mean:+{f}}{c.unit} [{s * low:{f}}, {s * high:{f}}] "
                f"({100 * level:.3g}%), {tail}: {outcome}")
        if part is not None:
            text = f"weakest of {len(c.parts)} parts, {part}: {text}"
        verdicts.append(Verdict(c.name, c.kind, outcome, d.mean, low, high, level, d.n, p, q,
                                text, part))
    return verdicts
