"""TensorBoard scalars of a run: loss, accuracy, learning rate, weight distance, noise scale.

Only the chief writes (`<model_dir>/logs/train` and `<model_dir>/logs/test`);
other workers get no-op writers, so several processes never collide on one
event file. Scalars are written from host-side numbers, never from inside a
distributed step, by a small `tf.function` per writer and set of names (one
call instead of a few eager ops per scalar).
"""

import os

import keras
import tensorflow as tf

from tfgap.training import rundir

# The epoch's scalars, by TensorBoard run: {run: {scalar name: log key}}.
_EPOCH_SCALARS = {
    "train": {"loss": "loss", "accuracy": "accuracy", "learning_rate": "learning_rate",
              "weight_distance": "weight_distance",
              # with noise_statistics (absent otherwise: nothing written)
              "grad_norm_sq": "grad_norm_sq", "trace_sigma": "trace_sigma",
              "b_simple": "b_simple",
              # with adaptive="lr"
              "gain": "gain", "progress": "progress",
              # with adaptive="batch"
              "batch_size": "batch_size"},
    "validation": {"loss": "val_loss", "accuracy": "val_accuracy"},
    "test": {"loss": "test_loss", "accuracy": "test_accuracy"},
}


class Summaries:
    """Scalar writers for one run.

    Args:
        model_dir: the run's directory.
        enabled: `False` on non-chief workers (nothing is written).

    Example:

    >>> import tempfile
    >>> summaries = Summaries(tempfile.mkdtemp())
    >>> summaries.scalars("train", {"loss": 0.5, "learning_rate": 0.1}, step=10)
    >>> summaries.close()
    """

    def __init__(self, model_dir, enabled=True):
        self.enabled = enabled
        self._writers = {}
        self._functions = {}
        self._dir = rundir.path(model_dir, rundir.LOGS)

    def _writer(self, name):
        if name not in self._writers:
            self._writers[name] = tf.summary.create_file_writer(os.path.join(self._dir, name))
        return self._writers[name]

    def scalars(self, name, values, step):
        """Writes `values` (dict of numbers; `None` skipped) to writer `name` at `step`."""
        if not self.enabled:
            return
        keys = tuple(k for k, v in values.items() if v is not None)
        if not keys:
            return
        fn = self._functions.get((name, keys))
        if fn is None:
            fn = self._functions[(name, keys)] = self._make_writer_fn(name, keys)
        fn(tf.constant(int(step), tf.int64),
           tf.constant([float(values[k]) for k in keys], tf.float32))

    def _make_writer_fn(self, name, keys):
        writer = self._writer(name)

        @tf.function
        def write(step, numbers):
            with writer.as_default(step=step):
                for i, key in enumerate(keys):
                    tf.summary.scalar(key, numbers[i])

        return write

    def flush(self):
        for writer in self._writers.values():
            writer.flush()

    def close(self):
        for writer in self._writers.values():
            writer.close()
        self._writers = {}
        self._functions = {}


class TensorBoardScalars(keras.callbacks.Callback):
    """Writes a run's scalars to TensorBoard: each `every_steps` step, and each epoch.

    Per step (`train` run): `step_loss`, the loss of that step, and
    `learning_rate` (and the AdaScale `gain` with `adaptive="lr"`). Per epoch:
    `loss`, `accuracy`, `learning_rate` and `weight_distance` (`train`; with
    noise statistics also `grad_norm_sq`, `trace_sigma` and `b_simple`, the
    moving averages at the epoch's end; with `adaptive="lr"` (or `"batch"`) the `gain` and
    the `progress`), `loss` and `accuracy` of `validation` and `test` when
    evaluated. Only the chief writes.

    Args:
        model_dir: the run's directory (`<model_dir>/logs/<run>`).
        every_steps: the step scalars' period.
        start_step: the step the run starts at.
        enabled: `False` on non-chief workers.
    """

    def __init__(self, model_dir, *, every_steps, start_step=0, enabled=True):
        super().__init__()
        self.summaries = Summaries(model_dir, enabled=enabled)
        self.every_steps = every_steps
        self._step = start_step

    def on_train_batch_end(self, batch, logs=None):
        self._step = int(logs["step"])
        if self._step % self.every_steps == 0:
            self.summaries.scalars("train", {"step_loss": logs["step_loss"],
                                             "learning_rate": logs["learning_rate"],
                                             "gain": logs.get("gain")}, self._step)

    def on_epoch_end(self, epoch, logs=None):
        for run, names in _EPOCH_SCALARS.items():
            self.summaries.scalars(run, {name: logs.get(key) for name, key in names.items()},
                                   self._step)
        self.summaries.flush()

    def on_train_end(self, logs=None):
        self.summaries.close()
