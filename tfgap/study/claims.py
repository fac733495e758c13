"""The study's claims, decided from its runs by fixed, paired statistics (`tfgap.study.stats`).

Every claim compares rows through their per-seed values, paired by seed: the
same seed gives two rows the same initial weights and data order, so a claim
about rows A and B is a test on the per-seed differences `a_s - b_s` over the
seeds both rows ran (`stats.paired_difference`). Three kinds of claims, and
three outcomes for each (held, not held, undecided):

- an **effect** ("reduces the gap", "hurts", "is sharper"): a two-sided paired
  t test, Holm-corrected over every effect claim of the study (one family,
  `stats.judge`); held when the corrected test rejects "no difference" and
  the difference has the claimed sign; not held when it rejects with the
  opposite sign or when, for an accuracy, TOST shows the difference is
  within the stated margin (no effect of practical size); else undecided.
- an **equality** ("closes the gap", "matches", "does not hurt"): held only
  by two one-sided tests (TOST) that the difference lies within a margin
  stated in the claim; not held when its 90% interval lies beyond the
  margin; else undecided. Noisier rows make an equality harder to show,
  never easier.
- a **conclusion** combines claims: held when all of them hold, not held
  when one does not, else undecided (`stats.conjunction`).

Test accuracies are compared with the noise of the fixed test set folded in:
every seed is scored on the same 1000 test examples, whose sampling noise
the seeds cannot show, so the per-example correctness of both rows adds
`stats.example_se` to the standard error. Sharpness and the top Hessian
eigenvalue span orders of magnitude: they are compared as log ratios (the
interval is a ratio). A claim with fewer than two paired seeds, or a row
not run, is undecided and not counted in the family. The rules and margins
are fixed here, before the run; nothing is tuned to make a claim come out.

Each claim is a dict: `key`, `claim` (the sentence, with its margin),
`kind`, `outcome`, `interval` (the paired difference, its interval and
test, in words), `test`, `measured` (the rows' means), `rows`, `metric`,
`seeds` and `n` (the paired seeds), and the numbers `mean`, `low`, `high`,
`confidence`, `p_value`, `adjusted_p`, `margin` (`of` for a conclusion).

Papers: Hoffer, Hubara & Soudry 2017 (arXiv 1705.08741), Table 1 and Figure
1; Keskar et al. 2017 (arXiv 1609.04836), Table 3; Holm 1979; Schuirmann
1987.
"""

import dataclasses
import math

import numpy as np

from tfgap.study import stats
from tfgap.study.report import mean_std, unpack_correct

ALPHA = 0.05
ACCURACY_MARGIN = 0.01  # one point of accuracy
SLOPE_MARGIN = 0.5  # of a in ||w_t - w_0|| ~ a log t + b


@dataclasses.dataclass(frozen=True)
class Metric:
    """How a per-seed value is compared: its key, its words, its scale and unit.

    `log`: compared as `log(a) - log(b)`, shown as a ratio `a / b`.
    `examples`: accuracies, with the test set's noise (`stats.example_se`).
    """

    key: str
    words: str
    scale: float = 1.0
    unit: str = ""
    digits: int = 2
    log: bool = False
    examples: bool = False


ACCURACY = Metric("test_accuracy", "test accuracy", 100.0, " points", 1, examples=True)
SHARPNESS = Metric("sharpness", "Keskar's sharpness (eps 1e-3, full space)", log=True)
RELATIVE = Metric("relative_sharpness", "the scale-invariant sharpness (box eps |w_i|)",
                  log=True)
EIGENVALUE = Metric("hessian_top_eigenvalue", "the top Hessian eigenvalue", log=True)
SLOPE = Metric("diffusion_slope", "the diffusion slope a")
RMSE = Metric("rmse", "RMSE(sqrt law) - RMSE(log law)", digits=3)
GHOST_SLOPE = Metric("ghost_slope", "test accuracy per doubling of the ghost batch", 100.0,
                     " points", 2)


@dataclasses.dataclass(frozen=True)
class Claim:
    """One claim of the study (see the module docstring).

    `a` and `b` are rows (`a - b` is tested); `direction` +1 claims `a > b`,
    -1 `a < b`; `margin` is in the metric's units (before `scale`); `of`
    lists the keys a conclusion rests on.
    """

    key: str
    claim: str
    kind: str
    a: str = None
    b: str = None
    metric: Metric = ACCURACY
    direction: int = 1
    margin: float = None
    of: tuple = ()


def _pt(margin):
    return f"±{100 * margin:g} point" + ("" if margin == 0.01 else "s")


