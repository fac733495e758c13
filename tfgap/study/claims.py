"""The study's claims, decided from its runs by small pure functions.

Each claim compares rows of the summarized results (`tfgap.study.report.
summarize`) through their per-seed values and returns a dict: `claim` (the
sentence), `measured` (the numbers, in words), `held` (`True`, `False`, or
`None` when it cannot be decided, e.g. with one seed or a row not run) and
`criterion` (the rule that decided it). Nothing is tuned until a claim
comes out as in the papers: the rules are fixed here and report what the
runs show.

The rule for "A is larger than B" (an accuracy, a sharpness): the difference
of the means must exceed the spread over seeds,

    mean(A) - mean(B) > spread = sqrt(std(A)**2 + std(B)**2)

(`std` the sample standard deviation over each row's seeds; `spread` is the
standard deviation of the difference between one run of A and one of B).
It needs at least two seeds in each row; otherwise `held` is None. "A is
within one std of B" is `|mean(A) - mean(B)| <= spread`. Accuracy claims use
the test accuracy (the paper's "validation" sets are the datasets' test
sets); `measured` quotes validation too.

Papers: Hoffer, Hubara & Soudry 2017 (arXiv 1705.08741), Table 1 and Figure
1; Keskar et al. 2017 (arXiv 1609.04836), Tables 3 and 4.
"""

import math

from tfgap.study.report import mean_std

ACCURACY = "test_accuracy"


def compare(a, b):
    """`(difference of means, spread)` of two lists of per-seed values; None if either has < 2.

    Example:

    >>> d, s = compare([0.9, 0.92, 0.94], [0.8, 0.8, 0.8])
    >>> round(d, 4), round(s, 4)
    (0.12, 0.02)
    >>> compare([0.9], [0.8, 0.7]) is None
    True
    """
    a = [float(v) for v in a if v is not None]
    b = [float(v) for v in b if v is not None]
    if len(a) < 2 or len(b) < 2:
        return None
    (ma, sa), (mb, sb) = mean_std(a), mean_std(b)
    return ma - mb, math.sqrt(sa**2 + sb**2)


def exceeds(a, b):
    """Whether `mean(a) - mean(b)` exceeds the spread (None with fewer than 2 seeds a side).

    Example:

    >>> exceeds([0.9, 0.92, 0.94], [0.8, 0.8, 0.8]), exceeds([0.81, 0.79], [0.8, 0.8])
    (True, False)
    """
    c = compare(a, b)
    return None if c is None else c[0] > c[1]


def within(a, b):
    """Whether `|mean(a) - mean(b)|` is at most the spread (None with < 2 seeds a side).

    Example:

    >>> within([0.81, 0.79], [0.8, 0.8]), within([0.9, 0.91], [0.8, 0.8])
    (True, False)
    """
    c = compare(a, b)
    return None if c is None else abs(c[0]) <= c[1]


def _values(rows, name, key=ACCURACY):
    row = rows.get(name)
    return None if row is None else row["per_seed"].get(key)


def _pct(rows, name, key=ACCURACY):
    values = _values(rows, name, key)
    mean, std = mean_std(values or [])
    if mean is None:
        return f"{name} n/a"
    return f"{name} {100 * mean:.1f} ± {100 * std:.1f}"


def _both(rows, name):
    """`"NAME 95.1 ± 0.4 (val 95.3 ± 0.2)"`."""
    mean, std = mean_std(_values(rows, name, "validation_accuracy") or [])
    val = "n/a" if mean is None else f"{100 * mean:.1f} ± {100 * std:.1f}"
    return f"{_pct(rows, name)} (val {val})"


def _diff_text(rows, a, b, key=ACCURACY, scale=100.0, unit=" points"):
    c = compare(_values(rows, a, key) or [], _values(rows, b, key) or [])
    if c is None:
        return "fewer than 2 seeds: no spread to compare with"
    return f"difference {scale * c[0]:+.2f}{unit}, spread {scale * c[1]:.2f}"


def _claim(claim, measured, held, criterion):
    return {"claim": claim, "measured": measured, "held": held, "criterion": criterion}


