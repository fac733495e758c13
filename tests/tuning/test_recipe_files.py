"""A config written as a recipe flagfile parses back to the same config."""

import dataclasses

import pytest

from tfgap.tuning import available_recipes, config_flags, parse_recipe, write_recipe_file

DIRS = ("model_dir", "export_dir")


def same_except_dirs(a, b):
    fields = [f.name for f in dataclasses.fields(a) if f.name not in DIRS]
    return {n: getattr(a, n) for n in fields} == {n: getattr(b, n) for n in fields}


def test_available_recipes_include_imagenet():
    assert {"mnist", "cifar10", "cifar100", "imagenet"} <= set(available_recipes())


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
])
def test_round_trip(tmp_path, recipe, argv):
    config = parse_recipe(recipe, ["prog", *argv])
    path = tmp_path / "best.flags"
    lines = write_recipe_file(str(path), config, recipe, header=["a comment"])
    text = path.read_text().splitlines()
    assert text[0] == f"# Run: python -m tfgap.recipes.{recipe} --flagfile={path}"
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