_M = ACCURACY_MARGIN
CLAIMS = (
    Claim("gap", "LB generalizes worse than SB at equal epochs", stats.EFFECT, "SB", "LB",
          margin=_M),
    Claim("lr", "+LR reduces the gap (LB+LR vs LB)", stats.EFFECT, "LB+LR", "LB", margin=_M),
    Claim("gbn", "+GBN reduces the gap at +LR (LB+LR+GBN vs LB+LR)", stats.EFFECT,
          "LB+LR+GBN", "LB+LR", margin=_M),
    Claim("ra", f"+RA closes the gap: LB+LR+GBN+RA is within {_pt(_M)} of SB", stats.EQUAL,
          "LB+LR+GBN+RA", "SB", margin=_M),
    Claim("ra_alone", f"Regime adaptation alone closes the gap: LB+RA is within {_pt(_M)} of "
          "SB", stats.EQUAL, "LB+RA", "SB", margin=_M),
    Claim("ra_enough", f"Under +RA, +LR+GBN adds nothing: LB+LR+GBN+RA is within {_pt(_M)} of "
          "LB+RA", stats.EQUAL, "LB+LR+GBN+RA", "LB+RA", margin=_M),
    Claim("updates", "Only the updates close the gap (regime adaptation alone closes it, and "
          "+LR+GBN adds nothing under it)", "conclusion", of=("ra_alone", "ra_enough")),
    Claim("ghost", "At +LR, smaller ghost batches generalize better (test accuracy falls as "
          "the ghost batch grows from B_G to B_L)", stats.EFFECT, metric=GHOST_SLOPE,
          direction=-1),
    Claim("momentum_lb", "Keras' BN momentum 0.99 hurts LB, with its few updates (LB vs "
          "LB (bn 0.99))",
          stats.EFFECT, "LB", "LB (bn 0.99)", margin=_M),
    Claim("momentum_sb_few", "BN momentum 0.99 also hurts SB cut to LB's updates "
          "(SB (LB's updates) vs its bn 0.99 row)", stats.EFFECT, "SB (LB's updates)",
          "SB (LB's updates, bn 0.99)", margin=_M),
    Claim("momentum_lb_ra", f"BN momentum 0.99 does not hurt LB+RA, with SB's updates (within "
          f"{_pt(_M)})", stats.EQUAL, "LB+RA (bn 0.99)", "LB+RA", margin=_M),
    Claim("momentum_sb", f"BN momentum 0.99 does not hurt SB (within {_pt(_M)})",
          stats.EQUAL, "SB (bn 0.99)", "SB", margin=_M),
    Claim("momentum", "BN momentum 0.99's harm follows the number of updates, not the batch "
          "size", "conclusion", of=("momentum_lb", "momentum_sb_few", "momentum_lb_ra",
                                    "momentum_sb")),
    Claim("sequential", "At BN momentum 0.99, GBN's sequential rule repairs LB "
          "(LB+GBN (bn 0.99) vs LB+GBN (averaged, bn 0.99))", stats.EFFECT,
          "LB+GBN (bn 0.99)", "LB+GBN (averaged, bn 0.99)", margin=_M),
    Claim("noise", f"At BN momentum 0.99, ghost noise alone does not: LB+GBN (averaged, bn "
          f"0.99) is within {_pt(_M)} of LB (bn 0.99)", stats.EQUAL,
          "LB+GBN (averaged, bn 0.99)", "LB (bn 0.99)", margin=_M),
    Claim("mechanism", "At BN momentum 0.99, GBN's benefit is its moving-statistics updates, "
          "not ghost noise", "conclusion", of=("sequential", "noise")),
    Claim("gbn_09", "GBN helps LB at BN momentum 0.9 without +LR (LB+GBN vs LB)", stats.EFFECT,
          "LB+GBN", "LB", margin=_M),
    Claim("lars", "LARS reduces the gap (LB+LARS vs LB)", stats.EFFECT, "LB+LARS", "LB",
          margin=_M),
    Claim("sam", "SAM reduces the gap (LB+SAM vs LB)", stats.EFFECT, "LB+SAM", "LB", margin=_M),
    Claim("sharp", "LB (converged) is sharper than SB (converged) by Keskar's metric (same "
          "stopping rule and rate)", stats.EFFECT, "LB (converged)", "SB (converged)",
          SHARPNESS),
    Claim("sharp_relative", "LB (converged) is sharper than SB (converged) by the "
          "scale-invariant sharpness", stats.EFFECT, "LB (converged)", "SB (converged)",
          RELATIVE),
    Claim("sharp_eigenvalue", "LB (converged) is sharper than SB (converged) by the top "
          "Hessian eigenvalue", stats.EFFECT, "LB (converged)", "SB (converged)", EIGENVALUE),
    Claim("log_law", "In every Table 1 row, ||w_t - w_0|| follows a log t + b better than "
          "c sqrt(t) + d in the high-rate phase", stats.EFFECT, metric=RMSE),
    Claim("slopes", f"After +LR+GBN, LB's diffusion slope matches SB's (within "
          f"±{SLOPE_MARGIN:g})", stats.EQUAL, "LB+LR+GBN", "SB", SLOPE, margin=SLOPE_MARGIN),
)
TABLE1 = ("SB", "LB", "LB+LR", "LB+LR+GBN", "LB+LR+GBN+RA")


