"""The search: a Keras Tuner over `GhostBatchHyperModel`, resumable, with a summary.

`run_search` builds (or reloads, `overwrite=False`) a Hyperband, Bayesian
optimization or random-search tuner in `<model_dir>/search`, trains each
trial through `tfgap.training.train` in `<model_dir>/trials/<trial_id>`, and
writes the best setting as a `TrainConfig` (`<model_dir>/best_config.json`:
`train(TrainConfig.from_dict(json.load(f)))` runs it; the tune command also
writes it as a recipe flagfile). Re-running the same
search continues where it stopped: finished trials are not trained again, an
interrupted trial resumes from its last checkpoint.

The choice is made on the validation split only: trials are ranked by
`val_accuracy` (the end-of-run validation accuracy), and the summary reports
it. The chosen trial's test accuracy is printed once, as
the held-out number that played no part in the choice; the other trials' test
accuracies are recorded in their `result.json` but not shown.
"""

import math
import os

import keras_tuner

from tfgap import _validation as checks
from tfgap.tuning.hypermodel import HELD_OUT_METRIC, OBJECTIVE, GhostBatchHyperModel

TUNERS = ("hyperband", "bayesian", "random")
SEARCH_SUBDIR = "search"
TRIALS_SUBDIR = "trials"
BEST_CONFIG_FILENAME = "best_config.json"


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
        The tuner (objective `val_accuracy`, maximized; `overwrite=False`).
    """
    checks.choice("kind", kind, TUNERS)
    max_trials = checks.integer("max_trials", max_trials, minimum=1)
    common = dict(objective=keras_tuner.Objective(OBJECTIVE, direction="max"), seed=seed,
                  directory=directory, project_name=SEARCH_SUBDIR, overwrite=False,
                  distribution_strategy=strategy, executions_per_trial=executions_per_trial)
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


def run_search(config, *, model_dir, kind="bayesian", max_trials=10, strategy=None,
               min_ghost_batch_size=16, include_plain_bn=True, lr_multiplier_range=(0.25, 4.0),
               tune_regime_adaptation=False, hyperband_factor=3, verbose=2, stream=None):
    """Searches the ghost batch size and learning rate of `config`; writes the best config.

    Args:
        config: the base `TrainConfig` (e.g. a recipe's parsed flags).
        model_dir: the search directory (tuner state in `search/`, trials'
            runs in `trials/`); re-running resumes it.
        kind: `"hyperband"`, `"bayesian"` or `"random"`.
        max_trials: number of trials.
        strategy: the `tf.distribute.Strategy` of every trial.
        min_ghost_batch_size, include_plain_bn, lr_multiplier_range,
            tune_regime_adaptation: the search space (`GhostBatchHyperModel`).
        hyperband_factor: Hyperband's reduction factor.
        verbose: the trainer's verbosity in trials.
        stream: where the summary is printed (default stdout).

    Returns:
        See `finish_search`.
    """
    hypermodel = GhostBatchHyperModel(
        config, strategy=strategy, trials_dir=os.path.join(model_dir, TRIALS_SUBDIR),
        min_ghost_batch_size=min_ghost_batch_size, include_plain_bn=include_plain_bn,
        lr_multiplier_range=lr_multiplier_range, tune_regime_adaptation=tune_regime_adaptation,
        verbose=verbose,
    )
    tuner = make_tuner(kind, hypermodel, directory=model_dir, max_trials=max_trials,
                       strategy=strategy, seed=config.seed, hyperband_factor=hyperband_factor)
    tuner.search()
    return finish_search(tuner, model_dir=model_dir, kind=kind, stream=stream)


def finish_search(tuner, *, model_dir, kind, stream=None):
    """Picks the best trial on validation, writes its config, prints the summary.

    The best trial is the one with the highest `val_accuracy` (Keras Tuner's
    oracle ranks the trials by the objective). Its `test_accuracy` is looked
    up only after the choice, and printed once as the held-out number.

    Args:
        tuner: a searched tuner over a `GhostBatchHyperModel` (`make_tuner`).
        model_dir: the search directory; the best config goes to
            `<model_dir>/best_config.json`.
        kind: the tuner's kind (named in the summary).
        stream: where the summary is printed (default stdout).

    Returns:
        A dict: `best_hyperparameters` (values), `best_config` (`TrainConfig`),
        `best_score` (the best trial's `val_accuracy`), `best_test_accuracy`
        (its held-out test accuracy, None if not recorded), `trials` (one dict
        per finished trial: `trial_id`, `values`, `score` (= `val_accuracy`),
        `test_accuracy`, `model_dir`), `config_file` (the best config's JSON)
        and `tuner`.

    Raises:
        RuntimeError: no trial finished.

    Example:

    ```python
    tuner = make_tuner("random", hypermodel, directory="/tmp/tune", max_trials=4)
    tuner.search()
    best = finish_search(tuner, model_dir="/tmp/tune", kind="random")
    best["best_score"], best["best_test_accuracy"]
    ```
    """
    import sys  # noqa: PLC0415

    stream = stream or sys.stdout
    hypermodel = tuner.hypermodel
    config = hypermodel.config
    trials = []
    for trial in tuner.oracle.trials.values():
        if trial.score is None:
            continue
        trials.append(dict(trial_id=trial.trial_id, values=dict(trial.hyperparameters.values),
                           score=float(trial.score),
                           test_accuracy=_last_value(trial, HELD_OUT_METRIC),
                           model_dir=os.path.join(hypermodel.trials_dir, trial.trial_id)))
    if not trials:
        raise RuntimeError(f"No trial of the search in {model_dir!r} finished.")
    best_trial = tuner.oracle.get_best_trials(1)[0]
    best_hp = best_trial.hyperparameters
    best = hypermodel.trial_config(best_hp.copy(), trial_id=best_trial.trial_id)
    best_config = config.replace(
        ghost_batch_size=best.ghost_batch_size,
        lr_multiplier=best.lr_multiplier,
        regime_adaptation=best.regime_adaptation,
    )
    best_test = _last_value(best_trial, HELD_OUT_METRIC)
    path = os.path.join(model_dir, BEST_CONFIG_FILENAME)
    os.makedirs(model_dir, exist_ok=True)
    with open(path, "w") as f:
        f.write(best_config.to_json() + "\n")
    _print_summary(stream, trials, best_trial, best_config, path, kind, best_test)
    return dict(best_hyperparameters=dict(best_hp.values), best_config=best_config,
                best_score=float(best_trial.score), best_test_accuracy=best_test,
                trials=trials, config_file=path, tuner=tuner)


def _last_value(trial, name):
    """The trial's recorded `name` metric, or None."""
    if not trial.metrics.exists(name):
        return None
    value = trial.metrics.get_last_value(name)
    return None if value is None else float(value)


def _print_summary(stream, trials, best_trial, best_config, path, kind, best_test):
    def fmt(values):
        shown = {k: v for k, v in values.items() if not k.startswith("tuner/")}
        return ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                         for k, v in shown.items())

    print(f"Search summary ({kind}, {len(trials)} trials, objective {OBJECTIVE}: "
          "accuracy on the validation split):", file=stream)
    for t in sorted(trials, key=lambda t: -t["score"]):
        print(f"  trial {t['trial_id']}: {OBJECTIVE}={t['score']:.4f}  {fmt(t['values'])}",
              file=stream)
    ra = best_config.regime_adaptation
    print(
        f"Best: ghost_batch_size={best_config.ghost_batch_size}, "
        f"lr_multiplier={best_config.lr_multiplier:.4g}, regime_adaptation={ra}, "
        f"{OBJECTIVE}={best_trial.score:.4f} (trial {best_trial.trial_id}); "
        f"config: {path}",
        file=stream,
    )
    shown = "not recorded" if best_test is None else f"{best_test:.4f}"
    print(f"Held-out test accuracy of the chosen trial (not used for the choice): {shown}",
          file=stream, flush=True)
