"""`GhostBatchHyperModel`: Keras Tuner searches the ghost batch size with the learning rate.

Hoffer et al. 2017 normalize ghost batches of the small-batch size (128) and
scale the learning rate by `sqrt(B_L / B_S)`; neither is known to be optimal
for a new network, batch size or number of replicas, and the two interact
(smaller ghost batches add noise, like a larger learning rate). The
hypermodel puts the model choice in `build(hp)` and the training choices in
`fit(hp, model, ...)`, as Keras Tuner intends:

    build(hp):  ghost_batch_size  in  {0 (plain BN)} + {d : d | b, floor <= d < b}
    fit(hp):    lr_multiplier     in  [lo, hi] (log-uniform)
                regime_adaptation in  {1, 2, 4, ..., B / B_base}  (optional)

where `b` is the per-replica batch (ghost batches never straddle replicas).
Each trial trains with `tfgap.training.train`: the recipe's strategy, data
pipeline, schedule, checkpoints (a trial interrupted mid-way resumes) and
`result.json`, one `model_dir` per trial.

The objective is `val_accuracy`, the accuracy on the validation split (carved
from the training split, `TrainConfig.validation_examples`) at the end of the
run, maximized. Each trial also records `test_accuracy`, the held-out test
split's, as a metric that plays no part in the choice: selecting on the test
split would make the reported test accuracy of the chosen setting optimistic.
"""

import math
import os
import shutil

import keras_tuner

from tfgap import _validation as checks
from tfgap import training

OBJECTIVE = "val_accuracy"
HELD_OUT_METRIC = "test_accuracy"


def ghost_batch_candidates(per_replica_batch, min_ghost_batch_size=16, include_plain_bn=True):
    """The ghost batch sizes worth trying for a per-replica batch.

    The divisors `d` of `per_replica_batch` with `min_ghost_batch_size <= d <
    per_replica_batch` (a ghost batch equal to the replica batch is plain
    batch normalization, listed as 0), ascending, after 0 when
    `include_plain_bn`. Below about 16 examples the batch statistics are too
    noisy to train well (Wu & He 2018 see Batch Normalization degrade below
    ~16 per group), hence the default floor.

    Args:
        per_replica_batch: int >= 1, the batch each replica normalizes.
        min_ghost_batch_size: int >= 1, the smallest ghost batch to try.
        include_plain_bn: also try plain batch normalization (0).

    Returns:
        A list of ints.

    Raises:
        ValueError: bad arguments, or no candidate at all.

    Example:

    >>> ghost_batch_candidates(256)
    [0, 16, 32, 64, 128]
    >>> ghost_batch_candidates(48, min_ghost_batch_size=8, include_plain_bn=False)
    [8, 12, 16, 24]
    """
    per_replica_batch = checks.integer("per_replica_batch", per_replica_batch, minimum=1)
    min_ghost_batch_size = checks.integer("min_ghost_batch_size", min_ghost_batch_size, minimum=1)
    ghosts = [d for d in range(min_ghost_batch_size, per_replica_batch)
              if per_replica_batch % d == 0]
    out = ([0] if include_plain_bn else []) + ghosts
    if not out:
        raise ValueError(
            f"Expected a divisor of the per-replica batch {per_replica_batch} that is >= "
            f"min_ghost_batch_size={min_ghost_batch_size} and smaller than the batch (or "
            "include_plain_bn=True). Received none: lower min_ghost_batch_size or raise "
            "the batch size."
        )
    return out


def regime_adaptation_candidates(batch_size, base_batch_size):
    """Stretch factors to try: powers of two from 1 up to `batch_size / base_batch_size`.

    Example:

    >>> regime_adaptation_candidates(4096, 128)
    [1.0, 2.0, 4.0, 8.0, 16.0, 32.0]
    >>> regime_adaptation_candidates(3000, 1000)
    [1.0, 2.0, 3.0]
    """
    k = batch_size / base_batch_size
    if k <= 1:
        return [1.0]
    out = [float(2**i) for i in range(int(math.floor(math.log2(k))) + 1)]
    if out[-1] != k:
        out.append(float(k))
    return out


