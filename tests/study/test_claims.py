"""Each claim's outcome is computed from the runs by paired statistics: constructed rows whose
claims must come out held, not held or undecided, and the numbers recomputed independently
(SciPy's paired t test and one-sided tests, Holm's step-down by hand, log ratios, per-seed
regression slopes)."""

import math

import numpy as np
import pytest
from scipy import stats as sps

from tfgap.study import claims, report
from tfgap.study import stats as st

SEEDS = [0, 1, 2, 3, 4]


def _row(name, accs, *, seeds=SEEDS, group=None, ghost=0, batch=512, **per_seed):
    values = {"test_accuracy": list(accs), "validation_accuracy": list(accs)}
    values.update(per_seed)
    return {"name": name, "seeds": list(seeds), "group": group, "ghost_batch_size": ghost,
            "batch_size": batch, "per_seed": values}


def _results(*rows):
    return {"regimes": list(rows)}


def _by_key(results):
    return {c["key"]: c for c in claims.evaluate(results)}


def _holm(p):
    """Holm's adjusted p-values, written out step by step (an independent reference)."""
    order = sorted(range(len(p)), key=lambda i: p[i])
    out, running = [0.0] * len(p), 0.0
    for step, i in enumerate(order):
        running = max(running, min(1.0, (len(p) - step) * p[i]))
        out[i] = running
    return out


SB = [0.970, 0.966, 0.972, 0.969, 0.965]
LB = [0.921, 0.930, 0.918, 0.926, 0.920]
LR = [0.935, 0.950, 0.915, 0.925, 0.945]  # noisy: +LR's effect is not decided
GBN = [0.951, 0.949, 0.940, 0.952, 0.948]


def test_effect_claims_are_paired_t_tests_with_holm_over_the_family():
    results = _results(_row("SB", SB), _row("LB", LB), _row("LB+LR", LR),
                       _row("LB+LR+GBN", GBN))
    c = _by_key(results)
    family = ("gap", "lr", "gbn")
    pairs = {"gap": (SB, LB), "lr": (LR, LB), "gbn": (GBN, LR)}
    raw = {k: sps.ttest_rel(*pairs[k]).pvalue for k in family}
    adjusted = dict(zip(family, _holm([raw[k] for k in family])))
    for key in family:
        assert c[key]["p_value"] == pytest.approx(raw[key], rel=1e-9)
        assert c[key]["adjusted_p"] == pytest.approx(adjusted[key], rel=1e-9)
        diff = np.subtract(*pairs[key])
        assert c[key]["mean"] == pytest.approx(diff.mean())
        assert c[key]["n"] == 5 and c[key]["seeds"] == SEEDS
        assert "Holm over 3 effect claims" in c[key]["test"]
    assert adjusted["gap"] < 0.05 and c["gap"]["outcome"] == "held"
    assert adjusted["lr"] > 0.05 and c["lr"]["outcome"] == "undecided"
    # The interval is reported at Holm's step: it excludes 0 exactly when the claim is held.
    assert c["gap"]["low"] > 0 and c["lr"]["low"] < 0 < c["lr"]["high"]
    assert c["gap"]["interval"].startswith(f"+{100 * np.mean(np.subtract(SB, LB)):.1f} points [")
    assert "SB 96.8 ± 0.3 (val 96.8 ± 0.3) vs LB 92.3 ± 0.5" in c["gap"]["measured"]
    # Unrun rows leave their claims undecided and out of the family.
    assert c["lars"]["outcome"] == "undecided"
    assert c["lars"]["measured"] == "not measured: LB+LARS not run"
    assert c["lars"]["p_value"] is None


def test_not_held_by_the_opposite_sign_and_by_equivalence_within_the_margin():
    lb_plus = [v + 0.02 for v in LB]  # LB beats "SB" here: significantly the other way
    tiny = [v + d for v, d in zip(lb_plus, (0.0005, -0.0004, 0.0003, 0.0, -0.0002))]
    c = _by_key(_results(_row("SB", SB), _row("LB", lb_plus), _row("LB+LARS", tiny),
                         _row("LB+SAM", [v - 0.001 for v in lb_plus])))
    assert c["gap"]["outcome"] == "held"  # SB - (LB + 2) is still > 0
    c = _by_key(_results(_row("SB", LB), _row("LB", lb_plus), _row("LB+LARS", tiny)))
    assert c["gap"]["outcome"] == "not held" and c["gap"]["high"] < 0
    # LB+LARS - LB within 0.1 point, seeds agree: TOST inside the 1-point margin.
    lars = c["lars"]
    diff = np.subtract(tiny, lb_plus)
    low = sps.ttest_1samp(diff, -0.01, alternative="greater").pvalue
    high = sps.ttest_1samp(diff, 0.01, alternative="less").pvalue
    assert max(low, high) < 0.05 and lars["outcome"] == "not held"