def _missing(claim, rows, names, criterion):
    absent = [n for n in names if n not in rows]
    if absent:
        return _claim(claim, f"not measured: {', '.join(absent)} not run", None, criterion)
    return None


def larger(rows, claim, a, b, key=ACCURACY):
    """Claim `a > b` on `key` (per-seed values), by `exceeds`.

    Example:

    >>> rows = {"SB": {"per_seed": {"test_accuracy": [0.96, 0.97], "validation_accuracy":
    ...                             [0.95, 0.96]}},
    ...         "LB": {"per_seed": {"test_accuracy": [0.90, 0.92], "validation_accuracy":
    ...                             [0.91, 0.90]}}}
    >>> c = larger(rows, "SB beats LB", "SB", "LB")
    >>> c["held"]
    True
    >>> for part in c["measured"].split(": "):
    ...     print(part)
    SB 96.5 ± 0.7 (val 95.5 ± 0.7) vs LB 91.0 ± 1.4 (val 90.5 ± 0.7)
    difference +5.50 points, spread 1.58
    """
    criterion = f"mean {key}({a}) - mean {key}({b}) > spread over seeds"
    missing = _missing(claim, rows, (a, b), criterion)
    if missing:
        return missing
    held = exceeds(_values(rows, a, key), _values(rows, b, key))
    measured = f"{_both(rows, a)} vs {_both(rows, b)}: {_diff_text(rows, a, b, key)}"
    return _claim(claim, measured, held, criterion)


def gap_closed(rows, claim="+RA closes the gap (within one std)", remedy="LB+LR+GBN+RA",
               baseline="SB"):
    """Claim: `remedy` is not worse than `baseline` by more than the spread.

    Example:

    >>> rows = {"SB": {"per_seed": {"test_accuracy": [0.96, 0.97]}},
    ...         "LB+LR+GBN+RA": {"per_seed": {"test_accuracy": [0.955, 0.965]}}}
    >>> gap_closed(rows)["held"]
    True
    """
    criterion = f"mean test({baseline}) - mean test({remedy}) <= spread over seeds"
    missing = _missing(claim, rows, (remedy, baseline), criterion)
    if missing:
        return missing
    c = compare(_values(rows, baseline), _values(rows, remedy))
    held = None if c is None else c[0] <= c[1]
    measured = (f"{_both(rows, remedy)} vs {_both(rows, baseline)}: "
                f"{_diff_text(rows, remedy, baseline)}")
    return _claim(claim, measured, held, criterion)


def sharper(rows, claim="LB converges to sharper minima", large="LB (converged)",
            small="SB", other="LB+LR+GBN+RA"):
    """Claim: the converged large-batch minima are sharper (Keskar's full-space metric).

    The subspace sharpness and the Hessian's top eigenvalue are quoted beside
    it, with each row's training accuracy (converged: >= 99%) and loss on the
    measured subset, and `other` (the remedied large-batch run) for comparison.
    """
    criterion = (f"mean sharpness({large}) - mean sharpness({small}) > spread "
                 "(Keskar's metric 2.1, full space, eps 1e-3)")
    missing = _missing(claim, rows, (large, small), criterion)
    if missing:
        return missing
    held = exceeds(_values(rows, large, "sharpness"), _values(rows, small, "sharpness"))
    parts = []
    for key, label, digits in (("sharpness", "sharpness", 3),
                               ("sharpness_subspace", "100-d sharpness", 4),
                               ("hessian_top_eigenvalue", "top Hessian eigenvalue", 2)):
        ml, sl = mean_std(_values(rows, large, key) or [])
        ms, ss = mean_std(_values(rows, small, key) or [])
        if ml is None or ms is None:
            continue
        verdict = exceeds(_values(rows, large, key), _values(rows, small, key))
        word = {True: "larger", False: "not larger", None: "undecided"}[verdict]
        parts.append(f"{label} {ml:.{digits}f} ± {sl:.{digits}f} vs {ms:.{digits}f} ± "
                     f"{ss:.{digits}f} ({word})")
    def state(name):
        acc = mean_std(_values(rows, name, "train_accuracy") or [])[0]
        loss = mean_std(_values(rows, name, "subset_loss") or [])[0]
        text = f"{name} train acc {100 * (acc or 0):.1f}%"
        return text + ("" if loss is None else f", loss {loss:.4f}")

    measured = (f"{large} vs {small}: " + "; ".join(parts)
                + f"; {state(large)}; {state(small)}")
    if other in rows and _values(rows, other, "hessian_top_eigenvalue"):
        eig = mean_std(_values(rows, other, "hessian_top_eigenvalue"))
        sharp = mean_std(_values(rows, other, "sharpness"))
        measured += (f" (for comparison, {other}, also at B_L: sharpness {sharp[0]:.3f} ± "
                     f"{sharp[1]:.3f}, top Hessian eigenvalue {eig[0]:.2f} ± {eig[1]:.2f}; "
                     f"{state(other)})")
    return _claim(claim, measured, held, criterion)


