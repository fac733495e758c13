"""tfgap.study.stats: hand-worked literals, SciPy cross-checks and error-rate simulations.

Simulations draw their data with NumPy under fixed seeds and run the module's
own functions on every replicate; tolerances are 3 Monte-Carlo standard
errors. A subprocess loads the module from its file alone to show it needs
only NumPy and SciPy.
"""

import doctest
import math
import pathlib
import subprocess
import sys

import numpy as np
import pytest
from scipy import stats as sps

from tfgap.study import stats as st

PATH = pathlib.Path(st.__file__)

ALPHA = 0.05


def _mc_tolerance(rate, reps):
    return 3.0 * math.sqrt(rate * (1.0 - rate) / reps)


def _paired(rng, reps, n, effect=0.0, noise=1.0, shared=2.0):
    """`reps` pairs of rows of `n` seeds: a shared per-seed part plus independent noise."""
    seed_part = shared * rng.standard_normal((reps, n))
    a = seed_part + effect + noise * rng.standard_normal((reps, n))
    b = seed_part + noise * rng.standard_normal((reps, n))
    return a, b


# Hand-worked cases (t quantiles and tail probabilities for 2 degrees of freedom are
# closed-form: t_p = (2p - 1) / sqrt(2 p (1 - p)), P(T > t) = (1 - t / sqrt(t**2 + 2)) / 2).

def test_hand_computed_interval_and_p_value():
    d = st.paired_difference([1, 2, 3], [0, 0, 0])
    assert (d.mean, d.sd, d.n, d.df, d.confidence) == (2.0, 1.0, 3, 2.0, 0.95)
    assert d.se == pytest.approx(1 / math.sqrt(3))
    assert d.low == pytest.approx(2 - 4.302653 / math.sqrt(3), abs=1e-6)
    assert d.high == pytest.approx(2 + 4.302653 / math.sqrt(3), abs=1e-6)
    assert (d.low, d.high) == pytest.approx((-0.484138, 4.484138), abs=1e-6)
    # t = 2 sqrt(3), p = 1 - t / sqrt(t**2 + 2) = 1 - sqrt(6 / 7).
    assert d.p_value == pytest.approx(0.0741799, abs=1e-7)
    d90 = d.at(0.90)  # t_{0.95, 2} = 0.9 / sqrt(0.095) = 2.919986
    assert (d90.low, d90.high) == pytest.approx((2 - 1.685854, 2 + 1.685854), abs=1e-6)
    assert d90.p_value == d.p_value and d90.confidence == 0.90


def test_holm_hand_worked():
    # Sorted 0.005, 0.01, 0.03, 0.04 -> 4 * 0.005, 3 * 0.01, 2 * 0.03, max(0.04, 0.06).
    assert st.holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert st.holm([0.5, 0.4]) == [0.8, 0.8]
    assert st.holm([0.2]) == [0.2] and st.holm([]) == []
    assert st.holm([0.01, 0.01, 0.5]) == pytest.approx([0.03, 0.03, 0.5])


def test_holm_is_monotone_capped_and_above_the_raw_p():
    rng = np.random.default_rng(0)
    for _ in range(200):
        p = rng.uniform(0, 1, rng.integers(1, 15)) ** 3
        adjusted = np.array(st.holm(list(p)))
        order = np.argsort(p, kind="stable")
        assert np.all(np.diff(adjusted[order]) >= 0)
        assert np.all(adjusted >= p) and np.all(adjusted <= 1.0)
        # Independent reference: Holm's step-down decision at ALPHA.
        reject, m = np.zeros(p.size, bool), p.size
        for step, i in enumerate(order):
            if p[i] > ALPHA / (m - step):
                break
            reject[i] = True
        assert np.array_equal(adjusted <= ALPHA, reject)


