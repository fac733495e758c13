"""Tests for the regime helpers; expected values are hand-computed literals."""

import pytest

from tfgap.schedules import adapted_epochs, adapted_steps, learning_rate_multiplier, stretch_factor


@pytest.mark.parametrize("regime_adaptation,expected", [
    (True, 32.0),   # 4096 / 128
    (False, 1.0),
    (4, 4.0),       # partial adaptation
    (1.0, 1.0),
    (64.0, 64.0),   # a factor above k is allowed
])
def test_stretch_factor(regime_adaptation, expected):
    out = stretch_factor(128, 4096, regime_adaptation)
    assert out == expected and type(out) is float


def test_stretch_factor_default_and_non_integer_ratio():
    assert stretch_factor(128, 4096) == 32.0
    assert stretch_factor(128, 192) == 1.5


def test_adapted_epochs():
    assert adapted_epochs(164, 128, 4096) == 5248.0          # 164 * 32
    assert adapted_epochs(164, 128, 4096, False) == 164.0
    assert adapted_epochs(30, 128, 4096, 2.5) == 75.0
    assert adapted_epochs(0.5, 128, 192) == 0.75


def test_adapted_steps():
    assert adapted_steps(164, 128, 4096, 13) == 68224         # 164 * 32 * 13
    assert adapted_steps(164, 128, 4096, 13, False) == 2132   # 164 * 13
    assert adapted_steps(1.5, 32, 96, 5) == 23                # 22.5 rounds up
    assert adapted_steps(0.1, 128, 384, 10) == 3              # 0.1 * 3 * 10 = 3.0000000000000004
    assert type(adapted_steps(1, 1, 1, 1)) is int


@pytest.mark.parametrize("scaling,expected", [("sqrt", 2.0), ("linear", 4.0), ("none", 1.0)])
def test_learning_rate_multiplier(scaling, expected):
    assert learning_rate_multiplier(64, 256, scaling) == expected


@pytest.mark.parametrize("call,fragments", [
    (lambda: stretch_factor(0, 4096), ["base_batch_size=0"]),
    (lambda: stretch_factor(128, -1), ["batch_size=-1"]),
    (lambda: stretch_factor(128, 4096, 0.9), ["regime_adaptation=0.9", ">= 1"]),
    (lambda: stretch_factor(128, 4096, None), ["regime_adaptation=None"]),
    (lambda: adapted_epochs(-1, 128, 4096), ["epochs=-1", ">= 0"]),
    (lambda: adapted_epochs(float("inf"), 128, 4096), ["epochs=inf", "finite"]),
    (lambda: adapted_steps(10, 128, 4096, 0), ["steps_per_epoch=0"]),
    (lambda: learning_rate_multiplier(128, 4096, "cubic"), ["scaling='cubic'", "'sqrt'"]),
])
def test_bad_arguments(call, fragments):
    with pytest.raises(ValueError) as info:
        call()
    for fragment in fragments:
        assert fragment in str(info.value), (fragment, str(info.value))
