"""`python -m tfgap.recipes.tune --recipe=NAME --max_trials=N [recipe flags]`: tune the ghost batch.

Keras Tuner (`--tuner` hyperband, bayesian or random) searches
`ghost_batch_size` over the divisors of the per-replica batch (down to
`--min_ghost_batch_size`, plus plain BN) together with the learning-rate
multiplier (`--lr_multiplier_min`..`--lr_multiplier_max`, log-uniform) and,
with `--tune_regime_adaptation`, the regime-adaptation factor. Every trial is
a training run of recipe NAME with all the other recipe flags as given (same
strategy, data, schedule). The search lives in `--model_dir` (default
`runs/tune/<recipe>_<run name>`): re-running the same command resumes it. At
the end it prints a summary naming `ghost_batch_size` and writes the best
setting as a flagfile of recipe NAME (`--best_flagfile`, default
`<model_dir>/best.flags`): `python -m tfgap.recipes.NAME --flagfile=<it>`, and
as a `TrainConfig` (`<model_dir>/best_config.json`). The best trial's trained
network is exported as a SavedModel to `--export_dir` (default
`savedmodels/tune_<recipe>_<run name>`; none with `--noexport`), checked
before the first trial. Trials are named as Keras Tuner's progress lines name
them, "Trial #1" for the first, with Keras Tuner's `trial_id` (from 0) beside:
the trial's run is `<model_dir>/trials/<trial_id>`.

Example:

    python -m tfgap.recipes.tune --recipe=mnist --max_trials=2 --tuner=random \\
        --mock_data --mock_examples=64 --batch_size=32 --epochs=1 \\
        --model=mlp --model_options=mlp_width=32 --min_ghost_batch_size=8
"""

import os

from absl import flags as absl_flags

from tfgap.recipes import cli
from tfgap.recipes import recipe_flags
from tfgap.recipes.defaults import available_recipes, recipe_defaults

PROG = "python -m tfgap.recipes.tune"
BEST_FLAGFILE_NAME = "best.flags"


def define_tuner_flags(flag_values):
    """The tuner's own flags, in the help group "search" (the recipe's: `define_flags`)."""
    from tfgap.tuning import TUNERS  # noqa: PLC0415

    fv, f = flag_values, absl_flags
    f.DEFINE_enum("recipe", None, available_recipes(), "Recipe whose runs are tuned "
                  "(required).", flag_values=fv)
    f.DEFINE_integer("max_trials", 10, "Number of trials.", lower_bound=1, flag_values=fv)
    f.DEFINE_enum("tuner", "bayesian", list(TUNERS), "Search algorithm.", flag_values=fv)
    f.DEFINE_integer("min_ghost_batch_size", 16, "Smallest ghost batch size tried (the "
                     "candidates are the divisors of the per-replica batch from here).",
                     lower_bound=1, flag_values=fv)
    f.DEFINE_boolean("tune_plain_bn", True, "Also try plain batch normalization "
                     "(ghost_batch_size=0).", flag_values=fv)
    f.DEFINE_float("lr_multiplier_min", 0.25, "Smallest learning-rate multiplier tried.",
                   lower_bound=0.0, flag_values=fv)
    f.DEFINE_float("lr_multiplier_max", 4.0, "Largest learning-rate multiplier tried "
                   "(equal to the min: not tuned).", lower_bound=0.0, flag_values=fv)
    f.DEFINE_boolean("tune_regime_adaptation", False, "Also search the regime-adaptation "
                     "factor (powers of 2 up to batch_size / base_batch_size).",
                     flag_values=fv)
    f.DEFINE_integer("hyperband_factor", 3, "Hyperband's reduction factor.", lower_bound=2,
                     flag_values=fv)
    f.DEFINE_string("best_flagfile", None, "Where the best setting is written as a recipe "
                    "flagfile (default <model_dir>/best.flags).", flag_values=fv)
    cli.set_group(fv, "search", "recipe", "max_trials", "tuner", "min_ghost_batch_size",
                  "tune_plain_bn", "lr_multiplier_min", "lr_multiplier_max",
                  "tune_regime_adaptation", "hyperband_factor", "best_flagfile")


def define(flag_values, argv):
    """Every flag of the tuner: its own, and those of the recipe `--recipe` names."""
    recipe = recipe_flags.recipe_from_argv(argv) or "mnist"
    recipe_flags.define_flags(recipe_defaults(recipe), flag_values)
    define_tuner_flags(flag_values)
    cli.set_default_text(flag_values, "model_dir", "runs/tune/<recipe>_<run name>")
    flag_values["export_dir"].help = ("Where the best trial's trained network is exported as "
                                      "a SavedModel (none with --noexport).")
    cli.set_default_text(flag_values, "export_dir", "savedmodels/tune_<recipe>_<run name>")


