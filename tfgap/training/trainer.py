"""`train(config)`: the one trainer behind every recipe, the tuner and the study.

A custom distributed loop (`strategy.run`) over a Keras model, the Keras SGD
optimizer (momentum 0.9, no Nesterov) or `tfgap.optimizers.LARS`, optionally
with Sharpness-Aware Minimization steps, driven by `LargeBatchSchedule`, under
any `tf.distribute` strategy, one process or several. Keras' `model.fit` is
not used: it fails under `MultiWorkerMirroredStrategy` in Keras 3
(keras-team/keras#20585), its `BackupAndRestore` replays a whole epoch, and
its file-writing callbacks collide when workers share a directory. The loop
speaks Keras all the same: one `keras.callbacks.CallbackList` drives the
user's callbacks and the trainer's own (progress, TensorBoard, history, the
weight-distance record) through the hooks of `model.fit`, with Keras' names
(`val_loss`, `val_accuracy`).

The data flow, top to bottom in `train`:

    config -> count_splits -> plan_steps -> build_state (model, optimizer, counters;
           checked against model_dir, restored)  -> step functions, callbacks
    for each epoch:  TrainInput -> StepPacer-sized calls of train_steps -> rows
                     -> EpochMetrics -> callbacks (per step) -> CheckpointPolicy
                     -> evaluate -> callbacks (epoch logs) -> history.json
    -> save, export, TrainResult (result.json)

Three splits: the model trains on `train`, and `validation` (carved from the
training split, disjoint from it; `config.validation_examples`) and `test` are
evaluated every `eval_every_epochs`. Choose on validation, report test. What a
run leaves in `config.model_dir` is `tfgap.training.rundir`'s to say.
"""

import contextlib
import dataclasses
import math
import os
import sys
import time

import keras
import tensorflow as tf

from tfgap import diagnostics
from tfgap.diagnostics.weight_distance import weight_distance
from tfgap.training import build, export, inputs, rundir, step_functions
from tfgap.training import strategy as strategy_lib
from tfgap.training.checkpoint_policy import CheckpointPolicy
from tfgap.training.history import DistanceRecord, RunHistory
from tfgap.training.pacing import StepPacer
from tfgap.training.plan import plan_steps
from tfgap.training.progress import ProgressLogger
from tfgap.training.result import TrainResult, split_metrics
from tfgap.training.state import build_state
from tfgap.training.summaries import TensorBoardScalars

_PREFIXES = {"validation": "val_", "test": "test_"}  # Keras' names of the evaluated splits


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


