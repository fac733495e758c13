"""The state of one run: what a checkpoint holds, built and restored by one function.

`build_state` creates, in the strategy's scope, the model, the optimizer and
every counter a checkpoint holds; checks that the run in `model_dir` (if any)
was started with these settings (`rundir.resume_changes`) before anything is
written; and restores the newest intact checkpoint (`Checkpointer.restore`).
"""

import dataclasses
import functools

import keras
import tensorflow as tf

from tfgap.training import build, checkpointing, rundir
from tfgap.training import strategy as strategy_lib
from tfgap.training.adascale import AdaScaleControl
from tfgap.training.batch_control import BatchControl
from tfgap.training.config import ConfigError
from tfgap.training.epoch_metrics import EpochMetrics
from tfgap.training.noise_statistics import CheckpointedNoiseStatistics


@dataclasses.dataclass
class RunState:
    """Everything a run trains and checkpoints.

    Attributes:
        model: the Keras model.
        optimizer: its optimizer (schedule included).
        step: the global step, on the host (the device's is `counters["step"]`).
        resumed_from_step: the restored checkpoint's step (0 for a fresh run).
        counters: checkpointed `tf.Variable`s: `step`, `epoch`, and
            `num_validation_examples` (the split the run was trained beside).
        initial_weights: `w_0`, for the weight distance `||w_t - w_0||`.
        metrics: the running sums of the epoch in progress (`EpochMetrics`).
        checkpointer: the run's `Checkpointer`.
        restored: what `Checkpointer.restore` found (`None`: a fresh run).
        changes: settings changed on resume, `{name: (old, new)}`.
        noise: the `CheckpointedNoiseStatistics` when `config.measures_noise`,
            else `None`.
        adascale: the `AdaScaleControl` with `adaptive="lr"` or `"batch"`, else
            `None` (its rate's `gain` and `progress` variables are checkpointed).
        batch: the `BatchControl` with `adaptive="batch"`, else `None` (its
            state is checkpointed as a JSON string).
        notes: lines to print about the restore (e.g. noise averages restarted).
    """

    model: keras.Model
    optimizer: keras.optimizers.Optimizer
    step: int
    resumed_from_step: int
    counters: dict
    initial_weights: list
    metrics: EpochMetrics
    checkpointer: checkpointing.Checkpointer
    restored: checkpointing.Restored | None
    changes: dict
    noise: CheckpointedNoiseStatistics | None = None
    adascale: AdaScaleControl | None = None
    batch: BatchControl | None = None
    notes: tuple = ()

    def save(self, plan):
        """Writes a checkpoint at `step` (every worker takes part)."""
        self.counters["epoch"].assign((self.batch or plan).epoch_of(self.step)[0])
        self.metrics.stash()
        if self.noise is not None:
            self.noise.stash()
        if self.batch is not None:
            self.batch.stash()
        self.checkpointer.save(self.step)