def test_holm_confidence_levels():
    assert st.holm_confidence(1, 4) == pytest.approx(1 - 0.05 / 4)
    assert st.holm_confidence(3, 4) == pytest.approx(1 - 0.05 / 2)
    assert st.holm_confidence(4, 4) == pytest.approx(0.95)
    assert st.holm_confidence(1, 12, 0.9) == pytest.approx(1 - 0.1 / 12)
    with pytest.raises(ValueError):
        st.holm_confidence(5, 4)


def test_tost_hand_computed():
    d = st.paired_difference([0.0, 0.5, 1.0], [0, 0, 0])  # mean 0.5, se 0.5 / sqrt(3), df 2
    e = st.equivalence(d, 1.5)
    # 90% interval: 0.5 -+ 2.919986 * 0.288675 = 0.5 -+ 0.842927.
    assert (e.low, e.high) == pytest.approx((-0.342927, 1.342927), abs=1e-6)
    # t_high = (0.5 - 1.5) / se = -2 sqrt(3): p_high = (1 - sqrt(6 / 7)) / 2; p_low = 0.010102.
    assert e.equivalent and e.p_value == pytest.approx(0.0370900, abs=1e-7)
    e1 = st.equivalence(d, 1.0)  # t_high = -sqrt(3): p = (1 - sqrt(3 / 5)) / 2
    assert not e1.equivalent and e1.p_value == pytest.approx(0.1127017, abs=1e-7)
    assert st.decide_equivalence(d, margin=1.5) == st.HELD
    assert st.decide_equivalence(d, margin=1.0) == st.UNDECIDED
    far = st.paired_difference([2.0, 2.5, 3.0], [0, 0, 0])  # 90%: 2.5 -+ 0.842927
    assert st.decide_equivalence(far, margin=1.5) == st.NOT_HELD
    below = st.paired_difference([0, 0, 0], [2.0, 2.5, 3.0])
    assert st.decide_equivalence(below, margin=1.5) == st.NOT_HELD


def test_cross_check_with_scipy_ttest_rel():
    rng = np.random.default_rng(1)
    for n in (2, 3, 5, 8, 30):
        for _ in range(20):
            a = rng.normal(0.3, 1.0, n) + rng.normal(0, 3, n)
            b = a - rng.normal(0.4, 0.7, n)
            ref = sps.ttest_rel(a, b)
            ci = ref.confidence_interval(0.9)
            d = st.paired_difference(a, b, confidence=0.9)
            assert d.p_value == pytest.approx(ref.pvalue, rel=1e-9, abs=1e-15)
            assert (d.low, d.high) == pytest.approx((ci.low, ci.high), rel=1e-9)
            assert d.mean == pytest.approx(np.mean(a - b))
            assert d.sd == pytest.approx(np.std(a - b, ddof=1))
            q = sps.t.ppf(0.95, n - 1)
            assert d.high - d.mean == pytest.approx(q * d.sd / math.sqrt(n), rel=1e-9)
            for margin in (0.2, 1.0):  # TOST = two one-sided scipy tests
                lo = sps.ttest_1samp(a - b, -margin, alternative="greater").pvalue
                hi = sps.ttest_1samp(a - b, margin, alternative="less").pvalue
                assert st.equivalence(d, margin).p_value == pytest.approx(max(lo, hi))