def test_equality_claims_are_tost_with_the_stated_margin():
    ra_close = [v + d for v, d in zip(SB, (0.002, -0.001, 0.001, -0.002, 0.0))]
    ra_far = [v - 0.03 for v in SB]
    ra_noisy = [v + d for v, d in zip(SB, (0.02, -0.03, 0.015, -0.02, 0.01))]
    for ra, outcome in ((ra_close, "held"), (ra_far, "not held"), (ra_noisy, "undecided")):
        c = _by_key(_results(_row("SB", SB), _row("LB+LR+GBN+RA", ra)))["ra"]
        diff = np.subtract(ra, SB)
        p = max(sps.ttest_1samp(diff, -0.01, alternative="greater").pvalue,
                sps.ttest_1samp(diff, 0.01, alternative="less").pvalue)
        assert c["p_value"] == pytest.approx(p, rel=1e-9)
        assert c["outcome"] == outcome, c
        assert c["confidence"] == pytest.approx(0.90) and "±1 point" in c["claim"]
        assert "TOST at 0.05, margin ±1 point" in c["test"]


def test_accuracies_carry_the_test_set_noise():
    n_examples = 400
    rng = np.random.default_rng(0)
    base = rng.random(n_examples) < 0.9
    correct_a, correct_b = [], []
    for seed in SEEDS:  # the same examples every seed; A is right on 6 more of them
        a = base.copy()
        a[seed * 10:seed * 10 + 6] = True
        b = base.copy()
        b[seed * 10:seed * 10 + 6] = False
        correct_a.append(a)
        correct_b.append(b)
    acc_a = [float(a.mean()) for a in correct_a]
    acc_b = [float(b.mean()) for b in correct_b]
    extra = dict(test_correct=[report.pack_correct(a) for a in correct_a],
                 test_examples=[n_examples] * 5)
    rows = (_row("SB", acc_a, **extra),
            _row("LB", acc_b, test_correct=[report.pack_correct(b) for b in correct_b],
                 test_examples=[n_examples] * 5))
    c = _by_key(_results(*rows))["gap"]
    # By hand: per-example differences averaged over seeds, their sd / sqrt(N).
    per_example = (np.array(correct_a, float) - np.array(correct_b, float)).mean(axis=0)
    example_se = per_example.std(ddof=1) / math.sqrt(n_examples)
    d = np.subtract(acc_a, acc_b)
    se = math.sqrt(d.var(ddof=1) / 5 + example_se**2)
    p = 2 * sps.t.sf(abs(d.mean()) / se, 4)
    assert c["p_value"] == pytest.approx(p, rel=1e-9)
    assert f"se {100 * example_se:.2f} points" in c["test"]
    # Without the test-set noise the seeds alone (identical differences) would be certain.
    assert sps.ttest_rel(acc_a, acc_b).pvalue < 1e-10 < p


def test_sharpness_claims_are_log_ratios():
    sharp_lb, sharp_sb = [140.0, 90.0, 200.0], [2.0, 1.5, 2.6]
    eig_lb, eig_sb = [97.0, 94.0, 99.0], [30.0, 28.0, 31.0]
    rel_lb, rel_sb = [1.0, 1.2, 0.9], [1.1, 1.0, 1.0]
    rows = (_row("LB (converged)", [0.94] * 3, seeds=[0, 1, 2], sharpness=sharp_lb,
                 hessian_top_eigenvalue=eig_lb, relative_sharpness=rel_lb),
            _row("SB (converged)", [0.96] * 3, seeds=[0, 1, 2], sharpness=sharp_sb,
                 hessian_top_eigenvalue=eig_sb, relative_sharpness=rel_sb))
    c = _by_key(_results(*rows))
    family = ("sharp", "sharp_relative", "sharp_eigenvalue")
    pairs = {"sharp": (sharp_lb, sharp_sb), "sharp_relative": (rel_lb, rel_sb),
             "sharp_eigenvalue": (eig_lb, eig_sb)}
    raw = [sps.ttest_rel(np.log(a), np.log(b)).pvalue for a, b in pairs.values()]
    for key, p, q in zip(family, raw, _holm(raw)):
        assert c[key]["p_value"] == pytest.approx(p, rel=1e-9)
        assert c[key]["adjusted_p"] == pytest.approx(q, rel=1e-9)
    ratio = math.exp(np.mean(np.log(sharp_lb) - np.log(sharp_sb)))
    assert c["sharp"]["interval"].startswith(f"x{ratio:.3g} [x")
    assert c["sharp"]["outcome"] == "held" and c["sharp_relative"]["outcome"] == "undecided"
    assert c["sharp_eigenvalue"]["outcome"] == "held"


