"""`train(config)`: the one trainer behind every recipe, the tuner and the study.

A custom distributed loop (`strategy.run`) over a Keras model, the Keras SGD
optimizer (momentum 0.9, no Nesterov) or `tfgap.optimizers.LARS`, optionally
with Sharpness-Aware Minimization steps, driven by `LargeBatchSchedule`, under
any `tf.distribute` strategy, one process or several. Keras' `model.fit` is
not used: it fails under `MultiWorkerMirroredStrategy` in Keras 3
(keras-team/keras#20585), its `BackupAndRestore` replays a whole epoch, and
its file-writing callbacks collide when workers share a directory.

Three splits: the model trains on `train`, and `validation` (carved from the
training split, disjoint from it; `config.validation_examples`) and `test` are
evaluated every `eval_every_epochs`. Choose on validation, report test.

What a run leaves in `config.model_dir`:

- `checkpoints/`: step-numbered `tf.train.CheckpointManager` checkpoints
  (model, optimizer, step, epoch, initial weights, the epoch's running sums);
  re-running with the same `model_dir` resumes mid-epoch at the exact batch.
- `logs/`: TensorBoard scalars (`train`, `validation`, `test`).
- `config.json`: the resolved config; `history.json`: the per-epoch history.
- `result.json`: the final record (see `train`).

and in `config.export_dir` the SavedModel with a raw-input `serving_default`.
"""

import contextlib
import dataclasses
import math
import os
import signal
import sys
import time

import keras
import tensorflow as tf

from tfgap import data, diagnostics, models, optimizers, schedules
from tfgap.diagnostics.weight_distance import weight_distance
from tfgap.training import checkpointing, export, loop, rundir, steps
from tfgap.training import strategy as strategy_lib
from tfgap.training import summaries as summaries_lib
from tfgap.training.config import ConfigError
from tfgap.training.epoch_metrics import EpochMetrics

EVAL_SPLITS = ("validation", "test")


class NonFiniteLossError(RuntimeError):
    """The training loss became NaN or infinite; the run stopped.

    The checkpoints written before stay (the last good state); nothing is
    saved after the bad step.

    Attributes:
        step: the global step at which the loss was not finite.
        checkpoint: the last good checkpoint, or `None`.
    """

    def __init__(self, message, step=None, checkpoint=None):
        super().__init__(message)
        self.step = step
        self.checkpoint = checkpoint


