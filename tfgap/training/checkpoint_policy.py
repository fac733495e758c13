"""When the trainer checkpoints: by step count, by the clock, on a signal; agreed by all workers.

Between calls of the step function (and after each epoch's logs) the trainer
asks `CheckpointPolicy.point`: a checkpoint is due every
`checkpoint_every_steps` steps, by the clock at least every
`checkpoint_every_seconds` (`0`: at every epoch end instead), and on SIGTERM
or Ctrl-C, after which `Preempted` or `Interrupted` is raised. Under several
workers the clock and the signals are agreed on with one small collective, so
every worker saves at the same step (each must take part in a save).
"""

import signal
import time

import tensorflow as tf

from tfgap.training import checkpointing


class CheckpointPolicy:
    """Saves the run when a checkpoint is due.

    Args:
        config: the run's `TrainConfig` (`checkpoint_every_steps`,
            `checkpoint_every_seconds`, `preemption`).
        strategy: the run's strategy (several workers agree through it).
        several_workers: whether several workers train together.
        save: `save(step)`, which writes the checkpoint and the history.
        latest: `latest()`, the path of the newest checkpoint (for messages).
        saved_step: the step of the checkpoint the run resumed from (or `None`).
    """

    def __init__(self, config, strategy, *, several_workers, save, latest, saved_step=None):
        self.every_steps = config.checkpoint_every_steps
        self.every_seconds = config.checkpoint_every_seconds
        self._save, self._latest = save, latest
        self._agree = _make_agree(strategy) if several_workers else None
        self.watcher = None
        if config.preemption and checkpointing.PreemptionWatcher.available():
            self.watcher = checkpointing.PreemptionWatcher()
        self.last_saved = saved_step
        self.last_save_time = time.time()

    def point(self, step, *, epoch_end):
        """Saves at `step` if a checkpoint is due; raises `Preempted` after a signal's save."""
        by_steps = bool(self.every_steps) and step % self.every_steps == 0
        if self.every_seconds:
            by_clock = time.time() - self.last_save_time >= self.every_seconds
        else:
            by_clock = epoch_end
        signalled = self.watcher is not None and self.watcher.requested
        by_clock, signalled = self._agreed(by_clock, signalled)
        if by_steps or by_clock or signalled:
            self.save(step)
        if signalled:
            interrupted = self.watcher is not None and self.watcher.signal == signal.SIGINT
            error = checkpointing.Interrupted if interrupted else checkpointing.Preempted
            what = "Interrupted (Ctrl-C)" if interrupted else "Preempted"
            raise error(f"{what} at step {step}: checkpoint saved in {self._latest()}")

    def save(self, step):
        """Writes a checkpoint at `step` unless one was written there."""
        if self.last_saved == step:
            return
        self._save(step)
        self.last_saved = step
        self.last_save_time = time.time()

    def _agreed(self, *flags):
        """Each flag, set if any worker set it (every worker must take part in a save)."""
        if self._agree is None:
            return flags
        agreed = self._agree(tf.constant([float(f) for f in flags]))
        return tuple(bool(v) for v in agreed.numpy())

    def close(self):
        """Gives the signal handlers back."""
        if self.watcher is not None:
            self.watcher.close()


def _make_agree(strategy):
    """A `tf.function(flags) -> bool tensor`: for each flag, whether any worker set it."""

    @tf.function
    def agree(flags):
        value = strategy.run(lambda: tf.identity(flags))
        return strategy.reduce(tf.distribute.ReduceOp.SUM, value, axis=None) > 0

    return agree