def log_diffusion(rows, claim="Weight distance grows as log t (high-rate phase)",
                  names=("SB", "LB", "LB+LR", "LB+LR+GBN", "LB+LR+GBN+RA")):
    """Claim: `a log t + b` fits `||w_t - w_0||` better than a random walk's `c sqrt(t) + d`.

    Both laws are fitted on the same points (the last decade of each run's
    high-rate phase). Per row, the per-seed differences `RMSE(sqrt) -
    RMSE(log)` must have a mean above their standard deviation over seeds
    (the log law fits better beyond the spread); the claim holds when that is
    so for every row of `names` that was run, fails when it is not so for
    one, and is undecided with fewer than two seeds.

    Example:

    >>> fit = lambda log, sqrt: {"rmse_log": log, "rmse_sqrt": sqrt, "slope": 1.0}
    >>> rows = {"SB": {"per_seed": {"diffusion": [fit(0.1, 0.3), fit(0.2, 0.5)]}}}
    >>> log_diffusion(rows, names=("SB",))["held"]
    True
    """
    criterion = ("per row: mean over seeds of RMSE(c*sqrt(t)+d) - RMSE(a*log(t)+b) > its std, "
                 "on the last decade before the first rate drop; held if so for every row")
    verdicts, parts = [], []
    for name in names:
        fits = [f for f in (rows.get(name) or {"per_seed": {}})["per_seed"].get("diffusion")
                or [] if f is not None]
        if not fits:
            continue
        diffs = [f["rmse_sqrt"] - f["rmse_log"] for f in fits]
        mean, std = mean_std(diffs)
        verdict = None if len(diffs) < 2 else mean > std
        verdicts.append(verdict)
        slope = mean_std([f["slope"] for f in fits])[0]
        word = {True: "log fits better", False: "not better", None: "one seed"}[verdict]
        parts.append(f"{name}: a = {slope:.2f}, RMSE sqrt - log {mean:+.3f} ± {std:.3f} "
                     f"({word})")
    if not verdicts:
        return _claim(claim, "not measured: no run with a diffusion record", None, criterion)
    held = False if False in verdicts else (None if None in verdicts else True)
    return _claim(claim, "; ".join(parts), held, criterion)


def slopes_match(rows, claim="After +LR+GBN, LB's diffusion slope matches SB's",
                 remedy="LB+LR+GBN", baseline="SB", plain="LB"):
    """Claim (Hoffer's Figure 1): `remedy`'s slope is within one std of `baseline`'s.

    Example:

    >>> rows = {n: {"per_seed": {"diffusion_slope": v}} for n, v in
    ...         (("SB", [1.0, 1.1]), ("LB+LR+GBN", [1.05, 1.0]), ("LB", [0.5, 0.55]))}
    >>> slopes_match(rows)["held"]
    True
    """
    criterion = f"|mean slope({remedy}) - mean slope({baseline})| <= spread over seeds"
    missing = _missing(claim, rows, (remedy, baseline), criterion)
    if missing:
        return missing
    key = "diffusion_slope"
    held = within(_values(rows, remedy, key), _values(rows, baseline, key))
    text = []
    for name in (baseline, plain, remedy):
        mean, std = mean_std(_values(rows, name, key) or [])
        if mean is not None:
            text.append(f"{name} {mean:.2f} ± {std:.2f}")
    measured = (f"slopes a: {', '.join(text)}; {remedy} vs {baseline}: "
                f"{_diff_text(rows, remedy, baseline, key, 1.0, '')}")
    return _claim(claim, measured, held, criterion)