def train(config, *, strategy=None, callbacks=(), stream=None):
    """Trains `config.model` on `config.dataset` and returns the run's record.

    Re-running with the same `config.model_dir` resumes from the newest
    checkpoint: mid-epoch, at the exact batch, with the epoch's running
    metrics, and ends with the same number of optimizer steps and the same
    `history.json` as an uninterrupted run (with `config.deterministic`, the
    same weights and numbers; only the wall times differ).

    Checkpoints: at least every `config.checkpoint_every_seconds` of wall
    time (mid-epoch included; at epoch ends no more often than that; `0` =
    at every epoch end), every `config.checkpoint_every_steps` steps, at the
    end, and on SIGTERM (then `Preempted` is raised after the checkpoint and
    `history.json` are written). A kill loses at most the work since the last
    checkpoint.

    The number of steps is `round(epochs * stretch * steps_per_epoch)` (see
    `tfgap.training.plan_steps`); the learning rate follows
    `LargeBatchSchedule(lr_boundaries, lr_values * lr_multiplier,
    base_batch_size, batch_size, steps_per_epoch, lr_scaling,
    regime_adaptation, warmup_epochs)` at the optimizer's own iteration count.

    Several runs can share one Python process (the tuner and the study do
    this): each run clears the Keras session, reseeds, restores the global
    dtype policy and the SIGTERM handler it found. A multi-worker or TPU
    strategy can only be created once per process: pass it as `strategy`.

    Args:
        config: a `TrainConfig`.
        strategy: a `tf.distribute.Strategy` to use instead of building
            `config.strategy` (then `config.logical_cpus` is ignored).
        callbacks: Keras callbacks; they get `set_model`, `on_train_begin`,
            `on_epoch_begin`, `on_train_batch_end` (logs: `step`, `loss`,
            `accuracy`, `learning_rate`), `on_epoch_end` (the epoch's logs,
            with `validation_loss`, `validation_accuracy`, `test_loss` and
            `test_accuracy` on evaluated epochs) and `on_train_end`. Setting
            `model.stop_training = True` ends the run after the current call
            of `config.steps_per_execution` steps (like `EarlyStopping`; set
            `steps_per_execution=1` to stop at the step).
        stream: where progress is printed (default `sys.stdout`).

    Returns:
        The dict written to `<model_dir>/result.json` (on the chief):
        `status`, `global_step`, `total_steps`, `epochs_completed`,
        `resumed_from_step`, `train`, `validation` and `test` metrics of the
        last epoch (`loss`, `accuracy`; validation's are `None` without a
        validation split), `num_train_examples`, `num_validation_examples`,
        `num_test_examples`, `throughput` (training examples per second),
        `wall_time`, `weight_distance`, `history` (one entry per epoch),
        `distance_record` (`[step, ||w_t - w_0||]` at log-spaced steps),
        `num_replicas`, `strategy`, `steps_per_epoch`, `stretch`,
        `checkpoint`, `export_dir` and the resolved `config`.

    Raises:
        ConfigError: settings that do not fit the strategy or the data, or a
            checkpoint in `model_dir` written beside another validation split.
        tfgap.data.DatasetNotPreparedError: the data is not on disk.
        NonFiniteLossError: the loss became NaN or infinite.
        tfgap.training.Preempted: SIGTERM; a checkpoint was saved.

    Example:

    ```python
    from tfgap.training import TrainConfig, train
    config = TrainConfig(dataset="mnist", model="f1", model_dir="/tmp/mnist_f1",
                         epochs=2, batch_size=32, mock_data=True, mock_examples=64,
                         model_options={"width": 32}, export_dir="/tmp/mnist_f1_export")
    result = train(config)
    result["global_step"], result["validation"]["accuracy"], result["test"]["accuracy"]
    ```
    """
    start_time = time.time()
    if strategy is None:
        strategy_lib.split_logical_cpus(config.logical_cpus)
        strategy = strategy_lib.make_strategy(config.strategy, tpu=config.tpu)
    is_chief = strategy_lib.task_info(strategy)[2]
    rundir.check_usable(config.model_dir)
    if config.export_dir and is_chief:
        export.check_export_path(config.export_dir, protected=(config.model_dir,))
    keras.backend.clear_session()
    keras.utils.set_random_seed(config.seed)
    if config.deterministic:
        tf.config.experimental.enable_op_determinism()
    # One writer per run directory (the chief; the other workers write nothing there).
    with rundir.RunLock(config.model_dir) if is_chief else contextlib.nullcontext():
        run = _Run(config, strategy, start_time=start_time, callbacks=callbacks, stream=stream)
        try:
            run.train_epochs()
            return run.finish()
        finally:
            run.close()


@dataclasses.dataclass(frozen=True)
class _Splits:
    """The sizes of the three splits, as trained and evaluated."""

    num_train: int
    num_validation: int
    num_test: int


def _data_kwargs(config):
    return dict(data_dir=config.data_dir, download=config.download,
                mock_data=config.mock_data, mock_examples=config.mock_examples,
                synthetic=config.synthetic, validation_examples=config.validation_examples)


def _count_splits(config):
    """The split sizes; fails within seconds when the data is missing or the split is bad."""
    kwargs = _data_kwargs(config)
    try:
        data.build_dataset(config.dataset, "test", batch_size=1, training=False, **kwargs)
        # Real data is counted as prepared on disk (a partial build counts as it is).
        count_kwargs = dict(
            mock_data=config.mock_data, mock_examples=config.mock_examples,
            data_dir=config.data_dir if not (config.mock_data or config.synthetic) else None,
            validation_examples=config.validation_examples, synthetic=config.synthetic)
        sizes = {split: data.num_examples(config.dataset, split, **count_kwargs)
                 for split in ("train", "validation", "test")}
    except ValueError as e:  # a validation size the training split cannot give
        raise ConfigError(str(e)) from e
    if config.synthetic:
        # Synthetic data measures training throughput: an epoch keeps the real
        # dataset's length, but evaluating whole fake splits (50,000 ImageNet
        # images) would only cost time, so `mock_examples` are evaluated.
        for split in EVAL_SPLITS:
            sizes[split] = min(sizes[split], config.mock_examples)
    splits = _Splits(sizes["train"], sizes["validation"], sizes["test"])
    total = splits.num_train + splits.num_validation
    if config.batch_size > total:
        raise ConfigError(
            f"Expected `batch_size` at most the {total} training examples of "
            f"{config.dataset!r} (one global batch per step). Received: "
            f"batch_size={config.batch_size}")
    if splits.num_train < config.batch_size:
        raise ConfigError(
            f"Expected validation_examples to leave at least one global batch "
            f"(batch_size={config.batch_size}) of the {total} training examples of "
            f"{config.dataset!r}; at most {total - config.batch_size} can be held out. "
            f"Received: validation_examples={splits.num_validation}"
        )
    return splits


