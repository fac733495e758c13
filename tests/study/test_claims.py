"""Each claim's `held` is computed from the runs: run records built so that it must come out
true, false, or undecided, and the rule recomputed by hand (mean difference against the spread
sqrt(std_a**2 + std_b**2) of the per-seed values)."""

import math
import statistics

import pytest

from tfgap.study import claims, report

SEEDS = (0, 1, 2)


def _record(name, seed, test, *, val=None, train=0.99, slope=1.0, rmse=(0.1, 0.2), sharp=None,
            subspace=None, eig=None):
    config = dict(seed=seed, batch_size=32 if name == "SB" else 512, base_batch_size=32,
                  ghost_batch_size=0, lr_values=[0.05], lr_multiplier=1.0, lr_scaling="none",
                  regime_adaptation=False, bn_momentum=0.9, moving_update="sequential",
                  optimizer="sgd", sam_rho=0.0)
    diffusion = {"slope": slope, "intercept": 0.0, "window": [10.0, 100.0], "points": 10,
                 "rmse_log": rmse[0], "rmse_sqrt": rmse[1]}
    return dict(regime=name, seed=seed, model_dir=f"/runs/{name}/{seed}", status="completed",
                validation_accuracy=test if val is None else val, validation_examples=928,
                test_accuracy=test, train_accuracy=train, train_loss=0.01, updates=100,
                total_steps=100, epochs=12.0, steps_per_epoch=6, wall_time=1.0,
                weight_distance=5.0, high_lr_end=48, diffusion=diffusion,
                diffusion_slope=slope, sharpness=sharp, sharpness_subspace=subspace,
                hessian_top_eigenvalue=eig, subset_loss=0.01, subset_accuracy=1.0,
                stopped=None, history=[], distance_record=[], config=config)


def _results(tests, **per_row):
    """Summarized results of rows `{name: [test accuracy per seed]}` (extra fields per row)."""
    runs = {}
    for name, values in tests.items():
        extra = per_row.get(name, {})
        runs[name] = [_record(name, s, v, **{k: (w[i] if isinstance(w, list) else w)
                                             for k, w in extra.items()})
                      for i, (s, v) in enumerate(zip(SEEDS, values))]
    return report.summarize(runs)


def _by_claim(results):
    return {c["claim"]: c for c in claims.evaluate(results)}


def _spread(a, b):
    return math.sqrt(statistics.stdev(a) ** 2 + statistics.stdev(b) ** 2)


SB = [0.965, 0.960, 0.970]
LB_BAD = [0.920, 0.930, 0.925]


def test_gap_and_remedies_true_and_false():
    lr_better = [0.945, 0.950, 0.955]
    assert statistics.mean(SB) - statistics.mean(LB_BAD) > _spread(SB, LB_BAD)
    assert statistics.mean(lr_better) - statistics.mean(LB_BAD) > _spread(lr_better, LB_BAD)
    results = _results({"SB": SB, "LB": LB_BAD, "LB+LR": lr_better,
                        "LB+LR+GBN": [0.946, 0.944, 0.952],  # within noise of LB+LR
                        "LB+LR+GBN+RA": [0.962, 0.968, 0.958]})
    c = _by_claim(results)
    assert c["LB generalizes worse than SB at equal epochs"]["held"] is True
    assert c["+LR reduces the gap"]["held"] is True
    assert c["+GBN reduces the gap"]["held"] is False
    assert c["+RA closes the gap (within one std)"]["held"] is True
    assert "difference +4.00 points" in c["LB generalizes worse than SB at equal epochs"][
        "measured"]
    # The same claims turned around.
    results = _results({"SB": SB, "LB": [0.960, 0.970, 0.965], "LB+LR": [0.90, 0.91, 0.92],
                        "LB+LR+GBN": [0.94, 0.945, 0.95], "LB+LR+GBN+RA": [0.93, 0.935, 0.94]})
    c = _by_claim(results)
    assert c["LB generalizes worse than SB at equal epochs"]["held"] is False
    assert c["+LR reduces the gap"]["held"] is False
    assert c["+GBN reduces the gap"]["held"] is True
    assert c["+RA closes the gap (within one std)"]["held"] is False


def test_a_difference_inside_the_spread_does_not_hold():
    a, b = [0.95, 0.90, 0.99], [0.93, 0.93, 0.93]
    d = statistics.mean(a) - statistics.mean(b)
    assert 0 < d < _spread(a, b)
    results = _results({"SB": a, "LB": b})
    assert _by_claim(results)["LB generalizes worse than SB at equal epochs"]["held"] is False


def test_one_seed_is_undecided_and_a_missing_row_is_not_measured():
    results = _results({"SB": [0.96], "LB": [0.90]})
    c = _by_claim(results)
    assert c["LB generalizes worse than SB at equal epochs"]["held"] is None
    assert "fewer than 2 seeds" in c["LB generalizes worse than SB at equal epochs"]["measured"]
    assert c["LARS reduces the gap (LB+LARS vs LB)"]["held"] is None
    assert "LB+LARS not run" in c["LARS reduces the gap (LB+LARS vs LB)"]["measured"]
    for claim in claims.evaluate(results):
        assert set(claim) == {"claim", "measured", "held", "criterion"}


