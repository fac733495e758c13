"""`train(config)`: the one trainer behind every recipe, the tuner and the study.

A custom distributed loop (`strategy.run`) over a Keras model, the Keras SGD
optimizer (momentum 0.9, no Nesterov) driven by `LargeBatchSchedule`, under
any `tf.distribute` strategy, one process or several. Keras' `model.fit` is
not used: it fails under `MultiWorkerMirroredStrategy` in Keras 3
(keras-team/keras#20585), its `BackupAndRestore` replays a whole epoch, and
its file-writing callbacks collide when workers share a directory.

What a run leaves in `config.model_dir`:

- `checkpoints/`: `tf.train.CheckpointManager` checkpoints (model, optimizer,
  step, epoch, initial weights); re-running with the same `model_dir` resumes
  mid-epoch at the exact batch.
- `logs/`: TensorBoard scalars (loss, accuracy, learning rate, weight distance).
- `config.json`: the resolved config; `history.json`: the per-epoch history.
- `result.json`: the final record (see `train`).

and in `config.export_dir` the SavedModel with a raw-input `serving_default`.
"""

import json
import math
import os
import sys
import time

import keras
import tensorflow as tf

from tfgap import data, models, schedules
from tfgap.training import checkpointing, export, loop, steps
from tfgap.training import strategy as strategy_lib
from tfgap.training import summaries as summaries_lib
from tfgap.training.config import ConfigError