def _policy_name(config):
    if not config.mixed_precision:
        return "float32"
    return "mixed_float16" if tf.config.list_logical_devices("GPU") else "mixed_bfloat16"


def build_model(config, policy="float32"):
    """The network `config` trains: `tfgap.models.build_model` with its settings.

    The model for `config.dataset` (classes, input shape) with `config`'s
    normalization (`ghost_batch_size`, `moving_update`, `bn_momentum`),
    `weight_decay`, `seed` and `model_options`, built under the dtype policy
    `policy` (the global policy is restored afterwards).

    Raises:
        ConfigError: options the network does not take.
    """
    spec = data.get_spec(config.dataset)
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(policy)
    try:
        return models.build_model(
            config.model,
            num_classes=spec.num_classes,
            input_shape=spec.input_shape,
            ghost_batch_size=config.ghost_batch_size,
            moving_update=config.moving_update,
            weight_decay=model_weight_decay(config),
            bn_momentum=config.bn_momentum,
            seed=config.seed,
            **config.model_options,
        )
    except ValueError as e:
        raise ConfigError(str(e)) from e
    finally:
        keras.config.set_dtype_policy(previous)


def model_weight_decay(config):
    """The L2 coefficient the network's own losses carry: none when LARS applies it.

    With `optimizer="lars"` the weight decay is LARS's (You et al. 2017): it
    enters the trust ratio (`lars_trust_denominator`), so the model's kernels
    carry no L2 loss. Either way every kernel, and nothing else, is decayed.
    """
    return 0.0 if config.optimizer == "lars" else config.weight_decay


def _schedule(config, plan):
    """`config`'s learning-rate regime as a `LargeBatchSchedule` over `plan`'s steps.

    Raises:
        ConfigError: a regime that only the step plan shows to be impossible
            (a warm-up longer than the first breakpoint or than the decay).
    """
    try:
        return schedules.LargeBatchSchedule(
            boundaries=list(config.lr_boundaries),
            values=[v * config.lr_multiplier for v in config.lr_values],
            base_batch_size=config.base_batch_size,
            batch_size=config.batch_size,
            steps_per_epoch=plan.steps_per_epoch,
            scaling=config.lr_scaling,
            regime_adaptation=config.regime_adaptation,
            warmup_epochs=config.warmup_epochs,
            decay=config.lr_decay,
            decay_epochs=config.decay_epochs,
            decay_power=config.lr_decay_power,
            end_value=config.lr_end * config.lr_multiplier,
            warmup_start=config.warmup_start,
        )
    except ValueError as e:
        raise ConfigError(str(e)) from e


def _build_optimizer(config, plan, policy):
    schedule = _schedule(config, plan)
    if config.optimizer == "lars":
        # LARS decays every kernel itself (rank <= 1 weights are excluded, as the
        # model's L2 excludes them); see `model_weight_decay`.
        optimizer = optimizers.LARS(learning_rate=schedule, momentum=config.momentum,
                                    eta=config.lars_eta, weight_decay=config.weight_decay,
                                    trust_denominator=config.lars_trust_denominator)
    else:
        optimizer = keras.optimizers.SGD(learning_rate=schedule, momentum=config.momentum,
                                         nesterov=False)
    if policy == "mixed_float16":
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
    return optimizer