def test_degenerate_cases_are_defined():
    same = st.paired_difference([1.0, 2.0, 3.0], [0.5, 1.5, 2.5])
    assert same.sd == pytest.approx(0.0, abs=1e-12) and same.p_value == pytest.approx(0.0)
    assert same.high - same.low == pytest.approx(0.0, abs=1e-9)
    zero = st.paired_difference([1.0, 2.0], [1.0, 2.0])
    assert (zero.sd, zero.p_value, zero.low, zero.high) == (0.0, 1.0, 0.0, 0.0)
    assert st.equivalence(zero, 0.1).equivalent and st.equivalence(zero, 0.1).p_value == 0.0
    one = st.paired_difference([0.9], [0.8])
    assert one.n == 1 and one.mean == pytest.approx(0.1) and math.isnan(one.sd)
    assert (one.low, one.high, one.p_value) == (-math.inf, math.inf, 1.0)
    assert st.decide_effect(one, direction=1, margin=0.5) == st.UNDECIDED
    assert st.decide_equivalence(one, margin=0.5) == st.UNDECIDED
    assert st.equivalence(one, 0.5).p_value == 1.0
    none = st.paired_difference([], [])
    assert none.n == 0 and math.isnan(none.mean) and none.p_value == 1.0
    assert st.decide_effect(none, direction=-1) == st.UNDECIDED
    # Pairs with a missing value are dropped as pairs.
    d = st.paired_difference([1, None, 2, 3, float("nan")], [0, 5, 0, 0, 1])
    assert d.n == 3 and d.mean == 2.0 and d.sd == 1.0
    with pytest.raises(ValueError, match=r"len\(a\) = 3, len\(b\) = 2"):
        st.paired_difference([1, 2, 3], [1, 2])


def test_decide_effect_rules():
    up = st.paired_difference([5.0, 6.0, 7.0], [1.0, 1.5, 2.5])
    assert st.decide_effect(up, direction=1) == st.HELD
    assert st.decide_effect(up, direction=-1) == st.NOT_HELD
    assert st.decide_effect(up, direction=1, adjusted_p=0.2) == st.UNDECIDED
    assert st.decide_effect(up, direction=-1, adjusted_p=0.2) == st.UNDECIDED
    tiny = st.paired_difference([0.0, 0.1, -0.1, 0.05], [0, 0, 0, 0])
    assert st.decide_effect(tiny, direction=1) == st.UNDECIDED
    assert st.decide_effect(tiny, direction=1, margin=0.5) == st.NOT_HELD  # TOST
    # A significant effect smaller than the margin is held (held comes first).
    small = st.paired_difference([0.10, 0.11, 0.12, 0.10], [0, 0, 0, 0])
    assert st.decide_effect(small, direction=1, margin=0.5) == st.HELD
    with pytest.raises(ValueError):
        st.decide_effect(up, direction=0)
    assert st.OUTCOMES == ("held", "not held", "undecided")


def test_judge_text_and_intervals_match_the_holm_decision():
    v = st.judge([
        st.Comparison("LR", [0.910, 0.921, 0.905, 0.917], [0.862, 0.870, 0.861, 0.864],
                      scale=100, unit=" points"),
        st.Comparison("GBN", [0.9, 0.8, 0.7, 0.6], [0.8, 0.85, 0.75, 0.62], direction=-1,
                      scale=100, unit=" points"),
        {"name": "RA", "a": [0.931, 0.934, 0.928, 0.933], "b": [0.934, 0.936, 0.929, 0.935],
         "kind": "equal", "margin": 0.01, "scale": 100, "unit": " points"},
    ])
    assert [x.name for x in v] == ["LR", "GBN", "RA"]
    assert v[0].text == "+4.9 points [4.1, 5.7] (97.5%), Holm p<0.001: held"
    assert v[1].outcome == st.UNDECIDED and v[1].confidence == pytest.approx(0.95)
    assert v[1].adjusted_p == pytest.approx(v[1].p_value)  # rank 2 of 2: factor 1
    # Two p = 0.0287 (t = 5.77, df 2): Holm stops at step 1, so both intervals are at 97.5%
    # and contain 0 (at step 2's 95% the second one would not).
    same = [st.Comparison(k, [1.4, 2.0, 2.6], [0, 0, 0]) for k in "xy"]
    pair = st.judge(same)
    assert [x.adjusted_p for x in pair] == pytest.approx([2 * 0.0287141] * 2, abs=1e-6)
    assert [x.confidence for x in pair] == pytest.approx([0.975, 0.975])
    assert all(x.low < 0 < x.high and x.outcome == st.UNDECIDED for x in pair)
    assert st.paired_difference([1.4, 2.0, 2.6], [0, 0, 0]).low > 0
    assert v[2].text == "-0.2 points [-0.3, -0.1] (90%), TOST p<0.001 within ±1.0: held"
    with pytest.raises(ValueError, match="needs a margin"):
        st.judge([{"name": "x", "a": [1, 2], "b": [1, 2], "kind": "equal"}])
    with pytest.raises(ValueError, match="kind"):
        st.judge([{"name": "x", "a": [1, 2], "b": [1, 2], "kind": "larger"}])
    # Over random families, an effect interval excludes 0 exactly when Holm rejects.
    rng = np.random.default_rng(2)
    for _ in range(150):
        m = int(rng.integers(1, 6))
        a, b = _paired(rng, m, 4, effect=rng.normal(0, 1.5, (m, 1)))
        verdicts = st.judge([st.Comparison(str(i), a[i], b[i], direction=int(rng.choice([-1, 1])))
                             for i in range(m)])
        for x in verdicts:
            assert (x.adjusted_p <= ALPHA) == (x.low > 0 or x.high < 0)
            assert x.outcome in st.OUTCOMES