def test_sharper_minima():
    sharp_lb, sharp_sb = [5.0, 6.0, 5.5], [1.0, 1.2, 0.9]
    results = _results(
        {"SB": SB, "LB (converged)": LB_BAD},
        **{"SB": dict(sharp=sharp_sb, subspace=[0.01] * 3, eig=[10.0, 11.0, 12.0]),
           "LB (converged)": dict(sharp=sharp_lb, subspace=[0.02] * 3, eig=[30.0, 31.0, 29.0])})
    c = _by_claim(results)["LB converges to sharper minima"]
    assert c["held"] is True
    assert "top Hessian eigenvalue 30.00 ± 1.00 vs 11.00 ± 1.00 (larger)" in c["measured"]
    results = _results(
        {"SB": SB, "LB (converged)": LB_BAD},
        **{"SB": dict(sharp=[2.0, 4.0, 3.0]), "LB (converged)": dict(sharp=[3.0, 2.0, 3.5])})
    assert _by_claim(results)["LB converges to sharper minima"]["held"] is False


def test_log_diffusion_and_matching_slopes():
    table = {"SB": SB, "LB": LB_BAD, "LB+LR+GBN": LB_BAD}
    logs = {n: dict(rmse=[(0.1, 0.3), (0.12, 0.25), (0.1, 0.35)]) for n in table}
    c = _by_claim(_results(table, **logs))
    assert c["Weight distance grows as log t (high-rate phase)"]["held"] is True
    diffs = [0.2, 0.13, 0.25]  # sqrt - log per seed: mean 0.193 > std 0.060
    assert statistics.mean(diffs) > statistics.stdev(diffs)
    assert "SB: a = 1.00, RMSE sqrt - log +0.193 ± 0.060 (log fits better)" in c[
        "Weight distance grows as log t (high-rate phase)"]["measured"]
    # One row where the sqrt law fits as well (inside the spread): the claim does not hold.
    one_sqrt = dict(logs, LB=dict(rmse=[(0.1, 0.3), (0.4, 0.3), (0.1, 0.12)]))
    c = _by_claim(_results(table, **one_sqrt))
    assert c["Weight distance grows as log t (high-rate phase)"]["held"] is False
    diffs = [0.2, -0.1, 0.02]
    assert abs(statistics.mean(diffs)) < statistics.stdev(diffs)
    text = f"+{statistics.mean(diffs):.3f} ± {statistics.stdev(diffs):.3f} (not better)"
    assert f"LB: a = 1.00, RMSE sqrt - log {text}" in c[
        "Weight distance grows as log t (high-rate phase)"]["measured"]
    slopes = {"SB": dict(slope=[2.0, 2.1, 1.9]), "LB+LR+GBN": dict(slope=[1.95, 2.05, 2.0]),
              "LB": dict(slope=[0.9, 1.0, 1.1])}
    c = _by_claim(_results(table, **slopes))
    assert c["After +LR+GBN, LB's diffusion slope matches SB's"]["held"] is True
    slopes["LB+LR+GBN"] = dict(slope=[1.0, 1.1, 1.05])
    c = _by_claim(_results(table, **slopes))
    assert c["After +LR+GBN, LB's diffusion slope matches SB's"]["held"] is False


CLAIM = ("At BN momentum 0.99, GBN's benefit comes from moving-statistics updates, "
         "not ghost noise")


@pytest.mark.parametrize("seq, avg, plain, held", [
    ([0.92, 0.93, 0.92], [0.55, 0.50, 0.52], [0.53, 0.51, 0.52], True),   # updates, no noise
    ([0.92, 0.93, 0.92], [0.91, 0.92, 0.93], [0.53, 0.51, 0.52], False),  # noise did it
    ([0.92, 0.93, 0.92], [0.75, 0.70, 0.72], [0.53, 0.51, 0.52], False),  # both did
    ([0.53, 0.52, 0.51], [0.53, 0.51, 0.52], [0.53, 0.51, 0.52], False),  # nothing did
])
def test_moving_statistics_against_ghost_noise(seq, avg, plain, held):
    results = _results({"LB (bn 0.99)": plain, "LB+GBN (averaged, bn 0.99)": avg,
                        "LB+GBN (bn 0.99)": seq})
    c = _by_claim(results)[CLAIM]
    assert c["held"] is held
    d = 100 * (statistics.mean(seq) - statistics.mean(avg))
    assert f"difference {d:+.2f} points" in c["measured"]


def test_momentum_lars_sam_and_gbn_at_0_9():
    results = _results({"LB": [0.92, 0.93, 0.925], "LB (bn 0.99)": [0.50, 0.55],
                        "LB+GBN": [0.925, 0.92], "LB+LARS": [0.95, 0.955],
                        "LB+SAM": [0.90, 0.89]})
    c = _by_claim(results)
    assert c["Keras' default BN momentum (0.99) hurts the large batch"]["held"] is True
    assert c["GBN helps the large batch at BN momentum 0.9 (without +LR)"]["held"] is False
    assert c["LARS reduces the gap (LB+LARS vs LB)"]["held"] is True
    assert c["SAM reduces the gap (LB+SAM vs LB)"]["held"] is False