def test_ghost_trend_is_a_per_seed_regression_slope():
    ghost = "ghost size at +LR"
    accs = {32: [0.95, 0.94, 0.95, 0.96, 0.95], 64: [0.945, 0.938, 0.944, 0.95, 0.946],
            128: [0.94, 0.93, 0.94, 0.945, 0.94], 512: [0.93, 0.92, 0.935, 0.94, 0.93]}
    rows = (_row("LB+LR+GBN", accs[32], ghost=32),
            _row("LB+LR+GBN (ghost 64)", accs[64], ghost=64, group=ghost),
            _row("LB+LR+GBN (ghost 128)", accs[128], ghost=128, group=ghost),
            _row("LB+LR", accs[512]))
    c = _by_key(_results(*rows))["ghost"]
    x = np.log2([32, 64, 128, 512])
    slopes = [np.polyfit(x, [accs[g][i] for g in (32, 64, 128, 512)], 1)[0] for i in range(5)]
    assert c["mean"] == pytest.approx(np.mean(slopes))
    assert c["p_value"] == pytest.approx(sps.ttest_1samp(slopes, 0.0).pvalue, rel=1e-9)
    assert c["outcome"] == "held" and c["mean"] < 0
    assert "ghost sizes 32, 64, 128, 512" in c["measured"]


def test_log_law_needs_every_row_largest_p():
    def fits(gaps):
        return [{"rmse_log": 0.1, "rmse_sqrt": 0.1 + g, "slope": 1.0} for g in gaps]

    good = [0.30, 0.32, 0.29, 0.31, 0.33]
    weak = [0.02, -0.01, 0.03, 0.00, 0.01]
    rows = [_row(n, SB, diffusion=fits(good)) for n in ("SB", "LB+LR")]
    c = _by_key(_results(*rows))["log_law"]
    assert c["outcome"] == "held"
    rows.append(_row("LB", LB, diffusion=fits(weak)))
    c = _by_key(_results(*rows))["log_law"]
    assert c["p_value"] == pytest.approx(sps.ttest_1samp(weak, 0.0).pvalue, rel=1e-9)
    assert c["outcome"] == "undecided" and c["part"] == "LB"
    assert c["interval"].startswith("weakest row LB: ")
    rows[-1] = _row("LB", LB, diffusion=fits([-g for g in good]))  # the sqrt law fits better
    assert _by_key(_results(*rows))["log_law"]["outcome"] == "not held"


def test_conclusions_rest_on_their_claims_and_one_seed_decides_nothing():
    close = [v + d for v, d in zip(SB, (0.001, -0.001, 0.0005, -0.0005, 0.0))]
    rows = (_row("SB", SB), _row("LB+RA", close), _row("LB+LR+GBN+RA", close))
    c = _by_key(_results(*rows))
    assert c["ra_alone"]["outcome"] == c["ra_enough"]["outcome"] == "held"
    assert c["updates"]["outcome"] == "held" and c["updates"]["of"] == ["ra_alone", "ra_enough"]
    far = [v - 0.05 for v in SB]
    c = _by_key(_results(_row("SB", SB), _row("LB+RA", far), _row("LB+LR+GBN+RA", close)))
    assert c["ra_alone"]["outcome"] == "not held" and c["updates"]["outcome"] == "not held"
    c = _by_key(_results(_row("SB", [0.96], seeds=[0]), _row("LB", [0.90], seeds=[0])))
    assert c["gap"]["outcome"] == "undecided"
    assert c["gap"]["interval"] == "fewer than 2 paired seeds"
    assert all(x["outcome"] == "undecided" for x in c.values())
    assert [x["outcome"] for x in c.values()] and set(st.OUTCOMES) >= {
        x["outcome"] for x in c.values()}


def test_pairs_are_matched_by_seed():
    rows = (_row("SB", [0.97, 0.96, 0.98], seeds=[0, 1, 2]),
            _row("LB", [0.90, 0.91], seeds=[2, 0]))
    c = _by_key(_results(*rows))["gap"]
    assert c["seeds"] == [0, 2] and c["n"] == 2
    assert c["mean"] == pytest.approx(((0.97 - 0.91) + (0.98 - 0.90)) / 2)
