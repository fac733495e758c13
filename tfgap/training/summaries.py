"""TensorBoard scalars of a run: loss, accuracy, learning rate, weight distance.

Only the chief writes (`<model_dir>/logs/train` and `<model_dir>/logs/test`);
other workers get no-op writers, so several processes never collide on one
event file. Scalars are written eagerly from host-side numbers, never from
inside a distributed step.
"""

import os

import tensorflow as tf


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
        self._dir = os.path.join(model_dir, "logs")

    def _writer(self, name):
        if name not in self._writers:
            self._writers[name] = tf.summary.create_file_writer(os.path.join(self._dir, name))
        return self._writers[name]

    def scalars(self, name, values, step):
        """Writes `values` (dict of numbers; `None` skipped) to writer `name` at `step`."""
        if not self.enabled:
            return
        with self._writer(name).as_default(step=int(step)):
            for key, value in values.items():
                if value is not None:
                    tf.summary.scalar(key, float(value))

    def flush(self):
        for writer in self._writers.values():
            writer.flush()

    def close(self):
        for writer in self._writers.values():
            writer.close()
        self._writers = {}
