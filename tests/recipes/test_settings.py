"""Each TrainConfig setting is declared once: the flags, their validation, the flags -> config
mapping and the flagfile writer all follow the declaration, setting by setting."""

import dataclasses
import math

import pytest
from absl import flags

from tfgap.recipes import cli
from tfgap.recipes import recipe_flags
from tfgap.recipes.defaults import NETWORK_DEFAULTS, RECIPES
from tfgap.training import ConfigError, TrainConfig
from tfgap.training.config import GROUPS, settings
from tfgap.recipes.recipe_flags import config_flags

CLI = [name for name, s in settings().items() if s.cli]
DIRS = ("model_dir", "export_dir")


def recipe_flag_values(recipe="mnist"):
    fv = flags.FlagValues()
    recipe_flags.define_flags(RECIPES[recipe], fv)
    return fv


def test_every_field_is_declared_with_a_group_and_help():
    names = [f.name for f in dataclasses.fields(TrainConfig)]
    assert list(settings()) == names
    for name, declared in settings().items():
        assert declared.name == name and declared.group in GROUPS, name
        assert declared.help.endswith((".", ")")), name
    assert [n for n in names if not settings()[n].cli] == ["dataset"]
    assert {n for n in names if settings()[n].required} == {
        "dataset", "model", "model_dir", "epochs", "batch_size"}


def test_every_command_line_setting_is_a_flag_with_the_declared_default():
    fv = recipe_flag_values("cifar10")
    own = {name for name in fv if fv[name].name == name}
    assert own == set(CLI) | {"export"}
    for name in CLI:
        declared = settings()[name]
        expected = RECIPES["cifar10"].get(name, declared.default)
        got = fv[name].default
        if isinstance(expected, tuple):
            assert got == tuple(float(v) for v in expected), name
        else:
            assert got == expected, name


def test_the_two_new_settings():
    s = settings()
    assert (s["validation_examples"].default, s["validation_examples"].group) == (None, "data")
    assert s["checkpoint_every_seconds"].default == 300.0
    base = dict(dataset="mnist", model="mlp", model_dir="/tmp/x", epochs=1, batch_size=8)
    assert TrainConfig(**base).validation_examples is None
    assert TrainConfig(**base, validation_examples=0).validation_examples == 0
    for bad in (-1, True, 2.5, "10"):
        with pytest.raises(ConfigError, match="validation_examples"):
            TrainConfig(**base, validation_examples=bad)
    assert recipe_flags.parse(["prog"], "mnist").validation_examples is None
    assert recipe_flags.parse(["prog", "--validation_examples="], "mnist").validation_examples \
        is None
    assert recipe_flags.parse(["prog", "--validation_examples=500"], "mnist") \
        .validation_examples == 500
    with pytest.raises(recipe_flags.UsageError, match="--validation_examples"):
        recipe_flags.parse(["prog", "--validation_examples=-3"], "mnist")


def other_value(name, config):
    """A valid value of setting `name` other than `config`'s, found from the declaration."""
    declared = settings()[name]
    value = getattr(config, name)
    if declared.kind == "bool":
        candidates = [not value]
    elif declared.allowed_choices() is not None:
        candidates = [c for c in declared.allowed_choices() if c != value]
    elif declared.kind == "int":
        candidates = [1 if value is None else value + 1, 0 if value is None else value - 1]
    elif declared.kind == "float":
        candidates = [value / 2, value + 1]
        if declared.below is not None:
            candidates.append((value + declared.below) / 2)
    elif declared.kind == "floats":
        candidates = [tuple(v / 2 for v in value)]
    elif declared.kind == "factor":
        candidates = [True, 2.0]
    elif declared.kind == "options":
        candidates = [{"mlp_width": 8}]
    else:
        candidates = ["local" if name == "tpu" else "/tmp/tfgap_elsewhere"]
    for candidate in candidates:
        try:
            if candidate != value and declared.check(candidate) == candidate:
                return candidate
        except ConfigError:
            continue
    raise AssertionError(f"no other value for {name}")


# Settings that mean something only beside others: the flags that make them valid to change.
_POLYNOMIAL = ["--lr_boundaries=", "--lr_values=2"]
CONTEXT = {"lr_decay": _POLYNOMIAL, "lr_decay_power": ["--lr_decay=polynomial", *_POLYNOMIAL],
           "lr_end": ["--lr_decay=polynomial", *_POLYNOMIAL],
           "adaptive": ["--lr_scaling=none"],  # AdaScale's gain replaces the scaling
           # the batch controller's largest batch: a multiple of the base batch, >= batch_size
           "max_batch_size": ["--adaptive=batch", "--lr_scaling=none", "--batch_size=1",
                              "--base_batch_size=1"],
           # the batch controller's decision interval: only with adaptive='batch'
           "batch_decision_steps": ["--adaptive=batch", "--lr_scaling=none", "--batch_size=1",
                                    "--base_batch_size=1"]}