RESULT_FILENAME = "result.json"
HISTORY_FILENAME = "history.json"
CONFIG_FILENAME = "config.json"


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
    checkpoint: mid-epoch, at the exact batch, and ends with the same number
    of optimizer steps as an uninterrupted run (with `config.deterministic`,
    the same weights).

    The number of steps is `round(epochs * stretch * steps_per_epoch)` (see
    `tfgap.training.plan_steps`); the learning rate follows
    `LargeBatchSchedule(lr_boundaries, lr_values * lr_multiplier,
    base_batch_size, batch_size, steps_per_epoch, lr_scaling,
    regime_adaptation, warmup_epochs)`.

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
            `accuracy`, `learning_rate`), `on_epoch_end` (the epoch's logs) and
            `on_train_end`. Setting `model.stop_training = True` ends the run
            after the current call of `config.steps_per_execution` steps (like
            `EarlyStopping`; set `steps_per_execution=1` to stop at the step).
        stream: where progress is printed (default `sys.stdout`).

    Returns:
        The dict written to `<model_dir>/result.json` (on the chief):
        `status`, `global_step`, `total_steps`, `epochs_completed`,
        `resumed_from_step`, `train` and `test` metrics of the last epoch,
        `throughput` (training examples per second), `wall_time`,
        `weight_distance`, `history` (one entry per epoch, with test accuracy
        and weight distance), `distance_record` (`[step, ||w_t - w_0||]` at
        log-spaced steps), `num_replicas`, `strategy`, `steps_per_epoch`,
        `stretch`, `checkpoint`, `export_dir` and the resolved `config`.

    Raises:
        ConfigError: settings that do not fit the strategy or the data.
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
    result["global_step"], result["test"]["accuracy"]
    ```
    """
    start_time = time.time()
    if strategy is None:
        strategy_lib.split_logical_cpus(config.logical_cpus)
        strategy = strategy_lib.make_strategy(config.strategy, tpu=config.tpu)
    keras.backend.clear_session()
    keras.utils.set_random_seed(config.seed)
    if config.deterministic:
        tf.config.experimental.enable_op_determinism()

    num_replicas = strategy.num_replicas_in_sync
    per_replica_batch = config.per_replica_batch_size(num_replicas)
    task_type, task_id, is_chief = strategy_lib.task_info(strategy)
    static_shapes = strategy_lib.is_tpu(strategy)
    spec = data.get_spec(config.dataset)

    # Fail within seconds when the data is missing, before building anything.
    data_kwargs = dict(
        data_dir=config.data_dir,
        download=config.download,
        mock_data=config.mock_data,
        mock_examples=config.mock_examples,
        synthetic=config.synthetic,
    )
    data.build_dataset(config.dataset, "test", batch_size=1, training=False, **data_kwargs)
    # Real data is counted as prepared on disk (a partial build counts as it is).
    real_dir = config.data_dir if not (config.mock_data or config.synthetic) else None
    num_train = data.num_examples(config.dataset, "train", mock_data=config.mock_data,
                                  mock_examples=config.mock_examples, data_dir=real_dir)
    num_eval = data.num_examples(config.dataset, "test", mock_data=config.mock_data,
                                 mock_examples=config.mock_examples, data_dir=real_dir)
    if config.synthetic:
        # Synthetic data measures training throughput: an epoch keeps the real
        # dataset's length, but evaluating a whole fake test split (50,000
        # ImageNet images) would only cost time, so `mock_examples` are evaluated.
        num_eval = min(num_eval, config.mock_examples)
    plan = steps.plan_steps(config, num_train_examples=num_train, num_eval_examples=num_eval)

    os.makedirs(config.model_dir, exist_ok=True)
    ckpt_dir = os.path.join(config.model_dir, checkpointing.CHECKPOINT_SUBDIR)
    if is_chief:
        _write_json(os.path.join(config.model_dir, CONFIG_FILENAME), config.to_dict())

    state = _build_state(config, strategy, spec, plan)
    model, optimizer = state["model"], state["optimizer"]
    step_var, epoch_var = state["step"], state["epoch"]

    checkpointer = checkpointing.Checkpointer(
        ckpt_dir, is_chief=is_chief, task_id=task_id, max_to_keep=config.keep_checkpoints,
        model=model, optimizer=optimizer, step=step_var, epoch=epoch_var,
        initial_weights=state["initial_weights"],
    )
    restored = checkpointer.restore()
    guard = None
    if config.preemption and checkpointing.PreemptionGuard.available():
        guard = checkpointing.PreemptionGuard(strategy, checkpointer.checkpoint, ckpt_dir,
                                             is_chief=is_chief, task_id=task_id)
    summaries_writer = None
    try:
        resumed_from_step = int(step_var.numpy()) if restored else 0
        summaries_writer = _summaries(config, is_chief)
        result = _run(
            config, strategy, state, plan, checkpointer, guard, summaries_writer,
            callbacks=list(callbacks), stream=stream, is_chief=is_chief,
            resumed_from_step=resumed_from_step, per_replica_batch=per_replica_batch,
            static_shapes=static_shapes, data_kwargs=data_kwargs, start_time=start_time,
        )
    finally:
        if guard is not None:
            guard.close()
        if summaries_writer is not None:
            summaries_writer.close()
    return result


def _summaries(config, is_chief):
    return summaries_lib.Summaries(config.model_dir, enabled=is_chief)


def _policy_name(config):
    if not config.mixed_precision:
        return "float32"
    return "mixed_float16" if tf.config.list_logical_devices("GPU") else "mixed_bfloat16"


def _build_model(config, spec, policy="float32"):
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(policy)
    try:
        return models.build_model(
            config.model,
            num_classes=spec.num_classes,
            input_shape=spec.input_shape,
            ghost_batch_size=config.ghost_batch_size,
            moving_update=config.moving_update,
            weight_decay=config.weight_decay,
            bn_momentum=config.bn_momentum,
            seed=config.seed,
            **config.model_options,
        )
    except ValueError as e:
        raise ConfigError(str(e)) from e
    finally:
        keras.config.set_dtype_policy(previous)


def _build_state(config, strategy, spec, plan):
    """Model, optimizer, counters and `w_0`, created in the strategy's scope."""
    policy = _policy_name(config)
    with strategy.scope():
        model = _build_model(config, spec, policy)
        schedule = schedules.LargeBatchSchedule(
            boundaries=list(config.lr_boundaries),
            values=[v * config.lr_multiplier for v in config.lr_values],
            base_batch_size=config.base_batch_size,
            batch_size=config.batch_size,
            steps_per_epoch=plan.steps_per_epoch,
            scaling=config.lr_scaling,
            regime_adaptation=config.regime_adaptation,
            warmup_epochs=config.warmup_epochs,
        )
        optimizer = keras.optimizers.SGD(
            learning_rate=schedule, momentum=config.momentum, nesterov=False
        )
        if policy == "mixed_float16":
            optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
        optimizer.build(model.trainable_variables)
        step = tf.Variable(0, dtype=tf.int64, trainable=False, name="global_step")
        epoch = tf.Variable(0, dtype=tf.int64, trainable=False, name="epoch")
        initial_weights = [
            tf.Variable(tf.convert_to_tensor(v), trainable=False, name="w0")
            for v in model.trainable_variables
        ]
    return dict(model=model, optimizer=optimizer, schedule=schedule, step=step, epoch=epoch,
                initial_weights=initial_weights, policy=policy)


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

    def __init__(self, config, strategy, plan, per_replica_batch, data_kwargs,
                 window_steps=256, max_window_epochs=32):
        self.config, self.strategy, self.plan = config, strategy, plan
        self.per_replica_batch, self.data_kwargs = per_replica_batch, data_kwargs
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
                    drop_remainder=True, repeat=True, **self.data_kwargs,
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


def _eval_dataset(config, strategy, static_shapes, data_kwargs):
    ds = data.build_dataset(
        config.dataset, "test", batch_size=config.global_eval_batch_size, training=False,
        seed=config.seed, drop_remainder=static_shapes, **data_kwargs,
    )
    if config.synthetic:
        # The synthetic test split has the real one's length; evaluate only
        # `mock_examples` of it (see `train`): a throughput run is not scored.
        ds = ds.take(max(1, -(-config.mock_examples // config.global_eval_batch_size)))
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return strategy.experimental_distribute_dataset(ds.with_options(options))


def _current_lr(state):
    schedule = state["schedule"]
    return float(schedule(state["step"].read_value()))


def _lr_at(state, step):
    """The rate after `step` steps (what `_current_lr` reads when the step counter is `step`)."""
    return float(state["schedule"](tf.constant(int(step), tf.int64)))


def _make_agree(strategy):
    """A `tf.function(flag) -> bool tensor`: whether any worker's flag is set."""

    @tf.function
    def agree(flag):
        value = strategy.run(lambda: tf.identity(flag))
        return strategy.reduce(tf.distribute.ReduceOp.SUM, value, axis=None) > 0

    return agree


# Automatic steps per execution: aim for calls of about this many seconds.
_TARGET_CALL_SECONDS = 0.2
_MAX_STEPS_PER_EXECUTION = 1000


def _run(config, strategy, state, plan, checkpointer, guard, summaries, *, callbacks, stream,
         is_chief, resumed_from_step, per_replica_batch, static_shapes, data_kwargs,
         start_time):
    model, optimizer, step_var = state["model"], state["optimizer"], state["step"]
    train_steps = loop.make_train_step(
        strategy, model, optimizer, step_var, global_batch_size=config.batch_size,
        jit_compile=config.jit_compile,
    )
    eval_ds = _eval_dataset(config, strategy, static_shapes, data_kwargs)
    evaluate_all = loop.make_evaluate(strategy, model, eval_ds)
    distance_fn = loop.make_distance_fn(model.trainable_variables, state["initial_weights"])
    train_input = _TrainInput(config, strategy, plan, per_replica_batch, data_kwargs)
    multi_worker = strategy_lib.num_workers(strategy) > 1
    agree = _make_agree(strategy) if multi_worker else None
    # Steps per call: fixed (the same on every worker), or adapted to the step time
    # in a single process (grouping never changes the numbers, only when the host looks).
    fixed_steps = config.steps_per_execution or (1 if multi_worker else 0)
    auto_steps = 1
    history_path = os.path.join(config.model_dir, HISTORY_FILENAME)
    history, distance_record = _load_history(history_path, resumed_from_step)
    progress = loop.Progress(plan.num_epochs, verbose=config.verbose if is_chief else 0,
                             stream=stream)
    check_grads = state["policy"] != "mixed_float16"  # the loss scaler skips inf gradients

    model.stop_training = False
    for callback in callbacks:
        callback.set_model(model)
        callback.set_params({"epochs": plan.num_epochs, "steps": plan.steps_per_epoch,
                             "verbose": config.verbose})
    for callback in callbacks:
        callback.on_train_begin()

    step = resumed_from_step
    last_saved = step if resumed_from_step else None
    last_save_time = time.time()
    last_logs = history[-1] if history else {}
    calls = 0
    timed_steps, timed_seconds = 0, 0.0
    if step == 0 and is_chief:
        distance_record = [[0, 0.0]]
    record_due = loop.LogSpaced()
    record_due(step)  # skip the steps already recorded before a resume

    def save(at_step):
        nonlocal last_saved, last_save_time
        if last_saved == at_step:
            return
        state["epoch"].assign(at_step // plan.steps_per_epoch)
        checkpointer.save(at_step)
        if is_chief:  # the distance records up to a checkpoint survive a resume from it
            _write_json(history_path, {"history": history, "distance_record": distance_record})
        last_saved = at_step
        last_save_time = time.time()

    def fail(message, at_step):
        good = checkpointer.latest
        record = _result(config, plan, strategy, status="non_finite_loss", step=at_step,
                         resumed_from_step=resumed_from_step, last_logs=last_logs,
                         history=history, distance_record=distance_record,
                         throughput=None, start_time=start_time, checkpoint=good,
                         export_dir=None, message=message)
        if is_chief:
            _write_json(os.path.join(config.model_dir, RESULT_FILENAME), record)
        print(f"\n{message}", file=stream or sys.stdout, flush=True)
        raise NonFiniteLossError(message, step=at_step, checkpoint=good)

    def call_end(at_step, epoch_end):
        """Where the next call stops: never past a step the host must see."""
        end = min(epoch_end, at_step + (fixed_steps or auto_steps),
                  record_due.next_after(at_step))
        if config.checkpoint_every_steps:
            every = config.checkpoint_every_steps
            end = min(end, (at_step // every + 1) * every)
        return end

    start_epoch, skip = plan.epoch_of(step)
    for epoch in range(start_epoch, plan.num_epochs):
        steps_this_epoch = plan.steps_in_epoch(epoch)
        skip_now = skip if epoch == start_epoch else 0
        if skip_now >= steps_this_epoch:
            continue
        epoch_first_step = epoch * plan.steps_per_epoch
        epoch_end = epoch_first_step + steps_this_epoch
        loss_sum = correct_sum = count_sum = 0.0
        loss_steps = 0
        values = {}
        iterator = train_input.iterator(epoch, skip_now)
        progress.epoch_begin(epoch, steps_this_epoch, skip_now)
        for callback in callbacks:
            callback.on_epoch_begin(epoch)
        epoch_start = time.time()
        while step < epoch_end and not model.stop_training:
            num_steps = call_end(step, epoch_end) - step
            t0 = time.time()
            args = (iterator, tf.constant(num_steps, tf.int32))
            rows = guard.run(train_steps, *args) if guard is not None else train_steps(*args)
            rows = rows.numpy().astype("float64")
            seconds = time.time() - t0
            if calls > 0:  # the first call traces the step function
                timed_steps += len(rows)
                timed_seconds += seconds
                if not fixed_steps:
                    per_step = seconds / max(len(rows), 1)
                    auto_steps = int(max(1, min(_MAX_STEPS_PER_EXECUTION, 4 * auto_steps,
                                                _TARGET_CALL_SECONDS / max(per_step, 1e-6))))
            calls += 1
            for loss, correct, count, grad_sq in rows.tolist():
                step += 1
                index = step - epoch_first_step - 1
                if not math.isfinite(loss) or (check_grads and not math.isfinite(grad_sq)):
                    what = "loss" if not math.isfinite(loss) else "gradient"
                    fail(
                        f"Training stopped: the {what} is not finite (loss={loss}) at step "
                        f"{step} (epoch {epoch + 1}). Nothing was saved after it; the last good "
                        f"checkpoint is {checkpointer.latest or 'none (no checkpoint yet)'}. "
                        "Lower the learning rate (--lr_values/--lr_multiplier), add warm-up "
                        "(--warmup_epochs) or use --lr_scaling=sqrt instead of linear.",
                        step,
                    )
                loss_sum += loss
                loss_steps += 1
                correct_sum += correct
                count_sum += count
                values = {"loss": loss_sum / loss_steps,
                          "accuracy": correct_sum / count_sum if count_sum else 0.0}
                if step % config.summary_every_steps == 0:
                    summaries.scalars("train", {"step_loss": loss,
                                                "learning_rate": _lr_at(state, step)}, step)
                batch_logs = dict(values, step=step, learning_rate=None)
                for callback in callbacks:
                    callback.on_train_batch_end(index, batch_logs)
            # `step` is now the end of the call: the record and checkpoint steps are call ends.
            if record_due(step) and is_chief:
                distance_record.append([step, float(distance_fn())])
            progress.step(step - epoch_first_step, values)
            if config.checkpoint_every_steps and step % config.checkpoint_every_steps == 0:
                save(step)
        epoch_seconds = time.time() - epoch_start

        end_of_run = step >= plan.total_steps or model.stop_training
        logs = {"loss": values.get("loss"), "accuracy": values.get("accuracy")}
        if (epoch + 1) % config.eval_every_epochs == 0 or end_of_run:
            logs.update(loop.evaluate(evaluate_all))
        logs["learning_rate"] = _current_lr(state)
        logs["weight_distance"] = float(distance_fn())
        for callback in callbacks:
            callback.on_epoch_end(epoch, logs)
        entry = dict(epoch=epoch + 1, step=step, epochs_completed=step / plan.steps_per_epoch,
                     seconds=epoch_seconds, **logs)
        history.append(entry)
        last_logs = entry
        summaries.scalars("train", {k: logs.get(k) for k in
                                    ("loss", "accuracy", "learning_rate", "weight_distance")},
                          step)
        summaries.scalars("test", {"loss": logs.get("test_loss"),
                                   "accuracy": logs.get("test_accuracy")}, step)
        summaries.flush()
        progress.epoch_end({k: v for k, v in logs.items()})
        if is_chief:
            _write_json(history_path, {"history": history, "distance_record": distance_record})
        if end_of_run:
            break
        due = time.time() - last_save_time >= config.checkpoint_every_seconds
        if agree is not None:  # every worker takes part in a save: decide together
            due = bool(agree(tf.constant(float(due))))
        if due:
            save(step)

    save(step)
    if "test_accuracy" not in last_logs or last_logs.get("test_accuracy") is None:
        last_logs = dict(last_logs, **loop.evaluate(evaluate_all))
    for callback in callbacks:
        callback.on_train_end(dict(last_logs))

    export_dir = None
    if config.export_dir:
        weights = model.get_weights()  # every worker reads (collectives), the chief exports
        if is_chief:
            fresh = _build_model(config, data.get_spec(config.dataset))
            fresh.set_weights(weights)
            export_dir = export.export_saved_model(
                fresh, config.export_dir, dataset=config.dataset, config=config.to_dict()
            )
    throughput = (timed_steps * config.batch_size / timed_seconds) if timed_seconds else None
    record = _result(config, plan, strategy, status="completed", step=step,
                     resumed_from_step=resumed_from_step, last_logs=last_logs, history=history,
                     distance_record=distance_record, throughput=throughput,
                     start_time=start_time, checkpoint=checkpointer.latest,
                     export_dir=export_dir)
    if is_chief:
        _write_json(os.path.join(config.model_dir, RESULT_FILENAME), record)
    return record


def _result(config, plan, strategy, *, status, step, resumed_from_step, last_logs, history,
            distance_record, throughput, start_time, checkpoint, export_dir, message=None):
    record = {
        "status": status,
        "global_step": int(step),
        "total_steps": plan.total_steps,
        "epochs_completed": step / plan.steps_per_epoch,
        "resumed_from_step": int(resumed_from_step),
        "train": {"loss": last_logs.get("loss"), "accuracy": last_logs.get("accuracy")},
        "test": {"loss": last_logs.get("test_loss"), "accuracy": last_logs.get("test_accuracy")},
        "weight_distance": last_logs.get("weight_distance"),
        "throughput": throughput,
        "wall_time": time.time() - start_time,
        "num_replicas": strategy.num_replicas_in_sync,
        "strategy": strategy_lib.strategy_name(strategy),
        "steps_per_epoch": plan.steps_per_epoch,
        "stretch": plan.stretch,
        "num_train_examples": plan.num_train_examples,
        "checkpoint": checkpoint,
        "export_dir": export_dir,
        "history": history,
        "distance_record": distance_record,
        "config": config.to_dict(),
    }
    if message:
        record["message"] = message
    return record


def _load_history(path, resumed_from_step):
    """The history of the epochs (and distance records) up to the restored step."""
    if not resumed_from_step or not os.path.exists(path):
        return [], []
    with open(path) as f:
        saved = json.load(f)
    history = [h for h in saved.get("history", []) if h["step"] <= resumed_from_step]
    record = [r for r in saved.get("distance_record", []) if r[0] <= resumed_from_step]
    return history, record


def _write_json(path, value):
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "w") as f:
        json.dump(value, f, indent=2, sort_keys=True, default=_json_default)
    os.replace(tmp, path)


def _json_default(value):
    if hasattr(value, "item"):
        return value.item()
    if isinstance(value, tuple):
        return list(value)
    raise TypeError(f"not JSON serializable: {value!r}")


def read_result(model_dir):
    """Reads `<model_dir>/result.json`."""
    with open(os.path.join(model_dir, RESULT_FILENAME)) as f:
        return json.load(f)