class GhostBatchHyperModel(keras_tuner.HyperModel):
    """Searches `ghost_batch_size` (in `build`) and the learning rate (in `fit`).

    Every trial is a full `tfgap.training.train` run of `config` with the
    trial's values, in `<trials_dir>/<trial_id>` (so an interrupted trial
    resumes from its checkpoint). `fit` hands the tuner's callbacks to the
    trainer and copies the trained (final) weights into the model `build`
    made, so the tuner's model *is* the trained one. Keras Tuner's own
    checkpoint (`tuner.load_model(trial)`) follows its best-epoch rule on the
    `val_accuracy` the trainer logs on evaluated epochs, so it may hold an
    earlier epoch than the end; the run's final weights, the ones the
    objective scores, are its last checkpoint (`tfgap.training.restore_model`
    of `<trials_dir>/<trial_id>`, as `finish_search` exports them). It
    returns the final metrics: `val_accuracy` (the objective, to maximize) and
    `val_loss` on the validation split, `test_accuracy` and `test_loss` on the
    test split (recorded, never selected on), and the training `loss`,
    `accuracy` and `global_step`.

    The config must keep a validation split (`validation_examples` None or
    > 0): without one the tuner could only select on the test split.

    With Hyperband, `fit(epochs=...)` sets the run length in epochs of the
    small-batch regime (the schedule is the recipe's, cut short); a trial
    continuing an earlier one ("tuner/trial_id") starts from a copy of that
    trial's checkpoints and trains on to the new length.

    Args:
        config: the base `tfgap.training.TrainConfig` (the recipe's settings).
        strategy: the `tf.distribute.Strategy` every trial trains under; give
            the same one to the tuner (`distribution_strategy=`). `None` uses
            the default (one device).
        trials_dir: where each trial's run directory goes.
        min_ghost_batch_size: smallest ghost batch to try (default 16).
        include_plain_bn: also try plain batch normalization (0).
        lr_multiplier_range: `(low, high)` of the learning-rate multiplier,
            searched log-uniformly; `low == high` fixes it. It multiplies the
            config's own `lr_multiplier`.
        tune_regime_adaptation: also search the regime-adaptation factor
            (`regime_adaptation_candidates`); otherwise the config's is used.
        verbose: the trainer's verbosity in trials.

    Example:

    ```python
    import keras_tuner
    from tfgap.training import TrainConfig
    from tfgap.tuning import GhostBatchHyperModel
    config = TrainConfig(dataset="mnist", model="mlp", model_dir="/tmp/unused",
                         epochs=1, batch_size=32, mock_data=True, mock_examples=64,
                         model_options={"mlp_width": 32})
    hypermodel = GhostBatchHyperModel(config, trials_dir="/tmp/tune/trials",
                                      min_ghost_batch_size=8)
    tuner = keras_tuner.RandomSearch(
        hypermodel, objective=keras_tuner.Objective("val_accuracy", "max"),
        max_trials=2, directory="/tmp/tune", project_name="search")
    tuner.search()
    ```
    """

    def __init__(self, config, *, strategy=None, trials_dir, min_ghost_batch_size=16,
                 include_plain_bn=True, lr_multiplier_range=(0.25, 4.0),
                 tune_regime_adaptation=False, verbose=2, name=None, tunable=True):
        super().__init__(name=name, tunable=tunable)
        low, high = (float(v) for v in lr_multiplier_range)
        if not 0 < low <= high:
            raise ValueError(
                "Expected `lr_multiplier_range` = (low, high) with 0 < low <= high. "
                f"Received: lr_multiplier_range={tuple(lr_multiplier_range)!r}"
            )
        if config.validation_examples == 0:
            raise ValueError(
                f"Expected a config with a validation split: the tuner selects on "
                f"`{OBJECTIVE}` and never on the test split. Received: "
                "validation_examples=0; leave it at None (the dataset's default) or set "
                "it > 0."
            )
        self.config = config
        self.strategy = strategy
        self.trials_dir = str(trials_dir)
        self.lr_multiplier_range = (low, high)
        self.tune_regime_adaptation = bool(tune_regime_adaptation)
        self.verbose = int(verbose)
        num_replicas = strategy.num_replicas_in_sync if strategy is not None else 1
        self.per_replica_batch = config.per_replica_batch_size(num_replicas)
        self.ghost_choices = ghost_batch_candidates(
            self.per_replica_batch, int(min_ghost_batch_size), bool(include_plain_bn))

    def build(self, hp):
        """The recipe's network with the trial's `ghost_batch_size` (0 = plain BN)."""
        ghost = hp.Choice("ghost_batch_size", self.ghost_choices, ordered=True)
        return training.build_model(self.config.replace(ghost_batch_size=ghost))

    def trial_config(self, hp, *, trial_id, epochs=None):
        """The `TrainConfig` of one trial (validated)."""
        low, high = self.lr_multiplier_range
        if low == high:
            multiplier = hp.Fixed("lr_multiplier", low)
        else:
            multiplier = hp.Float("lr_multiplier", low, high, sampling="log",
                                  default=min(max(1.0, low), high))
        changes = dict(
            ghost_batch_size=int(hp.get("ghost_batch_size")),
            lr_multiplier=self.config.lr_multiplier * float(multiplier),
            model_dir=os.path.join(self.trials_dir, str(trial_id)),
            export_dir=None,
            verbose=self.verbose,
        )
        if self.tune_regime_adaptation:
            choices = regime_adaptation_candidates(self.config.batch_size,
                                                   self.config.base_batch_size)
            changes["regime_adaptation"] = float(
                hp.Choice("regime_adaptation", choices, ordered=True))
        if epochs is not None:
            changes["epochs"] = float(epochs)
        return self.config.replace(**changes)

    def fit(self, hp, model, *args, trial_id=None, callbacks=None, epochs=None, **kwargs):
        """Trains one trial with `tfgap.training.train`; returns its final metrics.

        Args:
            hp: the trial's `HyperParameters`.
            model: the model `build(hp)` made; it receives the trained weights.
            trial_id: the trial's id (passed by tfgap's tuners; names the
                trial's run directory).
            callbacks: Keras callbacks (the tuner's), handed to the trainer.
            epochs: run length in epochs of the small-batch regime (Hyperband).
            *args, **kwargs: ignored (the data comes from the config).
        """
        if trial_id is None:
            raise ValueError(
                "Expected `trial_id` (use a tuner from `tfgap.tuning.make_tuner`, which "
                "passes it). Received: trial_id=None"
            )
        config = self.trial_config(hp, trial_id=trial_id, epochs=epochs)
        previous = hp.values.get("tuner/trial_id")
        if previous and not os.path.exists(config.model_dir):
            source = os.path.join(self.trials_dir, str(previous))
            if os.path.isdir(source):  # Hyperband: continue the earlier trial's run
                shutil.copytree(source, config.model_dir)
        result = training.train(config, strategy=self.strategy, callbacks=list(callbacks or []))
        model.set_weights(result.model.get_weights())
        validation = result.get("validation") or {}
        if validation.get("accuracy") is None:
            raise keras_tuner.errors.FatalValueError(
                f"Expected trial {trial_id} to report a validation accuracy (the objective "
                f"`{OBJECTIVE}`). Received: result['validation']={validation!r} from "
                f"{config.model_dir}; the tuner does not select on the test split."
            )
        metrics = {
            OBJECTIVE: validation["accuracy"],
            "val_loss": validation.get("loss"),
            HELD_OUT_METRIC: result["test"]["accuracy"],
            "test_loss": result["test"]["loss"],
            "loss": result["train"]["loss"],
            "accuracy": result["train"]["accuracy"],
            "global_step": float(result["global_step"]),
        }
        return {k: float(v) for k, v in metrics.items() if v is not None}
