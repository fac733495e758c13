"""The search: a Keras Tuner over `GhostBatchHyperModel`, resumable, with a summary.

`run_search` builds (or reloads, `overwrite=False`) a Hyperband, Bayesian
optimization or random-search tuner in `<model_dir>/search`, trains each
trial through `tfgap.training.train` in `<model_dir>/trials/<trial_id>`, and
writes the best setting as a ready-to-run recipe flagfile. Re-running the same
search continues where it stopped: finished trials are not trained again, an
interrupted trial resumes from its last checkpoint.
"""

import math
import os

import keras_tuner

from tfgap.tuning import recipe_files
from tfgap.tuning.hypermodel import OBJECTIVE, GhostBatchHyperModel

TUNERS = ("hyperband", "bayesian", "random")
SEARCH_SUBDIR = "search"
TRIALS_SUBDIR = "trials"
BEST_RECIPE_FILENAME = "best.flags"


class _PassTrialId:
    """Hands the trial id to `HyperModel.fit`, which names the trial's run directory."""

    def run_trial(self, trial, *args, **kwargs):
        return super().run_trial(trial, *args, trial_id=trial.trial_id, **kwargs)


class RandomSearch(_PassTrialId, keras_tuner.RandomSearch):
    """`keras_tuner.RandomSearch` passing `trial_id` to `fit`."""


class BayesianOptimization(_PassTrialId, keras_tuner.BayesianOptimization):
    """`keras_tuner.BayesianOptimization` passing `trial_id` to `fit`."""


class Hyperband(_PassTrialId, keras_tuner.Hyperband):
    """`keras_tuner.Hyperband` passing `trial_id` to `fit`; `max_trials` caps the trials."""


def make_tuner(kind, hypermodel, *, directory, max_trials, strategy=None, seed=None,
               max_epochs=None, hyperband_factor=3, executions_per_trial=1):
    """A Keras Tuner over `hypermodel`, resumed from `directory` when it exists.

    Args:
        kind: `"hyperband"`, `"bayesian"` or `"random"`.
        hypermodel: a `GhostBatchHyperModel`.
        directory: the tuner's directory (its `project_name` is "search").
        max_trials: int >= 1, the number of trials (Hyperband: a cap on its
            brackets' trials).
        strategy: the `tf.distribute.Strategy` (Keras Tuner's
            `distribution_strategy`); the hypermodel's own.
        seed: the tuner's random seed.
        max_epochs: Hyperband's longest run, in epochs of the small-batch
            regime (default: the config's `epochs`, rounded up).
        hyperband_factor: Hyperband's reduction factor.
        executions_per_trial: runs averaged per trial.

    Returns:
        The tuner (objective `test_accuracy`, maximized; `overwrite=False`).
    """
    if kind not in TUNERS:
        raise ValueError(f"Expected `kind` in {TUNERS}. Received: kind={kind!r}")
    if isinstance(max_trials, bool) or not isinstance(max_trials, int) or max_trials < 1:
        raise ValueError(f"Expected `max_trials` to be an int >= 1. Received: {max_trials!r}")
    common = dict(
        objective=keras_tuner.Objective(OBJECTIVE, direction="max"),
        seed=seed,
        directory=directory,
        project_name=SEARCH_SUBDIR,
        overwrite=False,
        distribution_strategy=strategy,
        executions_per_trial=executions_per_trial,
    )
    if kind == "random":
        return RandomSearch(hypermodel, max_trials=max_trials, **common)
    if kind == "bayesian":
        return BayesianOptimization(hypermodel, max_trials=max_trials, **common)
    if max_epochs is None:
        max_epochs = max(1, math.ceil(hypermodel.config.epochs))
    tuner = Hyperband(hypermodel, max_epochs=int(max_epochs), factor=int(hyperband_factor),
                      **common)
    tuner.oracle.max_trials = max_trials  # Hyperband has no max_trials argument
    return tuner