def run(fv):
    """Searches; returns the artifacts (search directory, trials, best config and flagfile)."""
    if fv.recipe is None:
        raise cli.UsageError("Expected --recipe=NAME. Received none")
    if fv.lr_multiplier_min <= 0 or fv.lr_multiplier_max < fv.lr_multiplier_min:
        raise cli.UsageError("Expected 0 < --lr_multiplier_min <= --lr_multiplier_max. "
                             f"Received: {fv.lr_multiplier_min}, {fv.lr_multiplier_max}")
    defaults = recipe_defaults(fv.recipe)
    recipe_flags.apply_network_defaults(fv, fv.recipe)
    config = recipe_flags.config_from_flags(fv, defaults)
    name = f"{fv.recipe}_{recipe_flags.run_name(config.to_dict())}"
    model_dir = fv.model_dir or os.path.join("runs", "tune", name)
    # Its own default: the recipe's (savedmodels/<dataset>_<run name>) is where a run of the
    # same flags exports, which the tuned network must not replace.
    export_dir = (fv.export_dir or os.path.join("savedmodels", f"tune_{name}")) if (
        fv.export) else None
    return _search(config, fv, model_dir, export_dir)


def _search(config, fv, model_dir, export_dir):
    from tfgap import data  # noqa: PLC0415
    from tfgap.training import make_strategy, split_logical_cpus  # noqa: PLC0415
    from tfgap.tuning import OBJECTIVE, run_search  # noqa: PLC0415
    from tfgap.tuning.search import SEARCH_SUBDIR, TRIALS_SUBDIR  # noqa: PLC0415

    # The CPU split and the strategy come before any other TensorFlow op.
    split_logical_cpus(config.logical_cpus)
    strategy = make_strategy(config.strategy, tpu=config.tpu)
    # Fail within seconds when the data is missing, not after three failed trials
    # (DatasetNotPreparedError: one line, exit status 1).
    data.build_dataset(config.dataset, "test", batch_size=1, training=False,
                       data_dir=config.data_dir, download=config.download,
                       mock_data=config.mock_data, mock_examples=config.mock_examples,
                       synthetic=config.synthetic)
    try:
        best = run_search(
            config, model_dir=model_dir, kind=fv.tuner, max_trials=fv.max_trials,
            strategy=strategy, min_ghost_batch_size=fv.min_ghost_batch_size,
            include_plain_bn=fv.tune_plain_bn,
            lr_multiplier_range=(fv.lr_multiplier_min, fv.lr_multiplier_max),
            tune_regime_adaptation=fv.tune_regime_adaptation,
            hyperband_factor=fv.hyperband_factor, verbose=config.verbose,
            export_dir=export_dir,
        )
    except RuntimeError as e:
        raise cli.CommandFailed(str(e)) from None
    except ValueError as e:  # ConfigError included: a search space the flags cannot give
        raise cli.UsageError(str(e)) from None
    flagfile = fv.best_flagfile or os.path.join(model_dir, BEST_FLAGFILE_NAME)
    os.makedirs(os.path.dirname(os.path.abspath(flagfile)), exist_ok=True)
    trial = best["best_trial"]
    recipe_flags.write_flagfile(
        flagfile, best["best_config"], fv.recipe,
        header=[(f"Best of {len(best['trials'])} {fv.tuner} trials (tfgap.recipes.tune) in "
                 f"{model_dir}, chosen on the validation split: {OBJECTIVE} "
                 f"{best['best_score']:.4f}."),
                (f"The best is Trial #{trial['number']} (Keras Tuner's numbering, from 1; "
                 f"trial_id {trial['trial_id']}), run in {trial['model_dir']}.")])
    return [(what, path) for what, path in (
        ("tuner state", os.path.join(model_dir, SEARCH_SUBDIR)),
        ("trial runs", os.path.join(model_dir, TRIALS_SUBDIR)),
    ) if os.path.exists(path)] + [("best config", best["config_file"]),
                                     ("best flagfile", flagfile),
                                     ("best SavedModel", best["export_dir"])]


def main(argv=None):
    cli.main(PROG, define=define, run=run, doc=__doc__, argv=argv)


if __name__ == "__main__":
    main()