@pytest.mark.parametrize("name", [n for n in CLI if n not in DIRS])
def test_each_flag_reaches_its_field_and_is_written_back(name):
    # The flag is built from the declaration alone: --name=<text> (or --[no]name).
    context = CONTEXT.get(name, [])
    default = recipe_flags.parse(["prog", "--strategy=auto", *context], "mnist")
    value = other_value(name, default)
    flag = settings()[name].to_flag(value)
    config = recipe_flags.parse(["prog", *context, flag], "mnist")
    got = getattr(config, name)
    assert got == value or (isinstance(value, float) and math.isclose(got, value)), (flag, got)
    changed = [f.name for f in dataclasses.fields(config)
               if f.name not in DIRS and getattr(config, f.name) != getattr(default, f.name)]
    assert changed == [name], changed
    # The flagfile writer gives back exactly this flag (--model always comes first).
    lines = config_flags(config, "mnist")
    expected = [f"--model={config.model}"] + ([] if name == "model" else [flag]) + (
        ["--noexport"] if config.export_dir is None else [])
    if context:  # the context's flags too, in declaration order
        expected = sorted(config_flags(default, "mnist") + [flag])
        lines = sorted(lines)
    assert lines == expected, lines


def test_declared_bounds_and_choices_reject_at_parse_time_in_one_line():
    cases = {
        "--momentum=1": "--momentum in [0, 1)",
        "--bn_momentum=-0.1": "--bn_momentum in [0, 1)",
        "--epochs=0": "--epochs > 0",
        "--lr_multiplier=0": "--lr_multiplier > 0",
        "--lr_boundaries=0,5": "every entry of --lr_boundaries > 0",
        "--lr_values=0.1,-1,1,1": "every entry of --lr_values >= 0",
        "--verbose=3": "--verbose in [0, 2]",
        "--moving_update=mean": "['sequential', 'averaged', 'full_batch']",
        "--lr_scaling=cube": "--lr_scaling in ['sqrt', 'linear', 'none']",
        "--regime_adaptation=0.5": "--regime_adaptation to be true, false or a factor >= 1",
        "--model_options=width": "--model_options as key=value pairs",
        "--keep_checkpoints=0": "--keep_checkpoints >= 1",
        "--batch_size=2.5": "--batch_size to be an integer",
        "--label_smoothing=1": "--label_smoothing in [0, 1)",
        "--lr_decay=cosine": "--lr_decay in ['piecewise', 'polynomial']",
        "--lars_trust_denominator=max": "['norm_of_sum', 'sum_of_norms']",
    }
    for arg, expected in cases.items():
        with pytest.raises(recipe_flags.UsageError) as info:
            recipe_flags.parse(["prog", arg], "mnist")
        message = str(info.value)
        assert expected in message and "\n" not in message, (arg, message)
        assert "`" not in message, message  # flags, not argument names


def test_config_errors_speak_of_arguments_and_the_cli_of_flags():
    base = dict(dataset="mnist", model="mlp", model_dir="/tmp/x", epochs=1, batch_size=64)
    with pytest.raises(ConfigError) as info:
        TrainConfig(**base, ghost_batch_size=48)
    assert "--" not in str(info.value) and "ghost_batch_size=48" in str(info.value)
    names = ["ghost_batch_size", "batch_size", "lr_values", "lr_boundaries"]
    assert cli.flag_style(str(info.value), names) == (
        "Expected ghost_batch_size to divide the batch of 64 (--batch_size=64; with several "
        "replicas, the per-replica batch). Received: --ghost_batch_size=48")
    assert cli.flag_style("Expected len(lr_values) == len(lr_boundaries) + 1. Received: "
                          "lr_boundaries=[1.0], lr_values=[0.1]", names) == (
        "Expected len(lr_values) == len(lr_boundaries) + 1. Received: --lr_boundaries=[1.0], "
        "--lr_values=[0.1]")


def test_every_settings_text_form_parses_back():
    config = recipe_flags.parse(["prog", "--regime_adaptation=2.5", "--model_options=a=1,b=x",
                                 "--lr_values=0.3,0.03,3e-3,3e-4"], "mnist")
    for name, declared in settings().items():
        value = getattr(config, name)
        if value is None:
            assert declared.optional and declared.parse("") is None, name
            continue
        assert declared.parse(declared.format(value)) == value, name


def test_recipe_and_network_defaults_are_valid_settings():
    # The tables hold data only: every entry is a declared setting and passes its check.
    tables = [(r, d) for r, d in RECIPES.items()]
    tables += [(f"{r}/{m}", d) for r, nets in NETWORK_DEFAULTS.items() for m, d in nets.items()]
    for where, table in tables:
        for name, value in table.items():
            assert name in settings(), (where, name)
            declared = settings()[name]
            assert declared.check(value) == (tuple(value) if isinstance(value, tuple) else value), (
                where, name)
    # A network's defaults switch only the settings not given, in every recipe that has them.
    resnet = recipe_flags.parse(["prog", "--model=resnet50", "--epochs=3"], "imagenet")
    assert (resnet.base_batch_size, resnet.epochs) == (256, 3.0)
