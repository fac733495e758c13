"""The search: a Keras Tuner over `GhostBatchHyperModel`, resumable, with a summary.

`run_search` builds (or reloads, `overwrite=False`) a Hyperband, Bayesian
optimization or random-search tuner in `<model_dir>/search`, trains each
trial through `tfgap.training.train` in `<model_dir>/trials/<trial_id>`, and
writes the best setting as a `TrainConfig` (`<model_dir>/best_config.json`:
`train(TrainConfig.from_dict(json.load(f)))` runs it; the tune command also
writes it as a recipe flagfile) and, given an `export_dir`, the best trial's
trained network as a SavedModel. Re-running the same
search continues where it stopped: finished trials are not trained again, an
interrupted trial resumes from its last checkpoint.

Trials are named as Keras Tuner's progress lines name them: "Trial #1" is
the first trial started ("Search: Running Trial #1", "Trial 1 Complete").
Keras Tuner's `trial_id` counts from 0 (and is zero-padded): it names the
trial's directories and is what `tuner.results_summary()` prints, so the
summary gives both, `Trial #1 (trial_id 0)`.

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
from tfgap import training
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
               tune_regime_adaptation=False, hyperband_factor=3, verbose=2, stream=None,
               export_dir=None):
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
        export_dir: where the best trial's network is exported as a SavedModel
            (`finish_search`), or `None` (the default) for no export. It is
            checked before the first trial (`tfgap.training.check_export_path`,
            with `model_dir` protected).

    Returns:
        See `finish_search`.

    Raises:
        ExportPathError: `export_dir` is not safe to write; nothing was trained.
    """
    if export_dir is not None:
        training.check_export_path(export_dir, protected=(model_dir,))
    hypermodel = GhostBatchHyperModel(
        config, strategy=strategy, trials_dir=os.path.join(model_dir, TRIALS_SUBDIR),
        min_ghost_batch_size=min_ghost_batch_size, include_plain_bn=include_plain_bn,
        lr_multiplier_range=lr_multiplier_range, tune_regime_adaptation=tune_regime_adaptation,
        verbose=verbose,
    )
    tuner = make_tuner(kind, hypermodel, directory=model_dir, max_trials=max_trials,
                       strategy=strategy, seed=config.seed, hyperband_factor=hyperband_factor)
    tuner.search()
    return finish_search(tuner, model_dir=model_dir, kind=kind, stream=stream,
                         export_dir=export_dir)