def train(config, *, strategy=None, callbacks=(), stream=None, batch_step_time=None):
    """Trains `config.model` on `config.dataset`; returns the run's record and model.

    Re-running with the same `config.model_dir` resumes from the newest intact
    checkpoint: mid-epoch, at the exact batch, with the epoch's running
    metrics, and ends with the same number of optimizer steps and the same
    `history.json` as an uninterrupted run (with `config.deterministic`, the
    same weights and numbers; only the wall times differ). A run in
    `model_dir` started with other settings is refused (see `rundir`), and
    one process at a time trains in a `model_dir`.

    Checkpoints: at least every `config.checkpoint_every_seconds` of wall
    time (mid-epoch included; at epoch ends no more often than that; `0` =
    at every epoch end), every `config.checkpoint_every_steps` steps, at the
    end, and on SIGTERM or Ctrl-C (then `Preempted` or `Interrupted` is raised
    after the checkpoint and `history.json` are written). A kill loses at
    most the work since the last checkpoint.

    The number of steps is `round(epochs * stretch * steps_per_epoch)` (see
    `tfgap.training.plan_steps`); the learning rate follows
    `LargeBatchSchedule(lr_boundaries, lr_values * lr_multiplier,
    base_batch_size, batch_size, steps_per_epoch, lr_scaling,
    regime_adaptation, warmup_epochs)` at the optimizer's own iteration count.
    With `config.adaptive="lr"` (AdaScale, Johnson et al. 2020) the rate is
    `gain * schedule(progress)`, the schedule the base batch's, the gain from
    the measured noise scale, and the run ends when the progress reaches the
    base regime's steps (`tfgap.training.adascale`). With
    `config.adaptive="batch"` the same, and each epoch after the first runs at
    the global batch of the best goodput (`tfgap.training.batch_control`),
    decided again every `config.batch_decision_steps` steps within an epoch
    when that is set.

    Several runs can share one Python process (the tuner and the study do
    this): each run clears the Keras session, reseeds, restores the global
    dtype policy and the signal handlers it found. A multi-worker or TPU
    strategy can only be created once per process: pass it as `strategy`.

    Args:
        config: a `TrainConfig`.
        strategy: a `tf.distribute.Strategy` to use instead of building
            `config.strategy` (then `config.logical_cpus` is ignored).
        callbacks: Keras callbacks, driven as `model.fit` drives them:
            `set_model`, `set_params` (`epochs`, `steps`, `verbose`),
            `on_train_begin`, `on_epoch_begin`, `on_train_batch_end` (logs:
            `step`, the epoch's running `loss` and `accuracy`, `step_loss`,
            `learning_rate`; with `adaptive="lr"` the step's `gain` and the
            `progress` after it; with `adaptive="batch"` also its `batch_size`),
            `on_epoch_end` (the epoch's logs: `loss`, `accuracy`,
            `learning_rate`, `weight_distance`, and `val_loss`,
            `val_accuracy`, `test_loss`, `test_accuracy` on evaluated epochs;
            the noise statistics when measured; `gain` and `progress` with
            `adaptive="lr"`, and `batch_size` with `"batch"`) and
            `on_train_end`. Setting `model.stop_training = True` ends the
            run after the current call of `config.steps_per_execution` steps
            (like `EarlyStopping`; set `steps_per_execution=1` to stop at the
            step).
        stream: where progress is printed (default `sys.stdout`).
        batch_step_time: with `adaptive="batch"`, a function `(batch,
            seconds) -> seconds`: the step time the batch controller records
            for a step at `batch` that took `seconds` (default: `seconds`,
            the measured wall time). Pin it (e.g. a table per batch) where
            the decisions must repeat exactly, as in a resumed run compared
            with an uninterrupted one: wall times never repeat.

    Returns:
        A `TrainResult`: the record written to `<model_dir>/result.json` (on
        the chief), readable as a mapping, and the trained `model`.

    Raises:
        ConfigError: settings that do not fit the strategy or the data, or
            another run's settings in `model_dir`.
        tfgap.data.DatasetNotPreparedError: the data is not on disk.
        NonFiniteLossError: the loss became NaN or infinite.
        tfgap.training.Preempted: SIGTERM (`Interrupted`: Ctrl-C); a
            checkpoint was saved.
        tfgap.training.RunDirError: `model_dir` unusable, or in use
            (`RunDirBusy`); `CheckpointError`: no intact checkpoint there.

    Example:

    ```python
    from tfgap.training import TrainConfig, train
    config = TrainConfig(dataset="mnist", model="f1", model_dir="/tmp/mnist_f1",
                         epochs=2, batch_size=32, mock_data=True, mock_examples=64,
                         model_options={"width": 32}, export_dir="/tmp/mnist_f1_export")
    result = train(config)
    result.global_step, result["validation"]["accuracy"], result.model.count_params()
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
        run = _start(config, strategy, callbacks, stream, start_time, batch_step_time)
        try:
            _train_epochs(run)
            return _finish(run)
        finally:
            run.saver.close()
            run.tensorboard.summaries.close()


@dataclasses.dataclass
class _Run:
    """The parts of a started run that its loop uses (built by `_start`)."""

    config: object
    plan: object
    state: object
    train_input: inputs.TrainInput
    train_steps: dict  # the step function of each global batch (one; a few with "batch")
    evaluators: dict
    callbacks: keras.callbacks.CallbackList
    records: RunHistory
    tensorboard: TensorBoardScalars
    pacer: StepPacer
    saver: CheckpointPolicy
    facts: dict  # the set-up the loop and the result read: splits, strategy, clock, ...

    @property
    def layout(self):
        """Where epochs start and how long they are: the `BatchControl`, else the plan."""
        return self.state.batch or self.plan

    def steps_for(self, batch):
        """The step function at global batch `batch` (traced on its first call)."""
        if batch not in self.train_steps:
            config, state = self.config, self.state
            self.train_steps[batch] = step_functions.make_train_step(
                self.facts["strategy"], state.model, state.optimizer, state.counters["step"],
                global_batch_size=batch, jit_compile=config.jit_compile,
                sam_rho=config.sam_rho, sam_adaptive=config.sam_adaptive,
                label_smoothing=config.label_smoothing, noise_statistics=config.measures_noise,
                adascale=state.adascale.rate if state.adascale else None,
                parts=self.train_input.parts(batch))
        return self.train_steps[batch]


def _start(config, strategy, user_callbacks, stream, start_time, batch_step_time=None):
    """Builds the run: plan, state (restored), `model_dir` records, step functions, callbacks."""
    splits = inputs.count_splits(config)
    plan = plan_steps(config, num_train_examples=splits.num_train)
    _, task_id, is_chief = strategy_lib.task_info(strategy)
    state = build_state(config, strategy, plan, policy=build.policy_name(config),
                        num_validation=splits.num_validation, is_chief=is_chief, task_id=task_id,
                        batch_step_time=batch_step_time)
    line = state.restored.describe() if state.restored else state.checkpointer.note
    for line in (line, *state.notes):
        if line and is_chief and config.verbose:
            print(line, file=stream or sys.stdout, flush=True)

    os.makedirs(config.model_dir, exist_ok=True)
    history, distance_record, changes = rundir.read_history(config.model_dir, state.step)
    if state.changes and state.step:
        changes.append(rundir.change_record(state.changes, state.step))
    if is_chief:
        rundir.write_config(config, step=state.step, changes=state.changes)
    if not state.step:
        distance_record = [[0, 0.0]]

    static_shapes = strategy_lib.is_tpu(strategy)
    sizes = {"validation": splits.num_validation, "test": splits.num_test}
    evaluators = {
        split: step_functions.make_evaluate(
            strategy, state.model,
            inputs.eval_dataset(config, strategy, split, sizes[split], static_shapes))
        for split in inputs.EVAL_SPLITS if sizes[split]}
    weights = state.model.trainable_variables
    distance = tf.function(lambda: weight_distance(weights, state.initial_weights))

    record_due = diagnostics.LogSpacedSteps()
    record_due(state.step)  # skip the steps already recorded before a resume
    layout = state.batch or plan
    records = RunHistory(config.model_dir, layout=layout,
                         history=history, distance_record=distance_record, changes=changes,
                         start_step=state.step, enabled=is_chief)
    tensorboard = TensorBoardScalars(config.model_dir, every_steps=config.summary_every_steps,
                                     start_step=state.step, enabled=is_chief)
    own = [ProgressLogger(plan, layout=layout, start_step=state.step,
                          verbose=config.verbose if is_chief else 0, stream=stream),
           tensorboard, DistanceRecord(distance, record_due, distance_record, enabled=is_chief),
           records]
    callbacks = keras.callbacks.CallbackList(
        [*user_callbacks, *own], model=state.model, epochs=plan.num_epochs,
        steps=plan.steps_per_epoch, verbose=config.verbose)

    def save(step):
        state.save(plan)
        records.write()  # the records up to a checkpoint survive a resume from it

    several = strategy_lib.num_workers(strategy) > 1
    return _Run(
        config=config, plan=plan, state=state,
        train_input=inputs.TrainInput(config, strategy, plan,
                                      config.per_replica_batch_size(strategy.num_replicas_in_sync),
                                      batch_control=state.batch),
        train_steps={}, evaluators=evaluators, callbacks=callbacks, records=records,
        tensorboard=tensorboard,
        pacer=StepPacer(steps_per_execution=config.steps_per_execution, several_workers=several,
                        checkpoint_every_steps=config.checkpoint_every_steps,
                        record_due=record_due,
                        gain_every_steps=state.adascale.every_steps if state.adascale else 0),
        saver=CheckpointPolicy(config, strategy, several_workers=several, save=save,
                               latest=lambda: state.checkpointer.latest,
                               saved_step=state.step if state.restored else None),
        facts=dict(splits=splits, strategy=strategy, start_time=start_time, distance=distance,
                   check_grads=build.policy_name(config) != "mixed_float16", stream=stream,
                   is_chief=is_chief))


def _train_epochs(run):
    """The loop: every epoch from the restored step on, then the checkpoints between them."""
    plan, state, model = run.plan, run.state, run.state.model
    model.stop_training = False
    run.callbacks.on_train_begin()
    start_epoch, skip = run.layout.epoch_of(state.step)
    if skip:  # resumed mid-epoch: continue that epoch's running sums
        state.metrics.unstash()
    for epoch in range(start_epoch, plan.num_epochs):
        if _progress_reached(state):
            break  # resumed from the checkpoint at the end of an AdaScale run
        skip_now = skip if epoch == start_epoch else 0
        if state.batch is not None:
            _follow_batch(run)
        if skip_now >= run.layout.steps_in_epoch(epoch):
            continue
        if not skip_now:
            state.metrics.reset()
        _train_epoch(run, epoch, skip_now)
        end_of_run = (state.step >= plan.total_steps or model.stop_training
                      or _progress_reached(state))
        evaluate = (epoch + 1) % run.config.eval_every_epochs == 0 or end_of_run
        logs = dict(state.metrics.values(), **(_evaluate(run) if evaluate else {}))
        logs["learning_rate"] = build.current_learning_rate(state.optimizer)
        logs["weight_distance"] = float(run.facts["distance"]())
        if state.noise is not None:
            logs.update(state.noise.stats.values())
        if state.adascale is not None:
            logs.update(state.adascale.values())
        if state.batch is not None:
            logs.update(state.batch.values())
        run.callbacks.on_epoch_end(epoch, logs)
        if end_of_run:
            break  # `_finish` saves
        run.saver.point(state.step, epoch_end=True)


def _follow_batch(run):
    """`adaptive="batch"`: the batch at `state.step`, decided there if a decision is due (an
    epoch start, or with `batch_decision_steps` a point within the epoch); the gain and the
    noise statistics follow it."""
    state = run.state
    batch = state.batch.begin(state.step, state.noise.stats.b_simple)
    state.noise.set_batches(*state.batch.noise_batches(batch))
    state.adascale.set_batch(batch)


def _train_epoch(run, epoch, skip):
    """Trains epoch `epoch` from its step `skip`, segment by segment (the steps between two
    decisions of `adaptive="batch"`; one, the whole epoch, otherwise)."""
    layout = run.layout
    first = layout.first_step(epoch)
    iterator = run.train_input.iterator(epoch, skip)
    run.callbacks.on_epoch_begin(epoch)
    while True:
        _train_segment(run, epoch, first, iterator)
        if not _goes_on(run, first + layout.steps_in_epoch(epoch)):
            return
        # A decision within the epoch (`batch_decision_steps`). The iterator goes on: the new
        # batch's step function reads its number of the epoch's base batches.
        _follow_batch(run)


def _train_segment(run, epoch, first, iterator):
    """Trains the segment holding `state.step` (of epoch `epoch`, which starts at step `first`)
    to its end, in calls of the step function, from `iterator`."""
    state, layout, control = run.state, run.layout, run.state.batch
    if control is not None:
        batch, end = control.batch_at(state.step), control.segment_end(state.step)
    else:
        batch, end = run.config.batch_size, first + layout.steps_in_epoch(epoch)
    train_steps = run.steps_for(batch)
    adascale = state.adascale
    while _goes_on(run, end):
        num_steps = run.pacer.call_end(state.step, end) - state.step
        if control is not None and control.first_call(batch):
            # It traces: a call of its own, so that its time (recorded like any call's, the
            # throughput model's median discounts it) weighs one step only.
            num_steps = 1
        if adascale is not None:  # the gain of this call; no step past the end in progress
            num_steps = adascale.begin_call(state.step, num_steps)
        rows = run.pacer.timed(_call, train_steps, iterator, num_steps, batch_size=batch)
        if control is not None:
            control.record(batch, run.pacer.last_seconds, len(rows))
        progress = adascale.end_call(len(rows)) if adascale is not None else None
        for i, row in enumerate(rows):
            loss, correct, count, grad_sq, learning_rate = row[:5]
            if state.noise is not None:  # |G_b|^2, |G_B|^2
                state.noise.stats.update(row[5], row[6])
            state.step += 1
            _check_finite(run, loss, grad_sq, epoch)
            state.metrics.add(loss=loss, correct=correct, count=count)
            logs = dict(state.metrics.values(), step=state.step, step_loss=loss,
                        learning_rate=learning_rate)
            if adascale is not None:
                logs.update(gain=adascale.gain, progress=progress[i])
            if control is not None:
                logs.update(batch_size=batch)
            run.callbacks.on_train_batch_end(state.step - first - 1, logs)
        # `state.step` is now the end of the call: checkpoints are at call ends (at a
        # decision point before the decision; at the epoch's end after its logs).
        if _goes_on(run, first + layout.steps_in_epoch(epoch)):
            run.saver.point(state.step, epoch_end=False)


def _goes_on(run, end):
    """Whether training goes on before step `end`: not reached, no stop asked, no end of an
    AdaScale run."""
    state = run.state
    return state.step < end and not state.model.stop_training and not _progress_reached(state)


def _progress_reached(state):
    """Whether an AdaScale run's progress has reached the base regime's steps (its end)."""
    return state.adascale is not None and state.adascale.reached


def _call(train_steps, iterator, num_steps):
    """One call of the step function: its steps' rows as float lists."""
    rows = train_steps(iterator, tf.constant(num_steps, tf.int32))
    return rows.numpy().astype("float64").tolist()


