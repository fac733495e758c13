"""One set of checks: the schedules and the training settings reject a value in the same words."""

import math

import pytest

from tfgap import _validation as checks
from tfgap.schedules import LargeBatchSchedule, stretch_factor
from tfgap.training import ConfigError, TrainConfig

SCHEDULE = dict(boundaries=[2.0], values=[0.1, 0.01], base_batch_size=128, batch_size=512,
                steps_per_epoch=10)
CONFIG = dict(dataset="mnist", model="f1", model_dir="/tmp/unused", epochs=4.0,
              batch_size=512, base_batch_size=128, lr_boundaries=(2.0,),
              lr_values=(0.1, 0.01))


def schedule_error(**changes):
    with pytest.raises(ValueError) as info:
        LargeBatchSchedule(**{**SCHEDULE, **changes})
    return str(info.value)


def config_error(**changes):
    with pytest.raises(ConfigError) as info:
        TrainConfig(**{**CONFIG, **changes})
    return str(info.value)


@pytest.mark.parametrize("name,bad,message", [
    ("batch_size", 0, "Expected `batch_size` >= 1. Received: batch_size=0"),
    ("base_batch_size", 2.5, "Expected `base_batch_size` to be an integer. "
                             "Received: base_batch_size=2.5"),
    ("regime_adaptation", 0.5, "Expected `regime_adaptation` to be true, false or a factor "
                               ">= 1. Received: regime_adaptation=0.5"),
    ("warmup_epochs", -1, "Expected `warmup_epochs` >= 0. Received: warmup_epochs=-1"),
    ("warmup_epochs", math.inf, "Expected `warmup_epochs` to be a finite number. "
                                "Received: warmup_epochs=inf"),
])
def test_same_bad_value_same_message(name, bad, message):
    assert schedule_error(**{name: bad}) == message
    assert config_error(**{name: bad}) == message


def test_rates_and_boundaries_fail_alike():
    # The schedule's `boundaries`/`values` are the config's `lr_boundaries`/`lr_values`.
    assert schedule_error(boundaries=[3.0, 2.0], values=[0.1, 0.01, 0.001]) == (
        "Expected `boundaries` to be strictly increasing. Received: boundaries=[3.0, 2.0]")
    assert config_error(lr_boundaries=(3.0, 2.0), lr_values=(0.1, 0.01, 0.001)) == (
        "Expected `lr_boundaries` to be strictly increasing. Received: "
        "lr_boundaries=[3.0, 2.0]")
    length = "len({v}) == len({b}) + 1 (a value before the first boundary and one from each)"
    assert schedule_error(values=[0.1]).startswith(
        "Expected " + length.format(v="values", b="boundaries"))
    assert config_error(lr_values=(0.1,)).startswith(
        "Expected " + length.format(v="lr_values", b="lr_boundaries"))
    assert schedule_error(scaling="cube") == (
        "Expected `scaling` in ['sqrt', 'linear', 'none']. Received: scaling='cube'")
    assert config_error(lr_scaling="cube") == (
        "Expected `lr_scaling` in ['sqrt', 'linear', 'none']. Received: lr_scaling='cube'")


def test_stretch_reads_text_only_when_asked():
    assert checks.stretch("ra", " Yes ", text=True) is True
    assert checks.stretch("ra", "0", text=True) is False
    assert checks.stretch("ra", "2.5", text=True) == 2.5
    with pytest.raises(ValueError, match="Received: ra='yes'"):
        checks.stretch("ra", "yes")  # the library takes a bool or a number
    with pytest.raises(ValueError, match="Received: ra=nan"):
        checks.stretch("ra", math.nan)
    assert stretch_factor(128, 512, 2) == 2.0


def test_bounds_and_the_error_class():
    assert checks.bounds_text(minimum=0, maximum=2) == "in [0, 2]"
    assert checks.bounds_text(below=1) == "< 1"
    assert checks.integer("n", 390.0, whole_floats=True) == 390
    with pytest.raises(ValueError, match="to be an integer"):
        checks.integer("n", 390.0)
    with pytest.raises(ValueError, match="to be an integer"):
        checks.integer("n", True)
    with pytest.raises(ConfigError, match=r"Expected every entry of `x` < 1\. Received: "
                                          r"x=\[0\.5, 1\.0\]"):
        checks.number_list("x", [0.5, 1], below=1, error=ConfigError)
    assert checks.number_list("x", (1, 2)) == (1.0, 2.0)
    assert checks.round_half_up(2.5) == 3 and checks.round_half_up(-0.5) == 0
