"""`adascale_gain` and `Progress` against the closed form of a quadratic with Gaussian noise.

The problem: `loss_i(w) = |w - x_i|^2 / 2` with `x_i ~ N(mu, s^2 I_d)`. The
per-example gradient is `w - x_i`, so `G = w - mu`, `Sigma = s^2 I_d`,
`B_simple = tr(Sigma) / |G|^2 = d s^2 / |w - mu|^2`, and AdaScale's gain at
batch `B` for a regime of `b0` is, straight from its definition (Johnson et
al. 2020, arXiv 2007.05105: `sigma^2 = tr(Sigma) / b0` the variance of a
`b0`-example gradient, `mu^2 = |G|^2`, `S = B / b0`):

    r = (sigma^2 + mu^2) / (sigma^2 / S + mu^2).
"""

import math

import numpy as np
import pytest

from tfgap.adaptive import Progress, adascale_gain


def quadratic_gain(w, mu, s, base_batch, batch):
    """AdaScale's r from the paper's variances of the quadratic (not through B_simple)."""
    mu_sq = float(np.sum((np.asarray(w) - mu) ** 2))
    sigma_sq = len(mu) * s * s / base_batch
    scale = batch / base_batch
    return (sigma_sq + mu_sq) / (sigma_sq / scale + mu_sq)


def test_gain_matches_the_closed_form_of_the_gaussian_quadratic():
    rng = np.random.default_rng(0)
    mu, s = rng.normal(size=8), 1.7
    for offset in (0.01, 0.3, 1.0, 5.0):
        w = mu + offset * rng.normal(size=8)
        b_simple = len(mu) * s * s / np.sum((w - mu) ** 2)
        for base, batch in ((32, 32), (32, 64), (32, 4096), (100, 150)):
            expected = quadratic_gain(w, mu, s, base, batch)
            assert math.isclose(adascale_gain(b_simple, base, batch), expected, rel_tol=1e-12)
            assert 1.0 <= adascale_gain(b_simple, base, batch) <= batch / base


def test_gain_limits_and_the_base_batch_exactly():
    # Noise-dominated: linear scaling; noiseless or unmeasured: the base rate.
    assert adascale_gain(float("inf"), 128, 1024) == 8.0
    assert math.isclose(adascale_gain(1e12, 128, 1024), 8.0, rel_tol=1e-8)
    for unmeasured in (None, float("nan"), 0.0, -3.0):
        assert adascale_gain(unmeasured, 128, 1024) == 1.0
    for b_simple in (1e-300, 0.37, 128.0, 1e300, float("inf")):
        assert adascale_gain(b_simple, 128, 128) == 1.0  # bit for bit


def test_gain_is_vectorized():
    b_simple = np.array([[None, 64.0], [128.0, 1e9]], dtype=object)
    got = adascale_gain(b_simple, base_batch=64, batch=256)
    expected = [[1.0, 2.0 / 1.25], [3.0 / 1.5, 4.0]]
    assert got.shape == (2, 2)
    np.testing.assert_allclose(got, expected, rtol=1e-6)
    got = adascale_gain(64.0, base_batch=64, batch=np.array([64, 128, 256]))
    np.testing.assert_allclose(got, [1.0, 2.0 / 1.5, 2.0 / 1.25], rtol=1e-15)
    assert got[0] == 1.0


@pytest.mark.parametrize("kwargs, message", [
    ({"base_batch": 128, "batch": 64}, r"Expected `batch` >= base_batch=128.*Received: batch=64"),
    ({"base_batch": 0, "batch": 64}, r"Expected `base_batch` > 0. Received: base_batch=0"),
    ({"base_batch": -8, "batch": 64}, r"Expected `base_batch` > 0. Received: base_batch=-8"),
    ({"base_batch": 8, "batch": [16, 4]}, r"`batch` >= base_batch=8.*Received: batch=\[16, 4\]"),
    ({"base_batch": 8, "batch": "16"}, r"Expected `batch` to be a finite number.*batch='16'"),
    ({"base_batch": 8, "batch": float("inf")}, r"finite number.*Received: batch=inf"),
])
def test_bad_batches_name_what_was_received_and_expected(kwargs, message):
    with pytest.raises(ValueError, match=message):
        adascale_gain(10.0, **kwargs)


def test_bad_b_simple_names_what_was_received():
    with pytest.raises(ValueError, match=r"Expected `b_simple` to be a number.*b_simple='x'"):
        adascale_gain("x", 8, 16)


def test_progress_adds_each_step_in_float64_and_round_trips():
    progress = Progress()
    gains = [1.1, 1.1, 1.1, 2.3, 1.0]
    progress.advance(1.1, steps=3)
    progress.advance(2.3)
    value = progress.advance(1.0)
    expected = 0.0
    for gain in gains:  # Python floats are IEEE float64: one rounding per step
        expected += gain
    assert value == progress.value == expected
    assert progress.steps == 5.0
    assert progress.reached(expected) and not progress.reached(expected + 1e-9)
    restored = Progress.from_state(progress.state())
    assert restored.state() == progress.state()
    assert (restored.value, restored.steps) == (expected, 5.0)


def test_progress_bad_inputs_name_what_was_received():
    progress = Progress()
    with pytest.raises(ValueError, match=r"Expected `gain` > 0. Received: gain=0"):
        progress.advance(0.0)
    with pytest.raises(ValueError, match=r"Expected `steps` to be an integer.*steps=1.5"):
        progress.advance(1.0, steps=1.5)
    with pytest.raises(ValueError, match=r"Expected `value` >= 0. Received: value=-1"):
        Progress(value=-1.0)
    with pytest.raises(ValueError, match=r"keys \['progress', 'steps'\].*without \['steps'\]"):
        progress.load_state({"progress": 1.0})