def _evaluate(run):
    logs = {}
    for split, prefix in _PREFIXES.items():
        if split in run.evaluators:
            logs.update(step_functions.evaluate(run.evaluators[split], prefix))
        else:
            logs.update({f"{prefix}loss": None, f"{prefix}accuracy": None})
    return logs


def _check_finite(run, loss, grad_sq, epoch):
    if math.isfinite(loss) and (not run.facts["check_grads"] or math.isfinite(grad_sq)):
        return
    what = "loss" if not math.isfinite(loss) else "gradient"
    good = run.state.checkpointer.latest
    step = run.state.step
    message = (
        f"Training stopped: the {what} is not finite (loss={loss}) at step {step} "
        f"(epoch {epoch + 1}). Nothing was saved after it; the last good checkpoint is "
        f"{good or 'none (no checkpoint yet)'}. {_stability_hint(run.config)}")
    _write_result(run, _result(run, "non_finite_loss", throughput=None, checkpoint=good,
                               export_dir=None, message=message))
    print(f"\n{message}", file=run.facts["stream"] or sys.stdout, flush=True)
    raise NonFiniteLossError(message, step=step, checkpoint=good)


def _stability_hint(config):
    """What to try after a non-finite loss, given the settings the run used."""
    hints = ["lower the learning rate (lr_values or lr_multiplier)",
             "lengthen the warm-up (warmup_epochs)" if config.warmup_epochs
             else "add warm-up (warmup_epochs)"]
    if config.lr_scaling == "linear":
        hints.append("use lr_scaling='sqrt' instead of 'linear'")
    return "Try to " + ", ".join(hints[:-1]) + " or " + hints[-1] + "."