def paired(rows, a, b, key):
    """`(seeds, values of a, values of b)` over the seeds both rows ran, in `a`'s order.

    Example:

    >>> rows = {"A": {"seeds": [0, 1, 2], "per_seed": {"x": [1.0, 2.0, 3.0]}},
    ...         "B": {"seeds": [2, 0], "per_seed": {"x": [5.0, 4.0]}}}
    >>> paired(rows, "A", "B", "x")
    ([0, 2], [1.0, 3.0], [4.0, 5.0])
    """
    va = dict(zip(rows[a]["seeds"], _values(rows[a], key)))
    vb = dict(zip(rows[b]["seeds"], _values(rows[b], key)))
    seeds = [s for s in rows[a]["seeds"] if s in vb and va[s] is not None and vb[s] is not None]
    return seeds, [va[s] for s in seeds], [vb[s] for s in seeds]


def _values(row, key):
    """A row's per-seed values of `key` (Nones when it has none)."""
    values = row["per_seed"].get(key)
    return list(values) if values is not None else [None] * len(row["seeds"])


def test_set_se(rows, a, b, seeds):
    """`stats.example_se` of rows `a` and `b` over `seeds` (None without their correctness)."""
    def matrix(name):
        by_seed = dict(zip(rows[name]["seeds"], zip(_values(rows[name], "test_correct"),
                                                    _values(rows[name], "test_examples"))))
        packed = [by_seed.get(s) for s in seeds]
        if any(p is None or p[0] is None for p in packed):
            return None
        return np.array([unpack_correct(text, count) for text, count in packed], np.float64)

    ma, mb = matrix(a), matrix(b)
    if ma is None or mb is None or ma.shape != mb.shape:
        return None
    return stats.example_se(ma, mb)


def ghost_slopes(rows, seeds=None):
    """Per seed, the least-squares slope of test accuracy against log2(ghost size) at +LR.

    The sizes are those of `LB+LR+GBN` (`B_G`), the `LB+LR+GBN (ghost g)` rows
    and `LB+LR` (plain BN: one ghost of `B_L`). Returns `(seeds, slopes,
    sizes)` over the seeds every one of these rows ran (nothing without a
    row of the sweep).

    Example:

    >>> def row(ghost, accs, group="table 1"):
    ...     return {"ghost_batch_size": ghost, "batch_size": 512, "seeds": [0, 1],
    ...             "group": group, "per_seed": {"test_accuracy": accs}}
    >>> rows = {"LB+LR+GBN": row(32, [0.95, 0.94]), "LB+LR": row(0, [0.91, 0.92]),
    ...         "LB+LR+GBN (ghost 128)": row(128, [0.93, 0.93], "ghost size at +LR")}
    >>> seeds, slopes, sizes = ghost_slopes(rows)
    >>> seeds, [round(v, 4) for v in slopes], sizes
    ([0, 1], [-0.01, -0.005], [32, 128, 512])
    """
    from tfgap.study.regimes import GHOST  # noqa: PLC0415

    sweep = [n for n in rows if n != "LB+LR" and rows[n].get("group") == GHOST]
    if not sweep:
        return [], [], []
    names = list(dict.fromkeys(sweep + [n for n in ("LB+LR+GBN", "LB+LR") if n in rows]))
    sizes = {n: rows[n]["ghost_batch_size"] or rows[n]["batch_size"] for n in names}
    names = sorted(names, key=lambda n: sizes[n])
    common = [s for s in rows[names[0]]["seeds"] if all(s in rows[n]["seeds"] for n in names)]
    x = np.log2([sizes[n] for n in names])
    slopes, kept = [], []
    for seed in common:
        y = [_values(rows[n], "test_accuracy")[rows[n]["seeds"].index(seed)] for n in names]
        if any(v is None for v in y):
            continue
        slopes.append(float(np.polyfit(x, np.array(y, np.float64), 1)[0]))
        kept.append(seed)
    return kept, slopes, [sizes[n] for n in names]