def current_learning_rate(optimizer):
    """The rate `optimizer` applies next: its schedule at its own iteration count.

    Under a `LossScaleOptimizer` the count is the inner optimizer's, which
    does not advance on a skipped (non-finite) step.
    """
    return float(keras.ops.convert_to_numpy(optimizer.learning_rate))


def _epoch_seed(seed, epoch):
    return (int(seed) * 1_000_003 + int(epoch)) % (2**31 - 1)


class _TrainInput:
    """Distributed training iterators, one per window of consecutive epochs.

    Epoch `e` reads the first `plan.steps_in_epoch(e)` steps of a pipeline
    seeded by `(seed, e)` (after the steps already taken, on resume). A window
    of `W` epochs concatenates those pipelines into one distributed dataset,
    so one iterator (and its prefetching) serves `W` epochs: the batches are
    exactly those of one pipeline per epoch, without building an iterator per
    epoch. `W` covers about `window_steps` steps (1 epoch for long epochs).
    """

    def __init__(self, config, strategy, plan, per_replica_batch,
                 window_steps=256, max_window_epochs=32):
        self.config, self.strategy, self.plan = config, strategy, plan
        self.per_replica_batch = per_replica_batch
        self.window_epochs = max(1, min(max_window_epochs,
                                        math.ceil(window_steps / plan.steps_per_epoch)))
        self._iterator = None
        self._next_epoch = self._window_end = None

    def iterator(self, epoch, skip_steps):
        """The iterator positioned at step `skip_steps` of epoch `epoch`."""
        if (self._iterator is None or skip_steps or epoch != self._next_epoch
                or epoch >= self._window_end):
            end = min(self.plan.num_epochs, epoch + self.window_epochs)
            dist_ds = self._dataset(epoch, end, skip_steps)
            self._iterator = iter(dist_ds)
            self._window_end = end
        self._next_epoch = epoch + 1
        return self._iterator

    def _dataset(self, start, end, skip_steps):
        config, plan = self.config, self.plan

        def dataset_fn(context):
            replicas_here = context.num_replicas_in_sync // context.num_input_pipelines
            ds = None
            for epoch in range(start, end):
                part = data.build_dataset(
                    config.dataset, "train", batch_size=self.per_replica_batch, training=True,
                    seed=_epoch_seed(config.seed, epoch), input_context=context,
                    drop_remainder=True, repeat=True, **_data_kwargs(config),
                )
                skip = skip_steps if epoch == start else 0
                if skip:
                    part = part.skip(skip * replicas_here)
                part = part.take((plan.steps_in_epoch(epoch) - skip) * replicas_here)
                ds = part if ds is None else ds.concatenate(part)
            if end - start > 1:
                ds = ds.prefetch(2)  # starts the next epoch's pipeline ahead of time
            return ds

        return self.strategy.distribute_datasets_from_function(dataset_fn)