def finish_search(tuner, *, model_dir, kind, stream=None, export_dir=None):
    """Picks the best trial on validation, writes its config, prints the summary.

    The best trial is the one with the highest `val_accuracy` (Keras Tuner's
    oracle ranks the trials by the objective). Its `test_accuracy` is looked
    up only after the choice, and printed once as the held-out number.

    With `export_dir`, the best trial's trained network is exported as the
    trainer exports a run (`tfgap.training.export_saved_model`, raw-input
    `serving_default`): the last checkpoint of the trial's run (the weights
    its `val_accuracy` was measured on, `tfgap.training.restore_model`) read
    into a fresh network of the trial's own config (its `result.json`), which
    is written beside it as `tfgap_config.json`.

    Args:
        tuner: a searched tuner over a `GhostBatchHyperModel` (`make_tuner`).
        model_dir: the search directory; the best config goes to
            `<model_dir>/best_config.json`. An export may not be in it.
        kind: the tuner's kind (named in the summary).
        stream: where the summary is printed (default stdout).
        export_dir: where the best trial's network goes as a SavedModel: a
            new path, an empty directory or an earlier tfgap export (replaced
            atomically). `None` (the default): no export.

    Returns:
        A dict: `best_hyperparameters` (values), `best_config` (`TrainConfig`),
        `best_score` (the best trial's `val_accuracy`), `best_test_accuracy`
        (its held-out test accuracy, None if not recorded), `best_trial` (its
        entry of `trials`), `trials` (one dict per finished trial: `number`
        (Keras Tuner's "Trial #number", from 1), `trial_id`, `values`, `score`
        (= `val_accuracy`), `test_accuracy`, `model_dir`), `config_file` (the
        best config's JSON), `export_dir` (the absolute SavedModel path, or
        None) and `tuner`.

    Raises:
        RuntimeError: no trial finished, or the best trial's run holds no
            checkpoint to export.
        ExportPathError: `export_dir` is not safe to write (see
            `tfgap.training.check_export_path`); nothing was exported.

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
        trials.append(dict(number=trial_number(tuner.oracle, trial.trial_id),
                           trial_id=trial.trial_id, values=dict(trial.hyperparameters.values),
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
    best_entry = next(t for t in trials if t["trial_id"] == best_trial.trial_id)
    _print_summary(stream, trials, best_entry, best_config, path, kind, best_test)
    if export_dir is not None:
        export_dir = _export_trial(tuner, best_trial, export_dir, protected=(model_dir,))
    return dict(best_hyperparameters=dict(best_hp.values), best_config=best_config,
                best_score=float(best_trial.score), best_test_accuracy=best_test,
                best_trial=best_entry, trials=trials, config_file=path,
                export_dir=export_dir, tuner=tuner)


def trial_number(oracle, trial_id):
    """The number Keras Tuner's progress lines give a trial: "Trial #1" is the first started.

    Keras Tuner prints "Search: Running Trial #N" and "Trial N Complete"
    with N counting the trials in the order they started, from 1, while its
    `trial_id` (the trial's directory name, and what `results_summary`
    prints) counts from 0, zero-padded. This is the trial's place in
    `oracle.start_order`, plus one.

    Args:
        oracle: the tuner's `keras_tuner.Oracle`.
        trial_id: a trial's id (a string).

    Returns:
        An int >= 1.

    Raises:
        ValueError: `trial_id` is not a trial the oracle started.

    Example:

    >>> class Oracle:  # the oracle of a search that started trials "00", "01", "02"
    ...     start_order = ["00", "01", "02"]
    >>> trial_number(Oracle(), "00"), trial_number(Oracle(), "02")
    (1, 3)
    """
    order = list(oracle.start_order)
    if trial_id not in order:
        raise ValueError(f"Expected the id of a trial the search started, one of {order}. "
                         f"Received: trial_id={trial_id!r}")
    return order.index(trial_id) + 1


def _export_trial(tuner, trial, export_dir, *, protected):
    """Exports `trial`'s trained network (its checkpoint) as a SavedModel; returns the path."""
    run_dir = os.path.join(tuner.hypermodel.trials_dir, trial.trial_id)
    # The config the trial ran (with Hyperband, its own epochs); the export records it.
    config = training.TrainConfig.from_dict(training.read_result(run_dir)["config"])
    model = training.build_model(config)  # outside any strategy scope, as the trainer exports
    # The run's last checkpoint: the weights the objective scored. (Keras Tuner's own
    # checkpoint, `tuner.load_model`, keeps the epoch with the best val_accuracy instead.)
    if training.restore_model(run_dir, model) is None:
        raise RuntimeError(f"Expected a checkpoint of trial {trial.trial_id} to export in "
                           f"{run_dir}/checkpoints. Received none.")
    export_dir = os.path.abspath(export_dir)
    return training.export_saved_model(
        model, export_dir, dataset=config.dataset,
        config=config.replace(export_dir=export_dir).to_dict(), protected=protected)


def _last_value(trial, name):
    """The trial's recorded `name` metric, or None."""
    if not trial.metrics.exists(name):
        return None
    value = trial.metrics.get_last_value(name)
    return None if value is None else float(value)


def _print_summary(stream, trials, best, best_config, path, kind, best_test):
    def fmt(values):
        shown = {k: v for k, v in values.items() if not k.startswith("tuner/")}
        return ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                         for k, v in shown.items())

    def name(t):
        return f"Trial #{t['number']} (trial_id {t['trial_id']})"

    print(f"Search summary ({kind}, {len(trials)} trials, objective {OBJECTIVE}: "
          "accuracy on the validation split; Trial #N as Keras Tuner numbers them from 1, "
          f"each run in {os.path.dirname(best['model_dir'])}/<trial_id>):", file=stream)
    for t in sorted(trials, key=lambda t: (-t["score"], t["number"])):
        print(f"  {name(t)}: {OBJECTIVE}={t['score']:.4f}  {fmt(t['values'])}", file=stream)
    ra = best_config.regime_adaptation
    print(
        f"Best: {name(best)}: ghost_batch_size={best_config.ghost_batch_size}, "
        f"lr_multiplier={best_config.lr_multiplier:.4g}, regime_adaptation={ra}, "
        f"{OBJECTIVE}={best['score']:.4f}; run: {best['model_dir']}; config: {path}",
        file=stream,
    )
    shown = "not recorded" if best_test is None else f"{best_test:.4f}"
    print(f"Held-out test accuracy of the chosen trial (not used for the choice): {shown}",
          file=stream, flush=True)