def moving_statistics(rows, momentum="0.99"):
    """Claim: GBN's benefit comes from its moving-statistics updates, not from ghost noise.

    At BN momentum `momentum`: the update effect is `LB+GBN` (sequential: one
    moving-average step per ghost batch) minus `LB+GBN (averaged)` (one step
    per batch, the same ghosts, so the same noise); the noise effect is
    `LB+GBN (averaged)` minus `LB` (plain BN: one step per batch, no ghosts).
    Held when the update effect exceeds its spread and the noise effect does
    not. `measured` quotes both effects (and, when run, at momentum 0.9 too).

    Example:

    >>> acc = {"LB (bn 0.99)": [0.50, 0.52], "LB+GBN (averaged, bn 0.99)": [0.51, 0.52],
    ...        "LB+GBN (bn 0.99)": [0.90, 0.91]}
    >>> rows = {n: {"per_seed": {"test_accuracy": v}} for n, v in acc.items()}
    >>> moving_statistics(rows)["held"]
    True
    """
    suffix = f" (bn {momentum})"
    seq, avg, plain = f"LB+GBN{suffix}", f"LB+GBN (averaged, bn {momentum})", f"LB{suffix}"
    claim = (f"At BN momentum {momentum}, GBN's benefit comes from moving-statistics updates, "
             "not ghost noise")
    criterion = (f"test({seq}) - test({avg}) > spread (updates) and test({avg}) - "
                 f"test({plain}) <= spread (noise)")
    missing = _missing(claim, rows, (seq, avg, plain), criterion)
    if missing:
        return missing
    updates = exceeds(_values(rows, seq), _values(rows, avg))
    noise = exceeds(_values(rows, avg), _values(rows, plain))
    held = None if updates is None or noise is None else bool(updates and not noise)
    measured = (f"updates effect ({seq} - {avg}): {_diff_text(rows, seq, avg)}; noise effect "
                f"({avg} - {plain}): {_diff_text(rows, avg, plain)}")
    if all(n in rows for n in ("LB+GBN", "LB+GBN (averaged)", "LB")):
        measured += (f"; at bn 0.9: updates {_diff_text(rows, 'LB+GBN', 'LB+GBN (averaged)')}"
                     f", noise {_diff_text(rows, 'LB+GBN (averaged)', 'LB')}")
    return _claim(claim, measured, held, criterion)


def evaluate(results):
    """Every claim of the study, in order, from the summarized `results` (see `summarize`).

    Returns:
        A list of dicts with `claim`, `measured`, `held` and `criterion`.
    """
    rows = {row["name"]: row for row in results["regimes"]}
    return [
        larger(rows, "LB generalizes worse than SB at equal epochs", "SB", "LB"),
        larger(rows, "+LR reduces the gap", "LB+LR", "LB"),
        larger(rows, "+GBN reduces the gap", "LB+LR+GBN", "LB+LR"),
        gap_closed(rows),
        sharper(rows),
        log_diffusion(rows),
        slopes_match(rows),
        moving_statistics(rows),
        larger(rows, "Keras' default BN momentum (0.99) hurts the large batch",
               "LB", "LB (bn 0.99)"),
        larger(rows, "GBN helps the large batch at BN momentum 0.9 (without +LR)",
               "LB+GBN", "LB"),
        larger(rows, "LARS reduces the gap (LB+LARS vs LB)", "LB+LARS", "LB"),
        larger(rows, "SAM reduces the gap (LB+SAM vs LB)", "LB+SAM", "LB"),
    ]
