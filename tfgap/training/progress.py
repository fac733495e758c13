"""Keras-style progress of a run, as a callback: `Epoch i/N`, then a bar on a TTY or one line."""

import sys
import time

import keras

# The order an epoch's line lists its logs in (any other key follows).
_ORDER = ("loss", "accuracy", "val_loss", "val_accuracy", "test_loss", "test_accuracy",
          "learning_rate", "weight_distance", "b_simple", "gain", "progress", "batch_size")
# Logged (history.json, TensorBoard) but left off the line: `b_simple` stands for them.
_NOT_PRINTED = ("grad_norm_sq", "trace_sigma", "b_simple_stderr")
# Counts, printed as integers.
_COUNTS = ("batch_size",)


class ProgressLogger(keras.callbacks.Callback):
    """Prints `Epoch i/N`, a progress bar (on a terminal) and each epoch's logs.

    Args:
        plan: the run's `StepPlan` (epochs, steps per epoch).
        layout: where each epoch starts and its steps: `plan` (the default), or
            the run's `BatchControl` (`adaptive="batch"`).
        start_step: the step the run starts at (after a resume).
        verbose: 0 silent; 1 progress bar on a terminal, plain lines otherwise;
            2 one line per epoch.
        stream: where to print (default `sys.stdout`).
    """

    def __init__(self, plan, *, layout=None, start_step=0, verbose=1, stream=None):
        super().__init__()
        self.plan, self.verbose = plan, verbose
        self.layout = layout or plan
        self.stream = stream or sys.stdout
        self.use_bar = verbose == 1 and getattr(self.stream, "isatty", lambda: False)()
        self._step = start_step
        self._bar = None

    def on_epoch_begin(self, epoch, logs=None):
        if not self.verbose:
            return
        print(f"Epoch {epoch + 1}/{self.plan.num_epochs}", file=self.stream, flush=True)
        self._first = self.layout.first_step(epoch)
        self._steps = self.layout.steps_in_epoch(epoch)
        self._done = max(0, self._step - self._first)
        self._start = time.time()
        if self.use_bar:
            self._bar = keras.utils.Progbar(
                self._steps, stateful_metrics=["loss", "accuracy"], unit_name="step")
            if self._done:
                self._bar.update(self._done)

    def on_train_batch_end(self, batch, logs=None):
        self._step = int(logs["step"])
        if not self.verbose:
            return
        self._done = self._step - self._first
        if self._bar is not None:
            values = [(k, logs[k]) for k in ("loss", "accuracy") if logs.get(k) is not None]
            self._bar.update(self._done, values, finalize=False)

    def on_epoch_end(self, epoch, logs=None):
        if not self.verbose:
            return
        # Known at its end: a batch chosen within the epoch (`batch_decision_steps`) changes it.
        self._steps = self.layout.steps_in_epoch(epoch)
        if self._bar is not None:
            self._bar.target = self._steps
            self._bar.update(self._steps, finalize=True)
            self._bar = None
        keys = [k for k in _ORDER if k in logs] + [
            k for k in logs if k not in _ORDER and k not in _NOT_PRINTED]
        parts = [f"{self._done}/{self._steps}", f"{time.time() - self._start:.0f}s"]
        parts += [f"{k}: {_format(logs[k], k)}" + _error(k, logs) for k in keys
                  if logs[k] is not None]
        print(" - ".join(parts), file=self.stream, flush=True)


def _error(key, logs):
    """` +- stderr` after `b_simple` when the log has one."""
    stderr = logs.get(f"{key}_stderr") if key == "b_simple" else None
    return f" +- {_format(stderr)}" if isinstance(stderr, float) and stderr == stderr else ""


def _format(value, key=None):
    if key in _COUNTS and isinstance(value, float) and value.is_integer():
        return str(int(value))  # Keras' logs make every number a float
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) < 1e-3 and value != 0 else f"{value:.4f}"
    return str(value)
