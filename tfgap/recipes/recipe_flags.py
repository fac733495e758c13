"""The recipes' command line: one flag per `TrainConfig` setting, and the recipe entry point.

Every recipe (`python -m tfgap.recipes.<name>`) takes the same flags: one per
command-line setting of `TrainConfig`, derived from its declaration
(`tfgap.training.config.setting`: help, type, allowed values, validation), plus
`--export` and `--verbosity`. Only their defaults differ: the recipe's network
and its small-batch regime (`defaults.py`); choosing a network with defaults of
its own (`defaults.NETWORK_DEFAULTS`, e.g. ImageNet's `--model=resnet50`)
switches every setting not given to that network's. `--flagfile=FILE` reads
flags from a file (the top-level `recipes/` files), `--help` lists them all.

The command's behaviour (quiet logs, one-line errors, exit statuses, the
artifact lines at the end) is `tfgap.recipes.cli`'s, shared with `tune` and
`study`. A recipe's last lines are `Done: <steps>, <epochs>, [AdaScale progress,]
test accuracy, images/s`, then one `Wrote <what>: <path>` line per artifact.

The way back, a `TrainConfig` as a flagfile of a recipe (`config_flags`,
`write_flagfile`), writes the flags in the format of the top-level `recipes/`
flagfiles: only the settings that differ from the recipe's defaults for the
config's network, each by its declaration (`Setting.to_flag`), so a new
setting is written without a change here. The tuner's and the advisor's
commands write their results this way.
"""

import math
import os

from absl import flags

from tfgap.recipes import cli
from tfgap.recipes.cli import EXIT_FAILED, EXIT_PREEMPTED, EXIT_USAGE, UsageError
from tfgap.recipes.defaults import available_recipes, network_defaults, recipe_defaults

__all__ = [
    "EXIT_FAILED",
    "EXIT_PREEMPTED",
    "EXIT_USAGE",
    "UsageError",
    "apply_network_defaults",
    "config_flags",
    "config_from_flags",
    "define_flags",
    "parse",
    "recipe_from_argv",
    "run",
    "run_name",
    "write_flagfile",
]


def define_flags(defaults, flag_values=flags.FLAGS):
    """Defines every recipe flag on `flag_values`, with the recipe's `defaults`.

    One flag per `TrainConfig` setting declared `cli=True` (from its
    declaration), plus `--export`.

    Args:
        defaults: the recipe's defaults (`tfgap.recipes.defaults.recipe_defaults(name)`).
        flag_values: an `absl.flags.FlagValues` (a fresh one in tests).
    """
    fv = flag_values
    cli.define_setting_flags(fv, defaults, unset=("model_dir",))
    flags.DEFINE_boolean("export", True, "Export a SavedModel at the end (to --export_dir); "
                         "--noexport: none.", flag_values=fv)
    cli.set_group(fv, "output", "export")
    fv["export_dir"].help = "Where the SavedModel goes (none with --noexport)."
    dataset = defaults["dataset"]
    cli.set_default_text(fv, "model_dir", f"runs/{dataset}/<run name>")
    cli.set_default_text(fv, "export_dir", f"savedmodels/{dataset}_<run name>")


def run_name(config_fields):
    """A readable run name from the settings that distinguish Table 1's rows."""
    c = config_fields
    ra = c["regime_adaptation"]
    ra = "ra" if ra is True else ("" if ra is False else f"ra{ra:g}")
    parts = [c["model"], f"b{c['batch_size']}", c["lr_scaling"]]
    if c["ghost_batch_size"]:
        parts.append(f"g{c['ghost_batch_size']}")
    if ra:
        parts.append(ra)
    parts.append(f"s{c['seed']}")
    return "_".join(parts)


def config_from_flags(flag_values, defaults, overrides=None):
    """Turns parsed flags and a recipe's defaults into a validated `TrainConfig`.

    Every command-line setting is read from its flag, except the fields in
    `overrides` (a command that gives a flag another meaning, as the advisor
    does `--max_batch_size`); `dataset` is the recipe's; an unset `--model_dir` becomes `runs/<dataset>/<run name>`, an
    unset `--export_dir` `savedmodels/<dataset>_<run name>` (none with
    `--noexport`).

    Raises:
        UsageError: a bad value or an inconsistent combination (one line).
    """
    from tfgap.training import ConfigError, TrainConfig  # noqa: PLC0415
    from tfgap.training.config import settings  # noqa: PLC0415

    fv = flag_values
    fields = {name: fv[name].value for name, declared in settings().items() if declared.cli}
    fields.update(overrides or {})
    fields["dataset"] = dataset = defaults["dataset"]
    try:
        name = run_name(fields)
        fields["model_dir"] = fields["model_dir"] or os.path.join("runs", dataset, name)
        if fv.export:
            fields["export_dir"] = fields["export_dir"] or os.path.join(
                "savedmodels", f"{dataset}_{name}")
        elif fields["export_dir"]:
            raise ConfigError("Expected no `export_dir` with --noexport. "
                              f"Received: export_dir={fields['export_dir']}")
        return TrainConfig(**fields)
    except ConfigError as e:
        raise UsageError(cli.flag_style(e, list(fv))) from None


def apply_network_defaults(flag_values, recipe):
    """Sets every setting the user did not give to the chosen network's default.

    The network's own defaults (`defaults.NETWORK_DEFAULTS`); and a network
    other than the recipe's default does not inherit that network's
    `model_options` (e.g. `mnist1d`'s `mlp_width=128`): they are `{}` unless
    given. A no-op for the default network. Call it after parsing and before
    `config_from_flags`.

    Args:
        flag_values: parsed `absl.flags.FlagValues` holding the recipe flags.
        recipe: the recipe name.
    """
    changes = network_defaults(recipe, flag_values.model)
    if flag_values.model != recipe_defaults(recipe)["model"]:
        changes.setdefault("model_options", {})
    for name, value in changes.items():
        flag = flag_values[name]
        if not flag.present:
            flag.value = flag.parser.parse(value)


