"""A config written as a recipe flagfile parses back to the same config."""

import dataclasses

import pytest

from tfgap.recipes import recipe_flags
from tfgap.recipes.defaults import available_recipes
from tfgap.recipes.recipe_flags import config_flags, write_flagfile

DIRS = ("model_dir", "export_dir")


def same_except_dirs(a, b):
    fields = [f.name for f in dataclasses.fields(a) if f.name not in DIRS]
    return {n: getattr(a, n) for n in fields} == {n: getattr(b, n) for n in fields}


def parse_recipe(recipe, argv):
    return recipe_flags.parse(argv, recipe)


def test_available_recipes():
    assert available_recipes() == ["cifar10", "cifar100", "imagenet", "mnist", "mnist1d"]
    with pytest.raises(recipe_flags.UsageError, match="Received: --recipe=nope"):
        parse_recipe("nope", ["prog"])


@pytest.mark.parametrize("recipe,argv", [
    ("mnist", ["--model=mlp", "--model_options=mlp_width=32,mlp_depth=2", "--batch_size=512",
               "--ghost_batch_size=32", "--lr_multiplier=1.7320508075688772",
               "--regime_adaptation=2.5", "--mock_data", "--mock_examples=64", "--nopreemption",
               "--lr_values=0.3,0.03,0.003,0.0003", "--noexport"]),
    ("cifar10", ["--batch_size=4096", "--ghost_batch_size=128", "--regime_adaptation=true",
                 "--lr_scaling=linear", "--warmup_epochs=5", "--jit_compile"]),
    ("imagenet", ["--model=resnet50", "--batch_size=8192", "--ghost_batch_size=64",
                  "--lr_multiplier=0.8", "--mixed_precision", "--weight_decay=5e-5"]),
    ("imagenet", []),
    ("mnist1d", ["--model=f1", "--batch_size=800", "--ghost_batch_size=50"]),
    ("mnist1d", ["--model_options=mlp_width=64", "--validation_examples=0"]),
    ("mnist1d", ["--validation_examples="]),  # unset (None) where the recipe sets 800
])
def test_round_trip(tmp_path, recipe, argv):
    config = parse_recipe(recipe, ["prog", *argv])
    path = tmp_path / "best.flags"
    command = write_flagfile(str(path), config, recipe, header=["a comment"])
    lines = config_flags(config, recipe)
    text = path.read_text().splitlines()
    assert command == f"python -m tfgap.recipes.{recipe} --flagfile={path}"
    assert text[0] == f"# Run: {command}"
    assert text[1] == "# a comment" and text[2:] == lines
    again = parse_recipe(recipe, ["prog", f"--flagfile={path}"])
    assert same_except_dirs(config, again)
    # Only what differs from the defaults (plus --model) is written.
    defaults = parse_recipe(recipe, ["prog", f"--model={config.model}"])
    assert len(lines) == 1 + sum(
        getattr(config, f.name) != getattr(defaults, f.name)
        for f in dataclasses.fields(config) if f.name not in (*DIRS, "model")
    ) + (config.export_dir is None)


def test_config_flags_formats():
    config = parse_recipe("mnist", ["prog", "--regime_adaptation=true", "--nodownload",
                                    "--deterministic", "--noexport"])
    lines = config_flags(config, "mnist")
    assert lines == ["--model=f1", "--regime_adaptation=true", "--deterministic", "--noexport"]


def test_another_network_does_not_inherit_the_default_networks_options():
    # mnist1d's default network is the study's MLP with mlp_width=128, mlp_depth=3.
    default = parse_recipe("mnist1d", ["prog"])
    assert (default.model, default.model_options) == ("mlp", {"mlp_depth": 3, "mlp_width": 128})
    other = parse_recipe("mnist1d", ["prog", "--model=f1"])
    assert other.model_options == {}
    given = parse_recipe("mnist1d", ["prog", "--model=f1", "--model_options=width=64"])
    assert given.model_options == {"width": 64}
    assert config_flags(other, "mnist1d") == ["--model=f1"]
    assert config_flags(given, "mnist1d") == ["--model=f1", "--model_options=width=64"]