def run_search(config, recipe, *, model_dir, kind="bayesian", max_trials=10, strategy=None,
               min_ghost_batch_size=16, include_plain_bn=True, lr_multiplier_range=(0.25, 4.0),
               tune_regime_adaptation=False, hyperband_factor=3, best_recipe=None, verbose=2,
               stream=None):
    """Searches the ghost batch size and learning rate of `config`; writes the best recipe.

    Args:
        config: the base `TrainConfig` (a recipe's parsed flags).
        recipe: the recipe name (for the written recipe file).
        model_dir: the search directory (tuner state in `search/`, trials'
            runs in `trials/`); re-running resumes it.
        kind: `"hyperband"`, `"bayesian"` or `"random"`.
        max_trials: number of trials.
        strategy: the `tf.distribute.Strategy` of every trial.
        min_ghost_batch_size, include_plain_bn, lr_multiplier_range,
            tune_regime_adaptation: the search space (`GhostBatchHyperModel`).
        hyperband_factor: Hyperband's reduction factor.
        best_recipe: path of the best recipe file (default
            `<model_dir>/best.flags`).
        verbose: the trainer's verbosity in trials.
        stream: where the summary is printed (default stdout).

    Returns:
        A dict: `best_hyperparameters` (values), `best_config` (`TrainConfig`),
        `best_score`, `trials` (one dict per finished trial: `trial_id`,
        `values`, `score`, `model_dir`), `recipe_file` and `tuner`.
    """
    import sys  # noqa: PLC0415

    stream = stream or sys.stdout
    hypermodel = GhostBatchHyperModel(
        config, strategy=strategy, trials_dir=os.path.join(model_dir, TRIALS_SUBDIR),
        min_ghost_batch_size=min_ghost_batch_size, include_plain_bn=include_plain_bn,
        lr_multiplier_range=lr_multiplier_range, tune_regime_adaptation=tune_regime_adaptation,
        verbose=verbose,
    )
    tuner = make_tuner(kind, hypermodel, directory=model_dir, max_trials=max_trials,
                       strategy=strategy, seed=config.seed, hyperband_factor=hyperband_factor)
    tuner.search()

    trials = []
    for trial in tuner.oracle.trials.values():
        if trial.score is None:
            continue
        trials.append(dict(trial_id=trial.trial_id, values=dict(trial.hyperparameters.values),
                           score=float(trial.score),
                           model_dir=os.path.join(hypermodel.trials_dir, trial.trial_id)))
    if not trials:
        raise RuntimeError(f"No trial of the search in {model_dir!r} finished.")
    best_hp = tuner.get_best_hyperparameters(1)[0]
    best_trial = tuner.oracle.get_best_trials(1)[0]
    best = hypermodel.trial_config(best_hp, trial_id=best_trial.trial_id)
    best_config = config.replace(
        ghost_batch_size=best.ghost_batch_size,
        lr_multiplier=best.lr_multiplier,
        regime_adaptation=best.regime_adaptation,
    )
    path = best_recipe or os.path.join(model_dir, BEST_RECIPE_FILENAME)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    recipe_files.write_recipe_file(
        path, best_config, recipe,
        header=[f"Best of {len(trials)} {kind} trials (tfgap.recipes.tune) in {model_dir}: "
                f"{OBJECTIVE} {best_trial.score:.4f}."],
    )
    _print_summary(stream, trials, best_trial, best_config, path, kind)
    return dict(best_hyperparameters=dict(best_hp.values), best_config=best_config,
                best_score=float(best_trial.score), trials=trials, recipe_file=path,
                tuner=tuner)


def _print_summary(stream, trials, best_trial, best_config, path, kind):
    def fmt(values):
        shown = {k: v for k, v in values.items() if not k.startswith("tuner/")}
        return ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                         for k, v in shown.items())

    print(f"Search summary ({kind}, {len(trials)} trials, objective {OBJECTIVE}):",
          file=stream)
    for t in sorted(trials, key=lambda t: -t["score"]):
        print(f"  trial {t['trial_id']}: {OBJECTIVE}={t['score']:.4f}  {fmt(t['values'])}",
              file=stream)
    ra = best_config.regime_adaptation
    print(
        f"Best: ghost_batch_size={best_config.ghost_batch_size}, "
        f"lr_multiplier={best_config.lr_multiplier:.4g}, regime_adaptation={ra}, "
        f"{OBJECTIVE}={best_trial.score:.4f} (trial {best_trial.trial_id}); "
        f"recipe file: {path}",
        file=stream, flush=True,
    )