def parse(argv, recipe):
    """Parses `argv` (with `argv[0]`) for `recipe` into a `TrainConfig`, in a fresh FlagValues.

    For tests and tools (`config_flags` reads a recipe's defaults this way). `--flagfile`
    works as on the command line.

    Raises:
        UsageError: an unknown recipe, unknown flags, bad values or an
            inconsistent combination.
    """
    if recipe not in available_recipes():
        raise UsageError(f"Expected --recipe in {available_recipes()}. Received: "
                         f"--recipe={recipe}")
    defaults = recipe_defaults(recipe)
    fv = flags.FlagValues()
    define_flags(defaults, fv)
    try:
        rest = fv(list(argv))
    except flags.Error as e:
        raise UsageError(cli.flag_style(e, list(fv))) from None
    if len(rest) > 1:
        raise UsageError(cli.positional_message(rest[1:], list(fv)))
    apply_network_defaults(fv, recipe)
    return config_from_flags(fv, defaults)


# Not written to a flagfile: the run and export directories default to names derived from
# the settings (a tuner trial's or a measurement's directory is not where a new run belongs).
_NOT_WRITTEN = ("model_dir", "export_dir")


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

    defaults = parse(["recipe", f"--model={config.model}"], recipe)
    lines = [f"--model={config.model}"]
    for name, declared in settings().items():
        if not declared.cli or name in _NOT_WRITTEN or name == "model":
            continue
        value, default = getattr(config, name), getattr(defaults, name)
        if _same(value, default):
            continue  # (an unset optional setting is written empty: `--name=`)
        lines.append(declared.to_flag(value))
    if config.export_dir is None:
        lines.append("--noexport")
    return lines


def _same(a, b):
    if isinstance(a, float) and isinstance(b, float):
        return math.isclose(a, b, rel_tol=1e-12, abs_tol=0.0)
    return a == b


def write_flagfile(path, config, recipe, *, header=()):
    """Writes `config` as a flagfile of `python -m tfgap.recipes.<recipe>` (`config_flags`).

    The first line is the command that runs it, then `header` as comments,
    then one flag per line.

    Args:
        path: the file to write.
        config: the `TrainConfig` to reproduce.
        recipe: the recipe name.
        header: extra comment lines (without `#`).

    Returns:
        The command that runs the flagfile.
    """
    lines = config_flags(config, recipe)
    command = f"python -m tfgap.recipes.{recipe} --flagfile={path}"
    text = [f"# Run: {command}"] + [f"# {line}" for line in header]
    with open(path, "w") as f:
        f.write("\n".join(text + lines) + "\n")
    return command


def recipe_from_argv(argv):
    """`--recipe` from a command line (also from a `--flagfile`), before its flags are defined.

    For commands whose flags depend on a recipe (`tune`, `advise`): `None`
    when it is not given or not a recipe name (the full parse then reports it).
    """
    fv = flags.FlagValues()
    flags.DEFINE_enum("recipe", None, available_recipes(), "Recipe.", flag_values=fv)
    try:
        fv(list(argv), known_only=True)
    except flags.Error:
        return None
    return fv.recipe


def run(recipe, argv=None, doc=None):
    """The whole entry point of recipe `recipe`: flags in, trainer called, exit status out.

    Args:
        recipe: the recipe name.
        argv: the command line (default `sys.argv`).
        doc: the text at the top of `--help` (the entry module's docstring).
    """
    defaults = recipe_defaults(recipe)
    prog = f"python -m tfgap.recipes.{recipe}"

    def define(fv, argv):
        define_flags(defaults, fv)

    def body(fv):
        apply_network_defaults(fv, recipe)
        return train_and_report(config_from_flags(fv, defaults))

    cli.main(prog, define=define, run=body, doc=doc, argv=argv)


def train_and_report(config, stdout=None):
    """Trains `config`, prints the `Done:` line; returns the artifacts as `(what, path)` pairs."""
    import sys  # noqa: PLC0415

    from tfgap.training import train  # noqa: PLC0415

    stdout = sys.stdout if stdout is None else stdout
    result = train(config)
    test = result["test"]["accuracy"]
    speed = result.get("throughput")
    adascale = result.get("adascale")
    stdout.write(
        f"Done: {result['global_step']} steps, {result['epochs_completed']:.4g} epochs, "
        + (f"progress {adascale['progress']:.6g} of {adascale['base_steps']} base steps, "
           if adascale else "")
        + f"test accuracy {test if test is None else round(test, 4)}"
        + (f", {speed:.1f} images/s" if speed else "") + "\n"
    )
    return run_artifacts(config.model_dir, result.get("export_dir"))


def run_artifacts(model_dir, export_dir=None):
    """`(what, path)` for every entry of a run directory, and the SavedModel if any."""
    from tfgap.training import rundir  # noqa: PLC0415

    entries = sorted(e for e in os.listdir(model_dir) if not e.startswith(".")) if (
        os.path.isdir(model_dir)) else []
    known = [e for e in rundir.DESCRIPTIONS if e in entries]
    other = [e for e in entries if e not in rundir.DESCRIPTIONS]
    out = [(rundir.DESCRIPTIONS[e], os.path.join(model_dir, e)) for e in known]
    out += [(e, os.path.join(model_dir, e)) for e in other]
    if export_dir:
        out.append(("SavedModel", export_dir))
    return out


def _train(config, prog):
    """Trains `config` as the recipe command does; returns the exit status (errors: one line)."""
    return cli.guarded(prog, lambda: train_and_report(config))