@pytest.mark.parametrize("n", [3, 5])
def test_null_effect_false_held_rate(n):
    reps = 4000
    a, b = _paired(np.random.default_rng(10 + n), reps, n)
    diffs = [st.paired_difference(a[r], b[r]) for r in range(reps)]
    held = np.mean([st.decide_effect(d, direction=1) == st.HELD for d in diffs])
    rejected = np.mean([d.p_value <= ALPHA for d in diffs])
    assert held <= ALPHA + _mc_tolerance(ALPHA, reps)
    assert held <= ALPHA / 2 + _mc_tolerance(ALPHA / 2, reps)  # directional: alpha / 2
    assert abs(rejected - ALPHA) <= _mc_tolerance(ALPHA, reps)  # the t test is exact


def test_family_of_twelve_null_claims_under_holm():
    reps, m, n = 1000, 12, 5
    rng = np.random.default_rng(20)
    any_held, any_held_uncorrected = 0, 0
    for _ in range(reps):
        a, b = _paired(rng, m, n)
        verdicts = st.judge([st.Comparison(str(i), a[i], b[i], direction=1 - 2 * (i % 2))
                             for i in range(m)])
        any_held += any(x.outcome == st.HELD for x in verdicts)
        any_held_uncorrected += any(
            x.p_value <= ALPHA and (1 - 2 * (i % 2)) * x.mean > 0 for i, x in enumerate(verdicts))
    assert any_held / reps <= ALPHA + _mc_tolerance(ALPHA, reps)
    assert any_held_uncorrected / reps > 0.15  # without Holm: 1 - 0.975**12 = 0.26


@pytest.mark.parametrize("sign", [1, -1])
def test_equivalence_false_held_rate_at_the_margin_edge(sign):
    reps, n, margin = 4000, 5, 3.0
    a, b = _paired(np.random.default_rng(30 + sign), reps, n, effect=sign * margin)
    held = np.mean([st.decide_equivalence(st.paired_difference(a[r], b[r]), margin=margin)
                    == st.HELD for r in range(reps)])
    assert held <= ALPHA + _mc_tolerance(ALPHA, reps)
    assert held > 0.03  # the test is not trivially conservative here (about 0.05)


def test_power_for_a_large_true_effect():
    reps, n, sd = 2000, 5, 1.0
    rng = np.random.default_rng(40)
    d = 3.0 * sd + sd * rng.standard_normal((reps, n))
    shared = rng.normal(0, 2, (reps, n))
    held = np.mean([st.decide_effect(st.paired_difference(shared[r] + d[r], shared[r]),
                                     direction=1) == st.HELD for r in range(reps)])
    expected = sps.nct.sf(sps.t.ppf(0.975, n - 1), n - 1, 3.0 * math.sqrt(n))  # 0.998
    assert held > 0.95
    assert abs(held - expected) <= _mc_tolerance(expected, reps) + 1e-3


