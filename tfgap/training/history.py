"""The run's records, as callbacks: the per-epoch history and the weight-distance record.

`RunHistory` is the trainer's `keras.callbacks.History`: one entry per epoch
(`epoch`, `step`, `epochs_completed`, `seconds` of training, and the epoch's
logs), kept across a resume, written to `history.json` at every epoch end and
checkpoint. `DistanceRecord` records `||w_t - w_0||` at log-spaced steps
(Hoffer et al. 2017, Figure 1: the distance grows like `log t`).
"""

import time

import keras

from tfgap.training import rundir


class DistanceRecord(keras.callbacks.Callback):
    """`[step, ||w_t - w_0||]` at the steps `due` names (the trainer's calls end there).

    Args:
        distance: a function returning the current distance (a scalar tensor).
        due: a `tfgap.diagnostics.LogSpacedSteps`, advanced past the steps
            already recorded.
        record: the record so far (a list, extended in place).
        enabled: `False` on non-chief workers (nothing is recorded).
    """

    def __init__(self, distance, due, record, *, enabled=True):
        super().__init__()
        self.distance, self.due, self.record, self.enabled = distance, due, record, enabled

    def on_train_batch_end(self, batch, logs=None):
        step = int(logs["step"])
        if self.due(step) and self.enabled:
            self.record.append([step, float(self.distance())])


class RunHistory(keras.callbacks.Callback):
    """The per-epoch history of a run and its `history.json`.

    Args:
        model_dir: the run's directory.
        layout: the run's `StepPlan`, or its `BatchControl` (`adaptive="batch"`):
            its `epochs_completed(step)` is logged.
        history: the entries up to the step the run resumes from.
        distance_record: the `DistanceRecord`'s list (written beside).
        changes: settings changed on resume (`rundir.change_record`s).
        start_step: the step the run starts at.
        enabled: `False` on non-chief workers (nothing is written).
    """

    def __init__(self, model_dir, *, layout, history, distance_record, changes,
                 start_step=0, enabled=True):
        super().__init__()
        self.model_dir, self.layout = model_dir, layout
        self.history, self.distance_record, self.changes = history, distance_record, changes
        self.enabled = enabled
        self._step = start_step
        self._started = self._last_batch = time.time()

    @property
    def last_logs(self):
        """The newest entry, or `{}`."""
        return self.history[-1] if self.history else {}

    def on_epoch_begin(self, epoch, logs=None):
        self._started = self._last_batch = time.time()

    def on_train_batch_end(self, batch, logs=None):
        self._step = int(logs["step"])
        self._last_batch = time.time()

    def on_epoch_end(self, epoch, logs=None):
        self.history.append(dict(epoch=epoch + 1, step=self._step,
                                 epochs_completed=self.layout.epochs_completed(self._step),
                                 seconds=self._last_batch - self._started, **logs))
        self.write()

    def write(self):
        """Writes `history.json` (the chief only)."""
        if self.enabled:
            rundir.write_history(self.model_dir, self.history, self.distance_record,
                                 self.changes)