def _fmt(value, metric, unit=True):
    if metric.log:
        return f"x{math.exp(value):.3g}"
    return f"{metric.scale * value:+.{metric.digits}f}" + (metric.unit if unit else "")


def _interval(v, metric):
    low = "-inf" if v.low == -math.inf else _fmt(v.low, metric, False).lstrip("+")
    high = "inf" if v.high == math.inf else _fmt(v.high, metric, False).lstrip("+")
    p = "p<0.001" if v.adjusted_p < 0.001 else f"p={v.adjusted_p:.3f}"
    test = "Holm" if v.kind == stats.EFFECT else "TOST"
    part = f"weakest row {v.part}: " if v.part else ""
    return (f"{part}{_fmt(v.mean, metric)} [{low}, {high}] at {100 * v.confidence:.3g}%, "
            f"{test} {p}")


def _mean_text(rows, name, metric, seeds):
    values = [_values(rows[name], metric.key)[rows[name]["seeds"].index(s)] for s in seeds]
    mean, std = mean_std(values)
    if metric.log:
        return f"{name} {mean:.3g} ± {std:.2g}"
    digits = metric.digits
    text = f"{name} {metric.scale * mean:.{digits}f} ± {metric.scale * std:.{digits}f}"
    if metric is ACCURACY:
        val = [_values(rows[name], "validation_accuracy")[rows[name]["seeds"].index(s)]
               for s in seeds]
        vm, vs = mean_std(val)
        if vm is not None:
            text += f" (val {100 * vm:.1f} ± {100 * vs:.1f})"
    return text


def _seed_text(seeds):
    return "seed " + ", ".join(map(str, seeds)) if len(seeds) == 1 else (
        "seeds " + ", ".join(map(str, seeds)))


def _comparison(c, rows):
    """`(stats.Comparison or None, measured text, seeds)` of an effect or equality claim."""
    metric = c.metric
    if metric is GHOST_SLOPE:
        seeds, slopes, sizes = ghost_slopes(rows)
        if not seeds:
            return None, "not measured: the ghost-size rows were not run", []
        slope_mean, slope_std = mean_std(slopes)
        measured = (f"ghost sizes {', '.join(map(str, sizes))}; slope "
                    f"{100 * slope_mean:+.2f} ± {100 * slope_std:.2f} points per doubling "
                    f"({_seed_text(seeds)})")
        return (stats.Comparison(c.key, slopes, [0.0] * len(slopes), direction=c.direction),
                measured, seeds)
    if metric is RMSE:
        names = [n for n in TABLE1 if n in rows]
        parts, texts, seeds = [], [], {}
        for name in names:
            fits = _values(rows[name], "diffusion")
            pairs = [(s, f) for s, f in zip(rows[name]["seeds"], fits) if f is not None]
            if not pairs:
                continue
            sqrt_ = [f["rmse_sqrt"] for _, f in pairs]
            log_ = [f["rmse_log"] for _, f in pairs]
            parts.append((name, sqrt_, log_))
            mean, std = mean_std([a - b for a, b in zip(sqrt_, log_)])
            slope = mean_std([f["slope"] for _, f in pairs])[0]
            texts.append(f"{name}: a = {slope:.2f}, RMSE sqrt - log {mean:+.3f} ± {std:.3f}")
            seeds[name] = [s for s, _ in pairs]
        if not parts:
            return None, "not measured: no run with a diffusion record", []
        return (stats.Comparison(c.key, parts=tuple(parts), direction=c.direction),
                "; ".join(texts), seeds)
    absent = [n for n in (c.a, c.b) if n not in rows]
    if absent:
        return None, f"not measured: {', '.join(absent)} not run", []
    seeds, a, b = paired(rows, c.a, c.b, metric.key)
    measured = (f"{_mean_text(rows, c.a, metric, seeds)} vs "
                f"{_mean_text(rows, c.b, metric, seeds)} ({_seed_text(seeds)})") if seeds else (
        f"not measured: no seed with {metric.words} in both {c.a} and {c.b}")
    if metric.log:
        if any(v <= 0 for v in a + b):
            return None, measured + "; a value <= 0 has no log ratio", seeds
        a, b = list(np.log(a)), list(np.log(b))
    example = test_set_se(rows, c.a, c.b, seeds) if metric.examples and seeds else None
    margin = None if c.margin is None else c.margin
    return (stats.Comparison(c.key, a, b, kind=c.kind, direction=c.direction, margin=margin,
                             example_se=example), measured, seeds)