def build_state(config, strategy, plan, *, policy, num_validation, is_chief, task_id,
                batch_step_time=None):
    """The run's state, restored from `config.model_dir` when it holds a run of `config`.

    `batch_step_time`: see `BatchControl`'s `step_time` (`adaptive="batch"`).

    Raises:
        ConfigError: a run in `model_dir` started with other settings (without
            `resume_with_changes`), or beside another validation split.
        CheckpointError: checkpoint files there, none intact (without
            `start_over_if_damaged`).
    """
    if config.adaptive != "off" and strategy_lib.is_tpu(strategy):
        raise ConfigError(  # float64 variables (gain, progress) do not live on a TPU
            f"Expected a strategy other than TPUStrategy with adaptive={config.adaptive!r}. "
            f"Received: strategy={config.strategy!r}")
    noise_batches = (config.noise_statistics_batches(strategy.num_replicas_in_sync)
                     if config.measures_noise else None)
    with strategy.scope():
        model = build.build_model(config, policy)
        optimizer = build.build_optimizer(config, plan, policy)
        optimizer.build(model.trainable_variables)
        counters = {
            "step": tf.Variable(0, dtype=tf.int64, trainable=False, name="global_step"),
            "epoch": tf.Variable(0, dtype=tf.int64, trainable=False, name="epoch"),
            # -1: a checkpoint from before validation splits (nothing to compare).
            "num_validation_examples": tf.Variable(-1, dtype=tf.int64, trainable=False,
                                                   name="num_validation_examples"),
        }
        initial_weights = [tf.Variable(tf.convert_to_tensor(v), trainable=False, name="w0")
                           for v in model.trainable_variables]
        metrics = EpochMetrics()
        noise = (CheckpointedNoiseStatistics(*noise_batches, config.noise_statistics_decay)
                 if noise_batches else None)
    agree = None
    if strategy_lib.num_workers(strategy) > 1:  # every worker trains at the chief's batch
        agree = functools.partial(strategy_lib.broadcast_from_chief, strategy)
    batch = (BatchControl(config, plan, strategy.num_replicas_in_sync,
                          step_time=batch_step_time, agree=agree)
             if config.adaptive == "batch" else None)
    checkpoint_dir = rundir.path(config.model_dir, rundir.CHECKPOINTS)
    # Nothing is written to model_dir before the run there is known to fit this config.
    changes = rundir.resume_changes(config,
                                    step=checkpointing.has_checkpoint_files(checkpoint_dir))
    if "batch" in changes.get("adaptive", ()):
        old, new = changes["adaptive"]
        raise ConfigError(  # its epochs have other lengths: no other mode can place the step
            f"Expected adaptive={old!r} to resume the run in model_dir={config.model_dir} "
            "(a run with adaptive='batch' cannot change it, even with resume_with_changes). "
            f"Received: adaptive: {old!r} -> {new!r}. Nothing was written.")
    checkpointer = checkpointing.Checkpointer(
        checkpoint_dir, is_chief=is_chief, task_id=task_id, max_to_keep=config.keep_checkpoints,
        model=model, optimizer=optimizer, step=counters["step"], epoch=counters["epoch"],
        initial_weights=initial_weights, epoch_metrics=metrics,
        num_validation_examples=counters["num_validation_examples"],
        **({"noise_statistics": noise} if noise is not None else {}),
        **_adascale_objects(optimizer),
        **({"batch_control": batch.variable} if batch is not None else {}))
    restored = checkpointer.restore(start_over=config.start_over_if_damaged)
    if restored is not None and not config.resume_with_changes:
        _check_validation_split(restored, counters["num_validation_examples"], num_validation)
    counters["num_validation_examples"].assign(num_validation)
    step = int(counters["step"].numpy()) if restored else 0
    if batch is not None:  # the current batch first: the noise statistics are of its pair
        batch.unstash(step)
        noise.set_batches(*batch.noise_batches(batch.batch))
    notes = [noise.unstash() if restored and noise is not None else None]
    adascale = None
    if config.adaptive != "off":
        adascale = AdaScaleControl(
            build.adascale_rate(optimizer), noise.stats, base_batch=config.base_batch_size,
            batch=batch.batch if batch is not None else config.batch_size,
            base_steps=plan.base_steps, every_steps=config.steps_per_execution or 1, step=step)
        notes.append(adascale.note)
    return RunState(model=model, optimizer=optimizer, step=step, resumed_from_step=step,
                    counters=counters, initial_weights=initial_weights, metrics=metrics,
                    checkpointer=checkpointer, restored=restored, changes=changes, noise=noise,
                    adascale=adascale, batch=batch, notes=tuple(note for note in notes if note))


def _adascale_objects(optimizer):
    """The AdaScale rate's variables, for the checkpoint (the optimizer does not track them)."""
    rate = build.adascale_rate(optimizer)
    return {} if rate is None else {"adascale_gain": rate.gain,
                                    "adascale_progress": rate.progress}


def _check_validation_split(restored, variable, num_validation):
    saved = int(variable.numpy())
    if saved >= 0 and saved != num_validation:
        raise ConfigError(
            f"The checkpoint {restored.path} was trained beside a validation split of {saved} "
            f"examples, so its training split differs from this run's. Expected "
            f"validation_examples={saved} to resume it (or a new model_dir). Received: "
            f"validation_examples={num_validation}. Nothing was overwritten."
        )