def _finish(run):
    """The end of a run: the last checkpoint, a final evaluation if due, export, result."""
    config, state = run.config, run.state
    run.saver.save(state.step)
    last_logs = run.records.last_logs
    if last_logs.get("test_accuracy") is None:
        last_logs = dict(last_logs, **_evaluate(run))
    run.callbacks.on_train_end(dict(last_logs))
    export_dir = None
    if config.export_dir:
        weights = state.model.get_weights()  # all workers read (collectives); the chief exports
        if run.facts["is_chief"]:
            fresh = build.build_model(config)
            fresh.set_weights(weights)
            export_dir = export.export_saved_model(
                fresh, config.export_dir, dataset=config.dataset, config=config.to_dict(),
                protected=(config.model_dir,))
    result = _result(run, "completed", throughput=run.pacer.throughput(),
                     checkpoint=state.checkpointer.latest, export_dir=export_dir,
                     last_logs=last_logs)
    _write_result(run, result)
    return result


def _result(run, status, *, throughput, checkpoint, export_dir, message=None, last_logs=None):
    logs = run.records.last_logs if last_logs is None else last_logs
    plan, splits, state = run.plan, run.facts["splits"], run.state
    strategy = run.facts["strategy"]
    return TrainResult(
        status=status, global_step=int(state.step), total_steps=plan.total_steps,
        epochs_completed=run.layout.epochs_completed(state.step),
        resumed_from_step=int(state.resumed_from_step),
        **{split: split_metrics(logs, split) for split in ("train", "validation", "test")},
        weight_distance=logs.get("weight_distance"), throughput=throughput,
        wall_time=time.time() - run.facts["start_time"],
        num_replicas=strategy.num_replicas_in_sync,
        strategy=strategy_lib.strategy_name(strategy), steps_per_epoch=plan.steps_per_epoch,
        stretch=plan.stretch, num_train_examples=splits.num_train,
        num_validation_examples=splits.num_validation, num_test_examples=splits.num_test,
        checkpoint=checkpoint, export_dir=export_dir, history=run.records.history,
        distance_record=run.records.distance_record, config=run.config.to_dict(),
        message=message, model=state.model,
        adascale=None if state.adascale is None else {
            "steps": int(state.step), "progress": state.adascale.progress,
            "base_steps": plan.base_steps, "gain": state.adascale.gain},
        batch_control=None if state.batch is None else state.batch.summary())


def _write_result(run, result):
    if run.facts["is_chief"]:
        rundir.write_json(rundir.path(run.config.model_dir, rundir.RESULT), result.to_dict())