def test_noisier_rows_never_make_equality_easier():
    rng = np.random.default_rng(50)
    reps, n, margin = 2000, 5, 1.0
    z = rng.standard_normal((reps, n))
    # Pathwise at zero true difference: scaling the noise only widens |mean| + half-width.
    outcomes = [[st.decide_equivalence(st.paired_difference(s * z[r], np.zeros(n)),
                                       margin=margin) == st.HELD for r in range(reps)]
                for s in (0.4, 0.6, 0.8)]
    held = np.array(outcomes)
    assert np.all(held[1] <= held[0]) and np.all(held[2] <= held[1])
    assert held[0].mean() > held[1].mean() + 0.1 > held[2].mean() + 0.2  # .996, .836, .515
    # With a true difference, more noise on one row lowers the held rate.
    extra = rng.standard_normal((reps, n))
    rates = [np.mean([st.decide_equivalence(
        st.paired_difference(0.3 + 0.2 * z[r] + s * extra[r], np.zeros(n)), margin=margin)
        == st.HELD for r in range(reps)]) for s in (0.2, 0.4, 0.6)]
    assert rates[0] > rates[1] + 0.05 > rates[2] + 0.1  # .998, .884, .641
    # Adding test-set noise (example_se) never turns an outcome into held.
    for r in range(200):
        seq = [st.decide_equivalence(st.paired_difference(0.3 + 0.2 * z[r], np.zeros(n),
                                                          example_se=e), margin=margin)
               for e in (0.0, 0.05, 0.1, 0.2, 0.4)]
        first_not_held = next((i for i, o in enumerate(seq) if o != st.HELD), len(seq))
        assert all(o != st.HELD for o in seq[first_not_held:])


def test_example_se_hand_computed_and_its_effect():
    # Seed-averaged per-example differences [0, .5, .5, 0]: sd 0.288675, / sqrt(4).
    se = st.example_se([[1, 1, 0, 1], [1, 0, 1, 1]], [[1, 0, 0, 1], [1, 0, 0, 1]])
    assert se == pytest.approx(0.1443376, abs=1e-7)
    assert st.example_se([1, 0, 1], [0, 0, 1]) == pytest.approx(math.sqrt(1 / 3) / math.sqrt(3))
    with pytest.raises(ValueError, match="shape"):
        st.example_se([[1, 0]], [[1, 0, 1]])
    # Deterministic seeds, the same 1000 test examples: A gets 3 more right than B.
    a = np.zeros((3, 1000))
    a[:, :903] = 1
    b = np.zeros((3, 1000))
    b[:, :900] = 1
    acc_a, acc_b = a.mean(axis=1), b.mean(axis=1)
    assert st.paired_difference(acc_a, acc_b).p_value == 0.0
    d = st.paired_difference(acc_a, acc_b, example_se=st.example_se(a, b))
    assert d.se == pytest.approx(math.sqrt(0.003 * 0.997 / 999), rel=1e-6)
    assert d.p_value > 0.1 and st.decide_effect(d, direction=1) == st.UNDECIDED


def test_example_se_restores_coverage_in_a_crossed_design():
    # Per-example scores with seed and example effects on a fixed test set: the seeds alone
    # miss the test-set part; with example_se the 95% interval covers the true 0.
    rng = np.random.default_rng(60)
    reps, seeds, examples = 600, 5, 200
    covered, covered_seeds_only = 0, 0
    for _ in range(reps):
        scores = (rng.normal(0, 0.2, (seeds, 1)) + rng.normal(0, 3.0, (1, examples))
                  + rng.normal(0, 1.0, (seeds, examples)))
        zero = np.zeros_like(scores)
        d = st.paired_difference(scores.mean(axis=1), zero.mean(axis=1),
                                 example_se=st.example_se(scores, zero))
        covered += d.low <= 0 <= d.high
        plain = st.paired_difference(scores.mean(axis=1), zero.mean(axis=1))
        covered_seeds_only += plain.low <= 0 <= plain.high
    assert covered / reps >= 0.95 - _mc_tolerance(0.95, reps)
    assert covered_seeds_only / reps < 0.8