def _test_text(c, n, family, comparison):
    if c.kind == stats.EQUAL:
        margin = (_pt(c.margin) if c.metric is ACCURACY else f"±{c.margin:g}")
        text = f"equality: TOST at {ALPHA:g}, margin {margin}, paired over {n} seeds"
    else:
        text = f"effect: paired t over {n} seeds, Holm over {family} effect claims"
        if c.margin is not None:
            text += f", not held also by TOST within {_pt(c.margin)}"
        if comparison.parts:
            text += f"; all of {len(comparison.parts)} rows (largest p)"
    if comparison.example_se is not None:
        text += f"; test-set noise included (se {100 * comparison.example_se:.2f} points)"
    if c.metric.log:
        text += "; log ratio"
    return text


def evaluate(results, claims=CLAIMS, alpha=ALPHA):
    """Every claim of the study, in order, decided from the summarized `results`.

    Args:
        results: `tfgap.study.report.summarize`'s dict (rows with per-seed
            values, their `seeds`, and for accuracies `test_correct`).
        claims: the `Claim`s (default: the study's).
        alpha: the family-wise level of the effect claims and the TOST level.

    Returns:
        A list of claim dicts (see the module docstring).

    Example:

    >>> def row(name, accs):
    ...     return {"name": name, "seeds": [0, 1, 2, 3, 4], "per_seed": {
    ...         "test_accuracy": accs, "validation_accuracy": accs}}
    >>> results = {"regimes": [row("SB", [0.970, 0.968, 0.972, 0.969, 0.971]),
    ...                        row("LB", [0.921, 0.925, 0.918, 0.924, 0.920])]}
    >>> gap = evaluate(results)[0]
    >>> gap["outcome"], gap["interval"]
    ('held', '+4.8 points [4.3, 5.4] at 95%, Holm p<0.001')
    >>> evaluate(results)[1]["outcome"], evaluate(results)[1]["measured"]
    ('undecided', 'not measured: LB+LR not run')
    """
    rows = {row["name"]: row for row in results["regimes"]}
    built = {}
    for c in claims:
        if c.kind == "conclusion":
            continue
        comparison, measured, seeds = _comparison(c, rows)
        built[c.key] = (c, comparison, measured, seeds)
    tested = [k for k, (_, comp, _, seeds) in built.items()
              if comp is not None and _enough(seeds)]
    verdicts = dict(zip(tested, stats.judge([built[k][1] for k in tested], alpha=alpha)))
    family = sum(built[k][0].kind == stats.EFFECT for k in tested)
    out, by_key = [], {}
    for c in claims:
        if c.kind == "conclusion":
            parts = [by_key[k] for k in c.of if k in by_key]
            outcome = stats.conjunction([p["outcome"] for p in parts])
            entry = {"key": c.key, "claim": c.claim, "kind": "conclusion", "outcome": outcome,
                     "interval": "; ".join(f"{p['key']}: {p['outcome']}" for p in parts),
                     "test": "conclusion: held when every claim it rests on is held, not held "
                             "when one is not", "measured": "", "of": list(c.of)}
        else:
            c, comparison, measured, seeds = built[c.key]
            v = verdicts.get(c.key)
            if isinstance(seeds, dict):  # a claim about every row: its weakest row's seeds
                seeds = seeds.get(v.part if v is not None else None) or min(
                    seeds.values(), key=len)
            entry = {"key": c.key, "claim": c.claim, "kind": c.kind, "rows": [c.a, c.b],
                     "metric": c.metric.key, "seeds": list(seeds or []), "n": len(seeds or []),
                     "margin": c.margin, "measured": measured}
            if v is None:
                why = ("fewer than 2 paired seeds" if comparison is not None else "not measured")
                entry.update(outcome=stats.UNDECIDED, interval=why, test="", mean=None,
                             low=None, high=None, confidence=None, p_value=None,
                             adjusted_p=None)
            else:
                entry.update(outcome=v.outcome, interval=_interval(v, c.metric),
                             test=_test_text(c, v.n, family, comparison), mean=v.mean,
                             low=_finite(v.low), high=_finite(v.high),
                             confidence=v.confidence, p_value=v.p_value,
                             adjusted_p=v.adjusted_p, part=v.part)
        out.append(entry)
        by_key[c.key] = entry
    return out


def _enough(seeds):
    """At least two paired seeds (in every row, for a claim about every row)."""
    if isinstance(seeds, dict):
        return bool(seeds) and all(len(s) >= 2 for s in seeds.values())
    return len(seeds or ()) >= 2


def _finite(value):
    return value if math.isfinite(value) else None
