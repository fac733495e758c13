"""Recipes by name, and a `TrainConfig` written back as a ready-to-run recipe flagfile.

The tuner reads a recipe's defaults exactly as `python -m tfgap.recipes.<name>`
does, and writes its best setting as a flagfile in the format of the
top-level `recipes/<recipe>/` files: a header naming the command that runs it, then
one `--flag=value` per line, only for the settings that differ from the
recipe's defaults for that model. The flags come from the settings'
declarations (`tfgap.training.config.setting`), so a new setting is written
without a change here.
"""

import math

from tfgap.recipes import flags as recipe_flags
from tfgap.recipes.defaults import RECIPES

# Settings that are not written to a recipe file: the dataset is the recipe's
# (not a flag), and the run and export directories default to names derived
# from the settings (a tuner trial's directory is not where a new run belongs).
_NOT_WRITTEN = ("model_dir", "export_dir")


def available_recipes():
    """The recipe names `python -m tfgap.recipes.<name>` accepts (and the tuner)."""
    return sorted(RECIPES)


def parse_recipe(recipe, argv):
    """Parses `argv` (with `argv[0]`) as recipe `recipe`'s command line into a `TrainConfig`.

    Raises:
        tfgap.recipes.flags.UsageError: bad flags, or an unknown recipe.
    """
    if recipe not in RECIPES:
        raise recipe_flags.UsageError(
            f"Expected --recipe in {available_recipes()}. Received: --recipe={recipe}")
    return recipe_flags.parse(argv, recipe)


def config_flags(config, recipe):
    """The flags that make recipe `recipe` run `config` (only those differing from defaults).

    One flag per command-line setting (`tfgap.training.config.settings()`,
    written by its declaration's `to_flag`) whose value differs from the
    recipe's default for `config.model`. `--model` always comes first (the
    ImageNet recipe derives its defaults from it); `model_dir` and
    `export_dir` are never written, but `--noexport` is when `config` exports
    nothing.

    Returns:
        A list of `"--name=value"` strings.
    """
    from tfgap.training.config import settings  # noqa: PLC0415

    defaults = parse_recipe(recipe, ["recipe", f"--model={config.model}"])
    lines = [f"--model={config.model}"]
    for name, declared in settings().items():
        if not declared.cli or name in _NOT_WRITTEN or name == "model":
            continue
        value, default = getattr(config, name), getattr(defaults, name)
        if _same(value, default) or value is None:
            continue
        lines.append(declared.to_flag(value))
    if config.export_dir is None:
        lines.append("--noexport")
    return lines


def _same(a, b):
    if isinstance(a, float) and isinstance(b, float):
        return math.isclose(a, b, rel_tol=1e-12, abs_tol=0.0)
    return a == b


def write_recipe_file(path, config, recipe, *, header=()):
    """Writes `config` as a flagfile for `python -m tfgap.recipes.<recipe>`.

    Args:
        path: the file to write.
        config: the `TrainConfig` to reproduce.
        recipe: the recipe name.
        header: extra comment lines (without `#`) after the standard ones.

    Returns:
        The lines of flags written.
    """
    lines = config_flags(config, recipe)
    text = [f"# Run: python -m tfgap.recipes.{recipe} --flagfile={path}"]
    text += [f"# {line}" for line in header]
    with open(path, "w") as f:
        f.write("\n".join(text + lines) + "\n")
    return lines