def _eval_dataset(config, strategy, split, num_examples, static_shapes):
    ds = data.build_dataset(
        config.dataset, split, batch_size=config.global_eval_batch_size, training=False,
        seed=config.seed, drop_remainder=static_shapes, **_data_kwargs(config),
    )
    if config.synthetic:
        # The synthetic splits have the real ones' length; evaluate only
        # `num_examples` (`mock_examples`) of them: a throughput run is not scored.
        ds = ds.take(max(1, -(-num_examples // config.global_eval_batch_size)))
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return strategy.experimental_distribute_dataset(ds.with_options(options))


def _make_agree(strategy):
    """A `tf.function(flags) -> bool tensor`: for each flag, whether any worker set it."""

    @tf.function
    def agree(flags):
        value = strategy.run(lambda: tf.identity(flags))
        return strategy.reduce(tf.distribute.ReduceOp.SUM, value, axis=None) > 0

    return agree


# Automatic steps per execution: aim for calls of about this many seconds.
_TARGET_CALL_SECONDS = 0.2
_MAX_STEPS_PER_EXECUTION = 1000


class _Run:
    """One training run: set-up (`__init__`), the loop (`train_epochs`), the end (`finish`).

    All of the run's state lives here: the built objects (model, optimizer,
    counters, checkpointer, step and evaluation functions), the plan, the
    history and the clock of the last checkpoint.
    """

    def __init__(self, config, strategy, *, start_time, callbacks, stream):
        self.config, self.strategy, self.start_time = config, strategy, start_time
        self.callbacks, self.stream = list(callbacks), stream
        self.num_replicas = strategy.num_replicas_in_sync
        per_replica_batch = config.per_replica_batch_size(self.num_replicas)
        _, task_id, self.is_chief = strategy_lib.task_info(strategy)
        static_shapes = strategy_lib.is_tpu(strategy)
        self.spec = data.get_spec(config.dataset)
        self.splits = _count_splits(config)
        self.plan = steps.plan_steps(config, num_train_examples=self.splits.num_train,
                                     num_eval_examples=self.splits.num_test)
        self.policy = _policy_name(config)

        # The model, the optimizer and every checkpointed counter, in the strategy's scope.
        with strategy.scope():
            self.model = build_model(config, self.policy)
            self.optimizer = _build_optimizer(config, self.plan, self.policy)
            self.optimizer.build(self.model.trainable_variables)
            self.step_var = tf.Variable(0, dtype=tf.int64, trainable=False, name="global_step")
            self.epoch_var = tf.Variable(0, dtype=tf.int64, trainable=False, name="epoch")
            # -1: a checkpoint from before validation splits (nothing to compare).
            self.validation_var = tf.Variable(-1, dtype=tf.int64, trainable=False,
                                              name="num_validation_examples")
            initial_weights = [tf.Variable(tf.convert_to_tensor(v), trainable=False, name="w0")
                               for v in self.model.trainable_variables]
            self.metrics = EpochMetrics()
        checkpoint_dir = rundir.path(config.model_dir, rundir.CHECKPOINTS)
        # Nothing is written to model_dir before the run there is known to fit this config.
        self.changes = rundir.resume_changes(
            config, step=checkpointing.has_checkpoint_files(checkpoint_dir))
        self.checkpointer = checkpointing.Checkpointer(
            checkpoint_dir,
            is_chief=self.is_chief, task_id=task_id, max_to_keep=config.keep_checkpoints,
            model=self.model, optimizer=self.optimizer, step=self.step_var, epoch=self.epoch_var,
            initial_weights=initial_weights, epoch_metrics=self.metrics,
            num_validation_examples=self.validation_var,
        )
        restored = self.checkpointer.restore(start_over=config.start_over_if_damaged)
        if not config.resume_with_changes:
            self._check_validation_split(restored)
        self.validation_var.assign(self.splits.num_validation)
        self.resumed_from_step = int(self.step_var.numpy()) if restored else 0
        self.step = self.resumed_from_step
        line = restored.describe() if restored else self.checkpointer.note
        if line and self.is_chief and config.verbose:
            print(line, file=stream or sys.stdout, flush=True)

        os.makedirs(config.model_dir, exist_ok=True)
        self.history, self.distance_record, self.recorded_changes = rundir.read_history(
            config.model_dir, self.resumed_from_step)
        if self.changes and self.resumed_from_step:
            self.recorded_changes.append(rundir.change_record(self.changes,
                                                              self.resumed_from_step))
        if self.is_chief:
            rundir.write_config(config, step=self.resumed_from_step, changes=self.changes)
        if self.step == 0:
            self.distance_record = [[0, 0.0]]
        self.record_due = diagnostics.LogSpacedSteps()
        self.record_due(self.step)  # skip the steps already recorded before a resume
        self.last_logs = self.history[-1] if self.history else {}
        self.last_saved = self.step if self.resumed_from_step else None
        self.last_save_time = time.time()

        self.watcher = None
        if config.preemption and checkpointing.PreemptionWatcher.available():
            self.watcher = checkpointing.PreemptionWatcher()
        self.summaries = summaries_lib.Summaries(config.model_dir, enabled=self.is_chief)
        self.progress = loop.Progress(self.plan.num_epochs,
                                      verbose=config.verbose if self.is_chief else 0,
                                      stream=stream)

        # The compiled functions.
        self.train_steps = loop.make_train_step(
            strategy, self.model, self.optimizer, self.step_var,
            global_batch_size=config.batch_size, jit_compile=config.jit_compile,
            sam_rho=config.sam_rho, sam_adaptive=config.sam_adaptive,
            label_smoothing=config.label_smoothing)
        sizes = {"validation": self.splits.num_validation, "test": self.splits.num_test}
        self.evaluators = {
            split: loop.make_evaluate(strategy, self.model,
                                      _eval_dataset(config, strategy, split, sizes[split],
                                                    static_shapes))
            for split in EVAL_SPLITS if sizes[split]
        }
        weights = self.model.trainable_variables
        self.distance_fn = tf.function(lambda: weight_distance(weights, initial_weights))
        self.train_input = _TrainInput(config, strategy, self.plan, per_replica_batch)
        self.agree = _make_agree(strategy) if strategy_lib.num_workers(strategy) > 1 else None
        # Steps per call: fixed (the same on every worker), or adapted to the step time
        # in a single process (grouping never changes the numbers, only when the host looks).
        self.fixed_steps = config.steps_per_execution or (1 if self.agree is not None else 0)
        self.auto_steps = 1
        self.calls = 0
        self.timed_steps, self.timed_seconds = 0, 0.0
        self.check_grads = self.policy != "mixed_float16"  # the loss scaler skips inf gradients

    def _check_validation_split(self, restored):
        saved = int(self.validation_var.numpy())
        if restored is not None and saved >= 0 and saved != self.splits.num_validation:
            raise ConfigError(
                f"The checkpoint {restored.path} was trained beside a validation split of {saved} "
                f"examples, so its training split differs from this run's. Expected "
                f"validation_examples={saved} to resume it (or a new model_dir). Received: "
                f"validation_examples={self.splits.num_validation}. Nothing was overwritten."
            )

    # The loop.

    def train_epochs(self):
        config, plan, model = self.config, self.plan, self.model
        model.stop_training = False
        for callback in self.callbacks:
            callback.set_model(model)
            callback.set_params({"epochs": plan.num_epochs, "steps": plan.steps_per_epoch,
                                 "verbose": config.verbose})
        for callback in self.callbacks:
            callback.on_train_begin()

        start_epoch, skip = plan.epoch_of(self.step)
        if skip:  # resumed mid-epoch: continue that epoch's running sums
            self.metrics.unstash()
        for epoch in range(start_epoch, plan.num_epochs):
            skip_now = skip if epoch == start_epoch else 0
            if skip_now >= plan.steps_in_epoch(epoch):
                continue
            if not skip_now:
                self.metrics.reset()
            epoch_seconds = self._train_epoch(epoch, skip_now)
            end_of_run = self.step >= plan.total_steps or model.stop_training
            self._end_epoch(epoch, epoch_seconds, evaluate=(
                (epoch + 1) % config.eval_every_epochs == 0 or end_of_run))
            if end_of_run:
                break  # `finish` saves
            self._checkpoint_point(epoch_end=True)

    def _train_epoch(self, epoch, skip):
        """Trains epoch `epoch` from its step `skip`; returns its wall time."""
        plan = self.plan
        epoch_first_step = epoch * plan.steps_per_epoch
        epoch_end = epoch_first_step + plan.steps_in_epoch(epoch)
        iterator = self.train_input.iterator(epoch, skip)
        self.progress.epoch_begin(epoch, plan.steps_in_epoch(epoch), skip)
        for callback in self.callbacks:
            callback.on_epoch_begin(epoch)
        epoch_start = time.time()
        while self.step < epoch_end and not self.model.stop_training:
            rows = self._call(iterator, self._call_end(epoch_end) - self.step)
            for loss, correct, count, grad_sq, learning_rate in rows:
                self.step += 1
                self._check_finite(loss, grad_sq, epoch)
                self.metrics.add(loss=loss, correct=correct, count=count)
                if self.step % self.config.summary_every_steps == 0:
                    self.summaries.scalars("train", {"step_loss": loss,
                                                     "learning_rate": learning_rate}, self.step)
                batch_logs = dict(self.metrics.values(), step=self.step,
                                  learning_rate=learning_rate)
                for callback in self.callbacks:
                    callback.on_train_batch_end(self.step - epoch_first_step - 1, batch_logs)
            # `self.step` is now the end of the call: records and checkpoints are at call ends.
            if self.record_due(self.step) and self.is_chief:
                self.distance_record.append([self.step, float(self.distance_fn())])
            self.progress.step(self.step - epoch_first_step, self.metrics.values())
            if self.step < epoch_end and not self.model.stop_training:
                self._checkpoint_point(epoch_end=False)  # at the epoch's end: after its logs
        return time.time() - epoch_start

    def _call(self, iterator, num_steps):
        """One call of the step function: `num_steps` steps; their rows as float lists."""
        t0 = time.time()
        rows = self.train_steps(iterator, tf.constant(num_steps, tf.int32))
        rows = rows.numpy().astype("float64")
        seconds = time.time() - t0
        if self.calls > 0:  # the first call traces the step function
            self.timed_steps += len(rows)
            self.timed_seconds += seconds
            if not self.fixed_steps:
                per_step = seconds / max(len(rows), 1)
                self.auto_steps = int(max(1, min(_MAX_STEPS_PER_EXECUTION, 4 * self.auto_steps,
                                                 _TARGET_CALL_SECONDS / max(per_step, 1e-6))))
        self.calls += 1
        return rows.tolist()

    def _call_end(self, epoch_end):
        """Where the next call stops: never past a step the host must see."""
        at = self.step
        end = min(epoch_end, at + (self.fixed_steps or self.auto_steps),
                  self.record_due.next_after(at))
        every = self.config.checkpoint_every_steps
        if every:
            end = min(end, (at // every + 1) * every)
        return end

    def _checkpoint_point(self, epoch_end):
        """Between calls and after each epoch's logs: checkpoints that are due, and preemption.

        Due: every `checkpoint_every_steps` steps; by the clock, at least every
        `checkpoint_every_seconds` (`0`: at every epoch end instead); and on a
        SIGTERM, after which `Preempted` is raised.
        """
        config = self.config
        by_steps = bool(config.checkpoint_every_steps) and (
            self.step % config.checkpoint_every_steps == 0)
        if config.checkpoint_every_seconds:
            by_clock = time.time() - self.last_save_time >= config.checkpoint_every_seconds
        else:
            by_clock = epoch_end
        preempted = self.watcher is not None and self.watcher.requested
        by_clock, preempted = self._agreed(by_clock, preempted)
        if by_steps or by_clock or preempted:
            self._save()
        if preempted:
            interrupted = self.watcher is not None and self.watcher.signal == signal.SIGINT
            error = checkpointing.Interrupted if interrupted else checkpointing.Preempted
            what = "Interrupted (Ctrl-C)" if interrupted else "Preempted"
            raise error(f"{what} at step {self.step}: checkpoint saved in "
                        f"{self.checkpointer.latest}")

    def _agreed(self, *flags):
        """Each flag, set if any worker set it (every worker must take part in a save)."""
        if self.agree is None:
            return flags
        agreed = self.agree(tf.constant([float(f) for f in flags]))
        return tuple(bool(v) for v in agreed.numpy())

    def _save(self):
        if self.last_saved == self.step:
            return
        self.epoch_var.assign(self.step // self.plan.steps_per_epoch)
        self.metrics.stash()
        self.checkpointer.save(self.step)
        self._write_history()  # the records up to a checkpoint survive a resume from it
        self.last_saved = self.step
        self.last_save_time = time.time()

    def _write_history(self):
        if self.is_chief:
            rundir.write_history(self.config.model_dir, self.history, self.distance_record,
                                 self.recorded_changes)

    def _check_finite(self, loss, grad_sq, epoch):
        if math.isfinite(loss) and (not self.check_grads or math.isfinite(grad_sq)):
            return
        what = "loss" if not math.isfinite(loss) else "gradient"
        good = self.checkpointer.latest
        message = (
            f"Training stopped: the {what} is not finite (loss={loss}) at step {self.step} "
            f"(epoch {epoch + 1}). Nothing was saved after it; the last good checkpoint is "
            f"{good or 'none (no checkpoint yet)'}. {_stability_hint(self.config)}"
        )
        self._write_result(self._result("non_finite_loss", throughput=None, checkpoint=good,
                                         export_dir=None, message=message))
        print(f"\n{message}", file=self.stream or sys.stdout, flush=True)
        raise NonFiniteLossError(message, step=self.step, checkpoint=good)

    def _evaluate(self):
        logs = {}
        for split in EVAL_SPLITS:
            if split in self.evaluators:
                logs.update(loop.evaluate(self.evaluators[split], split))
            else:
                logs.update({f"{split}_loss": None, f"{split}_accuracy": None})
        return logs

    def _end_epoch(self, epoch, epoch_seconds, evaluate):
        logs = dict(self.metrics.values())
        if evaluate:
            logs.update(self._evaluate())
        logs["learning_rate"] = current_learning_rate(self.optimizer)
        logs["weight_distance"] = float(self.distance_fn())
        for callback in self.callbacks:
            callback.on_epoch_end(epoch, logs)
        entry = dict(epoch=epoch + 1, step=self.step,
                     epochs_completed=self.step / self.plan.steps_per_epoch,
                     seconds=epoch_seconds, **logs)
        self.history.append(entry)
        self.last_logs = entry
        summaries = self.summaries
        summaries.scalars("train", {k: logs.get(k) for k in
                                    ("loss", "accuracy", "learning_rate", "weight_distance")},
                          self.step)
        for split in EVAL_SPLITS:
            summaries.scalars(split, {"loss": logs.get(f"{split}_loss"),
                                      "accuracy": logs.get(f"{split}_accuracy")}, self.step)
        summaries.flush()
        self.progress.epoch_end(logs)
        self._write_history()

    # The end of a run.

    def finish(self):
        config = self.config
        self._save()
        if self.last_logs.get("test_accuracy") is None:
            self.last_logs = dict(self.last_logs, **self._evaluate())
        for callback in self.callbacks:
            callback.on_train_end(dict(self.last_logs))
        export_dir = None
        if config.export_dir:
            weights = self.model.get_weights()  # all workers read (collectives); the chief exports
            if self.is_chief:
                fresh = build_model(config)
                fresh.set_weights(weights)
                export_dir = export.export_saved_model(
                    fresh, config.export_dir, dataset=config.dataset, config=config.to_dict(),
                    protected=(config.model_dir,))
        throughput = (self.timed_steps * config.batch_size / self.timed_seconds
                      if self.timed_seconds else None)
        record = self._result("completed", throughput=throughput,
                              checkpoint=self.checkpointer.latest, export_dir=export_dir)
        self._write_result(record)
        return record

    def close(self):
        if self.watcher is not None:
            self.watcher.close()
        self.summaries.close()

    def _result(self, status, *, throughput, checkpoint, export_dir, message=None):
        logs, plan = self.last_logs, self.plan
        record = {
            "status": status,
            "global_step": int(self.step),
            "total_steps": plan.total_steps,
            "epochs_completed": self.step / plan.steps_per_epoch,
            "resumed_from_step": int(self.resumed_from_step),
            "train": {"loss": logs.get("loss"), "accuracy": logs.get("accuracy")},
            **{split: {"loss": logs.get(f"{split}_loss"),
                       "accuracy": logs.get(f"{split}_accuracy")} for split in EVAL_SPLITS},
            "weight_distance": logs.get("weight_distance"),
            "throughput": throughput,
            "wall_time": time.time() - self.start_time,
            "num_replicas": self.num_replicas,
            "strategy": strategy_lib.strategy_name(self.strategy),
            "steps_per_epoch": plan.steps_per_epoch,
            "stretch": plan.stretch,
            "num_train_examples": self.splits.num_train,
            "num_validation_examples": self.splits.num_validation,
            "num_test_examples": self.splits.num_test,
            "checkpoint": checkpoint,
            "export_dir": export_dir,
            "history": self.history,
            "distance_record": self.distance_record,
            "config": self.config.to_dict(),
        }
        if message:
            record["message"] = message
        return record

    def _write_result(self, record):
        if self.is_chief:
            rundir.write_json(rundir.path(self.config.model_dir, rundir.RESULT), record)


def _stability_hint(config):
    """What to try after a non-finite loss, given the settings the run used."""
    hints = ["lower the learning rate (lr_values or lr_multiplier)"]
    if not config.warmup_epochs:
        hints.append("add warm-up (warmup_epochs)")
    else:
        hints.append("lengthen the warm-up (warmup_epochs)")
    if config.lr_scaling == "linear":
        hints.append("use lr_scaling='sqrt' instead of 'linear'")
    return "Try to " + ", ".join(hints[:-1]) + " or " + hints[-1] + "."