def test_all_parts_claim_is_one_member_with_the_largest_p():
    strong = ([5.0, 6.0, 7.0, 6.5], [1.0, 1.5, 2.5, 1.0])
    weak = ([1.0, 1.2, 0.8, 1.1], [1.0, 1.0, 1.0, 1.0])
    opposite = ([0.0, 0.1, 0.0, 0.05], [1.0, 1.1, 1.2, 1.0])
    p_strong, p_weak = (sps.ttest_rel(*pair).pvalue for pair in (strong, weak))
    v = st.judge([st.Comparison("both", parts=(("s", *strong), ("w", *weak))),
                  st.Comparison("other", *strong)])
    assert v[0].part == "w" and v[0].p_value == pytest.approx(max(p_strong, p_weak))
    assert v[0].adjusted_p == pytest.approx(_holm_reference([p_weak, p_strong])[0])
    assert v[0].outcome == st.UNDECIDED and v[0].text.startswith("weakest of 2 parts, w: ")
    v = st.judge([st.Comparison("both", parts=(("s", *strong), ("s2", *strong)))])
    assert v[0].outcome == st.HELD
    v = st.judge([st.Comparison("both", parts=(("s", *strong), ("o", *opposite)))])
    assert v[0].outcome == st.NOT_HELD  # a part significantly the other way
    with pytest.raises(ValueError, match="only effect claims"):
        st.judge([st.Comparison("x", kind="equal", margin=1.0, parts=(("s", *strong),))])


def _holm_reference(p):
    order = np.argsort(p, kind="stable")
    out, running = np.zeros(len(p)), 0.0
    for step, i in enumerate(order):
        running = max(running, min(1.0, (len(p) - step) * p[i]))
        out[i] = running
    return list(out)


def test_all_parts_false_held_rate_when_one_part_has_no_effect():
    # The least favourable case of the intersection-union test: every part but one has a
    # large effect, the last none; "held" must stay at or below alpha / 2 (one direction).
    reps, n = 3000, 5
    rng = np.random.default_rng(70)
    held = 0
    for _ in range(reps):
        parts = [("big", *_paired(rng, 1, n, effect=5.0)), ("null", *_paired(rng, 1, n))]
        parts = [(k, a[0], b[0]) for k, a, b in parts]
        held += st.judge([st.Comparison("all", parts=tuple(parts))])[0].outcome == st.HELD
    assert held / reps <= ALPHA / 2 + _mc_tolerance(ALPHA / 2, reps)


def test_conjunction():
    assert st.conjunction([st.HELD] * 3) == st.HELD
    assert st.conjunction([st.HELD, st.UNDECIDED]) == st.UNDECIDED
    assert st.conjunction([st.UNDECIDED, st.NOT_HELD, st.HELD]) == st.NOT_HELD
    with pytest.raises(ValueError):
        st.conjunction([])
    with pytest.raises(ValueError):
        st.conjunction(["maybe"])


def test_docstring_examples():
    result = doctest.testmod(st, optionflags=doctest.ELLIPSIS)
    assert result.attempted >= 10 and result.failed == 0


def test_imports_neither_tensorflow_nor_keras():
    code = ("import importlib.util, sys\n"
            f"spec = importlib.util.spec_from_file_location('s', {str(PATH)!r})\n"
            "sys.modules['s'] = module = importlib.util.module_from_spec(spec)\n"
            "spec.loader.exec_module(module)\n"
            "print(sorted(m for m in ('tensorflow', 'keras', 'tfgap') if m in sys.modules))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "[]"
