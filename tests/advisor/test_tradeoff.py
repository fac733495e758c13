"""The steps/examples trade-off and its fit, against McCandlish et al.'s closed forms."""

import numpy as np
import pytest

from tfgap.advisor import fit_tradeoff, min_steps, predicted_examples, predicted_steps


def test_predictions_satisfy_the_hyperbola():
    s_min, b_noise = 120.0, 300.0
    e_min = s_min * b_noise
    for b in (16, 100, 300, 4096):
        s = predicted_steps(b, b_noise=b_noise, s_min=s_min)
        e = predicted_examples(b, b_noise=b_noise, s_min=s_min)
        assert e == pytest.approx(b * s)
        assert (s / s_min - 1.0) * (e / e_min - 1.0) == pytest.approx(1.0)
    # At B = B_noise: twice the fewest steps and twice the fewest examples.
    assert predicted_steps(300, b_noise=b_noise, s_min=s_min) == pytest.approx(2 * s_min)
    assert predicted_examples(300, b_noise=b_noise, s_min=s_min) == pytest.approx(2 * e_min)


def test_min_steps_inverts_the_small_batch_run():
    s_min = min_steps(900, 50, b_noise=400)
    assert s_min == pytest.approx(100.0)
    assert predicted_steps(50, b_noise=400, s_min=s_min) == pytest.approx(900)


def test_fit_recovers_s_min_and_e_min_from_noisy_steps():
    rng = np.random.default_rng(0)
    b = np.array([16, 32, 64, 128, 256, 512, 1024, 2048])
    s_min, e_min = 80.0, 80.0 * 200.0
    steps = (s_min + e_min / b) * np.exp(0.03 * rng.normal(size=b.size))
    fit = fit_tradeoff(b, steps)
    assert fit.s_min == pytest.approx(s_min, rel=0.1)
    assert fit.e_min == pytest.approx(e_min, rel=0.1)
    assert fit.b_crit == pytest.approx(200.0, rel=0.15)
    assert 0.0 < fit.rms_relative_error < 0.06
    assert fit.steps(200) == pytest.approx(fit.s_min + fit.e_min / 200)


def test_fit_of_pure_linear_scaling_has_no_step_floor():
    b = np.array([8.0, 16.0, 32.0])
    fit = fit_tradeoff(b, 1000.0 / b)  # S = E_min / B exactly: S_min = 0
    assert fit.s_min == pytest.approx(0.0, abs=1e-9)
    assert fit.e_min == pytest.approx(1000.0)
    assert fit.b_crit > 1e9  # no finite critical batch


def test_bad_input():
    with pytest.raises(ValueError, match="two or more distinct"):
        fit_tradeoff([64, 64], [10, 11])
    with pytest.raises(ValueError, match="positive"):
        fit_tradeoff([16, 32], [10, float("nan")])
    with pytest.raises(ValueError, match="b_noise"):
        predicted_steps(32, b_noise=-1.0, s_min=10)
